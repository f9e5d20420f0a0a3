"""Reading the user's generated samples for scoring: `load_samples(path) -> SampleSet`.

SAMPLES is a folder of image files, decoded by the one folder reader genbench has (`genbench.data.folder`, whose
docstring states the pixel policy), or a `.npy` / `.npz` file holding one array of images. Either way the
result is uint8 `(N, C, H, W)` with C in {1, 3} and a content hash, and every decision that could move a score
is either exact or announced: nothing is resized, clipped or silently converted, and nothing is unpickled.

Arrays
  - `.npz`: the array under the key "images", else "arr_0", else the only array in the file.
  - shape `(N, H, W)` is grayscale. A 4-D array is channel-last `(N, H, W, C)` when its last axis is 1, 3 or 4
    and its second is not; channel-first `(N, C, H, W)` when its second axis is 1, 3 or 4 and its last is not;
    anything else (both, or neither) is an error, since guessing would scramble the pixels.
  - C = 4 is RGBA: the alpha is dropped (not composited), with a warning.
  - integers are taken as pixel values and must lie in [0, 255] (cast exactly). bool is refused.
  - floats: NaN or inf anywhere is an error. Values all in [0, 1] are scaled to floor(255 * x + 0.5) (in
    float64), with a warning; otherwise every value must be a whole number in [0, 255] (cast exactly). Any other
    range is an error giving the conversion to apply.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genbench import GenbenchError, GenbenchWarning
from genbench.data.base import content_hash, readonly
from genbench.data.folder import EXTENSIONS, read_folder

SIZE_AND_CHANNEL_POLICY = (
    "SAMPLES is a folder of images (png, jpg, jpeg, webp, bmp, in any case, found recursively and read in order "
    "of their relative path) or a .npy / .npz file with one uint8 array (N, H, W), (N, H, W, C) or (N, C, H, W). "
    "All samples must have one size: genbench never resizes them. If every image is grayscale the samples keep "
    "one channel; if any is in colour, all become RGB (gray copied to the three channels), with a warning naming "
    "the colour files among grayscale ones; colour files holding gray pictures (equal channels, e.g. a CMYK JPEG) "
    "among grayscale images are read as grayscale, and a palette of grays is grayscale. Other palette images are "
    "expanded to RGB; an alpha channel is dropped, not composited (a transparent pixel counts with the colour it "
    "stores), with a warning. Unreadable files and 16-bit images (convert them to 8 bits first) are skipped and "
    "listed in a warning (an error with --strict). Float arrays are read only if every value lies in [0, 1] "
    "(scaled to floor(255x + 0.5), with a warning) or is a whole number in [0, 255]; NaN, inf and other ranges "
    "are errors."
)

_ARRAY_SUFFIXES = (".npy", ".npz")


@dataclass(frozen=True)
class SampleSet:
    """Generated samples as read from the user's files."""

    images: np.ndarray  # uint8 (N, C, H, W), C in {1, 3}; read-only
    source: str  # the path given
    files: int  # images read (= len(images))
    skipped: tuple[str, ...]  # unreadable files left out, each "path: reason"
    content_hash: str  # "sha256:...", genbench.data.base.content_hash(images, None)

    def __post_init__(self) -> None:
        x = self.images
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise GenbenchError(f"{self.source}: samples must be uint8 (N, C, H, W) with C in {{1, 3}}, got "
                                f"{x.dtype} {tuple(x.shape)}")

    def __len__(self) -> int:
        return len(self.images)


class TooFewSamples(GenbenchError):
    """Fewer samples than `num_samples` asked for. `found` says how many there are, and `samples` holds them all,
    for a caller that decides to go on with fewer."""

    def __init__(self, message: str, *, found: int, requested: int, samples: SampleSet):
        super().__init__(message)
        self.found, self.requested, self.samples = found, requested, samples


def load_samples(
    path: str | os.PathLike,
    *,
    strict: bool = False,
    num_samples: int | None = None,
    channels: int | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> SampleSet:
    """Read the samples at `path` (a folder of images, or a .npy / .npz array) as uint8 (N, C, H, W).

    strict: an unreadable image file is an error (by default it is skipped, with one warning listing them).
    num_samples: keep the first N samples in order (of relative path, or of the array); TooFewSamples (a
        GenbenchError carrying `.found` and all the samples) when there are fewer.
    channels: None keeps grayscale as one channel; 3 gives RGB always (gray copied), for extractors that need
        it; 1 gives grayscale, accepting colour images only when their three channels are equal.
    workers: decoding threads for folders (default: up to 8, one per CPU core); 1 decodes in this thread.
    """
    if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(num_samples, int)
                                    or num_samples < 1):
        raise GenbenchError(f"num_samples must be a positive whole number, got {num_samples!r}.")
    if channels not in (None, 1, 3):
        raise GenbenchError(f"channels must be None, 1 or 3, got {channels!r}.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise GenbenchError(f"workers must be a positive whole number, got {workers!r}.")

    p = Path(path).expanduser()
    if not p.exists():
        broken = " (it is a symlink whose target is gone)" if p.is_symlink() else ""
        raise GenbenchError(f"samples {p} do not exist{broken}; check the path. SAMPLES is a folder of images or "
                            "a .npy / .npz file.")
    notes: list[str] = []
    if p.is_dir():
        got = read_folder(p, strict=strict, num_samples=num_samples, channels=channels, workers=workers,
                          progress=progress, empty_hint=", or pass a .npy / .npz file holding them as one array")
        images, skipped, notes = got.images, got.skipped, list(got.notes)
        where = f"{p} holds {len(images)} readable image(s)" + (f" ({len(skipped)} skipped)" if skipped else "")
    elif p.suffix.lower() in _ARRAY_SUFFIXES:
        array, key = _load_array(p)
        images = _to_images(array, p if key is None else f"{p}[{key!r}]", num_samples, channels, notes)
        skipped, where = (), f"{p} holds {len(images)} image(s)"
    elif p.suffix.lower() in EXTENSIONS:
        raise GenbenchError(f"{p} is a single image; pass the folder that holds the samples (or a .npy / .npz "
                            "file with all of them as one array).")
    else:
        raise GenbenchError(f"{p} is neither a folder of images nor a .npy / .npz file; pass one of those.")

    for note in notes:
        warnings.warn(note, GenbenchWarning, stacklevel=2)
    if num_samples is not None and len(images) > num_samples:
        images = images[:num_samples]
    images = readonly(np.ascontiguousarray(images))
    samples = SampleSet(images, str(path), len(images), tuple(skipped), content_hash(images, None))
    if num_samples is not None and len(images) < num_samples:
        raise TooFewSamples(
            f"{num_samples} samples were asked for, but {where}. Generate more samples, or ask for "
            f"{len(images)} or fewer (--num-samples).",
            found=len(images), requested=num_samples, samples=samples,
        )
    return samples


# ---------------------------------------------------------------------------------------------------------------
# Arrays


def _load_array(path: Path) -> tuple[np.ndarray, str | None]:
    """The image array in a .npy (memory-mapped) or .npz file, and its key in the .npz. Never unpickles."""
    try:
        # np.load goes by the file's content, not its suffix, so a .npy may turn out to be an archive and back.
        loaded = np.load(path, mmap_mode="r", allow_pickle=False) if path.suffix.lower() == ".npy" else \
            np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded, None
        with loaded as z:
            key = _pick_key(path, list(z.files))
            return z[key], key
    except GenbenchError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise GenbenchError(
                f"{path} holds Python objects (an object array or a pickle), which genbench never unpickles. "
                "Save the images as one plain array, e.g. np.save(path, np.stack(images).astype(np.uint8))."
            ) from None
        raise GenbenchError(f"cannot read {path}: {exc}. Save the images again with np.save / np.savez.") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise GenbenchError(f"cannot read {path}: {exc}. Is it a complete file written by np.save / np.savez? "
                            "Save the images again.") from None


def _pick_key(path: Path, keys: list[str]) -> str:
    for key in ("images", "arr_0"):
        if key in keys:
            return key
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise GenbenchError(f"{path} holds no arrays. Save the images in it with np.savez(path, images=x).")
    stats = " It looks like Fréchet statistics, which can be a --ref but not samples." if \
        {"mu", "sigma"} <= set(keys) else ""
    raise GenbenchError(f"{path} holds the arrays {', '.join(keys)}, and genbench cannot tell which are the "
                        f"images: it reads the key 'images', else 'arr_0', else the only array. Save them under "
                        f"'images' (np.savez(path, images=x)).{stats}")


def _layout(shape: tuple[int, ...], where: object) -> str:
    """"NHW", "NHWC" or "NCHW", by the rule in the module docstring."""
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        single = " A single image? Add a leading axis: x[None]." if len(shape) == 2 else ""
        raise GenbenchError(f"{where}: the images must be an array (N, H, W), (N, H, W, C) or (N, C, H, W); got "
                            f"shape {shape}.{single}")
    first, last = shape[1] in (1, 3, 4), shape[3] in (1, 3, 4)
    if last and not first:
        return "NHWC"
    if first and not last:
        return "NCHW"
    if first and last:
        raise GenbenchError(
            f"{where}: cannot tell whether shape {shape} is (N, C, H, W) or (N, H, W, C), since both axis 1 and "
            "the last axis could hold channels (1, 3 or 4). Images this narrow are unusual: check the shape, or "
            "save the samples as a folder of PNG files."
        )
    raise GenbenchError(f"{where}: shape {shape} has no channel axis of size 1, 3 or 4, either second "
                        "(N, C, H, W) or last (N, H, W, C). Save grayscale images as (N, H, W).")


def _to_images(a: np.ndarray, where: object, num_samples: int | None, channels: int | None,
               notes: list[str]) -> np.ndarray:
    """A loaded array -> uint8 (N, C, H, W) with C in {1, 3}, following the rules in the module docstring."""
    if a.dtype.kind not in "uif":
        fix = " For binary images use x.astype(np.uint8) * 255." if a.dtype.kind == "b" else ""
        raise GenbenchError(f"{where}: the images have dtype {a.dtype}; genbench reads uint8 pixel values (0-255), "
                            f"or floats as described under SAMPLES in `genbench score --help`.{fix}")
    layout = _layout(tuple(a.shape), where)
    if len(a) == 0:
        raise GenbenchError(f"{where}: the array holds no images (shape {tuple(a.shape)}).")
    if num_samples is not None:
        a = a[:num_samples]

    if a.dtype.kind == "f":
        x = _float_to_uint8(a, where, notes)
    elif a.dtype != np.uint8:
        lo, hi = a.min(), a.max()
        if lo < 0 or hi > 255:
            raise GenbenchError(
                f"{where}: integer pixel values must lie in [0, 255], these run from {lo} to {hi}. For 16-bit "
                "pixels convert with np.round(x / 257).astype(np.uint8); genbench does not rescale on its own."
            )
        x = a.astype(np.uint8)
    else:
        x = a
    if a.dtype.kind in "ui" and x.max() <= 1:
        notes.append(f"{where}: every pixel value is 0 or 1, which reads as nearly black images. If these are "
                     "binary images, scale them to 0 and 255 first: (x * 255).astype(np.uint8).")

    if layout == "NHW":
        x = x[:, None]
    elif layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)  # (N, C, H, W)
    if x.shape[1] == 4:
        notes.append(f"{where}: the images are RGBA; genbench dropped the alpha channel and kept the colour values "
                     "as they are (not composited on a background), so a fully transparent pixel counts with the "
                     "colour it stores.")
        x = x[:, :3]
    if channels == 3 and x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    elif channels == 1 and x.shape[1] == 3:
        if not ((x[:, 0] == x[:, 1]).all() and (x[:, 0] == x[:, 2]).all()):
            raise GenbenchError(f"{where}: the images are in colour, but grayscale samples were asked for "
                                "(channels=1). Pass colour samples to a colour extractor, or convert them yourself.")
        x = x[:, :1]
    return x


def _float_to_uint8(a: np.ndarray, where: object, notes: list[str]) -> np.ndarray:
    bad = ~np.isfinite(a)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise GenbenchError(
            f"{where}: {int(bad.sum())} value(s) are NaN or infinite, the first at index {first} of shape "
            f"{tuple(a.shape)}. Samples must be finite pixel values: find out why the model produced these "
            "(a diverged run?) and fix or drop those samples."
        )
    del bad
    lo, hi = float(a.min()), float(a.max())
    out = np.empty(a.shape, np.uint8)
    step = max(1, (16 << 20) // max(1, a[:1].size * 8))  # images per float64 chunk of ~16 MiB
    if lo >= 0.0 and hi <= 1.0:
        for i in range(0, len(a), step):
            out[i : i + step] = np.floor(a[i : i + step].astype(np.float64) * 255.0 + 0.5)
        notes.append(
            f"{where}: float samples in [0, 1] were converted to uint8 as floor(255 * x + 0.5). To score the same "
            "numbers without this warning, save np.floor(x * 255 + 0.5).astype(np.uint8)."
        )
        return out
    if lo >= 0.0 and hi <= 255.0 and all(np.array_equal(c, np.floor(c)) for c in _chunks(a, step)):
        for i in range(0, len(a), step):
            out[i : i + step] = a[i : i + step]
        return out
    why = " and are not all whole numbers" if lo >= 0.0 and hi <= 255.0 else ""
    raise GenbenchError(
        f"{where}: float pixel values must be in [0, 1], or whole numbers in [0, 255]; these run from {lo:g} to "
        f"{hi:g}{why}. genbench does not guess the range or clip. Convert them yourself, e.g. from "
        "[-1, 1]: np.floor((x + 1) * 127.5 + 0.5).astype(np.uint8), or from [0, 255]: "
        "np.floor(x + 0.5).astype(np.uint8), after checking the range."
    )


def _chunks(a: np.ndarray, step: int):
    for i in range(0, len(a), step):
        yield a[i : i + step]
