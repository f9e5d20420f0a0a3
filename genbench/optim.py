"""Optimizer settings as a frozen, hashable value that protocols can carry and families can build."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch


@dataclass(frozen=True)
class Optimizer:
    name: str = "adam"  # "adam" | "adamw" | "sgd"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    eps: float = 1e-8
    grad_clip: float | None = None  # max global grad norm, applied by the family's train step

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        if self.name == "adam":
            return torch.optim.Adam(params, lr=self.lr, betas=self.betas, eps=self.eps,
                                    weight_decay=self.weight_decay)
        if self.name == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, betas=self.betas, eps=self.eps,
                                     weight_decay=self.weight_decay)
        if self.name == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.betas[0],
                                   weight_decay=self.weight_decay)
        raise ValueError(f"unknown optimizer {self.name!r}; expected adam, adamw or sgd")

    def clip(self, params: Iterable[torch.nn.Parameter]) -> float | None:
        """Clip the global gradient norm if configured; returns the norm before clipping."""
        if self.grad_clip is None:
            return None
        return float(torch.nn.utils.clip_grad_norm_(params, self.grad_clip))
