"""The energy-based models (igebm, jem, short-run-ebm) under the runner and evaluation: the metrics their
protocols promise, JEM's accuracy, the AIS estimate named as an estimate with its direction, exact resume after
SIGKILL with the replay buffer in the checkpoint (and never in model.pt), determinism."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from genbench import registry, results
from genbench.evaluate import expected_metrics
from genbench.files import load_state
from genbench.report.entries import BOUND_ESTIMATORS, ESTIMATE_ESTIMATORS
from genbench.runner import RunOptions, run

MODELS = ("igebm", "jem", "short-run-ebm")
SMOKE = {m: registry.protocol(f"fashion-mnist/{m}/smoke") for m in MODELS}
CLI = [sys.executable, "-m", "genbench", "run", "--dataset", "fashion-mnist", "--protocol", "smoke", "--no-progress",
       "--offline"]

pytestmark = pytest.mark.usefixtures("fashion_mnist")  # tests/conftest.py: skips without it


def do_run(out, protocol):
    return run(protocol, RunOptions(out=out, progress=False, download=False), echo=lambda *_: None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ebm")
    return {m: (out / m, do_run(out / m, p)) for m, p in SMOKE.items()}


def comparable(result):
    return result["metrics"], result["provenance"]["checkpoint_sha256"]


@pytest.mark.parametrize("model", MODELS)
def test_the_result_holds_the_promised_metrics_and_the_ais_estimate(runs, model):
    result = runs[model][1]
    m = result["metrics"]
    assert list(m) == expected_metrics(SMOKE[model])
    ais = m["bpd_ais"]
    assert ais["estimator"] == "ais" and "ais" in ESTIMATE_ESTIMATORS and "ais" not in BOUND_ESTIMATORS
    assert ais["n"] == 20 and ais["chains"] == 8 and ais["settings"]["steps"] == 20
    assert "errs low" in ais["direction"] and "not a bound" in ais["direction"]
    assert np.isfinite(ais["value"]) and np.isfinite(ais["log_z"]) and ais["log_z_std_error"] >= 0
    # the bits/dim follow from the energies and log Z: nats per image / (D ln 2)
    assert ais["nats_per_image"] / (784 * np.log(2)) == pytest.approx(ais["value"], rel=1e-12)
    assert result["sampler"]["steps"] == 4 and result["compute"]["sample_images_per_s"] > 0
    assert "bpd" not in m  # no likelihood of its own: only the AIS estimate


def test_jem_reports_its_test_split_accuracy(runs):
    acc = runs["jem"][1]["metrics"]["accuracy"]
    assert acc["n"] == 20 and acc["split"] == "fashion-mnist:test" and 0 <= acc["value"] <= 1
    assert acc["std_error"] == pytest.approx(np.sqrt(acc["value"] * (1 - acc["value"]) / 20))
    assert "accuracy" not in runs["igebm"][1]["metrics"]  # igebm does not classify


def test_the_replay_buffer_is_in_the_checkpoint_and_never_in_the_weights(runs):
    out = runs["igebm"][0]
    state = load_state(out / "checkpoint.pt")
    assert state["train_state"]["buffer"].shape == (64, 1, 28, 28)
    weights = load_state(out / "model.pt")
    assert not any("buffer" in k for k in weights)
    assert load_state(runs["short-run-ebm"][0] / "checkpoint.pt")["train_state"] == {}


def test_jem_classifies_with_the_weights_it_saved(runs):
    """The accuracy step scores the saved model's classify: recomputed here from model.pt on the same images."""
    out, result = runs["jem"]
    model = registry.build_model(SMOKE["jem"], (1, 28, 28), 0)
    model.load_state_dict(load_state(out / "model.pt"))
    data = registry.dataset("fashion-mnist").load("test", download=False, progress=False)
    logits = model.eval().classify(torch.from_numpy(np.array(data.images[:20])))
    assert float((logits.argmax(1).numpy() == data.labels[:20]).mean()) == result["metrics"]["accuracy"]["value"]


@pytest.mark.parametrize("model", ["igebm", pytest.param("jem", marks=pytest.mark.slow),
                                   pytest.param("short-run-ebm", marks=pytest.mark.slow)])
def test_a_run_killed_after_step_6_resumes_to_identical_metrics(runs, model, tmp_path, request):
    """SIGKILL after step 6 (the last checkpoint at step 4): the resumed run repeats steps 5 and 6 from the
    checkpointed weights, optimizer, RNG and replay buffer, and ends bit-identical."""
    if model != "igebm" and "slow" not in request.config.getoption("markexpr"):
        pytest.skip("slow: run with -m slow")
    cli = CLI + ["--model", model, "--out", str(tmp_path)]
    proc = subprocess.run(cli, env={**os.environ, "GENBENCH_FAULT_KILL_AT_STEP": "6"}, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_state(tmp_path / "checkpoint.pt")["step"] == 4
    proc = subprocess.run(cli + ["--resume"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert comparable(results.load(tmp_path)) == comparable(runs[model][1])


def test_the_same_seed_gives_the_same_metrics(runs, tmp_path):
    assert comparable(do_run(tmp_path, SMOKE["short-run-ebm"])) == comparable(runs["short-run-ebm"][1])
