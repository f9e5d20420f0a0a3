"""FFJORD: the solved map's inverse, the trace integral against log|det| of the map's autograd Jacobian, Hutchinson's
estimate in the mean, normalization of a 1-D CNF by quadrature, the closed forms of linear fields, the
dequantization bound against a direct computation and against the exact discrete probabilities of a one-pixel
toy, gradients through the solver against finite differences, and training and sampling determinism."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from genbench import GenbenchError
from genbench.baselines import ffjord
from genbench.optim import Optimizer

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

F64 = torch.float64
TIGHT = dict(eval_solver="dopri5", eval_rtol=1e-10, eval_atol=1e-10)


def tiny(shape, *, std=0.3, seed=0, **kw) -> ffjord.Model:
    """A small float64 model with random weights (N(0, std^2): a flow far from the identity), T = 1."""
    fields = dict(hidden=(8,), blocks=1, scales=1, solver="rk4", steps=4, **TIGHT)
    fields.update(kw)
    torch.manual_seed(seed)
    model = ffjord.Model(ffjord.Config(**fields), shape).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("sqrt_end_time"):
                p.normal_(0.0, std)
    return model.eval()


def images(shape, n=3, seed=0):
    return torch.from_numpy(np.random.RandomState(seed).randint(0, 256, (n, *shape)).astype(np.uint8))


def continuous(shape, n=3, seed=0):
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed), dtype=F64)


# ----------------------------------------------------------------------------------------------------------
# The map and its inverse

def test_the_multiscale_plan_of_the_reference():
    """MNIST 28x28: 3 scales, 10 CNFs; CIFAR-10 32x32: 4 scales, 14 CNFs; factored halves of 4C channels."""
    mnist = ffjord.Model(ffjord.PRESETS["standard"], (1, 28, 28))
    assert len(mnist.cnfs) == 10 and mnist.latent_shapes == [(2, 14, 14), (4, 7, 7), (4, 7, 7)]
    assert [op for op, _ in mnist.plan].count("squeeze") == 2
    cifar = ffjord.Model(ffjord.PRESETS["standard"], (3, 32, 32))
    assert len(cifar.cnfs) == 14 and cifar.latent_shapes == [(6, 16, 16), (12, 8, 8), (24, 4, 4), (24, 4, 4)]
    # four 3x3 convolutions per CNF, 64 hidden channels, t as one more input channel; one learned sqrt(T) each
    per_cnf = lambda c: (c + 1) * 64 * 9 + 64 + 2 * (65 * 64 * 9 + 64) + 65 * c * 9 + c + 1  # noqa: E731
    # the channels of MNIST's 10 CNFs: 1 (x2), squeeze, 4 (x2), split, 2 (x2), squeeze, 8 (x2), split, 4 (x2)
    want = 2 * per_cnf(1) + 4 * per_cnf(4) + 2 * per_cnf(2) + 2 * per_cnf(8)
    assert sum(p.numel() for p in mnist.parameters()) == want == 800_646
    x = continuous((1, 28, 28), n=2).float()
    assert torch.equal(ffjord.unsqueeze(ffjord.squeeze(x)), x)
    assert torch.equal(ffjord.squeeze(torch.arange(4.0).reshape(1, 1, 2, 2)).flatten(), torch.arange(4.0))


def test_decode_inverts_encode_and_the_continuous_map_inverts_within_1e_4():
    shape = (1, 8, 8)
    model = tiny(shape, scales=2, blocks=1, std=0.2)
    assert [op for op, _ in model.plan] == ["cnf", "squeeze", "cnf", "split", "cnf"]
    x = images(shape, n=4)
    z = model.encode(x)
    assert z.shape == (4, 64) and z.dtype == F64
    assert torch.equal(model.decode(z), x)
    # the continuous map: x -> z -> x, and z -> x -> z
    xc = continuous(shape, n=4)
    zc = model.to_latent(xc)
    assert (zc - xc.flatten(1)).abs().max() > 0.1  # the flow is far from the identity
    torch.testing.assert_close(model.from_latent(zc), xc, rtol=0, atol=1e-4)
    zr = continuous((64,), n=4, seed=1).reshape(4, 64)
    torch.testing.assert_close(model.to_latent(model.from_latent(zr)), zr, rtol=0, atol=1e-4)
    # the measured error at tolerance 1e-10 is far below 1e-4
    assert (model.from_latent(zc) - xc).abs().max() < 1e-7


# ----------------------------------------------------------------------------------------------------------
# The log-density

@pytest.mark.parametrize("layer", ffjord.LAYERS)
def test_the_trace_integral_is_log_det_of_the_solved_map(layer):
    """delta from the exact-trace solve equals log|det dz/dx| of the end-to-end map (two CNFs, a squeeze and a
    split on 1x4x4), the Jacobian taken by autograd through the solver's steps."""
    shape = (1, 4, 4)
    model = tiny(shape, scales=2, blocks=1, layer=layer, std=0.3, eval_rtol=1e-9, eval_atol=1e-9)
    x = continuous(shape, n=2, seed=3)
    z, delta, _ = model.flow_log_density(x, training=False, probes=0)
    torch.testing.assert_close(z, model.to_latent(x), rtol=0, atol=1e-8)
    for i in range(2):
        jac = torch.autograd.functional.jacobian(lambda r: model.to_latent(r[None])[0], x[i], vectorize=True)
        sign, logdet = torch.linalg.slogdet(jac.reshape(16, 16))
        assert sign > 0  # an ODE flow preserves orientation
        assert abs(logdet.item()) > 0.5  # far from volume-preserving
        assert delta[i].item() == pytest.approx(logdet.item(), abs=1e-7)  # measured 2e-9 at tolerance 1e-9


@pytest.mark.parametrize("probe", ffjord.PROBES)
def test_hutchinson_is_unbiased_over_many_probes(probe):
    shape = (1, 2, 2)
    model = tiny(shape, blocks=2, probe=probe, eval_solver="rk4", eval_steps=8, std=0.5)
    x = continuous(shape, n=1, seed=4).expand(4000, *shape)
    _, exact, _ = model.flow_log_density(x[:1], training=False, probes=0)
    _, est, _ = model.flow_log_density(x, training=False, probes=1, generator=torch.Generator().manual_seed(5))
    sd = est.std().item()
    assert sd > 0.05  # one probe is genuinely noisy here
    # the x-dynamics do not see the probes, so with a fixed-step solver E[estimate] is the exact discretized trace
    assert abs(est.mean().item() - exact.item()) < 4 * sd / math.sqrt(len(est))
    # and two probes halve the variance
    _, est2, _ = model.flow_log_density(x, training=False, probes=2, generator=torch.Generator().manual_seed(6))
    assert est2.var().item() == pytest.approx(est.var().item() / 2, rel=0.15)


def test_a_one_dimensional_cnf_integrates_to_one():
    """p(x) = N(z(x)) exp(delta(x)) of a 1x1x1 'image' (the 3x3 convolutions see only their centre), by the
    trapezoidal rule on [-12, 12] (measured error 4e-10 at the solver's tolerance 1e-8)."""
    model = tiny((1, 1, 1), blocks=2, hidden=(16, 16), std=0.8, eval_rtol=1e-8, eval_atol=1e-8)
    grid = torch.linspace(-12, 12, 2001, dtype=F64)
    z, delta, _ = model.flow_log_density(grid.reshape(-1, 1, 1, 1), training=False, probes=0)
    log_p = -0.5 * (z[:, 0] ** 2 + math.log(2 * math.pi)) + delta
    assert delta.abs().max() > 0.5  # the flow is far from volume-preserving
    total = torch.trapezoid(log_p.exp(), grid).item()
    assert total == pytest.approx(1.0, abs=1e-7)
    # without the trace term the "density" N(z(x)) is not normalized
    assert abs(torch.trapezoid((log_p - delta).exp(), grid).item() - 1.0) > 0.05


def _linear_model(layer: str, time: float):
    """A one-layer field on 1x1 images of 3 channels, and its T (sqrt T is stored in float32, so T is not `time`
    to float64 precision)."""
    model = tiny((3, 1, 1), hidden=(), layer=layer, time=time, std=0.4, seed=7)
    T = model.cnfs[0].end_time.item()
    assert T == pytest.approx(time, rel=1e-6)
    return model, model.cnfs[0].net.layers[0], T


def test_a_linear_field_gives_t_trace_a_and_its_closed_form_solution():
    """f(x, t) = A x + w t + b ('concat', no hidden layer, 1x1 images): log|det| = T tr(A) and
    z = e^{AT} x + int_0^T e^{A(T - tau)} (w tau + b) dtau (by 40-point Gauss-Legendre)."""
    model, layer, T = _linear_model("concat", 0.7)
    conv = layer.conv
    A, w, b = conv.weight[:, 1:, 1, 1].detach(), conv.weight[:, 0, 1, 1].detach(), conv.bias.detach()
    x = continuous((3, 1, 1), n=4, seed=8)
    z, delta, _ = model.flow_log_density(x, training=False, probes=0)
    torch.testing.assert_close(delta, torch.full((4,), T * A.trace().item(), dtype=F64), rtol=0, atol=1e-9)
    nodes, weights = np.polynomial.legendre.leggauss(40)
    tau = torch.tensor((nodes + 1) * T / 2, dtype=F64)
    forcing = sum(wk * T / 2 * torch.linalg.matrix_exp(A * (T - tk)) @ (w * tk + b)
                  for tk, wk in zip(tau, weights))
    want = x.flatten(1) @ torch.linalg.matrix_exp(A * T).T + forcing
    torch.testing.assert_close(z, want, rtol=0, atol=1e-8)  # measured 2e-9 at tolerance 1e-10


def test_a_concatsquash_linear_field_has_its_closed_form_log_det():
    """f = (W x + b) * sigmoid(g t + c) + s t: tr df/dx = sum_k W_kk sigmoid(g_k t + c_k), whose integral over
    [0, T] is sum_k W_kk (softplus(g_k T + c_k) - softplus(c_k)) / g_k."""
    model, layer, T = _linear_model("concatsquash", 1.3)
    W = layer.conv.weight[:, :, 1, 1].detach().diagonal()
    g, c = layer.gate.weight[:, 0].detach(), layer.gate.bias.detach()
    want = (W * (torch.nn.functional.softplus(g * T + c) - torch.nn.functional.softplus(c)) / g).sum()
    _, delta, _ = model.flow_log_density(continuous((3, 1, 1), n=2), training=False, probes=0)
    torch.testing.assert_close(delta, want.expand(2), rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------------------------------------
# The bound on the 8-bit data

def test_the_bound_is_the_dequantization_identity_computed_directly():
    """log_likelihood = log N(z) + int div + sum log |d logit / dy| - D log 256 at y = (v + u) / 256, u the
    generator's first draw: the logit's derivative by autograd, z and the trace integral by the exact trace."""
    shape = (1, 4, 4)
    model = tiny(shape, scales=2, eval_probes=0, alpha=1e-6)
    x = images(shape, n=3)
    got = model.log_likelihood(x, generator=torch.Generator().manual_seed(9))
    assert got.dtype == F64 and got.shape == (3,)
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(9), dtype=F64)
    y = ((x.double() + u) / 256).requires_grad_(True)
    a = 1e-6
    s = a + (1 - 2 * a) * y
    logit = torch.log(s / (1 - s))
    (dlogit,) = torch.autograd.grad(logit.sum(), y)  # elementwise, so the sum's gradient is the diagonal
    z, delta, _ = model.flow_log_density(logit.detach(), training=False, probes=0)
    want = (-0.5 * (z ** 2 + math.log(2 * math.pi)).sum(1) + delta + dlogit.log().flatten(1).sum(1)
            - 16 * math.log(256))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-8)


def test_the_bound_is_below_the_exact_probability_of_a_one_pixel_toy():
    """One 8-bit pixel through a 1-D flow, which is increasing: the exact P(v) = Phi(z(x_{v+1})) - Phi(z(x_v)) at the
    bin edges x_v = logit(alpha + (1 - 2 alpha) v / 256), with no trace at all. The bin integrals of p_Y (16-point
    Gauss-Legendre) match it, and E_u[log p_Y((v + u) / 256)] - log 256 (the same nodes) <= log P(v) (Jensen),
    strictly where p_Y varies in the bin. (The logit's range is bounded, so the 256 bins hold only the mass the
    flow puts on [logit alpha, logit(1 - alpha)]: sub-normalized, which keeps the bound a bound.)"""
    alpha = 0.05
    model = tiny((1, 1, 1), blocks=2, hidden=(16,), std=0.3, alpha=alpha, eval_probes=0)
    edges = alpha + (1 - 2 * alpha) * torch.arange(257, dtype=F64) / 256
    z_edges = model.to_latent(torch.log(edges / (1 - edges)).reshape(-1, 1, 1, 1))[:, 0]
    assert (z_edges.diff() > 0).all()
    exact = torch.special.ndtr(z_edges).diff()  # (256,)
    assert 0.2 < exact.sum() < 0.9 and z_edges[-1] - z_edges[0] > 5  # a strong map, much of its mass in range
    nodes, weights = np.polynomial.legendre.leggauss(16)
    u = torch.tensor((nodes + 1) / 2, dtype=F64)  # in (0, 1)
    v = torch.arange(256, dtype=torch.uint8).repeat_interleave(16).reshape(-1, 1, 1, 1)
    log_p, _ = model.log_density_dequantized(v, u.repeat(256).reshape(-1, 1, 1, 1), training=False, probes=0)
    log_p = log_p.reshape(256, 16)  # log p_Y(y) - log 256 at the nodes of each bin
    wts = torch.tensor(weights / 2, dtype=F64)
    P = (log_p.exp() * wts).sum(1)  # int_bin p_Y dy = the mean over u of p_Y / 256
    torch.testing.assert_close(P, exact, rtol=1e-6, atol=1e-12)
    bound = (log_p * wts).sum(1)
    assert exact.min() > 1e-10  # no bin so far in the tail that float64 loses its digits
    gap = exact.log() - bound
    assert (gap > -1e-6).all()
    assert gap.max() > 1e-4
    # log_likelihood draws u uniformly: its mean over many draws of one image is the bound
    x = torch.full((4000, 1, 1, 1), 100, dtype=torch.uint8)
    draws = model.log_likelihood(x, generator=torch.Generator().manual_seed(10))
    assert abs(draws.mean().item() - bound[100].item()) < 4 * draws.std().item() / math.sqrt(len(draws))


def test_importance_samples_and_bad_input_are_refused():
    model = tiny((1, 2, 2))
    x = images((1, 2, 2))
    with pytest.raises(GenbenchError, match="k must be 1"):
        model.log_likelihood(x, k=2)
    with pytest.raises(GenbenchError, match="uint8 images of shape"):
        model.log_likelihood(x.double())
    with pytest.raises(GenbenchError, match=r"\(B, 1, 2, 2\)"):
        model.log_likelihood(images((1, 3, 3)))
    with pytest.raises(GenbenchError, match="latents are float"):
        model.decode(torch.zeros(2, 5, dtype=F64))
    with pytest.raises(GenbenchError, match="even sides"):
        ffjord.Model(ffjord.Config(scales=2), (1, 5, 5))
    for bad in (dict(solver="rk4"), dict(eval_steps=4), dict(layer="hyper"), dict(probe="sphere"), dict(alpha=0.5),
                dict(hidden=[8]), dict(eval_probes=-1), dict(solver="midpoint", steps=2)):
        with pytest.raises(GenbenchError, match="ffjord: invalid config"):
            dataclasses.replace(ffjord.PRESETS["standard"], **bad)


# ----------------------------------------------------------------------------------------------------------
# Training

def _loss(model, x, u, probes, seed):
    torch.manual_seed(seed)
    log_p, _ = model.log_density_dequantized(x, u, training=True, probes=probes)
    return -log_p.mean()


@pytest.mark.parametrize("probes", [0, 1])
def test_the_training_gradient_is_that_of_the_solved_loss(probes):
    """Backpropagation through the RK4 steps (and through the divergence's vector-Jacobian products) against
    central differences of the same loss, for a weight of each layer and each CNF's end time."""
    shape = (1, 4, 4)
    model = tiny(shape, scales=2, hidden=(6,), std=0.3, solver="rk4", steps=3).train()
    x, u = images(shape, n=2), torch.rand(2, *shape, generator=torch.Generator().manual_seed(11), dtype=F64)
    loss = _loss(model, x, u, probes, seed=12)
    model.zero_grad()
    loss.backward()
    params = dict(model.named_parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 and torch.isfinite(p.grad).all() for p in params.values())
    checks = [(name, (0,) * p.dim()) for name, p in params.items() if name.endswith(("weight", "sqrt_end_time"))]
    assert len(checks) == 9  # 3 CNFs x (2 convolutions + end time)
    h = 1e-6
    for name, index in checks:
        p = params[name]
        with torch.no_grad():
            p[index] += h
            up = _loss(model, x, u, probes, seed=12).item()
            p[index] -= 2 * h
            down = _loss(model, x, u, probes, seed=12).item()
            p[index] += h
        assert p.grad[index].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-6), name


def _train(seed, steps=3):
    torch.manual_seed(seed)
    model = ffjord.Model(ffjord.PRESETS["smoke"], (1, 8, 8))
    opts = model.configure_optimizers(Optimizer("adam", lr=1e-2))
    x = images((1, 8, 8), n=8, seed=1)
    return model, [model.train_step(x, opts) for _ in range(steps)]


def test_smoke_training_steps_are_finite_change_the_weights_and_repeat_with_the_seed():
    torch.manual_seed(0)
    before = ffjord.Model(ffjord.PRESETS["smoke"], (1, 8, 8)).state_dict()
    model, logs = _train(0)
    assert all(math.isfinite(s["loss"]) and s["nfe"] == 8 for s in logs)  # one CNF, 2 RK4 steps of 4 evaluations
    assert logs[-1]["loss"] < logs[0]["loss"]
    assert logs[0]["bpd"] == pytest.approx(logs[0]["loss"] / (64 * math.log(2)))
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    _, again = _train(0)
    assert [s["loss"] for s in again] == [s["loss"] for s in logs]
    _, other = _train(1)
    assert other[0]["loss"] != logs[0]["loss"]
    held = model.eval_loss(images((1, 8, 8), n=4, seed=2), generator=torch.Generator().manual_seed(0))
    assert math.isfinite(held["loss"]) and set(held) == {"loss", "bpd", "nfe"}


def test_samples_are_uint8_images_and_a_function_of_the_generator():
    model, _ = _train(0, steps=1)
    model.eval()
    a = model.sample(5, generator=torch.Generator().manual_seed(3))
    assert a.dtype == torch.uint8 and a.shape == (5, 1, 8, 8)
    assert a.float().std() > 0  # not a constant image
    assert torch.equal(a, model.sample(5, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(a, model.sample(5, generator=torch.Generator().manual_seed(4)))
    ll = model.log_likelihood(a, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(ll).all() and (ll < 0).all()


def test_the_recorded_details_name_the_evaluation_solver_and_trace():
    model = ffjord.Model(ffjord.PRESETS["standard"], (1, 28, 28))
    assert model.likelihood == "bound" and model.likelihood_estimator == "uniform-dequantization"
    assert model.likelihood_details == {
        "dequantization": "uniform", "preprocessing": "logit (alpha = 1e-06)", "solver": "dopri5", "rtol": 1e-5,
        "atol": 1e-5, "trace": "hutchinson (rademacher, 1 probe per CNF solve)", "cnf_blocks": 10}
    smoke = ffjord.Model(ffjord.PRESETS["smoke"], (1, 8, 8))
    assert smoke.likelihood_details["solver"] == "rk4" and smoke.likelihood_details["steps"] == 2


def test_rnode_penalties_of_constant_and_linear_fields_have_closed_forms():
    """Two CNFs of one 3x3 convolution each (hidden = ()): a constant field v = T b (the bias alone) has kinetic
    energy 1/2 T^2 b^2 per dimension and no Jacobian; a linear one v = T w x (the x channel's centre tap alone)
    has ||J||_F^2 / D = T^2 w^2 and, as x(s) = x0 e^{T w s}, kinetic energy 1/2 (T w)^2 mean(x0^2)
    (e^{2 T w} - 1) / (2 T w). The penalty weighs each by its lambda and sums the CNFs."""
    shape = (1, 2, 2)
    model = tiny(shape, blocks=2, hidden=(), time=1.3, kinetic_energy=0.2, jacobian_norm=0.05,
                 solver="dopri5", steps=None, rtol=1e-10, atol=1e-10)
    assert model.config.regularized and not tiny(shape).config.regularized
    x = continuous(shape, n=2)
    T = model.cnfs[0].end_time.item()
    with torch.no_grad():
        for cnf in model.cnfs:
            cnf.net.layers[0].conv.weight.zero_()
        model.cnfs[0].net.layers[0].conv.bias.fill_(0.7)                  # constant
        model.cnfs[1].net.layers[0].conv.bias.zero_()
        model.cnfs[1].net.layers[0].conv.weight[0, 1, 1, 1] = w = -0.4     # linear (input 0 is t)
    _, _, _, penalty = model.flow_terms(x, training=False, probes=0, regularize=True)
    x1 = x + T * 0.7                                                      # the second CNF starts here
    a = T * w
    kinetic = 0.5 * 0.49 * T ** 2 + 0.5 * a ** 2 * (x1 ** 2).flatten(1).mean(1) * math.expm1(2 * a) / (2 * a)
    torch.testing.assert_close(penalty, 0.2 * kinetic + 0.05 * a ** 2, rtol=1e-8, atol=0)
    # and train_step reports it, bits/dim-scaled as the reference's objective
    opts = model.configure_optimizers(Optimizer("adam", lr=0.0))
    out = model.train().train_step(images(shape, n=2), opts)
    assert out["penalty_bpd"] > 0 and math.isfinite(out["loss"])
    with pytest.raises(GenbenchError, match="kinetic_energy and jacobian_norm"):
        ffjord.Config(kinetic_energy=-1.0)
