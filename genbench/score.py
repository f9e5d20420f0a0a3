"""Scoring a set of samples against a reference: `genbench score SAMPLES --ref REF`.

Samples (a folder of images, a `.npy` / `.npz` array, or DATASET:SPLIT for real held-out images) go through
the same extractor as the reference; the metrics are computed from features by genbench.metrics.fidelity.
The result file has the schema of a training run's (kind "submitted samples") and records N, the reference,
the extractor and its weights hash. Scores from an extractor other than the standard Inception carry its name
(`fid[lenet-fashion-mnist]`), so they can never share a column with Inception scores.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genbench import GenbenchError, GenbenchWarning, distributed, reference, registry, results
from genbench.data.base import content_hash, readonly
from genbench.samples import SampleSet, load_samples

STANDARD_EXTRACTOR = "inception-v3-compat"
# dc: density and coverage (k=5), on request; modes: the classes the extractor's classifier finds in the samples
# and the KL from the reference's class frequencies (uniform where the reference has no labels)
METRIC_GROUPS = ("fid", "kid", "is", "prc", "dc", "modes")
# The metrics each group writes (before the extractor's name is added, see metric_name).
GROUP_METRICS = {"fid": ("fid",), "kid": ("kid",), "is": ("is",), "prc": ("precision", "recall"),
                 "dc": ("density", "coverage"), "modes": ("classes_covered", "class_kl")}
LITERATURE_N = 50_000  # samples behind published FID/IS/KID figures


@dataclass(frozen=True)
class ScoreSettings:
    metrics: tuple[str, ...] = ("fid", "kid", "is", "prc")
    extractor: str = STANDARD_EXTRACTOR
    weights: Path | None = None
    num_samples: int | None = None
    batch_size: int = 64
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    prc_k: int = 3
    dc_k: int = 5
    seed: int = 0
    strict: bool = False
    device: str = "cpu"
    data_root: Path | None = None
    progress: bool = True

    def hashed(self) -> dict:
        """The settings that can move a number."""
        keep = ("metrics", "extractor", "num_samples", "kid_subsets", "kid_subset_size", "is_splits", "prc_k", "dc_k",
                "seed")
        return {k: getattr(self, k) for k in keep} | {"feature_pipeline": reference.FEATURE_PIPELINE_VERSION}


def metric_name(metric: str, extractor: str) -> str:
    return metric if extractor == STANDARD_EXTRACTOR else f"{metric}[{extractor}]"


def score(samples_path: str | Path, ref: str, settings: ScoreSettings = ScoreSettings()) -> dict:
    """The result record of scoring the samples at `samples_path` against `ref`. Under torchrun (`genbench score
    --nproc N`) every rank reads the samples and extracts its share of them (genbench.distributed); rank 0
    resolves the reference and returns the result, the other ranks {}."""
    unknown = set(settings.metrics) - set(METRIC_GROUPS)
    if unknown:
        raise GenbenchError(f"unknown metrics {sorted(unknown)}; choose from {', '.join(METRIC_GROUPS)}.")
    spec = registry.EXTRACTORS[settings.extractor]
    for group, what in (("is", "the Inception Score"), ("modes", "mode coverage")):
        if group in settings.metrics and spec.num_classes is None:
            raise GenbenchError(f"{what} needs class logits, which extractor {spec.name} does not give; drop "
                                f"`{group}` from --metrics or choose another --extractor.")
    w = distributed.init(torch.device(settings.device).type)
    device = f"cuda:{w.local_rank}" if w.size > 1 and torch.device(settings.device).type == "cuda" else \
        settings.device
    t0 = time.perf_counter()
    samples = _load(samples_path, settings)
    module = spec.load(settings.weights, device=device)
    if w.is_main:  # the reference first: a wrong --ref fails before any extraction
        ref_obj = reference.resolve(ref, extractor=spec, module=module, data_root=settings.data_root,
                                    batch_size=settings.batch_size, device=device, progress=settings.progress,
                                    strict=settings.strict)
    out = summarize(module, samples.images, metrics=settings.metrics, batch_size=settings.batch_size,
                    device=device, progress=settings.progress, w=w)
    if not w.is_main:
        return {}
    extract_seconds = time.perf_counter() - t0
    n = out.n
    _warn_small(n, spec.feature_dim, settings.extractor)

    metrics = compare(out, ref_obj, spec=spec, module=module, settings=settings,
                      modes_reference=_labelled_split(ref, settings, spec) if "modes" in settings.metrics else None)

    settings_hash = "sha256:" + hashlib.sha256(json.dumps(settings.hashed(), sort_keys=True,
                                                          default=str).encode()).hexdigest()[:16]
    return {
        "schema": results.SCHEMA,
        "kind": "submitted samples",
        "run_id": f"score-{samples.content_hash[7:19]}",
        "created": results.now(),
        "model": f"held-out real data ({samples.source})" if samples.real_data else Path(samples_path).name,
        "dataset": ref_obj.label,
        "seed": settings.seed,
        "protocol": {"name": f"score/{spec.name}", "version": reference.FEATURE_PIPELINE_VERSION,
                     "hash": settings_hash},
        "metrics": metrics,
        "samples": {"path": samples.source, "files": samples.files, "n": n, "real_data": samples.real_data,
                    "skipped": list(samples.skipped)},
        "compute": {"parameters": None, "train_seconds": None, "device": str(torch.device(settings.device)),
                    "sample_images_per_s": None, "extract_seconds": extract_seconds,
                    **({"processes": w.size} if w.size > 1 else {})},
        "provenance": results.provenance(
            data_hash={"samples": samples.content_hash, "reference": ref_obj.key.get("data_hash")},
            checkpoint_sha256=None),
    }


@dataclass(frozen=True)
class _Samples(SampleSet):
    real_data: bool = False  # DATASET:SPLIT: real images scored as samples (a reference entry in reports)


def _load(samples_path: str | Path, settings: ScoreSettings) -> _Samples:
    """The samples to score: a folder or array file, or DATASET:SPLIT, which scores real held-out images (the
    floor a generative model's scores can reach with as many samples)."""
    path = Path(samples_path).expanduser()
    name, _, split = str(samples_path).rpartition(":")
    if not path.exists() and name in registry.DATASETS:
        data = registry.dataset(name).load(split, data_root=settings.data_root, progress=settings.progress)
        n = len(data) if settings.num_samples is None else settings.num_samples
        if n > len(data):
            raise GenbenchError(f"{samples_path} holds {len(data)} images; --num-samples {n} asks for more.")
        images = readonly(np.ascontiguousarray(data.images[:n]))
        return _Samples(images, str(samples_path), n, (), content_hash(images, None), real_data=True)
    # a grayscale extractor reads the samples as grayscale: a colour file among them is named, not a shape
    samples = load_samples(samples_path, strict=settings.strict, num_samples=settings.num_samples,
                           progress=settings.progress, channels=registry.EXTRACTORS[settings.extractor].channels)
    return _Samples(samples.images, str(path.resolve()), samples.files, samples.skipped, samples.content_hash)


@dataclass(frozen=True)
class SampleFeatures:
    """What the metrics read of the samples' features: their number, their Fréchet statistics (for FID), and
    the features and logits themselves where KID, precision/recall, density/coverage or IS need them."""

    n: int
    mu: np.ndarray | None = None
    sigma: np.ndarray | None = None
    features: np.ndarray | None = None
    logits: np.ndarray | None = None

    @classmethod
    def of(cls, out: dict[str, np.ndarray], metrics: tuple[str, ...]) -> SampleFeatures:
        """From the output of genbench.metrics.features.extract over all the samples (one process)."""
        from genbench.metrics import fidelity

        mu, sigma = fidelity.gaussian_stats(out["features"]) if "fid" in metrics else (None, None)
        return cls(len(out["features"]), mu, sigma, out["features"], out.get("logits"))


def summarize(module, images, *, metrics: tuple[str, ...], batch_size: int, device, progress: bool,
              w: distributed.World) -> SampleFeatures:
    """The samples' features as the metrics read them. Across processes (w, genbench.distributed) each rank
    extracts its whole batches of `images` (all of them, on every rank), the Fréchet statistics are merged in
    float64 and the features KID and the nearest-neighbour metrics need, and IS's logits, gathered in order:
    the same numbers as one process, FID within float64 rounding."""
    from genbench.metrics.features import extract

    if w.size == 1:
        return SampleFeatures.of(extract(module, images, batch_size=batch_size, device=device, progress=progress),
                                 metrics)
    share = distributed.batch_share(len(images), batch_size, w)
    empty = share.stop == share.start  # fewer batches than ranks: one image gives this rank's output shapes
    out = extract(module, images[slice(0, 1) if empty else share], batch_size=batch_size, device=device,
                  progress=progress and w.is_main)
    out = {key: value[:0] for key, value in out.items()} if empty else out
    mu = sigma = None
    if "fid" in metrics:
        mu, sigma, _ = distributed.gaussian_stats(out["features"], w)
    gather = lambda key: distributed.gather_rows(out[key], w) if key in out else None  # noqa: E731
    features = gather("features") if {"kid", "prc", "dc"} & set(metrics) else None
    logits = gather("logits") if {"is", "modes"} & set(metrics) else None
    return SampleFeatures(len(images), mu, sigma, features, logits)


def _labelled_split(ref: str, settings: ScoreSettings, spec):
    """The DATASET:SPLIT `ref` names, where the extractor classifies that dataset's classes and the split has
    their labels (the class frequencies mode coverage compares with); None otherwise (the uniform
    distribution over the extractor's classes)."""
    name, _, split = str(ref).rpartition(":")
    if Path(ref).expanduser().exists() or name not in registry.DATASETS or spec.classifies != name:
        return None
    data = registry.dataset(name).load(split, data_root=settings.data_root, progress=settings.progress)
    return data if data.labels is not None and np.asarray(data.labels).ndim == 1 else None


def compare(out: SampleFeatures, ref: reference.Reference, *, spec, module, settings: ScoreSettings,
            modes_reference=None) -> dict[str, dict]:
    """The chosen fidelity metrics of the samples' features `out` against `ref`, as result records.
    modes_reference: the labelled split (genbench.data.ImageData) whose class frequencies mode coverage
    compares with; None: the uniform distribution."""
    from genbench.metrics import fidelity

    fake, n = out.features, out.n
    common = {"n": n, "reference": ref.label, "reference_n": ref.n, "extractor": spec.name,
              "extractor_sha256": getattr(module, "weights_sha256", None)}
    metrics: dict[str, dict] = {}
    name = lambda m: metric_name(m, spec.name)  # noqa: E731
    hib = fidelity.HIGHER_IS_BETTER
    if "fid" in settings.metrics:
        value = fidelity.frechet_distance(out.mu, out.sigma, ref.mu, ref.sigma)
        metrics[name("fid")] = results.metric(value, higher_is_better=hib["fid"], **common)
    needs_features = [m for m in settings.metrics if m in ("kid", "prc", "dc")]
    if needs_features and ref.features is None:
        raise GenbenchError(f"{', '.join(needs_features)} need the reference's features, but {ref.label} holds "
                            "only Fréchet statistics (mu, sigma); use a dataset split or an image folder as --ref, "
                            "or score FID only with --metrics fid.")
    if "kid" in settings.metrics:
        mean, std = fidelity.kid(real=ref.features, fake=fake, subsets=settings.kid_subsets,
                                 subset_size=settings.kid_subset_size, seed=settings.seed)
        size = min(settings.kid_subset_size, n, ref.n)
        metrics[name("kid")] = results.metric(mean, higher_is_better=hib["kid"], std=std, subsets=settings.kid_subsets,
                                              subset_size=size, **common)
    if "is" in settings.metrics:
        mean, std = fidelity.inception_score(out.logits, splits=settings.is_splits, seed=settings.seed)
        metrics[name("is")] = results.metric(mean, higher_is_better=hib["is"], std=std, splits=settings.is_splits,
                                             **{k: v for k, v in common.items() if not k.startswith("reference")})
    if "prc" in settings.metrics:
        precision, recall = fidelity.precision_recall(real=ref.features, fake=fake, k=settings.prc_k)
        metrics[name("precision")] = results.metric(precision, higher_is_better=True, k=settings.prc_k, **common)
        metrics[name("recall")] = results.metric(recall, higher_is_better=True, k=settings.prc_k, **common)
    if "dc" in settings.metrics:
        density, coverage = fidelity.density_coverage(real=ref.features, fake=fake, k=settings.dc_k)
        metrics[name("density")] = results.metric(density, higher_is_better=True, k=settings.dc_k, **common)
        metrics[name("coverage")] = results.metric(coverage, higher_is_better=True, k=settings.dc_k, **common)
    if "modes" in settings.metrics:
        from genbench.metrics.modes import mode_records

        metrics.update(mode_records(out.logits.argmax(1), extractor=spec.name, extractor_sha256=common[
            "extractor_sha256"], num_modes=spec.num_classes, num_classes=spec.num_classes, reference=modes_reference))
    return metrics


def _warn_small(n: int, dim: int, extractor: str) -> None:
    if n < dim:
        warnings.warn(f"{n} samples is fewer than the feature dimension {dim}: the sample covariance is singular "
                      "and FID is biased upward; use at least that many, ideally 10k+.", GenbenchWarning, stacklevel=3)
    elif extractor == STANDARD_EXTRACTOR and n < LITERATURE_N:
        warnings.warn(f"{n} samples: published FID/IS/KID use {LITERATURE_N:,}; FID falls as N grows, so compare only "
                      f"with numbers computed from the same N (recorded in the result).", GenbenchWarning, stacklevel=3)
