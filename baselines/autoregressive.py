"""What the autoregressive models share: the contract their exactness tests read, sampling from the per-position
conditionals, and cached generation for the convolutional and recurrent ones.

Provenance
----------
- The chain rule over sub-pixels, p(x) = prod_i p(x_i | x_<i), in raster order with the channels of a pixel
  innermost (R -> G -> B): van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks" (ICML
  2016), Sec. 2. Masked convolutions (mask A for the first layer, B after), with the channel groups of Figure 2.
- Cached generation: Ramachandran et al., "Fast Generation for Convolutional Autoregressive Models" (ICLR 2017
  workshop; code: PrajitR/fast-pixel-cnn): every layer keeps the activations it has already computed and a new
  position computes each layer at that position only, from the stored inputs. Here every spatial layer is a
  `CausalConv2d` (or another `Regional` layer, as PixelRNN's Row LSTM) that, while a `Generation` is open,
  stores its input map and computes its output for a *region* (a few pixels of a row, or a whole row) from the
  store; point-wise layers work on a region as on a whole image, so a network's `forward` is written once and
  serves both. The sampler (`sample_by_regions`) runs the network on
  the pixel being drawn, once per channel (the first pass of a pixel also recomputes the pixel before it, whose
  last channel was drawn after its passes), and, when a row is complete, once on the whole row, which
  refreshes anything a layer computed at a pixel before the rest of its row existed (the vertical stack of
  Gated PixelCNN: its row i sees all of row i). That is H W C small passes and H row passes, about C + 2 full
  passes of arithmetic, against H W C full passes for naive generation.

The contract of an autoregressive Model (read by tests/baselines/autoregressive_checks.py)
---------------------------------------------------------------------------------------
- `likelihood = "exact"`; `log_likelihood(x_uint8, *, k=1, generator=None)` -> (B,) nats, the exact log P(x).
- `net_input(x_uint8)` -> float (B, C, H, W), the values the network reads.
- `conditionals(u, member=0)` -> float (B, P, C, H, W): the P parameters of the conditional of every sub-pixel,
  computed from `u` (as `net_input` makes it; differentiable in it). Entry [:, :, c, h, w] may depend only on
  the sub-pixels before (c, h, w) in the model's order (the gradient check).
- `ordering(member=0)` -> long (C, H, W): the rank of each sub-pixel in that order; `members` (default 1): how
  many orders (MADE's ensemble over masks) the model mixes.
- `sample(n, *, generator=None)` -> uint8 (n, C, H, W).
- Class-conditional models (a `Config.num_classes`, e.g. Gated PixelCNN's class-conditional variant) take
  `labels` (long (B,)) in `conditionals`, `log_likelihood` (then log P(x | y)), training and `sample`, and refuse
  to run without them; the others refuse labels.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.optim import Optimizer

VALUES = 256  # an 8-bit sub-pixel's values


def raster_ordering(shape: tuple[int, int, int]) -> torch.Tensor:
    """Ranks of the sub-pixels of a (C, H, W) image in raster order with the channels innermost."""
    c, h, w = shape
    return torch.arange(c * h * w).reshape(h, w, c).permute(2, 0, 1).contiguous()


def channel_groups(n: int, channels: int) -> torch.Tensor:
    """The colour channel each of `n` feature channels belongs to, in consecutive blocks (van den Oord et al.
    2016a, Figure 2: the features of R, then of G, then of B); blocks differ by at most one channel in size."""
    if n < channels:
        raise ValueError(f"{n} feature channels cannot be split into {channels} colour groups")
    return torch.arange(n) * channels // n


def pixelcnn_mask(out_groups: torch.Tensor, in_groups: torch.Tensor, kernel: tuple[int, int],
                  here: tuple[int, int], kind: str) -> torch.Tensor:
    """The (out, in, kh, kw) mask of a convolution whose output may see the positions before it in raster order
    and, at its own pixel (kernel position `here`), the colour groups before its own (mask 'A': the first layer,
    which reads the image) or up to its own (mask 'B': every later layer). Kernel rows below `here`, and
    columns right of it in its row, are the future and are masked. out_groups / in_groups: the colour group of
    each output / input channel (`channel_groups`)."""
    if kind not in ("A", "B"):
        raise ValueError(f"mask kind must be 'A' or 'B', got {kind!r}")
    (kh, kw), (hi, hj) = kernel, here
    mask = torch.ones(len(out_groups), len(in_groups), kh, kw)
    mask[:, :, hi + 1:] = 0.0
    mask[:, :, hi, hj + 1:] = 0.0
    seen = in_groups[None, :] < out_groups[:, None] if kind == "A" else in_groups[None, :] <= out_groups[:, None]
    mask[:, :, hi, hj] = seen.float()
    return mask


def masked(in_groups, out_groups, kernel, here, kind, padding) -> "CausalConv2d":
    """A CausalConv2d with `pixelcnn_mask`: `here` is the output's position in the kernel."""
    return CausalConv2d(len(in_groups), len(out_groups), kernel, padding,
                        mask=pixelcnn_mask(out_groups, in_groups, kernel, here, kind))


def pointwise(in_groups, out_groups) -> "CausalConv2d":
    """A 1x1 convolution with mask B over the colour groups (no mask at all for one channel)."""
    return masked(in_groups, out_groups, (1, 1), (0, 0), "B", (0, 0, 0, 0))


def square(in_groups, out_groups, k: int, kind: str) -> "CausalConv2d":
    """PixelCNN's k x k masked convolution kept to the rows it may see: (k/2 + 1) x k, the output on its last row."""
    return masked(in_groups, out_groups, (k // 2 + 1, k), (k // 2, k // 2), kind, (k // 2, 0, k // 2, k // 2))


class Regional:
    """A layer that, while a `Generation` is open over its network, computes its output for the generation's
    current region from stores of what it has already seen (set `self._generation`; `_store` is its memory).
    Point-wise layers need not be Regional: they act on a region's values as on a whole image."""

    _generation: "Generation | None" = None
    _store = None


class CausalConv2d(Regional, nn.Conv2d):
    """A convolution with explicit padding (top, bottom, left, right) and an optional fixed mask on its kernel,
    that can also run on a region of the image from a store of its input (see the module docstring).

    The output at (i, j) reads the padded input at rows i .. i + kh - 1 and columns j .. j + kw - 1, i.e. the
    input rows i - top .. i - top + kh - 1 and columns j - left .. j - left + kw - 1."""

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple[int, int], padding: tuple[int, int, int, int], *,
                 mask: torch.Tensor | None = None, bias: bool = True):
        super().__init__(in_ch, out_ch, kernel, padding=0, bias=bias)
        top, bottom, left, right = padding
        if top + bottom != kernel[0] - 1 or left + right != kernel[1] - 1 or min(padding) < 0:
            raise ValueError(f"padding {padding} does not keep the size of a {kernel} kernel's input")
        self.pad = padding
        self.register_buffer("mask", mask if mask is not None else torch.ones_like(self.weight), persistent=False)

    @property
    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._generation is None:
            top, bottom, left, right = self.pad
            return F.conv2d(F.pad(x, (left, right, top, bottom)), self.masked_weight, self.bias)
        (r0, r1), (c0, c1) = self._generation.rows, self._generation.cols
        # A region is a few positions of a large batch, so it is computed position-major, (rows, cols, B, C): the
        # store is written and read in contiguous (B, C) blocks, and each kernel tap is one matrix product.
        xr = x.permute(2, 3, 0, 1)
        taps = self._generation.taps(self)
        if self.kernel_size == (1, 1):
            out = xr @ taps[0][2]
        else:
            top, _, left, _ = self.pad
            kh, kw = self.kernel_size
            if self._store is None:  # the zero-padded input map
                h, w = self._generation.size
                self._store = x.new_zeros(h + kh - 1, w + kw - 1, x.shape[0], self.in_channels)
            self._store[r0 + top:r1 + top, c0 + left:c1 + left] = xr
            out = sum(self._store[r0 + a:r1 + a, c0 + b:c1 + b] @ w_ab for a, b, w_ab in taps)
        if self.bias is not None:
            out = out + self.bias
        return out.permute(2, 3, 0, 1)


class Generation:
    """The open state of cached generation over a network: the image size and the region being computed, rows
    [r0, r1) and columns [c0, c1). Every Regional layer of the network stores what it sees while it is open
    (`with Generation(net, (H, W)) as g: g.at((i, i + 1), (j, j + 1)); net(x_region)`).

    A network over several resolutions (PixelCNN++) moves the generation between them: `descend()` after its
    stride-2 layers, `ascend()` after its transposed ones (both no-ops outside generation, via `open_on(net)`).
    At a coarser resolution the region is every position of the coarse rows that the finer rows can change
    (`coarser`): recomputing whole coarse rows at every step is cheap beside a full pass, and it keeps each
    coarse position current, so that by causality every value the pixel being drawn reads is final."""

    def __init__(self, net: nn.Module, size: tuple[int, int]):
        self.net = net
        self.layers = [m for m in net.modules() if isinstance(m, Regional)]
        self.size = size
        self.rows, self.cols = (0, 0), (0, 0)
        self._finer: list[tuple] = []  # (rows, cols, size) of each finer resolution, outermost first

    def __enter__(self) -> "Generation":
        self._weights: dict[int, list] = {}
        for layer in self.layers:
            layer._generation, layer._store = self, None
        self.net._open_generation = self
        return self

    def coarser(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(rows, cols, size) at half the resolution: coarse rows r0 // 2 .. r1 // 2 (what a stride-2 layer with
        kernel rows 2I - 1 .. 2I + 1 of its input can change), every column."""
        (r0, r1), (h, w) = self.rows, self.size
        hc, wc = (h + 1) // 2, (w + 1) // 2
        return (r0 // 2, min(r1 // 2 + 1, hc)), (0, wc), (hc, wc)

    def finer(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(rows, cols, size) of the resolution `ascend` returns to."""
        return self._finer[-1]

    def descend(self) -> None:
        self._finer.append((self.rows, self.cols, self.size))
        self.rows, self.cols, self.size = self.coarser()

    def ascend(self) -> None:
        self.rows, self.cols, self.size = self._finer.pop()

    def taps(self, conv: "CausalConv2d") -> list[tuple[int, int, torch.Tensor]]:
        """The kernel positions (a, b) of `conv` that its mask leaves open, each with its (in, out) weight matrix,
        formed once per generation."""
        if id(conv) not in self._weights:
            w = conv.masked_weight.detach()
            self._weights[id(conv)] = [(a, b, w[:, :, a, b].t().contiguous()) for a in range(w.shape[2])
                                       for b in range(w.shape[3]) if conv.mask[:, :, a, b].any()]
        return self._weights[id(conv)]

    def __exit__(self, *exc) -> None:
        for layer in self.layers:
            layer._generation, layer._store = None, None
        self.net._open_generation = None

    def at(self, rows: tuple[int, int], cols: tuple[int, int]) -> "Generation":
        if self._finer:
            raise RuntimeError("the network did not ascend back to full resolution after its last pass")
        self.rows, self.cols = rows, cols
        return self


def open_on(net: nn.Module) -> Generation | None:
    """The Generation open over `net`, or None outside cached generation."""
    return getattr(net, "_open_generation", None)


def sample_by_regions(conditionals, draw, x: torch.Tensor, net: nn.Module, *, whole_rows: bool = True
                      ) -> torch.Tensor:
    """Fill the uint8 images `x` (B, C, H, W; the values are overwritten) position by position in raster order,
    channels innermost, by cached generation (module docstring).

    conditionals(x_region) -> (B, P, C, h, w): the model's conditionals computed from the uint8 values of a
    region (the model converts them to its input); draw(params (B, P)) -> uint8 (B,), one value of a
    sub-pixel from its conditional's parameters. whole_rows: refresh every row once it is complete (needed by a
    network whose features at row i read all of row i, as Gated PixelCNN's vertical stack; without it only the
    row's last pixel is completed)."""
    b, c, h, w = x.shape
    x.zero_()
    with Generation(net, (h, w)) as g:
        for i in range(h):
            for j in range(w):
                for ch in range(c):
                    # the first channel's pass also recomputes the pixel before, now complete: its last channel
                    # was drawn after every pass that wrote it into the stores
                    j0 = j - 1 if ch == 0 and j > 0 else j
                    g.at((i, i + 1), (j0, j + 1))
                    params = conditionals(x[:, :, i:i + 1, j0:j + 1])
                    x[:, ch, i, j] = draw(params[:, :, ch, 0, -1])
            j0 = 0 if whole_rows else w - 1  # the complete row (or its last pixel): refresh the stores at row i
            g.at((i, i + 1), (j0, w))
            conditionals(x[:, :, i:i + 1, j0:])
    return x


def sample_naive(conditionals, draw, x: torch.Tensor) -> torch.Tensor:
    """The same draws as `sample_by_regions` with one full pass of the network per sub-pixel: the reference the
    cached generation is checked and benchmarked against."""
    b, c, h, w = x.shape
    x.zero_()
    for i in range(h):
        for j in range(w):
            for ch in range(c):
                x[:, ch, i, j] = draw(conditionals(x)[:, :, ch, i, j])
    return x


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of `logits` (B, K), by inverting the CDF at a uniform draw from `generator`: the same
    generator state gives the same values on every path that computes the same logits."""
    cdf = torch.softmax(logits.double(), dim=1).cumsum(1)
    u = torch.rand(logits.shape[0], 1, generator=generator, device=logits.device, dtype=torch.float64)
    return torch.searchsorted(cdf, u * cdf[:, -1:]).clamp_max(logits.shape[1] - 1).squeeze(1)


def sample_logistic_mixture(logit_probs: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """One 8-bit value per row from a discretized logistic mixture over one channel (logit_probs, means,
    log_scales: (B, K), on the [-1, 1] scale of genbench.metrics.likelihood): a component by its weight, a
    logistic draw x = mean + s log(u / (1 - u)), and the bin holding x, the end bins taking the tails. That is
    exactly the pmf `discretized_logistic_mixture_log_prob` scores (the bins partition the real line)."""
    k = sample_categorical(logit_probs, generator)
    mean = means.gather(1, k[:, None]).squeeze(1).double()
    scale = log_scales.gather(1, k[:, None]).squeeze(1).double().exp()
    u = torch.rand(mean.shape, generator=generator, device=mean.device, dtype=torch.float64)
    u = u.clamp(1e-12, 1 - 1e-12)
    value = mean + scale * (torch.log(u) - torch.log1p(-u))
    # bin v holds [(2v - 1)/255 - 1, (2v + 1)/255 - 1): v = floor((value + 1) 255 / 2 + 1/2)
    return torch.floor((value + 1.0) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)


class MaximumLikelihood:
    """The training every autoregressive model shares: one optimizer over all parameters, each step on the mean
    negative log-likelihood per image in nats, the optimizer's `grad_clip` applied where it is set. A model
    defines `training_log_prob(x) -> ((B,) nats, differentiable; dict of extra entries for the step's log)`;
    `bpd_key` names bits/dim in that log."""

    bpd_key = "bpd"
    _optim_settings: Optimizer | None = None

    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        self._optim_settings = settings
        return {"model": settings.build(self.parameters())}

    def train_step(self, x: torch.Tensor, optimizers: dict, labels: torch.Tensor | None = None) -> dict[str, float]:
        opt = optimizers["model"]
        log_prob, extra = self.training_log_prob(x) if labels is None else self.training_log_prob(x, labels)
        loss = -log_prob.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nats = float(loss.detach())
        out = {"loss": nats, self.bpd_key: nats / (x[0].numel() * math.log(2.0)), **extra}
        if self._optim_settings is not None and self._optim_settings.grad_clip is not None:
            out["grad_norm"] = self._optim_settings.clip(self.parameters())
        opt.step()
        return out


class CategoricalModel(MaximumLikelihood, nn.Module):
    """What PixelCNN, Gated PixelCNN and PixelRNN share around their networks: a 256-way softmax per sub-pixel in
    raster order (R -> G -> B in a pixel), its exact likelihood, training by maximum likelihood, and sampling by
    cached or naive generation. A subclass sets `net` (uint8-derived input on [-1, 1] (B, C, H, W) -> logits
    (B, C * 256, H, W), every spatial layer Regional; a class-conditional net also takes labels (B,)), `name`,
    and `whole_rows` (see `sample_by_regions`)."""

    family = "autoregressive"
    likelihood = "exact"
    members = 1
    net: nn.Module
    name: str
    whole_rows: bool = True

    def __init__(self, config, image_shape: tuple[int, int, int]):
        super().__init__()
        self.config, self.image_shape = config, tuple(image_shape)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def num_classes(self) -> int | None:
        """The classes a class-conditional model is conditioned on; None for an unconditional one."""
        return getattr(self.config, "num_classes", None)

    @property
    def likelihood_details(self) -> dict:
        return {"conditional": "256-way softmax per sub-pixel", "order": "raster, R -> G -> B within a pixel"}

    @property
    def sampler_description(self) -> dict:
        return {"sampler": "ancestral, cached generation (Ramachandran et al. 2017)"}

    # --- the contract (module docstring)
    def _check(self, x: torch.Tensor) -> None:
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != self.image_shape:
            raise GenbenchError(f"{self.name} expects uint8 images of shape (B, "
                                f"{', '.join(map(str, self.image_shape))}), got {x.dtype} {tuple(x.shape)}")

    @staticmethod
    def net_input(x: torch.Tensor) -> torch.Tensor:
        return x.float() / 127.5 - 1.0

    def _labels(self, labels: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if self.num_classes is None:
            if labels is not None:
                raise GenbenchError(f"{self.name} is unconditional: it takes no labels")
            return None
        if labels is None:
            raise GenbenchError(f"{self.name} is class-conditional: pass the labels (long (B,), 0.."
                                f"{self.num_classes - 1}) the images are conditioned on")
        labels = torch.as_tensor(labels, device=self.device)
        if labels.shape != (batch,) or labels.dtype != torch.long or labels.min() < 0 or \
                labels.max() >= self.num_classes:
            raise GenbenchError(f"{self.name}: labels must be long (B,) = ({batch},) in 0..{self.num_classes - 1}, "
                                f"got {labels.dtype} {tuple(labels.shape)}")
        return labels

    def conditionals(self, u: torch.Tensor, member: int = 0, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, 256, C, H, W) of every sub-pixel's conditional (given `labels` for a class-conditional model)."""
        b, c, h, w = u.shape
        labels = self._labels(labels, b)
        out = self.net(u) if labels is None else self.net(u, labels)
        return out.reshape(b, c, VALUES, h, w).transpose(1, 2)

    def ordering(self, member: int = 0) -> torch.Tensor:
        return raster_ordering(self.image_shape)

    def log_prob_terms(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """log P(x_i | x_<i) in nats for every sub-pixel, (B, C, H, W)."""
        self._check(x)
        logits = self.conditionals(self.net_input(x), labels=labels)
        return F.log_softmax(logits, dim=1).gather(1, x.long().unsqueeze(1)).squeeze(1)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, *, k: int = 1, generator: torch.Generator | None = None,
                       labels: torch.Tensor | None = None) -> torch.Tensor:
        """The exact log P(x) (log P(x | y) given `labels`) in nats per image."""
        if k != 1:
            raise GenbenchError(f"{self.name}'s likelihood is exact: it takes no importance samples (k = 1)")
        return self.log_prob_terms(x, labels).double().flatten(1).sum(1)

    # --- training (MaximumLikelihood)
    def training_log_prob(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        return self.log_prob_terms(x, labels).flatten(1).sum(1), {}

    @torch.no_grad()
    def eval_loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None,
                  labels: torch.Tensor | None = None) -> dict[str, float]:
        return {"loss": float(-self.log_likelihood(x, labels=labels).mean())}

    # --- sampling
    def _region_logits(self, labels: torch.Tensor | None):
        return lambda x_region: self.conditionals(self.net_input(x_region), labels=labels)

    def _draw(self, generator):
        return lambda logits: sample_categorical(logits, generator).to(torch.uint8)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
               ) -> torch.Tensor:
        """n images by cached generation: each layer computed at the new position from its stored inputs."""
        x = torch.zeros((n, *self.image_shape), dtype=torch.uint8, device=self.device)
        return sample_by_regions(self._region_logits(self._labels(labels, n)), self._draw(generator), x, self.net,
                                 whole_rows=self.whole_rows)

    @torch.no_grad()
    def sample_naive(self, n: int, *, generator: torch.Generator | None = None, labels: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """The same draws with one full network pass per sub-pixel (the reference of the cached sampler)."""
        x = torch.zeros((n, *self.image_shape), dtype=torch.uint8, device=self.device)
        return sample_naive(self._region_logits(self._labels(labels, n)), self._draw(generator), x)
