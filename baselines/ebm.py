"""Energy-based models: IGEBM, JEM and the short-run EBM as configurations of one Model, trained by contrastive
divergence with Langevin negatives, sampled from noise with the same dynamics.

Provenance
----------
- IGEBM: Du & Mordatch, "Implicit Generation and Generalization in Energy-Based Models" (NeurIPS 2019). Recipe
  checked in openai/ebm_code_release (README's unconditional CIFAR-10 command: --num_steps 60 --batch_size 128
  --step_lr 10.0 --proj_norm 0.01 --replay_batch --large_model; train.py defaults: Adam lr 3e-4 with betas (0, 0.999),
  spectral norm on, noise 0.005; data.py: pixels (v + u) / 256 with u ~ U[0, 1), chains from U[0, 1]). Each Langevin
  step adds N(0, 0.005^2) noise, then steps -10 clip(grad E, +-0.01) at the noised point, then clamps to [0, 1]
  (`noise_first`). The loss is E(x+) - E(x-) + (E(x+)^2 + E(x-)^2) (the L2 coefficient 1 is hard-coded there).
  ResNet32Large (models.py): conv3 to 128, nine residual blocks of 128, 256 and 512 channels, average-pooled at the
  first block of each stage (32 -> 16 -> 8 -> 4), leaky ReLU 0.2, ReLU, a sum over space, linear to the energy;
  spectral norm on every convolution, not on the last linear layer. Published CIFAR-10 FID 40.58 (unconditional;
  IS 6.02 as the issue quotes it, not re-read). Departures: the reference's replay buffer is a FIFO of 50,000 chains
  stored as 8-bit images; here 10,000 chains kept in float (the number the paper's text gives, as recalled); its
  dropout (0.5, also active while sampling) and the custom Adam's per-element gradient clip are not reproduced.
- JEM: Grathwohl et al., "Your Classifier is Secretly an Energy Based Model and You Should Treat it Like One" (ICLR
  2020). Recipe checked in wgrathwohl/JEM (README command: --lr .0001 --optimizer adam --p_x_weight 1.0
  --p_y_given_x_weight 1.0 --sigma .03 --width 10 --depth 28 --warmup_iters 1000; train_wrn_ebm.py defaults: batch
  64, 200 epochs with the rate times 0.3 at epochs 160 and 180, SGLD 20 steps of x + 1 grad f(x) + 0.01 eps, buffer
  10,000 started U[-1, 1], re-initialization 0.05, data on [-1, 1] plus N(0, 0.03^2) noise, 5,000 training images
  held out; wideresnet.py: pre-activation WRN-28-10 without normalization, leaky ReLU 0.2, a global average, linear
  to 10 logits). E(x) = -logsumexp f(x), log p(y | x) its softmax; no L2 term. Published CIFAR-10 accuracy 92.9%,
  FID 38.4 (IS 8.76 as the issue quotes it, not re-read). Departure: chains are clamped to [-1, 1] (the reference
  does not clamp).
- Short-run EBM: Nijkamp, Hill, Zhu & Wu, "Learning Non-Convergent Non-Persistent Short-Run MCMC Toward Energy-Based
  Model" (NeurIPS 2019). Recipe checked in enijkamp/short_run (train_cifar10_minimal.py: the ConvNet with nf 64
  (the paper: 128 for CIFAR-10), leaky ReLU 0.2, K = 100 steps of x + 1 grad f(x) + 0.01 eps from U[-1, 1], data on
  [-1, 1] plus N(0, 0.03^2) noise, Adam 1e-4, batch 64, 100,000 iterations). No buffer, no regularization. Published
  CIFAR-10 FID 44.5 (from the paper's table as aggregated, not re-read). Departure: chains are clamped to [-1, 1].
- Langevin dynamics with the step and the noise set apart: Welling & Teh 2011 (SGLD) as these recipes adapt it;
  genbench.mcmc.sgld.

Conventions and decisions
-------------------------
- The density: p(x) = exp(-E(x)) / Z on the box [lo, hi]^D (unit: [0, 1], IGEBM; symmetric: [-1, 1], JEM and the
  short-run EBM), pixels v -> lo + (hi - lo) v / 255. Every chain starts uniform on the box and is clamped to it
  after each update (IGEBM clamps; clamping in all three keeps the density's support the box, which is what the
  AIS evaluator integrates over). Samples leave by rounding (x - lo) / (hi - lo) * 255.
- Langevin dynamics as these papers run it (genbench.mcmc.sgld): x <- clamp(x - lambda g + sigma eps), g = grad E(x)
  (clipped elementwise to [-c, c] where the recipe clips), with the step lambda and the noise sigma set apart. That
  is not the unadjusted Langevin algorithm at temperature 1 (which needs sigma^2 = 2 lambda): every recipe's sigma
  is far smaller, so chains sample exp(-E / T) with T = sigma^2 / (2 lambda) << 1 in the small-step limit, and the
  model's density exp(-E) is not the law its samples come from. genbench reports both: samples from the recipe's
  dynamics, a likelihood of exp(-E) by AIS. The sampler's constants are in the result.
- Chains run with the energy network in eval mode (spectral norm's power iteration does not advance inside a chain,
  and a chain never changes a buffer of the state dict); the training forward, data and negatives in one batch,
  runs in train mode, one power iteration per step, as a GAN discriminator's step does.
- Training negatives: IGEBM and JEM draw a batch of distinct slots of a replay buffer of `buffer_size` chains,
  re-initialize each chain from uniform noise with probability `reinit`, and write the chains back to the slots
  they came from (JEM's index-replacement buffer, whose slots are drawn with replacement: distinct slots make the
  write-back deterministic, where two chains written to one slot would race; IGEBM's FIFO of the same size differs
  in which old chains survive). The buffer
  lives on the model outside the state dict: `train_state()` gives it to the runner's checkpoint (so a resumed run
  is exact) and model.pt never holds it. `sample()` reads only the weights: `sample_steps` Langevin steps from
  uniform noise, all noise from the generator, so samples are a function of the weights and the generator alone.
  The short-run EBM has no buffer: its training chains start from noise, as its samples do.
- All training randomness (buffer slots, re-initialization, chain noise, data noise) comes from torch's global RNG,
  which the runner checkpoints.
- JEM: E(x) = -logsumexp_y f(x)[y], and log p(y | x) is the softmax of the same logits (Grathwohl et al. Eq. 5-6);
  its step adds the cross-entropy of the labelled batch to the contrastive term. `JEM.classify` exposes the logits,
  so the evaluator scores test-split accuracy; the other variants do not classify.

Checked in tests/baselines/test_ebm.py: the SGLD update against its closed form on a linear energy, its stationary
variance on a quadratic one (both orders of noise and gradient), and its reduction to the unadjusted Langevin
algorithm at sigma^2 = 2 lambda; the loss against energies computed apart and its gradient in the output bias in
closed form; spectral norm on every layer but the output one; the buffer's re-initialization rate and its write-back;
JEM's energy as minus the logsumexp of its logits and its cross-entropy; determinism. tests/test_ebm_run.py: exact
resume after SIGKILL with the buffer in the checkpoint, and JEM's accuracy from the saved weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError, mcmc
from genbench.baselines.gan_nets import apply_spectral_norm
from genbench.optim import Optimizer

ARCHS = ("convnet", "resnet", "wrn")
BOXES = {"unit": (0.0, 1.0), "symmetric": (-1.0, 1.0)}
CHAIN_CHUNK = 500  # chains per batch in sample() (memory bound; numbers unchanged)


@dataclass(frozen=True)
class Config:
    arch: str = "convnet"           # energy network: "convnet" (Nijkamp et al.), "resnet" (IGEBM), "wrn" (JEM)
    width: int = 64                 # convnet: first layer's channels (doubling per down-sampling); resnet: the
    depth: int = 28                 # first stage's (then 2w, 4w); wrn: the widen factor k. wrn: depth 6n + 4
    activation: str = "leaky_relu"  # "leaky_relu" (0.2), "swish", "relu"
    spectral_norm: bool = False     # on every layer of the energy network but the output one
    classes: int = 0                # JEM: the classifier's logits define E(x) = -logsumexp f(x); 0: a scalar energy
    box: str = "symmetric"          # "unit" [0, 1] or "symmetric" [-1, 1]
    dequantize: bool = False        # IGEBM: training pixels (v + u) / 256, u ~ U[0, 1), instead of v / 255
    data_noise: float = 0.0         # std of Gaussian noise added to the training images (on the box's scale)
    sgld_steps: int = 60            # K: Langevin steps per training step
    sgld_step: float = 10.0         # lambda: the gradient step
    sgld_noise: float = 0.005       # sigma: the noise std
    grad_clip: float | None = None  # clip each coordinate of grad E to [-c, c] inside a chain
    buffer_size: int = 10_000       # replay buffer of chains; 0: chains start from noise (short-run)
    reinit: float = 0.05            # probability that a buffer chain restarts from uniform noise
    l2: float = 0.0                 # alpha of alpha (E(x+)^2 + E(x-)^2)
    noise_first: bool = False       # IGEBM: add the noise, then step along the gradient at the noised point
    sample_steps: int = 60          # Langevin steps of sample(), from uniform noise

    def __post_init__(self):
        def bad(why: str):
            raise GenbenchError(f"ebm: invalid config ({why}): {self}")

        if self.arch not in ARCHS:
            bad(f"arch must be one of {ARCHS}")
        if self.box not in BOXES:
            bad(f"box must be one of {tuple(BOXES)}")
        if self.activation not in ("leaky_relu", "swish", "relu"):
            bad("activation must be leaky_relu, swish or relu")
        if min(self.width, self.sgld_steps, self.sample_steps) < 1 or self.classes < 0 or self.buffer_size < 0:
            bad("positive width and steps, non-negative classes and buffer size")
        if not (self.sgld_step > 0 and self.sgld_noise >= 0 and self.data_noise >= 0 and self.l2 >= 0):
            bad("a positive step, non-negative noise and l2")
        if not 0.0 <= self.reinit <= 1.0:
            bad("reinit is a probability")
        if self.arch == "wrn" and (self.depth - 4) % 6:
            bad("a wide resnet has depth 6n + 4")


# ---- energy networks ----------------------------------------------------------------------------------------
def _act(name: str) -> nn.Module:
    return {"leaky_relu": lambda: nn.LeakyReLU(0.2), "swish": nn.SiLU, "relu": nn.ReLU}[name]()


class ConvNet(nn.Module):
    """Nijkamp et al.'s ConvNet energy: conv3 (C -> w), then 4x4 stride-2 convolutions doubling the channels down to
    a side of 3-4 (28 -> 14 -> 7 -> 3, 32 -> 16 -> 8 -> 4), each followed by the activation, and a convolution
    over the whole remaining map to the outputs: x (B, C, H, W) -> (B, outputs)."""

    def __init__(self, channels: int, side: int, width: int, outputs: int, activation: str):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), _act(activation)]
        ch = width
        while side > 4:                     # (B, ch, s, s) -> (B, 2 ch, s / 2, s / 2)
            layers += [nn.Conv2d(ch, 2 * ch, 4, 2, 1), _act(activation)]
            ch, side = 2 * ch, (side + 2 - 4) // 2 + 1
        layers.append(nn.Conv2d(ch, outputs, side, 1, 0))
        self.net = nn.Sequential(*layers, nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _ResBlock(nn.Module):
    """Pre-activation residual block without normalization: act-conv3-act-conv3, a 1x1 shortcut where the width or
    the resolution changes; halving the side by average pooling after the block (IGEBM) or by the first conv's
    stride (WRN)."""

    def __init__(self, c_in: int, c_out: int, *, down: str | None, activation: str):
        super().__init__()
        stride = 2 if down == "stride" else 1
        self.a1, self.a2 = _act(activation), _act(activation)
        self.c1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.c2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.pool = down == "pool"
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride) if (c_in != c_out or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(self.a2(self.c1(self.a1(x))))
        h = h + (x if self.shortcut is None else self.shortcut(x))
        return F.avg_pool2d(h, 2) if self.pool else h


class ResNet(nn.Module):
    """A residual energy network without normalization: x (B, C, H, W) -> (B, outputs). conv3 to `stem`, stages of
    `blocks` blocks at `widths`, the side halved at the first block of a stage, the head's activation, a sum or mean
    over space, linear.
    - "resnet" (IGEBM's ResNet32Large): stem w, stages w, 2w, 4w of 3 blocks, each stage's first block average-
      pooled (32 -> 16 -> 8 -> 4), leaky ReLU, then ReLU and a sum over space.
    - "wrn" (JEM's WRN-28-10, Zagoruyko & Komodakis 2016 without batch norm): stem 16, stages 16k, 32k, 64k of
      (depth - 4) / 6 blocks, strides 1, 2, 2 in the first convs, leaky ReLU, then leaky ReLU and a mean."""

    def __init__(self, channels: int, stem: int, widths: tuple[int, ...], blocks: int, outputs: int, activation: str,
                 *, down: str, down_first: bool, head: str, pool: str):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, stem, 3, 1, 1)]
        ch = stem
        for i, w in enumerate(widths):
            for b in range(blocks):
                halve = b == 0 and (i > 0 or down_first)
                layers.append(_ResBlock(ch, w, down=down if halve else None, activation=activation))
                ch = w
        self.blocks = nn.Sequential(*layers)
        self.head, self.pool = _act(head), pool
        self.out = nn.Linear(ch, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(self.blocks(x))                                       # (B, ch, s, s)
        return self.out(h.sum(dim=(2, 3)) if self.pool == "sum" else h.mean(dim=(2, 3)))


def energy_network(config: Config, channels: int, side: int) -> nn.Module:
    """The configured network; spectral norm (where configured) on every layer but the output one (IGEBM leaves
    its last linear layer unnormalized)."""
    outputs, act = config.classes or 1, config.activation
    if config.arch == "convnet":
        net = ConvNet(channels, side, config.width, outputs, act)
        body = net.net[:-2]                                                 # all but the output conv
    elif config.arch == "resnet":
        w = config.width
        net = ResNet(channels, w, (w, 2 * w, 4 * w), 3, outputs, act, down="pool", down_first=True, head="relu",
                     pool="sum")
        body = net.blocks
    else:
        k, n = config.width, (config.depth - 4) // 6
        net = ResNet(channels, 16, (16 * k, 32 * k, 64 * k), n, outputs, act, down="stride", down_first=False,
                     head=act, pool="mean")
        body = net.blocks
    if config.spectral_norm:
        apply_spectral_norm(body)
    return net


# ---- presets ------------------------------------------------------------------------------------------------
# The published settings of each variant (see the provenance), then the sizes per preset. "small" is the quick tier
# (Fashion-MNIST 28x28, 2-core CPU): the ConvNet energy for all three, each variant's own method (buffer, L2 and
# spectral norm for IGEBM, the classifier and its cross-entropy for JEM, chains from noise for the short-run EBM),
# fewer Langevin steps where the published K would leave too few training steps (said per variant below).
_IGEBM = Config(arch="resnet", width=128, activation="leaky_relu", spectral_norm=True, box="unit", dequantize=True,
                sgld_steps=60, sgld_step=10.0, sgld_noise=0.005, grad_clip=0.01, noise_first=True,
                buffer_size=10_000, reinit=0.05, l2=1.0, sample_steps=60)
_JEM = Config(arch="wrn", width=10, depth=28, activation="leaky_relu", classes=10, box="symmetric", data_noise=0.03,
              sgld_steps=20, sgld_step=1.0, sgld_noise=0.01, buffer_size=10_000, reinit=0.05, sample_steps=20)
_SHORT_RUN = Config(arch="convnet", width=128, activation="leaky_relu", box="symmetric", data_noise=0.03,
                    sgld_steps=100, sgld_step=1.0, sgld_noise=0.01, buffer_size=0, sample_steps=100)
_SMOKE = dict(arch="convnet", width=8, sgld_steps=4, sample_steps=4)
# small: ConvNet width 16 (16-32-64-128 channels), 60 Langevin steps per sample from noise (IGEBM's K; JEM's 20
# leave its samples far from the data after training with persistent chains). One training step at batch 64 on a
# 2-core CPU: igebm (K 20 of the published 60) 0.22 s, jem (K 20 as published) 0.35 s, short-run (K 40 of the
# published 100, also its sampler) 0.39 s; a sample's 60 steps 10 ms. Width 32 would cost 2.7x per step.
_SMALL = dict(arch="convnet", width=16)
VARIANTS: dict[str, dict[str, Config]] = {
    "igebm": {"smoke": dataclasses.replace(_IGEBM, **_SMOKE, buffer_size=64),
              "small": dataclasses.replace(_IGEBM, **_SMALL, sgld_steps=20, sample_steps=60),
              "standard": _IGEBM},
    "jem": {"smoke": dataclasses.replace(_JEM, **_SMOKE, buffer_size=64),
            "small": dataclasses.replace(_JEM, **_SMALL, sample_steps=60),
            "standard": _JEM},
    "short-run-ebm": {"smoke": dataclasses.replace(_SHORT_RUN, **_SMOKE),
                      "small": dataclasses.replace(_SHORT_RUN, **_SMALL, sgld_steps=40, sample_steps=40),
                      # the code's width (train_cifar10_minimal.py: nf 64) beside the paper's 128
                      "standard": _SHORT_RUN, "standard-64": dataclasses.replace(_SHORT_RUN, width=64)},
}
PRESETS = VARIANTS["igebm"]
DESCRIPTIONS = {
    "igebm": "IGEBM (Du & Mordatch 2019): spectrally normalized energy, Langevin negatives from a replay buffer, "
             "L2 energy regularization",
    "jem": "JEM (Grathwohl et al. 2020): a classifier's logits as an energy over x, trained on log p(y|x) + log p(x)",
    "short-run-ebm": "short-run EBM (Nijkamp et al. 2019): K-step Langevin from noise in training and sampling, "
                     "no buffer",
}


class Model(nn.Module):
    family = "energy"

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        c, h, w = image_shape
        if h != w:
            raise GenbenchError(f"ebm needs square images, got {h}x{w}")
        self.config, self.image_shape = config, tuple(image_shape)
        self.net = energy_network(config, c, h)
        self.box = BOXES[config.box]
        self._buffer: torch.Tensor | None = None  # (buffer_size, C, H, W) on the box; training state, not weights
        self._optim_settings: Optimizer | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- the density
    def _to_box(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != self.image_shape:
            raise GenbenchError(f"ebm expects uint8 images of shape (B, {', '.join(map(str, self.image_shape))}), "
                                f"got {x.dtype} {tuple(x.shape)}")
        lo, hi = self.box
        return lo + (hi - lo) * x.float() / 255.0

    def _to_uint8(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.box
        return (((x - lo) / (hi - lo)).clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) (B,) of points x on the box; JEM: -logsumexp of the logits."""
        out = self.net(x)
        return -torch.logsumexp(out, 1) if self.config.classes else out.squeeze(1)

    def _uniform(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        lo, hi = self.box
        return lo + (hi - lo) * torch.rand((n, *self.image_shape), generator=generator, device=self.device)

    def _chain(self, x: torch.Tensor, steps: int, generator: torch.Generator | None) -> torch.Tensor:
        """`steps` of the recipe's Langevin dynamics from x, the network in eval mode (restored after)."""
        c, mode = self.config, self.training
        self.eval()
        try:
            return mcmc.sgld(self.energy, x, steps, c.sgld_step, c.sgld_noise, generator=generator,
                             grad_clip=c.grad_clip, bounds=self.box, noise_first=c.noise_first)
        finally:
            self.train(mode)

    # --- training
    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        self._optim_settings = settings  # train_step applies its grad clip
        return {"model": settings.build(self.parameters())}

    def _negatives(self, n: int) -> torch.Tensor:
        """n training negatives: K Langevin steps from buffer chains (each re-initialized with probability
        `reinit`), written back to their slots; without a buffer, from uniform noise."""
        c = self.config
        if not c.buffer_size:
            return self._chain(self._uniform(n, None), c.sgld_steps, None)
        if n > c.buffer_size:
            raise GenbenchError(f"ebm: a batch of {n} needs a replay buffer of at least {n} chains, not "
                                f"{c.buffer_size}")
        if self._buffer is None:
            self._buffer = self._uniform(c.buffer_size, None)
        slots = torch.randperm(c.buffer_size, device=self.device)[:n]  # distinct: each slot written once
        restart = torch.rand(n, device=self.device) < c.reinit
        x0 = torch.where(restart.view(-1, 1, 1, 1), self._uniform(n, None), self._buffer[slots])
        x = self._chain(x0, c.sgld_steps, None)
        self._buffer[slots] = x
        return x

    def _loss(self, x_pos: torch.Tensor, x_neg: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """E(x+) - E(x-) (the maximum-likelihood gradient's estimate, up to sign), alpha (E(x+)^2 + E(x-)^2), and for
        JEM the cross-entropy of log p(y | x+); data and negatives in one forward pass."""
        c = self.config
        out = self.net(torch.cat([x_pos, x_neg]))
        energy = -torch.logsumexp(out, 1) if c.classes else out.squeeze(1)
        e_pos, e_neg = energy[: len(x_pos)], energy[len(x_pos):]
        terms = {"energy_data": e_pos.mean(), "energy_model": e_neg.mean()}
        loss = terms["cd"] = e_pos.mean() - e_neg.mean()
        if c.l2:
            terms["l2"] = c.l2 * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
            loss = loss + terms["l2"]
        if c.classes:
            if labels is None:
                raise GenbenchError("jem trains on log p(y | x) too: its protocol must give the class labels")
            logits = out[: len(x_pos)]
            terms["ce"] = F.cross_entropy(logits, labels)
            terms["accuracy"] = (logits.argmax(1) == labels).float().mean()
            loss = loss + terms["ce"]
        terms["loss"] = loss
        return terms

    def _positives(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Training images on the box: v / 255, or dequantized (v + u) / 256; plus the recipe's Gaussian noise."""
        c = self.config
        if c.dequantize:
            lo, hi = self.box
            self._to_box(x)  # checks dtype and shape
            u = torch.rand(x.shape, generator=generator, device=x.device)
            x = lo + (hi - lo) * (x.float() + u) / 256.0
        else:
            x = self._to_box(x)
        if c.data_noise:
            x = x + c.data_noise * torch.randn(x.shape, generator=generator, device=x.device)
        return x

    def train_step(self, x: torch.Tensor, optimizers: dict, labels: torch.Tensor | None = None) -> dict[str, float]:
        x_pos = self._positives(x, None)
        x_neg = self._negatives(len(x)).detach()
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        terms = self._loss(x_pos, x_neg, labels)
        terms["loss"].backward()
        out = {k: float(v.detach()) for k, v in terms.items()}
        if self._optim_settings is not None and self._optim_settings.grad_clip is not None:
            out["grad_norm"] = self._optim_settings.clip(self.parameters())
        opt.step()
        return out

    def eval_loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None,
                  labels: torch.Tensor | None = None) -> dict[str, float]:
        """The training terms on held-out images without an update, the negatives a fresh chain of `sgld_steps`
        from uniform noise for the first 100 images (no buffer is read or written); without a generator a private
        one seeded 0, so evaluating never moves the global RNG."""
        g = generator or torch.Generator(self.device).manual_seed(0)
        x = x[:100]
        labels = None if labels is None else labels[:100]
        x_neg = self._chain(self._uniform(len(x), g), self.config.sgld_steps, g)
        with torch.no_grad():
            return {k: float(v) for k, v in self._loss(self._positives(x, g), x_neg, labels).items()}

    def train_state(self) -> dict[str, torch.Tensor]:
        """What training needs beside the weights and the optimizer (the replay buffer), for the checkpoint."""
        return {} if self._buffer is None else {"buffer": self._buffer}

    def load_train_state(self, state: dict[str, torch.Tensor]) -> None:
        self._buffer = state.get("buffer")

    # --- sampling
    @property
    def sampler_description(self) -> dict:
        return self.sampler_description_with(self.config.sample_steps)

    def sampler_description_with(self, steps: int) -> dict:
        c = self.config
        lo, hi = self.box
        return {"sampler": "Langevin dynamics x <- clamp(x - lambda clip(grad E) + sigma eps) from uniform noise",
                "steps": steps, "lambda": c.sgld_step, "sigma": c.sgld_noise, "grad_clip": c.grad_clip,
                "box": [lo, hi], "temperature": c.sgld_noise ** 2 / (2 * c.sgld_step)}

    def sample(self, n: int, *, generator: torch.Generator | None = None, steps: int | None = None) -> torch.Tensor:
        """n images from `steps` (default `sample_steps`) Langevin steps from uniform noise, all noise from the
        generator; the replay buffer is never read."""
        steps = self.config.sample_steps if steps is None else steps
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        parts = []
        for start in range(0, n, CHAIN_CHUNK):
            size = min(CHAIN_CHUNK, n - start)
            parts.append(self._to_uint8(self._chain(self._uniform(size, generator), steps, generator)))
        return torch.cat(parts)


class JEM(Model):
    """JEM declares `classify`: the logits of p(y | x) on images (test-split accuracy in evaluation)."""

    @torch.no_grad()
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._to_box(x))


CLASSES = {"jem": JEM}  # variants with capabilities of their own; the others are Model
