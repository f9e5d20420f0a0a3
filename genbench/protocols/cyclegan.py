"""Protocols of CycleGAN (genbench.baselines.cyclegan): unpaired translation between squares and ellipses.

A translation protocol (`Protocol.domains`) trains on two classes of its dataset's images, half of every batch from
each (genbench.runner.DomainOrder); here the dSprites shapes of dsprites-shapes, A = squares (0) and B = ellipses (1),
drawn independently per shape, so no square of the training split is paired with an ellipse. A step is one
generator update of both mappings and one discriminator update of both critics on a batch of n + n images (n steps
of the paper's batch 1, see the model's docstring). Evaluation translates the 1,024 test images of each domain both
ways and scores them against the ground truth and through the lenet-dsprites-shapes extractor
(genbench.translations); hearts are in the dataset for protocols between other pairs.
"""

from __future__ import annotations

from genbench.baselines import cyclegan
from genbench.optim import Optimizer, Schedule
from genbench.protocols.base import Evaluation, Protocol

DOMAINS = (0, 1)  # dSprites shape classes: square -> ellipse (a_to_b), ellipse -> square (b_to_a)
EXTRACTOR = "lenet-dsprites-shapes"
# Zhu et al. 2017, Sec. 4 and Appendix 7.1: Adam lr 0.0002, betas (0.5, 0.999), batch 1, the rate constant for
# 100 epochs and linearly decayed to 0 over the next 100; lambda 10, identity 0.5 lambda, pools of 50.
OPTIMIZER = Optimizer("adam", lr=2e-4, betas=(0.5, 0.999))
SOURCE = ("Zhu, Park, Isola & Efros 2017 (CycleGAN), Sec. 4 and Appendix 7.1-7.2; junyanz/pytorch-CycleGAN-and-pix2pix"
          " defaults (n_epochs 100, n_epochs_decay 100, lr 0.0002, beta1 0.5, lambda_A = lambda_B 10, lambda_identity"
          " 0.5, pool_size 50, gan_mode lsgan, resnet_6blocks below 256 px, basic 70x70 PatchGAN)")
# An epoch of the reference is one pass over the larger domain at batch 1: 8,192 steps of 1 + 1 images here.
EPOCH = 8_192
STANDARD_STEPS = 200 * EPOCH


def _protocol(tier: str, version: int, preset: str, steps: int, batch_size: int, **kw) -> Protocol:
    kw.setdefault("source", SOURCE if tier == "standard" else f"genbench; optimizer, losses and schedule: {SOURCE}")
    schedule = Schedule(decay="linear", decay_start=steps // 2)  # constant for the first half, then linear to 0
    return Protocol(dataset="dsprites-shapes", model="cyclegan", tier=tier, version=version, preset=preset,
                    model_config=cyclegan.PRESETS[preset], steps=steps, batch_size=batch_size,
                    optimizer=Optimizer("adam", lr=OPTIMIZER.lr, betas=OPTIMIZER.betas, schedule=schedule),
                    train_split="train", seeds=(0, 1, 2), domains=DOMAINS, **kw)


def _evaluation(images: int, reference_split: str = "train") -> Evaluation:
    return Evaluation(split="test", num_images=None, batch_size=128, seed=0, extractor=EXTRACTOR,
                      reference_split=reference_split, fidelity_metrics=("fid", "kid"), translation_images=images)


# Quick: the `small` preset at 8 + 8 images per step; one step took 0.216 s on the idle 2-core machine (20 timed
# steps after 3), so 2,500 steps are about 9 minutes of training.
QUICK_STEPS = 2500
PROTOCOLS: tuple[Protocol, ...] = (
    _protocol("smoke", 1, "smoke", steps=6, batch_size=4, checkpoint_every=2, log_every=2, eval_loss_every=3,
              evaluation=_evaluation(16, reference_split="test")),  # seconds: 1,024 reference images
    _protocol("quick", 1, "small", steps=QUICK_STEPS, batch_size=16, checkpoint_every=250, log_every=25,
              eval_loss_every=250, evaluation=_evaluation(1024)),
    _protocol("standard", 1, "standard", steps=STANDARD_STEPS, batch_size=2, checkpoint_every=10_000, log_every=500,
              eval_loss_every=10_000, evaluation=_evaluation(1024)),
)
