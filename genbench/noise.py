"""Noise schedules, forward marginals, posteriors and SDE coefficients: the math diffusion and score models share.

One module for DDPM (genbench.baselines.ddpm), NCSN (genbench.baselines.ncsn), their samplers
(genbench.samplers) and the probability-flow likelihood (genbench.metrics.ode).

Provenance
----------
- Discrete diffusion: Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models" (NeurIPS 2020), Eq. 4
  (q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)), Eqs. 6-7 (the posterior q(x_{t-1} | x_t, x_0) with mean
  coefficients and variance beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t), Sec. 4 (linear betas 1e-4 to
  0.02, T = 1000). Timesteps are 0-indexed here as in the authors' code (index t = paper's t + 1), with
  abar_{-1} = 1. Checked in hojonathanho/diffusion (diffusion_utils_2.py) and openai/improved-diffusion
  (gaussian_diffusion.py): the same derived arrays, computed in float64 and cast when gathered; the clipped
  posterior log-variance repeats index 1 at index 0 (beta~_0 = 0).
- Cosine schedule: Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models" (ICML 2021), Eq. 17:
  abar(t) = f(t) / f(0), f(t) = cos^2(((t / T + s) / (1 + s)) pi / 2), s = 0.008, betas clipped at 0.999.
- SDEs: Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations" (ICLR 2021),
  Eqs. 9-11 and Appendix B: the VE SDE dx = sqrt(d sigma^2 / dt) dw with sigma(t) = sigma_min (sigma_max /
  sigma_min)^t, and the VP SDE dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw with beta(t) = beta_min + t (beta_max -
  beta_min), the limit of DDPM's chain with beta_i = beta(i / N) / N (so DDPM's 1e-4..0.02 at N = 1000 is
  beta_min 0.1, beta_max 20); Eq. 13: the probability-flow ODE dx/dt = f(x, t) - g(t)^2 score(x, t) / 2.
- Noise levels of NCSN: Song & Ermon, "Generative Modeling by Estimating Gradients of the Data Distribution"
  (NeurIPS 2019), Sec. 4.2: a geometric sequence sigma_1 > ... > sigma_L.

Checked in tests/test_noise.py against brute-force Gaussian algebra: the marginal of the chain run step by step,
the posterior from Bayes' rule on the joint Gaussian, the VP SDE's marginal against the discrete chain's, and
the VE / VP coefficients against numerical derivatives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG_2PI = math.log(2.0 * math.pi)


def linear_betas(T: int, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    """Ho et al. 2020, Sec. 4: betas increasing linearly from `start` to `end` (float64, (T,))."""
    return torch.linspace(start, end, T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal 2021, Eq. 17: betas from abar(t) = f(t) / f(0), clipped at `max_beta` (float64)."""
    t = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)


BETA_SCHEDULES = {"linear": linear_betas, "cosine": cosine_betas}


def _gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] (float64 table) as `like`'s dtype and device, shaped to broadcast over an image batch."""
    out = values.to(like.device)[t.to(like.device)].to(like.dtype)
    return out.reshape(-1, *([1] * (like.dim() - 1)))


class DiscreteSchedule:
    """The derived arrays of a beta schedule, float64, 0-indexed: index t is the paper's timestep t + 1."""

    def __init__(self, betas: torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.dim() != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-D sequence in (0, 1)")
        self.T = len(betas)
        self.betas = betas
        self.alphas = 1 - betas
        self.alpha_bar = torch.cumprod(self.alphas, 0)
        self.alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        # q(x_{t-1} | x_t, x_0) (Ho et al. Eq. 7)
        self.posterior_variance = betas * (1 - self.alpha_bar_prev) / (1 - self.alpha_bar)
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]]))
        self.posterior_mean_coef1 = betas * self.alpha_bar_prev.sqrt() / (1 - self.alpha_bar)
        self.posterior_mean_coef2 = (1 - self.alpha_bar_prev) * self.alphas.sqrt() / (1 - self.alpha_bar)

    @classmethod
    def named(cls, name: str, T: int, **kw) -> "DiscreteSchedule":
        if name not in BETA_SCHEDULES:
            raise ValueError(f"unknown beta schedule {name!r}; known: {', '.join(BETA_SCHEDULES)}")
        return cls(BETA_SCHEDULES[name](T, **kw))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Eq. 4)."""
        return _gather(self.alpha_bar.sqrt(), t, x0) * x0 + _gather((1 - self.alpha_bar).sqrt(), t, x0) * noise

    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _gather(self.alpha_bar.sqrt(), t, x0) * x0, _gather(1 - self.alpha_bar, t, x0).expand_as(x0)

    def q_posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor):
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0) (Eqs. 6-7)."""
        mean = _gather(self.posterior_mean_coef1, t, xt) * x0 + _gather(self.posterior_mean_coef2, t, xt) * xt
        return (mean, _gather(self.posterior_variance, t, xt).expand_as(xt),
                _gather(self.posterior_log_variance_clipped, t, xt).expand_as(xt))

    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), Eq. 4 solved for x_0."""
        return (_gather((1 / self.alpha_bar).sqrt(), t, xt) * xt
                - _gather((1 / self.alpha_bar - 1).sqrt(), t, xt) * eps)

    def model_log_variance(self, kind: str) -> torch.Tensor:
        """The fixed reverse-process log-variances (Ho et al. Sec. 3.2): "beta" (sigma_t^2 = beta_t, index 0
        taking beta~ of index 1 as the reference code's 'fixedlarge' does) or "beta_tilde" (sigma_t^2 = beta~_t,
        'fixedsmall', clipped at index 0)."""
        if kind == "beta":
            return torch.log(torch.cat([self.posterior_variance[1:2], self.betas[1:]]))
        if kind == "beta_tilde":
            return self.posterior_log_variance_clipped
        raise ValueError(f"unknown reverse variance {kind!r}; use 'beta' or 'beta_tilde'")


# -----------------------------------------------------------------------------------------------------------
# SDEs (Song et al. 2021), time t in [0, 1]

@dataclass(frozen=True)
class VPSDE:
    """dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw with log abar(t) = -int_0^t beta (linear or cosine beta)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    schedule: str = "linear"  # "linear": beta(t) = beta_min + t (beta_max - beta_min); "cosine": Nichol & Dhariwal
    cosine_s: float = 0.008

    @classmethod
    def of_chain(cls, schedule: DiscreteSchedule, name: str = "linear") -> "VPSDE":
        """The VP SDE whose discretization with N = T steps is the chain (Song et al. 2021, Appendix B)."""
        if name == "linear":
            return cls(float(schedule.betas[0] * schedule.T), float(schedule.betas[-1] * schedule.T), "linear")
        return cls(schedule="cosine")

    @property
    def t_end(self) -> float:
        """Where the reverse-time integration starts: 1, or just before it for the cosine schedule, whose beta(t)
        diverges at t = 1 (abar(1 - 1e-3) is about 2e-6, so N(0, I) is still the prior to that precision)."""
        return 1.0 if self.schedule == "linear" else 1.0 - 1e-3

    def log_alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        if self.schedule == "linear":
            return -(self.beta_min * t + (self.beta_max - self.beta_min) * t ** 2 / 2)
        s = self.cosine_s
        f = lambda u: torch.log(torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2)  # noqa: E731
        return f(t) - f(torch.zeros_like(t))

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        if self.schedule == "linear":
            return self.beta_min + t * (self.beta_max - self.beta_min)
        s = self.cosine_s
        return math.pi / (1 + s) * torch.tan((t + s) / (1 + s) * math.pi / 2)

    def coefficients(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift f(x, t) and diffusion g(t)."""
        beta = _rows(self.beta(t), x)
        return -0.5 * beta * x, beta.sqrt()

    def marginal(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of p_t(x | x_0)."""
        log_ab = _rows(self.log_alpha_bar(t), x0)
        return torch.exp(0.5 * log_ab) * x0, (-torch.expm1(log_ab)).sqrt()

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I) per row, the prior at t = 1."""
        d = z[0].numel()
        return -0.5 * (d * LOG_2PI + z.flatten(1).pow(2).sum(1))

    def prior_sample(self, shape, *, generator=None, device=None) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=device)


@dataclass(frozen=True)
class VESDE:
    """dx = sqrt(d sigma^2(t) / dt) dw, sigma(t) = sigma_min (sigma_max / sigma_min)^t."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def coefficients(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))
        return torch.zeros_like(x), _rows(g, x)

    def marginal(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of p_t(x | x_0) = N(x_0, (sigma(t)^2 - sigma(0)^2) I); the VE SDE starts
        at sigma_min, not 0, which Song et al. neglect and this keeps exact."""
        var = self.sigma(t) ** 2 - self.sigma_min ** 2
        return x0, _rows(var.sqrt(), x0)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, sigma_max^2 I) per row."""
        d = z[0].numel()
        return -0.5 * (d * (LOG_2PI + 2 * math.log(self.sigma_max)) + z.flatten(1).pow(2).sum(1) / self.sigma_max ** 2)

    def prior_sample(self, shape, *, generator=None, device=None) -> torch.Tensor:
        return self.sigma_max * torch.randn(shape, generator=generator, device=device)


def probability_flow_drift(sde, score, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dx/dt = f(x, t) - g(t)^2 score(x, t) / 2 (Song et al. 2021, Eq. 13), `score(x, t)` a callable."""
    f, g = sde.coefficients(x, t)
    return f - 0.5 * g ** 2 * score(x, t)


def geometric_sigmas(sigma_max: float, sigma_min: float, levels: int) -> torch.Tensor:
    """sigma_1 > ... > sigma_L, a geometric sequence (Song & Ermon 2019, Sec. 4.2), float64."""
    return torch.exp(torch.linspace(math.log(sigma_max), math.log(sigma_min), levels, dtype=torch.float64))


def _rows(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-row (or scalar) tensor shaped to broadcast over `like`'s trailing dimensions."""
    values = torch.as_tensor(values, dtype=like.dtype, device=like.device)
    return values.reshape(-1, *([1] * (like.dim() - 1))) if values.dim() else values
