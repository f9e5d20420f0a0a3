"""BigGAN at small scale: a class-conditional GAN with a projection discriminator and the truncation trick.

Provenance
----------
- BigGAN: Brock, Donahue & Simonyan, "Large Scale GAN Training for High Fidelity Natural Image Synthesis"
  (ICLR 2019). Sec. 3: class-conditional batch norm in G whose gains and biases are linear maps of a shared
  class embedding ("shared embedding"), with chunks of z concatenated to it per block ("hierarchical latent
  space", skip-z); spectral normalization in G and D; the hinge loss; orthogonal regularization (Sec. 3.1,
  Eq. 3: R_beta(W) = beta ||W^T W (.) (1 - I)||_F^2, beta = 1e-4); an exponential moving average of G's
  weights for evaluation; the truncation trick (Sec. 3.1: z drawn from a normal truncated to [-tau, tau],
  trading variety for fidelity; Fig. 4: the FID / IS curve over tau). Appendix: CIFAR-10 IS 9.22, FID 14.73.
- Projection discriminator: Miyato & Koyama, "cGANs with Projection Discriminator" (ICLR 2018), Eq. 3:
  D(x, y) = psi(phi(x)) + <embed(y), phi(x)>, phi the features after the last ReLU and global sum pooling,
  psi a linear layer, embed a (spectrally normalized) class embedding.
- Reference implementation: ajbrock/BigGAN-PyTorch (checked: BigGAN.py G_arch / D_arch for 32x32, i.e. three
  up blocks of 4 * G_ch channels from a 4x4 base and D blocks of 4 * D_ch, downsampling in the first two of four;
  layers.py ccbn (BN without affine, gain 1 + W_g c, bias W_b c; per-layer nn.Embedding of the class when G has
  no shared embedding) and GBlock / DBlock (the SN-GAN residual blocks); utils.py ortho (W flattened to
  (out, fan_in), rows pairwise orthogonal, the shared embedding exempt) and ema (over the whole state dict,
  with a start step); train_fns.py (num_D_steps critic updates, each on its own batch of real images, fake
  classes drawn uniformly at random); scripts/launch_cifar_ema.sh: batch 50, 4 D steps per G step, Adam
  2e-4 / 2e-4 with betas (0, 0.999), N(0, 0.02) initialization, no shared embedding, no hierarchical z, no
  orthogonal regularization, no attention, EMA 0.9999 from step 1000, 500 epochs).

Conventions and decisions
-------------------------
- Images enter and leave as uint8 (B, C, H, W), pixels live on [-1, 1] inside (baselines/gan.py's convention);
  the residual blocks and sizes are those of baselines/gan_nets.py (28x28 from a 7x7 base with two up
  blocks, 32x32 from 4x4 with three); G's batch norm is class-conditional. No self-attention (the CIFAR
  script has none either).
- A step is one generator update after `n_critic` critic updates, each on its own chunk of B real images and
  their labels (the runner hands n_critic * B images and labels). The classes of the fake images are drawn
  uniformly from torch's global RNG, as BigGAN-PyTorch does; evaluation asks for the training split's class
  proportions (genbench.metrics.conditional.label_plan).
- Orthogonal regularization follows the paper's Eq. 3 on every G weight with two or more axes (the raw weight
  under the spectral-norm parametrization, as BigGAN-PyTorch applies it to the SN layer's parameter), the
  shared embedding exempt. BigGAN-PyTorch adds the gradient 2 beta (W W^T (.) (1 - I)) W directly, which is
  the gradient of (beta / 2) R; here the penalty itself enters the loss, so its `ortho` is twice the code's
  G_ortho for the same update.
- Truncation: z ~ N(0, I) truncated to [-tau, tau] elementwise, drawn exactly by the inverse CDF of one
  uniform draw per entry (the paper resamples out-of-range values; both give the truncated normal, this one
  consumes a fixed number of random numbers). truncation=None draws z ~ N(0, I) with randn.
- Evaluation uses the runner's EMA of the whole state dict (protocol `ema`, from `ema_start`), as BigGAN-
  PyTorch's ema does, and then adapts two kinds of buffers to the averaged weights (`prepare_evaluation`, which
  genbench.evalkit.load_weights calls on every model that declares it): (1) the averaged spectral-norm vectors u, v
  are no longer unit vectors (norms 0.27-0.43 in the quick run's G), so u^T W v underestimates sigma and the
  weights blow up; `power_iterations` of the power method from their directions re-estimate them for the
  averaged W; (2) G's batch-norm statistics are recomputed for the averaged weights ("standing statistics",
  BigGAN-PyTorch's accumulate_standing_stats, which its README recommends with EMA): reset, then the plain
  average of the batch statistics of `standing_batches` training-mode passes of `standing_batch_size` latents
  and uniform classes drawn from a generator seeded `standing_seed`. Measured on the quick run's EMA weights
  (5,000 samples, lenet FID against 20,000 training images, class accuracy): as saved 322.7 / 0.15; unit u, v
  with the running statistics 81.1 / 0.82; unit u, v and standing statistics 76.9 / 0.84.
- Not built: latent projection (a class-conditional reconstruction would need the label), decoder AIS, and
  BigGAN-deep.

Checked in tests/baselines/test_biggan.py: orthogonal regularization and its gradient against closed forms
(zero on orthogonal rows; W = [[1, 1], [0, 1]]; the gradient 4 (W W^T (.) (1 - I)) W); refreshed spectral-norm
vectors give every G layer a largest singular value of 1 after its vectors were shrunk as an EMA shrinks them; the
projection term of D equals <embed(y), phi(x)> and only it depends on y; conditional batch norm against the hand
formula; the truncated normal's variance against 1 - 2 tau phi(tau) / (2 Phi(tau) - 1) and its bound; hierarchical z
feeds each block its own chunk; standing statistics equal the batch statistics of the seeded passes and touch
nothing
else; same seed, same weights; bit-exact resume from a state-dict checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from genbench import GenbenchError
from genbench.baselines import gan_nets
from genbench.baselines.gan import d_loss, g_loss
from genbench.optim import Optimizer
from genbench.pixels import to_signed, to_uint8

DESCRIPTION = ("BigGAN (Brock et al. 2019): class-conditional G (shared embedding, conditional batch norm, "
               "hierarchical z), projection D, spectral norm, hinge loss, orthogonal regularization, truncation")
SAMPLE_CHUNK = 1024   # latents per generator pass in sample()


@dataclass(frozen=True)
class Config:
    num_classes: int = 10
    latent_dim: int = 120             # with `hierarchical`, split evenly over the base and every G block
    g_width: int = 64                 # channels of every G block (BigGAN-PyTorch's 4 * G_ch at 32x32)
    d_width: int = 64                 # channels of every D block (4 * D_ch)
    shared_dim: int = 128             # shared class embedding feeding every conditional BN; 0 = none
    hierarchical: bool = True         # chunks of z concatenated to the shared embedding per block (skip-z)
    n_critic: int = 2                 # critic updates per generator update (= batches_per_step)
    ortho: float = 1e-4               # beta of Eq. 3 on G's weights; 0 = off
    g_spectral_norm: bool = True      # D always has it
    g_batch_mult: int = 1             # generator batch = g_batch_mult * B
    power_iterations: int = 20        # evaluation: spectral-norm vectors re-estimated for the averaged weights
    standing_batches: int = 16        # evaluation: G's BN statistics averaged over this many batches; 0 = running
    standing_batch_size: int = 64
    standing_seed: int = 0

    def __post_init__(self):
        def bad(why: str):
            raise GenbenchError(f"biggan: invalid config ({why}): {self}")

        if min(self.num_classes, self.latent_dim, self.g_width, self.d_width, self.n_critic,
               self.g_batch_mult, self.standing_batch_size) < 1 or \
                min(self.shared_dim, self.standing_batches, self.power_iterations) < 0:
            bad("sizes and counts must be positive (shared_dim, standing_batches, power_iterations may be 0)")
        if not (self.ortho >= 0 and math.isfinite(self.ortho)):
            bad("ortho must be a finite number >= 0")
        if self.hierarchical and not self.shared_dim:
            bad("hierarchical z is concatenated to the shared embedding; set shared_dim > 0")


# "small" is the quick tier: Fashion-MNIST 28x28 on a 2-core CPU (protocols in genbench/protocols/biggan.py).
# The paper's ImageNet settings where they fit (shared embedding, hierarchical z, orthogonal regularization,
# 2 D steps per G step), narrower nets. "standard" is BigGAN-PyTorch's CIFAR-10 script (see the provenance).
PRESETS: dict[str, Config] = {
    "smoke": Config(latent_dim=12, g_width=8, d_width=8, shared_dim=8),
    "small": Config(latent_dim=96, g_width=32, d_width=32, shared_dim=64),
    "standard": Config(latent_dim=128, g_width=256, d_width=256, shared_dim=0, hierarchical=False, n_critic=4,
                       ortho=0.0),
}


# ---- regularization and the truncated prior (pure functions) ----------------------------------------------
def orthogonal_penalty(weight: torch.Tensor) -> torch.Tensor:
    """Eq. 3 without beta: ||W W^T (.) (1 - I)||_F^2 of the weight flattened to (out, fan_in), i.e. the squared
    inner products of every pair of distinct filters, each pair counted twice."""
    w = weight.flatten(1)                                                      # (out, fan_in)
    gram = w @ w.t()                                                           # (out, out)
    return (gram.pow(2).sum() - gram.diagonal().pow(2).sum())


def truncated_normal(shape: tuple[int, ...], threshold: float, *, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """float32 draws of N(0, 1) conditioned on |z| <= threshold: Phi^-1(U(Phi(-t), Phi(t))), in float64 inside."""
    if not (threshold > 0 and math.isfinite(threshold)):
        raise GenbenchError(f"the truncation threshold must be a positive number, got {threshold}")
    lo = 0.5 * math.erfc(threshold / math.sqrt(2))                           # Phi(-t)
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    z = torch.special.ndtri(lo + u * (1 - 2 * lo))
    return z.clamp(-threshold, threshold).float()                              # ndtri's last ulp stays inside


@torch.no_grad()
def refresh_spectral_norms(net: nn.Module, iterations: int) -> None:
    """Re-estimate the power-method vectors of every spectral-norm parametrization in `net` for its current weight
    (dim 0, as torch's spectral_norm uses for Conv2d / Linear / Embedding): from the stored directions, `iterations`
    steps of v = W^T u / |W^T u|, u = W v / |W v|, so that u^T W v is the top singular value of W again."""
    for module in net.modules():
        if not parametrize.is_parametrized(module, "weight"):
            continue
        for p in module.parametrizations.weight:
            if not hasattr(p, "_u"):
                continue
            w = module.parametrizations.weight.original.flatten(1)            # (out, fan_in)
            u = F.normalize(p._u, dim=0, eps=p.eps)
            v = F.normalize(p._v, dim=0, eps=p.eps)
            for _ in range(iterations):
                v = F.normalize(w.t() @ u, dim=0, eps=p.eps)
                u = F.normalize(w @ v, dim=0, eps=p.eps)
            p._u.copy_(u)
            p._v.copy_(v)


# ---- networks ---------------------------------------------------------------------------------------------
def n02_init(m: nn.Module) -> None:
    """BigGAN-PyTorch's N02: every conv / linear / embedding weight from N(0, 0.02); biases as PyTorch leaves them."""
    if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, 0.0, 0.02)


class ConditionalBatchNorm(nn.Module):
    """Batch norm without its own affine map: x_hat (1 + gain(c)) + bias(c), per sample and channel. `c` is the
    conditioning vector (B, cond_dim) through linear maps, or without a shared embedding the class (B,) through
    embeddings."""

    def __init__(self, channels: int, cond_dim: int, num_classes: int, shared: bool):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        make = (lambda: nn.Linear(cond_dim, channels, bias=False)) if shared else \
            (lambda: nn.Embedding(num_classes, channels))
        self.gain, self.bias = make(), make()

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gain = 1.0 + self.gain(c)                                              # (B, channels)
        return self.bn(x) * gain[:, :, None, None] + self.bias(c)[:, :, None, None]


class GBlock(nn.Module):
    """(B, c_in, s, s) -> (B, c_out, 2s, 2s): CBN-ReLU-upsample-conv3-CBN-ReLU-conv3 plus upsample-conv1x1."""

    def __init__(self, c_in: int, c_out: int, cbn):
        super().__init__()
        self.b1, self.b2 = cbn(c_in), cbn(c_out)
        self.c1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.c2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.c_sc = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
        h = self.c2(F.relu(self.b2(self.c1(up(F.relu(self.b1(x, c)))), c)))
        return h + up(self.c_sc(x))  # a 1x1 conv commutes with nearest up-sampling


class Generator(nn.Module):
    """(z (B, latent_dim), y (B,)) -> x (B, C, H, W) on [-1, 1]: the first chunk of z (all of it without
    `hierarchical`) through a linear map to (w, b, b); up blocks conditioned on [embed(y), z_i] (or on y);
    BN-ReLU-conv3-tanh."""

    def __init__(self, cfg: Config, channels: int, side: int):
        super().__init__()
        base, n_up = gan_nets.SIDES[side]
        self.width, self.base, self.n_up = cfg.g_width, base, n_up
        slots = n_up + 1 if cfg.hierarchical else 1
        if cfg.latent_dim % slots:
            raise GenbenchError(f"biggan: a hierarchical z is split into {slots} equal chunks at side {side}; "
                                f"latent_dim {cfg.latent_dim} is not a multiple of {slots}")
        self.chunk = cfg.latent_dim // slots if cfg.hierarchical else 0
        shared = cfg.shared_dim > 0
        self.shared = nn.Embedding(cfg.num_classes, cfg.shared_dim) if shared else None
        cond_dim = cfg.shared_dim + self.chunk
        cbn = lambda ch: ConditionalBatchNorm(ch, cond_dim, cfg.num_classes, shared)  # noqa: E731
        self.project = nn.Linear(cfg.latent_dim // slots, cfg.g_width * base * base)
        self.blocks = nn.ModuleList([GBlock(cfg.g_width, cfg.g_width, cbn) for _ in range(n_up)])
        self.out_bn = nn.BatchNorm2d(cfg.g_width)
        self.out_conv = nn.Conv2d(cfg.g_width, channels, 3, padding=1)
        self.apply(n02_init)
        if cfg.g_spectral_norm:
            gan_nets.apply_spectral_norm(self)

    def conditions(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(the base's input (B, latent_dim / slots), one conditioning input per block)."""
        if self.shared is None:
            return z, [y] * self.n_up
        e = self.shared(y)                                                     # (B, shared_dim)
        if not self.chunk:
            return z, [e] * self.n_up
        first, *rest = z.split(self.chunk, dim=1)
        return first, [torch.cat([e, zi], dim=1) for zi in rest]

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z0, conds = self.conditions(z, y)
        h = self.project(z0).view(-1, self.width, self.base, self.base)
        for block, c in zip(self.blocks, conds):
            h = block(h, c)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class Discriminator(nn.Module):
    """(x (B, C, H, W), y (B,)) -> logits (B,): the SN-GAN residual blocks of gan_nets, ReLU, a global sum, then
    psi(phi) + <embed(y), phi> (the projection, Miyato & Koyama Eq. 3); spectral norm on every layer."""

    def __init__(self, cfg: Config, channels: int, side: int):
        super().__init__()
        n_down, w = gan_nets.RESNET_D_DOWN[side], cfg.d_width
        blocks = [gan_nets.DBlock(channels, w, down=True, first=True)]
        blocks += [gan_nets.DBlock(w, w, down=True) for _ in range(n_down - 1)]
        blocks += [gan_nets.DBlock(w, w, down=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Linear(w, 1)
        self.embed = nn.Embedding(cfg.num_classes, w)
        self.apply(n02_init)
        gan_nets.apply_spectral_norm(self)
        spectral_norm(self.embed)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.blocks(x)).sum(dim=(2, 3))                          # (B, w): phi(x)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        phi = self.features(x)
        return self.out(phi).squeeze(1) + (self.embed(y) * phi).sum(1)


# ---- the model --------------------------------------------------------------------------------------------
class Model(nn.Module):
    family = "gan"

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        if not isinstance(config, Config):
            raise GenbenchError(f"biggan: expected a biggan.Config, got {type(config).__name__}")
        C, H, W = image_shape
        if H != W or H not in gan_nets.SIDES or C < 1:
            raise GenbenchError(f"biggan: unsupported image shape {tuple(image_shape)}; supported are square images "
                                f"of side {sorted(gan_nets.SIDES)}")
        self.config, self.image_shape = config, (C, H, W)
        self.num_classes = config.num_classes
        self.G, self.D = Generator(config, C, H), Discriminator(config, C, H)
        self._optim_settings: Optimizer | None = None

    @property
    def batches_per_step(self) -> int:
        return self.config.n_critic

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise GenbenchError(f"biggan expects uint8 images (B, {', '.join(map(str, self.image_shape))}); "
                                f"got {x.dtype} {tuple(x.shape)}")
        return x.to(self.device), self._labels(labels, len(x))

    def _labels(self, labels: torch.Tensor | None, n: int) -> torch.Tensor:
        if labels is None:
            raise GenbenchError("biggan is class-conditional: pass labels= (one class per image)")
        labels = torch.as_tensor(labels, device=self.device)
        if labels.shape != (n,) or labels.is_floating_point() or (n and (labels.min() < 0 or
                                                                         labels.max() >= self.num_classes)):
            raise GenbenchError(f"biggan needs {n} integer labels in 0..{self.num_classes - 1}, got "
                                f"{labels.dtype} {tuple(labels.shape)}")
        return labels.long()

    def _fakes(self, n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(z ~ N(0, I) (n, latent_dim), classes uniform in 0..num_classes-1 (n,))."""
        z = torch.randn((n, self.config.latent_dim), generator=generator, device=self.device)
        y = torch.randint(0, self.num_classes, (n,), generator=generator, device=self.device)
        return z, y

    def ortho_weights(self) -> list[torch.Tensor]:
        """G's weights with two or more axes (raw weights under spectral norm), the shared embedding exempt."""
        exempt = {id(p) for p in self.G.shared.parameters()} if self.G.shared is not None else set()
        return [p for p in self.G.parameters() if p.dim() >= 2 and id(p) not in exempt]

    # ---- training --------------------------------------------------------------------------------------
    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        self._optim_settings = settings
        return {"generator": settings.build(self.G.parameters()),
                "discriminator": settings.build(self.D.parameters())}

    def _critic_terms(self, real, real_y, fake, fake_y) -> dict[str, torch.Tensor]:
        r, f = self.D(real, real_y), self.D(fake, fake_y)                      # (B,), (B,)
        return {"d_loss": d_loss("hinge", r, f), "d_real": r.mean(), "d_fake": f.mean()}

    def _generator_terms(self, fake_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {"g_loss": g_loss("hinge", fake_logits)}
        total = terms["g_loss"]
        if self.config.ortho:
            terms["ortho"] = sum(orthogonal_penalty(w) for w in self.ortho_weights())
            total = total + self.config.ortho * terms["ortho"]
        terms["total"] = total
        return terms

    def train_step(self, x: torch.Tensor, optimizers: dict, *, labels: torch.Tensor | None = None) -> dict[str, float]:
        """One generator update after n_critic critic updates; x uint8 (n_critic * B, C, H, W) with labels
        (n_critic * B,), chunk i feeding critic update i. Noise and fake classes from torch's global RNG."""
        x, labels = self._check(x, labels)
        cfg, k = self.config, self.config.n_critic
        if len(x) == 0 or len(x) % k:
            raise GenbenchError(f"biggan: train_step got {len(x)} images; with n_critic={k} it needs n_critic * B "
                                "images (B = batch size >= 1), one fresh batch of B per critic update")
        B = len(x) // k
        opt_g, opt_d = optimizers["generator"], optimizers["discriminator"]
        clip_grads = self._optim_settings.clip if self._optim_settings is not None else (lambda params: None)
        real_all = to_signed(x).view(k, B, *self.image_shape)
        for real, real_y in zip(real_all, labels.view(k, B)):
            z, fake_y = self._fakes(B, None)
            with torch.no_grad():
                fake = self.G(z, fake_y)
            terms = self._critic_terms(real, real_y, fake, fake_y)
            opt_d.zero_grad(set_to_none=True)
            terms["d_loss"].backward()
            clip_grads(self.D.parameters())
            opt_d.step()
        z, fake_y = self._fakes(cfg.g_batch_mult * B, None)
        g_terms = self._generator_terms(self.D(self.G(z, fake_y), fake_y))
        opt_g.zero_grad(set_to_none=True)
        g_terms["total"].backward(inputs=list(self.G.parameters()))           # D's gradients stay untouched
        clip_grads(self.G.parameters())
        opt_g.step()
        out = {name: float(v.detach()) for name, v in {**terms, **g_terms}.items() if name != "total"}
        return {"loss": out["g_loss"], **out}

    def eval_loss(self, x: torch.Tensor, *, labels: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> dict[str, float]:
        """Same keys as train_step on one batch of real images and their labels, B fakes, no update; a private
        generator seeded 0 unless given."""
        x, labels = self._check(x, labels)
        if generator is None:
            generator = torch.Generator(device=self.device).manual_seed(0)
        with torch.no_grad():
            z, fake_y = self._fakes(len(x), generator)
            fake = self.G(z, fake_y)
            terms = self._critic_terms(to_signed(x), labels, fake, fake_y)
            g_terms = self._generator_terms(self.D(fake, fake_y))
        out = {name: float(v) for name, v in {**terms, **g_terms}.items() if name != "total"}
        return {"loss": out["g_loss"], **out}

    # ---- evaluation ------------------------------------------------------------------------------------
    @torch.no_grad()
    def prepare_evaluation(self) -> None:
        """Adapt G's buffers to saved (EMA-averaged) weights: spectral-norm vectors, then standing statistics."""
        refresh_spectral_norms(self.G, self.config.power_iterations)
        self.standing_statistics()

    @torch.no_grad()
    def standing_statistics(self) -> None:
        """G's batch-norm statistics as the plain average of the batch statistics of `standing_batches` training-
        mode passes (seeded latents and uniform classes); nothing else changes (spectral norm's power iteration
        is paused). With standing_batches = 0, the running averages stay."""
        cfg = self.config
        if not cfg.standing_batches:
            return
        norms = [m for m in self.G.modules() if isinstance(m, nn.BatchNorm2d)]
        was_training, momenta = self.G.training, [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None                                                  # cumulative average
        generator = torch.Generator(device=self.device).manual_seed(cfg.standing_seed)
        try:
            self.G.eval()
            for m in norms:
                m.train()                                                      # BN alone in training mode
            for _ in range(cfg.standing_batches):
                self.G(*self._fakes(cfg.standing_batch_size, generator))
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.G.train(was_training)

    @torch.no_grad()
    def sample(self, n: int, *, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
               truncation: float | None = None) -> torch.Tensor:
        """n images of the classes `labels` (n,), uint8 (n, C, H, W): z ~ N(0, I) drawn with `generator`, or with
        `truncation` = tau from the normal truncated to [-tau, tau] (Brock et al. Sec. 3.1)."""
        labels = self._labels(labels, n)
        shape = (n, self.config.latent_dim)
        z = (torch.randn(shape, generator=generator, device=self.device) if truncation is None
             else truncated_normal(shape, truncation, generator=generator, device=self.device))
        return self.decode(z, labels)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """G(z, y) rounded: z (B, latent_dim), labels (B,) -> uint8 (B, C, H, W)."""
        z = z.to(self.device, torch.float32)
        labels = self._labels(labels, len(z))
        out = [to_uint8(self.G(zc, yc)) for zc, yc in zip(z.split(SAMPLE_CHUNK), labels.split(SAMPLE_CHUNK))]
        return torch.cat(out) if out else torch.empty(0, *self.image_shape, dtype=torch.uint8, device=self.device)

