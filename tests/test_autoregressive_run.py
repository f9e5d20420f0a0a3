"""Autoregressive models under the runner and evaluation: the exact likelihood named as such with nats beside
bits/dim, the sampler named, exact resume after SIGKILL, determinism; the class-conditional model's labels
through training, likelihood (marginal and conditional) and sampling."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from genbench import GenbenchError, registry, results
from genbench.evaluate import expected_metrics
from genbench.runner import RunOptions, run

MODELS = ("pixelcnn", "gated-pixelcnn", "gated-pixelcnn-class", "pixelcnnpp", "pixelrnn", "nade", "made")
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
    if model in ("pixelcnn", "gated-pixelcnn", "gated-pixelcnn-class", "pixelcnnpp", "pixelrnn"):
        assert result["sampler"]["sampler"].startswith("ancestral, cached generation")
    if model == "made":  # the ensemble over mask sets, stated
        assert bpd["members"] == 2 and "logsumexp" in bpd["ensemble"]


@pytest.mark.parametrize("model", ["gated-pixelcnn-class", "made"])  # labels in training; a mask set per step
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


def test_the_class_conditional_model_is_scored_on_its_marginal_and_conditional_likelihood(runs):
    """bpd is the exact marginal -log sum_y P(y) P(x | y) with P(y) the training split's class frequencies, and
    bpd_conditional -log P(x | y) at each image's label, both recomputed here from the saved weights; the
    samples were drawn for labels in the training proportions and are scored against them."""
    from genbench.evalkit import load_weights as _load
    from genbench.metrics.conditional import label_plan

    out, result = runs["gated-pixelcnn-class"]
    protocol = SMOKE["gated-pixelcnn-class"]
    spec = registry.dataset("fashion-mnist")
    train, test = spec.load("train", download=False), spec.load("test", download=False)
    model = _load(protocol, out / "model.pt", (1, 28, 28), 0, torch.device("cpu"))
    x, y = torch.from_numpy(np.array(test.images[:20])), torch.from_numpy(np.array(test.labels[:20]))
    per_class = torch.stack([model.log_likelihood(x, labels=torch.full((20,), c)) for c in range(10)], 1)
    prior = torch.from_numpy(np.bincount(train.labels, minlength=10) / len(train.labels)).log()
    marginal = -torch.logsumexp(per_class + prior, 1).mean() / (784 * np.log(2))
    own = -per_class.gather(1, y[:, None]).mean() / (784 * np.log(2))
    m = result["metrics"]
    assert m["bpd"]["value"] == pytest.approx(float(marginal), rel=1e-9)
    assert m["bpd_conditional"]["value"] == pytest.approx(float(own), rel=1e-9)
    assert m["bpd_conditional"]["given"] == "each image's class label" and "sum_y" in m["bpd"]["marginal"]
    with np.load(out / "samples.npz") as z:
        assert np.array_equal(z["labels"], label_plan(train.labels, 100, num_classes=10, seed=0))
    acc, intra = m["class_accuracy[lenet-fashion-mnist]"], m["fid_intra[lenet-fashion-mnist]"]
    assert 0 <= acc["value"] <= 1 and acc["n"] == 100 and 0.85 < acc["real_accuracy"] < 0.95
    assert intra["reference"] == "fashion-mnist:test" and intra["value"] > 0


def test_a_class_conditional_model_refuses_a_dataset_without_class_labels(tmp_path):
    from genbench.data import ImageData
    from genbench.runner import check_class_labels

    images = np.zeros((4, 1, 2, 2), np.uint8)
    with pytest.raises(GenbenchError, match="trains on class labels, but toy:train has no labels"):
        check_class_labels(ImageData("toy", "train", images, None, "sha256:0", "here"), 10, "gated-pixelcnn-class")
    with pytest.raises(GenbenchError, match="trains on 10 classes, but toy:train has labels 0..12"):
        check_class_labels(ImageData("toy", "train", images, np.array([0, 1, 2, 12]), "sha256:0", "here"), 10,
                           "gated-pixelcnn-class")
