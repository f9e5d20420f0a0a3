"""The dataset record, the lookup of raw files, and the on-disk cache of decoded arrays.

Every dataset reaches the rest of genbench as an `ImageData`: uint8 images `(N, C, H, W)`, optional labels,
and a content hash of the decoded arrays (so a result names exactly the data it was computed on, whatever the
file compression or the place it came from).

Raw files are looked up in this order: the `data_root` argument (else `$GENBENCH_DATA`), known system
locations, genbench's own download folder; then, when allowed, torchvision downloads them. Decoded arrays are
cached as `.npy` under `cache_dir()/data/<name>/` and memory-mapped on later loads; a JSON beside them holds the
content hash and the fingerprint (path, size, mtime) of the raw files it was decoded from.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.error import URLError

import numpy as np
from tqdm import tqdm

from genbench import GenbenchError, GenbenchWarning
from genbench.files import atomic_write

T = TypeVar("T")
R = TypeVar("R")


class DatasetUnavailable(GenbenchError):
    """The raw files of a dataset were not found and could not be downloaded."""


@dataclass(frozen=True)
class ImageData:
    """One split of a dataset, decoded: uint8 images `(N, C, H, W)` and optional labels."""

    dataset: str
    split: str
    images: np.ndarray  # uint8 (N, C, H, W), C in {1, 3}; read-only (often a np.memmap)
    labels: np.ndarray | None  # int64 (N,) classes, (N, F) binary attributes or (N, F) factor classes
    content_hash: str  # "sha256:<hex>", see `content_hash()`
    source: str  # where the raw data was found

    def __post_init__(self) -> None:
        x = self.images
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise GenbenchError(
                f"{self.dataset}:{self.split}: images must be uint8 (N, C, H, W) with C in {{1, 3}}, "
                f"got {x.dtype} {tuple(x.shape)}"
            )
        if self.labels is not None and len(self.labels) != len(x):
            raise GenbenchError(f"{self.dataset}:{self.split}: {len(self.labels)} labels for {len(x)} images")

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: what it holds, and `load(split)` to get it as `ImageData`."""

    name: str
    description: str
    shape: tuple[int, int, int] | None  # (C, H, W); None when only loading tells (folder)
    splits: tuple[str, ...]
    label_kind: str | None  # "class" | "attributes" | "factors" | None
    loader: Callable[..., ImageData] = field(repr=False, compare=False)  # (split, *, data_root, download, progress)

    def load(
        self,
        split: str,
        *,
        data_root: str | Path | None = None,
        download: bool = True,
        progress: bool = True,
    ) -> ImageData:
        """Decode one split (from the cache when the raw files are unchanged)."""
        if split not in self.splits:
            raise GenbenchError(
                f"dataset {self.name!r} has no split {split!r}; its splits are: {', '.join(self.splits)}"
            )
        return self.loader(split, data_root=data_root, download=download, progress=progress)


def cache_dir() -> Path:
    """genbench's cache folder: `$GENBENCH_CACHE`, else `~/.cache/genbench`."""
    env = os.environ.get("GENBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "genbench"


# ---------------------------------------------------------------------------------------------------------------
# Content hash


def content_hash(images: np.ndarray, labels: np.ndarray | None) -> str:
    """sha256 over the decoded arrays: for images then labels, a header line `"<role> <dtype.str> <shape>\\n"`
    (e.g. `"images |u1 60000,1,28,28\\n"`, or `"labels none\\n"`) followed by the C-order bytes."""
    h = hashlib.sha256()
    for role, a in (("images", images), ("labels", labels)):
        if a is None:
            h.update(f"{role} none\n".encode())
            continue
        h.update(f"{role} {a.dtype.str} {','.join(map(str, a.shape))}\n".encode())
        step = max(1, (16 << 20) // max(1, a[:1].nbytes))  # rows per update, ~16 MiB
        for i in range(0, len(a), step):
            h.update(np.ascontiguousarray(a[i : i + step]).data)
    return "sha256:" + h.hexdigest()


def readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


# ---------------------------------------------------------------------------------------------------------------
# Finding raw files


@dataclass(frozen=True)
class RawFiles:
    """Where the raw files of a downloadable dataset may lie, and how to fetch them."""

    dataset: str
    subdirs: tuple[str, ...]  # tried under every root: "" and e.g. torchvision's "FashionMNIST/raw"
    names: Callable[[str], list[str]]  # split -> the file (or folder) names it needs
    gzip_ok: bool  # whether "<name>.gz" is accepted for a file
    fetch: Callable[[Path], None]  # download into a root, leaving the files in one of `subdirs`

    def pick(self, folder: Path, split: str) -> list[Path] | None:
        """The files of `split` in `folder`, in the order of `names(split)`; None unless all are there."""
        found = []
        for name in self.names(split):
            options = [folder / name] + ([folder / f"{name}.gz"] if self.gzip_ok else [])
            hit = next((p for p in options if p.exists()), None)
            if hit is None:
                return None
            found.append(hit)
        return found


def user_root(data_root: str | Path | None) -> Path | None:
    """The folder the user named: the `data_root` argument, else `$GENBENCH_DATA`."""
    if data_root is not None:
        return Path(data_root).expanduser()
    env = os.environ.get("GENBENCH_DATA")
    return Path(env).expanduser() if env else None


def find_raw(
    raw: RawFiles,
    split: str,
    *,
    data_root: str | Path | None,
    system_dirs: Sequence[Path],
    download: bool,
) -> list[Path]:
    """The raw files of `split`, found (in the order described in the module docstring) or downloaded.

    Raises DatasetUnavailable listing every folder searched and both ways to fix it."""
    mine = user_root(data_root)
    downloads = cache_dir() / "downloads"
    target = mine if mine is not None else downloads
    roots = list(dict.fromkeys([*([mine] if mine is not None else []), *system_dirs, downloads]))
    searched = [root / sub if sub else root for root in roots for sub in raw.subdirs]
    for folder in searched:
        if (files := raw.pick(folder, split)) is not None:
            return files

    why = "downloading is off (--offline, or download=False)."
    if download:
        try:
            raw.fetch(target)
        except (URLError, OSError, RuntimeError) as exc:  # no network fails fast with URLError/OSError
            reason = str(exc).strip().rstrip(".").replace("\n", "\n    ")
            why = f"downloading into {target} failed:\n    {reason}"
        else:
            for sub in raw.subdirs:
                if (files := raw.pick(target / sub if sub else target, split)) is not None:
                    return files
            why = f"the download into {target} finished but did not leave the expected files."

    suffix = " (or gzipped, *.gz)" if raw.gzip_ok else ""
    places = "\n".join(f"    {p}" for p in searched)
    raise DatasetUnavailable(
        f"dataset {raw.dataset!r} (split {split!r}) was not found, and {why}\n"
        f"  Looked for {', '.join(raw.names(split))}{suffix} in:\n{places}\n"
        "  To fix it, either\n"
        "    (a) put these files in one of the folders above, or in a folder of your own and pass\n"
        "        --data-root DIR (Python: data_root=DIR) or set GENBENCH_DATA=DIR; or\n"
        f"    (b) run once with internet access (without --offline), so genbench downloads them into {target}."
    )


# ---------------------------------------------------------------------------------------------------------------
# Cache of decoded arrays


def _fingerprint(paths: Iterable[Path]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        st = p.stat()
        out.append({"path": str(p.absolute()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def cached_decode(
    name: str,
    split: str,
    *,
    sources: list[Path],
    version: int,
    decode: Callable[[], tuple[np.ndarray, np.ndarray | None]],
) -> ImageData:
    """`decode()` the raw files `sources` of one split, or memory-map the arrays cached from an earlier decode
    of the same files (same paths, sizes and mtimes) with the same decode-format `version`."""
    folder = cache_dir() / "data" / name
    meta_path = folder / f"{split}.json"
    img_path, lbl_path = folder / f"{split}-images.npy", folder / f"{split}-labels.npy"
    stamp = {"format": version, "sources": _fingerprint(sources)}
    source = str(sources[0].parent.absolute())

    try:
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in stamp} == stamp:
            return _open_cached(name, split, img_path, lbl_path if meta["labels"] else None, meta)
    except (OSError, ValueError, KeyError):
        pass  # no cache yet, or a stale/damaged one: decode again

    images, labels = decode()
    meta = {**stamp, "content_hash": content_hash(images, labels), "source": source, "labels": labels is not None}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(img_path, lambda f: np.save(f, images))
        if labels is not None:
            atomic_write(lbl_path, lambda f: np.save(f, labels))
        atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=1).encode()))  # last: commits the entry
    except OSError as exc:
        warnings.warn(
            f"could not write the decoded {name}:{split} to the cache {folder} ({exc}); it will be decoded "
            "again next time. Set GENBENCH_CACHE to a writable folder to fix this.",
            GenbenchWarning,
            stacklevel=4,  # the caller of DatasetSpec.load
        )
        labels = None if labels is None else readonly(labels)
        return ImageData(name, split, readonly(images), labels, meta["content_hash"], source)
    # Hand back the memory-mapped copy, as later loads will.
    return _open_cached(name, split, img_path, lbl_path if meta["labels"] else None, meta)


def _open_cached(name: str, split: str, img_path: Path, lbl_path: Path | None, meta: dict[str, Any]) -> ImageData:
    images = np.load(img_path, mmap_mode="r")
    labels = None if lbl_path is None else np.load(lbl_path, mmap_mode="r")
    return ImageData(name, split, images, labels, meta["content_hash"], meta["source"])


# ---------------------------------------------------------------------------------------------------------------
# Decoding many image files


def map_images(fn: Callable[[T], R], items: Sequence[T], *, progress: bool, desc: str) -> list[R]:
    """`[fn(x) for x in items]` on a few threads (PIL releases the GIL while decoding), with a progress bar."""
    pool = ThreadPoolExecutor(min(8, os.cpu_count() or 1))
    try:
        with tqdm(total=len(items), desc=desc, unit="img", disable=not progress) as bar:
            out = []
            for r in pool.map(fn, items):
                out.append(r)
                bar.update()
            return out
    finally:
        pool.shutdown(cancel_futures=True)  # after an error, do not decode the rest
