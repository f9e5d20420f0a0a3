"""A folder of the user's images (e.g. samples to score) as a dataset with a single split, "all".

Images are found recursively (png, jpg, jpeg, webp, bmp; any case), ordered by relative path, and decoded with
PIL. If every image is grayscale the data has one channel, otherwise all are converted to RGB; an alpha channel
is dropped (not composited) with a warning. All images must have one size. Every error names the file and the
fix. Nothing is cached on disk: the folder is decoded on each load.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from genbench import GenbenchError, GenbenchWarning
from genbench.data.base import DatasetSpec, ImageData, content_hash, map_images, readonly

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_GRAY = {"1", "L", "LA"}
_COLOR = {"P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


def find_images(root: Path) -> list[Path]:
    """Image files under `root`, recursively, sorted by their path relative to `root`."""
    if not root.exists():
        raise GenbenchError(f"image folder {root} does not exist; check the path.")
    if not root.is_dir():
        raise GenbenchError(f"{root} is not a folder; pass the folder that holds the images.")
    found = [
        Path(d, f).relative_to(root)
        for d, _, files in os.walk(root, followlinks=True)
        for f in files
        if f.lower().endswith(EXTENSIONS)
    ]
    if not found:
        raise GenbenchError(
            f"no images in {root} (looked recursively for {', '.join(EXTENSIONS)}, in any case). "
            "Save the images in one of these formats there."
        )
    return [root / p for p in sorted(found, key=lambda p: p.as_posix())]


def _read(path: Path) -> tuple[np.ndarray, bool]:
    """(H, W) uint8 for grayscale, (H, W, 3) uint8 for colour; and whether an alpha channel was dropped."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            alpha = mode in ("LA", "PA", "RGBA") or (mode == "P" and "transparency" in im.info)
            if mode in _GRAY:
                return np.asarray(im.convert("L")), alpha
            if mode in _COLOR:
                return np.asarray(im.convert("RGB")), alpha
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise GenbenchError(f"cannot read image {path}: {exc}. Replace or delete the file.") from None
    raise GenbenchError(
        f"image {path} has pixel mode {mode!r} (e.g. 16-bit or float); genbench reads 8-bit images. "
        "Save it as 8-bit grayscale or RGB."
    )


def load_folder(root: Path, name: str, *, progress: bool = True) -> ImageData:
    """Decode every image under `root` into uint8 (N, C, H, W), as the dataset `name`."""
    paths = find_images(root)
    decoded = map_images(_read, paths, progress=progress, desc=f"reading {root}")

    by_size: dict[tuple[int, int], Path] = {}
    for path, (a, _) in zip(paths, decoded, strict=True):
        by_size.setdefault(a.shape[:2], path)
    if len(by_size) > 1:
        examples = "; ".join(f"{p} is {w}x{h}" for (h, w), p in list(by_size.items())[:5])
        raise GenbenchError(
            f"the images in {root} have {len(by_size)} different sizes ({examples}). Resize them all to one size first."
        )
    with_alpha = [p for p, (_, alpha) in zip(paths, decoded, strict=True) if alpha]
    if with_alpha:
        warnings.warn(
            f"{len(with_alpha)} image(s) in {root} have an alpha channel (e.g. {with_alpha[0]}); genbench dropped "
            "it and kept the colour values as they are (not composited on a background).",
            GenbenchWarning,
            stacklevel=4,  # the caller of DatasetSpec.load
        )

    if all(a.ndim == 2 for a, _ in decoded):
        images = np.stack([a for a, _ in decoded])[:, None]  # (N, 1, H, W)
    else:  # grayscale images join colour ones with the gray value in all three channels, as PIL converts them
        images = np.stack([np.dstack([a] * 3) if a.ndim == 2 else a for a, _ in decoded]).transpose(0, 3, 1, 2)
        images = np.ascontiguousarray(images)
    images = readonly(images)
    return ImageData(name, "all", images, None, content_hash(images, None), str(root.absolute()))


def folder(path: str | Path) -> DatasetSpec:
    """The images under `path` as a dataset named "folder:<path>" with the single split "all"."""
    root, name = Path(path).expanduser(), f"folder:{path}"

    def load(split: str, *, data_root: str | Path | None, download: bool, progress: bool) -> ImageData:
        return load_folder(root, name, progress=progress)

    return DatasetSpec(name, f"images under {root}", None, ("all",), None, load)
