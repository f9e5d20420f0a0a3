"""Benchmark genbench.metrics.fidelity against torch-fidelity on random features: time, peak memory, agreement.

    python benchmarks/bench_fidelity.py                 # N = 10k and 50k, D = 2048 (8-15 min on 2 cores)
    python benchmarks/bench_fidelity.py --large 0       # N = 10k only
    python benchmarks/bench_fidelity.py --n 2000 --dim 256 --large 0 --repeat 1   # a quick look
    python benchmarks/bench_fidelity.py --kid-products  # KID's products on 1 and all BLAS threads (seconds)

What is measured
- Fréchet distance at N x D: the statistics (mean, covariance) of one set, and the distance itself on the same
  precomputed float64 statistics (genbench frechet_distance vs torch-fidelity fid_statistics_to_metric), best
  of --repeat interleaved runs, with the relative difference of the two FIDs and of each against a third
  route (symmetric square root of S1 by eigh).
- FID accuracy at D = 256 (N > D and N < D): the relative error of both against an exact route from the
  features (nuclear norm of Xc Yc^T), which needs no covariance product.
- KID (100 subsets of 1000), precision/recall (k = 3) and density/coverage (k = 5), each in a fresh
  subprocess: wall time of one run and extra peak memory = peak RSS during the call minus RSS before it
  (Linux /proc: VmHWM is reset through /proc/self/clear_refs once the features are in memory), so the feature
  arrays themselves are not counted. torch-fidelity's precision/recall is run at N = 10k only: its default
  path holds full N x N matrices (10 GB each at 50k). Features are float32, as extractors produce them.
Timings on a shared machine are noisy: compare the best of several runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import torch


def features(n: int, dim: int, *, role: str) -> np.ndarray:
    """Deterministic float32 (n, dim) features with a decaying spectrum; 'fake' is scaled and shifted."""
    g = torch.Generator().manual_seed(0 if role == "real" else 1)
    spectrum = torch.arange(1, dim + 1, dtype=torch.float32) ** -0.5
    x = torch.randn(n, dim, generator=g) * spectrum
    if role == "fake":
        x = x * 1.05 + 0.01
    return x.numpy()


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def child(task: str, n: int, dim: int) -> dict:
    """One measured call in this (fresh) process."""
    from genbench.metrics import fidelity as F

    real, fake = features(n, dim, role="real"), features(n, dim, role="fake")
    if task.startswith("tf-"):
        from torch_fidelity import metric_kid, metric_prc
        real_t, fake_t = torch.from_numpy(real), torch.from_numpy(fake)
    size = min(1000, n)
    calls = {
        "kid": lambda: F.kid(real=real, fake=fake, subsets=100, subset_size=size, seed=2020),
        "tf-kid": lambda: tuple(metric_kid.kid_features_to_metric(
            fake_t, real_t, kid_subsets=100, kid_subset_size=size, rng_seed=2020, verbose=False).values()),
        "prc": lambda: F.precision_recall(real=real, fake=fake, k=3),
        "tf-prc": lambda: tuple(metric_prc.prc_features_to_metric(
            fake_t, real_t, prc_neighborhood=3, verbose=False).values())[:2],
        "tf-prc-save-ram": lambda: tuple(metric_prc.prc_features_to_metric(
            fake_t, real_t, prc_neighborhood=3, save_cpu_ram=True, verbose=False).values())[:2],
        "dc": lambda: F.density_coverage(real=real, fake=fake, k=5),
    }
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS to the current RSS
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    value = calls[task]()
    seconds = time.perf_counter() - start
    return {"task": task, "n": n, "seconds": seconds, "extra_mib": (_status_kib("VmHWM") - before) / 1024,
            "value": [float(v) for v in value]}


def run_child(task: str, n: int, dim: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", task, "--n", str(n), "--dim", str(dim)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of(fns: dict, repeat: int) -> tuple[dict, dict]:
    """Best wall time and last value of each function, the functions interleaved so that both see the same
    background load."""
    best, value = {k: float("inf") for k in fns}, {}
    for _ in range(repeat):
        for k, fn in fns.items():
            start = time.perf_counter()
            value[k] = fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best, value


def frechet(n: int, dim: int, repeat: int) -> list[tuple[str, str, str, str]]:
    from torch_fidelity import metric_fid

    from genbench.metrics import fidelity as F

    real, fake = features(n, dim, role="real"), features(n, dim, role="fake")
    t_stats, stats = best_of({"genbench": lambda: F.gaussian_stats(real),
                              "tf": lambda: metric_fid.fid_features_to_statistics(torch.from_numpy(real))}, repeat)
    mu_r, sigma_r = stats["genbench"]
    mu_f, sigma_f = F.gaussian_stats(fake)
    stats_tf = [{"mu": mu_f, "sigma": sigma_f}, {"mu": mu_r, "sigma": sigma_r}]  # its input1 is the generated set
    t_fd, fd = best_of({
        "genbench": lambda: F.frechet_distance(mu_r, sigma_r, mu_f, sigma_f),
        "tf": lambda: metric_fid.fid_statistics_to_metric(*stats_tf, verbose=False)["frechet_inception_distance"],
    }, repeat)
    ours, theirs = fd["genbench"], fd["tf"]

    # a third route for scale: L = S1^(1/2) from eigh, tr((S1 S2)^(1/2)) = sum sqrt(eig(L S2 L))
    s1, s2 = torch.from_numpy(sigma_r), torch.from_numpy(sigma_f)
    w, v = torch.linalg.eigh(s1)
    root = (v * w.clamp_min(0).sqrt()) @ v.T
    lam = torch.linalg.eigvalsh(root @ s2 @ root).clamp_min(0)
    diff = mu_r - mu_f
    third = float(diff @ diff + np.trace(sigma_r) + np.trace(sigma_f) - 2 * lam.sqrt().sum())

    rel = lambda a, b: f"{abs(a - b) / abs(b):.1e}"
    return [
        (f"statistics (mu, sigma) of {n}x{dim}", f"{t_stats['genbench']:.2f} s", f"{t_stats['tf']:.2f} s",
         f"{t_stats['tf'] / t_stats['genbench']:.2f}x"),
        (f"Fréchet distance, D={dim}", f"{t_fd['genbench']:.2f} s", f"{t_fd['tf']:.2f} s",
         f"{t_fd['tf'] / t_fd['genbench']:.2f}x"),
        ("  FID value", f"{ours:.10g}", f"{theirs:.10g}", f"rel diff {rel(ours, theirs)}"),
        ("  rel diff vs eigh-sqrt route", rel(ours, third), rel(theirs, third), ""),
    ]


def accuracy(dim: int = 256) -> list[tuple[str, str, str, str]]:
    """Relative error of both FIDs against an exact route from the features: the nonzero eigenvalues of S1 S2
    are the squared singular values of Xc Yc^T / sqrt((n1 - 1)(n2 - 1)), so tr((S1 S2)^(1/2)) is that matrix's
    nuclear norm (no covariance product, no square root of rounding noise; N x N, hence the small D)."""
    from torch_fidelity import metric_fid

    from genbench.metrics import fidelity as F

    rows = []
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0]
    for n1, n2, decay in ((2000, 2000, 0.0), (2000, 2000, 1.5), (300, 300, 1.0), (100, 120, 0.0), (100, 120, 1.5)):
        spectrum = np.arange(1, dim + 1) ** (-decay / 2)
        x = (rng.standard_normal((n1, dim)) * spectrum) @ basis + 0.5
        y = (rng.standard_normal((n2, dim)) * spectrum * 1.1) @ basis + 0.5 + 0.05 * spectrum
        xc, yc = x - x.mean(0), y - y.mean(0)
        d = x.mean(0) - y.mean(0)
        exact = (d @ d + (xc * xc).sum() / (n1 - 1) + (yc * yc).sum() / (n2 - 1)
                 - 2 * np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = F.fid(real=x, fake=y)
        stats = [metric_fid.fid_features_to_statistics(torch.from_numpy(a)) for a in (y, x)]
        theirs = metric_fid.fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]
        rows.append((f"  N={n1}/{n2}, D={dim}, spectrum decay {decay}", f"{abs(ours - exact) / exact:.1e}",
                     f"{abs(theirs - exact) / exact:.1e}", f"exact FID {exact:.6g}"))
    return [("FID rel. error vs exact route", "", "", "")] + rows


def kid_products(dim: int, m: int = 1000, repeat: int = 15) -> None:
    """What one KID subset's work costs: a @ a.T (a symmetric rank-k update in numpy) and a @ b.T for (m, dim)
    float32 on 1 BLAS thread and on all of them, and one float64 kernel matrix made and summed."""
    from threadpoolctl import threadpool_info, threadpool_limits

    a, b = features(m, dim, role="real"), features(m, dim, role="fake")
    ms = lambda fn: 1000 * best_of({"x": fn}, repeat)[0]["x"]  # noqa: E731
    most = max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")
    products = {}
    for threads in sorted({1, most}):
        with threadpool_limits(threads, user_api="blas"):
            print(f"{m}x{dim} float32 on {threads} BLAS thread(s): a @ a.T {ms(lambda: a @ a.T):.1f} ms, "
                  f"a @ b.T {ms(lambda: a @ b.T):.1f} ms")
            products[threads] = (a @ b.T).astype(np.float64)
    if most > 1:
        one, many = products[1], products[most]
        print(f"a @ b.T on {most} threads against 1: largest difference {np.abs(many - one).max():.2e} "
              f"({np.abs(many - one).max() / np.abs(one).max():.1e} of the largest product)")
    gram = products[1].astype(np.float32)

    def kernel_sum() -> float:  # as KID made it before its block-wise kernel: a whole float64 m x m matrix
        k = gram.astype(np.float64)
        k *= 1 / dim
        k += 1
        cube = k * k
        cube *= k
        return cube.sum()

    print(f"float64 kernel matrix (x / {dim} + 1)^3 of one {m}x{m} product, made and summed: {ms(kernel_sum):.2f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10000, help="samples per set (default 10000)")
    p.add_argument("--dim", type=int, default=2048, help="feature dimension (default 2048)")
    p.add_argument("--large", type=int, default=50000, help="also run the genbench k-NN metrics and KID at "
                   "this N (0: skip; default 50000)")
    p.add_argument("--repeat", type=int, default=5, help="repeats for the FID timings (best is reported)")
    p.add_argument("--kid-products", action="store_true", help="only time KID's products on 1 and all BLAS "
                   "threads, and one float64 kernel matrix")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.kid_products:
        kid_products(args.dim)
        return
    if args.child:
        print(json.dumps(child(args.child, args.n, args.dim)))
        return

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}", flush=True)
    rows = frechet(args.n, args.dim, args.repeat) + accuracy()
    for task_pair in (("kid", "tf-kid"), ("prc", "tf-prc"), ("dc", None)):
        ours = run_child(task_pair[0], args.n, args.dim)
        theirs = run_child(task_pair[1], args.n, args.dim) if task_pair[1] else None
        name = {"kid": f"KID 100x{min(1000, args.n)}", "prc": "precision/recall k=3",
                "dc": "density/coverage k=5"}[task_pair[0]]
        cell = lambda r: f"{r['seconds']:.1f} s, +{r['extra_mib']:.0f} MiB"
        rows.append((f"{name}, N={args.n}", cell(ours), cell(theirs) if theirs else "-",
                     f"{theirs['seconds'] / ours['seconds']:.2f}x" if theirs else ""))
        vals = lambda r: ", ".join(f"{v:.7g}" for v in r["value"])
        rows.append(("  value", vals(ours), vals(theirs) if theirs else "-", ""))
        print(*rows[-2:], sep="\n", flush=True)
    if args.large:
        for task in ("kid", "prc", "dc"):
            r = run_child(task, args.large, args.dim)
            rows.append((f"{task}, N={args.large} (genbench only)", f"{r['seconds']:.1f} s, +{r['extra_mib']:.0f} MiB",
                         "-", ", ".join(f"{v:.7g}" for v in r["value"])))
            print(rows[-1], flush=True)

    widths = [max(len(r[i]) for r in rows + [("", "genbench", "torch-fidelity", "ratio / note")]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    print()
    print(line(("", "genbench", "torch-fidelity", "speedup / note")))
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    main()
