"""NICE, RealNVP, Glow (genbench.baselines.flows and flow_layers): every layer and every small model inverted to
float32 rounding and its log-det against the autograd Jacobian in float64; densities integrating to one by
quadrature on 2-D toys; the dequantization bounds below the exact discrete log-probability (the density integrated
over the bin) and rising with k toward it; actnorm's data-dependent initialization and its state; the LU weight
and log-det of the 1x1 convolution; the sampling temperature; the published presets; training and bad input."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.baselines import flow_layers as fl
from genbench.baselines import flows
from genbench.optim import Optimizer

pytestmark = pytest.mark.usefixtures("one_thread")


def randomize(module: torch.nn.Module, std: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Add N(0, std^2) to every parameter: a zero-initialized last layer (every coupling starts as the identity)
    would hide a wrong inverse or log-det."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) * std)
    return module


def initialize(module: torch.nn.Module, *inputs) -> torch.nn.Module:
    """Every actnorm initialized on data: one forward pass in training mode, then evaluation mode."""
    module.train()
    with torch.no_grad():
        module(*inputs)
    return module.eval()


def log_abs_det(f, x: torch.Tensor) -> float:
    """log |det d f(x) / dx| by the autograd Jacobian of the flattened map, for one input x (1, ...)."""
    jac = torch.autograd.functional.jacobian(lambda t: f(t.reshape(x.shape)).flatten(), x.flatten())
    sign, value = torch.linalg.slogdet(jac)
    assert sign != 0
    return float(value)


# ---------------------------------------------------------------------------------------------------------
# The layers: (name, factory, input shape, condition channels)

def _resnet(cin, cout):
    return fl.ResNet(cin, 6, cout, blocks=1)


LAYERS = {
    "checkerboard-tanh-0": (lambda: fl.CheckerboardCoupling(2, 0, _resnet(3, 4), "affine-tanh"), (2, 3, 4), 0),
    "checkerboard-tanh-1": (lambda: fl.CheckerboardCoupling(2, 1, _resnet(3, 4), "affine-tanh"), (2, 3, 4), 0),
    "checkerboard-sigmoid": (lambda: fl.CheckerboardCoupling(1, 0, _resnet(2, 2), "affine-sigmoid"), (1, 3, 3), 0),
    "checkerboard-additive": (lambda: fl.CheckerboardCoupling(2, 1, _resnet(3, 2), "additive"), (2, 2, 3), 0),
    "checkerboard-conditional": (lambda: fl.CheckerboardCoupling(1, 0, _resnet(1 + 1 + 3, 2), "affine-tanh"),
                                 (1, 3, 3), 3),
    "channel-glow": (lambda: fl.ChannelCoupling(4, 0, fl.GlowNet(2, 6, 4), "affine-sigmoid"), (4, 2, 2), 0),
    "channel-glow-additive": (lambda: fl.ChannelCoupling(4, 0, fl.GlowNet(2, 6, 2), "additive"), (4, 2, 2), 0),
    "channel-tanh-1": (lambda: fl.ChannelCoupling(4, 1, _resnet(2, 4), "affine-tanh"), (4, 2, 2), 0),
    "channel-conditional": (lambda: fl.ChannelCoupling(2, 0, _resnet(1 + 2, 2), "affine-tanh"), (2, 2, 2), 2),
    "vector-0": (lambda: fl.VectorCoupling(0, fl.MLP(3, 8, 2, 2)), (5,), 0),
    "vector-1": (lambda: fl.VectorCoupling(1, fl.MLP(2, 8, 2, 3)), (5,), 0),
    "diagonal-scaling": (lambda: fl.DiagonalScaling(5), (5,), 0),
    "actnorm": (lambda: fl.ActNorm(3), (3, 2, 2), 0),
    "invconv": (lambda: fl.InvConv1x1(3), (3, 2, 2), 0),
    "squeeze": (lambda: fl.Squeeze(), (2, 4, 2), 0),
    "flatten": (lambda: fl.Flatten((2, 2, 2)), (2, 2, 2), 0),
    "logit": (lambda: fl.Logit(0.05), (2, 2, 2), 0),
    "shift": (lambda: fl.Shift(), (2, 2, 2), 0),
    "learned-prior": (lambda: fl.LearnedPrior(3), (3, 2, 2), 0),
}


def _layer(name, dtype, seed=0):
    factory, shape, cond_channels = LAYERS[name]
    torch.manual_seed(seed)
    layer = randomize(factory().to(dtype), seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.rand((6, *shape), generator=g, dtype=torch.float64).to(dtype)  # in (0, 1): the logit's domain too
    cond = torch.randn((6, cond_channels, *shape[1:]), generator=g, dtype=torch.float64).to(dtype) if cond_channels \
        else None
    initialize(layer, x, cond)
    return layer, x, cond


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_inverts_to_float32_rounding(name):
    layer, x, cond = _layer(name, torch.float32)
    with torch.no_grad():
        y, log_det = layer(x, cond)
        back = layer.inverse(y, cond)
    assert log_det.shape == (x.shape[0],) and torch.isfinite(y).all()
    assert (back - x).abs().max() < 1e-4
    if name not in ("squeeze", "flatten"):  # the map is not the identity, so the check above says something
        assert (y - x).abs().max() > 1e-2


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_log_det_matches_the_autograd_jacobian(name):
    layer, x, cond = _layer(name, torch.float64)
    for i in range(2):
        xi, ci = x[i:i + 1], None if cond is None else cond[i:i + 1]
        expected = log_abs_det(lambda t: layer(t, ci)[0], xi)
        with torch.no_grad():
            assert float(layer(xi, ci)[1][0]) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("learned", [False, True])
def test_factor_out_inverts_and_its_log_det_matches_the_jacobian(learned):
    torch.manual_seed(0)
    layer = randomize(fl.FactorOut(4, learned=learned).double())
    x = torch.randn(3, 4, 2, 2, dtype=torch.float64)
    with torch.no_grad():
        kept, out, log_det = layer(x)
    assert kept.shape == out.shape == (3, 2, 2, 2)
    assert torch.allclose(layer.inverse(kept, out), x, atol=1e-12)
    expected = log_abs_det(lambda t: torch.cat([q.flatten(1) for q in layer(t)[:2]], dim=1), x[:1])
    assert float(log_det[0]) == pytest.approx(expected, abs=1e-9)
    if not learned:
        assert torch.equal(out, x[:, 2:]) and float(log_det.abs().max()) == 0


def test_the_checkerboard_coupling_keeps_its_masked_half_and_reads_only_it():
    layer, x, _ = _layer("checkerboard-tanh-1", torch.float64)
    b = layer.mask(x)
    i, j = torch.meshgrid(torch.arange(3), torch.arange(4), indexing="ij")
    assert torch.equal(b[0, 0], ((i + j + 1) % 2 == 0).double())  # parity 1: (0, 1), (1, 0), ... kept
    x = x.clone().requires_grad_(True)
    y, _ = layer(x)
    assert torch.equal((y * b).detach(), (x * b).detach())
    assert ((y - x).abs() * (1 - b)).amax() > 1e-2
    (grad,) = torch.autograd.grad((y * b).sum(), x)  # the kept half depends on the kept half only
    assert torch.equal(grad * (1 - b), torch.zeros_like(grad))


def test_squeeze_moves_each_2x2_block_into_four_channels():
    x = torch.arange(2 * 4 * 6, dtype=torch.float64).reshape(1, 2, 4, 6)
    y, _ = fl.Squeeze()(x)
    assert y.shape == (1, 8, 2, 3)
    for c in range(2):
        for a in range(2):
            for b in range(2):
                assert torch.equal(y[0, 4 * c + 2 * a + b], x[0, c, a::2, b::2])


def test_lu_weight_is_p_l_u_plus_diag_s_and_its_log_det_is_hw_sum_log_abs_s():
    torch.manual_seed(3)
    layer = randomize(fl.InvConv1x1(4).double(), std=0.5, seed=3)
    P, L, U, log_s, sign = (t.detach().numpy() for t in (layer.P, layer.L, layer.U, layer.log_s, layer.sign_s))
    assert sorted(P.sum(0)) == sorted(P.sum(1)) == [1.0] * 4 and set(np.unique(P)) == {0.0, 1.0}  # a permutation
    s = sign * np.exp(log_s)
    w = P @ (np.tril(L, -1) + np.eye(4)) @ (np.triu(U, 1) + np.diag(s))
    np.testing.assert_allclose(layer.weight().detach().numpy(), w, atol=1e-12)
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        y, log_det = layer(x)
    assert torch.allclose(y, torch.einsum("ij,bjhw->bihw", torch.from_numpy(w), x), atol=1e-12)
    assert float(log_det[0]) == pytest.approx(15 * np.log(np.abs(s)).sum(), abs=1e-12)
    assert float(log_det[0]) == pytest.approx(15 * np.linalg.slogdet(w)[1], abs=1e-9)
    # at initialization W is a rotation: |det| = 1
    fresh = fl.InvConv1x1(4).double()
    assert float(fresh(x)[1][0]) == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(fresh.weight() @ fresh.weight().T, torch.eye(4, dtype=torch.float64), atol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# Actnorm's data-dependent initialization

def test_actnorm_initializes_to_zero_mean_unit_variance_on_its_first_training_batch():
    layer = fl.ActNorm(3)
    x = torch.randn(16, 3, 4, 4) * torch.tensor([0.1, 2.0, 30.0])[:, None, None] + torch.tensor([5.0, -1.0, 0.3])[
        :, None, None]
    layer.eval()
    assert torch.equal(layer(x)[0], x) and not bool(layer.initialized)  # evaluation mode: identity, no init
    layer.train()
    y, log_det = layer(x)
    assert bool(layer.initialized)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    assert float(log_det[0]) == pytest.approx(16 * float(-torch.log(x.std(dim=(0, 2, 3), unbiased=False)).sum()),
                                              rel=1e-5)
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    layer(x * 3 + 1)  # a later batch does not initialize again
    assert all(torch.equal(before[k], v) for k, v in layer.state_dict().items())


def test_actnorm_state_travels_with_the_state_dict_and_a_loaded_model_does_not_reinitialize():
    torch.manual_seed(0)
    config = flows.VARIANTS["glow"]["smoke"]
    trained = flows.Model(config, (1, 8, 8))
    x = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    trained.train()
    trained.train_step(x, trained.configure_optimizers(Optimizer("adam", lr=1e-3)))
    state = trained.state_dict()
    flags = [k for k in state if k.endswith("initialized")]
    assert len(flags) == sum(isinstance(m, fl.ActNorm) for m in trained.modules()) > 0
    assert all(bool(state[k]) for k in flags)

    loaded = flows.Model(config, (1, 8, 8))
    loaded.load_state_dict(state)
    loaded.train()
    other = torch.randint(0, 100, (8, 1, 8, 8), dtype=torch.uint8)  # another batch, other statistics
    loaded.train_step(other, loaded.configure_optimizers(Optimizer("sgd", lr=0.0)))
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())  # lr 0 and no re-initialization
    fresh = flows.Model(config, (1, 8, 8))  # the contrast: a model that loads nothing initializes on that batch
    fresh.train_step(other, fresh.configure_optimizers(Optimizer("sgd", lr=0.0)))
    logs = flags[0].replace("initialized", "logs")
    assert bool(fresh.state_dict()[flags[0]]) and fresh.state_dict()[logs].abs().min() > 0


# ---------------------------------------------------------------------------------------------------------
# Whole models

_TINY = {"nice": dict(arch="nice", prior="logistic", hidden=8, depth=2),
         "realnvp": dict(arch="realnvp", preprocess="logit", levels=2, width=6, blocks=1),
         "glow": dict(levels=2, steps=2, width=6)}
MODELS = {  # name: (arch, image shape, config changes)
    "nice": ("nice", (1, 4, 4), {}),
    "realnvp": ("realnvp", (1, 4, 4), {}),
    "realnvp-rgb": ("realnvp", (3, 4, 4), {}),
    "realnvp-variational": ("realnvp", (1, 4, 4), dict(dequantization="variational", deq_couplings=2, deq_width=4)),
    "glow": ("glow", (1, 4, 4), {}),
    "glow-rgb": ("glow", (3, 4, 4), {}),
    "glow-additive": ("glow", (1, 4, 4), dict(coupling="additive", learn_top=False, preprocess="logit")),
}


def tiny(arch: str, shape, seed: int = 0, dtype=torch.float64, std: float = 0.2, **changes):
    """A small model with randomized weights, its actnorms initialized on a batch of images, and that batch."""
    torch.manual_seed(seed)
    model = randomize(flows.Model(flows.Config(**{**_TINY[arch], **changes}), shape).to(dtype), std=std, seed=seed)
    x = torch.randint(0, 256, (8, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    model.train()
    model.eval_loss(x)  # one training-mode pass: the data-dependent initialization
    return model.eval(), x


def _latent(model, y):
    return torch.cat([p.flatten(1) for p in model.flow_forward(y)[0]], dim=1)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_inverts_to_float32_rounding_and_decodes_its_codes(name):
    arch, shape, changes = MODELS[name]
    # weights perturbed by N(0, 0.1^2): at 0.2 the deepest of these random flows amplifies float32 rounding of its
    # inverse to 5e-4 (and float64's to 4e-13), a conditioning no trained flow needs
    model, x = tiny(arch, shape, dtype=torch.float32, std=0.1, **changes)
    y = (x.float() + torch.rand(x.shape, generator=torch.Generator().manual_seed(1))) / 256
    parts, _ = model.flow_forward(y)
    assert [tuple(p.shape[1:]) for p in parts] == model.latent_shapes
    assert sum(math.prod(s) for s in model.latent_shapes) == model.num_dims
    assert (model.flow_inverse(parts) - y).abs().max() < 1e-4
    z = model.encode(x)
    assert z.shape == (8, model.num_dims) and torch.equal(model.decode(z), x)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_log_det_matches_the_autograd_jacobian(name):
    arch, shape, changes = MODELS[name]
    model, x = tiny(arch, shape, **changes)
    y = (x.double() + 0.25) / 256
    for i in range(2):
        expected = log_abs_det(lambda t: _latent(model, t), y[i:i + 1])
        assert float(model.flow_forward(y[i:i + 1])[1][0]) == pytest.approx(expected, abs=1e-8)
    # log_density is the base density of the latent plus that log-det, on the 8-bit scale
    parts, log_det = model.flow_forward(y)
    assert torch.allclose(model.log_density(256 * y), model._base_log_prob(parts) + log_det - 16 * shape[0] *
                          math.log(256), atol=1e-10)


def _grid_total(log_density, half_width: float, n: int) -> float:
    """The integral of exp(log_density) over the square [-half_width, half_width]^2 by the midpoint rule on n x n
    points, evaluated in chunks."""
    t = half_width * (2 * (torch.arange(n, dtype=torch.float64) + 0.5) / n - 1)
    a, b = torch.meshgrid(t, t, indexing="ij")
    points = torch.stack([a.flatten(), b.flatten()], dim=1)
    with torch.no_grad():
        total = sum(float(torch.exp(log_density(chunk)).sum()) for chunk in points.split(1 << 18))
    return total * (2 * half_width / n) ** 2


@pytest.mark.parametrize("arch,changes,std", [("nice", dict(preprocess="logit"), 0.3),
                                               ("realnvp", dict(levels=1), 0.2)])
def test_a_two_dimensional_model_density_integrates_to_one(arch, changes, std):
    """Two sub-pixels (an image of 1 x 1 x 2) under the logit preprocessing, integrated in the logit's coordinates w
    (y = (sigmoid(w) - alpha) / (1 - 2 alpha), |dy/dw| = sigmoid'(w) / (1 - 2 alpha) per sub-pixel), where the
    density has smooth tails: y itself ranges over (-alpha, 1 + alpha) / (1 - 2 alpha), a little beyond the
    256 bins, and its density peaks sharply at those ends."""
    model, _ = tiny(arch, (1, 1, 2), std=std, **changes)
    alpha = model.config.logit_alpha

    def log_p(w):  # w (N, 2)
        y = (torch.sigmoid(w) - alpha) / (1 - 2 * alpha)
        log_dy_dw = (F.logsigmoid(w) + F.logsigmoid(-w) - math.log(1 - 2 * alpha)).sum(1)
        return model.log_density(256 * y.reshape(-1, 1, 1, 2)) + 2 * math.log(256) + log_dy_dw

    assert _grid_total(log_p, 20.0, 400) == pytest.approx(1.0, abs=1e-3)


def test_glow_layers_on_two_dimensions_give_a_normalized_density():
    """actnorm, 1x1 convolution, affine coupling (twice), split with its learned prior and the learned top prior on
    a two-channel 1 x 1 image: N(eps_split) N(eps_top) |det| integrates to one."""
    torch.manual_seed(0)
    steps = torch.nn.ModuleList([fl.ActNorm(2), fl.InvConv1x1(2), fl.ChannelCoupling(2, 0, fl.GlowNet(1, 6, 2)),
                                 fl.ActNorm(2), fl.InvConv1x1(2), fl.ChannelCoupling(2, 0, fl.GlowNet(1, 6, 2))])
    split, top = fl.FactorOut(2, learned=True), fl.LearnedPrior(1)
    # perturbed by N(0, 0.15^2): larger perturbations drive some sigmoid scales to 0, and the density grows tails
    # too heavy for a grid
    modules = randomize(torch.nn.ModuleList([steps, split, top]).double(), std=0.15)

    def log_p(w):  # w (N, 2)
        h, log_det = w.reshape(-1, 2, 1, 1), torch.zeros(w.shape[0], dtype=torch.float64)
        for layer in steps:
            h, ld = layer(h)
            log_det = log_det + ld
        kept, eps, ld = split(h)
        eps_top, ld_top = top(kept)
        return flows._gaussian_log_prob(eps) + flows._gaussian_log_prob(eps_top) + log_det + ld + ld_top

    modules.train()
    with torch.no_grad():
        log_p(torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2)  # actnorm init
    modules.eval()
    assert all(bool(m.initialized) for m in modules.modules() if isinstance(m, fl.ActNorm))
    assert _grid_total(log_p, 15.0, 300) == pytest.approx(1.0, abs=1e-3)


# ---------------------------------------------------------------------------------------------------------
# The bounds against the exact discrete log-probability

def _exact_log_P(model, x: torch.Tensor, n: int = 48) -> float:
    """log P(x) = log of the integral of p(x + u) over the bin u in [0, 1)^2, by n x n Gauss-Legendre."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    u, w = torch.from_numpy((nodes + 1) / 2), torch.from_numpy(weights / 2)
    a, b = torch.meshgrid(u, u, indexing="ij")
    v = x.double().reshape(1, 2) + torch.stack([a.flatten(), b.flatten()], dim=1)
    with torch.no_grad():
        log_p = model.log_density(v.reshape(-1, 1, 1, 2))
    return float(torch.logsumexp(log_p + torch.log(torch.outer(w, w).flatten()), dim=0))


def _sharp_nice():
    """NICE on two sub-pixels whose latent scale is 2 per 8-bit step (exp(S) = 512 on y = v / 256): its density
    varies a lot within one bin, so the dequantization gap is large; x is the bin of the latent's mode."""
    model, _ = tiny("nice", (1, 1, 2), hidden=8, depth=2)
    with torch.no_grad():
        model.flow[-1].log_scale.fill_(math.log(512.0))
    return model, model.decode(torch.zeros(1, 2))


def _bound_draws(model, x, k: int, n: int, seed: int) -> torch.Tensor:
    return model.log_likelihood(x.expand(n, *x.shape[1:]), k=k, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", ["uniform", "variational"])
def test_the_dequantization_bounds_lie_below_the_exact_log_probability_and_rise_with_k(kind):
    if kind == "uniform":
        model, x = _sharp_nice()
    else:  # a random q(u | x) of a RealNVP on two sub-pixels
        model, _ = tiny("realnvp", (1, 1, 2), levels=1, std=0.5, dequantization="variational", deq_couplings=2,
                        deq_width=4)
        x = torch.tensor([[[[100, 180]]]], dtype=torch.uint8)
    log_P = _exact_log_P(model, x[0])
    assert _exact_log_P(model, x[0], n=64) == pytest.approx(log_P, abs=1e-6)  # the quadrature has converged
    stats = []
    for k, n in ((1, 4000), (4, 2000), (32, 500)):
        draws = _bound_draws(model, x, k, n, seed=k)
        stats.append((float(draws.mean()), float(draws.std()) / math.sqrt(n)))
    for mean, se in stats:
        assert mean < log_P + 3 * se
    for (m0, e0), (m1, e1) in zip(stats, stats[1:]):
        assert m1 > m0 + 3 * math.hypot(e0, e1)
    gap1, gap32 = log_P - stats[0][0], log_P - stats[-1][0]
    assert gap1 > 0.05 and gap32 < 0.6 * gap1


def test_the_variational_log_q_is_the_density_of_u_by_change_of_variables():
    model, x = tiny("realnvp", (1, 2, 2), levels=1, std=0.5, dequantization="variational", deq_couplings=2,
                    deq_width=4)
    eps = torch.randn(1, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    u, log_q = model.dequantizer(x[:1], eps)
    assert ((u > 0) & (u < 1)).all()
    expected = float(flows._gaussian_log_prob(eps)) - log_abs_det(lambda e: model.dequantizer(x[:1], e)[0], eps)
    assert float(log_q[0]) == pytest.approx(expected, abs=1e-9)


def test_the_likelihood_does_not_depend_on_the_evaluation_chunk(monkeypatch):
    model, x = tiny("glow", (1, 4, 4), dtype=torch.float32)
    one = model.log_likelihood(x, k=3, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(flows, "EVAL_CHUNK", 4)  # 1 image of 3 draws per pass instead of all 8
    # the same draws (a draw per chunk would move every value by nats); convolutions round by batch size
    assert torch.allclose(model.log_likelihood(x, k=3, generator=torch.Generator().manual_seed(0)), one, atol=1e-4)
    assert one.dtype == torch.float64 and one.shape == (8,)


# ---------------------------------------------------------------------------------------------------------
# Sampling and its temperature

def test_sampling_at_temperature_t_decodes_t_times_the_prior_draws():
    model, _ = tiny("glow", (1, 4, 4), dtype=torch.float32)
    eps = torch.randn((6, 16), generator=torch.Generator().manual_seed(5))
    for t in (0.0, 0.6, 1.0):
        got = model.sample(6, generator=torch.Generator().manual_seed(5), temperature=t)
        assert got.dtype == torch.uint8 and torch.equal(got, model.decode(t * eps))
    assert (model.sample(3, temperature=0.0) == model.decode(torch.zeros(1, 16))).all()
    hot = model.sample(200, generator=torch.Generator().manual_seed(1), temperature=1.0).float().std(0).mean()
    cold = model.sample(200, generator=torch.Generator().manual_seed(1), temperature=0.3).float().std(0).mean()
    assert cold < hot
    # the config's temperature is the default
    warm = flows.Model(dataclasses.replace(model.config, temperature=0.6), (1, 4, 4))
    warm.load_state_dict(model.state_dict())
    assert torch.equal(warm.sample(6, generator=torch.Generator().manual_seed(5)), model.decode(0.6 * eps))
    assert warm.sampler_description == {"sampler": "inverse flow on prior draws", "temperature": 0.6}


def test_the_temperature_scales_a_learned_prior_around_its_mean():
    """openai/glow's split2d_reverse: z_2 = mu + sigma (T eps), the temperature on the standardized noise."""
    torch.manual_seed(0)
    split = randomize(fl.FactorOut(4, learned=True).double(), std=0.5)
    kept, eps = torch.randn(2, 2, 3, 3, dtype=torch.float64), torch.randn(2, 2, 3, 3, dtype=torch.float64)
    mean = split.inverse(kept, torch.zeros_like(eps))[:, 2:]
    for t in (0.5, 2.0):
        assert torch.allclose(split.inverse(kept, t * eps)[:, 2:] - mean, t * (split.inverse(kept, eps)[:, 2:] - mean))
    assert split.inverse(kept, eps)[:, 2:].sub(mean).abs().max() > 0.1


def test_nice_samples_its_logistic_prior():
    model, _ = tiny("nice", (1, 4, 4), dtype=torch.float32)
    u = torch.rand((4, 16), generator=torch.Generator().manual_seed(2))
    assert torch.equal(model.sample(4, generator=torch.Generator().manual_seed(2)),
                       model.decode(torch.log(u) - torch.log1p(-u)))


# ---------------------------------------------------------------------------------------------------------
# Training, estimators, presets, bad input

@pytest.mark.parametrize("name", ["nice", "realnvp-variational", "glow"])
def test_the_training_loss_is_the_negative_bound_and_reaches_every_parameter(name):
    arch, shape, changes = MODELS[name]
    model, x = tiny(arch, shape, dtype=torch.float32, **changes)
    terms = model.eval_loss(x, generator=torch.Generator().manual_seed(3))
    bound = model.log_likelihood(x, k=1, generator=torch.Generator().manual_seed(3))
    assert terms["loss"] == pytest.approx(float(-bound.mean()), rel=1e-5)
    assert terms["bpd"] == pytest.approx(terms["loss"] / (model.num_dims * math.log(2)), rel=1e-6)
    assert ("log_q" in terms) == (model.dequantizer is not None)
    model.train()
    out = model.train_step(x, model.configure_optimizers(Optimizer("adam", lr=0.0, grad_clip=1e6)))
    assert math.isfinite(out["loss"]) and out["grad_norm"] > 0
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().max() > 0]
    assert silent == []


def test_estimator_names_and_details():
    model, _ = tiny("glow", (1, 4, 4))
    assert (model.likelihood, model.likelihood_estimator, model.importance_estimator) == (
        "bound", "uniform-dequantization", "iw-uniform-dequantization")
    assert model.importance_sampling and model.likelihood_details["draws"] == 1
    assert "k" not in model.likelihood_details  # "k" would put bpd in a column of its own on the boards
    variational, _ = tiny("realnvp", (1, 4, 4), **MODELS["realnvp-variational"][2])
    assert variational.likelihood_estimator == "variational-dequantization"
    assert variational.importance_estimator == "iw-variational-dequantization"
    assert "conditional flow" in variational.likelihood_details["dequantization"]
    assert not hasattr(model, "reconstruct")


def test_presets_follow_the_published_recipes():
    glow = flows.VARIANTS["glow"]["standard"]
    assert (glow.levels, glow.steps, glow.width, glow.coupling, glow.learn_top) == (3, 32, 512, "affine", True)
    nice = flows.VARIANTS["nice"]["standard"]
    assert (nice.couplings, nice.depth, nice.hidden, nice.prior) == (4, 4, 2000, "logistic")
    assert (flows.VARIANTS["nice"]["standard-28"].depth, flows.VARIANTS["nice"]["standard-28"].hidden) == (5, 1000)
    realnvp = flows.VARIANTS["realnvp"]["standard"]
    assert (realnvp.blocks, realnvp.width, realnvp.levels, realnvp.preprocess, realnvp.logit_alpha) == (
        8, 64, 2, "logit", 0.05)
    assert flows.VARIANTS["glow"]["standard-variational"].dequantization == "variational"

    def count(variant, preset, shape):
        return sum(p.numel() for p in flows.Model(flows.VARIANTS[variant][preset], shape).parameters())

    # the parameter counts the presets' comments and the report quote
    assert count("glow", "standard", (3, 32, 32)) == 44_152_272
    assert count("realnvp", "standard", (3, 32, 32)) == 6_007_331
    assert count("nice", "standard", (3, 32, 32)) == 72_617_216
    assert {v: count(v, "small", (1, 28, 28)) for v in flows.VARIANTS} == {
        "nice": 3_576_352, "realnvp": 202_721, "glow": 154_432}


def test_bad_input_is_refused_with_the_reason():
    model, x = tiny("glow", (1, 4, 4), dtype=torch.float32)
    with pytest.raises(GenbenchError, match="uint8"):
        model.log_likelihood(x.float())
    with pytest.raises(GenbenchError, match=r"\(B, 1, 4, 4\)"):
        model.encode(x[:, :, :2])
    with pytest.raises(GenbenchError, match="integer k >= 1"):
        model.log_likelihood(x, k=0)
    with pytest.raises(GenbenchError, match=r"\(B, 16\)"):
        model.decode(torch.zeros(2, 15))
    with pytest.raises(GenbenchError, match="temperature"):
        model.sample(2, temperature=-1.0)
    with pytest.raises(GenbenchError, match="divisible by 8"):
        flows.Model(flows.VARIANTS["glow"]["standard"], (1, 28, 28))
    with pytest.raises(GenbenchError, match="divisible by 2"):
        flows.Model(flows.Config(**_TINY["realnvp"]), (1, 5, 5))
    for bad in (dict(arch="maf"), dict(preprocess="none"), dict(prior="laplace"), dict(coupling="spline"),
                dict(dequantization="none"), dict(width=0), dict(temperature=-0.5), dict(logit_alpha=0.5)):
        with pytest.raises(GenbenchError, match="invalid config"):
            flows.Config(**bad)
