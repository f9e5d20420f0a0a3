"""Versioned training-and-evaluation protocols.

A protocol fixes everything that can move a number: dataset, splits, the model's full configuration,
optimizer, batch size, steps, EMA, evaluation settings. It is a frozen dataclass named like
`fashion-mnist/vae/quick@2`; its hash covers every field but the free-text `source`, so editing a preset
or a setting without bumping `version` is caught by tests/test_protocols.py (which pins each hash).

Tiers: `smoke` runs in seconds on a CPU (tests, CI); `quick` takes about ten minutes on a 2-core CPU and
gives meaningful numbers; `standard` follows the published recipe and needs a GPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from genbench.baselines import vae
from genbench.optim import Optimizer

TIERS = ("smoke", "quick", "standard")


@dataclass(frozen=True)
class Evaluation:
    split: str = "test"
    num_images: int | None = None  # images of `split` scored; None = all of them
    iwae_k: int = 0  # importance samples for the IWAE bound; 0 = not computed
    iwae_images: int = 0  # first images of `split` that get the IWAE bound
    num_samples: int = 64  # samples drawn for the grid and the sampling-speed figure
    batch_size: int = 250
    seed: int = 0  # seeds every random draw of the evaluation (posterior samples, prior samples)
    # Sample quality of the `num_samples` samples against the `reference_split`, through `extractor`
    # (None: not computed, e.g. where no extractor suits the images).
    extractor: str | None = None
    reference_split: str = "train"
    fidelity_metrics: tuple[str, ...] = ("fid", "kid", "is", "prc")
    # Fields added after protocols were first published; see OPTIONAL_FIELDS.
    subset_seed: int | None = None  # score a seeded random `num_images` subset of `split`, not its first images
    disentanglement: Any = None  # genbench.metrics.disentanglement.Settings where the dataset has factors


# Fields added to the dataclasses after the first protocols were published. While unset (None) they are left
# out of `to_dict` and the hash, so adding an optional setting never changes the hash of a protocol that does
# not use it; once set, they are hashed like any other field.
OPTIONAL_FIELDS = frozenset({"subset_seed", "disentanglement"})


@dataclass(frozen=True)
class Protocol:
    dataset: str
    model: str
    tier: str
    version: int
    preset: str  # the family preset `model_config` was derived from (for display)
    model_config: Any  # the family's frozen Config, in full
    steps: int
    batch_size: int
    optimizer: Optimizer
    train_split: str = "train"
    ema: float | None = None  # EMA decay of the weights that get evaluated; None = raw weights
    seeds: tuple[int, ...] = (0, 1, 2)  # the seeds a full benchmark entry reports
    checkpoint_every: int = 500
    log_every: int = 50
    eval_loss_every: int = 500  # held-out loss on a fixed batch of the evaluation split, logged only
    evaluation: Evaluation = field(default_factory=Evaluation)
    source: str = ""  # where the recipe comes from; not hashed

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.model}/{self.tier}"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict:
        d = _plain(self)
        d["model_config"] = {"class": type(self.model_config).__module__ + ".Config", **d["model_config"]}
        return d

    @property
    def hash(self) -> str:
        content = {k: v for k, v in self.to_dict().items() if k != "source"}
        blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()[:16]

    def summary(self) -> dict:
        return {"protocol": self.ref, "hash": self.hash, **self.to_dict()}


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (f.name in OPTIONAL_FIELDS and getattr(obj, f.name) is None)}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------------------------------------
# The VAE. Standard tier: Adam at 1e-3 with batch 128 as in Kingma & Ba 2015 / Kingma & Welling 2014's
# MNIST experiments, trained long enough to converge, IWAE evaluation with k=5000 as in Burda et al. 2016.

_VAE_STANDARD_SOURCE = (
    "Kingma & Welling 2014 (ELBO objective), Burda et al. 2016 (IWAE bound, k=5000 at evaluation); "
    "Adam lr 1e-3 (Kingma & Ba 2015), batch 128"
)


def _vae(dataset: str, tier: str, version: int, preset: str, steps: int, batch_size: int,
         evaluation: Evaluation, lr: float = 1e-3, **kw) -> Protocol:
    kw.setdefault("source", _VAE_STANDARD_SOURCE if tier == "standard" else "genbench")
    return Protocol(dataset=dataset, model="vae", tier=tier, version=version, preset=preset,
                    model_config=vae.PRESETS[preset], steps=steps, batch_size=batch_size,
                    optimizer=Optimizer("adam", lr=lr), evaluation=evaluation, **kw)


# Quick tier: the `small` preset trains at about 860 images/s on a 2-core CPU, so 3000 steps of 128 take
# about 7.5 minutes; lr 2e-3 reached a lower bits/dim than 1e-3 at this budget on Fashion-MNIST.
_QUICK = dict(preset="small", steps=3000, batch_size=128, lr=2e-3, checkpoint_every=250, log_every=25,
              eval_loss_every=250)


_SMOKE_EVAL = Evaluation(num_images=200, iwae_k=8, iwae_images=50, num_samples=16, batch_size=100)
# Standard: 50k samples against the training split through the TF-Inception network, as the literature does.
_STANDARD_EVAL = Evaluation(iwae_k=5000, iwae_images=10_000, num_samples=50_000, batch_size=500,
                            extractor="inception-v3-compat")
# Fashion-MNIST: genbench's domain classifier (ships with the package, works offline); 28x28 grayscale
# images are far from ImageNet, where Inception features say little.
_FASHION = dict(extractor="lenet-fashion-mnist")

BUILTIN: tuple[Protocol, ...] = (
    _vae("digits", "smoke", 2, "smoke", steps=40, batch_size=32, evaluation=_SMOKE_EVAL,
         checkpoint_every=10, log_every=5, eval_loss_every=20),
    _vae("digits", "quick", 2, **{**_QUICK, "batch_size": 64},
         evaluation=Evaluation(iwae_k=100, iwae_images=297)),
    _vae("fashion-mnist", "smoke", 2, "smoke", steps=40, batch_size=32,
         evaluation=dataclasses.replace(_SMOKE_EVAL, num_samples=200, reference_split="test",
                                        fidelity_metrics=("fid", "prc"), **_FASHION),
         checkpoint_every=10, log_every=5, eval_loss_every=20),
    _vae("fashion-mnist", "quick", 2, **_QUICK,
         evaluation=Evaluation(iwae_k=100, iwae_images=1000, num_samples=10_000, **_FASHION)),
    _vae("fashion-mnist", "standard", 2, "standard", steps=100_000, batch_size=128,
         evaluation=dataclasses.replace(_STANDARD_EVAL, **_FASHION),
         checkpoint_every=5000, log_every=100, eval_loss_every=2000),
    _vae("mnist", "quick", 2, **_QUICK, evaluation=Evaluation(iwae_k=100, iwae_images=1000)),
    _vae("mnist", "standard", 2, "standard", steps=100_000, batch_size=128,
         evaluation=dataclasses.replace(_STANDARD_EVAL, extractor=None, num_samples=10_000),
         checkpoint_every=5000, log_every=100, eval_loss_every=2000),
    _vae("cifar10", "quick", 2, **_QUICK, evaluation=Evaluation(iwae_k=100, iwae_images=500)),
    _vae("cifar10", "standard", 2, "standard", steps=200_000, batch_size=128, evaluation=_STANDARD_EVAL,
         checkpoint_every=5000, log_every=100, eval_loss_every=2000),
    _vae("celeba64", "standard", 2, "standard", steps=200_000, batch_size=128, train_split="train",
         evaluation=dataclasses.replace(_STANDARD_EVAL, iwae_k=1000), checkpoint_every=5000, log_every=100,
         eval_loss_every=2000),
)
