"""Folders of the user's images: the one decoding path behind `folder(path)` datasets and scored sample sets.

Images are found recursively (png, jpg, jpeg, webp, bmp; any case) and ordered by their relative path as a
string (so `10.png` sorts before `2.png`). A folder is read once however many symlinks lead to it: a symlinked
folder that leads back to one already walked (a symlink loop, or a second link to the same folder) is skipped
with a warning; symlinked files are read like any other. Files decode with PIL on a few threads, as stored
(the first frame of an animation, EXIF orientation ignored).

Pixel policy: if every image is grayscale the result has one channel, otherwise every image becomes RGB (a
grayscale one with its value in all three channels). A palette image whose colours are all gray is grayscale;
other palette images expand to their RGB colours. Where grayscale images and colour files are mixed, colour
files whose three channels are equal everywhere (a gray picture saved as RGB, CMYK or a palette) are read as
grayscale with the rest, with a warning naming them; if a colour file is really in colour, everything becomes
RGB and the warning names the colour files among the grayscale ones. An alpha channel is dropped, not
composited on a background, so a fully transparent pixel counts with the colour it stores; one warning says how
many images had one. 16-bit images (and 32-bit / float modes) are refused: PIL would keep only the high byte,
which changes the numbers; like an unreadable file, a refused one is skipped and listed (an error when strict).
All images must have one size: genbench never resizes. Every error names a file and the fix.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from genbench import GenbenchError, GenbenchWarning
from genbench.data.base import DatasetSpec, ImageData, content_hash, readonly

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_GRAY = {"1", "L"}
_GRAY_ALPHA = {"LA"}
_COLOR = {"RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
_COLOR_ALPHA = {"RGBA", "PA"}
_DEEP = {"I", "F"}  # and every "I;16..." mode


@dataclass(frozen=True)
class FolderImages:
    """What `read_folder` found: the images, the files they came from, and what was left out and why."""

    images: np.ndarray  # uint8 (N, C, H, W), C in {1, 3}; writable
    paths: tuple[Path, ...]  # the file of each image, in order
    candidates: int  # image files found (read or not)
    skipped: tuple[str, ...]  # "path: reason" for each unreadable file (or folder) left out
    notes: tuple[str, ...]  # warnings for the caller to issue: alpha dropped, skipped files, symlink loops


class _Unreadable(Exception):
    """A file that is not a readable image (corrupt, truncated, not an image, gone): skipped unless strict."""


class _Refused(_Unreadable):
    """A readable image genbench will not read as it is (16-bit, an unknown pixel mode): skipped unless strict,
    where `error` is the message (naming the file and the conversion to make)."""

    def __init__(self, reason: str, error: str):
        super().__init__(reason)
        self.error = error


# ---------------------------------------------------------------------------------------------------------------
# Finding the files


def find_images(root: Path) -> tuple[list[Path], list[str], list[str]]:
    """Image files under `root`, recursively, sorted by their path relative to `root`.

    Returns (paths, skipped, links): folders that could not be listed as "path: reason", and symlinked folders
    left out because they lead to a folder already walked."""
    if not root.exists():
        raise GenbenchError(f"image folder {root} does not exist; check the path.")
    if not root.is_dir():
        raise GenbenchError(f"{root} is not a folder; pass the folder that holds the images.")

    def key(p: str) -> tuple[int, int]:
        st = os.stat(p)
        return st.st_dev, st.st_ino

    walked = {key(root): root}  # (device, inode) of each folder walked -> the path it was walked under
    found: list[str] = []
    skipped: list[str] = []
    links: list[str] = []
    todo = [(root, "")]  # folders to list
    linked: list[tuple[Path, str]] = []  # symlinked folders, followed once no real folder is left, so that a
    # real folder is always read under its own path rather than through a link to it
    while todo or linked:
        if not todo:
            folder, rel = linked.pop(min(range(len(linked)), key=lambda j: linked[j][1]))
            try:
                k = key(folder)
            except OSError as exc:
                skipped.append(f"{folder}: cannot open this folder ({exc.strerror or exc})")
                continue
            if k in walked:
                first = walked[k]
                why = "a symlink loop" if folder.is_relative_to(first) else "a second way to the same folder"
                links.append(f"{folder} -> {first} ({why})")
                continue
            walked[k] = folder
            todo.append((folder, rel))
        folder, rel = todo.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if folder == root:
                raise GenbenchError(f"cannot list the folder {root}: {exc.strerror or exc}. Check its permissions.")
            skipped.append(f"{folder}: cannot list this folder ({exc.strerror or exc})")
            continue
        subfolders = []
        for e in entries:
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            if is_dir and e.is_symlink():
                linked.append((Path(e.path), f"{rel}{e.name}/"))
            elif is_dir:
                try:
                    k = key(e.path)
                except OSError as exc:
                    skipped.append(f"{e.path}: cannot open this folder ({exc.strerror or exc})")
                    continue
                if k in walked:  # a bind mount of a folder already walked
                    links.append(f"{e.path} -> {walked[k]} (the same folder, mounted twice)")
                    continue
                walked[k] = Path(e.path)
                subfolders.append((Path(e.path), f"{rel}{e.name}/"))
            elif e.name.lower().endswith(EXTENSIONS) and (e.is_file() or e.is_symlink()):
                found.append(rel + e.name)  # a broken symlink is listed, and reported when it cannot be read
        todo.extend(reversed(subfolders))  # depth first, in name order
    return [root / p for p in sorted(found)], skipped, links


# ---------------------------------------------------------------------------------------------------------------
# Decoding one file


def decode_image(path: Path) -> tuple[np.ndarray, bool]:
    """(H, W) uint8 for grayscale, (H, W, 3) uint8 for colour; and whether an alpha channel was dropped.

    Raises _Unreadable for files that are not readable images, _Refused for images genbench will not read."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            # PIL reads 16-bit colour PNGs as 8-bit modes: only the raw mode of the file tells.
            png16 = im.format == "PNG" and any(";16" in _rawmode(t.args) for t in im.tile)
            if mode in _DEEP or mode.startswith("I;16") or png16:
                raise _Refused(
                    f"16 bits (or more) per channel (mode {mode!r}); convert it to 8 bits, round(v16 / 257)",
                    f"image {path} has 16 bits (or more) per channel (mode {mode!r}); genbench reads 8-bit images "
                    "and does not reduce the depth itself, since that changes the numbers. Convert it to 8 bits "
                    "per channel, v8 = round(v16 * 255 / 65535) = round(v16 / 257), and save it again."
                )
            if mode in ("L", "RGB"):  # as stored: no conversion, no extra copy
                im.load()
                return np.asarray(im), False
            if mode in _GRAY:
                return np.asarray(im.convert("L")), False
            if mode in _GRAY_ALPHA:
                return np.asarray(im.convert("L")), True
            if mode == "P" and _gray_palette(im):  # a grayscale image saved with a palette
                if "transparency" in im.info:  # via RGBA, as below: no PIL warning
                    return np.ascontiguousarray(np.asarray(im.convert("RGBA"))[..., 0]), True
                return np.asarray(im.convert("L")), False
            if mode == "P" and "transparency" in im.info:  # via RGBA: the same colours, no PIL warning
                return np.ascontiguousarray(np.asarray(im.convert("RGBA"))[..., :3]), True
            if mode == "P" or mode in _COLOR:
                return np.asarray(im.convert("RGB")), False
            if mode in _COLOR_ALPHA:
                return np.asarray(im.convert("RGB")), True
    except FileNotFoundError:
        raise _Unreadable("the file is gone (a broken symlink?)") from None
    except Image.UnidentifiedImageError:
        why = "empty file (0 bytes)" if os.path.getsize(path) == 0 else "not an image file (unknown or damaged header)"
        raise _Unreadable(why) from None
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise _Unreadable(str(exc) or type(exc).__name__) from None
    raise _Refused(f"the pixel mode {mode!r}, which genbench does not read; save it as 8-bit grayscale or RGB",
                   f"image {path} has the pixel mode {mode!r}, which genbench does not read. Save it as 8-bit "
                   "grayscale or RGB.")


def _gray_palette(im: Image.Image) -> bool:
    """Whether every colour of a palette image's palette (the entries its pixels can use) is a gray."""
    palette = np.asarray(im.getpalette() or [], np.uint8)
    if im.palette is None or im.palette.mode != "RGB" or not len(palette) or len(palette) % 3:
        return False
    rgb = palette.reshape(-1, 3)[: max(im.getextrema()[1] + 1, 1)]  # the entries up to the largest index used
    return bool((rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 0] == rgb[:, 2]).all())


def _rawmode(args: object) -> str:
    if isinstance(args, tuple) and args:
        args = args[0]
    return args if isinstance(args, str) else ""


def _try_decode(path: Path) -> tuple[np.ndarray, bool] | _Unreadable:
    try:
        return decode_image(path)
    except _Unreadable as exc:
        return exc


def _decode_batch(paths: Sequence[Path]) -> list[tuple[np.ndarray, bool] | _Unreadable]:
    return [_try_decode(p) for p in paths]


def _decoded_in_order(
    paths: Sequence[Path], workers: int, batch: int = 16
) -> Iterator[tuple[Path, tuple[np.ndarray, bool] | _Unreadable]]:
    """(path, decoded) in the order of `paths`, decoding batches of files ahead on `workers` threads (PIL
    releases the GIL while decoding; batches keep the per-task overhead small next to a tiny image's decode).
    Stopping early leaves at most the look-ahead decoded in vain."""
    if workers <= 1:
        for p in paths:
            yield p, _try_decode(p)
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="genbench-decode")
    batches = (paths[i : i + batch] for i in range(0, len(paths), batch))
    ahead: deque[tuple[Sequence[Path], Future]] = deque()
    try:
        for chunk in batches:
            ahead.append((chunk, pool.submit(_decode_batch, chunk)))
            if len(ahead) >= 2 * workers:
                break
        while ahead:
            chunk, fut = ahead.popleft()
            nxt = next(batches, None)
            if nxt is not None:
                ahead.append((nxt, pool.submit(_decode_batch, nxt)))
            yield from zip(chunk, fut.result(), strict=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------------------------
# Reading a folder


def default_workers() -> int:
    """One decoding thread per CPU core this process may use, at most 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(8, cores or 1)


def read_folder(
    root: Path,
    *,
    strict: bool,
    num_samples: int | None = None,
    channels: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    empty_hint: str = "",
) -> FolderImages:
    """Decode the images under `root` into uint8 (N, C, H, W) following the module's policy.

    `strict`: an unreadable file is an error (else it is skipped, and listed in `skipped` and `notes`).
    `num_samples`: stop after this many images (the first in sorted order that decode); fewer is not an error here.
    `channels`: None (1 if every image is grayscale, else 3), 3 (always RGB) or 1 (grayscale; a colour image
    is accepted only when its three channels are equal)."""
    paths, skipped, links = find_images(root)
    if strict and skipped:
        raise GenbenchError(f"{skipped[0]}. Check the folder's permissions.")
    if not paths:
        raise GenbenchError(
            f"no images in {root} (looked recursively for {', '.join(EXTENSIONS)}, in any case). "
            f"Save the images there in one of these formats{empty_hint}."
        )
    want = len(paths) if num_samples is None else min(num_samples, len(paths))
    workers = default_workers() if workers is None else workers

    buf: np.ndarray | None = None  # (want, C, H, W), filled in order
    gray_files, colour_files, flat = 0, [], True  # flat: every colour file so far has three equal channels
    refused: str | None = None  # the error of the first file refused (16-bit, ...), for a folder of only those
    kept: list[Path] = []
    alpha: list[Path] = []
    bad: list[str] = []
    with tqdm(total=want, desc=f"reading {root}", unit="img", disable=not progress) as bar:
        for path, got in _decoded_in_order(paths, workers):
            if isinstance(got, _Unreadable):
                if strict:
                    raise GenbenchError(got.error if isinstance(got, _Refused) else
                                        f"cannot read image {path}: {got}. Replace or delete the file.")
                bad.append(f"{path}: {got}")
                refused = refused or (got.error if isinstance(got, _Refused) else None)
                continue
            a, has_alpha = got  # (H, W) or (H, W, 3)
            if a.ndim == 2:
                gray_files += 1
            else:
                colour_files.append(path)
                flat &= bool((a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all())
            if buf is None:
                c = 3 if channels == 3 or (a.ndim == 3 and channels is None) else 1
                buf = np.empty((want, c, *a.shape[:2]), np.uint8)
            elif a.shape[:2] != buf.shape[2:]:
                raise _size_error(root, paths)
            if a.ndim == 3 and buf.shape[1] == 1:
                if channels == 1:
                    if not ((a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all()):
                        raise GenbenchError(
                            f"image {path} is in colour, but grayscale samples were asked for (channels=1). "
                            "Pass colour samples to a colour extractor, or convert them to grayscale yourself."
                        )
                    a = a[..., 0]
                else:  # the first colour image: everything read so far becomes RGB, gray in all three channels
                    rgb = np.empty((want, 3, *buf.shape[2:]), np.uint8)
                    rgb[: len(kept)] = buf[: len(kept)]
                    buf = rgb
            i = len(kept)
            if a.ndim == 2:
                buf[i] = a  # broadcasts over the channel axis
            else:
                buf[i] = a.transpose(2, 0, 1)
            kept.append(path)
            if has_alpha:
                alpha.append(path)
            bar.update()
            if len(kept) == want:
                break

    if not kept and refused:
        raise GenbenchError(refused if len(bad) == 1 else
                            f"none of the {len(paths)} image files under {root} could be read. For example: {refused}")
    if not kept:
        raise GenbenchError(
            f"none of the {len(paths)} image files under {root} could be read, e.g. {bad[0]}. "
            "Check that they are image files and were written completely."
        )
    notes = []
    if bad:
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        notes.append(
            f"skipped {len(bad)} unreadable image file(s) under {root}: {'; '.join(bad[:5])}{more}. "
            "Replace or delete them (strict=True / --strict makes this an error)."
        )
    if skipped:
        listed = "; ".join(skipped[:5])
        notes.append(f"skipped {len(skipped)} folder(s) under {root} that could not be listed: {listed}.")
    if links:
        notes.append(
            f"left out {len(links)} symlinked folder(s) under {root} that lead to a folder already read, so no image "
            f"is read twice: {'; '.join(links[:5])}."
        )
    assert buf is not None
    if gray_files and colour_files and channels is None:
        shown = ", ".join(str(p) for p in colour_files[:5]) + (" ..." if len(colour_files) > 5 else "")
        if flat:  # gray pictures in colour files: nothing is lost by reading them as grayscale
            buf = np.ascontiguousarray(buf[:, :1])
            notes.append(f"{len(colour_files)} of the {len(kept)} images under {root} are colour files whose three "
                         f"channels are equal ({shown}); they were read as grayscale, like the other {gray_files}.")
        else:
            notes.append(f"{len(colour_files)} of the {len(kept)} images under {root} are in colour ({shown}) and "
                         f"the other {gray_files} grayscale, so all were read as RGB (gray in all three channels). "
                         "If the samples are meant to be grayscale, save those files as grayscale.")
    if alpha:
        notes.append(
            f"{len(alpha)} image(s) in {root} have an alpha channel (e.g. {alpha[0]}); genbench dropped it and kept "
            "the colour values as they are (not composited on a background), so a fully transparent pixel counts "
            "with the colour it stores."
        )
    images = buf if len(kept) == len(buf) else buf[: len(kept)]
    return FolderImages(images, tuple(kept), len(paths), tuple(bad + skipped), tuple(notes))


def _size_error(root: Path, paths: Sequence[Path]) -> GenbenchError:
    """The error for images of several sizes, naming one file of each size (read from the headers only)."""
    sizes: dict[tuple[int, int], list[Path]] = {}
    for p in paths:
        try:
            with Image.open(p) as im:
                sizes.setdefault(im.size, []).append(p)
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
            continue
    examples = "; ".join(
        f"{ps[0]} is {w}x{h} ({len(ps)} image(s) of this size)" for (w, h), ps in list(sizes.items())[:5]
    )
    return GenbenchError(
        f"the images in {root} have {len(sizes)} different sizes: {examples}. Resize them all to one size first "
        "(the size the model generates); genbench does not resize samples."
    )


# ---------------------------------------------------------------------------------------------------------------
# The dataset spec


def load_folder(root: Path, name: str, *, progress: bool = True) -> ImageData:
    """Decode every image under `root` into uint8 (N, C, H, W), as the dataset `name` (any unreadable file is
    an error)."""
    got = read_folder(root, strict=True, progress=progress)
    for note in got.notes:
        warnings.warn(note, GenbenchWarning, stacklevel=4)  # the caller of DatasetSpec.load
    images = readonly(got.images)
    return ImageData(name, "all", images, None, content_hash(images, None), str(root.absolute()))


def folder(path: str | Path) -> DatasetSpec:
    """The images under `path` as a dataset named "folder:<path>" with the single split "all"."""
    root, name = Path(path).expanduser(), f"folder:{path}"

    def load(split: str, *, data_root: str | Path | None, download: bool, progress: bool) -> ImageData:
        return load_folder(root, name, progress=progress)

    return DatasetSpec(name, f"images under {root}", None, ("all",), None, load)
