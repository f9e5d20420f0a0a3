"""PixelRNN with Row LSTM layers: a 256-way softmax per sub-pixel, exact likelihoods, and cached generation.

Provenance
----------
- van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks" (ICML 2016), Sec. 3.1 and
  Table 4. A 7x7 convolution with mask A; Row LSTM layers, each an LSTM run down the image one row at a time:
  the input-to-state part a 1 x k convolution over the current row masked to the pixels up to the current one
  (mask B, colour groups as in Figure 2), the state-to-state part a 1 x k convolution over the previous row's
  hidden state (k = 3: the triangular receptive field of Figure 4), gates [o, f, i, g] with c_i = f c_{i-1} +
  i g and h_i = o tanh(c_i); residual connections around every layer (Sec. 3.4: the LSTM's h features mapped
  back to 2h by a 1x1 convolution and added); ReLU and two 1x1 mask-B layers; the 256-way softmax with
  R -> G -> B inside a pixel. Published: CIFAR-10 3.07 bits/dim with Row LSTM and 3.00 with Diagonal BiLSTM
  (Table 5), binarized MNIST 80.54 nats (Row LSTM, Table 4); the CIFAR-10 models have 12 layers of h = 128
  as we read Sec. 5, trained with RMSProp (the schedule is not given in full: the standard tier's optimizer is
  genbench's choice and says so). The Diagonal BiLSTM is not implemented.
- Cached generation (baselines/autoregressive.py): each Row LSTM layer is `Regional`: while a Generation is
  open it keeps the hidden and cell state of every row it has computed and computes a region of the current
  row from the previous row's, so every new position costs one step of every layer.

Conventions as baselines/pixelcnn.py: uint8 images at the boundary, v / 127.5 - 1 inside, logits (B, 256, C,
H, W) as the conditionals. Checked in tests/baselines/test_pixelrnn.py like the PixelCNNs: no gradient from
the future, normalization by brute force, 8 bits/dim from uniform conditionals, cached against full pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.baselines import autoregressive as ar

DESCRIPTION = "PixelRNN (Row LSTM): masked 7x7 input, Row LSTM layers with residuals, 256-way softmax per sub-pixel"


@dataclass(frozen=True)
class Config:
    hidden: int = 128           # h: the LSTM's units; the residual stream carries 2h features
    layers: int = 12            # Row LSTM layers
    first_kernel: int = 7       # the mask-A input convolution
    kernel: int = 3             # k of both 1 x k convolutions of a Row LSTM layer (odd)
    output_hidden: int = 1024   # width of the 1x1 layer before the logits

    def __post_init__(self):
        if min(self.hidden, self.layers, self.output_hidden) < 1 or self.kernel % 2 == 0 or \
                self.first_kernel % 2 == 0:
            raise GenbenchError(f"pixelrnn: invalid config (positive sizes, odd kernels): {self}")


PRESETS: dict[str, Config] = {
    "smoke": Config(hidden=8, layers=1, output_hidden=16),
    # quick tier (Fashion-MNIST 28x28, 2-core CPU): see genbench/protocols/autoregressive.py for its timing
    "small": Config(hidden=32, layers=2, output_hidden=128),
    "standard": Config(hidden=128, layers=12, output_hidden=1024),
}


class RowLSTM(ar.Regional, nn.Module):
    """One Row LSTM layer from 2h input features to h hidden features (van den Oord et al. 2016a, Sec. 3.1)."""

    def __init__(self, c: int, in_groups: torch.Tensor, hidden: int, k: int):
        super().__init__()
        self.hidden, self.k = hidden, k
        gate_groups = ar.channel_groups(hidden, c).repeat(4)  # o, f, i, g: each in colour-group blocks
        # input-to-state: the current row up to the current pixel (mask B), as a Regional convolution
        self.input_to_state = ar.CausalConv2d(
            len(in_groups), 4 * hidden, (1, k // 2 + 1), (0, 0, k // 2, 0),
            mask=ar.pixelcnn_mask(gate_groups, in_groups, (1, k // 2 + 1), (0, k // 2), "B"))
        # state-to-state: the previous row's hidden state, all of it (it lies above every position of this row)
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, k, padding=k // 2, bias=False)

    def _step(self, gates_in: torch.Tensor, h_prev: torch.Tensor, c_prev: torch.Tensor):
        o, f, i, g = (gates_in + self.state_to_state(h_prev)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = self.input_to_state(x)  # (B, 4h, rows, cols): the whole image, or the generation's region
        if self._generation is None:
            b, _, h, w = x.shape
            h_prev = c_prev = x.new_zeros(b, self.hidden, w)
            rows = []
            for i in range(h):
                h_prev, c_prev = self._step(gates[:, :, i], h_prev, c_prev)
                rows.append(h_prev)
            return torch.stack(rows, dim=2)
        return self._region(gates)

    def _region(self, gates: torch.Tensor) -> torch.Tensor:
        """Rows r0 .. r1 - 1 (one row in practice), columns c0 .. c1 - 1, from the stored state of the row above."""
        (r0, r1), (c0, c1) = self._generation.rows, self._generation.cols
        height, width = self._generation.size
        p = self.k // 2
        if self._store is None:  # hidden and cell state of every row, one zero row above the image
            self._store = (gates.new_zeros(gates.shape[0], self.hidden, height + 1, width + 2 * p),
                           gates.new_zeros(gates.shape[0], self.hidden, height + 1, width + 2 * p))
        hs, cs = self._store
        out = []
        for r in range(r0, r1):
            h_prev = hs[:, :, r, c0:c1 + 2 * p]  # the row above, padded: columns c0 - p .. c1 - 1 + p
            o, f, i, g = (gates[:, :, r - r0] + F.conv1d(h_prev, self.state_to_state.weight)).chunk(4, dim=1)
            c = torch.sigmoid(f) * cs[:, :, r, c0 + p:c1 + p] + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs[:, :, r + 1, c0 + p:c1 + p], cs[:, :, r + 1, c0 + p:c1 + p] = h, c
            out.append(h)
        return torch.stack(out, dim=2)


class _Layer(nn.Module):
    def __init__(self, c: int, hidden: int, k: int):
        super().__init__()
        g2h, gh = ar.channel_groups(2 * hidden, c), ar.channel_groups(hidden, c)
        self.lstm = RowLSTM(c, g2h, hidden, k)
        self.up = ar.pointwise(gh, g2h)

    def forward(self, x):
        return x + self.up(self.lstm(x))


class RowLSTMNet(nn.Module):
    def __init__(self, c: int, cfg: Config):
        super().__init__()
        g = lambda n: ar.channel_groups(n, c)  # noqa: E731
        self.first = ar.square(torch.arange(c), g(2 * cfg.hidden), cfg.first_kernel, "A")
        self.layers = nn.Sequential(*[_Layer(c, cfg.hidden, cfg.kernel) for _ in range(cfg.layers)])
        self.out1 = ar.pointwise(g(2 * cfg.hidden), g(cfg.output_hidden))
        self.out2 = ar.pointwise(g(cfg.output_hidden), g(c * ar.VALUES))

    def forward(self, x):
        return self.out2(F.relu(self.out1(F.relu(self.layers(self.first(x))))))


class Model(ar.CategoricalModel):
    name = "pixelrnn"
    whole_rows = False  # a row's state reads only the row above and the current row up to the current pixel

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__(config, image_shape)
        self.net = RowLSTMNet(image_shape[0], config)
