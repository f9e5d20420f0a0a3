"""Markov chain Monte Carlo transitions shared by the score models (NCSN's annealed Langevin dynamics, the
corrector of the predictor-corrector sampler) and, later, the energy-based models and AIS.

Provenance
----------
- Langevin dynamics (the unadjusted Langevin algorithm): x' = x + (alpha / 2) grad log p(x) + sqrt(alpha) z,
  z ~ N(0, I); Welling & Teh, "Bayesian Learning via Stochastic Gradient Langevin Dynamics" (ICML 2011), Eq. 4,
  and Song & Ermon 2019, Eq. 4 (with epsilon = alpha). Its stationary law tends to p as alpha -> 0; for a
  Gaussian N(m, s^2) it is exactly N(m, s^2 / (1 - alpha / (4 s^2))) (the chain is an AR(1) process), which
  tests/test_samplers.py checks.
"""

from __future__ import annotations

from typing import Callable

import torch

Score = Callable[[torch.Tensor], torch.Tensor]


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
