"""genbench.metrics.ode: the Dormand-Prince solver on ODEs with closed-form solutions, the divergence against the
autograd Jacobian, the probability-flow likelihood of Gaussian data against the exact Gaussian density, the
fixed-step methods' orders, gradients through the solve against finite differences, and RNODE's penalties (kinetic
energy, Jacobian Frobenius norm) against the autograd Jacobian and a linear field's closed form.

For Gaussian data x0 ~ N(m, Sigma), every p_t of the VP and VE SDEs is Gaussian, N(c(t) m, C(t)), with
C(t) = abar(t) Sigma + (1 - abar(t)) I (VP, c = sqrt(abar)) or Sigma + (sigma(t)^2 - sigma_min^2) I (VE, c = 1).
All C(t) share Sigma's eigenvectors U, so the probability-flow ODE carries x at t0 to
z = c(t1) m + U diag(sqrt(C1 / C0)) U^T (x - c(t0) m) at t1, and the instantaneous change of variables gives
log p_t0(x) = log p_t1(z) + int div. With the SDE's own prior N(0, I) or N(0, sigma_max^2 I) in place of the
true p_1 (off by 1e-2 to 4e-2 nats here), ode_log_prob returns log p_t0(x) - log p_1(z) + log prior(z) exactly,
which is what the tests compare against.
"""

import itertools
import math

import pytest
import torch

from genbench.metrics.ode import (change_of_variables, divergence, divergence_and_frobenius, dopri5, ode_log_prob,
                                  rademacher, solve)
from genbench.noise import VESDE, VPSDE, probability_flow_drift

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ----------------------------------------------------------------------------------------------------------
# (a) the solver

MATRICES = {"spiral": [[-0.5, 2.0], [-2.0, -0.5]], "non-normal": [[-1.0, 3.0], [0.0, -2.0]],
            "growing": [[0.3, 1.0], [-1.0, 0.0]]}


@pytest.mark.parametrize("name", list(MATRICES))
@pytest.mark.parametrize("t0,t1", [(0.0, 3.0), (3.0, 0.0), (0.5, -1.5)])
def test_dopri5_linear_system_against_matrix_exp(name, t0, t1):
    A = torch.tensor(MATRICES[name], dtype=F64)
    y0 = torch.tensor([[1.0, 0.0], [0.3, -2.0], [5.0, 1.0]], dtype=F64)
    exact = y0 @ torch.linalg.matrix_exp(A * (t1 - t0)).T
    errors = {}
    for tol in (1e-5, 1e-8, 1e-10):
        calls = []

        def f(t, y):
            calls.append(t)
            return y @ A.T

        sol = dopri5(f, y0, t0, t1, rtol=tol, atol=tol)
        err = ((sol.y - exact).abs() / (tol + tol * exact.abs())).max().item()
        # the tolerance bounds each step's local error; the global error is their sum carried by the flow, which
        # grows them by up to e^{|A| |t1 - t0|}: measured <= 2x the tolerance, 13x for the backward spiral
        # (integrating a decaying spiral backwards amplifies by e^{1.5}); 30x flags a broken method or control
        assert err < 30, (tol, err)
        errors[tol] = ((sol.y - exact).abs().max() / exact.abs().max()).item()
        assert sol.nfe == len(calls)  # every evaluation counted
        assert (sol.nfe - 1) % 6 == 0 and sol.nfe >= 1 + 6 * sol.steps  # one start, six per (tried) step
        assert all(min(t0, t1) - 1e-12 <= t <= max(t0, t1) + 1e-12 for t in calls)  # never outside [t0, t1]
    # a 5th-order method: the error falls about as fast as the tolerance (1e5 here; demand 1e3)
    assert errors[1e-10] < 1e-3 * errors[1e-5]
    assert errors[1e-10] < 1e-8


def test_dopri5_time_dependent_and_trivial():
    # dy/dt = cos(t) y: y(t1) = y0 exp(sin t1 - sin t0); checks the stage times c_i h, which an autonomous
    # ODE cannot see
    y0 = torch.tensor([[1.0], [-2.0]], dtype=F64)
    for t0, t1 in [(0.0, 4.0), (4.0, -1.0)]:
        sol = dopri5(lambda t, y: math.cos(t) * y, y0, t0, t1, rtol=1e-9, atol=1e-9)
        exact = y0 * math.exp(math.sin(t1) - math.sin(t0))
        torch.testing.assert_close(sol.y, exact, rtol=3e-8, atol=3e-8)  # 30x the tolerance, as above
    # the controller's exponent 1/5 on a 5th-order local error makes the step count grow as tol^(-1/5): x10
    # over five decades (measured 8.6). A wrong node c_i still meets the tolerance, but, its order reduced,
    # only with ~tol^(-1/3) steps (x17 with c_2 = 1/4, which nothing else here detects)
    steps = [dopri5(lambda t, y: math.cos(t) * y, y0, 0.0, 10.0, rtol=tol, atol=tol).steps for tol in (1e-6, 1e-11)]
    assert steps[1] / steps[0] < 13
    same = dopri5(lambda t, y: y, y0, 1.0, 1.0)
    assert torch.equal(same.y, y0) and same.steps == 0 and same.nfe == 1
    with pytest.raises(RuntimeError, match="did not reach"):
        dopri5(lambda t, y: y, y0, 0.0, 10.0, rtol=1e-12, atol=1e-12, max_steps=5)


# ----------------------------------------------------------------------------------------------------------
# (c) the divergence

def _field(x):
    """A small nonlinear vector field, row by row: (B, 3) -> (B, 3)."""
    w = torch.tensor([[0.5, -1.0, 0.3], [2.0, 0.1, -0.7], [-0.4, 0.9, 1.2]], dtype=F64)
    return torch.tanh(x @ w) * x.sum(1, keepdim=True) + torch.sin(x) * x[:, :1] ** 2


def test_divergence_is_the_jacobian_trace():
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    want = torch.stack([torch.autograd.functional.jacobian(lambda r: _field(r[None])[0], row).trace() for row in x])
    xg = x.clone().requires_grad_(True)
    got = divergence(_field(xg), xg, None)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # Hutchinson with all 2^3 Rademacher vectors is exact (their mean of e_i e_j is the identity)
    probes = [torch.tensor(signs, dtype=F64).expand(5, 3) for signs in itertools.product([-1.0, 1.0], repeat=3)]
    torch.testing.assert_close(divergence(_field(xg), xg, probes), want, rtol=1e-12, atol=1e-12)
    # one probe: e^T J e, per row
    e = rademacher((5, 3), generator=torch.Generator().manual_seed(1), dtype=F64)
    jac = [torch.autograd.functional.jacobian(lambda r: _field(r[None])[0], row) for row in x]
    want1 = torch.stack([e[i] @ jac[i] @ e[i] for i in range(5)])
    torch.testing.assert_close(divergence(_field(xg), xg, [e]), want1, rtol=1e-12, atol=1e-12)
    assert set(e.unique().tolist()) == {-1.0, 1.0}
    # image-shaped inputs: the trace over all C*H*W dimensions of each image
    xi = torch.randn(2, 2, 2, 2, generator=torch.Generator().manual_seed(2), dtype=F64).requires_grad_(True)
    torch.testing.assert_close(divergence(xi ** 3, xi, None), (3 * xi ** 2).flatten(1).sum(1).detach(),
                               rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# (b) the probability-flow likelihood of Gaussian data

D = 3
MEAN = torch.tensor([0.5, -1.0, 0.2], dtype=F64)


class GaussianData:
    """x0 ~ N(MEAN, U diag(lam) U^T) and its exact noised marginals under a VP or VE SDE."""

    def __init__(self, sde, lam, rotate: bool):
        self.sde = sde
        self.lam = torch.as_tensor(lam, dtype=F64)
        if rotate:
            q, _ = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(3), dtype=F64))
            self.U = q
        else:
            self.U = torch.eye(D, dtype=F64)

    def law(self, t):
        """Mean coefficient c(t) (B, 1) and eigenvalues of C(t) (B, D)."""
        t = torch.as_tensor(t, dtype=F64).reshape(-1)
        x0 = torch.ones(len(t), 1, dtype=F64)
        coef, std = self.sde.marginal(x0, t)  # the module's own marginal: mean coefficient and std of p(x_t | x0)
        return coef, self.lam * coef ** 2 + std ** 2

    def score(self, x, t):
        c, ev = self.law(t)
        return -(((x - c * MEAN) @ self.U) / ev) @ self.U.T

    def log_prob(self, x, t):
        c, ev = self.law(t)
        y = (x - c * MEAN) @ self.U
        return -0.5 * (D * math.log(2 * math.pi) + ev.log().sum(1) + (y ** 2 / ev).sum(1))

    def transport(self, x, t0, t1):
        c0, e0 = self.law(t0)
        c1, e1 = self.law(t1)
        return c1 * MEAN + (((x - c0 * MEAN) @ self.U) * (e1 / e0).sqrt()) @ self.U.T

    def expected(self, x, t0, t1=1.0):
        """What ode_log_prob returns with the SDE's prior: log p_t0(x) - log p_t1(z) + log prior(z)."""
        z = self.transport(x, t0, t1)
        return self.log_prob(x, t0) - self.log_prob(z, t1) + self.sde.prior_log_prob(z)

    def drift(self, x, t):
        return probability_flow_drift(self.sde, self.score, x, t)


SDES = {"VP": VPSDE(0.1, 20.0), "VE": VESDE(0.01, 50.0)}
T0 = 1e-5  # the usual start of the likelihood integral; compared against p_{t0}, not p_0


def test_gaussian_marginals_of_the_helper():
    """The helper's closed forms, checked against the SDEs' definitions, so the comparisons below are fair."""
    t = torch.tensor([0.3], dtype=F64)
    ab = math.exp(-(0.1 * 0.3 + 19.9 * 0.09 / 2))
    c, ev = GaussianData(SDES["VP"], [0.36] * 3, False).law(t)
    assert c.item() == pytest.approx(math.sqrt(ab), rel=1e-13)
    torch.testing.assert_close(ev, torch.full((1, 3), ab * 0.36 + 1 - ab, dtype=F64), rtol=1e-13, atol=0)
    c, ev = GaussianData(SDES["VE"], [0.36] * 3, False).law(t)
    sig = 0.01 * 5000 ** 0.3
    assert c.item() == 1.0
    torch.testing.assert_close(ev, torch.full((1, 3), 0.36 + sig ** 2 - 1e-4, dtype=F64), rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", list(SDES))
def test_ode_log_prob_exact_trace_equals_the_gaussian_density(name):
    data = GaussianData(SDES[name], [0.36] * 3, rotate=False)  # x ~ N(m, s^2 I), s = 0.6
    x = MEAN + 0.6 * torch.randn(8, D, generator=torch.Generator().manual_seed(4), dtype=F64)
    out = ode_log_prob(data.drift, data.sde.prior_log_prob, x, t0=T0, t1=1.0, probes=0)
    # solver error at the default rtol = atol = 1e-5 measured 2e-5 (VP) / 9e-5 (VE) nats
    torch.testing.assert_close(out.log_prob, data.expected(x, T0), rtol=0, atol=1e-3)
    # the SDE prior is not exactly p_1: without the correction the gap is visible (so the above is not vacuous)
    gap = (data.expected(x, T0) - data.log_prob(x, T0)).abs().max().item()
    assert 1e-2 < gap < 0.1
    # with the exact p_1 as the prior the result is log p_t0(x) itself
    exact_prior = ode_log_prob(data.drift, lambda z: data.log_prob(z, 1.0), x, t0=T0, t1=1.0, probes=0)
    torch.testing.assert_close(exact_prior.log_prob, data.log_prob(x, T0), rtol=0, atol=1e-3)
    assert out.nfe > 6 and out.steps > 0
    # isotropic data: the drift's Jacobian is a multiple of I, so a Rademacher probe's e^T J e = tr J exactly
    hutch = ode_log_prob(data.drift, data.sde.prior_log_prob, x, t0=T0, probes=1,
                         generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(hutch.log_prob, out.log_prob, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", list(SDES))
def test_ode_log_prob_hutchinson_is_unbiased(name):
    # a rotated, anisotropic covariance, so that the Jacobian is not diagonal and one probe has variance
    data = GaussianData(SDES[name], [0.05, 0.3, 2.0], rotate=True)
    x4 = MEAN + torch.randn(4, D, generator=torch.Generator().manual_seed(6), dtype=F64)
    exact_trace = ode_log_prob(data.drift, data.sde.prior_log_prob, x4, t0=T0, probes=0)
    # the solver error is larger for this stiffer, anisotropic flow (measured 2e-4 / 7e-4 nats)
    torch.testing.assert_close(exact_trace.log_prob, data.expected(x4, T0), rtol=0, atol=1e-3)
    reps = 500
    x = x4.repeat_interleave(reps, 0)
    out = ode_log_prob(data.drift, data.sde.prior_log_prob, x, t0=T0, probes=1,
                       generator=torch.Generator().manual_seed(7))
    err = out.log_prob - data.expected(x, T0)
    # With a probe e fixed over the solve the estimate is e^T K e, K = int J dt = U diag(log(C1 / C0) / 2) U^T
    # (for both SDEs J = (dC/dt / 2) C^{-1} in the eigenbasis, up to the VP's -beta/2 I that cancels), whose
    # Rademacher variance is 2 sum_{i != j} K_ij^2
    c0, e0 = data.law(T0)
    c1, e1 = data.law(1.0)
    K = data.U @ torch.diag((0.5 * (e1 / e0).log())[0]) @ data.U.T
    var = 2 * (K ** 2).sum() - 2 * (K.diagonal() ** 2).sum()
    assert var.item() > 0.5  # the estimator is genuinely noisy here
    # sample variance of 2000 draws: relative SE sqrt((kurtosis - 1) / n) < 0.1 for this 4-valued estimator
    assert err.var().item() == pytest.approx(var.item(), rel=0.15)
    # unbiased: the mean error over 2000 draws within 4 standard errors plus the solver's 1e-3
    se = math.sqrt(var.item() / len(err))
    assert abs(err.mean().item()) < 4 * se + 1e-3
    for i in range(4):  # and for each of the four points, 500 draws each
        assert abs(err[i * reps:(i + 1) * reps].mean().item()) < 4 * math.sqrt(var.item() / reps) + 1e-3


# ----------------------------------------------------------------------------------------------------------
# (d) fixed-step solvers and gradients through the solve (continuous normalizing flows)

@pytest.mark.parametrize("method,order", [("rk4", 4), ("euler", 1)])
@pytest.mark.parametrize("t0,t1", [(0.0, 2.0), (2.0, 0.0)])
def test_fixed_step_methods_have_their_order(method, order, t0, t1):
    A = torch.tensor(MATRICES["spiral"], dtype=F64)
    y0 = torch.tensor([[1.0, 0.0], [0.3, -2.0]], dtype=F64)
    exact = y0 @ torch.linalg.matrix_exp(A * (t1 - t0)).T
    calls = []

    def f(t, y):
        calls.append(t)
        return y @ A.T

    errors = []
    for steps in (40, 80):
        calls.clear()
        sol = solve(f, y0, t0, t1, solver=method, steps=steps)
        assert sol.nfe == len(calls) == steps * (4 if method == "rk4" else 1) and sol.steps == steps
        assert all(min(t0, t1) - 1e-12 <= t <= max(t0, t1) + 1e-12 for t in calls)
        errors.append((sol.y - exact).abs().max().item())
    # halving the step divides the global error by 2^order (measured 15.6-16.4 for rk4, 2.1 for euler)
    assert errors[0] / errors[1] == pytest.approx(2 ** order, rel=0.1)
    with pytest.raises(ValueError, match="steps >= 1"):
        solve(f, y0, t0, t1, solver=method, steps=0)
    with pytest.raises(ValueError, match="unknown solver"):
        solve(f, y0, t0, t1, solver="midpoint", steps=2)


def _cnf_loss(W, x, e, **solver):
    drift = lambda z, t: torch.tanh(z @ W) * (1 + t[:, None]) - 0.5 * z  # noqa: E731
    out = change_of_variables(drift, x, probes=e, create_graph=True, **solver)
    return (out.z ** 2).sum() + out.delta.sum()


@pytest.mark.parametrize("solver", [dict(solver="rk4", steps=5), dict(solver="dopri5", rtol=1e-10, atol=1e-10)])
@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_gradients_flow_through_the_solve_and_the_divergence(solver, trace):
    """d/dW of a loss on (z, delta) by backpropagation through the steps (and through the divergence's
    vector-Jacobian products) against central differences; the detached solve carries no gradient."""
    W = torch.randn(3, 3, generator=torch.Generator().manual_seed(8), dtype=F64).requires_grad_(True)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(9), dtype=F64)
    e = None if trace == "exact" else [rademacher((4, 3), generator=torch.Generator().manual_seed(10), dtype=F64)]
    (grad,) = torch.autograd.grad(_cnf_loss(W, x, e, **solver), W)
    h, numeric = 1e-6, torch.zeros_like(W)
    with torch.no_grad():
        for i, j in itertools.product(range(3), range(3)):
            Wp, Wm = W.clone(), W.clone()
            Wp[i, j] += h
            Wm[i, j] -= h
            numeric[i, j] = (_cnf_loss(Wp, x, e, **solver) - _cnf_loss(Wm, x, e, **solver)) / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-6)
    # the delta term matters: without its graph (the divergence's own dependence on W) the gradient differs
    drift = lambda z, t: torch.tanh(z @ W) * (1 + t[:, None]) - 0.5 * z  # noqa: E731
    out = change_of_variables(drift, x, probes=e, create_graph=True, **solver)
    (grad_z,) = torch.autograd.grad((out.z ** 2).sum(), W)
    assert (grad - grad_z).abs().max() > 1e-2
    detached = change_of_variables(drift, x, probes=e, **solver)
    assert not detached.z.requires_grad and not detached.delta.requires_grad
    torch.testing.assert_close(detached.delta, out.delta.detach(), rtol=0, atol=1e-12)


def test_frobenius_norm_is_that_of_the_jacobian():
    """||dv/dx||_F^2 / D: exact from the row-by-row products; with all 2^3 Rademacher vectors the mean of
    |e^T J|^2 / D is exact too (E e_i e_k = delta_ik); one probe gives |e^T J|^2 / D, and the divergence it
    returns beside it is the plain divergence's."""
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(20), dtype=F64)
    jac = [torch.autograd.functional.jacobian(lambda r: _field(r[None])[0], row) for row in x]
    want = torch.stack([(j ** 2).sum() / 3 for j in jac])
    xg = x.clone().requires_grad_(True)
    trace, frob = divergence_and_frobenius(_field(xg), xg, None)
    torch.testing.assert_close(frob, want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(trace, divergence(_field(xg), xg, None), rtol=0, atol=0)
    probes = [torch.tensor(signs, dtype=F64).expand(5, 3) for signs in itertools.product([-1.0, 1.0], repeat=3)]
    torch.testing.assert_close(divergence_and_frobenius(_field(xg), xg, probes)[1], want, rtol=1e-12, atol=1e-12)
    e = rademacher((5, 3), generator=torch.Generator().manual_seed(21), dtype=F64)
    want1 = torch.stack([(e[i] @ jac[i]).pow(2).sum() / 3 for i in range(5)])
    torch.testing.assert_close(divergence_and_frobenius(_field(xg), xg, [e])[1], want1, rtol=1e-12, atol=1e-12)


def test_rnode_penalties_of_a_linear_field_against_closed_forms():
    """v = A x: x(t) = exp(tA) x0, so int_0^1 ||A||_F^2 / D dt = ||A||_F^2 / D and the kinetic energy
    int_0^1 1/2 |A exp(tA) x0|^2 / D dt, here by Simpson's rule on 2,001 points of matrix_exp. The penalties ride
    in extra state columns: with a fixed-step solver z and delta are bit-identical without them."""
    A = torch.tensor(MATRICES["non-normal"], dtype=F64)
    x0 = torch.tensor([[1.0, -0.5], [0.2, 2.0]], dtype=F64)
    drift = lambda z, t: z @ A.T  # noqa: E731
    out = change_of_variables(drift, x0, probes=None, rtol=1e-10, atol=1e-10, regularize=True)
    torch.testing.assert_close(out.frobenius, torch.full((2,), float((A ** 2).sum() / 2), dtype=F64),
                               rtol=1e-9, atol=0)
    t = torch.linspace(0, 1, 2001, dtype=F64)
    speed = torch.stack([0.5 * (x0 @ (A @ torch.linalg.matrix_exp(s * A)).T).pow(2).sum(1) / 2 for s in t])
    weights = torch.ones(2001, dtype=F64)
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    kinetic = (weights[:, None] * speed).sum(0) / (3 * 2000)
    torch.testing.assert_close(out.kinetic, kinetic, rtol=1e-9, atol=0)
    fixed = dict(solver="rk4", steps=6)
    plain = change_of_variables(drift, x0, probes=None, **fixed)
    both = change_of_variables(drift, x0, probes=None, regularize=True, **fixed)
    assert plain.kinetic is None and plain.frobenius is None
    torch.testing.assert_close(both.z, plain.z, rtol=0, atol=0)
    torch.testing.assert_close(both.delta, plain.delta, rtol=0, atol=0)


def test_gradients_flow_through_the_penalties():
    """d/dW of the integrated penalties through RK4's steps against central differences (exact trace)."""
    W = torch.randn(3, 3, generator=torch.Generator().manual_seed(22), dtype=F64).requires_grad_(True)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(23), dtype=F64)

    def penalty(W):
        drift = lambda z, t: torch.tanh(z @ W) * (1 + t[:, None]) - 0.5 * z  # noqa: E731
        out = change_of_variables(drift, x, probes=None, create_graph=True, solver="rk4", steps=5, regularize=True)
        return out.kinetic.sum() + 0.3 * out.frobenius.sum()

    (grad,) = torch.autograd.grad(penalty(W), W)
    h, numeric = 1e-6, torch.zeros_like(W)
    for i, j in itertools.product(range(3), range(3)):
        Wp, Wm = W.detach().clone(), W.detach().clone()
        Wp[i, j] += h
        Wm[i, j] -= h
        numeric[i, j] = (penalty(Wp) - penalty(Wm)).detach() / (2 * h)
    torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=1e-7)

@pytest.mark.parametrize("solver", [dict(solver="rk4", steps=4), dict(solver="euler", steps=6)])
def test_each_probe_is_fixed_over_the_solve(solver):
    """With every probe fixed over a fixed-step solve the estimate is e^T K e for one matrix K (the steps' weighted
    sum of Jacobians), so its mean over all 2^D Rademacher sign vectors is tr K, the exact-trace result, to
    rounding; a probe redrawn at each evaluation would not average out exactly."""
    W = torch.randn(3, 3, generator=torch.Generator().manual_seed(11), dtype=F64)
    drift = lambda z, t: torch.tanh(z @ W) * (1 + t[:, None]) - 0.5 * z  # noqa: E731
    x = torch.randn(1, 3, generator=torch.Generator().manual_seed(12), dtype=F64)
    exact = change_of_variables(drift, x, probes=None, **solver).delta
    signs = [torch.tensor([s], dtype=F64) for s in itertools.product([-1.0, 1.0], repeat=3)]
    estimates = torch.cat([change_of_variables(drift, x, probes=[e], **solver).delta for e in signs])
    assert estimates.std() > 0.05  # single sign vectors are far from the trace
    torch.testing.assert_close(estimates.mean(), exact[0], rtol=0, atol=1e-12)
