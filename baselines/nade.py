"""NADE: the neural autoregressive distribution estimator with tied input weights, exact likelihood over the
sub-pixels of an image in raster order, for binary (Bernoulli) or 8-bit (categorical or discretized logistic
mixture) images.

Provenance
----------
- Larochelle & Murray, "The Neural Autoregressive Distribution Estimator" (AISTATS 2011), Sec. 3: p(x) =
  prod_d p(x_d | x_<d) with one hidden layer whose input weights are shared by every conditional,
      a_1 = c,   a_{d+1} = a_d + W[:, d] x_d,   h_d = sigmoid(a_d),   p(x_d = 1 | x_<d) = sigmoid(V_d . h_d + b_d),
  so all D conditionals cost O(H D) together instead of O(H D^2). Published recipe on
  binarized MNIST: H = 500 sigmoid hidden units, trained by stochastic gradient descent on the negative
  log-likelihood with early stopping on a validation set; test NLL 88.86 nats (the MNIST entry of the paper's
  results table as the literature quotes it, e.g. the NADE row of Germain et al. 2015, Table 6; the paper's own
  table could not be re-read for this file). The fuller
  account, Uria, Cote, Gregor, Murray & Larochelle, "Neural Autoregressive Distribution Estimation" (JMLR 17,
  2016), gives the same model and its real-valued and order-agnostic variants (not implemented here). The paper's
  learning rate grid and decrease constant were not re-read for this file: the optimizer is the protocol's
  `Optimizer`, SGD for the published recipe.
- The paper models binary data only. For 8-bit data (Fashion-MNIST, CIFAR-10) the conditional output is
  genbench's choice: V_d h_d + b_d gives the P parameters of a per-sub-pixel distribution over 0..255, by
  default the discretized logistic mixture of Salimans et al., "PixelCNN++" (ICLR 2017), Sec. 2.1 (P = 3K:
  mixture logits, means and log-scales on the [-1, 1] scale, log-scales floored at -7 as the reference
  openai/pixel-cnn code floors them), because it is a proper pmf over the 256 values with only 3K parameters
  per sub-pixel and shares mass between neighbouring intensities; a 256-way softmax ("categorical", P = 256,
  as PixelRNN's output) is also available but costs H * 256 output weights per sub-pixel (D * 256 * H in all),
  so it is only sensible for tiny images (the tests).

Conventions and decisions
-------------------------
- Images enter and leave as uint8 (B, C, H, W). The network reads u = x / 255 (binary pixels are then 0 and 1,
  as in the paper). The order is raster with the channels of a pixel innermost (`raster_ordering`); W[:, d],
  V[d] and b[d] belong to the d-th sub-pixel of that order. `log_likelihood` is the exact log P(x) in nats per
  image of the discrete data (likelihood = "exact"); the training loss is its negative, averaged over the batch.
- Training computes every a_d at once: a = c + (exclusive cumulative sum over d of W[:, d] u_d), a tensor of
  (B, D, H); evaluation splits batches so that this tensor stays under `CHUNK_ELEMENTS`.
- Sampling is the recursion itself: D steps, each O(H P) (the hidden pre-activation is kept and updated with the
  new sub-pixel's column), with every draw from the caller's generator by the inverse-CDF helpers of
  genbench.baselines.autoregressive, so a generator seed fixes the samples.
- Initialisation (genbench's, from torch's global RNG): W ~ N(0, 1/D), V ~ N(0, 1/H), biases 0.

Checked in tests/baselines/test_nade.py: no leak and full dependence by gradients, normalization by brute force
over every image of tiny shapes, uniform conditionals give exactly 8 bits/dim (1 bit per binary sub-pixel), the
conditionals against a naive O(H D^2) loop, the sampler's conditionals against the full pass, sample frequencies
against exp(log_likelihood), and the training loss against -log_likelihood.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.baselines.autoregressive import (MaximumLikelihood, raster_ordering, sample_categorical,
                                               sample_logistic_mixture)
from genbench.metrics.likelihood import bernoulli_log_prob, discretized_logistic_mixture_log_prob, require_binary

DESCRIPTION = ("NADE (Larochelle & Murray 2011): tied-weight autoregressive network over sub-pixels in raster "
               "order, exact likelihood; Bernoulli, 256-way or logistic-mixture conditionals")
CONDITIONALS = ("bernoulli", "categorical", "logistic-mixture")
LOG_SCALE_MIN = -7.0          # PixelCNN++'s floor on the logistic log-scales ([-1, 1] scale; a bin is 2/255 wide)
CHUNK_ELEMENTS = 1 << 24      # evaluation: at most this many B * D * H elements per pass (numbers unchanged)


class Conditional:
    """The per-sub-pixel distribution over the values 0..255 that P network outputs parameterize, shared by NADE
    and MADE: scoring a whole image's sub-pixels, and drawing one sub-pixel from a generator."""

    def __init__(self, kind: str, components: int, family: str):
        self.kind, self.components, self.family = kind, components, family
        self.num_params = {"bernoulli": 1, "categorical": 256, "logistic-mixture": 3 * components}[kind]

    def describe(self) -> str:
        if self.kind == "bernoulli":
            return "bernoulli (binary images: values 0 and 255)"
        if self.kind == "categorical":
            return "categorical (256-way softmax per sub-pixel)"
        return (f"discretized logistic mixture (K = {self.components} per sub-pixel, PixelCNN++ Sec. 2.1; "
                f"log-scales floored at {LOG_SCALE_MIN:g})")

    def check(self, x: torch.Tensor) -> None:
        if self.kind != "bernoulli":
            return
        try:
            require_binary(x)
        except GenbenchError as e:
            raise GenbenchError(f"{self.family} with conditional='bernoulli' models binary images only: {e} For "
                                f"8-bit data choose conditional='logistic-mixture' (or 'categorical' for tiny "
                                f"images).") from e

    def _mixture(self, params: torch.Tensor):
        k = self.components
        return params[:, :k], params[:, k:2 * k], params[:, 2 * k:].clamp_min(LOG_SCALE_MIN)

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log P(x_d | params_d) in nats, (B, D), for uint8 x (B, D) and params (B, P, D)."""
        if self.kind == "bernoulli":
            return bernoulli_log_prob(x, params[:, 0])
        if self.kind == "categorical":
            return F.log_softmax(params, dim=1).gather(1, x.long()[:, None]).squeeze(1)
        # the D sub-pixels as a one-channel (B, 1, D, 1) image: one mixture per "pixel"
        logits, means, log_scales = self._mixture(params)
        return discretized_logistic_mixture_log_prob(x[:, None, :, None], logits[..., None], means[:, :, None, :, None],
                                                     log_scales[:, :, None, :, None])[:, :, 0]

    def draw(self, params: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One uint8 value per row of params (B, P), every random number from `generator`."""
        if self.kind == "bernoulli":  # P(255) = sigmoid(l): a two-way softmax over (0, l)
            two = torch.stack([torch.zeros_like(params[:, 0]), params[:, 0]], dim=1)
            return (sample_categorical(two, generator) * 255).to(torch.uint8)
        if self.kind == "categorical":
            return sample_categorical(params, generator).to(torch.uint8)
        return sample_logistic_mixture(*self._mixture(params), generator=generator)


def check_images(x: torch.Tensor, image_shape: tuple, family: str) -> None:
    if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != tuple(image_shape):
        raise GenbenchError(f"{family} expects uint8 images of shape (B, {', '.join(map(str, image_shape))}), got "
                            f"{x.dtype} {tuple(x.shape)}")


def check_conditional(family: str, conditional: str, components: int, bad) -> None:
    if conditional not in CONDITIONALS:
        bad(f"conditional must be one of {CONDITIONALS}")
    if int(components) != components or components < 1:
        bad("mixture_components must be a positive integer")


@dataclass(frozen=True)
class Config:
    hidden: int = 500                        # H, sigmoid hidden units (Larochelle & Murray 2011: 500)
    conditional: str = "logistic-mixture"    # "bernoulli" | "categorical" | "logistic-mixture"
    mixture_components: int = 10             # K, logistic-mixture only

    def __post_init__(self):
        def bad(why: str):
            raise GenbenchError(f"nade: invalid config ({why}): {self}")

        if int(self.hidden) != self.hidden or self.hidden < 1:
            bad("hidden must be a positive integer")
        check_conditional("nade", self.conditional, self.mixture_components, bad)


PRESETS: dict[str, Config] = {
    # seconds on a CPU: tests and CI
    "smoke": Config(hidden=8, mixture_components=2),
    # quick tier (Fashion-MNIST 28x28, 8-bit, 2-core CPU, minutes): 128 hidden units, K = 5 logistics per
    # sub-pixel (V: 784 x 15 x 128; 1.6M parameters); the quick protocol's seed-0 run trained at 313 images/s
    # (batch 64, 2 threads: its result's compute.train_seconds), 2,200 steps, about 2.3 epochs
    "small": Config(hidden=128, mixture_components=5),
    # the published recipe (Larochelle & Murray 2011): binarized MNIST, 500 sigmoid units, Bernoulli
    # conditionals, SGD; 88.86 nats test NLL
    "standard-binarized": Config(hidden=500, conditional="bernoulli"),
    # 8-bit data at the standard tier: the paper's 500 units with a K = 10 logistic mixture per sub-pixel
    # (genbench's choice; the paper is binary only)
    "standard": Config(hidden=500, conditional="logistic-mixture", mixture_components=10),
}


class Model(MaximumLikelihood, nn.Module):
    family = "autoregressive"
    bpd_key = "bits_per_dim"
    likelihood = "exact"
    members = 1

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        self.config, self.image_shape = config, tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise GenbenchError(f"nade needs an image shape (C, H, W), got {image_shape}")
        self.dims = math.prod(self.image_shape)
        self.cond = Conditional(config.conditional, config.mixture_components, "nade")
        D, P, H = self.dims, self.cond.num_params, config.hidden
        self.W = nn.Parameter(torch.randn(H, D) / math.sqrt(D))   # W[:, d]: input weights of the d-th sub-pixel
        self.c = nn.Parameter(torch.zeros(H))
        self.V = nn.Parameter(torch.randn(D, P, H) / math.sqrt(H))  # V[d]: output weights of p(x_d | x_<d)
        self.b = nn.Parameter(torch.zeros(D, P))
        rank = raster_ordering(self.image_shape)
        # rank_flat[i]: position in the order of the sub-pixel at flat (C, H, W) index i; perm is its inverse
        self.register_buffer("rank_flat", rank.reshape(-1).clone(), persistent=False)
        self.register_buffer("perm", torch.argsort(rank.reshape(-1)), persistent=False)

    # --- what the evaluation records
    @property
    def likelihood_details(self) -> dict:
        return {"conditional": self.cond.describe(), "order": "raster, channels innermost", "members": 1}

    @property
    def device(self) -> torch.device:
        return self.W.device

    # --- the contract of genbench.baselines.autoregressive
    def net_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.W.dtype) / 255.0

    def ordering(self, member: int = 0) -> torch.Tensor:
        self._member(member)
        return self.rank_flat.reshape(self.image_shape)

    def _member(self, member: int) -> None:
        if member != 0:
            raise GenbenchError(f"nade has a single order (member 0), got member {member}")

    def hidden_pre_activations(self, u: torch.Tensor) -> torch.Tensor:
        """a_d = c + sum_{j < d} W[:, j] u_j for every d of the order, (B, H, D), from u (B, C, H, W). (The
        cumulative sum runs along the contiguous last axis: five times faster on a CPU than along a leading one.)"""
        seq = u.reshape(u.shape[0], -1)[:, self.perm]              # (B, D) in the model's order
        contrib = seq[:, None, :] * self.W                         # (B, H, D): W[:, d] u_d
        shifted = F.pad(torch.cumsum(contrib, dim=2)[:, :, :-1], (1, 0))  # exclusive: a_1 sees nothing
        return self.c[:, None] + shifted

    def conditionals(self, u: torch.Tensor, member: int = 0) -> torch.Tensor:
        """(B, P, C, H, W): the parameters V_d sigmoid(a_d) + b_d of every sub-pixel's conditional."""
        self._member(member)
        h = torch.sigmoid(self.hidden_pre_activations(u)).permute(2, 0, 1).contiguous()  # (D, B, H)
        out = torch.bmm(h, self.V.transpose(1, 2)).permute(1, 2, 0) + self.b.t()  # (B, P, D)
        return out[:, :, self.rank_flat].reshape(u.shape[0], -1, *self.image_shape)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log P(x) per image, (B,) float32 (differentiable); x already checked."""
        params = self.conditionals(self.net_input(x)).flatten(2)
        return self.cond.log_prob(x.reshape(x.shape[0], -1), params).sum(1)

    def _check(self, x: torch.Tensor) -> None:
        check_images(x, self.image_shape, "nade")
        self.cond.check(x)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, *, k: int = 1, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
        """The exact log P(x) in nats per image, (B,) float64 (no randomness: `generator` is unused)."""
        if k != 1:
            raise GenbenchError("nade's likelihood is exact and takes no importance samples (k must be 1)")
        self._check(x)
        step = max(1, CHUNK_ELEMENTS // (self.dims * self.config.hidden))
        parts = []
        for i in range(0, x.shape[0], step):
            xc = x[i:i + step]
            params = self.conditionals(self.net_input(xc)).flatten(2)
            parts.append(self.cond.log_prob(xc.reshape(xc.shape[0], -1), params).double().sum(1))
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64, device=x.device)

    # --- training (autoregressive.MaximumLikelihood: deterministic given the batch)
    def training_log_prob(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        self._check(x)
        return self._log_prob(x), {}

    @torch.no_grad()
    def eval_loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, float]:
        return {"loss": float(-self.log_likelihood(x).mean())}

    # --- sampling
    @torch.no_grad()
    def sample_with_conditionals(self, n: int, *, generator: torch.Generator | None = None
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """n samples by the recursion a_{d+1} = a_d + W[:, d] u_d (D steps of O(H P)), with the parameters of
        every conditional they were drawn from: (uint8 (n, C, H, W), float (n, P, C, H, W))."""
        D, P = self.dims, self.cond.num_params
        seq = torch.zeros(n, D, dtype=torch.uint8, device=self.device)
        params = torch.zeros(n, P, D, dtype=self.W.dtype, device=self.device)
        a = self.c.expand(n, -1).clone()
        cols = self.W.t()                                          # (D, H)
        for d in range(D):
            p = torch.sigmoid(a) @ self.V[d].t() + self.b[d]       # (n, P)
            params[:, :, d] = p
            seq[:, d] = self.cond.draw(p, generator)
            a = a + self.net_input(seq[:, d])[:, None] * cols[d]
        shape = (n, *self.image_shape)
        return seq[:, self.rank_flat].reshape(shape), params[:, :, self.rank_flat].reshape(n, P, *self.image_shape)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_with_conditionals(n, generator=generator)[0]
