"""Convolutional VAE / beta-VAE with a discretized-logistic decoder.

Provenance
----------
- VAE and the ELBO with an analytic Gaussian KL: Kingma & Welling, "Auto-Encoding Variational Bayes"
  (ICLR 2014), Sections 2.3-2.4 and Appendix B.
- beta-VAE: Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a Constrained Variational
  Framework" (ICLR 2017), Eq. 4: the KL term weighted by beta during training. The convolutional
  architecture (4x4 stride-2 convolutions, a 256-unit fully connected layer) follows Higgins et al. 2017 and
  Burgess et al., "Understanding disentangling in beta-VAE" (2018), Appendix A.1.
- IWAE bound: Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders" (ICLR 2016), Eq. 8:
  log p(x) >= E[log (1/k) sum_i p(x, z_i) / q(z_i | x)], tightening monotonically in k.
- Decoder likelihood: the discretized logistic of PixelCNN++ (Salimans et al., 2017); it, the Gaussian KL and
  the ELBO/IWAE estimator are computed once in genbench.metrics.likelihood.

Checked in tests/baselines/test_vae.py: on a 1-D latent toy model, log p(x) by numerical integration over a
fine z grid bounds the ELBO and IWAE_k, IWAE_k rises with k and approaches log p(x); log_likelihood(k=1)
does not depend on beta; a smoke model beats the independent-pixel model on Fashion-MNIST. On sklearn digits
(17 grey levels after scaling) it does not: the unimodal logistic spreads mass over the unused values
between levels, which the per-pixel histogram does not.

Conventions: images enter and leave as uint8 (B, C, H, W); inside, pixels live on [-1, 1] (v -> 2v/255 - 1).
Likelihoods are in nats per image on the discrete 8-bit data, so bits/dim are directly comparable with the
exact-likelihood families. `log_likelihood` always evaluates the beta = 1 bound; beta only shapes training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from genbench import GenbenchError
from genbench.metrics.likelihood import (bits_per_dim, discretized_logistic_log_prob, gaussian_kl_standard_normal,
                                         gaussian_latent_bound)
from genbench.optim import Optimizer
from genbench.pixels import to_uint8

DESCRIPTION = "Convolutional VAE with a discretized-logistic decoder (for 8-bit images; beta weights the KL)"

# Stride-2 downsamplings per image side, each an exact halving (28 -> 14 -> 7, 32 -> 4, 64 -> 4, 8 -> 2).
DOWNSAMPLINGS = {8: 2, 28: 2, 32: 3, 64: 4}
LOG_SCALE_MIN = -7.0      # floor on the decoder's log-scale (a bin is ~2/255 = e^-4.8 wide on [-1, 1])
LOGVAR_RANGE = (-30.0, 20.0)  # posterior log-variance is clamped into this range (part of q's definition)
DECODE_CHUNK = 2048       # images per decoder pass in the evaluation paths (memory bound; numbers unchanged)


@dataclass(frozen=True)
class Config:
    latent_dim: int = 32
    channels: tuple[int, ...] = (32, 64)  # width after each downsampling; the last repeats if more are needed
    hidden: int | None = 256              # fully connected layer between convolutions and latent; None: none
    depth: int = 0                        # extra 3x3 conv layers per resolution level (encoder and decoder)
    beta: float = 1.0                     # KL weight in the training loss (beta-VAE); evaluation ignores it


PRESETS: dict[str, Config] = {
    # seconds on a CPU: tests and CI
    "smoke": Config(latent_dim=8, channels=(16, 32), hidden=None),
    # quick tier (2-core CPU, minutes; sized on Fashion-MNIST 28x28)
    "small": Config(latent_dim=32, channels=(32, 64), hidden=256, depth=1),
    # GPU tier: the conv stack of Higgins et al. 2017 / Burgess et al. 2018 (App. A.1): 32-32-64-64 channels,
    # 4x4 stride-2 convs, FC 256 (one FC layer here, not two), plus one 3x3 conv per level and a 32-d latent
    # for likelihood. Evaluation follows Burda et al. 2016, Sec. 5 (IWAE with k = 5000); the optimizer and
    # step count belong to the protocol.
    "standard": Config(latent_dim=32, channels=(32, 32, 64, 64), hidden=256, depth=1),
    # beta-VAE for disentanglement (dSprites, Bernoulli pixels) is its own family: baselines/beta_vae.py
}


def _act() -> nn.Module:
    return nn.SiLU()


class Model(nn.Module):
    family = "vae"
    likelihood = "bound"
    importance_sampling = True  # log_likelihood accepts k > 1 (IWAE)

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        C, H, W = image_shape
        if H != W or H not in DOWNSAMPLINGS:
            raise GenbenchError(f"vae: unsupported image size {H}x{W}; supported square sizes are "
                                f"{sorted(DOWNSAMPLINGS)} (add an entry to DOWNSAMPLINGS in baselines/vae.py "
                                "for another size that halves exactly)")
        if config.latent_dim < 1 or not config.channels or config.beta < 0:
            raise GenbenchError(f"vae: invalid config {config}")
        self.config, self.image_shape = config, (C, H, W)
        self.num_dims = C * H * W
        n_down = DOWNSAMPLINGS[H]
        widths = [config.channels[min(i, len(config.channels) - 1)] for i in range(n_down)]
        self.bottom = (widths[-1], H >> n_down, W >> n_down)  # (C', H', W') at the lowest resolution
        flat = widths[-1] * self.bottom[1] * self.bottom[2]

        def refine(ch: int) -> list[nn.Module]:
            return [m for _ in range(config.depth) for m in (nn.Conv2d(ch, ch, 3, padding=1), _act())]

        # encoder: (B, C, H, W) -> (B, 2D)
        enc: list[nn.Module] = [nn.Conv2d(C, widths[0], 3, padding=1), _act()]
        prev = widths[0]
        for w in widths:  # each: (B, prev, h, w) -> (B, w, h/2, w/2)
            enc += [nn.Conv2d(prev, w, 4, stride=2, padding=1), _act(), *refine(w)]
            prev = w
        enc.append(nn.Flatten())
        if config.hidden:
            enc += [nn.Linear(flat, config.hidden), _act()]
        enc.append(nn.Linear(config.hidden or flat, 2 * config.latent_dim))
        self.encoder = nn.Sequential(*enc)

        # decoder: (B, D) -> (B, 2C, H, W): per-pixel mean and log-scale of the discretized logistic
        fc: list[nn.Module] = []
        if config.hidden:
            fc += [nn.Linear(config.latent_dim, config.hidden), _act()]
        fc += [nn.Linear(config.hidden or config.latent_dim, flat), _act()]
        self.decoder_fc = nn.Sequential(*fc)
        dec: list[nn.Module] = []
        for w_in, w_out in zip(widths[::-1], widths[::-1][1:] + [widths[0]]):  # (B, w_in, h, w) -> (2h, 2w)
            dec += [*refine(w_in), nn.ConvTranspose2d(w_in, w_out, 4, stride=2, padding=1), _act()]
        dec.append(nn.Conv2d(widths[0], 2 * C, 3, padding=1))
        self.decoder_conv = nn.Sequential(*dec)
        self._optim_settings: Optimizer | None = None

    # ---- internals -------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != self.image_shape:
            raise GenbenchError(f"vae expects uint8 images (B, {', '.join(map(str, self.image_shape))}); "
                                f"got {x.dtype} {tuple(x.shape)}")
        return x.to(self.device)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) = N(mu, diag(exp(logvar))); x uint8 (B, C, H, W) -> mu, logvar (B, D)."""
        h = self.encoder(x.float() * (2.0 / 255.0) - 1.0)          # (B, 2D)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)

    def decoder_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, D) -> mean, log_scale (B, C, H, W) of the discretized logistic on the [-1, 1] scale."""
        h = self.decoder_fc(z).view(-1, *self.bottom)              # (B, C', H', W')
        mean, log_scale = self.decoder_conv(h).chunk(2, dim=1)     # (B, C, H, W) each
        return mean, log_scale.clamp_min(LOG_SCALE_MIN)

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    def decoder_mean(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's location on the [0, 1] pixel scale, differentiable: z (B, D) -> (B, C, H, W). The mean of
        the Gaussian observation model under which decoder AIS scores every decoder alike (genbench.annealing)."""
        return (self.decoder_params(z)[0] + 1.0) / 2.0

    def log_px_z(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) in nats, (B,), for uint8 x (B, C, H, W) and z (B, D)."""
        mean, log_scale = self.decoder_params(z)
        return discretized_logistic_log_prob(x, mean, log_scale).flatten(1).sum(1)

    def _terms(self, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Batch means of the training objective and its parts (nats per image, bpd of the beta=1 ELBO)."""
        mu, logvar = self.posterior(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        recon = -self.log_px_z(x, mu + (0.5 * logvar).exp() * eps)  # (B,)
        kl = gaussian_kl_standard_normal(mu, logvar)                  # (B,)
        return {"loss": (recon + self.config.beta * kl).mean(),
                "bpd": bits_per_dim((recon + kl).mean(), self.num_dims),
                "recon": recon.mean(), "kl": kl.mean()}

    # ---- training --------------------------------------------------------------------------------------
    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        self._optim_settings = settings  # train_step applies its grad clip
        return {"model": settings.build(self.parameters())}

    def train_step(self, x: torch.Tensor, optimizers: dict) -> dict[str, float]:
        """One step on the negative beta-ELBO per image; z noise from torch's global RNG."""
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
        """Lower bound on log p(x) in nats per image, (B,) float64; always with beta = 1.

        k = 1: the ELBO, one reparameterized sample for E_q[log p(x|z)] plus the analytic KL.
        k > 1: the IWAE_k bound (Burda et al. 2016), log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x). All k noise
        draws are made up front, so the decoder chunking (DECODE_CHUNK images per pass) never changes a number.
        """
        x = self._check(x)
        if int(k) != k or k < 1:
            raise GenbenchError(f"log_likelihood needs an integer k >= 1, got {k!r}")
        mu, logvar = self.posterior(x)                       # (B, D)
        return gaussian_latent_bound(self.log_px_z, x, mu, logvar, k=k, generator=generator, chunk=DECODE_CHUNK)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images, uint8 (n, C, H, W): z ~ N(0, I) drawn with `generator`, then the decoder's mean image
        rounded to the nearest 8-bit value (not a draw from the discretized logistic, whose per-pixel noise
        would only add grain)."""
        z = torch.randn((n, self.config.latent_dim), generator=generator, device=self.device)
        return self.decode(z)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior mean, (B, D)."""
        return self.posterior(self._check(x))[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder mean image, rounded: z (B, D) -> uint8 (B, C, H, W)."""
        z = z.to(self.device, torch.float32)
        out = [self.decoder_params(zc)[0] for zc in z.split(DECODE_CHUNK)]
        mean = torch.cat(out) if out else z.new_empty(0, *self.image_shape)
        return to_uint8(mean)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(encode(x)): uint8 (B, C, H, W)."""
        return self.decode(self.encode(x))
