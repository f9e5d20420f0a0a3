"""stacked-fashion-mnist: the seeded draw, every channel against its Fashion-MNIST source, near-uniform modes,
determinism and the cache. Built once per module (about 2 s for both splits) in a private cache."""

import json
import shutil
import tempfile

import numpy as np
import pytest

from genbench import GenbenchError, GenbenchWarning, registry
from genbench.data import BUILTIN, FASHION_MNIST, STACKED_FASHION_MNIST, DatasetUnavailable, cache_dir, idx
from genbench.data import stacked
from genbench.data.stacked import SPLIT_SIZES, SOURCE_SIZES, stacked_indices
from genbench.metrics.modes import mode_coverage, stacked_modes

# Content hashes of the two splits, built from the Fashion-MNIST splits whose hashes tests/data/test_datasets.py
# pins (FORMAT_VERSION 1, SEEDS {"train": 0, "test": 1}).
HASH = {
    "train": "sha256:aa62bc6f65cf044dec1b9dd6ccbe86eb5cfe2704a7b438043f4da55964000dd3",
    "test": "sha256:df22f6eefb398156074e026cb48866efd686d546306d9c4ecd2c9f68f833b468",
}


SKIP = "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"


def _load(split):
    try:
        return STACKED_FASHION_MNIST.load(split, download=False, progress=False)
    except DatasetUnavailable:
        pytest.skip(SKIP)


@pytest.fixture(scope="module")
def cache():
    """A module-private cache folder, so the 300 MB train split is built once for all tests here."""
    folder = tempfile.mkdtemp(prefix="genbench-stacked-test-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def built(cache):
    """{split: (stacked, its fashion-mnist source)}, loaded once into the module's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENBENCH_CACHE", cache)
        return {s: (_load(s), FASHION_MNIST.load(s, download=False, progress=False)) for s in SPLIT_SIZES}


def test_spec_and_registry():
    assert STACKED_FASHION_MNIST in BUILTIN and registry.DATASETS["stacked-fashion-mnist"] is STACKED_FASHION_MNIST
    assert STACKED_FASHION_MNIST.splits == ("train", "test") and STACKED_FASHION_MNIST.shape == (3, 28, 28)
    assert STACKED_FASHION_MNIST.label_kind == "factors"
    assert SPLIT_SIZES == {"train": 128_000, "test": 10_000} and stacked.NUM_MODES == 1000
    with pytest.raises(GenbenchError, match="splits are: train, test"):
        STACKED_FASHION_MNIST.load("valid")


def test_stacked_indices_are_a_fixed_uniform_draw_with_prefixes():
    for split in SPLIT_SIZES:
        index = stacked_indices(split)
        assert index.dtype == np.int64 and index.shape == (SPLIT_SIZES[split], 3)
        assert index.min() >= 0 and index.max() < SOURCE_SIZES[split]
        assert np.array_equal(stacked_indices(split, 1000), index[:1000])  # smaller n: a prefix
        assert np.array_equal(stacked_indices(split), index)  # fixed seed
    train = stacked_indices("train")
    # uniform over the 60,000 sources, each channel on its own: 6.4 draws per source, all sources nearly hit
    counts = np.stack([np.bincount(train[:, j], minlength=60_000) for j in range(3)])
    assert abs(counts.mean() - 2.1333) < 1e-3 and (counts == 0).mean() < 0.15
    assert stacked_indices("train", 0).shape == (0, 3)
    with pytest.raises(GenbenchError, match="no split"):
        stacked_indices("valid")
    with pytest.raises(GenbenchError, match="0..10000"):
        stacked_indices("test", 10_001)


def test_shape_dtype_labels_and_pinned_hash(built):
    for split, (data, _) in built.items():
        n = SPLIT_SIZES[split]
        assert data.dataset == "stacked-fashion-mnist" and data.split == split and len(data) == n
        assert data.images.dtype == np.uint8 and data.images.shape == (n, 3, 28, 28)
        assert data.labels.dtype == np.int64 and data.labels.shape == (n, 3)
        assert isinstance(data.images, np.memmap) and not data.images.flags.writeable
        assert data.content_hash == HASH[split]
        assert data.source.startswith(f"fashion-mnist:{split} (")


def test_every_channel_is_the_fashion_mnist_image_its_index_names(built):
    for split, (data, fm) in built.items():
        index = stacked_indices(split)
        assert np.array_equal(data.labels, np.asarray(fm.labels)[index])
        for i in range(0, len(index), 16_384):
            rows = index[i : i + 16_384]
            for j in range(3):
                assert np.array_equal(data.images[i : i + 16_384, j], fm.images[rows[:, j], 0]), (split, i, j)


def test_modes_of_the_data_are_near_uniform(built):
    """All 1,000 modes present; KL(empirical || uniform) within 5 standard deviations of its expectation for
    N uniform draws: 2N KL ~ chi^2 with 999 degrees of freedom."""
    for split, (data, _) in built.items():
        n = SPLIT_SIZES[split]
        cov = mode_coverage(stacked_modes(data.labels), num_modes=1000)
        assert cov["modes_covered"] == 1000
        sd = (2 * 999) ** 0.5 / (2 * n)
        assert abs(cov["kl"] - 999 / (2 * n)) < 5 * sd, (split, cov["kl"])
    train = built["train"][0].labels
    for j in range(3):  # each channel's classes near 12,800 apiece
        assert np.abs(np.bincount(train[:, j], minlength=10) - 12_800).max() < 5 * 12_800 ** 0.5


def test_second_load_is_the_memory_mapped_cache_and_a_fresh_build_matches(built, cache, monkeypatch, tmp_path):
    monkeypatch.setenv("GENBENCH_CACHE", cache)
    again = _load("test")
    assert again.content_hash == HASH["test"] and isinstance(again.images, np.memmap)
    assert again.images.filename == built["test"][0].images.filename
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "fresh"))
    fresh = _load("test")  # an empty cache: built again
    assert fresh.images.filename != built["test"][0].images.filename
    assert fresh.content_hash == HASH["test"] and np.array_equal(fresh.images, built["test"][0].images)


def test_a_stale_cache_entry_is_rebuilt():
    first = _load("test")
    meta_path = cache_dir() / "data" / "stacked-fashion-mnist" / "test.json"
    meta = json.loads(meta_path.read_text())
    meta["seed"] = 99  # as if written by another seed
    meta["content_hash"] = "sha256:stale"
    meta_path.write_text(json.dumps(meta))
    again = _load("test")
    assert again.content_hash == first.content_hash == HASH["test"]
    assert json.loads(meta_path.read_text())["seed"] == stacked.SEEDS["test"]


@pytest.mark.filterwarnings("ignore:could not write the decoded fashion-mnist")  # the source's own cache, too
def test_an_unwritable_cache_warns_and_builds_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("GENBENCH_CACHE", str(blocker))
    with pytest.warns(GenbenchWarning, match="could not write stacked-fashion-mnist:test"):
        data = _load("test")
    assert data.content_hash == HASH["test"] and not isinstance(data.images, np.memmap)
    assert not data.images.flags.writeable


def test_without_fashion_mnist_it_raises_fashion_mnists_own_error(tmp_path, monkeypatch):
    monkeypatch.setitem(idx.SYSTEM_DIRS, "fashion-mnist", ())
    with pytest.raises(DatasetUnavailable, match="dataset 'fashion-mnist' \\(split 'test'\\) was not found"):
        STACKED_FASHION_MNIST.load("test", data_root=tmp_path, download=False)
