"""Discrete normalizing flows: NICE, RealNVP and Glow as configurations of one Model, trained by maximum likelihood on
uniformly or variationally dequantized images, with honest lower bounds on the likelihood of the discrete data.

Provenance
----------
- NICE: Dinh, Krueger & Bengio, "NICE: Non-linear Independent Components Estimation" (ICLR 2015 workshop,
  arXiv:1410.8516), Sec. 3 and 5: additive couplings on an odd/even partition of the pixel vector (4 layers, the
  partition alternating), a diagonal scaling layer, a factorized standard logistic prior; m a ReLU MLP of
  5 x 1000 units on MNIST and 4 x 2000 on CIFAR-10; Adam (lr 1e-3, momentum 0.9, "beta_2 = 0.01", eps 1e-4, as
  recalled: read here as betas (0.9, 0.99) in today's notation); data dequantized with uniform noise. Published
  CIFAR-10 4.48 bits/dim (the number RealNVP's Table 1 quotes). Not reproduced: the ZCA whitening the paper
  applied to CIFAR-10 (genbench models raw pixels), its [-1, 1] rescaling (here y - 1/2, which the scaling layer
  absorbs).
- RealNVP: Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP" (ICLR 2017), Sec. 3-4: affine
  couplings with checkerboard and channel masks, squeeze, multi-scale factoring-out of half the channels after
  each scale (3 checkerboard couplings, squeeze, 3 channel couplings per scale; 4 checkerboard couplings at the
  last), s = scale * tanh(.), residual s/t networks, the logit preprocessing with alpha = 0.05, a standard Gaussian
  prior. Recipe checked in tensorflow/models research/real_nvp (real_nvp_multiscale_dataset.py defaults: batch 64,
  Adam lr 1e-3, l2_coeff 5e-5, clip_gradient 100, data_constraint 0.9); that code has no CIFAR-10 setting. The
  CIFAR-10 model, as the paper's Sec. 4.1 is recalled (not re-read for this file): 8 residual blocks of 64
  feature maps, downscaling once (two scales). Published CIFAR-10 3.49 bits/dim.
  Departure: batch normalization (in the s/t networks and on the couplings' outputs) is replaced by actnorm
  (Kingma & Dhariwal 2018, Sec. 3.1), because batch statistics make log p(x) of one image depend on the others
  in its batch and on the mode (running averages at test time): genbench's density is the same function in
  training and in evaluation. The reference's weight normalization and skip connections are not used.
- Glow: Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions" (NeurIPS 2018): steps of
  actnorm, invertible 1x1 convolution (LU form) and affine coupling, L levels of K steps with a squeeze before
  and a split after each (but the last), a learned prior at every split and at the top; CIFAR-10 K = 32, L = 3,
  512 channels, published 3.35 bits/dim. Recipe checked in openai/glow (README's "CIFAR-10 Quantitative result"
  command: --n_level 3 --depth 32 --flow_permutation 2 --flow_coupling 1 --learntop --lr 0.001, 8 GPUs;
  train.py defaults: adamax, n_batch_train 64 per GPU, epochs_warmup 10 of n_train 50,000 images, width 512;
  optim.py: Adamax's beta2 = 1 - 1 / (iterations per epoch) and Polyak averaging of the weights with that decay).
  Temperature: samples drawn with the prior's standardized noise scaled by T (openai/glow: eps_std; the paper's
  qualitative experiments vary T and, as recalled, show their face samples at T = 0.7).
- Dequantization: Theis, van den Oord & Bethge 2016 (uniform noise gives a lower bound on the discrete
  log-likelihood); Ho, Chen, Srinivas, Duan & Abbeel, "Flow++" (ICML 2019), Sec. 3.1: variational dequantization,
  q(u | x) a conditional flow on (0, 1)^D trained jointly, and the importance-weighted bound with k draws. The bound
  math is genbench.metrics.likelihood.dequantization_bound. Departure: Flow++'s dequantizing flow uses logistic-
  mixture CDF couplings with self-attention; here affine checkerboard couplings whose networks read features of x.

Conventions and decisions
-------------------------
- Images enter and leave as uint8 (B, C, H, W), values x in 0..255. Dequantized values v = x + u, u in [0, 1)^D;
  the flow reads y = v / 256 in [0, 1) and first maps it by the preprocessing ("centre": w = y - 1/2; "logit":
  RealNVP's logit(alpha + (1 - 2 alpha) y)). log p(v) = log p_Y(v / 256) - D log 256, the density on the scale
  where each 8-bit value owns a unit bin, so that log P(x) >= E_q[log p(x + u) - log q(u | x)] is in nats per
  image of the 8-bit data and bits/dim compare directly with the exact-likelihood families. Under the logit the
  density of y lives on (-alpha, 1 + alpha) / (1 - 2 alpha), a little beyond the bins: that mass is lost to
  every bin, which lowers the bound and never inflates it (as in RealNVP).
- Latents: every latent part (each factored-out half and the top) is standardized, so the model's latent
  z = encode(x) is a (B, D) vector with the base distribution (standard Gaussian, or standard logistic for NICE):
  a learned prior N(mu, sigma^2) is written as the bijection eps = (z - mu) / sigma inside the flow. encode reads
  the dequantization-free input at the centre of each bin, u = 1/2; decode(z) inverts the flow and returns the bin
  floor(256 y), clamped to 0..255. Parts are concatenated flat in the order they leave the flow (first split first,
  top last). There is no `reconstruct`: the exact inverse would make PSNR meaningless.
- Sampling: z = T * eps with eps from the base distribution, drawn with the generator, then decode; T is the
  config's `temperature` unless `sample(..., temperature=T)` overrides it.
- Likelihood: `log_likelihood(x, k)` is the bound above with k draws of u from q (all drawn up front from the
  generator, so the evaluation chunking never changes a number): k = 1 the single-sample dequantization bound,
  k > 1 its importance-weighted form (tighter as k grows). Estimators: "uniform-dequantization" /
  "variational-dequantization", and "iw-uniform-dequantization" / "iw-variational-dequantization" for k > 1.
- Training: loss = -mean over the batch of log p(x + u) - log q(u | x) in nats per image (its bits/dim logged
  beside it), u (or the noise of q) drawn from torch's global RNG, which the runner checkpoints: resume is exact.
  Actnorm initializes on the first training batch (flow_layers.ActNorm); its flag and values are checkpointed.

Checked in tests/baselines/test_flows.py: every layer's and every small model's inverse and log-det (against
autograd Jacobians in float64), the density integrating to 1 by quadrature on 2-D toys, the bounds below the
exact discrete log-probability (integrated over the bin) and rising with k toward it, actnorm's initialization
and its state, the LU weight and log-det, the temperature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.baselines import flow_layers as fl
from genbench.metrics.likelihood import dequantization_bound
from genbench.optim import Optimizer

ARCHS = ("nice", "realnvp", "glow")
BINS = 256              # values per sub-pixel: y = (x + u) / 256
EVAL_CHUNK = 512        # flow passes per chunk in the evaluation paths (memory bound; numbers unchanged)
LOG_2PI = math.log(2 * math.pi)
# RealNVP Sec. 4.1: per scale 3 checkerboard couplings, a squeeze, 3 channel couplings; 4 checkerboard at the last
REALNVP_CHECKERBOARD, REALNVP_CHANNEL, REALNVP_LAST = 3, 3, 4

DESCRIPTIONS = {
    "nice": "NICE (Dinh et al. 2014): additive couplings, diagonal scaling, logistic prior; uniform dequantization",
    "realnvp": "RealNVP (Dinh et al. 2017): affine couplings with checkerboard and channel masks, multi-scale "
               "factoring-out (actnorm for batch norm); dequantization bound",
    "glow": "Glow (Kingma & Dhariwal 2018): actnorm, invertible 1x1 convolutions (LU), affine couplings, learned "
            "priors, sampling temperature; dequantization bound",
}


@dataclass(frozen=True)
class Config:
    arch: str = "glow"                  # "nice" | "realnvp" | "glow"
    preprocess: str = "centre"          # "centre": w = y - 1/2 | "logit": w = logit(alpha + (1 - 2 alpha) y)
    logit_alpha: float = 0.05           # RealNVP Sec. 4.1 (data_constraint 0.9 = 1 - 2 alpha)
    prior: str = "gaussian"             # base distribution of every latent: "gaussian" | "logistic" (NICE)
    couplings: int = 4                  # nice: additive coupling layers
    hidden: int = 1000                  # nice: units per hidden layer of m
    depth: int = 5                      # nice: hidden layers of m
    levels: int = 3                     # realnvp: scales; glow: L
    width: int = 512                    # realnvp: feature maps of the s/t resnets; glow: channels of NN()
    blocks: int = 8                     # realnvp: residual blocks per s/t network
    steps: int = 32                     # glow: K, steps of flow per level
    coupling: str = "affine"            # glow: "affine" (sigmoid scale, openai/glow) | "additive"
    learn_top: bool = True              # glow: learned top prior (openai/glow --learntop)
    dequantization: str = "uniform"     # "uniform" | "variational" (Flow++)
    deq_couplings: int = 4              # variational: conditional checkerboard couplings of q(u | x)
    deq_width: int = 32                 # variational: channels of q's networks
    temperature: float = 1.0            # sampling: z = T * eps

    def __post_init__(self):
        def bad(why: str):
            raise GenbenchError(f"flows: invalid config ({why}): {self}")

        if self.arch not in ARCHS:
            bad(f"arch must be one of {ARCHS}")
        if self.preprocess not in ("centre", "logit") or not 0 < self.logit_alpha < 0.5:
            bad("preprocess must be 'centre' or 'logit', with 0 < logit_alpha < 0.5")
        if self.prior not in ("gaussian", "logistic"):
            bad("prior must be 'gaussian' or 'logistic'")
        if self.coupling not in ("affine", "additive") or self.dequantization not in ("uniform", "variational"):
            bad("coupling must be 'affine' or 'additive', dequantization 'uniform' or 'variational'")
        sizes = (self.couplings, self.hidden, self.levels, self.width, self.steps, self.deq_couplings, self.deq_width)
        if any(int(s) != s or s < 1 for s in sizes) or self.depth < 0 or self.blocks < 0:
            bad("sizes must be positive integers (depth and blocks may be 0)")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            bad("temperature must be a finite number >= 0")


_NICE = dict(arch="nice", prior="logistic")
_REALNVP = dict(arch="realnvp", preprocess="logit")
# Parameters on Fashion-MNIST (1 x 28 x 28) unless said; the quick tier's timing is in genbench/protocols/flows.py.
VARIANTS: dict[str, dict[str, Config]] = {
    "nice": {
        "smoke": Config(**_NICE, hidden=16, depth=1),
        "small": Config(**_NICE, hidden=500, depth=3),                                # 3.58M
        # NICE Sec. 5.1: CIFAR-10 m of 4 x 2000 units (72.6M on 3 x 32 x 32); MNIST 5 x 1000 (19.2M)
        "standard": Config(**_NICE, hidden=2000, depth=4),
        "standard-28": Config(**_NICE, hidden=1000, depth=5),
    },
    "realnvp": {
        # smoke: with variational dequantization, so the smoke runs cover q(u | x) end to end
        "smoke": Config(**_REALNVP, levels=2, width=8, blocks=1, dequantization="variational", deq_couplings=2,
                        deq_width=8),
        "small": Config(**_REALNVP, levels=2, width=32, blocks=1),                   # 0.20M
        # CIFAR-10 (Sec. 4.1 as recalled): 8 residual blocks of 64 feature maps, two scales (6.0M on 3 x 32 x 32)
        "standard": Config(**_REALNVP, levels=2, width=64, blocks=8),
        "standard-28": Config(**_REALNVP, levels=3, width=64, blocks=8),             # 9.5M
        # Flow++'s variational dequantization on the CIFAR-10 RealNVP (Ho et al. 2019, Sec. 3.1)
        "standard-variational": Config(**_REALNVP, levels=2, width=64, blocks=8, dequantization="variational"),
    },
    "glow": {
        "smoke": Config(levels=2, steps=2, width=8),
        "small": Config(levels=2, steps=8, width=64),                                # 0.15M
        # openai/glow's CIFAR-10 command: L = 3, K = 32, 512 channels, affine coupling, learned top (44.2M on
        # 3 x 32 x 32); Fashion-MNIST's 28 x 28 allows L = 2 (19.6M)
        "standard": Config(levels=3, steps=32, width=512),
        "standard-28": Config(levels=2, steps=32, width=512),
        "standard-variational": Config(levels=3, steps=32, width=512, dequantization="variational"),
    },
}


def _build_flow(config: Config, image_shape: tuple[int, int, int]) -> tuple[list[nn.Module], list[tuple]]:
    """The flow's layers from y (B, C, H, W) on, and the shapes of the latent parts in the order they leave it."""
    c, h, w = image_shape
    layers: list[nn.Module] = [fl.Logit(config.logit_alpha) if config.preprocess == "logit" else fl.Shift()]
    latents: list[tuple] = []
    if config.arch == "nice":
        d = c * h * w
        if d < 2:
            raise GenbenchError(f"nice needs images of at least 2 sub-pixels, got {image_shape}")
        layers.append(fl.Flatten((c, h, w)))
        for i in range(config.couplings):  # I_1 = components of index parity mod 2, alternating
            p = i % 2
            layers.append(fl.VectorCoupling(p, fl.MLP(len(range(p, d, 2)), config.hidden, config.depth,
                                                      len(range(1 - p, d, 2)))))
        return layers + [fl.DiagonalScaling(d)], [(d,)]

    if config.arch == "realnvp":
        need = 2 ** (config.levels - 1)
        if h % need or w % need:
            raise GenbenchError(f"realnvp with {config.levels} scales needs H and W divisible by {need} (a squeeze "
                                f"per scale but the last), got {h}x{w}")

        def resnet(cin, cout):
            return fl.ResNet(cin, config.width, cout, config.blocks)

        for level in range(config.levels):
            last = level == config.levels - 1
            for i in range(REALNVP_LAST if last else REALNVP_CHECKERBOARD):
                layers += [fl.CheckerboardCoupling(c, i % 2, resnet(c + 1, 2 * c), "affine-tanh"), fl.ActNorm(c)]
            if last:
                break
            layers.append(fl.Squeeze())
            c, h, w = 4 * c, h // 2, w // 2
            for i in range(REALNVP_CHANNEL):
                layers += [fl.ChannelCoupling(c, i % 2, resnet(c // 2, c), "affine-tanh"), fl.ActNorm(c)]
            layers.append(fl.FactorOut(c, learned=False))
            latents.append((c // 2, h, w))
            c //= 2
        return layers, latents + [(c, h, w)]

    need = 2 ** config.levels
    if h % need or w % need:
        raise GenbenchError(f"glow with L = {config.levels} needs H and W divisible by {need} (a squeeze per level), "
                            f"got {h}x{w}")
    kind = "affine-sigmoid" if config.coupling == "affine" else "additive"
    for level in range(config.levels):
        layers.append(fl.Squeeze())
        c, h, w = 4 * c, h // 2, w // 2
        for _ in range(config.steps):
            net = fl.GlowNet(c // 2, config.width, fl.coupling_outputs(kind, c // 2))
            layers += [fl.ActNorm(c), fl.InvConv1x1(c), fl.ChannelCoupling(c, 0, net, kind)]
        if level < config.levels - 1:
            layers.append(fl.FactorOut(c, learned=True))
            latents.append((c // 2, h, w))
            c //= 2
    if config.learn_top:
        layers.append(fl.LearnedPrior(c))
    return layers, latents + [(c, h, w)]


class VariationalDequantizer(nn.Module):
    """q(u | x) of Flow++ (Ho et al. 2019, Sec. 3.1): u = sigmoid(a), a = g(eps; x) with eps ~ N(0, I) and g a flow of
    affine checkerboard couplings (each followed by actnorm) whose networks read features of x,

        log q(u | x) = log N(eps; 0, I) - log|det dg/deps| - sum log sigmoid'(a).
    """

    def __init__(self, image_shape: tuple[int, int, int], couplings: int, width: int):
        super().__init__()
        c = image_shape[0]
        self.features = nn.Sequential(fl.ConvActNorm(c, width, 3), nn.ReLU(), fl.ConvActNorm(width, width, 3),
                                      nn.ReLU())
        layers: list[nn.Module] = []
        for i in range(couplings):
            layers += [fl.CheckerboardCoupling(c, i % 2, fl.ResNet(c + 1 + width, width, 2 * c, 1), "affine-tanh"),
                       fl.ActNorm(c)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 x (n, C, H, W) and standard-normal eps of its shape -> u in (0, 1), log q(u | x) (n,)."""
        cond = self.features(x.to(eps.dtype) / BINS - 0.5)
        a, log_det = eps, eps.new_zeros(eps.shape[0])
        for layer in self.layers:
            a, ld = layer(a, cond)
            log_det = log_det + ld
        log_sigmoid_grad = F.logsigmoid(a) + F.logsigmoid(-a)  # log sigmoid'(a)
        log_q = _gaussian_log_prob(eps) - log_det - log_sigmoid_grad.flatten(1).sum(1)
        return torch.sigmoid(a), log_q


def _gaussian_log_prob(e: torch.Tensor) -> torch.Tensor:
    return (-0.5 * (e.pow(2) + LOG_2PI)).flatten(1).sum(1)


def _logistic_log_prob(e: torch.Tensor) -> torch.Tensor:
    return -(F.softplus(e) + F.softplus(-e)).flatten(1).sum(1)


class Model(nn.Module):
    family = "flow"
    likelihood = "bound"
    importance_sampling = True  # log_likelihood takes k > 1 (importance-weighted dequantization)

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        self.config, self.image_shape = config, tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise GenbenchError(f"flows need an image shape (C, H, W), got {image_shape}")
        self.num_dims = math.prod(self.image_shape)
        layers, self.latent_shapes = _build_flow(config, self.image_shape)
        self.flow = nn.ModuleList(layers)
        self.dequantizer = (VariationalDequantizer(self.image_shape, config.deq_couplings, config.deq_width)
                            if config.dequantization == "variational" else None)
        self._optim_settings: Optimizer | None = None

    # --- what the evaluation records
    @property
    def likelihood_estimator(self) -> str:
        return f"{self.config.dequantization}-dequantization"

    @property
    def importance_estimator(self) -> str:
        return f"iw-{self.config.dequantization}-dequantization"

    @property
    def likelihood_details(self) -> dict:
        q = ("q(u | x) = 1 on [0, 1)^D" if self.dequantizer is None else
             f"q(u | x) a conditional flow of {self.config.deq_couplings} affine couplings, sigmoid to (0, 1)^D")
        # one draw of u per image; named "draws", not "k", which the boards read as the key of an importance-weighted
        # column (genbench.report.entries.COLUMN_FIELDS): bpd shares its column with every other family's
        return {"dequantization": f"{self.config.dequantization}: {q}", "draws": 1,
                "bound": "log P(x) >= E_q[log p(x + u) - log q(u | x)], density of v = x + u on the 8-bit scale"}

    @property
    def sampler_description(self) -> dict:
        return {"sampler": "inverse flow on prior draws", "temperature": self.config.temperature}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise GenbenchError(f"flows expect uint8 images of shape (B, {', '.join(map(str, self.image_shape))}), "
                                f"got {x.dtype} {tuple(x.shape)}")
        return x.to(self.device)

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    # --- the flow
    def flow_forward(self, y: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """y = v / 256 (B, C, H, W) -> the standardized latent parts and log|det d(latents)/dy| (B,)."""
        parts, log_det, h = [], y.new_zeros(y.shape[0]), y
        for layer in self.flow:
            if isinstance(layer, fl.FactorOut):
                h, out, ld = layer(h)
                parts.append(out)
            else:
                h, ld = layer(h)
            log_det = log_det + ld
        return parts + [h], log_det

    def flow_inverse(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """The latent parts -> y (B, C, H, W)."""
        h, emitted = parts[-1], list(parts[:-1])
        for layer in reversed(self.flow):
            h = layer.inverse(h, emitted.pop()) if isinstance(layer, fl.FactorOut) else layer.inverse(h)
        return h

    def _base_log_prob(self, parts: list[torch.Tensor]) -> torch.Tensor:
        log_prob = _logistic_log_prob if self.config.prior == "logistic" else _gaussian_log_prob
        return sum(log_prob(p) for p in parts)

    def log_density(self, v: torch.Tensor) -> torch.Tensor:
        """log p(v) in nats (B,) of dequantized images v = x + u (B, C, H, W), on the 8-bit scale (unit bins):
        log p_Y(v / 256) - D log 256."""
        parts, log_det = self.flow_forward(v / BINS)
        return self._base_log_prob(parts) + log_det - self.num_dims * math.log(BINS)

    def _split_latent(self, z: torch.Tensor) -> list[torch.Tensor]:
        sizes = [math.prod(s) for s in self.latent_shapes]
        return [p.reshape(z.shape[0], *s) for p, s in zip(z.split(sizes, dim=1), self.latent_shapes)]

    # --- dequantization
    def _noise(self, shape: tuple, generator: torch.Generator | None) -> torch.Tensor:
        """The noise of q: uniform u itself, or the standard-normal eps of the variational flow."""
        draw = torch.rand if self.dequantizer is None else torch.randn
        return draw(shape, generator=generator, device=self.device, dtype=self._dtype)

    def _bound_terms(self, x: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """log p(x + u) and log q(u | x) (None for uniform q), (n,) each, for uint8 x and q's noise of its shape."""
        if self.dequantizer is None:
            return self.log_density(x.to(noise.dtype) + noise), None
        u, log_q = self.dequantizer(x, noise)
        return self.log_density(x.to(noise.dtype) + u), log_q

    # --- training
    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        self._optim_settings = settings  # train_step applies its grad clip
        return {"model": settings.build(self.parameters())}

    def _terms(self, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        log_p, log_q = self._bound_terms(x, self._noise(tuple(x.shape), generator))
        bound = log_p if log_q is None else log_p - log_q
        loss = -bound.mean()
        terms = {"loss": loss, "bpd": loss / (self.num_dims * math.log(2.0))}
        if log_q is not None:
            terms["log_q"] = log_q.mean()
        return terms

    def train_step(self, x: torch.Tensor, optimizers: dict) -> dict[str, float]:
        """One step on the negative dequantization bound in nats per image; u (or q's noise) from torch's
        global RNG. The first step initializes every actnorm on its batch."""
        x = self._check(x)
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        terms = self._terms(x, generator=None)
        terms["loss"].backward()
        out = {k: float(v.detach()) for k, v in terms.items()}
        if self._optim_settings is not None and self._optim_settings.grad_clip is not None:
            out["grad_norm"] = self._optim_settings.clip(self.parameters())
        opt.step()
        return out

    @torch.no_grad()
    def eval_loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, float]:
        """The training terms without an update; without a generator a private one seeded 0, so evaluating never
        moves the global RNG."""
        x = self._check(x)
        if generator is None:
            generator = torch.Generator(device=self.device).manual_seed(0)
        return {k: float(v) for k, v in self._terms(x, generator).items()}

    # --- evaluation
    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, *, k: int = 1, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
        """Lower bound on log P(x) in nats per image, (B,) float64: log (1/k) sum_j p(x + u_j) / q(u_j | x) with
        u_1..u_k ~ q(. | x), all drawn up front from `generator` (module docstring)."""
        x = self._check(x)
        if int(k) != k or k < 1:
            raise GenbenchError(f"log_likelihood needs an integer k >= 1, got {k!r}")
        k, b = int(k), x.shape[0]
        noise = self._noise((k, *x.shape), generator)           # (k, B, C, H, W)
        out = []
        step = max(1, EVAL_CHUNK // k)
        for i in range(0, b, step):
            xc, nc = x[i:i + step], noise[:, i:i + step]
            n = xc.shape[0]
            log_p, log_q = self._bound_terms(xc.repeat(k, 1, 1, 1), nc.reshape(k * n, *x.shape[1:]))
            out.append(dequantization_bound(log_p.view(k, n), None if log_q is None else log_q.view(k, n)))
        return torch.cat(out) if out else torch.empty(0, dtype=torch.float64, device=x.device)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The standardized latent (B, D) of the bin centres, v = x + 1/2."""
        x = self._check(x)
        parts, _ = self.flow_forward((x.to(self._dtype) + 0.5) / BINS)
        return torch.cat([p.flatten(1) for p in parts], dim=1)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The bins of the inverse flow's y: z (B, D) -> uint8 (B, C, H, W), floor(256 y) clamped to 0..255."""
        if z.ndim != 2 or z.shape[1] != self.num_dims:
            raise GenbenchError(f"flows decode latents of shape (B, {self.num_dims}), got {tuple(z.shape)}")
        z = z.to(self.device, self._dtype)
        out = [self.flow_inverse(self._split_latent(zc)) for zc in z.split(EVAL_CHUNK)]
        y = torch.cat(out) if out else z.new_empty(0, *self.image_shape)
        return torch.floor(y * BINS).clamp(0, BINS - 1).to(torch.uint8)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, temperature: float | None = None
               ) -> torch.Tensor:
        """n images, uint8 (n, C, H, W): decode(T * eps), eps from the base distribution drawn with `generator`,
        T = `temperature` or the config's."""
        t = self.config.temperature if temperature is None else float(temperature)
        if not (t >= 0 and math.isfinite(t)):
            raise GenbenchError(f"the sampling temperature must be a finite number >= 0, got {temperature!r}")
        if self.config.prior == "logistic":
            u = torch.rand((n, self.num_dims), generator=generator, device=self.device, dtype=self._dtype)
            u = u.clamp_min(torch.finfo(u.dtype).tiny)
            eps = torch.log(u) - torch.log1p(-u)  # standard logistic by its inverse CDF
        else:
            eps = torch.randn((n, self.num_dims), generator=generator, device=self.device, dtype=self._dtype)
        return self.decode(t * eps)
