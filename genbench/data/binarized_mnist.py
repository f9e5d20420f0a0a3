"""Binarized MNIST: the fixed binarization of MNIST by Larochelle & Murray (2011), from its `.amat` files.

Dataset: H. Larochelle and I. Murray, "The Neural Autoregressive Distribution Estimator", AISTATS 2011
(the data set NADE, MADE and PixelCNN report test NLL on): MNIST digits binarized once, stochastically (as in
Salakhutdinov & Murray 2008), then fixed, and split 50,000 train / 10,000 valid / 10,000 test.
No labels are distributed with it.

Files: `binarized_mnist_train.amat`, `binarized_mnist_valid.amat`, `binarized_mnist_test.amat`, served at
`URL` (the address that public NADE/IWAE/VAE reimplementations download from).
Format: plain text, one image per line, 784 whitespace-separated values `0` or `1`, the 28x28 pixels in
row-major order (value k is row k // 28, column k % 28). Decoded as uint8 (N, 1, 28, 28) in {0, 255}, genbench's
convention for binary images (as dSprites).

No checksums are published for these files, so none is checked. Instead the decode is strict: every line must
hold exactly 784 tokens, each `0` or `1` (anything else, e.g. `0.5` or `2`, is an error naming the file and
line), and each split must have exactly `SPLIT_SIZES[split]` lines (50,000 / 10,000 / 10,000), so a truncated
or wrong file is refused rather than silently decoded. The real files' content hashes are not pinned here
(they were not available when this was written); the tests check the parser on hand-written fake files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genbench import GenbenchError
from genbench.data.base import DatasetSpec, DatasetUnavailable, ImageData, RawFiles, cached_decode, find_raw

FORMAT_VERSION = 1
URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{split}.amat"
SPLITS = ("train", "valid", "test")
SPLIT_SIZES: dict[str, int] = {"train": 50_000, "valid": 10_000, "test": 10_000}  # lines (images) per file
SYSTEM_DIRS: tuple[Path, ...] = ()
SUBDIR = "binarized_mnist"  # where a download lands, under the download root
PIXELS = 28 * 28


def file_name(split: str) -> str:
    return f"binarized_mnist_{split}.amat"


def url(split: str) -> str:
    return URL.format(split=split)


def read_amat(path: Path, expected_lines: int | None = None) -> np.ndarray:
    """uint8 images (N, 1, 28, 28) in {0, 255} from a binarized-MNIST `.amat` file (one 784-value 0/1 line per
    image); with `expected_lines`, the file must hold exactly that many images."""
    fix = "The file is damaged or not a binarized-MNIST .amat file; delete it and download it again"
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise GenbenchError(f"cannot read {path}: {exc}. {fix}.") from None
    lines = text.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()  # the newline ending the last line
    out = np.empty((len(lines), PIXELS), np.uint8)
    for i, line in enumerate(lines):
        tokens = line.split()
        joined = b"".join(tokens)
        if len(tokens) != PIXELS:
            raise GenbenchError(
                f"{path}, line {i + 1}: expected {PIXELS} values (28x28 pixels), found {len(tokens)}. {fix}."
            )
        values = np.frombuffer(joined, np.uint8) - np.uint8(ord("0")) if len(joined) == PIXELS else None
        if values is None or values.max() > 1:
            bad = next(t for t in tokens if t not in (b"0", b"1"))
            raise GenbenchError(
                f"{path}, line {i + 1}: pixel values must be 0 or 1, found {bad.decode(errors='replace')!r}. {fix}."
            )
        out[i] = values
    if expected_lines is not None and len(out) != expected_lines:
        raise GenbenchError(
            f"{path} holds {len(out)} images, the {path.name} of binarized MNIST has {expected_lines} "
            f"(no checksums are published, so the line count is what is checked). {fix}."
        )
    return (out * np.uint8(255)).reshape(-1, 1, 28, 28)


def _fetch(root: Path) -> None:
    from torchvision.datasets.utils import download_url

    for split in SPLITS:  # download_url skips a file already there
        download_url(url(split), str(root / SUBDIR), filename=file_name(split))  # -> ROOT/binarized_mnist/


RAW = RawFiles("binarized-mnist", ("", SUBDIR), lambda split: [file_name(split)], gzip_ok=False, fetch=_fetch)


def _load(split: str, *, data_root: str | Path | None, download: bool, progress: bool) -> ImageData:
    try:
        (path,) = find_raw(RAW, split, data_root=data_root, system_dirs=SYSTEM_DIRS, download=download)
    except DatasetUnavailable as exc:
        raise DatasetUnavailable(
            f"{exc}\n  The files are served at {URL.format(split='{train,valid,test}')}, e.g. {url(split)}; "
            "no checksums are published for them."
        ) from None
    return cached_decode(
        "binarized-mnist",
        split,
        sources=[path],
        version=FORMAT_VERSION,
        decode=lambda: (read_amat(path, SPLIT_SIZES[split]), None),
    )


BINARIZED_MNIST = DatasetSpec(
    "binarized-mnist",
    "Binarized MNIST (Larochelle & Murray 2011, fixed binarization): 28x28 binary digits, no labels, "
    "50k train / 10k valid / 10k test",
    (1, 28, 28),
    SPLITS,
    None,
    _load,
)
