"""Stacked Fashion-MNIST: three Fashion-MNIST images as the three channels of one image, 1,000 modes.

The stacked-MNIST benchmark of mode collapse (Metz, Poole, Pfau & Sohl-Dickstein, "Unrolled generative
adversarial networks", ICLR 2017; scored as in VEEGAN, Srivastava et al. 2017, and PacGAN, Lin et al. 2018),
built from Fashion-MNIST instead of MNIST so that genbench's shipped Fashion-MNIST classifier
(`lenet-fashion-mnist`) can label each channel offline. A sample's mode is the triple of its channels' classes,
`genbench.metrics.modes.stacked_modes(labels)` = 100 c0 + 10 c1 + c2; see genbench.metrics.modes for the scores.

Construction (`stacked_indices`): image i of a split stacks the Fashion-MNIST images `stacked_indices(split)[i]`
(int (3,), one per channel, R, G, B) of the Fashion-MNIST split of the same name, every index drawn independently
and uniformly with replacement by `np.random.RandomState(SEEDS[split]).randint(0, SOURCE_SIZES[split],
size=(n, 3))`. Labels are int64 (N, 3): the three source classes. Fashion-MNIST is balanced (6,000 / 1,000 per
class), so the data's mode distribution is exactly uniform over the 1,000 modes in expectation.

Sizes:
- train: 128,000 images, the training-set size of the VEEGAN setting as PacGAN's published code reproduces it
  (github.com/fjxmlzn/PacGAN, stacked_MNIST_experiments/VEEGAN_experiment/config.py: num_training_sample =
  128000, drawn with replacement like here; the Unrolled-GAN setting draws training images on the fly instead).
  128 images per mode on average; 301 MB as uint8, written straight into a memory-mapped .npy in the cache.
- test: 10,000 images from the Fashion-MNIST test split (10 per mode on average), held out: its channels come
  from Fashion-MNIST test images only.

Built from `FASHION_MNIST.load(split, ...)`, so it loads wherever Fashion-MNIST does (offline from Debian's
dataset-fashion-mnist package, /usr/share/datasets/fashion-mnist/) and raises Fashion-MNIST's DatasetUnavailable,
with its fix, where it is missing. The stacked arrays are cached under `cache_dir()/data/stacked-fashion-mnist/`,
keyed by the source split's content hash, the seed, the size and FORMAT_VERSION, and memory-mapped on later loads.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from genbench import GenbenchError, GenbenchWarning
from genbench.data.base import DatasetSpec, ImageData, _open_cached, cache_dir, content_hash, readonly
from genbench.data.idx import FASHION_MNIST
from genbench.files import atomic_write

NAME = "stacked-fashion-mnist"
FORMAT_VERSION = 1  # bump on any change that can move a pixel or a label
CHANNELS = 3
NUM_CLASSES = 10
NUM_MODES = NUM_CLASSES**CHANNELS
SPLIT_SIZES = {"train": 128_000, "test": 10_000}  # stacked images per split (module docstring)
SOURCE_SIZES = {"train": 60_000, "test": 10_000}  # Fashion-MNIST images the channels are drawn from
SEEDS = {"train": 0, "test": 1}  # np.random.RandomState seed of each split's draw
_CHUNK = 16_384  # stacked images written per step (~37 MiB)


def stacked_indices(split: str, n: int | None = None) -> np.ndarray:
    """int64 (n, 3): the Fashion-MNIST `split` images stacked into the first n images of `split` (all of them by
    default), column j the source of channel j. The draw fills row by row, so a smaller n gives a prefix."""
    if split not in SPLIT_SIZES:
        raise GenbenchError(f"{NAME} has no split {split!r}; its splits are: {', '.join(SPLIT_SIZES)}")
    n = SPLIT_SIZES[split] if n is None else n
    if int(n) != n or not 0 <= n <= SPLIT_SIZES[split]:
        raise GenbenchError(f"n must be an integer in 0..{SPLIT_SIZES[split]} for {NAME}:{split}, got {n!r}")
    rs = np.random.RandomState(SEEDS[split])
    return rs.randint(0, SOURCE_SIZES[split], size=(int(n), CHANNELS)).astype(np.int64)


def stack(images: np.ndarray, index: np.ndarray) -> np.ndarray:
    """uint8 (n, 3, H, W) from single-channel images (M, 1, H, W) and source indices int (n, 3)."""
    return np.asarray(images)[index, 0]  # (n, 3, 1, H, W)[:, :, 0]


def _fill(out: np.ndarray, source: np.ndarray, index: np.ndarray) -> None:
    for i in range(0, len(out), _CHUNK):
        out[i : i + _CHUNK] = stack(source, index[i : i + _CHUNK])


def _load(split: str, *, data_root: str | Path | None, download: bool, progress: bool) -> ImageData:
    fm = FASHION_MNIST.load(split, data_root=data_root, download=download, progress=progress)
    if len(fm) != SOURCE_SIZES[split] or fm.images.shape[1:] != (1, 28, 28) or fm.labels is None:
        raise GenbenchError(
            f"{NAME}:{split} is built from the {SOURCE_SIZES[split]} Fashion-MNIST {split} images with labels, but "
            f"fashion-mnist:{split} (from {fm.source}) holds {len(fm)} of shape {tuple(fm.images.shape[1:])}"
        )
    stamp = {"format": FORMAT_VERSION, "seed": SEEDS[split], "n": SPLIT_SIZES[split], "source_hash": fm.content_hash}
    source = f"fashion-mnist:{split} ({fm.source}), stacked with seed {SEEDS[split]}"
    folder = cache_dir() / "data" / NAME
    meta_path = folder / f"{split}.json"
    img_path, lbl_path = folder / f"{split}-images.npy", folder / f"{split}-labels.npy"
    try:
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in stamp} == stamp:
            return _open_cached(NAME, split, img_path, lbl_path, meta)
    except (OSError, ValueError, KeyError):
        pass  # no cache yet, or a stale/damaged one: build again

    index = stacked_indices(split)
    labels = np.asarray(fm.labels)[index]  # (N, 3) int64
    source_images = np.asarray(fm.images)
    shape = (len(index), CHANNELS, 28, 28)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{split}-images.", suffix=".npy.tmp", dir=folder)
        os.close(fd)
        tmp = Path(tmp_name)
    except OSError as exc:
        warnings.warn(
            f"could not write {NAME}:{split} to the cache {folder} ({exc}); it is held in memory and will be built "
            "again next time. Set GENBENCH_CACHE to a writable folder to fix this.",
            GenbenchWarning,
            stacklevel=3,  # the caller of DatasetSpec.load
        )
        images = np.empty(shape, np.uint8)
        _fill(images, source_images, index)
        return ImageData(NAME, split, readonly(images), readonly(labels), content_hash(images, labels), source)
    try:
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        _fill(images, source_images, index)
        images.flush()
        meta = {**stamp, "content_hash": content_hash(images, labels), "source": source, "labels": True}
        del images
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, img_path)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write(lbl_path, lambda f: np.save(f, labels))
    atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=1).encode()))  # last: commits the entry
    return _open_cached(NAME, split, img_path, lbl_path, meta)


STACKED_FASHION_MNIST = DatasetSpec(
    NAME,
    "Stacked Fashion-MNIST: 3 Fashion-MNIST images as the RGB channels, 1,000 modes (class triples), "
    "128k train / 10k test",
    (CHANNELS, 28, 28),
    ("train", "test"),
    "factors",  # labels (N, 3): the class of each channel, independent uniform factors of 10 values
    _load,
)
