"""Generator and discriminator architectures of the GAN family (baselines/gan.py).

Provenance
----------
- DCGAN (Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional Generative
  Adversarial Networks", ICLR 2016), Sec. 3 (architecture guidelines: strided convolutions instead of pooling,
  batch norm in both networks but not at G's output or D's input, ReLU in G with tanh at the output,
  LeakyReLU in D) and Sec. 4 (all weights from N(0, 0.02); LeakyReLU slope 0.2), Fig. 1 (G for 64x64:
  a projection to 4x4x1024, then 4x4 fractionally strided convolutions 512-256-128-3). The conv layers that
  feed a batch norm have no bias (the norm's shift replaces it), as in the authors' dcgan.torch; the batch
  norm scale starts at N(1, 0.02) and its shift at 0, as there.
- ResNet G/D for 32x32 (the CIFAR-10 recipes):
  Gulrajani et al., "Improved Training of Wasserstein GANs" (NeurIPS 2017), Appendix (CIFAR-10 ResNet) and
  the reference implementation igul222/improved_wgan_training, gan_cifar_resnet.py (checked: a linear map
  z (128) -> 4x4x128; three up blocks of 128 with batch norm; BN-ReLU-conv3-tanh output; D: an
  "optimized" first block, one down block, two blocks without resampling, all 128 wide and without
  normalization, ReLU, mean over space, linear; 1x1 shortcuts where resampling);
  Miyato et al., "Spectral Normalization for Generative Adversarial Networks" (ICLR 2018), Table 3 / Appendix
  B and pfnet-research/sngan_projection, gen_models/resblocks.py, dis_models/resblocks.py,
  dis_models/snresnet_32.py (checked: G blocks BN-ReLU-upsample-conv3-BN-ReLU-conv3 with an upsample+conv1x1
  shortcut, 256 channels; D blocks ReLU-conv3-ReLU-conv3-avgpool with a conv1x1-avgpool shortcut when
  downsampling or changing width, the optimized block conv3-ReLU-conv3-avgpool with an avgpool-conv1x1
  shortcut, 128 channels, ReLU, a global *sum* over space, a linear layer without bias; Glorot-uniform
  initialization with gain sqrt(2) in the residual branches and 1 in the shortcuts).
- Spectral normalization: torch.nn.utils.parametrizations.spectral_norm on every Conv2d / Linear of D
  (Miyato et al., Algorithm 1: one power iteration per forward pass in training mode; its u and v vectors
  are buffers of the state dict, so a checkpoint resumes the power iteration exactly).

Decisions
---------
- Sizes: 28x28 grows from a 7x7 base with 2 up-samplings, 32x32 and 64x64 from 4x4 with 3 and 4 (SIDES).
  The ResNet D downsamples to 7x7 (28), 8x8 (32, as in both CIFAR recipes) or 8x8 (64; one more down block).
- ResNet widths are constant (g_width in every G block, d_width in every D block), as in both CIFAR recipes;
  nearest-neighbour up-sampling (sngan_projection; Gulrajani's depth-to-space of a repeated map is the same).
- The final linear layer of the ResNet D keeps a bias (irrelevant for hinge/Wasserstein, harmless for ns).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

SIDES = {28: (7, 2), 32: (4, 3), 64: (4, 4)}  # image side -> (base side, stride-2 up-samplings in G)
RESNET_D_DOWN = {28: 2, 32: 2, 64: 3}         # image side -> down blocks of the ResNet D (optimized one included)


# ---- initialization ---------------------------------------------------------------------------------------
def dcgan_init(m: nn.Module) -> None:
    """Radford et al. Sec. 4: conv / linear weights N(0, 0.02), biases 0; batch norm scale N(1, 0.02), shift 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def _glorot(m: nn.Module, gain: float) -> nn.Module:
    nn.init.xavier_uniform_(m.weight, gain)
    if m.bias is not None:
        nn.init.zeros_(m.bias)
    return m


def apply_spectral_norm(net: nn.Module) -> nn.Module:
    """Spectral normalization on every Conv2d / Linear of `net` (after initialization, which it keeps)."""
    for m in list(net.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            spectral_norm(m)
    return net


# ---- DCGAN ------------------------------------------------------------------------------------------------
class DCGANGenerator(nn.Module):
    """z (B, D) -> x (B, C, H, W) on [-1, 1]: a linear projection to (w 2^(n-1), b, b), then n 4x4 stride-2
    transposed convolutions halving the channels (BN + ReLU), the last one to C channels with tanh."""

    def __init__(self, latent_dim: int, width: int, channels: int, side: int):
        super().__init__()
        base, n_up = SIDES[side]
        top = width * 2 ** (n_up - 1)
        self.top, self.base = top, base
        self.project = nn.Linear(latent_dim, top * base * base, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(top), nn.ReLU()]
        ch = top
        for _ in range(n_up - 1):   # (B, ch, s, s) -> (B, ch / 2, 2s, 2s)
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]  # (B, C, H, W)
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(z).view(-1, self.top, self.base, self.base))


class DCGANDiscriminator(nn.Module):
    """x (B, C, H, W) -> logits (B,): n 4x4 stride-2 convolutions doubling the channels from w, LeakyReLU(0.2),
    batch norm on every layer but the first (if `batchnorm`), then a linear map of (w 2^(n-1), b, b) to a logit."""

    def __init__(self, width: int, channels: int, side: int, batchnorm: bool):
        super().__init__()
        base, n_down = SIDES[side]
        layers: list[nn.Module] = []
        ch = channels
        for i in range(n_down):     # (B, ch, s, s) -> (B, w 2^i, s / 2, s / 2)
            norm = batchnorm and i > 0
            layers.append(nn.Conv2d(ch, width * 2 ** i, 4, 2, 1, bias=not norm))
            if norm:
                layers.append(nn.BatchNorm2d(width * 2 ** i))
            layers.append(nn.LeakyReLU(0.2))
            ch = width * 2 ** i
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.out = nn.Linear(ch * base * base, 1)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(x)).squeeze(1)


# ---- ResNet -----------------------------------------------------------------------------------------------
class GBlock(nn.Module):
    """(B, c_in, s, s) -> (B, c_out, 2s, 2s): BN-ReLU-upsample-conv3-BN-ReLU-conv3 plus upsample-conv1x1."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.b1, self.b2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.c1 = _glorot(nn.Conv2d(c_in, c_out, 3, padding=1), math.sqrt(2))
        self.c2 = _glorot(nn.Conv2d(c_out, c_out, 3, padding=1), math.sqrt(2))
        self.c_sc = _glorot(nn.Conv2d(c_in, c_out, 1), 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
        h = self.c2(F.relu(self.b2(self.c1(up(F.relu(self.b1(x)))))))
        return h + up(self.c_sc(x))  # a 1x1 conv commutes with nearest up-sampling: same numbers, 4x cheaper


class DBlock(nn.Module):
    """(B, c_in, s, s) -> (B, c_out, s', s'): ReLU-conv3-ReLU-conv3 [-avgpool], shortcut [conv1x1 [-avgpool]]
    (identity when neither resampling nor changing width). `first`: the optimized block on the image,
    conv3-ReLU-conv3-avgpool with an avgpool-conv1x1 shortcut (no ReLU on the input pixels)."""

    def __init__(self, c_in: int, c_out: int, *, down: bool, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        self.c1 = _glorot(nn.Conv2d(c_in, c_out, 3, padding=1), math.sqrt(2))
        self.c2 = _glorot(nn.Conv2d(c_out, c_out, 3, padding=1), math.sqrt(2))
        self.c_sc = _glorot(nn.Conv2d(c_in, c_out, 1), 1.0) if (first or down or c_in != c_out) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = lambda t: F.avg_pool2d(t, 2) if self.down else t  # noqa: E731
        h = self.c2(F.relu(self.c1(x if self.first else F.relu(x))))
        h = pool(h)
        if self.first:
            return h + self.c_sc(pool(x))
        return h + (x if self.c_sc is None else pool(self.c_sc(x)))


class ResNetGenerator(nn.Module):
    """z (B, D) -> x (B, C, H, W): linear to (w, b, b), n up blocks of width w, BN-ReLU-conv3-tanh."""

    def __init__(self, latent_dim: int, width: int, channels: int, side: int):
        super().__init__()
        base, n_up = SIDES[side]
        self.width, self.base = width, base
        self.project = _glorot(nn.Linear(latent_dim, width * base * base), 1.0)
        self.blocks = nn.Sequential(*[GBlock(width, width) for _ in range(n_up)])
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(),
                                 _glorot(nn.Conv2d(width, channels, 3, padding=1), 1.0), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.project(z).view(-1, self.width, self.base, self.base)))


class ResNetDiscriminator(nn.Module):
    """x (B, C, H, W) -> logits (B,): optimized block, down blocks, two blocks without resampling, ReLU, global
    sum (Miyato) or mean (Gulrajani) pooling over space, linear."""

    def __init__(self, width: int, channels: int, side: int, pool: str = "sum"):
        super().__init__()
        n_down = RESNET_D_DOWN[side]
        blocks = [DBlock(channels, width, down=True, first=True)]
        blocks += [DBlock(width, width, down=True) for _ in range(n_down - 1)]
        blocks += [DBlock(width, width, down=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.pool = pool
        self.out = _glorot(nn.Linear(width, 1), 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(x))                                          # (B, w, s, s)
        h = h.sum(dim=(2, 3)) if self.pool == "sum" else h.mean(dim=(2, 3))  # (B, w)
        return self.out(h).squeeze(1)


def build(config, channels: int, side: int) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a gan.Config; spectral normalization on D if configured."""
    if config.arch == "dcgan":
        G = DCGANGenerator(config.latent_dim, config.g_width, channels, side)
        D = DCGANDiscriminator(config.d_width, channels, side, config.d_batchnorm)
    else:
        G = ResNetGenerator(config.latent_dim, config.g_width, channels, side)
        D = ResNetDiscriminator(config.d_width, channels, side, config.d_pool)
    if config.spectral_norm:
        apply_spectral_norm(D)
    return G, D
