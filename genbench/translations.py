"""The evaluation step of a translation protocol (`Protocol.domains`, a model that declares `translate`: CycleGAN).

The first `Evaluation.translation_images` held-out images of each domain are translated into the other domain, in
both directions (a_to_b, b_to_a), and each direction is scored on its own:
- against the ground truth, where the images are labelled by dSprites factors (dsprites-shapes): PSNR, SSIM and
  the shape's IoU of every translation against the target shape at the source's scale, position and orientation,
  the closest of the orientations the source's rotational symmetry allows (genbench.metrics.translation says
  why and how);
- through the protocol's extractor: FID and KID of the translations against the reference split's images of the
  target domain (with the held-out real target images' FID beside it, the floor at this sample size), and where
  the extractor classifies the dataset, the share of translations it assigns to the target class.
A translator's samples are its translations: `samples.png` shows, per direction, a row of sources, a row of their
translations and (where known) a row of the ground truth they were scored against.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from genbench import GenbenchError, results
from genbench.evalkit import Context, batches
from genbench.files import atomic_write

DIRECTIONS = ("a_to_b", "b_to_a")
GROUND_TRUTH = ("psnr", "ssim", "iou")  # metric names get the direction appended: psnr_a_to_b, ...
THROUGH_EXTRACTOR = ("fid", "kid")
SHOWN = 8  # examples per row of the figure


def domain_of(labels: np.ndarray | None) -> np.ndarray | None:
    """Each image's class: the labels themselves, or for factor labels (N, F) the first factor (dSprites' shape)."""
    if labels is None or not np.issubdtype(np.asarray(labels).dtype, np.integer):
        return None
    labels = np.asarray(labels)
    return labels if labels.ndim == 1 else labels[:, 0] if labels.ndim == 2 else None


def domain_images(data, domains: tuple[int, int], model: str, *, per_domain: int | None = None):
    """(uint8 images of domain A then of domain B, int64 labels 0 / 1): the two classes a translation protocol names
    (at most `per_domain` of each, the first in split order)."""
    classes = domain_of(data.labels)
    if classes is None:
        raise GenbenchError(f"{model} translates between two classes of images, but {data.dataset}:{data.split} has "
                            "no class labels to tell its domains apart; use a labelled dataset (dsprites-shapes).")
    index = [np.flatnonzero(classes == d)[:per_domain] for d in domains]
    for d, ix in zip(domains, index):
        if not len(ix):
            raise GenbenchError(f"{data.dataset}:{data.split} has no image of class {d}, one of the two domains "
                                f"{domains} of the {model} protocol; its protocol does not fit this dataset.")
    images = np.concatenate([np.asarray(data.images[ix]) for ix in index])
    return images, np.repeat(np.arange(2, dtype=np.int64), [len(ix) for ix in index])


def applies(model_class, protocol) -> bool:
    return bool(protocol.domains) and hasattr(model_class, "translate")


def has_ground_truth(protocol) -> bool:
    """Translations are scored against the truth where the dataset's labels are dSprites factors: they render the
    right answer."""
    from genbench.metrics.translation import DATASETS

    return protocol.dataset in DATASETS


def classifies(protocol) -> bool:
    from genbench import registry

    ev = protocol.evaluation
    return bool(ev.extractor) and registry.EXTRACTORS[ev.extractor].classifies == protocol.dataset


def metric_names(model_class, protocol) -> list[str]:
    from genbench.score import metric_name

    ev, names = protocol.evaluation, []
    for d in DIRECTIONS:
        if has_ground_truth(protocol):
            names += [f"{m}_{d}" for m in GROUND_TRUTH]
        if ev.extractor:
            names += [metric_name(f"{m}_{d}", ev.extractor) for m in THROUGH_EXTRACTOR]
            names += [metric_name(f"target_accuracy_{d}", ev.extractor)] if classifies(protocol) else []
    return names


def _domain_names(protocol) -> tuple[str, str]:
    if has_ground_truth(protocol):
        from genbench.metrics.translation import SHAPES

        return tuple(SHAPES[d] for d in protocol.domains)
    return tuple(f"class {d}" for d in protocol.domains)


def translation(ctx: Context) -> None:
    ev, protocol = ctx.ev, ctx.protocol
    names = _domain_names(protocol)
    reference = _reference_split(ctx)
    held_classes, reference_classes = domain_of(ctx.held_out.labels), domain_of(reference.labels)
    rows, sections = [], {}
    for direction, (src, dst), (src_name, dst_name) in zip(DIRECTIONS, (protocol.domains, protocol.domains[::-1]),
                                                          (names, names[::-1])):
        index = np.flatnonzero(held_classes == src)[:ev.translation_images]
        sources = np.asarray(ctx.held_out.images[index])
        translated = np.concatenate([ctx.model.translate(x, direction).cpu().numpy() for x in
                                     batches(sources, ev.batch_size, ctx.device, ctx.progress, direction)])
        about = {"direction": f"{src_name} -> {dst_name}", "split": ctx.split}
        rows += [sources[:SHOWN], translated[:SHOWN]]
        if has_ground_truth(protocol):
            truth = _ground_truth(ctx, direction, translated, np.asarray(ctx.held_out.labels[index]), dst, about)
            rows.append(truth[:SHOWN])
        if ev.extractor:
            real_targets = np.asarray(ctx.held_out.images[np.flatnonzero(held_classes == dst)[:ev.translation_images]])
            references = np.asarray(reference.images[np.flatnonzero(reference_classes == dst)])
            _through_extractor(ctx, direction, translated, real_targets, references, dst, about)
        sections[direction] = {**about, "n": len(translated), "source_class": int(src), "target_class": int(dst)}
    ctx.extra["translation"] = {"domains": {"a": names[0], "b": names[1]}, "directions": sections}
    _save_figure(ctx, rows)


def _reference_split(ctx: Context):
    """The evaluation's reference split (its target-domain images are what translations are compared with)."""
    from genbench import registry

    split = ctx.ev.reference_split
    return next((d for d in (ctx.train, ctx.held_out) if d.split == split), None) or \
        registry.dataset(ctx.protocol.dataset).load(split, progress=ctx.progress)


def _ground_truth(ctx, direction, translated, source_factors, dst, about) -> np.ndarray:
    """PSNR, SSIM and IoU against the closest valid target; returns those targets (n, 1, H, W)."""
    from genbench.metrics import translation as tr

    targets = tr.valid_targets(source_factors, dst)  # rendered once: scored against, and shown in the figure
    scores = tr.score_translations(translated, source_factors, target_shape=dst, targets=targets)
    how = {**about, "against": tr.DEFINITION, "valid_targets": scores["targets"], "chosen": scores["chosen"]}
    psnr, ssim, iou = scores["psnr"], scores["ssim"], scores["iou"]
    ctx.metrics[f"psnr_{direction}"] = results.metric(psnr.pop("mean"), higher_is_better=True, unit="dB",
                                                      data_range=255, **how, **psnr)
    ctx.metrics[f"ssim_{direction}"] = results.metric(ssim.pop("mean"), higher_is_better=True, **how, **ssim)
    ctx.metrics[f"iou_{direction}"] = results.metric(iou.pop("mean"), higher_is_better=True, threshold=127,
                                                     **how, **iou)
    best, _ = tr.closest(translated, targets)
    return best


def _through_extractor(ctx, direction, translated, real_targets, references, dst, about) -> None:
    """FID and KID of the translations against the reference split's target-domain images; the same for held-out
    real target images (the floor) beside them, where they are not the reference itself; the share classified as
    the target class."""
    from genbench import reference
    from genbench.data import content_hash
    from genbench.metrics.features import extract
    from genbench.score import SampleFeatures, ScoreSettings, compare, metric_name

    spec, module = ctx.extractor()
    label = f"{ctx.protocol.dataset}:{ctx.ev.reference_split} class {dst}"
    ref = reference.from_images(references, label=label, data_hash=content_hash(references, None), extractor=spec,
                                module=module, batch_size=ctx.ev.batch_size, device=ctx.device, progress=ctx.progress)
    settings = ScoreSettings(metrics=THROUGH_EXTRACTOR, extractor=spec.name, seed=ctx.ev.seed)
    out, real = (extract(module, x, batch_size=ctx.ev.batch_size, device=ctx.device, progress=ctx.progress)
                 for x in (translated, real_targets))
    scores, floor = (compare(SampleFeatures.of(o, THROUGH_EXTRACTOR), ref, spec=spec, module=module,
                             settings=settings) for o in (out, real))
    same = ctx.ev.reference_split == ctx.held_out.split  # the real targets are reference images: no floor
    for m in THROUGH_EXTRACTOR:
        plain = metric_name(m, spec.name)
        beside = {"value": None, "why": "the reference split is the evaluation split"} if same else \
            {"value": floor[plain]["value"], "n": len(real_targets), "split": ctx.split}
        ctx.metrics[metric_name(f"{m}_{direction}", spec.name)] = {**scores[plain], **about, "real_targets": beside}
    if classifies(ctx.protocol):
        hit = float((out["logits"].argmax(1) == dst).mean())
        on_real = float((real["logits"].argmax(1) == dst).mean())
        ctx.metrics[metric_name(f"target_accuracy_{direction}", spec.name)] = results.metric(
            hit, higher_is_better=True, n=len(translated), **about, extractor=spec.name, real_targets=on_real,
            std_error=float(np.sqrt(hit * (1 - hit) / len(translated))))


def _save_figure(ctx: Context, rows: list[np.ndarray]) -> None:
    shown = torch.from_numpy(np.concatenate(rows))
    grid = make_grid(shown, nrow=SHOWN, padding=2, pad_value=128)  # (3, H', W') uint8, gray repeated
    image = Image.fromarray(grid.permute(1, 2, 0).numpy())
    atomic_write(ctx.rd.samples_png, lambda f: image.save(f, format="PNG"))
    ctx.files["samples"] = ctx.rd.samples_png.name
