"""MADE: the masked autoencoder for distribution estimation, trained order- and connectivity-agnostically over a
fixed pool of mask sets and evaluated as an exact equal-weight ensemble of them, for binary (Bernoulli) or
8-bit (categorical or discretized logistic mixture) images.

Provenance
----------
- Germain, Gregor, Murray & Larochelle, "MADE: Masked Autoencoder for Distribution Estimation" (ICML 2015),
  Sec. 4: an MLP whose weight matrices are multiplied by binary masks so that output d only sees the inputs
  before d in an ordering. Degrees: the inputs get a permutation m^0 of 1..D; the units of hidden layer l get
  m^l(k) drawn uniformly from [min_k' m^{l-1}(k'), D - 1]; a hidden weight (k <- k') is kept iff
  m^l(k) >= m^{l-1}(k') (Eq. 12) and an output weight (d <- k) iff m^0(d) > m^L(k) (Eq. 13), the strict
  inequality that makes output d blind to x_d and everything after it. Sec. 4.2: order-agnostic and
  connectivity-agnostic training, a new mask set per minibatch, and at test time an average of the probabilities
  of several mask sets. Hidden units: ReLU ("hinge" in the authors' code).
- Published recipe, checked in the authors' repository (mgermain/MADE, README.md, the command given for "the
  best result from the paper" on binarized MNIST, and trainMADE.py): two hidden layers of 8000 ReLU units,
  32 mask sets drawn with both ordering and connectivity resampled ("Full"), Adagrad with learning rate 0.01,
  minibatches of 100, early stopping with a look-ahead of 30 epochs, orthogonal initialisation, and a direct
  input-to-output connection (masked like the output layer; not implemented here); the test NLL is the
  log-mean-exp over the mask sets. Binarized MNIST test NLLs of the paper's Table 6, as recalled and as the
  literature quotes them (the table could not be re-read for this file): 1 hidden layer, 32 masks 88.04 nats; 2
  hidden layers, 32 masks 86.64 nats (the best); a single mask 88.40 (1 layer) and 89.59 (2 layers); NADE 88.86 for
  comparison. The paper's study of the number of masks (its Figure 3, as recalled) uses a single hidden layer of 500
  units.

Conventions and decisions
-------------------------
- Images enter and leave as uint8 (B, C, H, W); the network reads u = x / 255 on the flat (C, H, W) layout.
  The orders are over the D = C H W sub-pixels; mask set 0 uses the natural raster order with the channels
  innermost (`raster_ordering`), the others a uniformly random permutation.
- The pool: `num_masks` mask sets, each a deterministic function of the config (a private torch.Generator
  seeded with mask_seed * 2^20 + m draws mask set m's permutation, then its hidden degrees), stored as the
  degrees (persistent buffers, so a checkpoint carries its masks); the masks themselves are formed from the
  degrees on each pass. Each training step picks one set uniformly with torch's global RNG (torch.randint), so
  the runner's saved RNG state makes resume exact; the authors' code cycles through its sets in a fixed order.
- Evaluation (`log_likelihood`): the equal-weight mixture of the first `eval_masks` sets (default: all),
      log p(x) = logsumexp_m log p_m(x) - log M,
  in float64. Every p_m is a normalized autoregressive distribution, so the mixture is one too and the number
  is an exact likelihood (likelihood = "exact"), not an estimate; `members` = M. (The authors' evaluation
  averages 33 draws from its cycle; here the ensemble is the fixed first M of the pool.)
- 8-bit data (genbench's choice; the paper is binary only): V_d h + b_d gives P parameters per sub-pixel, by
  default a discretized logistic mixture (Salimans et al., "PixelCNN++", ICLR 2017, Sec. 2.1: P = 3K, mixture
  logits, means and log-scales on the [-1, 1] scale, log-scales floored at -7 as the reference openai/pixel-cnn
  code floors them), or a 256-way softmax ("categorical", only for tiny images); the shared code is
  genbench.baselines.nade.Conditional.
- Sampling: one mask set per image, uniformly from the ensemble, with the generator; then the images of each set
  are generated in its order. With one hidden layer the hidden pre-activation is kept and the new sub-pixel's
  masked column added (O(H) per step); with more layers the hidden layers are recomputed per step. Either way
  only the P output rows of the sub-pixel being drawn are computed.
- Initialisation (genbench's, from torch's global RNG): hidden weights N(0, 2 / fan-in) (ReLU), output weights
  N(0, 1 / H_L), biases 0.

Checked in tests/baselines/test_made.py: no leak for every mask set, full dependence with enough hidden units,
the masks against the degree rule and the exact reachability of one-hidden-layer MADE, normalization by brute
force (single sets and the ensemble), uniform conditionals give exactly 8 bits/dim, the incremental sampler's
conditionals against the full pass, sample frequencies against exp(log_likelihood), and the training loss
against the chosen mask set's -log p_m(x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.baselines.autoregressive import MaximumLikelihood, raster_ordering
from genbench.baselines.nade import Conditional, check_conditional, check_images

DESCRIPTION = ("MADE (Germain et al. 2015): masked MLP autoencoder, order- and connectivity-agnostic training, "
               "exact likelihood as an equal-weight ensemble of mask sets")
MASK_SEED_STRIDE = 1 << 20  # mask set m of seed s is drawn from a generator seeded with s * 2^20 + m
CHUNK_ELEMENTS = 1 << 24    # evaluation: at most this many outputs (B D P) or hidden units (B H) per pass


@dataclass(frozen=True)
class Config:
    hidden_sizes: tuple[int, ...] = (500,)   # ReLU hidden layers
    conditional: str = "logistic-mixture"    # "bernoulli" | "categorical" | "logistic-mixture"
    mixture_components: int = 10             # K, logistic-mixture only
    num_masks: int = 32                      # the pool of mask sets trained on (Germain et al.: 32)
    eval_masks: int | None = None            # the first M sets form the evaluation ensemble; None: all
    mask_seed: int = 0                       # the pool is a deterministic function of this seed

    def __post_init__(self):
        def bad(why: str):
            raise GenbenchError(f"made: invalid config ({why}): {self}")

        if (not isinstance(self.hidden_sizes, tuple) or not self.hidden_sizes
                or any(int(h) != h or h < 1 for h in self.hidden_sizes)):
            bad("hidden_sizes must be a non-empty tuple of positive integers")
        check_conditional("made", self.conditional, self.mixture_components, bad)
        if int(self.num_masks) != self.num_masks or not 1 <= self.num_masks < MASK_SEED_STRIDE:
            bad(f"num_masks must be an integer in [1, {MASK_SEED_STRIDE})")
        if self.eval_masks is not None and (int(self.eval_masks) != self.eval_masks
                                            or not 1 <= self.eval_masks <= self.num_masks):
            bad("eval_masks must be None or an integer in [1, num_masks]")
        if int(self.mask_seed) != self.mask_seed or self.mask_seed < 0:
            bad("mask_seed must be a non-negative integer")


PRESETS: dict[str, Config] = {
    # seconds on a CPU: tests and CI
    "smoke": Config(hidden_sizes=(16,), mixture_components=2, num_masks=2),
    # quick tier (Fashion-MNIST 28x28, 8-bit, 2-core CPU, minutes): one layer of 500 ReLU units, K = 5
    # logistics per sub-pixel, 8 mask sets (all in the evaluation ensemble); 6.3M parameters, most in the
    # D x 15 x 500 output layer; the quick protocol's seed-0 run trained at 757 images/s (batch 64, 2 threads:
    # its result's compute.train_seconds), 5,000 steps, about 5.3 epochs
    "small": Config(hidden_sizes=(500,), mixture_components=5, num_masks=8),
    # the published binarized-MNIST recipe (mgermain/MADE README; Table 6's best, 86.64 nats): 2 x 8000 ReLU
    # units, Bernoulli conditionals, 32 mask sets (Adagrad 0.01, batch 100 in the protocol)
    "standard-binarized": Config(hidden_sizes=(8000, 8000), conditional="bernoulli", num_masks=32),
    # 8-bit data at the standard tier (genbench's choice; the paper is binary only): one hidden layer of 1000
    # ReLU units, a K = 10 logistic mixture per sub-pixel (the output layer, D x 30 x 1000, holds most of the
    # 24M parameters), 32 mask sets
    "standard": Config(hidden_sizes=(1000,), conditional="logistic-mixture", mixture_components=10, num_masks=32),
}


def mask_degrees(dims: int, hidden_sizes: tuple[int, ...], natural: torch.Tensor | None,
                 generator: torch.Generator) -> list[torch.Tensor]:
    """The degrees [m^0 (D,), m^1 (H_1,), ..., m^L (H_L,)] of one mask set (Germain et al. 2015, Sec. 4):
    m^0 is `natural` + 1 (the natural order's ranks) or a uniform permutation of 1..D, and m^l(k) is uniform on
    [min m^{l-1}, D - 1] (for D = 1, where that range is empty, 0: the hidden units see no input)."""
    deg0 = natural + 1 if natural is not None else torch.randperm(dims, generator=generator) + 1
    degrees = [deg0.long()]
    for size in hidden_sizes:
        low = min(int(degrees[-1].min()), dims - 1)
        degrees.append(torch.randint(low, max(dims - 1, low) + 1, (size,), generator=generator))
    return degrees


class Model(MaximumLikelihood, nn.Module):
    family = "autoregressive"
    bpd_key = "bits_per_dim"
    likelihood = "exact"

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        self.config, self.image_shape = config, tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise GenbenchError(f"made needs an image shape (C, H, W), got {image_shape}")
        self.dims = D = math.prod(self.image_shape)
        self.cond = Conditional(config.conditional, config.mixture_components, "made")
        P, sizes = self.cond.num_params, config.hidden_sizes
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        fan_in = D
        for size in sizes:
            self.weights.append(nn.Parameter(torch.randn(size, fan_in) * math.sqrt(2.0 / fan_in)))
            self.biases.append(nn.Parameter(torch.zeros(size)))
            fan_in = size
        self.V = nn.Parameter(torch.randn(D, P, fan_in) / math.sqrt(fan_in))  # V[d]: p(x_d | .)'s output rows
        self.b = nn.Parameter(torch.zeros(D, P))
        natural = raster_ordering(self.image_shape).reshape(-1)
        pool = []
        for m in range(config.num_masks):
            g = torch.Generator().manual_seed(config.mask_seed * MASK_SEED_STRIDE + m)
            pool.append(mask_degrees(D, sizes, natural if m == 0 else None, g))
        for layer in range(len(sizes) + 1):  # degrees_l: (num_masks, size of layer l), layer 0 = the inputs
            self.register_buffer(f"degrees_{layer}", torch.stack([degs[layer] for degs in pool]))

    # --- what the evaluation records
    @property
    def members(self) -> int:
        return self.config.eval_masks or self.config.num_masks

    @property
    def likelihood_details(self) -> dict:
        m = self.members
        return {"conditional": self.cond.describe(), "members": m,
                "ensemble": (f"equal-weight mixture of {m} mask sets (orderings and connectivity): log p(x) = "
                             f"logsumexp_m log p_m(x) - log {m}; each p_m is normalized, so the mixture is exact")}

    @property
    def device(self) -> torch.device:
        return self.V.device

    def degrees(self, member: int) -> list[torch.Tensor]:
        """[m^0, m^1, ..., m^L] of mask set `member`."""
        if not 0 <= member < self.config.num_masks:
            raise GenbenchError(f"made has mask sets 0..{self.config.num_masks - 1}, got member {member}")
        return [getattr(self, f"degrees_{layer}")[member] for layer in range(len(self.config.hidden_sizes) + 1)]

    def masks(self, member: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The hidden masks [(H_1, D), (H_2, H_1), ...] (Eq. 12: m^l(k) >= m^{l-1}(k')) and the output mask
        (D, H_L) (Eq. 13: m^0(d) > m^L(k)) of mask set `member`, as float 0/1."""
        degs = self.degrees(member)
        dtype = self.V.dtype
        hidden = [(degs[l][:, None] >= degs[l - 1][None, :]).to(dtype) for l in range(1, len(degs))]
        return hidden, (degs[0][:, None] > degs[-1][None, :]).to(dtype)

    # --- the contract of genbench.baselines.autoregressive
    def net_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.V.dtype) / 255.0

    def ordering(self, member: int = 0) -> torch.Tensor:
        return (self.degrees(member)[0] - 1).reshape(self.image_shape)

    def _hidden(self, u_flat: torch.Tensor, hidden_masks: list[torch.Tensor]) -> torch.Tensor:
        h = u_flat
        for W, b, M in zip(self.weights, self.biases, hidden_masks):
            h = torch.relu(F.linear(h, W * M, b))
        return h

    def conditionals(self, u: torch.Tensor, member: int = 0) -> torch.Tensor:
        """(B, P, C, H, W): the conditionals' parameters under mask set `member`, from u (B, C, H, W)."""
        hidden_masks, out_mask = self.masks(member)
        B, D, P = u.shape[0], self.dims, self.cond.num_params
        h = self._hidden(u.reshape(B, D), hidden_masks)
        V = (self.V * out_mask[:, None, :]).reshape(D * P, -1)
        out = F.linear(h, V, self.b.reshape(-1)).reshape(B, D, P).transpose(1, 2)
        return out.reshape(B, P, *self.image_shape)

    def member_log_prob(self, x: torch.Tensor, member: int) -> torch.Tensor:
        """log p_m(x) per image under mask set m, (B,) float32 (differentiable); x already checked."""
        params = self.conditionals(self.net_input(x), member).flatten(2)
        return self.cond.log_prob(x.reshape(x.shape[0], -1), params).sum(1)

    def _check(self, x: torch.Tensor) -> None:
        check_images(x, self.image_shape, "made")
        self.cond.check(x)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, *, k: int = 1, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
        """The exact log P(x) of the ensemble in nats per image, (B,) float64 (no randomness)."""
        if k != 1:
            raise GenbenchError("made's likelihood is exact and takes no importance samples (k must be 1)")
        self._check(x)
        M, B = self.members, x.shape[0]
        step = max(1, CHUNK_ELEMENTS // max(self.dims * self.cond.num_params, max(self.config.hidden_sizes)))
        logs = torch.empty(M, B, dtype=torch.float64, device=x.device)
        for i in range(0, B, step):
            xc = x[i:i + step]
            flat = xc.reshape(xc.shape[0], -1)
            for m in range(M):
                params = self.conditionals(self.net_input(xc), m).flatten(2)
                logs[m, i:i + step] = self.cond.log_prob(flat, params).double().sum(1)
        return torch.logsumexp(logs, dim=0) - math.log(M)

    # --- training (autoregressive.MaximumLikelihood)
    def training_log_prob(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """log p_m(x) for one mask set m drawn with torch's global RNG (so resume stays exact); m is logged."""
        self._check(x)
        m = int(torch.randint(self.config.num_masks, (1,)))
        return self.member_log_prob(x, m), {"mask": float(m)}

    @torch.no_grad()
    def eval_loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, float]:
        """-log P(x) of the ensemble, mean nats per image (exact; `generator` unused)."""
        return {"loss": float(-self.log_likelihood(x).mean())}

    # --- sampling
    @torch.no_grad()
    def _generate(self, n: int, member: int, generator: torch.Generator | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """n images from mask set `member` in its order: (uint8 (n, D), params (n, P, D)) on the flat layout."""
        D, P = self.dims, self.cond.num_params
        hidden_masks, out_mask = self.masks(member)
        x = torch.zeros(n, D, dtype=torch.uint8, device=self.device)
        params = torch.zeros(n, P, D, dtype=self.V.dtype, device=self.device)
        order = torch.argsort(self.degrees(member)[0]).tolist()
        incremental = len(self.weights) == 1
        if incremental:  # keep a = b_1 + (W_1 * M_1) u and add one masked column per step
            W1 = self.weights[0] * hidden_masks[0]
            a = self.biases[0].expand(n, -1).clone()
        for d in order:
            h = torch.relu(a) if incremental else self._hidden(self.net_input(x), hidden_masks)
            p = h @ (self.V[d] * out_mask[d]).t() + self.b[d]  # (n, P): only this sub-pixel's rows
            params[:, :, d] = p
            x[:, d] = self.cond.draw(p, generator)
            if incremental:
                a = a + self.net_input(x[:, d])[:, None] * W1[:, d]
        return x, params

    @torch.no_grad()
    def sample_with_conditionals(self, n: int, *, generator: torch.Generator | None = None
                                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """n samples of the ensemble, with the parameters of every conditional they were drawn from and the mask
        set of each: (uint8 (n, C, H, W), float (n, P, C, H, W), long (n,)). The mask set of each image is drawn
        uniformly from the ensemble with `generator`, then each set's images are generated in its order."""
        D, P = self.dims, self.cond.num_params
        member = torch.randint(self.members, (n,), generator=generator, device=self.device)
        x = torch.zeros(n, D, dtype=torch.uint8, device=self.device)
        params = torch.zeros(n, P, D, dtype=self.V.dtype, device=self.device)
        for m in range(self.members):
            idx = torch.nonzero(member == m).squeeze(1)
            if len(idx):
                x[idx], params[idx] = self._generate(len(idx), m, generator)
        return x.reshape(n, *self.image_shape), params.reshape(n, P, *self.image_shape), member

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample_with_conditionals(n, generator=generator)[0]
