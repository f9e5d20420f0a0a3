"""Sample-quality curves, steps of genbench.evaluate: FID over training from the snapshots kept during training (never
computed inside training), FID against the number of sampling steps (a model whose sample() takes `steps`), and FID
against the sampling temperature (a sample() that takes one).
"""

from __future__ import annotations

import inspect
import time

import torch
from tqdm.auto import tqdm

from genbench import GenbenchError
from genbench.device import device_description, synchronize
from genbench.evalkit import Context, draw, fidelity, load_weights


# ---------------------------------------------------------------------------------------------------------
# Sample quality over training, from the snapshots kept during training (never computed inside training)

def snapshots(ctx: Context) -> None:
    """Score each snapshot's samples (`snapshot_samples` of them, drawn with the same generator seed as the
    evaluation samples) with the protocol's first fidelity metric group; the final weights close the curve."""
    ev, rd = ctx.ev, ctx.rd
    steps = rd.snapshot_steps()
    if not steps:
        raise GenbenchError(f"{ctx.protocol.ref} keeps a snapshot every {ctx.protocol.snapshot_every} steps, but "
                            f"{rd.snapshots} holds none: the run was trained by another genbench or its "
                            "snapshots were removed. Train it again with --force.")
    group = ev.fidelity_metrics[0]
    points = []
    for step in tqdm(steps, desc="snapshots", disable=None if ctx.progress else True, leave=False):
        model = load_weights(ctx.protocol, rd.snapshot(step), ctx.images.shape[1:], ctx.seed, ctx.device)
        samples = draw(model, ev.snapshot_samples, ev.batch_size, ctx.generator(2),
                        **ctx.labels_for(ev.snapshot_samples)).numpy()
        scores = fidelity(ctx, samples, (group,))
        points.append({"step": step, **{name: rec["value"] for name, rec in scores.items()}})
    ctx.extra["snapshots"] = {"every": ctx.protocol.snapshot_every, "n": ev.snapshot_samples,
                              "metrics": [name for name in scores], "reference": f"{ctx.protocol.dataset}:"
                              f"{ev.reference_split}", "extractor": ev.extractor, "curve": points}


# ---------------------------------------------------------------------------------------------------------
# Sample quality against the number of sampling steps (DDIM's speed-quality trade-off, Song et al. 2021 Table 1)

def takes_sampler_steps(model_class, protocol) -> bool:
    return "steps" in inspect.signature(model_class.sample).parameters and hasattr(model_class,
                                                                                  "sampler_description_with")


def sampler_steps_curve(ctx: Context, steps: tuple[int, ...], num_samples: int) -> dict:
    """FID (the protocol's extractor and reference) and sampling speed of `num_samples` samples drawn with each
    number of steps, every draw from the same generator seed (so the same x_T)."""
    if not takes_sampler_steps(type(ctx.model), ctx.protocol):
        raise GenbenchError(f"{ctx.protocol.model} samples with a fixed number of steps; only a model whose "
                            "sample() takes `steps` (ddpm) has a steps curve.")
    if not ctx.ev.extractor:
        raise GenbenchError(f"{ctx.protocol.ref} names no extractor, so its samples get no FID.")
    points, names = [], []
    try:
        with torch.no_grad():  # warm-up, as for the evaluation samples, so the first point's speed is not its own
            for s in steps:  # and every S checked before minutes are spent on the first ones
                draw(ctx.model, 1, 1, torch.Generator(ctx.device).manual_seed(0), steps=s, **ctx.labels_for(1))
    except ValueError as e:
        raise GenbenchError(f"{ctx.protocol.model} cannot sample with steps {steps}: {e}") from None
    for s in steps:
        synchronize(ctx.device)
        t0 = time.perf_counter()
        samples = draw(ctx.model, num_samples, ctx.ev.batch_size, ctx.generator(2), steps=s,
                        **ctx.labels_for(num_samples)).numpy()
        synchronize(ctx.device)
        ips = num_samples / (time.perf_counter() - t0)
        scores = fidelity(ctx, samples, ("fid",))
        names = list(scores)
        points.append({"steps": s, **{name: rec["value"] for name, rec in scores.items()}, "images_per_s": ips})
    description = dict(ctx.model.sampler_description_with(steps[0])) if steps else {}
    description.pop("steps", None)
    return {"n": num_samples, "metrics": names, "reference": f"{ctx.protocol.dataset}:{ctx.ev.reference_split}",
            "extractor": ctx.ev.extractor, "sampler": description, "device": device_description(ctx.device),
            "curve": points}


def sampler_steps(ctx: Context) -> None:
    ctx.extra["sampler_steps"] = sampler_steps_curve(ctx, ctx.ev.sampler_steps, ctx.ev.sampler_steps_samples)


# ---------------------------------------------------------------------------------------------------------
# Sample quality against the sampling temperature (Glow: Kingma & Dhariwal 2018, the effect of temperature)

def takes_temperature(model_class, protocol) -> bool:
    return "temperature" in inspect.signature(model_class.sample).parameters


def temperature_curve(ctx: Context) -> None:
    """FID (the protocol's extractor and reference) and sampling speed at each of the protocol's temperatures, every
    draw from the generator seed of the evaluation samples: the same prior noise, scaled by T, so the point at the
    model's own temperature repeats the evaluation samples' FID."""
    ev = ctx.ev
    n = ev.temperature_samples or ev.num_samples
    points, names = [], []
    for t in ev.temperatures:
        synchronize(ctx.device)
        t0 = time.perf_counter()
        samples = draw(ctx.model, n, ev.batch_size, ctx.generator(2), temperature=t, **ctx.labels_for(n)).numpy()
        synchronize(ctx.device)
        ips = n / (time.perf_counter() - t0)
        scores = fidelity(ctx, samples, ("fid",))
        names = list(scores)
        points.append({"temperature": t, **{name: rec["value"] for name, rec in scores.items()}, "images_per_s": ips})
    ctx.extra["temperature_curve"] = {"n": n, "metrics": names, "extractor": ev.extractor,
                                      "reference": f"{ctx.protocol.dataset}:{ev.reference_split}",
                                      "device": device_description(ctx.device), "curve": points}


# ---------------------------------------------------------------------------------------------------------
# Fidelity against variety over the truncation threshold (BigGAN: Brock et al. 2019, Sec. 3.1 and Fig. 4)

def takes_truncation(model_class, protocol) -> bool:
    return "truncation" in inspect.signature(model_class.sample).parameters


def truncation_curve(ctx: Context) -> None:
    """FID and IS (the protocol's extractor and reference) at each truncation threshold, every draw with the labels
    and the generator seed of the evaluation samples; the untruncated evaluation samples' scores close the curve
    when they were drawn in the same number. Written to the result and drawn as FID against IS."""
    from genbench.report.plots import save
    from genbench.report.run_plots import truncation_plot

    ev = ctx.ev
    n = ev.truncation_samples or ev.num_samples
    points, names = [], []
    for t in tqdm(ev.truncations, desc="truncation", disable=None if ctx.progress else True, leave=False):
        samples = draw(ctx.model, n, ev.batch_size, ctx.generator(2), truncation=t, **ctx.labels_for(n)).numpy()
        scores = fidelity(ctx, samples, ("fid", "is"))
        names = list(scores)
        points.append({"truncation": t, **{name: rec["value"] for name, rec in scores.items()}})
    if n == ev.num_samples and all(name in ctx.metrics for name in names):
        points.append({"truncation": None, **{name: ctx.metrics[name]["value"] for name in names}})
    section = {"n": n, "metrics": names, "extractor": ev.extractor, "truncation": "z ~ N(0, I) truncated to "
               "[-t, t] elementwise; t = null: untruncated", "reference": f"{ctx.protocol.dataset}:"
               f"{ev.reference_split}", "curve": points}
    ctx.extra["truncation_curve"] = section
    save(truncation_plot(section, title=f"{ctx.protocol.model} on {ctx.protocol.dataset}: FID against IS over the "
                                        "truncation threshold"), ctx.rd.path / "truncation", ("png",))
    ctx.files["truncation"] = "truncation.png"
