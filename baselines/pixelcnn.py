"""PixelCNN and Gated PixelCNN: masked convolutions, a 256-way softmax per sub-pixel, exact likelihoods, and
cached generation.

Provenance
----------
- PixelCNN: van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks" (ICML 2016), Sec. 3.4
  and Table 4: a 7x7 convolution with mask A, residual blocks (Figure 5: ReLU, 1x1 from 2h to h, ReLU, 3x3
  mask B, ReLU, 1x1 back to 2h, added to the block's input), ReLU and two 1x1 mask-B layers, a 256-way softmax
  for every sub-pixel, colour channels in the order R -> G -> B inside a pixel (masks over the channel groups of
  Figure 2). Published: CIFAR-10 3.14 bits/dim (Table 5), binarized MNIST 81.30 nats (Table 4, the sigmoid
  output; genbench's 2-valued data gets a 256-way softmax like every other dataset, whose mass on values other
  than 0 and 255 is learnt to vanish, so its nats stay comparable). The paper gives 15 layers of h = 128 for
  its CIFAR-10 PixelCNN as we read Sec. 5.2; it does not give the training schedule in full (RMSProp is
  named for the PixelRNNs): the standard tier's optimizer is genbench's choice and says so.
- Gated PixelCNN: van den Oord et al., "Conditional Image Generation with PixelCNN Decoders" (NeurIPS 2016),
  Sec. 2.1-2.2 and Figure 2: a vertical stack (a (k/2 + 1) x k convolution over the rows up to the current
  one) and a horizontal stack (a 1 x (k/2 + 1) convolution over the current row up to the current pixel) with
  no blind spot, the vertical stack fed into the horizontal one after a shift down by one row (a 1x1 map),
  gated activations tanh(W_f * x) * sigmoid(W_g * x), a residual 1x1 in the horizontal stack. Published
  CIFAR-10 3.03 bits/dim (Table 1). The CIFAR-10 model's widths are not given in the paper; its ImageNet
  models have 20 layers of 384 channels with 5x5 filters (Sec. 3.1 / 3.2), which the standard preset follows.
- Conditional PixelCNN (the same paper, Sec. 2.3, Eq. 4): a one-hot class h enters every gated layer as a
  per-channel bias of both halves of the gate, tanh(W_f * x + V_f^T h) * sigmoid(W_g * x + V_g^T h); here each
  stack of each layer has its own V (an embedding of 2h values per class), zero at initialisation (genbench's
  choice: training starts from the unconditional network). Registered as `gated-pixelcnn-class`; its
  likelihood is log P(x | y), and evaluation reports both that and the exact marginal log sum_y P(y) P(x | y)
  (genbench/evaluate.py), so its bits/dim shares a column with the unconditional models'. The paper measures
  class conditioning on ImageNet (Sec. 3.2: a small gain in log-likelihood, a large one in sample quality), not
  on CIFAR-10, so the standard tier here has no published number to meet.
- Cached generation (baselines/autoregressive.py): Ramachandran et al. 2017, every layer computed at the new
  position only, from the activations it has stored.

Conventions
-----------
Images enter and leave as uint8 (B, C, H, W); the network reads v / 127.5 - 1. The conditionals are logits
(B, 256, C, H, W). `log_likelihood` is exact: sum over sub-pixels of log softmax at the observed value, in nats.
Sampling draws each sub-pixel by inverting its CDF at a uniform from the generator (autoregressive.
sample_categorical), so cached and naive generation give the same images from the same generator.

Checked in tests/baselines/test_pixelcnn.py: no gradient from any later sub-pixel (colour included) to any
conditional, and the Gated PixelCNN sees every earlier one (no blind spot) where PixelCNN does not; the
probabilities of every 8-bit image of tiny shapes sum to 1; zero logits give exactly 8 bits/dim; cached
generation's conditionals equal the full pass's and its images equal naive generation's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.baselines import autoregressive as ar

DESCRIPTIONS = {
    "pixelcnn": "PixelCNN: masked convolutions (mask A, then B), residual blocks, 256-way softmax per sub-pixel",
    "gated-pixelcnn": "Gated PixelCNN: vertical and horizontal stacks without blind spot, gated activations, "
                      "256-way softmax per sub-pixel",
    "gated-pixelcnn-class": "Conditional Gated PixelCNN: the Gated PixelCNN with a class bias in every gate, "
                            "exact log P(x | y) and the marginal over the classes",
}
ARCHS = ("pixelcnn", "gated")


@dataclass(frozen=True)
class Config:
    arch: str = "pixelcnn"      # "pixelcnn" (van den Oord et al. 2016a) | "gated" (2016b)
    hidden: int = 128           # h: PixelCNN's blocks carry 2h features; each gated stack carries h
    layers: int = 15            # residual blocks (pixelcnn) or gated layers after the first (gated)
    first_kernel: int = 7       # the first layer's kernel (mask A)
    kernel: int = 3             # every later layer's kernel (odd)
    output_hidden: int = 1024   # width of the 1x1 layer before the logits
    num_classes: int | None = None  # class-conditional (gated only): the number of classes; None = unconditional

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise GenbenchError(f"pixelcnn: arch must be one of {ARCHS}, got {self.arch!r}")
        if self.num_classes is not None and (self.arch != "gated" or self.num_classes < 2):
            raise GenbenchError(f"pixelcnn: class conditioning needs arch 'gated' and num_classes >= 2: {self}")
        if min(self.hidden, self.layers + 1, self.output_hidden) < 1 or self.kernel % 2 == 0 or \
                self.first_kernel % 2 == 0:
            raise GenbenchError(f"pixelcnn: invalid config (positive sizes, odd kernels): {self}")


VARIANTS: dict[str, dict[str, Config]] = {
    "pixelcnn": {
        "smoke": Config(hidden=8, layers=1, output_hidden=16),
        # quick tier (Fashion-MNIST 28x28, 2-core CPU): see genbench/protocols/autoregressive.py for its timing
        "small": Config(hidden=32, layers=5, output_hidden=128),
        "standard": Config(hidden=128, layers=15, output_hidden=1024),
    },
    "gated-pixelcnn": {
        "smoke": Config(arch="gated", hidden=8, layers=1, output_hidden=16),
        "small": Config(arch="gated", hidden=32, layers=5, output_hidden=128),
        "standard": Config(arch="gated", hidden=384, layers=19, first_kernel=7, kernel=5, output_hidden=1024),
    },
    "gated-pixelcnn-class": {  # the datasets genbench conditions on have 10 classes (fashion-mnist, cifar10)
        "smoke": Config(arch="gated", hidden=8, layers=1, output_hidden=16, num_classes=10),
        "small": Config(arch="gated", hidden=32, layers=5, output_hidden=128, num_classes=10),
        "standard": Config(arch="gated", hidden=384, layers=19, first_kernel=7, kernel=5, output_hidden=1024,
                           num_classes=10),
    },
}


class _ResidualBlock(nn.Module):
    def __init__(self, groups2h, groupsh, k):
        super().__init__()
        self.reduce, self.conv, self.expand = (ar.pointwise(groups2h, groupsh), ar.square(groupsh, groupsh, k, "B"),
                                               ar.pointwise(groupsh, groups2h))

    def forward(self, x):
        return x + self.expand(F.relu(self.conv(F.relu(self.reduce(F.relu(x))))))


class PixelCNNNet(nn.Module):
    """Logits (B, C * 256, H, W) from the image (B, C, H, W) on [-1, 1]."""

    def __init__(self, c: int, cfg: Config):
        super().__init__()
        g = lambda n: ar.channel_groups(n, c)  # noqa: E731
        self.first = ar.square(torch.arange(c), g(2 * cfg.hidden), cfg.first_kernel, "A")
        self.blocks = nn.Sequential(*[_ResidualBlock(g(2 * cfg.hidden), g(cfg.hidden), cfg.kernel)
                                      for _ in range(cfg.layers)])
        self.out1 = ar.pointwise(g(2 * cfg.hidden), g(cfg.output_hidden))
        self.out2 = ar.pointwise(g(cfg.output_hidden), g(c * ar.VALUES))

    def forward(self, x):
        return self.out2(F.relu(self.out1(F.relu(self.blocks(self.first(x))))))


def _gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class _GatedLayer(nn.Module):
    """One layer of both stacks (Figure 2 of van den Oord et al. 2016b). The horizontal stack's channels carry
    colour groups; the vertical stack sees rows above only (after the shift), so every group may read all of it."""

    def __init__(self, c: int, h: int, k: int, first: bool, in_ch: int, num_classes: int | None = None):
        super().__init__()
        gate_groups = ar.channel_groups(h, c).repeat(2)  # tanh half, then sigmoid half, each in group blocks
        in_groups = torch.arange(c) if first else ar.channel_groups(h, c)
        kind = "A" if first else "B"
        self.vertical = ar.CausalConv2d(in_ch, 2 * h, (k // 2 + 1, k), (k // 2, 0, k // 2, k // 2))
        # the vertical features of the row above, mapped into the horizontal stack (a shift down by one row)
        self.down = ar.CausalConv2d(2 * h, 2 * h, (2, 1), (1, 0, 0, 0), mask=_row_above(2 * h))
        self.horizontal = ar.masked(in_groups, gate_groups, (1, k // 2 + 1), (0, k // 2), kind, (0, 0, k // 2, 0))
        self.residual = None if first else ar.pointwise(ar.channel_groups(h, c), ar.channel_groups(h, c))
        if num_classes is not None:  # V_f^T h and V_g^T h of each stack (Eq. 4): a bias per class and channel
            self.class_v, self.class_h = nn.Embedding(num_classes, 2 * h), nn.Embedding(num_classes, 2 * h)
            nn.init.zeros_(self.class_v.weight)
            nn.init.zeros_(self.class_h.weight)

    def forward(self, v, x, labels=None):
        v_pre, x_pre = self.vertical(v), self.horizontal(x)
        if labels is not None:
            v_pre = v_pre + self.class_v(labels)[:, :, None, None]
            x_pre = x_pre + self.class_h(labels)[:, :, None, None]
        out = _gate(x_pre + self.down(v_pre))
        return _gate(v_pre), out if self.residual is None else x + self.residual(out)


def _row_above(ch: int) -> torch.Tensor:
    mask = torch.ones(ch, ch, 2, 1)
    mask[:, :, 1] = 0.0  # the current row: the vertical stack's own row is never read
    return mask


class GatedPixelCNNNet(nn.Module):
    def __init__(self, c: int, cfg: Config):
        super().__init__()
        h = cfg.hidden
        n = cfg.num_classes
        self.layers = nn.ModuleList([_GatedLayer(c, h, cfg.first_kernel, True, c, n)] +
                                    [_GatedLayer(c, h, cfg.kernel, False, h, n) for _ in range(cfg.layers)])
        g = lambda n: ar.channel_groups(n, c)  # noqa: E731
        self.out1 = ar.pointwise(g(h), g(cfg.output_hidden))
        self.out2 = ar.pointwise(g(cfg.output_hidden), g(c * ar.VALUES))

    def forward(self, x, labels=None):
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, labels)
        return self.out2(F.relu(self.out1(F.relu(h))))


class Model(ar.CategoricalModel):
    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        self.net = (PixelCNNNet if config.arch == "pixelcnn" else GatedPixelCNNNet)(image_shape[0], config)
        self.name = "pixelcnn" if config.arch == "pixelcnn" else \
            "gated-pixelcnn" if config.num_classes is None else "gated-pixelcnn-class"
        self.whole_rows = config.arch == "gated"  # the vertical stack's row i reads all of row i
