"""scikit-learn's bundled 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", test part).

Always available offline (it ships inside scikit-learn). 1797 images of 8x8 pixels with values 0..16, mapped to
uint8 by round(v * 255 / 16), so 16 -> 255. The split is fixed and deterministic: the first 1500 images in
scikit-learn's order are "train", the remaining 297 "test". Checked (tests): shapes, value range, labels 0..9.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from genbench.data.base import DatasetSpec, ImageData, content_hash, readonly

N_TRAIN = 1500


def _load(split: str, *, data_root: str | Path | None, download: bool, progress: bool) -> ImageData:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.data * (255 / 16)).astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    part = slice(None, N_TRAIN) if split == "train" else slice(N_TRAIN, None)
    images, labels = readonly(images[part].copy()), readonly(labels[part].copy())
    source = str(resources.files("sklearn.datasets.data") / "digits.csv.gz")
    return ImageData("digits", split, images, labels, content_hash(images, labels), source)


DIGITS = DatasetSpec(
    "digits",
    "sklearn digits: 8x8 grayscale handwritten digits, 10 classes, 1500 train / 297 test (bundled, offline)",
    (1, 8, 8),
    ("train", "test"),
    "class",
    _load,
)
