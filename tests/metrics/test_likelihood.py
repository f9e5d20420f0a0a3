import math

import numpy as np
import pytest
import torch

from genbench import GenbenchError
from genbench.metrics import likelihood as lk
from genbench.metrics.likelihood import (BitsPerDim, bits_per_dim, discretized_logistic_log_prob,
                                         independent_pixel_bpd)

ALL_VALUES = torch.arange(256, dtype=torch.uint8)


def test_uniform_model_is_exactly_8_bits_per_dim():
    dims = 3 * 32 * 32
    nll = dims * math.log(256)  # uniform over 256 values in every dimension
    assert bits_per_dim(nll, dims) == pytest.approx(8.0, abs=1e-12)
    assert np.allclose(bits_per_dim(np.full(5, nll), dims), 8.0, atol=1e-12)
    assert torch.allclose(bits_per_dim(torch.full((5,), nll, dtype=torch.float64), dims),
                          torch.tensor(8.0, dtype=torch.float64), atol=1e-12)


def test_bits_per_dim_types_agree():
    nll = [123.4, 2000.0, 0.5]
    as_float = [bits_per_dim(v, 784) for v in nll]
    as_numpy = bits_per_dim(np.array(nll), 784)
    as_tensor = bits_per_dim(torch.tensor(nll, dtype=torch.float64), 784)
    assert isinstance(as_numpy, np.ndarray) and isinstance(as_tensor, torch.Tensor)
    np.testing.assert_allclose(as_numpy, as_float, rtol=1e-15)
    np.testing.assert_allclose(as_tensor.numpy(), as_float, rtol=1e-15)
    assert as_float[0] == pytest.approx(123.4 / (784 * math.log(2)))
    with pytest.raises(GenbenchError):
        bits_per_dim(1.0, 0)


def _pmf(mean: float, log_scale: float, dtype=torch.float32) -> torch.Tensor:
    """log P(v) for all 256 values v, (256,)."""
    m = torch.full((256,), mean, dtype=dtype)
    s = torch.full((256,), log_scale, dtype=dtype)
    return discretized_logistic_log_prob(ALL_VALUES, m, s)


@pytest.mark.parametrize("mean", [-4.0, -1.0, -0.5, 0.0, 0.3, 1.0, 4.0, 2 * 37 / 255 - 1])
@pytest.mark.parametrize("log_scale", [-12.0, -7.0, -4.0, -1.0, 0.0, 2.0, 6.0])
def test_discretized_logistic_is_a_pmf(mean, log_scale):
    log_p = _pmf(mean, log_scale)
    assert torch.isfinite(log_p).all()
    assert (log_p <= 1e-6).all()
    assert abs(torch.logsumexp(log_p, 0).exp().item() - 1.0) < 1e-5


@pytest.mark.parametrize("mean,log_scale", [(0.0, -1.0), (0.2, -4.0), (-0.9, -3.0), (0.95, -5.5),
                                            (1.3, -2.0), (-0.1, 1.0)])
def test_discretized_logistic_matches_float64_cdf_difference(mean, log_scale):
    v = np.arange(256, dtype=np.float64)
    centers = 2 * v / 255 - 1
    cdf = lambda t: 1.0 / (1.0 + np.exp(-(t - mean) / np.exp(log_scale)))  # noqa: E731
    upper = np.where(v == 255, 1.0, cdf(centers + 1 / 255))
    lower = np.where(v == 0, 0.0, cdf(centers - 1 / 255))
    p = upper - lower
    assert abs(p.sum() - 1) < 1e-12
    ok = p > 1e-8  # where float64 differencing is itself accurate (relative error < 1e-7)
    got = _pmf(mean, log_scale).double().numpy()
    np.testing.assert_allclose(got[ok], np.log(p[ok]), rtol=1e-4, atol=1e-4)


def test_discretized_logistic_gradients_finite_at_extremes():
    x = torch.tensor([0, 1, 128, 254, 255] * 4, dtype=torch.uint8)
    mean = torch.tensor([-5.0] * 5 + [5.0] * 5 + [0.0] * 10, requires_grad=True)
    log_scale = torch.tensor([-7.0] * 10 + [-12.0] * 5 + [8.0] * 5, requires_grad=True)
    out = discretized_logistic_log_prob(x, mean, log_scale)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(mean.grad).all() and torch.isfinite(log_scale.grad).all()


def test_discretized_logistic_rejects_bad_input():
    with pytest.raises(GenbenchError, match="uint8"):
        discretized_logistic_log_prob(torch.zeros(3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(GenbenchError, match="shape"):
        discretized_logistic_log_prob(torch.zeros(3, dtype=torch.uint8), torch.zeros(4), torch.zeros(4))


def test_independent_pixel_bpd_hand_computed():
    # two 1x1x2 training images, one test image
    train = np.array([[[[0, 5]]], [[[0, 7]]]], dtype=np.uint8)
    test = np.array([[[[0, 5]]]], dtype=np.uint8)
    # dim 0: value 0 seen twice -> (2+1)/(2+256); dim 1: value 5 seen once -> (1+1)/(2+256)
    expected = -(math.log(3 / 258) + math.log(2 / 258)) / (2 * math.log(2))
    assert independent_pixel_bpd(train=train, test=test) == pytest.approx(expected, rel=1e-14)
    # alpha = 0.5, test value 9 unseen in dim 1
    test2 = np.array([[[[0, 9]]]], dtype=np.uint8)
    expected2 = -(math.log(2.5 / 130) + math.log(0.5 / 130)) / (2 * math.log(2))
    assert independent_pixel_bpd(train=train, test=test2, alpha=0.5) == pytest.approx(expected2, rel=1e-14)


def test_independent_pixel_bpd_uniform_limit_and_types():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 40, size=(50, 3, 4, 4), dtype=np.uint8)
    test = rng.integers(0, 256, size=(20, 3, 4, 4), dtype=np.uint8)
    assert independent_pixel_bpd(train=train, test=test, alpha=1e12) == pytest.approx(8.0, abs=1e-8)
    a = independent_pixel_bpd(train=train, test=test)
    b = independent_pixel_bpd(train=torch.from_numpy(train), test=torch.from_numpy(test))
    assert a == b and a > 8.0  # most test values are unseen in training: worse than uniform


def test_independent_pixel_bpd_brute_force_and_chunking():
    rng = np.random.default_rng(1)
    train = rng.integers(0, 6, size=(37, 1, 3, 3), dtype=np.uint8)
    test = rng.integers(0, 6, size=(11, 1, 3, 3), dtype=np.uint8)
    flat_tr, flat_te = train.reshape(37, -1), test.reshape(11, -1)
    total = 0.0
    for d in range(9):
        for v in flat_te[:, d]:
            total += math.log(((flat_tr[:, d] == v).sum() + 1.0) / (37 + 256))
    assert independent_pixel_bpd(train=train, test=test) == pytest.approx(-total / (11 * 9 * math.log(2)),
                                                                          rel=1e-13)
    np.testing.assert_array_equal(lk._value_counts(train, chunk=4), lk._value_counts(train))


def test_independent_pixel_bpd_rejects_bad_input():
    x = np.zeros((2, 1, 4, 4), dtype=np.uint8)
    with pytest.raises(GenbenchError, match="uint8"):
        independent_pixel_bpd(train=x.astype(np.float32), test=x)
    with pytest.raises(GenbenchError, match="test images"):
        independent_pixel_bpd(train=x, test=np.zeros((2, 1, 5, 5), dtype=np.uint8))
    with pytest.raises(GenbenchError, match="alpha"):
        independent_pixel_bpd(train=x, test=x, alpha=0)


def test_bits_per_dim_accumulator_batch_independent():
    rng = np.random.default_rng(2)
    ll = -rng.uniform(100, 300, size=50)
    acc = BitsPerDim(64)
    for chunk in np.array_split(ll, 7):
        acc.update(log_likelihood=torch.from_numpy(chunk))
    out = acc.compute()
    bpd = -ll / (64 * math.log(2))
    assert out["n"] == 50
    assert out["mean"] == pytest.approx(bpd.mean(), rel=1e-12)
    assert out["std"] == pytest.approx(bpd.std(), rel=1e-8)
