"""binarized-mnist: the .amat parser and loader on tiny hand-written fake files (no network, no real data)."""

import urllib.error
from pathlib import Path

import numpy as np
import pytest

from genbench import GenbenchError
from genbench.data import BINARIZED_MNIST, BUILTIN, DatasetUnavailable, binarized_mnist, cache_dir, content_hash
from genbench.data.binarized_mnist import read_amat

SIZES = {"train": 3, "valid": 2, "test": 1}  # tiny fakes stand in for 50,000 / 10,000 / 10,000 lines
REAL_SIZES = dict(binarized_mnist.SPLIT_SIZES)  # read before the fixture below patches it


@pytest.fixture(autouse=True)
def small_split_sizes(monkeypatch):
    """The loader pins each split's line count; the fakes here are a few lines long."""
    monkeypatch.setattr(binarized_mnist, "SPLIT_SIZES", dict(SIZES))


def amat_line(pixels: np.ndarray) -> str:
    return " ".join(str(int(v)) for v in np.asarray(pixels).reshape(-1)) + "\n"


def write_amat(path: Path, images: np.ndarray, *, trailing_space: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [amat_line(x) for x in images]
    if trailing_space:
        lines = [line.replace("\n", " \n") for line in lines]
    path.write_text("".join(lines))
    return path


def fake_files(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in SIZES.items():
        arrays[split] = rng.integers(0, 2, (n, 28, 28), dtype=np.uint8)
        write_amat(root / f"binarized_mnist_{split}.amat", arrays[split], trailing_space=split == "valid")
    return arrays


def test_spec_and_registry():
    from genbench import registry

    assert registry.dataset("binarized-mnist") is BINARIZED_MNIST and BINARIZED_MNIST in BUILTIN
    assert BINARIZED_MNIST.splits == ("train", "valid", "test") and BINARIZED_MNIST.shape == (1, 28, 28)
    assert BINARIZED_MNIST.label_kind is None
    assert binarized_mnist.url("valid") == (
        "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_valid.amat"
    )


def test_loads_every_split_as_0_255_without_labels(tmp_path):
    arrays = fake_files(tmp_path)
    for split, x in arrays.items():
        d = BINARIZED_MNIST.load(split, data_root=tmp_path, download=False, progress=False)
        assert d.dataset == "binarized-mnist" and d.split == split and d.labels is None
        assert d.images.shape == (SIZES[split], 1, 28, 28) and d.images.dtype == np.uint8
        assert set(np.unique(d.images).tolist()) <= {0, 255}
        assert np.array_equal(d.images[:, 0], x * 255) and d.source == str(tmp_path)
        assert d.content_hash == content_hash(x[:, None] * np.uint8(255), None)
        again = BINARIZED_MNIST.load(split, data_root=tmp_path, download=False, progress=False)
        assert isinstance(again.images, np.memmap) and again.content_hash == d.content_hash


def test_pixel_order_is_row_major(tmp_path):
    values = np.zeros(784, np.uint8)
    values[[0, 1, 28, 783]] = 1  # (row 0, col 0), (row 0, col 1), (row 1, col 0), (row 27, col 27)
    (tmp_path / "binarized_mnist_test.amat").write_text(" ".join(map(str, values)) + "\n")
    img = BINARIZED_MNIST.load("test", data_root=tmp_path, download=False, progress=False).images[0, 0]
    assert np.argwhere(img).tolist() == [[0, 0], [0, 1], [1, 0], [27, 27]] and img[0, 0] == 255


def test_content_hash_is_pinned(tmp_path):
    x = np.zeros((1, 28, 28), np.uint8)
    x[0, 3, 5] = x[0, 27, 0] = 1
    write_amat(tmp_path / "binarized_mnist_test.amat", x)
    d = BINARIZED_MNIST.load("test", data_root=tmp_path, download=False, progress=False)
    assert d.content_hash == content_hash(x[:, None] * np.uint8(255), None)
    assert d.content_hash == "sha256:d5e4a3d86300c84c34f27057738f4df96801d9bfb2c5f76cd34d5e3bc10e2084"


@pytest.mark.parametrize(
    "line, found",
    [
        (" ".join(["0"] * 783), "found 783"),
        (" ".join(["0"] * 785), "found 785"),
        (" ".join(["0"] * 400 + ["2"] + ["0"] * 383), "found '2'"),
        (" ".join(["0"] * 10 + ["0.5"] + ["0"] * 773), "found '0.5'"),
        ("", "found 0"),
    ],
)
def test_malformed_line_names_file_line_and_fix(tmp_path, line, found):
    good = amat_line(np.zeros(784, np.uint8))
    (tmp_path / "binarized_mnist_valid.amat").write_text(good + line + "\n" + good)
    with pytest.raises(GenbenchError, match=rf"binarized_mnist_valid\.amat, line 2: .*{found}.*download it again"):
        BINARIZED_MNIST.load("valid", data_root=tmp_path, download=False, progress=False)


def test_line_count_is_checked(tmp_path):
    write_amat(tmp_path / "binarized_mnist_train.amat", np.zeros((2, 28, 28), np.uint8))  # SIZES says 3
    with pytest.raises(GenbenchError, match=r"binarized_mnist_train\.amat holds 2 images.* has 3 .*download it again"):
        BINARIZED_MNIST.load("train", data_root=tmp_path, download=False, progress=False)
    assert read_amat(tmp_path / "binarized_mnist_train.amat").shape == (2, 1, 28, 28)  # no count asked: fine


def test_real_split_sizes():
    assert REAL_SIZES == {"train": 50_000, "valid": 10_000, "test": 10_000}


def test_missing_file_without_download_names_url_and_places(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        BINARIZED_MNIST.load("valid", data_root=tmp_path, download=False)
    msg = str(err.value)
    assert binarized_mnist.url("valid") in msg and "binarized_mnist_valid.amat" in msg
    assert str(tmp_path) in msg and str(tmp_path / "binarized_mnist") in msg and str(cache_dir() / "downloads") in msg
    assert "no checksums" in msg and "--data-root" in msg


def test_download_fetches_all_three_files(tmp_path, monkeypatch):
    import torchvision.datasets.utils

    calls = []

    def fake_download(url, root, filename=None, md5=None):
        calls.append((url, Path(root), filename))
        write_amat(Path(root) / filename, np.ones((SIZES[filename.split("_")[-1][: -len(".amat")]], 28, 28), np.uint8))

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", fake_download)
    d = BINARIZED_MNIST.load("valid", data_root=tmp_path, progress=False)
    assert [c[0] for c in calls] == [binarized_mnist.url(s) for s in ("train", "valid", "test")]
    assert {c[1] for c in calls} == {tmp_path / "binarized_mnist"}
    assert d.source == str(tmp_path / "binarized_mnist") and d.images.shape == (2, 1, 28, 28)
    assert (d.images == 255).all()


def test_failed_download_names_url(tmp_path, monkeypatch):
    import torchvision.datasets.utils

    def offline(url, root, filename=None, md5=None):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    with pytest.raises(DatasetUnavailable) as err:
        BINARIZED_MNIST.load("test", data_root=tmp_path, progress=False)
    msg = str(err.value)
    assert "failed" in msg and "Name or service not known" in msg and binarized_mnist.url("test") in msg
