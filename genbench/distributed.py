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
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        _WORLD = World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return _WORLD


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
