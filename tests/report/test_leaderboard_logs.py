"""leaderboard.py with what a run logs as it trains: training logs and snapshot curves submitted with a result,
validated, and drawn by the board's build."""

import json
import re
from pathlib import Path

import pytest

from genbench import registry
from genbench import results as R
from genbench.report import leaderboard as L
from genbench.report import submit as S
from board_results import FASHION, json_block, listing, run_dir, samples_result, sha, training_result


# -------------------------------------------------------------------------------------- training logs

def write_log(run: Path, rows=None, *, text=None) -> Path:
    log = run / "train_log.jsonl"
    if text is None:
        text = "".join(json.dumps(r) + "\n" for r in (rows or [{"step": s, "loss": 1.0 / s, "g_loss": 1.0 / s,
                                                                  "d_loss": 1.3, "images_per_s": 800.0}
                                                                 for s in (25, 50, 75)]))
    log.write_bytes(text.encode() if isinstance(text, str) else text)
    return log


def test_submit_copies_the_training_log_the_result_names(tmp_path):
    w = b"weights"
    src = run_dir(tmp_path / "runs", training_result(weights=w), weights=w)
    log = write_log(src)
    out = L.submit(src, tmp_path / "board")
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.json", "samples.png", "train_log.jsonl"]
    assert (out.parent / "train_log.jsonl").read_bytes() == log.read_bytes()
    assert out.read_bytes() == (src / "result.json").read_bytes()
    assert L.check_train_log(out.parent / "train_log.jsonl") == 3


def test_submit_without_a_log_or_one_the_result_does_not_name(tmp_path):
    board = tmp_path / "board"
    w = b"no log"
    out = L.submit(run_dir(tmp_path / "a", training_result(weights=w), weights=w), board)  # named, but absent
    assert not (out.parent / "train_log.jsonl").exists()
    w = b"unnamed log"
    result = training_result(seed=1, weights=w)
    del result["files"]["train_log"]
    src = run_dir(tmp_path / "b", result, weights=w)
    write_log(src)
    out = L.submit(src, board)
    assert not (out.parent / "train_log.jsonl").exists()  # only the log the result names travels with it


LOG_CASES = {
    "a line cut short": ('{"step": 25, "loss": 1.0}\n{"step": 50, "lo\n{"step": 75, "loss": 0.5}\n',
                         "train_log.jsonl, line 2: not valid JSON"),
    "a truncated last line": ('{"step": 25, "loss": 1.0}\n{"step": 50, "loss": 0.', "line 2: not valid JSON"),
    "not an object": ('{"step": 25, "loss": 1.0}\n[50, 0.5]\n', "line 2: a JSON list, not an object"),
    "no step": ('{"loss": 1.0}\n', "line 1: step is None, not a training step"),
    "a step that is not an integer": ('{"step": "25", "loss": 1.0}\n', "line 1: step is '25'"),
    "empty": ("\n\n", "train_log.jsonl is empty"),
    "not text": (b'{"step": 1}\n\xff\xfe\n', "train_log.jsonl is not UTF-8 text"),
}


@pytest.mark.parametrize("case", list(LOG_CASES))
def test_submit_refuses_a_corrupt_training_log_naming_the_file(tmp_path, case):
    text, message = LOG_CASES[case]
    board = tmp_path / "board"
    w = b"first"
    L.submit(run_dir(tmp_path / "a", training_result(weights=w), weights=w), board)
    before = listing(board)
    w = b"second"
    src = run_dir(tmp_path / "b", training_result(seed=1, weights=w), weights=w)
    log = write_log(src, text=text)
    with pytest.raises(L.SubmitError, match=re.escape(message)) as e:
        L.submit(src, board)
    assert e.value.reason == "train_log"
    assert str(log) in str(e.value) and str(e.value).startswith(f"rejected {src / 'result.json'}: ")
    assert "Remove it to submit the result without its training curves" in str(e.value)
    assert listing(board) == before
    log.unlink()
    assert L.submit(src, board).is_file()  # without the log, the result is accepted


def test_submit_refuses_a_training_log_over_the_size_cap(tmp_path, monkeypatch):
    w = b"weights"
    src = run_dir(tmp_path, training_result(weights=w), weights=w)
    write_log(src)
    monkeypatch.setattr(S, "MAX_TRAIN_LOG_BYTES", 100)
    with pytest.raises(L.SubmitError, match=r"train_log.jsonl is \d+ bytes, more than the 100 bytes a board") as e:
        L.submit(src, tmp_path / "board")
    assert e.value.reason == "train_log" and not (tmp_path / "board" / "results").exists()
    assert S._size(9 << 20) == "9.0 MiB" and S._size(3 << 10) == "3.0 KiB"


def test_cli_submit_names_a_corrupt_log(tmp_path):
    from click.testing import CliRunner

    from genbench.cli import main

    w = b"weights"
    src = run_dir(tmp_path / "runs", training_result(weights=w), weights=w)
    write_log(src, text='{"step": 1}\n{"step": 2,\n')
    out = CliRunner().invoke(main, ["leaderboard", "submit", str(src), "--board", str(tmp_path / "b")])
    assert out.exit_code == 1 and "train_log.jsonl, line 2: not valid JSON" in out.output
    assert "Traceback" not in out.output


# ------------------------------------------------------------------------------------------------ snapshots

def snapshot_protocol(monkeypatch, every=5, n=100):
    """fashion-mnist/vae/smoke as if it kept snapshots (no registered protocol does yet)."""
    import dataclasses

    p = registry.protocol(FASHION)
    p = dataclasses.replace(p, snapshot_every=every, evaluation=dataclasses.replace(p.evaluation, snapshot_samples=n))
    monkeypatch.setattr(S, "_current_protocol", lambda name, version, where: p)
    return p


def with_snapshots(p, weights: bytes, **section) -> dict:
    r = training_result(FASHION, weights=weights)
    r["protocol"]["hash"] = p.hash
    name = f"fid[{p.evaluation.extractor}]"
    r["snapshots"] = {"every": p.snapshot_every, "n": p.evaluation.snapshot_samples, "metrics": [name],
                      "reference": f"{p.dataset}:{p.evaluation.reference_split}", "extractor": p.evaluation.extractor,
                      "curve": [{"step": 5, name: 180.0}, {"step": 10, name: None}], **section}
    return r


def test_submit_accepts_a_snapshot_curve_made_as_its_protocol_makes_it(tmp_path, monkeypatch):
    p = snapshot_protocol(monkeypatch)
    w = b"gan"
    out = L.submit(run_dir(tmp_path, with_snapshots(p, w), weights=w), tmp_path / "board")
    assert R.load(out)["snapshots"]["curve"][0]["step"] == 5


@pytest.mark.parametrize("section, message", [
    ({"curve": "none"}, "snapshots.curve is not a list of points"),
    ({"curve": [{"step": 1.5}]}, "snapshots.curve[0] has no integer step"),
    ({"curve": [{"step": 5, "fid[lenet-fashion-mnist]": "180"}]},
     "snapshots.curve[0].fid[lenet-fashion-mnist] must be a number or null, found '180'"),
    ({"metrics": "fid"}, "snapshots.metrics is 'fid', not a list"),
    ({"n": 10000}, "snapshots.n is 10000, but fashion-mnist/vae/smoke@4 scores its snapshots with n 100"),
    ({"every": 7}, "snapshots.every is 7"),
])
def test_submit_rejects_a_malformed_snapshot_curve(tmp_path, monkeypatch, section, message):
    p = snapshot_protocol(monkeypatch)
    w = b"gan"
    with pytest.raises(L.SubmitError, match=re.escape(message)) as e:
        L.submit(run_dir(tmp_path, with_snapshots(p, w, **section), weights=w), tmp_path / "board")
    assert e.value.reason == "snapshots"


def test_submit_rejects_snapshots_its_protocol_does_not_keep(tmp_path):
    w = b"vae"
    p = registry.protocol(FASHION)
    r = with_snapshots(p, w)
    r["protocol"]["hash"] = p.hash
    with pytest.raises(L.SubmitError, match="fashion-mnist/vae/smoke@4 keeps no snapshots") as e:
        L.submit(run_dir(tmp_path, r, weights=w), tmp_path / "board")
    assert e.value.reason == "snapshots"


# ----------------------------------------------------------------------------- curves over training on boards

def gan_entry(board: Path, model: str, seed: int, *, curve, log=None, wasserstein=False) -> Path:
    """A board entry of a GAN run on fashion-mnist, written into results/ directly (build reads results only)."""
    name = "fid[lenet-fashion-mnist]"
    r = samples_result(f"{model}-{seed}")  # a valid result to start from; made a training run below
    r.update(kind="training run", model=model, preset="small", dataset="fashion-mnist", seed=seed,
             run_id=f"fashion-mnist-{model}-quick-s{seed}",
             protocol={"name": f"fashion-mnist/{model}/quick", "version": 1, "hash": sha(model)[:23],
                       "tier": "quick"},
             compute={"parameters": 5000, "train_seconds": 100.0 + seed, "device": "cpu",
                      "sample_images_per_s": 900.0},
             files={"weights": "model.pt", "samples": "samples.png", "train_log": "train_log.jsonl"})
    r["metrics"][name]["n"] = 10000
    r["metrics"].pop("precision[lenet-fashion-mnist]")
    r["snapshots"] = {"every": 500, "n": 2000, "metrics": [name], "reference": "fashion-mnist:train",
                      "extractor": "lenet-fashion-mnist", "curve": [{"step": s, name: v} for s, v in curve]}
    folder = board / "results" / r["run_id"]
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps(r, indent=2) + "\n")
    if log is not None:
        rows = [{"step": s, "loss": g, "g_loss": g, "d_loss": d, **({"wasserstein": -d} if wasserstein else {})}
                for s, g, d in log]
        write_log(folder, rows)
    return folder


def test_build_draws_snapshot_and_loss_curves_per_dataset(tmp_path):
    from genbench.report import run_plots

    board = tmp_path / "board"
    curve = [(500, 180.0), (1000, 150.0)]
    for seed in range(2):
        gan_entry(board, "dcgan", seed, curve=curve, log=[(25, 2.0, 1.3), (50, 1.5, 1.2)])
    gan_entry(board, "wgan-gp", 0, curve=[(500, 170.0), (1000, 120.0)], log=[(25, 0.5, -2.0)], wasserstein=True)
    gan_entry(board, "sngan", 0, curve=[(500, 175.0)])  # an old entry: no log
    written = L.build(board, formats=("png", "svg"))
    names = sorted(p.name for p in (board / "plots").iterdir())
    assert "fashion-mnist--fid-lenet-fashion-mnist--over-training.png" in names
    assert "fashion-mnist--training-losses.svg" in names and names == sorted(p.name for p in written[2:])
    readme = (board / "README.md").read_text()
    assert ("![FID \\[lenet-fashion-mnist\\] over training (n = 2,000 samples per snapshot), fashion-mnist]"
            "(plots/fashion-mnist--fid-lenet-fashion-mnist--over-training.png)") in readme
    assert "![Training losses on fashion-mnist](plots/fashion-mnist--training-losses.png)" in readme
    data = json.loads(json_block((board / "index.html").read_text()))
    titles = [p["title"] for p in data["plots"] if p["dataset"] == "fashion-mnist"]
    assert "Training losses on fashion-mnist" in titles
    assert "FID [lenet-fashion-mnist] over training (n = 2,000 samples per snapshot), fashion-mnist" in titles
    before = listing(board)
    L.build(board, formats=("png", "svg"))
    assert listing(board) == before  # deterministic, curves included

    # the board's curves are those of its entries (the figures, drawn again from the same folders)
    results = [R.load(f) for f in sorted((board / "results").glob("*/result.json"))]
    fig = run_plots.snapshot_curve(results)
    assert sorted(len(line.get_xdata()) for line in fig.axes[0].get_lines()) == [1, 2, 2]  # sngan: one snapshot
    folders = sorted(p.parent for p in (board / "results").glob("*/train_log.jsonl"))
    assert len(folders) == 3 and run_plots.logged_terms(folders) == ["g_loss", "d_loss", "wasserstein"]
