"""The exactness checks every autoregressive model passes (the contract in genbench/baselines/autoregressive.py):
the autoregressive property by gradients, normalization by brute force over every 8-bit image of a tiny shape,
and exactly 8 bits/dim from uniform conditionals. Each model's test file calls them on its own tiny models."""

from __future__ import annotations

import itertools

import numpy as np
import torch


def randomize(model: torch.nn.Module, std: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Every parameter drawn N(0, std^2): a zero-initialised output layer would hide a leaky mask."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


def random_images(shape, n: int = 4, seed: int = 0, values=None) -> torch.Tensor:
    rs = np.random.RandomState(seed)
    x = rs.choice(values, (n, *shape)) if values is not None else rs.randint(0, 256, (n, *shape))
    return torch.from_numpy(x.astype(np.uint8))


def leaks(model, shape, *, member: int = 0, values=None) -> list[tuple]:
    """Pairs (output sub-pixel, input sub-pixel) where the conditional's parameters at the output have a
    non-zero gradient with respect to an input at or after it in the model's order. Empty for an exact model."""
    x = random_images(shape, values=values)
    u = model.net_input(x).detach().requires_grad_(True)
    params = model.conditionals(u, member=member)
    rank = model.ordering(member=member)
    found = []
    for out in itertools.product(*map(range, shape)):
        (grad,) = torch.autograd.grad(params[(slice(None), slice(None), *out)].sum(), u, retain_graph=True,
                                      allow_unused=True)
        if grad is None:
            continue
        touched = grad.abs().sum(0) > 0  # (C, H, W)
        for inp in zip(*torch.nonzero(touched & (rank >= rank[out]), as_tuple=True)):
            found.append((out, tuple(int(i) for i in inp)))
    return found


def depends_on_every_earlier_position(model, shape, *, member: int = 0) -> bool:
    """The converse, where the architecture promises it (no blind spot): every conditional but the first has a
    non-zero gradient with respect to every sub-pixel before it."""
    x = random_images(shape)
    u = model.net_input(x).detach().requires_grad_(True)
    params = model.conditionals(u, member=member)
    rank = model.ordering(member=member)
    for out in itertools.product(*map(range, shape)):
        (grad,) = torch.autograd.grad(params[(slice(None), slice(None), *out)].sum(), u, retain_graph=True,
                                      allow_unused=True)
        earlier = rank < rank[out]
        if earlier.any() and (grad is None or not (grad.abs().sum(0)[earlier] > 0).all()):
            return False
    return True


def all_images(shape, values=range(256)) -> torch.Tensor:
    """Every image of `shape` whose sub-pixels take `values`: 256^D of them for 8-bit data."""
    values = torch.tensor(list(values), dtype=torch.uint8)
    grids = torch.meshgrid(*[values] * int(np.prod(shape)), indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1).reshape(-1, *shape)


@torch.no_grad()
def total_probability(model, shape, *, values=range(256), chunk: int = 8192) -> float:
    """sum over every image x of P(x), from `log_likelihood` alone, in float64."""
    images = all_images(shape, values)
    logs = torch.cat([model.log_likelihood(images[i:i + chunk]).double() for i in range(0, len(images), chunk)])
    return float(torch.logsumexp(logs, 0).exp())


@torch.no_grad()
def bits_per_dim(model, x: torch.Tensor) -> float:
    return float((-model.log_likelihood(x).double() / (x[0].numel() * np.log(2))).mean())
