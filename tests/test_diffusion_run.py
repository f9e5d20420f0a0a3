"""Diffusion and score models under the runner and evaluation: what the result holds (the bound named as an
estimate, the ODE likelihood with its solver settings, the sampler), exact resume after SIGKILL with the EMA,
and determinism."""

import json
import os
import signal
import subprocess
import sys

import pytest

from genbench import registry, results
from genbench.evaluate import expected_metrics
from genbench.runner import RunOptions, run

DDPM = registry.protocol("fashion-mnist/ddpm/smoke")
NCSNV2 = registry.protocol("fashion-mnist/ncsnv2/smoke")
CLI = [sys.executable, "-m", "genbench", "run", "--dataset", "fashion-mnist", "--protocol", "smoke", "--no-progress",
       "--offline"]


@pytest.fixture(scope="module", autouse=True)
def fashion_mnist():
    from genbench.data import DatasetUnavailable

    try:
        registry.dataset("fashion-mnist").load("test", download=False, progress=False)
    except DatasetUnavailable:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


def quiet(*_):
    pass


def do_run(out, protocol):
    return run(protocol, RunOptions(out=out, progress=False, download=False), echo=quiet)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("diffusion")
    return {p.model: (out / p.model, do_run(out / p.model, p)) for p in (DDPM, NCSNV2)}


def comparable(result):
    return result["metrics"], result["provenance"]["checkpoint_sha256"]


def test_ddpm_result_names_its_estimators_and_sampler(runs):
    m = runs["ddpm"][1]["metrics"]
    assert list(m) == expected_metrics(DDPM)
    bpd, ode = m["bpd"], m["bpd_ode"]
    assert bpd["estimator"] == "vlb-mc" and bpd["terms"] == "4 sampled timesteps per image" and bpd["n"] == 20
    assert bpd["std_error"] > 0 and 0 < bpd["value"] < 20
    assert ode["estimator"] == "ode" and ode["n"] == 4 and ode["solver"] == "dopri5" and ode["rtol"] == 1e-3
    assert ode["trace"] == "hutchinson, 1 rademacher probe(s)" and ode["mean_nfe"] > 6
    assert 0 < ode["value"] < 20
    assert runs["ddpm"][1]["sampler"] == {"sampler": "ddim (Song, Meng & Ermon 2021, Eq. 12)", "steps": 5,
                                         "eta": 0.0}


def test_score_models_have_the_ode_likelihood_and_no_bound(runs):
    m = runs["ncsnv2"][1]["metrics"]
    assert list(m) == expected_metrics(NCSNV2) and "bpd" not in m
    assert m["bpd_ode"]["sde"].startswith("VE") and m["bpd_ode"]["n"] == 4
    assert runs["ncsnv2"][1]["sampler"]["denoise"] is True


@pytest.mark.parametrize("model", ["ddpm", "ncsnv2"])
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
    assert comparable(do_run(tmp_path / "again", DDPM)) == comparable(runs["ddpm"][1])
