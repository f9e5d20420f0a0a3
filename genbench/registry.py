"""The one registry of what genbench knows: model families, datasets, metrics and protocols.

Every built-in is registered explicitly at the bottom of this file; nothing fills a registry as a side
effect of importing some other module. Names are validated and duplicates are rejected, so two entries can
never silently shadow each other. Users add their own entries through the same `register` calls.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Generic, Iterator, TypeVar

from genbench import GenbenchError

T = TypeVar("T")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*(@[0-9]+)?$")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if not _NAME.match(name):
            raise ValueError(f"invalid {self.kind} name {name!r}: use lower-case letters, digits, '-', '.', '_'")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise GenbenchError(
                f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(sorted(self._entries))} "
                f"(see `genbench list {self.kind}s`)."
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())


@dataclass(frozen=True)
class ModelFamily:
    """A baseline family: a module with DESCRIPTION, Config, PRESETS and Model (see DESIGN.md). A module that
    holds several published models as configurations of one Model (baselines/gan.py) names the one meant by
    `variant`, and keeps their descriptions and presets in DESCRIPTIONS[variant] and VARIANTS[variant]; a variant
    with a capability the others lack is a subclass, CLASSES[variant]."""

    name: str
    module: ModuleType
    variant: str | None = None

    @property
    def description(self) -> str:
        return self.module.DESCRIPTION if self.variant is None else self.module.DESCRIPTIONS[self.variant]

    @property
    def presets(self) -> dict:
        return self.module.PRESETS if self.variant is None else self.module.VARIANTS[self.variant]

    @property
    def model_class(self) -> type:
        """The class that builds this model: the module's Model, or a variant's own subclass where the variant has a
        capability of its own (CLASSES[variant], e.g. JEM's classify)."""
        return getattr(self.module, "CLASSES", {}).get(self.variant, self.module.Model)

    def build(self, config, image_shape: tuple[int, int, int]):
        return self.model_class(config, image_shape)

    def capabilities(self) -> list[str]:
        model = self.model_class
        caps = [c for c in ("sample", "translate") if hasattr(model, c)]
        if hasattr(model, "log_likelihood"):
            caps.append(f"log_likelihood ({model.likelihood})")
        if hasattr(model, "ode_log_likelihood"):
            caps.append("ode_log_likelihood (probability flow)")
        if hasattr(model, "energy"):
            caps.append("energy (log-likelihood estimate by AIS)")
        caps += [c for c in ("encode", "decode", "reconstruct", "classify", "figures") if hasattr(model, c)]
        if any(getattr(config, "num_classes", None) for config in self.presets.values()):
            caps.append("class-conditional (labels in training, likelihood and sampling)")
        return caps


@dataclass(frozen=True)
class MetricInfo:
    name: str
    description: str
    higher_is_better: bool
    unit: str
    module: str  # where the math lives
    requires: str  # the model capability or input it needs


MODELS: Registry[ModelFamily] = Registry("model")
DATASETS: Registry = Registry("dataset")
METRICS: Registry[MetricInfo] = Registry("metric")
PROTOCOLS: Registry = Registry("protocol")
EXTRACTORS: Registry = Registry("extractor")  # name -> genbench.metrics.features.ExtractorSpec


def build_model(protocol, image_shape: tuple[int, int, int], seed: int):
    """A fresh model of the protocol's family and configuration; its initial weights are a function of `seed`."""
    import torch

    torch.manual_seed(seed)
    return MODELS[protocol.model].build(protocol.model_config, image_shape)


def dataset(name: str):
    """A dataset spec by name; `folder:PATH` names a folder of the user's images."""
    from genbench import data

    if name.startswith("folder:"):
        return data.folder(Path(name[len("folder:"):]).expanduser())
    return DATASETS[name]


def protocol(name: str):
    """A protocol by `dataset/model/tier@version`, or by `dataset/model/tier` for the current version."""
    if "@" in name:
        return PROTOCOLS[name]
    versions = [p for key, p in PROTOCOLS.items() if key.split("@")[0] == name]
    if not versions:
        PROTOCOLS[name]  # raises with suggestions
    return max(versions, key=lambda p: p.version)


def find_protocol(*, model: str, dataset: str, tier: str):
    """The current protocol for a (model, dataset, tier), with an error listing what exists."""
    name = f"{dataset}/{model}/{tier}"
    if any(key.split("@")[0] == name for key in PROTOCOLS):
        return protocol(name)
    if model not in MODELS:
        MODELS[model]
    if not dataset.startswith("folder:") and dataset not in DATASETS:
        DATASETS[dataset]
    offered = sorted({key.split("/")[-1].split("@")[0] for key in PROTOCOLS if key.startswith(f"{dataset}/{model}/")})
    if offered:
        raise GenbenchError(f"no {tier!r} protocol for {model} on {dataset}; tiers offered: {', '.join(offered)}.")
    pairs = sorted({"/".join(key.split("/")[:2]) for key in PROTOCOLS if key.split("/")[1] == model})
    raise GenbenchError(
        f"no protocol trains {model} on {dataset}. Protocols exist for: {', '.join(pairs) or 'none'} "
        "(see `genbench list protocols`)."
    )


# ---------------------------------------------------------------------------------------------------------
# Built-ins. Adding an entry here is the only way it becomes known.

def _register_builtins() -> None:
    from genbench import data, protocols
    from genbench.baselines import (beta_vae, biggan, cyclegan, ddpm, ebm, factor_vae, ffjord, flows, gan, made, nade,
                                    ncsn, pixelcnn, pixelcnnpp, pixelrnn, stylegan2, vae)
    from genbench.metrics import domain, features

    MODELS.register("vae", ModelFamily("vae", vae))
    MODELS.register("beta-vae", ModelFamily("beta-vae", beta_vae))
    MODELS.register("factor-vae", ModelFamily("factor-vae", factor_vae))
    for name in gan.VARIANTS:  # dcgan, wgan, wgan-gp, sngan, gan-r1: one Model, the published configurations
        MODELS.register(name, ModelFamily(name, gan, variant=name))
    MODELS.register("biggan", ModelFamily("biggan", biggan))
    MODELS.register("stylegan2", ModelFamily("stylegan2", stylegan2))
    MODELS.register("cyclegan", ModelFamily("cyclegan", cyclegan))
    MODELS.register("ddpm", ModelFamily("ddpm", ddpm))
    for name in ncsn.VARIANTS:  # ncsn, ncsnv2
        MODELS.register(name, ModelFamily(name, ncsn, variant=name))
    for name in pixelcnn.VARIANTS:  # pixelcnn, gated-pixelcnn, gated-pixelcnn-class
        MODELS.register(name, ModelFamily(name, pixelcnn, variant=name))
    MODELS.register("pixelcnnpp", ModelFamily("pixelcnnpp", pixelcnnpp))
    MODELS.register("pixelrnn", ModelFamily("pixelrnn", pixelrnn))
    MODELS.register("nade", ModelFamily("nade", nade))
    MODELS.register("made", ModelFamily("made", made))
    for name in flows.VARIANTS:  # nice, realnvp, glow: one Model, the published configurations
        MODELS.register(name, ModelFamily(name, flows, variant=name))
    MODELS.register("ffjord", ModelFamily("ffjord", ffjord))
    for name in ebm.VARIANTS:  # igebm, jem, short-run-ebm: one Model (JEM a subclass that classifies)
        MODELS.register(name, ModelFamily(name, ebm, variant=name))

    for spec in data.BUILTIN:
        DATASETS.register(spec.name, spec)

    for info in (
        MetricInfo("bpd", "negative log-likelihood (or its bound) on held-out data, in bits per dimension",
                   False, "bits/dim", "genbench.metrics.likelihood", "log_likelihood"),
        MetricInfo("bpd_iwae", "importance-weighted bound on the negative log-likelihood (IWAE over a VAE's latent, "
                   "k draws of a flow's dequantization noise), bits/dim", False, "bits/dim",
                   "genbench.metrics.likelihood", "log_likelihood with k > 1"),
        MetricInfo("bpd_ode", "bits/dim of the probability-flow ODE on uniformly dequantized held-out images "
                   "(a bound up to solver and trace-estimator error)", False, "bits/dim", "genbench.metrics.ode",
                   "ode_log_likelihood"),
        MetricInfo("bpd_conditional", "exact negative log-likelihood of held-out images given their class label "
                   "(a class-conditional model), bits/dim", False, "bits/dim", "genbench.evaluate",
                   "log_likelihood with labels"),
        MetricInfo("class_accuracy", "share of class-conditional samples the extractor's classifier assigns to the "
                   "class they were drawn for", True, "", "genbench.metrics.conditional",
                   "class-conditional samples + classifier"),
        MetricInfo("fid_intra", "intra-FID: the mean over classes of each class's FID against that class's "
                   "reference images", False, "", "genbench.metrics.conditional",
                   "class-conditional samples + extractor"),
        MetricInfo("bpd_ais", "bits/dim by annealed importance sampling: an energy-based model's exp(-E) / Z on "
                   "uniformly dequantized held-out images (an estimate: log Z-hat errs low, so the NLL errs low), or "
                   "a decoder's own p(x) by AIS over its latent (the NLL errs high)", False, "bits/dim",
                   "genbench.metrics.ais", "energy or log_px_z + protocol AIS settings"),
        MetricInfo("log_px_gauss_ais", "log p(x) of held-out images under a decoder (VAE decoder, GAN generator) with "
                   "Gaussian observation noise of a stated sigma on [0, 1] pixels, nats per image, by AIS over the "
                   "latent (a stochastic lower bound; BDMC on simulated images beside it)", True, "nats/image",
                   "genbench.metrics.ais", "decoder_mean + protocol decoder AIS settings"),
        MetricInfo("accuracy", "classification accuracy of the model's own p(y | x) on the held-out images (JEM)", True,
                   "", "genbench.evaluate", "classify"),
        MetricInfo("psnr", "peak signal-to-noise ratio of reconstructions of held-out images (data range 255)",
                   True, "dB", "genbench.metrics.reconstruction", "reconstruct"),
        MetricInfo("ssim", "structural similarity of reconstructions of held-out images (scikit-image)",
                   True, "", "genbench.metrics.reconstruction", "reconstruct"),
        MetricInfo("independent_pixel_bpd", "reference: an independent per-pixel histogram fitted on train, "
                   "exact bits/dim on the evaluation split", False, "bits/dim", "genbench.metrics.likelihood",
                   "dataset"),
        MetricInfo("fid", "Fréchet distance between Gaussian fits of sample and reference features",
                   False, "", "genbench.metrics.fidelity", "samples + extractor"),
        MetricInfo("kid", "kernel inception distance: unbiased polynomial-kernel MMD^2 over subsets (mean, std)",
                   False, "", "genbench.metrics.fidelity", "samples + extractor"),
        MetricInfo("is", "inception score: exp of the mean KL between class posteriors and their marginal",
                   True, "", "genbench.metrics.fidelity", "samples + extractor with logits"),
        MetricInfo("precision", "improved precision (k=3): share of samples inside the reference manifold",
                   True, "", "genbench.metrics.fidelity", "samples + extractor"),
        MetricInfo("recall", "improved recall (k=3): share of reference inside the sample manifold",
                   True, "", "genbench.metrics.fidelity", "samples + extractor"),
        MetricInfo("density", "density (k=5): how many reference neighbourhoods hold each sample, on average",
                   True, "", "genbench.metrics.fidelity", "samples + extractor"),
        MetricInfo("coverage", "coverage (k=5): share of reference neighbourhoods holding at least one sample",
                   True, "", "genbench.metrics.fidelity", "samples + extractor"),
        *(MetricInfo(f"{name}_{d}", f"{what}, {way}", True, unit, module, "translate + a translation protocol")
          for d, way in (("a_to_b", "domain A translated into B"), ("b_to_a", "domain B translated into A"))
          for name, what, unit, module in (
              ("psnr", "PSNR of translations against the ground-truth target image (dSprites: the target shape "
               "at the source's factors, the closest valid orientation)", "dB", "genbench.metrics.translation"),
              ("ssim", "SSIM of translations against that ground truth", "", "genbench.metrics.translation"),
              ("iou", "IoU of the translated shape with the ground truth's (pixels > 127)", "",
               "genbench.metrics.translation"),
              ("target_accuracy", "share of translations the extractor classifies as the target domain", "",
               "genbench.translations"))),
        *(MetricInfo(f"{name}_{d}", f"{what} of translations from domain {d[0].upper()} against the reference "
                     f"split's images of domain {d[-1].upper()}", False, "", "genbench.translations",
                     "translate + a translation protocol + extractor")
          for d in ("a_to_b", "b_to_a") for name, what in (("fid", "FID"), ("kid", "KID"))),
    ):
        METRICS.register(info.name, info)

    for spec in (*features.BUILTIN, domain.LENET_FASHION_MNIST, domain.LENET_DSPRITES_SHAPES):
        EXTRACTORS.register(spec.name, spec)

    for p in protocols.BUILTIN:
        PROTOCOLS.register(p.ref, p)


_register_builtins()
