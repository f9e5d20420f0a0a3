"""Protocols of the GANs (genbench.baselines.gan): dcgan, wgan, wgan-gp, sngan, gan-r1.

A step is one generator update; a critic trained n_critic times per step gets n_critic fresh batches of
`batch_size` images (the family's `batches_per_step`), as the papers count. No GAN has a likelihood: the
sample-quality metrics score it, with the evaluation settings of the VAE's protocol on the same dataset, so a
board holds every family in one column; beyond them, mode coverage by the extractor's classes, FID over
training from snapshots, and PSNR/SSIM of a stated subset of held-out images by latent projection.
"""

from __future__ import annotations

import dataclasses

from genbench.baselines import gan
from genbench.optim import Optimizer, Schedule
from genbench.protocols import decoder_ais
from genbench.protocols.base import Evaluation, Protocol

# The published optimizer settings (the papers', and their reference code's where the paper is silent).
OPTIMIZERS = {
    "dcgan": Optimizer("adam", lr=2e-4, betas=(0.5, 0.999)),    # Radford et al. 2016, Sec. 4
    "wgan": Optimizer("rmsprop", lr=5e-5),                      # Arjovsky et al. 2017, Algorithm 1
    "wgan-gp": Optimizer("adam", lr=1e-4, betas=(0.0, 0.9)),    # Gulrajani et al. 2017, Algorithm 1
    "sngan": Optimizer("adam", lr=2e-4, betas=(0.0, 0.9)),      # Miyato et al. 2018, Table 1 setting C / ResNet
    "gan-r1": Optimizer("adam", lr=1e-4, betas=(0.0, 0.99)),    # Mescheder et al. 2018, GAN_stability configs
}
BATCH = {"dcgan": 128, "wgan": 64, "wgan-gp": 64, "sngan": 64, "gan-r1": 64}
SOURCES = {
    "dcgan": "Radford, Metz & Chintala 2016 (DCGAN): architecture, Adam 2e-4 (0.5, 0.999), batch 128, N(0, 0.02) init",
    "wgan": "Arjovsky, Chintala & Bottou 2017 (WGAN), Algorithm 1: clip 0.01, RMSprop 5e-5, n_critic 5, batch 64",
    "wgan-gp": "Gulrajani et al. 2017 (WGAN-GP), Algorithm 1: lambda 10, Adam 1e-4 (0, 0.9), n_critic 5, batch 64; "
               "CIFAR-10 ResNet recipe (igul222/improved_wgan_training gan_cifar_resnet.py): 2e-4 decayed "
               "linearly to 0 over 100k generator steps",
    "sngan": "Miyato et al. 2018 (SNGAN): spectral norm in D, hinge loss, Adam 2e-4 (0, 0.9), n_dis 5, batch 64; "
             "ResNet G/D (Appendix B), 2e-4 decayed linearly over 50k generator steps "
             "(pfnet-research/sngan_projection)",
    "gan-r1": "Mescheder, Geiger & Nowozin 2018: non-saturating loss + R1 (gamma 10), Adam 1e-4 (0, 0.99), batch 64 "
              "(LMescheder/GAN_stability)",
}
MODELS = tuple(OPTIMIZERS)


def _gan(model: str, dataset: str, tier: str, version: int, preset: str, steps: int, evaluation: Evaluation, *,
         optimizer: Optimizer | None = None, batch_size: int | None = None, **kw) -> Protocol:
    kw.setdefault("source", SOURCES[model] if tier == "standard" else f"genbench; optimizer: {SOURCES[model]}")
    return Protocol(dataset=dataset, model=model, tier=tier, version=version, preset=preset,
                    model_config=gan.VARIANTS[model][preset], steps=steps,
                    batch_size=batch_size or BATCH[model], optimizer=optimizer or OPTIMIZERS[model],
                    evaluation=evaluation, **kw)


# Fashion-MNIST. Every tier scores samples as the VAE's protocol of that tier does (genbench/protocols/vae.py:
# smoke 200 samples against the test split, quick 10,000 against train, standard 50,000 against train, through
# lenet-fashion-mnist), plus mode coverage, snapshots and projection of a stated subset of the test split.
_LENET = dict(extractor="lenet-fashion-mnist", modes="classes")
_SMOKE_EVAL = Evaluation(num_images=200, num_samples=200, batch_size=100, reference_split="test",
                         fidelity_metrics=("fid", "prc"), reconstruct_images=20, snapshot_samples=200, **_LENET)
_QUICK_EVAL = Evaluation(num_samples=10_000, reconstruct_images=1000, snapshot_samples=2000, **_LENET)
_STANDARD_EVAL = Evaluation(num_samples=50_000, batch_size=500, reconstruct_images=10_000, snapshot_samples=10_000,
                            **_LENET)
_SMOKE = dict(preset="smoke", steps=12, evaluation=_SMOKE_EVAL, batch_size=16, checkpoint_every=4,
              snapshot_every=6, log_every=2, eval_loss_every=6)
# Quick: the `small` presets and the published optimizers, steps sized from the runner's estimate after 10 steps
# on an idle 2-core CPU to about 7.5 minutes of training (images/s: dcgan 851, wgan 2115, wgan-gp 1932, sngan
# 2459, gan-r1 901, counting every critic batch); each run's compute.train_seconds on
# leaderboards/fashion-mnist-quick records what it took.
QUICK_STEPS = {"dcgan": 3000, "wgan": 3000, "wgan-gp": 2800, "sngan": 3500, "gan-r1": 6000}
_QUICK = dict(preset="small", evaluation=_QUICK_EVAL, checkpoint_every=250, log_every=25, eval_loss_every=250)
_STANDARD = dict(preset="standard", steps=100_000, evaluation=_STANDARD_EVAL, checkpoint_every=5000,
                 snapshot_every=10_000, log_every=100, eval_loss_every=2000)

# CIFAR-10 (and CelebA 64x64 where the paper reports faces): 50,000 samples against the train split through the
# TF-Inception network, as the literature reports FID and IS; the ResNet recipes for WGAN-GP and SNGAN.
_INCEPTION_EVAL = Evaluation(num_samples=50_000, batch_size=500, extractor="inception-v3-compat",
                             reconstruct_images=2000, snapshot_samples=10_000)
_CIFAR = {
    "dcgan": dict(preset="standard", steps=100_000),
    "wgan": dict(preset="standard", steps=100_000),
    "wgan-gp": dict(preset="standard", steps=100_000, optimizer=dataclasses.replace(
        OPTIMIZERS["wgan-gp"], lr=2e-4, schedule=Schedule(decay="linear"))),
    "sngan": dict(preset="standard", steps=50_000, optimizer=dataclasses.replace(
        OPTIMIZERS["sngan"], schedule=Schedule(decay="linear"))),
    "gan-r1": dict(preset="standard", steps=100_000),
}
_CELEBA = ("dcgan", "gan-r1")
_LONG = dict(evaluation=_INCEPTION_EVAL, checkpoint_every=5000, snapshot_every=10_000, log_every=100,
             eval_loss_every=2000)

# The stacked benchmark of Metz et al. 2017 on Fashion-MNIST (1,000 modes), a DCGAN only, as PacGAN's Table 2:
# each channel classified by lenet-fashion-mnist; no FID (the extractor reads one channel).
_STACKED_EVAL = Evaluation(num_samples=26_000, extractor="lenet-fashion-mnist", modes="stacked",
                           fidelity_metrics=(), reconstruct_images=1000)
STACKED_QUICK_STEPS = 3000

_FASHION_V1 = (
    *(_gan(m, "fashion-mnist", "smoke", 1, **_SMOKE) for m in MODELS),
    *(_gan(m, "fashion-mnist", "quick", 1, steps=QUICK_STEPS[m], snapshot_every=QUICK_STEPS[m] // 5, **_QUICK)
      for m in MODELS),
    *(_gan(m, "fashion-mnist", "standard", 1, **_STANDARD) for m in MODELS),
)
# Version 2 adds log p(x) by AIS over the generator's latent under the Gaussian observation model the VAE's
# version 4 shares (log_px_gauss_ais, with BDMC; genbench/protocols/decoder_ais.py); training is unchanged.
_FASHION_V2 = tuple(dataclasses.replace(p, version=2, evaluation=dataclasses.replace(
    p.evaluation, decoder_ais=decoder_ais.BY_TIER[p.tier])) for p in _FASHION_V1)

PROTOCOLS: tuple[Protocol, ...] = (
    *_FASHION_V1,
    *_FASHION_V2,
    *(_gan(m, "cifar10", "standard", 1, **_CIFAR[m], **_LONG) for m in MODELS),
    *(_gan(m, "celeba64", "standard", 1, preset="standard", steps=100_000, **_LONG) for m in _CELEBA),
    _gan("dcgan", "stacked-fashion-mnist", "smoke", 1, "smoke", steps=12, batch_size=16, checkpoint_every=4,
         log_every=2, eval_loss_every=6, evaluation=dataclasses.replace(_STACKED_EVAL, num_images=200,
                                                                         num_samples=500, batch_size=100,
                                                                         reconstruct_images=20)),
    _gan("dcgan", "stacked-fashion-mnist", "quick", 1, "small", steps=STACKED_QUICK_STEPS, checkpoint_every=250,
         log_every=25, eval_loss_every=250, evaluation=_STACKED_EVAL),
)
