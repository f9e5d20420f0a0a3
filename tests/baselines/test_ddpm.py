"""DDPM: the variational bound against an independent implementation of its formulas, the sampled estimate of
the bound against the full sum, L_simple against its definition, and the configuration's checks."""

import dataclasses
import math

import numpy as np
import pytest
import scipy.special
import torch

from genbench import GenbenchError
from genbench.baselines import ddpm
from genbench.optim import Optimizer

SHAPE = (1, 8, 8)


def tiny(**kw) -> ddpm.Model:
    """A small random network whose eps is far from zero (so every term of the bound is exercised)."""
    config = dataclasses.replace(ddpm.PRESETS["smoke"], timesteps=20, **kw)
    torch.manual_seed(0)
    model = ddpm.Model(config, SHAPE)
    for p in model.parameters():  # the zero-initialised output layers would make eps = 0
        torch.nn.init.normal_(p, std=0.2)
    return model.eval()


def images(n=3, seed=0):
    return torch.from_numpy(np.random.RandomState(seed).randint(0, 256, (n, *SHAPE)).astype(np.uint8))


def vb_reference(model: ddpm.Model, x: torch.Tensor, noises: list[torch.Tensor]) -> np.ndarray:
    """The bound in nats per image, written from the formulas of improved-diffusion's _vb_terms_bpd /
    calc_bpd_loop / _prior_bpd in float64 numpy ('fixedlarge' variance, x_0 clipped), with the normal CDF from
    scipy; only the network is shared with the code under test. noises[t] is the eps that makes x_t."""
    T = model.config.timesteps
    betas = np.linspace(model.config.beta_start, model.config.beta_end, T, dtype=np.float64)
    ac = np.cumprod(1 - betas)
    ac_prev = np.append(1.0, ac[:-1])
    post_var = betas * (1 - ac_prev) / (1 - ac)
    post_logvar = np.log(np.append(post_var[1], post_var[1:]))
    coef1 = betas * np.sqrt(ac_prev) / (1 - ac)
    coef2 = (1 - ac_prev) * np.sqrt(1 - betas) / (1 - ac)
    model_logvar = np.log(np.append(post_var[1], betas[1:]))

    def normal_kl(m1, lv1, m2, lv2):
        return 0.5 * (-1.0 + lv2 - lv1 + np.exp(lv1 - lv2) + (m1 - m2) ** 2 * np.exp(-lv2))

    x0 = x.double().numpy() / 127.5 - 1
    total = normal_kl(np.sqrt(ac[-1]) * x0, np.log(1 - ac[-1]), 0.0, 0.0).reshape(len(x), -1).sum(1)
    for t in range(T):
        eps_true = noises[t].double().numpy()
        xt = np.sqrt(ac[t]) * x0 + np.sqrt(1 - ac[t]) * eps_true
        with torch.no_grad():
            eps = model.eps(torch.from_numpy(xt).float(), torch.full((len(x),), t)).double().numpy()
        pred_x0 = np.clip(np.sqrt(1 / ac[t]) * xt - np.sqrt(1 / ac[t] - 1) * eps, -1, 1)
        mean = coef1[t] * pred_x0 + coef2[t] * xt
        if t == 0:
            inv_std = np.exp(-0.5 * model_logvar[0])
            lo, hi = (x0 - 1 / 255 - mean) * inv_std, (x0 + 1 / 255 - mean) * inv_std
            cdf_hi, cdf_lo = scipy.special.ndtr(hi), scipy.special.ndtr(lo)
            p = np.where(x0 < -0.999, cdf_hi, np.where(x0 > 0.999, 1 - cdf_lo, cdf_hi - cdf_lo))
            term = -np.log(p)
        else:
            true_mean = coef1[t] * x0 + coef2[t] * xt
            term = normal_kl(true_mean, post_logvar[t], mean, model_logvar[t])
        total = total + term.reshape(len(x), -1).sum(1)
    return total


def test_the_bound_matches_an_independent_implementation():
    model = tiny(vlb_timesteps=None)
    x = images()
    seed = 5
    g = torch.Generator().manual_seed(seed)
    nll = -model.log_likelihood(x, generator=g).numpy()
    g = torch.Generator().manual_seed(seed)  # the model draws x_t's noise for t = 0, 1, ..., T-1 in this order
    noises = [torch.randn(x.shape, generator=g) for _ in range(model.config.timesteps)]
    ref = vb_reference(model, x, noises)
    # float32 network and posterior arithmetic against float64: a few 1e-5 relative on sums of ~ 1e3 nats
    np.testing.assert_allclose(nll, ref, rtol=2e-5)
    assert model.likelihood_estimator == "vlb"


def test_the_sampled_estimate_is_unbiased_for_the_full_bound():
    x = images(2)
    full_model, mc_model = tiny(vlb_timesteps=None), tiny(vlb_timesteps=3)
    mc_model.load_state_dict(full_model.state_dict())
    g = torch.Generator().manual_seed(0)
    full = torch.stack([-full_model.log_likelihood(x, generator=g) for _ in range(20)])
    mc = torch.stack([-mc_model.log_likelihood(x, generator=g) for _ in range(200)])
    # both are random (x_t's noise; the estimate also t): their means agree within 4 standard errors
    se = (full.var(0) / len(full) + mc.var(0) / len(mc)).sqrt()
    assert ((full.mean(0) - mc.mean(0)).abs() < 4 * se).all(), (full.mean(0), mc.mean(0), se)
    assert mc.std(0).min() > full.std(0).max()  # the sampled timesteps do add variance
    assert mc_model.likelihood_estimator == "vlb-mc"


def test_the_prior_term_is_the_closed_form_kl():
    model = tiny()
    x = images(1)
    x0 = x.double() / 127.5 - 1
    ab = float(model.schedule.alpha_bar[-1])
    m, v = math.sqrt(ab) * x0, 1 - ab
    closed = 0.5 * (m ** 2 + v - 1 - math.log(v)).sum()
    assert float(model.prior_term(x0.float())) == pytest.approx(float(closed), rel=1e-5)


def test_train_step_minimises_l_simple_on_its_own_draws():
    """The training loss is ||eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t)||^2 (mean over pixels)
    with t ~ U{0..T-1} drawn before eps from the global RNG; checked by recomputing it from the same draws."""
    model = tiny()
    model.train()
    x = images(4)
    opt = model.configure_optimizers(Optimizer("sgd", lr=0.0))
    torch.manual_seed(3)
    loss = model.train_step(x, opt)["loss"]
    torch.manual_seed(3)
    t = torch.randint(0, model.config.timesteps, (4,))
    eps = torch.randn(x.shape)
    ab = model.schedule.alpha_bar[t].float().reshape(-1, 1, 1, 1)
    x0 = x.float() / 127.5 - 1
    with torch.no_grad():
        expected = (model.eps(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t) - eps).pow(2).mean()
    assert loss == pytest.approx(float(expected), rel=1e-6)


def test_samples_are_uint8_and_a_function_of_the_generator():
    model = tiny()
    a = model.sample(3, generator=torch.Generator().manual_seed(1))
    b = model.sample(3, generator=torch.Generator().manual_seed(1))
    assert a.dtype == torch.uint8 and a.shape == (3, *SHAPE) and torch.equal(a, b)
    ancestral = dataclasses.replace(model.config, sampler="ancestral", sample_steps=None)
    m2 = ddpm.Model(ancestral, SHAPE)
    m2.load_state_dict(model.state_dict())
    assert m2.sampler_description["steps"] == 20 and model.sampler_description["steps"] == 5
    assert not torch.equal(m2.sample(3, generator=torch.Generator().manual_seed(1)), a)
    # `steps` always means DDIM with that many steps, whatever the configured sampler (DDIM's Table 1)
    assert torch.equal(m2.sample(3, generator=torch.Generator().manual_seed(1), steps=5), a)
    assert m2.sampler_description_with(5) == model.sampler_description


@pytest.mark.parametrize("bad", [dict(sampler="ddim", sample_steps=None), dict(sampler="ancestral", sample_steps=7),
                                 dict(beta_schedule="quadratic"), dict(variance="learned"), dict(vlb_timesteps=0),
                                 dict(eta=1.5)])
def test_invalid_configurations_are_refused(bad):
    with pytest.raises(GenbenchError, match="ddpm: invalid config"):
        dataclasses.replace(ddpm.PRESETS["smoke"], **bad)


def test_the_cifar10_unet_has_the_published_size():
    model = ddpm.Model(ddpm.PRESETS["standard"], (3, 32, 32))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(35.7e6, rel=2e-3)  # Ho et al.: 35.7M
