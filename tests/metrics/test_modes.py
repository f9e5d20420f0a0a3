"""Mode coverage: closed forms on constructed sample sets, classify() on a closed-form stand-in classifier, the
result records, and the shipped Fashion-MNIST classifier on real data."""

import json
import math

import numpy as np
import pytest
import torch

from genbench import GenbenchError
from genbench.data import FASHION_MNIST, DatasetUnavailable, ImageData
from genbench.metrics import modes
from genbench.results import _metric_problems

LENET = "lenet-fashion-mnist"


# ---------------------------------------------------------------------------------------------- functional core

def test_class_histogram_counts_and_checks():
    h = modes.class_histogram(np.array([0, 2, 2, 9, 2]), 10)
    assert h.dtype == np.int64 and h.tolist() == [1, 0, 3, 0, 0, 0, 0, 0, 0, 1]
    assert modes.class_histogram(np.zeros(0, np.int64), 3).tolist() == [0, 0, 0]
    with pytest.raises(GenbenchError, match="0..9"):
        modes.class_histogram(np.array([10]), 10)
    with pytest.raises(GenbenchError, match="integer"):
        modes.class_histogram(np.array([0.0, 1.0]), 10)
    with pytest.raises(GenbenchError, match="integer array"):
        modes.class_histogram(np.zeros((2, 2), np.int64), 10)


def test_kl_divergence_closed_forms():
    p = np.array([0.5, 0.25, 0.25])
    assert modes.kl_divergence(p, p) == 0.0
    q = np.array([0.25, 0.25, 0.5])
    want = 0.5 * math.log(2) + 0.25 * math.log(0.5)
    assert modes.kl_divergence(p, q) == pytest.approx(want, rel=1e-14, abs=0)
    # 0 log 0 = 0: modes without generated mass contribute nothing, whatever q says there
    assert modes.kl_divergence(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(math.log(2), rel=1e-15)
    assert modes.kl_divergence(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0
    # inf where p > 0 = q
    assert modes.kl_divergence(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == math.inf
    with pytest.raises(GenbenchError, match="sum to 1"):
        modes.kl_divergence(np.array([2.0, 1.0]), np.array([0.5, 0.5]))
    with pytest.raises(GenbenchError, match="differ in length"):
        modes.kl_divergence(np.array([1.0]), np.array([0.5, 0.5]))


def test_one_class_covers_one_mode_with_kl_log_10():
    cov = modes.mode_coverage(np.full(500, 7), num_modes=10)
    assert cov["modes_covered"] == 1 and cov["n"] == 500
    assert cov["kl"] == pytest.approx(math.log(10), rel=1e-14)
    assert cov["histogram"].tolist() == [0] * 7 + [500, 0, 0]


def test_all_classes_equally_cover_ten_modes_with_kl_0():
    cov = modes.mode_coverage(np.tile(np.arange(10), 30), num_modes=10)
    assert cov["modes_covered"] == 10 and cov["kl"] == pytest.approx(0.0, abs=1e-15)
    assert cov["sampling_floor"] == pytest.approx(9 / 600)


def test_min_count_and_a_non_uniform_reference():
    classes = np.array([0] * 6 + [1] * 3 + [2] * 1)
    assert modes.mode_coverage(classes, num_modes=4)["modes_covered"] == 3
    assert modes.mode_coverage(classes, num_modes=4, min_count=3)["modes_covered"] == 2
    ref_counts = np.array([30, 30, 20, 20])  # counts are normalized
    cov = modes.mode_coverage(classes, num_modes=4, reference=ref_counts)
    p, q = np.array([0.6, 0.3, 0.1, 0.0]), np.array([0.3, 0.3, 0.2, 0.2])
    assert cov["kl"] == pytest.approx(sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0), rel=1e-13)
    # a mode the reference never shows but the samples reach: infinite KL
    assert modes.mode_coverage(classes, num_modes=4, reference=[1, 1, 0, 1])["kl"] == math.inf
    assert modes.mode_coverage(classes, num_modes=4, reference=[1, 1, 0, 1])["reference_modes"] == 3
    with pytest.raises(GenbenchError, match="one entry per mode"):
        modes.mode_coverage(classes, num_modes=4, reference=[1, 1])
    with pytest.raises(GenbenchError, match="no samples"):
        modes.mode_coverage(np.zeros(0, np.int64), num_modes=4)


def test_stacked_modes_reads_the_channels_as_digits():
    triples = np.array([[0, 0, 0], [1, 2, 3], [9, 9, 9], [3, 0, 7]])
    assert modes.stacked_modes(triples).tolist() == [0, 123, 999, 307]
    every = np.stack(np.meshgrid(*[np.arange(10)] * 3, indexing="ij"), -1).reshape(-1, 3)
    assert np.array_equal(modes.stacked_modes(every), np.arange(1000))  # a bijection onto 0..999
    assert modes.stacked_modes(np.array([[1, 2]]), num_classes=4).tolist() == [6]
    with pytest.raises(GenbenchError, match="0..9"):
        modes.stacked_modes(np.array([[0, 10, 0]]))
    with pytest.raises(GenbenchError, match=r"\(N, C\)"):
        modes.stacked_modes(np.array([1, 2, 3]))


@pytest.mark.parametrize("k", [1, 37, 250, 1000])
def test_k_distinct_triples_spread_evenly_give_k_modes_and_kl_log_1000_over_k(k):
    rs = np.random.RandomState(k)
    chosen = rs.choice(1000, k, replace=False)
    triples = np.stack([chosen // 100, chosen // 10 % 10, chosen % 10], 1)  # k distinct (c0, c1, c2)
    samples = rs.permutation(np.repeat(triples, 4, axis=0))  # each 4 times, shuffled
    cov = modes.mode_coverage(modes.stacked_modes(samples), num_modes=1000)
    assert cov["modes_covered"] == k and cov["n"] == 4 * k
    assert cov["kl"] == pytest.approx(math.log(1000 / k), rel=1e-12, abs=1e-14)
    assert set(np.flatnonzero(cov["histogram"])) == set(chosen)


# ---------------------------------------------------------------------------------------------- classify

class PixelClassifier(torch.nn.Module):
    """Closed-form stand-in: the class of an image is the value of its top-left pixel (0..9), as the argmax of
    logits_k = -(x[0, 0] - k)^2. Takes uint8 (B, 1, H, W) only, like the LeNet extractor."""

    weights_sha256 = "sha256:stand-in"

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.register_buffer("k", torch.arange(num_classes, dtype=torch.float32))
        self.calls = []

    def forward(self, x):
        assert x.dtype == torch.uint8 and x.ndim == 4 and x.shape[1] == 1, (x.dtype, x.shape)
        self.calls.append(len(x))
        v = x[:, 0, 0, 0].float()
        return {"features": v[:, None], "logits": -((v[:, None] - self.k) ** 2)}


def _images_of(classes: np.ndarray, size: int = 6, seed: int = 0) -> np.ndarray:
    """uint8 (N, C, size, size) noise whose top-left pixel of channel j is classes[:, j]."""
    classes = classes.reshape(len(classes), -1)
    x = np.random.RandomState(seed).randint(0, 256, (len(classes), classes.shape[1], size, size)).astype(np.uint8)
    x[:, :, 0, 0] = classes
    return x


def test_classify_single_and_per_channel():
    rs = np.random.RandomState(1)
    labels = rs.randint(0, 10, 101)
    net = PixelClassifier()
    got = modes.classify(net, _images_of(labels), batch_size=16)
    assert got.dtype == np.int64 and got.shape == (101,) and np.array_equal(got, labels)
    assert net.calls == [16] * 6 + [5]

    triples = rs.randint(0, 10, (101, 3))
    net = PixelClassifier()
    got = modes.classify(net, _images_of(triples), batch_size=30, per_channel=True)
    assert got.shape == (101, 3) and np.array_equal(got, triples)  # column j is channel j
    assert max(net.calls) <= 30 and sum(net.calls) == 303


def test_classify_is_batch_size_independent_and_takes_memmaps_and_tensors(tmp_path):
    triples = np.random.RandomState(2).randint(0, 10, (50, 3))
    x = _images_of(triples)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")  # read-only, as cached datasets are
    runs = [modes.classify(PixelClassifier(), mm, batch_size=b, per_channel=True) for b in (1, 3, 7, 1000)]
    runs.append(modes.classify(PixelClassifier(), torch.from_numpy(x), per_channel=True))
    for r in runs:
        assert np.array_equal(r, triples)


def test_classify_puts_the_module_in_eval_mode_and_checks_its_inputs_and_outputs():
    net = PixelClassifier().train()
    modes.classify(net, _images_of(np.arange(3)))
    assert not net.training
    with pytest.raises(GenbenchError, match="uint8"):
        modes.classify(net, _images_of(np.arange(3)).astype(np.float32))
    with pytest.raises(GenbenchError, match=r"\(N, C, H, W\)"):
        modes.classify(net, np.zeros((3, 6, 6), np.uint8))

    class NoLogits(torch.nn.Module):
        def forward(self, x):
            return {"features": x.float().flatten(1)}

    with pytest.raises(GenbenchError, match="logits"):
        modes.classify(NoLogits(), _images_of(np.arange(3)))


# ---------------------------------------------------------------------------------------------- records

def _valid(records: dict) -> None:
    for name, rec in records.items():
        assert list(_metric_problems(name, rec)) == []
        json.dumps(rec, allow_nan=False)


def test_evaluate_modes_single_channel_records():
    labels = np.array([3] * 40)
    r = modes.evaluate_modes(PixelClassifier(), _images_of(labels), extractor="stand-in", batch_size=8)
    assert set(r) == {"classes_covered[stand-in]", "class_kl[stand-in]"}
    covered, kl = r["classes_covered[stand-in]"], r["class_kl[stand-in]"]
    assert covered["value"] == 1 and covered["higher_is_better"] is True
    assert kl["value"] == pytest.approx(math.log(10), rel=1e-14) and kl["higher_is_better"] is False
    for rec in (covered, kl):
        assert rec["n"] == 40 and rec["reference"] == "uniform" and rec["num_modes"] == 10
        assert rec["histogram"] == [0, 0, 0, 40, 0, 0, 0, 0, 0, 0] and isinstance(rec["histogram"], list)
        assert rec["extractor"] == "stand-in" and rec["extractor_sha256"] == "sha256:stand-in"
    assert kl["unit"] == "nats" and kl["divergence"] == "KL(generated || reference)"
    assert kl["sampling_floor"] == pytest.approx(9 / 80)
    _valid(r)


def test_evaluate_modes_stacked_records():
    chosen = np.random.RandomState(3).choice(1000, 37, replace=False)
    triples = np.repeat(np.stack([chosen // 100, chosen // 10 % 10, chosen % 10], 1), 2, axis=0)
    r = modes.evaluate_modes(PixelClassifier(), _images_of(triples), extractor="stand-in", stacked=True)
    assert set(r) == {"modes_covered[stand-in]", "mode_kl[stand-in]"}
    assert r["modes_covered[stand-in]"]["value"] == 37
    assert r["mode_kl[stand-in]"]["value"] == pytest.approx(math.log(1000 / 37), rel=1e-12)
    hist = r["mode_kl[stand-in]"]["histogram"]
    assert len(hist) == 1000 and sum(hist) == 74 and set(np.flatnonzero(hist)) == set(chosen)
    _valid(r)
    with pytest.raises(GenbenchError, match="several channels"):
        modes.evaluate_modes(PixelClassifier(), _images_of(np.arange(5)), extractor="stand-in", stacked=True)


def test_evaluate_modes_against_a_labelled_split():
    """reference=ImageData: the split's labels give the data's mode distribution, and the records name it."""
    ref_labels = np.array([[0, 0, 0]] * 3 + [[0, 0, 1]])  # modes 0 and 1, 3:1
    ref = ImageData("toy-stacked", "train", np.zeros((4, 3, 6, 6), np.uint8), ref_labels, "sha256:x", "test")
    samples = _images_of(np.array([[0, 0, 0], [0, 0, 1]]))  # modes 0 and 1, 1:1
    r = modes.evaluate_modes(PixelClassifier(), samples, extractor="stand-in", stacked=True, reference=ref)
    kl = r["mode_kl[stand-in]"]
    assert kl["reference"] == "toy-stacked:train"
    assert kl["value"] == pytest.approx(0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25), rel=1e-13)
    # a sample in a mode the split never shows
    r = modes.evaluate_modes(PixelClassifier(), _images_of(np.array([[5, 5, 5]])), extractor="stand-in",
                             stacked=True, reference=ref)
    assert r["mode_kl[stand-in]"]["value"] == math.inf
    one = ImageData("toy", "test", np.zeros((4, 1, 6, 6), np.uint8), np.array([0, 1, 2, 3]), "sha256:y", "test")
    r = modes.evaluate_modes(PixelClassifier(), _images_of(np.array([0, 1, 2, 3])), extractor="stand-in",
                             dataset_classes=4, reference=one)
    assert r["class_kl[stand-in]"]["value"] == 0.0 and r["class_kl[stand-in]"]["reference"] == "toy:test"
    with pytest.raises(GenbenchError, match="one class per channel"):
        modes.evaluate_modes(PixelClassifier(), samples, extractor="stand-in", stacked=True, reference=one)


# ---------------------------------------------------------------------------------------------- real data

def test_shipped_classifier_covers_the_fashion_mnist_classes_evenly():
    """Real test images through lenet-fashion-mnist: every class reached, KL near the sampling floor (the
    docstring's 0.0002 on all 10,000; here the first 2,000)."""
    from genbench.metrics.domain import LENET_FASHION_MNIST

    try:
        test = FASHION_MNIST.load("test", download=False, progress=False)
    except DatasetUnavailable as exc:
        pytest.skip(f"Fashion-MNIST is not installed: {exc}")
    net = LENET_FASHION_MNIST.load()
    r = modes.evaluate_modes(net, test.images[:2000], extractor=LENET, reference=test)
    covered, kl = r[f"classes_covered[{LENET}]"], r[f"class_kl[{LENET}]"]
    assert covered["value"] == 10 and kl["reference"] == "fashion-mnist:test"
    assert 0 <= kl["value"] < 0.01 and kl["extractor_sha256"] == net.weights_sha256
