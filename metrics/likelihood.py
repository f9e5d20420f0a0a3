"""Likelihood evaluation math shared by every genbench family: bits/dim, the discretized logistic and its
PixelCNN++ mixture, the discretized Gaussian, the Gaussian KL of diffusion bounds, the Bernoulli pixel likelihood
of binary images, the dequantization bounds of the flows (uniform, variational, importance-weighted), the
Gaussian-latent bounds of the VAE families (ELBO and IWAE_k), and the independent-pixel baseline.

Provenance
----------
- Bits per dimension: negative log-likelihood of the discrete 8-bit data divided by (number of dims * ln 2),
  the convention of Theis, van den Oord & Bethge, "A note on the evaluation of generative models" (ICLR 2016)
  and of the PixelRNN/PixelCNN papers (van den Oord et al., 2016).
- Discretized logistic: Salimans, Karpathy, Chen & Kingma, "PixelCNN++" (ICLR 2017), Section 2.1: a logistic
  on the [-1, 1] scale integrated over 256 bins of width 2/255, the two edge bins taking the tails. Written
  here from the equations in log-sigmoid form (no difference of two CDFs is ever formed in linear space), so
  no clamping of tiny probabilities is needed. Checked in tests/metrics/test_likelihood.py: the pmf sums to 1
  over 0..255 to 1e-5 in float32 for means in [-4, 4] and log-scales in [-12, 6], and matches a float64
  brute-force CDF difference.
- Discretized logistic mixture: PixelCNN++ (Salimans et al. 2017), Sections 2.1-2.2, and the reference
  openai/pixel-cnn, pixel_cnn_pp/nn.py (discretized_mix_logistic_loss): K logistics per pixel with weights
  shared by its channels, and for RGB the linear coupling mean_G += c0 x_R, mean_B += c1 x_R + c2 x_G (x on
  the [-1, 1] scale). Written here from the equations on top of the discretized logistic above (so no clamping
  and no pdf-at-midpoint fallback as in the reference). Checked in tests/metrics/test_likelihood.py: sums to 1
  over 0..255 for C = 1 (1e-5 float32, 1e-10 float64), sums to 1 over all 256^3 colours of an RGB pixel with
  random coupling (1e-4 float32), matches a float64 brute-force CDF-difference mixture, and reduces to the
  discretized logistic for K = 1, C = 1.
- Discretized Gaussian: the decoder of Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models" (NeurIPS
  2020), Eq. 13, on the same bins, in log-CDF form with the exact normal CDF. Checked like the logistic (sums to
  1, float64 brute force) in tests/metrics/test_likelihood.py.
- Independent-pixel baseline: a per-dimension categorical with add-alpha (Lidstone) smoothing; its exact
  mean bits/dim on a test set, checked against a hand computation and the uniform limit (8 bits/dim).
- Bernoulli pixels (binary images such as dSprites, stored as uint8 {0, 255}): log P(x) = log sigmoid(+-l) for
  logits l. As a pmf over 0..255 it puts no mass on the values in between, so on binary data it is an honest
  likelihood of the 8-bit images and its bits/dim compare with the other families'. Defined for binary data
  only: any other value is refused. Checked in tests/baselines/test_beta_vae.py against a float64 product of
  pixel probabilities, and summing to 1 over all binary images of a 3-pixel toy.
- Dequantization bounds on discrete data from a continuous density p over v = x + u, u in [0, 1)^D: uniform
  dequantization (Theis, van den Oord & Bethge 2016: E_u[log p(x + u)] <= log P(x)), its variational
  form with a learned q(u | x) (Ho et al., "Flow++", ICML 2019, Sec. 3.1) and their importance-weighted form with
  k draws (Ho et al. Sec. 3.1, after Burda et al. 2016). Checked in tests/metrics/test_likelihood.py on a 1-D
  Gaussian whose bin probabilities are exact: every bound lies below log P(x) and rises with k toward it, and
  the exact conditional q gives log P(x) from every draw.
- Gaussian-latent bounds, for q(z|x) = N(mu, diag exp(logvar)) and the prior N(0, I): the ELBO with the
  analytic KL (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, Appendix B) and the IWAE_k
  bound (Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016, Eq. 8), the
  log-mean-exp of k importance weights in float64. Checked in tests/baselines/test_beta_vae.py: on a
  linear-Gaussian toy whose q is the exact posterior, every bound equals log p(x) in closed form; with a wrong
  q, IWAE_k rises with k toward it. The VAE families (vae, beta_vae, factor_vae) call these and nothing else.

All functions work in nats internally; `bits_per_dim` is the only conversion to bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from genbench import GenbenchError

HIGHER_IS_BETTER = {"bits_per_dim": False}

LN2 = math.log(2.0)
LOG_2PI = math.log(2.0 * math.pi)
NUM_BINS = 256
BIN_HALF_WIDTH = 1.0 / 255.0  # bins of width 2/255 on the [-1, 1] scale


def bits_per_dim(nll_nats, num_dims: int):
    """Negative log-likelihood in nats (per image) -> bits per dimension: nll / (num_dims * ln 2).

    Works elementwise on Python floats, numpy arrays and torch tensors (the type is preserved).
    """
    if int(num_dims) != num_dims or num_dims <= 0:
        raise GenbenchError(f"bits_per_dim needs a positive integer num_dims (C*H*W), got {num_dims!r}")
    return nll_nats / (int(num_dims) * LN2)


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(-d)) for d > 0, accurate for both small and large d (Maechler, 2012)."""
    return torch.where(d < LN2, torch.log(-torch.expm1(-d)), torch.log1p(-torch.exp(-d)))


def _check_discretized(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, name: str) -> None:
    if x.dtype != torch.uint8:
        raise GenbenchError(f"{name} expects uint8 data, got {x.dtype}; "
                            "pass the raw 8-bit images, not a rescaled float tensor")
    if not (x.shape == mean.shape == log_scale.shape):
        raise GenbenchError(f"shape mismatch: x {tuple(x.shape)}, mean {tuple(mean.shape)}, "
                            f"log_scale {tuple(log_scale.shape)}")


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Per-element log P(x) in nats of 8-bit data under a logistic discretized into 256 bins.

    x: uint8 tensor of any shape; mean, log_scale: float tensors of the same shape, mean on the [-1, 1] scale
    where pixel value v sits at 2v/255 - 1. Bin v covers [c_v - 1/255, c_v + 1/255]; bin 0 extends to -inf and
    bin 255 to +inf, so the result is a proper pmf over 0..255.

    With a = (c_v + 1/255 - mean) / s and b = (c_v - 1/255 - mean) / s, the inner bins use the identity
        sigmoid(a) - sigmoid(b) = sigmoid(a) * sigmoid(-b) * (1 - exp(-(a - b))),
    so log P = logsigmoid(a) + logsigmoid(-b) + log1mexp(a - b) is computed without cancellation; the edge
    bins are logsigmoid(a) (v = 0) and logsigmoid(-b) (v = 255).
    """
    _check_discretized(x, mean, log_scale, "discretized_logistic_log_prob")
    # Bin edges are (2v +- 1)/255 - 1, formed from the integer 2v +- 1 so that the upper edge of bin v and the
    # lower edge of bin v + 1 are the same float: the pmf then telescopes to 1 even for very small scales.
    two_v = x.to(mean.dtype) * 2.0
    inv_s = torch.exp(-log_scale)
    a = inv_s * ((two_v + 1.0) / 255.0 - 1.0 - mean)  # upper bin edge, standardized
    b = inv_s * ((two_v - 1.0) / 255.0 - 1.0 - mean)  # lower bin edge, standardized
    log_cdf_a = F.logsigmoid(a)   # log P(X <= upper edge)
    log_sf_b = F.logsigmoid(-b)   # log P(X > lower edge)
    # a - b = 2 / (255 s); tiny only for absurdly wide logistics, where the floor keeps the log finite
    width = (inv_s * (2.0 * BIN_HALF_WIDTH)).clamp_min(torch.finfo(mean.dtype).tiny)
    log_inner = log_cdf_a + log_sf_b + _log1mexp(width)
    return torch.where(x == 0, log_cdf_a, torch.where(x == 255, log_sf_b, log_inner))


def _check_mixture(x, logit_probs, means, log_scales, coeffs) -> None:
    name = "discretized_logistic_mixture_log_prob"
    if x.dtype != torch.uint8:
        raise GenbenchError(f"{name} expects uint8 data, got {x.dtype}; "
                            "pass the raw 8-bit images, not a rescaled float tensor")
    if x.ndim != 4:
        raise GenbenchError(f"{name} expects x of shape (B, C, H, W), got {tuple(x.shape)}")
    B, C, H, W = x.shape
    if means.ndim != 5 or means.shape[0] != B or tuple(means.shape[2:]) != (C, H, W):
        raise GenbenchError(f"{name}: means must be (B, K, C, H, W) = ({B}, K, {C}, {H}, {W}) for x of shape "
                            f"{tuple(x.shape)}, got {tuple(means.shape)}")
    K = means.shape[1]
    if K < 1:
        raise GenbenchError(f"{name} needs at least one mixture component, got K = {K}")
    if log_scales.shape != means.shape:
        raise GenbenchError(f"{name}: log_scales must have the shape of means {tuple(means.shape)}, "
                            f"got {tuple(log_scales.shape)}")
    if tuple(logit_probs.shape) != (B, K, H, W):
        raise GenbenchError(f"{name}: logit_probs must be (B, K, H, W) = ({B}, {K}, {H}, {W}) (one set of "
                            f"mixture weights per pixel, shared by its channels), got {tuple(logit_probs.shape)}")
    if coeffs is not None:
        if C == 1:
            raise GenbenchError(f"{name}: coeffs must be None for single-channel data (C = 1): there is no "
                                "earlier channel to condition on")
        want = (B, K, C * (C - 1) // 2, H, W)
        if tuple(coeffs.shape) != want:
            raise GenbenchError(f"{name}: coeffs must be (B, K, C*(C-1)/2, H, W) = {want}, "
                                f"got {tuple(coeffs.shape)}")
    params = {"logit_probs": logit_probs, "means": means, "log_scales": log_scales}
    if coeffs is not None:
        params["coeffs"] = coeffs
    for role, t in params.items():
        if not t.is_floating_point():
            raise GenbenchError(f"{name}: {role} must be a floating-point tensor, got {t.dtype}")
        if t.dtype != means.dtype:
            raise GenbenchError(f"{name}: {role} is {t.dtype} but means is {means.dtype}; "
                                "pass all parameters in one dtype")


def discretized_logistic_mixture_log_prob(x: torch.Tensor, logit_probs: torch.Tensor, means: torch.Tensor,
                                          log_scales: torch.Tensor, coeffs: torch.Tensor | None = None
                                          ) -> torch.Tensor:
    """log P(x) in nats per image position, (B, H, W), of 8-bit images under the discretized logistic mixture
    of PixelCNN++ (Salimans et al. 2017, Sec. 2.1-2.2), summed over the channels of each pixel.

    x: uint8 (B, C, H, W). logit_probs: (B, K, H, W), unnormalized log mixture weights, one set per pixel
    shared by all its channels (log_softmax over K is taken here). means, log_scales: (B, K, C, H, W) on the
    [-1, 1] scale, used as given (no clamping: `discretized_logistic_log_prob` needs none; the reference code's
    floor of -7 on log_scales is the caller's business).

    coeffs: None (channels independent given the component) or (B, K, C*(C-1)/2, H, W), the linear
    autoregressive coupling of Sec. 2.2: the mean of channel c in component k is shifted by earlier channels'
    observed values, x_j on the [-1, 1] scale (2v/255 - 1), with the coefficients in row-major order of the
    strictly lower triangle (c, j < c). For RGB (C = 3) that is exactly pixel_cnn_pp/nn.py's convention:
        mean_G += coeffs[:, :, 0] * x_R
        mean_B += coeffs[:, :, 1] * x_R + coeffs[:, :, 2] * x_G
    The coefficients are used as given: PixelCNN++ passes tanh(raw) so they lie in (-1, 1), which the caller
    must apply. Any real values still give a proper distribution (the coupling is an autoregressive
    factorization P(R) P(G|R) P(B|R,G) inside each component). coeffs must be None when C = 1.

    Per component: log pi_k + sum_c log P_k(x_c | x_<c), each factor from `discretized_logistic_log_prob`;
    then logsumexp over k. All parameters must share one floating dtype.
    """
    _check_mixture(x, logit_probs, means, log_scales, coeffs)
    B, K, C, H, W = means.shape
    if coeffs is not None:
        x_scaled = (x.to(means.dtype) * 2.0) / 255.0 - 1.0   # (B, C, H, W) on the [-1, 1] scale
        coupled, idx = [means[:, :, 0]], 0
        for c in range(1, C):
            m = means[:, :, c]
            for j in range(c):
                m = m + coeffs[:, :, idx] * x_scaled[:, j].unsqueeze(1)
                idx += 1
            coupled.append(m)
        means = torch.stack(coupled, dim=2)
    per_channel = discretized_logistic_log_prob(x.unsqueeze(1).expand(B, K, C, H, W), means, log_scales)
    return torch.logsumexp(F.log_softmax(logit_probs, dim=1) + per_channel.sum(dim=2), dim=1)


def discretized_gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Per-element log P(x) in nats of 8-bit data under a Gaussian discretized into the same 256 bins as
    `discretized_logistic_log_prob` (edge bins take the tails): the decoder L_0 of Ho et al. 2020, Eq. 13.

    x: uint8; mean, log_scale (log standard deviation): float tensors of x's shape, on the [-1, 1] scale.
    The reference code (hojonathanho/diffusion, openai/improved-diffusion: discretized_gaussian_log_likelihood)
    uses a tanh approximation of the normal CDF; this uses the exact one, in log space: log Phi for the lower
    tail, and for an inner bin the difference of the two CDFs taken on the side of the mean the bin lies on
    (Phi(a) - Phi(b) = Phi(-b) - Phi(-a)), as log Phi(hi) + log1mexp(log Phi(hi) - log Phi(lo)), never by
    subtracting two numbers near 1.
    """
    _check_discretized(x, mean, log_scale, "discretized_gaussian_log_prob")
    two_v = x.to(mean.dtype) * 2.0
    inv_s = torch.exp(-log_scale)
    a = inv_s * ((two_v + 1.0) / 255.0 - 1.0 - mean)  # upper bin edge, standardized
    b = inv_s * ((two_v - 1.0) / 255.0 - 1.0 - mean)  # lower bin edge, standardized
    upper = (a + b) > 0  # the bin lies above the mean: use the upper tails, P = Phi(-b) - Phi(-a)
    hi = torch.where(upper, torch.special.log_ndtr(-b), torch.special.log_ndtr(a))
    lo = torch.where(upper, torch.special.log_ndtr(-a), torch.special.log_ndtr(b))
    gap = (hi - lo).clamp_min(torch.finfo(mean.dtype).tiny)
    log_inner = hi + _log1mexp(gap)
    return torch.where(x == 0, torch.special.log_ndtr(a), torch.where(x == 255, torch.special.log_ndtr(-b), log_inner))


def gaussian_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) elementwise, in nats (the terms L_{t-1} of Ho et al.
    2020, Eq. 5, between Gaussians with diagonal covariance)."""
    return 0.5 * (logvar2 - logvar1 - 1.0 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Per-element log P(x) in nats of binary 8-bit data (values 0 and 255 only) under Bernoulli pixels.

    x: uint8 tensor of any shape; logits: float tensor of the same shape, P(x = 255) = sigmoid(logits).
    log P = logsigmoid(l) where x = 255 and logsigmoid(-l) where x = 0: exact for any finite logit, no clamping.
    """
    if x.shape != logits.shape:
        raise GenbenchError(f"shape mismatch: x {tuple(x.shape)}, logits {tuple(logits.shape)}")
    require_binary(x)
    return torch.where(x == 255, F.logsigmoid(logits), F.logsigmoid(-logits))


def require_binary(x: torch.Tensor) -> None:
    """Raise GenbenchError unless x is uint8 with every value 0 or 255 (binary images)."""
    if x.dtype != torch.uint8:
        raise GenbenchError(f"the Bernoulli likelihood expects uint8 data, got {x.dtype}; pass the raw 8-bit images")
    other = (x != 0) & (x != 255)
    if other.any():
        raise GenbenchError(
            f"the Bernoulli likelihood is defined for binary images only (pixel values 0 and 255), but "
            f"{int(other.sum())} pixels take other values (e.g. {int(x[other][0])}). Binarize the data "
            "(dSprites is binary as generated) or use a family with an 8-bit likelihood such as `vae`.")


def gaussian_kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) in nats, analytic (Kingma & Welling 2014, Appendix B).

    mu, logvar: (..., D) -> (...,), summed over the last dimension.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def iwae_bound(log_px_z: torch.Tensor, z: torch.Tensor, eps: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """IWAE_k = log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x) (Burda et al. 2016, Eq. 8), (B,) float64.

    log_px_z: (k, B) decoder log-likelihoods; z = mu + exp(logvar / 2) * eps: (k, B, D) with its standard-normal
    noise eps (k, B, D); logvar: (B, D). log q(z|x) is written through eps, so it needs no division by the
    standard deviation. The weights are combined in float64 (log-sum-exp).
    """
    k = log_px_z.shape[0]
    log_q = (-0.5 * (eps.pow(2) + LOG_2PI + logvar)).sum(-1)    # (k, B)
    log_prior = (-0.5 * (z.pow(2) + LOG_2PI)).sum(-1)           # (k, B)
    log_w = log_px_z.double() + log_prior.double() - log_q.double()
    return torch.logsumexp(log_w, dim=0) - math.log(k)


def gaussian_latent_bound(log_px_z: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                          mu: torch.Tensor, logvar: torch.Tensor, *, k: int = 1,
                          generator: torch.Generator | None = None, chunk: int = 2048) -> torch.Tensor:
    """Lower bound on log p(x) in nats per example, (B,) float64, for a VAE with q(z|x) = N(mu, diag exp(logvar))
    and the prior N(0, I).

    log_px_z(x, z) -> (n,): the decoder's log-likelihood of n examples x (n, ...) at latents z (n, D).
    k = 1: the ELBO, one reparameterized sample for E_q[log p(x|z)] minus the analytic KL.
    k > 1: IWAE_k. All k noise draws are made up front with `generator`, then decoded `chunk` examples per pass
    (x repeated), so the chunk size never changes a number.
    """
    if int(k) != k or k < 1:
        raise GenbenchError(f"log_likelihood needs an integer k >= 1, got {k!r}")
    B, D = mu.shape
    std = (0.5 * logvar).exp()
    if k == 1:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return (log_px_z(x, mu + std * eps) - gaussian_kl_standard_normal(mu, logvar)).double()
    eps = torch.randn((k, B, D), generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + std * eps                                       # (k, B, D)
    log_px = torch.empty(k, B, device=mu.device, dtype=mu.dtype)
    step = max(1, chunk // max(B, 1))
    for i in range(0, k, step):
        zc = z[i:i + step]                                    # (kc, B, D)
        xc = x.expand(zc.shape[0], *x.shape).reshape(-1, *x.shape[1:])   # (kc*B, ...)
        log_px[i:i + step] = log_px_z(xc, zc.reshape(-1, D)).view(-1, B)
    return iwae_bound(log_px, z, eps, logvar)


def dequantization_bound(log_p: torch.Tensor, log_q: torch.Tensor | None = None) -> torch.Tensor:
    """Lower bound on log P(x) of discrete data from a continuous density over its dequantized values, (B,) float64:

        log (1/k) sum_j p(x + u_j) / q(u_j | x),    u_j ~ q(. | x) on [0, 1)^D, j = 1..k.

    log_p: (k, B), log p(x + u_j) in nats, the density on the integer scale of the data (each value owns the unit
    bin [x, x + 1)); a density of y = (x + u) / s is converted by subtracting D log s. log_q: (k, B), log q(u_j | x)
    of the draws, or None for uniform dequantization (q = 1 on the bin, log q = 0).

    Since P(x) = integral over [0, 1)^D of p(x + u) du = E_q[p(x + u) / q(u | x)], Jensen's inequality makes every k a
    bound in expectation: k = 1 is the single-sample estimate of E_q[log p(x + u) - log q(u | x)], the uniform
    dequantization bound of Theis, van den Oord & Bethge (ICLR 2016) for uniform q and the variational one of Ho
    et al. (Flow++, ICML 2019, Sec. 3.1) otherwise; its expectation rises with k to log P(x) (the
    importance-weighted bound, Burda et al. 2016, Theorem 1; Ho et al. Sec. 3.1 for dequantization). With q the
    exact conditional p(x + u) / P(x) every draw gives log P(x). The weights are combined in float64 (log-sum-exp).
    """
    if log_p.ndim != 2 or log_p.shape[0] < 1:
        raise GenbenchError(f"dequantization_bound expects log p of shape (k, B) with k >= 1, got {tuple(log_p.shape)}")
    if log_q is not None and log_q.shape != log_p.shape:
        raise GenbenchError(f"dequantization_bound: log_q {tuple(log_q.shape)} must have the shape of log_p "
                            f"{tuple(log_p.shape)}: one value per draw and image")
    log_w = log_p.double() if log_q is None else log_p.double() - log_q.double()
    return torch.logsumexp(log_w, dim=0) - math.log(log_p.shape[0])


def _as_uint8_images(arr, role: str) -> np.ndarray:
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    arr = np.asarray(arr)
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise GenbenchError(f"{role} must be uint8 images of shape (N, C, H, W); got dtype {arr.dtype}, "
                            f"shape {arr.shape}")
    return arr


def _value_counts(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """(D, 256) int64 counts of each value at each dimension, streamed in chunks of images."""
    n, dims = images.shape[0], int(np.prod(images.shape[1:]))
    offsets = np.arange(dims, dtype=np.int64) * NUM_BINS  # (D,)
    counts = np.zeros(dims * NUM_BINS, dtype=np.int64)
    for start in range(0, n, chunk):
        flat = images[start:start + chunk].reshape(-1, dims)  # (n_chunk, D)
        counts += np.bincount((flat + offsets).ravel(), minlength=dims * NUM_BINS)
    return counts.reshape(dims, NUM_BINS)


def independent_pixel_bpd(*, train, test, alpha: float = 1.0) -> float:
    """Exact mean bits/dim of `test` under independent per-dimension categoricals fitted on `train`.

    p_d(v) = (count_d(v) + alpha) / (N_train + 256 alpha) for each dimension d (pixel and channel) and value
    v in 0..255. The trivial baseline every likelihood model must beat. train, test: uint8 (N, C, H, W)
    numpy arrays or tensors with the same (C, H, W). Computed in float64 from value counts, so memory is
    O(D * 256) whatever the number of images.
    """
    train = _as_uint8_images(train, "train")
    test = _as_uint8_images(test, "test")
    if train.shape[1:] != test.shape[1:]:
        raise GenbenchError(f"train images are {train.shape[1:]} but test images are {test.shape[1:]}")
    if not alpha > 0:
        raise GenbenchError(f"alpha must be > 0 (add-alpha smoothing keeps unseen values possible), got {alpha}")
    n_train, n_test = train.shape[0], test.shape[0]
    if n_test == 0:
        raise GenbenchError("test set is empty")
    dims = int(np.prod(train.shape[1:]))
    log_p = (np.log(_value_counts(train).astype(np.float64) + alpha)
             - np.log(n_train + NUM_BINS * alpha))  # (D, 256)
    total_log_prob = float(np.sum(_value_counts(test) * log_p))  # sum over test images and dims
    return float(bits_per_dim(-total_log_prob / n_test, dims))


class BitsPerDim:
    """Thin accumulator: feed per-image log-likelihoods (nats) batch by batch, get mean bits/dim.

    compute() -> {"mean", "std", "n"}: mean and standard deviation over images of the per-image bits/dim.
    Sums are kept in float64.
    """

    higher_is_better = False

    def __init__(self, num_dims: int):
        bits_per_dim(0.0, num_dims)  # validates num_dims
        self.num_dims = int(num_dims)
        self._n, self._sum, self._sumsq = 0, 0.0, 0.0

    def update(self, *, log_likelihood) -> None:
        if isinstance(log_likelihood, torch.Tensor):
            log_likelihood = log_likelihood.detach().cpu().numpy()
        bpd = bits_per_dim(-np.asarray(log_likelihood, dtype=np.float64).ravel(), self.num_dims)
        if not np.all(np.isfinite(bpd)):
            raise GenbenchError("non-finite log-likelihood in BitsPerDim.update; the model diverged or "
                                "returned -inf for some image")
        self._n += bpd.size
        self._sum += float(bpd.sum())
        self._sumsq += float((bpd ** 2).sum())

    def compute(self) -> dict:
        if self._n == 0:
            raise GenbenchError("BitsPerDim.compute() called before any update()")
        mean = self._sum / self._n
        var = max(self._sumsq / self._n - mean ** 2, 0.0)
        return {"mean": mean, "std": math.sqrt(var), "n": self._n}
