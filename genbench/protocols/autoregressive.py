"""Protocols of the autoregressive family (genbench.baselines: pixelcnn (pixelcnn, gated-pixelcnn,
gated-pixelcnn-class), pixelcnnpp, pixelrnn, nade, made).

Their likelihood is exact, so every protocol scores the whole evaluation split (`bpd`, estimator `exact`, with
the nats per image beside it). Sample quality on Fashion-MNIST uses the settings of the VAE's protocol of the
same tier (quick: 10,000 samples against the train split through lenet-fashion-mnist, FID / KID / IS /
precision-recall and class coverage), so a board holds every family in one column; the samples come from
cached generation (baselines/autoregressive.py), which is what makes 10,000 of them affordable on a CPU.

binarized-mnist (Larochelle & Murray's fixed binarization, valid split held out as the papers do) has a
standard tier whose test NLL in nats is the literature's column (NADE 88.86, MADE 88.04, PixelCNN 81.30); no
feature extractor suits it, so its protocols score likelihood only.

The class-conditional Gated PixelCNN trains on the labels too and is evaluated on both its conditional and its
marginal likelihood, one network pass per class and image: its quick protocol scores the first 1,000 test
images (10,000 passes, as many as the others' whole split), its samples are drawn for labels in the training
split's proportions and are also scored against those labels (class accuracy, intra-FID). binarized-mnist has
no labels, so it has no protocol there.
"""

from __future__ import annotations

import dataclasses

from genbench.baselines import made, nade, pixelcnn, pixelcnnpp, pixelrnn
from genbench.optim import Optimizer
from genbench.protocols.base import Evaluation, Protocol

PIXELCNN_SOURCE = ("van den Oord, Kalchbrenner & Kavukcuoglu 2016 (PixelRNN paper), Sec. 3.4, Table 4: 7x7 mask A, "
                   "15 residual blocks of h = 128, two 1x1 layers, 256-way softmax (CIFAR-10 3.14 bits/dim, binarized "
                   "MNIST 81.30 nats); the optimizer, batch and steps are genbench's (Adam 1e-3, batch 64), the paper "
                   "does not state them in full")
GATED_SOURCE = ("van den Oord et al. 2016 (Conditional Image Generation with PixelCNN Decoders), Sec. 2-3: gated "
                "vertical and horizontal stacks, 20 layers of 384 channels with 5x5 filters as for its ImageNet "
                "models (CIFAR-10 3.03 bits/dim); the optimizer, batch and steps are genbench's (Adam 1e-3, batch 64)")
PIXELRNN_SOURCE = ("van den Oord, Kalchbrenner & Kavukcuoglu 2016, Sec. 3.1 and 5: Row LSTM, 12 layers of h = 128, "
                   "residual connections, 256-way softmax (CIFAR-10 3.07 bits/dim, binarized MNIST 80.54 nats); "
                   "RMSProp in the paper, its schedule not given in full: Adam 1e-3, batch 64 here (genbench)")
PIXELCNNPP_SOURCE = ("Salimans et al. 2017 (PixelCNN++), openai/pixel-cnn defaults: nr_resnet 5, nr_filters 160, 10 "
                     "logistic components, dropout 0.5, 3 resolutions, Adam 1e-3, batch 16 x 8 GPUs, Polyak averaging "
                     "0.9995 (CIFAR-10 2.92 bits/dim); the learning-rate decay 0.999995 per step is not applied "
                     "(genbench's schedules are warmup and linear decay)")
NADE_SOURCE = ("Larochelle & Murray 2011 (NADE): 500 sigmoid hidden units with tied input weights, SGD (binarized "
               "MNIST 88.86 nats); the learning rate and batch are genbench's (SGD 0.01 without momentum, batch 100); on "
               "8-bit data a K = 10 discretized logistic mixture per sub-pixel (genbench's choice: the paper is binary only)")
MADE_SOURCE = ("Germain et al. 2015 (MADE), mgermain/MADE README and trainMADE.py: 2 x 8000 ReLU units, 32 mask sets "
               "(order and connectivity), Adagrad 0.01, batch 100 (binarized MNIST 86.64 nats; 88.04 with one hidden "
               "layer); on 8-bit data one layer of 1000 with a K = 10 logistic mixture (genbench's choice)")
CONDITIONAL_SOURCE = (GATED_SOURCE + "; class-conditional as in its Sec. 2.3 (Eq. 4: a class bias in every gate), "
                      "whose likelihood the paper reports on ImageNet only")
FAMILY = {"pixelcnn": pixelcnn.VARIANTS["pixelcnn"], "gated-pixelcnn": pixelcnn.VARIANTS["gated-pixelcnn"],
          "gated-pixelcnn-class": pixelcnn.VARIANTS["gated-pixelcnn-class"],
          "pixelcnnpp": pixelcnnpp.PRESETS, "pixelrnn": pixelrnn.PRESETS, "nade": nade.PRESETS, "made": made.PRESETS}
SOURCES = {"pixelcnn": PIXELCNN_SOURCE, "gated-pixelcnn": GATED_SOURCE, "gated-pixelcnn-class": CONDITIONAL_SOURCE,
           "pixelcnnpp": PIXELCNNPP_SOURCE, "pixelrnn": PIXELRNN_SOURCE, "nade": NADE_SOURCE, "made": MADE_SOURCE}
MODELS = tuple(FAMILY)
UNLABELLED = {"binarized-mnist"}  # datasets without class labels: no class-conditional protocol


def _protocol(model: str, dataset: str, tier: str, version: int, preset: str, **kw) -> Protocol:
    kw.setdefault("source", SOURCES[model] if tier == "standard" else "genbench")
    return Protocol(dataset=dataset, model=model, tier=tier, version=version, preset=preset,
                    model_config=FAMILY[model][preset], **kw)


_LENET = dict(extractor="lenet-fashion-mnist", modes="classes")
_SMOKE = dict(preset="smoke", steps=12, batch_size=16, optimizer=Optimizer("adam", lr=1e-3), checkpoint_every=4,
              log_every=2, eval_loss_every=6,
              evaluation=Evaluation(num_images=20, num_samples=100, batch_size=100, reference_split="test",
                                    fidelity_metrics=("fid", "prc"), **_LENET))
# Quick: 5-9 minutes of training on a 2-core CPU, batch 64, 2 threads; the seed-0 runs trained at (images/s)
# pixelcnn 112, gated-pixelcnn 74, pixelcnnpp 134, pixelrnn 66, nade 313, made 757 (so the convolutional and
# recurrent models see under one epoch); the exact bits/dim of the whole test split; 10,000 samples by cached
# generation in batches of 500 (images/s: 164, 50, 44, 66; NADE and MADE by their recursions: 1,203, 260).
_QUICK_STEPS = {"pixelcnn": 650, "gated-pixelcnn": 450, "gated-pixelcnn-class": 450, "pixelcnnpp": 600, "pixelrnn": 550,
                "nade": 2200, "made": 5000}
_QUICK_EVAL = Evaluation(num_samples=10_000, batch_size=500, **_LENET)
_QUICK = dict(preset="small", batch_size=64, checkpoint_every=100, log_every=25, eval_loss_every=100,
              optimizer=Optimizer("adam", lr=2e-3))


def _quick_evaluation(model: str) -> Evaluation:
    conditional = getattr(FAMILY[model]["small"], "num_classes", None)
    return dataclasses.replace(_QUICK_EVAL, num_images=1000) if conditional else _QUICK_EVAL
_LONG = dict(checkpoint_every=5000, log_every=100, eval_loss_every=2000)
_STANDARD_OPTIMIZER = {"nade": dict(batch_size=100, optimizer=Optimizer("sgd", lr=0.01, betas=(0.0, 0.999))),
                       "made": dict(batch_size=100, optimizer=Optimizer("adagrad", lr=0.01)),
                       "pixelcnnpp": dict(batch_size=128, ema=0.9995, optimizer=Optimizer("adam", lr=1e-3))}
_STANDARD_EVAL = {"fashion-mnist": Evaluation(num_samples=50_000, batch_size=1000, **_LENET),
                  "cifar10": Evaluation(num_samples=50_000, batch_size=1000, extractor="inception-v3-compat"),
                  "binarized-mnist": Evaluation(num_samples=64, batch_size=1000, extractor=None,
                                                fidelity_metrics=())}
_STANDARD_STEPS = {"fashion-mnist": 150_000, "cifar10": 300_000, "binarized-mnist": 150_000}


def _standard(model: str, dataset: str) -> Protocol:
    """The published recipe; on binarized MNIST the 2-valued preset where the family has one (NADE, MADE)."""
    binary = dataset == "binarized-mnist" and "standard-binarized" in FAMILY[model]
    fit = _STANDARD_OPTIMIZER.get(model, dict(batch_size=64, optimizer=Optimizer("adam", lr=1e-3)))
    return _protocol(model, dataset, "standard", 1, "standard-binarized" if binary else "standard",
                     steps=_STANDARD_STEPS[dataset], **_LONG, **fit, evaluation=_STANDARD_EVAL[dataset])


PROTOCOLS: tuple[Protocol, ...] = (
    *(_protocol(m, "fashion-mnist", "smoke", 1, **_SMOKE) for m in MODELS),
    *(_protocol(m, "fashion-mnist", "quick", 1, steps=_QUICK_STEPS[m], evaluation=_quick_evaluation(m), **_QUICK)
      for m in MODELS),
    *(_standard(m, d) for m in MODELS for d in _STANDARD_STEPS
      if not (d in UNLABELLED and getattr(FAMILY[m]["standard"], "num_classes", None))),
)
