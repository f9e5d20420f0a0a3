"""genbench.noise against brute-force Gaussian algebra, in float64: the schedules, the forward marginal of the
chain run step by step, the posterior from Bayes' rule on the joint Gaussian, and the SDE coefficients against
numerical derivatives."""

import math

import numpy as np
import pytest
import torch

from genbench.noise import (VESDE, VPSDE, DiscreteSchedule, cosine_betas, geometric_sigmas, linear_betas,
                            probability_flow_drift)

F64 = torch.float64


def _idx(t: int, n: int = 1) -> torch.Tensor:
    return torch.full((n,), t, dtype=torch.long)


# ----------------------------------------------------------------------------------------------------------
# (a) beta schedules

def test_linear_betas_endpoints_and_length():
    b = linear_betas(1000)
    assert b.dtype == F64 and b.shape == (1000,)
    assert b[0].item() == pytest.approx(1e-4, rel=1e-12) and b[-1].item() == pytest.approx(0.02, rel=1e-12)
    np.testing.assert_allclose(np.diff(b.numpy()), (0.02 - 1e-4) / 999, rtol=1e-9)  # evenly spaced
    b = linear_betas(50, 1e-3, 0.2)
    assert b.shape == (50,) and b[0].item() == pytest.approx(1e-3) and b[-1].item() == pytest.approx(0.2)


@pytest.mark.parametrize("T", [10, 1000, 4000])
def test_cosine_betas_reproduce_alpha_bar_of_eq_17(T):
    s = 0.008
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]  # Nichol & Dhariwal, Eq. 17
    want = np.array(f[1:]) / f[0]  # abar(t) for t = 1..T, i.e. 0-indexed steps 0..T-1
    b = cosine_betas(T)
    assert b.dtype == F64 and b.shape == (T,)
    assert b.max().item() == 0.999  # f(T) = 0 makes the last beta 1: clipped exactly at 0.999
    assert (b > 0).all()
    clipped = (b == 0.999).nonzero()
    first = int(clipped[0]) if len(clipped) else T
    assert first >= T - 2  # only the very end of the schedule is clipped
    got = torch.cumprod(1 - b, 0).numpy()
    # where nothing was clipped the product telescopes to f(t) / f(0); float64 products of <= 4000 terms:
    # relative error ~ T * 1e-16, so 1e-11 is loose; the last unclipped abar is ~1e-5, hence relative error
    np.testing.assert_allclose(got[:first], want[:first], rtol=1e-11, atol=0)


def test_schedule_rejects_bad_betas_and_names():
    with pytest.raises(ValueError):
        DiscreteSchedule(torch.tensor([0.1, 1.0]))
    with pytest.raises(ValueError):
        DiscreteSchedule(torch.zeros(2, 2) + 0.1)
    with pytest.raises(ValueError, match="unknown beta schedule"):
        DiscreteSchedule.named("quadratic", 10)
    assert torch.equal(DiscreteSchedule.named("cosine", 20).betas, cosine_betas(20))


# ----------------------------------------------------------------------------------------------------------
# (b) the forward marginal

SCHEDULES = {"linear": DiscreteSchedule(linear_betas(1000)), "cosine": DiscreteSchedule(cosine_betas(1000)),
             "short": DiscreteSchedule(linear_betas(50, 1e-3, 0.2))}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_q_mean_variance_equals_the_chain_propagated_step_by_step(name):
    sch = SCHEDULES[name]
    x0 = torch.tensor([-1.0, -0.3, 0.0, 0.7, 1.0], dtype=F64)
    # x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z, from x_{-1} = x_0 (variance 0), in plain Python floats
    mean, var = x0.numpy().copy(), 0.0
    checks = {0, 1, 9, sch.T // 2, sch.T - 2, sch.T - 1}
    for t, beta in enumerate(sch.betas.tolist()):
        mean, var = math.sqrt(1 - beta) * mean, (1 - beta) * var + beta
        if t in checks:
            mean = torch.from_numpy(mean)
            m, v = sch.q_mean_variance(x0, _idx(t))
            # float64 recursions of <= 1000 steps: rounding ~1e-13, so 1e-11 is loose yet far below any bug
            torch.testing.assert_close(m, mean, rtol=1e-11, atol=1e-13)
            torch.testing.assert_close(v, torch.full_like(x0, var), rtol=1e-11, atol=1e-13)
            z = torch.linspace(-2, 2, 5, dtype=F64)
            torch.testing.assert_close(sch.q_sample(x0, _idx(t), z), mean + math.sqrt(var) * z, rtol=1e-11,
                                       atol=1e-12)
            mean = mean.numpy()


def test_q_sample_matches_the_chain_run_on_samples():
    sch = SCHEDULES["short"]
    n = 20000
    g = torch.Generator().manual_seed(0)
    two = torch.tensor([-0.8, 0.6], dtype=F64)
    x0 = two[(torch.rand(n, generator=g) < 0.5).long()]  # a two-point data distribution
    x = x0.clone()
    for t in range(sch.T):
        x = (1 - sch.betas[t]).sqrt() * x + sch.betas[t].sqrt() * torch.randn(n, generator=g, dtype=F64)
        if t in (0, 10, 49):
            y = sch.q_sample(x0, _idx(t, n), torch.randn(n, generator=g, dtype=F64))
            # two independent samples of the same law: the mean of the difference has standard error
            # sqrt(2 var / n); 5 SE fails with probability < 1e-6 when correct
            se = math.sqrt(2 * float(x.var()) / n)
            assert abs(float(x.mean() - y.mean())) < 5 * se
            # variance ratio: relative SE sqrt(2/n) each for Gaussian-tailed laws, less for this two-point mixture
            assert abs(float(x.var() / y.var()) - 1) < 5 * math.sqrt(4 / n)
            # and conditionally on x0 (the chain given x0 is Gaussian with q_mean_variance's moments)
            for v in (-0.8, 0.6):
                sel = x0 == v
                m, var = sch.q_mean_variance(torch.tensor([v], dtype=F64), _idx(t))
                k = int(sel.sum())
                assert abs(float(x[sel].mean() - m)) < 5 * math.sqrt(float(var) / k)
                assert abs(float(x[sel].var() / var) - 1) < 5 * math.sqrt(2 / k)


def test_gather_is_per_row_over_an_image_batch():
    sch = SCHEDULES["linear"]
    x0 = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    t = torch.tensor([0, 500, 999])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    out = sch.q_sample(x0, t, noise)
    for row, i in enumerate(t.tolist()):
        want = sch.alpha_bar[i].sqrt() * x0[row] + (1 - sch.alpha_bar[i]).sqrt() * noise[row]
        torch.testing.assert_close(out[row], want, rtol=1e-14, atol=1e-14)
    out32 = sch.q_sample(x0.float(), t, noise.float())
    assert out32.dtype == torch.float32  # tables gathered in float64 and cast to the data's dtype
    torch.testing.assert_close(out32, out.float(), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------
# (c) the posterior, from Bayes' rule on the joint Gaussian of (x_{t-1}, x_t) given x_0

@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("where", ["first", "second", "third", "middle", "next to last", "last"])
def test_q_posterior_is_bayes_rule_on_the_joint_gaussian(name, where):
    sch = SCHEDULES[name]
    t = {"first": 0, "second": 1, "third": 2, "middle": sch.T // 2, "next to last": sch.T - 2,
         "last": sch.T - 1}[where]
    betas = sch.betas.numpy()
    abar_prev = float(np.prod(1 - betas[:t]))  # abar_{t-1}, 1 at t = 0 (x_{-1} = x_0)
    alpha = 1 - float(betas[t])
    for x0, xt in [(-0.9, 0.4), (0.0, -1.7), (0.35, 0.35), (1.0, 2.5)]:
        # joint of (x_{t-1}, x_t) | x_0: x_{t-1} ~ N(sqrt(abar_prev) x0, 1 - abar_prev),
        # x_t = sqrt(alpha) x_{t-1} + sqrt(beta) z
        mu = np.array([math.sqrt(abar_prev) * x0, math.sqrt(alpha * abar_prev) * x0])
        v1 = 1 - abar_prev
        cov = np.array([[v1, math.sqrt(alpha) * v1], [math.sqrt(alpha) * v1, alpha * v1 + (1 - alpha)]])
        mean = mu[0] + cov[0, 1] / cov[1, 1] * (xt - mu[1])
        var = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
        m, v, log_v = sch.q_posterior(torch.tensor([x0], dtype=F64), torch.tensor([xt], dtype=F64), _idx(t))
        # float64 throughout; the module's 1 - abar_t = 1 - (1 - beta_0) at t = 0 cancels ~4 digits (beta_0 =
        # 1e-4), so its coefficients carry ~1e-12 relative rounding: 1e-10 is still far below any real error
        assert m.item() == pytest.approx(mean, rel=1e-10, abs=1e-12)
        assert v.item() == pytest.approx(var, rel=1e-9, abs=1e-15)
        if t == 0:
            assert v.item() == 0.0 and m.item() == pytest.approx(x0, rel=1e-10, abs=1e-14)
            # the clipped log-variance repeats index 1 (beta~_0 = 0 has no logarithm)
            assert log_v.item() == pytest.approx(math.log(float(sch.posterior_variance[1])), rel=1e-14)
        else:
            assert log_v.item() == pytest.approx(math.log(var), rel=1e-9, abs=1e-12)


# ----------------------------------------------------------------------------------------------------------
# (d) predict_x0 inverts q_sample; (e) the reverse variances

@pytest.mark.parametrize("name", list(SCHEDULES))
def test_predict_x0_inverts_q_sample(name):
    sch = SCHEDULES[name]
    g = torch.Generator().manual_seed(3)
    t = torch.arange(sch.T)
    x0 = torch.rand(sch.T, 3, generator=g, dtype=F64) * 2 - 1
    eps = torch.randn(sch.T, 3, generator=g, dtype=F64)
    back = sch.predict_x0(sch.q_sample(x0, t, eps), t, eps)
    # the round trip multiplies rounding by 1 / sqrt(abar_t): at most ~2e4 (the cosine schedule's last abar is
    # 2.4e-9 after its clipped 0.999 beta), so float64 error stays below 1e-16 * 2e4 * few ~ 1e-11 < 1e-9
    torch.testing.assert_close(back, x0, rtol=0, atol=1e-9)
    some = torch.tensor([0, 10, sch.T // 2])  # float32 where 1 / sqrt(abar) is moderate (<= ~10)
    back32 = sch.predict_x0(sch.q_sample(x0[some].float(), some, eps[some].float()), some, eps[some].float())
    torch.testing.assert_close(back32, x0[some].float(), rtol=0, atol=1e-5)


def test_model_log_variance_values():
    sch = SCHEDULES["short"]
    b = sch.betas
    ab = torch.cumprod(1 - b, 0)
    beta_tilde_1 = float(b[1] * (1 - ab[0]) / (1 - ab[1]))  # Ho et al. Eq. 7 at index 1 (abar_{0} = 1 - beta_0)
    assert beta_tilde_1 == pytest.approx(float(b[1] * b[0] / (1 - (1 - b[0]) * (1 - b[1]))), rel=1e-13)
    lv = sch.model_log_variance("beta")
    assert lv.shape == (sch.T,) and lv.dtype == F64
    assert lv[0].item() == pytest.approx(math.log(beta_tilde_1), rel=1e-13)  # 'fixedlarge' index 0
    torch.testing.assert_close(lv[1:], b[1:].log(), rtol=1e-14, atol=0)
    lt = sch.model_log_variance("beta_tilde")
    assert lt[0].item() == pytest.approx(math.log(beta_tilde_1), rel=1e-13)  # clipped: index 0 repeats index 1
    want = torch.log(b[1:] * (1 - ab[:-1]) / (1 - ab[1:]))
    torch.testing.assert_close(lt[1:], want, rtol=1e-12, atol=0)
    assert (lt[1:] < lv[1:]).all()  # beta~_t < beta_t for t >= 1
    with pytest.raises(ValueError, match="unknown reverse variance"):
        sch.model_log_variance("learned")


# ----------------------------------------------------------------------------------------------------------
# (f) the SDEs

def test_vpsde_of_chain_and_marginal_against_the_discrete_chain():
    sch = DiscreteSchedule(linear_betas(1000))
    sde = VPSDE.of_chain(sch)
    assert sde.schedule == "linear"
    assert sde.beta_min == pytest.approx(0.1, rel=1e-12) and sde.beta_max == pytest.approx(20.0, rel=1e-12)
    T = sch.T
    for i in [9, 49, 99, 299, 499, 799, 999]:
        # 0-indexed step i is the paper's step i + 1, i.e. time t = (i + 1) / T (at t = i / T the std is already
        # 1e-2 off at i = 49). The chain's log abar_i = sum_j log(1 - beta_j) differs from -int_0^t beta by
        # (1) the second-order terms -beta_j^2 / 2, summing to int_0^t beta^2 / (2T), and (2) an O(1/T) offset
        # of the Riemann sum, at most one step's beta(t) / T: that bounds the log abar gap (measured 6.8e-2 at
        # t = 1 against the bound 8.7e-2). For std = sqrt(1 - abar) the relative error at small t is set by
        # (2) against 1 - abar ~ beta_min t: ~ 1 / (2 (i + 1)) (measured 2.6e-2 at i = 9, 3.6e-3 at i = 99).
        t = (i + 1) / T
        tt = torch.tensor([t], dtype=F64)
        beta_t = 0.1 + 19.9 * t
        int_beta2 = (beta_t ** 3 - 0.1 ** 3) / (3 * 19.9)
        gap = abs(float(sch.alpha_bar[i].log() - sde.log_alpha_bar(tt)))
        assert gap < int_beta2 / (2 * T) + beta_t / T
        mean_coef, std = sde.marginal(torch.ones(1, 1, dtype=F64), tt)
        assert math.log(mean_coef.item()) == pytest.approx(0.5 * float(sde.log_alpha_bar(tt)), rel=1e-12)
        d_std = math.sqrt(1 - float(sch.alpha_bar[i]))
        assert abs(std.item() / d_std - 1) < 1 / (2 * (i + 1))
    # from t = 0.5 on, the two stds agree to 1e-3 relative
    t = torch.tensor([0.5], dtype=F64)
    assert sde.marginal(torch.ones(1, 1, dtype=F64), t)[1].item() == pytest.approx(
        math.sqrt(1 - float(sch.alpha_bar[499])), rel=1e-3)


def test_vpsde_cosine_matches_the_cosine_chain_exactly():
    sch = DiscreteSchedule(cosine_betas(1000))
    sde = VPSDE.of_chain(sch, "cosine")
    assert sde.schedule == "cosine"
    t = (torch.arange(1000, dtype=F64) + 1) / 1000
    # the chain's abar_i is f((i + 1) / T) / f(0), the SDE's abar(t) is f(t) / f(0): equal where unclipped
    torch.testing.assert_close(sde.log_alpha_bar(t[:-1]).exp(), sch.alpha_bar[:-1], rtol=1e-10, atol=0)


@pytest.mark.parametrize("sde", [VPSDE(), VPSDE(0.3, 12.0), VPSDE(schedule="cosine")])
def test_vpsde_beta_is_minus_derivative_of_log_alpha_bar(sde):
    t = torch.linspace(0.02, 0.95, 20, dtype=F64)
    h = 1e-5
    fd = -(sde.log_alpha_bar(t + h) - sde.log_alpha_bar(t - h)) / (2 * h)
    # central differences: truncation h^2 |f'''| / 6 and rounding 1e-16 |f| / h, both < 1e-8 relative here
    # (the cosine beta ~ tan grows to ~40 at t = 0.95 with f''' ~ 1e5: truncation ~ 2e-6 absolute)
    torch.testing.assert_close(sde.beta(t), fd, rtol=1e-7, atol=0)
    assert sde.log_alpha_bar(torch.zeros(1, dtype=F64)).item() == 0.0
    x = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    tt = torch.tensor([0.1, 0.4, 0.6, 0.9], dtype=F64)
    f, g = sde.coefficients(x, tt)
    beta = sde.beta(tt).reshape(-1, 1, 1)
    torch.testing.assert_close(f, -0.5 * beta * x, rtol=1e-14, atol=0)
    torch.testing.assert_close(g.expand_as(x), beta.sqrt().expand_as(x), rtol=1e-14, atol=0)


def test_vpsde_linear_log_alpha_bar_closed_form():
    sde = VPSDE(0.1, 20.0)
    assert sde.log_alpha_bar(torch.tensor(1.0, dtype=F64)).item() == pytest.approx(-(0.1 + 19.9 / 2), rel=1e-14)
    x0 = torch.tensor([[2.0]], dtype=F64)
    m, s = sde.marginal(x0, torch.tensor([0.3], dtype=F64))
    lab = -(0.1 * 0.3 + 19.9 * 0.09 / 2)
    assert m.item() == pytest.approx(2 * math.exp(lab / 2), rel=1e-14)
    assert s.item() == pytest.approx(math.sqrt(1 - math.exp(lab)), rel=1e-14)


def test_vesde_coefficients_and_marginal():
    sde = VESDE(0.01, 50.0)
    t = torch.linspace(0.0, 1.0, 21, dtype=F64)
    assert sde.sigma(torch.tensor(0.0, dtype=F64)).item() == pytest.approx(0.01, rel=1e-14)
    assert sde.sigma(torch.tensor(1.0, dtype=F64)).item() == pytest.approx(50.0, rel=1e-14)
    h = 1e-6
    fd = (sde.sigma(t + h) ** 2 - sde.sigma(t - h) ** 2) / (2 * h)  # d sigma^2 / dt
    x = torch.zeros(21, 3, dtype=F64)
    f, g = sde.coefficients(x, t)
    assert torch.equal(f, torch.zeros_like(x))
    # sigma^2 = e^{2 k t}: relative truncation (2k)^2 h^2 / 6 ~ 1e-10, rounding 2500 * 1e-16 / 1e-6 relative
    # to d sigma^2/dt ~ 4e4 at t = 1: ~ 1e-8
    torch.testing.assert_close(g[:, 0] ** 2, fd, rtol=1e-7, atol=0)
    x0 = torch.full((21, 2), 0.7, dtype=F64)
    mean, std = sde.marginal(x0, t)
    assert torch.equal(mean, x0)
    torch.testing.assert_close(std[:, 0], (sde.sigma(t) ** 2 - 0.01 ** 2).sqrt(), rtol=1e-14, atol=0)
    assert std[0, 0].item() == 0.0  # p_0(x | x_0) is the point mass: sigma(0) = sigma_min is subtracted


def test_prior_log_probs_are_normal_log_prob_sums():
    z = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(5), dtype=F64) * 3
    zero = torch.zeros((), dtype=F64)  # Python-float parameters would make Normal compute in float32
    want = torch.distributions.Normal(zero, zero + 1).log_prob(z).flatten(1).sum(1)
    torch.testing.assert_close(VPSDE().prior_log_prob(z), want, rtol=1e-13, atol=1e-10)
    sde = VESDE(0.01, 50.0)
    zz = z * 20
    want = torch.distributions.Normal(zero, zero + 50).log_prob(zz).flatten(1).sum(1)
    torch.testing.assert_close(sde.prior_log_prob(zz), want, rtol=1e-13, atol=1e-10)
    g = torch.Generator().manual_seed(6)
    s = sde.prior_sample((20000,), generator=g)
    assert abs(s.std().item() / 50 - 1) < 5 * math.sqrt(0.5 / 20000)  # SE of a sample std: sigma / sqrt(2n)


def test_probability_flow_drift():
    sde = VESDE(0.01, 50.0)
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(7), dtype=F64)
    t = torch.tensor([0.2, 0.5, 0.8], dtype=F64)
    score = lambda x, t: -x / (1 + sde.sigma(t)[:, None] ** 2)  # noqa: E731
    g2 = 2 * math.log(5000) * sde.sigma(t)[:, None] ** 2
    torch.testing.assert_close(probability_flow_drift(sde, score, x, t), -0.5 * g2 * score(x, t), rtol=1e-13,
                               atol=0)
    vp = VPSDE()
    b = vp.beta(t)[:, None]
    torch.testing.assert_close(probability_flow_drift(vp, score, x, t), -0.5 * b * x - 0.5 * b * score(x, t),
                               rtol=1e-13, atol=0)


def test_geometric_sigmas():
    s = geometric_sigmas(50.0, 0.01, 232)
    assert s.dtype == F64 and s.shape == (232,)
    assert s[0].item() == pytest.approx(50.0, rel=1e-13) and s[-1].item() == pytest.approx(0.01, rel=1e-13)
    ratio = s[1:] / s[:-1]
    want = (0.01 / 50.0) ** (1 / 231)
    torch.testing.assert_close(ratio, torch.full_like(ratio, want), rtol=1e-12, atol=0)
    assert (ratio < 1).all()
