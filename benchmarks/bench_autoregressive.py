"""Cached against naive generation for the convolutional autoregressive models.

    python benchmarks/bench_autoregressive.py [--model pixelcnn] [--preset small] [--shape 1,28,28]
        [--n-cached 500] [--n-naive 4] [--naive-passes N] [--cached-rows R] [--threads 2]

Both samplers draw images of `--shape` from the same randomly initialised network of the model's `--preset`
(default `small`, the quick protocol's), through the same `draw` (inverse CDF at uniforms from one seeded
generator):
- naive: `Model.sample_naive`, one full network pass per sub-pixel (C H W passes per batch);
- cached: `Model.sample`, cached generation (baselines/autoregressive.py: every layer computed at the new
  position from stored activations; Ramachandran et al. 2017; for PixelCNN++ over several resolutions, the
  coarse rows a position can change).
Each is timed on its own batch size (the naive sampler is far too slow for a large one: its figure is per
image, and the full pass it repeats costs the same per image at any batch this size), best of `--repeats`.
For networks too large to generate whole images in a benchmark (PixelCNN++'s standard preset), `--naive-passes N`
times the first N of the C H W identical full passes and `--cached-rows R` the first R of the H rows (every row
does the same work), and the images/s are extrapolated from those fractions; the output says so.
Agreement (whole images only): the naive sampler's first `--n-naive` images against the cached sampler's,
drawn with the same generator seed at the naive batch size (identical images expected), and the largest
difference between the conditionals cached generation drew from and a full pass over its finished images.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from genbench.baselines import autoregressive as ar
from genbench.baselines import pixelcnn, pixelcnnpp

MODELS = {**{name: (pixelcnn, presets) for name, presets in pixelcnn.VARIANTS.items() if name != "gated-pixelcnn-class"},
          "pixelcnnpp": (pixelcnnpp, pixelcnnpp.PRESETS)}


class _Stop(Exception):
    pass


def sampler(model, generator):
    """(conditionals of a uint8 region, draw of one sub-pixel) of either kind of model."""
    if isinstance(model, pixelcnnpp.Model):
        return model._region_params, lambda params: model.draw(params, generator)
    return model._region_logits(None), model._draw(generator)


def generate(model, n: int, *, cached: bool, seed: int = 0, stop_after: int | None = None) -> torch.Tensor:
    """n images by either sampler; with `stop_after`, only that many draws (the rest of the batch stays 0)."""
    conditionals, draw = sampler(model, torch.Generator().manual_seed(seed))
    count = 0

    def counted(params):
        nonlocal count
        if count == stop_after:
            raise _Stop
        count += 1
        return draw(params)

    x = torch.zeros((n, *model.image_shape), dtype=torch.uint8)
    try:
        with torch.no_grad():
            if cached:
                ar.sample_by_regions(conditionals, counted, x, model.net, whole_rows=getattr(model, "whole_rows", True))
            else:
                ar.sample_naive(conditionals, counted, x)
    except _Stop:
        pass
    return x


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def agreement(model, n: int) -> tuple[bool, float]:
    """(cached and naive draw the same images from one seed, largest |difference| between the conditionals the
    cached draws used and a full pass over the finished images)."""
    record = []
    conditionals, draw = sampler(model, torch.Generator().manual_seed(0))

    def recorded(params):
        record.append(params)
        return draw(params)

    x = torch.zeros((n, *model.image_shape), dtype=torch.uint8)
    with torch.no_grad():
        ar.sample_by_regions(conditionals, recorded, x, model.net, whole_rows=getattr(model, "whole_rows", True))
        full = model.conditionals(model.net_input(x))  # (B, P, C, H, W)
    c, h, w = model.image_shape
    used = torch.stack(record)  # (H W C, B, P), raster order with the channels innermost
    want = full.permute(3, 4, 2, 0, 1).reshape(h * w * c, *used.shape[1:])
    return torch.equal(x, generate(model, n, cached=False)), float((used - want).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="pixelcnn", choices=sorted(MODELS))
    parser.add_argument("--preset", default="small")
    parser.add_argument("--shape", default="1,28,28", help="C,H,W of the generated images")
    parser.add_argument("--n-cached", type=int, default=500, help="images per cached-generation batch")
    parser.add_argument("--n-naive", type=int, default=4, help="images per naive-generation batch")
    parser.add_argument("--naive-passes", type=int, default=None, help="time only this many naive passes")
    parser.add_argument("--cached-rows", type=int, default=None, help="time only this many rows of cached generation")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = tuple(int(s) for s in args.shape.split(","))
    module, presets = MODELS[args.model]
    model = module.Model(presets[args.preset], shape).eval()
    c, h, w = shape
    passes, rows = args.naive_passes or c * h * w, args.cached_rows or h
    naive_draws, cached_draws = min(passes, c * h * w), min(rows, h) * w * c

    t_naive, _ = timed(lambda: generate(model, args.n_naive, cached=False, stop_after=naive_draws), args.repeats)
    t_cached, _ = timed(lambda: generate(model, args.n_cached, cached=True, stop_after=cached_draws), args.repeats)
    naive_ips = args.n_naive / (t_naive * c * h * w / naive_draws)
    cached_ips = args.n_cached / (t_cached * h / min(rows, h))

    print(f"{args.model} {args.preset} preset on {shape}, {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'':34s} {'images':>7s} {'timed':>13s} {'seconds':>9s} {'images/s':>10s}")
    print(f"{f'naive ({c * h * w} full passes)':34s} {args.n_naive:7d} {f'{naive_draws} passes':>13s} "
          f"{t_naive:9.2f} {naive_ips:10.4g}")
    print(f"{'cached generation':34s} {args.n_cached:7d} {f'{min(rows, h)} rows':>13s} {t_cached:9.2f} "
          f"{cached_ips:10.4g}")
    partial = naive_draws < c * h * w or rows < h
    print(f"ratio (cached / naive images/s): {cached_ips / naive_ips:.0f}x"
          + (" (extrapolated from the timed fractions)" if partial else ""))
    if not partial:
        same, diff = agreement(model, args.n_naive)
        print(f"identical images from the same seed ({args.n_naive}): {same}")
        print(f"largest |conditional difference| cached vs full pass: {diff:.2e}")


if __name__ == "__main__":
    main()
