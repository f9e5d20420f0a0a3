import dataclasses
import gzip
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from genbench import GenbenchError
from genbench.baselines import vae
from genbench.baselines.vae import PRESETS, Config, Model
from genbench.metrics.likelihood import bits_per_dim, independent_pixel_bpd
from genbench.optim import Optimizer

SHAPES = [(1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 8, 8)]


def _digits() -> torch.Tensor:
    """sklearn's 8x8 digits as uint8 (1797, 1, 8, 8): 0..16 -> round(v * 255 / 16)."""
    images = load_digits().images
    return torch.from_numpy(np.round(images * 255 / 16).astype(np.uint8)).unsqueeze(1)


def _train(model, data, steps, batch, lr, seed=0):
    torch.manual_seed(seed)
    opts = model.configure_optimizers(Optimizer(lr=lr, grad_clip=100.0))
    for _ in range(steps):
        idx = torch.randint(0, len(data), (batch,))
        out = model.train_step(data[idx], opts)
    return out


@pytest.fixture(scope="module")
def digits():
    return _digits()


@pytest.fixture(scope="module")
def toy(digits):
    """A trained 1-D-latent model on 8x8 digits: log p(x) is then a 1-D integral we can do on a grid."""
    torch.manual_seed(0)
    model = Model(Config(latent_dim=1, channels=(8,), hidden=None), (1, 8, 8))
    _train(model, digits[:1500], steps=300, batch=64, lr=3e-3)
    return model


@pytest.mark.parametrize("shape", SHAPES)
def test_smoke_every_image_size(shape):
    torch.manual_seed(0)
    model = Model(PRESETS["smoke"], shape)
    x = torch.randint(0, 256, (3, *shape), dtype=torch.uint8)
    out = model.train_step(x, model.configure_optimizers(Optimizer(lr=1e-3, grad_clip=1.0)))
    assert set(out) == {"loss", "bpd", "recon", "kl"} and all(math.isfinite(v) for v in out.values())
    for name, p in model.named_parameters():  # zero_grad happens before backward: grads are still there
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    s = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, *shape) and s.dtype == torch.uint8 and s.device == x.device
    assert model.encode(x).shape == (3, PRESETS["smoke"].latent_dim)
    r = model.reconstruct(x)
    assert r.shape == x.shape and r.dtype == torch.uint8
    ll = model.log_likelihood(x, k=3)
    assert ll.shape == (3,) and ll.dtype == torch.float64 and torch.isfinite(ll).all()
    assert set(model.eval_loss(x)) == set(out)


def test_presets_and_unsupported_sizes():
    assert {"smoke", "small", "standard"} <= set(PRESETS)
    assert Model.family == "vae" and Model.likelihood == "bound" and Model.importance_sampling
    for bad in [(1, 16, 16), (3, 32, 28)]:
        with pytest.raises(GenbenchError, match="unsupported image size"):
            Model(PRESETS["smoke"], bad)
    model = Model(PRESETS["smoke"], (1, 8, 8))
    with pytest.raises(GenbenchError, match="uint8"):
        model.log_likelihood(torch.zeros(2, 1, 8, 8))
    with pytest.raises(GenbenchError, match="k >= 1"):
        model.log_likelihood(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), k=0)


def test_beta_changes_training_loss_not_likelihood(digits):
    x = digits[:32]
    torch.manual_seed(0)
    base = Model(PRESETS["smoke"], (1, 8, 8))
    _train(base, digits, steps=20, batch=32, lr=1e-3)
    beta4 = Model(dataclasses.replace(PRESETS["smoke"], beta=4.0), (1, 8, 8))
    beta4.load_state_dict(base.state_dict())
    a, b = base.eval_loss(x), beta4.eval_loss(x)
    assert b["loss"] - a["loss"] == pytest.approx(3.0 * a["kl"], abs=1e-3) and a["kl"] > 0.01
    assert a["bpd"] == b["bpd"]
    ll_a = base.log_likelihood(x, generator=torch.Generator().manual_seed(3))
    ll_b = beta4.log_likelihood(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(ll_a, ll_b, rtol=0, atol=0)


def test_bounds_against_numerical_integration(toy, digits):
    """log p(x) = log int p(x|z) N(z; 0, 1) dz on a grid over [-10, 10] (dz = 2e-3; the prior mass outside is
    < 1e-22 and the posterior is smooth on this scale). Checks, per image, with R = 100 repeated estimates:
    E[ELBO] by Monte Carlo matches the ELBO by quadrature (within 4 standard errors + 1e-3 nats); every bound
    is <= log p(x) (+ 4 s.e.); ELBO -> IWAE_10 -> IWAE_100 -> IWAE_1000 rises per image (up to 3 s.e. of the
    difference) and strictly in the mean gap over the images; |log p(x) - IWAE_1000| < 0.05 nats.
    Seeded, so deterministic on one platform; the tolerances cover the Monte Carlo error, not luck."""
    x = digits[1500:1504]                                         # (4, 1, 8, 8)
    z = torch.linspace(-10, 10, 10001, dtype=torch.float64)        # (G,)
    dz = 20 / 10000
    with torch.no_grad():
        log_px_z = torch.stack([toy.log_px_z(xi.expand(len(z), 1, 8, 8), z[:, None].float())
                                for xi in x]).double()              # (4, G)
        log_px = torch.logsumexp(log_px_z - 0.5 * (z ** 2 + math.log(2 * math.pi)), 1) + math.log(dz)  # (4,)
        mu, logvar = (t.double() for t in toy.posterior(x))          # (4, 1) each
        q = torch.exp(-0.5 * ((z - mu) ** 2 / logvar.exp() + math.log(2 * math.pi) + logvar))  # (4, G)
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).squeeze(1)
        elbo_quad = (q * log_px_z).sum(1) * dz - kl
    assert ((q.sum(1) * dz - 1).abs() < 1e-6).all()                   # the grid covers q(z|x)

    R = 100
    xr = x.repeat_interleave(R, 0)                                   # (4R, 1, 8, 8)
    gen = torch.Generator().manual_seed(0)
    est = {k: toy.log_likelihood(xr, k=k, generator=gen).view(4, R) for k in (1, 10, 100, 1000)}
    mean = {k: v.mean(1) for k, v in est.items()}
    se = {k: v.std(1) / math.sqrt(R) for k, v in est.items()}
    assert ((mean[1] - elbo_quad).abs() < 4 * se[1] + 1e-3).all()    # log_likelihood(k=1) is the ELBO
    assert (log_px - elbo_quad).mean() > 0.2                          # a real gap for IWAE to close
    ks = sorted(est)
    for k in ks:                                                       # every estimate is a lower bound
        assert (mean[k] <= log_px + 4 * se[k]).all(), k
    gap = {k: (log_px - mean[k]).mean().item() for k in ks}            # mean gap over the 4 images
    for k1, k2 in zip(ks, ks[1:]):                                     # IWAE_k tightens with k
        assert (mean[k1] < mean[k2] + 3 * (se[k1] ** 2 + se[k2] ** 2).sqrt()).all(), (k1, k2)
        assert gap[k2] < gap[k1], gap
    assert ((log_px - mean[1000]).abs() < 0.05).all()                  # IWAE_1000 reaches log p(x)


def test_iwae_bpd_below_elbo_bpd(toy, digits):
    x = digits[1500:1628]
    gen = torch.Generator().manual_seed(0)
    elbo = bits_per_dim(-toy.log_likelihood(x, k=1, generator=gen).mean(), 64)
    iwae = bits_per_dim(-toy.log_likelihood(x, k=50, generator=gen).mean(), 64)
    assert iwae < elbo


def test_determinism_and_chunking(toy, digits, monkeypatch):
    x = digits[:20]
    run = lambda **kw: (toy.sample(7, generator=torch.Generator().manual_seed(5)),  # noqa: E731
                        toy.log_likelihood(x, generator=torch.Generator().manual_seed(5)),
                        toy.log_likelihood(x, k=30, generator=torch.Generator().manual_seed(5)))
    s1, l1, i1 = run()
    s2, l2, i2 = run()
    assert torch.equal(s1, s2) and torch.equal(l1, l2) and torch.equal(i1, i2)
    assert not torch.equal(i1, toy.log_likelihood(x, k=30, generator=torch.Generator().manual_seed(6)))
    monkeypatch.setattr(vae, "DECODE_CHUNK", 40)  # 2 samples per decoder pass instead of all 30
    torch.testing.assert_close(run()[2], i1, rtol=0, atol=1e-9)
    # eval_loss is deterministic and leaves the global RNG alone
    state = torch.get_rng_state()
    assert toy.eval_loss(x) == toy.eval_loss(x)
    assert torch.equal(state, torch.get_rng_state())


@pytest.fixture
def two_threads():
    """Pinned numbers were measured with 2 intra-op threads (the project's 2-core CPU); other thread counts
    reorder float reductions in the convolutions and move the last digits only."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_smoke_preset_on_digits_pinned(digits, two_threads):
    """100 steps of the smoke preset (batch 64, Adam lr 3e-3, seed 0) on the first 1500 digits; test ELBO
    bits/dim on the other 297, pinned (3.893 +- 0.03).

    It does NOT beat the independent-pixel model here (2.577 bits/dim), and cannot be expected to: the digits
    take only 17 of the 256 values (multiples of ~16), which a per-pixel categorical exploits, while a unimodal
    discretized logistic must spread any uncertainty over the ~15 unused values between two levels (training
    for 3000 steps plateaus near 3.6). The beat-the-baseline check runs on Fashion-MNIST, which has all 256
    levels (next test)."""
    train, test = digits[:1500], digits[1500:]
    assert independent_pixel_bpd(train=train, test=test) == pytest.approx(2.577298, abs=1e-6)
    torch.manual_seed(0)
    model = Model(PRESETS["smoke"], (1, 8, 8))
    _train(model, train, steps=100, batch=64, lr=3e-3)
    ll = model.log_likelihood(test, generator=torch.Generator().manual_seed(0))
    bpd = bits_per_dim(-ll.mean().item(), 64)
    assert bpd < 8.0
    assert bpd == pytest.approx(3.893, abs=0.03)


FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def _idx_images(path: Path, n: int) -> torch.Tensor:
    """First n images of an idx3 .gz file (16-byte header, then uint8 pixels) as (n, 1, 28, 28)."""
    with gzip.open(path) as f:
        data = f.read(16 + n * 784)
    return torch.from_numpy(np.frombuffer(data, np.uint8, offset=16).reshape(n, 1, 28, 28).copy())


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Fashion-MNIST idx files not installed")
def test_smoke_preset_beats_independent_pixels_on_fashion_mnist(two_threads):
    """100 steps of the smoke preset (batch 64, Adam lr 3e-3, seed 0) on 10000 Fashion-MNIST training images:
    the test ELBO bits/dim on 1000 test images beats the independent-pixel model fitted on the same 10000
    images (4.6035 bits/dim), and is pinned: 4.179 on the Intel machine of earlier sessions, 4.136 on an AMD EPYC
    (the same code; the CPU's floating-point paths move the trained weights), so 4.16 +- 0.05."""
    train = _idx_images(FASHION_MNIST / "train-images-idx3-ubyte.gz", 10000)
    test = _idx_images(FASHION_MNIST / "t10k-images-idx3-ubyte.gz", 1000)
    baseline = independent_pixel_bpd(train=train, test=test)
    torch.manual_seed(0)
    model = Model(PRESETS["smoke"], (1, 28, 28))
    _train(model, train, steps=100, batch=64, lr=3e-3)
    ll = model.log_likelihood(test, generator=torch.Generator().manual_seed(0))
    bpd = bits_per_dim(-ll.mean().item(), 784)
    assert baseline == pytest.approx(4.603515, abs=1e-6)
    assert bpd < baseline - 0.2
    assert bpd == pytest.approx(4.16, abs=0.05)
