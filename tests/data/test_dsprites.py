"""dSprites: factor order and values, the procedural renderer against real official frames, the official-file
loader (on a small file in the official layout), the procedural fallback and the cache."""

import itertools
import os
import shutil
import warnings
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
from PIL import Image, ImageSequence

from genbench import GenbenchError, GenbenchWarning
from genbench.data import content_hash
from genbench.data import dsprites as ds
from genbench.data.base import RawFiles
from genbench.data.dsprites import (
    DSPRITES,
    FACTOR_NAMES,
    FACTOR_SIZES,
    FACTOR_VALUES,
    NUM_IMAGES,
    DSpritesFactors,
    factors_to_index,
    images_from_factors,
    index_to_factors,
)

# Real official frames (12 from the official file, the 320 of the official animation): vendored beside the tests,
# or named by $GENBENCH_DSPRITES_SAMPLE, or in the shared data folder of the development machines.
SAMPLE_DIRS = [
    Path(__file__).parent / "dsprites-sample",
    *([Path(os.environ["GENBENCH_DSPRITES_SAMPLE"])] if "GENBENCH_DSPRITES_SAMPLE" in os.environ else []),
    Path("/work/shared/data/dsprites-sample"),
]
SAMPLE = next((d for d in SAMPLE_DIRS if (d / "real12.npz").is_file() and (d / "dsprites.gif").is_file()), None)
needs_sample = pytest.mark.skipif(SAMPLE is None, reason=f"real dSprites frames not found in {SAMPLE_DIRS}")

# Content hashes of the procedural rendering (generator v1): every 97th image with its labels, and all of them.
SUBSET_HASH = "sha256:7bdd95680f05224bceff3acb8b1d048ce1ea9537bdd822aa13294ccdf59c502a"
FULL_HASH = "sha256:86202899bb7e444c69a5b0d77ffbcd1c9ece5a64ad0181163e03aa169a5d0ed2"
SUBSET_SPLIT_HASH = "sha256:fbcdace8791e0adda39a762bf672b6913a51072407f8768b068ba503749a6c2c"  # the `subset` split
SMALL = 2048  # images in the stand-in "full" dataset of the loader tests: the first 2048 in the official order


def official_classes(values: np.ndarray) -> np.ndarray:
    """(n, 5) factor classes of official `latents_values` rows (n, 6), requiring bit-for-bit equal values."""
    out = np.zeros((len(values), len(FACTOR_NAMES)), np.int64)
    for j, name in enumerate(FACTOR_NAMES):
        hit = values[:, j + 1, None] == FACTOR_VALUES[name][None]
        assert (hit.sum(1) == 1).all(), (name, values[:, j + 1])
        out[:, j] = hit.argmax(1)
    return out


def gif_classes() -> np.ndarray:
    """The factor classes of the 320 frames of the official animation, from its sweep order. For the heart, then
    the ellipse, then the square, at posX = posY = 0 unless said: scale up, down, up (6 frames each); the 40
    orientations at scale 1; for the heart only, its position walked round the border at scale 1 (posY down,
    posX right, posY up, posX left, 32 frames each); then scale down."""
    rows = []
    for shape in (2, 1, 0):
        rows += [(shape, s, 0, 0, 0) for s in [*range(6), *range(5, -1, -1), *range(6)]]
        rows += [(shape, 5, o, 0, 0) for o in range(40)]
        if shape == 2:
            rows += [(shape, 5, 0, 0, k) for k in range(32)] + [(shape, 5, 0, k, 31) for k in range(32)]
            rows += [(shape, 5, 0, 31, 31 - k) for k in range(32)] + [(shape, 5, 0, 31 - k, 0) for k in range(32)]
        rows += [(shape, 5 - k, 0, 0, 0) for k in range(6)]
    return np.array(rows, np.int64)


def real_frames() -> tuple[np.ndarray, np.ndarray]:
    """(332, 5) factor classes and (332, 64, 64) bool official frames: the 320 animation frames, then the 12."""
    with Image.open(SAMPLE / "dsprites.gif") as im:
        gif = np.stack([np.asarray(f.convert("L")) > 127 for f in ImageSequence.Iterator(im)])
    with np.load(SAMPLE / "real12.npz", allow_pickle=False) as z:
        imgs, values = z["imgs"], z["latents_values"]
    return np.concatenate([gif_classes(), official_classes(values)]), np.concatenate([gif, imgs.astype(bool)])


# --- factors --------------------------------------------------------------------------------------------------


def test_factor_space_constants():
    assert FACTOR_NAMES == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert FACTOR_SIZES == (3, 6, 40, 32, 32) and NUM_IMAGES == int(np.prod(FACTOR_SIZES)) == 737_280
    assert [len(FACTOR_VALUES[n]) for n in FACTOR_NAMES] == list(FACTOR_SIZES)
    assert FACTOR_VALUES["shape"].tolist() == [1.0, 2.0, 3.0]
    np.testing.assert_allclose(FACTOR_VALUES["scale"], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(FACTOR_VALUES["orientation"], np.linspace(0, 2 * np.pi, 40), rtol=0, atol=1e-15)
    np.testing.assert_allclose(FACTOR_VALUES["pos_x"], np.linspace(0, 1, 32), rtol=0, atol=1e-15)
    assert FACTOR_VALUES["orientation"][-1] == 2 * np.pi and FACTOR_VALUES["pos_y"][-1] == 1.0


@needs_sample
def test_factor_values_are_the_official_values_bit_for_bit():
    with np.load(SAMPLE / "real12.npz", allow_pickle=False) as z:
        values = z["latents_values"]
    classes = official_classes(values)  # asserts each official value is one of ours exactly (==, not approx)
    assert (values[:, 0] == 1).all()  # the constant colour factor, dropped
    # The twelve rows cover all three shapes and six scales, and include the orientations and positions whose
    # official values differ from np.linspace in the last bit (2 pi k / 39 and i / 31 are what the file holds).
    assert set(classes[:, 0]) == {0, 1, 2} and set(classes[:, 1]) == set(range(6))
    assert not np.isin(values[:, 3], np.linspace(0, 2 * np.pi, 40)).all()
    assert not np.isin(values[:, 4], np.linspace(0, 1, 32)).all()


def test_index_bijection_and_official_order():
    index = np.arange(NUM_IMAGES)
    factors = index_to_factors(index)
    assert factors.dtype == np.int64 and factors.shape == (NUM_IMAGES, 5)
    np.testing.assert_array_equal(factors_to_index(factors), index)
    # The official formula, colour included: index = classes . [737280, 245760, 40960, 1024, 32, 1].
    with_colour = np.concatenate([np.zeros((NUM_IMAGES, 1), np.int64), factors], axis=1)
    np.testing.assert_array_equal(with_colour @ np.array([737280, 245760, 40960, 1024, 32, 1]), index)
    # posY varies fastest, shape slowest: the indices enumerate the factor grid in C order.
    grid = np.array(list(itertools.product(*map(range, FACTOR_SIZES))))
    np.testing.assert_array_equal(factors, grid)
    assert index_to_factors(np.array([0, 1, 32, 1024, 40960, 245760, NUM_IMAGES - 1])).tolist() == [
        [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 1, 0, 0, 0], [1, 0, 0, 0, 0],
        [2, 5, 39, 31, 31],
    ]  # fmt: skip


def test_bad_factors_and_indices_are_rejected():
    with pytest.raises(GenbenchError, match="'orientation' must lie in 0..39, got 40"):
        factors_to_index(np.array([[0, 0, 40, 0, 0]]))
    with pytest.raises(GenbenchError, match=r"integer array \(n, 5\)"):
        images_from_factors(np.zeros((2, 4), np.int64))
    with pytest.raises(GenbenchError, match="integer array"):
        factors_to_index(np.zeros((2, 5)))  # floats are not classes
    with pytest.raises(GenbenchError, match="must lie in 0..737279"):
        index_to_factors(np.array([NUM_IMAGES]))


# --- procedural rendering -------------------------------------------------------------------------------------


def test_gif_sweep_labels_are_consistent():
    """The animation's frame labels (by sweep order) cover 320 frames, and repeated labels show equal frames."""
    classes = gif_classes()
    assert classes.shape == (320, 5)
    if SAMPLE is None:
        pytest.skip("real frames not found")
    _, frames = real_frames()
    frames = frames[:320]
    first = {}
    for i, key in enumerate(factors_to_index(classes).tolist()):
        assert np.array_equal(frames[i], frames[first.setdefault(key, i)]), (i, first[key])
    # Distinct latents shown: per shape 6 scales + 39 further orientations, and the heart's 124 border positions
    # less the corner (0, 0) already shown.
    assert len(first) == 3 * (6 + 39) + 123 == 258


@needs_sample
def test_rendering_matches_official_frames():
    """The stated bound: at most MAX_DIFF_PIXELS (0) pixels differ, on every one of the 332 real frames."""
    classes, frames = real_frames()
    assert len(frames) == ds.CHECKED_FRAMES == 332
    assert np.bincount(classes[:, 0]).tolist() == [65, 71, 196]  # squares, ellipses, hearts
    rendered = images_from_factors(classes)[:, 0] == 255
    differing = (rendered != frames).sum(axis=(1, 2))
    assert differing.max() <= ds.MAX_DIFF_PIXELS == 0, np.flatnonzero(differing)
    # Not a vacuous match: the sprites are large and every shape, scale and orientation is represented.
    assert frames.sum(axis=(1, 2)).min() >= 55 and len(np.unique(classes[:, 2])) == 40


@needs_sample
def test_rasterization_details_are_needed():
    """The frames pin the rasterizer's 1/256 px vertex snapping: without it two square frames differ by 4 pixels
    (their edges pass 0.00015 px inside a pixel centre, which snapping moves outside)."""
    classes, frames = real_frames()
    squares = classes[:, 0] == 0
    old = ds.SUBPIXEL
    try:
        ds.SUBPIXEL = 2.0**40  # effectively no snapping
        unsnapped = images_from_factors(classes[squares])[:, 0] == 255
    finally:
        ds.SUBPIXEL = old
    assert sorted((unsnapped != frames[squares]).sum(axis=(1, 2)))[-2:] == [4, 4]


def test_orientation_0_and_39_render_identically():
    grid = np.array(list(itertools.product(range(3), range(6), [0], range(0, 32, 3), range(32))))
    turned = grid.copy()
    turned[:, 2] = 39
    np.testing.assert_array_equal(images_from_factors(grid), images_from_factors(turned))


def test_images_contract_and_determinism():
    rng = np.random.RandomState(3)
    factors = DSpritesFactors().sample_factors(300, rng)
    x = images_from_factors(factors)
    assert x.dtype == np.uint8 and x.shape == (300, 1, 64, 64)
    assert set(np.unique(x)) == {0, 255}
    assert (x.reshape(300, -1).max(1) == 255).all()  # every image shows its sprite
    np.testing.assert_array_equal(images_from_factors(factors, chunk=7), x)  # chunking changes nothing
    np.testing.assert_array_equal(images_from_factors(factors[::-1]), x[::-1])
    assert images_from_factors(np.zeros((0, 5), np.int64)).shape == (0, 1, 64, 64)


def test_rendering_is_pinned():
    """Every 97th image, hashed: a change here moves pixels, so it needs a new GENERATOR_VERSION (and new pins)."""
    assert ds.GENERATOR_VERSION == 1 and ds.GENERATOR == "genbench dsprites generator v1"
    factors = index_to_factors(np.arange(0, NUM_IMAGES, 97))
    assert content_hash(images_from_factors(factors), factors) == SUBSET_HASH


def centroids(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre of mass (x, y) in continuous coordinates (pixel c spans [c, c + 1])."""
    m = images.reshape(len(images), 64, 64) > 0
    ys, xs = np.mgrid[:64, :64]
    n = m.sum(axis=(1, 2))
    return (m * xs).sum(axis=(1, 2)) / n + 0.5, (m * ys).sum(axis=(1, 2)) / n + 0.5


def test_centre_of_mass_follows_position():
    """Sprites sit at x = 16 + 32 posX, y = 16 + 32 posY (rows downward); a heart's mass lies above its centre."""
    grid = np.array(list(itertools.product(range(3), range(6), range(0, 40, 7), range(32), range(0, 32, 5))))
    cx, cy = centroids(images_from_factors(grid))
    x = 16 + 32 * FACTOR_VALUES["pos_x"][grid[:, 3]]
    y = 16 + 32 * FACTOR_VALUES["pos_y"][grid[:, 4]]
    scale = FACTOR_VALUES["scale"][grid[:, 1]]
    for shape in (0, 1):  # symmetric: the centroid is the centre, up to pixelation
        s = grid[:, 0] == shape
        assert np.abs(cx - x)[s].max() < 0.4 and np.abs(cy - y)[s].max() < 0.4
        assert abs((cx - x)[s].mean()) < 0.01 and abs((cy - y)[s].mean()) < 0.01
        slope, intercept = np.polyfit(FACTOR_VALUES["pos_x"][grid[s, 3]], cx[s], 1)
        assert slope == pytest.approx(32, abs=0.05) and intercept == pytest.approx(16, abs=0.05)
    h = (grid[:, 0] == 2) & (grid[:, 2] == 0)  # upright hearts: symmetric in x, mass ~2 px (at scale 1) up
    assert np.abs(cx - x)[h].max() < 0.4
    np.testing.assert_allclose(((cy - y) / scale)[h].mean(), -1.99, atol=0.02)


@needs_sample
def test_official_frames_centres():
    """The README's measured centres hold on the official frames of the symmetric shapes."""
    classes, frames = real_frames()
    s = classes[:, 0] < 2
    cx, cy = centroids(frames[s])
    np.testing.assert_allclose(cx, 16 + 32 * FACTOR_VALUES["pos_x"][classes[s, 3]], atol=0.4)
    np.testing.assert_allclose(cy, 16 + 32 * FACTOR_VALUES["pos_y"][classes[s, 4]], atol=0.4)


# --- the factor space for the disentanglement metrics ---------------------------------------------------------


def test_sample_factors_draw_order_and_reproducibility():
    space = DSpritesFactors()
    assert space.factor_names == FACTOR_NAMES and space.factor_sizes == FACTOR_SIZES
    f = space.sample_factors(1000, np.random.RandomState(0))
    assert f.dtype == np.int64 and f.shape == (1000, 5)
    assert ((f >= 0) & (f < np.array(FACTOR_SIZES))).all()
    # disentanglement_lib's order: one randint(size, size=n) per factor, factors in order.
    rs = np.random.RandomState(0)
    expected = np.stack([rs.randint(size, size=1000) for size in FACTOR_SIZES], axis=1)
    np.testing.assert_array_equal(f, expected)
    # Pinned: four draws from seed 0 (column by column: shapes 0 1 0 1, scales 3 5 2 4, ...).
    four = space.sample_factors(4, np.random.RandomState(0)).tolist()
    assert four == [[0, 3, 23, 12, 7], [1, 5, 6, 26, 23], [0, 2, 24, 1, 14], [1, 4, 24, 6, 24]]
    np.testing.assert_array_equal(space.sample_factors(1000, np.random.RandomState(0)), f)
    assert not np.array_equal(space.sample_factors(1000, np.random.RandomState(1)), f)


def test_observations_procedural_and_from_images(monkeypatch):
    factors = np.array([[2, 5, 0, 0, 0], [0, 0, 1, 3, 7], [1, 3, 17, 30, 2]])
    np.testing.assert_array_equal(DSpritesFactors().observations(factors), images_from_factors(factors))

    monkeypatch.setattr(ds, "NUM_IMAGES", SMALL)  # the first 2048 official images: shape 0, scale 0, orientation 0-1
    images = np.zeros((SMALL, 1, 64, 64), np.uint8)
    images[:, 0, 0, :2] = np.arange(SMALL)[:, None] // np.array([256, 1]) % 256  # each image names its index
    space = DSpritesFactors(images)
    f = np.array([[0, 0, 1, 3, 7], [0, 0, 0, 0, 0], [0, 0, 1, 31, 31]])
    got = space.observations(f)
    assert (got[:, 0, 0, 0].astype(int) * 256 + got[:, 0, 0, 1]).tolist() == [1024 + 96 + 7, 0, SMALL - 1]
    with pytest.raises(GenbenchError, match="needs all dSprites images"):
        DSpritesFactors(images[:10])


# --- loading ---------------------------------------------------------------------------------------------------


def test_spec():
    assert DSPRITES.name == "dsprites" and DSPRITES.shape == (1, 64, 64)
    assert DSPRITES.splits == ("train", "subset") and DSPRITES.label_kind == "factors"
    with pytest.raises(GenbenchError, match="splits are: train, subset"):
        DSPRITES.load("test", download=False)


tripped = []


def _tripwire():  # what unpickling the trap below would call
    tripped.append(True)
    raise AssertionError("the official file's metadata was unpickled")


class _Trap:
    def __reduce__(self):
        return _tripwire, ()


def write_official(folder: Path, n: int = SMALL, **overrides) -> Path:
    """A small file in the official layout: the first n images, colour included, and a pickled `metadata`."""
    factors = index_to_factors(np.arange(n))
    classes = np.concatenate([np.zeros((n, 1), np.int64), factors], axis=1)
    values = np.concatenate(
        [np.ones((n, 1))] + [FACTOR_VALUES[name][factors[:, j]][:, None] for j, name in enumerate(FACTOR_NAMES)],
        axis=1,
    )
    imgs = (images_from_factors(factors)[:, 0] // 255).astype(np.uint8)  # {0, 1} as in the official file
    imgs[:, 0, 0] = 1  # a pixel the renderer never sets: proves the images come from the file
    arrays = {"imgs": imgs, "latents_classes": classes, "latents_values": values,
              "metadata": np.array({"trap": _Trap()}, dtype=object)}  # fmt: skip
    arrays.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ds.FILE
    np.savez_compressed(path, **arrays)
    return path


def test_official_file_is_read_without_unpickling(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "NUM_IMAGES", SMALL)
    path = write_official(tmp_path / "data")
    with np.load(path, allow_pickle=False) as z, pytest.raises(ValueError, match="allow_pickle"):
        z["metadata"]  # reading metadata needs pickle, ...
    with np.load(path, allow_pickle=True) as z, pytest.raises(AssertionError, match="unpickled"):
        z["metadata"]  # ... and unpickling it springs the trap
    tripped.clear()
    calls = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))

    with warnings.catch_warnings():
        warnings.simplefilter("error", GenbenchWarning)  # the official file: no fallback warning
        data = DSPRITES.load("train", data_root=tmp_path / "data", download=False, progress=False)
    assert not tripped
    assert {"allow_pickle": False} in calls and not any(k.get("allow_pickle") for k in calls)
    with real_load(path, allow_pickle=False) as z:
        imgs, classes = z["imgs"], z["latents_classes"]
    assert data.source == str(path.absolute())
    assert data.images.shape == (SMALL, 1, 64, 64) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[:, 0], imgs * 255)  # {0,1} -> {0,255}
    np.testing.assert_array_equal(data.labels, classes[:, 1:])
    assert data.labels.dtype == np.int64
    assert data.content_hash == content_hash(np.asarray(data.images), np.asarray(data.labels))
    assert data.content_hash != content_hash(images_from_factors(classes[:, 1:]), classes[:, 1:])


@pytest.mark.parametrize(
    "override, message",
    [
        ({"latents_classes": np.zeros((SMALL, 6), np.int64)}, "not in the official order"),
        ({"imgs": np.full((SMALL, 64, 64), 2, np.uint8)}, "0/1 pixels"),
        ({"imgs": np.zeros((SMALL, 32, 32), np.uint8)}, r"expected imgs \(2048, 64, 64\)"),
        ({"latents_values": np.zeros((SMALL, 6))}, "latents_values differ"),
    ],
)
def test_damaged_official_file_is_an_error(tmp_path, monkeypatch, override, message):
    monkeypatch.setattr(ds, "NUM_IMAGES", SMALL)
    path = write_official(tmp_path, **override)
    with pytest.raises(GenbenchError, match=message) as info:
        DSPRITES.load("train", data_root=tmp_path, download=False, progress=False)
    assert str(path) in str(info.value) and "download it again" in str(info.value)
    assert not list((ds.cache_dir() / "data" / "dsprites").iterdir())  # nothing half-written is kept


def test_fallback_to_procedural_with_warning_then_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "NUM_IMAGES", SMALL)
    with pytest.warns(GenbenchWarning) as record:
        data = DSPRITES.load("train", data_root=tmp_path / "empty", download=False, progress=False)
    (w,) = [r for r in record if issubclass(r.category, GenbenchWarning)]
    text = str(w.message)
    assert w.filename == __file__  # points at the caller of DSPRITES.load
    assert str(tmp_path / "empty") in text and "downloading is off" in text  # where it looked, and why
    assert "procedural rendering" in text and "332 official frames" in text and "at most 0 differing" in text
    assert ds.FILE in text and ds.URL in text and "GENBENCH_DATA" in text  # how to use the official file
    assert data.source == "procedural: genbench dsprites generator v1"
    factors = index_to_factors(np.arange(SMALL))
    np.testing.assert_array_equal(data.images, images_from_factors(factors))
    np.testing.assert_array_equal(data.labels, factors)
    assert data.content_hash == content_hash(images_from_factors(factors), factors)
    assert isinstance(data.images, np.memmap) and not data.images.flags.writeable

    def no_render(*_):
        raise AssertionError("a second load must come from the cache")

    monkeypatch.setattr(ds, "_fill_procedural", no_render)
    with pytest.warns(GenbenchWarning, match="procedural"):
        again = DSPRITES.load("train", data_root=tmp_path / "empty", download=False, progress=False)
    assert again.content_hash == data.content_hash and isinstance(again.images, np.memmap)

    # The official file, once present, replaces the procedural cache entry.
    write_official(tmp_path / "empty")
    official = DSPRITES.load("train", data_root=tmp_path / "empty", download=False, progress=False)
    assert official.source.endswith(ds.FILE) and official.content_hash != data.content_hash
    assert sorted(p.name for p in (ds.cache_dir() / "data" / "dsprites").iterdir()) == [
        "train-images.npy", "train-labels.npy", "train.json"]  # fmt: skip


def test_subset_split_is_rendered_on_its_own(tmp_path, monkeypatch):
    """`subset`: 16,384 fixed indices drawn uniformly; rendered alone (the full set is never built), warning
    like `train` that the images are procedural."""
    index = ds.subset_indices()
    assert len(index) == ds.SUBSET_SIZE == 16_384 and index.dtype == np.int64
    assert (np.diff(index) > 0).all() and 0 <= index[0] and index[-1] < NUM_IMAGES
    np.testing.assert_array_equal(index, ds.subset_indices())  # a fixed draw
    counts = np.bincount(index_to_factors(index)[:, 0], minlength=3)
    assert abs(counts - ds.SUBSET_SIZE / 3).max() < 4 * (ds.SUBSET_SIZE * 2 / 9) ** 0.5  # uniform over shapes

    monkeypatch.setattr(ds, "_fill_procedural", lambda *_: pytest.fail("the subset must not build the full set"))
    with pytest.warns(GenbenchWarning, match="procedural rendering"):
        data = DSPRITES.load("subset", data_root=tmp_path, download=False, progress=False)
    assert (data.dataset, data.split, data.source) == ("dsprites", "subset", "procedural: " + ds.GENERATOR)
    np.testing.assert_array_equal(data.labels, index_to_factors(index))
    some = np.arange(0, ds.SUBSET_SIZE, 301)
    np.testing.assert_array_equal(data.images[some], images_from_factors(data.labels[some]))
    assert data.content_hash == SUBSET_SPLIT_HASH
    assert not data.images.flags.writeable


def test_subset_split_comes_from_the_official_file_when_present(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "NUM_IMAGES", SMALL)
    monkeypatch.setattr(ds, "SUBSET_SIZE", 100)
    write_official(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GenbenchWarning)
        data = DSPRITES.load("subset", data_root=tmp_path, download=False, progress=False)
    index = ds.subset_indices()
    assert len(index) == 100 and data.source.endswith(ds.FILE)
    full = DSPRITES.load("train", data_root=tmp_path, download=False, progress=False)
    np.testing.assert_array_equal(data.images, full.images[index])
    assert (data.images[:, 0, 0, 0] == 255).all()  # the marker pixel of write_official: the file's images
    np.testing.assert_array_equal(data.labels, index_to_factors(index))


def test_failed_download_falls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "NUM_IMAGES", SMALL)

    def offline(root):
        raise URLError("no network here")

    monkeypatch.setattr(ds, "RAW", RawFiles("dsprites", ds.RAW.subdirs, ds.RAW.names, gzip_ok=False, fetch=offline))
    with pytest.warns(GenbenchWarning, match="(?s)downloading into .* failed.*no network here.*procedural"):
        data = DSPRITES.load("train", data_root=tmp_path, download=True, progress=False)
    assert data.source.startswith("procedural:")


@pytest.mark.slow
def test_full_procedural_dataset(request):
    """All 737,280 images rendered into the cache (3 GB, about a minute), then removed: the pinned hash."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("renders 3 GB; run with `pytest -m slow`")
    try:
        with pytest.warns(GenbenchWarning, match="procedural"):
            data = DSPRITES.load("train", download=False, progress=False)
        assert data.images.shape == (NUM_IMAGES, 1, 64, 64) and data.labels.shape == (NUM_IMAGES, 5)
        assert data.content_hash == FULL_HASH
        some = np.arange(0, NUM_IMAGES, 997)
        np.testing.assert_array_equal(data.images[some], images_from_factors(index_to_factors(some)))
        o39 = np.flatnonzero(data.labels[:, 2] == 39)
        np.testing.assert_array_equal(data.images[o39], data.images[o39 - 39 * 1024])  # orientation 39 == 0
        del data
    finally:
        shutil.rmtree(ds.cache_dir() / "data" / "dsprites", ignore_errors=True)  # pytest keeps its tmp dirs
