"""The generic run: one loop for every family, then evaluation of the saved weights.

The family owns its training step (`Model.train_step`); this module owns everything around it: seeding,
device, data order, learning-rate schedule, EMA, progress, the wall-clock budget, atomic checkpoints,
snapshots, logs, stopping on a non-finite loss, and the final evaluation. A family whose step consumes
several batches (a critic's n_critic updates) declares `batches_per_step`; the step then gets that many
consecutive batches of the data order in one tensor. A protocol whose model trains on class labels
(`Protocol.label_classes`: a class-conditional model, or a classifier such as JEM) gives the step the batch's labels
too; a translation protocol (`Protocol.domains`) trains on the images of its two domains, half of every batch from
each, with labels 0 (A) and 1 (B). A family with training state beside its weights (an EBM's replay buffer)
declares `train_state()` and `load_train_state()`; the checkpoint holds that state, model.pt never does.
Evaluation is never inside training: training ends by writing `model.pt`, and `evaluate` loads that file into a
fresh model. Under torchrun (genbench.distributed) each rank takes its slice of every batch.

Exact resume: the data order is a pure function of (seed, epoch), and a checkpoint holds the model, the
optimizers, the EMA weights, the family's training state and torch's RNG state at a step boundary. A run killed
at any moment (SIGKILL included) and continued with `--resume` reaches bit-identical weights and metrics on CPU.
"""

from __future__ import annotations

import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from genbench import GenbenchError, distributed, evaluate, registry
from genbench.device import device_description, resolve_device, synchronize
from genbench.files import load_state, save_state, write_json
from genbench.optim import set_learning_rates
from genbench.protocols import Protocol
from genbench.registry import build_model
from genbench.rundir import RunDir
from genbench.translations import domain_images

Echo = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    out: Path
    seed: int = 0
    device: str = "auto"
    data_root: Path | None = None
    resume: bool = False
    force: bool = False
    max_minutes: float | None = None  # wall-clock budget for this invocation; stops resumably
    progress: bool = True
    download: bool = True


def run(protocol: Protocol, opts: RunOptions, echo: Echo = print) -> dict | None:
    """Train under `protocol`, evaluate the saved weights, write result.json. None if stopped early. Under
    torchrun (genbench.distributed) every rank trains on its share of each batch, rank 0 alone writes the run
    directory, the ranks share the drawing and scoring of the samples, and the other ranks return {}."""
    rd = RunDir(opts.out)
    device = resolve_device(opts.device)
    w = distributed.init(device.type)
    if w.size > 1 and device.type == "cuda":
        device = torch.device("cuda", w.local_rank)
    if w.is_main:
        rd.prepare(protocol, seed=opts.seed, resume=opts.resume, force=opts.force, echo=echo)
    distributed.barrier(w)
    spec = registry.dataset(protocol.dataset)
    load = dict(data_root=opts.data_root, download=opts.download, progress=opts.progress)
    train_data = spec.load(protocol.train_split, **load)
    held_out = spec.load(protocol.evaluation.split, **load)

    if protocol.domains:  # translation: the images of the two domains, labelled 0 (A) and 1 (B); the held-out
        # loss on 64 of each (a translator's step runs six generator passes: 500 images cost seconds per log)
        (x_train, y_train), (x_held, y_held) = (domain_images(data, protocol.domains, protocol.model, per_domain=n)
                                                for data, n in ((train_data, None), (held_out, 64)))
    else:
        (x_train, y_train), (x_held, y_held) = ((data.images, data.labels) for data in (train_data, held_out))
        if protocol.label_classes:
            for data in (train_data, held_out):
                check_class_labels(data, protocol.label_classes, protocol.model)
    if not rd.weights.exists():
        labels = (y_train, y_held) if protocol.label_classes else (None, None)
        finished = train(protocol, rd, x_train, x_held, device=device, seed=opts.seed,
                         max_minutes=opts.max_minutes, progress=opts.progress, echo=echo, labels=labels)
        if not finished:
            return None
    distributed.barrier(w)  # the weights rank 0 writes are the ones every rank evaluates
    echo("Evaluating the saved weights ...")
    return evaluate.evaluate_run(rd, protocol, train=train_data, held_out=held_out, device=device,
                                 progress=opts.progress, echo=echo)


class EMA:
    """Exponential moving average of a model's floating-point state (Polyak averaging)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, *, copy: bool = False) -> None:
        """Average the model's state in; `copy`: take it as it is (before a protocol's `ema_start`)."""
        for k, v in model.state_dict().items():
            if k in self.shadow:
                if copy:
                    self.shadow[k].copy_(v)
                else:
                    self.shadow[k].lerp_(v, 1.0 - self.decay)

    def weights(self, model: torch.nn.Module) -> dict:
        return {k: self.shadow.get(k, v) for k, v in model.state_dict().items()}


class DataOrder:
    """Batch indices as a pure function of (seed, step): a fresh permutation per epoch, last partial batch
    dropped. Recomputable after a resume without saving any loader state."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if n < batch_size:
            raise GenbenchError(f"the training split has {n} images, fewer than the batch size {batch_size}.")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def __call__(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[i * self.batch_size:(i + 1) * self.batch_size]


class DomainOrder:
    """A translation protocol's batches: the first half from domain A, the second from domain B, each domain's
    images in a DataOrder of their own (seeds 2 seed and 2 seed + 1, so the two orders are not one permutation)."""

    def __init__(self, domains: torch.Tensor, batch_size: int, seed: int):
        if batch_size % 2:
            raise GenbenchError(f"a translation protocol's batch size must be even (half per domain), got {batch_size}")
        self.index = [torch.nonzero(domains == d).squeeze(1) for d in (0, 1)]
        self.orders = [DataOrder(len(ix), batch_size // 2, 2 * seed + d) for d, ix in enumerate(self.index)]

    def __call__(self, step: int) -> torch.Tensor:
        return torch.cat([ix[order(step)] for ix, order in zip(self.index, self.orders)])


def check_class_labels(data, num_classes: int, model: str) -> None:
    """A model that trains on class labels needs one class in 0..num_classes-1 per image of every split it reads."""
    labels = data.labels
    if labels is None or labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        what = "no labels" if labels is None else f"labels of shape {labels.shape} ({labels.dtype})"
        raise GenbenchError(f"{model} trains on class labels, but {data.dataset}:{data.split} has {what}, not one "
                            f"class per image; train it on a dataset with class labels (fashion-mnist, cifar10).")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise GenbenchError(f"{model} trains on {num_classes} classes, but {data.dataset}:{data.split} has "
                            f"labels {labels.min()}..{labels.max()}; its protocol does not fit this dataset.")


def train(protocol: Protocol, rd: RunDir, images: np.ndarray, held_out: np.ndarray, *, device: torch.device,
          seed: int, max_minutes: float | None = None, progress: bool = True, echo: Echo = print,
          labels: tuple[np.ndarray | None, np.ndarray | None] = (None, None)) -> bool:
    """Train (or continue training) and write the final weights. False if stopped before the last step.
    `labels`: the class labels of `images` and `held_out`, given to the steps of a model that trains on them."""
    x_all = torch.from_numpy(np.array(images))  # (N, C, H, W) uint8 copied out of the memmap, kept on the CPU
    x_held = torch.from_numpy(np.array(held_out[:500])).to(device)  # fixed batch for the held-out loss
    y_all, y_held = (None if y is None else torch.from_numpy(np.array(y, dtype=np.int64)) for y in labels)
    held_kw = {} if y_held is None else {"labels": y_held[:500].to(device)}
    model = build_model(protocol, tuple(x_all.shape[1:]), seed).to(device)
    optimizers = model.configure_optimizers(protocol.optimizer)
    w = distributed.world()
    distributed.average_gradients(model, w)
    echo = echo if w.is_main else (lambda _: None)  # rank 0 speaks for a data-parallel run
    ema = EMA(model, protocol.ema) if protocol.ema else None
    k = getattr(model, "batches_per_step", 1)  # consecutive batches of the data order per step
    order = DomainOrder(y_all, protocol.batch_size, seed) if protocol.domains else \
        DataOrder(len(x_all), protocol.batch_size, seed)
    parts = k * (2 if protocol.domains else 1)  # equal blocks of a step's indices, each split over the ranks
    images_per_step = k * protocol.batch_size
    step, train_seconds = 0, 0.0

    if rd.checkpoint.exists():
        state = load_state(rd.checkpoint, map_location=device)
        model.load_state_dict(state["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        if ema:
            ema.shadow = state["ema"]
        if hasattr(model, "load_train_state"):
            model.load_train_state(state.get("train_state", {}))
        torch.set_rng_state(state["rng"]["cpu"])
        if device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        step, train_seconds = state["step"], state["train_seconds"]
        echo(f"Resuming from step {step}/{protocol.steps} ({train_seconds:.0f} s of training so far).")
    if w.is_main:
        rd.logs.truncate(step)

    def checkpoint() -> None:
        rng = {"cpu": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        save_state(rd.checkpoint, {
            "model": model.state_dict(), "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "ema": ema.shadow if ema else None, "rng": rng, "step": step, "train_seconds": train_seconds,
            "train_state": model.train_state() if hasattr(model, "train_state") else {},
        })
        write_json(rd.checkpoint_info, {"step": step, "steps": protocol.steps, "train_seconds": train_seconds})

    def evaluated_weights() -> dict:
        weights = ema.weights(model) if ema else model.state_dict()
        return {name: v.detach().cpu() for name, v in weights.items()}

    stop = _StopRequest()
    deadline = None if max_minutes is None else time.monotonic() + 60 * max_minutes
    kill_at = int(os.environ.get("GENBENCH_FAULT_KILL_AT_STEP", -1))  # fault injection for the resume tests
    pause = float(os.environ.get("GENBENCH_FAULT_STEP_SECONDS", 0))  # a slow run, for tests that interrupt one
    bar = tqdm(total=protocol.steps, initial=step, desc="train", unit="step",
               disable=None if progress and w.is_main else True, dynamic_ncols=True)
    start_step, t_start, window = step, time.perf_counter(), (time.perf_counter(), step)
    model.train()
    with stop:
        while step < protocol.steps:
            t0 = time.perf_counter()
            index = distributed.shard(torch.cat([order(step * k + i) for i in range(k)]), parts, w)
            x = x_all[index].to(device, non_blocking=True)
            set_learning_rates(optimizers.values(), protocol.optimizer.schedule, step, protocol.steps)
            if y_all is None:
                stats = model.train_step(x, optimizers)
            else:
                stats = model.train_step(x, optimizers, labels=y_all[index].to(device, non_blocking=True))
            _stop_if_diverged(stats, step + 1, rd, bar, w)
            if ema:
                ema.update(model, copy=step < (protocol.ema_start or 0))
            synchronize(device)
            train_seconds += time.perf_counter() - t0
            step += 1
            bar.update(1)

            if step - start_step == 10 and step < protocol.steps and w.is_main:
                per_step = (time.perf_counter() - t_start) / 10
                bar.write(f"Estimated training time: {_duration(per_step * (protocol.steps - step))} more "
                          f"({images_per_step / per_step:.0f} images/s over the last 10 steps on "
                          f"{device_description(device)}).")
            if (step % protocol.log_every == 0 or step == protocol.steps) and w.is_main:
                now_t, (t_w, s_w) = time.perf_counter(), window
                ips = (step - s_w) * images_per_step / max(now_t - t_w, 1e-9)
                window = (now_t, step)
                rd.logs.write("train", {"step": step, **stats, "images_per_s": ips, "train_seconds": train_seconds})
                bar.set_postfix(loss=f"{stats['loss']:.4g}", img_s=f"{ips:.0f}")
            if (step % protocol.eval_loss_every == 0 or step == protocol.steps) and w.is_main:
                rd.logs.write("eval", {"step": step, **_held_out_loss(model, x_held, seed, device, **held_kw)})
            if protocol.snapshot_every and step % protocol.snapshot_every == 0 and w.is_main:
                save_state(rd.snapshot(step), evaluated_weights())
            out_of_time = deadline is not None and time.monotonic() > deadline
            stop.requested, out_of_time = distributed.any_rank(stop.requested, out_of_time, w=w)  # one step for all
            if (step % protocol.checkpoint_every == 0 or step == protocol.steps or stop.requested
                    or out_of_time) and w.is_main:
                checkpoint()
            if step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if pause:
                time.sleep(pause)
            if (stop.requested or out_of_time) and step < protocol.steps:
                bar.close()
                why = "interrupted" if stop.requested else f"the {max_minutes:g}-minute budget ran out"
                echo(f"Stopped at step {step}/{protocol.steps} ({why}); checkpoint saved. "
                     f"Continue with the same command plus --resume.")
                return False
    bar.close()
    if w.is_main:
        rd.logs.close()
        save_state(rd.weights, evaluated_weights())
        echo(f"Training done: {protocol.steps} steps in {_duration(train_seconds)}; weights in {rd.weights}.")
    return True


def _stop_if_diverged(stats: dict, step: int, rd: RunDir, bar, w: distributed.World) -> None:
    """Adversarial and MCMC training can diverge: a non-finite loss term stops the run at that step, before the
    update reaches a checkpoint, so the last checkpoint and everything already written stay as they were. Under
    torchrun every rank stops at the step where any rank's loss went non-finite."""
    bad = {name: value for name, value in stats.items() if not math.isfinite(value)}
    (anywhere,) = distributed.any_rank(bool(bad), w=w)
    if not anywhere:
        return
    if not bad:
        bad = {"(another rank's loss)": float("nan")}
    bar.close()
    rd.logs.close()
    terms = ", ".join(f"{name} = {value}" for name, value in stats.items())
    raise GenbenchError(
        f"training diverged at step {step}: non-finite {', '.join(bad)} ({terms}). The last checkpoint (step "
        f"{rd.step()}) and the logs are intact; nothing was evaluated. A protocol's settings are fixed, so report "
        f"this seed as diverged, or try another seed; `--resume` would repeat the same steps exactly.")


@torch.no_grad()
def _held_out_loss(model: torch.nn.Module, x: torch.Tensor, seed: int, device: torch.device, **labels) -> dict:
    """Loss on a fixed held-out batch, with its own RNG so that logging never changes training."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model.eval()
        stats = model.eval_loss(x, **labels)
        model.train()
    return stats


class _StopRequest:
    """First Ctrl-C: finish the current step, checkpoint, stop. A second one interrupts at once."""

    requested = False

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"
