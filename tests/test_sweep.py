"""`genbench sweep`: the grid, idempotence (finished runs skipped, interrupted ones resumed exactly), failures shown
with their log, the board at the end, SLURM through submitit's local scheduler with a timeout that requeues, and a
missing engine's message. Every run here is the digits VAE's smoke protocol (a few seconds)."""

import builtins

import pytest
from click.testing import CliRunner

from genbench import GenbenchError, registry, results, sweep
from genbench.cli import main
from genbench.runner import RunOptions, run

SMOKE = registry.protocol("digits/vae/smoke")


def quiet(*_):
    pass


def comparable(result):
    return result["metrics"], result["references"], result["provenance"]["checkpoint_sha256"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run `genbench run` makes of seed 0, in this process (the sweep's runs are subprocesses)."""
    out = tmp_path_factory.mktemp("by-hand")
    return run(SMOKE, RunOptions(out=out / "run", progress=False, download=False), echo=quiet)


def jobs_for(out, seeds=(0,), **kw):
    return sweep.grid(models=["vae"], datasets=["digits"], tiers=["smoke"], seeds=seeds, out=out, **kw)


def test_the_grid_names_runs_as_genbench_run_does_and_leaves_out_what_has_no_protocol(tmp_path):
    said = []
    jobs = sweep.grid(models=["vae", "dcgan"], datasets=["digits", "fashion-mnist"], tiers=["smoke"], seeds=[0, 1],
                      out=tmp_path, warn=said.append)
    names = [j.name for j in jobs]
    assert names[:2] == ["digits-vae-smoke-v2-seed0", "digits-vae-smoke-v2-seed1"]
    assert all(j.protocol == registry.find_protocol(model=j.model, dataset=j.dataset, tier="smoke").ref for j in jobs)
    assert len(said) == 1 and "digits/dcgan/smoke" in said[0]  # no DCGAN protocol on digits
    command = jobs[0].command()
    assert command[1:] == ["-m", "genbench", "run", "--model", "vae", "--dataset", "digits", "--protocol", SMOKE.ref,
                           "--seed", "0", "--out", str(tmp_path / names[0]), "--no-progress"]  # new: no --resume
    with pytest.raises(GenbenchError, match="takes tiers"):
        sweep.grid(models=["vae"], datasets=["digits"], tiers=["digits/vae/smoke"], seeds=[0], out=tmp_path)
    with pytest.raises(GenbenchError, match="unknown model 'vea'"):
        sweep.grid(models=["vea"], datasets=["digits"], tiers=["smoke"], seeds=[0], out=tmp_path)
    with pytest.raises(GenbenchError, match="no protocol exists for any run"):
        sweep.grid(models=["dcgan"], datasets=["digits"], tiers=["smoke"], seeds=[0], out=tmp_path)


def test_local_sweep_gives_the_runs_genbench_run_gives_skips_them_after_and_builds_the_board(tmp_path, uninterrupted):
    jobs = jobs_for(tmp_path / "sweep", seeds=(0, 1))
    said = []
    outcomes = sweep.sweep(jobs, sweep.LocalBackend(jobs=2), echo=said.append, poll_s=0.2)
    assert [o.status for o in outcomes] == ["done", "done"]
    assert comparable(results.load(jobs[0].out)) == comparable(uninterrupted)  # seed 0: as by hand
    assert comparable(results.load(jobs[1].out)) != comparable(uninterrupted)
    assert any(line.startswith("[2 done, 0 running, 0 failed, 0 queued") for line in said)
    assert "Result written" in jobs[0].log.read_text()  # one log per run

    again = sweep.sweep(jobs, sweep.LocalBackend(jobs=2), echo=said.append, poll_s=0.2)  # idempotent
    assert [o.status for o in again] == ["skipped", "skipped"]
    sweep.submit_to_board(again, tmp_path / "board", echo=said.append)
    entries = list((tmp_path / "board" / "results").iterdir())
    assert len(entries) == 2 and (tmp_path / "board" / "README.md").is_file()
    sweep.submit_to_board(again, tmp_path / "board", echo=said.append)  # already there: left as it is
    assert len(list((tmp_path / "board" / "results").iterdir())) == 2


def test_a_killed_run_is_reported_with_its_log_and_the_next_sweep_resumes_it_exactly(tmp_path, uninterrupted,
                                                                                  monkeypatch):
    (job,) = jobs_for(tmp_path)
    monkeypatch.setenv("GENBENCH_FAULT_KILL_AT_STEP", "15")  # past the checkpoint at step 10
    said = []
    (outcome,) = sweep.sweep([job], sweep.LocalBackend(), echo=said.append, poll_s=0.2)
    assert outcome.status == "failed" and "exit status -9" in outcome.detail
    assert "Estimated training time" in outcome.detail  # the run's last lines, shown
    assert any("the last lines of" in line for line in said)
    assert job.state() == "interrupted" and "--resume" in job.command()
    monkeypatch.delenv("GENBENCH_FAULT_KILL_AT_STEP")
    (outcome,) = sweep.sweep([job], sweep.LocalBackend(), echo=said.append, poll_s=0.2)
    assert outcome.status == "done" and "Resuming from step 10/40" in job.log.read_text()
    assert comparable(results.load(job.out)) == comparable(uninterrupted)


def test_slurm_through_submitits_local_scheduler_requeues_on_a_timeout_and_resumes_exactly(tmp_path, uninterrupted,
                                                                                       monkeypatch):
    pytest.importorskip("submitit")
    (job,) = jobs_for(tmp_path)
    # 40 steps of about 1 s: the scheduler's warning signal, 40 s into the first attempt (a 60 s limit, 20 s of
    # warning), comes during training; the run checkpoints, the job is requeued and the next attempt resumes it
    monkeypatch.setenv("GENBENCH_FAULT_STEP_SECONDS", "1.0")
    backend = sweep.SlurmBackend(sweep.SlurmSettings(cluster="local", time_minutes=1, signal_delay_s=20),
                                 tmp_path / "submitit")
    (outcome,) = sweep.sweep([job], backend, echo=quiet, poll_s=0.5)
    log = job.log.read_text()
    assert outcome.status == "done", outcome.detail
    assert log.count("=== ") >= 2 and "Stopped at step" in log and "Resuming from step" in log
    assert comparable(results.load(job.out)) == comparable(uninterrupted)


def test_ray_tasks_on_a_local_ray_give_the_same_run(tmp_path, uninterrupted):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # the test's own Ray; a cluster's: "auto"
    try:
        (job,) = jobs_for(tmp_path)
        (outcome,) = sweep.sweep([job], sweep.RayBackend(cpus=1), echo=quiet, poll_s=0.2)
    finally:
        ray.shutdown()
    assert outcome.status == "done", outcome.detail
    assert comparable(results.load(job.out)) == comparable(uninterrupted)


def test_a_missing_engine_says_how_to_install_it(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_engines(name, *args, **kwargs):
        if name in ("submitit", "ray"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_engines)
    with pytest.raises(GenbenchError, match=r"pip install 'genbench\[slurm\]'"):
        sweep.SlurmBackend(sweep.SlurmSettings(cluster="local"), tmp_path)
    with pytest.raises(GenbenchError, match=r"pip install 'genbench\[ray\]'"):
        sweep.RayBackend()


def test_the_cli_reads_a_sweep_file_and_lists_the_runs(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text(f'model = ["vae"]\ndataset = "digits"\nprotocol = "smoke"\nseeds = [0, 2]\n'
                      f'out = "{tmp_path / "s"}"\n')
    result = CliRunner().invoke(main, ["sweep", "--config", str(config), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["new", "digits-vae-smoke-v2-seed0", "new", "digits-vae-smoke-v2-seed2"]
    result = CliRunner().invoke(main, ["sweep", "--config", str(config), "--seeds", "1", "--dry-run"])
    assert result.output.split() == ["new", "digits-vae-smoke-v2-seed1"]  # the command line wins
    config.write_text('modle = "vae"\n')
    result = CliRunner().invoke(main, ["sweep", "--config", str(config), "--dry-run"])
    assert result.exit_code != 0 and "unknown key(s) modle" in result.output


def test_a_sweep_file_with_several_grids_runs_their_union_once_each(tmp_path):
    """A board's sweep: every model at seed 0, and one of them at more seeds; a run in both grids runs once."""
    config = tmp_path / "board.toml"
    config.write_text(f'dataset = "fashion-mnist"\nprotocol = "smoke"\nout = "{tmp_path / "s"}"\n'
                      '[[grid]]\nmodel = ["nade", "made"]\nseeds = [0]\n'
                      '[[grid]]\nmodel = "nade"\nseeds = [0, 1]\n')
    result = CliRunner().invoke(main, ["sweep", "--config", str(config), "--dry-run"])
    assert result.exit_code == 0, result.output
    names = [name.rsplit("-v", 1)[0] + "-" + name.rsplit("-", 1)[1] for name in result.output.split()[1::2]]
    assert names == ["fashion-mnist-nade-smoke-seed0", "fashion-mnist-made-smoke-seed0",
                     "fashion-mnist-nade-smoke-seed1"]
    config.write_text('dataset = "fashion-mnist"\n[[grid]]\nmodel = "nade"\nseed = [1]\n')
    result = CliRunner().invoke(main, ["sweep", "--config", str(config), "--dry-run"])
    assert result.exit_code != 0 and "unknown key(s) seed in a [[grid]]" in result.output
    result = CliRunner().invoke(main, ["sweep", "--dataset", "fashion-mnist", "--dry-run"])
    assert result.exit_code != 0 and "give --model" in result.output


class _OneAtATime:
    """A stand-in engine with one slot: each run takes `seconds` once it starts, the next waits for it."""

    name = "fake"

    def __init__(self, seconds):
        import time

        self.clock, self.seconds, self.queue, self.t0 = time.monotonic, seconds, [], None

    def submit(self, job):
        self.queue.append(job)
        return job

    def _start(self, job) -> float:
        if self.t0 is None:
            self.t0 = self.clock()
        return self.t0 + self.queue.index(job) * self.seconds

    def running(self, job) -> bool:
        return self._start(job) <= self.clock() < self._start(job) + self.seconds

    def done(self, job) -> bool:
        return self.clock() >= self._start(job) + self.seconds

    def exit_code(self, job) -> int:
        (job.out / "result.json").parent.mkdir(parents=True, exist_ok=True)
        (job.out / "result.json").write_text("{}")
        return 0

    def stop(self):
        pass


def test_a_runs_time_starts_when_it_runs_not_while_it_waits_in_the_queue(tmp_path):
    jobs = [sweep.Job("vae", "digits", "digits/vae/smoke@2", seed, tmp_path / f"run{seed}") for seed in range(3)]
    outcomes = sweep.sweep(jobs, _OneAtATime(0.4), echo=lambda _: None, poll_s=0.02)
    assert [o.status for o in outcomes] == ["done"] * 3
    for o in outcomes:  # each ran 0.4 s; the third waited 0.8 s before it started
        assert 0.35 < o.seconds < 0.6, [o.seconds for o in outcomes]


def test_sigterm_stops_a_sweep_and_its_run_with_a_checkpoint(tmp_path):
    """`kill PID` on the sweep (as a scheduler ends a driver) stops it as Ctrl-C does: the run checkpoints and
    stops, nothing is left running, and the next sweep resumes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "genbench", "sweep", "--model", "vae", "--dataset", "digits", "--protocol", "smoke",
           "--out", str(tmp_path / "s")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "GENBENCH_FAULT_STEP_SECONDS": "0.5"})  # 40 steps, 20 s
    log = tmp_path / "s" / "logs" / "digits-vae-smoke-v2-seed0.log"
    deadline = time.monotonic() + 120
    while not (log.is_file() and "Estimated training time" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Interrupted: stopping the running runs" in out
    assert "checkpoint saved" in log.read_text()
    (job,) = sweep.grid(models=["vae"], datasets=["digits"], tiers=["smoke"], seeds=[0], out=tmp_path / "s")
    assert job.state() == "interrupted" and "--resume" in job.command()
