"""genbench.metrics.ais on targets whose normalizers are known in closed form.

All chains of a test (for the decoder, all images' chains) run as one batch, one HMC call per transition.
Tolerances: an estimate against its closed form within 4 of its delta-method standard errors, plus a stated
slack for AIS's own downward bias; orderings (shortfall falling with steps, BDMC bounds on either side of the
truth) with margins of several standard errors of the compared means. Every random draw comes from a seeded
generator; float64 throughout. All tests also passed with every seed shifted (10 other seed sets).
"""

import json
import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from genbench import GenbenchError
from genbench.metrics.ais import (GaussianBase, Settings, ais, effective_sample_size, log_marginal, log_mean_exp,
                                  log_mean_exp_std_error, log_normalizer, reverse_ais, schedule)

F64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ Gaussian normalizer on R^10

D, S_TARGET, S_BASE = 10, 0.5, 1.5
M = torch.linspace(-1.0, 1.0, D, dtype=F64)
LOG_Z = D / 2 * math.log(2 * math.pi * S_TARGET ** 2)  # of exp(-|x - m|^2 / (2 s^2))


def gaussian_problem():
    base = Normal(torch.zeros(D, dtype=F64), torch.full((D,), S_BASE, dtype=F64))
    return dict(base_sample=lambda n, g: S_BASE * torch.randn(n, D, generator=g, dtype=F64),
                base_log_prob=lambda x: base.log_prob(x).sum(-1),
                target_log_prob=lambda x: -((x - M) ** 2).sum(-1) / (2 * S_TARGET ** 2))


def one_chain_bound(log_w: torch.Tensor) -> tuple[float, float]:
    """mean(log w) and its standard error: a one-chain estimate, whose expectation lies below log E[w]
    by the KL divergence between the forward and the reverse chains' joint laws (Grosse et al. 2015)."""
    return log_w.mean().item(), log_w.std().item() / math.sqrt(log_w.numel())


def test_ais_recovers_a_gaussian_normalizer_and_its_bias_shrinks_with_steps():
    """128 chains per run. The one-chain shortfall log Z - mean(log w) falls as steps go 10 -> 100 -> 1000
    (about 4.6, 0.4, 0.03 at these settings, standard errors 0.35, 0.09, 0.03; log-mean-exp shortfalls are
    too heavy-tailed at 10 steps to order robustly with 128 chains). At 1000 steps the log-mean-exp over the
    128 chains is within 4 standard errors + 0.01 of log Z."""
    shortfall = []
    for steps in (10, 100, 1000):
        s = Settings(chains=128, steps=steps, step_size=0.1, adapt="none")
        run = ais(**gaussian_problem(), settings=s, n=128, generator=gen(steps))
        mean, se = one_chain_bound(run.log_weights)
        shortfall.append((LOG_Z - mean, se))
        assert 0.9 < run.acceptance < 1
    (s10, e10), (s100, e100), (s1000, e1000) = shortfall
    assert s10 - 3 * e10 > s100 + 3 * e100 and s100 > s1000 + 2 * math.hypot(e100, e1000), shortfall
    assert s10 > 3 and s1000 > -4 * e1000
    assert abs(run.log_z().item() - LOG_Z) < 4 * run.std_error().item() + 0.01, (run.log_z(), run.std_error())


def test_both_directions_are_unbiased_on_a_short_path():
    """E[w] = Z forward and E[w_rev] = 1 / Z reverse, exactly, at any number of steps: in 2-D with base
    N(0, 0.6^2 I) and target scale 0.5 (both weights then have finite variance) and 4 steps, 50,000 chains
    each way put log-mean-exp within 4 standard errors of log Z and of -log Z."""
    base = Normal(torch.zeros(2, dtype=F64), torch.full((2,), 0.6, dtype=F64))
    m = torch.tensor([0.3, -0.2], dtype=F64)
    p = dict(base_log_prob=lambda x: base.log_prob(x).sum(-1),
             target_log_prob=lambda x: -((x - m) ** 2).sum(-1) / (2 * 0.25))
    log_z, n = math.log(2 * math.pi * 0.25), 50_000
    s = Settings(steps=4, step_size=0.3, leapfrog_steps=3, adapt="none")
    fwd = ais(base_sample=lambda k, g: 0.6 * torch.randn(k, 2, generator=g, dtype=F64), **p, settings=s, n=n,
              generator=gen(13))
    exact = m + 0.5 * torch.randn(n, 2, generator=gen(14), dtype=F64)
    rev = reverse_ais(target_sample=exact, **p, settings=s, generator=gen(15))
    assert abs(log_mean_exp(fwd.log_weights).item() - log_z) < 4 * fwd.std_error().item()
    assert abs(log_mean_exp(rev.log_weights).item() + log_z) < 4 * rev.std_error().item()


@pytest.mark.parametrize("adapt", ["pilot", "online"])
def test_adapted_step_sizes_recover_the_normalizer(adapt):
    """From a poor initial step (0.01), the pilot (exact) and online (Wu et al.; approximately unbiased)
    adaptations both reach a useful step size and the estimate."""
    s = Settings(chains=64, steps=300, step_size=0.01, adapt=adapt)
    run = ais(**gaussian_problem(), settings=s, n=64, generator=gen(11))
    assert run.step_sizes[-1].min() > 0.1 and 0.4 < run.acceptance < 0.95
    assert abs(run.log_z().item() - LOG_Z) < 4 * run.std_error().item() + 0.02
    again = ais(**gaussian_problem(), settings=s, n=64, generator=gen(11))
    assert torch.equal(run.log_weights, again.log_weights)  # seeded


def test_one_step_ais_is_importance_sampling_from_the_base():
    p = gaussian_problem()
    run = ais(**p, settings=Settings(steps=1), n=50, generator=gen(12))  # no transitions, so no pilot
    x0 = p["base_sample"](50, gen(12))
    assert torch.allclose(run.log_weights, p["target_log_prob"](x0) - p["base_log_prob"](x0), rtol=0, atol=1e-12)
    assert run.step_sizes.shape == (0, 50) and math.isnan(run.acceptance)


# ------------------------------------------------------------------ linear-Gaussian decoder

K, DX, SIGMA = 3, 5, 0.5
W = 0.5 * torch.randn(DX, K, generator=gen(20), dtype=F64)  # posterior stds 0.29-0.75
B = torch.randn(DX, generator=gen(21), dtype=F64)
MARGINAL = MultivariateNormal(B, W @ W.T + SIGMA ** 2 * torch.eye(DX, dtype=F64))  # exact p(x)
PRIOR = Normal(torch.zeros(K, dtype=F64), torch.ones(K, dtype=F64))
DECODER = dict(decoder_log_prob=lambda x, z: Normal(z @ W.T + B, SIGMA).log_prob(x).sum(-1),
               prior_sample=lambda n, g: torch.randn(n, K, generator=g, dtype=F64),
               prior_log_prob=lambda z: PRIOR.log_prob(z).sum(-1))


def simulate(m: int, seed: int):
    """(z, x) from the model: each z is an exact posterior draw for its x."""
    g = gen(seed)
    z = torch.randn(m, K, generator=g, dtype=F64)
    return z, z @ W.T + B + SIGMA * torch.randn(m, DX, generator=g, dtype=F64)


def test_log_marginal_matches_the_linear_gaussian_closed_form():
    _, x = simulate(4, seed=22)
    s = Settings(chains=32, steps=200, step_size=0.05)
    out = log_marginal(**DECODER, x=x, settings=s, generator=gen(23))
    truth = MARGINAL.log_prob(x)
    assert out["bound"] == "lower" and out["log_p"].dtype == F64 and out["log_p"].shape == (4,)
    assert ((out["log_p"] - truth).abs() < 4 * out["std_error"] + 0.02).all(), (out["log_p"], truth,
                                                                              out["std_error"])


def test_bdmc_sandwiches_the_truth_on_simulated_data():
    """16 simulated points, 8 chains each, forward and reverse AIS on one step-size schedule. On means over
    the points, with se the standard error of such a mean: upper - lower > -3 se (>= 0 in expectation), each
    lies on its side of the truth up to 3 se, the gap falls by half from 10 to 100 steps, and at 100 steps
    both are within 0.1 + 3 se of the truth."""
    z, x = simulate(16, seed=24)
    truth = MARGINAL.log_prob(x).mean().item()
    gaps = []
    for steps in (10, 100):
        s = Settings(chains=8, steps=steps, step_size=0.05)
        lower = log_marginal(**DECODER, x=x, settings=s, generator=gen(25))
        upper = log_marginal(**DECODER, x=x, settings=s, generator=gen(26), posterior_sample=z,
                             step_sizes=lower["step_sizes"])
        lo, up = lower["log_p"].mean().item(), upper["log_p"].mean().item()
        se = [(r["std_error"] ** 2).mean().sqrt().item() / 4 for r in (lower, upper)]  # of a mean over 16
        assert upper["bound"] == "upper" and up - lo > -3 * math.hypot(*se)
        assert lo < truth + 3 * se[0] and up > truth - 3 * se[1], (lo, truth, up, se)
        gaps.append(up - lo)
    assert gaps[1] < 0.5 * gaps[0], gaps
    assert abs(lo - truth) < 0.1 + 3 * se[0] and abs(up - truth) < 0.1 + 3 * se[1], (lo, truth, up, se)


def exact_posterior(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (m, K) and covariance (K, K) of the linear-Gaussian model's p(z | x)."""
    cov = torch.linalg.inv(torch.eye(K, dtype=F64) + W.T @ W / SIGMA ** 2)
    return (x - B) @ W @ cov / SIGMA ** 2, cov


def test_a_per_image_base_keeps_log_marginal_unbiased():
    """From a deliberately wrong diagonal base per image (the exact posterior's mean shifted by 0.3 and its
    variances doubled, correlations dropped) the estimate is still within the estimator's error of the exact
    log p(x), and 50 steps bring it closer than importance sampling from that base (steps = 1) does."""
    _, x = simulate(4, seed=40)
    mean, cov = exact_posterior(x)
    base = GaussianBase(mean + 0.3, (2 * cov.diagonal()).log().expand(4, K))
    truth = MARGINAL.log_prob(x)
    errors = []
    for steps in (1, 50):
        out = log_marginal(**DECODER, x=x, settings=Settings(chains=16, steps=steps, step_size=0.05),
                           generator=gen(41), base=base)
        errors.append((out["log_p"] - truth).abs().mean().item())
    assert ((out["log_p"] - truth).abs() < 4 * out["std_error"] + 0.02).all(), (out["log_p"], truth)
    assert errors[1] < errors[0], errors
    with pytest.raises(GenbenchError, match="one distribution per image"):
        log_marginal(**DECODER, x=x[:3], settings=Settings(steps=1), base=base)


def test_one_distribution_from_the_encoder_is_the_iwae_bound():
    """steps = 1 from a per-image Gaussian base with c chains is IWAE_c from that q (Burda et al. 2016): with one
    generator state, exactly genbench.metrics.likelihood.gaussian_latent_bound's number."""
    from genbench.metrics.likelihood import gaussian_latent_bound

    _, x = simulate(5, seed=42)
    mean, cov = exact_posterior(x)
    log_var = (1.5 * cov.diagonal()).log().expand(5, K).contiguous()
    out = log_marginal(**DECODER, x=x, settings=Settings(chains=7, steps=1), generator=gen(43),
                       base=GaussianBase(mean, log_var))
    iwae = gaussian_latent_bound(DECODER["decoder_log_prob"], x, mean, log_var, k=7, generator=gen(43))
    assert torch.allclose(out["log_p"], iwae, rtol=0, atol=1e-10), (out["log_p"], iwae)


def test_gaussian_base_log_prob_and_layout():
    mean = torch.tensor([[0.0, 10.0], [-5.0, 3.0]], dtype=F64)
    log_var = torch.tensor([[0.0, -2.0], [1.0, 0.5]], dtype=F64)
    base = GaussianBase(mean, log_var)
    z = base.sample(6000, gen(44))  # 3000 chains per image, image-major
    assert torch.allclose(z[:3000].mean(0), mean[0], atol=0.06) and torch.allclose(z[3000:].mean(0), mean[1],
                                                                                    atol=0.1)
    assert torch.allclose(z[3000:].var(0).log(), log_var[1], atol=0.08)
    expected = Normal(mean.repeat_interleave(3000, 0), (0.5 * log_var).exp().repeat_interleave(3000, 0))
    assert torch.allclose(base.log_prob(z), expected.log_prob(z).sum(1), atol=1e-10)
    with pytest.raises(GenbenchError, match="image-major"):
        base.sample(5, gen(45))
    with pytest.raises(GenbenchError, match="one shape"):
        GaussianBase(mean, log_var[:1])


def test_reverse_ais_from_exact_target_samples_bounds_from_above():
    """On the Gaussian problem at 20 steps, 64 chains each way: the one-chain bounds sandwich log Z by over
    3 standard errors (-mean log w_rev above, mean log w below; about 8 and 7 at these settings), and the
    reverse run's log_z is -log-mean-exp of its weights."""
    p, s = gaussian_problem(), Settings(steps=20, step_size=0.1, adapt="none")
    exact = M + S_TARGET * torch.randn(64, D, generator=gen(27), dtype=F64)
    up = reverse_ais(target_sample=exact, base_log_prob=p["base_log_prob"], target_log_prob=p["target_log_prob"],
                     settings=s, generator=gen(28))
    low = ais(**p, settings=s, n=64, generator=gen(29))
    (neg_up, se_up), (lo, se_lo) = one_chain_bound(up.log_weights), one_chain_bound(low.log_weights)
    assert up.direction == "reverse" and -neg_up - 3 * se_up > LOG_Z > lo + 3 * se_lo
    assert up.log_z().item() == pytest.approx(-log_mean_exp(up.log_weights).item(), abs=1e-12)
    with pytest.raises(GenbenchError, match="base_sample"):
        reverse_ais(target_sample=exact, base_log_prob=p["base_log_prob"], target_log_prob=p["target_log_prob"],
                    settings=Settings(steps=5))


# ------------------------------------------------------------------ an energy-based model on a box

def test_log_normalizer_of_a_linear_energy_on_the_unit_box():
    """E(x) = a . x on [0, 1]^5: Z = prod_i (1 - exp(-a_i)) / a_i."""
    a = torch.tensor([-2.0, -0.5, 0.5, 1.5, 3.0], dtype=F64)
    truth = torch.log(-torch.expm1(-a) / a).sum().item()
    s = Settings(chains=64, steps=100, step_size=0.2)
    out = log_normalizer(lambda x: x @ a, shape=(5,), bounds=(0.0, 1.0), settings=s, dtype=F64,
                         generator=gen(30))
    assert abs(out["log_z"] - truth) < 4 * out["std_error"] + 0.01, (out, truth)
    assert "low in expectation" in out["direction"] and "NLL errs low" in out["direction"]
    assert out["chains"] == 64 and 1 < out["ess"] <= 64 and 0.3 < out["acceptance"] <= 1
    json.dumps(out)


# ------------------------------------------------------------------ the pieces

def test_schedules():
    for kind in ("sigmoid", "linear"):
        for steps in (1, 2, 7, 1000):
            beta = schedule(steps, kind)
            assert beta.dtype == F64 and beta.shape == (steps + 1,)
            assert beta[0] == 0 and beta[-1] == 1 and (beta.diff() > 0).all()
    assert torch.allclose(schedule(4, "linear"), torch.tensor([0, 0.25, 0.5, 0.75, 1], dtype=F64))
    sig = schedule(10, "sigmoid", sharpness=4.0)
    assert torch.allclose(sig + sig.flip(0), torch.ones(11, dtype=F64), atol=1e-15)  # symmetric
    s = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731  the formula at t = 3 of 10
    assert sig[3].item() == pytest.approx((s(4 * (0.6 - 1)) - s(-4)) / (s(4) - s(-4)), rel=1e-14)
    with pytest.raises(GenbenchError):
        schedule(10, "cosine")
    with pytest.raises(GenbenchError):
        Settings(adapt="yes")


def test_log_mean_exp_and_effective_sample_size():
    lw = torch.randn(3, 50, generator=gen(40), dtype=F64) * 2
    direct = torch.log(torch.exp(lw).mean(-1))
    assert torch.allclose(log_mean_exp(lw), direct, rtol=0, atol=1e-12)
    assert torch.allclose(log_mean_exp(lw.float() + 1000.0), direct + 1000.0, atol=1e-3)  # no overflow
    assert log_mean_exp(lw.float()).dtype == F64
    assert effective_sample_size(torch.zeros(40)).item() == pytest.approx(40)
    assert effective_sample_size(torch.tensor([0.0, -50, -50, -50])).item() == pytest.approx(1, abs=1e-12)
    assert math.isnan(log_mean_exp_std_error(torch.zeros(1)).item())


def test_std_error_matches_the_spread_over_repeats():
    """Log weights N(0, 0.7^2) (weights log-normal): 2000 repeats of n = 200; the delta-method standard error
    (mean over repeats) agrees with the empirical std of log-mean-exp within 10%."""
    lw = 0.7 * torch.randn(2000, 200, generator=gen(41), dtype=F64)
    empirical = log_mean_exp(lw).std().item()
    assert log_mean_exp_std_error(lw).mean().item() == pytest.approx(empirical, rel=0.1)
    exact = math.sqrt((math.exp(0.49) - 1) / 200)  # sqrt(Var w / n) / E w for log-normal weights
    assert empirical == pytest.approx(exact, rel=0.1)


def test_settings_round_trip():
    s = Settings()
    d = s.to_dict()
    assert d["schedule"] == "sigmoid" and d["sharpness"] == 4.0 and d["leapfrog_steps"] == 10
    assert Settings(**{**d, "step_range": tuple(d["step_range"])}) == s
    json.dumps(d)
