"""MNIST and Fashion-MNIST from their raw IDX files (`train-images-idx3-ubyte[.gz]`, ...).

IDX format (LeCun & Cortes, MNIST database page): a 4-byte magic number `0x00 0x00 <type> <ndim>`, then `ndim`
big-endian uint32 sizes, then the values, big-endian, in C order. Files may be gzipped or not (told by their
first bytes, not their name). Checked: the type code, the data length against the sizes (a truncated file is an
error naming it), 28x28 images, labels 0..9 and as many labels as images. The Fashion-MNIST decode is checked
in the tests against the dataset's published per-class counts and pixel mean/std, and its hash is pinned.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from genbench import GenbenchError
from genbench.data.base import DatasetSpec, ImageData, RawFiles, cached_decode, find_raw

FORMAT_VERSION = 1

# Known system locations (Debian's `dataset-fashion-mnist` package installs the first).
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
    "mnist": (Path("/usr/share/datasets/mnist"),),
}

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an IDX file (gzipped or not), in native byte order."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise GenbenchError(f"cannot read {path}: {exc}. The file is damaged; delete it and fetch it again.") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _TYPES:
        raise GenbenchError(
            f"{path} is not an IDX file (bad magic number {raw[:4].hex()}); delete it and fetch it again."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise GenbenchError(f"{path} is truncated (the header is incomplete); delete it and fetch it again.")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    dtype = np.dtype(_TYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        state = "truncated" if len(raw) - header < expected else "longer than its header says"
        raise GenbenchError(
            f"{path} is {state}: the header promises {expected} bytes of data for shape {dims}, "
            f"the file holds {len(raw) - header}. Delete it and fetch it again."
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def decode_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 1, 28, 28) and int64 labels (N,) from an MNIST-style pair of IDX files."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise GenbenchError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise GenbenchError(f"{labels_path}: expected {len(images)} labels (one per image), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise GenbenchError(f"{labels_path}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return images[:, None], labels.astype(np.int64)


def _names(split: str) -> list[str]:
    prefix = "train" if split == "train" else "t10k"
    return [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]


def _fetcher(tv_class: str) -> Callable[[Path], None]:
    def fetch(root: Path) -> None:
        import torchvision.datasets

        getattr(torchvision.datasets, tv_class)(str(root), download=True)  # -> ROOT/<tv_class>/raw/

    return fetch


def _spec(name: str, tv_class: str, description: str) -> DatasetSpec:
    raw = RawFiles(name, ("", f"{tv_class}/raw"), _names, gzip_ok=True, fetch=_fetcher(tv_class))

    def load(split: str, *, data_root: str | Path | None, download: bool, progress: bool) -> ImageData:
        files = find_raw(raw, split, data_root=data_root, system_dirs=SYSTEM_DIRS[name], download=download)
        return cached_decode(name, split, sources=files, version=FORMAT_VERSION, decode=lambda: decode_idx_pair(*files))

    return DatasetSpec(name, description, (1, 28, 28), ("train", "test"), "class", load)


FASHION_MNIST = _spec(
    "fashion-mnist", "FashionMNIST", "Fashion-MNIST: 28x28 grayscale clothing, 10 classes, 60k train / 10k test"
)
MNIST = _spec("mnist", "MNIST", "MNIST: 28x28 grayscale handwritten digits, 10 classes, 60k train / 10k test")
