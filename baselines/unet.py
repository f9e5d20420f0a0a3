"""The U-Net of DDPM, shared by the diffusion (baselines/ddpm.py) and score (baselines/ncsn.py) families.

Provenance
----------
Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models" (NeurIPS 2020), Appendix B: a PixelCNN++-style
U-Net (Salimans et al. 2017) of wide residual blocks with group normalization, two residual blocks per
resolution, self-attention at the 16x16 resolution, a sinusoidal embedding of the timestep (Transformer
position encoding) added in every residual block, dropout 0.1 on CIFAR-10; CIFAR-10: 128 base channels,
multipliers (1, 2, 2, 2), 35.7M parameters. Checked in hojonathanho/diffusion (diffusion_tf/models/unet.py):
the residual block (GN, swish, conv, + dense(temb), GN, swish, dropout, conv with zero init, 1x1 shortcut when
widths differ), upsampling by nearest-neighbour then conv, downsampling by a stride-2 conv, num_res_blocks + 1
blocks per level on the way up, each taking a skip connection, a zero-initialised output conv, 32 groups.

Conventions: the embedded scalar is any float per image (DDPM: the timestep index; NCSN: log sigma); the
embedding is sinusoidal with `ch` dimensions, then two dense layers (ch -> 4 ch -> 4 ch). Group counts are
min(32, width // 4) so small widths keep at least 4 channels per group (32 at the published widths). Image
sides must halve exactly at every downsampling (28 -> 14 -> 7; 32 -> 16 -> 8 -> 4).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of a float per row (Vaswani et al. 2017; DDPM's get_timestep_embedding)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], 1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, max(1, ch // 4)), ch)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, temb: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.temb = nn.Linear(temb, c_out)
        self.norm2, self.drop = _norm(c_out), nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.temb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the pixels, with a residual connection (DDPM's attn_block)."""

    def __init__(self, ch: int):
        super().__init__()
        self.norm, self.qkv, self.out = _norm(ch), nn.Conv2d(ch, 3 * ch, 1), _zero(nn.Conv2d(ch, ch, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.out(a.transpose(1, 2).reshape(b, c, h, w))


class UNet(nn.Module):
    def __init__(self, in_ch: int, image_size: int, *, ch: int = 128, mult: tuple[int, ...] = (1, 2, 2, 2),
                 num_res_blocks: int = 2, attn_resolutions: tuple[int, ...] = (16,), dropout: float = 0.1):
        super().__init__()
        if image_size % 2 ** (len(mult) - 1):
            raise ValueError(f"a {image_size}-pixel side does not halve exactly {len(mult) - 1} times; "
                             f"use fewer channel multipliers than {mult}")
        temb = 4 * ch
        self.ch = ch
        self.embed = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.down = nn.ModuleList()
        widths, width, res = [ch], ch, image_size
        for level, m in enumerate(mult):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(width, ch * m, temb, dropout))
                width = ch * m
                if res in attn_resolutions:
                    self.down.append(Attention(width))
                widths.append(width)
            if level + 1 < len(mult):
                self.down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                widths.append(width)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(width, width, temb, dropout), Attention(width),
                                  ResBlock(width, width, temb, dropout)])
        self.up = nn.ModuleList()
        for level, m in reversed(list(enumerate(mult))):
            for _ in range(num_res_blocks + 1):
                self.up.append(ResBlock(width + widths.pop(), ch * m, temb, dropout))
                width = ch * m
                if res in attn_resolutions:
                    self.up.append(Attention(width))
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
                self.up.append(nn.Conv2d(width, width, 3, padding=1))
                res *= 2
        self.norm_out = _norm(width)
        self.conv_out = _zero(nn.Conv2d(width, in_ch, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.embed(timestep_embedding(t, self.ch))
        h = self.conv_in(x)
        skips = [h]
        for layer in self.down:
            if isinstance(layer, ResBlock):
                h = layer(h, emb)
                skips.append(h)
            elif isinstance(layer, Attention):
                h = skips[-1] = layer(h)
            else:  # downsampling conv
                h = layer(h)
                skips.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], 1), emb)
            elif isinstance(layer, Attention):
                h = layer(h)
            else:
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))
