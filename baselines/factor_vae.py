"""FactorVAE: a VAE with a total-correlation penalty estimated by a discriminator (dSprites).

Provenance
----------
- Kim & Mnih, "Disentangling by Factorising" (ICML 2018, arXiv:1802.05983):
  Eq. 2, the objective (1/N) sum_i [E_q[log p(x_i|z)] - KL(q(z|x_i) || p(z))] - gamma KL(q(z) || q_bar(z)),
  with q_bar(z) = prod_j q(z_j) and KL(q(z) || q_bar(z)) the total correlation (TC) of q(z);
  Sec. 2 and Eq. 3, the density-ratio trick: a discriminator D outputs the probability that z came from q(z)
  rather than q_bar(z), and TC ~= E_q(z)[log D(z) / (1 - D(z))];
  Algorithm 1, permute_dims: samples of q_bar(z) by permuting each latent dimension across the batch;
  Algorithm 2, training: the VAE on one batch (ELBO - gamma * TC estimate), then the discriminator on that
  batch's z against the permuted z of a second batch, by cross-entropy;
  Appendix (architecture tables): the same conv encoder / deconv decoder as beta-VAE on dSprites, and the
  discriminator, 6 dense layers of 1000 units with LeakyReLU (0.2), 2 output logits;
  Adam lr 1e-4 betas (0.9, 0.999) for the VAE and lr 1e-4 betas (0.5, 0.9) for the discriminator, batch 64.
  gamma = 35 on dSprites: the best-scoring FactorVAE on their disentanglement metric (Fig. 6, beside the
  best beta-VAE, beta = 4). disentanglement_lib's study (Locatello et al., ICML 2019) sweeps gamma in
  [10, 20, 30, 40, 50, 100] (config/unsupervised_study_v1/sweep.py).
- Reference implementation: google-research/disentanglement_lib, methods/unsupervised/vae.py `FactorVAE`
  (TC = mean(logit_0 - logit_1); discriminator loss 0.5 (log D(z) + log (1 - D(z_perm))); `shuffle_codes`),
  methods/shared/architectures.py `fc_discriminator`, and config/unsupervised_study_v1/model_configs/shared.gin
  (the two Adam settings above). disentanglement_lib permutes the codes of the VAE's own batch; this file
  follows Algorithm 2's two batches (below).
- Encoder, decoder, Bernoulli likelihood, ELBO / IWAE: shared with baselines/beta_vae.py (imported) and
  genbench.metrics.likelihood.

Decisions
---------
- Two batches from one: the runner hands one batch of B images per step. Its first ceil(B/2) images are the
  VAE batch (ELBO and TC terms, Algorithm 2's x), its last floor(B/2) images the discriminator's second batch
  (Algorithm 2's x'), whose z is permuted. So B = 128 reproduces the paper's batch of 64. Both halves go
  through the encoder in one pass before the update (disentanglement_lib also encodes before updating).
- Each step: the VAE loss backpropagates into the encoder/decoder only, the discriminator loss into the
  discriminator only (z detached), both from the same forward pass; then both optimizers step.
- Randomness: the reparameterization noise and the permutations come from torch's global RNG inside
  train_step (the runner saves and restores it), never from Python's `random`; eval_loss uses a private
  generator and leaves the global RNG alone.
- The discriminator's optimizer is fixed by Config (disc_lr, disc_betas), so it is part of the hashed protocol;
  the protocol's `Optimizer` (and its grad clip) applies to the VAE.
- log_likelihood, sample, encode, decode, reconstruct: those of beta_vae.Model (the VAE part, no gamma).

Checked in tests/baselines/test_factor_vae.py: permute_dims keeps every marginal exactly; on a correlated
Gaussian toy the discriminator separates q(z) from its permuted product and its TC estimate approaches the
analytic TC, and is near 0 for independent z; the halves feed the right terms; log_likelihood does not
depend on gamma and equals beta-VAE's on the same weights; exact resume; a pinned loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.baselines import beta_vae
from genbench.baselines.beta_vae import glorot_init, soft_bernoulli_nll
from genbench.metrics.likelihood import bits_per_dim, gaussian_kl_standard_normal
from genbench.optim import Optimizer

DESCRIPTION = "FactorVAE (Kim & Mnih 2018): VAE + discriminator-estimated total correlation, Bernoulli pixels"


@dataclass(frozen=True)
class Config:
    latent_dim: int = 10
    channels: tuple[int, ...] = (32, 32, 64, 64)  # encoder convs (4x4, stride 2); the decoder mirrors them
    hidden: int = 256                             # dense layer between convolutions and latent, both ways
    gamma: float = 35.0                           # TC weight in the training loss; evaluation ignores it
    disc_hidden: int = 1000                       # discriminator: disc_layers dense layers of disc_hidden
    disc_layers: int = 6
    disc_lr: float = 1e-4                         # discriminator Adam (Kim & Mnih, Appendix)
    disc_betas: tuple[float, float] = (0.5, 0.9)

    def __post_init__(self):
        if self.latent_dim < 1 or not self.channels or min(self.channels) < 1 or self.hidden < 1 \
                or not self.gamma >= 0 or self.disc_hidden < 1 or self.disc_layers < 1 or not self.disc_lr > 0:
            raise GenbenchError(f"factor-vae: invalid config {self}")


PRESETS: dict[str, Config] = {
    # seconds on a CPU: tests and CI
    "smoke": Config(latent_dim=4, channels=(8, 8, 16, 16), hidden=32, disc_hidden=32, disc_layers=2),
    # quick tier (2-core CPU, ~10 minutes): beta_vae's "small" VAE and a 6 x 256 discriminator (6 x 1000 would
    # halve the CPU throughput)
    "small": Config(latent_dim=10, channels=(16, 16, 32, 32), hidden=128, disc_hidden=256, disc_layers=6),
    # Kim & Mnih 2018 / disentanglement_lib on dSprites: 10 latents, gamma = 35, discriminator 6 x 1000
    "standard": Config(latent_dim=10, channels=(32, 32, 64, 64), hidden=256, gamma=35.0),
}


class Discriminator(nn.Module):
    """z (B, D) -> logits (B, 2); softmax column 0 is D(z) = P(z drawn from q(z)), column 1 from q_bar(z)."""

    def __init__(self, latent_dim: int, hidden: int, layers: int):
        super().__init__()
        mlp: list[nn.Module] = []
        prev = latent_dim
        for _ in range(layers):
            mlp += [nn.Linear(prev, hidden), nn.LeakyReLU(0.2)]
            prev = hidden
        mlp.append(nn.Linear(prev, 2))
        self.net = nn.Sequential(*mlp)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def permute_dims(z: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Algorithm 1 of Kim & Mnih: an independent random permutation of the batch for each latent dimension.

    z (B, D) -> z_perm (B, D) with z_perm[i, j] = z[pi_j(i), j]: every column keeps its values exactly, the
    dependence between columns is broken, so the rows are samples of prod_j q(z_j).
    """
    pi = torch.rand(z.shape, generator=generator, device=z.device).argsort(dim=0)  # (B, D), a permutation per column
    return z.gather(0, pi)


def tc_estimate(logits: torch.Tensor) -> torch.Tensor:
    """Density-ratio estimate of log q(z) / q_bar(z) per sample: log D / (1 - D) = logit_0 - logit_1, (B,)."""
    return logits[:, 0] - logits[:, 1]


def discriminator_loss(logits_q: torch.Tensor, logits_perm: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the discriminator: samples of q(z) are class 0, permuted samples class 1.
    -0.5 (E[log D(z)] + E[log (1 - D(z_perm))]), as Algorithm 2 and disentanglement_lib."""
    return 0.5 * (F.cross_entropy(logits_q, torch.zeros(len(logits_q), dtype=torch.long, device=logits_q.device))
                  + F.cross_entropy(logits_perm, torch.ones(len(logits_perm), dtype=torch.long,
                                                            device=logits_perm.device)))


def discriminator_accuracy(logits_q: torch.Tensor, logits_perm: torch.Tensor) -> torch.Tensor:
    """Mean of the two class accuracies (0.5 = chance)."""
    return 0.5 * ((logits_q.argmax(1) == 0).float().mean() + (logits_perm.argmax(1) == 1).float().mean())


class Model(beta_vae.Model):
    family = "factor-vae"

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)  # encoder, decoder (Glorot-initialized)
        self.discriminator = Discriminator(config.latent_dim, config.disc_hidden, config.disc_layers)
        self.discriminator.apply(glorot_init)

    def vae_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def _terms(self, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Both losses and their parts for one batch x (B, C, H, W) split as in Algorithm 2 (module docstring)."""
        B = x.shape[0]
        if B < 2:
            raise GenbenchError(f"factor-vae needs batches of at least 2 images (one half trains the VAE, the "
                                f"other the discriminator); got {B}")
        n = B - B // 2                                                    # VAE half: ceil(B / 2)
        mu, logvar = self.posterior(x)                                    # (B, D), both halves in one pass
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        z = mu + (0.5 * logvar).exp() * eps                               # (B, D) ~ q(z|x)
        z1, z2 = z[:n], z[n:].detach()                                    # (n, D), (B - n, D)
        recon = soft_bernoulli_nll(x[:n], self.decoder(z1))               # (n,)
        kl = gaussian_kl_standard_normal(mu[:n], logvar[:n])              # (n,)
        logits_q = self.discriminator(z1)                                 # (n, 2)
        tc = tc_estimate(logits_q)                                        # (n,)
        logits_perm = self.discriminator(permute_dims(z2, generator=generator))   # (B - n, 2)
        return {"loss": (recon + kl + self.config.gamma * tc).mean(),
                "disc_loss": discriminator_loss(logits_q, logits_perm),  # D's weights only get its gradient
                "bpd": bits_per_dim((recon + kl).mean(), self.num_dims),
                "recon": recon.mean(), "kl": kl.mean(), "tc": tc.mean(),
                "disc_acc": discriminator_accuracy(logits_q, logits_perm)}

    # ---- training --------------------------------------------------------------------------------------
    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        self._optim_settings = settings  # train_step applies its grad clip to the VAE
        disc = Optimizer(name="adam", lr=self.config.disc_lr, betas=self.config.disc_betas)
        return {"model": settings.build(self.vae_parameters()),
                "discriminator": disc.build(self.discriminator.parameters())}

    def train_step(self, x: torch.Tensor, optimizers: dict) -> dict[str, float]:
        """One step of Kim & Mnih's Algorithm 2: the VAE on -(ELBO - gamma TC), the discriminator on its
        cross-entropy; noise and permutations from torch's global RNG."""
        x = self._check(x)
        opt_vae, opt_d = optimizers["model"], optimizers["discriminator"]
        opt_vae.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        terms = self._terms(x, generator=None)
        vae_params, d_params = self.vae_parameters(), list(self.discriminator.parameters())
        # The VAE loss reaches D's weights through the TC term, and the discriminator loss reaches the encoder
        # through D(z1): `inputs=` keeps each gradient to its own network.
        terms["loss"].backward(inputs=vae_params, retain_graph=True)
        terms["disc_loss"].backward(inputs=d_params)
        if self._optim_settings is not None:
            self._optim_settings.clip(vae_params)
        opt_vae.step()
        opt_d.step()
        return {k: float(v.detach()) for k, v in terms.items()}
