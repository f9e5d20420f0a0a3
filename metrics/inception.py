"""inception-v3-compat: the Inception-v3 network of the TensorFlow graph of 2015-12-05, the FID/IS standard.

Provenance. Network: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision" (2016), as
frozen in the TensorFlow graph `inception-2015-12-05` that the original FID (Heusel et al. 2017) and Inception
Score (Salimans et al. 2016) code evaluate. Reference implementation: torch-fidelity's `inception-v3-compat`
(the PyTorch port of that graph). This module is genbench's own implementation of the same function; it reads
the same state-dict file (identical key names, see `LAYOUT`) and was checked against torch-fidelity 0.4.0 on
identical inputs and weights (tests/metrics/test_features.py): features and logits agree within 1e-4 relative,
and the resize is bit-identical.

What the graph computes, in order:
  1. uint8 (B, 3, H, W) -> float32, bilinear resize to 299x299 the TensorFlow 1.x way (align_corners=False,
     no half-pixel centres: source coordinate = i * in/out, clamped at the last pixel) -> `resize_bilinear_tf1`;
  2. (x - 128) / 128;
  3. stem of five conv-BN-ReLU units and two 3x3/2 max pools, then the mixed blocks 5b-5d (A), 6a (B),
     6b-6e (C), 7a (D), 7b-7c (E). Two quirks of the graph: the average pools inside the blocks exclude the
     zero padding from the mean (count_include_pad=False), and the pool branch of the last block (7c) is a
     3x3/1 max pool, not an average pool;
  4. global average pool -> the 2048-d "features" (torch-fidelity's '2048');
  5. features @ fc.weight.T, without the bias -> the 1008-d "logits" (torch-fidelity's 'logits_unbiased',
     the input of the Inception Score).

Speed on CPU comes from doing the same arithmetic with less memory traffic, not from approximations:
  - eval-mode batch norm is folded into the preceding convolution at load time (in float64, then float32);
  - the 1x1 convolutions of a block that read the same input run as one wider convolution;
  - in the avg-pool branches the 1x1 convolution runs before the pool: both are linear, the pool's weights
    sum to 1 and are the same for every channel, so avgpool(conv(x) + b) == conv(avgpool(x)) + b exactly in
    real arithmetic, and the pool then averages 32-192 channels instead of 192-1280;
  - activations are channels-last; on CPU each conv + bias + ReLU is one oneDNN kernel on weights laid out
    once (`ConvReLU`); forward runs in torch.inference_mode and parameters never require grad.
Rounding differs from the reference only in the last bits: with synthetic weights the features and logits
agree with torch-fidelity's to ~5e-7 relative. Throughput on a 2-core CPU: ~1.7x torch-fidelity's
(benchmarks/bench_inception.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genbench import GenbenchError

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008  # the 2015 graph's classifier: 1000 ImageNet classes + 8 unused
BN_EPS = 1e-3

# The weights file torch-fidelity downloads for inception-v3-compat (a conversion of the TF graph's weights;
# pytorch-fid publishes the same bytes as pt_inception-2015-12-05-6726825d.pth).
INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_FILENAMES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
# Expected sha256 of that file (95,628,359 bytes). It could not be computed here (no network, file absent): the
# value is the one several independent public records give for both file names above, and it agrees with the
# 8-hex-digit prefix `6726825d` that both URLs carry (torch hub's naming convention for a sha256 prefix).
# If a genuine download is ever rejected, this one constant is what to re-check.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"


# ---------------------------------------------------------------------------------------------------------------
# Layout: every conv-BN unit of the graph, by its state-dict prefix. The file holds, per prefix,
# `{prefix}.conv.weight` (out, in, kh, kw), `{prefix}.bn.{weight,bias,running_mean,running_var}` (out,)
# [and `{prefix}.bn.num_batches_tracked`, ignored], plus `fc.weight` (1008, 2048) and `fc.bias` (1008,).


@dataclass(frozen=True)
class Unit:
    cin: int
    cout: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)


def _block_a(cin: int, pool: int) -> dict[str, Unit]:
    return {
        "branch1x1": Unit(cin, 64, (1, 1)),
        "branch5x5_1": Unit(cin, 48, (1, 1)),
        "branch5x5_2": Unit(48, 64, (5, 5), padding=(2, 2)),
        "branch3x3dbl_1": Unit(cin, 64, (1, 1)),
        "branch3x3dbl_2": Unit(64, 96, (3, 3), padding=(1, 1)),
        "branch3x3dbl_3": Unit(96, 96, (3, 3), padding=(1, 1)),
        "branch_pool": Unit(cin, pool, (1, 1)),
    }


def _block_b(cin: int) -> dict[str, Unit]:
    return {
        "branch3x3": Unit(cin, 384, (3, 3), stride=2),
        "branch3x3dbl_1": Unit(cin, 64, (1, 1)),
        "branch3x3dbl_2": Unit(64, 96, (3, 3), padding=(1, 1)),
        "branch3x3dbl_3": Unit(96, 96, (3, 3), stride=2),
    }


def _block_c(cin: int, c7: int) -> dict[str, Unit]:
    row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) of the factorized 7x7
    return {
        "branch1x1": Unit(cin, 192, (1, 1)),
        "branch7x7_1": Unit(cin, c7, (1, 1)),
        "branch7x7_2": Unit(c7, c7, row[0], padding=row[1]),
        "branch7x7_3": Unit(c7, 192, col[0], padding=col[1]),
        "branch7x7dbl_1": Unit(cin, c7, (1, 1)),
        "branch7x7dbl_2": Unit(c7, c7, col[0], padding=col[1]),
        "branch7x7dbl_3": Unit(c7, c7, row[0], padding=row[1]),
        "branch7x7dbl_4": Unit(c7, c7, col[0], padding=col[1]),
        "branch7x7dbl_5": Unit(c7, 192, row[0], padding=row[1]),
        "branch_pool": Unit(cin, 192, (1, 1)),
    }


def _block_d(cin: int) -> dict[str, Unit]:
    return {
        "branch3x3_1": Unit(cin, 192, (1, 1)),
        "branch3x3_2": Unit(192, 320, (3, 3), stride=2),
        "branch7x7x3_1": Unit(cin, 192, (1, 1)),
        "branch7x7x3_2": Unit(192, 192, (1, 7), padding=(0, 3)),
        "branch7x7x3_3": Unit(192, 192, (7, 1), padding=(3, 0)),
        "branch7x7x3_4": Unit(192, 192, (3, 3), stride=2),
    }


def _block_e(cin: int) -> dict[str, Unit]:
    return {
        "branch1x1": Unit(cin, 320, (1, 1)),
        "branch3x3_1": Unit(cin, 384, (1, 1)),
        "branch3x3_2a": Unit(384, 384, (1, 3), padding=(0, 1)),
        "branch3x3_2b": Unit(384, 384, (3, 1), padding=(1, 0)),
        "branch3x3dbl_1": Unit(cin, 448, (1, 1)),
        "branch3x3dbl_2": Unit(448, 384, (3, 3), padding=(1, 1)),
        "branch3x3dbl_3a": Unit(384, 384, (1, 3), padding=(0, 1)),
        "branch3x3dbl_3b": Unit(384, 384, (3, 1), padding=(1, 0)),
        "branch_pool": Unit(cin, 192, (1, 1)),
    }


STEM = {
    "Conv2d_1a_3x3": Unit(3, 32, (3, 3), stride=2),  # (B, 32, 149, 149)
    "Conv2d_2a_3x3": Unit(32, 32, (3, 3)),  # (B, 32, 147, 147)
    "Conv2d_2b_3x3": Unit(32, 64, (3, 3), padding=(1, 1)),  # (B, 64, 147, 147) -> max pool (B, 64, 73, 73)
    "Conv2d_3b_1x1": Unit(64, 80, (1, 1)),  # (B, 80, 73, 73)
    "Conv2d_4a_3x3": Unit(80, 192, (3, 3)),  # (B, 192, 71, 71) -> max pool (B, 192, 35, 35)
}
BLOCKS = {  # name: (kind, units); shapes after each block in the comments
    "Mixed_5b": ("A", _block_a(192, 32)),  # (B, 256, 35, 35)
    "Mixed_5c": ("A", _block_a(256, 64)),  # (B, 288, 35, 35)
    "Mixed_5d": ("A", _block_a(288, 64)),  # (B, 288, 35, 35)
    "Mixed_6a": ("B", _block_b(288)),  # (B, 768, 17, 17)
    "Mixed_6b": ("C", _block_c(768, 128)),  # (B, 768, 17, 17)
    "Mixed_6c": ("C", _block_c(768, 160)),
    "Mixed_6d": ("C", _block_c(768, 160)),
    "Mixed_6e": ("C", _block_c(768, 192)),
    "Mixed_7a": ("D", _block_d(768)),  # (B, 1280, 8, 8)
    "Mixed_7b": ("E-avg", _block_e(1280)),  # (B, 2048, 8, 8)
    "Mixed_7c": ("E-max", _block_e(2048)),  # (B, 2048, 8, 8)
}
LAYOUT: dict[str, Unit] = {**STEM}
LAYOUT.update({f"{block}.{name}": unit for block, (_, units) in BLOCKS.items() for name, unit in units.items()})


def state_dict_shapes() -> dict[str, tuple[int, ...]]:
    """Every key the weights file must hold, with its shape (num_batches_tracked, optional, is left out)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for prefix, u in LAYOUT.items():
        shapes[f"{prefix}.conv.weight"] = (u.cout, u.cin, *u.kernel)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.bn.{stat}"] = (u.cout,)
    shapes["fc.weight"] = (NUM_CLASSES, FEATURE_DIM)
    shapes["fc.bias"] = (NUM_CLASSES,)
    return shapes


def check_state_dict(state: dict, source: str) -> None:
    """Raise a GenbenchError naming `source` unless `state` holds exactly the inception-v3-compat keys/shapes."""
    if not isinstance(state, dict):
        raise GenbenchError(f"{source}: expected an inception-v3-compat state dict, found {type(state).__name__}.")
    expected = state_dict_shapes()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(k for k in set(state) - set(expected) if not k.endswith(".bn.num_batches_tracked"))
    wrong = sorted(k for k in expected if k in state and tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[:3]})"] if missing else []
        parts += [f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"] if unexpected else []
        parts += [f"{k}: {tuple(state[k].shape)} instead of {expected[k]}" for k in wrong[:3]]
        raise GenbenchError(
            f"{source} is not an inception-v3-compat weights file (keys as in torch-fidelity's "
            f"FeatureExtractorInceptionV3): {'; '.join(parts)}."
        )


def synthetic_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights in the file's layout, for tests and benchmarks where the real file is absent.

    Scales keep activations finite and varied through all 94 units: He-normal convolutions, BN scales in
    [0.5, 1.5], small shifts and means, variances in [0.5, 2]; float32 like the real file.
    """
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for prefix, u in LAYOUT.items():
        fan_in = u.cin * u.kernel[0] * u.kernel[1]
        state[f"{prefix}.conv.weight"] = torch.randn(u.cout, u.cin, *u.kernel, generator=g) * (2.0 / fan_in) ** 0.5
        state[f"{prefix}.bn.weight"] = torch.rand(u.cout, generator=g) + 0.5
        state[f"{prefix}.bn.bias"] = torch.randn(u.cout, generator=g) * 0.1
        state[f"{prefix}.bn.running_mean"] = torch.randn(u.cout, generator=g) * 0.1
        state[f"{prefix}.bn.running_var"] = torch.rand(u.cout, generator=g) * 1.5 + 0.5
        state[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)
    state["fc.weight"] = torch.randn(NUM_CLASSES, FEATURE_DIM, generator=g) / FEATURE_DIM**0.5
    state["fc.bias"] = torch.randn(NUM_CLASSES, generator=g) * 0.1
    return state


# ---------------------------------------------------------------------------------------------------------------
# Preprocessing


def resize_bilinear_tf1(x: torch.Tensor, size: int) -> torch.Tensor:
    """Float (B, C, H, W) -> (B, C, size, size), bilinear as TensorFlow 1.x `resize_bilinear` computes it.

    Output pixel i reads source coordinate s = i * (in / out) (float32), i.e. align_corners=False without
    half-pixel centres; lo = floor(s), hi = min(lo + 1, in - 1), and the value is a + (b - a) * (s - lo),
    along the width first, then along the height. The operation order matches the reference port exactly,
    so the result is bit-identical to it on CPU. Interpolating every source row along the width once, then
    picking rows, does the same float operations per output pixel with fewer gathers.
    """
    h_in, w_in = x.shape[-2:]

    def grid(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = torch.arange(size, dtype=torch.float32, device=x.device) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = s.long()
        return lo, (lo + 1).clamp_max(n_in - 1), s - lo.float()

    xlo, xhi, dx = grid(w_in)
    ylo, yhi, dy = grid(h_in)
    left, right = x.index_select(3, xlo), x.index_select(3, xhi)  # (B, C, H, size)
    rows = left + (right - left) * dx  # (B, C, H, size): every source row resized along the width
    top, bottom = rows.index_select(2, ylo), rows.index_select(2, yhi)  # (B, C, size, size)
    return top + (bottom - top) * dy.view(size, 1)


# ---------------------------------------------------------------------------------------------------------------
# Network (batch norm folded; every unit is conv + bias + ReLU)


def _folded(state: dict, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight and bias with the eval-mode batch norm folded in: BN(conv(x)) = conv'(x) + b'."""
    w = state[f"{prefix}.conv.weight"].double()
    gamma, beta = state[f"{prefix}.bn.weight"].double(), state[f"{prefix}.bn.bias"].double()
    mean, var = state[f"{prefix}.bn.running_mean"].double(), state[f"{prefix}.bn.running_var"].double()
    scale = gamma / torch.sqrt(var + BN_EPS)
    return (w * scale.view(-1, 1, 1, 1)).float(), (beta - mean * scale).float()


@functools.cache
def _has_fused_ops() -> bool:
    mkldnn = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(mkldnn, "_convolution_pointwise")
        and hasattr(mkldnn, "_reorder_convolution_weight")
    )


def _mkldnn_fusable(x: torch.Tensor) -> bool:
    """Whether oneDNN's fused conv + bias + ReLU kernel with pre-packed weights can run on `x`."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and _has_fused_ops()


class ConvReLU(nn.Module):
    """One or more conv-BN-ReLU units of the graph that read the same input, folded and run as one conv.

    `relu=False` leaves the ReLU to the caller (the avg-pool branch applies it after the pool).
    With `fused` (the default) on CPU, conv, bias and ReLU run as one oneDNN kernel on a copy of the weight laid
    out once, at the first call, for that input size (the input is always 299x299, so each unit packs once;
    packing for the real size matters: a layout chosen blind makes oneDNN re-lay the weight on every call).
    Elsewhere the plain conv2d + relu_ path computes the same function."""

    def __init__(self, state: dict, prefixes: list[str], relu: bool = True):
        super().__init__()
        units = [LAYOUT[p] for p in prefixes]
        u = units[0]
        assert all((v.cin, v.kernel, v.stride, v.padding) == (u.cin, u.kernel, u.stride, u.padding) for v in units)
        ws, bs = zip(*(_folded(state, p) for p in prefixes))
        self.conv = nn.Conv2d(u.cin, sum(v.cout for v in units), u.kernel, u.stride, u.padding, device="meta")
        self.conv.weight = nn.Parameter(torch.cat(ws), requires_grad=False)
        self.conv.bias = nn.Parameter(torch.cat(bs), requires_grad=False)
        self.splits = [v.cout for v in units]
        self.relu = relu
        self.fused = True
        self.packed: dict[tuple[int, ...], torch.Tensor] = {}  # (C, H, W) of the input -> oneDNN weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if not (self.fused and _mkldnn_fusable(x)):
            y = c(x)
            return F.relu_(y) if self.relu else y
        args = (list(c.padding), list(c.stride), list(c.dilation), c.groups)
        key = tuple(x.shape[1:])
        if key not in self.packed:
            self.packed[key] = torch.ops.mkldnn._reorder_convolution_weight(c.weight.contiguous(), *args, [1, *key])
        attr = "relu" if self.relu else "none"
        return torch.ops.mkldnn._convolution_pointwise(x, self.packed[key], c.bias, *args, attr, [], "")


def _avg_pool_relu(y: torch.Tensor) -> torch.Tensor:
    # TF average pool: 3x3/1, padded positions left out of the mean
    return F.relu_(F.avg_pool2d(y, 3, stride=1, padding=1, count_include_pad=False))


class BlockA(nn.Module):
    """Mixed_5b-5d: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avgpool -> 1x1, concatenated."""

    def __init__(self, state: dict, name: str):
        super().__init__()
        p = lambda *units: [f"{name}.{u}" for u in units]
        self.entry = ConvReLU(state, p("branch1x1", "branch5x5_1", "branch3x3dbl_1"))
        self.pool_proj = ConvReLU(state, p("branch_pool"), relu=False)
        self.b5 = ConvReLU(state, p("branch5x5_2"))
        self.b3_2, self.b3_3 = ConvReLU(state, p("branch3x3dbl_2")), ConvReLU(state, p("branch3x3dbl_3"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1, b5, b3 = self.entry(x).split(self.entry.splits, dim=1)
        pool = _avg_pool_relu(self.pool_proj(x))  # 1x1 conv before the pool: same value, fewer channels pooled
        return torch.cat([b1, self.b5(b5), self.b3_3(self.b3_2(b3)), pool], 1)


class BlockB(nn.Module):
    """Mixed_6a (grid reduction 35 -> 17): 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | maxpool 3x3/2."""

    def __init__(self, state: dict, name: str):
        super().__init__()
        p = lambda u: [f"{name}.{u}"]
        self.b3 = ConvReLU(state, p("branch3x3"))
        self.d1, self.d2, self.d3 = (ConvReLU(state, p(f"branch3x3dbl_{i}")) for i in (1, 2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b3(x), self.d3(self.d2(self.d1(x))), F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(nn.Module):
    """Mixed_6b-6e: 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avgpool -> 1x1."""

    def __init__(self, state: dict, name: str):
        super().__init__()
        p = lambda *units: [f"{name}.{u}" for u in units]
        self.entry = ConvReLU(state, p("branch1x1", "branch7x7_1", "branch7x7dbl_1"))
        self.pool_proj = ConvReLU(state, p("branch_pool"), relu=False)
        self.b7 = nn.Sequential(*(ConvReLU(state, p(f"branch7x7_{i}")) for i in (2, 3)))
        self.b7dbl = nn.Sequential(*(ConvReLU(state, p(f"branch7x7dbl_{i}")) for i in (2, 3, 4, 5)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1, b7, b7dbl = self.entry(x).split(self.entry.splits, dim=1)
        pool = _avg_pool_relu(self.pool_proj(x))
        return torch.cat([b1, self.b7(b7), self.b7dbl(b7dbl), pool], 1)


class BlockD(nn.Module):
    """Mixed_7a (grid reduction 17 -> 8): 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | maxpool 3x3/2."""

    def __init__(self, state: dict, name: str):
        super().__init__()
        p = lambda *units: [f"{name}.{u}" for u in units]
        self.entry = ConvReLU(state, p("branch3x3_1", "branch7x7x3_1"))
        self.b3 = ConvReLU(state, p("branch3x3_2"))
        self.b7 = nn.Sequential(*(ConvReLU(state, p(f"branch7x7x3_{i}")) for i in (2, 3, 4)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3, b7 = self.entry(x).split(self.entry.splits, dim=1)
        return torch.cat([self.b3(b3), self.b7(b7), F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    """Mixed_7b/7c: 1x1 | 1x1 -> (1x3, 3x1) | 1x1 -> 3x3 -> (1x3, 3x1) | pool -> 1x1.

    Mixed_7b pools by average (padding excluded); the graph's Mixed_7c pools by max (3x3/1, padding 1)."""

    def __init__(self, state: dict, name: str, max_pool: bool):
        super().__init__()
        p = lambda *units: [f"{name}.{u}" for u in units]
        self.max_pool = max_pool
        self.entry = ConvReLU(state, p("branch1x1", "branch3x3_1", "branch3x3dbl_1"))
        self.pool_proj = ConvReLU(state, p("branch_pool"), relu=max_pool)
        self.b3_a, self.b3_b = ConvReLU(state, p("branch3x3_2a")), ConvReLU(state, p("branch3x3_2b"))
        self.d2 = ConvReLU(state, p("branch3x3dbl_2"))
        self.d3_a, self.d3_b = ConvReLU(state, p("branch3x3dbl_3a")), ConvReLU(state, p("branch3x3dbl_3b"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1, b3, d = self.entry(x).split(self.entry.splits, dim=1)
        d = self.d2(d)
        if self.max_pool:  # max does not commute with the conv: pool the input, as the graph does
            pool = self.pool_proj(F.max_pool2d(x, 3, stride=1, padding=1))
        else:
            pool = _avg_pool_relu(self.pool_proj(x))
        return torch.cat([b1, self.b3_a(b3), self.b3_b(b3), self.d3_a(d), self.d3_b(d), pool], 1)


class InceptionV3Compat(nn.Module):
    """uint8 images (B, 3, H, W), any H and W -> {"features": (B, 2048), "logits": (B, 1008)} float32.

    Build it from a state dict in torch-fidelity's layout (`check_state_dict`); `weights_sha256` is set by
    whoever read the file (genbench.metrics.features does, after checking the hash)."""

    input_channels = 3  # grayscale inputs are repeated to RGB by genbench.metrics.features.extract

    def __init__(self, state: dict, source: str = "state dict"):
        super().__init__()
        check_state_dict(state, source)
        self.weights_sha256: str | None = None
        self._fused = True
        self.stem = nn.ModuleList(ConvReLU(state, [p]) for p in STEM)
        kinds = {"A": BlockA, "B": BlockB, "C": BlockC, "D": BlockD}
        self.blocks = nn.Sequential(
            *(
                BlockE(state, name, max_pool=(kind == "E-max")) if kind.startswith("E") else kinds[kind](state, name)
                for name, (kind, _) in BLOCKS.items()
            )
        )
        self.register_buffer("fc_weight", state["fc.weight"].float().clone())  # (1008, 2048); bias unused
        self.to(memory_format=torch.channels_last).requires_grad_(False).eval()

    def _apply(self, fn, recurse=True):  # .to(device), .float(), ...: weight layouts are made again on use
        super()._apply(fn, recurse)
        return self.use_fused(self._fused)

    def use_fused(self, fused: bool = True) -> InceptionV3Compat:
        """Select the fused oneDNN kernels (default, CPU only) or the plain conv2d + ReLU path (the same
        function; kept for comparison and for builds without oneDNN)."""
        self._fused = fused
        for m in self.modules():
            if isinstance(m, ConvReLU):
                m.fused, m.packed = fused, {}
        return self

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        is_tensor = isinstance(images, torch.Tensor)
        if not (is_tensor and images.dtype == torch.uint8 and images.ndim == 4 and images.shape[1] == 3):
            got = f"{images.dtype} {tuple(images.shape)}" if is_tensor else type(images).__name__
            raise GenbenchError(f"inception-v3-compat takes uint8 RGB images (B, 3, H, W); got {got}.")
        with torch.inference_mode():
            x = images.to(self.fc_weight.device).float()
            x = resize_bilinear_tf1(x, INPUT_SIZE)  # (B, 3, 299, 299)
            x = ((x - 128) / 128).contiguous(memory_format=torch.channels_last)
            c1a, c2a, c2b, c3b, c4a = self.stem
            x = F.max_pool2d(c2b(c2a(c1a(x))), 3, stride=2)  # (B, 64, 73, 73)
            x = F.max_pool2d(c4a(c3b(x)), 3, stride=2)  # (B, 192, 35, 35)
            x = self.blocks(x)  # (B, 2048, 8, 8)
            features = x.mean(dim=(2, 3))  # (B, 2048)
            logits = features @ self.fc_weight.T  # (B, 1008), no bias: the IS "unbiased" logits
        return {"features": features, "logits": logits}
