"""Pixels at a model's boundary: uint8 images (B, C, H, W) enter and leave every baseline; the GANs, PixelCNN++,
DDPM and the VAE's decoder work on [-1, 1] inside (v -> v / 127.5 - 1, and back to the nearest level)."""

from __future__ import annotations

import torch


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """uint8 levels 0..255 -> float on [-1, 1]."""
    return x.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float on [-1, 1] -> the nearest uint8 level (values outside are clamped)."""
    return ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
