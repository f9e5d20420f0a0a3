"""Protocols of StyleGAN2 (genbench.baselines.stylegan2), unconditional.

A step is one minibatch: a discriminator update and a generator update, plus the lazy R1 and path-length updates on
the steps their intervals name. Samples are scored as every other family's samples on that dataset (the settings of
the GAN protocols, genbench/protocols/gan.py); evaluation also saves the model's style-mixing and noise figure.
"""

from __future__ import annotations

import dataclasses

from genbench.baselines import stylegan2
from genbench.optim import Optimizer
from genbench.protocols import gan
from genbench.protocols.base import Evaluation, Protocol

# StyleGAN2-ADA (Karras et al. 2020), NVlabs/stylegan2-ada-pytorch train.py cfg_specs['cifar']: mb 64, lrate
# 0.0025, Adam betas (0, 0.99) eps 1e-8, gamma 0.01, ema 500 kimg, kimg 100,000 (100M images: 1,562,500 steps of
# 64); the lazy-regularization correction of the learning rate and betas is applied by the model.
OPTIMIZER = Optimizer("adam", lr=0.0025, betas=(0.0, 0.99))
SOURCE = ("Karras et al. 2020 (StyleGAN2) in StyleGAN2-ADA's cifar configuration (NVlabs/stylegan2-ada-pytorch "
          "train.py: mb 64, lrate 0.0025, betas (0, 0.99), gamma 0.01, mbstd 32, map 2, ema 500 kimg, 100,000 kimg; "
          "published CIFAR-10 FID 2.92 with ADA, which genbench does not implement)")
STANDARD_STEPS = 100_000_000 // 64
STANDARD_EMA = 0.5 ** (64 / 500_000)   # ema_kimg 500 as a per-step decay at batch 64 (without ADA's ema ramp-up)


def _protocol(dataset: str, tier: str, version: int, preset: str, **kw) -> Protocol:
    kw.setdefault("source", SOURCE if tier == "standard" else f"genbench; optimizer: {SOURCE}")
    kw.setdefault("optimizer", OPTIMIZER)
    return Protocol(dataset=dataset, model="stylegan2", tier=tier, version=version, preset=preset,
                    model_config=stylegan2.PRESETS[preset], **kw)


def _unconditional(ev: Evaluation) -> Evaluation:
    """A GAN protocol's evaluation without latent projection and decoder AIS (not built for StyleGAN2)."""
    return dataclasses.replace(ev, reconstruct_images=None, decoder_ais=None)


# Quick: the `small` preset (width 16, the StyleGAN2 paper's path length and mixing, the cifar configuration's
# gamma 0.01 for low-resolution images) at batch 32; the seed-0 run trained 2,800 steps in 654 s on the idle
# 2-core machine (12.3 minutes for the whole command). EMA 0.995 from step 500.
QUICK_STEPS = 2800
PROTOCOLS: tuple[Protocol, ...] = (
    _protocol("fashion-mnist", "smoke", 1, "smoke", steps=12, batch_size=16, checkpoint_every=4, snapshot_every=6,
              log_every=2, eval_loss_every=6, ema=0.9, ema_start=4, evaluation=_unconditional(gan._SMOKE_EVAL)),
    _protocol("fashion-mnist", "quick", 1, "small", steps=QUICK_STEPS, batch_size=32,
              checkpoint_every=250, snapshot_every=QUICK_STEPS // 5, log_every=25, eval_loss_every=250, ema=0.995,
              ema_start=500, evaluation=_unconditional(gan._QUICK_EVAL)),
    _protocol("fashion-mnist", "standard", 1, "standard", steps=STANDARD_STEPS, batch_size=64, checkpoint_every=5000,
              snapshot_every=250_000, log_every=100, eval_loss_every=2000, ema=STANDARD_EMA,
              evaluation=_unconditional(gan._STANDARD_EVAL)),
    _protocol("cifar10", "standard", 1, "standard", steps=STANDARD_STEPS, batch_size=64, checkpoint_every=5000,
              snapshot_every=250_000, log_every=100, eval_loss_every=2000, ema=STANDARD_EMA,
              evaluation=_unconditional(gan._INCEPTION_EVAL)),
)
