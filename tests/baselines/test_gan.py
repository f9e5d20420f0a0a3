import contextlib
import copy
import dataclasses
import math

import pytest
import torch
import torch.nn as nn

from genbench import GenbenchError
from genbench.baselines.gan import (DESCRIPTIONS, PRESETS, VARIANTS, Config, Model, d_loss, g_loss,
                                    gradient_penalty, r1_penalty)
from genbench.optim import Optimizer


@contextlib.contextmanager
def one_thread_only():
    """One intra-op thread: tiny models run fastest so on a shared 2-core machine, and the numbers do not depend on
    the core count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_thread():
    with one_thread_only():
        yield


SHAPE = (1, 28, 28)
B = 4  # protocol batch size in these tests
NAMES = ("dcgan", "wgan", "wgan-gp", "sngan", "gan-r1")
ADAM = Optimizer("adam", lr=1e-3, betas=(0.5, 0.9))


def images(n: int, seed: int = 0, shape=SHAPE) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def smoke_model(name: str, seed: int = 0, **changes) -> Model:
    torch.manual_seed(seed)
    return Model(dataclasses.replace(VARIANTS[name]["smoke"], **changes), SHAPE)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(255.0 ** 2 / mse)


# ---- presets and architecture ------------------------------------------------------------------------------
def test_variants_presets_and_recipes():
    assert set(VARIANTS) == set(DESCRIPTIONS) == set(NAMES) and PRESETS is VARIANTS["dcgan"]
    for name in NAMES:
        assert {"smoke", "small", "standard"} <= set(VARIANTS[name]) and DESCRIPTIONS[name]
        assert all(isinstance(c, Config) for c in VARIANTS[name].values())
    std = {name: VARIANTS[name]["standard"] for name in NAMES}
    assert (std["dcgan"].loss, std["dcgan"].d_batchnorm, std["dcgan"].n_critic) == ("ns", True, 1)
    assert (std["wgan"].loss, std["wgan"].clip, std["wgan"].n_critic, std["wgan"].d_batchnorm) == \
        ("wasserstein", 0.01, 5, True)
    w = std["wgan-gp"]  # Gulrajani et al., CIFAR-10 ResNet (gan_cifar_resnet.py)
    assert (w.arch, w.g_width, w.d_width, w.latent_dim, w.gp_lambda, w.n_critic, w.d_pool, w.g_batch_mult) == \
        ("resnet", 128, 128, 128, 10.0, 5, "mean", 2)
    s = std["sngan"]  # Miyato et al., Table 3 (sn_cifar10_unconditional.yml)
    assert (s.arch, s.g_width, s.d_width, s.latent_dim, s.loss, s.n_critic, s.spectral_norm, s.g_batch_mult) == \
        ("resnet", 256, 128, 128, "hinge", 5, True, 2)
    assert (std["gan-r1"].loss, std["gan-r1"].r1_gamma, std["gan-r1"].n_critic) == ("ns", 10.0, 1)
    # SN-GAN's CIFAR-10 ResNet: ~4.3M generator and ~1.05M discriminator parameters
    m = Model(s, (3, 32, 32))
    assert sum(p.numel() for p in m.G.parameters()) == 4_276_739
    assert sum(p.numel() for p in m.D.parameters()) == 1_053_825
    assert m.D(torch.zeros(2, 3, 32, 32)).shape == (2,)
    assert m.D.blocks[:-2](torch.zeros(1, 3, 32, 32)).shape == (1, 128, 8, 8)  # 2 downsamplings, then 2 blocks


def test_dcgan_architecture_and_init():
    """Radford et al. Fig. 1 at 64x64: 4x4x1024 -> 512 -> 256 -> 128 -> 3, tanh; D 64-128-256-512 with batch norm on
    all but the first layer; N(0, 0.02) weights."""
    torch.manual_seed(0)
    m = Model(VARIANTS["dcgan"]["standard"], (3, 64, 64))
    G, D = m.G, m.D
    assert G.project.out_features == 1024 * 4 * 4
    convT = [l for l in G.net if isinstance(l, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convT] == \
        [(1024, 512, (4, 4), (2, 2)), (512, 256, (4, 4), (2, 2)), (256, 128, (4, 4), (2, 2)), (128, 3, (4, 4), (2, 2))]
    assert isinstance(G.net[-1], nn.Tanh) and G(torch.randn(2, 100)).shape == (2, 3, 64, 64)
    convs = [l for l in D.net if isinstance(l, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512]
    assert sum(isinstance(l, nn.BatchNorm2d) for l in D.net) == 3 and isinstance(D.net[1], nn.LeakyReLU)
    assert D.net[1].negative_slope == 0.2
    w = torch.cat([convT[1].weight.flatten(), convs[2].weight.flatten()]).detach()
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.02)
    bn = [l for l in G.net if isinstance(l, nn.BatchNorm2d)][1]
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01) and bn.bias.abs().max().item() == 0
    # 28x28: a 7x7 base and two up-samplings; 32x32: 4x4 and three
    assert Model(PRESETS["small"], (1, 28, 28)).G.project.out_features == 128 * 7 * 7
    assert Model(PRESETS["small"], (3, 32, 32)).G.project.out_features == 256 * 4 * 4


# ---- losses and penalties against closed forms -------------------------------------------------------------
def test_losses_closed_forms():
    zero = torch.zeros(3)
    assert d_loss("ns", zero, zero).item() == pytest.approx(2 * math.log(2))
    assert g_loss("ns", zero).item() == pytest.approx(math.log(2))
    r, f = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.5, 3.0])
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    want = -sum(math.log(sig(v)) for v in r.tolist()) / 3 - sum(math.log(1 - sig(v)) for v in f.tolist()) / 2
    assert d_loss("ns", r, f).item() == pytest.approx(want, rel=1e-6)
    assert g_loss("ns", f).item() == pytest.approx(-sum(math.log(sig(v)) for v in f.tolist()) / 2, rel=1e-6)
    assert d_loss("ns", torch.tensor([80.0]), torch.tensor([-80.0])).item() == pytest.approx(0.0, abs=1e-30)
    assert d_loss("wasserstein", r, f).item() == pytest.approx(1.75 - (-0.5 / 3))
    assert g_loss("wasserstein", f).item() == pytest.approx(-1.75)
    # hinge: relu(1 - [2, 0.5]) = [0, 0.5], relu(1 + [-2, 0]) = [0, 1]
    assert d_loss("hinge", torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])).item() == pytest.approx(0.25 + 0.5)
    assert g_loss("hinge", torch.tensor([-2.0, 0.0])).item() == pytest.approx(1.0)
    with pytest.raises(GenbenchError, match="unknown GAN loss"):
        d_loss("lsgan", r, f)


class Linear(nn.Module):
    """D(x) = <w, x> + b on flattened images: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor, b: float = 0.3):
        super().__init__()
        self.w, self.b = nn.Parameter(w.clone()), b

    def forward(self, x):
        return x.flatten(1) @ self.w + self.b


def test_gradient_penalty_on_a_linear_critic():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(12, generator=g)
    w = 3.0 * w / w.norm()                                        # ||w|| = 3
    D = Linear(w)
    real, fake = torch.randn(5, 3, 2, 2, generator=g), torch.randn(5, 3, 2, 2, generator=g)
    gp = gradient_penalty(D, real, fake, generator=g)
    assert gp.item() == pytest.approx((3.0 - 1.0) ** 2, rel=1e-6)
    (dw,) = torch.autograd.grad(gp, D.w)                          # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    assert torch.allclose(dw, 2 * (3.0 - 1.0) * w / 3.0, atol=1e-5)
    # a 1-Lipschitz linear critic has no penalty
    assert gradient_penalty(Linear(w / 3.0), real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_uses_interpolates():
    """D(x) = 0.5 ||x||^2 has gradient x: the penalty is E(||eps x + (1 - eps) x~|| - 1)^2 with the same eps draws."""
    class Quadratic(nn.Module):
        def forward(self, x):
            return 0.5 * x.flatten(1).pow(2).sum(1)

    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(6, 1, 3, 3, generator=g), torch.randn(6, 1, 3, 3, generator=g)
    gp = gradient_penalty(Quadratic(), real, fake, generator=torch.Generator().manual_seed(7))
    eps = torch.rand(6, 1, 1, 1, generator=torch.Generator().manual_seed(7))
    x_hat = eps * real + (1 - eps) * fake
    assert gp.item() == pytest.approx(((x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean().item(), rel=1e-6)


def test_r1_penalty_on_a_quadratic_critic():
    """D(x) = 0.5 x^T A x with A symmetric: grad_x D = A x, so R1 (without gamma / 2) is E||A x||^2."""
    g = torch.Generator().manual_seed(0)
    M = torch.randn(8, 8, generator=g)
    A = M + M.T

    class Quadratic(nn.Module):
        def forward(self, x):
            v = x.flatten(1)
            return 0.5 * ((v @ A) * v).sum(1)

    x = torch.randn(5, 2, 2, 2, generator=g)
    want = (x.flatten(1) @ A).pow(2).sum(1).mean()
    assert r1_penalty(Quadratic(), x).item() == pytest.approx(want.item(), rel=1e-5)
    assert not x.requires_grad  # the caller's tensor is left alone


# ---- training ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_smoke_training(name):
    m = smoke_model(name)
    k = m.config.n_critic
    assert m.batches_per_step == k and m.family == "gan" and m.latent_dim == m.config.latent_dim
    opts = m.configure_optimizers(ADAM)
    assert set(opts) == {"generator", "discriminator"}
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    out = m.train_step(images(k * B), opts)
    for n, p in m.named_parameters():
        # both G and D move; the critic's output bias has no gradient under the Wasserstein loss (E f - E r)
        fixed = m.config.loss == "wasserstein" and n == "D.out.bias"
        assert torch.isfinite(p).all() and torch.equal(p, before[n]) == fixed, n
    keys = {"loss", "g_loss", "d_loss", "d_real", "d_fake"}
    keys |= {"wasserstein"} if m.config.loss == "wasserstein" else set()
    keys |= {"gp"} if m.config.gp_lambda else set()
    keys |= {"r1"} if m.config.r1_gamma else set()
    assert set(out) == keys and all(math.isfinite(v) for v in out.values()) and out["loss"] == out["g_loss"]
    # one Adam step per critic update and one for the generator
    assert all(s["step"].item() == k for s in opts["discriminator"].state.values())
    assert all(s["step"].item() == 1 for s in opts["generator"].state.values())
    m.eval()
    s = m.sample(5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, *SHAPE) and s.dtype == torch.uint8 and s.float().std() > 0
    assert set(m.eval_loss(images(6, seed=1))) == keys


def test_each_critic_update_gets_its_own_chunk():
    """wgan: n_critic = 5 critic updates, each on the next B real images; then one generator update on B fakes."""
    m = smoke_model("wgan")
    seen = []
    m.D.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach().clone()))
    x = images(5 * B)
    m.train_step(x, m.configure_optimizers(Optimizer("rmsprop", lr=5e-5)))
    assert len(seen) == 5 * 2 + 1                                  # (real, fake) per critic update, then G's fakes
    reals = x.float() / 127.5 - 1
    for i in range(5):
        assert torch.equal(seen[2 * i], reals[i * B:(i + 1) * B])
        assert seen[2 * i + 1].shape == (B, *SHAPE) and seen[2 * i + 1].abs().max() <= 1
    assert seen[-1].shape == (B, *SHAPE)
    # g_batch_mult draws more fakes for the generator update
    m2 = smoke_model("sngan", g_batch_mult=2)
    seen.clear()
    m2.D.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].shape[0]))
    m2.train_step(images(5 * B), m2.configure_optimizers(ADAM))
    assert seen[-1] == 2 * B


@pytest.mark.parametrize("name", ["wgan-gp", "gan-r1", "sngan"])
def test_critic_update_follows_the_loss_plus_penalty(name):
    """Plain SGD: the critic's update is -lr times the gradient of d_loss + lambda GP (Gulrajani Eq. 3) or
    + gamma / 2 R1 (Mescheder Eq. 9), recomputed here from the same noise draws."""
    m = smoke_model(name, n_critic=1)
    ref = copy.deepcopy(m)
    x = images(B)
    lr = 1e-2
    torch.manual_seed(5)
    m.train_step(x, m.configure_optimizers(Optimizer("sgd", lr=lr, betas=(0.0, 0.999))))
    torch.manual_seed(5)
    z = torch.randn(B, ref.latent_dim)                             # the first draw of train_step
    with torch.no_grad():
        fake = ref.G(z)
    real = x.float() / 127.5 - 1
    cfg = ref.config
    loss = d_loss(cfg.loss, ref.D(real), ref.D(fake))
    if cfg.gp_lambda:
        loss = loss + cfg.gp_lambda * gradient_penalty(ref.D, real, fake)   # eps: the next global draw
    if cfg.r1_gamma:
        loss = loss + 0.5 * cfg.r1_gamma * r1_penalty(ref.D, real)
    grads = torch.autograd.grad(loss, list(ref.D.parameters()))
    for (n, p), p0, g in zip(m.D.named_parameters(), ref.D.parameters(), grads):
        assert torch.allclose((p0 - p) / lr, g, rtol=1e-3, atol=1e-4), n


def test_weight_clipping_holds_after_a_step():
    m = smoke_model("wgan")
    c = m.config.clip
    assert max(p.abs().max().item() for p in m.D.parameters()) > c  # N(0, 0.02) init and BN scales exceed it
    m.train_step(images(5 * B), m.configure_optimizers(Optimizer("rmsprop", lr=5e-5)))
    for n, p in m.D.named_parameters():
        assert p.abs().max().item() <= c, n
    assert any((p.abs() == c).any() for p in m.D.parameters())   # clipping was active
    assert max(p.abs().max().item() for p in m.G.parameters()) > c  # the generator is not clipped


def test_spectral_norm_normalizes_every_layer_of_d():
    m = smoke_model("sngan")
    layers = [mod for mod in m.D.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    assert layers and all(hasattr(mod, "parametrizations") for mod in layers)
    assert not any(hasattr(mod, "parametrizations") for mod in m.G.modules())
    x = torch.randn(2, *SHAPE)
    with torch.no_grad():
        for _ in range(100):                                       # one power iteration per training-mode forward
            m.D(x)
    m.D.eval()                                                     # read the weights without iterating further
    conv, linear = m.D.blocks[1].c1, m.D.out
    for mod in (conv, linear):
        w = mod.weight.flatten(1)                                  # (out, in k k): the matrix SN normalizes
        assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=1e-3)
        raw = mod.parametrizations.weight.original.flatten(1)
        assert abs(torch.linalg.matrix_norm(raw, ord=2).item() - 1.0) > 0.05


def test_grad_clip_of_the_optimizer_settings_is_applied():
    """SGD lr 1 with grad_clip 1e-6: each network moves by at most 1e-6 per update (one D, one G update)."""
    m = smoke_model("dcgan")
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    m.train_step(images(B), m.configure_optimizers(Optimizer("sgd", lr=1.0, grad_clip=1e-6)))
    for net in ("G.", "D."):
        moved = torch.cat([(p.detach() - before[n]).flatten() for n, p in m.named_parameters() if n.startswith(net)])
        assert 0 < moved.norm().item() <= 1.01e-6, net


@pytest.mark.parametrize("name", ["dcgan", "sngan", "gan-r1"])
def test_same_seed_same_training_and_exact_resume(name):
    """Two runs from one seed agree bit for bit; so does a run resumed from a state-dict checkpoint (model,
    optimizers, RNG) taken after 2 steps - batch norm statistics and spectral-norm vectors included."""
    def run(steps, m=None, opts=None):
        outs = []
        for i in range(steps):
            outs.append(m.train_step(images(m.batches_per_step * B, seed=i), opts))
        return outs

    a = smoke_model(name)
    opts_a = a.configure_optimizers(ADAM)
    torch.manual_seed(1)
    out_a = run(2, a, opts_a)
    ckpt = {"model": {k: v.clone() for k, v in a.state_dict().items()},
            "opts": copy.deepcopy({k: o.state_dict() for k, o in opts_a.items()}), "rng": torch.get_rng_state()}
    out_a += run(2, a, opts_a)

    b = smoke_model(name)
    opts_b = b.configure_optimizers(ADAM)
    torch.manual_seed(1)
    assert run(2, b, opts_b) == out_a[:2]

    c = smoke_model(name, seed=123)                                # other initial weights, then the checkpoint
    opts_c = c.configure_optimizers(ADAM)
    c.load_state_dict(ckpt["model"])
    for k, o in opts_c.items():
        o.load_state_dict(ckpt["opts"][k])
    torch.set_rng_state(ckpt["rng"])
    assert run(2, c, opts_c) == out_a[2:]
    for (n, p), q in zip(a.state_dict().items(), c.state_dict().values()):
        assert torch.equal(p, q), n


@pytest.mark.parametrize("name", ["dcgan", "sngan"])
def test_state_dict_round_trip_gives_identical_samples(name):
    m = smoke_model(name)
    m.train_step(images(m.batches_per_step * B), m.configure_optimizers(ADAM))
    if name == "sngan":
        assert any(k.endswith("_u") for k in m.state_dict())       # power-iteration vectors are checkpointed
    fresh = smoke_model(name, seed=99)
    fresh.load_state_dict(m.state_dict())
    m.eval(), fresh.eval()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(m.sample(8, generator=g()), fresh.sample(8, generator=g()))
    x = torch.rand(3, *SHAPE) * 2 - 1
    with torch.no_grad():
        assert torch.equal(m.D(x), fresh.D(x))
    assert m.eval_loss(images(6)) == fresh.eval_loss(images(6))


def test_eval_loss_is_deterministic_and_leaves_state_alone():
    for name in ("wgan-gp", "gan-r1"):
        m = smoke_model(name).eval()
        state = {k: v.clone() for k, v in m.state_dict().items()}
        rng = torch.get_rng_state()
        x = images(7)                                              # any batch size: 7 is no multiple of n_critic
        with torch.no_grad():                                      # as the runner calls it
            a = m.eval_loss(x)
        b = m.eval_loss(x)
        assert a == b and torch.equal(rng, torch.get_rng_state())
        assert ("gp" in a) == (name == "wgan-gp") and ("r1" in a) == (name == "gan-r1")
        assert all(math.isfinite(v) for v in a.values())
        assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())
        assert all(p.grad is None for p in m.parameters())
        assert m.eval_loss(x, generator=torch.Generator().manual_seed(1)) != a


# ---- projection ----------------------------------------------------------------------------------------------
def test_projection_recovers_the_generators_own_samples():
    """A smoke ResNet G (its random init already draws varied images): G(z0) is recovered by projection from
    random starts far better than a random sample matches it; G's weights get no gradient and stay put."""
    m = smoke_model("wgan-gp", projection_steps=150).eval()
    x = m.sample(6, generator=torch.Generator().manual_seed(5))   # uint8 targets G(z0)
    other = m.sample(6, generator=torch.Generator().manual_seed(6))
    assert psnr(x, other).max() < 25
    weights = {k: v.clone() for k, v in m.state_dict().items()}
    rng = torch.get_rng_state()
    with torch.no_grad():                                          # robust to an outer no_grad
        r = m.reconstruct(x)
    assert r.dtype == torch.uint8 and r.shape == x.shape
    assert psnr(x, r).min() > 30
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in weights.items())
    assert all(p.grad is None for p in m.parameters())
    z = m.project(x)
    assert z.shape == (6, m.latent_dim) and not z.requires_grad
    assert torch.equal(m.decode(z), r)                             # same seeded starts on every call


def test_projection_keeps_the_best_start_and_runs_g_in_eval_mode():
    m = smoke_model("sngan", projection_steps=30, projection_starts=4).eval()
    x = images(5)
    one = dataclasses.replace(m.config, projection_starts=1)
    err = lambda model: (model.G(model.project(x)) - (x.float() / 127.5 - 1)).pow(2).flatten(1).mean(1)  # noqa: E731
    with torch.no_grad():
        e4 = err(m)
        m1 = Model(one, SHAPE)
        m1.load_state_dict(m.state_dict())
        e1 = err(m1.eval())
    assert (e4 <= e1 + 1e-6).all() and (e4 < e1 - 1e-6).any()    # start 0 of 4 is the one start of 1
    m.train()
    buffers = {k: v.clone() for k, v in m.G.state_dict().items()}
    m.reconstruct(x[:2])
    assert m.G.training and all(torch.equal(v, m.G.state_dict()[k]) for k, v in buffers.items())


# ---- bad input -------------------------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors():
    cfg = VARIANTS["wgan"]["smoke"]
    for shape in [(1, 30, 30), (1, 28, 32), (3, 16, 16)]:
        with pytest.raises(GenbenchError, match="unsupported image shape"):
            Model(cfg, shape)
    m = Model(cfg, SHAPE)
    opts = m.configure_optimizers(ADAM)
    with pytest.raises(GenbenchError, match="n_critic=5 it needs n_critic \\* B"):
        m.train_step(images(5 * B + 2), opts)
    with pytest.raises(GenbenchError, match="uint8 images"):
        m.train_step(images(5 * B).float(), opts)
    with pytest.raises(GenbenchError, match="uint8 images"):
        m.reconstruct(images(2, shape=(1, 32, 32)))
    for bad in [dict(loss="lsgan"), dict(arch="mlp"), dict(n_critic=0), dict(clip=-0.01), dict(gp_lambda=10.0),
                dict(arch="resnet"), dict(d_pool="max"), dict(projection_starts=0)]:
        with pytest.raises(GenbenchError, match="invalid config"):
            dataclasses.replace(cfg, **bad)  # wgan smoke has batch norm in D: gp / resnet need it off
    with pytest.raises(GenbenchError, match="needs a D without batch norm"):
        Config(r1_gamma=10.0, d_batchnorm=True)
