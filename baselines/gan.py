"""GANs: DCGAN, WGAN (weight clipping), WGAN-GP, SN-GAN and a GAN with R1 regularization, one Model.

Provenance
----------
- GAN: Goodfellow et al., "Generative Adversarial Nets" (NeurIPS 2014), Eq. 1 and Sec. 3: the minimax game, and
  the non-saturating generator loss -log D(G(z)) that the paper recommends in practice.
- DCGAN: Radford, Metz & Chintala (ICLR 2016): architecture in baselines/gan_nets.py; Sec. 4: Adam with
  lr 2e-4, beta1 0.5 (beta2 0.999), batch 128, weights N(0, 0.02), LeakyReLU 0.2.
- WGAN: Arjovsky, Chintala & Bottou, "Wasserstein GAN" (ICML 2017), Algorithm 1: n_critic = 5 critic updates
  per generator update, each on a fresh batch of real images and noise, followed by clipping every critic
  parameter to [-c, c], c = 0.01; RMSprop lr 5e-5; batch 64; the DCGAN architecture with batch norm in the
  critic. (The authors' code also runs 100 critic updates for the first 25 and every 500th generator
  updates; that schedule is not part of Algorithm 1 and is not reproduced.)
- WGAN-GP: Gulrajani et al., "Improved Training of Wasserstein GANs" (NeurIPS 2017), Algorithm 1 and Eq. 3:
  the critic loss plus lambda E[(||grad D(x_hat)||_2 - 1)^2] on x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1]
  per sample, lambda = 10, n_critic = 5, Adam lr 1e-4 betas (0, 0.9); no batch norm in the critic (Sec. 4).
  The CIFAR-10 ResNet recipe (Appendix; IS 7.86 unsupervised) checked in igul222/improved_wgan_training,
  gan_cifar_resnet.py: 128 channels in G and D, batch 64 for the critic and 2 x 64 fakes for the generator
  update, Adam 2e-4 betas (0, 0.9) decayed linearly to 0 over 100k generator steps, n_critic 5, lambda 10,
  z of 128; real pixels dequantized with U[0, 1/128) noise there (not here: images are exact 8-bit values).
- SN-GAN: Miyato et al., "Spectral Normalization for Generative Adversarial Networks" (ICLR 2018): spectral norm
  on every layer of D, the hinge loss (Sec. 4, used for the CIFAR-10 ResNet results), Adam 2e-4 betas (0, 0.9),
  n_dis = 5, ResNet of Table 3 / Appendix B (FID 21.7, IS 8.22 on CIFAR-10). Checked in
  pfnet-research/sngan_projection: configs/sn_cifar10_unconditional.yml (batch 64, 128 fakes per generator
  update, 50k generator iterations with linear decay from the start, G ch 256, D ch 128, dim_z 128, Adam
  0.0002 / 0.0 / 0.9, n_dis 5, hinge) and updater.py (loss_hinge_dis / loss_hinge_gen, the softplus forms of
  loss_dcgan_*; real and fake batches go through D in two calls).
- R1: Mescheder, Geiger & Nowozin, "Which Training Methods for GANs do actually Converge?" (ICML 2018), Eq. 9:
  R1 = (gamma / 2) E_{p_D}[||grad D(x)||^2] added to the discriminator loss of the non-saturating GAN,
  gamma = 10. Checked in LMescheder/GAN_stability: gan_training/train.py (one D step per G step, the penalty
  on the real batch each D step, BCE losses) and configs/*.yaml (reg_param 10, RMSprop or Adam at 1e-4,
  batch 64, z of 256). Note: that train.py adds reg_param * E||grad||^2 without the 1/2, i.e. gamma = 20 in
  the paper's notation; this file follows the paper's Eq. 9 (gamma / 2). Its ResNets (no normalization,
  residuals scaled by 0.1) target 64-1024 px and are not reproduced; the "standard" preset below uses the
  CIFAR-10 ResNet of the SN-GAN recipe without spectral norm.
- Reconstruction by latent projection: Zhu et al., "Generative Visual Manipulation on the Natural Image
  Manifold" (iGAN, ECCV 2016), Sec. 3.1, z* = argmin_z L(G(z), x) by gradient descent from random starts
  (here L = squared error on [-1, 1] pixels, Adam, the best of `projection_starts` starts per image).

Conventions and decisions
-------------------------
- Images enter and leave as uint8 (B, C, H, W); inside, pixels live on [-1, 1] (v -> v / 127.5 - 1).
- A step is one generator update (as the papers count). `batches_per_step` = n_critic: the runner hands
  `train_step` n_critic * B images and each critic update takes its own chunk of B fresh real images (as
  FactorVAE takes two halves). The generator update draws g_batch_mult * B latents (both ResNet recipes use
  2 x 64 fakes for a critic batch of 64; the default 1 gives B).
- Order within a step: n_critic critic updates (fresh z each, loss + penalty, step, then weight clipping), then
  the generator update (sngan_projection updates G first and D after; over many steps that is the same
  alternation). D sees real and fake batches in separate calls (batch norm statistics per kind; sngan_projection's
  updater also makes two calls). All noise comes from torch's global RNG, which the runner saves and restores.
- Penalties and batch norm: a per-sample gradient penalty is ill-defined when D normalizes over the batch
  (Gulrajani et al. Sec. 4), so gp_lambda / r1_gamma with d_batchnorm is a configuration error.
- The optimizer belongs to the protocol (genbench.optim.Optimizer, the same settings for G and D, built twice);
  the numbers above say what each paper used.
- eval_loss: the same keys as train_step from one batch (any size), no update, a private generator (seeded 0
  unless given) for z and the interpolation weights; penalties are computed under torch.enable_grad().
- Projection runs G in eval mode (running BN statistics) whatever its mode, so an image's result does not depend
  on its batch and no buffer changes; G's weights get no gradient. The starts are drawn with a private
  generator seeded projection_seed on every call, one (B, D) draw per start, so start 0 is the same with 1 or
  k starts. sample() uses G in the mode it is given (evaluation: eval mode, running BN statistics).
- Evaluation uses G only; the runner's EMA (if a protocol sets one) also averages D's buffers (BN statistics,
  spectral-norm vectors), which is harmless because the averaged D is never used.

Checked in tests/baselines/test_gan.py: the three losses against closed forms; the gradient penalty of a linear
critic <w, x> + b is (||w|| - 1)^2 exactly, with the right gradient in w; R1 of 0.5 x^T A x is E||A x||^2; the
critic update equals -lr times the autograd gradient of d_loss + penalty recomputed from the same noise (SGD);
weight clipping holds for every critic parameter; spectral norm brings the largest singular value of a conv and
a linear weight of D to 1 within 1e-3; each critic update gets its own chunk of real images; identical runs from
one seed and bit-exact resume from a state-dict checkpoint; projection recovers G's own samples (> 30 dB).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.baselines import gan_nets
from genbench.optim import Optimizer
from genbench.pixels import to_signed, to_uint8

ARCHS = ("dcgan", "resnet")
LOSSES = ("ns", "wasserstein", "hinge")
SAMPLE_CHUNK = 1024   # latents per generator pass in sample() (memory bound; numbers unchanged in eval mode)


@dataclass(frozen=True)
class Config:
    arch: str = "dcgan"                 # "dcgan" | "resnet" (baselines/gan_nets.py)
    latent_dim: int = 64
    g_width: int = 64                   # dcgan: channels of G's last hidden layer (doubling towards the base)
    d_width: int = 64                   # dcgan: channels of D's first layer; resnet: every block's width
    loss: str = "ns"                    # "ns" (non-saturating) | "wasserstein" | "hinge"
    n_critic: int = 1                   # critic updates per generator update (= batches_per_step)
    clip: float | None = None           # WGAN: clip every critic parameter to [-clip, clip] after each update
    gp_lambda: float | None = None      # WGAN-GP: lambda of the gradient penalty
    r1_gamma: float | None = None       # R1: (gamma / 2) E||grad_x D(x_real)||^2
    spectral_norm: bool = False         # on every conv / linear layer of D
    d_batchnorm: bool = True            # dcgan D only: batch norm on every layer but the first
    d_pool: str = "sum"                 # resnet D: global "sum" (Miyato) or "mean" (Gulrajani) pooling
    g_batch_mult: int = 1               # generator batch = g_batch_mult * B
    projection_steps: int = 500         # Adam steps per projection (reconstruct / project)
    projection_lr: float = 0.1
    projection_starts: int = 4          # random starts per image; the best one is kept
    projection_seed: int = 0

    def __post_init__(self):
        def bad(why: str):
            raise GenbenchError(f"gan: invalid config ({why}): {self}")

        if self.arch not in ARCHS:
            bad(f"arch must be one of {ARCHS}")
        if self.loss not in LOSSES:
            bad(f"loss must be one of {LOSSES}")
        if min(self.latent_dim, self.g_width, self.d_width, self.n_critic, self.g_batch_mult,
               self.projection_starts) < 1 or self.projection_steps < 0 or not self.projection_lr > 0:
            bad("sizes, counts and the projection lr must be positive")
        for name in ("clip", "gp_lambda", "r1_gamma"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                bad(f"{name} must be a positive number or None")
        if self.d_pool not in ("sum", "mean"):
            bad("d_pool must be 'sum' or 'mean'")
        if self.d_batchnorm and self.arch == "resnet":
            bad("the resnet D has no batch norm; set d_batchnorm=False")
        if self.d_batchnorm and (self.gp_lambda or self.r1_gamma):
            bad("a per-sample gradient penalty needs a D without batch norm (Gulrajani et al. Sec. 4); "
                "set d_batchnorm=False")


def _presets(base: Config, small: dict, standard: dict, smoke: dict | None = None) -> dict[str, Config]:
    """smoke / small / standard of one variant: its own settings in `base`, sizes (and arch) per preset."""
    smoke = dict(latent_dim=8, g_width=8, d_width=8, projection_steps=100, projection_starts=2, **(smoke or {}))
    small = dict(latent_dim=64, projection_steps=100, projection_starts=2, **small)
    return {"smoke": dataclasses.replace(base, **smoke), "small": dataclasses.replace(base, **small),
            "standard": dataclasses.replace(base, **standard)}


# "small" is the quick tier: Fashion-MNIST 28x28 on a 2-core CPU. Figures are generator steps per second at
# batch 64 on 28x28 with 2 threads (1 thread), measured on a 2-core CPU shared with other jobs (so +-30%):
# 3000-5000 generator steps take about 8 minutes. The critic-heavy variants (n_critic 5) get narrower networks.
# Projection (reconstruct) at small: 100 Adam steps from 2 starts, ~11 images/s for the dcgan G on one thread;
# on a 600-step dcgan of Fashion-MNIST test images it reached 19.0 dB PSNR
# (500 steps from 1 start: 20.4 dB at 4.7 images/s), so a quick protocol should score a subset of ~1000 images.
_RESNET_CIFAR = dict(arch="resnet", latent_dim=128, d_batchnorm=False)
VARIANTS: dict[str, dict[str, Config]] = {
    # Radford et al. 2016: Fig. 1 G (1024 channels at 4x4 for 64x64, i.e. g_width 128), D of the authors'
    # dcgan.torch (ndf 64), z of 100. small: 10 (6.8) steps/s.
    "dcgan": _presets(Config(loss="ns", d_batchnorm=True), small=dict(g_width=64, d_width=64),
                      standard=dict(latent_dim=100, g_width=128, d_width=64)),
    # Arjovsky et al. 2017: the DCGAN G/D with batch norm in the critic (reference code ngf = ndf = 64, nz 100),
    # clip 0.01, n_critic 5. small: 6.7 (5.4) steps/s.
    "wgan": _presets(Config(loss="wasserstein", n_critic=5, clip=0.01, d_batchnorm=True),
                     small=dict(g_width=32, d_width=32), standard=dict(latent_dim=100, g_width=64, d_width=64)),
    # Gulrajani et al. 2017: lambda 10, n_critic 5, no batch norm in the critic; standard: the CIFAR-10 ResNet
    # (128 / 128, mean pooling, 2 x B fakes per generator update). small: 6.0 (6.1) steps/s; a critic of width 32
    # would run at ~2.3 (1 thread): the penalty's double backward runs in each of the 5 critic updates.
    "wgan-gp": _presets(Config(loss="wasserstein", n_critic=5, gp_lambda=10.0, d_batchnorm=False),
                        small=dict(g_width=32, d_width=16),
                        standard=dict(**_RESNET_CIFAR, g_width=128, d_width=128, d_pool="mean", g_batch_mult=2),
                        smoke=dict(arch="resnet", d_pool="mean")),
    # Miyato et al. 2018: hinge loss, spectral norm on every layer of D, n_dis 5 (the setting of their CIFAR-10
    # ResNet and of Adam (0, 0.9)); standard: the CIFAR-10 ResNet of Table 3 (G 256, D 128, sum pooling, 2 x B
    # fakes per generator update). small: the DCGAN-style "standard CNN" at wgan's widths, since n_dis = 5 makes D
    # the cost.
    "sngan": _presets(Config(loss="hinge", n_critic=5, spectral_norm=True, d_batchnorm=False),
                      small=dict(g_width=32, d_width=32),
                      standard=dict(**_RESNET_CIFAR, g_width=256, d_width=128, g_batch_mult=2),
                      smoke=dict(arch="resnet")),
    # Mescheder et al. 2018: non-saturating loss + R1 with gamma 10, one D step per G step, no batch norm in D;
    # standard: the CIFAR-10 ResNet of the SN-GAN recipe without spectral norm (see the provenance note).
    # small: 10.8 (7.9) steps/s (R1's double backward makes D the cost, hence D 32).
    "gan-r1": _presets(Config(loss="ns", r1_gamma=10.0, d_batchnorm=False), small=dict(g_width=64, d_width=32),
                       standard=dict(**_RESNET_CIFAR, g_width=256, d_width=128)),
}
PRESETS = VARIANTS["dcgan"]

DESCRIPTIONS: dict[str, str] = {
    "dcgan": "DCGAN (Radford et al. 2016): convolutional G/D with batch norm, non-saturating loss",
    "wgan": "WGAN (Arjovsky et al. 2017): Wasserstein critic with weight clipping, 5 critic updates per G update",
    "wgan-gp": "WGAN-GP (Gulrajani et al. 2017): Wasserstein critic with a gradient penalty (lambda 10)",
    "sngan": "SN-GAN (Miyato et al. 2018): spectrally normalized discriminator, hinge loss",
    "gan-r1": "GAN with R1 (Mescheder et al. 2018): non-saturating loss, gradient penalty on real data (gamma 10)",
}


# ---- losses and penalties (pure functions of logits / of D) ---------------------------------------------
def d_loss(loss: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator (critic) loss to minimize, from logits r = D(x) (B,) and f = D(G(z)) (B',).
    ns: E[-log sigmoid(r)] + E[-log(1 - sigmoid(f))] = E[softplus(-r)] + E[softplus(f)] (Goodfellow Eq. 1);
    wasserstein: E[f] - E[r] (Arjovsky Algorithm 1); hinge: E[relu(1 - r)] + E[relu(1 + f)] (Miyato et al. Sec. 4,
    sngan_projection's loss_hinge_dis)."""
    if loss == "ns":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if loss == "wasserstein":
        return fake_logits.mean() - real_logits.mean()
    if loss == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    raise GenbenchError(f"unknown GAN loss {loss!r}; expected one of {LOSSES}")


def g_loss(loss: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss to minimize: ns E[-log sigmoid(f)] = E[softplus(-f)]; wasserstein and hinge -E[f]."""
    if loss == "ns":
        return F.softplus(-fake_logits).mean()
    if loss in ("wasserstein", "hinge"):
        return -fake_logits.mean()
    raise GenbenchError(f"unknown GAN loss {loss!r}; expected one of {LOSSES}")


def _input_grad(D: nn.Module, x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """grad_x sum_i D(x)_i, (B, ...): per-sample input gradients (D treats samples independently)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=create_graph)
    return grad


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, *,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Gulrajani et al. Eq. 3 without lambda: E[(||grad D(x_hat)||_2 - 1)^2] over x_hat = eps x + (1 - eps) x~,
    eps ~ U[0, 1] per sample drawn with `generator` (the global RNG if None). real, fake: (B, C, H, W) floats.
    Differentiable w.r.t. D's parameters when called with grad enabled."""
    if real.shape != fake.shape:
        raise GenbenchError(f"gradient_penalty needs real and fake batches of one shape; got {tuple(real.shape)} "
                            f"and {tuple(fake.shape)}")
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), generator=generator, device=real.device,
                     dtype=real.dtype)                                         # (B, 1, 1, 1)
    x_hat = eps * real.detach() + (1 - eps) * fake.detach()                    # (B, C, H, W)
    grad = _input_grad(D, x_hat, create_graph=torch.is_grad_enabled())        # (B, C, H, W)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def r1_penalty(D: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """Mescheder et al. Eq. 9 without gamma / 2: E[||grad_x D(x)||^2] on real images, the squared gradient summed
    over pixels and averaged over the batch. real: (B, C, H, W) floats."""
    grad = _input_grad(D, real, create_graph=torch.is_grad_enabled())        # (B, C, H, W)
    return grad.pow(2).flatten(1).sum(1).mean()


# ---- the model --------------------------------------------------------------------------------------------
class Model(nn.Module):
    reconstruction = "latent projection: argmin_z ||G(z) - x||^2 by Adam from seeded starts (Zhu et al. 2016)"
    family = "gan"

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        if not isinstance(config, Config):
            raise GenbenchError(f"gan: expected a gan.Config, got {type(config).__name__}")
        C, H, W = image_shape
        if H != W or H not in gan_nets.SIDES or C < 1:
            raise GenbenchError(f"gan: unsupported image shape {tuple(image_shape)}; supported are square images of "
                                f"side {sorted(gan_nets.SIDES)} (add an entry to SIDES in baselines/gan_nets.py "
                                "for another side that halves exactly to a small base)")
        self.config, self.image_shape = config, (C, H, W)
        self.latent_dim = config.latent_dim
        self.G, self.D = gan_nets.build(config, C, H)
        self._optim_settings: Optimizer | None = None

    @property
    def batches_per_step(self) -> int:
        return self.config.n_critic

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise GenbenchError(f"gan expects uint8 images (B, {', '.join(map(str, self.image_shape))}); "
                                f"got {x.dtype} {tuple(x.shape)}")
        return x.to(self.device)

    def _z(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn((n, self.latent_dim), generator=generator, device=self.device)

    # ---- training --------------------------------------------------------------------------------------
    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        self._optim_settings = settings  # train_step applies its grad clip to each network
        return {"generator": settings.build(self.G.parameters()),
                "discriminator": settings.build(self.D.parameters())}

    def _critic_terms(self, real: torch.Tensor, fake: torch.Tensor,
                      generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Critic loss and its parts for real (B, C, H, W) and fake (B, C, H, W) on [-1, 1]; "total" adds the
        configured penalty."""
        cfg = self.config
        r, f = self.D(real), self.D(fake)                                      # (B,), (B,)
        terms = {"d_loss": d_loss(cfg.loss, r, f), "d_real": r.mean(), "d_fake": f.mean()}
        total = terms["d_loss"]
        if cfg.loss == "wasserstein":
            terms["wasserstein"] = r.mean() - f.mean()
        if cfg.gp_lambda:
            terms["gp"] = gradient_penalty(self.D, real, fake, generator=generator)
            total = total + cfg.gp_lambda * terms["gp"]
        if cfg.r1_gamma:
            terms["r1"] = r1_penalty(self.D, real)
            total = total + 0.5 * cfg.r1_gamma * terms["r1"]
        terms["total"] = total
        return terms

    def train_step(self, x: torch.Tensor, optimizers: dict) -> dict[str, float]:
        """One generator update after n_critic critic updates; x uint8 (n_critic * B, C, H, W), chunk i feeds
        critic update i. Noise from torch's global RNG."""
        x = self._check(x)
        cfg, k = self.config, self.config.n_critic
        if len(x) == 0 or len(x) % k:
            raise GenbenchError(f"gan: train_step got {len(x)} images; with n_critic={k} it needs n_critic * B "
                                f"images (B = batch size >= 1), one fresh batch of B per critic update")
        B = len(x) // k
        opt_g, opt_d = optimizers["generator"], optimizers["discriminator"]
        clip_grads = self._optim_settings.clip if self._optim_settings is not None else (lambda params: None)
        real_all = to_signed(x).view(k, B, *self.image_shape)            # (k, B, C, H, W)
        for real in real_all:                                                  # Algorithm 1's inner loop
            with torch.no_grad():
                fake = self.G(self._z(B, None))                                # (B, C, H, W), no grad into G
            terms = self._critic_terms(real, fake, None)
            opt_d.zero_grad(set_to_none=True)
            terms["total"].backward()
            clip_grads(self.D.parameters())
            opt_d.step()
            if cfg.clip is not None:
                with torch.no_grad():
                    for p in self.D.parameters():
                        p.clamp_(-cfg.clip, cfg.clip)
        fake = self.G(self._z(cfg.g_batch_mult * B, None))                     # (g_batch_mult * B, C, H, W)
        loss_g = g_loss(cfg.loss, self.D(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward(inputs=list(self.G.parameters()))                      # D's gradients stay untouched
        clip_grads(self.G.parameters())
        opt_g.step()
        out = {k_: float(v.detach()) for k_, v in terms.items() if k_ != "total"}
        return {"loss": float(loss_g.detach()), "g_loss": float(loss_g.detach()), **out}

    def eval_loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, float]:
        """Same keys as train_step on one batch of real images (any size B), B fakes, no update. Without a
        generator, a private one seeded 0 is used, so the value is deterministic and the global RNG is never
        advanced. No grad except inside the penalties."""
        x = self._check(x)
        if generator is None:
            generator = torch.Generator(device=self.device).manual_seed(0)
        with torch.no_grad():
            real = to_signed(x)                                            # (B, C, H, W)
            fake = self.G(self._z(len(x), generator))                          # (B, C, H, W)
            terms = self._critic_terms(real, fake, generator)
            loss_g = g_loss(self.config.loss, self.D(fake))
        out = {k: float(v) for k, v in terms.items() if k != "total"}
        return {"loss": float(loss_g), "g_loss": float(loss_g), **out}

    # ---- evaluation ------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images, uint8 (n, C, H, W): z ~ N(0, I) drawn with `generator`, G(z) rounded to 8 bits."""
        z = self._z(n, generator)                                              # (n, D), drawn in one go
        return self.decode(z)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) rounded: z (B, D) -> uint8 (B, C, H, W)."""
        z = z.to(self.device, torch.float32)
        out = [to_uint8(self.G(zc)) for zc in z.split(SAMPLE_CHUNK)]
        return torch.cat(out) if out else torch.empty(0, *self.image_shape, dtype=torch.uint8, device=self.device)

    def decoder_mean(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) on the [0, 1] pixel scale, differentiable: z (B, D) -> (B, C, H, W). The mean of the Gaussian
        observation model N(x; G(z), sigma^2 I) under which decoder AIS scores a generator (Wu et al. 2017)."""
        return (self.G(z) + 1.0) / 2.0

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Zhu et al. 2016 Sec. 3.1: z* = argmin_z ||G(z) - x||^2 by Adam from projection_starts random starts;
        x uint8 (B, C, H, W) -> z* (B, D) and G(z*) (B, C, H, W) on [-1, 1]."""
        cfg = self.config
        x = self._check(x)
        B, S = len(x), cfg.projection_starts
        target = to_signed(x).repeat(S, 1, 1, 1)                           # (S B, C, H, W), start-major
        g = torch.Generator(device=self.device).manual_seed(cfg.projection_seed)
        # one draw per start, so start 0 is the same whatever the number of starts
        z = torch.cat([torch.randn((B, self.latent_dim), generator=g, device=self.device) for _ in range(S)])
        z.requires_grad_(True)                                                 # (S B, D), start-major
        opt = torch.optim.Adam([z], lr=cfg.projection_lr)
        was_training = self.G.training
        self.G.eval()  # running BN statistics: per-image results, no buffer updates
        try:
            with torch.enable_grad():
                for _ in range(cfg.projection_steps):
                    err = (self.G(z) - target).pow(2).flatten(1).mean(1)       # (S B,) per-image MSE
                    (z.grad,) = torch.autograd.grad(err.sum(), z)              # no gradient into G's weights
                    opt.step()
            with torch.no_grad():
                img = self.G(z)                                                # (S B, C, H, W)
                err = (img - target).pow(2).flatten(1).mean(1).view(S, B)      # (S, B)
                best = err.argmin(0)                                           # (B,) best start per image
                idx = best * B + torch.arange(B, device=self.device)           # rows of the start-major batch
                return z.detach()[idx], img[idx]
        finally:
            self.G.train(was_training)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Latent projection z* (B, D) of uint8 images x (B, C, H, W)."""
        return self._project(x)[0]

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """G(z*) rounded: uint8 (B, C, H, W), z* the latent projection of x."""
        return to_uint8(self._project(x)[1])
