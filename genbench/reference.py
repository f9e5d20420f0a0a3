"""Reference features and statistics: computed once per (data, extractor, preprocessing), cached, reused.

A reference is what generated samples are compared with: a dataset split (`fashion-mnist:test`), a folder or
array of images, or a user's `.npz` of Fréchet statistics (`mu`, `sigma`; FID only). For datasets and
folders the cache holds the features themselves (KID and precision/recall need them) beside their Gaussian
statistics, keyed by everything that can change them: the data's content hash, the extractor and its weights'
sha256, the preprocessing, and genbench's feature-pipeline version. The key is stored in the file and checked
on every read, so a changed key can never serve stale statistics.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genbench import GenbenchError, registry
from genbench.data import cache_dir
from genbench.files import atomic_write

# Bump when anything between decoded uint8 images and features changes (resizing, channel handling, batching
# rules, dtype): it invalidates every cached reference.
FEATURE_PIPELINE_VERSION = 1


@dataclass(frozen=True)
class Reference:
    label: str  # "fashion-mnist:test", a path, ...
    key: dict  # what the statistics depend on
    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64
    n: int
    features: np.ndarray | None  # (N, D) float32; None for a user's statistics file (FID only)
    path: Path | None = None  # the cache file or the user's file


def cache_key(*, data: str, data_hash: str, extractor, weights_sha256: str | None) -> dict:
    return {"data": data, "data_hash": data_hash, "extractor": extractor.name, "weights_sha256": weights_sha256,
            "input": extractor.input, "feature_pipeline": FEATURE_PIPELINE_VERSION}


def cache_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in key["data"])[-60:]
    return cache_dir() / "stats" / f"{safe}-{key['extractor']}-{digest}.npz"


def from_images(images: np.ndarray, *, label: str, data_hash: str, extractor, module, batch_size: int = 64,
                device="cpu", progress: bool = True, cache: bool = True) -> Reference:
    """Features and statistics of `images` (uint8 (N, C, H, W)), from the cache when the key matches."""
    from genbench.metrics.features import extract
    from genbench.metrics.fidelity import gaussian_stats

    key = cache_key(data=label, data_hash=data_hash, extractor=extractor,
                    weights_sha256=getattr(module, "weights_sha256", None))
    path = cache_path(key)
    if cache and path.exists():
        try:
            return _read(path, label=label, expect_key=key)
        except GenbenchError:
            pass  # damaged or from another key: recompute and replace it
    features = extract(module, images, batch_size=batch_size, device=device, progress=progress)["features"]
    mu, sigma = gaussian_stats(features)
    ref = Reference(label, key, mu, sigma, len(features), features.astype(np.float32), path if cache else None)
    if cache:
        atomic_write(path, lambda f: np.savez(f, key=np.array(json.dumps(key, sort_keys=True)), mu=mu,
                                              sigma=sigma, n=np.array(ref.n), features=ref.features))
    return ref


def from_statistics_file(path: str | Path) -> Reference:
    """A user's `.npz` holding `mu` (D,) and `sigma` (D, D), e.g. precomputed for a published benchmark."""
    return _read(Path(path), label=str(path), expect_key=None)


def _read(path: Path, *, label: str, expect_key: dict | None) -> Reference:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise GenbenchError(f"{path}: not a readable .npz of statistics ({e}).") from None
    if "mu" not in arrays or "sigma" not in arrays:
        raise GenbenchError(f"{path}: a statistics file needs arrays 'mu' (D,) and 'sigma' (D, D); "
                            f"found {sorted(arrays) or 'none'}.")
    mu, sigma = arrays["mu"].astype(np.float64), arrays["sigma"].astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise GenbenchError(f"{path}: mu has shape {mu.shape} and sigma {sigma.shape}; expected (D,) and (D, D).")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise GenbenchError(f"{path}: mu or sigma holds NaN or inf values.")
    key = json.loads(str(arrays["key"])) if "key" in arrays else {"data": label, "source": "user statistics file"}
    if expect_key is not None and key != expect_key:
        raise GenbenchError(f"{path}: cached for another key")
    n = int(arrays["n"]) if "n" in arrays else None
    return Reference(label, key, mu, sigma, n, arrays.get("features"), path)


def resolve(ref: str, *, extractor, module, data_root=None, batch_size: int = 64, device="cpu",
            progress: bool = True, strict: bool = False) -> Reference:
    """`DATASET:SPLIT`, a folder or array of images, or a statistics `.npz` -> a Reference."""
    from genbench.samples import load_samples

    path = Path(ref).expanduser()
    if path.suffix == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            is_stats = "mu" in z.files and "sigma" in z.files
        if is_stats:
            return from_statistics_file(path)
    if path.exists():
        samples = load_samples(path, strict=strict, progress=progress)
        return from_images(samples.images, label=str(path.resolve()), data_hash=samples.content_hash,
                           extractor=extractor, module=module, batch_size=batch_size, device=device,
                           progress=progress)
    if ":" not in ref:
        raise GenbenchError(f"--ref {ref!r}: no such file or folder, and not of the form DATASET:SPLIT "
                            f"(e.g. fashion-mnist:test; datasets: {', '.join(registry.DATASETS)}).")
    name, split = ref.rsplit(":", 1)
    data = registry.dataset(name).load(split, data_root=data_root, progress=progress)
    return from_images(data.images, label=f"{name}:{split}", data_hash=data.content_hash, extractor=extractor,
                       module=module, batch_size=batch_size, device=device, progress=progress)
