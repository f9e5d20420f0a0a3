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

from genbench.baselines import beta_vae, factor_vae, vae
from genbench.metrics.disentanglement import Settings as DisentanglementSettings
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

# ---------------------------------------------------------------------------------------------------------
# beta-VAE and FactorVAE on dSprites. Standard tier: disentanglement_lib's study settings
# (config/unsupervised_study_v1/model_configs/shared.gin: Adam lr 1e-4, betas (0.9, 0.999), eps 1e-8, batch 64,
# 300,000 steps) with the published beta = 4 (Higgins et al. 2017) and gamma = 35 (Kim & Mnih 2018), see the
# family modules. FactorVAE's batch is two halves: 64 for the VAE, 64 more for the discriminator's permuted
# codes (Kim & Mnih, Algorithm 2), so the runner hands it 128. dSprites has one split: models train on all
# 737,280 images and bits/dim is that of a seeded 10,000-image sample of them. Disentanglement scores with
# disentanglement_lib's settings (Settings' defaults: 10,000 / 5,000 points, DCI by sklearn's boosting).

_DSPRITES_SOURCE = {
    "beta-vae": "Higgins et al. 2017 (beta = 4, 10 latents); disentanglement_lib shared.gin (Adam 1e-4, batch 64, "
                "300k steps; architecture); Locatello et al. 2019 (metrics and their settings)",
    "factor-vae": "Kim & Mnih 2018 (gamma = 35, discriminator 6 x 1000, Adam 1e-4 (0.5, 0.9)); disentanglement_lib "
                  "shared.gin (VAE Adam 1e-4, batch 64, 300k steps); Locatello et al. 2019 (metrics)",
}
_FAMILIES = {"beta-vae": beta_vae, "factor-vae": factor_vae}
# Batch of the VAE per step: one batch for beta-VAE, two (VAE and discriminator halves) for FactorVAE.
_BATCHES = {"beta-vae": 1, "factor-vae": 2}


def _disentangle(model: str, tier: str, version: int, preset: str, steps: int, batch_size: int,
                 evaluation: Evaluation, lr: float = 1e-4, **kw) -> Protocol:
    kw.setdefault("source", _DSPRITES_SOURCE[model] if tier == "standard" else "genbench")
    return Protocol(dataset="dsprites", model=model, tier=tier, version=version, preset=preset,
                    model_config=_FAMILIES[model].PRESETS[preset], steps=steps,
                    batch_size=batch_size * _BATCHES[model], optimizer=Optimizer("adam", lr=lr),
                    evaluation=evaluation, **kw)


# Smoke: the `subset` split (16,384 images, rendered in a second), a high learning rate so that 40 steps show
# learning, small score settings, the faster DCI trees.
_DSPRITES_SMOKE_EVAL = Evaluation(split="subset", num_images=256, subset_seed=0, iwae_k=8, iwae_images=32,
                                  num_samples=16, batch_size=128, disentanglement=DisentanglementSettings(
                                      num_train=300, num_eval=150, batch_size=16, num_variance_estimate=300,
                                      dci_estimator="hist_gbt", n_jobs=1))
_DSPRITES_EVAL = Evaluation(split="train", num_images=10_000, subset_seed=0, iwae_k=100, iwae_images=1000,
                            num_samples=64, batch_size=500, disentanglement=DisentanglementSettings())
# Quick: a fifth of the reference's points (2,000 / 1,000, 2,000 for FactorVAE's variances). The reference's
# counts encode about 2.9 million images for the BetaVAE and FactorVAE scores alone (some 10 minutes on a 2-core
# CPU) and fit DCI's trees for 3 minutes; a fifth keeps the scores' standard errors near 1-2 points.
_DSPRITES_QUICK_EVAL = dataclasses.replace(_DSPRITES_EVAL, disentanglement=DisentanglementSettings(
    num_train=2000, num_eval=1000, num_variance_estimate=2000))
_DSPRITES_SMOKE = dict(steps=40, batch_size=32, lr=3e-3, train_split="subset", evaluation=_DSPRITES_SMOKE_EVAL,
                       checkpoint_every=10, log_every=5, eval_loss_every=20)
# Quick: the half-width `small` preset at lr 5e-4 (the paper's 1e-4 moves too little in a few thousand steps).
# Training time on an idle 2-core CPU, `compute.train_seconds` of the three seeds on leaderboards/dsprites-quick:
# beta-VAE 374-406 s for 12,000 steps of 64, FactorVAE 427-543 s for 8,000 steps of 2 x 64.
_DSPRITES_QUICK = dict(batch_size=64, lr=5e-4, evaluation=_DSPRITES_QUICK_EVAL, checkpoint_every=500, log_every=50,
                       eval_loss_every=500)
_QUICK_STEPS = {"beta-vae": 12_000, "factor-vae": 8_000}
_DSPRITES_STANDARD = dict(steps=300_000, batch_size=64, evaluation=_DSPRITES_EVAL, checkpoint_every=5000,
                          log_every=100, eval_loss_every=2000)


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
    *(_disentangle(model, "smoke", 1, "smoke", **_DSPRITES_SMOKE) for model in ("beta-vae", "factor-vae")),
    *(_disentangle(model, "quick", 1, "small", steps=_QUICK_STEPS[model], **_DSPRITES_QUICK)
      for model in ("beta-vae", "factor-vae")),
    *(_disentangle(model, "standard", 1, "standard", **_DSPRITES_STANDARD) for model in ("beta-vae", "factor-vae")),
)
