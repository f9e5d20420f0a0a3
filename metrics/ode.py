"""Likelihood through an ODE: the instantaneous change of variables, integrated by an adaptive Runge-Kutta solver.

    log p_0(x(0)) = log p_1(x(1)) + int_0^1 div v(x(t), t) dt,   dx/dt = v(x, t)

For the probability-flow ODE of a diffusion or score model (genbench.noise.probability_flow_drift) this is the
likelihood of Song et al. 2021, Sec. 4.3 / Appendix D.2, up to solver and trace-estimator error; normalizing
flows in continuous time (FFJORD) use the same function.

Provenance
----------
- Instantaneous change of variables: Chen, Rubanova, Bettencourt & Duvenaud, "Neural Ordinary Differential
  Equations" (NeurIPS 2018), Theorem 1.
- Hutchinson's trace estimator, div v = E[e^T (dv/dx) e] with one vector-Jacobian product per probe e, the
  probes fixed for the whole solve: Grathwohl et al., "FFJORD" (ICLR 2019), Sec. 3.1. Rademacher probes as in
  yang-song/score_sde (likelihood.py, hutchinson_type='Rademacher'). `probes=0` takes the exact trace (one
  vector-Jacobian product per dimension: for tests and tiny data).
- Solver: the Dormand-Prince 5(4) pair (Dormand & Prince 1980; Hairer, Norsett & Wanner, Solving ODEs I,
  Table 5.2) with the standard step-size control: the error of the embedded 4th-order solution, scaled by
  atol + rtol max(|y|, |y_new|), its RMS over the whole batch's state (as score_sde's scipy RK45 call on the
  flattened batch does) at most 1. A solver of 50 lines serves, so genbench takes no ODE library: torchdiffeq's
  dopri5 is this method. Because the batch shares steps, an image's value moves within the tolerances with its
  batch; the evaluation fixes the batches.

Checked in tests/metrics/test_ode.py: the solver on linear ODEs with closed-form solutions; the likelihood of
Gaussian data under the VP and VE probability-flow ODEs with the analytic score equals the Gaussian's exact
log-density (exact trace and Hutchinson in the mean).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

# Dormand-Prince 5(4): nodes, stages, 5th-order weights (also the 7th stage, FSAL) and the error weights.
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = ((),
      (1 / 5,),
      (3 / 40, 9 / 40),
      (44 / 45, -56 / 15, 32 / 9),
      (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
      (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
      (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84))
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b5 - b4 for b5, b4 in zip(_B5, _B4))


@dataclass(frozen=True)
class Solution:
    y: torch.Tensor
    nfe: int  # evaluations of f
    steps: int  # accepted steps


def dopri5(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, t0: float, t1: float, *,
           rtol: float = 1e-5, atol: float = 1e-5, max_steps: int = 10_000) -> Solution:
    """y(t1) of dy/dt = f(t, y), y(t0) = y0, by adaptive Dormand-Prince 5(4) (t1 < t0 integrates backwards)."""
    direction = 1.0 if t1 >= t0 else -1.0
    t, y = t0, y0
    k1 = f(t, y)
    nfe, accepted = 1, 0

    def rms(v: torch.Tensor) -> float:
        return float(v.pow(2).mean().sqrt())

    scale = atol + rtol * y.abs()
    d0, d1 = rms(y / scale), rms(k1 / scale)
    h = 0.01 * d0 / d1 if d0 > 1e-5 and d1 > 1e-5 else 1e-6  # Hairer et al. II.4 starting-step heuristic
    h = min(h, abs(t1 - t0))
    for _ in range(max_steps):
        if direction * (t1 - t) <= 1e-12 * max(1.0, abs(t1)):
            return Solution(y, nfe, accepted)
        h = min(h, abs(t1 - t))
        hs = direction * h
        ks = [k1]
        for c, a in zip(_C[1:], _A[1:]):
            ks.append(f(t + c * hs, y + hs * sum(ai * k for ai, k in zip(a, ks) if ai != 0.0)))
        nfe += 6
        y_new = y + hs * sum(b * k for b, k in zip(_B5, ks) if b != 0.0)
        err = hs * sum(e * k for e, k in zip(_E, ks) if e != 0.0)
        ratio = rms(err / (atol + rtol * torch.maximum(y.abs(), y_new.abs())))
        if ratio <= 1.0:
            t, y, k1 = t + hs, y_new, ks[-1]  # first same as last
            accepted += 1
        factor = 10.0 if ratio == 0 else min(10.0, max(0.2, 0.9 * ratio ** -0.2))
        h = h * (min(factor, 1.0) if ratio > 1.0 else factor)
    raise RuntimeError(f"dopri5 did not reach t = {t1} in {max_steps} steps (at t = {t}); loosen the tolerances")


def rademacher(shape, *, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator, device=device).to(dtype) * 2 - 1


def divergence(v: torch.Tensor, x: torch.Tensor, probes: list[torch.Tensor] | None) -> torch.Tensor:
    """div_x v per row: the mean of e^T (dv/dx) e over the probes, or the exact trace when probes is None."""
    if probes:
        total = 0.0
        for i, e in enumerate(probes):
            (vjp,) = torch.autograd.grad(v, x, e, retain_graph=i + 1 < len(probes))
            total = total + (vjp * e).flatten(1).sum(1)
        return total / len(probes)
    flat_v = v.flatten(1)
    trace = torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)
    for j in range(flat_v.shape[1]):
        (g,) = torch.autograd.grad(flat_v[:, j].sum(), x, retain_graph=True)
        trace = trace + g.flatten(1)[:, j]
    return trace


@dataclass(frozen=True)
class ODELikelihood:
    log_prob: torch.Tensor  # log p_0(x) per row, nats, of the continuous density
    nfe: int
    steps: int


def ode_log_prob(drift: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 prior_log_prob: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, t0: float = 0.0,
                 t1: float = 1.0, rtol: float = 1e-5, atol: float = 1e-5, probes: int = 1,
                 generator: torch.Generator | None = None) -> ODELikelihood:
    """log p_{t0}(x) for dx/dt = drift(x, t) (t a (B,) tensor) carrying x to the prior at t1, by the
    instantaneous change of variables; `probes` Rademacher vectors per image (0: the exact trace)."""
    shape, d = x.shape, x[0].numel()
    e = [rademacher(shape, generator=generator, device=x.device, dtype=x.dtype) for _ in range(probes)] or None

    def f(t: float, state: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xt = state[:, :d].reshape(shape).detach().requires_grad_(True)
            v = drift(xt, torch.full((shape[0],), t, dtype=x.dtype, device=x.device))
            div = divergence(v, xt, e)
        return torch.cat([v.detach().flatten(1), div.detach()[:, None]], 1)

    y0 = torch.cat([x.flatten(1), torch.zeros(shape[0], 1, dtype=x.dtype, device=x.device)], 1)
    sol = dopri5(f, y0, t0, t1, rtol=rtol, atol=atol)
    z, delta = sol.y[:, :d].reshape(shape), sol.y[:, d]
    return ODELikelihood(prior_log_prob(z) + delta, sol.nfe, sol.steps)
