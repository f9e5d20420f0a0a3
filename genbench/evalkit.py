"""What the evaluation steps share: the Context they read and write, the Step record, and the primitives several
step modules use (batches of the scored images, drawing samples, fidelity against the reference split, loading
saved weights into a fresh model, the bits/dim record). genbench.evaluate lists the steps; the sample curves
(genbench.curves) are steps like the others.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from genbench import GenbenchError, GenbenchWarning, distributed, results
from genbench.data import ImageData
from genbench.files import load_state
from genbench.metrics.likelihood import bits_per_dim
from genbench.protocols import Protocol
from genbench.registry import build_model
from genbench.rundir import RunDir


@dataclass
class Context:
    """What the steps share: the run, the loaded model, the scored images, and what earlier steps made."""

    rd: RunDir
    protocol: Protocol
    model: torch.nn.Module
    train: ImageData
    held_out: ImageData
    images: np.ndarray  # the evaluation split's scored images, uint8 (N, C, H, W)
    device: torch.device
    progress: bool
    seed: int  # the run's seed (a fresh model for a snapshot is built with it)
    world: distributed.World = distributed.World()  # the processes sharing the sharded steps (Step.sharded)
    metrics: dict[str, dict] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # result sections beside `metrics` (disentanglement, snapshots, ...)
    files: dict[str, str] = field(default_factory=dict)
    samples: np.ndarray | None = None  # the evaluation samples, uint8 (num_samples, C, H, W)
    sample_labels: np.ndarray | None = None  # the classes they were drawn for (a class-conditional protocol)
    sample_ips: float | None = None
    _extractor: tuple | None = None
    _reference: object | None = None

    @property
    def ev(self):
        return self.protocol.evaluation

    @property
    def split(self) -> str:
        return f"{self.held_out.dataset}:{self.held_out.split}"

    def labels_for(self, n: int) -> dict:
        """The `labels=` keyword of `sample` for the first n evaluation samples; {} for an unconditional model."""
        if self.sample_labels is None:
            return {}
        return {"labels": torch.from_numpy(self.sample_labels[:n])}

    def generator(self, offset: int = 0) -> torch.Generator:
        """A generator seeded from the evaluation seed: each step draws from its own, so none moves another."""
        return torch.Generator(self.device).manual_seed(self.ev.seed + offset)

    def extractor(self):
        """(spec, module) of the protocol's extractor, loaded once."""
        if self._extractor is None:
            from genbench import registry

            spec = registry.EXTRACTORS[self.ev.extractor]
            self._extractor = (spec, spec.load(device=self.device))
        return self._extractor

    def reference(self):
        """The reference split's features through the extractor (cached on disk by genbench.reference)."""
        if self._reference is None:
            from genbench import reference

            spec, module = self.extractor()
            self._reference = reference.resolve(f"{self.protocol.dataset}:{self.ev.reference_split}",
                                                extractor=spec, module=module, batch_size=self.ev.batch_size,
                                                device=self.device, progress=self.progress)
        return self._reference


@dataclass(frozen=True)
class Step:
    name: str
    applies: Callable[[type, Protocol], bool]  # on the model's class and the protocol: nothing is built
    run: Callable[[Context], None]
    writes: Callable[[type, Protocol], list[str]] = lambda model_class, protocol: []  # metric names
    sharded: bool = False  # every rank runs it on its share (genbench.distributed); otherwise rank 0 alone


def load_weights(protocol: Protocol, weights, image_shape, seed: int, device: torch.device) -> torch.nn.Module:
    """A fresh model holding the saved weights, in eval mode. A model that declares `prepare_evaluation` (BigGAN)
    adapts its buffers to these weights first: the spectral-norm vectors and batch-norm statistics saved with an
    EMA of the weights belong to the weights that were trained, not to their average."""
    model = build_model(protocol, image_shape, seed).to(device)
    model.load_state_dict(load_state(weights, map_location=device))
    if hasattr(model, "prepare_evaluation"):
        model.prepare_evaluation()
    return model.eval()


def batches(images: np.ndarray, batch_size: int, device, progress: bool, desc: str) -> Iterator[torch.Tensor]:
    for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=None if progress else True, leave=False):
        yield torch.from_numpy(np.array(images[i:i + batch_size])).to(device)


def dims(images: np.ndarray) -> int:
    return int(np.prod(images.shape[1:]))


def bpd_metric(nll: torch.Tensor, images: np.ndarray, *, split: str, estimator: str, **details) -> dict:
    finite = torch.isfinite(nll)
    if not finite.all():
        bad = int((~finite).sum())
        warnings.warn(f"{bad} of {len(nll)} images got a non-finite log-likelihood; bits/dim is not reported.",
                      GenbenchWarning, stacklevel=2)
        return results.metric(None, higher_is_better=False, n=len(nll), split=split, estimator=estimator,
                              error=f"non-finite log-likelihood for {bad} images", **details)
    bpd = bits_per_dim(nll, dims(images))
    # nats per image beside bits/dim: the unit of the binarized-MNIST literature (NADE, MADE, PixelCNN)
    return results.metric(float(bpd.mean()), higher_is_better=False, n=len(nll), split=split,
                          estimator=estimator, unit="bits/dim",
                          std_error=float(bpd.std() / len(bpd) ** 0.5) if len(bpd) > 1 else None,
                          nats_per_image=float(nll.mean()), **details)


def batch_generator(seed: int, batch: int, device) -> torch.Generator:
    """Batch `batch`'s own generator under per-batch sample streams, seeded by (seed, batch) through numpy's
    SeedSequence (whose mixing makes neighbouring batches' streams independent)."""
    state = np.random.SeedSequence([seed, batch]).generate_state(1, np.uint64)[0]
    return torch.Generator(device).manual_seed(int(state))


@torch.no_grad()
def draw(model, n: int, batch_size: int, generator: torch.Generator, *, labels: torch.Tensor | None = None,
         streams: str | None = None, share: slice | None = None, **kw) -> torch.Tensor:
    """n samples in batches; a class-conditional model draws sample i for labels[i].

    streams (Evaluation.sample_streams): None, every batch continues `generator`; "per-batch", batch b draws from
    batch_generator(generator's seed, b), so that `share` (whole batches, genbench.distributed.batch_share) can
    be drawn alone and is the same samples as those batches of all n."""
    if streams not in (None, "per-batch"):
        raise GenbenchError(f"unknown sample_streams {streams!r}; it is None (one stream) or 'per-batch'.")
    share = share or slice(0, n)
    if streams is None and (share.start, share.stop) != (0, n):
        raise GenbenchError("a share of the samples can be drawn alone only with per-batch sample streams.")
    parts = []
    for start in range(share.start, share.stop, batch_size):
        size = min(share.stop - start, batch_size)
        g = generator if streams is None else batch_generator(generator.initial_seed(), start // batch_size,
                                                              generator.device)
        given = {} if labels is None else {"labels": labels[start:start + size].to(g.device)}
        parts.append(model.sample(size, generator=g, **given, **kw).cpu())
    return torch.cat(parts)  # (len(share), C, H, W) uint8


def fidelity(ctx: Context, samples: np.ndarray, metrics: tuple[str, ...], *, sharded: bool = False
             ) -> dict[str, dict]:
    """Fidelity metrics of `samples` against the reference split, exactly as `genbench score` computes them.
    sharded: every rank calls this with all the samples and extracts its share (genbench.distributed); rank 0
    gets the metrics, the others {}."""
    from genbench.score import ScoreSettings, compare, summarize

    spec, module = ctx.extractor()
    w = ctx.world if sharded else distributed.World()
    out = summarize(module, samples, metrics=metrics, batch_size=ctx.ev.batch_size, device=ctx.device,
                    progress=ctx.progress, w=w)
    if not w.is_main:
        return {}
    settings = ScoreSettings(metrics=metrics, extractor=spec.name, seed=ctx.ev.seed)
    return compare(out, ctx.reference(), spec=spec, module=module, settings=settings)
