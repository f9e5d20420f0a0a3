"""StyleGAN2: a compact style-based generator with weight demodulation, skip outputs and lazy regularization.

Provenance
----------
- Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (StyleGAN2, CVPR 2020):
  Sec. 2.2, Eq. 1-3: modulation w'_ijk = s_i w_ijk by a style s = A(w), demodulation
  w''_ijk = w'_ijk / sqrt(sum_{i,k} w'_ijk^2 + eps), the batch run as one grouped convolution; noise inputs
  B * (per-pixel N(0, 1)) with a learned per-channel strength added after each convolution; a learned constant
  input. Sec. 3.1: lazy regularization (R1 every 16 minibatches, scaled by the interval). Sec. 3.2, Eq. 4:
  path length regularization E_{w,y}(||J_w^T y||_2 - a)^2, y ~ N(0, I) / sqrt(HW) ("pixel intensities
  normalized"), a a running mean of the lengths (decay 0.01), weight 2, every 4 minibatches. Sec. 4.1, Fig. 7:
  the skip generator (ToRGB at every resolution, summed through up-sampling) and the residual discriminator
  (residual branches scaled by 1/sqrt(2)). Appendix B: the mapping network's learning rate multiplier 0.01,
  equalized learning rate (Karras et al. 2018, ProGAN Sec. 4.1), leaky ReLU 0.2, minibatch standard deviation
  (ProGAN Sec. 3) with group 4, non-saturating logistic loss with R1 (Mescheder et al. 2018, Eq. 9), Adam
  betas (0, 0.99).
- Style mixing: Karras et al., "A Style-Based Generator Architecture for GANs" (StyleGAN, CVPR 2019), Sec. 3.1:
  with probability 0.9 a second latent takes over from a random crossover layer; truncation in W,
  w' = w_avg + psi (w - w_avg), with w_avg tracked during training (decay 0.995 in the reference code).
- The "standard" preset: the `cifar` configuration of StyleGAN2-ADA (Karras et al., "Training Generative
  Adversarial Networks with Limited Data", NeurIPS 2020; NVlabs/stylegan2-ada-pytorch train.py,
  cfg_specs['cifar']: ref_gpus 2, kimg 100000, mb 64, mbstd 32, fmaps 1 (512 channels at <= 32 px), lrate 0.0025,
  gamma 0.01, ema 500 kimg, ramp 0.05, map 2). The same train.py, for cfg 'cifar', also sets pl_weight = 0,
  style_mixing_prob = 0 and D architecture 'orig' (no residual skips); the preset follows that (checked by
  reading the published train.py), so path length regularization and style mixing are OFF at "standard" and ON
  (the StyleGAN2 paper's values) at "small". The published CIFAR-10 FID 2.92 is with ADA, which is not here.
  Batch 64, kimg, EMA and lrate belong to the protocol and the runner, not to this file.

Conventions and decisions
-------------------------
- Images enter and leave as uint8 (B, C, H, W); inside, pixels live on [-1, 1]. Sides: 28 (7x7 base, 2
  up-samplings) and 32 (4x4 base, 3); any C. One width (`channels`) at every resolution.
- Up-sampling: bilinear (F.interpolate, align_corners=False) before the 3x3 modulated conv and on the skip
  images; down-sampling in D: 2x2 average pooling. The reference uses a [1, 3, 3, 1] FIR filter with transposed /
  strided convolutions; bilinear x2 is the same separable [1, 3, 3, 1]/4 filter up to border handling.
- Activations are leaky ReLU 0.2 times sqrt(2) (the reference's gain); no activation clamping, no fp16.
- Noise strength is learned per channel (StyleGAN Sec. 2, "per-feature scaling factors"), initialized to 0;
  the StyleGAN2 reference code uses one scalar per layer.
- w indices (num_ws = 2 n_up + 2): the base conv uses ws[0], its ToRGB ws[1]; up block i uses ws[2i - 1],
  ws[2i] for its two convs and ws[2i + 1] for its ToRGB (a ToRGB shares its w with the next block's first conv,
  as in the reference). Style mixing: crossover k in [1, num_ws), layers < k get w1, >= k get w2.
- Lazy regularization runs as separate optimizer steps (the paper's "separate pass"): at steps where
  step % r1_every == 0 a second D update on r1_every * (gamma / 2) E||grad D(x)||^2, and where
  step % pl_every == 0 (and pl_weight > 0) a second G update on pl_every * pl_weight * (||J^T y|| - a)^2 over
  B // 2 latents. Because each interval then has every + 1 updates, configure_optimizers applies Sec. 3.1's
  correction c = every / (every + 1): lr * c and betas ** c (Adam-type settings; other optimizers: lr only).
  It is applied only to a network whose regularizer is on; the reference applies it whenever an interval is set,
  so with pl_weight 0 (the cifar config) its G runs at lrate * 4/5 and betas ** 0.8, and this file at lrate.
- R1 and path lengths differentiate sum-over-batch outputs, like the reference; D's minibatch-stddev layer makes
  the per-sample gradient depend slightly on the group, as in the reference. The group is the largest divisor
  of the batch not above mbstd_group (the reference requires divisibility).
- step, pl_mean (a), w_avg and the last R1 value are buffers, so a state-dict checkpoint resumes exactly; all
  training noise (z, mixing, noise inputs, y) comes from torch's global RNG.
- sample() draws z and the noise inputs with `generator`; truncation_psi None (or 1) means none. eval_loss uses a
  private generator seeded 0, no mixing and no update; its "pl_mean" is the buffer, its "r1" is computed.
- The runner's EMA of G averages the buffers too (w_avg, pl_mean); harmless: it only affects truncation.

Checked in tests/baselines/test_stylegan2.py: sum_{i,k} w''^2 = 1 per output channel for any style and unit
output variance on N(0, 1) input; the grouped convolution equals a per-sample F.conv2d loop; equalized-lr
effective weights and gradient scaling against a plain layer; R1 of a linear D is ||w||^2; path lengths of a
linear generator equal ||A^T y||; style-mixing layer assignment; truncation psi 0 / 1; the minibatch stddev
layer against a hand computation; training smoke, same-seed identity and bit-exact resume; figure helpers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.optim import Optimizer
from genbench.pixels import to_signed, to_uint8

SIDES = {28: (7, 2), 32: (4, 3)}  # image side -> (base side, up-samplings)
SAMPLE_CHUNK = 256
LRELU_GAIN = math.sqrt(2.0)


@dataclass(frozen=True)
class Config:
    latent_dim: int = 64            # size of z and of w
    mapping_layers: int = 2
    channels: int = 64              # feature maps at every resolution, in G and in D
    mapping_lr_mult: float = 0.01
    r1_gamma: float = 10.0          # (gamma / 2) E||grad_x D(x_real)||^2
    r1_every: int = 16              # lazy R1 interval
    pl_weight: float = 2.0          # path length weight; 0 = off
    pl_every: int = 4
    pl_decay: float = 0.01          # a <- a + pl_decay (mean length - a)
    pl_batch_shrink: int = 2        # path lengths over B // shrink latents
    style_mixing: float = 0.9       # probability of a mixed pair of latents per minibatch
    mbstd_group: int = 4
    noise: bool = True              # per-layer noise inputs
    d_residual: bool = True         # residual D (Fig. 7) or plain ("orig") D
    w_avg_decay: float = 0.995
    lazy_correction: bool = True    # Sec. 3.1: lr * c, betas ** c, c = every / (every + 1)

    def __post_init__(self):
        def bad(why: str):
            raise GenbenchError(f"stylegan2: invalid config ({why}): {self}")

        if min(self.latent_dim, self.mapping_layers, self.channels, self.r1_every, self.pl_every,
               self.pl_batch_shrink, self.mbstd_group) < 1:
            bad("sizes and intervals must be >= 1")
        if not (self.mapping_lr_mult > 0 and self.r1_gamma >= 0 and self.pl_weight >= 0):
            bad("mapping_lr_mult > 0, r1_gamma >= 0, pl_weight >= 0")
        if not (0 <= self.style_mixing <= 1 and 0 < self.pl_decay <= 1 and 0 <= self.w_avg_decay < 1):
            bad("style_mixing in [0, 1], pl_decay in (0, 1], w_avg_decay in [0, 1)")


PRESETS: dict[str, Config] = {
    "smoke": Config(latent_dim=8, mapping_layers=2, channels=8, mbstd_group=2),
    # measured on 28x28x1 with 2 threads (16 train_steps after one warm-up, lazy R1 / PL steps included):
    # 3.9 steps/s at batch 64, 6.6 steps/s at batch 32 (~2800 steps in 7 minutes); width 32 gave 1.5 at batch 64.
    # gamma 0.01 as in the cifar configuration (the published setting nearest 28x28), the paper's path length and
    # style mixing.
    "small": Config(latent_dim=64, mapping_layers=2, channels=16, r1_gamma=0.01),
    # StyleGAN2-ADA cifar (see the provenance note): 512 maps, z = w = 512, 2 mapping layers, gamma 0.01,
    # mbstd group 32, no path length regularization, no style mixing, plain D.
    "standard": Config(latent_dim=512, mapping_layers=2, channels=512, r1_gamma=0.01, pl_weight=0.0,
                       style_mixing=0.0, mbstd_group=32, d_residual=False),
}
DESCRIPTION = ("StyleGAN2 (Karras et al. 2020): mapping network, modulated/demodulated convs, noise inputs, skip G, "
               "residual D, lazy R1 and path length regularization, style mixing")


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


# ---- equalized learning rate layers -----------------------------------------------------------------------
class EqualLinear(nn.Module):
    """y = x (gain W)^T + lr_mult b with W ~ N(0, 1) / lr_mult stored, gain = lr_mult / sqrt(fan_in): the
    effective weight starts N(0, 1/fan_in) and every parameter's update is scaled by lr_mult (ProGAN Sec. 4.1)."""

    def __init__(self, fan_in: int, fan_out: int, lr_mult: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in) / lr_mult)
        self.bias = nn.Parameter(torch.full((fan_out,), float(bias_init) / lr_mult))
        self.gain, self.lr_mult = lr_mult / math.sqrt(fan_in), lr_mult

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.gain, self.bias * self.lr_mult)


class EqualConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.gain, self.pad = 1.0 / math.sqrt(cin * k * k), k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.gain, self.bias, padding=self.pad)


# ---- generator --------------------------------------------------------------------------------------------
class ModulatedConv2d(nn.Module):
    """Eq. 1-3: per-sample weights w''_{b,o,i,k} = s_{b,i} w_{o,i,k} / sqrt(sum_{i,k} (s_{b,i} w_{o,i,k})^2 + eps),
    one grouped convolution for the batch. x (B, cin, H, W), w (B, w_dim) -> (B, cout, H', W')."""

    def __init__(self, cin: int, cout: int, k: int, w_dim: int, demodulate: bool = True, up: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)                  # s starts near 1
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.gain, self.pad, self.demodulate, self.up = 1.0 / math.sqrt(cin * k * k), k // 2, demodulate, up
        self.eps = 1e-8

    def effective_weight(self, style: torch.Tensor) -> torch.Tensor:
        """style s (B, cin) -> w'' (B, cout, cin, k, k)."""
        wgt = self.weight[None] * self.gain * style[:, None, :, None, None]   # (B, cout, cin, k, k) Eq. 1
        if self.demodulate:
            wgt = wgt * torch.rsqrt(wgt.pow(2).sum((2, 3, 4), keepdim=True) + self.eps)  # Eq. 3
        return wgt

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        B, cin, H, W = x.shape
        wgt = self.effective_weight(self.affine(w))                            # (B, cout, cin, k, k)
        out = F.conv2d(x.reshape(1, B * cin, H, W), wgt.reshape(-1, cin, *wgt.shape[3:]), padding=self.pad,
                       groups=B)                                               # (1, B cout, H, W)
        return out.reshape(B, -1, H, W)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv, + strength (cout,) * noise (B, 1, H, W), + bias, leaky ReLU."""

    def __init__(self, cin: int, cout: int, w_dim: int, up: bool, use_noise: bool):
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(cout)) if use_noise else None   # per channel
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x, w, noise=None, generator=None):
        x = self.conv(x, w)                                                    # (B, cout, H, W)
        if self.noise_strength is not None:
            if noise is None:
                noise = torch.randn((x.shape[0], 1, *x.shape[2:]), generator=generator, device=x.device)
            x = x + self.noise_strength[:, None, None] * noise
        return lrelu(x + self.bias[:, None, None])


class ToRGB(nn.Module):
    def __init__(self, cin: int, cout: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x, w):
        return self.conv(x, w) + self.bias[:, None, None]


class Mapping(nn.Module):
    """z (B, D) -> w (B, D): z / rms(z) (pixel norm), then mapping_layers equalized-lr linear + leaky ReLU."""

    def __init__(self, dim: int, layers: int, lr_mult: float):
        super().__init__()
        self.fcs = nn.ModuleList(EqualLinear(dim, dim, lr_mult) for _ in range(layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
        for fc in self.fcs:
            x = lrelu(fc(x))
        return x


class Synthesis(nn.Module):
    """ws (B, num_ws, D) -> image (B, C, H, W): const (ch, b, b), a base conv, n_up up blocks of two convs; skip
    ToRGB outputs summed through bilinear up-sampling (Fig. 7b)."""

    def __init__(self, cfg: Config, C: int, side: int):
        super().__init__()
        base, n_up = SIDES[side]
        ch, D = cfg.channels, cfg.latent_dim
        self.const = nn.Parameter(torch.randn(ch, base, base))
        self.convs = nn.ModuleList([SynthesisLayer(ch, ch, D, False, cfg.noise)])
        self.torgbs = nn.ModuleList([ToRGB(ch, C, D)])
        for _ in range(n_up):
            self.convs.extend([SynthesisLayer(ch, ch, D, True, cfg.noise), SynthesisLayer(ch, ch, D, False, cfg.noise)])
            self.torgbs.append(ToRGB(ch, C, D))
        self.n_up, self.num_ws = n_up, 2 * n_up + 2

    def noise_shapes(self) -> list[tuple[int, int, int]]:
        b = self.const.shape[-1]
        return [(1, b * 2 ** ((i + 1) // 2), b * 2 ** ((i + 1) // 2)) for i in range(len(self.convs))]

    def forward(self, ws: torch.Tensor, noises: list | None = None, generator=None) -> torch.Tensor:
        """noises: None (fresh N(0, 1) per sample from `generator`) or one tensor per conv, broadcast to
        (B, 1, H, W)."""
        nz = noises if noises is not None else [None] * len(self.convs)
        x = self.const[None].expand(ws.shape[0], -1, -1, -1)                   # (B, ch, b, b)
        x = self.convs[0](x, ws[:, 0], nz[0], generator)
        img = self.torgbs[0](x, ws[:, 1])                                      # (B, C, b, b)
        for i in range(1, self.n_up + 1):
            x = self.convs[2 * i - 1](x, ws[:, 2 * i - 1], nz[2 * i - 1], generator)   # up-sampled
            x = self.convs[2 * i](x, ws[:, 2 * i], nz[2 * i], generator)
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + \
                self.torgbs[i](x, ws[:, 2 * i + 1])
        return img


class Generator(nn.Module):
    def __init__(self, cfg: Config, C: int, side: int):
        super().__init__()
        self.mapping = Mapping(cfg.latent_dim, cfg.mapping_layers, cfg.mapping_lr_mult)
        self.synthesis = Synthesis(cfg, C, side)
        self.num_ws = self.synthesis.num_ws
        self.register_buffer("w_avg", torch.zeros(cfg.latent_dim))

    def forward(self, z: torch.Tensor, truncation_psi: float | None = None, generator=None) -> torch.Tensor:
        """z (B, D) -> image (B, C, H, W) on about [-1, 1]; no mixing."""
        w = truncate(self.mapping(z), self.w_avg, truncation_psi)
        return self.synthesis(broadcast(w, self.num_ws), generator=generator)


def broadcast(w: torch.Tensor, num_ws: int) -> torch.Tensor:
    return w[:, None].expand(-1, num_ws, -1)                                   # (B, num_ws, D)


def mix(w1: torch.Tensor, w2: torch.Tensor, crossover: int, num_ws: int) -> torch.Tensor:
    """StyleGAN Sec. 3.1: ws (B, num_ws, D) with layers < crossover from w1 (B, D), layers >= crossover from w2."""
    layer = torch.arange(num_ws, device=w1.device)[None, :, None]              # (1, L, 1)
    return torch.where(layer < crossover, w1[:, None], w2[:, None])


def truncate(w: torch.Tensor, w_avg: torch.Tensor, psi: float | None) -> torch.Tensor:
    """w_avg + psi (w - w_avg) (torch.lerp: exact at psi 0 and 1); psi None means no truncation."""
    return w if psi is None else w_avg.lerp(w, psi)


# ---- discriminator ----------------------------------------------------------------------------------------
def minibatch_stddev(x: torch.Tensor, group: int) -> torch.Tensor:
    """ProGAN Sec. 3: append one channel holding, for each sample, the mean over (C, H, W) of the standard
    deviation (biased, + 1e-8 under the root) across its group. Groups are strided as in the reference:
    sample n belongs to group n % (N / G). x (N, C, H, W) -> (N, C + 1, H, W)."""
    N, C, H, W = x.shape
    G = max(g for g in range(1, min(group, N) + 1) if N % g == 0)
    y = x.reshape(G, N // G, C, H, W)
    std = (y.var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))            # (N / G,)
    feat = std.repeat(G)[:, None, None, None].expand(N, 1, H, W)
    return torch.cat([x, feat], 1)


class DBlock(nn.Module):
    """conv3-lrelu-conv3-lrelu-avgpool, plus (residual D) a 1x1 avgpool shortcut, sum scaled by 1/sqrt(2)."""

    def __init__(self, ch: int, residual: bool):
        super().__init__()
        self.conv0, self.conv1 = EqualConv2d(ch, ch, 3), EqualConv2d(ch, ch, 3)
        self.skip = EqualConv2d(ch, ch, 1, bias=False) if residual else None

    def forward(self, x):
        y = F.avg_pool2d(lrelu(self.conv1(lrelu(self.conv0(x)))), 2)
        if self.skip is None:
            return y
        return (y + self.skip(F.avg_pool2d(x, 2))) / math.sqrt(2.0)


class Discriminator(nn.Module):
    """x (B, C, H, W) -> logit (B,): fromRGB 1x1, n_up down blocks to the base side, minibatch stddev, conv3,
    linear to ch, linear to 1."""

    def __init__(self, cfg: Config, C: int, side: int):
        super().__init__()
        base, n_down = SIDES[side]
        ch = cfg.channels
        self.fromrgb = EqualConv2d(C, ch, 1)
        self.blocks = nn.ModuleList(DBlock(ch, cfg.d_residual) for _ in range(n_down))
        self.conv = EqualConv2d(ch + 1, ch, 3)
        self.fc = EqualLinear(ch * base * base, ch)
        self.out = EqualLinear(ch, 1)
        self.mbstd_group = cfg.mbstd_group

    def forward(self, x):
        x = lrelu(self.fromrgb(x))
        for blk in self.blocks:
            x = blk(x)                                                         # (B, ch, base, base) at the end
        x = lrelu(self.conv(minibatch_stddev(x, self.mbstd_group)))
        return self.out(lrelu(self.fc(x.flatten(1)))).squeeze(1)


# ---- losses and penalties ---------------------------------------------------------------------------------
def r1_penalty(D: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """E||grad_x D(x)||^2 on real images (B, C, H, W), squared gradient summed over pixels, averaged over B;
    differentiable w.r.t. D's parameters when grad is enabled."""
    x, create_graph = real.detach().requires_grad_(True), torch.is_grad_enabled()
    with torch.enable_grad():
        (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=create_graph)
    return g.pow(2).flatten(1).sum(1).mean()


def path_lengths(synthesis, ws: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4: ||J_w^T y|| per sample with y ~ N(0, I) / sqrt(H W) (drawn from the global RNG if None), the
    gradient of sum(img * y) w.r.t. ws (B, L, D), squared and summed over D, averaged over the L layers (the
    reference's reduction), square-rooted. Returns (lengths (B,), y)."""
    if not ws.requires_grad:
        ws = ws.detach().requires_grad_(True)
    with torch.enable_grad():
        img = synthesis(ws)                                                    # (B, C, H, W)
        if y is None:
            y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (g,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)     # (B, L, D)
    return g.pow(2).sum(2).mean(1).sqrt(), y


# ---- the model --------------------------------------------------------------------------------------------
class Model(nn.Module):
    family = "gan"
    batches_per_step = 1

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        if not isinstance(config, Config):
            raise GenbenchError(f"stylegan2: expected a stylegan2.Config, got {type(config).__name__}")
        C, H, W = image_shape
        if H != W or H not in SIDES or C < 1:
            raise GenbenchError(f"stylegan2: unsupported image shape {tuple(image_shape)}; supported are square "
                                f"images of side {sorted(SIDES)}")
        self.config, self.image_shape, self.latent_dim = config, (C, H, W), config.latent_dim
        self.G, self.D = Generator(config, C, H), Discriminator(config, C, H)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("pl_mean", torch.zeros(()))
        self.register_buffer("r1_last", torch.zeros(()))
        self._optim_settings: Optimizer | None = None

    @property
    def device(self) -> torch.device:
        return self.G.synthesis.const.device

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise GenbenchError(f"stylegan2 expects uint8 images (B, {', '.join(map(str, self.image_shape))}); "
                                f"got {x.dtype} {tuple(x.shape)}")
        return x.to(self.device)

    def _z(self, n, generator=None):
        return torch.randn((n, self.latent_dim), generator=generator, device=self.device)

    def mixed_ws(self, n: int, generator=None) -> torch.Tensor:
        """Training latents (n, num_ws, D): w1 = f(z1), and with probability style_mixing w2 = f(z2) from a
        crossover drawn uniformly in [1, num_ws). The draws are made every time, so the RNG use is fixed."""
        L = self.G.num_ws
        w1, w2 = self.G.mapping(self._z(n, generator)), self.G.mapping(self._z(n, generator))
        u = torch.rand((), generator=generator, device=self.device)
        k = int(torch.randint(1, max(L, 2), (), generator=generator, device=self.device))
        return mix(w1, w2, k if float(u) < self.config.style_mixing else L, L), w1

    # ---- training --------------------------------------------------------------------------------------
    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        self._optim_settings = settings
        cfg = self.config

        def lazy(s: Optimizer, every: int, on: bool) -> Optimizer:
            if not (on and cfg.lazy_correction):
                return s
            c = every / (every + 1)
            if s.name in ("adam", "adamw", "adamax"):
                return dataclasses.replace(s, lr=s.lr * c, betas=(s.betas[0] ** c, s.betas[1] ** c))
            return dataclasses.replace(s, lr=s.lr * c)

        return {"generator": lazy(settings, cfg.pl_every, cfg.pl_weight > 0).build(self.G.parameters()),
                "discriminator": lazy(settings, cfg.r1_every, cfg.r1_gamma > 0).build(self.D.parameters())}

    def _update(self, opt, loss, params):
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        if self._optim_settings is not None:
            self._optim_settings.clip(params)
        opt.step()

    def train_step(self, x: torch.Tensor, optimizers: dict) -> dict[str, float]:
        """D update (+ lazy R1 update), G update with style mixing (+ lazy path length update); x uint8 (B, C, H, W)."""
        x = self._check(x)
        cfg, B, t = self.config, len(x), int(self.step)
        opt_g, opt_d = optimizers["generator"], optimizers["discriminator"]
        g_params, d_params = list(self.G.parameters()), list(self.D.parameters())
        real = to_signed(x)                                                # (B, C, H, W)
        # D: logistic loss on reals and mixed fakes
        with torch.no_grad():
            fake = self.G.synthesis(self.mixed_ws(B)[0])
        r, f = self.D(real), self.D(fake)
        d_loss = F.softplus(-r).mean() + F.softplus(f).mean()
        self._update(opt_d, d_loss, d_params)
        if cfg.r1_gamma > 0 and t % cfg.r1_every == 0:                        # Sec. 3.1: lazy, scaled by interval
            r1 = r1_penalty(self.D, real)
            self._update(opt_d, cfg.r1_every * 0.5 * cfg.r1_gamma * r1, d_params)
            self.r1_last.copy_(r1.detach())
        # G: non-saturating loss
        ws, w1 = self.mixed_ws(B)
        with torch.no_grad():
            self.G.w_avg.copy_(w1.mean(0).lerp(self.G.w_avg, cfg.w_avg_decay))
        g_loss = F.softplus(-self.D(self.G.synthesis(ws))).mean()
        self._update(opt_g, g_loss, g_params)
        if cfg.pl_weight > 0 and t % cfg.pl_every == 0:                       # Eq. 4, lazy
            ws_pl, _ = self.mixed_ws(max(1, B // cfg.pl_batch_shrink))
            lengths, _ = path_lengths(self.G.synthesis, ws_pl)
            a = self.pl_mean.lerp(lengths.detach().mean(), cfg.pl_decay)
            self.pl_mean.copy_(a)
            self._update(opt_g, cfg.pl_every * cfg.pl_weight * (lengths - a).pow(2).mean(), g_params)
        self.step += 1
        g = float(g_loss.detach())
        return {"loss": g, "g_loss": g, "d_loss": float(d_loss.detach()), "d_real": float(r.detach().mean()),
                "d_fake": float(f.detach().mean()), "r1": float(self.r1_last), "pl_mean": float(self.pl_mean)}

    def eval_loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, float]:
        x = self._check(x)
        if generator is None:
            generator = torch.Generator(device=self.device).manual_seed(0)
        with torch.no_grad():
            real = to_signed(x)
            fake = self.G(self._z(len(x), generator), generator=generator)
            r, f = self.D(real), self.D(fake)
            r1 = r1_penalty(self.D, real)
        g = float(F.softplus(-f).mean())
        return {"loss": g, "g_loss": g, "d_loss": float(F.softplus(-r).mean() + F.softplus(f).mean()),
                "d_real": float(r.mean()), "d_fake": float(f.mean()), "r1": float(r1), "pl_mean": float(self.pl_mean)}

    # ---- sampling and figures --------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None,
               truncation_psi: float | None = None) -> torch.Tensor:
        """uint8 (n, C, H, W): z and noise inputs drawn with `generator`, truncation toward w_avg if psi is set."""
        z = self._z(n, generator)                                              # (n, D), drawn in one go
        out = [to_uint8(self.G(zc, truncation_psi, generator)) for zc in z.split(SAMPLE_CHUNK)]
        return torch.cat(out) if out else torch.empty(0, *self.image_shape, dtype=torch.uint8, device=self.device)

    def _fixed_noise(self, g: torch.Generator) -> list[torch.Tensor]:
        return [torch.randn((1, *s), generator=g, device=self.device) for s in self.G.synthesis.noise_shapes()]

    @torch.no_grad()
    def style_mixing_grid(self, n_a: int = 4, n_b: int = 4, crossover: int = 2, *, seed: int = 0,
                          truncation_psi: float | None = None) -> torch.Tensor:
        """StyleGAN Fig. 3-style grid, uint8 (C, (n_a + 1) H, (n_b + 1) W): top row sources B, left column sources A,
        cell (i, j) = layers < crossover from A_i, layers >= crossover from B_j; one fixed noise draw for all."""
        g = torch.Generator(device=self.device).manual_seed(seed)
        L, (C, H, W) = self.G.num_ws, self.image_shape
        wa = truncate(self.G.mapping(self._z(n_a, g)), self.G.w_avg, truncation_psi)
        wb = truncate(self.G.mapping(self._z(n_b, g)), self.G.w_avg, truncation_psi)
        noise = self._fixed_noise(g)
        synth = lambda ws: to_uint8(self.G.synthesis(ws, noise))      # noqa: E731
        cells = synth(mix(wa.repeat_interleave(n_b, 0), wb.repeat(n_a, 1), crossover, L))   # (n_a n_b, C, H, W)
        grid = torch.zeros(C, (n_a + 1) * H, (n_b + 1) * W, dtype=torch.uint8, device=self.device)
        for j, im in enumerate(synth(broadcast(wb, L))):
            grid[:, :H, (j + 1) * W:(j + 2) * W] = im
        for i, im in enumerate(synth(broadcast(wa, L))):
            grid[:, (i + 1) * H:(i + 2) * H, :W] = im
        for c, im in enumerate(cells):
            i, j = divmod(c, n_b)
            grid[:, (i + 1) * H:(i + 2) * H, (j + 1) * W:(j + 2) * W] = im
        return grid

    @torch.no_grad()
    def figures(self) -> dict[str, torch.Tensor]:
        """What evaluation saves beside the samples, uint8 (C, H', W') each: one figure of style mixing (4 sources A
        by 6 sources B, crossing over half-way through the layers) above the noise inputs' effect (one w, 6 noise
        draws and their per-pixel standard deviation), white between them."""
        C, H, _ = self.image_shape
        mixing = self.style_mixing_grid(4, 6, crossover=self.G.num_ws // 2, seed=0)   # (C, 5 H, 7 W)
        noise = self.noise_figure(6, seed=0)                                            # (C, H, 7 W)
        gap = torch.full((C, H // 2, mixing.shape[2]), 255, dtype=torch.uint8, device=mixing.device)
        return {"style-mixing-and-noise": torch.cat([mixing, gap, noise], 1)}

    @torch.no_grad()
    def noise_figure(self, n: int = 4, *, seed: int = 0) -> torch.Tensor:
        """StyleGAN2 Fig. 4-style row, uint8 (C, H, (n + 1) W): one w, n noise draws, then the per-pixel standard
        deviation over 8 * n draws (averaged over channels, scaled so its maximum is 255)."""
        g = torch.Generator(device=self.device).manual_seed(seed)
        ws = broadcast(self.G.mapping(self._z(1, g)), self.G.num_ws).expand(8 * n, -1, -1)
        img = self.G.synthesis(ws, generator=g)                                # (8n, C, H, W)
        std = img.std(0).mean(0)                                               # (H, W)
        std_u8 = (255 * std / std.max().clamp_min(1e-12)).round().to(torch.uint8)
        C = self.image_shape[0]
        return torch.cat([*to_uint8(img[:n]), std_u8.expand(C, -1, -1)], 2)
