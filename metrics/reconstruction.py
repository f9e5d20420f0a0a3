"""Reconstruction quality: PSNR and SSIM per image, through scikit-image.

Provenance
----------
- PSNR: 10 log10(255^2 / MSE) over all pixels and channels of one 8-bit image
  (skimage.metrics.peak_signal_noise_ratio with data_range=255). Checked against the closed form in numpy.
- SSIM: Wang, Bovik, Sheikh & Simoncelli, "Image quality assessment: from error visibility to structural
  similarity" (IEEE TIP 2004), with the paper's settings: 11x11 Gaussian window, sigma = 1.5, K1 = 0.01,
  K2 = 0.03, population (not sample) covariance, data_range = 255
  (skimage.metrics.structural_similarity with gaussian_weights=True, use_sample_covariance=False). RGB images
  use channel_axis (SSIM per channel, then averaged); grayscale images are 2-D. Checked: identity gives 1,
  symmetry, monotone decrease with added noise, grayscale and RGB.

Conventions (decided here, recorded in results through SSIM_SETTINGS and the "n" fields):
- Identical pairs have PSNR = inf. `psnr` returns inf for them; `reconstruction_metrics` excludes them from the
  PSNR mean/std with a GenbenchWarning giving the count (reported as "n_identical"). No cap is applied. If
  every pair is identical, the PSNR mean is inf.
- SSIM needs images of at least 11x11 (the window). `ssim` raises for smaller images; `reconstruction_metrics`
  then reports PSNR only and warns (e.g. 8x8 digits).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from genbench import GenbenchError, GenbenchWarning

HIGHER_IS_BETTER = {"psnr": True, "ssim": True}
DATA_RANGE = 255
SSIM_SETTINGS = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False,
                 "K1": 0.01, "K2": 0.03}
SSIM_MIN_SIZE = 11  # 2 * int(3.5 * 1.5 + 0.5) + 1: the Gaussian window skimage uses with sigma 1.5


def _as_pairs(real, fake) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to uint8 numpy arrays (N, C, H, W) with C in {1, 3}."""
    out = []
    for role, arr in (("real", real), ("fake", fake)):
        if isinstance(arr, torch.Tensor):
            arr = arr.detach().cpu().numpy()
        arr = np.asarray(arr)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1] not in (1, 3):
            raise GenbenchError(f"{role} must be uint8 images (N, C, H, W) with C = 1 or 3; got dtype "
                                f"{arr.dtype}, shape {arr.shape}")
        out.append(arr)
    if out[0].shape != out[1].shape:
        raise GenbenchError(f"real and fake must have the same shape (pairs of images); got real "
                            f"{out[0].shape} and fake {out[1].shape}")
    return out[0], out[1]


def _per_image(real: np.ndarray, fake: np.ndarray):
    """Yield (real_i, fake_i, channel_axis) in the layout skimage expects: 2-D for C=1, (C, H, W) for C=3."""
    rgb = real.shape[1] == 3
    for r, f in zip(real, fake):
        yield (r, f, 0) if rgb else (r[0], f[0], None)


def psnr(*, real, fake) -> np.ndarray:
    """(N,) float64 PSNR in dB of each fake image against its real counterpart; inf where identical."""
    real, fake = _as_pairs(real, fake)
    values = np.empty(real.shape[0], dtype=np.float64)
    with np.errstate(divide="ignore"):  # MSE = 0 -> inf, by convention (see module docstring)
        for i, (r, f, _) in enumerate(_per_image(real, fake)):
            values[i] = peak_signal_noise_ratio(r, f, data_range=DATA_RANGE)
    return values


def ssim(*, real, fake) -> np.ndarray:
    """(N,) float64 SSIM (Wang et al. 2004 settings, see SSIM_SETTINGS) of each pair; 1 where identical."""
    real, fake = _as_pairs(real, fake)
    if min(real.shape[2:]) < SSIM_MIN_SIZE:
        raise GenbenchError(f"SSIM uses an {SSIM_MIN_SIZE}x{SSIM_MIN_SIZE} Gaussian window and needs images at "
                            f"least that large; got {real.shape[2]}x{real.shape[3]}. Report PSNR only for "
                            "such images.")
    values = np.empty(real.shape[0], dtype=np.float64)
    for i, (r, f, channel_axis) in enumerate(_per_image(real, fake)):
        values[i] = structural_similarity(r, f, data_range=DATA_RANGE, channel_axis=channel_axis,
                                          **SSIM_SETTINGS)
    return values


def _summary(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "std": float(values.std()), "n": int(values.size)}


def _per_image_metrics(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    p = psnr(real=real, fake=fake)
    s = ssim(real=real, fake=fake) if min(real.shape[2:]) >= SSIM_MIN_SIZE else None
    return p, s


def _summarize(p: np.ndarray, s: np.ndarray | None, image_size: tuple[int, int]) -> dict:
    if p.size == 0:
        raise GenbenchError("no images to compare")
    finite = np.isfinite(p)
    n_identical = int((~finite).sum())
    if n_identical:
        warnings.warn(f"{n_identical} of {p.size} reconstructions are identical to the input (PSNR = inf); "
                      "they are excluded from the PSNR mean and std", GenbenchWarning, stacklevel=3)
    if finite.any():
        result = {"psnr": {**_summary(p[finite]), "n_identical": n_identical}}
    else:
        result = {"psnr": {"mean": math.inf, "std": 0.0, "n": 0, "n_identical": n_identical}}
    if s is None:
        warnings.warn(f"SSIM skipped: {image_size[0]}x{image_size[1]} images are smaller than the "
                      f"{SSIM_MIN_SIZE}x{SSIM_MIN_SIZE} SSIM window", GenbenchWarning, stacklevel=3)
    else:
        result["ssim"] = _summary(s)
    return result


def reconstruction_metrics(*, real, fake) -> dict:
    """{"psnr": {"mean", "std", "n", "n_identical"}, "ssim": {"mean", "std", "n"}} over the image pairs.

    PSNR statistics exclude identical pairs (warned); "ssim" is absent for images smaller than 11x11 (warned).
    """
    real, fake = _as_pairs(real, fake)
    return _summarize(*_per_image_metrics(real, fake), real.shape[2:])


class Reconstruction:
    """Thin accumulator: update(real=..., fake=...) batch by batch, compute() -> reconstruction_metrics dict.

    Keeps only the per-image values, so memory does not grow with the image size.
    """

    higher_is_better = HIGHER_IS_BETTER

    def __init__(self):
        self._psnr: list[np.ndarray] = []
        self._ssim: list[np.ndarray] = []
        self._image_size: tuple[int, int] | None = None

    def update(self, *, real, fake) -> None:
        real, fake = _as_pairs(real, fake)
        if self._image_size not in (None, real.shape[2:]):
            raise GenbenchError(f"image size changed between updates: {self._image_size} then {real.shape[2:]}")
        self._image_size = real.shape[2:]
        p, s = _per_image_metrics(real, fake)
        self._psnr.append(p)
        if s is not None:
            self._ssim.append(s)

    def compute(self) -> dict:
        if not self._psnr:
            raise GenbenchError("Reconstruction.compute() called before any update()")
        s = np.concatenate(self._ssim) if self._ssim else None
        return _summarize(np.concatenate(self._psnr), s, self._image_size)
