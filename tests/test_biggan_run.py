"""BigGAN under the runner and evaluation: labels through training, samples drawn for the training proportions and
scored against them, the truncation curve and its plot, the EMA from `ema_start`, determinism, exact resume after
SIGKILL, and what a board expects of the result."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from genbench import registry, results
from genbench.evaluate import expected_metrics
from genbench.runner import EMA, RunOptions, run

SMOKE = registry.protocol("fashion-mnist/biggan/smoke")
CLI = [sys.executable, "-m", "genbench", "run", "--model", "biggan", "--dataset", "fashion-mnist", "--protocol",
       "smoke", "--no-progress", "--offline"]
LENET = "[lenet-fashion-mnist]"

pytestmark = pytest.mark.usefixtures("fashion_mnist")  # tests/conftest.py: skips without it


def do_run(out, protocol=SMOKE, **kw):
    return run(protocol, RunOptions(out=out, progress=False, download=False, **kw), echo=lambda *_: None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("biggan")
    return out, do_run(out)


def comparable(result):
    return (result["metrics"], result["snapshots"], result["truncation_curve"],
            result["provenance"]["checkpoint_sha256"])


def test_the_result_holds_the_conditional_scores_and_the_truncation_curve(reference):
    out, result = reference
    m = result["metrics"]
    assert list(m) == expected_metrics(SMOKE)
    assert "psnr" not in m and "log_px_gauss_ais" not in m  # no projection, no decoder AIS (both need the label)
    accuracy = m[f"class_accuracy{LENET}"]
    assert accuracy["n"] == 200 and 0 <= accuracy["value"] <= 1 and accuracy["real_accuracy"] > 0.85
    intra = m[f"fid_intra{LENET}"]
    assert intra["classes_scored"] == 10 and intra["value"] == pytest.approx(np.mean(intra["per_class"]))
    # the samples were drawn for the training split's class proportions, 20 of each of the 10 balanced classes
    saved = np.load(out / "samples.npz")
    assert saved["images"].shape == (200, 1, 28, 28) and np.bincount(saved["labels"]).tolist() == [20] * 10
    curve = result["truncation_curve"]
    assert [p["truncation"] for p in curve["curve"]] == [1.0, 0.5] and curve["n"] == 100
    assert curve["metrics"] == [f"fid{LENET}", f"is{LENET}"]
    assert all(p[f"fid{LENET}"] > 0 and p[f"is{LENET}"] >= 1 for p in curve["curve"])
    assert result["files"]["truncation"] == "truncation.png" and (out / "truncation.png").stat().st_size > 0


def test_the_runner_hands_labels_and_the_ema_copies_before_ema_start(reference, tmp_path, monkeypatch):
    from genbench.baselines import biggan

    seen = []
    original = biggan.Model.train_step

    def spy(self, x, optimizers, *, labels=None):
        seen.append(labels.clone())
        return original(self, x, optimizers, labels=labels)

    monkeypatch.setattr(biggan.Model, "train_step", spy)
    do_run(tmp_path / "spy")
    assert len(seen) == SMOKE.steps and all(y.shape == (2 * SMOKE.batch_size,) for y in seen)  # n_critic 2
    train = registry.dataset("fashion-mnist").load("train", progress=False)
    # step 0's labels are those of the data order's first two batches
    from genbench.runner import DataOrder

    order = DataOrder(len(train), SMOKE.batch_size, 0)
    assert seen[0].tolist() == train.labels[torch.cat([order(0), order(1)]).numpy()].tolist()


def test_ema_update_copies_before_the_start_and_averages_after():
    net = torch.nn.Linear(2, 1)
    ema = EMA(net, 0.5)
    with torch.no_grad():
        net.weight.fill_(4.0)
    ema.update(net, copy=True)
    assert torch.equal(ema.shadow["weight"], net.weight)
    with torch.no_grad():
        net.weight.fill_(2.0)
    ema.update(net)
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 3.0))


def test_same_seed_same_numbers(reference, tmp_path):
    assert comparable(do_run(tmp_path / "again")) == comparable(reference[1])


def test_resume_after_sigkill_reaches_the_same_result(reference, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "GENBENCH_FAULT_KILL_AT_STEP": "7"}  # past the snapshot at 6, the checkpoint at 4 and
    proc = subprocess.run(CLI + ["--out", str(out)], env=env, capture_output=True, text=True)  # ema_start 4
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 4
    proc = subprocess.run(CLI + ["--out", str(out), "--resume"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Resuming from step 4/12" in proc.stdout
    assert comparable(results.load(out)) == comparable(reference[1])


def test_genbench_report_draws_the_truncation_plot(reference, tmp_path):
    from click.testing import CliRunner

    from genbench.cli import main

    out, result = reference
    proc = CliRunner().invoke(main, ["report", str(out), "--metrics", "fid", "--plots", str(tmp_path / "plots")])
    assert proc.exit_code == 0, proc.output
    drawn = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert f"fashion-mnist--{result['run_id']}--truncation.png" in drawn


def test_the_truncation_plot_puts_each_threshold_at_its_scores():
    from genbench.report.run_plots import truncation_plot

    section = {"n": 10, "metrics": ["fid[x]", "is[x]"], "extractor": "x", "reference": "d:train",
               "curve": [{"truncation": 0.5, "fid[x]": 9.0, "is[x]": 1.5},
                         {"truncation": None, "fid[x]": 3.0, "is[x]": 4.0},
                         {"truncation": 1.0, "fid[x]": 5.0, "is[x]": 3.0}]}
    line = truncation_plot(section).axes[0].lines[0]
    assert list(line.get_xdata()) == [4.0, 3.0, 1.5] and list(line.get_ydata()) == [3.0, 5.0, 9.0]  # none, 1, 0.5
    # the standard extractor's scores carry no extractor suffix (CIFAR-10 through Inception)
    curve = [{"truncation": p["truncation"], "fid": p["fid[x]"], "is": p["is[x]"]} for p in section["curve"]]
    inception = {**section, "metrics": ["fid", "is"], "curve": curve}
    assert list(truncation_plot(inception).axes[0].lines[0].get_ydata()) == [3.0, 5.0, 9.0]


def test_a_board_draws_the_truncation_curve_of_its_entry(reference, tmp_path):
    from genbench.report import leaderboard, submit

    out, result = reference
    board = tmp_path / "board"
    submit.submit(out, board)
    leaderboard.build(board, formats=("png",))
    drawn = sorted(p.name for p in (board / "plots").iterdir())
    assert f"fashion-mnist--{result['run_id']}--truncation.png" in drawn
