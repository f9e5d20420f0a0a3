"""The discrete flows (nice, realnvp, glow) under the runner and evaluation: the dequantization bounds named as
bounds with nats beside bits/dim, the importance-weighted bound, Glow's temperature curve, exact resume after
SIGKILL before and after actnorm's data-dependent initialization, determinism."""

import json
import os
import signal
import subprocess
import sys

import pytest

from genbench import registry, results
from genbench.evaluate import expected_metrics
from genbench.report.entries import BOUND_ESTIMATORS
from genbench.runner import RunOptions, run

MODELS = ("nice", "realnvp", "glow")
SMOKE = {m: registry.protocol(f"fashion-mnist/{m}/smoke") for m in MODELS}
CLI = [sys.executable, "-m", "genbench", "run", "--dataset", "fashion-mnist", "--protocol", "smoke", "--no-progress",
       "--offline"]

pytestmark = pytest.mark.usefixtures("fashion_mnist")  # tests/conftest.py: skips without it


def do_run(out, protocol):
    return run(protocol, RunOptions(out=out, progress=False, download=False), echo=lambda *_: None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("flows")
    return {m: (out / m, do_run(out / m, p)) for m, p in SMOKE.items()}


def comparable(result):
    return result["metrics"], result["provenance"]["checkpoint_sha256"]


def killed_at_step_6_and_resumed(model: str, out) -> dict:
    """The result of the smoke protocol run in a process SIGKILLed after its sixth step, then resumed."""
    cli = CLI + ["--model", model, "--out", str(out)]
    proc = subprocess.run(cli, env={**os.environ, "GENBENCH_FAULT_KILL_AT_STEP": "6"}, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    proc = subprocess.run(cli + ["--resume"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return results.load(out)


@pytest.mark.parametrize("model", MODELS)
def test_the_result_holds_the_dequantization_bounds_in_bits_and_nats(runs, model):
    result = runs[model][1]
    m = result["metrics"]
    assert list(m) == expected_metrics(SMOKE[model])
    bpd, iw = m["bpd"], m["bpd_iwae"]
    kind = "variational" if model == "realnvp" else "uniform"  # realnvp's smoke preset dequantizes variationally
    assert bpd["estimator"] == f"{kind}-dequantization" and iw["estimator"] == f"iw-{kind}-dequantization"
    assert {bpd["estimator"], iw["estimator"]} <= BOUND_ESTIMATORS  # boards mark them with "<="
    assert bpd["n"] == 20 and bpd["draws"] == 1 and bpd["dequantization"].startswith(kind)
    assert "k" not in bpd  # the key of the importance-weighted columns: bpd shares the other families' column
    assert iw["n"] == 10 and iw["k"] == 4
    assert bpd["nats_per_image"] / (784 * 0.6931471805599453) == pytest.approx(bpd["value"], rel=1e-12)
    assert 3 < bpd["value"] < 12 and 3 < iw["value"] < 12  # 12 steps from a random start
    assert result["sampler"] == {"sampler": "inverse flow on prior draws", "temperature": 1.0}
    assert result["compute"]["sample_images_per_s"] > 0


def test_glow_scores_samples_against_the_temperature(runs):
    result = runs["glow"][1]
    curve = result["temperature_curve"]
    assert [p["temperature"] for p in curve["curve"]] == [0.7, 1.0] and curve["n"] == 100
    fid = "fid[lenet-fashion-mnist]"
    assert curve["metrics"] == [fid] and curve["reference"] == "fashion-mnist:test"
    # the same generator seed as the evaluation samples: at the model's temperature the curve repeats their FID
    assert curve["curve"][1][fid] == result["metrics"][fid]["value"]
    assert curve["curve"][0][fid] != curve["curve"][1][fid]
    assert "temperature_curve" not in runs["nice"][1]  # the protocol asks for it for glow only


@pytest.mark.parametrize("kill_at,checkpointed", [pytest.param(1, None, marks=pytest.mark.slow), (6, 4)])
def test_glow_resumes_after_sigkill_to_the_same_result(runs, kill_at, checkpointed, tmp_path, request):
    """Killed after the sixth step (the checkpoint of step 4 holds the initialized actnorm, which the resumed model
    must not redo) and, with -m slow, after the first (actnorm initialized, nothing checkpointed: the run starts
    over and initializes again on the same batch)."""
    if kill_at == 1 and "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow: run with -m slow")
    out = tmp_path / "killed"
    cli = CLI + ["--model", "glow", "--out", str(out)]
    proc = subprocess.run(cli, env={**os.environ, "GENBENCH_FAULT_KILL_AT_STEP": str(kill_at)}, capture_output=True,
                          text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    if checkpointed is None:
        assert not (out / "checkpoint.json").exists()
    else:
        assert json.loads((out / "checkpoint.json").read_text())["step"] == checkpointed
    proc = subprocess.run(cli + ["--resume"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert comparable(results.load(out)) == comparable(runs["glow"][1])


def test_realnvp_resumes_after_sigkill_with_its_variational_dequantizer(runs, tmp_path):
    """q(u | x) draws its noise from the global RNG, which the checkpoint restores."""
    assert comparable(killed_at_step_6_and_resumed("realnvp", tmp_path / "killed")) == comparable(runs["realnvp"][1])


def test_same_seed_same_numbers(runs, tmp_path):
    assert comparable(do_run(tmp_path / "again", SMOKE["realnvp"])) == comparable(runs["realnvp"][1])


def test_a_board_holds_the_flows_bits_per_dim_in_one_column_marked_as_bounds(runs):
    from genbench.report import tables

    text = tables.report([runs[m][0] for m in MODELS], fmt="md")
    header = next(line for line in text.splitlines() if line.startswith("| Entry"))
    labels = [cell.strip() for cell in header.strip("|").split("|")]
    assert labels.count("bits/dim ↓") == 1  # one bpd column: no field (k, n, split) tells the three apart
    column = labels.index("bits/dim ↓")
    rows = [line for line in text.splitlines() if any(line.startswith(f"| {m} (smoke)") for m in MODELS)]
    assert len(rows) == 3
    for row in rows:
        assert [cell.strip() for cell in row.strip("|").split("|")][column].startswith("≤ ")


def test_ffjord_runs_and_resumes_after_sigkill_to_the_same_result(tmp_path):
    """The continuous flow under the runner: its bound named as a bound, and a run killed after the sixth step that
    continues with --resume reaches the uninterrupted run's weights and metrics."""
    protocol = registry.protocol("fashion-mnist/ffjord/smoke")
    result = do_run(tmp_path / "whole", protocol)
    m = result["metrics"]
    assert list(m) == expected_metrics(protocol) and m["bpd"]["estimator"] == "uniform-dequantization"
    assert m["bpd"]["estimator"] in BOUND_ESTIMATORS and 3 < m["bpd"]["value"] < 20  # 12 steps from a random start
    assert comparable(killed_at_step_6_and_resumed("ffjord", tmp_path / "killed")) == comparable(result)
