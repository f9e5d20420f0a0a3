"""Protocols of the diffusion (genbench.baselines.ddpm) and score (genbench.baselines.ncsn: ncsn, ncsnv2) families.

Sample quality is scored with the evaluation settings of the VAE's protocol of the same tier and dataset
(Fashion-MNIST quick: 10,000 samples against the train split through lenet-fashion-mnist, FID / KID / IS /
precision-recall and class coverage), so a board holds every family in one column. Beyond them: DDPM's
variational bound on held-out images (`bpd`, estimator `vlb` or, at the quick tier, the unbiased sampled
estimate `vlb-mc`), and for both families the probability-flow ODE likelihood of a stated subset of held-out
images (`bpd_ode`). The sampler is part of the model's configuration (the protocol hash covers it).

Sampling 10,000 images on a 2-core CPU is what the quick tier is sized by: DDPM samples by DDIM with 10 steps,
NCSN and NCSNv2 by annealed Langevin dynamics with 10 levels and one step per level (NCSNv2: plus the denoising
step), a 16-channel U-Net without attention for all three (baselines/unet.py, 0.27M parameters), about 6.5
minutes of training (1,800 steps of 64 at about 290 images/s).
"""

from __future__ import annotations

import dataclasses

from genbench.baselines import ddpm, ncsn
from genbench.optim import Optimizer, Schedule
from genbench.protocols.base import Evaluation, Protocol

# The published recipes.
DDPM_SOURCE = ("Ho, Jain & Abbeel 2020 (DDPM), Appendix B: T = 1000, linear betas 1e-4..0.02, L_simple, Adam 2e-4, "
               "batch 128, warmup 5000, grad clip 1, EMA 0.9999, dropout 0.1, 800k steps (CIFAR-10 FID 3.17, "
               "IS 9.46, NLL <= 3.75 bits/dim); hojonathanho/diffusion scripts/run_cifar.py")
NCSN_SOURCE = ("Song & Ermon 2019 (NCSN): sigma 1 -> 0.01 over L = 10, DSM weighted by sigma^2, annealed Langevin "
               "T = 100, eps = 2e-5, CondRefineNet, Adam 1e-3, batch 128, 200k steps (CIFAR-10 FID 25.32, IS 8.87); "
               "ermongroup/ncsn configs/anneal.yml")
NCSNV2_SOURCE = ("Song & Ermon 2020 (NCSNv2): sigma_1 = 50, L = 232, T = 5, eps = 6.2e-6, RefineNet / sigma, EMA "
                 "0.999, denoising step, Adam 1e-4, batch 128, 300k steps (CIFAR-10 FID 10.87); ermongroup/ncsnv2 "
                 "configs/cifar10.yaml")
_DDPM_OPT = Optimizer("adam", lr=2e-4, schedule=Schedule(warmup=5000))
_STANDARD = {
    "ddpm": dict(optimizer=_DDPM_OPT, steps=800_000, ema=0.9999, source=DDPM_SOURCE),
    "ncsn": dict(optimizer=Optimizer("adam", lr=1e-3), steps=200_000, source=NCSN_SOURCE),
    "ncsnv2": dict(optimizer=Optimizer("adam", lr=1e-4), steps=300_000, ema=0.999, source=NCSNV2_SOURCE),
}
FAMILY = {"ddpm": ddpm.PRESETS, "ncsn": ncsn.VARIANTS["ncsn"], "ncsnv2": ncsn.VARIANTS["ncsnv2"]}
MODELS = tuple(FAMILY)


def _protocol(model: str, dataset: str, tier: str, version: int, preset: str, **kw) -> Protocol:
    kw.setdefault("source", "genbench")
    return Protocol(dataset=dataset, model=model, tier=tier, version=version, preset=preset,
                    model_config=FAMILY[model][preset], **kw)


_LENET = dict(extractor="lenet-fashion-mnist", modes="classes")
_SMOKE = dict(preset="smoke", steps=12, batch_size=16, optimizer=Optimizer("adam", lr=1e-3), checkpoint_every=4,
              log_every=2, eval_loss_every=6,
              evaluation=Evaluation(num_images=20, num_samples=200, batch_size=100, reference_split="test",
                                    fidelity_metrics=("fid", "prc"), ode_images=4, **_LENET))
# (smoke: an EMA of 0.9 where the published recipe has one, so the tests cover its resume)
# Quick: lr 1e-3 with 100 warmup steps and EMA 0.995 for a run of 1,800 steps of 64 (the published 2e-4 and
# 0.9999 are sized for 800k steps); the bound on the first 2,000 test images, the ODE likelihood on the first 100.
_QUICK = dict(preset="small", steps=1800, batch_size=64, ema=0.995, checkpoint_every=250, log_every=25,
              eval_loss_every=250, optimizer=Optimizer("adam", lr=1e-3, schedule=Schedule(warmup=100)),
              evaluation=Evaluation(num_images=2000, num_samples=10_000, ode_images=100, **_LENET))
_LONG = dict(batch_size=128, checkpoint_every=5000, log_every=100, eval_loss_every=2000)
# Standard: 50,000 samples against train; the full bound on the whole test split; the ODE on its first 1,000.
_STANDARD_EVAL = Evaluation(num_samples=50_000, batch_size=500, ode_images=1000, ode_batch_size=250)
_STANDARD_PRESET = {("ddpm", "fashion-mnist"): "standard-28", ("ddpm", "cifar10"): "standard",
                    ("ddpm", "celeba64"): "standard-64", ("ncsn", "fashion-mnist"): "standard-28",
                    ("ncsn", "cifar10"): "standard", ("ncsnv2", "fashion-mnist"): "standard-28",
                    ("ncsnv2", "cifar10"): "standard"}


def _standard(model: str, dataset: str) -> Protocol:
    fields = dict(_LENET) if dataset == "fashion-mnist" else dict(extractor="inception-v3-compat")
    if (model, dataset) == ("ddpm", "cifar10"):  # DDIM's Table 1: FID against S at eta = 0 (10,000 samples here)
        fields.update(sampler_steps=(10, 20, 50, 100, 1000), sampler_steps_samples=10_000)
    kw = dict(_STANDARD[model])
    if dataset == "celeba64":
        kw.update(steps=500_000, source=f"{DDPM_SOURCE}; at 64x64 the CIFAR-10 recipe for 500k steps (genbench)")
    return _protocol(model, dataset, "standard", 1, _STANDARD_PRESET[model, dataset], **_LONG, **kw,
                     evaluation=dataclasses.replace(_STANDARD_EVAL, **fields))


PROTOCOLS: tuple[Protocol, ...] = (
    *(_protocol(m, "fashion-mnist", "smoke", 1, **_SMOKE, ema=_STANDARD[m].get("ema") and 0.9) for m in MODELS),
    *(_protocol(m, "fashion-mnist", "quick", 1, **_QUICK) for m in MODELS),
    *(_standard(m, d) for m, d in _STANDARD_PRESET),
)
