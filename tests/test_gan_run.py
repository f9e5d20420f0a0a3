"""GANs under the runner and evaluation: n_critic batches per step, exact resume after SIGKILL, determinism,
snapshots scored after training, latent projection, mode coverage, and what a board expects of the result."""

import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from genbench import registry, results
from genbench.evaluate import expected_metrics
from genbench.files import sha256_file
from genbench.runner import RunOptions, run

WGAN = registry.protocol("fashion-mnist/wgan/smoke")  # n_critic 5: each step takes 5 batches of 16
CLI = [sys.executable, "-m", "genbench", "run", "--model", "wgan", "--dataset", "fashion-mnist", "--protocol",
       "smoke", "--no-progress", "--offline"]


pytestmark = pytest.mark.usefixtures("fashion_mnist")  # tests/conftest.py: skips without it


def quiet(*_):
    pass


def do_run(out, protocol=WGAN, **kw):
    return run(protocol, RunOptions(out=out, progress=False, download=False, **kw), echo=quiet)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("wgan")
    return out, do_run(out)


def comparable(result):
    return result["metrics"], result["snapshots"], result["provenance"]["checkpoint_sha256"]


def test_the_result_holds_what_the_protocol_promises(reference):
    out, result = reference
    m = result["metrics"]
    assert list(m) == expected_metrics(WGAN)
    assert "bpd" not in m  # no likelihood of its own
    fid = m["fid[lenet-fashion-mnist]"]
    assert fid["n"] == 200 and fid["reference"] == "fashion-mnist:test" and fid["value"] > 0
    assert m["psnr"]["n"] == 20 and m["psnr"]["method"].startswith("latent projection")
    assert 1 <= m["classes_covered[lenet-fashion-mnist]"]["value"] <= 10
    assert m["class_kl[lenet-fashion-mnist]"]["value"] >= 0
    # version 2: log p(x) by AIS over the latent from the prior, under N(x; G(z), 0.1^2 I), with BDMC; at most
    # the Gaussian's peak density per pixel, and the smoke's 10-step sandwich is wide but the right way round
    gauss = m["log_px_gauss_ais"]
    assert gauss["n"] == 4 and gauss["sigma"] == 0.1 and gauss["base"] == "prior N(0, I)"
    assert gauss["value"] < 784 * (-math.log(0.1) - 0.5 * math.log(2 * math.pi))
    assert gauss["bdmc"]["images"] == 2 and gauss["bdmc"]["upper"] > gauss["bdmc"]["lower"]
    assert gauss["settings"]["steps"] == 10 and "lower bound" in gauss["direction"]
    curve = result["snapshots"]
    assert [p["step"] for p in curve["curve"]] == [6, 12] and curve["n"] == 200
    assert curve["metrics"] == ["fid[lenet-fashion-mnist]"]
    # the last snapshot is the final generator: its FID on the first 200 of the same draws is the headline's
    assert curve["curve"][-1]["fid[lenet-fashion-mnist]"] == pytest.approx(fid["value"], rel=1e-9)
    assert result["compute"]["batch_size"] == 16
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"g_loss", "d_loss", "wasserstein"} <= set(log[-1])
    assert log[-1]["images_per_s"] > 0


def test_each_step_gets_n_critic_fresh_batches(reference, monkeypatch):
    """The runner hands a critic with n_critic = 5 five consecutive batches of the data order per step."""
    from genbench.baselines import gan

    seen = []
    original = gan.Model.train_step

    def spy(self, x, optimizers):
        seen.append(x.shape[0])
        return original(self, x, optimizers)

    monkeypatch.setattr(gan.Model, "train_step", spy)
    import dataclasses

    short = dataclasses.replace(WGAN, steps=2, snapshot_every=None)
    out = reference[0].parent / "spy"
    run(short, RunOptions(out=out, progress=False, download=False), echo=quiet)
    assert seen == [5 * 16, 5 * 16]


def test_same_seed_same_numbers(reference, tmp_path):
    again = do_run(tmp_path / "again")
    assert comparable(again) == comparable(reference[1])
    for step in (6, 12):
        name = f"snapshots/step-{step:07d}.pt"
        assert sha256_file(tmp_path / "again" / name) == sha256_file(reference[0] / name)


def test_resume_after_sigkill_reaches_the_same_result(reference, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "GENBENCH_FAULT_KILL_AT_STEP": "7"}  # past the snapshot at 6 and the checkpoint at 4
    proc = subprocess.run(CLI + ["--out", str(out)], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 4
    proc = subprocess.run(CLI + ["--out", str(out), "--resume"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Resuming from step 4/12" in proc.stdout
    assert comparable(results.load(out)) == comparable(reference[1])


def test_force_removes_the_snapshots(reference, tmp_path):
    out = tmp_path / "forced"
    do_run(out)
    assert (out / "snapshots").is_dir()
    stale = out / "snapshots" / "step-0000099.pt"
    stale.write_bytes(b"from an older run")
    do_run(out, force=True)
    assert not stale.exists() and sorted(p.name for p in (out / "snapshots").iterdir()) == [
        "step-0000006.pt", "step-0000012.pt"]


def test_the_stacked_benchmark_scores_modes_per_channel(tmp_path):
    protocol = registry.protocol("stacked-fashion-mnist/dcgan/smoke")
    result = do_run(tmp_path / "stacked", protocol)
    m = result["metrics"]
    assert list(m) == expected_metrics(protocol)
    covered = m["modes_covered[lenet-fashion-mnist]"]
    assert covered["n"] == 500 and 1 <= covered["value"] <= 500
    assert m["mode_kl[lenet-fashion-mnist]"]["value"] >= np.log(1000 / 500) - 1e-9  # 500 samples cover <= 500
    assert not any(name.startswith("fid") for name in m)  # the one-channel extractor scores no 3-channel FID


def test_genbench_report_plots_the_curve_and_the_losses_of_a_run(reference, tmp_path):
    from click.testing import CliRunner

    from genbench.cli import main
    from genbench.report import entries, run_plots

    out, result = reference
    proc = CliRunner().invoke(main, ["report", str(out), "--metrics", "fid", "--plots", str(tmp_path / "plots")])
    assert proc.exit_code == 0, proc.output
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "fashion-mnist--fid-lenet-fashion-mnist--over-training.png",
        "fashion-mnist--fid-lenet-fashion-mnist--over-training.svg",
        "fashion-mnist--training-losses.png", "fashion-mnist--training-losses.svg"]
    fig = run_plots.snapshot_curve(entries.load_results([out]))
    line = next(ln for ln in fig.axes[0].lines if len(ln.get_xdata()) == 2)
    assert list(line.get_xdata()) == [6, 12]
    assert list(line.get_ydata()) == pytest.approx([p["fid[lenet-fashion-mnist]"] for p in result["snapshots"]["curve"]])
