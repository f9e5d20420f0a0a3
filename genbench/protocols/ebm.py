"""Protocols of the energy-based models (genbench.baselines.ebm): igebm, jem, short-run-ebm.

A step is one update of the energy network on a batch of training images and as many Langevin negatives (K steps
each, from the replay buffer or from noise). Samples come from `sample_steps` Langevin steps from uniform noise,
never from the training buffer. Sample quality on Fashion-MNIST uses the settings of every other family's protocol
of the same tier (quick: 10,000 samples against the train split through lenet-fashion-mnist, FID / KID / IS /
precision-recall and class coverage), so a board holds every family in one column. Beyond them: JEM's test-split
accuracy (`accuracy`, from its `classify`), and for every EBM bits/dim of exp(-E) / Z with log Z by annealed
importance sampling (`bpd_ais`, an estimate whose log Z-hat errs low, marked as an estimate on every board).
"""

from __future__ import annotations

from genbench.baselines import ebm
from genbench.metrics import ais
from genbench.optim import Optimizer, Schedule
from genbench.protocols.base import Evaluation, Protocol

MODELS = ("igebm", "jem", "short-run-ebm")
SOURCES = {
    "igebm": "Du & Mordatch 2019 (IGEBM); openai/ebm_code_release README's unconditional CIFAR-10 command and "
             "train.py defaults: Adam 3e-4 (0, 0.999), batch 128, K 60, step 10, noise 0.005, gradient clip 0.01, "
             "L2 1, spectral norm; 121,200 steps (the iteration its README's evaluation loads)",
    "jem": "Grathwohl et al. 2020 (JEM); wgrathwohl/JEM README command and train_wrn_ebm.py defaults: Adam 1e-4, "
           "batch 64, 1,000 warmup steps, 200 epochs with the rate times 0.3 at epochs 160 and 180 (here epochs of "
           "the whole train split), SGLD 20 steps of 1 with noise 0.01, buffer 10,000, reinit 0.05, data noise 0.03",
    "short-run-ebm": "Nijkamp et al. 2019 (short-run EBM); enijkamp/short_run train_cifar10_minimal.py: Adam 1e-4, "
                     "batch 64, K 100 steps of 1 with noise 0.01 from U[-1, 1], data noise 0.03, 100,000 iterations",
}
OPTIMIZERS = {
    "igebm": Optimizer("adam", lr=3e-4, betas=(0.0, 0.999)),
    "jem": Optimizer("adam", lr=1e-4),
    "short-run-ebm": Optimizer("adam", lr=1e-4),
}
BATCH = {"igebm": 128, "jem": 64, "short-run-ebm": 64}


def _protocol(model: str, dataset: str, tier: str, version: int, preset: str, **kw) -> Protocol:
    kw.setdefault("source", SOURCES[model] if tier == "standard" else f"genbench; optimizer: {SOURCES[model]}")
    kw.setdefault("optimizer", OPTIMIZERS[model])
    return Protocol(dataset=dataset, model=model, tier=tier, version=version, preset=preset,
                    model_config=ebm.VARIANTS[model][preset], **kw)


_LENET = dict(extractor="lenet-fashion-mnist", modes="classes")

# Smoke: seconds on a CPU; AIS with 8 chains over 20 distributions.
_SMOKE_AIS = ais.Settings(chains=8, steps=20, leapfrog_steps=2, pilot_chains=2)
_SMOKE_EVAL = Evaluation(num_images=20, num_samples=100, batch_size=100, reference_split="test",
                         fidelity_metrics=("fid", "prc"), ais=_SMOKE_AIS, **_LENET)
_SMOKE = dict(preset="smoke", steps=12, batch_size=16, checkpoint_every=4, log_every=2, eval_loss_every=6,
              evaluation=_SMOKE_EVAL)

# Quick (Fashion-MNIST, 2-core CPU): the `small` presets (genbench.baselines.ebm), steps sized to about 9 minutes of
# training from one step's time on the idle machine (igebm 0.22 s, jem 0.35 s, short-run 0.39 s at batch 64);
# evaluation adds 10,000 samples of 60 Langevin steps (40 for the short-run EBM) at about 6,000 chain steps/s
# (~100 s), AIS with 16 chains (and 4 pilot chains) over 1,000 distributions of 10 leapfrog steps (~60 s) and the
# sample-quality metrics (~40 s): about 13 minutes in all.
QUICK_STEPS = {"igebm": 2500, "jem": 1500, "short-run-ebm": 1400}
_QUICK_AIS = ais.Settings(chains=16, steps=1000)
_QUICK_EVAL = Evaluation(num_samples=10_000, batch_size=500, ais=_QUICK_AIS, **_LENET)
_QUICK = dict(preset="small", batch_size=64, checkpoint_every=100, log_every=25, eval_loss_every=250,
              evaluation=_QUICK_EVAL)

# Standard: the published recipes (SOURCES) at the published sizes; 50,000 samples against the train split, AIS
# with 256 chains over 10,000 distributions.
_EPOCH = {"fashion-mnist": 60_000 // 64, "cifar10": 50_000 // 64}  # JEM's epochs of batch 64


def _jem_schedule(dataset: str) -> dict:
    e = _EPOCH[dataset]
    return dict(steps=200 * e, optimizer=Optimizer("adam", lr=1e-4, schedule=Schedule(
        warmup=1000, decay="step", milestones=(160 * e, 180 * e), gamma=0.3)))


_STANDARD_AIS = ais.Settings(chains=256, steps=10_000)
_STANDARD_EVAL = {
    "fashion-mnist": Evaluation(num_samples=50_000, batch_size=500, ais=_STANDARD_AIS, **_LENET),
    "cifar10": Evaluation(num_samples=50_000, batch_size=500, ais=_STANDARD_AIS, extractor="inception-v3-compat"),
}
_STANDARD_FIT = {"igebm": lambda d: dict(steps=121_200), "jem": _jem_schedule,
                 "short-run-ebm": lambda d: dict(steps=100_000)}
_LONG = dict(checkpoint_every=2000, log_every=100, eval_loss_every=2000)

PROTOCOLS: tuple[Protocol, ...] = (
    *(_protocol(m, "fashion-mnist", "smoke", 1, **_SMOKE) for m in MODELS),
    *(_protocol(m, "fashion-mnist", "quick", 1, steps=QUICK_STEPS[m], **_QUICK) for m in MODELS),
    *(_protocol(m, d, "standard", 1, "standard", batch_size=BATCH[m], evaluation=_STANDARD_EVAL[d], **_LONG,
                **_STANDARD_FIT[m](d)) for m in MODELS for d in _STANDARD_EVAL),
)
