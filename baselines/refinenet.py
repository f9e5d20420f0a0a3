"""The dilated RefineNet score networks of NCSN and NCSNv2 (used by baselines/ncsn.py).

Provenance
----------
- Lin, Milan, Shen & Reid, "RefineNet: Multi-Path Refinement Networks for High-Resolution Semantic
  Segmentation" (CVPR 2017), Sec. 3: refine blocks of residual conv units (RCU), multi-resolution fusion (MSF:
  a conv per input, upsampling to the finest input, a sum) and chained residual pooling (CRP: a chain of
  pool-conv stages, each stage's output added to the block's input).
- NCSN: Song & Ermon, "Generative Modeling by Estimating Gradients of the Data Distribution" (NeurIPS 2019),
  Appendix B.1: a 4-cascade RefineNet on a pre-activation ResNet encoder, conditional instance normalization++
  everywhere, dilated convolutions in place of the later downsamplings, ELU, average instead of max pooling in
  CRP; CIFAR-10: ngf 128, L = 10 geometric levels from 1 to 0.01. CondInstanceNorm++ (Appendix B.1): per level
  i and channel k a scale gamma, a shift beta and a weight alpha of the channel means mu_k, standardised over
  the channels. Checked in ermongroup/ncsn (models/cond_refinenet_dilated.py: CondRefineNetDilated,
  ConditionalResidualBlock, ConditionalInstanceNorm2dPlus, CondRCUBlock, CondMSFBlock, CondCRPBlock,
  CondRefineBlock, ConvMeanPool; configs/anneal.yml; runners/anneal_runner.py).
- NCSNv2: Song & Ermon, "Improved Techniques for Training Score-Based Generative Models" (NeurIPS 2020),
  Technique 3 (an unconditional network whose output is divided by sigma) and Appendix B (the same encoder and
  refine cascade at 32x32; InstanceNorm++ in the encoder and before the output conv, none in the refine
  blocks; CIFAR-10: ngf 128, L = 232 levels from 50 to 0.01). Checked in ermongroup/ncsnv2 (models/ncsnv2.py:
  NCSNv2, the network its runner builds for CIFAR-10 and CelebA; models/layers.py: ResidualBlock, RCUBlock,
  MSFBlock, CRPBlock, RefineBlock; models/normalization.py: InstanceNorm2dPlus; configs/cifar10.yml).
- Verified once against both reference classes (their code run outside this repository, with this module's
  weights loaded into them): equal parameter counts and outputs equal to float32 rounding (max |diff| ~2e-6 on
  outputs of size ~2) at 28x28 and 32x32, ngf 16 and 128. CIFAR-10 (3x32x32, ngf 128): NCSN 30,117,635
  parameters (L = 10), NCSNv2 29,694,083 (tests/baselines/test_refinenet.py pins both).

Architecture (both nets, as in the reference code)
--------------------------------------------------
conv3x3 (ngf) -> encoder of 4 stages of 2 pre-activation residual blocks (norm, ELU, conv, norm, ELU, conv):
ngf at full size; 2 ngf after a mean-pool downsampling (conv then 2x2 mean; the shortcut a 1x1 conv then 2x2
mean); 2 ngf with dilation 2; 2 ngf with dilation 4 (the first block of each dilated stage keeps the
reference's learned shortcut, a dilated 3x3 conv, though nothing is downsampled). Refine cascade from the
coarsest stage up: (2 ngf -> 2 ngf), (2 ngf, 2 ngf -> 2 ngf), (2 ngf, 2 ngf -> ngf), (ngf, ngf -> ngf); each refine
block: an RCU of 2 units x 2 stages per input, MSF (bilinear, align_corners=True) when it has two inputs, CRP
of 2 stages with 5x5 stride-1 pooling, an output RCU of 1 unit (3 in the last block). Then norm, ELU,
conv3x3 (in_ch). RCU and CRP convs have no bias, every other conv has one. Only one downsampling happens, so
32 -> 16 and 28 -> 14; image_size only has to be even.
The nets differ in: NCSN's norms are conditional and also sit inside the refine blocks (before each RCU
conv, each MSF conv and each CRP pooling), its CRP pools by average; NCSNv2's refine blocks have no norm and
its CRP pools by max; NCSNv2 divides the output by sigma.

Conventions
-----------
- Inputs: images on [0, 1] (the CIFAR-10 default of both codes: data.logit_transform and data.rescaled are
  false, so their nets map x -> 2x - 1 at the input); `centered=True` takes inputs already on [-1, 1] and
  skips that map (ncsnv2's data.rescaled, score_sde's data.centered). sigma is in units of the input scale.
- sigma is a (B,) float tensor (a scalar is broadcast). `sigmas` (L,) must be positive and strictly
  descending; it is a buffer of the state dict.
- InstanceNorm++ follows the code, out = gamma (IN(x) + alpha mu~) + beta with mu~ the channel means
  standardised over the channels by their unbiased variance plus 1e-5 (the paper's Appendix B.1 writes the
  alpha term outside gamma: a reparametrisation of the same family). gamma, alpha ~ N(1, 0.02), beta = 0;
  every conv keeps PyTorch's default initialization, as the reference code does.
- Any sigma (not in the papers; for continuous-time samplers and the probability-flow ODE): the per-level
  (gamma, alpha, beta) rows are interpolated linearly in log sigma between the two neighbouring levels and held
  constant beyond sigma_1 and sigma_L (so the net is continuous, piecewise linear in log sigma through the norms);
  at sigma == sigmas[i] the weights are exactly 1 and 0, so the level-i rows are used bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

Cond = tuple[torch.Tensor, torch.Tensor] | None  # (lo (B,) long, w (B,) float): rows lo and lo + 1, weight w on lo + 1


# ---- normalization ----------------------------------------------------------------------------------------
class InstanceNormPlus(nn.Module):
    """InstanceNorm++ (NCSNv2). With `levels`, CondInstanceNorm++ (NCSN): one (gamma, alpha, beta) row per level
    in `embed`, mixed by the network's (lo, w) per image."""

    def __init__(self, ch: int, levels: int | None = None):
        super().__init__()
        self.ch, self.levels = ch, levels
        if levels is None:
            self.gamma = nn.Parameter(torch.empty(ch).normal_(1.0, 0.02))
            self.alpha = nn.Parameter(torch.empty(ch).normal_(1.0, 0.02))
            self.beta = nn.Parameter(torch.zeros(ch))
        else:
            self.embed = nn.Embedding(levels, 3 * ch)
            with torch.no_grad():
                self.embed.weight[:, :2 * ch].normal_(1.0, 0.02)
                self.embed.weight[:, 2 * ch:].zero_()

    def params(self, cond: Cond) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """gamma, alpha, beta: (C,) each without levels, (B, C) each with them."""
        if self.levels is None:
            return self.gamma, self.alpha, self.beta
        lo, w = cond
        table = self.embed.weight
        hi = (lo + 1).clamp(max=self.levels - 1)
        rows = table[lo] * (1.0 - w)[:, None] + table[hi] * w[:, None]
        return rows.chunk(3, dim=1)

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        gamma, alpha, beta = self.params(cond)
        var, mu = torch.var_mean(x, dim=(2, 3), unbiased=False)            # (B, C) instance statistics
        mu_std = (mu - mu.mean(1, keepdim=True)) / torch.sqrt(mu.var(1, keepdim=True) + 1e-5)
        scale = gamma * torch.rsqrt(var + 1e-5)
        shift = gamma * alpha * mu_std + beta - mu * scale                 # one fused pass over x:
        return torch.addcmul(shift[:, :, None, None], x, scale[:, :, None, None])  # gamma (IN + alpha mu~) + beta


class NoNorm(nn.Module):
    """The identity, taking (and ignoring) the conditioning: NCSNv2's unnormalised refine blocks."""

    def forward(self, x: torch.Tensor, cond: Cond = None) -> torch.Tensor:
        return x


# ---- encoder ----------------------------------------------------------------------------------------------
class ResBlock(nn.Module):
    """Pre-activation residual block. down: mean-pool downsampling (dilation 1) or, with dilation > 1, the
    reference's non-resampling "down" block (a dilated 3x3 shortcut conv; the first conv keeps c_in)."""

    def __init__(self, c_in: int, c_out: int, norm, *, down: bool = False, dilation: int = 1):
        super().__init__()
        mid = c_in if down else c_out
        conv = lambda a, b, k=3: nn.Conv2d(a, b, k, padding=dilation * (k // 2), dilation=dilation)  # noqa: E731
        self.pool = down and dilation == 1
        self.norm1, self.conv1 = norm(c_in), conv(c_in, mid)
        self.norm2, self.conv2 = norm(mid), conv(mid, c_out)
        if self.pool:
            self.skip = nn.Conv2d(c_in, c_out, 1)
        elif down:
            self.skip = conv(c_in, c_out)
        else:
            self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: Cond) -> torch.Tensor:
        h = self.conv1(F.elu(self.norm1(x, cond)))
        h = self.conv2(F.elu(self.norm2(h, cond)))
        s = self.skip(x)
        if self.pool:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return s + h


# ---- refine cascade ---------------------------------------------------------------------------------------
class RCU(nn.Module):
    """`units` residual conv units of 2 stages (norm, ELU, conv3x3 without bias)."""

    def __init__(self, ch: int, units: int, norm):
        super().__init__()
        self.norms = nn.ModuleList([norm(ch) for _ in range(2 * units)])
        self.convs = nn.ModuleList([nn.Conv2d(ch, ch, 3, padding=1, bias=False) for _ in range(2 * units)])

    def forward(self, x: torch.Tensor, cond: Cond) -> torch.Tensor:
        for i in range(0, len(self.convs), 2):
            h = x
            for norm, conv in zip(self.norms[i:i + 2], self.convs[i:i + 2]):
                h = conv(F.elu(norm(h, cond)))
            x = x + h
        return x


class MSF(nn.Module):
    """Multi-resolution fusion: per input norm, conv3x3 to `ch`, bilinear resize to `size`; summed."""

    def __init__(self, in_chs: tuple[int, ...], ch: int, norm):
        super().__init__()
        self.norms = nn.ModuleList([norm(c) for c in in_chs])
        self.convs = nn.ModuleList([nn.Conv2d(c, ch, 3, padding=1) for c in in_chs])

    def forward(self, xs: list[torch.Tensor], cond: Cond, size: torch.Size) -> torch.Tensor:
        return sum(F.interpolate(conv(norm(x, cond)), size=size, mode="bilinear", align_corners=True)
                   for x, norm, conv in zip(xs, self.norms, self.convs))


class CRP(nn.Module):
    """Chained residual pooling: ELU, then 2 stages of norm, 5x5 stride-1 pooling, conv3x3 without bias, each
    stage's output added to the running sum."""

    def __init__(self, ch: int, norm, pool: str):
        super().__init__()
        self.pool = nn.AvgPool2d(5, 1, 2) if pool == "avg" else nn.MaxPool2d(5, 1, 2)
        self.norms = nn.ModuleList([norm(ch) for _ in range(2)])
        self.convs = nn.ModuleList([nn.Conv2d(ch, ch, 3, padding=1, bias=False) for _ in range(2)])

    def forward(self, x: torch.Tensor, cond: Cond) -> torch.Tensor:
        x = path = F.elu(x)
        for norm, conv in zip(self.norms, self.convs):
            path = conv(self.pool(norm(path, cond)))
            x = x + path
        return x


class RefineBlock(nn.Module):
    def __init__(self, in_chs: tuple[int, ...], ch: int, norm, pool: str, *, end: bool = False):
        super().__init__()
        self.adapt = nn.ModuleList([RCU(c, 2, norm) for c in in_chs])
        self.msf = MSF(in_chs, ch, norm) if len(in_chs) > 1 else None
        self.crp = CRP(ch, norm, pool)
        self.out = RCU(ch, 3 if end else 1, norm)

    def forward(self, xs: list[torch.Tensor], cond: Cond) -> torch.Tensor:
        hs = [rcu(x, cond) for rcu, x in zip(self.adapt, xs)]
        h = self.msf(hs, cond, hs[0].shape[2:]) if self.msf is not None else hs[0]
        return self.out(self.crp(h, cond), cond)


# ---- the networks -----------------------------------------------------------------------------------------
class _DilatedRefineNet(nn.Module):
    """Encoder + refine cascade shared by NCSN and NCSNv2: (x, cond) -> (B, in_ch, H, W)."""

    def __init__(self, in_ch: int, image_size: int, ngf: int, norm, refine_norm, pool: str, centered: bool):
        super().__init__()
        if image_size % 2:
            raise ValueError(f"the RefineNet halves the image once; a {image_size}-pixel side is odd")
        self.centered = centered
        w = 2 * ngf
        self.conv_in = nn.Conv2d(in_ch, ngf, 3, padding=1)
        self.stages = nn.ModuleList([
            nn.ModuleList([ResBlock(ngf, ngf, norm), ResBlock(ngf, ngf, norm)]),
            nn.ModuleList([ResBlock(ngf, w, norm, down=True), ResBlock(w, w, norm)]),
            nn.ModuleList([ResBlock(w, w, norm, down=True, dilation=2), ResBlock(w, w, norm, dilation=2)]),
            nn.ModuleList([ResBlock(w, w, norm, down=True, dilation=4), ResBlock(w, w, norm, dilation=4)]),
        ])
        self.refine = nn.ModuleList([
            RefineBlock((w,), w, refine_norm, pool),
            RefineBlock((w, w), w, refine_norm, pool),
            RefineBlock((w, w), ngf, refine_norm, pool),
            RefineBlock((ngf, ngf), ngf, refine_norm, pool, end=True),
        ])
        self.norm_out = norm(ngf)
        self.conv_out = nn.Conv2d(ngf, in_ch, 3, padding=1)

    def backbone(self, x: torch.Tensor, cond: Cond) -> torch.Tensor:
        h = self.conv_in(x if self.centered else 2 * x - 1)
        feats = []
        for stage in self.stages:
            for block in stage:
                h = block(h, cond)
            feats.append(h)
        h = self.refine[0]([feats[3]], cond)
        for block, skip in zip(self.refine[1:], reversed(feats[:3])):
            h = block([skip, h], cond)
        return self.conv_out(F.elu(self.norm_out(h, cond)))


def _per_image(sigma, x: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
    return sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma


class CondRefineNet(_DilatedRefineNet):
    """NCSN's score network s(x, sigma): CondInstanceNorm++ over the L levels of `sigmas` (descending)."""

    def __init__(self, in_ch: int, image_size: int, ngf: int, sigmas: torch.Tensor, *, centered: bool = False):
        sigmas = torch.as_tensor(sigmas, dtype=torch.float32)
        if sigmas.dim() != 1 or len(sigmas) < 1 or not bool((sigmas > 0).all()) or \
                not bool((sigmas[1:] < sigmas[:-1]).all()):
            raise ValueError("sigmas must be a 1-D tensor of positive, strictly descending noise levels")
        norm = lambda ch: InstanceNormPlus(ch, len(sigmas))  # noqa: E731
        super().__init__(in_ch, image_size, ngf, norm, norm, "avg", centered)
        self.register_buffer("sigmas", sigmas)

    def levels(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo, w) per image: sigma's place between levels lo and lo + 1, linear in log sigma and clamped
        to [sigma_L, sigma_1]; w = 0 at sigmas[lo] and 1 at sigmas[lo + 1]."""
        neg_log = -torch.log(self.sigmas)                    # ascending
        v = -torch.log(sigma.to(neg_log.dtype))
        if len(neg_log) == 1:
            return torch.zeros_like(v, dtype=torch.long), torch.zeros_like(v)
        lo = (torch.searchsorted(neg_log, v.contiguous()) - 1).clamp(0, len(neg_log) - 2)
        w = ((v - neg_log[lo]) / (neg_log[lo + 1] - neg_log[lo])).clamp(0.0, 1.0)
        return lo, w

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.backbone(x, self.levels(_per_image(sigma, x)))


class RefineNet(_DilatedRefineNet):
    """NCSNv2's score network s(x, sigma) = net(x) / sigma, unconditional InstanceNorm++ in the encoder.
    `sigmas`, if given, is kept as a buffer (a checkpoint records its levels); forward does not use it."""

    def __init__(self, in_ch: int, image_size: int, ngf: int = 128, sigmas: torch.Tensor | None = None, *,
                 centered: bool = False):
        super().__init__(in_ch, image_size, ngf, InstanceNormPlus, lambda ch: NoNorm(), "max", centered)
        if sigmas is not None:
            self.register_buffer("sigmas", torch.as_tensor(sigmas, dtype=torch.float32))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.backbone(x, None) / _per_image(sigma, x)[:, None, None, None]
