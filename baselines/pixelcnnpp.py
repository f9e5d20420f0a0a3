"""PixelCNN++: two shifted-convolution streams, gated ResNet blocks over several resolutions with short-cuts, a
discretized logistic mixture per pixel with coupled RGB means, exact likelihoods, and cached generation.

Provenance
----------
- Salimans, Karpathy, Chen & Kingma, "PixelCNN++: Improving the PixelCNN with Discretized Logistic Mixture
  Likelihood and Other Modifications" (ICLR 2017), Sec. 2 and Figure 2, and the reference code openai/pixel-cnn
  (pixel_cnn_pp/model.py, nn.py), read for the layer shapes; this file is written from the paper's equations
  and those shapes, not from the code:
  - Sec. 2.1-2.2: a discretized logistic mixture of K components per *pixel* (weights shared by its channels),
    the mean of channel c shifted by tanh coefficients times the earlier channels' values (mu_G + a x_R,
    mu_B + b x_R + c x_G); log-scales floored at -7 as the reference code does. The likelihood itself is
    genbench.metrics.likelihood.discretized_logistic_mixture_log_prob.
  - Sec. 2.3: conditioning on whole pixels: the network output at (i, j) depends on the pixels before (i, j)
    only; within a pixel R -> G -> B by the coupling above.
  - Sec. 2.4-2.5 and Figure 2: two streams, u (down-shifted 2x3 convolutions: the rows above) and ul
    (down-right-shifted 2x2 convolutions plus the u stream fed through a 1x1 'nin': above and to the left),
    the first layer shifted (u: a 2x3 convolution shifted down; ul: a 1x3 convolution shifted down plus a 2x1
    shifted right) so that nothing sees the current pixel, an input channel of ones that tells the image from
    the zero padding, gated ResNet blocks (concat_elu, conv, [+ nin(concat_elu(short-cut))], concat_elu,
    dropout, conv to 2x channels, a * sigmoid(b), added to the input), `nr_resnet` blocks per resolution,
    down-sampling by stride-2 shifted convolutions and up-sampling by stride-2 shifted transposed convolutions
    over 3 resolutions (32, 16, 8 on CIFAR-10), short-cut connections from every up-pass block to the mirrored
    down-pass block (nr_resnet + 1 of them at the finer resolutions, which also take the strided layers'
    outputs), and the output nin(elu(ul)). Sec. 2.6: dropout 0.5 on the blocks' inner activations (CIFAR-10).
  - Published: CIFAR-10 2.92 bits/dim (test, Table 1), with nr_resnet 5, nr_filters 160, 10 components,
    dropout 0.5, batch 16 x 8 GPUs, Adam 1e-3 decayed by 0.999995 per step, Polyak averaging 0.9995 (the
    reference code's defaults; the averaging and the decay are not part of this file: the protocol's optimizer
    is genbench's and says so). About 53M parameters are quoted for that model; the `standard` preset here has
    the same layers and counts 53,659,080 on (3, 32, 32) (weight norm's v, g and a bias per layer, as the
    reference code); see tests/baselines/test_pixelcnnpp.py for the arithmetic.

Decisions
---------
- Weight normalization (Salimans & Kingma 2016) as in the reference code: Config.weight_norm (on in every
  preset), by torch's weight_norm parametrization (w = g v / |v| per output channel). The reference code's
  data-dependent initialisation is not implemented; its `init_scale=0.1` on the blocks' second convolution is
  followed by scaling that layer's initial weights by 0.1. Initialisation is otherwise torch's (global RNG).
- The u stream is carried one row ahead: the code's u at row i is stored at row i - 1 (the first layer's
  down-shift of the u stream is dropped) and shifted down by one row wherever the ul stream reads it (the
  blocks' nin). This is the same network as the reference's everywhere except its first row, where the
  reference's u stream holds parameter-only constants (the blocks' biases acting on zero padding) and this
  one holds the zero padding itself. It is what makes cached generation work: the u stream at row i needs
  all of row i of the layer below, which is complete only when row i is (the vertical stack of Gated
  PixelCNN, refreshed by `ar.sample_by_regions(..., whole_rows=True)`). At coarser resolutions the strided
  and transposed layers of the u stream are the reference's shifted by one fine row to match.
- Per-sub-pixel conditionals (the contract of baselines/autoregressive.py): `conditionals` returns P = 3K
  parameters per sub-pixel, [mixture logits | coupled means | log-scales]. The logits of channel c are the
  pixel's logits plus log P_k(x_j | x_<j) of the earlier channels j < c of the same pixel in each component,
  i.e. the posterior weights of the components given the channels already drawn: that is the exact chain-rule
  conditional P(x_c | x_<c) = sum_k w_k(x_<c) P_k(x_c | x_<c) of the mixture (with the pixel's logits repeated
  unchanged for every channel, drawing channels one at a time would re-draw the component per channel, which
  is not the model). For c = 0, and for C = 1, they are the pixel's logits. The posterior terms read the
  earlier channels as uint8 values rounded from u (no gradient on that path; the coupled means carry u's
  gradient). Sampling channel by channel with these is the same distribution as the reference's one
  component per pixel.
- Sampling: cached generation (baselines/autoregressive.py) at every resolution, where the reference code
  runs the whole network once per sub-pixel (ar.sample_naive, kept as the check). At the full resolution
  each layer computes the new pixel (and, once a row is complete, the row); the stride-2 layers store their
  fine input and compute every position of the coarse rows the fine region can change, each coarser layer
  does the same on those rows, and the transposed layers compute the fine region from the coarse rows it reads
  (`ar.Generation.descend` / `ascend`). Recomputing whole coarse rows at every step costs little beside a
  full pass (the standard preset at 32x32 generates 27x faster than naively on a CPU: benchmarks/README.md)
  and keeps every coarse position current, so the values a pixel reads are final by causality; tests
  check the draws against a full pass for two and three resolutions.
- Images of any size: the strided layers pad odd sizes at the bottom / right and the transposed layers crop
  back, so that the tiny shapes of the exactness tests also run with several resolutions.

Conventions
-----------
Images enter and leave as uint8 (B, C, H, W); the network reads v / 127.5 - 1. `log_likelihood` is exact, in
nats per image. Training minimises its negative mean (`train_step`), dropout from torch's global RNG.

Checked in tests/baselines/test_pixelcnnpp.py: no gradient from any later sub-pixel to any conditional for one
and two resolutions; the probabilities of every 8-bit image of tiny shapes sum to 1; with the output layer
zeroed the bits/dim equal the closed form of the single logistic(0, 1); the per-channel conditionals multiply
to the likelihood; cached generation's parameters equal the full pass's and its images naive generation's;
draws follow the model's probabilities (C = 1 and RGB); training lowers the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from genbench import GenbenchError
from genbench.baselines import autoregressive as ar
from genbench.metrics.likelihood import discretized_logistic_log_prob, discretized_logistic_mixture_log_prob
from genbench.pixels import to_signed, to_uint8

DESCRIPTION = ("PixelCNN++ (Salimans et al. 2017): down- and down-right-shifted convolution streams, gated ResNet "
               "blocks over resolutions with short-cuts, discretized logistic mixture with coupled RGB means")
LOG_SCALE_MIN = -7.0  # the reference code's floor on the log-scales


@dataclass(frozen=True)
class Config:
    nr_resnet: int = 5           # gated ResNet blocks per resolution and stream in the up pass
    nr_filters: int = 160        # channels of both streams
    nr_logistic_mix: int = 10    # K, mixture components per pixel
    dropout: float = 0.5         # on the blocks' inner activations (training only)
    resolutions: int = 3         # 1: no down/up-sampling; 3: the published 32/16/8
    weight_norm: bool = True     # weight normalization on every layer, as the reference code

    def __post_init__(self):
        for name in ("nr_resnet", "nr_filters", "nr_logistic_mix", "resolutions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise GenbenchError(f"pixelcnnpp: {name} must be a positive integer, got {value!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise GenbenchError(f"pixelcnnpp: dropout must lie in [0, 1), got {self.dropout!r}")
        if not isinstance(self.weight_norm, bool):
            raise GenbenchError(f"pixelcnnpp: weight_norm must be True or False, got {self.weight_norm!r}")


PRESETS: dict[str, Config] = {
    # seconds on a CPU: tests and CI
    "smoke": Config(nr_resnet=1, nr_filters=8, nr_logistic_mix=2, dropout=0.0, resolutions=1),
    # quick tier (Fashion-MNIST 28x28, 2-core CPU): one resolution (no down/up-sampling); 75,510 parameters on (1,
    # 28, 28); the quick protocol's seed-0 run trained at 134 images/s (batch 64, 2 threads: its result's
    # compute.train_seconds)
    "small": Config(nr_resnet=1, nr_filters=24, nr_logistic_mix=5, dropout=0.0, resolutions=1),
    # the published CIFAR-10 model (reference code defaults): 53,659,080 parameters on (3, 32, 32)
    "standard": Config(nr_resnet=5, nr_filters=160, nr_logistic_mix=10, dropout=0.5, resolutions=3),
}


# --- layers -------------------------------------------------------------------------------------------------

def _norm(layer: nn.Module, on: bool, dim: int = 0) -> nn.Module:
    return _weight_norm(layer, dim=dim) if on else layer


def _down_conv(cin: int, cout: int, wn: bool, scale: float = 1.0) -> nn.Module:
    """The u stream's 2x3 convolution over the row above and the current row (columns j - 1 .. j + 1)."""
    return _norm(_scaled(ar.CausalConv2d(cin, cout, (2, 3), (1, 0, 1, 1)), scale), wn)


def _down_right_conv(cin: int, cout: int, wn: bool, scale: float = 1.0) -> nn.Module:
    """The ul stream's 2x2 convolution over rows i - 1 .. i and columns j - 1 .. j."""
    return _norm(_scaled(ar.CausalConv2d(cin, cout, (2, 2), (1, 0, 1, 0)), scale), wn)


def _nin(cin: int, cout: int, wn: bool) -> nn.Module:
    return _norm(ar.CausalConv2d(cin, cout, (1, 1), (0, 0, 0, 0)), wn)


def _scaled(layer: nn.Module, scale: float) -> nn.Module:
    if scale != 1.0:
        with torch.no_grad():
            layer.weight.mul_(scale)
    return layer


class Shift(ar.Regional, nn.Module):
    """out[i, j] = in[i - down, j - right], zero outside the image (the reference's down_shift / right_shift);
    while a Generation is open it keeps the shifted input map as its store (CausalConv2d's region logic)."""

    def __init__(self, down: int, right: int):
        super().__init__()
        self.down, self.right = down, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, r = self.down, self.right
        if self._generation is None:
            h, w = x.shape[-2:]
            return F.pad(x, (r, 0, d, 0))[:, :, :h, :w]
        (r0, r1), (c0, c1) = self._generation.rows, self._generation.cols
        if self._store is None:
            h, w = self._generation.size
            self._store = x.new_zeros(x.shape[0], x.shape[1], h + d, w + r)
        self._store[:, :, r0 + d:r1 + d, c0 + r:c1 + r] = x
        return self._store[:, :, r0:r1, c0:c1]


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    return F.elu(torch.cat([x, -x], dim=1))


class GatedResnet(nn.Module):
    """x + a * sigmoid(b), [a, b] = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(concat_elu(aux)))))."""

    def __init__(self, nf: int, conv, aux: int, dropout: float, wn: bool):
        super().__init__()
        self.conv1 = conv(2 * nf, nf, wn)
        self.aux = _nin(2 * aux, nf, wn) if aux else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv(2 * nf, 2 * nf, wn, 0.1)

    def forward(self, x: torch.Tensor, a: torch.Tensor | None = None) -> torch.Tensor:
        c = self.conv1(concat_elu(x))
        if self.aux is not None:
            c = c + self.aux(concat_elu(a))
        a_, b_ = self.conv2(self.dropout(concat_elu(c))).chunk(2, dim=1)
        return x + a_ * torch.sigmoid(b_)


class ULBlock(nn.Module):
    """A block of the ul stream: its short-cut input is the u stream (kept one row ahead, so shifted down here)
    and, in the down pass, the mirrored up-pass ul activation."""

    def __init__(self, nf: int, skip: bool, dropout: float, wn: bool):
        super().__init__()
        self.shift = Shift(1, 0)
        self.block = GatedResnet(nf, _down_right_conv, nf * (2 if skip else 1), dropout, wn)

    def forward(self, ul, v, skip=None):
        a = self.shift(v) if skip is None else torch.cat([self.shift(v), skip], dim=1)
        return self.block(ul, a)


class _Strided(ar.Regional, nn.Module):
    """Down-sampling by 2. stream 'u': a 2x3 kernel over fine rows 2I .. 2I + 1 (the reference's rows 2I - 1 ..
    2I, one row later for the u stream carried ahead), columns 2J - 1 .. 2J + 1; 'ul': a 2x2 kernel over fine
    rows 2I - 1 .. 2I and columns 2J - 1 .. 2J. During cached generation it stores its zero-padded fine input
    and computes the coarse rows the fine region can change (`ar.Generation.coarser`)."""

    def __init__(self, nf: int, stream: str, wn: bool):
        super().__init__()
        self.stream = stream
        self.conv = _norm(nn.Conv2d(nf, nf, (2, 3) if stream == "u" else (2, 2), stride=2), wn)

    def _padding(self, h: int) -> tuple[int, int, int, int]:
        # odd sizes: ceil(H / 2) x ceil(W / 2) coarse positions (the u stream needs a bottom row of padding)
        return (1, 1, 0, h % 2) if self.stream == "u" else (1, 0, 1, 0)  # (left, right, top, bottom)

    def forward(self, x):
        g = self._generation
        if g is None:
            return self.conv(F.pad(x, self._padding(x.shape[-2])))
        (r0, r1), (c0, c1), (h, w) = g.rows, g.cols, g.size
        left, right, top, bottom = self._padding(h)
        if self._store is None:
            self._store = x.new_zeros(x.shape[0], x.shape[1], top + h + bottom, left + w + right)
        self._store[:, :, top + r0:top + r1, left + c0:left + c1] = x
        (a, b), _, _ = g.coarser()
        return self.conv(self._store[:, :, 2 * a:2 * b])  # coarse rows a .. b - 1, every column


class _Transposed(ar.Regional, nn.Module):
    """Up-sampling by 2: coarse (I, J) writes fine rows 2I .. 2I + 1 and columns 2J - 1 .. 2J + 1 ('u', then one
    fine row down for the u stream carried ahead) or 2J .. 2J + 1 ('ul'); cropped to the fine size. During
    cached generation it stores the coarse rows it is given and computes the finer resolution's region from
    the coarse rows that region reads."""

    def __init__(self, nf: int, stream: str, wn: bool):
        super().__init__()
        self.stream = stream
        if stream == "u":
            conv = nn.ConvTranspose2d(nf, nf, (2, 3), stride=2, padding=(0, 1), output_padding=(0, 1))
        else:
            conv = nn.ConvTranspose2d(nf, nf, (2, 2), stride=2)
        self.conv = _norm(conv, wn, dim=1)

    def forward(self, x, size):
        shift = 1 if self.stream == "u" else 0  # the u stream's output moves one fine row down
        g = self._generation
        if g is None:
            y = self.conv(x)[:, :, :size[0], :size[1]]
            return F.pad(y, (0, 0, shift, 0))[:, :, :size[0]]
        (a, b) = g.rows
        if self._store is None:
            self._store = x.new_zeros(x.shape[0], x.shape[1], *g.size)
        self._store[:, :, a:b] = x
        (r0, r1), (c0, c1), _ = g.finer()
        lo, hi = max(r0 - shift, 0), r1 - shift  # rows of the unshifted output; row -1 is the zero above
        rows = [x.new_zeros(x.shape[0], self.conv.out_channels, r1 - r0 - max(hi - lo, 0), c1 - c0)]
        if hi > lo:
            i0 = lo // 2
            y = self.conv(self._store[:, :, i0:(hi - 1) // 2 + 1])  # fine rows 2 i0 .. of the unshifted output
            rows.append(y[:, :, lo - 2 * i0:hi - 2 * i0, c0:c1])
        return torch.cat(rows, dim=2)


class PixelCNNppNet(nn.Module):
    """The mixture parameters (B, K (1 + 2C + C(C-1)/2), H, W) from the image (B, C, H, W) on [-1, 1]."""

    def __init__(self, c: int, cfg: Config):
        super().__init__()
        nf, wn, p, n, R = cfg.nr_filters, cfg.weight_norm, cfg.dropout, cfg.nr_resnet, cfg.resolutions
        self.R, self.n = R, n
        cin = c + 1  # the image and a channel of ones
        # first layer: u (kept one row ahead: no down-shift) and ul = down-shifted 1x3 + right-shifted 2x1
        self.u_first = _down_conv(cin, nf, wn)
        self.ul_first_a = _norm(ar.CausalConv2d(cin, nf, (1, 3), (0, 0, 1, 1)), wn)
        self.ul_first_b = _norm(ar.CausalConv2d(cin, nf, (2, 1), (1, 0, 0, 0)), wn)
        self.shift_down, self.shift_right = Shift(1, 0), Shift(0, 1)
        self.up_u = nn.ModuleList([nn.ModuleList([GatedResnet(nf, _down_conv, 0, p, wn) for _ in range(n)])
                                   for _ in range(R)])
        self.up_ul = nn.ModuleList([nn.ModuleList([ULBlock(nf, False, p, wn) for _ in range(n)])
                                    for _ in range(R)])
        self.down_u = nn.ModuleList([nn.ModuleList([GatedResnet(nf, _down_conv, nf, p, wn)
                                                    for _ in range(n if r == R - 1 else n + 1)])
                                     for r in range(R)])
        self.down_ul = nn.ModuleList([nn.ModuleList([ULBlock(nf, True, p, wn)
                                                     for _ in range(n if r == R - 1 else n + 1)])
                                      for r in range(R)])
        self.strided = nn.ModuleList([nn.ModuleList([_Strided(nf, "u", wn), _Strided(nf, "ul", wn)])
                                      for _ in range(R - 1)])
        self.transposed = nn.ModuleList([nn.ModuleList([_Transposed(nf, "u", wn), _Transposed(nf, "ul", wn)])
                                         for _ in range(R - 1)])
        k = cfg.nr_logistic_mix
        self.out = _nin(nf, k * (1 + 2 * c + c * (c - 1) // 2), wn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        v = self.u_first(x)  # the u stream of the reference, one row ahead
        ul = self.shift_down(self.ul_first_a(x)) + self.shift_right(self.ul_first_b(x))
        vs, uls, sizes = [v], [ul], []
        generation = ar.open_on(self)  # cached generation moves between resolutions with the network
        for r in range(self.R):  # up pass
            if r > 0:
                sizes.append(tuple(v.shape[-2:]))
                v, ul = self.strided[r - 1][0](v), self.strided[r - 1][1](ul)
                if generation is not None:
                    generation.descend()
                vs.append(v)
                uls.append(ul)
            for ublock, ulblock in zip(self.up_u[r], self.up_ul[r]):
                v = ublock(v)
                ul = ulblock(ul, v)
                vs.append(v)
                uls.append(ul)
        v, ul = vs.pop(), uls.pop()
        for r in reversed(range(self.R)):  # down pass, with the short-cuts from the up pass
            if r < self.R - 1:
                size = sizes.pop()
                v, ul = self.transposed[r][0](v, size), self.transposed[r][1](ul, size)
                if generation is not None:
                    generation.ascend()
            for ublock, ulblock in zip(self.down_u[r], self.down_ul[r]):
                v = ublock(v, vs.pop())
                ul = ulblock(ul, v, uls.pop())
        assert not vs and not uls
        return self.out(F.elu(ul))


# --- the model ----------------------------------------------------------------------------------------------

class Model(ar.MaximumLikelihood, nn.Module):
    family = "autoregressive"
    likelihood = "exact"
    members = 1

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        if not isinstance(config, Config):
            raise GenbenchError(f"pixelcnnpp: config must be a pixelcnnpp.Config, got {type(config).__name__}")
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise GenbenchError(f"pixelcnnpp: image_shape must be (C, H, W), got {image_shape!r}")
        self.config, self.image_shape = config, tuple(int(s) for s in image_shape)
        self.net = PixelCNNppNet(self.image_shape[0], config)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def likelihood_details(self) -> dict:
        return {"conditional": f"discretized logistic mixture of {self.config.nr_logistic_mix} components per "
                               "pixel (weights shared by its channels, means coupled to the earlier channels by "
                               "tanh coefficients), log-scales floored at -7",
                "order": "raster over pixels (PixelCNN++ conditions on whole pixels), R -> G -> B within a pixel"}

    @property
    def sampler_description(self) -> dict:
        across = "" if self.config.resolutions == 1 else f" over {self.config.resolutions} resolutions"
        return {"sampler": f"ancestral, cached generation (Ramachandran et al. 2017){across}, one channel at a "
                           "time from its conditional mixture"}

    # --- the contract of baselines/autoregressive.py
    def _check(self, x: torch.Tensor) -> None:
        if x.dtype != torch.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise GenbenchError(f"pixelcnnpp expects uint8 images of shape (B, "
                                f"{', '.join(map(str, self.image_shape))}), got {x.dtype} {tuple(x.shape)}")

    @staticmethod
    def net_input(x: torch.Tensor) -> torch.Tensor:
        return to_signed(x)

    def mixture(self, u: torch.Tensor):
        """The pixel's mixture from the network: logit_probs (B, K, H, W), means and log_scales (B, K, C, H, W)
        (uncoupled; log-scales floored at -7) and coeffs (B, K, C(C-1)/2, H, W) in (-1, 1), or None if C = 1."""
        out = self.net(u)
        b, c, h, w = u.shape
        k = self.config.nr_logistic_mix
        logit_probs = out[:, :k]
        means = out[:, k:k + k * c].reshape(b, k, c, h, w)
        log_scales = out[:, k + k * c:k + 2 * k * c].reshape(b, k, c, h, w).clamp_min(LOG_SCALE_MIN)
        coeffs = None
        if c > 1:
            coeffs = torch.tanh(out[:, k + 2 * k * c:].reshape(b, k, c * (c - 1) // 2, h, w))
        return logit_probs, means, log_scales, coeffs

    def conditionals(self, u: torch.Tensor, member: int = 0) -> torch.Tensor:
        """(B, 3K, C, H, W): for sub-pixel c of each pixel, [the component logits given the pixel's channels < c
        (the pixel's logits plus log P_k(x_j | x_<j), j < c) | the coupled means mean_c + sum_j coeff u_j |
        the log-scales]: the parameters of P(x_c | everything before it) as a K-component mixture."""
        logit_probs, means, log_scales, coeffs = self.mixture(u)
        b, c, h, w = u.shape
        k = logit_probs.shape[1]
        values = to_uint8(u.detach())
        logits, coupled, idx = [logit_probs], [means[:, :, 0]], 0
        for ch in range(1, c):
            m = means[:, :, ch]
            for j in range(ch):
                m = m + coeffs[:, :, idx] * u[:, j:j + 1]
                idx += 1
            coupled.append(m)
            prev = ch - 1
            logits.append(logits[-1] + discretized_logistic_log_prob(
                values[:, prev:prev + 1].expand(b, k, h, w).contiguous(), coupled[prev], log_scales[:, :, prev]))
        return torch.cat([torch.stack(logits, 2), torch.stack(coupled, 2), log_scales], dim=1)

    def ordering(self, member: int = 0) -> torch.Tensor:
        return ar.raster_ordering(self.image_shape)

    def log_prob_terms(self, x: torch.Tensor) -> torch.Tensor:
        """log P(x_(i,j) | pixels before) in nats for every pixel, (B, H, W)."""
        self._check(x)
        return discretized_logistic_mixture_log_prob(x, *self.mixture(self.net_input(x)))

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, *, k: int = 1, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
        """The exact log P(x) in nats per image."""
        if k != 1:
            raise GenbenchError("pixelcnnpp's likelihood is exact: it takes no importance samples (k = 1)")
        return self.log_prob_terms(x).double().flatten(1).sum(1)

    # --- training (autoregressive.MaximumLikelihood)
    def training_log_prob(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return self.log_prob_terms(x).flatten(1).sum(1), {}

    @torch.no_grad()
    def eval_loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, float]:
        return {"loss": float(-self.log_likelihood(x).mean())}

    # --- sampling
    def _region_params(self, x_region: torch.Tensor) -> torch.Tensor:
        return self.conditionals(self.net_input(x_region))

    @staticmethod
    def draw(params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One 8-bit value per row from a sub-pixel's conditional parameters (B, 3K)."""
        k = params.shape[1] // 3
        return ar.sample_logistic_mixture(params[:, :k], params[:, k:2 * k], params[:, 2 * k:], generator)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images by cached generation, over every resolution."""
        x = torch.zeros((n, *self.image_shape), dtype=torch.uint8, device=self.device)
        return ar.sample_by_regions(self._region_params, lambda p: self.draw(p, generator), x, self.net,
                                    whole_rows=True)

    @torch.no_grad()
    def sample_naive(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """The same draws with one full network pass per sub-pixel."""
        x = torch.zeros((n, *self.image_shape), dtype=torch.uint8, device=self.device)
        return ar.sample_naive(self._region_params, lambda p: self.draw(p, generator), x)
