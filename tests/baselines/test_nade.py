"""NADE: the exactness checks of an autoregressive model (no leak, full dependence, normalization by brute force,
8 bits/dim from uniform conditionals), its conditionals against a naive O(H D^2) loop written here, the sampler's
recursion against the full pass, sample frequencies against the likelihood, and training."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import autoregressive_checks as checks
from genbench import GenbenchError
from genbench.baselines import nade
from genbench.optim import Optimizer

pytestmark = pytest.mark.usefixtures("one_thread")

KINDS = ("bernoulli", "categorical", "logistic-mixture")
LEAK_SHAPES = [(1, 1, 2), (1, 2, 1), (3, 1, 1), (1, 3, 3)]


def tiny(shape, conditional="categorical", hidden=6, components=3, std=0.3, seed=0) -> nade.Model:
    config = nade.Config(hidden=hidden, conditional=conditional, mixture_components=components)
    return checks.randomize(nade.Model(config, shape), std=std, seed=seed)


def values_of(kind):
    return (0, 255) if kind == "bernoulli" else None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", LEAK_SHAPES)
def test_no_conditional_sees_its_own_or_a_later_sub_pixel(kind, shape):
    model = tiny(shape, kind)
    assert checks.leaks(model, shape, values=values_of(kind)) == []
    assert checks.depends_on_every_earlier_position(model, shape)  # tied weights: every earlier sub-pixel


@pytest.mark.parametrize("kind,shape,std", [("categorical", (1, 1, 2), 0.3), ("categorical", (1, 2, 1), 1.0),
                                            ("logistic-mixture", (1, 1, 2), 0.3),
                                            ("logistic-mixture", (1, 2, 1), 1.0)])
def test_the_likelihood_sums_to_one_over_every_8_bit_image(kind, shape, std):
    model = tiny(shape, kind, std=std)
    assert checks.total_probability(model, shape) == pytest.approx(1.0, abs=1e-4)


def test_the_bernoulli_likelihood_sums_to_one_over_every_binary_image():
    shape = (1, 2, 3)
    model = tiny(shape, "bernoulli", std=1.0)
    assert checks.total_probability(model, shape, values=(0, 255)) == pytest.approx(1.0, abs=1e-6)


def test_the_mixture_likelihood_sums_to_one_over_every_rgb_pixel():
    """All 256^3 = 16.7M colours of one RGB pixel, three conditionals in the order R, G, B (one logistic each: about
    8 s on one thread)."""
    shape = (3, 1, 1)
    model = tiny(shape, "logistic-mixture", hidden=4, components=1)
    assert checks.total_probability(model, shape, chunk=1 << 16) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
def test_the_categorical_likelihood_sums_to_one_over_every_rgb_pixel(request):
    """All 256^3 = 16.7M colours of one RGB pixel (three conditionals in the order R, G, B): about 5 minutes on
    one thread (16.7M x 3 x 256 logits), so only with -m slow."""
    if "slow" not in request.config.getoption("markexpr"):
        pytest.skip("256^3 images: run with -m slow")
    shape = (3, 1, 1)
    model = tiny(shape, "categorical", hidden=4)
    assert checks.total_probability(model, shape, chunk=1 << 16) == pytest.approx(1.0, abs=1e-4)


def test_uniform_conditionals_give_exactly_8_bits_per_dim_and_1_bit_per_binary_sub_pixel():
    shape = (3, 2, 2)
    model = tiny(shape, "categorical")
    with torch.no_grad():
        model.V.zero_()
        model.b.zero_()
    assert checks.bits_per_dim(model, checks.random_images(shape, n=5)) == pytest.approx(8.0, abs=1e-6)
    binary = tiny(shape, "bernoulli")
    with torch.no_grad():
        binary.V.zero_()
        binary.b.zero_()
    x = checks.random_images(shape, n=5, values=(0, 255))
    np.testing.assert_allclose(-binary.log_likelihood(x).numpy(), 12 * math.log(2), rtol=0, atol=1e-6)  # float32


def naive_conditionals(model: nade.Model, u: torch.Tensor) -> torch.Tensor:
    """Larochelle & Murray's model one conditional at a time, O(H D^2): the d-th sub-pixel of the raster
    order (channels innermost) gets h_d = sigmoid(c + W[:, :d] x_<d) and parameters V_d h_d + b_d."""
    B, (C, H, W) = u.shape[0], u.shape[1:]
    order = [(c, i, j) for i in range(H) for j in range(W) for c in range(C)]
    out = torch.zeros(B, model.cond.num_params, C, H, W, dtype=u.dtype)
    for d, (c, i, j) in enumerate(order):
        earlier = torch.stack([u[:, cc, ii, jj] for cc, ii, jj in order[:d]], 1) if d else u.new_zeros(B, 0)
        h = torch.sigmoid(model.c + earlier @ model.W[:, :d].t())
        out[:, :, c, i, j] = h @ model.V[d].t() + model.b[d]
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_the_conditionals_match_a_naive_loop_over_sub_pixels(kind):
    shape = (2, 2, 3)
    model = tiny(shape, kind).double()
    x = checks.random_images(shape, n=3, values=values_of(kind))
    u = model.net_input(x)
    with torch.no_grad():
        np.testing.assert_allclose(model.conditionals(u).numpy(), naive_conditionals(model, u).numpy(),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_the_sampler_draws_from_the_conditionals_of_the_full_pass(kind):
    shape = (2, 2, 3)
    model = tiny(shape, kind)
    x, params = model.sample_with_conditionals(40, generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.uint8 and x.shape == (40, *shape)
    with torch.no_grad():
        full = model.conditionals(model.net_input(x))
    torch.testing.assert_close(params, full, rtol=1e-5, atol=1e-5)
    # the likelihood of the samples from the sampler's own (incremental) conditionals, one sub-pixel at a time
    stepwise = model.cond.log_prob(x.reshape(40, -1), params.flatten(2)).double().sum(1)
    torch.testing.assert_close(stepwise, model.log_likelihood(x), rtol=1e-5, atol=1e-4)
    if kind == "bernoulli":
        assert set(x.unique().tolist()) <= {0, 255}


def test_the_log_scale_floor_holds_for_sampling_as_for_scoring():
    """A logistic of log-scale -20 just above the edge between 100 and 101 is scored with PixelCNN++'s floor of -7
    (scale e^-7: about 10% below the edge); the sampler must draw from that same floored pmf."""
    shape, n = (1, 1, 1), 4000
    model = tiny(shape, "logistic-mixture", components=1)
    edge = 201 / 255 - 1  # between the bins of 100 and 101 on the [-1, 1] scale
    with torch.no_grad():
        model.V.zero_()
        model.b.copy_(torch.tensor([[0.0, edge + 0.002, -20.0]]))
    lp = model.log_likelihood(torch.arange(99, 104, dtype=torch.uint8).reshape(5, 1, 1, 1))
    p100 = float(lp[1].exp())
    assert 0.05 < p100 < 0.15 and float(lp.exp().sum()) == pytest.approx(1.0, abs=1e-4)
    x = model.sample(n, generator=torch.Generator().manual_seed(0))
    assert set(x.unique().tolist()) <= set(range(99, 104))
    assert abs(int((x == 100).sum()) - n * p100) < 4 * math.sqrt(n * p100 * (1 - p100))


def test_samples_are_a_function_of_the_generator():
    shape = (1, 3, 3)
    model = tiny(shape, "logistic-mixture")
    a = model.sample(6, generator=torch.Generator().manual_seed(1))
    b = model.sample(6, generator=torch.Generator().manual_seed(1))
    c = model.sample(6, generator=torch.Generator().manual_seed(2))
    assert a.dtype == torch.uint8 and a.shape == (6, *shape)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_frequencies_match_the_likelihood():
    shape, n = (1, 1, 2), 20_000
    model = tiny(shape, "bernoulli", std=1.0)
    x = model.sample(n, generator=torch.Generator().manual_seed(0))
    images = checks.all_images(shape, (0, 255))
    p = model.log_likelihood(images).exp().numpy()
    counts = np.array([int((x == img).flatten(1).all(1).sum()) for img in images])
    se = np.sqrt(n * p * (1 - p))
    assert counts.sum() == n
    assert (np.abs(counts - n * p) < 4 * se).all(), (counts, n * p, se)


def test_training_lowers_the_loss_and_the_loss_is_the_negative_log_likelihood():
    shape = (1, 4, 4)
    torch.manual_seed(0)
    for kind in KINDS:
        model = nade.Model(dataclasses.replace(nade.PRESETS["smoke"], conditional=kind), shape)
        x = checks.random_images(shape, n=16, seed=1, values=values_of(kind))
        frozen = model.configure_optimizers(Optimizer("sgd", lr=0.0))
        expected = float(-model.log_likelihood(x).mean())
        assert model.train_step(x, frozen)["loss"] == pytest.approx(expected, rel=1e-5)
        assert model.eval_loss(x)["loss"] == pytest.approx(expected, rel=1e-9)
        opt = model.configure_optimizers(Optimizer("adam", lr=3e-2))
        losses = [model.train_step(x, opt)["loss"] for _ in range(30)]
        assert losses[-1] < 0.9 * losses[0], (kind, losses[0], losses[-1])


@pytest.mark.parametrize("bad", [dict(hidden=0), dict(hidden=2.5), dict(conditional="gaussian"),
                                 dict(mixture_components=0)])
def test_invalid_configurations_are_refused(bad):
    with pytest.raises(GenbenchError, match="nade: invalid config"):
        dataclasses.replace(nade.PRESETS["smoke"], **bad)


def test_bad_inputs_are_refused():
    shape = (1, 2, 2)
    binary = tiny(shape, "bernoulli")
    with pytest.raises(GenbenchError, match="conditional='logistic-mixture'"):
        binary.log_likelihood(checks.random_images(shape))  # 8-bit data to a Bernoulli model
    with pytest.raises(GenbenchError, match="binary"):
        binary.train_step(checks.random_images(shape), binary.configure_optimizers(Optimizer("sgd", lr=0.1)))
    model = tiny(shape)
    with pytest.raises(GenbenchError, match="k must be 1"):
        model.log_likelihood(checks.random_images(shape), k=5)
    with pytest.raises(GenbenchError, match="uint8"):
        model.log_likelihood(checks.random_images(shape).float())
    with pytest.raises(GenbenchError, match="uint8 images of shape"):
        model.log_likelihood(checks.random_images((1, 2, 3)))


def test_the_model_describes_itself_and_the_presets_hold_their_recipes():
    model = tiny((1, 2, 2), "logistic-mixture")
    assert model.family == "autoregressive" and model.likelihood == "exact" and model.members == 1
    assert "logistic mixture" in model.likelihood_details["conditional"]
    assert "\n" not in nade.DESCRIPTION
    assert nade.PRESETS["standard-binarized"] == nade.Config(hidden=500, conditional="bernoulli")
    assert nade.PRESETS["standard"].hidden == 500 and nade.PRESETS["standard"].conditional == "logistic-mixture"
    assert nade.PRESETS["small"].conditional == "logistic-mixture"
    quick = nade.Model(nade.PRESETS["small"], (1, 28, 28))
    assert quick.conditionals(quick.net_input(checks.random_images((1, 28, 28), n=2))).shape == (2, 15, 1, 28, 28)
