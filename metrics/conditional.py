"""Scores of class-conditional generation: the labels the samples are drawn for, whether each sample shows the
class it was asked for, and FID within each class.

    from genbench.metrics import conditional
    labels = conditional.label_plan(train.labels, 10_000, num_classes=10, seed=0)   # 1,000 of each class
    samples = model.sample(10_000, labels=labels)
    records = conditional.evaluate_conditional(net, samples, labels, reference_features=ref.features,
                                               reference_labels=train.labels, extractor="lenet-fashion-mnist")

Provenance
----------
- Intra-FID: Miyato & Koyama, "cGANs with Projection Discriminator" (ICLR 2018), Sec. 5.1: the FID of the
  samples of each class against the real images of that class, averaged over the classes (as BigGAN's
  class-conditional comparisons also read it). Each class's FID here is genbench's `frechet_distance` of the
  float64 Gaussian fits of the two feature sets (metrics/fidelity.py), the same math as the unconditional FID.
- Accuracy against the label asked for (the "classification accuracy score" direction of Ravuri & Vinyals 2019
  is the other way round: a classifier trained on samples and tested on real data; this is the cheaper check
  BigGAN-style reports use, a classifier trained on real data applied to the samples): the share of samples
  the extractor's classifier assigns to the class they were generated for. Its ceiling is the classifier's
  accuracy on real held-out images, which every record carries as `real_accuracy`.

Conventions
-----------
The labels a model is asked for follow the training split's class frequencies exactly where they can
(`label_plan`: largest-remainder apportionment of n, then a seeded shuffle so any prefix is mixed), so intra-FID
compares n_c samples with the real images of each class c and the unconditional scores see the data's class
balance. Classes with fewer than 2 samples or reference images get no FID; the mean is over the others, and
the record says how many classes it averages.
"""

from __future__ import annotations

import numpy as np
import torch

from genbench import GenbenchError

HIGHER_IS_BETTER = {"class_accuracy": True, "fid_intra": False}


def label_plan(train_labels: np.ndarray, n: int, *, num_classes: int, seed: int) -> np.ndarray:
    """int64 (n,): labels in proportion to `train_labels`' class frequencies (largest remainders, ties to the
    lower class), in an order shuffled by RandomState(seed)."""
    labels = _classes(train_labels, "train_labels", num_classes)
    if n < 1:
        raise GenbenchError(f"n must be at least 1, got {n}")
    freq = np.bincount(labels, minlength=num_classes) / len(labels)
    exact = n * freq
    counts = np.floor(exact).astype(np.int64)
    short = n - int(counts.sum())
    order = np.lexsort((np.arange(num_classes), -(exact - counts)))  # largest remainder first, then lower class
    counts[order[:short]] += 1
    plan = np.repeat(np.arange(num_classes), counts)
    return plan[np.random.RandomState(seed).permutation(n)]


def accuracy(predicted: np.ndarray, asked: np.ndarray) -> float:
    """Share of `predicted` classes equal to the `asked` ones (int (N,) each)."""
    p, a = np.asarray(predicted), np.asarray(asked)
    if p.shape != a.shape or p.ndim != 1 or len(p) == 0:
        raise GenbenchError(f"predicted and asked classes must be two (N,) arrays of one length N >= 1, got "
                            f"{p.shape} and {a.shape}")
    return float((p == a).mean())


def intra_fid(*, real: np.ndarray, real_labels: np.ndarray, fake: np.ndarray, fake_labels: np.ndarray,
              num_classes: int) -> tuple[float, list[float | None]]:
    """(mean over classes, per-class FIDs) of features `fake` (N, D) labelled `fake_labels` against `real`
    (M, D) labelled `real_labels`; a class with fewer than 2 of either gets None and stays out of the mean."""
    from genbench.metrics.fidelity import frechet_distance, gaussian_stats

    real_labels = _classes(real_labels, "real_labels", num_classes)
    fake_labels = _classes(fake_labels, "fake_labels", num_classes)
    if len(real) != len(real_labels) or len(fake) != len(fake_labels):
        raise GenbenchError(f"{len(real)} real features for {len(real_labels)} labels, {len(fake)} fake features "
                            f"for {len(fake_labels)} labels: one label per feature row")
    per_class: list[float | None] = []
    for c in range(num_classes):
        r, f = real[real_labels == c], fake[fake_labels == c]
        per_class.append(frechet_distance(*gaussian_stats(r), *gaussian_stats(f)) if min(len(r), len(f)) >= 2
                         else None)
    scored = [v for v in per_class if v is not None]
    if not scored:
        raise GenbenchError("no class has 2 or more samples and reference images: intra-FID is undefined")
    return float(np.mean(scored)), per_class


def evaluate_conditional(module: torch.nn.Module, samples: np.ndarray, labels: np.ndarray, *, extractor: str,
                         reference_features: np.ndarray, reference_labels: np.ndarray, reference: str,
                         real_images: np.ndarray, real_labels: np.ndarray, real: str, num_classes: int,
                         accuracy_too: bool = True, batch_size: int = 256,
                         device: str | torch.device = "cpu") -> dict[str, dict]:
    """Records `class_accuracy[EXTRACTOR]` and `fid_intra[EXTRACTOR]` of class-conditional `samples` (uint8
    (N, C, H, W)) drawn for `labels` (N,), through `module` (features and logits); the reference split's
    features and labels give intra-FID, and held-out real images (`real_images`, `real_labels`, named `real`)
    the classifier's own accuracy beside the samples'. `accuracy_too=False`: intra-FID only, for an extractor
    whose logits are not the dataset's classes (the Inception network's ImageNet classes on CIFAR-10)."""
    from genbench import results
    from genbench.metrics.features import extract
    from genbench.metrics.modes import classify
    from genbench.score import metric_name

    labels = _classes(labels, "labels", num_classes)
    if len(labels) != len(samples):
        raise GenbenchError(f"{len(samples)} samples for {len(labels)} labels")
    out = extract(module, samples, batch_size=batch_size, device=device, progress=False)
    mean, per_class = intra_fid(real=reference_features, real_labels=reference_labels, fake=out["features"],
                                fake_labels=labels, num_classes=num_classes)
    common = {"n": len(labels), "extractor": extractor, "extractor_sha256": getattr(module, "weights_sha256", None),
              "labels": "training split's class frequencies (metrics.conditional.label_plan)"}
    records = {}
    if accuracy_too:
        if "logits" not in out:
            raise GenbenchError(f"the extractor {extractor} gives no class logits: class accuracy needs a classifier")
        real_acc = accuracy(classify(module, real_images, batch_size=batch_size, device=device),
                            _classes(real_labels, "real_labels", num_classes))
        records[metric_name("class_accuracy", extractor)] = results.metric(
            accuracy(out["logits"].argmax(1), labels), higher_is_better=True, real_accuracy=real_acc, real=real,
            definition="share of samples the extractor's classifier assigns to the class they were drawn for",
            **common)
    records[metric_name("fid_intra", extractor)] = results.metric(
        mean, higher_is_better=False, reference=reference, per_class=per_class,
        classes_scored=sum(v is not None for v in per_class),
        definition="mean over classes of the FID of a class's samples against its reference images", **common)
    return records


def metric_names(extractor: str, *, accuracy_too: bool = True) -> list[str]:
    from genbench.score import metric_name

    return [metric_name(name, extractor) for name in HIGHER_IS_BETTER if accuracy_too or name != "class_accuracy"]


def _classes(labels, name: str, num_classes: int) -> np.ndarray:
    a = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer) or len(a) == 0:
        raise GenbenchError(f"{name} must be a non-empty integer array of class indices (N,), got {a.dtype} "
                            f"{a.shape}")
    if a.min() < 0 or a.max() >= num_classes:
        raise GenbenchError(f"{name} must lie in 0..{num_classes - 1}, found {a.min()}..{a.max()}")
    return a.astype(np.int64, copy=False)
