"""genbench.mcmc's Hamiltonian Monte Carlo on targets whose laws are known in closed form.

HMC is exact (no discretization bias: the Metropolis test corrects the integrator), and the final states of
independent chains are independent draws, so every check is a sample statistic against its closed form within
4 standard errors of that statistic (~1e-4 false-alarm rate per check), except the integrator checks, which are
deterministic float64 identities. Every random draw comes from a seeded generator.
"""

import math

import pytest
import torch

from genbench import GenbenchError
from genbench.mcmc import adapt_step_size, hmc_step, leapfrog

F64 = torch.float64
Z = 4.0  # standard errors allowed on a sample statistic

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gaussian(m: torch.Tensor, S: torch.Tensor):
    """Unnormalized log N(x; m, S) for rows of x, (B, D) -> (B,)."""
    P = torch.linalg.inv(S)
    return lambda x: -0.5 * torch.einsum("bi,ij,bj->b", x - m, P, x - m)


def run(x, log_prob, eps, L, steps, seed, bounds=None):
    g, accepted = gen(seed), []
    for _ in range(steps):
        out = hmc_step(x, log_prob, eps, L, generator=g, bounds=bounds)
        x = out.x
        accepted.append(out.accepted)
    return x, torch.stack(accepted)


def assert_mean_var(x, mean, var, var_of_square_dev):
    """Per-coordinate sample mean and variance of x (n, D) against closed forms, within Z standard errors:
    SE(mean) = sqrt(var / n), SE(variance) = sqrt(Var[(X - mu)^2] / n)."""
    n = x.shape[0]
    assert ((x.mean(0) - mean).abs() < Z * (var / n).sqrt()).all(), (x.mean(0), mean)
    assert ((x.var(0) - var).abs() < Z * (var_of_square_dev / n).sqrt()).all(), (x.var(0), var)


def test_hmc_recovers_a_correlated_gaussian():
    S = torch.tensor([[1.0, 0.6, 0.2], [0.6, 1.0, -0.3], [0.2, -0.3, 0.5]], dtype=F64)  # eigenvalues 0.09-1.6
    m, n = torch.tensor([1.0, -2.0, 0.5], dtype=F64), 3000
    x, acc = run(torch.randn(n, 3, generator=gen(1), dtype=F64), gaussian(m, S), 0.2, 10, 40, seed=2)
    assert 0.5 < acc.double().mean() < 1.0
    assert_mean_var(x, m, S.diagonal(), 2 * S.diagonal() ** 2)
    # off-diagonal covariances: Var[(X_i - m_i)(X_j - m_j)] = S_ii S_jj + S_ij^2
    C = torch.cov(x.T)
    se = ((S.diagonal()[:, None] * S.diagonal()[None, :] + S ** 2) / n).sqrt()
    assert ((C - S).abs() < Z * se).all(), (C, S)


def test_tiny_step_is_almost_always_accepted_and_seeded():
    log_prob = gaussian(torch.zeros(5, dtype=F64), torch.eye(5, dtype=F64))
    x = torch.randn(200, 5, generator=gen(3), dtype=F64)
    a = hmc_step(x, log_prob, 1e-3, 5, generator=gen(4))
    b = hmc_step(x, log_prob, torch.full((200,), 1e-3, dtype=F64), 5, generator=gen(4))  # per-chain form
    assert a.accept_prob.min() > 0.999 and a.accepted.double().mean() > 0.99
    assert torch.equal(a.x, b.x) and torch.equal(a.accepted, b.accepted)
    assert torch.allclose(a.log_prob, log_prob(a.x), rtol=0, atol=1e-12)
    with torch.no_grad():  # gradients are taken inside, whatever the caller's mode
        c = hmc_step(x, log_prob, 1e-3, 5, generator=gen(4))
    assert torch.equal(a.x, c.x)


def test_reflected_leapfrog_is_reversible_and_volume_preserving():
    """Momenta large enough to cross the walls of [0, 1] several times per step: retracing from (x', -p')
    returns to (x, -p), and the map's Jacobian (central differences) has determinant 1, both in float64."""
    log_prob = gaussian(torch.tensor([0.3, 0.6], dtype=F64), torch.tensor([[0.2, 0.05], [0.05, 0.1]], dtype=F64))
    x = torch.rand(6, 2, generator=gen(5), dtype=F64)
    p = 5 * torch.randn(6, 2, generator=gen(6), dtype=F64)
    x1, p1, _, _ = leapfrog(x, p, log_prob, 0.3, 8, bounds=(0.0, 1.0))
    assert ((x1 >= 0) & (x1 <= 1)).all()
    x2, p2, _, _ = leapfrog(x1, -p1, log_prob, 0.3, 8, bounds=(0.0, 1.0))
    assert torch.allclose(x2, x, atol=1e-10) and torch.allclose(p2, -p, atol=1e-10)

    h, state = 1e-6, torch.cat([x[0], p[0]])  # one chain; the 8 perturbations run as one batch
    delta = h * torch.cat([torch.eye(4, dtype=F64), -torch.eye(4, dtype=F64)])
    s = state + delta
    xs, ps, _, _ = leapfrog(s[:, :2], s[:, 2:], log_prob, 0.3, 8, bounds=(0.0, 1.0))
    out = torch.cat([xs, ps], 1)
    J = (out[:4] - out[4:]).T / (2 * h)  # (4, 4), column k: d out / d state_k
    assert abs(torch.linalg.det(J).item() - 1.0) < 1e-5


def test_flat_density_on_the_box_stays_uniform_and_inside():
    """log_prob = 0 (no gradient at all): HMC is free motion between elastic walls, always accepted, and from
    a point mass its law converges to uniform on [0, 1]^3: mean 1/2, variance 1/12,
    Var[(U - 1/2)^2] = 1/80 - 1/144 = 1/180."""
    n = 4000
    x = torch.full((n, 3), 0.1, dtype=F64)
    g = gen(7)
    for _ in range(15):
        out = hmc_step(x, lambda z: torch.zeros(z.shape[0], dtype=F64), 0.25, 4, generator=g, bounds=(0.0, 1.0))
        assert out.accepted.all() and ((out.x >= 0) & (out.x <= 1)).all()
        x = out.x
    assert_mean_var(x, torch.full((3,), 0.5, dtype=F64), torch.full((3,), 1 / 12, dtype=F64),
                    torch.full((3,), 1 / 180, dtype=F64))


def truncated_normal_moments(mu: float, s: float, lo: float, hi: float):
    """Mean, variance and Var[(X - mean)^2] (by quadrature) of N(mu, s^2) truncated to [lo, hi]."""
    phi = lambda t: math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)  # noqa: E731
    Phi = lambda t: 0.5 * (1 + math.erf(t / math.sqrt(2)))  # noqa: E731
    a, b = (lo - mu) / s, (hi - mu) / s
    Zab = Phi(b) - Phi(a)
    mean = mu + s * (phi(a) - phi(b)) / Zab
    var = s * s * (1 + (a * phi(a) - b * phi(b)) / Zab - ((phi(a) - phi(b)) / Zab) ** 2)
    t = torch.linspace(lo, hi, 200001, dtype=F64)
    w = torch.exp(-0.5 * ((t - mu) / s) ** 2)
    fourth = torch.trapezoid(w * (t - mean) ** 4, t) / torch.trapezoid(w, t)
    return mean, var, fourth.item() - var ** 2


def test_reflection_keeps_a_truncated_gaussians_moments():
    mus, s = [0.8, -0.2], 0.3
    mom = [truncated_normal_moments(mu, s, 0.0, 1.0) for mu in mus]
    m = torch.tensor(mus, dtype=F64)
    x = torch.rand(4000, 2, generator=gen(8), dtype=F64)
    x, _ = run(x, lambda z: -0.5 * (((z - m) / s) ** 2).sum(1), 0.1, 10, 30, seed=9, bounds=(0.0, 1.0))
    assert ((x >= 0) & (x <= 1)).all()
    mean, var, var_sq = (torch.tensor(v, dtype=F64) for v in zip(*mom))
    assert_mean_var(x, mean, var, var_sq)


def test_adapt_step_size_rule():
    eps = torch.tensor([0.1, 0.1, 0.49, 2e-4])
    rate = torch.tensor([0.9, 0.3, 0.9, 0.1])
    new = adapt_step_size(eps, rate, target=0.65)
    assert torch.allclose(new, torch.tensor([0.102, 0.098, 0.4998, 1.96e-4]))
    assert adapt_step_size(torch.tensor([0.5]), torch.tensor([1.0]))[0] == 0.5          # clamped above
    assert adapt_step_size(torch.tensor([1e-4]), torch.tensor([0.0]))[0] == pytest.approx(1e-4)  # and below


def test_adaptation_moves_toward_the_target_acceptance():
    """Chains started with a step far too small (0.3) and far too large (1.9) on N(0, I_5), adapted on their
    running acceptance rate (Wu et al.'s rule): within 25 transitions the small steps grow and the large ones
    shrink; after 200 the running rate of both halves is within 0.05 of 0.65 and their median steps agree
    within 25%. (The rule overshoots before it settles, so no monotone approach is asserted.)"""
    log_prob = gaussian(torch.zeros(5, dtype=F64), torch.eye(5, dtype=F64))
    n, g = 200, gen(10)
    x = torch.randn(n, 5, generator=g, dtype=F64)
    eps = torch.cat([torch.full((n // 2,), 0.3), torch.full((n // 2,), 1.9)]).to(F64)
    small, large = slice(0, n // 2), slice(n // 2, n)
    accepts = torch.zeros(n, dtype=F64)
    for k in range(1, 201):
        out = hmc_step(x, log_prob, eps, 5, generator=g)
        x, accepts = out.x, accepts + out.accepted
        eps = adapt_step_size(eps, accepts / k, target=0.65, max_step=2.0)
        if k == 25:
            assert eps[small].median() > 0.4 and eps[large].median() < 1.5
    rate = accepts / 200
    for half in (small, large):
        assert abs(rate[half].mean().item() - 0.65) < 0.05, rate[half].mean()
    assert 0.8 < eps[small].median() / eps[large].median() < 1.25


def test_bad_input_is_refused():
    log_prob = gaussian(torch.zeros(2, dtype=F64), torch.eye(2, dtype=F64))
    x = torch.full((3, 2), 0.5, dtype=F64)
    with pytest.raises(GenbenchError, match="inside the box"):
        hmc_step(x + 1, log_prob, 0.1, 3, bounds=(0.0, 1.0))
    with pytest.raises(GenbenchError, match="one value per chain"):
        hmc_step(x, lambda z: z.sum(), 0.1, 3)
    with pytest.raises(GenbenchError, match="one per chain"):
        hmc_step(x, log_prob, torch.ones(2), 3)
