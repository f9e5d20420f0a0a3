"""Protocols of the flow family: the discrete flows of genbench.baselines.flows (nice, realnvp, glow) and the
continuous one of genbench.baselines.ffjord.

Their likelihood is a dequantization bound (estimators `uniform-dequantization` / `variational-dequantization`,
marked as bounds on every board): `bpd` on the whole test split, and for the discrete flows the importance-weighted
bound (`bpd_iwae`, k draws of the dequantization noise) on its first images. Sample quality on Fashion-MNIST uses
the settings of every other family's protocol of the same tier (quick: 10,000 samples against the train split
through lenet-fashion-mnist, FID / KID / IS / precision-recall and class coverage), so a board holds every
family in one column; flows sample in one inverse pass, so 10,000 samples cost seconds. Glow samples at
temperature 1 for that column (comparable with the other families) and adds FID against the temperature
(`temperature_curve`), as its paper varies T.
"""

from __future__ import annotations

import dataclasses

from genbench.baselines import ffjord, flows
from genbench.optim import Optimizer, Schedule
from genbench.protocols.base import Evaluation, Protocol

NICE_SOURCE = ("Dinh, Krueger & Bengio 2014 (NICE), Sec. 5.1: 4 additive couplings, m a ReLU MLP of 5 x 1000 units "
               "(MNIST) / 4 x 2000 (CIFAR-10), diagonal scaling, logistic prior, Adam lr 1e-3 with momentum 0.9, "
               "beta_2 0.01 (read as betas (0.9, 0.99)), eps 1e-4 (CIFAR-10 4.48 bits/dim); the batch (64) and "
               "the steps are genbench's (the paper trains up to 1,500 epochs with early stopping); no ZCA")
REALNVP_SOURCE = ("Dinh, Sohl-Dickstein & Bengio 2017 (Real NVP), Sec. 4, and tensorflow/models research/real_nvp "
                  "defaults: batch 64, Adam lr 1e-3, L2 5e-5 (here Adam's weight decay on every weight; the paper "
                  "puts it on the weight-norm scales), gradient clipping 100; CIFAR-10 resnets of 8 blocks x 64 "
                  "features, two scales (as the paper is recalled), logit alpha 0.05 (CIFAR-10 3.49 bits/dim); "
                  "actnorm for batch norm; the steps are genbench's")
GLOW_SOURCE = ("Kingma & Dhariwal 2018 (Glow); openai/glow README's CIFAR-10 command (L 3, K 32, width 512, affine "
               "coupling, invconv, learntop, lr 1e-3) and train.py / optim.py defaults: Adamax, 64 images per GPU "
               "(8 GPUs there, one device here), warmup over 10 epochs of 50,000 images (7,813 steps of 64), "
               "beta_2 and Polyak averaging at 1 - 1 / (steps per epoch) = 1 - 1/782 (CIFAR-10 3.35 bits/dim); "
               "the steps are genbench's (the reference trains until stopped)")
FFJORD_SOURCE = ("Grathwohl et al. 2019 (FFJORD); rtqichen/ffjord README command and train_cnf.py defaults: "
                 "multiscale, 3 x 64 concat conv layers, 2 CNFs per half-scale, dopri5 1e-5, Adam lr 1e-3 with "
                 "1,000 warmup iterations, batch 200 (CIFAR-10 3.40, MNIST 0.99 bits/dim); the steps are genbench's")
FAMILY = {"nice": flows.VARIANTS["nice"], "realnvp": flows.VARIANTS["realnvp"], "glow": flows.VARIANTS["glow"],
          "ffjord": ffjord.PRESETS}
SOURCES = {"nice": NICE_SOURCE, "realnvp": REALNVP_SOURCE, "glow": GLOW_SOURCE, "ffjord": FFJORD_SOURCE}
DISCRETE = ("nice", "realnvp", "glow")


def _protocol(model: str, dataset: str, tier: str, version: int, preset: str, **kw) -> Protocol:
    kw.setdefault("source", SOURCES[model] if tier == "standard" else "genbench")
    return Protocol(dataset=dataset, model=model, tier=tier, version=version, preset=preset,
                    model_config=FAMILY[model][preset], **kw)


_LENET = dict(extractor="lenet-fashion-mnist", modes="classes")
_TEMPERATURE_CURVE = {"glow": dict(temperatures=(0.7, 1.0))}

# Smoke: seconds on a CPU, as the autoregressive smoke protocols; the importance-weighted bound on 10 images, and
# for glow the temperature curve on the 100 samples.
_SMOKE_EVAL = Evaluation(num_images=20, num_samples=100, batch_size=100, reference_split="test",
                         fidelity_metrics=("fid", "prc"), iwae_k=4, iwae_images=10, **_LENET)
_SMOKE = dict(preset="smoke", steps=12, batch_size=16, checkpoint_every=4, log_every=2, eval_loss_every=6)
_SMOKE_OPTIMIZER = {"glow": Optimizer("adamax", lr=1e-3)}

# Quick (Fashion-MNIST, 2-core CPU), sized by throughput at 2 threads: the `small` preset's train_step timed over
# 30 batches of 64 training images after 5 of warm-up, then log_likelihood and sample as genbench.evaluate calls
# them, repeated on the shared machine while nothing else ran. Training (images/s): nice 2,725, realnvp 179 to
# 240, glow 286 to 339 (one thread, the other core busy: 1,717 / 113 / 175); so 6 to 8 minutes of training:
# nice 20,000 steps (21 epochs), realnvp 1,400 (1.5 epochs), glow 2,200 (2.3 epochs). Evaluation (images/s,
# nice / realnvp / glow): the bound on the 10,000 test images 18,478 / 362 / 647, the k = 16 bound on 1,000
# 1,136 / 23.7 / 53.4, 10,000 samples 19,475 / 368 / 1,086: 2 s / 97 s / 43 s, plus the sample-quality metrics
# and mode coverage (at most 47 s: the board's NADE quick run evaluated in 55 s, 8 s of it sampling); glow's
# temperature curve (0.7 and 1.0) adds 2 x 10,000 samples (18 s) and their FIDs. About 9 to 11 minutes in all.
_QUICK_STEPS = {"nice": 20_000, "realnvp": 1400, "glow": 2200}
_QUICK_EVAL = Evaluation(num_samples=10_000, batch_size=500, iwae_k=16, iwae_images=1000, **_LENET)
_QUICK = dict(preset="small", batch_size=64, log_every=25)
_QUICK_CHECKPOINTS = {"nice": dict(checkpoint_every=1000, eval_loss_every=500)}  # 20,000 fast steps of 3.6M weights
_QUICK_OPTIMIZER = {"nice": Optimizer("adam", lr=1e-3, betas=(0.9, 0.99), eps=1e-4),
                    "realnvp": Optimizer("adam", lr=1e-3, weight_decay=5e-5, grad_clip=100.0),
                    "glow": Optimizer("adamax", lr=1e-3, schedule=Schedule(warmup=100))}

# Standard: the published recipes (SOURCES); 50,000 samples, the bound on the whole test split, the
# importance-weighted bound with k = 64 on its first 1,000 images.
_GLOW_BETA2 = 0.99872  # 1 - 1/782: openai/glow's Adamax beta_2 and Polyak decay for one epoch of 50,000 at batch 64
_STANDARD_FIT = {
    "nice": dict(batch_size=64, optimizer=Optimizer("adam", lr=1e-3, betas=(0.9, 0.99), eps=1e-4)),
    "realnvp": dict(batch_size=64, optimizer=Optimizer("adam", lr=1e-3, weight_decay=5e-5, grad_clip=100.0)),
    "glow": dict(batch_size=64, ema=_GLOW_BETA2, optimizer=Optimizer("adamax", lr=1e-3, betas=(0.9, _GLOW_BETA2),
                                                                     schedule=Schedule(warmup=7813))),
}
_STANDARD_STEPS = {"fashion-mnist": 200_000, "cifar10": 500_000}
_STANDARD_PRESET = {"fashion-mnist": "standard-28", "cifar10": "standard"}
_STANDARD_EVAL = {
    "fashion-mnist": Evaluation(num_samples=50_000, batch_size=500, iwae_k=64, iwae_images=1000, **_LENET),
    "cifar10": Evaluation(num_samples=50_000, batch_size=500, iwae_k=64, iwae_images=1000,
                          extractor="inception-v3-compat"),
}
_STANDARD_CURVE = {"glow": dict(temperatures=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0), temperature_samples=10_000)}
_LONG = dict(checkpoint_every=5000, log_every=100, eval_loss_every=2000)


def _standard(model: str, dataset: str) -> Protocol:
    evaluation = dataclasses.replace(_STANDARD_EVAL[dataset], **_STANDARD_CURVE.get(model, {}))
    return _protocol(model, dataset, "standard", 1, _STANDARD_PRESET[dataset], steps=_STANDARD_STEPS[dataset],
                     **_LONG, **_STANDARD_FIT[model], evaluation=evaluation)


_DISCRETE_PROTOCOLS = (
    *(_protocol(m, "fashion-mnist", "smoke", 1, **_SMOKE, optimizer=_SMOKE_OPTIMIZER.get(m, Optimizer("adam", lr=1e-3)),
                evaluation=dataclasses.replace(_SMOKE_EVAL, **_TEMPERATURE_CURVE.get(m, {}))) for m in DISCRETE),
    *(_protocol(m, "fashion-mnist", "quick", 1, **_QUICK, steps=_QUICK_STEPS[m], optimizer=_QUICK_OPTIMIZER[m],
                **_QUICK_CHECKPOINTS.get(m, dict(checkpoint_every=100, eval_loss_every=100)),
                evaluation=dataclasses.replace(_QUICK_EVAL, **_TEMPERATURE_CURVE.get(m, {}))) for m in DISCRETE),
    *(_standard(m, d) for m in DISCRETE for d in _STANDARD_STEPS),
)

# ---------------------------------------------------------------------------------------------------------
# FFJORD (genbench.baselines.ffjord: presets smoke, small, standard). Its likelihood takes no importance samples,
# so its evaluations have no iwae settings. _FFJORD_QUICK: the quick tier's steps and the number of test images
# scored (every image costs an ODE solve). Sized from train_step and evaluation throughput of the small preset
# (batch 64, 2 threads, measured on a machine other jobs shared at times): training 135 images/s quiet (51-67 under
# load), likelihood 57 images/s, samples 124 images/s: about 5 min of training, 35 s for 2,000 images' likelihood
# and 80 s for 10,000 samples; the whole test split's likelihood would add 2-3 minutes the 15-minute budget lacks,
# so its bits/dim sits in a column of its own (n = 2,000), as DDPM's variational bound does.
_FFJORD_QUICK = dict(steps=600, num_images=2000)
_FFJORD_QUICK_V2_STEPS = 450
_FFJORD_FIT = dict(batch_size=200, optimizer=Optimizer("adam", lr=1e-3, schedule=Schedule(warmup=1000)))
_FFJORD_PROTOCOLS = (
    _protocol("ffjord", "fashion-mnist", "smoke", 1, **_SMOKE, optimizer=Optimizer("adam", lr=1e-3),
              evaluation=dataclasses.replace(_SMOKE_EVAL, iwae_k=0, iwae_images=0)),
    _protocol("ffjord", "fashion-mnist", "quick", 1, **_QUICK, checkpoint_every=100, eval_loss_every=100,
              steps=_FFJORD_QUICK["steps"],
              optimizer=Optimizer("adam", lr=1e-3, schedule=Schedule(warmup=100)),
              evaluation=dataclasses.replace(_QUICK_EVAL, iwae_k=0, iwae_images=0,
                                             num_images=_FFJORD_QUICK["num_images"])),
    # version 2: RNODE's training (the `small-rnode` preset: two RK4 steps and the two penalties) in place of
    # version 1's single step, which the model learned to exploit; at 49 images/s, 450 steps of 64 (~10 min),
    # and the evaluation of version 1 (its four RK4 steps cost what they did)
    _protocol("ffjord", "fashion-mnist", "quick", 2, **{**_QUICK, "preset": "small-rnode"}, checkpoint_every=50,
              eval_loss_every=50, steps=_FFJORD_QUICK_V2_STEPS,
              optimizer=Optimizer("adam", lr=1e-3, schedule=Schedule(warmup=100)),
              evaluation=dataclasses.replace(_QUICK_EVAL, iwae_k=0, iwae_images=0,
                                             num_images=_FFJORD_QUICK["num_images"])),
    *(_protocol("ffjord", d, "standard", 1, "standard", steps=_STANDARD_STEPS[d], **_LONG, **_FFJORD_FIT,
                evaluation=dataclasses.replace(_STANDARD_EVAL[d], iwae_k=0, iwae_images=0))
      for d in _STANDARD_STEPS),
)

PROTOCOLS: tuple[Protocol, ...] = (*_DISCRETE_PROTOCOLS, *_FFJORD_PROTOCOLS)
