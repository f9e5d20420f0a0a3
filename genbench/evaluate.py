"""Evaluation of a trained run: load the saved weights into a fresh model and compute what applies.

The metrics follow from the model's declared capabilities (DESIGN.md): bits/dim where `log_likelihood`
exists (and its IWAE bound where the model takes importance samples), PSNR/SSIM where `reconstruct`
exists, a sample grid and the sampling speed for every family. Beside them, as a reference, the exact
bits/dim of the independent-pixel histogram model fitted on the training split.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from genbench import GenbenchError, GenbenchWarning, results
from genbench.data import ImageData
from genbench.files import atomic_write, load_state, sha256_file
from genbench.metrics.likelihood import bits_per_dim, independent_pixel_bpd
from genbench.metrics.reconstruction import SSIM_MIN_SIZE, SSIM_SETTINGS, reconstruction_metrics
from genbench.protocols import Protocol
from genbench.rundir import RunDir
from genbench.runner import build_model, device_description


def evaluate_run(rd: RunDir, protocol: Protocol, *, train: ImageData, held_out: ImageData, device: torch.device,
                 progress: bool = True, echo: Callable[[str], None] = print) -> dict:
    info = rd.info()
    t0 = time.perf_counter()
    ev = protocol.evaluation
    images = _evaluation_images(held_out, ev.num_images, ev.subset_seed)
    split = f"{held_out.dataset}:{held_out.split}"

    model = build_model(protocol, tuple(images.shape[1:]), info["seed"]).to(device)
    model.load_state_dict(load_state(rd.weights, map_location=device))
    model.eval()
    g = lambda offset=0: torch.Generator(device).manual_seed(ev.seed + offset)  # noqa: E731

    metrics: dict[str, dict] = {}
    if hasattr(model, "log_likelihood"):
        estimator = "elbo" if model.likelihood == "bound" else "exact"
        nll = _negative_log_likelihoods(model, images, ev.batch_size, device, g(), progress, "bits/dim", k=1)
        metrics["bpd"] = _bpd_metric(nll, images, split=split, estimator=estimator)
        if getattr(model, "importance_sampling", False) and ev.iwae_k > 1 and ev.iwae_images > 0:
            subset = images[: ev.iwae_images]
            nll_k = _negative_log_likelihoods(model, subset, max(1, ev.batch_size // 10), device, g(1), progress,
                                     f"IWAE k={ev.iwae_k}", k=ev.iwae_k)
            metrics["bpd_iwae"] = _bpd_metric(nll_k, subset, split=split, estimator="iwae", k=ev.iwae_k)
            metrics["bpd_iwae"]["elbo_same_images"] = float(bits_per_dim(nll[: len(subset)].mean(),
                                                                         _dims(subset)))
    if hasattr(model, "reconstruct"):
        recon = np.concatenate([model.reconstruct(x).cpu().numpy()
                                for x in _batches(images, ev.batch_size, device, progress, "reconstruct")])
        summaries = reconstruction_metrics(real=images, fake=recon)
        metrics["psnr"] = results.metric(summaries["psnr"].pop("mean"), higher_is_better=True, split=split,
                                         unit="dB", data_range=255, **summaries["psnr"])
        ssim = summaries.get("ssim", {"mean": None, "error": f"{images.shape[2]}x{images.shape[3]} images are "
                                      f"smaller than the {SSIM_MIN_SIZE}x{SSIM_MIN_SIZE} SSIM window"})
        metrics["ssim"] = results.metric(ssim.pop("mean"), higher_is_better=True, split=split,
                                         settings={**SSIM_SETTINGS, "data_range": 255}, **ssim)

    samples, sample_ips = _samples(model, rd, ev, device, g(2))
    if ev.extractor:
        metrics.update(_sample_quality(samples, protocol, device=device, progress=progress))
    extra: dict = {}
    if ev.disentanglement is not None:
        scores, extra["disentanglement"] = _disentanglement(model, train, ev.disentanglement, device, progress)
        metrics.update(scores)
    files = {"weights": rd.weights.name, "samples": rd.samples_png.name, "train_log": "train_log.jsonl"}
    if all(hasattr(model, name) for name in ("posterior", "encode", "decode")):
        from genbench.traversals import save_traversals

        extra["traversals"] = save_traversals(model, images, rd.traversals_png)
        files["traversals"] = rd.traversals_png.name
    references = {"independent_pixel_bpd": results.metric(
        independent_pixel_bpd(train=train.images, test=images), higher_is_better=False, n=len(images),
        split=split, fitted_on=f"{train.dataset}:{train.split}", alpha=1.0, unit="bits/dim")}

    result = {
        "schema": results.SCHEMA,
        "kind": "training run",
        "run_id": info["run_id"],
        "created": results.now(),
        "model": protocol.model,
        "preset": protocol.preset,
        "dataset": protocol.dataset,
        "seed": info["seed"],
        "protocol": {"name": protocol.name, "version": protocol.version, "hash": protocol.hash,
                     "tier": protocol.tier},
        "metrics": metrics,
        "references": references,
        **extra,
        "compute": {
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_seconds": _train_seconds(rd),
            "eval_seconds": time.perf_counter() - t0,
            "device": device_description(device),
            "sample_images_per_s": sample_ips,
            "steps": protocol.steps,
            "batch_size": protocol.batch_size,
        },
        "provenance": results.provenance(
            data_hash={train.split: train.content_hash, held_out.split: held_out.content_hash},
            checkpoint_sha256=sha256_file(rd.weights)),
        "files": files,
    }
    results.write(rd.path, result)
    echo(f"Result written to {rd.result}.")
    return result


def _evaluation_images(data: ImageData, num_images: int | None, subset_seed: int | None) -> np.ndarray:
    """The images of the evaluation split that get scored: the first `num_images`, or with `subset_seed` a
    uniform sample of `num_images` drawn without replacement by RandomState(subset_seed), in index order
    (dSprites' only split is ordered by factor, so its first images are all one shape)."""
    n = min(num_images or len(data), len(data))
    if subset_seed is None or n == len(data):
        return data.images[:n]
    index = np.sort(np.random.RandomState(subset_seed).choice(len(data), n, replace=False))
    return np.asarray(data.images[index])


def _disentanglement(model, data: ImageData, settings, device, progress: bool) -> tuple[dict, dict]:
    """Every disentanglement score of the model's encoder mean (the representation disentanglement_lib
    scores) on the dataset's ground-truth factors; returns (metric records, how they were made)."""
    from genbench.data import dsprites
    from genbench.metrics import disentanglement as dis

    if data.dataset != "dsprites":
        raise GenbenchError(f"disentanglement scores need a dataset with ground-truth factors (dsprites); the "
                            f"protocol's evaluation names them for {data.dataset!r}.")
    full = len(data) == dsprites.NUM_IMAGES  # the train split: its own images; otherwise rendered exactly
    truth = dsprites.DSpritesFactors(data.images if full else None)

    @torch.no_grad()
    def represent(observations: np.ndarray) -> np.ndarray:
        return model.encode(torch.from_numpy(np.ascontiguousarray(observations)).to(device)).cpu().numpy()

    scores = dis.evaluate(truth, represent, settings, progress=progress)
    how = {"version": dis.VERSION, "settings": dis.settings_dict(settings), "representation": "encoder mean",
           "ground_truth": {"factors": list(truth.factor_names), "sizes": list(truth.factor_sizes),
                            "observations": data.source if full else f"procedural: {dsprites.GENERATOR}"}}
    return scores, how


def _dims(images: np.ndarray) -> int:
    return int(np.prod(images.shape[1:]))


def _bpd_metric(nll: torch.Tensor, images: np.ndarray, *, split: str, estimator: str, **details) -> dict:
    finite = torch.isfinite(nll)
    if not finite.all():
        bad = int((~finite).sum())
        warnings.warn(f"{bad} of {len(nll)} images got a non-finite log-likelihood; bits/dim is not reported.",
                      GenbenchWarning, stacklevel=2)
        return results.metric(None, higher_is_better=False, n=len(nll), split=split, estimator=estimator,
                              error=f"non-finite log-likelihood for {bad} images", **details)
    bpd = bits_per_dim(nll, _dims(images))
    return results.metric(float(bpd.mean()), higher_is_better=False, n=len(nll), split=split,
                          estimator=estimator, unit="bits/dim",
                          std_error=float(bpd.std() / len(bpd) ** 0.5) if len(bpd) > 1 else None, **details)


@torch.no_grad()
def _negative_log_likelihoods(model, images, batch_size, device, generator, progress, desc, *,
                              k: int) -> torch.Tensor:
    """Negative log-likelihood (or its bound) in nats per image, float64."""
    parts = [model.log_likelihood(x, k=k, generator=generator).double().cpu()
             for x in _batches(images, batch_size, device, progress, desc)]
    return -torch.cat(parts)


def _batches(images: np.ndarray, batch_size: int, device, progress: bool, desc: str) -> Iterator[torch.Tensor]:
    for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=None if progress else True, leave=False):
        yield torch.from_numpy(np.array(images[i:i + batch_size])).to(device)


def _sample_quality(samples: np.ndarray, protocol: Protocol, *, device, progress: bool) -> dict[str, dict]:
    """FID, KID, IS, precision/recall of the samples against the reference split, as `genbench score` does."""
    from genbench import reference, registry
    from genbench.metrics.features import extract
    from genbench.score import ScoreSettings, compare

    ev = protocol.evaluation
    spec = registry.EXTRACTORS[ev.extractor]
    module = spec.load(device=device)
    ref = reference.resolve(f"{protocol.dataset}:{ev.reference_split}", extractor=spec, module=module,
                            batch_size=ev.batch_size, device=device, progress=progress)
    out = extract(module, samples, batch_size=ev.batch_size, device=device, progress=progress)
    settings = ScoreSettings(metrics=ev.fidelity_metrics, extractor=spec.name, seed=ev.seed)
    return compare(out, ref, spec=spec, module=module, settings=settings)


@torch.no_grad()
def _samples(model, rd: RunDir, ev, device: torch.device, generator: torch.Generator) -> tuple[np.ndarray, float]:
    """Draw the evaluation samples, save them and a grid; return them and the sampling speed in images/s."""
    model.sample(min(ev.num_samples, 4), generator=torch.Generator(device).manual_seed(0))  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0, parts, left = time.perf_counter(), [], ev.num_samples
    while left > 0:
        parts.append(model.sample(min(left, ev.batch_size), generator=generator).cpu())
        left -= len(parts[-1])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    ips = ev.num_samples / (time.perf_counter() - t0)
    samples = torch.cat(parts)  # (n, C, H, W) uint8
    atomic_write(rd.samples_npz, lambda f: np.savez_compressed(f, images=samples.numpy()))
    grid = make_grid(samples[:64], nrow=8, padding=2, pad_value=255)  # (3, H', W') uint8, gray repeated
    image = Image.fromarray(grid.permute(1, 2, 0).numpy())
    atomic_write(rd.samples_png, lambda f: image.save(f, format="PNG"))
    return samples.numpy(), ips


def _train_seconds(rd: RunDir) -> float | None:
    if rd.checkpoint_info.exists():
        return float(json.loads(rd.checkpoint_info.read_text())["train_seconds"])
    return None
