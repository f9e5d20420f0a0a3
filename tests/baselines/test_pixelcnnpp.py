"""PixelCNN++: exactness (no gradient from the current or a later sub-pixel, for one resolution and across
strided layers; the probabilities of every 8-bit image of tiny shapes sum to 1; with the output layer zeroed the
bits/dim are those of one logistic(0, 1), computed here by hand), the per-channel conditionals against the
likelihood, cached generation against the full pass and naive generation, the sampler's draws against the
model's probabilities (one channel, and an RGB pixel whose component is shared by its channels), training, and
the published model's size."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import autoregressive_checks as checks
from genbench import GenbenchError
from genbench.baselines import autoregressive as ar
from genbench.baselines import pixelcnnpp as pp
from genbench.metrics.likelihood import discretized_logistic_log_prob
from genbench.optim import Optimizer

pytestmark = pytest.mark.usefixtures("one_thread")
RESOLUTIONS = (1, 2)  # one resolution (cached generation) and a strided configuration (down- and up-sampling)
SHAPES = [(1, 1, 2), (1, 2, 1), (3, 1, 1), (1, 3, 3), (3, 2, 3)]


def tiny(shape, resolutions: int = 1, seed: int = 0, **kw) -> pp.Model:
    config = dataclasses.replace(pp.PRESETS["smoke"], resolutions=resolutions, **kw)
    return checks.randomize(pp.Model(config, shape), seed=seed)


@pytest.mark.parametrize("resolutions", RESOLUTIONS)
@pytest.mark.parametrize("shape", SHAPES + [(1, 4, 4), (3, 4, 4)])
def test_no_conditional_depends_on_its_own_or_a_later_sub_pixel(shape, resolutions):
    assert checks.leaks(tiny(shape, resolutions), shape) == []


@pytest.mark.parametrize("resolutions", RESOLUTIONS)
@pytest.mark.parametrize("shape", [(1, 5, 5), (3, 4, 4)])
def test_every_earlier_sub_pixel_is_seen(shape, resolutions):
    """The two streams leave no blind spot (Sec. 2.4 of the paper), and the coupling reads the earlier channels."""
    assert checks.depends_on_every_earlier_position(tiny(shape, resolutions, nr_resnet=2), shape)


@pytest.mark.parametrize("resolutions", RESOLUTIONS)
@pytest.mark.parametrize("shape", [(1, 1, 2), (1, 2, 1)])
def test_the_probabilities_of_every_image_sum_to_one(shape, resolutions):
    assert checks.total_probability(tiny(shape, resolutions), shape) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("resolutions", RESOLUTIONS)
def test_the_probabilities_of_every_rgb_pixel_sum_to_one(resolutions, request):
    if "slow" not in request.config.getoption("markexpr"):
        pytest.skip("256^3 images: run with -m slow")
    model = tiny((3, 1, 1), resolutions)
    assert checks.total_probability(model, (3, 1, 1), chunk=65536) == pytest.approx(1.0, abs=1e-4)


def _zero_output(model: pp.Model) -> None:
    out = model.net.out
    with torch.no_grad():
        if hasattr(out, "parametrizations"):  # weight norm: w = g v / |v|, zero through g
            out.parametrizations.weight.original0.zero_()
        else:
            out.weight.zero_()
        out.bias.zero_()


def _logistic_pmf(mean: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """The 256 bin probabilities (float64) of a logistic on the [-1, 1] scale: bin v holds
    [(2v - 1)/255 - 1, (2v + 1)/255 - 1), the end bins take the tails."""
    upper = (2 * torch.arange(255, dtype=torch.float64) + 1) / 255 - 1
    cdf = torch.sigmoid((upper - mean) / scale)
    return torch.diff(torch.cat([cdf.new_zeros(1), cdf, cdf.new_ones(1)]))


@pytest.mark.parametrize("resolutions", RESOLUTIONS)
def test_a_zeroed_output_layer_gives_one_logistic_per_sub_pixel(resolutions):
    """A logistic mixture cannot be exactly uniform over the 256 values (the end bins take the tails, and an
    inner bin's mass depends on where it lies), so the '8 bits/dim' check of the softmax models does not apply.
    What can be checked exactly: with the output layer zeroed, every sub-pixel's conditional is one logistic of
    mean 0 and scale 1 on [-1, 1] (all K components equal, log-scale 0, coupling tanh(0) = 0), whose pmf is
    computed here from the logistic CDF in float64; the likelihood and the bits/dim are then that closed form."""
    pmf = _logistic_pmf()
    assert float(pmf.sum()) == pytest.approx(1.0, abs=1e-12)
    one = tiny((1, 1, 1), resolutions)
    _zero_output(one)
    values = torch.arange(256, dtype=torch.uint8).reshape(256, 1, 1, 1)
    torch.testing.assert_close(one.log_likelihood(values), pmf.log(), rtol=0, atol=2e-5)
    model = tiny((3, 4, 4), resolutions)
    _zero_output(model)
    x = checks.random_images((3, 4, 4))
    want = float((-pmf.log()[x.long()].flatten(1).sum(1) / (48 * np.log(2))).mean())
    assert checks.bits_per_dim(model, x) == pytest.approx(want, abs=1e-5)  # float32 parameters


def test_log_scales_are_floored_at_minus_seven():
    """The reference code's floor: a network asking for log-scale -20 gets -7, and the likelihood is that
    logistic's (here mean 0, so the pixel value 127 holds 1 - 2 sigmoid(-(1/255) e^7) of the mass)."""
    model = tiny((1, 1, 1))
    _zero_output(model)
    k = model.config.nr_logistic_mix
    with torch.no_grad():
        model.net.out.bias[2 * k:3 * k] = -20.0  # logits | means | log-scales (C = 1)
        params = model.conditionals(model.net_input(torch.zeros(1, 1, 1, 1)))
    assert (params[:, 2 * k:] == -7.0).all()
    x = torch.tensor([127, 128], dtype=torch.uint8).reshape(2, 1, 1, 1)
    want = _logistic_pmf(scale=float(np.exp(-7.0)))[[127, 128]].log()
    torch.testing.assert_close(model.log_likelihood(x), want, rtol=1e-4, atol=1e-5)


def _channel_log_probs(params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log P(x_c | x_<c) of every sub-pixel from the conditionals (B, 3K, C, H, W), (B, C, H, W)."""
    k = params.shape[1] // 3
    logits, means, log_scales = params[:, :k], params[:, k:2 * k], params[:, 2 * k:]
    per = discretized_logistic_log_prob(x.unsqueeze(1).expand_as(means).contiguous(), means, log_scales)
    return torch.logsumexp(F.log_softmax(logits, dim=1) + per, dim=1)


@pytest.mark.parametrize("resolutions", RESOLUTIONS)
def test_the_channel_conditionals_multiply_to_the_likelihood(resolutions):
    """conditionals() gives each channel its own conditional (the component weights given the channels drawn
    before it in the pixel): the product over the sub-pixels is the pixel mixture's likelihood."""
    shape = (3, 2, 3)
    model = tiny(shape, resolutions, nr_logistic_mix=3)
    x = checks.random_images(shape, n=6)
    with torch.no_grad():
        params = model.conditionals(model.net_input(x))
    assert params.shape == (6, 9, 3, 2, 3)
    got = _channel_log_probs(params, x).double().flatten(1).sum(1)
    torch.testing.assert_close(got, model.log_likelihood(x), rtol=1e-5, atol=1e-3)
    # channel 0 carries the pixel's own weights
    with torch.no_grad():
        logit_probs = model.mixture(model.net_input(x))[0]
    torch.testing.assert_close(params[:, :3, 0], logit_probs)


def _recorded_sample(model, n, seed):
    """Cached generation, keeping the parameters each draw was made from (raster order, channels innermost)."""
    record, g = [], torch.Generator().manual_seed(seed)

    def draw(params):
        record.append(params.clone())
        return model.draw(params, g)

    x = torch.zeros((n, *model.image_shape), dtype=torch.uint8)
    with torch.no_grad():
        ar.sample_by_regions(model._region_params, draw, x, model.net, whole_rows=True)
    return x, record


@pytest.mark.parametrize("shape, resolutions", [((1, 5, 4), 1), ((3, 3, 4), 1), ((1, 6, 5), 2), ((3, 5, 7), 2),
                                               ((1, 9, 8), 3), ((3, 4, 4), 3)])
def test_cached_generation_draws_from_the_full_pass_conditionals(shape, resolutions):
    """A full pass over the finished images gives every conditional at once; each draw of cached generation
    was made from exactly those (float tolerance), and naive generation draws the same images: with one
    resolution and across the strided and transposed layers of two and three (odd sizes included)."""
    model = tiny(shape, resolutions, nr_resnet=2)
    x, record = _recorded_sample(model, 3, seed=1)
    with torch.no_grad():
        full = model.conditionals(model.net_input(x))
    c, h, w = shape
    used = torch.stack(record)  # (H W C, B, 3K)
    want = full.permute(3, 4, 2, 0, 1).reshape(h * w * c, *used.shape[1:])
    torch.testing.assert_close(used, want, rtol=1e-5, atol=1e-5)
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    assert torch.equal(model.sample(4, generator=g()), model.sample_naive(4, generator=g()))
    assert "cached" in model.sampler_description["sampler"]


def test_samples_follow_the_model_probabilities():
    """One 8-bit pixel: 40,000 draws land on each value as often as exp(log_likelihood) says (4 standard errors)."""
    model = tiny((1, 1, 1))
    n = 40_000
    x = model.sample(n, generator=torch.Generator().manual_seed(0)).flatten().long()
    freq = torch.bincount(x, minlength=256).double() / n
    p = model.log_likelihood(torch.arange(256, dtype=torch.uint8).reshape(256, 1, 1, 1)).exp()
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-6)
    assert ((freq - p).abs() <= 4 * (p * (1 - p) / n).sqrt() + 1e-4).all()


def test_rgb_samples_share_the_component_of_their_pixel():
    """An RGB pixel of two well-separated components (means -0.5 and +0.5 in every channel): the draws of
    (R, G, B), binned to 4 x 4 x 4 cells, follow the pixel mixture of the paper, sum_k pi_k P_k(R) P_k(G | R)
    P_k(B | R, G) with one component for all three channels, computed here in float64 from the logistic CDF
    (4 standard errors). Drawing the component anew for each channel would decorrelate the channels."""
    model = tiny((3, 1, 1), nr_logistic_mix=2)
    k, c = 2, 3
    with torch.no_grad():  # the output layer's bias: logits | means (k, c) | log-scales (k, c) | coeffs
        bias = model.net.out.bias
        bias[k:k + k * c] += torch.tensor([-0.5] * c + [0.5] * c)
        bias[k + k * c:k + 2 * k * c] += -1.5
        logit_probs, means, log_scales, coeffs = (t.double()[0, ..., 0, 0] if t is not None else None for t in
                                                  model.mixture(model.net_input(torch.zeros(1, 3, 1, 1))))
    pi, s = torch.softmax(logit_probs, 0), log_scales.exp()  # (K,), (K, C)
    v = torch.arange(256, dtype=torch.float64)
    xv = 2 * v / 255 - 1
    edges = torch.tensor([-np.inf, (2 * 63 + 1) / 255 - 1, (2 * 127 + 1) / 255 - 1, (2 * 191 + 1) / 255 - 1, np.inf],
                         dtype=torch.float64)

    def pmf(mean, scale):  # (..., 256) bin probabilities of logistics with means (...)
        upper = (2 * v[:255] + 1) / 255 - 1
        cdf = torch.sigmoid((upper - mean[..., None]) / scale)
        return torch.diff(F.pad(cdf, (1, 0)), dim=-1, append=torch.ones_like(cdf[..., :1]))

    def cells(mean, scale):  # (..., 4) probabilities of the four cells of 64 values
        return torch.diff(torch.sigmoid((edges - mean[..., None]) / scale), dim=-1)

    want = torch.zeros(4, 4, 4, dtype=torch.float64)
    for j in range(k):
        p_r = pmf(means[j, 0].reshape(1), s[j, 0])[0]                                  # (256,)
        p_g = pmf(means[j, 1] + coeffs[j, 0] * xv, s[j, 1])                           # (r, g)
        p_b = cells(means[j, 2] + coeffs[j, 1] * xv[:, None] + coeffs[j, 2] * xv[None, :], s[j, 2])  # (r, g, q)
        joint = p_r[:, None, None] * p_g[:, :, None] * p_b                            # (r, g, q)
        want += pi[j] * joint.reshape(4, 64, 4, 64, 4).sum((1, 3))
    assert float(want.sum()) == pytest.approx(1.0, abs=1e-9)
    n = 40_000
    x = model.sample(n, generator=torch.Generator().manual_seed(0)).reshape(n, 3).long() // 64
    freq = torch.bincount(x[:, 0] * 16 + x[:, 1] * 4 + x[:, 2], minlength=64).double().reshape(4, 4, 4) / n
    assert ((freq - want).abs() <= 4 * (want * (1 - want) / n).sqrt() + 1e-4).all()


@pytest.mark.parametrize("resolutions", RESOLUTIONS)
def test_samples_are_uint8_and_a_function_of_the_generator(resolutions):
    model = tiny((1, 4, 4), resolutions)
    a = model.sample(3, generator=torch.Generator().manual_seed(0))
    b = model.sample(3, generator=torch.Generator().manual_seed(0))
    c = model.sample(3, generator=torch.Generator().manual_seed(1))
    assert a.dtype == torch.uint8 and a.shape == (3, 1, 4, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("resolutions", RESOLUTIONS)
def test_training_lowers_the_exact_negative_log_likelihood(resolutions):
    torch.manual_seed(0)
    config = dataclasses.replace(pp.PRESETS["smoke"], resolutions=resolutions)
    model = pp.Model(config, (1, 4, 4)).eval()
    x = checks.random_images((1, 4, 4), n=8, values=(0, 64, 255))
    opts = model.configure_optimizers(Optimizer("adam", lr=3e-2))
    before = float(-model.log_likelihood(x).mean())
    first = model.train_step(x, opts)
    assert first["loss"] == pytest.approx(before, rel=1e-6)
    for _ in range(30):
        last = model.train_step(x, opts)
    assert last["loss"] < 0.85 * first["loss"]  # a mixture of 2 logistics learning 3 values
    assert last["bpd"] == pytest.approx(last["loss"] / (16 * np.log(2)))
    assert model.eval_loss(x)["loss"] == pytest.approx(float(-model.log_likelihood(x).mean()))


def test_dropout_acts_in_training_only_and_draws_from_the_global_rng():
    model = tiny((1, 4, 4), dropout=0.5)
    x = checks.random_images((1, 4, 4), n=4)
    opts = model.configure_optimizers(Optimizer("sgd", lr=0.0, betas=(0.0, 0.0)))
    exact = float(-model.log_likelihood(x).mean())
    assert model.train_step(x, opts)["loss"] == pytest.approx(exact, rel=1e-6)  # eval mode: no dropout
    model.train()
    torch.manual_seed(5)
    a = model.train_step(x, opts)["loss"]
    torch.manual_seed(5)
    assert model.train_step(x, opts)["loss"] == a
    assert a != pytest.approx(exact, rel=1e-5)


def test_bad_input_and_configs_are_refused():
    model = tiny((1, 4, 4))
    with pytest.raises(GenbenchError, match="uint8"):
        model.log_likelihood(torch.zeros(2, 1, 4, 4))
    with pytest.raises(GenbenchError, match="shape"):
        model.log_likelihood(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
    with pytest.raises(GenbenchError, match="importance"):
        model.log_likelihood(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), k=5)
    for bad in (dict(nr_resnet=0), dict(nr_filters=-1), dict(nr_logistic_mix=0), dict(resolutions=0),
                dict(dropout=1.0), dict(dropout=-0.1), dict(nr_filters=2.5), dict(weight_norm="yes")):
        with pytest.raises(GenbenchError):
            pp.Config(**bad)
    with pytest.raises(GenbenchError):
        pp.Model(pp.PRESETS["smoke"], (1, 4))


def test_the_standard_preset_is_the_published_model():
    """The reference code's CIFAR-10 model (nr_resnet 5, nr_filters 160, 10 logistics, dropout 0.5, three
    resolutions), counted layer by layer as in pixel_cnn_pp/model.py with weight norm's V, g and b per layer:
    53,659,080 parameters (the 'about 53M' usually quoted). The input has a fourth channel of ones."""
    cfg = pp.PRESETS["standard"]
    assert (cfg.nr_resnet, cfg.nr_filters, cfg.nr_logistic_mix, cfg.dropout, cfg.resolutions, cfg.weight_norm) == \
        (5, 160, 10, 0.5, 3, True)
    nf, n, r, k, cin = 160, 5, 3, 10, 4
    conv = lambda taps, i, o: taps * i * o + 2 * o  # noqa: E731  (V, g, b)
    block = lambda taps, aux: conv(taps, 2 * nf, nf) + (conv(1, 2 * aux, nf) if aux else 0) + conv(taps, 2 * nf, 2 * nf)  # noqa: E731,E501
    count = conv(6, cin, nf) + conv(3, cin, nf) + conv(2, cin, nf)      # first layer: 2x3 | 1x3 + 2x1
    count += r * n * (block(6, 0) + block(4, nf))                        # up pass: u, ul (+ nin of u)
    count += (n + (r - 1) * (n + 1)) * (block(6, nf) + block(4, 2 * nf))  # down pass with short-cuts
    count += (r - 1) * 2 * (conv(6, nf, nf) + conv(4, nf, nf))          # strided and transposed
    count += conv(1, nf, 10 * k)                                         # nin to the 100 mixture parameters
    model = pp.Model(cfg, (3, 32, 32))
    assert sum(p.numel() for p in model.parameters()) == count == 53_659_080
    assert "cached generation (Ramachandran et al. 2017) over 3 resolutions" in model.sampler_description["sampler"]
    small = pp.Model(pp.PRESETS["small"], (1, 28, 28))
    assert isinstance(small.likelihood_details, dict) and "cached" in small.sampler_description["sampler"]
