"""beta-VAE with the disentanglement_lib convolutional architecture and a Bernoulli decoder (dSprites).

Provenance
----------
- beta-VAE: Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
  Framework" (ICLR 2017), Eq. 4: maximize E_q[log p(x|z)] - beta KL(q(z|x) || p(z)). beta = 4 with 10 latents
  is their dSprites ("2D shapes") setting (Appendix A.1, Table 1, p. 13), and the beta of the best-scoring
  beta-VAE on dSprites in Kim & Mnih 2018 (Fig. 6). disentanglement_lib's study (Locatello et al., "Challenging
  Common Assumptions in the Unsupervised Learning of Disentangled Representations", ICML 2019) sweeps
  beta in [1, 2, 4, 6, 8, 16] (config/unsupervised_study_v1/sweep.py).
- Architecture: google-research/disentanglement_lib, methods/shared/architectures.py, `conv_encoder` (4 convs
  4x4 stride 2 with 32, 32, 64, 64 channels and ReLU, dense 256 ReLU, dense heads for the means and the
  log-variances) and `deconv_decoder` (dense 256 ReLU, dense 1024 ReLU reshaped to 64x4x4, transposed convs
  4x4 stride 2 with 64, 32, 32, C channels, ReLU between). Their docstrings cite Higgins et al. 2017, Table 1,
  row 3. One deviation: disentanglement_lib's code gives the third and fourth encoder convs a 2x2 kernel while
  its docstrings, Higgins et al. and Kim & Mnih (Appendix, Table 1) say 4x4; 4x4 is used here. Weights start
  as in TensorFlow's dense/conv layers: Glorot-uniform kernels, zero biases. TF's "same" padding at stride 2
  is padding=1 for a 4x4 kernel, so every layer halves or doubles the side exactly (64 -> 4 -> 64).
- Bernoulli decoder: disentanglement_lib's `bernoulli_loss` with activation "logits" (sigmoid cross-entropy
  summed over pixels, no entropy subtracted) and `shared.gin` (Adam lr 1e-4, betas (0.9, 0.999), eps 1e-8,
  batch 64, 300k steps; the optimizer, batch and steps belong to the protocol).
- ELBO / IWAE_k (Burda et al. 2016) and the Bernoulli log-likelihood are computed once, in
  genbench.metrics.likelihood.

Decisions
---------
- Pixels: uint8 {0, 255} -> {0, 1}; the encoder sees x / 255 (disentanglement_lib feeds [0, 1] images).
- Non-binary images (values in between) can be trained on: x / 255 is then a soft target of the sigmoid
  cross-entropy, which is not a log-likelihood. `log_likelihood` refuses them (GenbenchError): the Bernoulli
  likelihood exists for binary pixels only. On binary data it is an honest likelihood of the 8-bit images
  (no mass on the values in between), so its bits/dim compare with the other families'.
- `sample` and `decode` return the decoder's most probable image (p > 0.5 -> 255), not a Bernoulli draw of
  every pixel (which only adds salt-and-pepper noise); z is drawn from the prior with `generator`.
- `encode` is the posterior mean, the representation disentanglement_lib scores (its "mean" postprocessing).
- The posterior log-variance is clamped to [-30, 20] (part of q's definition; disentanglement_lib has none).

Checked in tests/baselines/test_beta_vae.py: layer shapes and parameter count of the standard preset against
disentanglement_lib's layers; the Bernoulli log-likelihood against a float64 brute force; ELBO and IWAE_k in
closed form on a linear-Gaussian toy and against log p(x) by numerical integration on a 1-D-latent model
(ELBO <= IWAE_k <= log p(x), rising with k); log_likelihood independent of beta; exact resume; a pinned loss.

Conventions: images enter and leave as uint8 (B, C, H, W); likelihoods are nats per image, float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.metrics.likelihood import (bernoulli_log_prob, bits_per_dim, gaussian_kl_standard_normal,
                                         gaussian_latent_bound, require_binary)
from genbench.optim import Optimizer

DESCRIPTION = "beta-VAE (Higgins et al. 2017), disentanglement_lib conv architecture, Bernoulli pixels"

LOGVAR_RANGE = (-30.0, 20.0)  # posterior log-variance is clamped into this range (part of q's definition)
DECODE_CHUNK = 2048           # images per decoder pass in the evaluation paths (memory bound; numbers unchanged)


@dataclass(frozen=True)
class Config:
    latent_dim: int = 10
    channels: tuple[int, ...] = (32, 32, 64, 64)  # encoder convs (4x4, stride 2); the decoder mirrors them
    hidden: int = 256                             # dense layer between convolutions and latent, both ways
    beta: float = 4.0                             # KL weight in the training loss; evaluation ignores it

    def __post_init__(self):
        if self.latent_dim < 1 or not self.channels or min(self.channels) < 1 or self.hidden < 1 \
                or not self.beta >= 0:
            raise GenbenchError(f"beta-vae: invalid config {self}")


PRESETS: dict[str, Config] = {
    # seconds on a CPU: tests and CI
    "smoke": Config(latent_dim=4, channels=(8, 8, 16, 16), hidden=32),
    # quick tier (2-core CPU, ~10 minutes): the standard layers at half width
    "small": Config(latent_dim=10, channels=(16, 16, 32, 32), hidden=128),
    # disentanglement_lib / Higgins et al. 2017 on dSprites: 10 latents, beta = 4
    "standard": Config(latent_dim=10, channels=(32, 32, 64, 64), hidden=256, beta=4.0),
}


def glorot_init(module: nn.Module) -> None:
    """TensorFlow's defaults for dense and conv layers: Glorot-uniform kernels, zero biases."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


def soft_bernoulli_nll(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy of uint8 x (B, C, H, W) against the target x / 255, summed per image: (B,).

    Equal, elementwise and bit for bit, to -bernoulli_log_prob on binary x (t * a + 0 * b == a); on other
    images a training loss only (soft targets), not a log-likelihood.
    """
    t = x.to(logits.dtype) / 255.0
    return -(t * F.logsigmoid(logits) + (1.0 - t) * F.logsigmoid(-logits)).flatten(1).sum(1)


class Encoder(nn.Module):
    """disentanglement_lib `conv_encoder`: x in [0, 1] (B, C, H, W) -> mu, logvar (B, D)."""

    def __init__(self, in_channels: int, bottom: tuple[int, int, int], config: Config):
        super().__init__()
        convs: list[nn.Module] = []
        prev = in_channels
        for w in config.channels:  # (B, prev, h, w) -> (B, w, h/2, w/2)
            convs += [nn.Conv2d(prev, w, 4, stride=2, padding=1), nn.ReLU()]
            prev = w
        self.convs = nn.Sequential(*convs)
        flat = bottom[0] * bottom[1] * bottom[2]
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, config.hidden), nn.ReLU())  # (B, hidden)
        self.heads = nn.Linear(config.hidden, 2 * config.latent_dim)  # the two dense heads, side by side

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.heads(self.fc(self.convs(x))).chunk(2, dim=1)  # (B, D) each
        return mu, logvar


class Decoder(nn.Module):
    """disentanglement_lib `deconv_decoder`: z (B, D) -> Bernoulli logits (B, C, H, W)."""

    def __init__(self, out_channels: int, bottom: tuple[int, int, int], config: Config):
        super().__init__()
        self.bottom = bottom  # (C', H', W'), 64x4x4 for dSprites
        flat = bottom[0] * bottom[1] * bottom[2]
        self.fc = nn.Sequential(nn.Linear(config.latent_dim, config.hidden), nn.ReLU(),
                                nn.Linear(config.hidden, flat), nn.ReLU())
        widths = list(config.channels[::-1])        # (64, 64, 32, 32)
        outs = widths[1:] + [out_channels]           # (64, 32, 32, C)
        deconvs: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(zip(widths, outs)):  # (B, w_in, h, w) -> (B, w_out, 2h, 2w)
            deconvs.append(nn.ConvTranspose2d(w_in, w_out, 4, stride=2, padding=1))
            if i < len(widths) - 1:
                deconvs.append(nn.ReLU())
        self.deconvs = nn.Sequential(*deconvs)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconvs(self.fc(z).view(-1, *self.bottom))


class Model(nn.Module):
    family = "beta-vae"
    likelihood = "bound"
    importance_sampling = True  # log_likelihood accepts k > 1 (IWAE)

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        C, H, W = image_shape
        n = len(config.channels)
        if H % (1 << n) or W % (1 << n):
            raise GenbenchError(f"{self.family}: unsupported image size {H}x{W}: the {n} stride-2 convolutions "
                                f"need sides that are multiples of {1 << n} (dSprites is 64x64)")
        self.config, self.image_shape = config, (C, H, W)
        self.num_dims = C * H * W
        bottom = (config.channels[-1], H >> n, W >> n)
        self.encoder = Encoder(C, bottom, config)
        self.decoder = Decoder(C, bottom, config)
        self.apply(glorot_init)
        self._optim_settings: Optimizer | None = None

    # ---- internals -------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != self.image_shape:
            raise GenbenchError(f"{self.family} expects uint8 images (B, {', '.join(map(str, self.image_shape))}); "
                                f"got {x.dtype} {tuple(x.shape)}")
        return x.to(self.device)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) = N(mu, diag(exp(logvar))); x uint8 (B, C, H, W) -> mu, logvar (B, D)."""
        mu, logvar = self.encoder(x.float() / 255.0)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def log_px_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) in nats, (B,), for binary uint8 x (B, C, H, W) and z (B, D)."""
        return bernoulli_log_prob(x, self.decoder(z)).flatten(1).sum(1)

    def _terms(self, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Batch means of the training objective and its parts (nats per image, bpd of the beta = 1 bound)."""
        mu, logvar = self.posterior(x)                                    # (B, D)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        recon = soft_bernoulli_nll(x, self.decoder(mu + (0.5 * logvar).exp() * eps))  # (B,)
        kl = gaussian_kl_standard_normal(mu, logvar)                      # (B,)
        return {"loss": (recon + self.config.beta * kl).mean(),
                "bpd": bits_per_dim((recon + kl).mean(), self.num_dims),
                "recon": recon.mean(), "kl": kl.mean()}

    # ---- training --------------------------------------------------------------------------------------
    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        self._optim_settings = settings  # train_step applies its grad clip
        return {"model": settings.build(self.parameters())}

    def train_step(self, x: torch.Tensor, optimizers: dict) -> dict[str, float]:
        """One step on the negative beta-ELBO per image (Higgins et al. 2017, Eq. 4); z noise from torch's
        global RNG."""
        x = self._check(x)
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        terms = self._terms(x, generator=None)
        terms["loss"].backward()
        if self._optim_settings is not None:
            self._optim_settings.clip(self.parameters())
        opt.step()
        return {k: float(v.detach()) for k, v in terms.items()}

    @torch.no_grad()
    def eval_loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, float]:
        """Same keys as train_step, no update. Without a generator, a private one seeded 0 is used, so the
        value is deterministic and evaluating never advances the global RNG (training is unaffected)."""
        x = self._check(x)
        if generator is None:
            generator = torch.Generator(device=self.device).manual_seed(0)
        return {k: float(v) for k, v in self._terms(x, generator).items()}

    # ---- evaluation ------------------------------------------------------------------------------------
    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, *, k: int = 1,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Lower bound on log p(x) in nats per image, (B,) float64, always with beta = 1: the ELBO (k = 1) or
        IWAE_k (Burda et al. 2016). Binary images (0 and 255) only; anything else raises GenbenchError."""
        x = self._check(x)
        if int(k) != k or k < 1:
            raise GenbenchError(f"log_likelihood needs an integer k >= 1, got {k!r}")
        require_binary(x)
        mu, logvar = self.posterior(x)                       # (B, D)
        return gaussian_latent_bound(self.log_px_z, x, mu, logvar, k=k, generator=generator, chunk=DECODE_CHUNK)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images, uint8 (n, C, H, W) in {0, 255}: z ~ N(0, I) drawn with `generator`, then decode(z)."""
        z = torch.randn((n, self.config.latent_dim), generator=generator, device=self.device)
        return self.decode(z)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior mean, (B, D): the representation disentanglement metrics score."""
        return self.posterior(self._check(x))[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Most probable image under the Bernoulli decoder: z (B, D) -> uint8 (B, C, H, W), 255 where p > 0.5."""
        z = z.to(self.device, torch.float32)
        out = [self.decoder(zc) > 0 for zc in z.split(DECODE_CHUNK)]  # logit > 0  <=>  p > 0.5
        on = torch.cat(out) if out else torch.zeros(0, *self.image_shape, dtype=torch.bool, device=self.device)
        return on.to(torch.uint8) * 255

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(encode(x)): uint8 (B, C, H, W) in {0, 255}."""
        return self.decode(self.encode(x))
