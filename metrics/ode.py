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

- Fixed-step methods for training a continuous normalizing flow on a CPU budget: the classical 4th-order
  Runge-Kutta method and Euler's (Hairer, Norsett & Wanner I, II.1), `steps` equal steps.
- Gradients through the solve ("discretize, then optimize"): `change_of_variables(..., create_graph=True)` keeps
  the graph of every stage of every step, and the divergence's vector-Jacobian products are taken with
  create_graph, so a loss on (z, delta) backpropagates into the drift's parameters exactly for the discretized
  map (the step sizes of dopri5 are chosen from detached error norms and held fixed). FFJORD's reference code
  takes the adjoint instead (torchdiffeq's odeint_adjoint): O(1) memory, at the price of a second, backward
  solve whose gradient is that of the continuous problem only up to both solves' errors.

Checked in tests/metrics/test_ode.py: the solver on linear ODEs with closed-form solutions (dopri5, and the
fixed-step methods' orders); the likelihood of Gaussian data under the VP and VE probability-flow ODEs with the
analytic score equals the Gaussian's exact log-density (exact trace and Hutchinson in the mean); gradients
through the solve against finite differences; RNODE's penalties against closed forms of linear fields.
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
        return float(v.detach().pow(2).mean().sqrt())

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


def fixed_step(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, t0: float, t1: float, *,
               method: str = "rk4", steps: int) -> Solution:
    """y(t1) of dy/dt = f(t, y), y(t0) = y0, in `steps` equal steps of the classical Runge-Kutta method ("rk4",
    4 evaluations per step) or Euler's ("euler", 1); t1 < t0 integrates backwards."""
    if method not in ("rk4", "euler") or int(steps) != steps or steps < 1:
        raise ValueError(f"fixed_step needs method 'rk4' or 'euler' and steps >= 1, got {method!r}, {steps!r}")
    h = (t1 - t0) / steps
    y = y0
    for i in range(steps):
        t = t0 + i * h
        k1 = f(t, y)
        if method == "euler":
            y = y + h * k1
            continue
        k2 = f(t + h / 2, y + (h / 2) * k1)
        k3 = f(t + h / 2, y + (h / 2) * k2)
        k4 = f(t + h, y + h * k3)
        y = y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    return Solution(y, steps * (4 if method == "rk4" else 1), steps)


SOLVERS = ("dopri5", "rk4", "euler")


def solve(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, t0: float, t1: float, *,
          solver: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5, steps: int | None = None,
          max_steps: int = 10_000) -> Solution:
    """One entry to the solvers: adaptive "dopri5" (rtol, atol, at most `max_steps` tried steps) or a fixed-step
    "rk4" / "euler" in `steps` steps."""
    if solver == "dopri5":
        return dopri5(f, y0, t0, t1, rtol=rtol, atol=atol, max_steps=max_steps)
    if solver in SOLVERS:
        return fixed_step(f, y0, t0, t1, method=solver, steps=steps)
    raise ValueError(f"unknown solver {solver!r}; expected one of {', '.join(SOLVERS)}")


def rademacher(shape, *, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> torch.Tensor:
    return torch.randint(0, 2, shape, generator=generator, device=device).to(dtype) * 2 - 1


def divergence(v: torch.Tensor, x: torch.Tensor, probes: list[torch.Tensor] | None, *,
               create_graph: bool = False) -> torch.Tensor:
    """div_x v per row: the mean of e^T (dv/dx) e over the probes, or the exact trace when probes is None.
    With create_graph the result is differentiable (in the parameters v depends on, and in x)."""
    return _jacobian_terms(v, x, probes, create_graph=create_graph, frobenius=False)[0]


def divergence_and_frobenius(v: torch.Tensor, x: torch.Tensor, probes: list[torch.Tensor] | None, *,
                             create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """div_x v and ||dv/dx||_F^2 / D per row (D = x[0].numel()), from the same vector-Jacobian products: with
    probes, the mean of e^T (dv/dx) e and of |e^T dv/dx|^2 / D (both unbiased for unit-variance probes); with
    probes None, both exact (one vector-Jacobian product per dimension)."""
    return _jacobian_terms(v, x, probes, create_graph=create_graph, frobenius=True)


def _jacobian_terms(v, x, probes, *, create_graph: bool, frobenius: bool):
    if probes:
        trace, norm = 0.0, 0.0
        for i, e in enumerate(probes):
            (vjp,) = torch.autograd.grad(v, x, e, retain_graph=create_graph or i + 1 < len(probes),
                                         create_graph=create_graph)
            trace = trace + (vjp * e).flatten(1).sum(1)
            if frobenius:
                norm = norm + vjp.flatten(1).pow(2).mean(1)
        return trace / len(probes), (norm / len(probes) if frobenius else None)
    flat_v = v.flatten(1)
    trace = torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)
    norm = torch.zeros_like(trace)
    for j in range(flat_v.shape[1]):
        (g,) = torch.autograd.grad(flat_v[:, j].sum(), x, retain_graph=True, create_graph=create_graph)
        trace = trace + g.flatten(1)[:, j]
        if frobenius:
            norm = norm + g.flatten(1).pow(2).sum(1)
    return trace, (norm / flat_v.shape[1] if frobenius else None)


@dataclass(frozen=True)
class ODELikelihood:
    log_prob: torch.Tensor  # log p_0(x) per row, nats, of the continuous density
    nfe: int
    steps: int


@dataclass(frozen=True)
class Transport:
    z: torch.Tensor  # x(t1), x's shape
    delta: torch.Tensor  # int_{t0}^{t1} div v(x(t), t) dt per row (B,): log p_{t0}(x) = log p_{t1}(z) + delta
    nfe: int
    steps: int
    kinetic: torch.Tensor | None = None  # with regularize: int 1/2 |v|^2 / D dt per row (B,)
    frobenius: torch.Tensor | None = None  # with regularize: int ||dv/dx||_F^2 / D dt per row (B,), estimated


def change_of_variables(drift: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, *,
                        t0: float = 0.0, t1: float = 1.0, probes: list[torch.Tensor] | None,
                        create_graph: bool = False, solver: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5,
                        steps: int | None = None, max_steps: int = 10_000, regularize: bool = False) -> Transport:
    """Solve dx/dt = drift(x, t) (t a (B,) tensor) from x at t0 to z at t1 together with the integral of its
    divergence (Chen et al. 2018, Theorem 1), one state (x flattened, delta) of shape (B, D + 1) whose RMS error
    the adaptive solver controls. `probes`: the Hutchinson vectors, fixed for the whole solve, or None for the
    exact trace. create_graph=False: every evaluation is detached (memory stays that of one evaluation);
    create_graph=True: (z, delta) are differentiable through every step, for training (module docstring).
    regularize: also integrate RNODE's two penalties (Finlay et al. 2020, Eqs. 5 and 6, per dimension as their
    code has them), the kinetic energy 1/2 |v|^2 / D and the Jacobian's squared Frobenius norm / D (from the
    divergence's own vector-Jacobian products), two more state columns."""
    shape, d = x.shape, x[0].numel()

    def f(t: float, state: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            xt = state[:, :d].reshape(shape)
            if not (create_graph and xt.requires_grad):
                xt = xt.detach().requires_grad_(True)
            v = drift(xt, torch.full((shape[0],), t, dtype=x.dtype, device=x.device))
            div, frob = _jacobian_terms(v, xt, probes, create_graph=create_graph, frobenius=regularize)
        columns = [v.flatten(1), div[:, None]]
        if regularize:
            columns += [0.5 * v.flatten(1).pow(2).mean(1, keepdim=True), frob[:, None]]
        out = torch.cat(columns, 1)
        return out if create_graph else out.detach()

    y0 = torch.cat([x.flatten(1), torch.zeros(shape[0], 3 if regularize else 1, dtype=x.dtype, device=x.device)], 1)
    sol = solve(f, y0, t0, t1, solver=solver, rtol=rtol, atol=atol, steps=steps, max_steps=max_steps)
    extra = dict(kinetic=sol.y[:, d + 1], frobenius=sol.y[:, d + 2]) if regularize else {}
    return Transport(sol.y[:, :d].reshape(shape), sol.y[:, d], sol.nfe, sol.steps, **extra)


def ode_log_prob(drift: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 prior_log_prob: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, t0: float = 0.0,
                 t1: float = 1.0, rtol: float = 1e-5, atol: float = 1e-5, probes: int = 1,
                 generator: torch.Generator | None = None) -> ODELikelihood:
    """log p_{t0}(x) for dx/dt = drift(x, t) (t a (B,) tensor) carrying x to the prior at t1, by the
    instantaneous change of variables and dopri5; `probes` Rademacher vectors per image (0: the exact trace)."""
    e = [rademacher(x.shape, generator=generator, device=x.device, dtype=x.dtype) for _ in range(probes)] or None
    out = change_of_variables(drift, x, t0=t0, t1=t1, probes=e, rtol=rtol, atol=atol)
    return ODELikelihood(prior_log_prob(out.z) + out.delta, out.nfe, out.steps)
