"""End to end: `genbench score` of an image folder against a cached reference, versus torch-fidelity.

    python benchmarks/bench_score.py [--n 10000] [--n-ref 1000] [--threads 2] [--workdir DIR]

Both tools score the same folder of N 32x32 RGB PNG files (seeded smooth random images) against the same
reference folder with FID, KID and IS through the same Inception network: one weights file (seeded synthetic
weights in the real file's layout, since the published file cannot be downloaded here) loaded by
torch-fidelity's `inception-v3-compat` and by genbench's. Each tool's reference features are computed and
cached first (not timed), so the timed call is what a user with a cached reference waits for: finding and
decoding the files, the network, and the metrics.

- genbench: `genbench.score.score()`, the function behind `genbench score` (the CLI adds argument parsing and
  printing), with the synthetic-weights network registered as the extractor `inception-synthetic`;
- torch-fidelity: `torch_fidelity.calculate_metrics()`, the function behind its `fidelity` command, with
  `input2_cache_name` for the cached reference and `input1_cache_name` so the sample features it computed can
  be read back and compared (the cache write is part of its timed call, about a second).

Same settings for both: batch 64, KID 100 subsets of min(1000, N, N_ref), IS 10 splits, seed 2020 (torch-
fidelity's default). Prints images/s of each, the ratio, the largest relative difference of the 2048-d
features (max over images of max|ours - theirs| / max|theirs|), and the three metrics from each tool.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_images(folder: Path, n: int, seed: int) -> None:
    """n smooth random 32x32 RGB images as PNG (8x8 noise upsampled bicubically, plus fine noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((32, 32), Image.BICUBIC)
        x = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, (32, 32, 3))
        Image.fromarray(x.clip(0, 255).astype(np.uint8)).save(folder / f"{i:06d}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="images in the scored folder")
    parser.add_argument("--n-ref", type=int, default=1000, help="images in the reference folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="keep images and caches here (default: temp)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="genbench-bench-score-"))
    try:
        run(args, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path) -> None:
    import os

    os.environ["GENBENCH_CACHE"] = str(work / "genbench-cache")
    import torch_fidelity

    from genbench import reference, registry
    from genbench.metrics import features, inception
    from genbench.score import ScoreSettings, score

    samples, ref = work / "samples", work / "reference"
    if not samples.exists():
        write_images(samples, args.n, seed=1)
    if not ref.exists():
        write_images(ref, args.n_ref, seed=2)
    weights = work / "synthetic-inception.pth"
    if not weights.exists():
        torch.save(inception.synthetic_state_dict(seed=0), weights)

    source = features.WeightsSource(extractor="inception-synthetic", url="", sha256=features.sha256_file(weights),
                                    filenames=(weights.name,), env=None)
    spec = features.ExtractorSpec(
        name="inception-synthetic", description="inception-v3-compat with seeded synthetic weights (benchmark)",
        feature_dim=inception.FEATURE_DIM, num_classes=inception.NUM_CLASSES,
        input=features.INCEPTION_V3_COMPAT.input,
        build=lambda weights=None, device="cpu": features.build_inception(weights, device, source=source))
    registry.EXTRACTORS.register(spec.name, spec)

    subset = min(1000, args.n, args.n_ref)
    settings = ScoreSettings(metrics=("fid", "kid", "is"), extractor=spec.name, weights=weights, batch_size=64,
                             kid_subset_size=subset, seed=2020, progress=False)
    tf_kwargs = dict(input1=str(samples), input2=str(ref), cuda=False, fid=True, kid=True, isc=True,
                     batch_size=64, kid_subset_size=subset, kid_subsets=100, isc_splits=10, rng_seed=2020,
                     feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(weights),
                     cache_root=str(work / "tf-cache"), input2_cache_name="bench-reference", verbose=False)

    # Reference features into each tool's cache (not timed).
    t = time.perf_counter()
    reference.resolve(str(ref), extractor=spec, module=spec.load(weights), batch_size=64, progress=False)
    torch_fidelity.calculate_metrics(**{**tf_kwargs, "input1": str(ref), "input1_cache_name": "bench-reference",
                                        "kid": False})
    print(f"reference caches built in {time.perf_counter() - t:.0f} s")

    # genbench: capture the sample features `score` extracts, to compare them with torch-fidelity's.
    captured = {}
    real_extract = features.extract

    def capturing_extract(*a, **kw):
        out = real_extract(*a, **kw)
        captured.setdefault("features", out["features"])
        return out

    features.extract = capturing_extract
    t = time.perf_counter()
    ours = score(samples, str(ref), settings)
    t_ours = time.perf_counter() - t
    features.extract = real_extract

    for stale in (work / "tf-cache").glob("bench-samples-*"):
        stale.unlink()
    t = time.perf_counter()
    theirs = torch_fidelity.calculate_metrics(**{**tf_kwargs, "input1_cache_name": "bench-samples"})
    t_theirs = time.perf_counter() - t

    cached = sorted((work / "tf-cache").glob("bench-samples-*-2048.pt"))
    their_features = torch.load(cached[0], map_location="cpu", weights_only=True)
    their_features = np.asarray(their_features, dtype=np.float64)
    our_features = np.asarray(captured["features"], dtype=np.float64)
    rel = (np.abs(our_features - their_features).max(1) / np.abs(their_features).max(1)).max()

    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads")
    print(f"scored: {args.n} PNG files of 32x32 RGB against a cached reference of {args.n_ref}")
    print(f"{'torch-fidelity':>15}: {t_theirs:7.1f} s  {args.n / t_theirs:6.2f} images/s")
    print(f"{'genbench':>15}: {t_ours:7.1f} s  {args.n / t_ours:6.2f} images/s")
    print(f"{'ratio':>15}: {t_theirs / t_ours:6.2f}x")
    print(f"max relative feature difference: {rel:.2e}")
    m = ours["metrics"]
    for name, mine, other in (("FID", m["fid[inception-synthetic]"]["value"], theirs["frechet_inception_distance"]),
                              ("KID", m["kid[inception-synthetic]"]["value"], theirs["kernel_inception_distance_mean"]),
                              ("IS", m["is[inception-synthetic]"]["value"], theirs["inception_score_mean"])):
        print(f"{name:>4}: genbench {mine:.6g}  torch-fidelity {other:.6g}  relative difference "
              f"{abs(mine - other) / abs(other):.1e}")


if __name__ == "__main__":
    main()
