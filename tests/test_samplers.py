"""genbench.samplers and genbench.mcmc with analytic models on a toy Gaussian data distribution.

Data x0 ~ N(m, s^2) independently per dimension. For the discrete chain, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t)
eps, and the exact (MMSE) eps-prediction is E[eps | x_t] = sqrt(1 - abar_t) (x_t - sqrt(abar_t) m) /
(abar_t s^2 + 1 - abar_t). For noise-conditional score models, x0 + sigma z ~ N(m, s^2 + sigma^2) has the score
-(x - m) / (s^2 + sigma^2). Every sampler is then affine in its Gaussian inputs, so the laws it produces are
known; the discretization biases quoted in the comments were computed from those affine recursions (exactly,
in float64) and the tolerances are that bias plus ~5 standard errors of the sample statistic.
"""

import math

import pytest
import torch

from genbench.mcmc import langevin_chain, langevin_step
from genbench.noise import DiscreteSchedule, geometric_sigmas, linear_betas
from genbench.samplers import annealed_langevin, ddim, ddim_timesteps, ddpm_ancestral, predictor_corrector

F64 = torch.float64
M = torch.tensor([0.5, -0.3], dtype=F64)  # per-dimension data mean
S = torch.tensor([0.3, 0.6], dtype=F64)   # per-dimension data standard deviation

SHORT = DiscreteSchedule(linear_betas(50, 1e-3, 0.2))  # a small chain for path comparisons
DDPM = DiscreteSchedule(linear_betas(1000))             # Ho et al.'s chain, for the distribution checks


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def exact_eps(schedule: DiscreteSchedule):
    def eps_model(x, t):
        ab = schedule.alpha_bar[t].reshape(-1, 1).to(x.dtype)
        return (1 - ab).sqrt() * (x - ab.sqrt() * M) / (ab * S ** 2 + 1 - ab)
    return eps_model


def gaussian_score(m, s):
    """The score of N(m, s^2) convolved with N(0, sigma^2), as a noise-conditional score model (x, sigma (B,))."""
    def score(x, sigma):
        sigma = sigma.reshape(-1, *([1] * (x.dim() - 1)))
        return -(x - m) / (s ** 2 + sigma ** 2)
    return score


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_moments(x, mean, var, *, mean_bias=0.0, var_bias=0.0, z=5.0):
    """Per-dimension sample mean and variance of x (n, D) against N(mean, var): within the stated bias plus z
    standard errors (SE of the mean sqrt(var / n); of the variance, relative, sqrt(2 / (n - 1)))."""
    n = x.shape[0]
    mean, var = torch.as_tensor(mean, dtype=F64), torch.as_tensor(var, dtype=F64)
    err_mean = (x.mean(0) - mean).abs()
    assert (err_mean < mean_bias + z * (var / n).sqrt()).all(), (x.mean(0), mean)
    err_var = (x.var(0) / var - 1).abs()
    assert (err_var < var_bias + z * math.sqrt(2 / (n - 1))).all(), (x.var(0), var)


# ----------------------------------------------------------------------------------------------------------
# (a) DDIM, eta = 0

def test_ddim_eta0_is_deterministic_given_x_T():
    x_T = torch.randn(64, 2, generator=gen(0), dtype=F64)
    for steps in (10, 50):
        a = ddim(exact_eps(SHORT), SHORT, x_T, steps=steps, eta=0.0, generator=gen(1))
        b = ddim(exact_eps(SHORT), SHORT, x_T, steps=steps, eta=0.0, generator=gen(2))
        c = ddim(exact_eps(SHORT), SHORT, x_T, steps=steps, eta=0.0)
        assert torch.equal(a, b) and torch.equal(a, c)
        assert not torch.equal(a, x_T)
    # and with eta > 0 the generator matters
    a = ddim(exact_eps(SHORT), SHORT, x_T, steps=10, eta=0.5, generator=gen(1))
    b = ddim(exact_eps(SHORT), SHORT, x_T, steps=10, eta=0.5, generator=gen(2))
    assert (a - b).abs().max() > 1e-2


def test_ddim_eta0_maps_standard_normal_to_the_data_law():
    n = 4000
    x_T = torch.cat([torch.zeros(1, 2, dtype=F64), torch.ones(1, 2, dtype=F64),
                     torch.randn(n, 2, generator=gen(3), dtype=F64)])
    out = ddim(exact_eps(DDPM), DDPM, x_T, steps=1000, eta=0.0)
    # with the exact eps model every DDIM step is affine, so out = b + A x_T per dimension: check it on the
    # samples, then the push-forward of N(0, 1) is exactly N(b, A^2)
    b, A = out[0], out[1] - out[0]
    torch.testing.assert_close(out[2:], b + A * x_T[2:], rtol=0, atol=1e-10)
    # the deterministic update contracts the variance by Cauchy-Schwarz at each step, an O(1/T) bias: the
    # exact push-forward has variance -1.0% / -0.5% and mean -1e-3 off N(m, s^2) (x_T ~ N(0, 1) also ignores
    # sqrt(abar_T) m ~ 3e-3 m); tolerances 2e-2 relative and 2e-3 leave a factor 2
    assert ((b - M).abs() < 2e-3).all(), b
    assert ((A ** 2 / S ** 2 - 1).abs() < 2e-2).all(), A ** 2
    assert_moments(out[2:], M, S ** 2, mean_bias=2e-3, var_bias=2e-2)
    # 100 of the 1000 steps: the same map, coarser (variance -7% / -4%): worse, but within 10%
    out100 = ddim(exact_eps(DDPM), DDPM, x_T[:2], steps=100, eta=0.0)
    A100 = out100[1] - out100[0]
    assert ((A100 ** 2 / S ** 2 - 1).abs() < 0.1).all()
    assert ((A100 ** 2 - S ** 2).abs() > (A ** 2 - S ** 2).abs()).all()


def test_ddim_is_eq_12_on_the_uniform_subsequence():
    """Song, Meng & Ermon 2021, Eq. 12 with sigma of Eq. 16, written out independently, same noise draws."""
    x_T = torch.randn(16, 2, generator=gen(4), dtype=F64)
    eps_model = exact_eps(SHORT)
    abar = SHORT.alpha_bar.tolist()
    for steps, eta in [(10, 0.0), (10, 0.5), (50, 1.0), (7, 0.3)]:
        c = 50 // steps
        tau = list(range(0, 50, c))
        g = gen(5)
        x = x_T
        for k in reversed(range(len(tau))):
            i = tau[k]
            a_t, a_prev = abar[i], (abar[tau[k - 1]] if k > 0 else 1.0)
            t = torch.full((x.shape[0],), i)
            eps = eps_model(x, t)
            x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
            sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t)) * math.sqrt(1 - a_t / a_prev)
            x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma ** 2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * torch.randn(x.shape, generator=g, dtype=F64)
        got = ddim(eps_model, SHORT, x_T, steps=steps, eta=eta, generator=gen(5))
        torch.testing.assert_close(got, x, rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------------------------------------
# (b) DDIM with eta = 1 and all steps is the ancestral sampler with sigma_t^2 = beta~_t

def test_ddim_eta1_all_steps_is_ancestral_beta_tilde():
    n = 20000
    x_T = torch.randn(n, 2, generator=gen(6), dtype=F64)
    eps_model = exact_eps(SHORT)
    a = ddim(eps_model, SHORT, x_T, steps=50, eta=1.0, generator=gen(7))
    b = ddpm_ancestral(eps_model, SHORT, x_T, variance="beta_tilde", clip_denoised=False, generator=gen(7))
    # Path-identical: sigma(eta = 1)^2 = beta~_t, Eq. 12's mean equals Eq. 7's posterior mean at x0-hat, both
    # draw one N(0, I) tensor of x's shape per step t = T-1..1 from the generator in that order, and neither adds
    # noise at t = 0. Only rounding differs (measured 1e-14).
    torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    # in distribution, with independent noise (and independent x_T): the difference of the two sample means has
    # SE sqrt(2 var / n), the log variance ratio sqrt(4 / n). (At T = 50 both are far from N(m, s^2): the exact
    # law has variance 0.069 / 0.308 against 0.09 / 0.36, the O(1/T) bias of beta~.)
    c = ddpm_ancestral(eps_model, SHORT, torch.randn(n, 2, generator=gen(8), dtype=F64), variance="beta_tilde",
                       clip_denoised=False, generator=gen(9))
    assert ((a.mean(0) - c.mean(0)).abs() < 5 * (2 * a.var(0) / n).sqrt()).all()
    assert ((a.var(0) / c.var(0)).log().abs() < 5 * math.sqrt(4 / n)).all()
    assert ((a.var(0) - torch.tensor([0.0694, 0.3075], dtype=F64)).abs() < 5 * a.var(0) * math.sqrt(2 / n)).all()


# ----------------------------------------------------------------------------------------------------------
# (c) DDPM ancestral sampling is Algorithm 2

@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_ddpm_ancestral_is_algorithm_2(variance):
    """x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t z (Ho et al. 2020, Algorithm
    2), written independently in plain floats, z = 0 at the last step, the same generator draws."""
    betas = SHORT.betas.tolist()
    abar = [math.prod(1 - b for b in betas[:i + 1]) for i in range(len(betas))]
    x_T = torch.randn(32, 2, generator=gen(10), dtype=F64)
    eps_model = exact_eps(SHORT)
    # one step on its own first: from x_t at t = 37, one update with noise z
    t = 37
    z = torch.randn(32, 2, generator=gen(11), dtype=F64)
    sigma2 = betas[t] if variance == "beta" else betas[t] * (1 - abar[t - 1]) / (1 - abar[t])
    eps = eps_model(x_T, torch.full((32,), t))
    literal = (x_T - betas[t] / math.sqrt(1 - abar[t]) * eps) / math.sqrt(1 - betas[t]) + math.sqrt(sigma2) * z
    x0 = SHORT.predict_x0(x_T, torch.full((32,), t), eps)
    mean, _, _ = SHORT.q_posterior(x0, x_T, torch.full((32,), t))
    lv = SHORT.model_log_variance(variance)[t]
    torch.testing.assert_close(mean + torch.exp(0.5 * lv) * z, literal, rtol=0, atol=1e-12)
    # the whole chain
    g = gen(12)
    x = x_T
    for t in reversed(range(len(betas))):
        eps = eps_model(x, torch.full((32,), t))
        x_mean = (x - betas[t] / math.sqrt(1 - abar[t]) * eps) / math.sqrt(1 - betas[t])
        if t > 0:
            sigma2 = betas[t] if variance == "beta" else betas[t] * (1 - abar[t - 1]) / (1 - abar[t])
            x = x_mean + math.sqrt(sigma2) * torch.randn(x.shape, generator=g, dtype=F64)
        else:
            x = x_mean
    got = ddpm_ancestral(eps_model, SHORT, x_T, variance=variance, clip_denoised=False, generator=gen(12))
    torch.testing.assert_close(got, x, rtol=0, atol=1e-10)


def test_ddpm_ancestral_reaches_the_data_law():
    n = 8000
    x_T = torch.randn(n, 2, generator=gen(13), dtype=F64)
    out = ddpm_ancestral(exact_eps(DDPM), DDPM, x_T, variance="beta", clip_denoised=False, generator=gen(14))
    # exact law of this sampler (T = 1000, sigma_t^2 = beta_t): mean within 2e-6 of m, variance +0.6% / +0.2%
    assert_moments(out, M, S ** 2, mean_bias=1e-3, var_bias=1e-2)


def test_ddpm_clip_denoised_keeps_the_output_in_range():
    x_T = 3 * torch.randn(2000, 2, generator=gen(15), dtype=F64)
    # the last step returns the (clipped) x0-hat itself: posterior coefficients 1 and 0 at t = 0
    out = ddpm_ancestral(exact_eps(SHORT), SHORT, x_T, generator=gen(16))
    assert out.abs().max() <= 1.0
    free = ddpm_ancestral(exact_eps(SHORT), SHORT, x_T, clip_denoised=False, generator=gen(16))
    assert free.abs().max() > 1.0  # the unclipped run does leave [-1, 1]: clipping did something


# ----------------------------------------------------------------------------------------------------------
# (d) DDIM's sub-sequence

def test_ddim_timesteps():
    assert ddim_timesteps(1000, 10) == list(range(0, 1000, 100))
    assert ddim_timesteps(1000, 10)[-1] == 900
    assert ddim_timesteps(50, 50) == list(range(50))
    assert ddim_timesteps(50, 1) == [0]
    assert ddim_timesteps(50, 7) == list(range(0, 50, 7))  # c = T // S = 7: eight steps, as their code
    for bad in (0, -3, 51):
        with pytest.raises(ValueError):
            ddim_timesteps(50, bad)


# ----------------------------------------------------------------------------------------------------------
# (e) Langevin dynamics

def test_langevin_step_formula():
    x = torch.randn(5, 3, generator=gen(17), dtype=F64)
    score = torch.randn(5, 3, generator=gen(18), dtype=F64)
    noise = torch.randn(5, 3, generator=gen(19), dtype=F64)
    got = langevin_step(x, score, 0.3, noise=noise)
    torch.testing.assert_close(got, x + 0.15 * score + math.sqrt(0.3) * noise, rtol=1e-15, atol=1e-15)
    steps = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=F64).reshape(-1, 1)  # per-row step sizes
    got = langevin_step(x, score, steps, noise=noise)
    torch.testing.assert_close(got, x + 0.5 * steps * score + steps.sqrt() * noise, rtol=1e-15, atol=1e-15)
    # without `noise` it draws N(0, I) from the generator
    a = langevin_step(x, score, 0.3, generator=gen(19))
    torch.testing.assert_close(a, x + 0.15 * score + math.sqrt(0.3) * noise, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("alpha", [0.05, 0.3])
def test_langevin_chain_stationary_law(alpha):
    m, s = 1.5, 0.5
    n = 20000
    x = torch.full((n, 1), -3.0, dtype=F64)  # far from the target
    # AR(1): x - m -> (1 - alpha / (2 s^2)) (x - m) + sqrt(alpha) z, contraction 0.9 (alpha 0.05) or 0.4
    # (alpha 0.3) per step; 300 steps leave 0.9^300 ~ 2e-14 of the start
    out = langevin_chain(x, lambda y: -(y - m) / s ** 2, alpha, 300, generator=gen(20))
    stationary = s ** 2 / (1 - alpha / (4 * s ** 2))  # 0.263 or 0.357 against s^2 = 0.25: resolvable at n
    assert_moments(out, m, stationary)
    if alpha > 0.1:  # the inflation (+43%) is resolved: the chain is not at N(m, s^2)
        assert abs(out.var().item() - stationary) < abs(out.var().item() - s ** 2)


# ----------------------------------------------------------------------------------------------------------
# (f) annealed Langevin dynamics (NCSN)

def test_annealed_langevin_is_algorithm_1():
    """Song & Ermon 2019, Algorithm 1 written out, the same generator draws; denoise adds x + sigma_L^2 s."""
    sigmas = geometric_sigmas(5.0, 0.1, 4)
    score = gaussian_score(M, S)
    x0 = torch.rand(8, 2, generator=gen(21), dtype=F64)
    g = gen(22)
    x = x0
    for sigma in sigmas.tolist():
        alpha = 2e-3 * sigma ** 2 / 0.1 ** 2
        for _ in range(3):
            z = torch.randn(x.shape, generator=g, dtype=F64)
            x = x + alpha / 2 * score(x, torch.full((8,), sigma, dtype=F64)) + math.sqrt(alpha) * z
    got = annealed_langevin(score, sigmas, x0, steps_per_level=3, eps=2e-3, generator=gen(22))
    torch.testing.assert_close(got, x, rtol=0, atol=1e-12)
    den = annealed_langevin(score, sigmas, x0, steps_per_level=3, eps=2e-3, denoise=True, generator=gen(22))
    torch.testing.assert_close(den, x + 0.01 * score(x, torch.full((8,), 0.1, dtype=F64)), rtol=0, atol=1e-12)


def test_annealed_langevin_reaches_the_noised_data_law():
    m, s = 1.0, 0.5
    sigma_L = 0.1
    sigmas = geometric_sigmas(10.0, sigma_L, 10)
    score = gaussian_score(m, s)
    n = 12000
    x0 = torch.rand(n, 1, generator=gen(23), dtype=F64)  # their code starts at U[0, 1]
    out = annealed_langevin(score, sigmas, x0, steps_per_level=100, eps=5e-3, generator=gen(24))
    # Exact law of this run: mean m (to 1e-15), variance 0.2642 against s^2 + sigma_L^2 = 0.26 (+1.6%: the
    # last levels do not quite mix, and the stationary law of step 5e-3 is itself +0.5% wide)
    assert_moments(out, m, s ** 2 + sigma_L ** 2, var_bias=0.02)
    # denoise: x + sigma_L^2 score(x, sigma_L) = m + k (x - m), k = s^2 / (s^2 + sigma_L^2): the mean stays m
    # and the variance shrinks by k^2 (exact law 0.2443 against s^4 / (s^2 + sigma_L^2) = 0.2404, +1.6%)
    den = annealed_langevin(score, sigmas, x0, steps_per_level=100, eps=5e-3, denoise=True, generator=gen(24))
    k = s ** 2 / (s ** 2 + sigma_L ** 2)
    torch.testing.assert_close(den, m + k * (out - m), rtol=0, atol=1e-12)  # same path, then Tweedie's step
    assert_moments(den, m, s ** 4 / (s ** 2 + sigma_L ** 2), var_bias=0.02)


# ----------------------------------------------------------------------------------------------------------
# (g) predictor-corrector sampling, VE SDE

def test_predictor_corrector_is_algorithm_2_in_the_order_of_their_code():
    """Corrector (Langevin, eps = 2 (r ||z|| / ||s||)^2 per image) then reverse-diffusion predictor at each level,
    written out; the last predictor step returns its mean."""
    sigmas = geometric_sigmas(10.0, 0.05, 4)
    score = gaussian_score(M, S)
    x_init = 10 * torch.randn(6, 2, generator=gen(25), dtype=F64)
    snr = 0.2
    g = gen(26)
    x = x_init
    lv = sigmas.tolist()
    for k, sigma in enumerate(lv):
        level = torch.full((6,), sigma, dtype=F64)
        for _ in range(2):
            s_ = score(x, level)
            z = torch.randn(x.shape, generator=g, dtype=F64)
            eps = 2 * (snr * z.norm(dim=1, keepdim=True) / s_.norm(dim=1, keepdim=True)) ** 2
            x = x + eps * s_ + (2 * eps).sqrt() * z
        nxt = lv[k + 1] if k + 1 < len(lv) else 0.0
        x_mean = x + (sigma ** 2 - nxt ** 2) * score(x, level)
        if k + 1 < len(lv):
            x = x_mean + math.sqrt(sigma ** 2 - nxt ** 2) * torch.randn(x.shape, generator=g, dtype=F64)
        else:
            x = x_mean
    got = predictor_corrector(score, sigmas, x_init, snr=snr, corrector_steps=2, generator=gen(26))
    torch.testing.assert_close(got, x, rtol=0, atol=1e-12)
    # one level, no corrector: the denoising step x + sigma^2 s(x, sigma) alone, and no randomness
    one = predictor_corrector(score, sigmas[:1], x_init, corrector_steps=0, generator=gen(1))
    torch.testing.assert_close(one, x_init + 100.0 * score(x_init, torch.full((6,), 10.0, dtype=F64)),
                               rtol=1e-14, atol=1e-12)


def test_predictor_corrector_reaches_the_data_law():
    # Many dimensions per image: the corrector's step uses ||z|| / ||s|| per image, a ratio that only
    # concentrates in high dimension (with 16 dimensions the corrector alone inflates the variance ~30%; with
    # 1024, ~2%, near the 1 / (1 - r^2) = +2.6% of its stationary law).
    d, b = 1024, 32
    m = torch.linspace(-1, 1, d, dtype=F64)
    s = 0.5
    x = 50 * torch.randn(b, d, generator=gen(27), dtype=F64)  # the prior N(0, sigma_max^2 I)
    out = predictor_corrector(gaussian_score(m, s), geometric_sigmas(50.0, 0.01, 100), x, snr=0.16,
                              generator=gen(28))
    r = (out - m).flatten()
    # measured over seeds: variance +2% to +3% (corrector bias above plus the predictor's O(1/N) error, +8%
    # without the corrector at N = 100); mean SE sqrt(0.25 / 32768) = 2.8e-3, larger in practice because each
    # image's step sizes are shared by its 1024 values, hence 1.5e-2
    assert abs(r.mean().item()) < 1.5e-2
    assert abs(r.var().item() / s ** 2 - 1) < 0.08
