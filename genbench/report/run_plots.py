"""Plots of runs: curves over training and sample grids, from run directories and result files.

    training_curves(run_dirs, key)    train_log.jsonl (solid) and eval_log.jsonl (dashed) of runs
    loss_curves(run_dirs, keys)       the loss terms adversarial training logs (g_loss, d_loss, wasserstein), a
                                      panel each, against training step
    snapshot_curve(results, metric)   sample quality over training from the results' `snapshots` sections: one
                                      line per row, seeds as mean ± std
    snapshot_kinds(results)           the distinct snapshot curves (metric, n, reference, extractor) in results
    sampler_steps_plot(section)       FID against the number of sampling steps (a `sampler_steps` section of a
                                      result or of sampler_steps.json), sampling speed beside each point
    truncation_plot(section)          FID against IS over the truncation threshold (a `truncation_curve` section)
    sample_grid(run_dir)              the run's saved samples (samples.npz, else samples.png)
    read_log(path), run_label(run_dir)

A run directory is any folder with the run's result.json or run.json beside its logs: what `genbench run`
leaves, or a board entry (results/<run_id>/, holding the train_log.jsonl submitted with the result). Style,
labels and saving (`plots.save`) are those of `plots`, which also still answers to these names.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import NamedTuple, Sequence

import matplotlib.image
import matplotlib.transforms
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from genbench import GenbenchError, GenbenchWarning
from genbench import results as results_mod
from genbench.report import entries
from genbench.report.plots import DPI, PALETTE, _count_formatter, _figure, _footnote, _styled, _title, metric_label

TRAIN_LOG = "train_log.jsonl"
# The loss terms of adversarial training, one panel each in `loss_curves` (the generator's loss is also the
# log's "loss"; gp / r1 / d_real / d_fake are logged too, but their panels would mostly repeat d_loss).
LOSS_TERMS = ("g_loss", "d_loss", "wasserstein")
_LOG_KEYS = {"loss": "loss", "bpd": "NLL (bits/dim)", "recon": "reconstruction term", "kl": "KL term",
             "images_per_s": "throughput (images/s)", "train_seconds": "training time (s)",
             "g_loss": "generator loss", "d_loss": "discriminator / critic loss", "wasserstein": "Wasserstein estimate",
             "gp": "gradient penalty", "r1": "R1 penalty", "d_real": "D(real)", "d_fake": "D(fake)"}
_DIRECTION = {True: " (↑ higher is better)", False: " (↓ lower is better)", None: ""}


# -------------------------------------------------------------------------------------- run directories

def read_log(path: Path) -> list[dict]:
    """Rows of a JSON-lines log. A truncated last line (a run killed mid-write) is skipped with a warning;
    so is any other unreadable line, naming its number. A missing file gives []."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            why = "is truncated (the run was stopped while writing it?)" if i == last else "is not valid JSON"
            warnings.warn(f"{path}: line {i + 1} {why}; skipped.", GenbenchWarning, stacklevel=2)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def run_label(run_dir: Path) -> str:
    """What a run directory trained, without its seed: "vae (small) · fashion-mnist/vae/quick@2", from
    result.json, else run.json, else the directory's name."""
    run_dir = Path(run_dir)
    try:
        return entries.row_of(results_mod.load(run_dir))
    except GenbenchError:
        pass
    p = _run_json(run_dir).get("protocol")
    try:
        entry = f"{p['model']} ({p['preset']})" if p.get("preset") else p["model"]
        return f"{entry} · {p['protocol']}"
    except (KeyError, TypeError, AttributeError):
        return run_dir.name


def _run_json(run_dir: Path) -> dict:
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _batch_size(run_dir: Path) -> int | None:
    try:
        return int(_run_json(run_dir)["protocol"]["batch_size"])
    except (KeyError, TypeError, ValueError):
        return None


def _series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(r["step"], r[key]) for r in rows if isinstance(r.get("step"), (int, float))
             and isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
    xy = np.array(pairs, float).reshape(-1, 2)
    keep = np.isfinite(xy).all(axis=1)
    return xy[keep, 0], xy[keep, 1]


@_styled
def training_curves(run_dirs: Sequence[Path], key: str = "loss", *,
                    labels: Sequence[str] | None = None) -> Figure:
    """`key` against training step for each run: train_log.jsonl solid, the held-out eval_log.jsonl dashed.
    Runs with the same label (by default the entry and protocol, so the seeds of one entry) share a colour.
    The y axis is logarithmic where the positive values span more than 10x; a top axis gives images seen when
    all runs share one batch size."""
    run_dirs = [Path(d) for d in run_dirs]
    if labels is None:
        labels = [run_label(d) for d in run_dirs]
    elif len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} run directories; give one label per run")
    order = list(dict.fromkeys(labels))
    colors = {lab: PALETTE[i % len(PALETTE)] for i, lab in enumerate(order)}

    fig = _figure(3.8)
    ax = fig.add_subplot()
    notes, drawn, any_eval, values = [], {lab: [] for lab in order}, False, []
    for run, lab in zip(run_dirs, labels):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            train = _series(read_log(run / "train_log.jsonl"), key)
            held = _series(read_log(run / "eval_log.jsonl"), key)
        for w in caught:  # said twice: to the caller, and on the figure
            warnings.warn(w.message, w.category, stacklevel=3)
            notes.append(str(w.message).replace(f"{run}{os.sep}", f"{run.name}{os.sep}"))  # short on the figure
        if not len(train[0]) and not len(held[0]):
            notes.append(f"{run.name}: no {key!r} in train_log.jsonl or eval_log.jsonl; not plotted.")
            continue
        drawn[lab].append(_run_json(run).get("seed"))
        for (x, y), style, stream in ((train, "-", "train"), (held, "--", "eval")):
            if len(x):
                ax.plot(x, y, linestyle=style, color=colors[lab], alpha=0.85, gid=f"{stream}:{run}",
                        linewidth=1.0 if style == "-" else 1.5)
                values.append(y)
                any_eval |= stream == "eval"

    ax.set_xlabel("training step")
    ax.set_ylabel(_LOG_KEYS.get(key, key.replace("_", " ")))
    ax.set_title(f"{_LOG_KEYS.get(key, key)} during training", loc="left")
    ax.grid(True)
    if values:
        v = np.concatenate(values)
        if (v > 0).all() and v.max() / v.min() > 10:
            ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, f"no {key!r} logged by these runs", ha="center", va="center", transform=ax.transAxes)

    sizes = {_batch_size(d) for d, lab in zip(run_dirs, labels) if drawn[lab]}  # (runs of drawn labels)
    if values and len(sizes) == 1 and None not in sizes:
        bs = sizes.pop()
        top = ax.secondary_xaxis("top", functions=(lambda s: s * bs, lambda i: i / bs))
        top.set_xlabel(f"images seen (batch size {bs})")
        top.xaxis.set_major_formatter(FuncFormatter(_count_formatter))

    handles = [Line2D([], [], color=colors[lab], label=f"{lab} ({_seed_count(drawn[lab])})")
               for lab in order if drawn[lab]]
    if any_eval:
        handles += [Line2D([], [], color="black", linewidth=1.0, label="training batches"),
                    Line2D([], [], color="black", linestyle="--", linewidth=1.5, label="held-out (eval_log)")]
    if handles:
        ax.legend(handles=handles, loc="best")
    _footnote(fig, notes)
    return fig


def _seed_count(seeds: list) -> str:
    """"3 seeds" when the runs name distinct seeds, else "3 runs"."""
    n = len(seeds)
    distinct = None not in seeds and len(set(map(str, seeds))) == n
    return f"{n} {'seed' if distinct else 'run'}{'s' if n != 1 else ''}"


def _seed_of(run_dir: Path):
    """The run's seed: from run.json, else from its result.json (a board entry has only that), else None."""
    seed = _run_json(run_dir).get("seed")
    if seed is None:
        try:
            seed = results_mod.load(run_dir).get("seed")
        except GenbenchError:
            pass
    return seed


def _read_noted(path: Path, run: Path, notes: list[str]) -> list[dict]:
    """read_log, with each warning passed on to the caller and kept for the figure (naming the run's folder)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = read_log(path)
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=4)
        notes.append(str(w.message).replace(f"{run}{os.sep}", f"{run.name}{os.sep}"))
    return rows


def logged_terms(run_dirs: Sequence[Path], keys: Sequence[str] = LOSS_TERMS) -> list[str]:
    """The keys of `keys` (in that order) that at least one run's train_log.jsonl holds a number for."""
    found: set[str] = set()
    for run in run_dirs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GenbenchWarning)  # said when the curves are drawn
            rows = read_log(Path(run) / TRAIN_LOG)
        found |= {k for k in keys if len(_series(rows, k)[0])}
    return [k for k in keys if k in found]


@_styled
def loss_curves(run_dirs: Sequence[Path], keys: Sequence[str] = LOSS_TERMS, *,
                labels: Sequence[str] | None = None, title: str = "Losses during training") -> Figure:
    """One panel per term of `keys` that some run logged (in that order; by default the generator loss, the
    discriminator's or critic's loss and the Wasserstein estimate), each against training step, from the runs'
    train_log.jsonl. One thin line per run; runs with the same label (by default the entry and protocol, so the
    seeds of one entry) share a colour. Losses of different objectives (non-saturating, hinge, Wasserstein) sit
    on different scales: the panels show how each entry's terms move, not which level is better. Raises
    ValueError when no run logged any of `keys`."""
    run_dirs = [Path(d) for d in run_dirs]
    if labels is None:
        labels = [run_label(d) for d in run_dirs]
    elif len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} run directories; give one label per run")
    notes: list[str] = []
    logs = [_read_noted(run / TRAIN_LOG, run, notes) for run in run_dirs]
    present = [k for k in keys if any(len(_series(rows, k)[0]) for rows in logs)]
    if not present:
        raise ValueError(f"no run logged any of {', '.join(keys)} in {TRAIN_LOG} "
                         f"({', '.join(d.name for d in run_dirs) or 'no runs given'})")
    order = list(dict.fromkeys(labels))
    colors = {lab: PALETTE[i % len(PALETTE)] for i, lab in enumerate(order)}

    fig = _figure(1.0 + 1.8 * len(present))
    axes = fig.subplots(len(present), 1, sharex=True, squeeze=False)[:, 0]
    drawn: dict[str, list] = {lab: [] for lab in order}
    has: dict[str, set[str]] = {key: set() for key in present}  # key -> labels with a line in its panel
    for run, lab, rows in zip(run_dirs, labels, logs):
        series = {key: _series(rows, key) for key in present}
        if not any(len(x) for x, _ in series.values()):
            notes.append(f"{lab} ({run.name}): no {', '.join(present)} in {TRAIN_LOG}; not plotted.")
            continue
        drawn[lab].append(_seed_of(run))
        for ax, key in zip(axes, present):
            x, y = series[key]
            if len(x):
                ax.plot(x, y, color=colors[lab], linewidth=0.9, alpha=0.85, gid=f"{key}:{run}")
                has[key].add(lab)
    for ax, key in zip(axes, present):
        ax.set_ylabel(_LOG_KEYS.get(key, key.replace("_", " ")))
        ax.grid(True)
        lacking = [lab for lab in order if drawn[lab] and lab not in has[key]]
        if lacking:
            notes.append(f"{_LOG_KEYS.get(key, key)} ({key}): not logged by {'; '.join(lacking)}.")
    axes[-1].set_xlabel("training step")
    axes[-1].xaxis.set_major_formatter(FuncFormatter(_count_formatter))
    _title(axes[0], title, f"{TRAIN_LOG} of each run (a line per seed). Objectives differ in scale (non-saturating, "
                           "hinge, Wasserstein): compare how the terms move, not their levels across entries.")
    handles = [Line2D([], [], color=colors[lab], label=f"{lab} ({_seed_count(drawn[lab])})")
               for lab in order if drawn[lab]]
    if handles:  # under the bottom panel's x label, where it hides no line (the layout makes room for it)
        below = axes[-1].transAxes + matplotlib.transforms.ScaledTranslation(0, -0.42, fig.dpi_scale_trans)
        axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(0, 0), bbox_transform=below,
                        frameon=False, borderaxespad=0)
    _footnote(fig, notes)
    return fig


def _tile(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """uint8 (N, C, H, W) -> one (rows*(H+pad)+pad, cols*(W+pad)+pad[, 3]) image, white gaps, row-major."""
    n, c, h, w = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = \
            img.transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid


def _read_npz(path: Path, n: int) -> tuple[np.ndarray, int]:
    """The first n images of samples.npz (uint8 (N, C, H, W)) and N."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "images" not in z.files:
                raise GenbenchError(f"{path}: no array named 'images' (found {', '.join(z.files) or 'none'}).")
            images = z["images"]
    except (OSError, ValueError, TypeError) as e:  # TypeError: an .npy named .npz (no `with`)
        raise GenbenchError(f"{path}: not a readable .npz file ({e}).") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise GenbenchError(f"{path}: 'images' must be uint8 (N, C, H, W) with C in {{1, 3}}, found "
                            f"{images.dtype} {images.shape}.")
    return images[:n], len(images)


@_styled
def sample_grid(run_dir: Path, *, n: int = 64) -> Figure | None:
    """The first `n` of the run's saved samples as a square grid (samples.npz, key "images", uint8
    (N, C, H, W)); else the run's samples.png as saved; None if the run saved neither. An unreadable
    samples.npz falls back to samples.png with a warning, or raises GenbenchError if there is none."""
    run_dir = Path(run_dir)
    npz, png = run_dir / "samples.npz", run_dir / "samples.png"
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    grid, caption = None, ""
    if npz.exists():
        try:
            images, total = _read_npz(npz, n)
            grid = _tile(images)
            caption = f"{len(images)} of {total:,} saved samples, {images.shape[3]}×{images.shape[2]} pixels"
        except GenbenchError as e:
            if not png.exists():
                raise
            warnings.warn(f"{e} Showing {png.name} instead.", GenbenchWarning, stacklevel=2)
    if grid is None:
        if not png.exists():
            return None
        grid = matplotlib.image.imread(png)
        caption = f"{png.name} as saved by the run"

    h, w = grid.shape[:2]
    side = 4.0  # inches for the longer side of the grid
    fig = Figure(figsize=(side * w / max(h, w) + 0.2, side * h / max(h, w) + 0.6), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    gray = grid.ndim == 2
    ax.imshow(grid, cmap="gray" if gray else None, vmin=0 if gray else None,
              vmax=(255 if grid.dtype == np.uint8 else 1) if gray else None, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(f"{run_label(run_dir)}\n{caption}", fontsize=8.5)
    return fig


# ------------------------------------------------------------------------------ sample quality over training

class SnapshotKind(NamedTuple):
    """What must agree for two snapshot curves to share an axis: the metric and how its points were made."""
    metric: str  # as in the result's metrics, "fid[lenet-fashion-mnist]"
    n: int | None  # samples scored per snapshot
    reference: str | None
    extractor: str | None


def _number(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _scalar(v):
    return v if v is None or isinstance(v, (str, int, float)) and not isinstance(v, bool) else str(v)


def _snapshots(result: dict) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]] | None:
    """(the `snapshots` section, metric -> (steps, values) sorted by step) of a result; None where it has none.
    Points without a numeric step are skipped; a missing or null value is NaN. A section without a curve (a
    list) warns and counts as none."""
    section = result.get("snapshots")
    if section is None:
        return None
    curve = section.get("curve") if isinstance(section, dict) else None
    if not isinstance(curve, list):
        warnings.warn(f"run {result.get('run_id')}: its snapshots section holds no curve (a list of points); left "
                      "out of the plot of sample quality over training.", GenbenchWarning, stacklevel=3)
        return None
    points = [p for p in curve if isinstance(p, dict) and math.isfinite(_number(p.get("step")))]
    names = section.get("metrics")
    if not (isinstance(names, list) and names and all(isinstance(m, str) for m in names)):
        names = list(dict.fromkeys(k for p in points for k in p if k != "step"))
    series = {}
    for name in names:
        xy = np.array(sorted((_number(p["step"]), _number(p.get(name))) for p in points), float).reshape(-1, 2)
        series[name] = (xy[:, 0], xy[:, 1])
    return section, series


def _kinds(section: dict, series: dict) -> list[SnapshotKind]:
    return [SnapshotKind(name, _scalar(section.get("n")), _scalar(section.get("reference")),
                         _scalar(section.get("extractor"))) for name in series]


def _as_result(r) -> dict:
    return r.result if isinstance(r, entries.LoadedResult) else r


def snapshot_kinds(results: Sequence) -> list[SnapshotKind]:
    """The distinct snapshot curves of `results` (result dicts or `entries.LoadedResult`s), in order of first
    appearance; results without a `snapshots` section add none."""
    found: dict[SnapshotKind, None] = {}
    for r in map(_as_result, results):
        parsed = _snapshots(r)
        if parsed is not None:
            found.update(dict.fromkeys(_kinds(*parsed)))
    return list(found)


@_styled
def snapshot_curve(results: Sequence, metric: str | SnapshotKind | None = None) -> Figure:
    """Sample quality over training: `metric` of the results' `snapshots` sections (scored after training from
    generator weights kept every so many steps, with fewer samples than the headline metrics) against training
    step. One line per row (an entry under one protocol version); the seeds of a row as their mean, with a band
    of one standard deviation (ddof = 1) at the steps where several seeds have a value. The sample count,
    reference and extractor are stated on the plot, with the headline metrics' sample count where it differs.

    `results` are result dicts or `entries.LoadedResult`s; those without a `snapshots` section (or without
    `metric` in it) are left out. `metric`: a metric name, a `SnapshotKind` (the curves made that way only), or
    None when the results have curves of one metric only. Raises ValueError when no result has the curve, when
    the curves of `metric` were made differently (filter first: `snapshot_kinds`), or when the results mix
    datasets or disagree on the metric's direction."""
    parsed = [(r, p) for r in map(_as_result, results) if (p := _snapshots(r)) is not None]
    kinds = list(dict.fromkeys(k for _, p in parsed for k in _kinds(*p)))
    if not kinds:
        raise ValueError("no result has a snapshots section (sample quality over training)")
    if metric is None:
        names = list(dict.fromkeys(k.metric for k in kinds))
        if len(names) > 1:
            raise ValueError(f"the results have snapshot curves of {', '.join(names)}; name the one to plot")
        metric = names[0]
    if isinstance(metric, SnapshotKind):
        wanted, name = [metric], metric.metric
    else:
        name = metric
        wanted = [k for k in kinds if k.metric == name]
    if not any(k in kinds for k in wanted):
        raise ValueError(f"no result has a snapshot curve of {metric!r}; curves found: " +
                         ", ".join(f"{k.metric} (n = {k.n})" for k in kinds))
    if len(wanted) > 1:
        differ = [f"{f} ({', '.join(sorted({str(getattr(k, f)) for k in wanted}))})" for f in SnapshotKind._fields[1:]
                  if len({getattr(k, f) for k in wanted}) > 1]
        raise ValueError(f"the snapshot curves of {name!r} were made differently: they differ in "
                         f"{'; '.join(differ)}. Their points cannot share one axis; pass one of snapshot_kinds(...)"
                         " to plot the curves made one way.")
    (kind,) = wanted
    chosen = [(r, p[0], p[1][name]) for r, p in parsed if kind in _kinds(*p)]

    datasets = sorted({entries.dataset_of(r) for r, _, _ in chosen})
    if len(datasets) > 1:
        raise ValueError(f"the snapshot curves of {name!r} come from several datasets ({', '.join(datasets)}); "
                         "plot one dataset at a time.")
    records = [r["metrics"].get(name) for r, _, _ in chosen if isinstance(r.get("metrics"), dict)]
    records = [rec for rec in records if isinstance(rec, dict)]
    directions = {rec["higher_is_better"] for rec in records if isinstance(rec.get("higher_is_better"), bool)}
    if len(directions) > 1:
        raise ValueError(f"the results disagree on whether {name} is better higher or lower.")
    hib = directions.pop() if directions else None
    units = sorted({rec["unit"] for rec in records if isinstance(rec.get("unit"), str)})
    headline_n = sorted({rec["n"] for rec in records if isinstance(rec.get("n"), int)})
    every = sorted({s.get("every") for _, s, _ in chosen if isinstance(s.get("every"), int)})

    rows: dict[str, list] = {}  # row -> [(seed, steps, values)]
    for r, _, (x, y) in chosen:
        rows.setdefault(entries.row_of(r), []).append((r.get("seed"), x, y))

    n_text = f"{kind.n:,}" if isinstance(kind.n, int) else str(kind.n)
    fig = _figure(4.4)
    ax = fig.add_subplot()
    details = [f"n = {n_text} samples per snapshot", *([f"reference {kind.reference}"] if kind.reference else []),
               *([f"extractor {kind.extractor}"] if kind.extractor else []),
               *([f"a snapshot every {every[0]:,} steps"] if len(every) == 1 else [])]
    _title(ax, f"{metric_label(name)} over training, {datasets[0]}", " · ".join(details))
    ax.set_xlabel("training step")
    ax.set_ylabel(metric_label(name, unit=units[0] if len(units) == 1 else None) + f", n = {n_text}" +
                  _DIRECTION[hib].replace(" (", "\n(", 1))
    ax.xaxis.set_major_formatter(FuncFormatter(_count_formatter))

    notes, handles, banded = [], [], False
    for i, (row, curves) in enumerate(rows.items()):
        color = PALETTE[i % len(PALETTE)]
        steps, mean, std, count = _over_seeds(curves)
        missing = sum(int((~np.isfinite(y)).sum()) for _, _, y in curves)
        if missing:
            notes.append(f"{row}: {missing} snapshot value{'s' if missing != 1 else ''} missing"
                         f"{' (left out)' if len(steps) else '; not plotted'}.")
        if not len(steps):
            continue
        if len(curves) > 1 and (count < len(curves)).any():
            notes.append(f"{row}: not every seed has a value at every step; the mean at a step is over the seeds "
                         "that have one.")
        ax.plot(steps, mean, color=color, marker="o", markersize=3, gid=f"snapshots:{row}")
        multi = count > 1
        if multi.any():
            banded = True
            ax.fill_between(steps, mean - std, mean + std, where=multi, color=color, alpha=0.2, linewidth=0,
                            gid=f"band:{row}")
        handles.append(Line2D([], [], color=color, marker="o", markersize=3,
                              label=f"{row} ({_seed_count([seed for seed, _, _ in curves])})"))
    ax.grid(True)
    ax.set_axisbelow(True)
    if handles:
        ax.legend(handles=handles, loc="best")
    else:
        ax.text(0.5, 0.5, "no snapshot values to plot", ha="center", va="center", transform=ax.transAxes)
    if banded:
        notes.insert(0, "Lines: mean over seeds; bands: one standard deviation across seeds (ddof = 1).")
    more = [h for h in headline_n if h != kind.n]
    notes.append(f"Each point scores n = {n_text} samples of the generator at that step (weights kept during "
                 "training, scored after it)" +
                 (f", fewer than the headline metrics in the tables (n = {', '.join(f'{h:,}' for h in more)}): "
                  "follow the trend here, and do not compare these values with the tables'." if more else "."))
    _footnote(fig, notes)
    return fig


def _over_seeds(curves: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, std with ddof = 1 (NaN below two values), count) over the seeds' curves, at every step
    where at least one seed has a finite value."""
    steps = np.unique(np.concatenate([x[np.isfinite(y)] for _, x, y in curves]))
    grid = np.full((len(curves), len(steps)), np.nan)
    for i, (_, x, y) in enumerate(curves):
        ok = np.isfinite(y)
        grid[i, np.searchsorted(steps, x[ok])] = y[ok]
    have = np.isfinite(grid)
    count = have.sum(axis=0)
    total = np.where(have, grid, 0.0).sum(axis=0)
    mean = total / np.maximum(count, 1)
    dev = np.where(have, grid - mean, 0.0)
    std = np.where(count > 1, np.sqrt((dev ** 2).sum(axis=0) / np.maximum(count - 1, 1)), np.nan)
    return steps, mean, std, count


@_styled
def sampler_steps_plot(section: dict, *, title: str = "Sample quality against sampling steps") -> Figure:
    """One line: the section's metric at each number of sampling steps (log axis), each point labelled with its
    sampling speed; the sample count, reference, extractor and sampler stated under the title."""
    metric = section["metrics"][0]
    curve = sorted(section["curve"], key=lambda p: p["steps"])
    x = np.array([p["steps"] for p in curve], dtype=float)
    y = np.array([_number(p[metric]) for p in curve])
    fig = _figure(3.6)
    ax = fig.add_subplot()
    ax.plot(x, y, marker="o", color=PALETTE[0])
    for xi, yi, p in zip(x, y, curve):
        ax.annotate(f"{p['images_per_s']:.3g} img/s", (xi, yi), xytext=(4, 6), textcoords="offset points",
                    fontsize=7, color="#444444")
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{int(v)}" for v in x])
    ax.minorticks_off()
    ax.set_xlabel("sampling steps")
    ax.set_ylabel(metric_label(metric, higher_is_better=False))
    sampler = ", ".join(f"{k} {v}" for k, v in section.get("sampler", {}).items())
    _title(ax, title, f"n = {section['n']} samples per point against {section['reference']} through "
                      f"{section['extractor']}; {sampler}; speed on {section.get('device', 'the device')}")
    return fig


@_styled
def truncation_plot(section: dict, *, title: str = "FID against IS over the truncation threshold") -> Figure:
    """BigGAN's Fig. 4: one point per truncation threshold, IS across and FID up, each labelled with its threshold
    (the untruncated samples as "none"), joined from the widest threshold to the narrowest."""
    fid, inception = (next(m for m in section["metrics"] if m.partition("[")[0] == base) for base in ("fid", "is"))
    curve = sorted(section["curve"], key=lambda p: -math.inf if p["truncation"] is None else -p["truncation"])
    x = np.array([_number(p[inception]) for p in curve])
    y = np.array([_number(p[fid]) for p in curve])
    fig = _figure(3.6)
    ax = fig.add_subplot()
    ax.plot(x, y, marker="o", color=PALETTE[0])
    for xi, yi, p in zip(x, y, curve):
        label = "none" if p["truncation"] is None else f"{p['truncation']:g}"
        ax.annotate(label, (xi, yi), xytext=(4, 6), textcoords="offset points", fontsize=7, color="#444444")
    ax.set_xlabel(metric_label(inception, higher_is_better=True))
    ax.set_ylabel(metric_label(fid, higher_is_better=False))
    _title(ax, title, f"n = {section['n']} samples per point against {section['reference']} through "
                      f"{section['extractor']}; each point labelled with its truncation threshold")
    return fig


def draw_runs(loaded: Sequence, out_dir: Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """The plots of `genbench report --plots DIR`: per dataset, sample quality over training (one plot per way
    the snapshot curves were made) and the logged loss terms of the runs whose train_log.jsonl lies beside their
    result. `loaded`: `entries.LoadedResult`s. Returns the files written; nothing is drawn for results that hold
    neither."""
    from genbench.report.plots import save, slug

    written: list[Path] = []
    for dataset in dict.fromkeys(entries.dataset_of(item.result) for item in loaded):
        here = [item for item in loaded if entries.dataset_of(item.result) == dataset]
        for kind in snapshot_kinds(here):
            stem = out_dir / f"{slug(dataset)}--{slug(kind.metric)}--over-training"
            written += save(snapshot_curve(here, kind), stem, formats)
        for item in here:
            if "sampler_steps" in item.result:
                label = item.result.get("run_id", "run")
                written += save(sampler_steps_plot(item.result["sampler_steps"]),
                                out_dir / f"{slug(dataset)}--{slug(label)}--sampler-steps", formats)
            if "truncation_curve" in item.result:
                label = item.result.get("run_id", "run")
                written += save(truncation_plot(item.result["truncation_curve"]),
                                out_dir / f"{slug(dataset)}--{slug(label)}--truncation", formats)
        logs = [item.run_dir for item in here if (item.run_dir / "train_log.jsonl").is_file()]
        if logs and logged_terms(logs):
            written += save(loss_curves(logs, title=f"Losses during training, {dataset}"),
                            out_dir / f"{slug(dataset)}--training-losses", formats)
    return written
