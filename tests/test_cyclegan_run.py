"""Translation protocols: the domain-balanced data order, the domains' images and labels, the evaluation step against
translators whose scores are known (an oracle that renders the ground truth, the identity, a shifted oracle), and
CycleGAN's smoke run under the runner: what it writes, determinism and exact resume after SIGKILL."""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from genbench import GenbenchError, registry, results, translations
from genbench.data import ImageData, content_hash, dsprites
from genbench.evalkit import Context
from genbench.evaluate import expected_metrics
from genbench.metrics.translation import valid_targets
from genbench.rundir import RunDir
from genbench.runner import DataOrder, DomainOrder, RunOptions, run

SMOKE = registry.protocol("dsprites-shapes/cyclegan/smoke")
EXTRACTOR = "[lenet-dsprites-shapes]"
CLI = [sys.executable, "-m", "genbench", "run", "--model", "cyclegan", "--dataset", "dsprites-shapes", "--protocol",
       "smoke", "--no-progress", "--offline"]



# ---- the data order and the domains ------------------------------------------------------------------------

def test_domain_order_draws_half_of_each_batch_from_each_domain_as_a_pure_function_of_seed_and_step():
    domains = torch.tensor([0, 1] * 6 + [1] * 4)  # 6 images of A, 10 of B, interleaved
    order = DomainOrder(domains, batch_size=4, seed=3)
    a_seen, b_seen = [], []
    for step in range(3):  # one epoch of A (6 // 2 steps)
        index = order(step)
        assert domains[index].tolist() == [0, 0, 1, 1]
        a_seen += index[:2].tolist()
        b_seen += index[2:].tolist()
    assert sorted(a_seen) == torch.nonzero(domains == 0).squeeze(1).tolist()  # a permutation of A per epoch
    assert len(set(b_seen)) == 6
    assert torch.equal(DomainOrder(domains, 4, 3)(7), order(7))  # recomputable after a resume
    # each domain has its own permutation stream: not the same positions within A and B
    a_pos = DataOrder(6, 2, 2 * 3)(0)
    assert torch.equal(order(0)[:2], torch.nonzero(domains == 0).squeeze(1)[a_pos])
    with pytest.raises(GenbenchError, match="even"):
        DomainOrder(domains, 5, 0)


def _data(split: str, per_shape: int) -> ImageData:
    from genbench.data import dsprites_shapes

    index = dsprites_shapes.indices(split).reshape(3, -1)[:, :per_shape].reshape(-1)
    factors = dsprites.index_to_factors(index)
    images = dsprites.images_from_factors(factors)
    return ImageData("dsprites-shapes", split, images, factors, content_hash(images, factors), "test")


def test_domain_images_are_the_two_classes_labelled_zero_and_one():
    data = _data("test", 5)
    x, y = translations.domain_images(data, (2, 0), "cyclegan", per_domain=3)  # hearts -> squares
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(x[:3], data.images[10:13]) and np.array_equal(x[3:], data.images[:3])
    unlabelled = dataclasses.replace(data, labels=None)
    with pytest.raises(GenbenchError, match="no class labels"):
        translations.domain_images(unlabelled, (0, 1), "cyclegan")
    squares = dataclasses.replace(data, images=data.images[:5], labels=data.labels[:5])
    with pytest.raises(GenbenchError, match="no image of class 1"):
        translations.domain_images(squares, (0, 1), "cyclegan")


def test_the_dataset_draws_each_shape_independently_and_keeps_test_apart_from_train():
    from genbench.data import dsprites_shapes

    train, test = (dsprites_shapes.indices(s) for s in ("train", "test"))
    assert len(train) == 3 * dsprites_shapes.TRAIN_PER_SHAPE and len(test) == 3 * dsprites_shapes.TEST_PER_SHAPE
    assert not set(train) & set(test)
    shapes = dsprites.index_to_factors(train)[:, 0]
    assert np.bincount(shapes).tolist() == [dsprites_shapes.TRAIN_PER_SHAPE] * 3
    # unpaired: the squares' other factors are not the ellipses' (independent draws per shape)
    per_shape = train.reshape(3, -1) % dsprites_shapes.PER_SHAPE
    assert len(np.intersect1d(per_shape[0], per_shape[1])) < 0.1 * per_shape.shape[1]


# ---- the evaluation step, on translators whose scores are known -------------------------------------------

class Oracle(torch.nn.Module):
    """Translates by rendering the target shape at the source's factors (looked up by the source's pixels), turned
    by `turn` radians and moved by `shift` pixels: with turn 0 and shift 0, the ground truth itself."""

    def __init__(self, data: ImageData, domains, shift: int = 0, turn: float = 0.0):
        super().__init__()
        self.domains, self.shift, self.turn = domains, shift, turn
        self.factors = {data.images[i].tobytes(): data.labels[i] for i in range(len(data))}
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def translate(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        target = self.domains[1] if direction == "a_to_b" else self.domains[0]
        factors = np.stack([self.factors[image.numpy().tobytes()] for image in x])
        truth = valid_targets(factors, target)[:, 0] if not self.turn else self._turned(factors, target)
        return torch.from_numpy(np.roll(truth, self.shift, axis=3))

    def _turned(self, factors, target):
        v = {name: dsprites.FACTOR_VALUES[name][factors[:, i]] for i, name in enumerate(dsprites.FACTOR_NAMES)}
        return dsprites.render(np.full(len(factors), target), v["scale"], v["orientation"] + self.turn,
                               v["pos_x"], v["pos_y"])


class Identity(Oracle):
    def translate(self, x, direction):
        return x.clone()


def _context(tmp_path, model, protocol=SMOKE, extractor=None) -> Context:
    ev = dataclasses.replace(protocol.evaluation, extractor=extractor, translation_images=16, reference_split="train")
    protocol = dataclasses.replace(protocol, evaluation=ev)
    train, test = _data("train", 64), _data("test", 16)
    return Context(RunDir(tmp_path), protocol, model, train, test, test.images, torch.device("cpu"), False, 0)


def test_an_exact_translator_scores_perfectly_and_a_shifted_or_wrong_one_does_not(tmp_path):
    test = _data("test", 16)
    ctx = _context(tmp_path, Oracle(test, SMOKE.domains))
    translations.translation(ctx)
    m = ctx.metrics
    assert set(m) == {f"{name}_{d}" for name in ("psnr", "ssim", "iou") for d in ("a_to_b", "b_to_a")}
    for d in ("a_to_b", "b_to_a"):
        assert m[f"iou_{d}"]["value"] == 1.0 and m[f"ssim_{d}"]["value"] == pytest.approx(1.0)
        assert m[f"psnr_{d}"]["n_identical"] == 16  # identical to the truth: PSNR is infinite, counted apart
    assert m["psnr_a_to_b"]["valid_targets"] == 4 and m["psnr_b_to_a"]["valid_targets"] == 2  # square, ellipse
    assert ctx.extra["translation"]["domains"] == {"a": "square", "b": "ellipse"}
    assert ctx.files["samples"] == "samples.png"
    grid = np.asarray(Image.open(tmp_path / "samples.png"))
    assert grid.shape[0] == 6 * 66 + 2  # per direction: sources, translations, truth; 64 px + 2 px padding
    # the oracle's rows of translations are its rows of truth
    assert np.array_equal(grid[66 + 2:2 * 66, :, 0], grid[2 * 66 + 2:3 * 66, :, 0])

    # a quarter turn is still right for a square source (4-fold symmetric: the ellipse at theta + 90 degrees is a
    # valid target, and the one chosen) and for a square target; it is wrong from an ellipse (2-fold) to a heart
    ctx = _context(tmp_path, Oracle(test, SMOKE.domains, turn=np.pi / 2))
    translations.translation(ctx)
    assert ctx.metrics["iou_a_to_b"]["value"] > 0.99  # up to the rasterizer's rounding of a turned outline
    assert ctx.metrics["iou_a_to_b"]["chosen"] == [0, 16, 0, 0] and ctx.metrics["iou_b_to_a"]["value"] > 0.99
    hearts = dataclasses.replace(SMOKE, domains=(1, 2))
    ctx = _context(tmp_path, Oracle(test, hearts.domains, turn=np.pi / 2), protocol=hearts)
    translations.translation(ctx)
    assert ctx.extra["translation"]["domains"] == {"a": "ellipse", "b": "heart"}
    assert ctx.metrics["iou_a_to_b"]["value"] < 0.9 and ctx.metrics["iou_a_to_b"]["valid_targets"] == 2
    assert ctx.metrics["iou_b_to_a"]["value"] < 0.9 and ctx.metrics["iou_b_to_a"]["valid_targets"] == 1

    # shifted by 3 px: the IoU of two equal shapes moved apart, strictly between 0 and 1
    ctx = _context(tmp_path, Oracle(test, SMOKE.domains, shift=3))
    translations.translation(ctx)
    for d in ("a_to_b", "b_to_a"):
        assert 0.2 < ctx.metrics[f"iou_{d}"]["value"] < 0.9 and ctx.metrics[f"psnr_{d}"]["n_identical"] == 0

    # the identity (a square kept a square) overlaps the ellipse but does not match it
    ctx = _context(tmp_path, Identity(test, SMOKE.domains))
    translations.translation(ctx)
    assert 0.3 < ctx.metrics["iou_a_to_b"]["value"] < 0.95


def test_through_the_extractor_the_oracle_is_classified_as_the_target_and_near_the_real_floor(tmp_path):
    pytest.importorskip("genbench.metrics.domain").LENET_DSPRITES_SHAPES
    test = _data("test", 16)
    oracle, identity = (_context(tmp_path / name, model(test, SMOKE.domains), extractor="lenet-dsprites-shapes")
                        for name, model in (("oracle", Oracle), ("identity", Identity)))
    for ctx in (oracle, identity):
        (tmp_path / ctx.rd.path.name).mkdir(exist_ok=True)
        translations.translation(ctx)
    for d in ("a_to_b", "b_to_a"):
        fid, acc = oracle.metrics[f"fid_{d}{EXTRACTOR}"], oracle.metrics[f"target_accuracy_{d}{EXTRACTOR}"]
        # the oracle's translations are real images of the target shape: they score like the held-out ones (16
        # of each: both FIDs are mostly the bias of 16 samples)
        assert 0.5 < fid["value"] / fid["real_targets"]["value"] < 2
        assert acc["value"] >= 0.9 and acc["real_targets"] >= 0.9
        wrong = identity.metrics[f"fid_{d}{EXTRACTOR}"]["value"]
        assert wrong > 2 * fid["value"] and identity.metrics[f"target_accuracy_{d}{EXTRACTOR}"]["value"] <= 0.1


# ---- CycleGAN's smoke run ---------------------------------------------------------------------------------

def do_run(out, protocol=SMOKE, **kw):
    return run(protocol, RunOptions(out=out, progress=False, download=False, **kw), echo=lambda *_: None)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("cyclegan")
    return out, do_run(out)


def comparable(result):
    return result["metrics"], result["translation"], result["provenance"]["checkpoint_sha256"]


def test_the_run_writes_what_the_protocol_expects(reference):
    out, result = reference
    m = result["metrics"]
    assert list(m) == expected_metrics(SMOKE)
    assert not any(name.startswith(("fid[", "is[")) for name in m)  # it translates, it does not sample
    assert m["iou_a_to_b"]["n"] == 16 and 0 <= m["iou_a_to_b"]["value"] <= 1
    assert result["files"]["samples"] == "samples.png" and (out / "samples.png").is_file()
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"cycle_a", "cycle_b", "identity_a", "d_a", "d_b"} <= set(log[-1])
    assert result["compute"]["sample_images_per_s"] is None
    # smoke compares with the test split's images, so the held-out floor would be the reference itself
    fid = m["fid_a_to_b[lenet-dsprites-shapes]"]
    assert fid["reference"] == "dsprites-shapes:test class 1" and fid["real_targets"]["value"] is None
    # schema 1, extended by keys a schema-1 reader may ignore
    assert result["schema"] == 1 and result["kind"] == "training run"
    assert result["protocol"]["task"] == "translation" and results.load(out)["translation"]["domains"]["a"] == "square"


def test_the_schedule_holds_the_rate_then_decays_it():
    schedule = SMOKE.optimizer.schedule
    assert [schedule.factor(s, SMOKE.steps) for s in range(SMOKE.steps)] == pytest.approx([1, 1, 1, 1, 2 / 3, 1 / 3])


def test_same_seed_same_numbers(reference, tmp_path):
    assert comparable(do_run(tmp_path / "again")) == comparable(reference[1])


def test_resume_after_sigkill_reaches_the_same_result(reference, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "GENBENCH_FAULT_KILL_AT_STEP": "5"}  # past the checkpoint at 4, the pools part-filled
    proc = subprocess.run(CLI + ["--out", str(out)], env=env, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 4
    proc = subprocess.run(CLI + ["--out", str(out), "--resume"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Resuming from step 4/6" in proc.stdout
    assert comparable(results.load(out)) == comparable(reference[1])


def test_a_board_takes_the_run_and_shows_both_directions(reference, tmp_path):
    from genbench.report.leaderboard import build
    from genbench.report.submit import submit

    out, result = reference
    submit(out, tmp_path / "board")
    build(tmp_path / "board")
    page = (tmp_path / "board" / "README.md").read_text()
    table = next(line for line in page.splitlines() if line.startswith("| cyclegan"))
    for column in ("IoU A→B", "IoU B→A", "FID B→A [lenet-dsprites-shapes]", "Target accuracy A→B"):
        assert column in page
    assert f"{result['metrics']['iou_b_to_a']['value']:.3f}" in table
