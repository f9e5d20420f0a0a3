"""Run by tests/test_distributed_eval.py under torchrun (2 gloo ranks) or alone (a world of 1):

    python -m torch.distributed.run --nproc_per_node 2 tests/ddp_worker.py WHAT OUT [ARGS]

collectives OUT      gather_rows of unequal shares (one empty), and the merged Gaussian statistics of shares
summarize OUT N      the first N Fashion-MNIST test images through lenet-fashion-mnist, sharded (and, on rank 0,
                     in one process, the reference the test compares with)
evaluate OUT RUN     RUN's weights evaluated under its protocol with per-batch sample streams, an odd number of
                     samples (101) in batches of 8; rank 0 writes the result into the copy OUT of RUN

Rank 0 writes OUT/out.npz (or the result); the test reads it.
"""

import dataclasses
import shutil
import sys
from pathlib import Path

import numpy as np
import torch.distributed as dist

from genbench import distributed, evaluate, registry
from genbench.rundir import RunDir


def collectives(out: Path) -> None:
    w = distributed.init()
    rows = {0: 3, 1: 5}[w.rank]
    mine = np.random.RandomState(w.rank).normal(size=(rows, 6)) * (1 + w.rank) + 10 * w.rank
    everyone = np.concatenate([np.random.RandomState(r).normal(size=(n, 6)) * (1 + r) + 10 * r
                               for r, n in ((0, 3), (1, 5))])
    gathered = distributed.gather_rows(mine, w)
    images = np.full((w.rank * 4, 1, 2, 2), 7 + w.rank, np.uint8)  # rank 0 holds none
    gathered_images = distributed.gather_rows(images, w)
    mu, sigma, n = distributed.gaussian_stats(mine, w)
    # leaving the group (what init registers to run at exit, before interpreter teardown) is idempotent
    distributed.close()
    distributed.close()
    if w.is_main and not dist.is_initialized():
        np.savez(out / "out.npz", gathered=gathered, everyone=everyone, images=gathered_images, mu=mu, sigma=sigma,
                 n=n)


def summarize(out: Path, n: int) -> None:
    from genbench.score import summarize as summarize_

    w = distributed.init()
    images = registry.dataset("fashion-mnist").load("test", download=False, progress=False).images[:n]
    module = registry.EXTRACTORS["lenet-fashion-mnist"].load(device="cpu")
    metrics = ("fid", "kid", "is", "prc")
    kw = dict(metrics=metrics, batch_size=8, device="cpu", progress=False)
    got = summarize_(module, images, w=w, **kw)
    if w.is_main:
        one = summarize_(module, images, w=distributed.World(), **kw)
        np.savez(out / "out.npz", **{f"{who}_{k}": getattr(s, k) for who, s in (("sharded", got), ("one", one))
                                      for k in ("mu", "sigma", "features", "logits")}, n=got.n)


def evaluate_(out: Path, run: Path) -> None:
    w = distributed.init()
    if w.is_main:
        shutil.copytree(run, out, dirs_exist_ok=True)
        (out / "result.json").unlink(missing_ok=True)
    distributed.barrier(w)
    rd = RunDir(out)
    protocol = registry.protocol(rd.info()["protocol"]["protocol"])
    ev = dataclasses.replace(protocol.evaluation, sample_streams="per-batch", num_samples=101, batch_size=8)
    protocol = dataclasses.replace(protocol, evaluation=ev)
    spec = registry.dataset(protocol.dataset)
    load = dict(download=False, progress=False)
    import torch

    evaluate.evaluate_run(rd, protocol, train=spec.load(protocol.train_split, **load),
                          held_out=spec.load(ev.split, **load), device=torch.device("cpu"), progress=False,
                          echo=print if w.is_main else (lambda _: None))


if __name__ == "__main__":
    what, out = sys.argv[1], Path(sys.argv[2])
    {"collectives": lambda: collectives(out), "summarize": lambda: summarize(out, int(sys.argv[3])),
     "evaluate": lambda: evaluate_(out, Path(sys.argv[3]))}[what]()
