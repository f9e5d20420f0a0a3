"""StyleGAN2 under the runner and evaluation: the lazy regularizers' steps, the style-mixing and noise figure beside
the samples, determinism, exact resume after SIGKILL, and what a board expects of the result."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from genbench import registry, results
from genbench.evaluate import expected_metrics
from genbench.runner import RunOptions, run

SMOKE = registry.protocol("fashion-mnist/stylegan2/smoke")
CLI = [sys.executable, "-m", "genbench", "run", "--model", "stylegan2", "--dataset", "fashion-mnist", "--protocol",
       "smoke", "--no-progress", "--offline"]

pytestmark = pytest.mark.usefixtures("fashion_mnist")  # tests/conftest.py: skips without it


def do_run(out, protocol=SMOKE, **kw):
    return run(protocol, RunOptions(out=out, progress=False, download=False, **kw), echo=lambda *_: None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("stylegan2")
    return out, do_run(out)


def comparable(result):
    return result["metrics"], result["snapshots"], result["provenance"]["checkpoint_sha256"]


def test_the_result_and_the_figure(reference):
    out, result = reference
    m = result["metrics"]
    assert list(m) == expected_metrics(SMOKE)
    assert m["fid[lenet-fashion-mnist]"]["n"] == 200 and "psnr" not in m
    # one figure: style mixing (5 x 7 tiles of 28 px: sources B on top, sources A on the left) over a white gap
    # of 14 px and the noise row (6 draws and their standard deviation)
    assert result["files"]["style-mixing-and-noise"] == "style-mixing-and-noise.png"
    figure = np.asarray(Image.open(out / "style-mixing-and-noise.png"))
    assert figure.shape == (5 * 28 + 14 + 28, 7 * 28) and figure.dtype == np.uint8
    assert (figure[:28, :28] == 0).all() and (figure[140:154] == 255).all()  # the empty corner, the gap
    # the lazy regularizers ran on their steps: R1 every 16 (step 0 here), path length every 4 (steps 0, 4, 8)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["r1"] > 0 and log[-1]["pl_mean"] > 0
    assert all(row["r1"] == log[0]["r1"] for row in log)  # computed once, at step 0, in 12 steps


def test_same_seed_same_numbers(reference, tmp_path):
    again = do_run(tmp_path / "again")
    assert comparable(again) == comparable(reference[1])
    assert (tmp_path / "again" / "style-mixing-and-noise.png").read_bytes() == \
        (reference[0] / "style-mixing-and-noise.png").read_bytes()


def test_resume_after_sigkill_reaches_the_same_result(reference, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "GENBENCH_FAULT_KILL_AT_STEP": "7"}  # past the snapshot at 6 and the checkpoint at 4
    proc = subprocess.run(CLI + ["--out", str(out)], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 4
    proc = subprocess.run(CLI + ["--out", str(out), "--resume"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Resuming from step 4/12" in proc.stdout  # the path-length step at 4 and 8 run after the resume
    assert comparable(results.load(out)) == comparable(reference[1])
