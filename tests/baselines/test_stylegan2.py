import copy
import dataclasses
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.baselines.stylegan2 import (DESCRIPTION, PRESETS, Config, EqualLinear, Model, ModulatedConv2d,
                                          minibatch_stddev, mix, path_lengths, r1_penalty, truncate)
from genbench.optim import Optimizer


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


SHAPE = (1, 28, 28)
B = 4
ADAM = Optimizer("adam", lr=2e-3, betas=(0.0, 0.99))


def images(n: int, seed: int = 0, shape=SHAPE) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def smoke_model(seed: int = 0, shape=SHAPE, **changes) -> Model:
    torch.manual_seed(seed)
    return Model(dataclasses.replace(PRESETS["smoke"], **changes), shape)


# ---- presets and architecture ------------------------------------------------------------------------------
def test_presets_and_architecture():
    assert set(PRESETS) == {"smoke", "small", "standard"} and DESCRIPTION
    std = PRESETS["standard"]  # StyleGAN2-ADA cifar: 512 maps, map 2, gamma 0.01, mbstd 32, no PL / mixing, orig D
    assert (std.latent_dim, std.channels, std.mapping_layers, std.r1_gamma, std.mbstd_group) == (512, 512, 2, 0.01, 32)
    assert (std.pl_weight, std.style_mixing, std.d_residual, std.r1_every, std.mapping_lr_mult) == \
        (0.0, 0.0, False, 16, 0.01)
    sm = PRESETS["small"]  # the StyleGAN2 paper's regularization
    assert (sm.pl_weight, sm.pl_every, sm.pl_decay, sm.style_mixing, sm.mbstd_group) == (2.0, 4, 0.01, 0.9, 4)
    m28, m32 = smoke_model(), smoke_model(shape=(3, 32, 32))
    assert m28.G.synthesis.const.shape[-1] == 7 and m28.G.num_ws == 6       # 7 -> 14 -> 28
    assert m32.G.synthesis.const.shape[-1] == 4 and m32.G.num_ws == 8       # 4 -> 8 -> 16 -> 32
    assert m32.G(torch.randn(2, 8)).shape == (2, 3, 32, 32) and m32.D(torch.zeros(2, 3, 32, 32)).shape == (2,)
    assert m28.sample(3).dtype == torch.uint8 and m28.sample(3).shape == (3, *SHAPE)
    layer = m28.G.synthesis.convs[1]
    assert torch.equal(layer.noise_strength, torch.zeros(8))                               # noise strength starts at 0
    assert torch.equal(layer.conv.affine.bias, torch.ones(8))              # styles start at 1
    with pytest.raises(GenbenchError, match="unsupported image shape"):
        Model(PRESETS["smoke"], (1, 30, 30))
    with pytest.raises(GenbenchError, match="invalid config"):
        Config(style_mixing=1.5)
    with pytest.raises(GenbenchError, match="uint8"):
        m28.train_step(torch.zeros(2, *SHAPE), m28.configure_optimizers(ADAM))


# ---- modulation / demodulation -----------------------------------------------------------------------------
def test_demodulated_weights_have_unit_norm_per_output_channel():
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, 3, w_dim=4)
    for style in (torch.randn(3, 6), 10 * torch.rand(3, 6) + 0.1, torch.full((3, 6), 0.1)):
        w2 = conv.effective_weight(style)                                   # (3, 5, 6, 3, 3)
        assert torch.allclose(w2.pow(2).sum((2, 3, 4)), torch.ones(3, 5), atol=1e-5)
    # without demodulation the norm follows the style
    conv.demodulate = False
    assert not torch.allclose(conv.effective_weight(3 * torch.ones(1, 6)).pow(2).sum((2, 3, 4)), torch.ones(1, 5))


def test_demodulation_gives_unit_output_variance():
    """On i.i.d. N(0, 1) input each output is a sum with weights of unit square norm: variance 1 (interior pixels,
    away from the zero padding). 32 samples x 100 interior pixels per channel: std within 0.06 of 1."""
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    conv = ModulatedConv2d(16, 4, 3, w_dim=8)
    x = torch.randn(32, 16, 12, 12, generator=g)
    w = 3 * torch.randn(32, 8, generator=g)                                 # styles far from 1
    with torch.no_grad():
        out = conv(x, w)[:, :, 1:-1, 1:-1]                                  # (32, 4, 10, 10)
    std = out.transpose(0, 1).flatten(1).std(1)
    assert torch.allclose(std, torch.ones(4), atol=0.06), std


@pytest.mark.parametrize("up", [False, True])
def test_grouped_convolution_equals_a_per_sample_loop(up):
    torch.manual_seed(2)
    conv = ModulatedConv2d(3, 5, 3, w_dim=4, up=up)
    x, w = torch.randn(4, 3, 6, 6), torch.randn(4, 4)
    with torch.no_grad():
        out = conv(x, w)
        wgt = conv.effective_weight(conv.affine(w))
        xs = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) if up else x
        loop = torch.cat([F.conv2d(xs[i:i + 1], wgt[i], padding=1) for i in range(4)])
    assert out.shape == (4, 5, 12 if up else 6, 12 if up else 6)
    assert torch.allclose(out, loop, atol=1e-5)


def test_equalized_learning_rate():
    """Effective weight = W / sqrt(fan_in) * lr_mult, bias b * lr_mult; the stored weight's gradient is the plain
    layer's gradient times the same factor, so Adam-like steps on the effective weight are lr_mult times smaller."""
    torch.manual_seed(3)
    eq = EqualLinear(5, 3, lr_mult=0.01, bias_init=0.5)
    gain = 0.01 / math.sqrt(5)
    assert eq.bias.detach().mul(0.01).allclose(torch.full((3,), 0.5))
    plain = nn.Linear(5, 3)
    with torch.no_grad():
        plain.weight.copy_(eq.weight * gain)
        plain.bias.copy_(eq.bias * 0.01)
    x = torch.randn(7, 5)
    assert torch.allclose(eq(x), plain(x), atol=1e-6)
    eq(x).pow(2).sum().backward()
    plain(x).pow(2).sum().backward()
    assert torch.allclose(eq.weight.grad, plain.weight.grad * gain, rtol=1e-5, atol=1e-9)
    assert torch.allclose(eq.bias.grad, plain.bias.grad * 0.01, rtol=1e-5, atol=1e-9)
    # the stored weight is N(0, 1) / lr_mult, so the effective weight starts N(0, 1 / fan_in)
    big = EqualLinear(400, 400, lr_mult=0.01)
    assert (big.weight * big.gain).std().item() == pytest.approx(1 / math.sqrt(400), rel=0.02)


# ---- penalties ---------------------------------------------------------------------------------------------
def test_r1_on_linear_and_quadratic_discriminators():
    g = torch.Generator().manual_seed(4)
    w = torch.randn(12, generator=g)
    lin = lambda x: x.flatten(1) @ w + 0.3                                 # noqa: E731
    real = torch.randn(5, 3, 2, 2, generator=g)
    assert r1_penalty(lin, real).item() == pytest.approx(w.pow(2).sum().item(), rel=1e-6)
    A = torch.randn(12, 12, generator=g)
    A = A + A.T                                                             # grad of 0.5 x^T A x is A x
    quad = lambda x: 0.5 * ((x.flatten(1) @ A) * x.flatten(1)).sum(1)      # noqa: E731
    want = (real.flatten(1) @ A).pow(2).sum(1).mean()
    assert r1_penalty(quad, real).item() == pytest.approx(want.item(), rel=1e-5)


def test_path_lengths_of_a_linear_generator():
    """img = sum_l A_l w_l: J_l^T y = A_l^T y, so length = sqrt(mean_l ||A_l^T y||^2); one layer: ||A^T y||."""
    g = torch.Generator().manual_seed(5)
    Bn, L, D, shape = 3, 2, 4, (2, 3, 3)
    A = torch.randn(L, 18, D, generator=g)
    synth = lambda ws: torch.einsum("lpd,bld->bp", A, ws).reshape(len(ws), *shape)   # noqa: E731
    ws = torch.randn(Bn, L, D, generator=g)
    torch.manual_seed(0)
    lengths, y = path_lengths(synth, ws)
    assert y.std().item() == pytest.approx(1 / 3, rel=0.5)                  # y ~ N(0, I) / sqrt(H W), H W = 9
    At_y = torch.einsum("lpd,bp->bld", A, y.flatten(1))                     # (B, L, D)
    assert torch.allclose(lengths, At_y.pow(2).sum(2).mean(1).sqrt(), rtol=1e-5)
    one = lambda ws: (ws[:, 0] @ A[0].T).reshape(len(ws), *shape)          # noqa: E731
    lengths1, _ = path_lengths(one, ws[:, :1], y)
    assert torch.allclose(lengths1, (y.flatten(1) @ A[0]).norm(dim=1), rtol=1e-5)


# ---- style mixing, truncation, minibatch stddev --------------------------------------------------------------
def test_style_mixing_assigns_layers():
    w1, w2 = torch.randn(2, 3), torch.randn(2, 3)
    for k in range(0, 7):
        ws = mix(w1, w2, k, 6)                                              # (2, 6, 3)
        assert all(torch.equal(ws[:, l], w1 if l < k else w2) for l in range(6))
    m = smoke_model(style_mixing=1.0)
    torch.manual_seed(7)
    ws, w1 = m.mixed_ws(3)
    k = next(l for l in range(m.G.num_ws) if not torch.equal(ws[:, l], w1))
    assert 1 <= k < m.G.num_ws and torch.equal(ws[:, :k], w1[:, None].expand(-1, k, -1))
    assert all(torch.equal(ws[:, l], ws[:, k]) for l in range(k, m.G.num_ws))
    m0 = smoke_model(style_mixing=0.0)
    for seed in range(5):
        torch.manual_seed(seed)
        ws, w1 = m0.mixed_ws(3)
        assert torch.equal(ws, w1[:, None].expand_as(ws))


def test_truncation():
    w, w_avg = torch.randn(4, 8), torch.randn(8)
    assert torch.equal(truncate(w, w_avg, 0.0), w_avg.expand(4, 8)) and torch.equal(truncate(w, w_avg, 1.0), w)
    assert torch.allclose(truncate(w, w_avg, 0.5), (w + w_avg) / 2)
    m = smoke_model(noise=False)
    m.G.w_avg.copy_(torch.randn(8))
    s0 = m.sample(3, generator=torch.Generator().manual_seed(0), truncation_psi=0.0)
    assert all(torch.equal(s0[0], s) for s in s0)                          # every sample is G(w_avg)
    s1 = m.sample(3, generator=torch.Generator().manual_seed(0), truncation_psi=1.0)
    assert torch.equal(s1, m.sample(3, generator=torch.Generator().manual_seed(0)))


def test_minibatch_stddev_by_hand():
    x = torch.zeros(4, 2, 1, 1)
    x[:, 0, 0, 0] = torch.tensor([1.0, 2.0, 3.0, 5.0])
    x[:, 1, 0, 0] = torch.tensor([0.0, 0.0, 4.0, 0.0])
    out = minibatch_stddev(x, 2)                  # groups {0, 2}, {1, 3}; biased std per channel, then mean
    assert torch.equal(out[:, :2], x)
    want = torch.tensor([(1 + 2) / 2, (1.5 + 1e-4) / 2, (1 + 2) / 2, (1.5 + 1e-4) / 2])
    assert torch.allclose(out[:, 2, 0, 0], want, atol=1e-6)
    # a group of the whole batch; and a batch of 6 with group 4 uses the largest divisor, 3
    y = torch.randn(6, 3, 2, 2)
    whole = minibatch_stddev(y, 6)[:, 3]
    assert torch.allclose(whole, y.std(0, unbiased=False).mean().expand(6, 2, 2), atol=1e-5)
    three = minibatch_stddev(y, 4)[:, 3, 0, 0]
    g0 = y[[0, 2, 4]].std(0, unbiased=False).mean()
    assert torch.allclose(three[[0, 2, 4]], g0.expand(3), atol=1e-5)        # samples 0, 2, 4 form one group


# ---- training ------------------------------------------------------------------------------------------------
def test_train_step_smoke_and_lazy_correction():
    m = smoke_model(r1_every=2, pl_every=2)
    opts = m.configure_optimizers(ADAM)
    c = 2 / 3
    for o in opts.values():                                                 # Sec. 3.1: lr * c, betas ** c
        assert o.param_groups[0]["lr"] == pytest.approx(2e-3 * c)
        assert o.param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** c))
    off = smoke_model(pl_weight=0.0).configure_optimizers(ADAM)             # no PL: G keeps the protocol's lr
    assert off["generator"].param_groups[0]["lr"] == 2e-3
    assert off["discriminator"].param_groups[0]["lr"] == pytest.approx(2e-3 * 16 / 17)
    before = copy.deepcopy(m.state_dict())
    outs = [m.train_step(images(B, seed=i), opts) for i in range(3)]
    keys = {"loss", "g_loss", "d_loss", "d_real", "d_fake", "r1", "pl_mean"}
    assert all(set(o) == keys and all(math.isfinite(v) for v in o.values()) for o in outs)
    assert outs[0]["r1"] > 0 and outs[0]["pl_mean"] > 0 and int(m.step) == 3
    after = m.state_dict()
    for net in ("G.mapping", "G.synthesis", "D."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net)), net
    assert not torch.equal(before["G.w_avg"], after["G.w_avg"])
    assert set(m.eval_loss(images(3))) == keys
    rng = torch.get_rng_state()
    assert m.eval_loss(images(3)) == m.eval_loss(images(3)) and torch.equal(rng, torch.get_rng_state())


def test_same_seed_same_training_and_exact_resume():
    def run(m, opts, seeds):
        return [m.train_step(images(B, seed=i), opts) for i in seeds]

    changes = dict(r1_every=2, pl_every=3)
    a = smoke_model(**changes)
    opts_a = a.configure_optimizers(ADAM)
    torch.manual_seed(1)
    out_a = run(a, opts_a, range(2))
    ckpt = {"model": copy.deepcopy(a.state_dict()), "rng": torch.get_rng_state(),
            "opts": copy.deepcopy({k: o.state_dict() for k, o in opts_a.items()})}
    out_a += run(a, opts_a, range(2, 5))

    b = smoke_model(**changes)
    opts_b = b.configure_optimizers(ADAM)
    torch.manual_seed(1)
    assert run(b, opts_b, range(5)) == out_a

    c = smoke_model(seed=123, **changes)
    opts_c = c.configure_optimizers(ADAM)
    c.load_state_dict(ckpt["model"])
    for k, o in opts_c.items():
        o.load_state_dict(ckpt["opts"][k])
    torch.set_rng_state(ckpt["rng"])
    assert run(c, opts_c, range(2, 5)) == out_a[2:]
    for (n, p), q in zip(a.state_dict().items(), c.state_dict().values()):
        assert torch.equal(p, q), n


# ---- figures -------------------------------------------------------------------------------------------------
def test_figure_helpers_are_deterministic_uint8():
    m = smoke_model()
    with torch.no_grad():
        m.G.synthesis.convs[2].noise_strength.fill_(1.0)                  # let the noise show
    grid = m.style_mixing_grid(2, 3, crossover=2, seed=5)
    assert grid.dtype == torch.uint8 and grid.shape == (1, 3 * 28, 4 * 28)
    assert torch.equal(grid, m.style_mixing_grid(2, 3, crossover=2, seed=5))
    assert not torch.equal(grid, m.style_mixing_grid(2, 3, crossover=2, seed=6))
    assert grid[:, :28, :28].max() == 0                                     # empty corner
    # crossover = num_ws: every cell is its A source (row header); crossover 0: its B source (column header)
    full = m.style_mixing_grid(2, 3, crossover=m.G.num_ws, seed=5)
    assert torch.equal(full[:, 28:56, 56:84], full[:, 28:56, :28])
    zero = m.style_mixing_grid(2, 3, crossover=0, seed=5)
    assert torch.equal(zero[:, 56:84, 84:112], zero[:, :28, 84:112])
    fig = m.noise_figure(3, seed=1)
    assert fig.dtype == torch.uint8 and fig.shape == (1, 28, 4 * 28)
    assert torch.equal(fig, m.noise_figure(3, seed=1))
    assert not torch.equal(fig[:, :, :28], fig[:, :, 28:56])                # different noise draws differ
    assert fig[:, :, 84:].max() == 255                                      # the std map, scaled to its maximum
