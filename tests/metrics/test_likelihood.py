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


# ----------------------------------------------------------------------------------------------------------
# The discretized Gaussian (DDPM's decoder, Ho et al. 2020 Eq. 13) and the Gaussian KL of the diffusion bound

def _gauss_pmf(mean: float, log_scale: float, dtype=torch.float32) -> torch.Tensor:
    """log P(v) for all 256 values v, (256,), under the discretized Gaussian."""
    m = torch.full((256,), mean, dtype=dtype)
    s = torch.full((256,), log_scale, dtype=dtype)
    return lk.discretized_gaussian_log_prob(ALL_VALUES, m, s)


@pytest.mark.parametrize("mean", [-2.0, -1.0, -0.5, 0.0, 0.3, 1.0, 2.0, 2 * 37 / 255 - 1])
@pytest.mark.parametrize("log_scale", [-8.0, -6.0, -4.0, -2.0, -1.0, 0.0, 1.0, 3.0])
def test_discretized_gaussian_is_a_pmf(mean, log_scale):
    log_p = _gauss_pmf(mean, log_scale)
    assert torch.isfinite(log_p).all()
    assert (log_p <= 1e-6).all()
    # float32: each bin's log carries ~1e-7 relative rounding (and the two-log difference of very wide bins
    # ~1e-4 on their small inner mass), so the total is 1 to well within 1e-5 (measured <= 2.4e-7 on this grid)
    assert abs(torch.logsumexp(log_p, 0).exp().item() - 1.0) < 1e-5
    # in float64 the pmf is exact to rounding
    assert abs(torch.logsumexp(_gauss_pmf(mean, log_scale, torch.float64), 0).exp().item() - 1.0) < 1e-12


@pytest.mark.parametrize("mean,log_scale", [(0.0, -1.0), (0.2, -4.0), (-0.9, -3.0), (0.95, -5.5),
                                            (1.3, -2.0), (-0.1, 1.0), (2 * 100 / 255 - 1, -6.0), (-1.7, 0.5)])
def test_discretized_gaussian_matches_float64_cdf_difference(mean, log_scale):
    v = torch.arange(256, dtype=torch.float64)
    centers = 2 * v / 255 - 1
    s = math.exp(log_scale)
    upper = torch.where(v == 255, torch.ones_like(v), torch.special.ndtr((centers + 1 / 255 - mean) / s))
    lower = torch.where(v == 0, torch.zeros_like(v), torch.special.ndtr((centers - 1 / 255 - mean) / s))
    p = (upper - lower).numpy()
    assert abs(p.sum() - 1) < 1e-12
    ok = p > 1e-8  # where float64 differencing is itself accurate (relative error < 1e-7)
    assert ok.sum() >= 1
    got = _gauss_pmf(mean, log_scale).double().numpy()
    np.testing.assert_allclose(got[ok], np.log(p[ok]), rtol=1e-4, atol=1e-4)  # float32 result
    got64 = _gauss_pmf(mean, log_scale, torch.float64).numpy()
    np.testing.assert_allclose(got64[ok], np.log(p[ok]), rtol=1e-7, atol=1e-9)


def test_discretized_gaussian_against_erf_and_far_tails():
    # a few bins by hand with math.erfc (Phi(z) = erfc(-z / sqrt 2) / 2, accurate in the lower tail; upper-tail
    # bins by symmetry, P = Phi(-b) - Phi(-a)): mean 0.1, s = 0.05, bins at the mean, 22 sigma out, the edges
    mean, s = 0.1, 0.05
    Phi = lambda z: 0.5 * math.erfc(-z / math.sqrt(2))  # noqa: E731
    x = torch.tensor([0, 100, 130, 140, 141, 150, 255], dtype=torch.uint8)
    got = lk.discretized_gaussian_log_prob(x, torch.full((7,), mean, dtype=torch.float64),
                                           torch.full((7,), math.log(s), dtype=torch.float64))
    for v, g in zip(x.tolist(), got.tolist()):
        c = 2 * v / 255 - 1
        a, b = (c + 1 / 255 - mean) / s, (c - 1 / 255 - mean) / s
        if c < mean:
            want = math.log(Phi(a) - (0.0 if v == 0 else Phi(b)))
        else:
            want = math.log(Phi(-b) - (0.0 if v == 255 else Phi(-a)))
        # float64 with exact CDFs on both sides: agreement to ~1e-13 relative; 1e-9 is loose
        assert g == pytest.approx(want, rel=1e-9, abs=1e-12), v
    assert got[0].item() < -200  # value 0 lies 22 sigma below the mean: log P ~ -245
    # far in the tails the logs stay finite (no difference of two numbers near 1 or 0 is formed)
    x = torch.tensor([0, 1, 2, 128, 253, 254, 255] * 2, dtype=torch.uint8)
    mean = torch.tensor([1.0] * 7 + [-1.0] * 7, requires_grad=True)
    log_scale = torch.full((14,), -8.0, requires_grad=True)
    out = lk.discretized_gaussian_log_prob(x, mean, log_scale)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(mean.grad).all() and torch.isfinite(log_scale.grad).all()
    assert out[0].item() < -1e6  # value 0 at 5800 sigma from mean 1: log P ~ -z^2 / 2 ~ -1.7e7
    assert out[6].item() == pytest.approx(0.0, abs=1e-6)  # value 255 takes the whole mass of a mean at 1


def test_discretized_gaussian_rejects_bad_input():
    with pytest.raises(GenbenchError, match="uint8"):
        lk.discretized_gaussian_log_prob(torch.zeros(3), torch.zeros(3), torch.zeros(3))
    with pytest.raises(GenbenchError, match="shape"):
        lk.discretized_gaussian_log_prob(torch.zeros(3, dtype=torch.uint8), torch.zeros(4), torch.zeros(4))
    with pytest.raises(GenbenchError, match="shape"):
        lk.discretized_gaussian_log_prob(torch.zeros(3, dtype=torch.uint8), torch.zeros(3), torch.zeros(1))


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean1, mean2 = torch.randn(2, 50, generator=g, dtype=torch.float64) * 2
    logvar1, logvar2 = torch.randn(2, 50, generator=g, dtype=torch.float64) * 3
    want = torch.distributions.kl_divergence(torch.distributions.Normal(mean1, (0.5 * logvar1).exp()),
                                             torch.distributions.Normal(mean2, (0.5 * logvar2).exp()))
    got = lk.gaussian_kl(mean1, logvar1, mean2, logvar2)
    assert got.shape == (50,)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert (got >= 0).all()
    torch.testing.assert_close(lk.gaussian_kl(mean1, logvar1, mean1, logvar1), torch.zeros_like(mean1),
                               rtol=0, atol=1e-15)
    # broadcasting, as the diffusion bound uses it (per-timestep log-variances against image tensors)
    out = lk.gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3), torch.tensor(math.log(4.0)))
    torch.testing.assert_close(out, torch.full((2, 3), 0.5 * (math.log(4) - 1 + 0.25 + 0.25)), rtol=1e-6,
                               atol=1e-7)


# ----------------------------------------------------------------------------------------------------------
# The discretized logistic mixture of PixelCNN++ (Salimans et al. 2017, Sec. 2.1-2.2), with the RGB coupling
# ----------------------------------------------------------------------------------------------------------
def _mix_params(B, K, C, H, W, seed, dtype=torch.float64, coupled=True, log_scale_range=(-5.0, 2.0),
                mean_range=(-1.2, 1.2)):
    g = torch.Generator().manual_seed(seed)
    u = lambda *shape: torch.rand(*shape, generator=g, dtype=dtype)  # noqa: E731
    lo, hi = log_scale_range
    logit_probs = torch.randn(B, K, H, W, generator=g, dtype=dtype) * 2
    means = mean_range[0] + (mean_range[1] - mean_range[0]) * u(B, K, C, H, W)
    log_scales = lo + (hi - lo) * u(B, K, C, H, W)
    coeffs = (2 * u(B, K, C * (C - 1) // 2, H, W) - 1) if (coupled and C > 1) else None
    return logit_probs, means, log_scales, coeffs


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("seed", range(6))
def test_logistic_mixture_is_a_pmf_grayscale(seed, dtype, tol):
    # one grey pixel's parameters, evaluated at all 256 values laid out along H
    logit_probs, means, log_scales, _ = _mix_params(1, 3, 1, 1, 1, seed, dtype=dtype)
    x = ALL_VALUES.view(1, 1, 256, 1)
    log_p = lk.discretized_logistic_mixture_log_prob(x, logit_probs.expand(1, 3, 256, 1),
                                                     means.expand(1, 3, 1, 256, 1),
                                                     log_scales.expand(1, 3, 1, 256, 1))
    assert log_p.shape == (1, 256, 1) and log_p.dtype == dtype
    assert torch.isfinite(log_p).all()
    assert abs(log_p.double().exp().sum().item() - 1.0) < tol


def test_logistic_mixture_rgb_coupling_sums_to_one_over_all_colours():
    # one RGB pixel, K = 2, random coupling in (-1, 1): P summed over all 256^3 colours must be 1, which holds
    # only if the coupling is a proper factorization P(R) P(G|R) P(B|R,G) within each component
    K = 2
    logit_probs, means, log_scales, coeffs = _mix_params(1, K, 3, 1, 1, seed=11, dtype=torch.float32,
                                                         log_scale_range=(-4.0, -1.0), mean_range=(-0.8, 0.8))
    assert coeffs.abs().min() > 0.05  # the coupling is actually exercised
    gb = torch.stack(torch.meshgrid(ALL_VALUES, ALL_VALUES, indexing="ij")).reshape(2, -1)  # (2, 65536)
    rows = 16                                                                              # R values per chunk
    n = rows * gb.shape[1]
    total = 0.0
    for r0 in range(0, 256, rows):
        r = ALL_VALUES[r0:r0 + rows].repeat_interleave(gb.shape[1])
        x = torch.cat([r[None], gb.repeat(1, rows)]).view(1, 3, n, 1)
        log_p = lk.discretized_logistic_mixture_log_prob(
            x, logit_probs.expand(1, K, n, 1), means.expand(1, K, 3, n, 1), log_scales.expand(1, K, 3, n, 1),
            coeffs.expand(1, K, 3, n, 1))
        total += log_p.double().exp().sum().item()
    assert abs(total - 1.0) < 1e-4


def _brute_force_mixture(x, logit_probs, means, log_scales, coeffs):
    """float64 numpy: sum_k pi_k prod_c [CDF(upper) - CDF(lower)], the coupling applied to the means."""
    x, lp, mu, ls = (t.double().numpy() for t in (x, logit_probs, means, log_scales))
    C = x.shape[1]
    xs = 2 * x / 255 - 1                              # (B, C, H, W)
    mu = mu.copy()
    if coeffs is not None:
        c = coeffs.double().numpy()
        mu[:, :, 1] += c[:, :, 0] * xs[:, None, 0]                               # G | R
        mu[:, :, 2] += c[:, :, 1] * xs[:, None, 0] + c[:, :, 2] * xs[:, None, 1]  # B | R, G
    s = np.exp(ls)
    cdf = lambda t: 1.0 / (1.0 + np.exp(-(t[:, None] - mu) / s))  # noqa: E731
    upper = np.where(x[:, None] == 255, 1.0, cdf(xs + 1 / 255))
    lower = np.where(x[:, None] == 0, 0.0, cdf(xs - 1 / 255))
    p_k = np.prod(upper - lower, axis=2)            # (B, K, H, W)
    w = np.exp(lp - lp.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    assert C in (1, 3)
    return np.log((w * p_k).sum(axis=1))


@pytest.mark.parametrize("C,coupled", [(1, False), (3, False), (3, True)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logistic_mixture_matches_float64_brute_force(C, coupled, seed):
    B, K, H, W = 2, 4, 3, 2
    logit_probs, means, log_scales, coeffs = _mix_params(B, K, C, H, W, seed, coupled=coupled,
                                                         log_scale_range=(-2.5, 0.0), mean_range=(-1.0, 1.0))
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randint(0, 256, (B, C, H, W), generator=g, dtype=torch.uint8)
    x[0, :, 0, 0], x[1, :, 0, 0] = 0, 255             # the edge bins
    x[0, 0, 1, 0], x[1, -1, 1, 1] = 255, 0
    want = _brute_force_mixture(x, logit_probs, means, log_scales, coeffs)
    assert want.min() > -40                           # probabilities not tiny: the brute force is accurate
    got = lk.discretized_logistic_mixture_log_prob(x, logit_probs, means, log_scales, coeffs)
    assert got.shape == (B, H, W) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-9)
    args32 = [t.float() if t is not None else None for t in (logit_probs, means, log_scales, coeffs)]
    got32 = lk.discretized_logistic_mixture_log_prob(x, *args32)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.double().numpy(), want, rtol=1e-5, atol=1e-4)


def test_logistic_mixture_single_component_is_the_discretized_logistic():
    logit_probs, means, log_scales, _ = _mix_params(3, 1, 1, 4, 5, seed=7, dtype=torch.float32)
    x = torch.randint(0, 256, (3, 1, 4, 5), generator=torch.Generator().manual_seed(7), dtype=torch.uint8)
    x[0, 0, 0, :2] = torch.tensor([0, 255], dtype=torch.uint8)
    got = lk.discretized_logistic_mixture_log_prob(x, logit_probs, means, log_scales)
    want = discretized_logistic_log_prob(x, means[:, 0], log_scales[:, 0]).sum(1)  # sum over the one channel
    assert got.shape == want.shape == (3, 4, 5)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_logistic_mixture_rejects_bad_input():
    f = lk.discretized_logistic_mixture_log_prob
    lp, mu, ls, co = _mix_params(2, 3, 3, 4, 4, seed=0, dtype=torch.float32)
    x = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    f(x, lp, mu, ls, co)  # the valid call
    f(x, lp, mu, ls)      # coupling is optional for RGB
    with pytest.raises(GenbenchError, match="uint8"):
        f(x.float(), lp, mu, ls, co)
    with pytest.raises(GenbenchError, match=r"\(B, C, H, W\)"):
        f(x[0], lp, mu, ls, co)
    with pytest.raises(GenbenchError, match="means"):
        f(x, lp, mu[:, :, :2], ls, co)                # channel count differs from x
    with pytest.raises(GenbenchError, match="means"):
        f(x, lp, mu[:, :, :, :3], ls, co)             # spatial size differs from x
    with pytest.raises(GenbenchError, match="log_scales"):
        f(x, lp, mu, ls[:, :2], co)
    with pytest.raises(GenbenchError, match="logit_probs"):
        f(x, lp[:, :2], mu, ls, co)                   # K differs from the means'
    with pytest.raises(GenbenchError, match="logit_probs"):
        f(x, mu[:, :, 0, None], mu, ls, co)           # an extra dimension
    with pytest.raises(GenbenchError, match="coeffs"):
        f(x, lp, mu, ls, co[:, :, :2])
    with pytest.raises(GenbenchError, match="coeffs"):
        f(x, lp, mu, ls, co.double())                 # mixed dtypes
    with pytest.raises(GenbenchError, match="floating"):
        f(x, lp, mu, ls.long(), co)
    lp1, mu1, ls1, _ = _mix_params(2, 3, 1, 4, 4, seed=0, dtype=torch.float32)
    with pytest.raises(GenbenchError, match="C = 1"):
        f(x[:, :1], lp1, mu1, ls1, torch.zeros(2, 3, 0, 4, 4))


# ---- dequantization bounds: a 1-D Gaussian over v = x + u whose bin probabilities are exact ----------------------

_DEQ_MEAN, _DEQ_STD = 3.3, 0.4  # narrower than a bin, so p(x + u) varies strongly inside one and the gaps are large


def _deq_log_p(v: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((v - _DEQ_MEAN) / _DEQ_STD) ** 2 - math.log(_DEQ_STD) - 0.5 * math.log(2 * math.pi)


def _deq_log_P(x: int) -> float:
    """log P(x) = log of the integral of N(v; mean, std^2) over the bin [x, x + 1), from the normal CDF."""
    from scipy.stats import norm

    return float(np.log(norm.cdf(x + 1, _DEQ_MEAN, _DEQ_STD) - norm.cdf(x, _DEQ_MEAN, _DEQ_STD)))


def _uniform_bounds(x: int, k: int, n: int, seed: int) -> torch.Tensor:
    """n independent draws of the k-sample uniform-dequantization bound at x, (n,)."""
    u = torch.rand(k, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return lk.dequantization_bound(_deq_log_p(x + u))


@pytest.mark.parametrize("x", [3, 4])
def test_dequantization_bounds_lie_below_log_p_and_rise_with_k(x):
    log_P = _deq_log_P(x)
    means, errors = [], []
    for k in (1, 2, 8, 64):
        draws = _uniform_bounds(x, k, n=4000, seed=k)
        means.append(float(draws.mean()))
        errors.append(float(draws.std() / math.sqrt(len(draws))))
    for m, e in zip(means, errors):
        assert m < log_P + 3 * e
    for (m0, e0), (m1, e1) in zip(zip(means, errors), zip(means[1:], errors[1:])):
        assert m1 > m0 + 3 * math.hypot(e0, e1)  # strictly tighter with k, beyond the noise
    gap1, gap64 = log_P - means[0], log_P - means[-1]
    assert gap1 > 0.05 and gap64 < 0.2 * gap1  # the k = 1 gap is a real one (0.07 and 1.5 nats); k = 64 closes most


def test_dequantization_bound_with_the_exact_conditional_q_is_exact_for_every_draw():
    """q(u | x) = p(x + u) / P(x) (a normal truncated to the bin, drawn by its inverse CDF): every weight is P(x)."""
    from scipy.stats import norm

    x = 4  # the bin in the tail, where the uniform bound is 1.5 nats below log P(x)
    r = np.random.RandomState(0).rand(8, 50)
    lo, hi = norm.cdf(x, _DEQ_MEAN, _DEQ_STD), norm.cdf(x + 1, _DEQ_MEAN, _DEQ_STD)
    v = torch.from_numpy(norm.ppf(lo + r * (hi - lo), _DEQ_MEAN, _DEQ_STD))
    log_p = _deq_log_p(v)
    log_q = log_p - _deq_log_P(x)
    for k in (1, 8):
        bound = lk.dequantization_bound(log_p[:k], log_q[:k])
        assert bound.dtype == torch.float64 and bound.shape == (50,)
        np.testing.assert_allclose(bound.numpy(), _deq_log_P(x), atol=1e-9)
    # a q that is not the conditional (a uniform one written out) gives the uniform bound, below log P(x)
    u = torch.rand(1, 2000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    uniform = lk.dequantization_bound(_deq_log_p(x + u), torch.zeros_like(u))
    assert torch.equal(uniform, lk.dequantization_bound(_deq_log_p(x + u)))
    assert float(uniform.mean()) < _deq_log_P(x) - 1.0


def test_dequantization_bound_rejects_bad_shapes():
    with pytest.raises(GenbenchError, match=r"\(k, B\)"):
        lk.dequantization_bound(torch.zeros(5))
    with pytest.raises(GenbenchError, match="log_q"):
        lk.dequantization_bound(torch.zeros(2, 5), torch.zeros(2, 4))
