"""Time each disentanglement score at disentanglement_lib's settings, n_jobs = 1 (what the reference does:
sequential sklearn) against n_jobs = 2, and the histogram boosting (dci_estimator="hist_gbt") against
sklearn's (the reference's "gbt") with its deviation.

    python benchmarks/bench_disentanglement.py            # reference settings: 10,000 / 5,000 points (~15 min)
    python benchmarks/bench_disentanglement.py --quick    # 2,000 / 1,000 points, a smoke run

Representation: 10 codes, a fixed random linear mix of the 5 dSprites factors (scaled to [0, 1)) plus
Gaussian noise of standard deviation 0.05; observations are the factor values themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from genbench.metrics import disentanglement as dis
from genbench.metrics import disentanglement_sampling as sampling


class DSpritesFactors:
    """dSprites' factor space (3 shapes x 6 scales x 40 orientations x 32 x 32 positions), drawn as
    disentanglement_lib draws it; observations are the factor values."""

    factor_names = ("shape", "scale", "orientation", "pos_x", "pos_y")
    factor_sizes = (3, 6, 40, 32, 32)

    def sample_factors(self, n, random_state):
        return np.stack([random_state.randint(s, size=n) for s in self.factor_sizes], axis=1).astype(np.int64)

    def observations(self, factors):
        return factors.astype(np.float64)


MIX = np.random.RandomState(1).randn(5, 10)


def noisy_linear_mix(observations):
    f = observations / np.array(DSpritesFactors.factor_sizes)
    noise = np.random.RandomState(int(observations.sum()) % 2 ** 31).randn(len(f), 10)
    return f @ MIX + 0.05 * noise


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 / 1,000 points instead of 10,000 / 5,000")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--only", help="time only the scores whose names contain one of these comma-separated "
                                       "texts (e.g. DCI,SAP)")
    args = parser.parse_args()
    n_train, n_eval = (2_000, 1_000) if args.quick else (10_000, 5_000)
    base = dis.Settings(num_train=n_train, num_eval=n_eval)
    gt = DSpritesFactors()

    def settings(**kw):
        return dis.Settings(**{**dis.settings_dict(base), **kw})

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at start; {n_train} train / {n_eval} eval points, D = 10, "
          f"factor sizes {gt.factor_sizes}")

    def fixed_sets():  # what dis.evaluate draws: train then test points, 16 at a time, from RandomState(seed)
        rs = np.random.RandomState(base.seed)
        y_train = sampling.sample(gt, n_train, rs, base.sample_batch_size)
        y_test = sampling.sample(gt, n_eval, rs, base.sample_batch_size)
        return (y_train, y_test, sampling.encode(gt, noisy_linear_mix, y_train, base.encode_batch_size),
                sampling.encode(gt, noisy_linear_mix, y_test, base.encode_batch_size))

    (y_train, y_test, x_train, x_test), t_sample = timed(fixed_sets)
    rows, results = [], {}
    rows.append(("draw + encode the fixed sets", t_sample, None, None))

    fixed = {
        "MIG": lambda s: dis.mig(x_train, y_train, s),
        "DCI (gbt, sklearn)": lambda s: dis.dci(x_train, y_train, x_test, y_test, s),
        "DCI (hist_gbt)": lambda s: dis.dci(x_train, y_train, x_test, y_test, settings(n_jobs=s.n_jobs,
                                                                                         dci_estimator="hist_gbt")),
        "SAP (discrete)": lambda s: dis.sap(x_train, y_train, x_test, y_test, s),
        "modularity + explicitness": lambda s: dis.modularity_explicitness(x_train, y_train, x_test, y_test, s),
    }
    wanted = [w for w in (args.only or "").split(",") if w]
    fixed = {k: v for k, v in fixed.items() if not wanted or any(w in k for w in wanted)}
    for name, fn in fixed.items():
        out1, t1 = timed(lambda: fn(settings(n_jobs=1)))
        out2, t2 = timed(lambda: fn(settings(n_jobs=2)))
        assert out1 == out2, f"{name}: n_jobs = 1 and 2 disagree"
        results[name] = out1
        rows.append((name, t1, t2, out1))
        print(f"  {name}: {t1:.1f} s / {t2:.1f} s", flush=True)
    for name, fn in (("BetaVAE score", dis.beta_vae_score), ("FactorVAE score", dis.factor_vae_score)):
        if wanted and not any(w in name for w in wanted):
            continue
        out, t = timed(lambda: fn(gt, noisy_linear_mix, base))
        results[name] = out
        rows.append((name, t, None, out))
        print(f"  {name}: {t:.1f} s", flush=True)

    print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print()
    print("| score | n_jobs = 1 | n_jobs = 2 | speed-up | value |")
    print("|---|---|---|---|---|")
    for name, t1, t2, out in rows:
        value = "" if out is None else ", ".join(f"{k} {v['value']:.4f}" for k, v in out.items())
        speed = f"{t1 / t2:.2f}x" if t2 else ""
        print(f"| {name} | {t1:.1f} s | {'' if t2 is None else f'{t2:.1f} s'} | {speed} | {value} |")
    total = {j: sum(t[j] for t in rows if t[0] != "DCI (hist_gbt)" and t[j] is not None) for j in (1, 2)}
    print(f"| all scores, reference DCI | {total[1]:.1f} s | | | |")

    if not {"DCI (gbt, sklearn)", "DCI (hist_gbt)"} <= set(results):
        return
    ref, fast = results["DCI (gbt, sklearn)"], results["DCI (hist_gbt)"]
    R_ref = np.array(ref["dci_disentanglement"]["importance_matrix"])
    R_fast = np.array(fast["dci_disentanglement"]["importance_matrix"])
    t_ref = next(r[1] for r in rows if r[0] == "DCI (gbt, sklearn)")
    t_fast = next(r[1] for r in rows if r[0] == "DCI (hist_gbt)")
    print()
    print(f"hist_gbt vs gbt (n_jobs = 1): {t_ref / t_fast:.1f}x faster; "
          + ", ".join(f"{k} {fast[k]['value'] - ref[k]['value']:+.4f}" for k in ref)
          + f"; importance matrix max |diff| {np.abs(R_fast - R_ref).max():.4f}, "
          f"mean {np.abs(R_fast - R_ref).mean():.4f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": [(n, t1, t2) for n, t1, t2, _ in rows], "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
