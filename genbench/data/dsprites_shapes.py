"""dsprites-shapes: unpaired squares, ellipses and hearts from dSprites, for translation between shapes.

Each shape's images are drawn on their own: for every shape, TRAIN_PER_SHAPE + TEST_PER_SHAPE distinct
combinations of (scale, orientation, posX, posY) are sampled uniformly without replacement from dSprites' 245,760
(RandomState(SEED + shape)); the first TRAIN_PER_SHAPE are `train`, the rest `test`, each shape's block in
increasing dSprites index. A square and an ellipse of the training split are therefore not paired (their factors
are independent draws), which is the setting of unpaired translation, while the ground truth of every
translation stays known: the target shape rendered at the source's factors (genbench.metrics.translation).

Labels are dSprites' factor classes (N, 5), as for `dsprites`; column 0 is the shape (0 square, 1 ellipse,
2 heart), which a translation protocol reads as the domain (`Protocol.domains`). Images are rendered by
genbench.data.dsprites (pixel-for-pixel the official frames it was checked on), in {0, 255}; 27,648 images render
in a few seconds, so nothing is cached or downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench.data import dsprites
from genbench.data.base import DatasetSpec, ImageData, content_hash, readonly

SHAPES = ("square", "ellipse", "heart")  # dSprites' shape classes 0, 1, 2
TRAIN_PER_SHAPE = 8_192
TEST_PER_SHAPE = 1_024
SEED = 0
PER_SHAPE = dsprites.NUM_IMAGES // len(SHAPES)  # 245,760 images of each shape in the full set


def indices(split: str) -> np.ndarray:
    """dSprites indices of a split, shape by shape, each shape's block in increasing order: int64 (N,)."""
    blocks = []
    for shape in range(len(SHAPES)):
        rs = np.random.RandomState(SEED + shape)
        drawn = rs.choice(PER_SHAPE, TRAIN_PER_SHAPE + TEST_PER_SHAPE, replace=False)
        part = drawn[:TRAIN_PER_SHAPE] if split == "train" else drawn[TRAIN_PER_SHAPE:]
        blocks.append(shape * PER_SHAPE + np.sort(part))  # shape is the slowest factor of the dSprites index
    return np.concatenate(blocks).astype(np.int64)


def _load(split: str, *, data_root: str | Path | None, download: bool, progress: bool) -> ImageData:
    factors = dsprites.index_to_factors(indices(split))
    images = dsprites.images_from_factors(factors)
    return ImageData("dsprites-shapes", split, readonly(images), readonly(factors), content_hash(images, factors),
                     f"procedural: {dsprites.GENERATOR}")


DSPRITES_SHAPES = DatasetSpec(
    "dsprites-shapes",
    f"dSprites squares, ellipses and hearts drawn independently per shape (unpaired), 64x64 binary: "
    f"{TRAIN_PER_SHAPE:,} train and {TEST_PER_SHAPE:,} test images of each shape, labels the dSprites factors",
    (1, dsprites.SIZE, dsprites.SIZE),
    ("train", "test"),
    "factors",
    _load,
)
