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


pytestmark = pytest.mark.usefixtures("fashion_mnist")  # tests/conftest.py: skips without it


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


def test_genbench_sampler_steps_writes_the_curve_and_its_plot(runs):
    """FID against DDIM's S for a trained run, as its own file beside result.json (which stays untouched)."""
    from click.testing import CliRunner

    from genbench.cli import main

    out, result = runs["ddpm"]
    before = (out / "result.json").read_bytes()
    proc = CliRunner().invoke(main, ["sampler-steps", str(out), "--steps", "1,3", "--num-samples", "50",
                                     "--offline", "--no-progress"])
    assert proc.exit_code == 0, proc.output
    record = json.loads((out / "sampler_steps.json").read_text())
    section = record["sampler_steps"]
    assert [p["steps"] for p in section["curve"]] == [1, 3] and section["n"] == 50
    assert section["sampler"] == {"sampler": "ddim (Song, Meng & Ermon 2021, Eq. 12)", "eta": 0.0}
    fids = [p["fid[lenet-fashion-mnist]"] for p in section["curve"]]
    assert all(f > 0 for f in fids) and fids[0] != fids[1]
    assert record["protocol"]["hash"] == DDPM.hash and record["run_id"] == result["run_id"]
    assert (out / "sampler-steps.png").stat().st_size > 0 and (out / "result.json").read_bytes() == before

    proc = CliRunner().invoke(main, ["sampler-steps", str(runs["ncsnv2"][0]), "--steps", "1", "--offline"])
    assert proc.exit_code != 0 and "fixed number of steps" in proc.output
    for bad, why in (("10,x", "whole numbers"), ("0", "whole numbers"), ("5,51", "1 <= steps <= T = 50")):
        proc = CliRunner().invoke(main, ["sampler-steps", str(out), "--steps", bad, "--offline"])
        assert proc.exit_code != 0 and why in proc.output, proc.output


def test_a_protocol_can_ask_for_the_steps_curve(runs, tmp_path):
    """A protocol naming sampler_steps gets the curve in its result (cifar10/ddpm/standard does)."""
    import dataclasses
    import shutil

    out = tmp_path / "curve"
    shutil.copytree(runs["ddpm"][0], out)
    (out / "result.json").unlink()
    protocol = dataclasses.replace(DDPM, evaluation=dataclasses.replace(
        DDPM.evaluation, sampler_steps=(2,), sampler_steps_samples=30))
    import torch

    from genbench.evaluate import evaluate_run
    from genbench.rundir import RunDir

    spec = registry.dataset("fashion-mnist")
    result = evaluate_run(RunDir(out), protocol, train=spec.load("train", download=False, progress=False),
                          held_out=spec.load("test", download=False, progress=False), device=torch.device("cpu"),
                          progress=False, echo=quiet)
    assert [p["steps"] for p in result["sampler_steps"]["curve"]] == [2]
    assert registry.protocol("cifar10/ddpm/standard").evaluation.sampler_steps == (10, 20, 50, 100, 1000)
