"""A run directory and its states: new, started, interrupted at step s, trained (evaluation pending), finished.

    run.json            what was asked: the resolved protocol, its hash, the seed (written first)
    checkpoint.pt/.json latest training state, atomically replaced every `checkpoint_every` steps
    model.pt            final weights (EMA weights when the protocol uses EMA): a plain state dict
    train_log.jsonl     training loss, images/s;  eval_log.jsonl  held-out loss (plus TensorBoard events
                        under tb/ when tensorboard is installed)
    samples.png/.npz    sample grid and the evaluation samples (uint8)
    snapshots/          step-NNNNNNN.pt: the evaluated weights every `snapshot_every` steps (where the protocol
                        keeps them), scored after training for the curve of sample quality over training
    result.json         the result; its presence means the run is finished

A directory holding a run is never overwritten without --force, and --force removes only these files.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Callable

from genbench import GenbenchError, __version__
from genbench.files import atomic_write, write_json
from genbench.results import now

RUN_FILES = ("run.json", "checkpoint.pt", "checkpoint.json", "model.pt", "train_log.jsonl", "eval_log.jsonl",
             "samples.png", "samples.npz", "traversals.png", "result.json")


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.run_json = self.path / "run.json"
        self.checkpoint = self.path / "checkpoint.pt"
        self.checkpoint_info = self.path / "checkpoint.json"
        self.weights = self.path / "model.pt"
        self.samples_png = self.path / "samples.png"
        self.samples_npz = self.path / "samples.npz"
        self.traversals_png = self.path / "traversals.png"
        self.result = self.path / "result.json"
        self.snapshots = self.path / "snapshots"
        self.logs = Logs(self.path)

    # -- state -------------------------------------------------------------------------------------------
    def info(self) -> dict:
        return json.loads(self.run_json.read_text())

    def step(self) -> int:
        if self.checkpoint_info.exists():
            return int(json.loads(self.checkpoint_info.read_text())["step"])
        return 0

    def status(self) -> str:
        if self.result.exists():
            return "finished"
        if self.weights.exists():
            return "trained, evaluation pending"
        if self.run_json.exists():
            steps = self.info()["protocol"]["steps"]
            return f"interrupted at step {self.step()}/{steps}"
        return "empty"

    def prepare(self, protocol, *, seed: int, resume: bool, force: bool, echo: Callable[[str], None]) -> None:
        """Make the directory ready for `protocol` and `seed`, refusing to destroy anything unasked."""
        if self.path.exists() and not self.path.is_dir():
            raise GenbenchError(f"--out {self.path} is a file, not a directory.")
        holds_run = self.run_json.exists()
        if holds_run and not force and not any(f.exists() for f in (self.checkpoint, self.weights, self.result)):
            # a run that never saved a step (its data could not be loaded, or it stopped before its first
            # checkpoint) holds nothing to protect or resume: start it again as new
            echo(f"{self.path} holds a run that never saved a step ({self.status()}); starting it as new.")
            self.clear()
            holds_run = False
        if force and holds_run:
            echo(f"--force: removing the run in {self.path} ({self.status()}).")
            self.clear()
            holds_run = False
        if holds_run:
            info = self.info()
            if not resume:
                fix = "Continue it with --resume, or start over with --force." if not self.result.exists() else \
                    "Use --force to replace it, or choose another --out."
                raise GenbenchError(f"{self.path} already holds a run ({self.status()}). {fix}")
            if info["protocol"]["hash"] != protocol.hash or info["seed"] != seed:
                raise GenbenchError(
                    f"--resume: {self.path} holds a run of {info['protocol']['protocol']} "
                    f"({info['protocol']['hash']}) with seed {info['seed']}, not {protocol.ref} ({protocol.hash}) "
                    f"with seed {seed}. Resume with the same protocol and seed, or use another --out."
                )
            if self.result.exists():
                raise GenbenchError(f"{self.path} holds a finished run; nothing to resume. "
                                    "Use --force to run it again.")
            return
        if self.path.exists() and any(self.path.iterdir()):
            raise GenbenchError(f"--out {self.path} is not empty and holds no genbench run; choose another "
                                "directory (genbench will not mix its files with others).")
        if resume:
            echo(f"--resume: nothing to resume in {self.path}; starting a new run.")
        write_json(self.run_json, {
            "run_id": f"{protocol.dataset}-{protocol.model}-{protocol.tier}-s{seed}-{uuid.uuid4().hex[:8]}",
            "created": now(), "genbench_version": __version__, "seed": seed, "protocol": protocol.summary(),
        })

    def clear(self) -> None:
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.path / "tb", ignore_errors=True)
        shutil.rmtree(self.snapshots, ignore_errors=True)

    def snapshot(self, step: int) -> Path:
        return self.snapshots / f"step-{step:07d}.pt"

    def snapshot_steps(self) -> list[int]:
        """Steps of the snapshots on disk, in order."""
        if not self.snapshots.is_dir():
            return []
        return sorted(int(p.stem[len("step-"):]) for p in self.snapshots.glob("step-*.pt"))


class Logs:
    """JSON-lines logs, one per stream, plus TensorBoard events when tensorboard is installed."""

    def __init__(self, root: Path):
        self.root = root
        self._tb = None

    def path(self, stream: str) -> Path:
        return self.root / f"{stream}_log.jsonl"

    def read(self, stream: str) -> list[dict]:
        path = self.path(stream)
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill: everything before it stands
        return rows

    def truncate(self, step: int) -> None:
        """Drop entries written after `step`, e.g. by a run killed after its last checkpoint."""
        for stream in ("train", "eval"):
            rows = [r for r in self.read(stream) if r["step"] <= step]
            text = "".join(json.dumps(r) + "\n" for r in rows)
            if self.path(stream).exists():
                atomic_write(self.path(stream), lambda f, t=text: f.write(t.encode()))
        self._open_tensorboard(purge_step=step + 1)

    def write(self, stream: str, row: dict) -> None:
        with open(self.path(stream), "a") as f:
            f.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(f"{stream}/{key}", value, row["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def _open_tensorboard(self, purge_step: int) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self._tb = SummaryWriter(str(self.root / "tb"), purge_step=purge_step)
