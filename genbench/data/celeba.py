"""CelebA at 64x64 (`celeba64`) from the aligned-and-cropped JPEGs and the official split and attribute lists.

Raw files (Liu et al., "Deep Learning Face Attributes in the Wild", ICCV 2015; torchvision's layout
`ROOT/celeba/`): `img_align_celeba/*.jpg` (178x218), `list_eval_partition.txt` (`<file> <0|1|2>` for
train/valid/test) and `list_attr_celeba.txt` (a count line, 40 attribute names, then `<file>` and forty
`-1`/`1`). Images are centre-cropped to 140x140 and resized to 64x64; the labels are the 40 attributes as 0/1.
Checked (tests): split sizes, shape, and the attribute mapping on a fake folder of generated JPEGs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from genbench import GenbenchError
from genbench.data.base import DatasetSpec, ImageData, RawFiles, cached_decode, find_raw, map_images

FORMAT_VERSION = 1
SYSTEM_DIRS: tuple[Path, ...] = ()
SPLITS = ("train", "valid", "test")  # partition codes 0, 1, 2
CROP, SIZE = 140, 64


def crop_resize(path: Path) -> np.ndarray:
    """uint8 (3, 64, 64): centre crop 140x140, then resize to 64x64.

    The 140-pixel centre crop keeps the face and drops most background; it is the crop used for 64x64
    CelebA throughout the GAN and score-model literature, so numbers stay comparable. Resizing is PIL bicubic,
    which filters over the whole source footprint when shrinking (antialiased), so no aliasing from the 2.2x
    reduction."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise GenbenchError(f"cannot read {path}: {exc}. Replace the file from the CelebA archive.") from None
    w, h = im.size
    if w < CROP or h < CROP:
        raise GenbenchError(f"{path} is {w}x{h}; CelebA's aligned images are 178x218 (at least {CROP}x{CROP} needed).")
    left, top = (w - CROP) // 2, (h - CROP) // 2
    im = im.crop((left, top, left + CROP, top + CROP)).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    return np.asarray(im).transpose(2, 0, 1)


def _read_lists(partition: Path, attributes: Path, split: str) -> tuple[list[str], np.ndarray]:
    code = str(SPLITS.index(split))
    names = []
    for n, line in enumerate(partition.read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) != 2:
            if parts:
                raise GenbenchError(f"{partition}, line {n}: expected '<file> <0|1|2>', got {line!r}")
            continue
        if parts[1] == code:
            names.append(parts[0])
    lines = attributes.read_text().splitlines()
    width = len(lines[1].split()) if len(lines) > 1 else 0  # line 0: count, line 1: attribute names
    rows = {}
    for n, line in enumerate(lines[2:], 3):
        parts = line.split()
        if parts and (len(parts) != width + 1 or any(v not in ("-1", "1") for v in parts[1:])):
            raise GenbenchError(f"{attributes}, line {n}: expected a file name and {width} values of -1/1")
        if parts:
            rows[parts[0]] = parts[1:]
    missing = [f for f in names if f not in rows]
    if missing:
        raise GenbenchError(f"{attributes} has no attributes for {missing[0]} (and {len(missing) - 1} more files)")
    attrs = np.array([[v == "1" for v in rows[f]] for f in names], np.int64).reshape(len(names), width)
    return names, attrs


def _decode(files: list[Path], split: str, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    partition, attributes, folder = files
    names, attrs = _read_lists(partition, attributes, split)
    images = map_images(lambda f: crop_resize(folder / f), names, progress=progress, desc=f"decoding celeba64 {split}")
    return np.stack(images) if images else np.zeros((0, 3, SIZE, SIZE), np.uint8), attrs


def _fetch(root: Path) -> None:
    from torchvision.datasets import CelebA

    CelebA(str(root), split="all", target_type=[], download=True)  # -> ROOT/celeba/ (needs the gdown package)


RAW = RawFiles(
    "celeba64",
    ("", "celeba"),
    lambda split: ["list_eval_partition.txt", "list_attr_celeba.txt", "img_align_celeba"],
    gzip_ok=False,
    fetch=_fetch,
)


def _load(split: str, *, data_root: str | Path | None, download: bool, progress: bool) -> ImageData:
    files = find_raw(RAW, split, data_root=data_root, system_dirs=SYSTEM_DIRS, download=download)
    # The image folder enters the fingerprint by its own mtime (changes when files are added or removed), so a
    # cached load does not stat 200k files.
    return cached_decode(
        "celeba64", split, sources=files, version=FORMAT_VERSION, decode=lambda: _decode(files, split, progress)
    )


CELEBA64 = DatasetSpec(
    "celeba64",
    "CelebA 64x64: aligned faces, centre crop 140 -> 64, 40 binary attributes, 163k/20k/20k train/valid/test",
    (3, SIZE, SIZE),
    SPLITS,
    "attributes",
    _load,
)
