"""Latent traversals: what each code dimension of an encoder-decoder model draws when it alone moves.

One row per latent dimension: start from the posterior mean of one image, set dimension d to each of
`values` in turn (by default 11 values from -2.5 to 2.5, the bulk of the N(0, 1) prior), decode.
Rows are ordered by the dimension's mean KL(q(z_d|x) || N(0, 1)) over the evaluation images, most informative
first, and labelled with it: a dimension the model does not use (KL ~ 0) decodes the same image across its row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid

from genbench.files import atomic_write
from genbench.metrics.likelihood import gaussian_kl_standard_normal

VALUES = tuple(np.linspace(-2.5, 2.5, 11).round(2))  # z_d across each row


@torch.no_grad()
def kl_per_dimension(model, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Mean over `images` (uint8 (N, C, H, W)) of each dimension's KL(q(z_d|x) || N(0, 1)), nats, float64 (D,)."""
    total = None
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.array(images[i:i + batch_size])).to(model.device)
        mu, logvar = model.posterior(x)  # (B, D)
        per_dim = torch.stack([gaussian_kl_standard_normal(mu[:, d:d + 1], logvar[:, d:d + 1])
                               for d in range(mu.shape[1])], dim=1).double().sum(0)  # (D,)
        total = per_dim if total is None else total + per_dim
    return (total / len(images)).cpu().numpy()


@torch.no_grad()
def traverse(model, image: np.ndarray, values=VALUES, order: np.ndarray | None = None) -> np.ndarray:
    """uint8 (D, len(values), C, H, W): row r holds decode(mu with dimension order[r] set to each value),
    mu the posterior mean of `image` (uint8 (C, H, W))."""
    mu = model.encode(torch.from_numpy(np.array(image[None])).to(model.device))[0]  # (D,)
    D = mu.shape[0]
    order = np.arange(D) if order is None else np.asarray(order)
    z = mu.repeat(len(order), len(values), 1)  # (rows, V, D)
    for r, d in enumerate(order):
        z[r, :, d] = torch.tensor(values, dtype=z.dtype, device=z.device)
    out = model.decode(z.reshape(-1, D))  # (rows * V, C, H, W)
    return out.reshape(len(order), len(values), *out.shape[1:]).cpu().numpy()


def save_traversals(model, images: np.ndarray, path: str | Path, *, image_index: int = 0,
                    values=VALUES) -> dict:
    """Draw the traversals of images[image_index] to `path` (PNG), rows by decreasing KL; returns
    {"kl_per_dim_nats": [...], "order": [...], "values": [...], "image_index": i} for the result file."""
    from matplotlib.figure import Figure  # no pyplot: the caller's backend and figures are left alone

    kl = kl_per_dimension(model, images)
    order = np.argsort(-kl, kind="stable")
    grid = traverse(model, images[image_index], values, order)  # (D, V, C, H, W)
    D, V, C, H, W = grid.shape
    pad = 2
    canvas = make_grid(torch.from_numpy(grid.reshape(D * V, C, H, W)), nrow=V, padding=pad, pad_value=255)
    canvas = canvas.permute(1, 2, 0).numpy()  # (D (H + pad) + pad, V (W + pad) + pad, 3), gray repeated

    scale = 0.9 / 64  # inches per image pixel: a 64x64 image is 0.9 in
    fig = Figure(figsize=(1.6 + canvas.shape[1] * scale, 0.9 + canvas.shape[0] * scale), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks([pad + r * (H + pad) + H / 2 for r in range(D)])
    ax.set_yticklabels([f"z{d}  KL {kl[d]:.2f}" for d in order])
    ax.set_xticks([pad + c * (W + pad) + W / 2 for c in range(V)])
    ax.set_xticklabels([f"{v:g}" for v in values])
    ax.set_xlabel("value of the traversed dimension (others at the posterior mean of one image)")
    ax.set_title("Latent traversals, one row per dimension (KL in nats, most informative first)", fontsize=10)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.tight_layout()
    atomic_write(Path(path), lambda f: fig.savefig(f, format="png"))
    return {"kl_per_dim_nats": [float(v) for v in kl], "order": [int(d) for d in order],
            "values": [float(v) for v in values], "image_index": int(image_index)}
