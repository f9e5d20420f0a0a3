"""Results and run directories as `genbench run` and `genbench score` leave them, for the leaderboard tests
(test_leaderboard.py, test_leaderboard_logs.py)."""

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from genbench import registry
from genbench import results as R

FASHION = "fashion-mnist/vae/smoke"  # a registered protocol with an extractor


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def training_result(protocol="digits/vae/smoke", *, seed=0, bpd=2.0, weights=b"", fid=30.0) -> dict:
    """A result as `genbench run` writes it for a registered protocol (its current version and hash), with
    every metric that protocol's evaluation produces; `weights` are the bytes its checkpoint sha256 covers."""
    p = registry.protocol(protocol)
    ev = p.evaluation
    split = f"{p.dataset}:{ev.split}"
    metrics = {
        "bpd": R.metric(bpd, higher_is_better=False, n=200, split=split, estimator="elbo", unit="bits/dim"),
        "bpd_iwae": R.metric(bpd - 0.05, higher_is_better=False, n=50, split=split, estimator="iwae", k=ev.iwae_k,
                             unit="bits/dim"),
        "psnr": R.metric(20.0 + seed, higher_is_better=True, split=split, unit="dB", n=200),
        "ssim": R.metric(0.7, higher_is_better=True, split=split, n=200),
    }
    if ev.extractor:
        common = {"n": ev.num_samples, "reference": f"{p.dataset}:{ev.reference_split}",
                  "extractor": ev.extractor, "extractor_sha256": sha("extractor")}
        metrics[f"fid[{ev.extractor}]"] = R.metric(fid, higher_is_better=False, **common)
        metrics[f"precision[{ev.extractor}]"] = R.metric(0.5, higher_is_better=True, k=3, **common)
        metrics[f"recall[{ev.extractor}]"] = R.metric(0.6, higher_is_better=True, k=3, **common)
    if ev.modes:
        common = {"n": ev.num_samples, "reference": f"{p.dataset}:train", "extractor": ev.extractor}
        metrics[f"classes_covered[{ev.extractor}]"] = R.metric(10, higher_is_better=True, **common)
        metrics[f"class_kl[{ev.extractor}]"] = R.metric(0.01, higher_is_better=False, unit="nats", **common)
    if ev.decoder_ais:
        metrics["bpd_ais"] = R.metric(bpd - 0.1, higher_is_better=False, n=ev.decoder_ais.images, split=split,
                                      estimator="ais", unit="bits/dim")
        metrics["log_px_gauss_ais"] = R.metric(-800.0, higher_is_better=True, n=ev.decoder_ais.images, split=split,
                                               estimator="ais", unit="nats/image", sigma=ev.decoder_ais.sigma)
    return {
        "schema": R.SCHEMA, "kind": "training run",
        "run_id": f"{p.dataset}-vae-{p.tier}-s{seed}-{hashlib.sha256(weights).hexdigest()[:8]}",
        "created": f"2026-01-0{seed + 1}T00:00:00+00:00", "model": p.model, "preset": p.preset, "dataset": p.dataset,
        "seed": seed, "protocol": {"name": p.name, "version": p.version, "hash": p.hash, "tier": p.tier},
        "metrics": metrics,
        "references": {"independent_pixel_bpd": R.metric(4.5, higher_is_better=False, n=200, split=split,
                                                         fitted_on=f"{p.dataset}:train", unit="bits/dim")},
        "compute": {"parameters": 1000 + seed, "train_seconds": 10.0 + seed, "device": "cpu (2 threads)",
                    "sample_images_per_s": 500.0},
        "provenance": {"genbench_version": "0.1.0", "git_commit": "0" * 40, "torch_version": "2",
                       "data_hash": {"train": sha("train"), "test": sha("test")},
                       "checkpoint_sha256": "sha256:" + hashlib.sha256(weights).hexdigest()},
        "files": {"weights": "model.pt", "samples": "samples.png", "train_log": "train_log.jsonl"},
    }


def samples_result(name, *, fid=25.0, seed=0, extractor="lenet-fashion-mnist") -> dict:
    """A result as `genbench score SAMPLES --ref fashion-mnist:train --extractor lenet-fashion-mnist` writes it."""
    common = {"n": 1000, "reference": "fashion-mnist:train", "reference_n": 60000, "extractor": extractor,
              "extractor_sha256": sha("extractor")}
    return {
        "schema": R.SCHEMA, "kind": "submitted samples", "run_id": f"score-{sha(name + str(seed))[7:19]}",
        "created": "2026-02-01T00:00:00+00:00", "model": name, "dataset": "fashion-mnist:train", "seed": seed,
        "protocol": {"name": f"score/{extractor}", "version": 1, "hash": sha("settings")[:23]},
        "metrics": {f"fid[{extractor}]": R.metric(fid, higher_is_better=False, **common),
                    f"precision[{extractor}]": R.metric(0.4, higher_is_better=True, k=3, **common)},
        "compute": {"parameters": None, "train_seconds": None, "device": "cpu", "sample_images_per_s": None},
        "provenance": {"genbench_version": "0.1.0", "git_commit": None, "torch_version": "2",
                       "data_hash": {"samples": sha(name + str(seed)), "reference": sha("train")},
                       "checkpoint_sha256": None},
    }


def grid_png(path: Path, seed: int = 0) -> None:
    images = np.random.default_rng(seed).integers(0, 256, (64, 40, 3), dtype=np.uint8)
    Image.fromarray(images).save(path)


def run_dir(root: Path, result: dict, *, weights: bytes | None = None, samples: bool = True) -> Path:
    """A run directory as `genbench run` leaves it: result.json, model.pt, samples.png."""
    d = root / result["run_id"]
    d.mkdir(parents=True)
    (d / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    if weights is not None:
        (d / "model.pt").write_bytes(weights)
    if samples:
        grid_png(d / "samples.png", seed=len(result["run_id"]))
    return d


def listing(board: Path) -> dict:
    """Every file under the board (hidden ones too) with its bytes."""
    return {p.relative_to(board).as_posix(): p.read_bytes() for p in sorted(board.rglob("*")) if p.is_file()} | \
        {p.relative_to(board).as_posix() + "/": b"" for p in sorted(board.rglob("*")) if p.is_dir()}


def json_block(html: str) -> str:
    start = html.index('<script type="application/json" id="board-data">') + len(
        '<script type="application/json" id="board-data">')
    return html[start:html.index("</script>", start)]
