"""The energy-based models (genbench.baselines.ebm): Langevin dynamics as the recipes run them, against closed forms;
the losses against independent computations; the replay buffer's re-initialization rate and its place outside the
weights; JEM's energy and classifier; sampling from the weights alone; determinism."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from genbench import GenbenchError, mcmc
from genbench.baselines import ebm

SHAPE = (1, 12, 12)


def tiny(variant: str = "igebm", **kw) -> ebm.Model:
    torch.manual_seed(0)
    config = dataclasses.replace(ebm.VARIANTS[variant]["smoke"], **kw)
    return ebm.CLASSES.get(variant, ebm.Model)(config, SHAPE)


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *SHAPE), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


# ---- Langevin dynamics ---------------------------------------------------------------------------------------
def test_one_sgld_step_is_the_recipe_update_on_a_linear_energy():
    a = torch.tensor([0.5, -2.0, 0.004])
    energy = lambda x: (x * a).sum(1)  # noqa: E731  grad E = a everywhere
    x = torch.tensor([[0.2, 0.9, 0.5]])
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    out = mcmc.sgld(energy, x, 1, 0.1, 0.05, generator=torch.Generator().manual_seed(3), grad_clip=0.01,
                    bounds=(0.0, 1.0))
    expected = (x - 0.1 * a.clamp(-0.01, 0.01) + 0.05 * eps).clamp(0, 1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)
    # noise first (IGEBM): the same numbers, since a linear energy's gradient does not depend on where it is taken
    out = mcmc.sgld(energy, x, 1, 0.1, 0.05, generator=torch.Generator().manual_seed(3), grad_clip=0.01,
                    bounds=(0.0, 1.0), noise_first=True)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("noise_first", [False, True])
def test_sgld_on_a_quadratic_energy_has_the_stationary_variance_of_its_ar1_chain(noise_first):
    """E = x^2 / (2 s^2): x' = (1 - a) x + sigma eps with a = lambda / s^2 has variance sigma^2 / (1 - (1 - a)^2);
    noise first, x' = (1 - a)(x + sigma eps): (1 - a)^2 sigma^2 / (1 - (1 - a)^2)."""
    s, lam, sigma = 0.5, 0.05, 0.1
    a = lam / s ** 2
    energy = lambda x: x.pow(2).sum(1) / (2 * s ** 2)  # noqa: E731
    x = mcmc.sgld(energy, torch.zeros(10_000, 1), 60, lam, sigma, generator=torch.Generator().manual_seed(0),
                  noise_first=noise_first)  # (1 - a)^60 = 2e-6: the start is forgotten
    var = sigma ** 2 / (1 - (1 - a) ** 2) * ((1 - a) ** 2 if noise_first else 1.0)
    # the sample variance of 10,000 Gaussian draws has relative standard error sqrt(2 / n) = 1.4%
    assert float(x.var()) == pytest.approx(var, rel=0.056)
    assert abs(float(x.mean())) < 4 * math.sqrt(var / 10_000)


def test_sgld_with_the_noise_of_temperature_one_is_the_unadjusted_langevin_algorithm():
    energy = lambda x: (x - 0.3).pow(2).sum(1) * 2.0  # noqa: E731
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    lam = 0.01
    out = mcmc.sgld(energy, x, 1, lam, math.sqrt(2 * lam), generator=torch.Generator().manual_seed(2))
    ula = mcmc.langevin_step(x, -4.0 * (x - 0.3), 2 * lam, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(out, ula, rtol=0, atol=1e-6)


def test_sgld_stays_in_its_box():
    energy = lambda x: -10.0 * x.sum(1)  # noqa: E731  pushes every coordinate up, out of the box
    x = mcmc.sgld(energy, torch.full((64, 5), 0.5), 20, 1.0, 0.5, generator=torch.Generator().manual_seed(0),
                  bounds=(-1.0, 1.0))
    assert float(x.max()) == 1.0 and float(x.min()) >= -1.0


# ---- losses and energies -------------------------------------------------------------------------------------
def test_the_loss_is_the_contrastive_gap_plus_the_l2_term_on_separately_computed_energies():
    model = tiny("igebm", spectral_norm=False).eval()
    pos, neg = torch.rand(6, *SHAPE), torch.rand(6, *SHAPE)
    terms = model._loss(pos, neg, None)
    e_pos, e_neg = model.energy(pos), model.energy(neg)
    torch.testing.assert_close(terms["cd"], e_pos.mean() - e_neg.mean(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(terms["l2"], e_pos.pow(2).mean() + e_neg.pow(2).mean(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(terms["loss"], terms["cd"] + terms["l2"])
    # its gradient in the weights is E_data[grad E] - E_model[grad E] (+ the L2 term's), the maximum-likelihood
    # gradient's estimate up to sign: checked on the output bias, whose gradient of E is 1 per image
    bias = model.net.net[-2].bias
    grad, = torch.autograd.grad(terms["loss"], bias)
    expected = 0 + 2 * (e_pos.mean() + e_neg.mean())  # d(cd)/db = 1 - 1; d(l2)/db = 2 mean(E+) + 2 mean(E-)
    torch.testing.assert_close(grad, expected.detach().reshape(1), rtol=1e-5, atol=1e-6)


def test_jem_energy_is_minus_the_logsumexp_of_its_logits_and_adds_the_cross_entropy():
    model = tiny("jem").eval()
    x = images(5)
    logits = model.classify(x)
    assert logits.shape == (5, 10)
    torch.testing.assert_close(model.energy(model._to_box(x)), -torch.logsumexp(logits, 1))
    labels = torch.tensor([0, 3, 9, 3, 1])
    pos, neg = model._to_box(x), torch.rand(5, *SHAPE) * 2 - 1
    terms = model._loss(pos, neg, labels)
    torch.testing.assert_close(terms["ce"], F.cross_entropy(logits, labels), rtol=1e-5, atol=1e-6)
    assert float(terms["accuracy"]) == float((logits.argmax(1) == labels).float().mean())
    assert "l2" not in terms
    with pytest.raises(GenbenchError, match="class labels"):
        model._loss(pos, neg, None)
    assert not hasattr(tiny("igebm"), "classify")  # a capability of JEM alone


def test_spectral_norm_bounds_every_layer_but_the_output_one():
    model = tiny("igebm", width=4).train()
    for _ in range(30):  # power iterations advance in train mode
        model.net(torch.rand(2, *SHAPE))
    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    for conv in convs[:-1]:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert float(sigma) == pytest.approx(1.0, abs=2e-2)
    assert not hasattr(convs[-1], "parametrizations")


def test_igebm_dequantizes_its_training_images_into_their_bins():
    model = tiny("igebm", data_noise=0.0)
    x = images(4)
    y = model._positives(x, torch.Generator().manual_seed(0))
    assert bool((y >= x.float() / 256).all() and (y < (x.float() + 1) / 256).all())


# ---- the replay buffer ---------------------------------------------------------------------------------------
def test_the_buffer_restarts_chains_from_noise_at_its_rate_and_keeps_the_rest(monkeypatch):
    model = tiny("igebm", buffer_size=500, reinit=0.05)
    monkeypatch.setattr(model, "_chain", lambda x, steps, generator: x)  # the selection, without dynamics
    torch.manual_seed(0)
    model._negatives(1)  # creates the buffer
    batches = []
    for _ in range(50):
        model._buffer.fill_(2.0)  # outside the box: a buffer chain is told from a restarted one
        batches.append(model._negatives(400))
    x = torch.cat(batches)  # 20,000 chains
    restarted = (x.flatten(1) != 2.0).all(1).float().mean()
    # binomial(20000, 0.05): standard error 0.0015
    assert float(restarted) == pytest.approx(0.05, abs=0.006)
    assert bool(((x.flatten(1) == 2.0).all(1) | ((x >= 0) & (x <= 1)).flatten(1).all(1)).all())


def test_chains_are_written_back_to_the_slots_they_came_from(monkeypatch):
    model = tiny("igebm", buffer_size=8, reinit=0.0)
    monkeypatch.setattr(model, "_chain", lambda x, steps, generator: x + 10.0)
    torch.manual_seed(1)
    model._negatives(1)
    before = model._buffer.clone()
    torch.manual_seed(2)
    slots = torch.randperm(8)[:3]
    torch.manual_seed(2)
    x = model._negatives(3)
    changed = (model._buffer != before).flatten(1).any(1)
    assert set(torch.nonzero(changed).flatten().tolist()) == set(slots.tolist())
    assert torch.equal(model._buffer[slots], x) and torch.equal(x, before[slots] + 10.0)
    with pytest.raises(GenbenchError, match="at least 9 chains"):
        model._negatives(9)


def test_the_buffer_is_training_state_outside_the_weights():
    model = tiny("igebm")
    assert model.train_state() == {}
    model.train_step(images(4), model.configure_optimizers(ebm.Optimizer("adam", lr=1e-4)))
    state = model.train_state()
    assert state["buffer"].shape == (64, *SHAPE)
    assert not any("buffer" in k for k in model.state_dict())
    other = tiny("igebm")
    other.load_train_state(state)
    assert other._buffer is state["buffer"]
    assert tiny("short-run-ebm").train_state() == {}


# ---- sampling ----------------------------------------------------------------------------------------------
def test_samples_come_from_the_weights_and_the_generator_alone():
    model = tiny("igebm").eval()
    a = model.sample(6, generator=torch.Generator().manual_seed(0))
    model._buffer = torch.full((64, *SHAPE), float("nan"))  # a buffer is never read
    b = model.sample(6, generator=torch.Generator().manual_seed(0))
    assert a.dtype == torch.uint8 and a.shape == (6, *SHAPE)
    assert torch.equal(a, b)
    assert not torch.equal(a, model.sample(6, generator=torch.Generator().manual_seed(1)))
    # more steps move the chains further
    assert not torch.equal(a, model.sample(6, generator=torch.Generator().manual_seed(0), steps=8))
    with pytest.raises(ValueError):
        model.sample(2, steps=0)


def test_the_sampler_description_states_the_dynamics_and_their_temperature():
    d = tiny("short-run-ebm").sampler_description
    assert d["steps"] == 4 and d["lambda"] == 1.0 and d["sigma"] == 0.01 and d["box"] == [-1.0, 1.0]
    assert d["temperature"] == pytest.approx(0.01 ** 2 / 2)


def test_a_training_step_is_deterministic_given_the_seed():
    def step():
        model = tiny("jem")
        opts = model.configure_optimizers(ebm.Optimizer("adam", lr=1e-3))
        torch.manual_seed(5)
        out = model.train_step(images(4), opts, labels=torch.tensor([1, 2, 3, 4]))
        return out, [p.detach().clone() for p in model.parameters()]

    (a, wa), (b, wb) = step(), step()
    assert a == b and all(torch.equal(x, y) for x, y in zip(wa, wb))
    assert set(a) >= {"loss", "cd", "ce", "accuracy", "energy_data", "energy_model"}


def test_the_presets_follow_the_published_settings():
    ig, jem, sr = (ebm.VARIANTS[v]["standard"] for v in ("igebm", "jem", "short-run-ebm"))
    assert (ig.sgld_steps, ig.sgld_step, ig.sgld_noise, ig.grad_clip, ig.l2, ig.buffer_size) == (60, 10.0, 0.005,
                                                                                                 0.01, 1.0, 10_000)
    assert ig.spectral_norm and ig.box == "unit" and ig.noise_first and ig.dequantize
    assert (jem.sgld_steps, jem.sgld_step, jem.sgld_noise, jem.data_noise, jem.reinit) == (20, 1.0, 0.01, 0.03, 0.05)
    assert jem.arch == "wrn" and (jem.depth, jem.width, jem.classes) == (28, 10, 10) and jem.l2 == 0
    assert (sr.sgld_steps, sr.sgld_step, sr.sgld_noise, sr.buffer_size, sr.width) == (100, 1.0, 0.01, 0, 128)
    wrn = ebm.energy_network(jem, 3, 32)
    assert sum(p.numel() for p in wrn.parameters()) == pytest.approx(36.5e6, rel=0.01)  # WRN-28-10
    out = ebm.energy_network(ig, 3, 32)(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 1)
