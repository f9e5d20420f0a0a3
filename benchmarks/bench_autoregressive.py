"""Cached against naive generation for the convolutional autoregressive models, on their quick-tier networks.

    python benchmarks/bench_autoregressive.py [--model pixelcnn] [--n-cached 500] [--n-naive 4] [--threads 2]

Both samplers draw Fashion-MNIST-sized images (1 x 28 x 28) from the same randomly initialised network of the
model's `small` preset (the quick protocol's), through the same `draw` (inverse CDF at uniforms from one seeded
generator):
- naive: `Model.sample_naive`, one full network pass per sub-pixel (784 passes per batch);
- cached: `Model.sample`, cached generation (baselines/autoregressive.py: every layer computed at the new
  position from stored activations; Ramachandran et al. 2017).
Each is timed on its own batch size (the naive sampler is far too slow for a large one: its figure is per
image, and the full pass it repeats costs the same per image at any batch this size), best of `--repeats`.
Agreement: the naive sampler's first `--n-naive` images against the cached sampler's, drawn with the same
generator seed at the naive batch size (identical images expected), and the largest difference between the
logits cached generation drew from and a full pass over its finished images.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from genbench.baselines import autoregressive as ar
from genbench.baselines import pixelcnn

SHAPE = (1, 28, 28)


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="pixelcnn", choices=sorted(pixelcnn.VARIANTS))
    parser.add_argument("--n-cached", type=int, default=500, help="images per cached-generation batch")
    parser.add_argument("--n-naive", type=int, default=4, help="images per naive-generation batch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = pixelcnn.Model(pixelcnn.VARIANTS[args.model]["small"], SHAPE).eval()
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731

    t_naive, naive = timed(lambda: model.sample_naive(args.n_naive, generator=gen()), args.repeats)
    t_cached, cached = timed(lambda: model.sample(args.n_cached, generator=gen()), args.repeats)
    same_seed = model.sample(args.n_naive, generator=gen())
    with torch.no_grad():  # the logits of every draw, from cached generation, against a full pass
        record = []
        g = gen()

        def draw(logits):
            record.append(logits)
            return ar.sample_categorical(logits, g).to(torch.uint8)

        x = torch.zeros((args.n_naive, *SHAPE), dtype=torch.uint8)
        ar.sample_by_regions(model._region_logits, draw, x, model.net, whole_rows=model.whole_rows)
        full = model.conditionals(model.net_input(x))  # (B, 256, 1, 28, 28)
        used = torch.stack(record).reshape(28, 28, args.n_naive, 256).permute(2, 3, 0, 1)
        diff = float((used - full[:, :, 0]).abs().max())

    naive_ips, cached_ips = args.n_naive / t_naive, args.n_cached / t_cached
    print(f"{args.model} small preset, {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'':28s} {'images':>7s} {'seconds':>9s} {'images/s':>10s}")
    print(f"{'naive (784 full passes)':28s} {args.n_naive:7d} {t_naive:9.2f} {naive_ips:10.3f}")
    print(f"{'cached generation':28s} {args.n_cached:7d} {t_cached:9.2f} {cached_ips:10.3f}")
    print(f"ratio (cached / naive images/s): {cached_ips / naive_ips:.0f}x")
    print(f"identical images from the same seed ({args.n_naive}): {torch.equal(naive, same_seed)}")
    print(f"largest |logit difference| cached vs full pass: {diff:.2e}")


if __name__ == "__main__":
    main()
