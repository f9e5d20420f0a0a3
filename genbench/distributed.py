"""Data-parallel training across processes: `torchrun --nproc_per_node N -m genbench run ...`.

torchrun starts N processes with RANK, WORLD_SIZE and LOCAL_RANK set; `init()` joins them (gloo on CPU, NCCL on
GPUs). The runner then gives each rank its slice of every batch of the one data order (DataOrder is a pure function
of (seed, step), so every rank computes the same batch and takes the part `shard` names), averages every gradient
across ranks as it is accumulated (a hook on each parameter, so that a family's gradient clipping and its
optimizers see the average), and lets rank 0 alone write logs, checkpoints, snapshots, weights and the result.

Equivalence: N ranks with batch B/N each reach the weights one process reaches with batch B, within float
reduction tolerance, when a step's loss is a mean over its images and the step draws no per-image randomness:
every rank draws from the same RNG stream (the run's seed), so model-level random choices (MADE's mask of the
step) agree across ranks and with one process, while per-image noise (a VAE's reparameterization, a GAN's z) is
drawn in B/N-sized pieces, the same on every rank: each image's gradient stays unbiased, the run is exactly
resumable, and the weights are not those of one process. Batch-statistic layers (BatchNorm) normalize each
rank's shard. tests/test_distributed.py checks NADE (deterministic) on 2 CPU ranks with gloo.

Evaluation and `genbench score --nproc N` share the work the same way, by whole batches: each rank takes a
contiguous run of the batches (`batch_share`), so every batch, and so every feature, is the one a single process
computes. The Fréchet statistics merge exactly (`gaussian_stats`: counts, sums and centred sums of squares
all-reduced in float64), and the features KID and precision/recall need are gathered in rank order and cut to
exactly N (`gather_rows`): the metrics are a single process's, FID within float64 rounding.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

import torch
import torch.distributed as dist

from genbench import GenbenchError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_WORLD = World()


def init(device_type: str = "cpu") -> World:
    """Join the process group torchrun set up (once); one process without torchrun is a world of 1."""
    global _WORLD
    size = int(os.environ.get("WORLD_SIZE", 1))
    if size > 1 and not dist.is_initialized():
        # while rank 0 alone evaluates what is not sharded (likelihoods), the others wait at the next collective:
        # the default 30 minutes would end a standard-tier evaluation, so the wait is bounded by hours
        hours = float(os.environ.get("GENBENCH_DISTRIBUTED_TIMEOUT_HOURS", 12))
        if device_type == "cuda":  # NCCL's collectives run on the current device: each rank's own GPU
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=timedelta(hours=hours))
        # a rank that finishes first (the others, once rank 0 alone evaluates) must not leave the group to
        # interpreter teardown: gloo's worker threads then abort the process ("terminate called without an
        # active exception", SIGABRT; seen once in CI, on the rank that left while rank 0 computed KID)
        atexit.register(close)
        _WORLD = World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return _WORLD


def close() -> None:
    """Leave the process group, if this process joined one (idempotent; run at exit by `init`)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def world() -> World:
    return _WORLD


def shard(index: torch.Tensor, parts: int, w: World) -> torch.Tensor:
    """This rank's share of a step's indices: each of its `parts` equal blocks (batches, or a translation batch's
    two domain halves) cut into w.size equal slices, slice `rank` of each."""
    if w.size == 1:
        return index
    blocks = index.view(parts, -1)
    if blocks.shape[1] % w.size:
        raise GenbenchError(f"a batch of {blocks.shape[1]} images per part cannot be split evenly over {w.size} "
                            "ranks; use a number of processes that divides the protocol's batch size.")
    b = blocks.shape[1] // w.size
    return blocks[:, w.rank * b:(w.rank + 1) * b].reshape(-1)


def average_gradients(model: torch.nn.Module, w: World) -> None:
    """Average each parameter's gradient over the ranks as soon as backward has accumulated it."""
    if w.size == 1:
        return

    def hook(p: torch.Tensor) -> None:
        dist.all_reduce(p.grad)
        p.grad.div_(w.size)

    for p in model.parameters():
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(hook)


def any_rank(*flags: bool, w: World) -> list[bool]:
    """Each flag true on any rank (stop requests, a diverged loss), so every rank stops at the same step."""
    if w.size == 1:
        return list(flags)
    t = torch.tensor([float(f) for f in flags])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t]


def barrier(w: World) -> None:
    if w.size > 1:
        dist.barrier()


# ---------------------------------------------------------------------------------------------------------
# Sharded evaluation: whole batches per rank, exact merges

def batch_share(n: int, batch_size: int, w: World) -> slice:
    """This rank's items of n processed in batches of batch_size: a contiguous run of whole batches (rank r gets
    batches [r k / W, (r + 1) k / W) of the k), so each batch is the one a single process forms. With fewer
    batches than ranks some shares are empty."""
    if w.size == 1:
        return slice(0, n)
    k = -(-n // batch_size)
    lo, hi = k * w.rank // w.size, k * (w.rank + 1) // w.size
    return slice(min(lo * batch_size, n), min(hi * batch_size, n))


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(x: np.ndarray, w: World) -> np.ndarray:
    """The elementwise sum over the ranks of a float64 array."""
    if w.size == 1:
        return x
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).to(_collective_device())
    dist.all_reduce(t)
    return t.cpu().numpy()


def gather_rows(x: np.ndarray, w: World) -> np.ndarray:
    """Every rank's rows, in rank order, on every rank: exactly the rows the ranks hold (the padding a collective
    needs for unequal shares is cut off), so batch_share's pieces give back all N rows in their order."""
    if w.size == 1:
        return x
    device = _collective_device()
    t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    counts = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(w.size)]
    dist.all_gather(counts, torch.tensor([len(x)], device=device))
    counts = [int(c) for c in counts]
    padded = torch.zeros((max(counts), *t.shape[1:]), dtype=t.dtype, device=device)
    padded[: len(x)] = t
    parts = [torch.empty_like(padded) for _ in range(w.size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts)]).cpu().numpy()


def gaussian_stats(features: np.ndarray, w: World) -> tuple[np.ndarray, np.ndarray, int]:
    """(mu, sigma, n) of the (n_r, D) features each rank holds (any n_r, 0 included), merged exactly (Chan, Golub
    and LeVeque's pairwise update): N and the sum of x all-reduced, then each rank's centred sum of squares moved
    to the common mean, M2_r + n_r (mean_r - mu)(mean_r - mu)^T, all-reduced; all in float64. One process:
    genbench.metrics.fidelity.GaussianStats's own."""
    from genbench.metrics.fidelity import GaussianStats

    acc, dim = GaussianStats(), features.shape[1]
    if len(features):
        acc.update(features)
    if w.size == 1:
        return acc.compute()
    n, mean, m2 = acc.moments() if acc.n else (0, np.zeros(dim), np.zeros((dim, dim)))
    total = all_reduce_sum(np.concatenate([[n], n * mean]), w)
    count = int(round(total[0]))
    if count < 2:
        raise GenbenchError(f"Gaussian statistics need at least 2 samples, got {count}")
    mu = total[1:] / count
    d = mean - mu
    m2 = all_reduce_sum(m2 + n * np.outer(d, d), w)
    return mu, m2 / (count - 1), count
