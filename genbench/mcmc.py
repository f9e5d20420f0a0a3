"""Markov chain Monte Carlo transitions shared by the score models (NCSN's annealed Langevin dynamics, the
corrector of the predictor-corrector sampler), the energy-based models and annealed importance sampling
(genbench.metrics.ais).

Provenance
----------
- Langevin dynamics (the unadjusted Langevin algorithm): x' = x + (alpha / 2) grad log p(x) + sqrt(alpha) z,
  z ~ N(0, I); Welling & Teh, "Bayesian Learning via Stochastic Gradient Langevin Dynamics" (ICML 2011), Eq. 4,
  and Song & Ermon 2019, Eq. 4 (with epsilon = alpha). Its stationary law tends to p as alpha -> 0; for a
  Gaussian N(m, s^2) it is exactly N(m, s^2 / (1 - alpha / (4 s^2))) (the chain is an AR(1) process), which
  tests/test_samplers.py checks.
- Langevin dynamics as the energy-based models run it (`sgld`: Du & Mordatch 2019, Grathwohl et al. 2020,
  Nijkamp et al. 2019): x <- x - lambda grad E(x) + sigma eps with the step lambda and the noise sigma set apart
  (sigma^2 = 2 lambda would be the algorithm above at alpha = 2 lambda), the gradient optionally clipped per
  coordinate and the chain clamped to a box. On a quadratic energy it is an AR(1) chain with a closed-form
  stationary variance, which tests/baselines/test_ebm.py checks.
- Hamiltonian Monte Carlo: Duane, Kennedy, Pendleton & Roweth, "Hybrid Monte Carlo" (Physics Letters B, 1987),
  in the notation of Neal, "MCMC using Hamiltonian dynamics" (Handbook of Markov Chain Monte Carlo, 2011,
  ch. 5): potential U(x) = -log p(x), kinetic K(p) = |p|^2 / 2 (identity mass), p ~ N(0, I) drawn afresh
  each transition, L leapfrog steps of size eps (Sec. 2.3.3, Eq. 2.28-2.30), then Metropolis acceptance with
  probability min(1, exp(H(x, p) - H(x*, p*))) (Sec. 3.2; section and equation numbers here as recalled).
  Each of the B chains has its own step size and its own accept/reject, so a batch is B independent chains.
  Checked in tests/test_mcmc.py: a correlated 3-D Gaussian's mean and covariance within 4 standard errors.
- Constraints by reflection (Neal 2011, Sec. 5.1): on the box [lo, hi]^D, a position update that crosses a
  wall is mirrored back inside and that momentum component negated (repeatedly, for long steps: the
  "unfolding" of free motion between elastic walls). The map stays reversible and volume preserving, so HMC
  samples the target restricted to the box. Checked in tests/test_mcmc.py: leapfrog with walls retraces
  itself under p -> -p and has unit Jacobian determinant (float64); a flat density stays uniform on the box;
  a truncated Gaussian keeps its closed-form mean and variance.
- Step-size adaptation as in Wu, Burda, Salakhutdinov & Grosse, "On the Quantitative Analysis of Decoder-Based
  Generative Models" (ICLR 2017) and their BDMC code: after each transition, per chain, eps *= 1.02 where
  the chain's running acceptance rate exceeds 0.65, else eps *= 0.98, clamped to [1e-4, 0.5]. The constants
  and the running rate (the mean over all past transitions) were read in the public PyTorch port of their
  code (lxuechen/BDMC, hmc.py); none of it is copied. What adaptation does to exactness: adapt_step_size.

Shapes: x is (B, ...) with B chains; log densities are (B,); a per-chain step size is (B,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from genbench import GenbenchError

Score = Callable[[torch.Tensor], torch.Tensor]
LogProb = Callable[[torch.Tensor], torch.Tensor]  # (B, ...) -> (B,), unnormalized, differentiable in x


def langevin_step(x: torch.Tensor, score: torch.Tensor, step_size, *, generator: torch.Generator | None = None,
                  noise: torch.Tensor | None = None) -> torch.Tensor:
    """One Langevin transition x + (alpha / 2) score + sqrt(alpha) z; `step_size` alpha a float or a tensor
    that broadcasts over x (per-row step sizes); z drawn from `generator` unless given as `noise`."""
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) if noise is None else noise
    return x + 0.5 * step_size * score + torch.as_tensor(step_size, dtype=x.dtype, device=x.device).sqrt() * z


def langevin_chain(x: torch.Tensor, score: Score, step_size: float, steps: int, *,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """`steps` Langevin transitions from x under a fixed score function."""
    for _ in range(steps):
        x = langevin_step(x, score(x), step_size, generator=generator)
    return x


# ----------------------------------------------------------------------------------------------- HMC

@dataclass(frozen=True)
class HMCStep:
    x: torch.Tensor            # (B, ...) states after the transition, detached
    accepted: torch.Tensor     # (B,) bool, the Metropolis decision of each chain
    accept_prob: torch.Tensor  # (B,) min(1, exp(-dH)), 0 for a non-finite proposal
    log_prob: torch.Tensor     # (B,) log_prob at the returned states, detached


def value_and_grad(log_prob: LogProb, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log_prob(x) (B,) and its gradient in x (B, ...), both detached; works inside no_grad / inference_mode.

    Chains must be independent inside log_prob (no batch statistics across rows): the gradient of the summed
    log density is then each row's own gradient. Model parameters get no .grad (only x is differentiated)."""
    with torch.inference_mode(False), torch.enable_grad():
        x = (x.clone() if x.is_inference() else x).detach().requires_grad_(True)
        lp = log_prob(x)
        if lp.shape != (x.shape[0],):
            raise GenbenchError(f"log_prob must return one value per chain, shape ({x.shape[0]},), "
                                f"got {tuple(lp.shape)}")
        g = torch.autograd.grad(lp.sum(), x, allow_unused=True)[0] if lp.requires_grad else None
    return lp.detach(), (torch.zeros_like(x) if g is None else g.detach())


def _per_chain(step_size, x: torch.Tensor) -> torch.Tensor:
    """A float or a (B,) tensor of step sizes -> a tensor that broadcasts over x, (B, 1, ..., 1)."""
    eps = torch.as_tensor(step_size, dtype=x.dtype, device=x.device)
    if eps.ndim == 0:
        eps = eps.expand(x.shape[0])
    if eps.shape != (x.shape[0],):
        raise GenbenchError(f"step_size must be a float or one per chain, shape ({x.shape[0]},), "
                            f"got {tuple(eps.shape)}")
    if not bool((eps > 0).all()):
        raise GenbenchError("step_size must be positive")
    return eps.reshape(-1, *([1] * (x.ndim - 1)))


def _walls(bounds, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    if bounds is None:
        return None
    lo, hi = (torch.as_tensor(b, dtype=x.dtype, device=x.device) for b in bounds)
    if not bool((hi > lo).all()):
        raise GenbenchError(f"bounds must satisfy lo < hi, got {bounds!r}")
    if not bool(((x >= lo) & (x <= hi)).all()):
        raise GenbenchError("HMC with bounds must start inside the box [lo, hi]; some coordinates of x are "
                            "outside it (clamp or resample the initial states)")
    return lo, hi


def reflect(x: torch.Tensor, p: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold positions into [lo, hi] as elastic walls would (Neal 2011, Sec. 5.1): a coordinate that crossed
    the walls k times lands mirrored when k is odd, with its momentum component negated."""
    u = (x - lo) / (hi - lo)
    k = torch.floor(u)                       # wall crossings, signed
    r = u - k                                # in [0, 1)
    odd = torch.remainder(k, 2) == 1
    return lo + (hi - lo) * torch.where(odd, 1 - r, r), torch.where(odd, -p, p)


def leapfrog(x: torch.Tensor, p: torch.Tensor, log_prob: LogProb, step_size, steps: int, *, bounds=None,
             start: tuple[torch.Tensor, torch.Tensor] | None = None):
    """`steps` leapfrog steps of size eps (Neal 2011, Eq. 2.28-2.30) for H = -log_prob(x) + |p|^2 / 2:
    p += eps/2 grad, then steps x (x += eps p, reflected off the walls of `bounds`) each followed by a
    momentum step (full, the last one half). `start` = (log_prob(x), grad) saves one evaluation.
    Returns (x, p, log_prob(x), grad log_prob(x)) at the end, detached."""
    eps = _per_chain(step_size, x)
    walls = _walls(bounds, x)
    lp, g = value_and_grad(log_prob, x) if start is None else start
    p = p + 0.5 * eps * g
    for i in range(steps):
        x = x + eps * p
        if walls is not None:
            x, p = reflect(x, p, *walls)
        lp, g = value_and_grad(log_prob, x)
        p = p + (eps if i < steps - 1 else 0.5 * eps) * g
    return x, p, lp, g


def _kinetic(p: torch.Tensor) -> torch.Tensor:
    return 0.5 * p.double().pow(2).flatten(1).sum(1)  # (B,) float64


def hmc_step(x: torch.Tensor, log_prob: LogProb, step_size, leapfrog_steps: int, *,
             generator: torch.Generator | None = None, bounds=None) -> HMCStep:
    """One HMC transition for each of the B independent chains in x (B, ...), leaving exp(log_prob) (restricted
    to the box `bounds` = (lo, hi) when given) invariant. step_size: a float or a (B,) tensor; the momentum
    p ~ N(0, I) and the uniform of the Metropolis test are drawn from `generator`. A proposal with a
    non-finite log density or momentum is rejected."""
    if not x.is_floating_point():
        raise GenbenchError(f"hmc_step needs floating-point states, got {x.dtype}")
    if leapfrog_steps < 1:
        raise GenbenchError(f"leapfrog_steps must be at least 1, got {leapfrog_steps}")
    x = x.detach()
    lp0, g0 = value_and_grad(log_prob, x)
    p0 = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    x1, p1, lp1, _ = leapfrog(x, p0, log_prob, step_size, leapfrog_steps, bounds=bounds, start=(lp0, g0))
    k1 = _kinetic(p1)
    log_ratio = (lp1.double() - k1) - (lp0.double() - _kinetic(p0))  # H(x, p) - H(x*, p*)
    finite = torch.isfinite(lp1) & torch.isfinite(k1)
    log_ratio = torch.where(finite & ~torch.isnan(log_ratio), log_ratio, torch.full_like(log_ratio, -torch.inf))
    u = torch.rand(x.shape[0], generator=generator, dtype=torch.float64, device=x.device)
    accepted = torch.log(u) < log_ratio
    keep = accepted.reshape(-1, *([1] * (x.ndim - 1)))
    return HMCStep(x=torch.where(keep, x1, x), accepted=accepted,
                   accept_prob=log_ratio.clamp(max=0.0).exp().to(x.dtype),
                   log_prob=torch.where(accepted, lp1, lp0))


def adapt_step_size(step_size: torch.Tensor, accept_rate: torch.Tensor, *, target: float = 0.65,
                    increase: float = 1.02, decrease: float = 0.98, min_step: float = 1e-4,
                    max_step: float = 0.5) -> torch.Tensor:
    """Wu et al. (2017)'s rule, per chain: step_size * increase where accept_rate > target, else
    step_size * decrease, clamped to [min_step, max_step]. accept_rate (B,) is the chain's running acceptance
    rate over its past transitions (as in their code) or any other statistic of the past the caller chooses.

    What is and is not guaranteed. Given its step size, every HMC transition leaves its target invariant. But
    a step size computed from a chain's own past is correlated with that chain's current state, and the
    state-to-state kernel (averaged over that step size) then need not leave the target invariant: adaptive
    MCMC in general does not. So inside AIS, online adaptation does not keep each transition a valid kernel
    for its intermediate distribution in the sense Neal (2001)'s unbiasedness proof needs, and E[Z-hat] = Z
    (hence the direction of the BDMC bounds) holds only approximately; the slow factor keeps the effect small,
    but nothing here bounds it. Exact alternatives: step sizes fixed in advance, or taken from other,
    independent chains (the "pilot" adaptation of genbench.metrics.ais)."""
    grown = torch.where(accept_rate > target, step_size * increase, step_size * decrease)
    return grown.clamp(min_step, max_step)


def sgld(energy: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, steps: int, step_size: float,
         noise_std: float, *, generator: torch.Generator | None = None, grad_clip: float | None = None,
         bounds: tuple[float, float] | None = None, noise_first: bool = False) -> torch.Tensor:
    """`steps` of Langevin dynamics as energy-based models run it, with the step lambda and the noise sigma set
    apart: x <- clamp(x - lambda clip(grad E(x)) + sigma eps) (JEM, the short-run EBM), or with `noise_first`
    (IGEBM) x~ = x + sigma eps, x <- clamp(x~ - lambda clip(grad E(x~))); clip to [-grad_clip, grad_clip] per
    coordinate where given, clamp to `bounds` where given; eps from `generator`. With sigma^2 = 2 lambda, no clip
    and no bounds this is `langevin_step` at alpha = 2 lambda on log p = -E; the recipes' sigma is far smaller,
    which samples exp(-E / T) with T = sigma^2 / (2 lambda) as lambda -> 0. The energy's gradient is taken in x
    alone (its parameters get none), inside torch.enable_grad() so a caller may hold no_grad."""
    x = x.detach()
    for _ in range(steps):
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if noise_first:
            x = x + noise_std * eps
        with torch.enable_grad():
            xg = x.requires_grad_(True)
            (grad,) = torch.autograd.grad(energy(xg).sum(), xg)
        if grad_clip is not None:
            grad = grad.clamp(-grad_clip, grad_clip)
        x = x.detach() - step_size * grad
        if not noise_first:
            x = x + noise_std * eps
        if bounds is not None:
            x = x.clamp(*bounds)
    return x.detach()
