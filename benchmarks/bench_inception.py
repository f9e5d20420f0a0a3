"""Throughput of genbench's inception-v3-compat against torch-fidelity's, on CPU.

    python benchmarks/bench_inception.py [--n 128] [--batch-size 32] [--threads 2] [--repeats 2]

Both networks load the same weights file (seeded synthetic weights in the real file's layout: the real file is
not needed to time the network) and see the same N uint8 32x32 images. Batches alternate between the two
networks, so a neighbour's load on a shared machine slows both alike; each network's time is its best pass of
`--repeats`. Prints images/s of each, their ratio and the max relative difference of the 2048-d features
(max over images of max|ours - theirs| / max|theirs|).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=128, help="number of 32x32 images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="passes over the images; the best counts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from genbench.metrics import inception

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "synthetic-inception.pth"
        torch.save(inception.synthetic_state_dict(seed=0), path)
        t0 = time.perf_counter()
        theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
        t1 = time.perf_counter()
        ours = inception.InceptionV3Compat(torch.load(path, map_location="cpu", weights_only=True), source=str(path))
        t2 = time.perf_counter()

    images = torch.randint(0, 256, (args.n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    batches = list(images.split(args.batch_size))
    run = {"torch-fidelity": lambda x: theirs(x)[0], "genbench": lambda x: ours(x)["features"]}
    best = {name: float("inf") for name in run}
    features: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for f in run.values():  # warm-up: first-call allocations and weight layouts
            f(batches[0][:2])
        for r in range(args.repeats):
            spent = {name: 0.0 for name in run}
            outs: dict[str, list[torch.Tensor]] = {name: [] for name in run}
            for i, x in enumerate(batches):
                order = list(run) if (i + r) % 2 == 0 else list(run)[::-1]
                for name in order:
                    t = time.perf_counter()
                    outs[name].append(run[name](x))
                    spent[name] += time.perf_counter() - t
            for name in run:
                best[name] = min(best[name], spent[name])
                features[name] = torch.cat(outs[name])

    ref, got = features["torch-fidelity"].double(), features["genbench"].double()
    rel = ((got - ref).abs().amax(1) / ref.abs().amax(1)).max().item()
    speed = {name: args.n / best[name] for name in run}
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads")
    print(f"images: {args.n} x 3x32x32 uint8, batch size {args.batch_size}, best of {args.repeats} interleaved passes")
    print(f"build: torch-fidelity {t1 - t0:.2f} s, genbench {t2 - t1:.2f} s (file read + BN folding)")
    for name in run:
        print(f"{name:>15}: {speed[name]:6.2f} images/s")
    print(f"{'ratio':>15}: {speed['genbench'] / speed['torch-fidelity']:6.2f}x")
    print(f"max relative feature difference: {rel:.2e}")


if __name__ == "__main__":
    main()
