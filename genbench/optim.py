"""Optimizer settings as a frozen, hashable value that protocols can carry and families can build.

    Optimizer("adam", lr=2e-4, betas=(0.5, 0.999))                      # DCGAN
    Optimizer("rmsprop", lr=5e-5)                                         # WGAN, Algorithm 1
    Optimizer("adam", lr=2e-4, betas=(0.0, 0.9), schedule=Schedule(decay="linear"))   # WGAN-GP's ResNet recipe

`schedule` scales the learning rate of every optimizer of a run as a pure function of the step (warmup, then
constant, linear decay to zero at the last step from the first step or from `decay_start`, or steps), applied by
the runner before each step; a resumed run therefore follows the same rates without saving any scheduler state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch

OPTIMIZERS = ("adam", "adamw", "adamax", "rmsprop", "sgd", "adagrad")


@dataclass(frozen=True)
class Schedule:
    warmup: int = 0           # steps of linear warmup from lr / warmup to lr (DDPM: 5000)
    decay: str = "constant"   # after warmup: "constant", "linear" to zero at the last step (WGAN-GP), or "step"
    # Added after the first protocols were published (unhashed while None): decay "step" multiplies the rate by
    # `gamma` at each of the `milestones` (steps), as JEM's 0.3 at epochs 160 and 180.
    milestones: tuple[int, ...] | None = None
    gamma: float | None = None
    # Added later still: decay "linear" starts at this step (constant before it), CycleGAN's 100 + 100 epochs.
    decay_start: int | None = None

    def __post_init__(self):
        if self.warmup < 0 or self.decay not in ("constant", "linear", "step"):
            raise ValueError(f"invalid schedule {self}: warmup >= 0, decay 'constant', 'linear' or 'step'")
        if (self.decay == "step") != (self.milestones is not None and self.gamma is not None):
            raise ValueError(f"invalid schedule {self}: decay 'step' takes milestones and gamma, no other decay does")
        if self.decay_start is not None and (self.decay != "linear" or self.decay_start < 0):
            raise ValueError(f"invalid schedule {self}: decay_start (>= 0) belongs to decay 'linear'")

    def factor(self, step: int, total_steps: int) -> float:
        """Learning-rate multiplier for the update that takes the model from `step` to `step + 1`."""
        f = 1.0
        if self.warmup and step < self.warmup:
            f = (step + 1) / self.warmup
        if self.decay == "linear":
            start = self.decay_start or 0
            f *= 1.0 if step < start else max(0.0, 1.0 - (step - start) / max(total_steps - start, 1))
        elif self.decay == "step":
            f *= self.gamma ** sum(step >= m for m in self.milestones)
        return f


@dataclass(frozen=True)
class Optimizer:
    name: str = "adam"  # one of OPTIMIZERS
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)  # adam/adamw/adamax: (beta1, beta2); sgd: momentum = betas[0]
    weight_decay: float = 0.0
    eps: float = 1e-8
    grad_clip: float | None = None  # max global grad norm, applied by the family's train step
    # Added after the first protocols were published (genbench.protocols.OPTIONAL_FIELDS: unhashed while None).
    schedule: Schedule | None = None  # None: constant learning rate

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.name!r}; expected one of {', '.join(OPTIMIZERS)}")

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        common = dict(lr=self.lr, weight_decay=self.weight_decay)
        if self.name == "adam":
            return torch.optim.Adam(params, betas=self.betas, eps=self.eps, **common)
        if self.name == "adamw":
            return torch.optim.AdamW(params, betas=self.betas, eps=self.eps, **common)
        if self.name == "adamax":
            return torch.optim.Adamax(params, betas=self.betas, eps=self.eps, **common)
        if self.name == "rmsprop":
            return torch.optim.RMSprop(params, eps=self.eps, **common)  # alpha 0.99, as WGAN's reference code
        if self.name == "adagrad":
            return torch.optim.Adagrad(params, eps=self.eps, **common)  # MADE's reference code
        return torch.optim.SGD(params, momentum=self.betas[0], **common)

    def clip(self, params: Iterable[torch.nn.Parameter]) -> float | None:
        """Clip the global gradient norm if configured; returns the norm before clipping."""
        if self.grad_clip is None:
            return None
        return float(torch.nn.utils.clip_grad_norm_(params, self.grad_clip))


def set_learning_rates(optimizers: Iterable[torch.optim.Optimizer], schedule: Schedule | None, step: int,
                       total_steps: int) -> None:
    """Set every parameter group's lr to its initial lr times the schedule's factor at `step`."""
    if schedule is None:
        return
    factor = schedule.factor(step, total_steps)
    for opt in optimizers:
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * factor
