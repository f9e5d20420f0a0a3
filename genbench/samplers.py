"""Samplers of the diffusion and score families: plain functions in each paper's notation.

Each takes the network as a callable, the schedule or noise levels, a starting point or shape, and a
torch.Generator that is the only source of randomness, so a sampler's output is a function of its arguments.
Timesteps of the discrete chain are 0-indexed (genbench.noise).

- `ddpm_ancestral`: Ho et al. 2020, Algorithm 2, written through the predicted x_0 and the posterior mean of
  Eq. 7, which is Algorithm 2's update exactly when x_0 is not clipped; the authors' code
  (hojonathanho/diffusion, p_sample) clips x_0 to [-1, 1] and so does this by default.
- `ddim`: Song, Meng & Ermon, "Denoising Diffusion Implicit Models" (ICLR 2021), Eq. 12 with
  sigma_t(eta) of Eq. 16 on the "uniform" sub-sequence tau = 0, c, 2c, ... (c = T // S) of their code
  (ermongroup/ddim, generalized_steps: x_0 not clipped). eta = 0 is deterministic given x_T; eta = 1 with S = T
  is the ancestral sampler with sigma_t^2 = beta~_t.
- `annealed_langevin`: Song & Ermon 2019, Algorithm 1: T Langevin steps per noise level with step size
  alpha_i = eps sigma_i^2 / sigma_L^2; `denoise` adds the final step x + sigma_L^2 s(x, sigma_L) of Song &
  Ermon 2020 (NCSNv2), Sec. 3.4 / Appendix C (Tweedie's formula).
- `predictor_corrector`: Song et al. 2021, Algorithm 2 (VE SDE): the reverse-diffusion predictor and a
  Langevin corrector with step size eps_i = 2 (r ||z|| / ||s||)^2 (signal-to-noise ratio r), in the order of
  their code (yang-song/score_sde, sampling.py: corrector, then predictor; the last predictor step returns its
  noise-free mean). Norms are per image (their code averages them over the batch), so no image depends on the
  others in its batch.
"""

from __future__ import annotations

from typing import Callable

import torch

from genbench.mcmc import langevin_step
from genbench.noise import DiscreteSchedule

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]    # (x_t, t indices (B,)) -> eps prediction
ScoreModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, sigma (B,)) -> score


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _times(x: torch.Tensor, i: int) -> torch.Tensor:
    return torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)


@torch.no_grad()
def ddpm_ancestral(eps_model: EpsModel, schedule: DiscreteSchedule, x_T: torch.Tensor, *, variance: str = "beta",
                   clip_denoised: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Ho et al. 2020, Algorithm 2 from x_T: x_{t-1} = mu(x_t, x_0-hat) + sigma_t z, no noise at the last step."""
    log_var = schedule.model_log_variance(variance)
    x = x_T
    for i in reversed(range(schedule.T)):
        t = _times(x, i)
        x0 = schedule.predict_x0(x, t, eps_model(x, t))
        if clip_denoised:
            x0 = x0.clamp(-1, 1)
        mean, _, _ = schedule.q_posterior(x0, x, t)
        x = mean + torch.exp(0.5 * log_var[i]).to(x.dtype) * _noise(x, generator) if i > 0 else mean
    return x


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """The "uniform" sub-sequence of DDIM's code: 0, c, 2c, ... below T with c = T // steps."""
    if not 1 <= steps <= T:
        raise ValueError(f"DDIM needs 1 <= steps <= T = {T}, got {steps}")
    return list(range(0, T, T // steps))


@torch.no_grad()
def ddim(eps_model: EpsModel, schedule: DiscreteSchedule, x_T: torch.Tensor, *, steps: int, eta: float = 0.0,
         clip_denoised: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """Song, Meng & Ermon 2021, Eq. 12: x_prev = sqrt(abar_prev) x_0-hat + sqrt(1 - abar_prev - sigma^2) eps
    + sigma z, sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)."""
    seq = ddim_timesteps(schedule.T, steps)
    abar = schedule.alpha_bar
    x = x_T
    for i, prev in zip(reversed(seq), reversed([-1] + seq[:-1])):
        t = _times(x, i)
        eps = eps_model(x, t)
        x0 = schedule.predict_x0(x, t, eps)
        if clip_denoised:
            x0 = x0.clamp(-1, 1)
        a_t, a_prev = abar[i], (abar[prev] if prev >= 0 else torch.ones((), dtype=abar.dtype))
        sigma = eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        x = a_prev.sqrt().to(x.dtype) * x0 + (1 - a_prev - sigma ** 2).clamp(min=0).sqrt().to(x.dtype) * eps
        if eta > 0 and prev >= 0:
            x = x + sigma.to(x.dtype) * _noise(x, generator)
    return x


@torch.no_grad()
def annealed_langevin(score_model: ScoreModel, sigmas: torch.Tensor, x: torch.Tensor, *, steps_per_level: int,
                      eps: float, denoise: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """Song & Ermon 2019, Algorithm 1 over sigma_1 > ... > sigma_L from x (their code starts at U[0, 1])."""
    sigma_L = float(sigmas[-1])
    for sigma in sigmas.tolist():
        alpha = eps * sigma ** 2 / sigma_L ** 2
        level = torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)
        for _ in range(steps_per_level):
            x = langevin_step(x, score_model(x, level), alpha, generator=generator)
    if denoise:
        level = torch.full((x.shape[0],), sigma_L, dtype=x.dtype, device=x.device)
        x = x + sigma_L ** 2 * score_model(x, level)
    return x


@torch.no_grad()
def predictor_corrector(score_model: ScoreModel, sigmas: torch.Tensor, x: torch.Tensor, *, snr: float = 0.16,
                        corrector_steps: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """Song et al. 2021, Algorithm 2 (VE SDE) over sigma_1 > ... > sigma_N from x ~ N(0, sigma_1^2 I): at each
    level `corrector_steps` Langevin corrections, then the reverse-diffusion step to the next level (0 after
    the last, whose noise-free mean is returned)."""
    levels = sigmas.tolist()
    for k, sigma in enumerate(levels):
        level = torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)
        for _ in range(corrector_steps):
            s = score_model(x, level)
            z = _noise(x, generator)
            ratio = z.flatten(1).norm(dim=1) / s.flatten(1).norm(dim=1).clamp(min=1e-12)
            step = (2 * (snr * ratio) ** 2).reshape(-1, *([1] * (x.dim() - 1)))
            x = langevin_step(x, s, 2 * step, noise=z)  # x + eps s + sqrt(2 eps) z
        nxt = levels[k + 1] if k + 1 < len(levels) else 0.0
        mean = x + (sigma ** 2 - nxt ** 2) * score_model(x, level)
        x = mean + (sigma ** 2 - nxt ** 2) ** 0.5 * _noise(x, generator) if k + 1 < len(levels) else mean
    return x
