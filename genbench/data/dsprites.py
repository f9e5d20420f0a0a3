"""dSprites: 64x64 binary sprites from five ground-truth factors, from the official file or rendered exactly.

Dataset: Matthey, Higgins, Hassabis & Lerchner, "dSprites: Disentanglement testing Sprites dataset" (2017),
https://github.com/google-deepmind/dsprites-dataset. Every combination of shape (square, ellipse, heart),
scale (6), orientation (40), posX (32) and posY (32) appears once: 737,280 images. The official file lists them
with posY varying fastest: index = classes . (245760, 40960, 1024, 32, 1) (its constant colour factor dropped).

Official file `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`: read with `np.load(allow_pickle=False)`,
touching only `imgs` (uint8 {0,1}), `latents_classes` and `latents_values`; its `metadata` entry is a Python-2
pickle and is never read. Checked on load: shapes, values in {0,1}, and classes and values equal to the
formula above and `FACTOR_VALUES`.

Without the official file, genbench renders the images itself. The dataset's author drew them with LÖVE
(Love2D; dsprites-dataset issue #2): vector shapes on a normalised canvas, filled as polygons by the GPU
(pixel-centre sampling, no anti-aliasing). genbench models exactly that, with every length measured on real
official frames (shared/data/dsprites-sample: 12 frames of the official file, and all 320 frames of the official
animation, whose latents follow from its sweep order). In pixels at scale 1, y down:
- the sprite centre is at (16 + 32 posX, 16 + 32 posY), pixel (row r, column c) is sampled at (c + 0.5, r + 0.5);
  a sprite turns counter-clockwise on screen by its orientation about its centre and shrinks with its scale;
- square: side 19.2 (0.3 of the canvas), as LÖVE's rectangle;
- ellipse: LÖVE's ellipse is a polygon; here 100 vertices (12.7668 cos p, 7.2168 sin p), p = 2 pi k / 100
  (long axis along x at orientation 0; vertex count and radii fitted);
- heart: the polygon through 150 points t = 2 pi k / 150 of the classic parametric heart
  x = 16 sin^3 t, y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t, drawn lobes up at 0.6 x across (19.2 wide, like
  the square) and 0.6622 y down, the curve's origin 1.44 above the centre (vertex count and factors fitted);
- the rasterizer snaps vertices to 1/256 px (8 sub-pixel bits, as GPUs do; two square frames need it). A pixel
  centre exactly on an edge (some 4,000 images have one) is drawn by the top-left rule; no checked frame has
  one, and for horizontal edges (only in the 128 squares at scale 0.6, orientation 0 or 39, posY 8 or 23; 11-12
  pixels each) whether the rasterizer counted them as top or bottom edges is a guess.
All 332 frames checked are reproduced pixel for pixel (`MAX_DIFF_PIXELS` = 0). The fitted lengths are pinned to
about 1e-3 px by those frames, so other images may still differ in a rare pixel whose centre lies that close to
an outline. The tests pin the agreement, the centres, the factor order and the official `latents_values`.

Splits: `train` is all 737,280 images (the literature trains and scores on the full set; there is no held-out
split). `subset` is a fixed uniform sample of 16,384 of them (`subset_indices`), for smoke tests: rendered on its
own in about a second, so a smoke run never builds the 3 GB full set.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from genbench import GenbenchError, GenbenchWarning
from genbench.data.base import (
    DatasetSpec,
    DatasetUnavailable,
    ImageData,
    RawFiles,
    _fingerprint,
    _open_cached,
    cache_dir,
    content_hash,
    find_raw,
    readonly,
)
from genbench.files import atomic_write

# ---------------------------------------------------------------------------------------------------------------
# Factors

FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")  # the official colour factor is constant
FACTOR_SIZES = (3, 6, 40, 32, 32)
# Bit for bit the official `latents_values` (checked on real rows): orientation 2 pi k / 39, position i / 31.
FACTOR_VALUES: dict[str, np.ndarray] = {
    "shape": np.array([1.0, 2.0, 3.0]),  # 1 square, 2 ellipse, 3 heart
    "scale": np.linspace(0.5, 1.0, 6),
    "orientation": 2 * np.pi * np.arange(40) / 39,  # radians; 0 and 2 pi both present, rendered alike
    "pos_x": np.arange(32) / 31,
    "pos_y": np.arange(32) / 31,
}
for _v in FACTOR_VALUES.values():
    _v.flags.writeable = False
NUM_IMAGES = 737_280
_BASES = np.array([245760, 40960, 1024, 32, 1], np.int64)  # index = classes . _BASES (posY fastest)

SQUARE, ELLIPSE, HEART = 0, 1, 2  # shape classes


def _check_factors(factors: np.ndarray) -> np.ndarray:
    f = np.asarray(factors)
    if f.ndim != 2 or f.shape[1] != len(FACTOR_SIZES) or not np.issubdtype(f.dtype, np.integer):
        raise GenbenchError(
            f"dSprites factors must be an integer array (n, {len(FACTOR_SIZES)}) of classes for "
            f"{', '.join(FACTOR_NAMES)}; got {f.dtype} {f.shape}"
        )
    f = f.astype(np.int64)
    bad = (f < 0) | (f >= np.array(FACTOR_SIZES))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise GenbenchError(
            f"dSprites factor {FACTOR_NAMES[col]!r} must lie in 0..{FACTOR_SIZES[col] - 1}, "
            f"got {f[row, col]} in row {row}"
        )
    return f


def factors_to_index(factors: np.ndarray) -> np.ndarray:
    """int64 (n, 5) factor classes -> int64 (n,) indices into the official file."""
    return _check_factors(factors) @ _BASES


def index_to_factors(index: np.ndarray) -> np.ndarray:
    """int64 (n,) indices into the official file -> int64 (n, 5) factor classes (inverse of factors_to_index)."""
    index = np.asarray(index)
    if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
        raise GenbenchError(f"dSprites indices must be an integer array (n,), got {index.dtype} {index.shape}")
    index = index.astype(np.int64)
    if index.size and (index.min() < 0 or index.max() >= NUM_IMAGES):
        raise GenbenchError(f"dSprites indices must lie in 0..{NUM_IMAGES - 1}, got {index.min()}..{index.max()}")
    return (index[:, None] // _BASES) % np.array(FACTOR_SIZES, np.int64)


# ---------------------------------------------------------------------------------------------------------------
# Procedural rendering (geometry: module docstring; lengths in pixels at scale 1, y down)

GENERATOR = "genbench dsprites generator v1"
GENERATOR_VERSION = 1  # bump on any change that can move a pixel
MAX_DIFF_PIXELS = 0  # most pixels differing from an official frame, over the 332 checked (tests pin it)
CHECKED_FRAMES = 332
SIZE = 64
SUBPIXEL = 256  # the GPU rasterizer snaps vertices to 1/256 px (8 sub-pixel bits)
SQUARE_HALF = 9.6  # half the side
ELLIPSE_POINTS, ELLIPSE_A, ELLIPSE_B = 100, 12.7668, 7.2168  # vertices on the ellipse x = A cos p, y = B sin p
HEART_POINTS, HEART_SX, HEART_SY, HEART_DY = 150, 0.6, 0.6622, -1.44


class _StarPolygon:
    """A polygon star-shaped about `centre` (every ray from it crosses the outline once), its vertices sorted by
    angle about the centre, one repeated at each end so every angle in [-pi, pi] falls between two of them.
    A point is then inside exactly when it lies on the inner side of the one edge its own angle falls on."""

    def __init__(self, x: np.ndarray, y: np.ndarray, centre: tuple[float, float] = (0.0, 0.0)):
        angle = np.arctan2(y - centre[1], x - centre[0])
        turns = np.diff(np.unwrap(np.concatenate([angle, angle[:1]])))
        if not (np.all(turns > 0) or np.all(turns < 0)):
            raise AssertionError("the outline must wind monotonically about its centre")
        order = np.argsort(angle)
        x, y, angle = x[order], y[order], angle[order]
        self.x, self.y = np.concatenate([x[-1:], x, x[:1]]), np.concatenate([y[-1:], y, y[:1]])
        self.angle = np.concatenate([angle[-1:] - 2 * np.pi, angle, angle[:1] + 2 * np.pi])
        self.centre = centre


def _outlines() -> tuple[_StarPolygon, _StarPolygon, _StarPolygon]:
    h = SQUARE_HALF
    square = _StarPolygon(np.array([-h, h, h, -h]), np.array([-h, -h, h, h]))
    p = 2 * np.pi * np.arange(ELLIPSE_POINTS) / ELLIPSE_POINTS
    ellipse = _StarPolygon(ELLIPSE_A * np.cos(p), ELLIPSE_B * np.sin(p))
    t = 2 * np.pi * np.arange(HEART_POINTS) / HEART_POINTS
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)  # lobes at y > 0
    heart = _StarPolygon(HEART_SX * x, -HEART_SY * y + HEART_DY, centre=(0.0, HEART_DY))  # lobes up on screen
    return square, ellipse, heart


_OUTLINES = _outlines()  # by shape class: square, ellipse, heart
# Every outline lies within _REACH px of the sprite centre, so a window of _WINDOW px around it holds the sprite.
_REACH = max(float(np.hypot(o.x, o.y).max()) for o in _OUTLINES)
_WINDOW = 30
assert _REACH < _WINDOW / 2 - 1, _REACH


def _inside(outline: _StarPolygon, u: np.ndarray, v: np.ndarray, X: np.ndarray, Y: np.ndarray, pose) -> np.ndarray:
    """Which pixel centres (X, Y) (screen; (m, 1, W) and (m, W, 1)) `outline` covers when drawn at `pose`
    (centre x, centre y, cos, sin, scale; (m, 1, 1) each). (u, v) (m, W, W): the same points in the outline's frame."""
    cx, cy, cos, sin, scale = (a[:, 0] for a in pose)  # (m, 1)
    # The outline's vertices on screen, snapped to the rasterizer's sub-pixel grid: (m, K + 2).
    vx = np.round((cx + scale * (outline.x * cos + outline.y * sin)) * SUBPIXEL) / SUBPIXEL
    vy = np.round((cy + scale * (outline.y * cos - outline.x * sin)) * SUBPIXEL) / SUBPIXEL
    # The edge (k, k + 1) facing each pixel, found by the pixel's angle about the outline's centre.
    angle = np.arctan2(v - outline.centre[1], u - outline.centre[0])
    k = np.clip(np.searchsorted(outline.angle, angle) - 1, 0, len(outline.angle) - 2)  # (m, W, W)
    i = np.arange(len(k))[:, None, None]
    ax, ay, bx, by = vx[i, k], vy[i, k], vx[i, k + 1], vy[i, k + 1]
    dx, dy = bx - ax, by - ay
    # Inside lies where (b - a) x (p - a) > 0. On the snapped grid this is exact in float64, and a pixel centre
    # exactly on an edge follows the top-left rule: drawn for a top edge (horizontal, inside below) or a left one.
    cross = dx * (Y - ay) - dy * (X - ax)
    return (cross > 0) | ((cross == 0) & ((dy < 0) | ((dy == 0) & (dx > 0))))


def _render(factors: np.ndarray) -> np.ndarray:
    """uint8 (n, 64, 64) in {0, 255} for checked factor classes (n, 5)."""
    return _render_values(factors[:, 0], FACTOR_VALUES["scale"][factors[:, 1]],
                          FACTOR_VALUES["orientation"][factors[:, 2]], FACTOR_VALUES["pos_x"][factors[:, 3]],
                          FACTOR_VALUES["pos_y"][factors[:, 4]])


def _render_values(shape: np.ndarray, scale: np.ndarray, theta: np.ndarray, pos_x: np.ndarray,
                   pos_y: np.ndarray) -> np.ndarray:
    """uint8 (n, 64, 64) in {0, 255}: shape classes (n,) drawn at factor values (n,) each (scale, orientation in
    radians, positions on [0, 1]), which need not lie on the dataset's grid."""
    n = len(shape)
    scale = np.asarray(scale, np.float64)[:, None, None]  # (n, 1, 1)
    theta = np.asarray(theta, np.float64)[:, None, None]
    cx = 16 + 32 * np.asarray(pos_x, np.float64)[:, None, None]  # sprite centre on screen
    cy = 16 + 32 * np.asarray(pos_y, np.float64)[:, None, None]
    # Render a _WINDOW-pixel square around each centre; everything outside it is background.
    c0 = np.round(cx).astype(np.int64) - _WINDOW // 2  # (n, 1, 1) first column / row
    r0 = np.round(cy).astype(np.int64) - _WINDOW // 2
    w = np.arange(_WINDOW)
    X = c0 + w[None, None, :] + 0.5  # (n, 1, W) pixel centres on screen
    Y = r0 + w[None, :, None] + 0.5  # (n, W, 1)
    cos, sin = np.cos(theta), np.sin(theta)
    # Undo the counter-clockwise turn on screen (y down), then the scale: the outline's frame.
    u = ((X - cx) * cos - (Y - cy) * sin) / scale  # (n, W, W)
    v = ((X - cx) * sin + (Y - cy) * cos) / scale
    inside = np.zeros((n, _WINDOW, _WINDOW), bool)
    for cls, outline in enumerate(_OUTLINES):
        s = shape == cls
        if s.any():
            inside[s] = _inside(outline, u[s], v[s], X[s], Y[s], (cx[s], cy[s], cos[s], sin[s], scale[s]))
    out = np.zeros((n, SIZE, SIZE), np.uint8)
    out[np.arange(n)[:, None, None], r0 + w[:, None], c0 + w] = inside * np.uint8(255)
    return out


def render(shape: np.ndarray, scale: np.ndarray, orientation: np.ndarray, pos_x: np.ndarray, pos_y: np.ndarray,
           *, chunk: int = 2048) -> np.ndarray:
    """Render sprites at any factor values, on the dataset's grid or off it (an orientation turned by a quarter,
    as translation targets need): shape classes int (n,) in 0..2, scale, orientation (radians) and positions
    float (n,) -> uint8 (n, 1, 64, 64) in {0, 255}. On grid values it is images_from_factors, pixel for pixel."""
    shape = np.asarray(shape)
    values = [np.broadcast_to(np.asarray(v, np.float64), shape.shape) for v in (scale, orientation, pos_x, pos_y)]
    if shape.ndim != 1 or not np.issubdtype(shape.dtype, np.integer) or (shape.size and (shape.min() < 0 or
                                                                                           shape.max() > 2)):
        raise GenbenchError(f"dSprites shapes must be integer classes (n,) in 0..2, got {shape.dtype} {shape.shape}")
    scale, _, pos_x, pos_y = values
    if not (np.isfinite(values[1]).all() and ((scale > 0) & (scale <= 1)).all()
            and all(((p >= 0) & (p <= 1)).all() for p in (pos_x, pos_y))):
        raise GenbenchError("dSprites factor values must be finite, scale in (0, 1], positions in [0, 1] (the sprite "
                            "stays on the 64x64 canvas)")
    out = np.zeros((len(shape), 1, SIZE, SIZE), np.uint8)
    for i in range(0, len(shape), chunk):
        out[i : i + chunk, 0] = _render_values(shape[i : i + chunk], *(v[i : i + chunk] for v in values))
    return out


def images_from_factors(factors: np.ndarray, *, chunk: int = 2048) -> np.ndarray:
    """Render dSprites images procedurally: int (n, 5) factor classes -> uint8 (n, 1, 64, 64) in {0, 255}."""
    factors = _check_factors(factors)
    out = np.zeros((len(factors), 1, SIZE, SIZE), np.uint8)
    for i in range(0, len(factors), chunk):
        out[i : i + chunk, 0] = _render(factors[i : i + chunk])
    return out


# ---------------------------------------------------------------------------------------------------------------
# Ground-truth factor space for the disentanglement metrics


class DSpritesFactors:
    """dSprites' factor space: draw factor classes, and get the images they index.

    `images` is the full (737280, 1, 64, 64) array (e.g. `DSPRITES.load("train").images`); without it the
    images are rendered procedurally on demand."""

    factor_names: tuple[str, ...] = FACTOR_NAMES
    factor_sizes: tuple[int, ...] = FACTOR_SIZES

    def __init__(self, images: np.ndarray | None = None):
        if images is not None and (images.shape != (NUM_IMAGES, 1, SIZE, SIZE) or images.dtype != np.uint8):
            raise GenbenchError(
                f"DSpritesFactors needs all dSprites images, uint8 ({NUM_IMAGES}, 1, {SIZE}, {SIZE}) in the "
                f"official order; got {images.dtype} {images.shape}. Pass DSPRITES.load('train').images."
            )
        self.images = images

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        """int64 (n, 5): one `random_state.randint(size, size=n)` per factor, in order, as
        google-research/disentanglement_lib draws them, so a seed reproduces its samples."""
        return np.stack([random_state.randint(size, size=n) for size in self.factor_sizes], axis=1).astype(np.int64)

    def observations(self, factors: np.ndarray) -> np.ndarray:
        """uint8 (n, 1, 64, 64) in {0, 255}: the images of the given factor classes."""
        if self.images is None:
            return images_from_factors(factors)
        return np.asarray(self.images[factors_to_index(factors)])


# ---------------------------------------------------------------------------------------------------------------
# Loading: the official file (found or downloaded), else the procedural rendering; cached memory-mapped

FORMAT_VERSION = 1
FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
URL = f"https://github.com/google-deepmind/dsprites-dataset/raw/master/{FILE}"
SYSTEM_DIRS: tuple[Path, ...] = ()
_CHUNK = 8192  # images per step when decoding or rendering the full set (~32 MiB of output)


def _fetch(root: Path) -> None:
    from torchvision.datasets.utils import download_url

    download_url(URL, str(root), filename=FILE)  # -> ROOT/FILE


RAW = RawFiles("dsprites", ("", "dsprites", "dsprites-dataset"), lambda split: [FILE], gzip_ok=False, fetch=_fetch)


def _fill_official(path: Path, out: np.ndarray, progress: bool) -> None:
    """Decode the official file into `out` (uint8 (N, 1, 64, 64)), checking it against the factor formula."""
    n = len(out)
    fix = f"Delete it and download it again from {URL}."
    try:
        with np.load(path, allow_pickle=False) as z:  # `metadata` (a pickle) is never touched
            missing = {"imgs", "latents_classes", "latents_values"} - set(z.files)
            if missing:
                raise GenbenchError(f"{path} is not the official dSprites file: it has no {sorted(missing)}. {fix}")
            classes, values = z["latents_classes"], z["latents_values"]
            imgs = z["imgs"]  # a compressed member decompresses whole: 3 GB in memory while decoding
    except (OSError, ValueError, EOFError) as exc:
        raise GenbenchError(f"cannot read {path}: {exc}. {fix}") from None
    if imgs.shape != (n, SIZE, SIZE) or classes.shape != (n, 6) or values.shape != (n, 6):
        raise GenbenchError(
            f"{path}: expected imgs ({n}, {SIZE}, {SIZE}), latents_classes and latents_values ({n}, 6); got "
            f"{imgs.shape}, {classes.shape}, {values.shape}. {fix}"
        )
    want = index_to_factors(np.arange(n))
    if (classes[:, 0] != 0).any() or not np.array_equal(classes[:, 1:], want):
        raise GenbenchError(f"{path}: latents_classes are not in the official order (posY fastest). {fix}")
    want_values = np.stack([FACTOR_VALUES[name][want[:, j]] for j, name in enumerate(FACTOR_NAMES)], axis=1)
    if not np.allclose(values[:, 1:], want_values, rtol=0, atol=1e-9):
        raise GenbenchError(f"{path}: latents_values differ from the official factor values. {fix}")
    with tqdm(total=n, desc="decoding dsprites", unit="img", unit_scale=True, disable=not progress) as bar:
        for i in range(0, n, _CHUNK):
            block = imgs[i : i + _CHUNK]
            if block.max(initial=0) > 1:
                raise GenbenchError(f"{path}: imgs must hold 0/1 pixels, found {block.max()}. {fix}")
            out[i : i + _CHUNK, 0] = block * np.uint8(255)
            bar.update(len(block))


def _fill_procedural(out: np.ndarray, progress: bool) -> None:
    n = len(out)
    with tqdm(total=n, desc="rendering dsprites", unit="img", unit_scale=True, disable=not progress) as bar:
        for i in range(0, n, _CHUNK):  # about a minute for all 737,280 on one core
            out[i : i + _CHUNK] = images_from_factors(index_to_factors(np.arange(i, min(n, i + _CHUNK))))
            bar.update(min(n, i + _CHUNK) - i)


def _cached(split: str, stamp: dict, source: str, fill, progress: bool) -> ImageData:
    """The arrays of `split`, from the cache when its JSON matches `stamp`; else `fill(images, progress)` writes
    the images straight into a memory-mapped .npy (3 GB for the full set), committed atomically."""
    folder = cache_dir() / "data" / "dsprites"
    meta_path = folder / f"{split}.json"
    img_path, lbl_path = folder / f"{split}-images.npy", folder / f"{split}-labels.npy"
    try:
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in stamp} == stamp:
            return _open_cached("dsprites", split, img_path, lbl_path, meta)
    except (OSError, ValueError, KeyError):
        pass  # no cache yet, or a stale/damaged one

    n = NUM_IMAGES
    labels = index_to_factors(np.arange(n))
    tmp = folder / f".{split}-images.npy.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 1, SIZE, SIZE))
    except OSError as exc:
        warnings.warn(
            f"could not write dsprites:{split} to the cache {folder} ({exc}); it is held in memory and will be "
            "built again next time. Set GENBENCH_CACHE to a writable folder to fix this.",
            GenbenchWarning,
            stacklevel=4,  # the caller of DatasetSpec.load
        )
        images = np.zeros((n, 1, SIZE, SIZE), np.uint8)
        fill(images, progress)
        return ImageData("dsprites", split, readonly(images), readonly(labels), content_hash(images, labels), source)
    try:
        fill(images, progress)
        images.flush()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        meta = {**stamp, "content_hash": content_hash(images, labels), "source": source, "labels": True}
        del images
        os.replace(tmp, img_path)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write(lbl_path, lambda f: np.save(f, labels))
    atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=1).encode()))  # last: commits the entry
    return _open_cached("dsprites", split, img_path, lbl_path, meta)


def _fallback_note(exc: DatasetUnavailable) -> str:
    return (
        f"{exc}\n"
        f"  Using genbench's procedural rendering of dSprites instead ({GENERATOR}): the same factors, labels and "
        f"order, with images drawn from the geometry measured on official frames. It reproduces all "
        f"{CHECKED_FRAMES} official frames checked pixel for pixel (at most {MAX_DIFF_PIXELS} differing pixels "
        "per image); other images may differ in a rare pixel whose centre lies within ~0.001 px of an outline. "
        "Its content hash differs from the official data's. To use the official images instead, put "
        f"{FILE} (from {URL}) in one of the folders above, or pass data_root / set GENBENCH_DATA to its folder."
    )


SUBSET_SIZE = 16_384  # images of the `subset` split
SUBSET_SEED = 0


def subset_indices() -> np.ndarray:
    """The `subset` split: SUBSET_SIZE indices of the full set, drawn without replacement by
    RandomState(SUBSET_SEED), in increasing order. int64 (SUBSET_SIZE,)."""
    rs = np.random.RandomState(SUBSET_SEED)
    return np.sort(rs.choice(NUM_IMAGES, SUBSET_SIZE, replace=False)).astype(np.int64)


def _load_subset(*, data_root: str | Path | None, download: bool, progress: bool) -> ImageData:
    """The `subset` split, for smoke tests and quick looks: a fixed uniform sample of the full set. From the
    official images where the official file is found (decoding the full set once, then cached), else rendered
    on its own (about a second) without touching the full set."""
    index = subset_indices()
    labels = index_to_factors(index)
    try:
        find_raw(RAW, "subset", data_root=data_root, system_dirs=SYSTEM_DIRS, download=download)
    except DatasetUnavailable as exc:
        warnings.warn(_fallback_note(exc), GenbenchWarning, stacklevel=4)  # the caller of DatasetSpec.load
        images = images_from_factors(labels)
        source = f"procedural: {GENERATOR}"
    else:
        full = _load("train", data_root=data_root, download=download, progress=progress)
        images = np.asarray(full.images[index])
        source = full.source
    return ImageData("dsprites", "subset", readonly(images), readonly(labels), content_hash(images, labels), source)


def _load(split: str, *, data_root: str | Path | None, download: bool, progress: bool) -> ImageData:
    if split == "subset":
        return _load_subset(data_root=data_root, download=download, progress=progress)
    try:
        (path,) = find_raw(RAW, split, data_root=data_root, system_dirs=SYSTEM_DIRS, download=download)
    except DatasetUnavailable as exc:
        warnings.warn(_fallback_note(exc), GenbenchWarning, stacklevel=3)  # the caller of DatasetSpec.load
        stamp = {"format": FORMAT_VERSION, "generator": GENERATOR_VERSION, "sources": [], "n": NUM_IMAGES}
        return _cached(split, stamp, f"procedural: {GENERATOR}", _fill_procedural, progress)
    stamp = {"format": FORMAT_VERSION, "sources": _fingerprint([path]), "n": NUM_IMAGES}
    return _cached(split, stamp, str(path.absolute()), lambda out, bar: _fill_official(path, out, bar), progress)


DSPRITES = DatasetSpec(
    "dsprites",
    "dSprites: 64x64 binary sprites, 5 ground-truth factors (shape, scale, orientation, x, y), 737,280 images",
    (1, SIZE, SIZE),
    ("train", "subset"),  # subset: SUBSET_SIZE images of train (subset_indices), for smoke tests
    "factors",
    _load,
)
