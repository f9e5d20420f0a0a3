"""Dataset loading: real Fashion-MNIST (when installed) and digits, and every parser on tiny fake files."""

import gzip
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genbench import GenbenchError, GenbenchWarning
from genbench.data import (
    BUILTIN,
    CELEBA64,
    CIFAR10,
    DIGITS,
    FASHION_MNIST,
    MNIST,
    DatasetUnavailable,
    ImageData,
    cache_dir,
    content_hash,
    folder,
    idx,
)
from genbench.data.idx import read_idx

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
# Content hashes of the decoded Fashion-MNIST splits; also equal to torchvision's own decode of the same files.
FASHION_HASH = {
    "train": "sha256:f8e096f015cdc975e268eb1a3ece80519f385c7b928dc33f6a91a284fd1bcbc8",
    "test": "sha256:6dd29c4e997021b453cd0bc93975e04b2442795ea2dd504206ae1bdd160f94af",
}


def write_idx(path: Path, a: np.ndarray, *, gz: bool = False) -> Path:
    codes = {np.dtype("u1"): 0x08, np.dtype("i4"): 0x0C}
    data = bytes([0, 0, codes[a.dtype], a.ndim]) + np.array(a.shape, ">u4").tobytes()
    data += a.astype(a.dtype.newbyteorder(">")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_registry_specs():
    assert [s.name for s in BUILTIN] == ["fashion-mnist", "mnist", "cifar10", "celeba64", "digits", "dsprites",
                                        "dsprites-shapes", "stacked-fashion-mnist", "binarized-mnist"]
    assert CELEBA64.splits == ("train", "valid", "test") and CELEBA64.label_kind == "attributes"
    assert CIFAR10.shape == (3, 32, 32)
    with pytest.raises(GenbenchError, match="splits are: train, test"):
        DIGITS.load("valid")


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"


# --- real data ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=f"Fashion-MNIST is not installed at {FASHION_DIR}")
def test_fashion_mnist_matches_published_statistics(monkeypatch):
    train, test = FASHION_MNIST.load("train", progress=False), FASHION_MNIST.load("test", progress=False)
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    x = train.images / 255.0  # the normalisation constants published for the train split
    assert x.mean() == pytest.approx(0.2860, abs=5e-4) and x.std() == pytest.approx(0.3530, abs=5e-4)
    assert {"train": train.content_hash, "test": test.content_hash} == FASHION_HASH
    assert train.source == str(FASHION_DIR)

    def no_decode(*_):
        raise AssertionError("a second load must come from the cache")

    monkeypatch.setattr(idx, "decode_idx_pair", no_decode)
    again = FASHION_MNIST.load("train", progress=False)
    assert isinstance(again.images, np.memmap) and not again.images.flags.writeable
    assert again.content_hash == FASHION_HASH["train"] and len(again) == 60000


def test_digits():
    train, test = DIGITS.load("train"), DIGITS.load("test")
    assert train.images.shape == (1500, 1, 8, 8) and test.images.shape == (297, 1, 8, 8)
    assert train.images.dtype == np.uint8 and train.images.max() == 255 and train.images.min() == 0
    assert set(np.unique(train.labels)) == set(range(10)) and train.labels.dtype == np.int64
    assert DIGITS.load("train").content_hash == train.content_hash != test.content_hash


def test_content_hash_covers_shape_and_labels():
    x = np.arange(24, dtype=np.uint8).reshape(2, 1, 3, 4)
    y = np.array([0, 1], np.int64)
    assert content_hash(x, y) == content_hash(np.array(x), y.copy())
    assert content_hash(x, y) != content_hash(x.reshape(2, 1, 4, 3), y)
    assert content_hash(x, y) != content_hash(x, None) != content_hash(x, y[::-1].copy())


# --- IDX (MNIST / Fashion-MNIST) ------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    b = np.array([-5, 70000, 3], np.int32)  # big-endian on disk
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", a, gz=gz)), a)
    assert np.array_equal(read_idx(write_idx(tmp_path / "b", b, gz=gz)), b)


def test_read_idx_rejects_damaged_files(tmp_path):
    good = write_idx(tmp_path / "good", np.zeros((3, 28, 28), np.uint8)).read_bytes()
    (tmp_path / "short").write_bytes(good[:-10])
    with pytest.raises(GenbenchError, match=r"short is truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "short.gz").write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(GenbenchError, match=r"cannot read .*short\.gz"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "junk").write_bytes(b"<html>not found</html>")
    with pytest.raises(GenbenchError, match=r"junk is not an IDX file"):
        read_idx(tmp_path / "junk")


def fake_mnist(raw: Path, n_train: int = 5, n_test: int = 3) -> dict:
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n, gz in (("train", n_train, False), ("t10k", n_test, True)):  # both compressions at once
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x, gz=gz)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y, gz=gz)
        arrays[prefix] = (x, y)
    return arrays


def test_mnist_in_torchvision_layout(tmp_path):
    arrays = fake_mnist(tmp_path / "root" / "MNIST" / "raw")
    for split, prefix in (("train", "train"), ("test", "t10k")):
        d = MNIST.load(split, data_root=tmp_path / "root", download=False)
        x, y = arrays[prefix]
        assert d.images.shape == (len(x), 1, 28, 28)
        assert np.array_equal(d.images[:, 0], x) and np.array_equal(d.labels, y.astype(np.int64))
        assert d.dataset == "mnist" and d.split == split and d.source == str(tmp_path / "root" / "MNIST" / "raw")


def test_genbench_data_env_and_redecode_when_files_change(tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path))
    fake_mnist(tmp_path)
    first = MNIST.load("train", download=False)
    second = MNIST.load("train", download=False)
    assert isinstance(second.images, np.memmap) and second.content_hash == first.content_hash

    x = np.full((4, 28, 28), 7, np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", x)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(4, dtype=np.uint8))
    changed = MNIST.load("train", download=False)
    assert len(changed) == 4 and changed.content_hash == content_hash(x[:, None], np.arange(4, dtype=np.int64))


def test_mnist_label_count_mismatch_names_file(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(GenbenchError, match=r"t10k-labels-idx1-ubyte: expected 3 labels"):
        MNIST.load("test", data_root=tmp_path, download=False)


# --- offline behaviour ----------------------------------------------------------------------------------------


def test_missing_dataset_without_download_says_where_and_how(tmp_path):
    with pytest.raises(DatasetUnavailable) as err:
        CIFAR10.load("train", data_root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path) in msg and str(tmp_path / "cifar-10-batches-bin") in msg
    assert str(cache_dir() / "downloads") in msg
    assert "data_batch_1.bin" in msg and "--data-root" in msg and "GENBENCH_DATA" in msg and "internet" in msg


def test_failed_download_is_reported(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(root, download):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setitem(idx.SYSTEM_DIRS, "mnist", (tmp_path / "system",))
    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DatasetUnavailable) as err:
        MNIST.load("test", progress=False)
    msg = str(err.value)
    assert "failed" in msg and "Name or service not known" in msg
    assert str(tmp_path / "system" / "MNIST" / "raw") in msg and "t10k-images-idx3-ubyte" in msg
    assert str(cache_dir() / "downloads") in msg


def test_cifar_pickled_version_is_named(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(DatasetUnavailable, match=r"(?s)pickled.*cifar-10-binary\.tar\.gz"):
        CIFAR10.load("test", data_root=tmp_path, download=False)


# --- CIFAR-10 binary ------------------------------------------------------------------------------------------


def test_cifar10_binary_records(tmp_path):
    batches = tmp_path / "cifar-10-batches-bin"
    batches.mkdir()
    expected = {"train": [], "test": []}
    files = [(f"data_batch_{i}.bin", "train") for i in range(1, 6)] + [("test_batch.bin", "test")]
    for k, (name, split) in enumerate(files):
        records = b""
        for r in range(2):  # 2 records per file: channel c holds 10*c + r + k, one pixel marks the row-major order
            label = (2 * k + r) % 10
            img = np.empty((3, 32, 32), np.uint8)
            for c in range(3):
                img[c] = 10 * c + r + k
            img[2, 0, 1] = 200
            records += bytes([label]) + img.tobytes()
            expected[split].append((label, img))
        (batches / name).write_bytes(records)

    for split, n in (("train", 10), ("test", 2)):
        d = CIFAR10.load(split, data_root=tmp_path, download=False)
        assert d.images.shape == (n, 3, 32, 32) and d.labels.tolist() == [lab for lab, _ in expected[split]]
        assert np.array_equal(d.images, np.stack([img for _, img in expected[split]]))
    assert d.images[0, 2, 0, 1] == 200 and d.images[0, 2, 1, 0] == 25 and d.images[1, 1, 5, 5] == 16


def test_cifar10_bad_record_length(tmp_path):
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(GenbenchError, match=r"test_batch\.bin is not a CIFAR-10 binary batch"):
        CIFAR10.load("test", data_root=tmp_path, download=False)


# --- CelebA 64 ------------------------------------------------------------------------------------------------


def test_celeba64_fake_folder(tmp_path):
    root = tmp_path / "celeba"
    (root / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, 6)]
    for name in names:  # red frame outside the 140x140 centre crop, blue inside
        im = Image.new("RGB", (178, 218), (255, 0, 0))
        im.paste((0, 0, 255), (19, 39, 159, 179))
        im.save(root / "img_align_celeba" / name, quality=95)
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{n} {s}\n" for n, s in zip(names, [0, 0, 0, 1, 2], strict=True))
    )
    attrs = np.where(np.arange(5 * 40).reshape(5, 40) % 3 == 0, 1, -1)
    header = " ".join(f"A{j}" for j in range(40))
    rows = "".join(f"{n} " + " ".join(f"{v:2d}" for v in row) + "\n" for n, row in zip(names, attrs, strict=True))
    (root / "list_attr_celeba.txt").write_text(f"5\n{header}\n{rows}")

    splits = {s: CELEBA64.load(s, data_root=tmp_path, download=False, progress=False) for s in CELEBA64.splits}
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [3, 1, 1]
    train = splits["train"]
    assert train.images.shape == (3, 3, 64, 64) and train.images.dtype == np.uint8
    assert train.labels.dtype == np.int64 and train.labels.shape == (3, 40)
    assert np.array_equal(train.labels, (attrs[:3] == 1).astype(np.int64))
    assert np.array_equal(splits["test"].labels[0], (attrs[4] == 1).astype(np.int64))
    mean_rgb = train.images.reshape(3, 3, -1).mean(axis=(0, 2))
    assert mean_rgb[0] < 10 and mean_rgb[2] > 240  # the crop keeps the centre only


# --- folders of images ----------------------------------------------------------------------------------------


def save(path: Path, array: np.ndarray, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


def test_folder_grayscale_nested_and_sorted(tmp_path):
    for i, rel in enumerate(["b/1.png", "a.png", "b/0.PNG", "c/d/e.bmp"]):
        save(tmp_path / rel, np.full((6, 5), 10 * i, np.uint8), "L")
    (tmp_path / "notes.txt").write_text("not an image")
    spec = folder(tmp_path)
    assert spec.name == f"folder:{tmp_path}" and spec.splits == ("all",) and spec.shape is None
    d = spec.load("all", progress=False)
    assert d.images.shape == (4, 1, 6, 5) and d.labels is None
    assert d.images[:, 0, 0, 0].tolist() == [10, 20, 0, 30]  # a.png, b/0.PNG, b/1.png, c/d/e.bmp
    assert d.content_hash == content_hash(np.array(d.images), None)


def test_folder_mixed_modes_become_rgb_and_alpha_warns(tmp_path):
    save(tmp_path / "0.png", np.full((4, 4), 50, np.uint8), "L")
    save(tmp_path / "1.jpg", np.full((4, 4, 3), (255, 0, 0), np.uint8), "RGB")
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 200, 0  # fully transparent green
    save(tmp_path / "2.png", rgba, "RGBA")
    with pytest.warns(GenbenchWarning, match=r"alpha channel \(e\.g\. .*2\.png\)"):
        d = folder(tmp_path).load("all", progress=False)
    assert d.images.shape == (3, 3, 4, 4)
    assert d.images[0, :, 0, 0].tolist() == [50, 50, 50] and d.images[2, :, 0, 0].tolist() == [0, 200, 0]
    assert d.images[1, 0].min() > 240 and d.images[1, 1:].max() < 15  # jpeg-compressed red


def test_folder_errors_name_the_file_and_fix(tmp_path):
    with pytest.raises(GenbenchError, match=r"does not exist"):
        folder(tmp_path / "missing").load("all")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(GenbenchError, match=r"file\.png is not a folder"):
        folder(tmp_path / "file.png").load("all")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("")
    with pytest.raises(GenbenchError, match=r"no images in .*empty.*\.png, \.jpg, \.jpeg, \.webp, \.bmp"):
        folder(tmp_path / "empty").load("all")

    bad = tmp_path / "bad"
    save(bad / "ok.png", np.zeros((4, 4), np.uint8), "L")
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(GenbenchError, match=r"cannot read image .*broken\.png"):
        folder(bad).load("all", progress=False)

    sizes = tmp_path / "sizes"
    save(sizes / "a.png", np.zeros((4, 4), np.uint8), "L")
    save(sizes / "b.png", np.zeros((8, 6), np.uint8), "L")
    with pytest.raises(GenbenchError, match=r"(?s)a\.png is 4x4.*b\.png is 6x8.*Resize them all to one size"):
        folder(sizes).load("all", progress=False)


def test_image_data_checks_its_arrays():
    with pytest.raises(GenbenchError, match="uint8"):
        ImageData("x", "all", np.zeros((2, 2, 4, 4), np.float32), None, "sha256:0", "here")
    with pytest.raises(GenbenchError, match="3 labels for 2 images"):
        ImageData("x", "all", np.zeros((2, 1, 4, 4), np.uint8), np.zeros(3, np.int64), "sha256:0", "here")
