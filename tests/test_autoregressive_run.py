"""Autoregressive models under the runner and evaluation: the exact likelihood named as such with nats beside
bits/dim, the sampler named, exact resume after SIGKILL, determinism."""

import json
import os
import signal
import subprocess
import sys

import pytest

from genbench import registry, results
from genbench.evaluate import expected_metrics
from genbench.runner import RunOptions, run

MODELS = ("pixelcnn", "gated-pixelcnn", "pixelcnnpp", "pixelrnn", "nade", "made")
SMOKE = {m: registry.protocol(f"fashion-mnist/{m}/smoke") for m in MODELS}
CLI = [sys.executable, "-m", "genbench", "run", "--dataset", "fashion-mnist", "--protocol", "smoke", "--no-progress",
       "--offline"]

pytestmark = pytest.mark.usefixtures("fashion_mnist")  # tests/conftest.py: skips without it


def do_run(out, protocol):
    return run(protocol, RunOptions(out=out, progress=False, download=False), echo=lambda *_: None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("autoregressive")
    return {m: (out / m, do_run(out / m, p)) for m, p in SMOKE.items()}


def comparable(result):
    return result["metrics"], result["provenance"]["checkpoint_sha256"]


@pytest.mark.parametrize("model", list(SMOKE))
def test_the_result_holds_the_exact_likelihood_in_bits_and_nats(runs, model):
    result = runs[model][1]
    m = result["metrics"]
    assert list(m) == expected_metrics(SMOKE[model]) and m["bpd"]["estimator"] == "exact"
    bpd = m["bpd"]
    assert bpd["n"] == 20 and ("256-way softmax" in bpd["conditional"] or "logistic mixture" in bpd["conditional"])
    # nats per image and bits/dim are the same number in two units
    assert bpd["nats_per_image"] / (784 * 0.6931471805599453) == pytest.approx(bpd["value"], rel=1e-12)
    assert 3 < bpd["value"] < 9  # 12 steps from a random start
    assert result["compute"]["sample_images_per_s"] > 0
    if model in ("pixelcnn", "gated-pixelcnn", "pixelcnnpp", "pixelrnn"):
        assert result["sampler"]["sampler"].startswith("ancestral, cached generation")
    if model == "made":  # the ensemble over mask sets, stated
        assert bpd["members"] == 2 and "logsumexp" in bpd["ensemble"]


@pytest.mark.parametrize("model", ["gated-pixelcnn", "made"])  # cached generation; a mask set drawn per step
def test_resume_after_sigkill_reaches_the_same_result(runs, model, tmp_path):
    out = tmp_path / "killed"
    cli = CLI + ["--model", model, "--out", str(out)]
    proc = subprocess.run(cli, env={**os.environ, "GENBENCH_FAULT_KILL_AT_STEP": "6"}, capture_output=True,
                          text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 4
    proc = subprocess.run(cli + ["--resume"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert comparable(results.load(out)) == comparable(runs[model][1])


def test_same_seed_same_numbers(runs, tmp_path):
    assert comparable(do_run(tmp_path / "again", SMOKE["made"])) == comparable(runs["made"][1])
