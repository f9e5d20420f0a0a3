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

from genbench import GenbenchError, GenbenchWarning, reference, registry, results
from genbench.data.base import content_hash, readonly
from genbench.samples import SampleSet, load_samples

STANDARD_EXTRACTOR = "inception-v3-compat"
METRIC_GROUPS = ("fid", "kid", "is", "prc", "dc")  # dc: density and coverage (k=5), on request
# The metrics each group writes (before the extractor's name is added, see metric_name).
GROUP_METRICS = {"fid": ("fid",), "kid": ("kid",), "is": ("is",), "prc": ("precision", "recall"),
                 "dc": ("density", "coverage")}
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
    from genbench.metrics.features import extract

    unknown = set(settings.metrics) - set(METRIC_GROUPS)
    if unknown:
        raise GenbenchError(f"unknown metrics {sorted(unknown)}; choose from {', '.join(METRIC_GROUPS)}.")
    spec = registry.EXTRACTORS[settings.extractor]
    if "is" in settings.metrics and spec.num_classes is None:
        raise GenbenchError(f"the Inception Score needs class logits, which extractor {spec.name} does not give; "
                            "drop `is` from --metrics or choose another --extractor.")
    t0 = time.perf_counter()
    samples = _load(samples_path, settings)
    module = spec.load(settings.weights, device=settings.device)
    ref_obj = reference.resolve(ref, extractor=spec, module=module, data_root=settings.data_root,
                                batch_size=settings.batch_size, device=settings.device, progress=settings.progress,
                                strict=settings.strict)
    out = extract(module, samples.images, batch_size=settings.batch_size, device=settings.device,
                  progress=settings.progress)
    extract_seconds = time.perf_counter() - t0
    n = len(out["features"])
    _warn_small(n, spec.feature_dim, settings.extractor)

    metrics = compare(out, ref_obj, spec=spec, module=module, settings=settings)

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
                    "sample_images_per_s": None, "extract_seconds": extract_seconds},
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


def compare(out: dict, ref: reference.Reference, *, spec, module, settings: ScoreSettings) -> dict[str, dict]:
    """The chosen fidelity metrics of extracted sample features `out` against `ref`, as result records."""
    from genbench.metrics import fidelity

    fake, n = out["features"], len(out["features"])
    common = {"n": n, "reference": ref.label, "reference_n": ref.n, "extractor": spec.name,
              "extractor_sha256": getattr(module, "weights_sha256", None)}
    metrics: dict[str, dict] = {}
    name = lambda m: metric_name(m, spec.name)  # noqa: E731
    hib = fidelity.HIGHER_IS_BETTER
    if "fid" in settings.metrics:
        mu, sigma = fidelity.gaussian_stats(fake)
        value = fidelity.frechet_distance(mu, sigma, ref.mu, ref.sigma)
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
        mean, std = fidelity.inception_score(out["logits"], splits=settings.is_splits, seed=settings.seed)
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
    return metrics


def _warn_small(n: int, dim: int, extractor: str) -> None:
    if n < dim:
        warnings.warn(f"{n} samples is fewer than the feature dimension {dim}: the sample covariance is singular "
                      "and FID is biased upward; use at least that many, ideally 10k+.", GenbenchWarning, stacklevel=3)
    elif extractor == STANDARD_EXTRACTOR and n < LITERATURE_N:
        warnings.warn(f"{n} samples: published FID/IS/KID use {LITERATURE_N:,}; FID falls as N grows, so compare only "
                      f"with numbers computed from the same N (recorded in the result).", GenbenchWarning, stacklevel=3)
