"""CIFAR-10 from its binary distribution (`cifar-10-binary.tar.gz` -> `cifar-10-batches-bin/`).

Format (Krizhevsky, CIFAR-10 page, "Binary version"): `data_batch_1.bin` .. `data_batch_5.bin` (train) and
`test_batch.bin`, each a run of 3073-byte records: one label byte (0..9), then 1024 red, 1024 green and
1024 blue bytes of a 32x32 image in row-major order, i.e. already CHW. The Python version of the dataset is
pickled and genbench never unpickles files from outside, so it is not read. Checked: record length, labels
0..9, and (in the tests) labels and channel order on a fake batch folder written byte by byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench import GenbenchError
from genbench.data.base import DatasetSpec, DatasetUnavailable, ImageData, RawFiles, cached_decode, find_raw, user_root

FORMAT_VERSION = 1
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
SYSTEM_DIRS: tuple[Path, ...] = ()
RECORD = 1 + 3 * 32 * 32


def read_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 3, 32, 32) and int64 labels (N,) from CIFAR-10 binary batch files, in order."""
    images, labels = [], []
    for path in paths:
        raw = np.fromfile(path, np.uint8)
        if raw.size == 0 or raw.size % RECORD:
            raise GenbenchError(
                f"{path} is not a CIFAR-10 binary batch: its size ({raw.size} bytes) is not a multiple of "
                f"{RECORD}-byte records. Delete it and extract cifar-10-binary.tar.gz again."
            )
        records = raw.reshape(-1, RECORD)
        if records[:, 0].max() > 9:
            raise GenbenchError(f"{path}: labels must lie in 0..9, found {records[:, 0].max()}; the file is damaged.")
        labels.append(records[:, 0].astype(np.int64))
        images.append(records[:, 1:].reshape(-1, 3, 32, 32))
    return np.concatenate(images), np.concatenate(labels)


def _names(split: str) -> list[str]:
    return [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]


def _fetch(root: Path) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive(URL, str(root), md5=MD5)  # -> ROOT/cifar-10-batches-bin/


RAW = RawFiles("cifar10", ("", "cifar-10-batches-bin"), _names, gzip_ok=False, fetch=_fetch)


def _load(split: str, *, data_root: str | Path | None, download: bool, progress: bool) -> ImageData:
    try:
        files = find_raw(RAW, split, data_root=data_root, system_dirs=SYSTEM_DIRS, download=download)
    except DatasetUnavailable as exc:
        roots = [r for r in (user_root(data_root), *SYSTEM_DIRS) if r is not None]
        pickled = [r / "cifar-10-batches-py" for r in roots if (r / "cifar-10-batches-py").is_dir()]
        if not pickled:
            raise
        raise DatasetUnavailable(
            f"{exc}\n  Note: {pickled[0]} holds the Python (pickled) version of CIFAR-10, which genbench does not "
            f"read (it never unpickles files from outside). Get the binary version, {URL}, and extract it next to "
            "it (it unpacks to cifar-10-batches-bin/)."
        ) from None
    return cached_decode("cifar10", split, sources=files, version=FORMAT_VERSION, decode=lambda: read_batches(files))


CIFAR10 = DatasetSpec(
    "cifar10",
    "CIFAR-10: 32x32 colour photos, 10 classes, 50k train / 10k test",
    (3, 32, 32),
    ("train", "test"),
    "class",
    _load,
)
