"""Mode coverage: how many of a dataset's modes a generator's samples reach, and how evenly it spreads over them.

A classifier assigns every sample to a mode (a class; for stacked data, the triple of per-channel classes);
the scores are the number of modes the samples reach and the KL divergence of their mode distribution from the
data's. Pure numpy below `classify`; the classifier is any module that maps uint8 images to {"logits": ...},
such as genbench.metrics.domain's LeNet on (B, 1, 28, 28).

    from genbench.metrics import domain, modes
    net = domain.LENET_FASHION_MNIST.load()
    records = modes.evaluate_modes(net, samples, extractor="lenet-fashion-mnist", stacked=True)
    records["modes_covered[lenet-fashion-mnist]"]["value"], records["mode_kl[lenet-fashion-mnist]"]["value"]

Provenance
----------
- Stacked MNIST: Metz, Poole, Pfau & Sohl-Dickstein, "Unrolled generative adversarial networks" (ICLR 2017),
  the "discrete mode collapse" experiment: three MNIST digits stacked as the channels of one image, so the data
  has 10^3 = 1,000 modes; a pretrained classifier labels each channel of a sample.
- The two scores and their direction: Srivastava, Valkov, Russell, Gutmann & Sutton, "VEEGAN: Reducing mode
  collapse in GANs using implicit variational learning" (NeurIPS 2017), and Lin, Khetan, Fanti & Oh,
  "PacGAN: The power of two samples in generative adversarial networks" (NeurIPS 2018), Tables 2 and 3: the
  number of modes with at least one sample, and KL(p_generated || p_data) with p_data uniform over the 1,000
  modes. PacGAN's Table 2 caption calls it the "reverse KL divergence over the generated mode distribution".
- Checked against PacGAN's published code (github.com/fjxmlzn/PacGAN, stacked_MNIST_experiments/), which reruns
  both the VEEGAN and the Unrolled-GAN settings: its KL sums p_gen * log(p_gen / q) over the modes with
  p_gen > 0, against q = 1/1000 everywhere (here `kl_divergence(p_fake, uniform)`), and a mode counts as covered
  with one sample. Sample counts there: 26,000 generated samples classified in the VEEGAN setting
  (`num_test_sample`; training set `num_training_sample` = 128,000 stacked images, each channel drawn with
  replacement from the 70,000 MNIST images), 25,600 in the Unrolled-GAN setting (training data drawn on the fly).
- Published points of comparison on Stacked MNIST (PacGAN Table 2, the first four rows cited from VEEGAN; 26,000
  samples; modes of 1,000 / KL in nats): DCGAN 99.0 / 3.40, ALI 16.0 / 5.40, Unrolled GAN 48.7 / 4.32,
  VEEGAN 150.0 / 2.95, PacDCGAN2 1000.0 / 0.06. In the Unrolled-GAN setting (PacGAN Table 3, a discriminator
  1/4 the generator's size, 25,600 samples): DCGAN 30.6 / 5.99, Unrolled GAN (10 steps) 327.2 / 4.66. These
  come from an MNIST classifier on Stacked MNIST; genbench's stacked dataset is built from Fashion-MNIST and
  scored with its own classifier, so the figures set the scale (what collapse and coverage look like), not a
  column to share.

Why this direction
------------------
KL(p_fake || q) sums over the modes the samples reach only (0 log 0 = 0), so it is finite however badly a
generator collapses, and against a uniform q over K modes it is log K - H(p_fake): log(K / k) for samples spread
evenly over k modes (one class of ten: log 10), 0 for a perfect spread. The other direction, KL(q || p_fake), is
infinite as soon as one mode is missed, which would rank every collapsed model alike. The KL is infinite here
only where the samples reach a mode the reference gives no mass (possible with an empirical reference).

Finite samples: even a sampler drawing exactly from q has an empirical p_fake that is not q. With N samples
over K equally likely modes its expected KL is about (K - 1) / (2N) (the plug-in entropy's bias, Miller 1955):
0.019 nats for N = 26,000 and K = 1,000. Each KL record carries this as `sampling_floor`.

Classifier error moves both scores, since a sample is counted in the mode the classifier sees. Measured with
the shipped lenet-fashion-mnist (91.5-91.9% accurate per channel on stacked-fashion-mnist:test), its errors are
nearly balanced across classes: the first 26,000 real images of stacked-fashion-mnist:train, classified, cover
all 1,000 modes with KL 0.0201 against uniform (ground-truth labels: 0.0195; sampling floor 0.0192), and the
10,000 Fashion-MNIST test images give class_kl 0.0002. A real-data value like these is the one to set a
generator's score beside; the records name the extractor, and scores from different extractors never share a
column.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from genbench import GenbenchError
from genbench.metrics.features import as_tensor

HIGHER_IS_BETTER = {"classes_covered": True, "class_kl": False, "modes_covered": True, "mode_kl": False}

# Samples scored in the published Stacked MNIST comparisons (see the module docstring).
VEEGAN_NUM_SAMPLES = 26_000  # VEEGAN and PacGAN Table 2
UNROLLED_NUM_SAMPLES = 25_600  # the Unrolled-GAN setting, PacGAN Table 3


# ---------------------------------------------------------------------------------------------- functional core

def _int_array(x, name: str, ndim: int) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != ndim or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
        want = "(N,)" if ndim == 1 else "(N, C)"
        raise GenbenchError(f"{name} must be an integer array {want} of class indices, got {a.dtype} {a.shape}")
    return a.astype(np.int64, copy=False)


def class_histogram(classes: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 (num_classes,): how many of `classes` (int (N,), each in 0..num_classes-1) fall in each class."""
    if int(num_classes) != num_classes or num_classes < 1:
        raise GenbenchError(f"num_classes must be a positive integer, got {num_classes!r}")
    c = _int_array(classes, "classes", 1)
    if c.size and (c.min() < 0 or c.max() >= num_classes):
        raise GenbenchError(f"classes must lie in 0..{num_classes - 1}, found {c.min()}..{c.max()}")
    return np.bincount(c, minlength=int(num_classes)).astype(np.int64)


def _probabilities(p, name: str) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise GenbenchError(f"{name} must be a probability vector (K,), got shape {a.shape}")
    if not np.isfinite(a).all() or (a < 0).any():
        raise GenbenchError(f"{name} must hold finite non-negative probabilities")
    if abs(a.sum() - 1.0) > 1e-6:
        raise GenbenchError(f"{name} must sum to 1, sums to {a.sum():.9g}; divide counts by their total first")
    return a


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) = sum_k p_k log(p_k / q_k) in nats, in float64, for probability vectors of one length.

    Terms with p_k = 0 are 0 (0 log 0 = 0, whatever q_k); the result is inf where some p_k > 0 has q_k = 0."""
    p, q = _probabilities(p, "p"), _probabilities(q, "q")
    if p.shape != q.shape:
        raise GenbenchError(f"p and q differ in length: {p.size} vs {q.size}")
    on = p > 0
    if (q[on] == 0).any():
        return math.inf
    return max(0.0, float(np.sum(p[on] * (np.log(p[on]) - np.log(q[on])))))  # >= 0; the max drops -1e-17 rounding


def _reference_distribution(reference, num_modes: int) -> np.ndarray:
    """Uniform for None; else counts or probabilities (num_modes,), normalized."""
    if reference is None:
        return np.full(num_modes, 1.0 / num_modes)
    r = np.asarray(reference, dtype=np.float64)
    if r.shape != (num_modes,):
        raise GenbenchError(f"the reference distribution must have one entry per mode ({num_modes}), "
                            f"got shape {r.shape}")
    if not np.isfinite(r).all() or (r < 0).any() or r.sum() <= 0:
        raise GenbenchError("the reference distribution must hold finite non-negative counts or probabilities, "
                            "not all zero")
    return r / r.sum()


def mode_coverage(fake_classes, *, num_modes: int, reference=None, min_count: int = 1) -> dict:
    """Mode statistics of generated samples, from their modes `fake_classes` (int (N,), each in 0..num_modes-1).

    reference: the data's mode distribution, counts or probabilities (num_modes,); None for uniform (the
    published convention). Returns
        histogram      int64 (num_modes,) samples per mode
        n              number of samples
        modes_covered  modes with at least `min_count` samples (VEEGAN / PacGAN: 1)
        kl             KL(p_fake || reference) in nats, p_fake = histogram / n (see the module docstring)
        reference_modes  modes the reference gives mass to (num_modes for uniform)
        sampling_floor   (reference_modes - 1) / (2 n): about the KL a sampler drawing from the reference gets
    """
    if int(min_count) != min_count or min_count < 1:
        raise GenbenchError(f"min_count must be a positive integer, got {min_count!r}")
    hist = class_histogram(fake_classes, num_modes)
    n = int(hist.sum())
    if n == 0:
        raise GenbenchError("no samples to count modes of")
    q = _reference_distribution(reference, int(num_modes))
    support = int((q > 0).sum())
    return {
        "histogram": hist,
        "n": n,
        "modes_covered": int((hist >= min_count).sum()),
        "kl": kl_divergence(hist / n, q),
        "num_modes": int(num_modes),
        "min_count": int(min_count),
        "reference_modes": support,
        "sampling_floor": (support - 1) / (2 * n),
    }


def stacked_modes(channel_classes: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """int64 (N,) mode ids from per-channel classes int (N, C): the channels' classes read as the digits of a
    base-`num_classes` number, first channel most significant. For (N, 3) and 10 classes:
    100 c0 + 10 c1 + c2, one of 1,000 modes."""
    c = _int_array(channel_classes, "channel_classes", 2)
    if c.shape[1] < 1:
        raise GenbenchError("channel_classes needs at least one channel")
    if c.size and (c.min() < 0 or c.max() >= num_classes):
        raise GenbenchError(f"channel classes must lie in 0..{num_classes - 1}, found {c.min()}..{c.max()}")
    place = num_classes ** np.arange(c.shape[1] - 1, -1, -1, dtype=np.int64)  # (C,): 100, 10, 1
    return c @ place


# ---------------------------------------------------------------------------------------------- classification

def classify(module: torch.nn.Module, images, *, batch_size: int = 256, device: str | torch.device = "cpu",
             per_channel: bool = False) -> np.ndarray:
    """Classes (argmax of the module's logits) of uint8 images (N, C, H, W), batch by batch.

    The module takes uint8 (B, C', H, W) and returns {"logits": (B, K)} (or the logits tensor itself); it is put
    in eval mode and should already sit on `device`. per_channel=False feeds the images as they are and returns
    int64 (N,). per_channel=True feeds every channel as a 1-channel image (B*C, 1, H, W) and returns int64 (N, C),
    column j the class of channel j. batch_size: images per forward pass (1-channel ones when per_channel).
    Ties go to the lowest class (torch.argmax)."""
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        raise GenbenchError(f"images must be a uint8 numpy array or tensor (N, C, H, W); got {type(images).__name__}")
    is_uint8 = images.dtype == (torch.uint8 if isinstance(images, torch.Tensor) else np.uint8)
    if not is_uint8 or images.ndim != 4:
        raise GenbenchError(f"images must be uint8 (N, C, H, W); got {images.dtype} {tuple(images.shape)}. "
                            "Convert float images in [0, 1] with (x * 255).round() to uint8 first.")
    if batch_size < 1:
        raise GenbenchError(f"batch_size must be at least 1, got {batch_size}")
    n, channels = images.shape[:2]
    rows = max(1, batch_size // channels) if per_channel else batch_size  # samples per forward pass
    if module.training:
        module.eval()
    name = getattr(module, "name", None) or type(module).__name__
    parts = []
    with torch.inference_mode():
        for start in range(0, n, rows):
            x = as_tensor(images[start : start + rows]).to(device)
            if per_channel:
                x = x.reshape(-1, 1, *x.shape[2:])  # (B*C, 1, H, W), channel j of sample i at row i*C + j
            out = module(x)
            logits = out.get("logits") if isinstance(out, dict) else out
            if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or len(logits) != len(x):
                keys = f" with keys {sorted(out)}" if isinstance(out, dict) else ""
                raise GenbenchError(f"the classifier {name} must return {{'logits': (B, K)}} for B images; "
                                    f"got {type(out).__name__}{keys}")
            parts.append(logits.argmax(dim=1).to("cpu", torch.int64).numpy())
    classes = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return classes.reshape(n, channels) if per_channel else classes


# ---------------------------------------------------------------------------------------------- result records

def evaluate_modes(module: torch.nn.Module, samples, *, extractor: str, dataset_classes: int = 10,
                   stacked: bool = False, reference=None, min_count: int = 1, batch_size: int = 256,
                   device: str | torch.device = "cpu") -> dict[str, dict]:
    """Mode-coverage records of generated samples (uint8 (N, C, H, W)), classified by `module` (named `extractor`).

    stacked=False: each sample is one image of `dataset_classes` classes; records `classes_covered[EXTRACTOR]`
    and `class_kl[EXTRACTOR]`. stacked=True: each channel is classified on its own and the channels' classes
    make the mode (`stacked_modes`, dataset_classes ** C modes; 1,000 for three channels); records
    `modes_covered[EXTRACTOR]` and `mode_kl[EXTRACTOR]`.
    reference: None for the uniform distribution over the modes (as VEEGAN and PacGAN report); an ImageData split
    whose ground-truth labels give the data's mode distribution (class labels (N,), or per-channel labels
    (N, C) for stacked data, as stacked-fashion-mnist has), named "dataset:split" in the records; or counts /
    probabilities per mode, named "given distribution".
    Every record holds n, the extractor and its weights hash, the reference, the number of modes and the
    histogram of the samples over the modes (a list); the KL record adds its unit and the sampling floor."""
    if int(dataset_classes) != dataset_classes or dataset_classes < 2:
        raise GenbenchError(f"dataset_classes must be an integer >= 2, got {dataset_classes!r}")
    if not isinstance(samples, (np.ndarray, torch.Tensor)) or samples.ndim != 4:
        shape = tuple(samples.shape) if hasattr(samples, "shape") else type(samples).__name__
        raise GenbenchError(f"samples must be uint8 images (N, C, H, W), got {shape}")
    channels = int(samples.shape[1])
    if stacked and channels < 2:
        raise GenbenchError(f"stacked mode coverage needs several channels to stack; the samples have {channels}. "
                            "Use stacked=False for single-channel data.")
    num_modes = dataset_classes ** channels if stacked else dataset_classes

    classes = classify(module, samples, batch_size=batch_size, device=device, per_channel=stacked)
    modes = stacked_modes(classes, dataset_classes) if stacked else classes
    return mode_records(modes, extractor=extractor, extractor_sha256=getattr(module, "weights_sha256", None),
                        num_modes=num_modes, num_classes=dataset_classes, stacked=stacked, reference=reference,
                        min_count=min_count)


def mode_records(modes: np.ndarray, *, extractor: str, extractor_sha256: str | None, num_modes: int,
                 num_classes: int, stacked: bool = False, reference=None, min_count: int = 1) -> dict[str, dict]:
    """The two records of `evaluate_modes` from the samples' modes (classes, or stacked modes), however they
    were classified (`genbench score` takes them from the logits it extracts)."""
    from genbench import results
    from genbench.score import metric_name

    ref_counts, ref_name = _reference(reference, stacked=stacked, num_classes=num_classes, num_modes=num_modes)
    cov = mode_coverage(modes, num_modes=num_modes, reference=ref_counts, min_count=min_count)

    common = {"n": cov["n"], "extractor": extractor, "extractor_sha256": extractor_sha256,
              "reference": ref_name, "num_modes": num_modes, "histogram": cov["histogram"].tolist()}
    covered, kl = ("modes_covered", "mode_kl") if stacked else ("classes_covered", "class_kl")
    return {
        metric_name(covered, extractor): results.metric(cov["modes_covered"], higher_is_better=True,
                                                        min_count=min_count, **common),
        metric_name(kl, extractor): results.metric(cov["kl"], higher_is_better=False, unit="nats",
                                                   divergence="KL(generated || reference)",
                                                   sampling_floor=cov["sampling_floor"], **common),
    }


def metric_names(kind: str, extractor: str) -> list[str]:
    """The records `evaluate_modes` writes for a protocol's `modes` setting ("classes" or "stacked")."""
    from genbench.score import metric_name

    if kind not in ("classes", "stacked"):
        raise GenbenchError(f"unknown mode-coverage kind {kind!r}; expected 'classes' or 'stacked'")
    names = ("modes_covered", "mode_kl") if kind == "stacked" else ("classes_covered", "class_kl")
    return [metric_name(name, extractor) for name in names]


def _reference(reference, *, stacked: bool, num_classes: int, num_modes: int) -> tuple[np.ndarray | None, str]:
    """(counts per mode or None for uniform, the name the records give it)."""
    if reference is None:
        return None, "uniform"
    labels = getattr(reference, "labels", None)
    if labels is None and hasattr(reference, "images"):
        raise GenbenchError(f"the reference {reference.dataset}:{reference.split} has no labels to take a mode "
                            "distribution from; pass reference=None for the uniform distribution")
    if labels is None:
        return np.asarray(reference, dtype=np.float64), "given distribution"
    name = f"{reference.dataset}:{reference.split}"
    labels = np.asarray(labels)
    if stacked:
        if labels.ndim != 2 or num_classes ** labels.shape[1] != num_modes:
            raise GenbenchError(f"the reference {name} has labels of shape {labels.shape}; stacked mode coverage "
                                "needs one class per channel, (N, C) with C the samples' channel count")
        modes = stacked_modes(labels, num_classes)
    else:
        if labels.ndim != 1:
            raise GenbenchError(f"the reference {name} has labels of shape {labels.shape}, not classes (N,)")
        modes = labels
    return class_histogram(modes, num_modes), name
