"""Protocols of BigGAN (genbench.baselines.biggan): class-conditional, trained on the dataset's labels.

A step is one generator update after `n_critic` critic updates, each on its own batch of `batch_size` images and
labels. Samples are drawn for labels in the training split's class proportions and scored as every other family's
samples on that dataset (the settings of the GAN protocols, genbench/protocols/gan.py), plus what a conditional
model adds (the extractor's class accuracy on the samples against the labels asked for, intra-FID) and FID / IS
against the truncation threshold (Brock et al. 2019, Fig. 4).
"""

from __future__ import annotations

import dataclasses

from genbench.baselines import biggan
from genbench.optim import Optimizer
from genbench.protocols import gan
from genbench.protocols.base import Evaluation, Protocol

# BigGAN-PyTorch scripts/launch_cifar_ema.sh: Adam 2e-4 for G and D, betas (0, 0.999); batch 50; 4 D steps per G
# step (the standard preset); EMA 0.9999 of G from step 1000; 500 epochs of 1,000 batches, i.e. 125,000 G steps.
OPTIMIZER = Optimizer("adam", lr=2e-4, betas=(0.0, 0.999))
SOURCE = ("Brock, Donahue & Simonyan 2019 (BigGAN; CIFAR-10 IS 9.22, FID 14.73); recipe of ajbrock/BigGAN-PyTorch "
          "scripts/launch_cifar_ema.sh: batch 50, 4 D steps per G step, Adam 2e-4 (0, 0.999) for G and D, N(0, 0.02) "
          "init, EMA 0.9999 from step 1000, 500 epochs")
TRUNCATIONS = (2.0, 1.5, 1.0, 0.75, 0.5, 0.25)


def _protocol(dataset: str, tier: str, version: int, preset: str, **kw) -> Protocol:
    kw.setdefault("source", SOURCE if tier == "standard" else f"genbench; optimizer and EMA: {SOURCE}")
    kw.setdefault("optimizer", OPTIMIZER)
    return Protocol(dataset=dataset, model="biggan", tier=tier, version=version, preset=preset,
                    model_config=biggan.PRESETS[preset], **kw)


def _conditional(ev: Evaluation, **changes) -> Evaluation:
    """A GAN protocol's evaluation without latent projection (a class-conditional G would need the label), with
    the truncation curve."""
    return dataclasses.replace(ev, **{"reconstruct_images": None, "decoder_ais": None, "truncations": TRUNCATIONS,
                                      **changes})


# Quick: the `small` preset (widths 32, 2 D steps per G step as the paper's ImageNet runs), batch 64. The seed-0
# run trained 1,000 steps in 663 s and, an hour later on the same idle 2-core machine, in 845 s (a whole command of
# 13.5 and 16.9 minutes: over the quick budget on the slower hours; about 800 steps would fit). EMA 0.995 (a
# half-life of ~140 steps) from step 200, so the evaluated weights average the last few hundred steps.
QUICK_STEPS = 1000
PROTOCOLS: tuple[Protocol, ...] = (
    _protocol("fashion-mnist", "smoke", 1, "smoke", steps=12, batch_size=16, checkpoint_every=4, snapshot_every=6,
              log_every=2, eval_loss_every=6, ema=0.9, ema_start=4,
              evaluation=_conditional(gan._SMOKE_EVAL, truncations=(1.0, 0.5), truncation_samples=100)),
    _protocol("fashion-mnist", "quick", 1, "small", steps=QUICK_STEPS, batch_size=64, checkpoint_every=100,
              snapshot_every=QUICK_STEPS // 5, log_every=25, eval_loss_every=100, ema=0.995, ema_start=200,
              evaluation=_conditional(gan._QUICK_EVAL)),
    _protocol("fashion-mnist", "standard", 1, "standard", steps=125_000, batch_size=50, checkpoint_every=5000,
              snapshot_every=25_000, log_every=100, eval_loss_every=2000, ema=0.9999, ema_start=1000,
              evaluation=_conditional(gan._STANDARD_EVAL)),
    _protocol("cifar10", "standard", 1, "standard", steps=125_000, batch_size=50, checkpoint_every=5000,
              snapshot_every=25_000, log_every=100, eval_loss_every=2000, ema=0.9999, ema_start=1000,
              evaluation=_conditional(gan._INCEPTION_EVAL)),
)
