"""CycleGAN against closed forms and hand runs: the GAN losses, cycle and identity losses for stand-in generators,
the PatchGAN's receptive field and map sizes, the image pool; training phases, determinism, exact resume."""

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn as nn

from genbench import GenbenchError
from genbench.baselines.cyclegan import (PRESETS, Config, ImagePool, Model, PatchDiscriminator, gan_d_loss,
                                         gan_g_loss, patchgan_layers, patchgan_output_side, receptive_field)
from genbench.optim import Optimizer

SHAPE = (1, 16, 16)                                  # smoke: d_layers 2 leaves D a 2 x 2 map
ADAM = Optimizer("adam", lr=2e-4, betas=(0.5, 0.999))
KEYS = {"loss", "g_adv_ab", "g_adv_ba", "cycle_a", "cycle_b", "identity_a", "identity_b", "d_a", "d_b"}

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def smoke_model(seed: int = 0, shape=SHAPE, **changes) -> Model:
    torch.manual_seed(seed)
    return Model(dataclasses.replace(PRESETS["smoke"], **changes), shape)


def batch(n_a: int, n_b: int, seed: int = 0, shape=SHAPE):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n_a + n_b, *shape), generator=g, dtype=torch.uint8)
    labels = torch.tensor([0] * n_a + [1] * n_b)[torch.randperm(n_a + n_b, generator=g)]
    return x, labels


# ---- losses -------------------------------------------------------------------------------------------------
def test_gan_losses_against_closed_forms():
    r = torch.tensor([[0.5, 2.0], [1.0, -1.0]])                 # patch logits of real images
    f = torch.tensor([[-1.0, 0.25], [0.0, 3.0]])                # of fakes
    lsgan_d = 0.5 * ((0.25 + 1.0 + 0.0 + 4.0) / 4 + (1.0 + 0.0625 + 0.0 + 9.0) / 4)
    assert gan_d_loss("lsgan", r, f).item() == pytest.approx(lsgan_d, rel=1e-6)
    assert gan_g_loss("lsgan", f).item() == pytest.approx((4.0 + 0.5625 + 1.0 + 4.0) / 4, rel=1e-6)
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731  softplus
    vanilla_d = 0.5 * (sum(sp(-v) for v in r.flatten().tolist()) / 4 + sum(sp(v) for v in f.flatten().tolist()) / 4)
    assert gan_d_loss("vanilla", r, f).item() == pytest.approx(vanilla_d, rel=1e-6)
    assert gan_g_loss("vanilla", f).item() == pytest.approx(sum(sp(-v) for v in f.flatten().tolist()) / 4, rel=1e-6)
    # the LSGAN optimum: D outputs 1 on real, 0 on fake; G's fakes scored 1
    assert gan_d_loss("lsgan", torch.ones(3), torch.zeros(3)).item() == 0.0
    assert gan_g_loss("lsgan", torch.ones(3)).item() == 0.0
    with pytest.raises(GenbenchError, match="unknown GAN loss"):
        gan_g_loss("hinge", f)


class Affine(nn.Module):
    def __init__(self, scale: float, shift: float):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return self.scale * x + self.shift


def test_cycle_and_identity_losses_for_identity_and_affine_generators():
    m = smoke_model()
    a, b = torch.rand(2, *SHAPE) * 2 - 1, torch.rand(3, *SHAPE) * 2 - 1
    m.G_ab, m.G_ba = nn.Identity(), nn.Identity()
    terms, (fake_a, fake_b) = m._generator_terms(a, b)
    assert terms["cycle_a"] == terms["cycle_b"] == terms["identity_a"] == terms["identity_b"] == 0.0
    assert torch.equal(fake_b, a) and torch.equal(fake_a, b)
    with torch.no_grad():                                     # the adversarial terms: D scores the inputs themselves
        assert terms["g_adv_ab"].item() == pytest.approx(((m.D_b(a) - 1) ** 2).mean().item(), rel=1e-6)

    m.G_ab, m.G_ba = Affine(0.5, 0.25), Affine(2.0, 0.5)     # F(G(a)) = a + 1, G(F(b)) = b + 0.5
    terms, _ = m._generator_terms(a, b)
    values = lambda t: t.flatten().tolist()  # noqa: E731
    cycle_a = 10 * sum(abs(2.0 * (0.5 * v + 0.25) + 0.5 - v) for v in values(a)) / a.numel()
    cycle_b = 10 * sum(abs(0.5 * (2.0 * v + 0.5) + 0.25 - v) for v in values(b)) / b.numel()
    identity_a = 5 * sum(abs(2.0 * v + 0.5 - v) for v in values(a)) / a.numel()      # 0.5 * 10 * |F(a) - a|
    identity_b = 5 * sum(abs(0.5 * v + 0.25 - v) for v in values(b)) / b.numel()     # 0.5 * 10 * |G(b) - b|
    assert terms["cycle_a"].item() == pytest.approx(cycle_a, rel=1e-5) and cycle_a == pytest.approx(10.0)
    assert terms["cycle_b"].item() == pytest.approx(cycle_b, rel=1e-5) and cycle_b == pytest.approx(5.0)
    assert terms["identity_a"].item() == pytest.approx(identity_a, rel=1e-5)
    assert terms["identity_b"].item() == pytest.approx(identity_b, rel=1e-5)
    total = sum(v for k, v in terms.items() if k != "total")
    assert terms["total"].item() == pytest.approx(total.item(), rel=1e-6)
    off = smoke_model(lambda_identity=0.0)
    off.G_ab, off.G_ba = Affine(0.5, 0.25), Affine(2.0, 0.5)
    terms, _ = off._generator_terms(a, b)
    assert terms["identity_a"] == terms["identity_b"] == 0.0


# ---- the PatchGAN -------------------------------------------------------------------------------------------
def test_patchgan_receptive_field_is_70_at_the_standard_preset():
    cfg = PRESETS["standard"]
    assert receptive_field(patchgan_layers(cfg.d_layers)) == 70
    assert receptive_field(patchgan_layers(2)) == 34 and receptive_field(patchgan_layers(1)) == 16
    # the gradient of one logit: the conv stack of the standard geometry (width 2 to keep it fast; width does not
    # move the field). Instance norm's statistics couple every pixel, so it is taken out for this check.
    torch.manual_seed(0)
    D = PatchDiscriminator(1, 2, cfg.d_layers).double()
    D.net = nn.Sequential(*[nn.Identity() if isinstance(m, nn.InstanceNorm2d) else m for m in D.net])
    x = torch.randn(1, 1, 128, 128, dtype=torch.float64, requires_grad=True)
    out = D(x)                                                   # (1, 1, 14, 14)
    assert out.shape == (1, 1, 14, 14)
    (grad,) = torch.autograd.grad(out[0, 0, 7, 5], x)
    # output (i, j) sees input rows 8 i - 23 ... 8 i + 46 (total stride 8, padding offset 1 + 2 + 4 + 8 + 8 = 23)
    expected = torch.zeros(128, 128, dtype=torch.bool)
    expected[8 * 7 - 23:8 * 7 - 23 + 70, 8 * 5 - 23:8 * 5 - 23 + 70] = True
    assert torch.equal(grad[0, 0] != 0, expected)


def test_patchgan_widths_and_map_sizes():
    D = Model(PRESETS["standard"], (1, 64, 64)).D_b
    convs = [m for m in D.net if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]                  # C64-C128-C256-C512, output
    assert [(c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == patchgan_layers(3)
    assert not isinstance(D.net[1], nn.InstanceNorm2d) and isinstance(D.net[3], nn.InstanceNorm2d)
    assert all(m.negative_slope == 0.2 for m in D.net if isinstance(m, nn.LeakyReLU))
    assert patchgan_output_side(64, 3) == 6 and patchgan_output_side(256, 3) == 30
    narrow = PatchDiscriminator(1, 2, 3)
    with torch.no_grad():
        assert narrow(torch.zeros(1, 1, 64, 64)).shape == (1, 1, 6, 6)
        assert narrow(torch.zeros(1, 1, 256, 256)).shape == (1, 1, 30, 30)


def test_generator_layout_and_image_shapes():
    G = Model(PRESETS["standard"], (1, 64, 64)).G_ab
    convs = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert [c.out_channels for c in convs[:3]] == [64, 128, 256] and convs[0].kernel_size == (7, 7)
    assert sum(isinstance(m, nn.Module) and type(m).__name__ == "ResidualBlock" for m in G.modules()) == 6
    assert [c.out_channels for c in convs[-3:]] == [128, 64, 1] and convs[-1].kernel_size == (7, 7)
    assert all(abs(c.weight.std().item() - 0.02) < 0.002 for c in convs[1:-1])          # N(0, 0.02)
    m = smoke_model(shape=(1, 28, 20))                                                   # any sides divisible by 4
    assert m.translate(torch.zeros(2, 1, 28, 20, dtype=torch.uint8), "a_to_b").shape == (2, 1, 28, 20)
    with pytest.raises(GenbenchError, match="divisible by 4"):
        smoke_model(shape=(1, 18, 16))
    with pytest.raises(GenbenchError, match="channels"):
        smoke_model(shape=(3, 16, 16))
    with pytest.raises(GenbenchError, match="gan_loss"):
        Config(gan_loss="hinge")


# ---- the image pool -----------------------------------------------------------------------------------------
def hand_pool(stored: list, size: int, images: list, u: list, slot: list) -> list:
    """The pool's rule run by hand on Python lists (mutates `stored`)."""
    out = []
    for i, img in enumerate(images):
        if len(stored) < size:
            stored.append(img)
            out.append(img)
        elif u[i] > 0.5:
            out.append(stored[slot[i]])
            stored[slot[i]] = img
        else:
            out.append(img)
    return out


def test_pool_of_size_zero_returns_its_input():
    pool = ImagePool(0, (1, 2, 2))
    x = torch.randn(3, 1, 2, 2)
    state = torch.get_rng_state()
    assert pool.query(x) is x and torch.equal(state, torch.get_rng_state())


def test_pool_fills_then_swaps_as_the_hand_run():
    size, shape = 4, (1, 2, 2)
    pool = ImagePool(size, shape)
    images = [torch.full(shape, float(k)) for k in range(12)]  # image k is the constant k
    out = pool.query(torch.stack(images[:3]))                   # not full: stored and returned
    assert torch.equal(out, torch.stack(images[:3])) and int(pool.count) == 3
    assert torch.equal(pool.images[:3], torch.stack(images[:3]))
    stored = [0.0, 1.0, 2.0]
    for start, n, seed in ((3, 4, 7), (7, 5, 8)):               # the first query crosses the full boundary
        torch.manual_seed(seed)
        got = pool.query(torch.stack(images[start:start + n]))
        torch.manual_seed(seed)
        u, slot = torch.rand(n).tolist(), torch.randint(0, size, (n,)).tolist()
        want = hand_pool(stored, size, [float(k) for k in range(start, start + n)], u, slot)
        assert got[:, 0, 0, 0].tolist() == want
        assert pool.images[:, 0, 0, 0].tolist() == stored and int(pool.count) == size
    assert any(w != float(k) for w, k in zip(want, range(7, 12)))   # some image was swapped for a stored one


def test_pool_state_dict_round_trip():
    pool = ImagePool(3, (1, 2, 2))
    torch.manual_seed(0)
    pool.query(torch.randn(5, 1, 2, 2))
    again = ImagePool(3, (1, 2, 2))
    again.load_state_dict(copy.deepcopy(pool.state_dict()))
    assert set(pool.state_dict()) == {"images", "count"}
    assert torch.equal(again.images, pool.images) and int(again.count) == 3
    x = torch.randn(4, 1, 2, 2)
    torch.manual_seed(1)
    first = pool.query(x)
    torch.manual_seed(1)
    assert torch.equal(again.query(x), first) and torch.equal(again.images, pool.images)


# ---- training -----------------------------------------------------------------------------------------------
def test_train_step_updates_generators_then_discriminators():
    m = smoke_model()
    opts = m.configure_optimizers(ADAM)
    x, y = batch(3, 2)
    g_names = {n for n, _ in m.named_parameters() if n.startswith(("G_ab.", "G_ba."))}
    d_names = {n for n, _ in m.named_parameters() if n.startswith(("D_a.", "D_b."))}
    assert g_names and d_names and g_names | d_names == {n for n, _ in m.named_parameters()}
    snap = lambda: {n: p.detach().clone() for n, p in m.named_parameters()}  # noqa: E731
    before, at_d_step = snap(), {}
    d_step = opts["discriminator"].step

    def spy(*args, **kwargs):                                                # after the G phase, before D's update
        at_d_step.update(snap())
        return d_step(*args, **kwargs)

    opts["discriminator"].step = spy
    stats = m.train_step(x, opts, labels=y)
    after = snap()
    changed = lambda p, q: {n for n in p if not torch.equal(p[n], q[n])}  # noqa: E731
    assert changed(before, at_d_step) == g_names                            # G phase: every G tensor, no D
    assert changed(at_d_step, after) == d_names                             # D phase: every D tensor, no G
    assert set(stats) == KEYS and all(math.isfinite(v) for v in stats.values())
    assert stats["loss"] == pytest.approx(sum(stats[k] for k in KEYS - {"loss", "d_a", "d_b"}), rel=1e-5)
    assert int(m.pool_a.count) == 2 and int(m.pool_b.count) == 3            # fakes of A come from the B images


def test_labels_are_checked_and_both_domains_required():
    m = smoke_model()
    opts = m.configure_optimizers(ADAM)
    x, _ = batch(2, 2)
    with pytest.raises(GenbenchError, match="no image of domain B"):
        m.train_step(x, opts, labels=torch.zeros(4, dtype=torch.long))
    with pytest.raises(GenbenchError, match="no image of domain A"):
        m.eval_loss(x, labels=torch.ones(4, dtype=torch.long))
    with pytest.raises(GenbenchError, match="labels="):
        m.train_step(x, opts)
    with pytest.raises(GenbenchError, match=r"\{0, 1\}"):
        m.train_step(x, opts, labels=torch.tensor([0, 1, 2, 1]))
    with pytest.raises(GenbenchError, match="uint8"):
        m.train_step(x.float(), opts, labels=torch.tensor([0, 1, 0, 1]))


def test_same_seed_same_training_and_exact_resume_with_pools():
    chunks = [batch(3, 3, seed=i) for i in range(6)]                       # 6 steps; pools of 4 fill and swap

    def train(m, opts, parts):
        for xs, ys in parts:
            m.train_step(xs, opts, labels=ys)

    a = smoke_model(seed=3)
    opts_a = a.configure_optimizers(ADAM)
    torch.manual_seed(11)
    train(a, opts_a, chunks[:3])
    ckpt = {"model": copy.deepcopy(a.state_dict()),
            "opts": copy.deepcopy({k: o.state_dict() for k, o in opts_a.items()}), "rng": torch.get_rng_state()}
    train(a, opts_a, chunks[3:])
    assert int(a.pool_a.count) == int(a.pool_b.count) == 4

    b = smoke_model(seed=3)
    opts_b = b.configure_optimizers(ADAM)
    torch.manual_seed(11)
    train(b, opts_b, chunks)
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())

    c = smoke_model(seed=99)
    opts_c = c.configure_optimizers(ADAM)
    c.load_state_dict(ckpt["model"])
    for k, o in opts_c.items():
        o.load_state_dict(ckpt["opts"][k])
    torch.set_rng_state(ckpt["rng"])
    train(c, opts_c, chunks[3:])
    assert all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    assert {"pool_a.images", "pool_a.count", "pool_b.images", "pool_b.count"} <= set(a.state_dict())


def test_eval_loss_is_deterministic_and_touches_nothing():
    m = smoke_model()
    m.train_step(*batch(3, 3)[:1], m.configure_optimizers(ADAM), labels=batch(3, 3)[1])
    m.eval()
    x, y = batch(2, 3, seed=5)
    state, kept = torch.get_rng_state(), copy.deepcopy(m.state_dict())
    first = m.eval_loss(x, labels=y)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in kept.items())  # pools and weights untouched
    assert set(first) == KEYS and first == m.eval_loss(x, labels=y)


def test_translate_shapes_dtype_determinism():
    m = smoke_model()
    x, _ = batch(3, 2)
    out = m.translate(x, "a_to_b")
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert torch.equal(out, m.translate(x, "a_to_b"))
    assert not torch.equal(out, m.translate(x, "b_to_a"))                    # two different generators
    m.eval()
    assert torch.equal(out, m.translate(x, "a_to_b"))                        # no running statistics: mode-free
    assert torch.equal(m.translate(x[:2], "a_to_b"), out[:2])                # per image: batch-independent
    assert m.translate(x[:0], "b_to_a").shape == (0, *SHAPE)
    with pytest.raises(GenbenchError, match="direction"):
        m.translate(x, "forward")
    assert not hasattr(m, "sample")
