"""PixelCNN, Gated PixelCNN and PixelRNN (Row LSTM), the models of baselines/autoregressive.CategoricalModel:
exactness (no gradient from the future, colour included; probabilities of every 8-bit image of tiny shapes sum
to 1; uniform conditionals give 8 bits/dim), the blind spot that only the gated stacks remove, cached generation
against the full pass and naive generation, and the sampler's draws against the model's own probabilities."""

import dataclasses

import numpy as np
import pytest
import torch

import autoregressive_checks as checks
from genbench import GenbenchError
from genbench.baselines import autoregressive as ar
from genbench.baselines import pixelcnn, pixelrnn
from genbench.optim import Optimizer

pytestmark = pytest.mark.usefixtures("one_thread")
VARIANTS = ("pixelcnn", "gated-pixelcnn", "pixelrnn")


def build(variant: str, preset: str, shape, **kw):
    if variant == "pixelrnn":
        return pixelrnn.Model(dataclasses.replace(pixelrnn.PRESETS[preset], **kw), shape)
    return pixelcnn.Model(dataclasses.replace(pixelcnn.VARIANTS[variant][preset], **kw), shape)


def tiny(variant: str, shape, seed: int = 0, **kw):
    return checks.randomize(build(variant, "smoke", shape, **kw), seed=seed)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", [(1, 1, 2), (1, 2, 1), (3, 1, 1), (1, 3, 3), (3, 2, 3)])
def test_no_conditional_depends_on_its_own_or_a_later_sub_pixel(variant, shape):
    assert checks.leaks(tiny(variant, shape), shape) == []


def test_leaks_are_found_where_a_mask_is_wrong():
    """The check itself: mask B in place of mask A on the first layer lets every pixel see its own value."""
    model = tiny("pixelcnn", (1, 2, 2))
    first = model.net.first
    one_group = torch.zeros(first.out_channels, dtype=torch.long)
    first.mask.copy_(ar.pixelcnn_mask(one_group, torch.zeros(1, dtype=torch.long), first.kernel_size,
                                      (first.kernel_size[0] - 1, first.kernel_size[1] // 2), "B"))
    assert ((0, 0, 0), (0, 0, 0)) in checks.leaks(model, (1, 2, 2))


def test_only_the_gated_stacks_see_every_earlier_pixel():
    """PixelCNN's stacked masked convolutions leave a blind spot to the upper right (van den Oord et al. 2016b,
    Figure 1); the vertical and horizontal stacks of Gated PixelCNN do not. The Row LSTM's context above a pixel
    is a triangle (van den Oord et al. 2016a, Figure 4): the 7x7 input layer's 3 columns to either side, one more
    per row further up, so in a 2 x 9 image the first pixel of row 1 sees row 0 up to column 3 and no further."""
    shape = (1, 5, 5)
    assert checks.depends_on_every_earlier_position(tiny("gated-pixelcnn", shape), shape)
    assert not checks.depends_on_every_earlier_position(tiny("pixelcnn", shape, layers=2), shape)
    assert checks.depends_on_every_earlier_position(tiny("pixelrnn", (1, 2, 4)), (1, 2, 4))
    assert not checks.depends_on_every_earlier_position(tiny("pixelrnn", (1, 2, 5)), (1, 2, 5))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", [(1, 1, 2), (1, 2, 1)])
def test_the_probabilities_of_every_image_sum_to_one(variant, shape):
    assert checks.total_probability(tiny(variant, shape), shape) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_probabilities_of_every_rgb_pixel_sum_to_one(variant, request):
    if "slow" not in request.config.getoption("markexpr"):
        pytest.skip("256^3 images: run with -m slow")
    assert checks.total_probability(tiny(variant, (3, 1, 1)), (3, 1, 1), chunk=65536) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_uniform_conditionals_give_exactly_eight_bits_per_dim(variant):
    model = tiny(variant, (3, 4, 4))
    with torch.no_grad():
        model.net.out2.weight.zero_()
        model.net.out2.bias.zero_()
    assert checks.bits_per_dim(model, checks.random_images((3, 4, 4))) == pytest.approx(8.0, abs=1e-6)  # float32


def test_the_colour_masks_follow_the_channel_groups():
    """At the kernel's own pixel, mask A lets group g read groups < g and mask B groups <= g; rows below and
    columns to the right are masked, the rows above are open."""
    out_g, in_g = ar.channel_groups(6, 3), torch.arange(3)
    assert out_g.tolist() == [0, 0, 1, 1, 2, 2]
    a = ar.pixelcnn_mask(out_g, in_g, (2, 3), (1, 1), "A")
    b = ar.pixelcnn_mask(out_g, in_g, (2, 3), (1, 1), "B")
    assert a[:, :, 1, 1].tolist() == [[0, 0, 0]] * 2 + [[1, 0, 0]] * 2 + [[1, 1, 0]] * 2
    assert b[:, :, 1, 1].tolist() == [[1, 0, 0]] * 2 + [[1, 1, 0]] * 2 + [[1, 1, 1]] * 2
    assert (a[:, :, 1, 2] == 0).all() and (a[:, :, 0] == 1).all() and (a[:, :, 1, 0] == 1).all()


def _recorded_sample(model, n, seed):
    """Cached generation, keeping the parameters each draw was made from (in raster order, channels innermost)."""
    record, g = [], torch.Generator().manual_seed(seed)

    def draw(params):
        record.append(params.clone())
        return ar.sample_categorical(params, g).to(torch.uint8)

    x = torch.zeros((n, *model.image_shape), dtype=torch.uint8)
    with torch.no_grad():
        ar.sample_by_regions(model._region_logits(None), draw, x, model.net, whole_rows=model.whole_rows)
    return x, record


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", [(1, 5, 4), (3, 3, 4)])
def test_cached_generation_draws_from_the_full_pass_conditionals(variant, shape):
    """A full pass over the finished images gives every conditional at once; each draw of cached generation
    was made from exactly those (float tolerance), and naive generation draws the same images."""
    model = tiny(variant, shape, layers=2)
    x, record = _recorded_sample(model, 3, seed=1)
    with torch.no_grad():
        full = model.conditionals(model.net_input(x))
    c, h, w = shape
    used = torch.stack(record)  # (H W C, B, 256)
    want = full.permute(3, 4, 2, 0, 1).reshape(h * w * c, *used.shape[1:])
    torch.testing.assert_close(used, want, rtol=1e-5, atol=1e-5)
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    assert torch.equal(model.sample(4, generator=g()), model.sample_naive(4, generator=g()))


def test_samples_follow_the_model_probabilities():
    """One 8-bit pixel: 40,000 draws land on each value as often as exp(log_likelihood) says (4 standard errors)."""
    model = tiny("gated-pixelcnn", (1, 1, 1))
    n = 40_000
    x = model.sample(n, generator=torch.Generator().manual_seed(0)).flatten().long()
    freq = torch.bincount(x, minlength=256).double() / n
    with torch.no_grad():
        p = model.log_likelihood(torch.arange(256, dtype=torch.uint8).reshape(256, 1, 1, 1)).exp()
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-6)
    assert ((freq - p).abs() <= 4 * (p * (1 - p) / n).sqrt() + 1e-4).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_samples_are_uint8_and_a_function_of_the_generator(variant):
    model = tiny(variant, (1, 4, 4))
    a = model.sample(3, generator=torch.Generator().manual_seed(0))
    b = model.sample(3, generator=torch.Generator().manual_seed(0))
    c = model.sample(3, generator=torch.Generator().manual_seed(1))
    assert a.dtype == torch.uint8 and a.shape == (3, 1, 4, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_lowers_the_exact_negative_log_likelihood(variant):
    torch.manual_seed(0)
    model = build(variant, "smoke", (1, 4, 4))
    x = checks.random_images((1, 4, 4), n=8, values=(0, 64, 255))
    opts = model.configure_optimizers(Optimizer("adam", lr=1e-2))
    before = float(-model.log_likelihood(x).mean())
    first = model.train_step(x, opts)
    assert first["loss"] == pytest.approx(before, rel=1e-6)
    for _ in range(30):
        last = model.train_step(x, opts)
    assert last["loss"] < 0.5 * first["loss"]
    assert last["bpd"] == pytest.approx(last["loss"] / (16 * np.log(2)))


def test_bad_input_and_configs_are_refused():
    model = tiny("pixelcnn", (1, 4, 4))
    with pytest.raises(GenbenchError, match="uint8"):
        model.log_likelihood(torch.zeros(2, 1, 4, 4))
    with pytest.raises(GenbenchError, match="shape"):
        model.log_likelihood(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(GenbenchError, match="importance"):
        model.log_likelihood(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), k=5)
    for bad in (dict(arch="lstm"), dict(kernel=4), dict(hidden=0)):
        with pytest.raises(GenbenchError):
            pixelcnn.Config(**bad)
    for bad in (dict(kernel=2), dict(layers=0)):
        with pytest.raises(GenbenchError):
            pixelrnn.Config(**bad)
