import json
import shutil

import pytest
import torch

from genbench import GenbenchError
from genbench.data import FASHION_MNIST, DatasetUnavailable
from genbench.files import save_state, sha256_file
from genbench.metrics import domain
from genbench.metrics.domain import LENET_FASHION_MNIST, SHIPPED_SHA256, SHIPPED_WEIGHTS

RECORD = SHIPPED_WEIGHTS.with_suffix(".json")


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
