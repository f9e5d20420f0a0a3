"""MADE: the exactness checks of an autoregressive model for every mask set (no leak, full dependence with enough
hidden units, normalization by brute force, 8 bits/dim from uniform conditionals), the masks against the degree
rule of Germain et al. (2015) and the exact reachability it implies, the ensemble's formula and normalization,
the incremental sampler against the full pass and sample frequencies against the likelihood, and training."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import autoregressive_checks as checks
from genbench import GenbenchError
from genbench.baselines import made
from genbench.baselines.autoregressive import raster_ordering
from genbench.optim import Optimizer

pytestmark = pytest.mark.usefixtures("one_thread")

KINDS = ("bernoulli", "categorical", "logistic-mixture")
LEAK_SHAPES = [(1, 1, 2), (1, 2, 1), (3, 1, 1), (1, 3, 3)]


def tiny(shape, conditional="categorical", hidden=(8,), masks=3, eval_masks=None, components=3, std=0.3, seed=0,
         mask_seed=0) -> made.Model:
    config = made.Config(hidden_sizes=hidden, conditional=conditional, mixture_components=components,
                         num_masks=masks, eval_masks=eval_masks, mask_seed=mask_seed)
    return checks.randomize(made.Model(config, shape), std=std, seed=seed)


def values_of(kind):
    return (0, 255) if kind == "bernoulli" else None


@pytest.mark.parametrize("hidden", [(8,), (8, 6)])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", LEAK_SHAPES)
def test_no_conditional_of_any_mask_set_sees_its_own_or_a_later_sub_pixel(kind, shape, hidden):
    model = tiny(shape, kind, hidden=hidden, masks=3)
    assert model.members == 3
    for m in range(model.members):
        assert checks.leaks(model, shape, member=m, values=values_of(kind)) == [], m


@pytest.mark.parametrize("hidden", [(64,), (64, 64)])
def test_enough_hidden_units_see_every_earlier_sub_pixel(hidden):
    shape = (1, 3, 3)
    model = tiny(shape, "logistic-mixture", hidden=hidden, masks=3)
    for m in range(3):
        assert checks.depends_on_every_earlier_position(model, shape, member=m), m
    # two hidden units cannot carry 8 earlier sub-pixels to the last conditional
    assert not checks.depends_on_every_earlier_position(tiny(shape, hidden=(2,), masks=1), shape)


def test_the_masks_follow_the_degree_rule():
    shape = (2, 2, 2)
    D = 8
    model = tiny(shape, hidden=(10, 7), masks=4)
    orders = []
    for m in range(4):
        deg = model.degrees(m)
        if m == 0:  # the natural order: raster, channels innermost
            assert torch.equal(deg[0], raster_ordering(shape).reshape(-1) + 1)
        assert sorted(deg[0].tolist()) == list(range(1, D + 1))  # a permutation of 1..D
        for lower, upper in zip(deg[:-1], deg[1:]):  # m^l(k) uniform on [min m^{l-1}, D - 1]
            assert int(upper.min()) >= int(lower.min()) and int(upper.max()) <= D - 1
        hidden, out = model.masks(m)
        for l, M in enumerate(hidden, start=1):
            want = [[float(deg[l][k] >= deg[l - 1][j]) for j in range(len(deg[l - 1]))] for k in range(len(deg[l]))]
            assert M.tolist() == want
        assert out.tolist() == [[float(deg[0][d] > deg[-1][k]) for k in range(len(deg[-1]))] for d in range(D)]
        assert torch.equal(model.ordering(m), (deg[0] - 1).reshape(shape))
        orders.append(tuple(deg[0].tolist()))
    assert len(set(orders)) == 4  # the pool resamples the ordering
    # the pool is a function of the config alone; another mask_seed gives another pool
    again, other = tiny(shape, hidden=(10, 7), masks=4, seed=5), tiny(shape, hidden=(10, 7), masks=4, mask_seed=1)
    assert all(torch.equal(a, b) for a, b in zip(again.degrees(3), model.degrees(3)))
    assert not torch.equal(other.degrees(1)[0], model.degrees(1)[0])


def test_one_hidden_layer_reaches_exactly_the_inputs_its_degrees_allow():
    """Output d reaches input j through some hidden unit k iff m^0(j) <= m(k) < m^0(d), i.e. iff
    m^0(j) <= max{m(k) : m(k) < m^0(d)}: the masks' product has exactly that pattern, and it is strictly
    lower-triangular in the order (two layers: the product of all three masks)."""
    D = 9
    model = tiny((1, 3, 3), hidden=(5,), masks=3)
    for m in range(3):
        deg0, deg1 = model.degrees(m)
        (M1,), MV = model.masks(m)
        reach = (MV @ M1) > 0  # (D out, D in)
        for d in range(D):
            below = [int(v) for v in deg1 if v < deg0[d]]
            top = max(below) if below else 0
            assert reach[d].tolist() == [bool(deg0[j] <= top) for j in range(D)]
    deep = tiny((1, 3, 3), hidden=(6, 5), masks=3)
    for m in range(3):
        (M1, M2), MV = deep.masks(m)
        reach = (MV @ M2 @ M1) > 0
        deg0 = deep.degrees(m)[0]
        assert not (reach & (deg0[None, :] >= deg0[:, None])).any()


@pytest.mark.parametrize("kind,shape,masks,std", [("categorical", (1, 1, 2), 1, 0.3),
                                                  ("categorical", (1, 2, 1), 3, 1.0),
                                                  ("logistic-mixture", (1, 1, 2), 3, 0.3),
                                                  ("logistic-mixture", (1, 2, 1), 1, 1.0)])
def test_the_likelihood_sums_to_one_over_every_8_bit_image(kind, shape, masks, std):
    model = tiny(shape, kind, masks=masks, std=std)
    assert model.members == masks
    assert checks.total_probability(model, shape) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("masks", [1, 4])
def test_the_bernoulli_likelihood_sums_to_one_over_every_binary_image(masks):
    shape = (1, 2, 3)
    model = tiny(shape, "bernoulli", hidden=(6, 6), masks=masks, std=1.0)
    assert checks.total_probability(model, shape, values=(0, 255)) == pytest.approx(1.0, abs=1e-6)


def test_the_ensemble_likelihood_sums_to_one_over_every_rgb_pixel():
    """All 256^3 = 16.7M colours of one RGB pixel under a two-member ensemble whose orders differ (one logistic
    per sub-pixel: about 10 s on one thread)."""
    shape = (3, 1, 1)
    model = tiny(shape, "logistic-mixture", hidden=(4,), masks=2, components=1)
    assert not torch.equal(model.ordering(0), model.ordering(1))
    assert checks.total_probability(model, shape, chunk=1 << 16) == pytest.approx(1.0, abs=1e-4)


def test_the_ensemble_is_the_equal_weight_mixture_of_its_members():
    shape = (1, 3, 3)
    model = tiny(shape, "logistic-mixture", masks=5, eval_masks=3)
    assert model.members == 3
    x = checks.random_images(shape, n=6)
    with torch.no_grad():
        members = torch.stack([model.member_log_prob(x, m).double() for m in range(3)])
    expected = torch.logsumexp(members, 0) - math.log(3)
    torch.testing.assert_close(model.log_likelihood(x), expected, rtol=1e-6, atol=1e-5)
    assert "logsumexp" in model.likelihood_details["ensemble"] and model.likelihood_details["members"] == 3


def test_uniform_conditionals_give_exactly_8_bits_per_dim_and_1_bit_per_binary_sub_pixel():
    shape = (3, 2, 2)
    model = tiny(shape, "categorical", masks=4)
    with torch.no_grad():
        model.V.zero_()
        model.b.zero_()
    assert checks.bits_per_dim(model, checks.random_images(shape, n=5)) == pytest.approx(8.0, abs=1e-6)
    binary = tiny(shape, "bernoulli", masks=4)
    with torch.no_grad():
        binary.V.zero_()
        binary.b.zero_()
    x = checks.random_images(shape, n=5, values=(0, 255))
    np.testing.assert_allclose(-binary.log_likelihood(x).numpy(), 12 * math.log(2), rtol=0, atol=1e-6)  # float32


@pytest.mark.parametrize("hidden", [(12,), (12, 9)])  # incremental hidden layer / recomputed hidden layers
@pytest.mark.parametrize("kind", KINDS)
def test_the_sampler_draws_from_the_conditionals_of_the_full_pass(kind, hidden):
    shape = (2, 2, 3)
    model = tiny(shape, kind, hidden=hidden, masks=3)
    x, params, member = model.sample_with_conditionals(30, generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.uint8 and x.shape == (30, *shape) and set(member.tolist()) == {0, 1, 2}
    stepwise = model.cond.log_prob(x.reshape(30, -1), params.flatten(2)).double().sum(1)
    for m in range(3):
        idx = member == m
        with torch.no_grad():
            full = model.conditionals(model.net_input(x[idx]), m)
            torch.testing.assert_close(params[idx], full, rtol=1e-5, atol=1e-5)
            # log p_m of the samples from the sampler's own conditionals, one sub-pixel at a time
            torch.testing.assert_close(stepwise[idx], model.member_log_prob(x[idx], m).double(), rtol=1e-5,
                                       atol=1e-4)
    if kind == "bernoulli":
        assert set(x.unique().tolist()) <= {0, 255}


def test_samples_are_a_function_of_the_generator():
    shape = (1, 3, 3)
    model = tiny(shape, "logistic-mixture", masks=3)
    a = model.sample(6, generator=torch.Generator().manual_seed(1))
    b = model.sample(6, generator=torch.Generator().manual_seed(1))
    c = model.sample(6, generator=torch.Generator().manual_seed(2))
    assert a.dtype == torch.uint8 and a.shape == (6, *shape)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_frequencies_match_the_ensemble_likelihood():
    shape, n = (1, 1, 2), 20_000
    model = tiny(shape, "bernoulli", hidden=(4,), masks=2, std=1.5, seed=1)
    assert not torch.equal(model.ordering(0), model.ordering(1))
    x = model.sample(n, generator=torch.Generator().manual_seed(0))
    images = checks.all_images(shape, (0, 255))
    p = model.log_likelihood(images).exp().numpy()
    counts = np.array([int((x == img).flatten(1).all(1).sum()) for img in images])
    se = np.sqrt(n * p * (1 - p))
    assert counts.sum() == n
    assert (np.abs(counts - n * p) < 4 * se).all(), (counts, n * p, se)


def test_each_step_trains_one_mask_set_drawn_from_the_global_rng():
    shape = (1, 3, 3)
    model = tiny(shape, "logistic-mixture", masks=4)
    x = checks.random_images(shape, n=8)
    frozen = model.configure_optimizers(Optimizer("sgd", lr=0.0))
    drawn = []
    for seed in range(6):
        torch.manual_seed(seed)
        out = model.train_step(x, frozen)
        torch.manual_seed(seed)
        m = int(torch.randint(4, (1,)))
        assert out["mask"] == m
        with torch.no_grad():
            assert out["loss"] == pytest.approx(float(-model.member_log_prob(x, m).mean()), rel=1e-6)
        drawn.append(m)
    assert len(set(drawn)) > 1


def test_training_lowers_the_loss_and_the_loss_is_the_negative_log_likelihood():
    shape = (1, 4, 4)
    torch.manual_seed(0)
    for kind in KINDS:
        model = made.Model(dataclasses.replace(made.PRESETS["smoke"], conditional=kind, num_masks=1), shape)
        x = checks.random_images(shape, n=16, seed=1, values=values_of(kind))
        frozen = model.configure_optimizers(Optimizer("sgd", lr=0.0))
        expected = float(-model.log_likelihood(x).mean())
        assert model.train_step(x, frozen)["loss"] == pytest.approx(expected, rel=1e-5)
        assert model.eval_loss(x)["loss"] == pytest.approx(expected, rel=1e-9)
        opt = model.configure_optimizers(Optimizer("adam", lr=3e-2))
        losses = [model.train_step(x, opt)["loss"] for _ in range(30)]
        assert losses[-1] < 0.9 * losses[0], (kind, losses[0], losses[-1])


@pytest.mark.parametrize("bad", [dict(hidden_sizes=()), dict(hidden_sizes=[16]), dict(hidden_sizes=(16, 0)),
                                 dict(conditional="gaussian"), dict(mixture_components=0), dict(num_masks=0),
                                 dict(eval_masks=3), dict(eval_masks=0), dict(mask_seed=-1)])
def test_invalid_configurations_are_refused(bad):
    with pytest.raises(GenbenchError, match="made: invalid config"):
        dataclasses.replace(made.PRESETS["smoke"], **bad)


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
    with pytest.raises(GenbenchError, match="uint8 images of shape"):
        model.log_likelihood(checks.random_images((1, 2, 3)))
    with pytest.raises(GenbenchError, match="mask sets"):
        model.conditionals(model.net_input(checks.random_images(shape)), member=3)


def test_the_model_describes_itself_and_the_presets_hold_their_recipes():
    model = tiny((1, 2, 2), "logistic-mixture", masks=2)
    assert model.family == "autoregressive" and model.likelihood == "exact"
    assert "logistic mixture" in model.likelihood_details["conditional"]
    assert "\n" not in made.DESCRIPTION
    published = made.PRESETS["standard-binarized"]
    assert (published.hidden_sizes, published.conditional, published.num_masks) == ((8000, 8000), "bernoulli", 32)
    assert made.PRESETS["standard"].conditional == made.PRESETS["small"].conditional == "logistic-mixture"
    quick = made.Model(made.PRESETS["small"], (1, 28, 28))
    assert quick.members == 8
    assert quick.conditionals(quick.net_input(checks.random_images((1, 28, 28), n=2)), 7).shape == (2, 15, 1, 28, 28)
