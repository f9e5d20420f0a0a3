import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from genbench import GenbenchError, GenbenchWarning
from genbench.metrics.reconstruction import Reconstruction, psnr, reconstruction_metrics, ssim


def _images(n, c, size, seed=0):
    """Smooth-ish random uint8 images (N, C, H, W) so SSIM is far from 0."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.uniform(0, 255, size=(n, c, size, size)), sigma=(0, 0, 2, 2))
    base = (base - base.min()) / (base.max() - base.min()) * 255
    return base.round().astype(np.uint8)


def _noisy(x, sigma, seed=1):
    rng = np.random.default_rng(seed)
    return np.clip(x + rng.normal(0, sigma, size=x.shape), 0, 255).round().astype(np.uint8)


def _ssim_reference(r, f):
    """Wang et al. 2004 SSIM of one 2-D image pair in numpy/scipy (Gaussian sigma 1.5, 11x11, population
    covariance), mean over the window-valid region, written independently of skimage."""
    r, f = r.astype(np.float64), f.astype(np.float64)
    blur = lambda t: gaussian_filter(t, sigma=1.5, truncate=3.5)  # noqa: E731 radius 5 -> 11 taps
    mu_r, mu_f = blur(r), blur(f)
    var_r = blur(r * r) - mu_r ** 2
    var_f = blur(f * f) - mu_f ** 2
    cov = blur(r * f) - mu_r * mu_f
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mu_r * mu_f + c1) * (2 * cov + c2)) / ((mu_r ** 2 + mu_f ** 2 + c1) * (var_r + var_f + c2))
    return s[5:-5, 5:-5].mean()


@pytest.mark.parametrize("channels", [1, 3])
def test_psnr_closed_form(channels):
    real = _images(6, channels, 16)
    fake = _noisy(real, 12.0)
    mse = ((real.astype(np.float64) - fake.astype(np.float64)) ** 2).reshape(6, -1).mean(1)
    np.testing.assert_allclose(psnr(real=real, fake=fake), 10 * np.log10(255.0 ** 2 / mse), rtol=1e-12)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_identity_symmetry_and_noise(channels):
    real = _images(4, channels, 24)
    np.testing.assert_allclose(ssim(real=real, fake=real), 1.0, atol=1e-12)
    fakes = [_noisy(real, s) for s in (2.0, 10.0, 30.0, 80.0)]
    np.testing.assert_allclose(ssim(real=real, fake=fakes[1]), ssim(real=fakes[1], fake=real), rtol=1e-12)
    means = [ssim(real=real, fake=f) for f in fakes]
    for lo, hi in zip(means[1:], means[:-1]):
        assert (lo < hi).all()  # per image, SSIM decreases as the noise grows


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_independent_reference(channels):
    real = _images(3, channels, 20)
    fake = _noisy(real, 20.0)
    expected = [np.mean([_ssim_reference(r[c], f[c]) for c in range(channels)]) for r, f in zip(real, fake)]
    np.testing.assert_allclose(ssim(real=real, fake=fake), expected, rtol=1e-6)


def test_tensors_and_arrays_agree():
    real = _images(3, 3, 16)
    fake = _noisy(real, 5.0)
    a = reconstruction_metrics(real=real, fake=fake)
    b = reconstruction_metrics(real=torch.from_numpy(real), fake=torch.from_numpy(fake))
    assert a == b
    assert set(a) == {"psnr", "ssim"} and a["psnr"]["n"] == 3 and a["ssim"]["n"] == 3


def test_identical_pairs_excluded_from_psnr_with_warning():
    real = _images(5, 1, 16)
    fake = _noisy(real, 8.0)
    fake[1], fake[3] = real[1], real[3]
    per_image = psnr(real=real, fake=fake)
    assert np.isinf(per_image[[1, 3]]).all() and np.isfinite(per_image[[0, 2, 4]]).all()
    with pytest.warns(GenbenchWarning, match="2 of 5"):
        out = reconstruction_metrics(real=real, fake=fake)
    assert out["psnr"]["n"] == 3 and out["psnr"]["n_identical"] == 2
    assert out["psnr"]["mean"] == pytest.approx(per_image[[0, 2, 4]].mean())
    with pytest.warns(GenbenchWarning, match="5 of 5"):
        allsame = reconstruction_metrics(real=real, fake=real)
    assert allsame["psnr"]["mean"] == float("inf") and allsame["ssim"]["mean"] == pytest.approx(1.0)


def test_small_images_report_psnr_only():
    real = _images(4, 1, 8)
    fake = _noisy(real, 8.0)
    with pytest.raises(GenbenchError, match="11x11"):
        ssim(real=real, fake=fake)
    with pytest.warns(GenbenchWarning, match="SSIM skipped"):
        out = reconstruction_metrics(real=real, fake=fake)
    assert set(out) == {"psnr"}


def test_bad_input_errors():
    x = _images(2, 1, 16)
    with pytest.raises(GenbenchError, match="same shape"):
        psnr(real=x, fake=x[:1])
    with pytest.raises(GenbenchError, match="uint8"):
        ssim(real=x.astype(np.float32), fake=x)
    with pytest.raises(GenbenchError, match="C = 1 or 3"):
        psnr(real=np.zeros((2, 2, 16, 16), np.uint8), fake=np.zeros((2, 2, 16, 16), np.uint8))


def test_accumulator_matches_one_shot():
    real = _images(7, 3, 16)
    fake = _noisy(real, 15.0)
    acc = Reconstruction()
    for idx in np.array_split(np.arange(7), 3):
        acc.update(real=real[idx], fake=fake[idx])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert acc.compute() == reconstruction_metrics(real=real, fake=fake)
