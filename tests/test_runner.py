"""The generic runner: determinism, exact resume after a kill, run-directory safety, logs and results."""

import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys

import pytest

from genbench import GenbenchError, registry, results
from genbench.runner import DataOrder, RunOptions, run

SMOKE = registry.protocol("digits/vae/smoke")  # 40 steps, checkpoint every 10: a few seconds on a CPU
CLI = [sys.executable, "-m", "genbench", "run", "--model", "vae", "--dataset", "digits", "--protocol", "smoke",
       "--no-progress"]


def quiet(*_):
    pass


def do_run(out, **kw):
    return run(SMOKE, RunOptions(out=out, progress=False, download=False, **kw), echo=quiet)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted smoke run, shared by the tests that compare against it."""
    out = tmp_path_factory.mktemp("reference")
    return out, do_run(out)


def comparable(result):
    return result["metrics"], result["references"], result["provenance"]["checkpoint_sha256"]


def test_a_run_writes_a_valid_self_describing_result(reference):
    out, result = reference
    assert results.load(out) == result
    assert result["protocol"] == {"name": "digits/vae/smoke", "version": 2, "hash": SMOKE.hash, "tier": "smoke"}
    m = result["metrics"]
    assert set(m) == {"bpd", "bpd_iwae", "psnr", "ssim"}
    assert m["bpd"]["n"] == 200 and m["bpd"]["estimator"] == "elbo" and m["bpd"]["split"] == "digits:test"
    assert m["bpd_iwae"]["k"] == 8 and m["bpd_iwae"]["n"] == 50
    assert m["bpd_iwae"]["value"] <= m["bpd_iwae"]["elbo_same_images"]  # IWAE is the tighter bound
    assert 0 < m["bpd"]["value"] < 8.5 and 5 < m["psnr"]["value"] < 40
    assert m["ssim"]["value"] is None and "smaller than the 11x11 SSIM window" in m["ssim"]["error"]
    ref = result["references"]["independent_pixel_bpd"]
    assert ref["fitted_on"] == "digits:train" and 0 < ref["value"] < 8
    c = result["compute"]
    assert c["parameters"] > 0 and c["train_seconds"] > 0 and c["sample_images_per_s"] > 0
    p = result["provenance"]
    assert p["checkpoint_sha256"].startswith("sha256:") and p["data_hash"]["train"].startswith("sha256:")
    for name in ("run.json", "model.pt", "checkpoint.pt", "samples.png", "samples.npz", "train_log.jsonl"):
        assert (out / name).exists(), name
    steps = [row["step"] for row in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())]
    assert steps == list(range(5, 41, 5))


def test_same_seed_same_numbers_other_seed_other_numbers(reference, tmp_path):
    assert comparable(do_run(tmp_path / "again")) == comparable(reference[1])
    assert do_run(tmp_path / "seed1", seed=1)["metrics"]["bpd"] != reference[1]["metrics"]["bpd"]


def test_resume_after_sigkill_reaches_the_same_result(reference, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "GENBENCH_FAULT_KILL_AT_STEP": "15"}  # 5 steps past the checkpoint at step 10
    proc = subprocess.run(CLI + ["--out", str(out)], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 10
    assert not (out / "result.json").exists()

    proc = subprocess.run(CLI + ["--out", str(out)], capture_output=True, text=True)
    assert proc.returncode != 0 and "--resume" in proc.stderr  # refuses to start over silently

    proc = subprocess.run(CLI + ["--out", str(out), "--resume"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Resuming from step 10/40" in proc.stdout
    assert comparable(results.load(out)) == comparable(reference[1])
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(5, 41, 5))  # the entries written after the checkpoint were replaced, not doubled
    if importlib.util.find_spec("tensorboard"):
        assert tensorboard_steps(out, "train/loss") == steps  # and purged from the events


def tensorboard_steps(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_time_budget_stops_resumably(reference, tmp_path):
    out = tmp_path / "budget"
    assert do_run(out, max_minutes=0) is None
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 1
    assert comparable(do_run(out, resume=True)) == comparable(reference[1])


def test_a_finished_run_is_never_overwritten_without_force(reference, tmp_path):
    out = reference[0]
    before = (out / "result.json").read_bytes()
    with pytest.raises(GenbenchError, match="already holds a run \\(finished\\).*--force"):
        do_run(out)
    with pytest.raises(GenbenchError, match="nothing to resume"):
        do_run(out, resume=True)
    with pytest.raises(GenbenchError, match="seed 0, not .* with seed 3"):
        do_run(out, resume=True, seed=3)
    assert (out / "result.json").read_bytes() == before


def test_force_replaces_only_run_files_and_foreign_dirs_are_refused(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(GenbenchError, match="not empty and holds no genbench run"):
        do_run(foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_a_run_whose_data_could_not_be_loaded_is_started_again_as_new(tmp_path, monkeypatch, reference):
    out = tmp_path / "run"
    spec = registry.dataset("digits")

    def unavailable(*args, **kwargs):
        raise GenbenchError("digits is not on this machine (offline)")

    monkeypatch.setattr(type(spec), "load", unavailable)
    with pytest.raises(GenbenchError, match="offline"):
        do_run(out)
    assert (out / "run.json").exists() and not (out / "checkpoint.pt").exists()  # a run that never saved a step
    monkeypatch.undo()
    said = []
    result = run(SMOKE, RunOptions(out=out, progress=False, download=False), echo=said.append)  # no --resume
    assert any("never saved a step" in line and "starting it as new" in line for line in said)
    assert comparable(result) == comparable(reference[1])


def test_data_order_is_a_function_of_seed_and_step():
    a, b = DataOrder(100, 32, seed=0), DataOrder(100, 32, seed=0)
    assert [a(s).tolist() for s in (0, 5, 1)] == [b(s).tolist() for s in (0, 5, 1)]
    epoch = sorted(i for s in range(3) for i in a(s).tolist())
    assert len(set(epoch)) == 96  # one epoch: 3 full batches, no repeats, remainder dropped
    assert a(3).tolist() != a(0).tolist()  # a new permutation in the next epoch
    with pytest.raises(GenbenchError, match="fewer than the batch size"):
        DataOrder(10, 32, seed=0)


def test_tensorboard_events_mirror_the_logs_when_tensorboard_is_installed(reference):
    """TensorBoard is optional; where it is installed, every logged scalar is also an event."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(reference[0] / "tb"))
    acc.Reload()
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(5, 41, 5))
    logged = [json.loads(line)["loss"] for line in (reference[0] / "train_log.jsonl").read_text().splitlines()]
    assert [e.value for e in loss] == pytest.approx(logged, rel=1e-6)
    assert tensorboard_steps(reference[0], "eval/bpd") == [20, 40]


def test_fashion_mnist_smoke_reports_sample_quality_through_the_domain_extractor(tmp_path):
    """Where the protocol names an extractor, the run scores its samples as `genbench score` would."""
    from genbench.data import DatasetUnavailable

    try:
        registry.dataset("fashion-mnist").load("test", download=False, progress=False)
    except DatasetUnavailable:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    protocol = registry.protocol("fashion-mnist/vae/smoke")
    result = run(protocol, RunOptions(out=tmp_path / "fm", progress=False, download=False), echo=quiet)
    m = result["metrics"]
    assert {"fid[lenet-fashion-mnist]", "precision[lenet-fashion-mnist]", "recall[lenet-fashion-mnist]"} <= set(m)
    fid = m["fid[lenet-fashion-mnist]"]
    assert fid["n"] == 200 and fid["reference"] == "fashion-mnist:test" and fid["reference_n"] == 10_000
    assert fid["extractor_sha256"].startswith("sha256:1fe06915") and fid["value"] > 0
    assert 0 <= m["precision[lenet-fashion-mnist]"]["value"] <= 1
    covered = m["classes_covered[lenet-fashion-mnist]"]
    assert 1 <= covered["value"] <= 10 and sum(covered["histogram"]) == 200
    assert covered["reference"] == "fashion-mnist:train"
    # version 4 adds log p(x) by AIS from the encoder: under the model's own decoder beside IWAE on the same
    # images (both lower bounds; 10 AIS steps of 2 chains against k = 50), and under the Gaussian observation model
    own, gauss = m["bpd_ais"], m["log_px_gauss_ais"]
    assert own["n"] == 4 and own["base"] == "encoder q(z | x)" and own["iwae_same_images"]["k"] == 50
    assert abs(own["value"] - own["iwae_same_images"]["value"]) < 0.2, own
    assert gauss["base"] == own["base"] and gauss["bdmc"]["upper"] > gauss["bdmc"]["lower"]
    # versions 3 and 4 only add mode coverage and the AIS estimates: every number version 2 makes is the same
    v2 = run(registry.PROTOCOLS["fashion-mnist/vae/smoke@2"], RunOptions(out=tmp_path / "v2", progress=False,
                                                                          download=False), echo=quiet)
    added = ("classes_covered", "class_kl", "bpd_ais", "log_px_gauss_ais")
    assert v2["metrics"] == {k: v for k, v in m.items() if not k.startswith(added)}


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    """Adversarial and MCMC training diverge: the step that goes non-finite stops the run with the step and
    the loss terms named; the last checkpoint, the logs and nothing else stay as they were."""
    import types

    from genbench.baselines import vae
    from genbench.registry import ModelFamily

    class Diverging(vae.Model):
        def train_step(self, x, optimizers):
            stats = super().train_step(x, optimizers)
            self.calls = getattr(self, "calls", 0) + 1
            return {**stats, "kl": float("nan")} if self.calls == 13 else stats

    name = "diverging-vae-test"
    if name not in registry.MODELS:
        module = types.SimpleNamespace(Model=Diverging, PRESETS=vae.PRESETS, DESCRIPTION="test: NaN at step 13")
        registry.MODELS.register(name, ModelFamily(name, module))
    protocol = dataclasses.replace(SMOKE, model=name)
    out = tmp_path / "diverged"
    with pytest.raises(GenbenchError, match=r"diverged at step 13: non-finite kl \(loss = .*kl = nan.*checkpoint "
                                            r"\(step 10\)"):
        run(protocol, RunOptions(out=out, progress=False, download=False), echo=quiet)
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 10
    assert not (out / "model.pt").exists() and not (out / "result.json").exists()
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == [5, 10]


def test_a_cpu_device_is_described_by_its_model_and_threads():
    """Results say which CPU trained them: times from different CPUs differ (this machine's RealNVP seed 2 took
    536 s to train where seed 0, on another 2-core CPU, took 291 s)."""
    import torch

    from genbench.device import cpu_model, device_description

    text = device_description(torch.device("cpu"))
    assert text.startswith("cpu (") and text.endswith(f"{torch.get_num_threads()} threads)")
    if os.path.exists("/proc/cpuinfo") and "model name" in open("/proc/cpuinfo").read():
        assert cpu_model() and cpu_model() in text
