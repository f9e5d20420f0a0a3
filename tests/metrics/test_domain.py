import json
import shutil

import pytest
import torch

from genbench import GenbenchError
from genbench.data import DSPRITES_SHAPES, FASHION_MNIST, DatasetUnavailable
from genbench.files import save_state, sha256_file
from genbench.metrics import domain
from genbench.metrics.domain import (LENET_DSPRITES_SHAPES, LENET_FASHION_MNIST, SHIPPED_SHA256,
                                     SHIPPED_SHA256_DSPRITES_SHAPES, SHIPPED_WEIGHTS, SHIPPED_WEIGHTS_DSPRITES_SHAPES)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

RECORD = SHIPPED_WEIGHTS.with_suffix(".json")
SHAPES_RECORD = SHIPPED_WEIGHTS_DSPRITES_SHAPES.with_suffix(".json")


@pytest.fixture(scope="module")
def fashion_test():
    try:
        return FASHION_MNIST.load("test", download=False, progress=False)
    except DatasetUnavailable as exc:
        pytest.skip(f"Fashion-MNIST is not installed: {exc}")


@pytest.fixture(scope="module")
def net():
    return LENET_FASHION_MNIST.load()


def _images(n, seed=0):
    return torch.randint(0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_shipped_weights_match_constant_and_record(net):
    record = json.loads(RECORD.read_text())
    assert sha256_file(SHIPPED_WEIGHTS) == SHIPPED_SHA256 == record["sha256"] == net.weights_sha256
    assert SHIPPED_WEIGHTS.stat().st_size == record["size_bytes"] < 2_000_000
    assert record["command"] == "genbench extractor train --dataset fashion-mnist --out DIR --seed 0"
    assert record["test_images"] == 10_000 and record["test_accuracy"] >= 0.9


def test_shipped_accuracy(net, fashion_test):
    n = 2000  # the first 2000 test images; the record holds the accuracy on all 10,000
    images, labels = torch.from_numpy(fashion_test.images[:n].copy()), torch.from_numpy(fashion_test.labels[:n].copy())
    acc = domain.accuracy(net, images, labels)
    recorded = json.loads(RECORD.read_text())["test_accuracy"]
    assert acc >= 0.9
    # 2000 of the 10,000: a binomial standard error of about 0.0065 at 91%; 0.025 is about four of them
    assert abs(acc - recorded) <= 0.025


def test_outputs_shapes_dtype_and_eval_mode(net):
    spec = LENET_FASHION_MNIST
    assert spec.name == "lenet-fashion-mnist" and spec.num_classes == 10
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = _images(6)
    out = net(x)
    assert out["features"].shape == (6, spec.feature_dim) and out["features"].dtype == torch.float32
    assert out["logits"].shape == (6, 10) and out["logits"].dtype == torch.float32
    assert (out["features"] >= 0).all()  # taken after the ReLU
    # eval mode: no dropout, so the same image gives the same output alone or in a batch
    one = net(x[2:3])
    torch.testing.assert_close(one["features"], out["features"][2:3], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one["logits"], out["logits"][2:3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [
    torch.zeros(2, 3, 28, 28, dtype=torch.uint8),
    torch.zeros(2, 1, 32, 32, dtype=torch.uint8),
    torch.zeros(1, 28, 28, dtype=torch.uint8),
    torch.zeros(2, 1, 28, 28, dtype=torch.float32),
])
def test_wrong_input_is_a_clear_error(net, bad):
    with pytest.raises(GenbenchError, match=r"(?s)28x28 grayscale.*inception-v3-compat"):
        net(bad)


def test_tampered_weights_are_refused_before_loading(tmp_path, monkeypatch):
    tampered = tmp_path / SHIPPED_WEIGHTS.name
    data = bytearray(SHIPPED_WEIGHTS.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    monkeypatch.setattr(domain, "SHIPPED_WEIGHTS", tampered)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a file with the wrong hash must not be loaded")

    monkeypatch.setattr(domain, "load_state", no_unpickling)
    with pytest.raises(GenbenchError) as err:
        LENET_FASHION_MNIST.load()
    message = str(err.value)
    assert str(tampered) in message and SHIPPED_SHA256 in message and sha256_file(tampered) in message


def test_other_weights_file(tmp_path):
    copy = tmp_path / "mine.pt"
    shutil.copyfile(SHIPPED_WEIGHTS, copy)
    assert LENET_FASHION_MNIST.load(copy).weights_sha256 == SHIPPED_SHA256

    wrong = tmp_path / "wrong.pt"
    save_state(wrong, {"w": torch.zeros(3)})
    with pytest.raises(GenbenchError, match="does not hold lenet-fashion-mnist weights") as err:
        LENET_FASHION_MNIST.load(wrong)
    assert str(wrong) in str(err.value)
    with pytest.raises(GenbenchError, match="does not exist"):
        LENET_FASHION_MNIST.load(tmp_path / "missing.pt")


def test_training_is_deterministic(tmp_path, fashion_test):
    rng_before, threads_before = torch.get_rng_state(), torch.get_num_threads()
    a = domain.train_extractor(out=tmp_path / "a", epochs=1, limit=2000, progress=False)
    b = domain.train_extractor(out=tmp_path / "b", epochs=1, limit=2000, progress=False)
    assert a["sha256"] == b["sha256"] == sha256_file(tmp_path / "a" / "lenet-fashion-mnist.pt")
    assert json.loads((tmp_path / "a" / "lenet-fashion-mnist.json").read_text()) == a
    assert a["train_images"] == a["test_images"] == 2000 and a["command"] is None  # not the shipped recipe
    assert a["test_accuracy"] > 0.5  # one epoch on 2000 images: well above chance (0.1)
    # the caller's RNG and thread settings are left as they were
    assert torch.equal(torch.get_rng_state(), rng_before) and torch.get_num_threads() == threads_before
    # the trained file loads as a user-supplied extractor
    assert LENET_FASHION_MNIST.load(tmp_path / "b" / "lenet-fashion-mnist.pt").weights_sha256 == b["sha256"]


def test_training_other_datasets_is_refused(tmp_path):
    with pytest.raises(GenbenchError, match="fashion-mnist, dsprites-shapes, not 'mnist'"):
        domain.train_extractor(dataset="mnist", out=tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# lenet-dsprites-shapes


@pytest.fixture(scope="module")
def shapes_splits():
    """dsprites-shapes train and test, rendered once (about 3 s)."""
    return {split: DSPRITES_SHAPES.load(split, progress=False) for split in ("train", "test")}


@pytest.fixture(scope="module")
def shapes_net():
    return LENET_DSPRITES_SHAPES.load()


def test_shapes_shipped_weights_match_constant_and_record(shapes_net):
    record = json.loads(SHAPES_RECORD.read_text())
    assert sha256_file(SHIPPED_WEIGHTS_DSPRITES_SHAPES) == SHIPPED_SHA256_DSPRITES_SHAPES == record["sha256"]
    assert record["sha256"] == shapes_net.weights_sha256 == domain.SHAPES.sha256
    assert SHIPPED_WEIGHTS_DSPRITES_SHAPES.stat().st_size == record["size_bytes"] < 1_000_000
    assert record["command"] == "genbench extractor train --dataset dsprites-shapes --out DIR --seed 0"
    assert record["dataset"] == "dsprites-shapes" and record["train_images"] == 24_576
    assert record["test_images"] == 3_072 and record["test_accuracy"] >= 0.99
    assert record["recipe"]["epochs"] == domain.SHAPES.epochs and record["recipe"]["threads"] == 1


def test_shapes_shipped_accuracy(shapes_net, shapes_splits):
    test = shapes_splits["test"]  # all 3,072 test images, as the record
    images, shapes = torch.from_numpy(test.images.copy()), torch.from_numpy(test.labels[:, 0].copy())
    record = json.loads(SHAPES_RECORD.read_text())
    assert record["train_data_hash"] == shapes_splits["train"].content_hash
    acc = domain.accuracy(shapes_net, images, shapes)
    assert acc >= 0.99
    assert abs(acc - record["test_accuracy"]) <= 2 / 3072  # the same images; at most a borderline image or two


def test_shapes_outputs_shapes_dtype_and_eval_mode(shapes_net, shapes_splits):
    spec = LENET_DSPRITES_SHAPES
    assert spec.name == "lenet-dsprites-shapes" and spec.num_classes == 3 and spec.classifies == "dsprites-shapes"
    assert spec.feature_dim == 128
    assert not shapes_net.training and not any(p.requires_grad for p in shapes_net.parameters())
    assert sum(p.numel() for p in shapes_net.parameters()) == 161_395
    x = torch.from_numpy(shapes_splits["test"].images[::512].copy())  # (6, 1, 64, 64): two of each shape
    out = shapes_net(x)
    assert out["features"].shape == (6, 128) and out["features"].dtype == torch.float32
    assert out["logits"].shape == (6, 3) and out["logits"].dtype == torch.float32
    assert (out["features"] >= 0).all()  # taken after the ReLU
    assert out["logits"].argmax(1).tolist() == [0, 0, 1, 1, 2, 2]
    one = shapes_net(x[2:3])
    torch.testing.assert_close(one["features"], out["features"][2:3], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(one["logits"], out["logits"][2:3], rtol=1e-5, atol=1e-5)
    # any uint8 values are taken (translations are not binary)
    assert shapes_net(torch.randint(0, 256, (2, 1, 64, 64), dtype=torch.uint8))["logits"].shape == (2, 3)


@pytest.mark.parametrize(("bad", "instead"), [
    (torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "lenet-fashion-mnist extractor"),
    (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), "inception-v3-compat"),
    (torch.zeros(2, 1, 32, 32, dtype=torch.uint8), "inception-v3-compat"),
    (torch.zeros(1, 64, 64, dtype=torch.uint8), "inception-v3-compat"),
    (torch.zeros(2, 1, 64, 64, dtype=torch.float32), "inception-v3-compat"),
])
def test_shapes_wrong_input_is_a_clear_error(shapes_net, bad, instead):
    with pytest.raises(GenbenchError, match=r"(?s)lenet-dsprites-shapes extractor takes 64x64 grayscale.*"
                                            r"\(B, 1, 64, 64\).*" + instead):
        shapes_net(bad)


def test_fashion_names_the_shapes_extractor_for_64x64_input(net):
    with pytest.raises(GenbenchError, match=r"(?s)28x28 grayscale.*use the lenet-dsprites-shapes extractor"):
        net(torch.zeros(2, 1, 64, 64, dtype=torch.uint8))


def test_shapes_tampered_weights_are_refused_before_loading(tmp_path, monkeypatch):
    tampered = tmp_path / SHIPPED_WEIGHTS_DSPRITES_SHAPES.name
    data = bytearray(SHIPPED_WEIGHTS_DSPRITES_SHAPES.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    monkeypatch.setattr(domain, "SHIPPED_WEIGHTS_DSPRITES_SHAPES", tampered)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a file with the wrong hash must not be loaded")

    monkeypatch.setattr(domain, "load_state", no_unpickling)
    with pytest.raises(GenbenchError) as err:
        LENET_DSPRITES_SHAPES.load()
    message = str(err.value)
    assert str(tampered) in message and SHIPPED_SHA256_DSPRITES_SHAPES in message
    assert sha256_file(tampered) in message and "--dataset dsprites-shapes" in message


def test_shapes_refuses_fashion_weights(tmp_path):
    with pytest.raises(GenbenchError, match="does not hold lenet-dsprites-shapes weights"):
        LENET_DSPRITES_SHAPES.load(SHIPPED_WEIGHTS)
    with pytest.raises(GenbenchError, match="does not hold lenet-fashion-mnist weights"):
        LENET_FASHION_MNIST.load(SHIPPED_WEIGHTS_DSPRITES_SHAPES)


def test_shapes_training_is_deterministic(tmp_path, shapes_splits, monkeypatch):
    # the splits rendered once by the fixture, not twice per run
    monkeypatch.setattr(domain, "_load_split", lambda dataset, split, **kwargs: shapes_splits[split])
    rng_before, threads_before = torch.get_rng_state(), torch.get_num_threads()
    kw = dict(dataset="dsprites-shapes", epochs=6, limit=1024, progress=False)  # 48 steps, about 2 s each run
    a = domain.train_extractor(out=tmp_path / "a", **kw)
    b = domain.train_extractor(out=tmp_path / "b", **kw)
    assert a["sha256"] == b["sha256"] == sha256_file(tmp_path / "a" / "lenet-dsprites-shapes.pt")
    assert json.loads((tmp_path / "a" / "lenet-dsprites-shapes.json").read_text()) == a
    assert a["train_images"] == a["test_images"] == 1024 and a["command"] is None  # not the shipped recipe
    # above chance (1/3; the evenly spaced subsets hold all three shapes), though 48 steps learn little: the full
    # recipe's first epoch (192 steps) reaches about 0.85
    assert a["test_accuracy"] > 0.4
    assert torch.equal(torch.get_rng_state(), rng_before) and torch.get_num_threads() == threads_before
    assert LENET_DSPRITES_SHAPES.load(tmp_path / "b" / "lenet-dsprites-shapes.pt").weights_sha256 == b["sha256"]


def test_registered_and_trainable_from_the_cli():
    from click.testing import CliRunner

    from genbench import registry
    from genbench.cli import main

    assert registry.EXTRACTORS["lenet-dsprites-shapes"] is LENET_DSPRITES_SHAPES
    assert registry.EXTRACTORS["lenet-fashion-mnist"] is LENET_FASHION_MNIST
    result = CliRunner().invoke(main, ["extractor", "train", "--help"])
    assert result.exit_code == 0
    assert "dsprites-shapes" in result.output and "fashion-mnist" in result.output and "64x64" in result.output
