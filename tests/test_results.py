"""Result files: schema round trip, atomic writes, and clear rejection of damaged files."""

import copy
import json

import pytest

from genbench import results
from genbench.results import ResultError


def valid_result() -> dict:
    return {
        "schema": 1, "kind": "training run", "run_id": "digits-vae-smoke-s0-abc", "model": "vae",
        "dataset": "digits", "seed": 0,
        "protocol": {"name": "digits/vae/smoke", "version": 1, "hash": "sha256:0123"},
        "metrics": {"bpd": results.metric(3.25, higher_is_better=False, n=297, split="digits:test"),
                    "psnr": results.metric(None, higher_is_better=True, error="not computed")},
        "references": {"independent_pixel_bpd": results.metric(4.5, higher_is_better=False)},
        "compute": {"parameters": 10, "train_seconds": 1.5, "device": "cpu", "sample_images_per_s": 100.0},
        "provenance": results.provenance(data_hash="sha256:ab", checkpoint_sha256="sha256:cd"),
    }


def test_round_trip(tmp_path):
    r = valid_result()
    path = results.write(tmp_path, r)
    assert results.load(path) == r
    assert results.load(tmp_path) == r  # a run directory works too
    assert r["provenance"]["torch_version"] and r["provenance"]["genbench_version"]


@pytest.mark.parametrize("damage, message", [
    (lambda r: r.pop("metrics"), "missing key 'metrics'"),
    (lambda r: r.update(schema=2), "schema is 2"),
    (lambda r: r.update(kind="guess"), "kind must be one of"),
    (lambda r: r["protocol"].pop("hash"), "protocol.hash"),
    (lambda r: r["metrics"]["bpd"].update(value="3.2"), "metrics.bpd.value must be a number"),
    (lambda r: r["metrics"]["bpd"].update(value=float("nan")), "metrics.bpd.value is NaN"),
    (lambda r: r["metrics"]["bpd"].pop("higher_is_better"), "higher_is_better must be true or false"),
    (lambda r: r["provenance"].pop("checkpoint_sha256"), "provenance.checkpoint_sha256 missing"),
    (lambda r: r.update(seed="0"), "'seed' has type str"),
])
def test_malformed_results_are_rejected_with_the_reason(tmp_path, damage, message):
    r = copy.deepcopy(valid_result())
    damage(r)
    (tmp_path / "result.json").write_text(json.dumps(r))
    with pytest.raises(ResultError, match=message):
        results.load(tmp_path / "result.json")
    with pytest.raises(ResultError, match=message):
        results.write(tmp_path / "other", r)
    assert not (tmp_path / "other" / "result.json").exists()


def test_truncated_and_missing_files(tmp_path):
    text = json.dumps(valid_result(), indent=2)
    (tmp_path / "result.json").write_text(text[: len(text) // 2])
    with pytest.raises(ResultError, match="truncated JSON"):
        results.load(tmp_path)
    (tmp_path / "result.json").write_text("{'schema': 1}")
    with pytest.raises(ResultError, match="malformed JSON"):
        results.load(tmp_path)
    with pytest.raises(ResultError, match="no such result file"):
        results.load(tmp_path / "nothing")


def test_a_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    results.write(tmp_path, valid_result())
    before = (tmp_path / "result.json").read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr("genbench.files.os.fsync", boom)
    with pytest.raises(OSError):
        results.write(tmp_path, {**valid_result(), "seed": 1})
    assert (tmp_path / "result.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left behind


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    results.write(tmp_path, valid_result())
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "result.json").stat().st_mode) == 0o666 & ~mask
