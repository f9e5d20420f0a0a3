"""Feature extractors: networks mapping uint8 images to the features that FID, KID, IS and P/R are built on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch


@dataclass(frozen=True)
class ExtractorSpec:
    """A named feature extractor.

    `build(weights=None, device="cpu")` returns an `nn.Module` in eval mode whose forward takes uint8 images
    (B, C, H, W) and returns {"features": (B, feature_dim) float32, "logits": (B, num_classes) or absent}.
    The module has an attribute `weights_sha256` ("sha256:<hex>", or None where no weights file is used).
    """

    name: str
    description: str
    feature_dim: int
    num_classes: int | None  # logits for the Inception Score; None: IS is not available with this extractor
    input: str  # how images are prepared (resize, channels), recorded in results
    build: Callable[..., torch.nn.Module] = field(repr=False, compare=False)

    def load(self, weights: str | Path | None = None, device: str | torch.device = "cpu") -> torch.nn.Module:
        return self.build(weights=weights, device=device)
