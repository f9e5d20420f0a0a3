"""The invertible layers of the discrete normalizing flows (baselines/flows.py) and the networks inside their
couplings: NICE's additive coupling and diagonal scaling, RealNVP's affine couplings with checkerboard and channel
masks and its squeeze, Glow's actnorm, invertible 1x1 convolution in LU form, sigmoid-scaled affine coupling and
learned priors, and the multi-scale factoring-out.

Provenance
----------
- NICE: Dinh, Krueger & Bengio, "NICE: Non-linear Independent Components Estimation" (ICLR 2015 workshop,
  arXiv:1410.8516), Sec. 3.2 (additive coupling y_2 = x_2 + m(x_1) on a partition of the vector into odd and even
  components, the partition alternating between layers; m a ReLU MLP with linear outputs) and Sec. 3.3 (the
  diagonal scaling layer y = exp(S) x, log-det sum S).
- RealNVP: Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP" (ICLR 2017), Eq. 9 (the masked
  affine coupling y = b x + (1 - b) (x exp(s(b x)) + t(b x))), Sec. 3.4 (checkerboard and channel-wise masks,
  the squeeze of each 2x2x1 block into 1x1x4), Sec. 3.6 (multi-scale factoring-out of half the dimensions).
  Checked in tensorflow/models research/real_nvp/real_nvp_multiscale_dataset.py: s = scale * tanh(s') with a
  learned scale (there one scalar initialized at 0; here one per channel initialized at 1, the network's last
  layer initialized at zero instead, so that every coupling starts as the identity either way), the mask given
  to the network as an extra input channel.
- Glow: Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions" (NeurIPS 2018), Table 1:
  actnorm y = s (x + b) per channel with data-dependent initialization (zero mean, unit variance per channel on
  the first batch), the invertible 1x1 convolution W = P L (U + diag(s)) with log-det h w sum log|s| (Sec. 3.2,
  the LU form), the affine coupling with NN() a 3x3 - 1x1 - zero-initialized 3x3 convolution stack. Checked in
  openai/glow: model.py (revnet2d_step: scale = sigmoid(h + 2), shift added before scaling; f(); split2d and
  split2d_prior: the factored-out half is Gaussian with mean and log-std a zero-initialized convolution of the
  kept half; prior with --learntop), tfops.py (actnorm: b = -mean, logs = log(1 / (std + 1e-6)), the std taken
  after centring; conv2d_zeros: output times exp(3 logs)). Departures: the reference's logscale_factor
  re-parametrization of actnorm (logs stored divided by 3) and its edge-bias padding channel are not used;
  openai/glow's default 1x1 convolution is the plain-matrix version, the LU one (used here) its documented
  alternative.

Conventions
-----------
Every bijection maps x -> y by `forward(x, cond=None) -> (y, log|det dy/dx|)`, the log-det a (B,) tensor in x's
dtype, and back by `inverse(y, cond=None) -> x`. `cond` (B, F, H, W) is read only by the couplings (the
conditional flow of variational dequantization), ignored elsewhere. Images inside are (B, C, H, W) floats;
NICE's layers act on flat (B, D) vectors.

ActNorm initializes itself on the first batch it sees in training mode; the flag (`initialized`) and the values
are in the state dict, so a loaded model never re-initializes. Before initialization, and in evaluation mode, an
uninitialized actnorm is the identity (b = 0, logs = 0): still a valid flow.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTNORM_EPS = 1e-6      # openai/glow tfops.actnorm_scale: logs = log(1 / (std + 1e-6))
GLOW_SCALE_SHIFT = 2.0  # openai/glow revnet2d_step: scale = sigmoid(h + 2), close to 0.88 at initialization
ZERO_CONV_LOGSCALE = 3.0  # openai/glow tfops.conv2d_zeros: output times exp(logs * 3)
COUPLING_KINDS = ("additive", "affine-tanh", "affine-sigmoid")


def _per_image(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the batch: (B, ...) -> (B,)."""
    return t.flatten(1).sum(1)


def _coupling_transform(kind: str, h: torch.Tensor, x: torch.Tensor, inverse: bool
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """The elementwise map of a coupling from the network's output h, and its log-derivative per element.

    additive (NICE, Glow's additive option): y = x + t, h = t. affine-tanh (RealNVP Eq. 9): h = (s', t),
    s = scale * tanh(s') (the caller has applied the scale), y = x exp(s) + t. affine-sigmoid (openai/glow):
    h = (t, s'), y = (x + t) sigmoid(s' + 2). With inverse, x is the output y and the inverse map is applied; the
    log-derivative is always that of the forward map."""
    if kind == "additive":
        return (x - h if inverse else x + h), torch.zeros_like(x)
    if kind == "affine-tanh":
        s, t = h.chunk(2, dim=1)
        return ((x - t) * torch.exp(-s) if inverse else x * torch.exp(s) + t), s
    t, raw = h.chunk(2, dim=1)
    log_scale = F.logsigmoid(raw + GLOW_SCALE_SHIFT)
    return (x * torch.exp(-log_scale) - t if inverse else (x + t) * torch.exp(log_scale)), log_scale


class CheckerboardCoupling(nn.Module):
    """RealNVP's coupling with a spatial checkerboard mask (Eq. 9, Sec. 3.4): b(i, j) = 1 where (i + j + parity)
    is even; y = b x + (1 - b) f(x; NN(b x, b, cond)), the network reading the masked image, the mask as one more
    channel, and `cond` where given. Log-det: the sum of f's log-derivative over the positions with b = 0."""

    def __init__(self, channels: int, parity: int, net: nn.Module, kind: str = "affine-tanh"):
        super().__init__()
        if kind not in COUPLING_KINDS:
            raise ValueError(f"unknown coupling kind {kind!r}; expected one of {COUPLING_KINDS}")
        self.parity, self.net, self.kind = parity, net, kind
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1)) if kind == "affine-tanh" else None

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """b, (1, 1, H, W) in x's dtype."""
        h, w = x.shape[-2:]
        i = torch.arange(h, device=x.device)[:, None]
        j = torch.arange(w, device=x.device)[None, :]
        return ((i + j + self.parity) % 2 == 0).to(x.dtype)[None, None]

    def _h(self, x: torch.Tensor, b: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        parts = [x * b, b.expand(x.shape[0], 1, *x.shape[2:])] + ([cond] if cond is not None else [])
        h = self.net(torch.cat(parts, dim=1))
        if self.scale is not None:
            s, t = h.chunk(2, dim=1)
            h = torch.cat([self.scale * torch.tanh(s), t], dim=1)
        return h

    def forward(self, x, cond=None):
        b = self.mask(x)
        y, log_d = _coupling_transform(self.kind, self._h(x, b, cond), x, inverse=False)
        return b * x + (1 - b) * y, _per_image((1 - b) * log_d)

    def inverse(self, y, cond=None):
        b = self.mask(y)
        x, _ = _coupling_transform(self.kind, self._h(y, b, cond), y, inverse=True)  # b y = b x
        return b * y + (1 - b) * x


class ChannelCoupling(nn.Module):
    """A coupling over the two halves of the channels (RealNVP's channel-wise mask, Sec. 3.4; Glow's affine
    coupling, Table 1): (x_a, x_b) = split(x), y_b = f(x_b; NN(x_a, cond)), y_a = x_a. parity 0 conditions on
    the first half, parity 1 on the second."""

    def __init__(self, channels: int, parity: int, net: nn.Module, kind: str = "affine-sigmoid"):
        super().__init__()
        if kind not in COUPLING_KINDS:
            raise ValueError(f"unknown coupling kind {kind!r}; expected one of {COUPLING_KINDS}")
        if channels % 2:
            raise ValueError(f"a channel coupling needs an even number of channels, got {channels}")
        self.parity, self.net, self.kind = parity, net, kind
        self.scale = nn.Parameter(torch.ones(1, channels // 2, 1, 1)) if kind == "affine-tanh" else None

    def _split(self, x):
        a, b = x.chunk(2, dim=1)
        return (a, b) if self.parity == 0 else (b, a)

    def _join(self, kept, changed):
        return torch.cat([kept, changed] if self.parity == 0 else [changed, kept], dim=1)

    def _h(self, kept: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = self.net(kept if cond is None else torch.cat([kept, cond], dim=1))
        if self.scale is not None:
            s, t = h.chunk(2, dim=1)
            h = torch.cat([self.scale * torch.tanh(s), t], dim=1)
        return h

    def forward(self, x, cond=None):
        kept, changed = self._split(x)
        y, log_d = _coupling_transform(self.kind, self._h(kept, cond), changed, inverse=False)
        return self._join(kept, y), _per_image(log_d)

    def inverse(self, y, cond=None):
        kept, changed = self._split(y)
        x, _ = _coupling_transform(self.kind, self._h(kept, cond), changed, inverse=True)
        return self._join(kept, x)


class VectorCoupling(nn.Module):
    """NICE's additive coupling on a flat vector (Sec. 3.2, 5.1): I_1 the components of index parity, parity + 2,
    ..., I_2 the others; y_I1 = x_I1, y_I2 = x_I2 + m(x_I1). Volume-preserving: log-det 0."""

    def __init__(self, parity: int, net: nn.Module):
        super().__init__()
        self.parity, self.net = parity, net

    def _move(self, x: torch.Tensor, sign: float) -> torch.Tensor:
        p = self.parity
        out = x.clone()
        out[:, 1 - p::2] = x[:, 1 - p::2] + sign * self.net(x[:, p::2])
        return out

    def forward(self, x, cond=None):
        return self._move(x, 1.0), x.new_zeros(x.shape[0])

    def inverse(self, y, cond=None):
        return self._move(y, -1.0)


class DiagonalScaling(nn.Module):
    """NICE's last layer (Sec. 3.3): y = exp(S) x, log-det sum S, S initialized at 0."""

    def __init__(self, dims: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dims))

    def forward(self, x, cond=None):
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y, cond=None):
        return y * torch.exp(-self.log_scale)


class ActNorm(nn.Module):
    """Glow's activation normalization (Table 1): y = (x + b) exp(logs) per channel, log-det h w sum logs.

    Data-dependent initialization on the first batch seen in training mode: b = -mean(x), logs = -log(std(x) +
    1e-6) per channel (the std after centring, as openai/glow's tfops.actnorm), so that y has zero mean and unit
    variance per channel on that batch. `initialized` is a persistent buffer: it and the initial values travel
    with the state dict, and a model that loads them never initializes again."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(0, 2, 3), keepdim=True).sqrt()
        self.bias.copy_(-mean)
        self.logs.copy_(-torch.log(std + ACTNORM_EPS))
        self.initialized.fill_(True)

    def forward(self, x, cond=None):
        if self.training and not bool(self.initialized):
            self._initialize(x)
        y = (x + self.bias) * torch.exp(self.logs)
        return y, (self.logs.sum() * (x.shape[2] * x.shape[3])).expand(x.shape[0])

    def inverse(self, y, cond=None):
        return y * torch.exp(-self.logs) - self.bias


class InvConv1x1(nn.Module):
    """Glow's invertible 1x1 convolution in LU form (Sec. 3.2): W = P L (U + diag(s)), P a fixed permutation, L
    lower triangular with unit diagonal, U strictly upper triangular, s = sign * exp(log_s) with the signs fixed;
    log|det| = h w sum log|s| = h w sum log_s. Initialized from a random rotation (QR of a Gaussian matrix from
    torch's global RNG) and its LU decomposition, as Sec. 3.2 describes."""

    def __init__(self, channels: int):
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))[0]
        p, lower, upper = torch.linalg.lu(w)
        s = upper.diagonal()
        self.register_buffer("P", p.float())
        self.register_buffer("sign_s", s.sign().float())
        self.L = nn.Parameter(lower.tril(-1).float())
        self.U = nn.Parameter(upper.triu(1).float())
        self.log_s = nn.Parameter(s.abs().log().float())

    def weight(self) -> torch.Tensor:
        """W (C, C): y[:, i] = sum_j W[i, j] x[:, j] at every position. Entries of L on or above the diagonal and
        of U on or below it are ignored (masked), so they never change W."""
        eye = torch.eye(self.L.shape[0], dtype=self.L.dtype, device=self.L.device)
        lower = self.L.tril(-1) + eye
        upper = self.U.triu(1) + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.P @ lower @ upper

    def forward(self, x, cond=None):
        w = self.weight()
        return F.conv2d(x, w[:, :, None, None]), (self.log_s.sum() * (x.shape[2] * x.shape[3])).expand(x.shape[0])

    def inverse(self, y, cond=None):
        w_inv = torch.linalg.inv(self.weight().double()).to(y.dtype)  # float64: exact to rounding in float32
        return F.conv2d(y, w_inv[:, :, None, None])


class Squeeze(nn.Module):
    """RealNVP Sec. 3.6 (Figure 3): each 2x2 block of a channel becomes 4 channels, (B, C, H, W) ->
    (B, 4C, H/2, W/2); a permutation, log-det 0. Output channel 4c + 2a + b holds input channel c at offset
    (a, b) of each block."""

    def forward(self, x, cond=None):
        b, c, h, w = x.shape
        y = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return y, x.new_zeros(b)

    def inverse(self, y, cond=None):
        b, c4, h, w = y.shape
        c = c4 // 4
        return y.reshape(b, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c, 2 * h, 2 * w)


class Flatten(nn.Module):
    """(B, C, H, W) -> (B, C H W), for NICE's vector layers; log-det 0."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x, cond=None):
        return x.flatten(1), x.new_zeros(x.shape[0])

    def inverse(self, y, cond=None):
        return y.reshape(y.shape[0], *self.shape)


class Logit(nn.Module):
    """RealNVP's preprocessing (Sec. 4.1; data_constraint = 0.9 in the reference code): y in (0, 1) ->
    w = logit(p), p = alpha + (1 - 2 alpha) y; log-det sum log(1 - 2 alpha) - log p - log(1 - p)."""

    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, x, cond=None):
        p = self.alpha + (1 - 2 * self.alpha) * x
        log_p, log_1mp = torch.log(p), torch.log1p(-p)
        return log_p - log_1mp, _per_image(math.log(1 - 2 * self.alpha) - log_p - log_1mp)

    def inverse(self, y, cond=None):
        return (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)


class Shift(nn.Module):
    """w = y - 1/2: the dequantized image centred on [-1/2, 1/2) (openai/glow preprocess); log-det 0."""

    def forward(self, x, cond=None):
        return x - 0.5, x.new_zeros(x.shape[0])

    def inverse(self, y, cond=None):
        return y + 0.5


class FactorOut(nn.Module):
    """Multi-scale factoring-out (RealNVP Sec. 3.6, Glow's split2d): the second half of the channels leaves the
    flow as a latent, the first half flows on. learned=False (RealNVP): the emitted half is the latent itself, its
    prior the base distribution. learned=True (openai/glow split2d_prior): its prior is N(mu, exp(logs)^2) with
    (mu, logs) a zero-initialized 3x3 convolution of the kept half, and the emitted latent is the standardized
    eps = (z_2 - mu) exp(-logs), log-det -sum logs, so every latent of the model has the base distribution and
    the temperature of sampling scales eps (openai/glow: pz.sample2(pz.eps * eps_std))."""

    def __init__(self, channels: int, learned: bool):
        super().__init__()
        self.prior = ZeroConv2d(channels // 2, channels) if learned else None

    def _mu_logs(self, kept):
        return self.prior(kept).chunk(2, dim=1)

    def forward(self, x) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> (kept, emitted latent, log-det)."""
        kept, out = x.chunk(2, dim=1)
        if self.prior is None:
            return kept, out, x.new_zeros(x.shape[0])
        mu, logs = self._mu_logs(kept)
        return kept, (out - mu) * torch.exp(-logs), -_per_image(logs)

    def inverse(self, kept: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        if self.prior is not None:
            mu, logs = self._mu_logs(kept)
            eps = mu + torch.exp(logs) * eps
        return torch.cat([kept, eps], dim=1)


class LearnedPrior(nn.Module):
    """Glow's learned top prior (openai/glow prior() with --learntop: mean and log-std a zero-initialized
    convolution of zeros, i.e. learned per channel) as a bijection to the standardized latent:
    eps = (z - mu) exp(-logs), log-det -h w sum logs."""

    def __init__(self, channels: int):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x, cond=None):
        return (x - self.mu) * torch.exp(-self.logs), -(self.logs.sum() * (x.shape[2] * x.shape[3])).expand(x.shape[0])

    def inverse(self, y, cond=None):
        return self.mu + torch.exp(self.logs) * y


# ---------------------------------------------------------------------------------------------------------
# The networks inside the couplings

class ZeroConv2d(nn.Module):
    """openai/glow's conv2d_zeros: a 3x3 convolution initialized at zero whose output is scaled by exp(3 logs)
    per channel (logs initialized at 0): the last layer of NN() and of the split prior, so each starts at 0."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.logs = nn.Parameter(torch.zeros(1, out_channels, 1, 1))

    def forward(self, x):
        return self.conv(x) * torch.exp(ZERO_CONV_LOGSCALE * self.logs)


class ConvActNorm(nn.Module):
    """A convolution without bias followed by actnorm (openai/glow's tfops.conv2d): the normalization inside the
    coupling networks, batch-independent, where RealNVP had batch normalization."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False)
        self.norm = ActNorm(out_channels)

    def forward(self, x):
        return self.norm(self.conv(x))[0]


class GlowNet(nn.Sequential):
    """NN() of Glow's affine coupling (openai/glow model.f): 3x3 conv + actnorm + ReLU, 1x1 conv + actnorm + ReLU,
    zero-initialized 3x3 conv."""

    def __init__(self, in_channels: int, width: int, out_channels: int):
        super().__init__(ConvActNorm(in_channels, width, 3), nn.ReLU(), ConvActNorm(width, width, 1), nn.ReLU(),
                         ZeroConv2d(width, out_channels))


class ResidualBlock(nn.Module):
    """x + conv(ReLU(conv + actnorm (ReLU(x)))): the residual block of RealNVP's s and t networks with actnorm where
    the paper has batch normalization."""

    def __init__(self, width: int):
        super().__init__()
        self.inner = ConvActNorm(width, width, 3)
        self.outer = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x):
        return x + self.outer(torch.relu(self.inner(torch.relu(x))))


class ResNet(nn.Module):
    """RealNVP's s and t network (Sec. 4.1: deep residual networks): a 3x3 conv + actnorm to `width` channels,
    `blocks` residual blocks, ReLU and a zero-initialized 3x3 conv to the outputs."""

    def __init__(self, in_channels: int, width: int, out_channels: int, blocks: int):
        super().__init__()
        self.inp = ConvActNorm(in_channels, width, 3)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.out = nn.Conv2d(width, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x):
        return self.out(torch.relu(self.blocks(self.inp(x))))


class MLP(nn.Sequential):
    """NICE's coupling function m (Sec. 5.1): `depth` ReLU hidden layers of `hidden` units, linear outputs."""

    def __init__(self, in_features: int, hidden: int, depth: int, out_features: int):
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(in_features if i == 0 else hidden, hidden), nn.ReLU()]
        super().__init__(*layers, nn.Linear(hidden if depth else in_features, out_features))


def coupling_outputs(kind: str, channels: int) -> int:
    """Output channels of the network of a coupling that changes `channels` channels: t, or (s, t)."""
    return channels if kind == "additive" else 2 * channels
