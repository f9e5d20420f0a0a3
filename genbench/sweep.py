"""A grid of runs handed to an engine the user already has: local processes, SLURM (submitit) or Ray.

    jobs = grid(models=["vae", "dcgan"], datasets=["fashion-mnist"], tiers=["quick"], seeds=[0, 1, 2], out=DIR)
    outcomes = sweep(jobs, LocalBackend(jobs=2))

Every run of the grid is one `genbench run` process into a directory of its own (DIR/<the name `genbench run`
gives it>), so a run made by a sweep is the run the same command makes by hand, with the same metrics on the same
machine and thread count, whichever backend started it. A sweep is idempotent: a finished run (result.json) is
skipped, an interrupted one continues with `--resume` (exact: genbench.runner), a new one starts. Each run's output
goes to DIR/logs/<name>.log, one attempt after another; a failure is reported with the log's last lines.

Backends:
- local: a pool of `jobs` processes on this machine;
- slurm: submitit, one job per run (or one job array); on a timeout or a preemption, submitit signals the job,
  the job stops its run at the next step boundary with a checkpoint (SIGINT, the runner's own stop) and is
  requeued, and the requeued job continues it with `--resume`;
- ray: one Ray task per run with the CPUs and GPUs a run asks for, against `ray.init(address=...)`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from genbench import GenbenchError, GenbenchWarning

LOG_TAIL = 12  # lines of a failed run's log shown
STOPPED = 3  # `genbench run` exits 3 when it stopped early with a checkpoint (Ctrl-C, --max-minutes, a signal)


# ---------------------------------------------------------------------------------------------------------
# The grid

@dataclass(frozen=True)
class Job:
    """One run of the grid: `genbench run --model M --dataset D --protocol REF --seed S --out DIR/NAME`."""

    model: str
    dataset: str
    protocol: str  # the exact protocol ref (name@version), so that every run of a sweep uses one version
    seed: int
    out: Path  # the run directory
    options: tuple[str, ...] = ()  # more `genbench run` options: --device cuda, --offline, --max-minutes 30

    @property
    def name(self) -> str:
        return self.out.name

    @property
    def log(self) -> Path:
        return self.out.parent / "logs" / f"{self.name}.log"

    def state(self) -> str:
        """"done" (result.json written), "interrupted" (a run without a result) or "new"."""
        if (self.out / "result.json").is_file():
            return "done"
        return "interrupted" if (self.out / "run.json").is_file() else "new"

    def command(self) -> list[str]:
        resume = ["--resume"] if self.state() == "interrupted" else []
        return [sys.executable, "-m", "genbench", "run", "--model", self.model, "--dataset", self.dataset,
                "--protocol", self.protocol, "--seed", str(self.seed), "--out", str(self.out), "--no-progress",
                *resume, *self.options]


def grid(*, models: Iterable[str], datasets: Iterable[str], tiers: Iterable[str], seeds: Iterable[int], out: Path,
         options: Iterable[str] = (), warn: Callable[[str], None] | None = None) -> list[Job]:
    """The runs of models x datasets x tiers x seeds that have a protocol, in that order. A combination without
    one is left out with a warning (a grid across families rarely has every pair); none at all is an error."""
    from genbench import registry
    from genbench.protocols import TIERS

    models, datasets, tiers, seeds = (list(dict.fromkeys(v)) for v in (models, datasets, tiers, seeds))
    for tier in tiers:
        if tier not in TIERS:
            raise GenbenchError(f"--protocol {tier!r}: a sweep takes tiers ({', '.join(TIERS)}), comma separated.")
    for m in models:
        registry.MODELS[m]  # an unknown name raises with suggestions
    for d in datasets:
        registry.dataset(d)
    jobs, missing = [], []
    for m in models:
        for d in datasets:
            for tier in tiers:
                try:
                    p = registry.find_protocol(model=m, dataset=d, tier=tier)
                except GenbenchError:
                    missing.append(f"{d}/{m}/{tier}")
                    continue
                for seed in seeds:
                    name = f"{p.dataset}-{p.model}-{p.tier}-v{p.version}-seed{seed}"
                    jobs.append(Job(m, d, p.ref, int(seed), Path(out) / name, tuple(options)))
    if not jobs:
        raise GenbenchError(f"no protocol exists for any run of the grid ({', '.join(missing)}); see "
                            "`genbench list protocols`.")
    if missing:
        (warn or (lambda text: warnings.warn(text, GenbenchWarning, stacklevel=2)))(
            f"left out {len(missing)} combination(s) without a protocol: {', '.join(missing)}.")
    return jobs


GRID_KEYS = ("model", "dataset", "protocol", "seeds")


def load_config(path: Path) -> dict:
    """A sweep file (TOML): the keys of `genbench sweep`'s options, lists for the grid's axes, e.g.
    model = ["vae", "dcgan"], dataset = "fashion-mnist", protocol = "quick", seeds = [0, 1, 2], backend = "local".
    Several grids in one sweep: [[grid]] tables, each with its own model / dataset / protocol / seeds (what a
    table leaves out comes from the top level); the sweep runs their union (every family at seed 0, and one
    model of each at seeds 1 and 2, say)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise GenbenchError("reading a sweep file needs Python 3.11, or pip install tomli on 3.10") from None
    try:
        config = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GenbenchError(f"cannot read the sweep file {path}: {exc}") from None
    known = {*GRID_KEYS, "out", "backend", "jobs", "board", "device", "offline", "max_minutes", "slurm", "ray",
             "grid"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise GenbenchError(f"{path}: unknown key(s) {', '.join(unknown)}; a sweep file takes "
                            f"{', '.join(sorted(known))}.")
    tables = {"slurm": {"partition", "account", "time_minutes", "gpus", "cpus", "mem_gb", "array"},
              "ray": {"address", "cpus", "gpus"}}
    grids = config.get("grid", [])
    if not isinstance(grids, list) or not all(isinstance(g, dict) for g in grids):
        raise GenbenchError(f"{path}: `grid` must be tables, [[grid]] model = [...] seeds = [...]")
    for g in grids:
        extra = sorted(set(g) - set(GRID_KEYS))
        if extra:
            raise GenbenchError(f"{path}: unknown key(s) {', '.join(extra)} in a [[grid]]; it takes "
                                f"{', '.join(GRID_KEYS)}.")
    for table, keys in tables.items():
        extra = sorted(set(config.get(table, {})) - keys)
        if extra:
            raise GenbenchError(f"{path}: unknown key(s) {', '.join(extra)} in [{table}]; it takes "
                                f"{', '.join(sorted(keys))}.")
    return config


# ---------------------------------------------------------------------------------------------------------
# One run, wherever it runs

def run_job(job: Job, *, on_start: Callable[[subprocess.Popen], None] | None = None) -> int:
    """Run (or continue) the job's `genbench run` to its end, appending its output to the job's log; the exit
    status (0 done, 3 stopped early with a checkpoint). A finished run is not run again."""
    if job.state() == "done":
        return 0
    job.log.parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "a") as log:
        log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(job.command()[1:])}\n")
        log.flush()
        # a session of its own: a Ctrl-C at the terminal reaches the sweep, which stops each run with one SIGINT
        # (a second one would interrupt a run without its checkpoint)
        proc = subprocess.Popen(job.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        if on_start:
            on_start(proc)
        return proc.wait()


def stop_gracefully(proc: subprocess.Popen | None, seconds: float = 600) -> None:
    """SIGINT: the runner finishes its step, writes a checkpoint and exits; SIGKILL if it has not after `seconds`.
    Called while another frame (a pool thread, or the code a signal handler interrupted) waits on the process and
    holds Popen's wait lock, so the exit is watched with waitpid directly rather than with Popen.wait."""
    if proc is None or proc.returncode is not None:
        return
    try:
        proc.send_signal(signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by the waiting frame
            return
        if pid:
            return
        time.sleep(0.2)
    proc.kill()


def log_tail(job: Job, lines: int = LOG_TAIL) -> str:
    try:
        return "\n".join(job.log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------------------
# Backends: submit(job) -> a handle; done(handle), running(handle), exit_code(handle) (the run's exit status;
# raises if the engine failed)

class LocalBackend:
    name = "local"

    def __init__(self, jobs: int = 1):
        from concurrent.futures import ThreadPoolExecutor

        if jobs < 1:
            raise GenbenchError(f"--jobs must be at least 1, got {jobs}")
        self.pool = ThreadPoolExecutor(jobs, thread_name_prefix="genbench-sweep")
        self.procs: dict[str, subprocess.Popen] = {}

    def submit(self, job: Job):
        return self.pool.submit(run_job, job, on_start=lambda proc: self.procs.__setitem__(job.name, proc))

    def done(self, handle) -> bool:
        return handle.done()

    def running(self, handle) -> bool:
        return handle.running()

    def exit_code(self, handle) -> int:
        return handle.result()

    def stop(self) -> None:
        """Ctrl-C: every running run checkpoints and stops (a later sweep continues them); queued ones never start."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        for proc in self.procs.values():
            stop_gracefully(proc)


class SlurmTask:
    """A submitit task running one job; on a timeout or preemption submitit calls `checkpoint`: the run stops at its
    next step with a checkpoint, and the task is requeued as it is (its next attempt resumes the run)."""

    def __init__(self, job: Job):
        self.job = job
        self._proc: subprocess.Popen | None = None

    def __call__(self) -> int:
        code = run_job(self.job, on_start=lambda proc: setattr(self, "_proc", proc))
        if code == STOPPED and self.job.state() != "done":
            raise GenbenchError(f"{self.job.name} stopped early (exit 3) without a signal from the scheduler: "
                                f"{log_tail(self.job, 3)}")
        return code

    def checkpoint(self, *args, **kwargs):
        import submitit

        stop_gracefully(self._proc)
        self._proc = None
        return submitit.helpers.DelayedSubmission(SlurmTask(self.job))

    def __getstate__(self):
        return {"job": self.job}  # never the process

    def __setstate__(self, state):
        self.job, self._proc = state["job"], None


@dataclass(frozen=True)
class SlurmSettings:
    partition: str | None = None
    account: str | None = None
    time_minutes: float = 240  # per attempt; a run longer than this is checkpointed and requeued
    gpus: int = 0
    cpus: int = 4
    memory_gb: int | None = None
    array: bool = False  # one job array for the whole grid instead of one job per run
    max_requeues: int = 10
    cluster: str | None = None  # None: SLURM where sbatch is found; "local": submitit's local scheduler (tests)
    signal_delay_s: int = 120  # the signal comes this long before the time limit: time to finish a step

    def executor(self, folder: Path):
        try:
            import submitit
        except ImportError:
            raise GenbenchError("--backend slurm needs submitit: pip install 'genbench[slurm]' (or pip install "
                                "submitit).") from None
        if self.cluster == "local":  # submitit's own scheduler on this machine, with SLURM's timeout signal
            executor = submitit.LocalExecutor(folder=folder, max_num_timeout=self.max_requeues)
            executor.update_parameters(timeout_min=self.time_minutes, signal_delay_s=self.signal_delay_s,
                                       gpus_per_node=self.gpus)
            return executor
        executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster, slurm_max_num_timeout=self.max_requeues)
        params = dict(timeout_min=self.time_minutes, cpus_per_task=self.cpus, gpus_per_node=self.gpus or None,
                      mem_gb=self.memory_gb, name="genbench")
        if executor.cluster == "slurm":
            params.update(slurm_partition=self.partition, slurm_account=self.account,
                          slurm_signal_delay_s=self.signal_delay_s)
        executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
        return executor


class SlurmBackend:
    name = "slurm"

    def __init__(self, settings: SlurmSettings, folder: Path):
        self.settings = settings
        self.executor = settings.executor(folder)

    def submit(self, job: Job):
        return self.submit_all([job])[0]

    def submit_all(self, jobs: list[Job]) -> list:
        if self.settings.array and len(jobs) > 1:
            with self.executor.batch():
                handles = [self.executor.submit(SlurmTask(job)) for job in jobs]
        else:
            handles = [self.executor.submit(SlurmTask(job)) for job in jobs]
        return handles

    def done(self, handle) -> bool:
        return handle.done()

    def running(self, handle) -> bool:
        return handle.state in ("RUNNING", "COMPLETING")

    def exit_code(self, handle) -> int:
        return handle.result()

    def stop(self) -> None:
        pass  # the jobs belong to the cluster: they go on, and a later sweep picks up their results


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _ray_run(job: Job, threads: dict) -> int:
    for name, value in threads.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return run_job(job)


class RayBackend:
    name = "ray"

    def __init__(self, address: str | None = "auto", cpus: float = 1, gpus: float = 0):
        try:
            import ray
        except ImportError:
            raise GenbenchError("--backend ray needs Ray: pip install 'genbench[ray]' (or pip install ray).") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        self.task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(_ray_run)
        # Ray sets OMP_NUM_THREADS to a task's CPUs; the thread count moves CPU results, so a run gets the
        # thread settings of the process that started the sweep, as `genbench run` by hand would
        self.threads = {name: os.environ.get(name) for name in THREAD_VARIABLES}

    def submit(self, job: Job):
        return self.task.remote(job, self.threads)

    def done(self, handle) -> bool:
        ready, _ = self.ray.wait([handle], timeout=0)
        return bool(ready)

    def running(self, handle) -> bool:
        return not self.done(handle)  # Ray does not say whether a task waits for resources or runs

    def exit_code(self, handle) -> int:
        return self.ray.get(handle)

    def stop(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------------------
# The sweep: submit, watch, report

@dataclass
class Outcome:
    job: Job
    status: str  # "done", "skipped" (done before), "failed", "stopped"
    seconds: float | None = None
    detail: str = ""


def sweep(jobs: list[Job], backend, *, echo: Callable[[str], None] = print, poll_s: float = 1.0) -> list[Outcome]:
    """Run every job not yet done on `backend`, with a status line whenever a run changes state, and return one
    Outcome per job (in the grid's order)."""
    outcomes: dict[str, Outcome] = {}
    todo = []
    for job in jobs:
        if job.state() == "done":
            outcomes[job.name] = Outcome(job, "skipped", detail="finished before")
        else:
            todo.append(job)
    echo(f"{len(jobs)} run(s): {len(jobs) - len(todo)} finished before, {len(todo)} to run on {backend.name}"
         + (f" ({sum(j.state() == 'interrupted' for j in todo)} to resume)" if todo else "") + ".")
    submit_all = getattr(backend, "submit_all", None)
    handles = submit_all(todo) if submit_all else [backend.submit(job) for job in todo]
    previous = _stop_on_sigterm()
    submitted = time.monotonic()
    started: dict[str, float] = {}  # when a run was first seen running: a queued run's wait is not its time
    pending = dict(zip((job.name for job in todo), zip(todo, handles)))
    last = None
    try:
        while pending:
            for name, (job, handle) in list(pending.items()):
                if not backend.done(handle):
                    if name not in started and backend.running(handle):
                        started[name] = time.monotonic()
                    continue
                del pending[name]
                seconds = time.monotonic() - started.get(name, submitted)
                outcomes[name] = _outcome(job, backend, handle, seconds)
                echo(_event(outcomes[name]))
            running = sum(backend.running(h) for _, h in pending.values())
            line = _summary(outcomes.values(), running, len(pending) - running, parallel=max(running, 1))
            if line != last:
                echo(line)
                last = line
            if pending:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        echo("Interrupted: stopping the running runs at their next step with a checkpoint; run the same sweep "
             "again to continue them.")
        backend.stop()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return [outcomes[job.name] for job in jobs]


def _stop_on_sigterm():
    """SIGTERM (`kill PID`, a scheduler ending the driver) stops a sweep as Ctrl-C does, its runs with their
    checkpoints, rather than leaving them running on their own; the previous handler, or None off the main
    thread (where Python takes no signal handlers)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, interrupt)


def _outcome(job: Job, backend, handle, seconds: float) -> Outcome:
    try:
        code = backend.exit_code(handle)
    except Exception as exc:  # noqa: BLE001 - the engine's failure (a crashed job, a lost node) is the run's
        return Outcome(job, "failed", seconds, f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1:]}"
                       f"\n{log_tail(job)}")
    if code == 0 and job.state() == "done":
        return Outcome(job, "done", seconds)
    if code == STOPPED:
        return Outcome(job, "stopped", seconds, "stopped early with a checkpoint; run the sweep again to continue")
    return Outcome(job, "failed", seconds, f"exit status {code}\n{log_tail(job)}")


def _event(o: Outcome) -> str:
    took = f" in {_duration(o.seconds)}" if o.seconds is not None else ""
    head = f"{o.status:>7}  {o.job.name}{took}"
    if o.status == "failed":
        body = "\n".join(f"         | {line}" for line in o.detail.splitlines())
        return f"{head}; the last lines of {o.job.log}:\n{body}"
    return head + (f" ({o.detail})" if o.detail and o.status != "done" else "")


def _summary(outcomes, running: int, queued: int, *, parallel: int) -> str:
    counts = {s: 0 for s in ("done", "skipped", "failed", "stopped")}
    times = []
    for o in outcomes:
        counts[o.status] += 1
        if o.status == "done" and o.seconds is not None:
            times.append(o.seconds)
    eta = ""
    if times and (running or queued):
        eta = f"; ETA {_duration(sum(times) / len(times) * (running + queued) / parallel)}"
    return (f"[{counts['done'] + counts['skipped']} done, {running} running, {counts['failed']} failed, "
            f"{queued} queued" + (f", {counts['stopped']} stopped" if counts["stopped"] else "") + f"{eta}]")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


# ---------------------------------------------------------------------------------------------------------
# The board

def submit_to_board(outcomes: list[Outcome], board: Path, *, echo: Callable[[str], None] = print) -> list[Path]:
    """Submit every finished run to `board` (one already there is left as it is) and build the board."""
    from genbench.report.leaderboard import build
    from genbench.report.submit import SubmitError, submit

    added = 0
    for o in outcomes:
        if o.status not in ("done", "skipped"):
            continue
        try:
            submit(o.job.out, board)
            added += 1
        except SubmitError as exc:
            if exc.reason not in ("duplicate_run_id", "duplicate_content"):
                echo(f"not submitted: {o.job.name}: {exc}")
    echo(f"{added} result(s) added to {board}; building it.")
    return build(board)

