"""BigGAN's math against closed forms: orthogonal regularization and its gradient, the projection discriminator's
class term, conditional batch norm, the truncated normal, hierarchical z; determinism and exact resume."""

import copy
import dataclasses
import math

import pytest
import torch

from genbench import GenbenchError
from genbench.baselines.biggan import (PRESETS, ConditionalBatchNorm, Config, Model, orthogonal_penalty,
                                       truncated_normal)
from genbench.optim import Optimizer
from genbench.pixels import to_signed

SHAPE = (1, 28, 28)
ADAM = Optimizer("adam", lr=1e-3, betas=(0.0, 0.999))


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def smoke_model(seed: int = 0, **changes) -> Model:
    torch.manual_seed(seed)
    return Model(dataclasses.replace(PRESETS["smoke"], **changes), SHAPE)


def batch(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, *SHAPE), generator=g, dtype=torch.uint8),
            torch.randint(0, 10, (n,), generator=g))


# ---- orthogonal regularization (Brock et al. Eq. 3) ---------------------------------------------------------
def test_orthogonal_penalty_closed_forms():
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    assert orthogonal_penalty(q[:4] * torch.tensor([[2.0], [0.5], [3.0], [1.0]], dtype=torch.float64)) == \
        pytest.approx(0.0, abs=1e-20 + 1e-12)                  # orthogonal rows of any norms: no penalty
    w = torch.tensor([[1.0, 1.0], [0.0, 1.0]])                 # W W^T = [[2, 1], [1, 1]]: off-diagonal 1 and 1
    assert orthogonal_penalty(w).item() == pytest.approx(2.0)
    conv = torch.randn(5, 3, 3, 3, dtype=torch.float64)        # a conv weight counts its flattened filters
    flat = conv.flatten(1)
    brute = sum(float(flat[i] @ flat[j]) ** 2 for i in range(5) for j in range(5) if i != j)
    assert orthogonal_penalty(conv).item() == pytest.approx(brute, rel=1e-12)


def test_orthogonal_penalty_gradient_is_four_times_the_masked_gram_product():
    """d/dW ||W W^T (.) (1 - I)||_F^2 = 4 (W W^T (.) (1 - I)) W: twice the step BigGAN-PyTorch's ortho() adds for
    the same coefficient (its 2 (...) W), as the provenance says."""
    w = torch.randn(7, 11, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(orthogonal_penalty(w), w)
    gram = (w @ w.t()).detach() * (1 - torch.eye(7, dtype=torch.float64))
    torch.testing.assert_close(grad, 4 * gram @ w.detach())


def test_ortho_covers_every_generator_weight_but_the_shared_embedding():
    m = smoke_model()
    weights = m.ortho_weights()
    assert all(w.dim() >= 2 for w in weights)
    assert not any(w is m.G.shared.weight for w in weights)
    raw = {id(p) for name, p in m.G.named_parameters() if name.endswith("original")}  # under spectral norm
    assert raw and raw <= {id(w) for w in weights}
    names = {id(p): name for name, p in m.G.named_parameters()}
    assert {names[id(w)].split(".")[0] for w in weights} == {"project", "blocks", "out_conv"}


# ---- the projection discriminator and conditional batch norm ------------------------------------------------
def test_projection_term_is_the_inner_product_of_the_class_embedding_and_the_features():
    m = smoke_model().eval()
    x, _ = batch(6)
    real = to_signed(x)
    with torch.no_grad():
        phi = m.D.features(real)                                         # (6, d_width)
        embed = m.D.embed.weight                                          # spectrally normalized (10, d_width)
        for c in range(10):
            y = torch.full((6,), c)
            expected = m.D.out(phi).squeeze(1) + phi @ embed[c]
            torch.testing.assert_close(m.D(real, y), expected)
        # only the projection depends on y: the difference of two classes is <embed(a) - embed(b), phi>
        diff = m.D(real, torch.full((6,), 3)) - m.D(real, torch.full((6,), 7))
        torch.testing.assert_close(diff, phi @ (embed[3] - embed[7]))
    assert torch.linalg.matrix_norm(embed, ord=2) == pytest.approx(1.0, abs=1e-3)


def test_conditional_batch_norm_against_the_hand_formula():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm(4, cond_dim=3, num_classes=5, shared=True)
    x, c = torch.randn(8, 4, 5, 5), torch.randn(8, 3)
    mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    x_hat = (x - mean) / torch.sqrt(var + 1e-5)
    gain, bias = 1 + c @ cbn.gain.weight.t(), c @ cbn.bias.weight.t()
    torch.testing.assert_close(cbn(x, c), x_hat * gain[:, :, None, None] + bias[:, :, None, None])
    per_class = ConditionalBatchNorm(4, cond_dim=0, num_classes=5, shared=False)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    expected = x_hat * (1 + per_class.gain.weight[y])[:, :, None, None] + per_class.bias.weight[y][:, :, None, None]
    torch.testing.assert_close(per_class(x, y), expected)


def test_hierarchical_z_feeds_each_block_its_own_chunk():
    m = smoke_model()                                                      # latent 12 = 3 chunks of 4 at 28x28
    z, y = torch.randn(5, 12), torch.tensor([0, 1, 2, 3, 4])
    first, conds = m.G.conditions(z, y)
    e = m.G.shared(y)
    torch.testing.assert_close(first, z[:, :4])
    assert len(conds) == 2
    for i, c in enumerate(conds):
        torch.testing.assert_close(c, torch.cat([e, z[:, 4 * (i + 1):4 * (i + 2)]], 1))
    flat = smoke_model(hierarchical=False)
    first, conds = flat.G.conditions(z, y)
    assert first is z and all(torch.equal(c, flat.G.shared(y)) for c in conds)
    with pytest.raises(GenbenchError, match="multiple of 3"):
        smoke_model(latent_dim=13)
    with pytest.raises(GenbenchError, match="shared embedding"):
        Config(shared_dim=0, hierarchical=True)


# ---- the truncation trick ----------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [0.25, 1.0, 2.0])
def test_truncated_normal_matches_its_closed_form(tau):
    z = truncated_normal((400_000,), tau, generator=torch.Generator().manual_seed(1)).double()
    pdf = math.exp(-tau ** 2 / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(tau / math.sqrt(2))                                  # 2 Phi(tau) - 1
    var = 1 - 2 * tau * pdf / mass
    assert z.abs().max() <= tau and z.dtype == torch.float64
    assert z.mean().item() == pytest.approx(0.0, abs=4 * math.sqrt(var / len(z)))
    assert z.var().item() == pytest.approx(var, rel=0.01)
    # the CDF at tau / 2 against the truncated normal's
    inner = math.erf(tau / 2 / math.sqrt(2)) / mass
    assert (z.abs() <= tau / 2).double().mean().item() == pytest.approx(inner, abs=0.005)


def test_sample_with_truncation_is_deterministic_and_differs_from_untruncated():
    m = smoke_model().eval()
    y = torch.arange(10)
    draw = lambda **kw: m.sample(10, labels=y, generator=torch.Generator().manual_seed(0), **kw)  # noqa: E731
    assert torch.equal(draw(truncation=0.5), draw(truncation=0.5))
    assert not torch.equal(draw(truncation=0.5), draw())
    assert draw().dtype == torch.uint8 and draw().shape == (10, *SHAPE)
    with pytest.raises(GenbenchError, match="class-conditional"):
        m.sample(3)
    with pytest.raises(GenbenchError, match="0..9"):
        m.sample(2, labels=torch.tensor([0, 10]))
    with pytest.raises(GenbenchError, match="positive"):
        m.sample(2, labels=torch.tensor([0, 1]), truncation=0.0)


# ---- training ----------------------------------------------------------------------------------------------
def test_train_step_uses_each_chunk_and_its_labels_once_per_critic_update(monkeypatch):
    m = smoke_model()
    opts = m.configure_optimizers(ADAM)
    seen = []
    original = m._critic_terms

    def spy(real, real_y, fake, fake_y):
        seen.append((real.clone(), real_y.clone()))
        return original(real, real_y, fake, fake_y)

    monkeypatch.setattr(m, "_critic_terms", spy)
    x, y = batch(2 * 4)                                                    # n_critic 2, B = 4
    stats = m.train_step(x, opts, labels=y)
    assert len(seen) == 2
    for i, (real, real_y) in enumerate(seen):
        torch.testing.assert_close(real, to_signed(x[4 * i:4 * (i + 1)]))
        assert torch.equal(real_y, y[4 * i:4 * (i + 1)])
    assert {"loss", "g_loss", "d_loss", "d_real", "d_fake", "ortho"} <= set(stats)
    assert all(math.isfinite(v) for v in stats.values())
    with pytest.raises(GenbenchError, match="n_critic"):
        m.train_step(x[:7], opts, labels=y[:7])
    with pytest.raises(GenbenchError, match="labels"):
        m.train_step(x, opts)


def test_generator_loss_adds_beta_times_the_penalty():
    m = smoke_model(ortho=0.5)
    fake_logits = torch.tensor([0.3, -1.2])
    terms = m._generator_terms(fake_logits)
    penalty = sum(orthogonal_penalty(w) for w in m.ortho_weights())
    torch.testing.assert_close(terms["total"], -fake_logits.mean() + 0.5 * penalty)
    assert "ortho" not in smoke_model(ortho=0.0)._generator_terms(fake_logits)


def test_same_seed_same_training_and_exact_resume():
    x, y = batch(2 * 4 * 6)
    chunks = list(zip(x.split(8), y.split(8)))

    def train(m, opts, parts):
        for xs, ys in parts:
            m.train_step(xs, opts, labels=ys)

    a = smoke_model(seed=3)
    opts_a = a.configure_optimizers(ADAM)
    torch.manual_seed(11)
    train(a, opts_a, chunks[:3])
    ckpt = {"model": {k: v.clone() for k, v in a.state_dict().items()},
            "opts": copy.deepcopy({k: o.state_dict() for k, o in opts_a.items()}), "rng": torch.get_rng_state()}
    train(a, opts_a, chunks[3:])

    b = smoke_model(seed=3)
    opts_b = b.configure_optimizers(ADAM)
    torch.manual_seed(11)
    train(b, opts_b, chunks)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())

    c = smoke_model(seed=99)
    opts_c = c.configure_optimizers(ADAM)
    c.load_state_dict(ckpt["model"])
    for k, o in opts_c.items():
        o.load_state_dict(ckpt["opts"][k])
    torch.set_rng_state(ckpt["rng"])
    train(c, opts_c, chunks[3:])
    assert all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    assert any(k.endswith("_u") for k in a.G.state_dict())                 # G's spectral-norm vectors resume too


def test_eval_loss_is_deterministic_and_leaves_the_global_rng_alone():
    m = smoke_model().eval()                                               # as the runner calls it
    x, y = batch(6)
    state = torch.get_rng_state()
    first = m.eval_loss(x, labels=y)
    assert torch.equal(state, torch.get_rng_state())
    assert first == m.eval_loss(x, labels=y) and set(first) >= {"loss", "d_loss", "g_loss", "ortho"}


def test_standing_statistics_are_the_average_batch_statistics_of_the_seeded_passes():
    m = smoke_model(standing_batches=3, standing_batch_size=8)
    x, y = batch(2 * 4)
    m.train_step(x, m.configure_optimizers(ADAM), labels=y)               # running stats and u vectors move
    bn = m.G.blocks[1].b2.bn
    seen = []
    bn.register_forward_hook(lambda mod, inputs, out: seen.append(inputs[0].detach().clone()))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.standing_statistics()
    assert len(seen) == 3 and all(len(h) == 8 for h in seen)
    torch.testing.assert_close(bn.running_mean, torch.stack([h.mean((0, 2, 3)) for h in seen]).mean(0))
    var = torch.stack([h.transpose(0, 1).flatten(1).var(1, unbiased=True) for h in seen]).mean(0)
    torch.testing.assert_close(bn.running_var, var)
    assert bn.momentum == 0.1 and m.G.training                            # restored
    after = m.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("G.") and ".bn.running_" in k or k.endswith("out_bn.running_mean")
                           or k.endswith("out_bn.running_var") for k in changed if "num_batches" not in k)
    again = smoke_model(standing_batches=3, standing_batch_size=8)
    again.load_state_dict(before)
    again.standing_statistics()                                            # seeded: the same statistics
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in after.items())
    off = smoke_model(standing_batches=0)
    kept = {k: v.clone() for k, v in off.state_dict().items()}
    off.standing_statistics()
    assert all(torch.equal(v, off.state_dict()[k]) for k, v in kept.items())


def test_presets_follow_the_recipes():
    standard = PRESETS["standard"]
    # BigGAN-PyTorch's CIFAR script: 4 D steps, no shared embedding, no hierarchical z, no ortho, 4 * 64 channels
    assert (standard.n_critic, standard.shared_dim, standard.hierarchical, standard.ortho) == (4, 0, False, 0.0)
    assert standard.g_width == standard.d_width == 256 and standard.latent_dim == 128
    small = PRESETS["small"]
    assert small.shared_dim and small.hierarchical and small.ortho == 1e-4 and small.n_critic == 2
    Model(standard, (3, 32, 32))                                            # builds at CIFAR-10's shape


def test_refreshed_spectral_norm_vectors_give_unit_top_singular_values():
    """An EMA averages the power method's unit vectors into shorter ones; refreshing them restores
    sigma_max(W / sigma) = 1 in every spectrally normalized layer of G, in eval mode."""
    from genbench.baselines.biggan import refresh_spectral_norms

    m = smoke_model()
    layers = [mod for mod in m.G.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for mod in m.G.modules():
            if hasattr(mod, "_u"):
                mod._u.mul_(0.3)                                               # as the quick run's EMA left them
                mod._v.mul_(0.4)
    m.eval()
    shrunk = [torch.linalg.matrix_norm(mod.weight.flatten(1), ord=2).item() for mod in layers]
    assert max(shrunk) > 5                                                 # sigma underestimated: weights blown up
    refresh_spectral_norms(m.G, 30)
    top = [torch.linalg.matrix_norm(mod.weight.flatten(1), ord=2).item() for mod in layers]
    assert top == pytest.approx([1.0] * len(top), abs=2e-3)
