"""Versioned training-and-evaluation protocols: the dataclasses and their hash.

A protocol fixes everything that can move a number: dataset, splits, the model's full configuration,
optimizer, batch size, steps, EMA, evaluation settings. It is a frozen dataclass named like
`fashion-mnist/vae/quick@2`; its hash covers every field but the free-text `source`, so editing a preset
or a setting without bumping `version` is caught by tests/test_protocols.py (which pins each hash).

Tiers: `smoke` runs in seconds on a CPU (tests, CI); `quick` takes about ten minutes on a 2-core CPU and
gives meaningful numbers; `standard` follows the published recipe and needs a GPU.

Each family's table of protocols is a module of its own beside this one (genbench/protocols/vae.py, ...);
genbench/protocols/__init__.py joins them into BUILTIN.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

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
    reconstruct_images: int | None = None  # reconstruct only the first images scored (latent projection is slow)
    modes: str | None = None  # mode coverage of the samples by the extractor's classes: "classes" or "stacked"
    snapshot_samples: int | None = None  # samples per training snapshot scored (Protocol.snapshot_every)
    ode_images: int | None = None  # first scored images that get the probability-flow ODE likelihood
    ode_batch_size: int | None = None  # images per ODE solve (they share the solver's steps); None: batch_size
    sampler_steps: tuple[int, ...] | None = None  # FID against sampling steps (a model whose sample() takes steps)
    sampler_steps_samples: int | None = None  # samples per point of that curve
    temperatures: tuple[float, ...] | None = None  # FID against sampling temperature (a sample() that takes one)
    temperature_samples: int | None = None  # samples per point of that curve; None: num_samples
    ais: Any = None  # genbench.metrics.ais.Settings: the AIS log-likelihood estimate of an energy-based model
    decoder_ais: Any = None  # genbench.metrics.ais.Decoder: log p(x) of a decoder by AIS over its latent
    truncations: tuple[float, ...] | None = None  # FID and IS against the truncation threshold (BigGAN Fig. 4)
    truncation_samples: int | None = None  # samples per point of that curve; None: num_samples
    translation_images: int | None = None  # held-out images of each domain translated and scored (Protocol.domains)
    # "per-batch": evaluation sample batch b draws from its own generator, seeded by (seed, b), so ranks can draw
    # their shares alone (genbench.distributed); None: one generator for all batches, drawn by one process
    sample_streams: str | None = None


# Fields added to the dataclasses after the first protocols were published. While unset (None) they are left
# out of `to_dict` and the hash, so adding an optional setting never changes the hash of a protocol that does
# not use it; once set, they are hashed like any other field. (`schedule` belongs to genbench.optim.Optimizer,
# `milestones` and `gamma` to its Schedule, `num_classes` to a class-conditional model's Config, `kinetic_energy`
# and `jacobian_norm` to FFJORD's.)
OPTIONAL_FIELDS = frozenset({"subset_seed", "disentanglement", "reconstruct_images", "modes", "snapshot_samples",
                             "snapshot_every", "schedule", "ode_images", "ode_batch_size", "sampler_steps",
                             "sampler_steps_samples", "temperatures", "temperature_samples", "num_classes",
                             "milestones", "gamma", "ais", "kinetic_energy", "jacobian_norm",
                             "decoder_ais", "truncations", "truncation_samples", "ema_start", "domains",
                             "translation_images", "decay_start", "sample_streams"})


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
    # Optional fields (OPTIONAL_FIELDS):
    snapshot_every: int | None = None  # keep the evaluated weights every this many steps; scored after training
    ema_start: int | None = None  # the EMA copies the weights until this step, then averages (BigGAN's ema_start)
    # A translation protocol (CycleGAN): the dataset classes of domains A and B (for factor labels, values of the
    # first factor). Training takes the images of both, half of every batch from each, labelled 0 (A) and 1 (B).
    domains: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.model}/{self.tier}"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def num_classes(self) -> int | None:
        """The classes a class-conditional model is trained and sampled on (its Config's `num_classes`); None for
        an unconditional one. Such a model takes the dataset's labels in training, likelihood and sampling."""
        return getattr(self.model_config, "num_classes", None)

    @property
    def label_classes(self) -> int | None:
        """The classes whose labels the model's training step takes: a class-conditional model's (`num_classes`),
        a classifier's that is not conditioned on them (JEM: its Config's `classes` logits), or a translation
        protocol's two domains; None if none of these."""
        if self.domains:
            return 2  # a translation protocol's domain labels, 0 (A) and 1 (B)
        return self.num_classes or getattr(self.model_config, "classes", 0) or None

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
