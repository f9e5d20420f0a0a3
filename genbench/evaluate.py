"""Evaluation of a trained run: load the saved weights into a fresh model and compute what applies.

Evaluation is a short list of steps (STEPS). Each step names what it needs, as a test on the model's class
and the protocol, never on a family's name: bits/dim where `log_likelihood` exists (and its IWAE bound where
the model takes importance samples), bits/dim of the probability-flow ODE where `ode_log_likelihood` exists
and the protocol names a subset for it, PSNR/SSIM where `reconstruct` exists (the VAE's decoder, a GAN's latent
projection), samples for every family that samples, their sample quality and mode coverage where the protocol names
an extractor, the curve over training where the protocol keeps snapshots, FID against the sampling temperature where
the model samples at one (Glow) and the protocol names temperatures, FID against IS over the truncation threshold
where the model samples with one (BigGAN) and the protocol names thresholds (the curves are genbench.curves), test
accuracy where the model classifies (JEM), the likelihoods estimated by annealed importance sampling
(genbench.annealing): bits/dim of an energy-based model's exp(-E) / Z where it declares `energy` and the
protocol names AIS settings, log p(x) of a decoder where it declares `decoder_mean` and the protocol names
decoder AIS settings; disentanglement where the dataset has ground-truth factors, traversals where the model
encodes and decodes, and the model's own figures where it draws some (`figures`: StyleGAN2's style mixing). A
class-conditional protocol (`Protocol.num_classes`) draws its samples for labels in the training split's class
proportions, reports the exact marginal likelihood over the classes beside the conditional one, and scores the
samples against the labels asked for. A new capability adds a step. The same
tests tell `expected_metrics`, which a leaderboard checks submissions against, what a protocol writes.

Beside the metrics, as a reference, the exact bits/dim of the independent-pixel histogram model fitted on the
training split.
"""

from __future__ import annotations

import json
import time
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from genbench import GenbenchError, annealing, curves, distributed, results, translations
from genbench.data import ImageData
from genbench.device import device_description, synchronize
from genbench.evalkit import Context, Step, batches, bpd_metric, dims, draw, fidelity, load_weights
from genbench.files import atomic_write, sha256_file
from genbench.metrics.likelihood import bits_per_dim, independent_pixel_bpd
from genbench.metrics.reconstruction import SSIM_MIN_SIZE, SSIM_SETTINGS, reconstruction_metrics
from genbench.protocols import Protocol
from genbench.registry import MODELS
from genbench.rundir import RunDir

Echo = Callable[[str], None]


def open_context(rd: RunDir, protocol: Protocol, *, train: ImageData, held_out: ImageData, device: torch.device,
                 progress: bool = True) -> Context:
    """The saved weights loaded into a fresh model, with the scored images: what every step reads."""
    ev = protocol.evaluation
    images = _evaluation_images(held_out, ev.num_images, ev.subset_seed)
    seed = rd.info()["seed"]
    model = load_weights(protocol, rd.weights, tuple(images.shape[1:]), seed, device)
    ctx = Context(rd, protocol, model, train, held_out, images, device, progress, seed,
                  files={"weights": rd.weights.name, "train_log": "train_log.jsonl"})
    if protocol.num_classes:
        from genbench.metrics.conditional import label_plan

        ctx.sample_labels = label_plan(train.labels, ev.num_samples, num_classes=protocol.num_classes, seed=ev.seed)
    return ctx


def evaluate_run(rd: RunDir, protocol: Protocol, *, train: ImageData, held_out: ImageData, device: torch.device,
                 progress: bool = True, echo: Echo = print) -> dict:
    """Every step that applies, and result.json. Across processes (genbench.distributed) every rank takes its
    share of the sharded steps (drawing samples, scoring them), rank 0 alone runs the others and writes the
    result, and the other ranks return {}."""
    info = rd.info()
    t0 = time.perf_counter()
    ctx = open_context(rd, protocol, train=train, held_out=held_out, device=device, progress=progress)
    ctx.world = w = distributed.world()
    model, images = ctx.model, ctx.images
    for step in STEPS:
        if step.applies(type(model), protocol) and (w.is_main or step.sharded):
            echo(f"  {step.name} ...")
            step.run(ctx)
    if not w.is_main:
        return {}
    references = {"independent_pixel_bpd": results.metric(
        independent_pixel_bpd(train=train.images, test=images), higher_is_better=False, n=len(images),
        split=ctx.split, fitted_on=f"{train.dataset}:{train.split}", alpha=1.0, unit="bits/dim")}

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
                     "tier": protocol.tier, **({"task": "translation"} if protocol.domains else {})},
        "metrics": ctx.metrics,
        "references": references,
        **ctx.extra,
        "compute": {
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_seconds": _train_seconds(rd),
            "eval_seconds": time.perf_counter() - t0,
            "device": device_description(device),
            "sample_images_per_s": ctx.sample_ips,
            "steps": protocol.steps,
            "batch_size": protocol.batch_size,
            **({"processes": w.size} if w.size > 1 else {}),
        },
        "provenance": results.provenance(
            data_hash={train.split: train.content_hash, held_out.split: held_out.content_hash},
            checkpoint_sha256=sha256_file(rd.weights)),
        "files": ctx.files,
    }
    results.write(rd.path, result)
    echo(f"Result written to {rd.result}.")
    return result


def expected_metrics(protocol: Protocol) -> list[str]:
    """The metric names evaluating a run of `protocol` writes, from the same tests that choose the steps."""
    model_class = MODELS[protocol.model].model_class
    return [name for step in STEPS if step.applies(model_class, protocol)
            for name in step.writes(model_class, protocol)]


# ---------------------------------------------------------------------------------------------------------
# Likelihood: bits/dim, and the IWAE bound where the model takes importance samples

def _has_likelihood(model_class, protocol) -> bool:
    return hasattr(model_class, "log_likelihood")


def _takes_iwae(model_class, protocol) -> bool:
    ev = protocol.evaluation
    return getattr(model_class, "importance_sampling", False) and ev.iwae_k > 1 and ev.iwae_images > 0


def _likelihood(ctx: Context) -> None:
    if ctx.protocol.num_classes:
        return _class_conditional_likelihood(ctx)
    ev, model, images = ctx.ev, ctx.model, ctx.images
    # a family names its estimator where "elbo" / "exact" would not say what it computes (DDPM: vlb, vlb-mc)
    estimator = getattr(model, "likelihood_estimator", "elbo" if model.likelihood == "bound" else "exact")
    nll = _negative_log_likelihoods(ctx, images, ev.batch_size, ctx.generator(), "bits/dim", k=1)
    ctx.metrics["bpd"] = bpd_metric(nll, images, split=ctx.split, estimator=estimator,
                                     **getattr(model, "likelihood_details", {}))
    if _takes_iwae(type(model), ctx.protocol):
        subset = images[: ev.iwae_images]
        nll_k = _negative_log_likelihoods(ctx, subset, max(1, ev.batch_size // 10), ctx.generator(1),
                                          f"IWAE k={ev.iwae_k}", k=ev.iwae_k)
        # the importance-weighted bound over the model's latent (the VAE's IWAE) or its dequantization noise (a
        # flow's importance-weighted dequantization); the model names which where it is not "iwae"
        ctx.metrics["bpd_iwae"] = bpd_metric(nll_k, subset, split=ctx.split, k=ev.iwae_k,
                                              estimator=getattr(model, "importance_estimator", "iwae"))
        ctx.metrics["bpd_iwae"]["elbo_same_images"] = float(bits_per_dim(nll[: len(subset)].mean(), dims(subset)))


@torch.no_grad()
def _class_conditional_likelihood(ctx: Context) -> None:
    """A class-conditional model's exact log P(x | y) under every class y: the marginal log sum_y P(y) P(x | y)
    over the classes in the training split's proportions is `bpd` (the same quantity as an unconditional
    model's, so it shares the column), and log P(x | y) at each image's own label is `bpd_conditional`. One
    network pass per class and image."""
    if ctx.ev.subset_seed is not None:
        raise GenbenchError("a class-conditional protocol scores the first images of its split (no subset_seed)")
    model, images, classes = ctx.model, ctx.images, ctx.protocol.num_classes
    log_prior = torch.from_numpy(np.log(np.bincount(ctx.train.labels, minlength=classes) / len(ctx.train.labels)))
    own = torch.from_numpy(np.array(ctx.held_out.labels[: len(images)], dtype=np.int64))
    marginal, conditional, start = [], [], 0
    for x in batches(images, ctx.ev.batch_size, ctx.device, ctx.progress, f"bits/dim ({classes} classes)"):
        per_class = torch.stack([model.log_likelihood(x, labels=torch.full((len(x),), c, device=ctx.device))
                                 .double().cpu() for c in range(classes)], 1)  # (B, classes) log P(x | y)
        marginal.append(-torch.logsumexp(per_class + log_prior, 1))
        conditional.append(-per_class.gather(1, own[start:start + len(x), None]).squeeze(1))
        start += len(x)
    details = getattr(model, "likelihood_details", {})
    prior = f"{ctx.train.dataset}:{ctx.train.split} class frequencies"
    ctx.metrics["bpd"] = bpd_metric(torch.cat(marginal), images, split=ctx.split, estimator="exact", **details,
                                     marginal=f"log sum_y P(y) P(x | y) over {classes} classes, P(y) the {prior}")
    ctx.metrics["bpd_conditional"] = bpd_metric(torch.cat(conditional), images, split=ctx.split,
                                                 estimator="exact", **details, given="each image's class label")


@torch.no_grad()
def _negative_log_likelihoods(ctx: Context, images, batch_size, generator, desc, *, k: int) -> torch.Tensor:
    """Negative log-likelihood (or its bound) in nats per image, float64."""
    parts = [ctx.model.log_likelihood(x, k=k, generator=generator).double().cpu()
             for x in batches(images, batch_size, ctx.device, ctx.progress, desc)]
    return -torch.cat(parts)


def _has_ode_likelihood(model_class, protocol) -> bool:
    return hasattr(model_class, "ode_log_likelihood") and bool(protocol.evaluation.ode_images)


def _ode_likelihood(ctx: Context) -> None:
    """Bits/dim of the probability-flow ODE on uniformly dequantized images: the first `ode_images` scored images,
    one solve per batch; the dequantization noise and the trace probes come from the evaluation's generator."""
    ev, model = ctx.ev, ctx.model
    images = ctx.images[: ev.ode_images]
    generator, nll, nfe = ctx.generator(3), [], []
    for x in batches(images, ev.ode_batch_size or ev.batch_size, ctx.device, ctx.progress, "ODE likelihood"):
        out = model.ode_log_likelihood(x, generator=generator)
        nll.append(out["nll"].double().cpu())
        nfe.append(out["nfe"])
    ctx.metrics["bpd_ode"] = bpd_metric(torch.cat(nll), images, split=ctx.split, estimator="ode",
                                         **model.ode_details, batch_size=ev.ode_batch_size or ev.batch_size,
                                         mean_nfe=float(np.mean(nfe)))


# ---------------------------------------------------------------------------------------------------------
# Reconstruction: PSNR and SSIM of held-out images (decoder, or latent projection)

def _reconstruction(ctx: Context) -> None:
    ev = ctx.ev
    images = ctx.images[: ev.reconstruct_images] if ev.reconstruct_images else ctx.images
    recon = np.concatenate([ctx.model.reconstruct(x).cpu().numpy()
                            for x in batches(images, ev.batch_size, ctx.device, ctx.progress, "reconstruct")])
    how = {"method": getattr(ctx.model, "reconstruction", "decode(encode(x))")}
    summaries = reconstruction_metrics(real=images, fake=recon)
    ctx.metrics["psnr"] = results.metric(summaries["psnr"].pop("mean"), higher_is_better=True, split=ctx.split,
                                         unit="dB", data_range=255, **how, **summaries["psnr"])
    ssim = summaries.get("ssim", {"mean": None, "error": f"{images.shape[2]}x{images.shape[3]} images are "
                                  f"smaller than the {SSIM_MIN_SIZE}x{SSIM_MIN_SIZE} SSIM window"})
    ctx.metrics["ssim"] = results.metric(ssim.pop("mean"), higher_is_better=True, split=ctx.split,
                                         settings={**SSIM_SETTINGS, "data_range": 255}, **how, **ssim)


# ---------------------------------------------------------------------------------------------------------
# Samples, their quality against the reference split, and their mode coverage

def _samples(ctx: Context) -> None:
    """Draw the evaluation samples, time them, save them and a grid. Across processes (genbench.distributed)
    each rank draws its whole batches where the protocol gives every batch its own stream, and rank 0 draws
    them all where one stream runs through them; either way every rank ends with all the samples."""
    ev, model, device, w = ctx.ev, ctx.model, ctx.device, ctx.world
    if ev.sample_streams == "per-batch":
        share = distributed.batch_share(ev.num_samples, ev.batch_size, w)
    else:
        share = slice(0, ev.num_samples if w.is_main else 0)
    drawing = share.stop > share.start
    if drawing:
        warm = min(ev.num_samples, 4)
        with torch.no_grad():
            draw(model, warm, warm, torch.Generator(device).manual_seed(0), **ctx.labels_for(warm))
        synchronize(device)
    distributed.barrier(w)
    t0 = time.perf_counter()
    samples = draw(model, ev.num_samples, ev.batch_size, ctx.generator(2), **ctx.labels_for(ev.num_samples),
                   streams=ev.sample_streams, share=share) if drawing else \
        torch.empty((0, *ctx.images.shape[1:]), dtype=torch.uint8)
    synchronize(device)
    samples = torch.from_numpy(distributed.gather_rows(samples.numpy(), w))
    ctx.sample_ips = ev.num_samples / (time.perf_counter() - t0)
    ctx.samples = samples.numpy()
    if not w.is_main:
        return
    if hasattr(model, "sampler_description"):  # the sampler a diffusion or score model draws with
        ctx.extra["sampler"] = model.sampler_description
    arrays = {"images": samples.numpy()}
    if ctx.sample_labels is not None:
        arrays["labels"] = ctx.sample_labels
    atomic_write(ctx.rd.samples_npz, lambda f: np.savez_compressed(f, **arrays))
    shown = samples[:64] if ctx.sample_labels is None else samples[_by_class(ctx.sample_labels, 8)]
    grid = make_grid(shown, nrow=8, padding=2, pad_value=255)  # (3, H', W') uint8, gray repeated
    image = Image.fromarray(grid.permute(1, 2, 0).numpy())
    atomic_write(ctx.rd.samples_png, lambda f: image.save(f, format="PNG"))
    ctx.files["samples"] = ctx.rd.samples_png.name


def _figures(ctx: Context) -> None:
    """The model's own figures (StyleGAN2: style mixing and noise inputs), each a PNG beside the samples."""
    for name, image in ctx.model.figures().items():
        picture = Image.fromarray(image.cpu().permute(1, 2, 0).squeeze(2).numpy())
        path = ctx.rd.path / f"{name}.png"
        atomic_write(path, lambda f, picture=picture: picture.save(f, format="PNG"))
        ctx.files[name] = path.name


def _by_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first `per_class` samples of each class, class by class: one grid row per class."""
    return np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)])


def _sample_quality(ctx: Context) -> None:
    ctx.metrics.update(fidelity(ctx, ctx.samples, ctx.ev.fidelity_metrics, sharded=True))


def _fidelity_names(model_class, protocol) -> list[str]:
    from genbench.score import GROUP_METRICS, metric_name

    ev = protocol.evaluation
    return [metric_name(m, ev.extractor) for group in ev.fidelity_metrics for m in GROUP_METRICS[group]]


def _mode_coverage(ctx: Context) -> None:
    """Classes the samples cover and the KL from the training split's class distribution; on stacked data,
    the 1,000 modes of per-channel classes against the uniform distribution of the construction (as VEEGAN
    and PacGAN report)."""
    from genbench.metrics import modes

    spec, module = ctx.extractor()
    stacked = ctx.ev.modes == "stacked"
    ctx.metrics.update(modes.evaluate_modes(module, ctx.samples, extractor=spec.name, stacked=stacked,
                                            dataset_classes=spec.num_classes,
                                            reference=None if stacked else ctx.train,
                                            batch_size=ctx.ev.batch_size, device=ctx.device))


def _mode_names(model_class, protocol) -> list[str]:
    from genbench.metrics import modes

    return modes.metric_names(protocol.evaluation.modes, protocol.evaluation.extractor)


def _class_conditional_quality(ctx: Context) -> None:
    """Whether the samples show the classes they were drawn for (the extractor's classifier, beside its accuracy
    on the held-out images; only where its classes are the dataset's) and intra-FID against the reference split's
    images of each class."""
    from genbench import registry
    from genbench.metrics.conditional import evaluate_conditional

    spec, module = ctx.extractor()
    split = ctx.ev.reference_split
    data = next((d for d in (ctx.train, ctx.held_out) if d.split == split), None) or \
        registry.dataset(ctx.protocol.dataset).load(split, progress=ctx.progress)
    ctx.metrics.update(evaluate_conditional(
        module, ctx.samples, ctx.sample_labels, extractor=spec.name, reference_features=ctx.reference().features,
        reference_labels=data.labels, reference=f"{data.dataset}:{split}", real_images=ctx.held_out.images,
        real_labels=ctx.held_out.labels, real=ctx.split, num_classes=ctx.protocol.num_classes,
        accuracy_too=_classifies_own_classes(ctx.protocol), batch_size=ctx.ev.batch_size, device=ctx.device))


def _classifies_own_classes(protocol) -> bool:
    """A class-conditional protocol whose extractor classifies the dataset's own classes (lenet-fashion-mnist on
    Fashion-MNIST; not the Inception network's ImageNet classes on CIFAR-10)."""
    from genbench import registry

    ev = protocol.evaluation
    return bool(protocol.num_classes and ev.extractor
                and registry.EXTRACTORS[ev.extractor].classifies == protocol.dataset)


def _class_conditional_names(model_class, protocol) -> list[str]:
    from genbench.metrics.conditional import metric_names

    return metric_names(protocol.evaluation.extractor, accuracy_too=_classifies_own_classes(protocol))


# ---------------------------------------------------------------------------------------------------------
# A model that classifies (JEM's p(y | x))

@torch.no_grad()
def _classification(ctx: Context) -> None:
    """Accuracy of the model's classifier on the scored images of the evaluation split, against their labels."""
    labels = ctx.held_out.labels
    if labels is None:
        raise GenbenchError(f"{ctx.protocol.model} classifies, but {ctx.split} has no class labels to score it on.")
    ev = ctx.ev
    labels = np.asarray(labels[_evaluation_index(len(ctx.held_out), ev.num_images, ev.subset_seed)], dtype=np.int64)
    predicted = np.concatenate([ctx.model.classify(x).argmax(1).cpu().numpy()
                                for x in batches(ctx.images, ev.batch_size, ctx.device, ctx.progress, "classify")])
    accuracy = float((predicted == labels).mean())
    ctx.metrics["accuracy"] = results.metric(accuracy, higher_is_better=True, n=len(labels), split=ctx.split,
                                             std_error=float(np.sqrt(accuracy * (1 - accuracy) / len(labels))),
                                             classifier="the model's p(y | x)")


# ---------------------------------------------------------------------------------------------------------
# Disentanglement and traversals

def _disentanglement(ctx: Context) -> None:
    """Every disentanglement score of the model's encoder mean (the representation disentanglement_lib
    scores) on the dataset's ground-truth factors."""
    from genbench.data import dsprites
    from genbench.metrics import disentanglement as dis

    data, model, device = ctx.train, ctx.model, ctx.device
    if data.dataset != "dsprites":
        raise GenbenchError(f"disentanglement scores need a dataset with ground-truth factors (dsprites); the "
                            f"protocol's evaluation names them for {data.dataset!r}.")
    full = len(data) == dsprites.NUM_IMAGES  # the train split: its own images; otherwise rendered exactly
    truth = dsprites.DSpritesFactors(data.images if full else None)

    @torch.no_grad()
    def represent(observations: np.ndarray) -> np.ndarray:
        return model.encode(torch.from_numpy(np.ascontiguousarray(observations)).to(device)).cpu().numpy()

    settings = ctx.ev.disentanglement
    ctx.metrics.update(dis.evaluate(truth, represent, settings, progress=ctx.progress))
    ctx.extra["disentanglement"] = {
        "version": dis.VERSION, "settings": dis.settings_dict(settings), "representation": "encoder mean",
        "ground_truth": {"factors": list(truth.factor_names), "sizes": list(truth.factor_sizes),
                         "observations": data.source if full else f"procedural: {dsprites.GENERATOR}"}}


def _disentanglement_names(model_class, protocol) -> list[str]:
    from genbench.metrics.disentanglement import FIXED_SAMPLE_SCORES, MODEL_SCORES

    return [*FIXED_SAMPLE_SCORES, *MODEL_SCORES]


def _traversals(ctx: Context) -> None:
    from genbench.traversals import save_traversals

    ctx.extra["traversals"] = save_traversals(ctx.model, ctx.images, ctx.rd.traversals_png)
    ctx.files["traversals"] = ctx.rd.traversals_png.name


# ---------------------------------------------------------------------------------------------------------

STEPS: tuple[Step, ...] = (
    Step("likelihood", _has_likelihood, _likelihood,
         lambda m, p: ["bpd", *(["bpd_conditional"] if p.num_classes else []),
                       *(["bpd_iwae"] if _takes_iwae(m, p) else [])]),
    Step("probability-flow likelihood", _has_ode_likelihood, _ode_likelihood, lambda m, p: ["bpd_ode"]),
    Step("reconstruction", lambda m, p: hasattr(m, "reconstruct"), _reconstruction, lambda m, p: ["psnr", "ssim"]),
    Step("samples", lambda m, p: hasattr(m, "sample"), _samples, sharded=True),
    Step("figures", lambda m, p: hasattr(m, "figures"), _figures),
    Step("sample quality", lambda m, p: hasattr(m, "sample") and bool(p.evaluation.extractor
                                                                    and p.evaluation.fidelity_metrics),
         _sample_quality, _fidelity_names, sharded=True),
    Step("mode coverage", lambda m, p: bool(p.evaluation.extractor and p.evaluation.modes), _mode_coverage,
         _mode_names),
    Step("translation", translations.applies, translations.translation, translations.metric_names),
    Step("class-conditional sample quality", lambda m, p: bool(p.num_classes and p.evaluation.extractor),
         _class_conditional_quality, _class_conditional_names),
    Step("snapshots", lambda m, p: bool(p.snapshot_every and p.evaluation.extractor and p.evaluation.fidelity_metrics),
         curves.snapshots),
    Step("sampler steps", lambda m, p: bool(p.evaluation.sampler_steps and p.evaluation.extractor)
         and curves.takes_sampler_steps(m, p), curves.sampler_steps),
    Step("temperatures", lambda m, p: bool(p.evaluation.temperatures and p.evaluation.extractor)
         and curves.takes_temperature(m, p), curves.temperature_curve),
    Step("truncation", lambda m, p: bool(p.evaluation.truncations and p.evaluation.extractor)
         and curves.takes_truncation(m, p), curves.truncation_curve),
    Step("classification", lambda m, p: hasattr(m, "classify"), _classification, lambda m, p: ["accuracy"]),
    Step("AIS likelihood", annealing.has_energy_ais, annealing.energy_likelihood, lambda m, p: ["bpd_ais"]),
    Step("decoder AIS likelihood", annealing.has_decoder_ais, annealing.decoder_likelihood,
         annealing.decoder_metric_names),
    Step("disentanglement", lambda m, p: p.evaluation.disentanglement is not None, _disentanglement,
         _disentanglement_names),
    Step("traversals", lambda m, p: all(hasattr(m, name) for name in ("posterior", "encode", "decode")),
         _traversals),
)


# ---------------------------------------------------------------------------------------------------------

def _evaluation_index(n_split: int, num_images: int | None, subset_seed: int | None) -> slice | np.ndarray:
    """Which images of the evaluation split get scored: the first `num_images`, or with `subset_seed` a uniform
    sample of `num_images` drawn without replacement by RandomState(subset_seed), in index order (dSprites' only
    split is ordered by factor, so its first images are all one shape)."""
    n = min(num_images or n_split, n_split)
    if subset_seed is None or n == n_split:
        return slice(0, n)
    return np.sort(np.random.RandomState(subset_seed).choice(n_split, n, replace=False))


def _evaluation_images(data: ImageData, num_images: int | None, subset_seed: int | None) -> np.ndarray:
    index = _evaluation_index(len(data), num_images, subset_seed)
    return data.images[index] if isinstance(index, slice) else np.asarray(data.images[index])


def _train_seconds(rd: RunDir) -> float | None:
    if rd.checkpoint_info.exists():
        return float(json.loads(rd.checkpoint_info.read_text())["train_seconds"])
    return None
