"""Plots of result tables, drawn from the long table (`entries.long_table`): one value per entry and metric.

    bar_chart(frame, column)              one bar per row: mean over seeds, std error bars, best highlighted
    quality_vs_cost(frame, column, cost)  a metric against training time or parameter count, with the Pareto front
    pareto_front(costs, values, ...)      indices of the non-dominated points, sorted by cost
    metric_label(column, ...)             a readable axis label for a metric column
    save(fig, path_stem)                  PNG and SVG, written atomically; closes the figure

Plots over training and of run directories (training and loss curves, the snapshot curve, sample grids) are
in `run_plots`; they share this module's style and `save`, and stay importable from here.

Figures are plain `matplotlib.figure.Figure` objects: nothing here imports pyplot or touches the global
backend, so plotting works headless and never opens a window. A value that is missing (None/NaN) is left out
with a note on the figure, never drawn as 0. Colours are the Okabe-Ito palette (safe for colour-blind
readers); labels name metrics readably, with their unit and direction ("FID [lenet-fashion-mnist] (↓ lower is
better)"), never by an internal key alone.
"""

from __future__ import annotations

import math
import re
import sys
import textwrap
from functools import wraps
from pathlib import Path
from typing import Sequence

import matplotlib
import matplotlib.transforms
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from genbench.files import atomic_write
from genbench.metrics.disentanglement import SCORE_NAMES
from genbench.report import entries

# ------------------------------------------------------------------------------------------------ style

# Okabe & Ito (2008), "Color universal design": distinguishable under the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
BAR, BEST, REFERENCE, FRONT = "#0072B2", "#D55E00", "#999999", "#D55E00"
WIDTH = 6.4  # inches; every figure has this width so reports line up
DPI = 150
STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 8, "legend.framealpha": 0.9, "axes.spines.top": False, "axes.spines.right": False,
    "axes.grid": False, "grid.alpha": 0.3, "grid.linewidth": 0.6, "lines.linewidth": 1.3,
    "svg.hashsalt": "genbench",  # stable SVG ids: the same figure gives the same file
    "svg.fonttype": "none",  # text stays text in SVG (searchable, small)
}
NOTE_SIZE = 7

# the costs an entry is plotted against (the sampling time per image is 1 / the result's sample_images_per_s)
COSTS = {"train_seconds": "training time", "parameters": "parameters", "sample_seconds": "sampling time"}
TIMED = ("train_seconds", "sample_seconds")  # measured on a device, which the axis names

# base metric name -> readable name. Units come from the records ("unit"), falling back to _UNITS.
_NAMES = {"fid": "FID", "kid": "KID", "is": "IS", "precision": "Precision", "recall": "Recall",
          "density": "Density", "coverage": "Coverage", "classes_covered": "Classes covered", "class_kl": "Class KL",
          "modes_covered": "Modes covered", "mode_kl": "Mode KL", "bpd": "NLL", "bpd_iwae": "NLL, IWAE bound",
          "bpd_ode": "NLL, probability-flow ODE", "bpd_ais": "NLL, AIS estimate",
          "log_px_gauss_ais": "log p(x), Gaussian decoder, AIS", "accuracy": "Test accuracy",
          "bpd_conditional": "NLL given the class", "class_accuracy": "Class accuracy", "fid_intra": "Intra-FID",
          "psnr": "PSNR", "ssim": "SSIM", "independent_pixel_bpd": "NLL of independent pixels", **SCORE_NAMES}
_UNITS = {"bpd": "bits/dim", "bpd_iwae": "bits/dim", "bpd_ode": "bits/dim", "bpd_ais": "bits/dim",
          "log_px_gauss_ais": "nats/image",
          "bpd_conditional": "bits/dim", "psnr": "dB", "independent_pixel_bpd": "bits/dim", "class_kl": "nats",
          "mode_kl": "nats"}


def slug(text: str) -> str:
    """A file-name part for a plot: lower-case letters and digits, runs of anything else as one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _styled(fn):
    @wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)
    return wrapper


def _figure(height: float, width: float = WIDTH) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _title(ax, head: str, details: str = "") -> None:
    """The title at the figure's left edge, with a line of details (how the numbers were made) under it in
    smaller grey type, wrapped to the figure's width."""
    lines = textwrap.wrap(details, 110)
    where = dict(xy=(0.01, 1), xycoords=("figure fraction", "axes fraction"), textcoords="offset points",
                 ha="left", va="bottom")
    if lines:
        ax.annotate("\n".join(lines), xytext=(0, 6), fontsize=NOTE_SIZE + 0.5, color="#444444", **where)
    ax.annotate(head, xytext=(0, 8 + 11 * len(lines)), fontsize=STYLE["axes.titlesize"], **where)


def _footnote(fig: Figure, notes: Sequence[str]) -> None:
    """Notes under the plot (what was left out and why); the layout makes room for them."""
    width = round(120 * fig.get_figwidth() / WIDTH)  # characters of NOTE_SIZE text across the figure
    lines = [line for note in notes for line in textwrap.wrap(note, width, subsequent_indent="  ")]
    if lines:
        fig.supxlabel("\n".join(lines), x=0.01, ha="left", fontsize=NOTE_SIZE, color="#444444", linespacing=1.35)


# ----------------------------------------------------------------------------------------------- labels

def metric_label(column: str, *, unit: str | None = None, higher_is_better: bool | None = None) -> str:
    """A readable axis label: "fid[lenet-fashion-mnist]" -> "FID [lenet-fashion-mnist] (↓ lower is better)",
    "psnr" with unit dB -> "PSNR, dB (↑ higher is better)"."""
    base, _, rest = column.partition("[")
    name = _NAMES.get(base, base.replace("_", " "))
    if rest:
        name += f" [{rest.rstrip(']')}]"
    unit = unit or _UNITS.get(base)
    if unit:
        name += f", {unit}"
    if higher_is_better is not None:
        name += " (↑ higher is better)" if higher_is_better else " (↓ lower is better)"
    return name


def _column_details(sel: pd.DataFrame) -> str:
    """How the column's numbers were made, in one line: sample count, reference, extractor, ..."""
    first = sel.iloc[0]
    parts = []
    for field in entries.COLUMN_FIELDS:
        v = first[field]
        if _missing(v) or isinstance(v, (tuple, list, dict)):
            continue
        if field == "n":
            parts.append(f"n = {int(v):,}")
        elif field == "extractor_sha256":
            parts.append(f"weights {str(v).removeprefix('sha256:')[:8]}")
        elif field == "subset_size":
            parts.append(f"subsets of {int(v):,}")
        else:
            parts.append(f"{field} {v}")
    return " · ".join(parts)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _fmt(v: float, sig: int = 4) -> str:
    """`sig` significant digits without an exponent for ordinary magnitudes: 103.0, 0.7264, 1,825,634."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    mag = math.floor(math.log10(abs(v)))
    if -3 <= mag < 7:
        return f"{v:,.{max(sig - 1 - mag, 0)}f}"
    return f"{v:.{sig - 1}e}"


def _count(n: int, section: str, seeded: bool) -> str:
    if section == "reference":
        return "reference"
    word = "seed" if seeded else "run"
    return f"{n} {word}{'s' if n != 1 else ''}"


# ----------------------------------------------------------------------------------- one column, by row

def _select(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """The records of `column`, checked to be comparable: one column key, one dataset, one direction."""
    sel = frame[frame["column"] == column]
    if sel.empty:
        known = ", ".join(sorted(map(str, frame["column"].unique()))) or "none"
        raise ValueError(f"no records for column {column!r}; columns in this frame: {known}")
    keys = [entries.column_key(column, dict(zip(entries.COLUMN_FIELDS, vals)))
            for vals in sel[list(entries.COLUMN_FIELDS)].itertuples(index=False, name=None)]
    differ = {field: sorted({str(k[i]) for k in keys}) for i, field in enumerate(entries.COLUMN_FIELDS, start=1)
              if len({k[i] for k in keys}) > 1}
    if differ:
        raise ValueError(f"the records of column {column!r} were made differently: they differ in "
                         + "; ".join(f"{f} ({', '.join(v)})" for f, v in differ.items()) + ". Their numbers cannot "
                         f"share one axis; filter the frame to one kind first, e.g. frame[frame[{next(iter(differ))!r}]"
                         " == ...].")
    for field, what in (("dataset", "datasets"), ("higher_is_better", "directions (higher_is_better)")):
        values = sorted(map(str, sel[field].unique()))
        if len(values) > 1:
            raise ValueError(f"the records of column {column!r} mix {what}: {', '.join(values)}; filter the "
                             f"frame to one first, e.g. frame[frame[{field!r}] == ...].")
    return sel


def _aggregate(sel: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One line per row: mean and std (ddof=1) of the values over seeds, the seed count, mean costs; and notes
    about values left out."""
    out, notes = [], []
    for row, g in sel.groupby("row", sort=False):
        values = g["value"].to_numpy(float)
        finite = np.isfinite(values)
        seeds = g["seed"].dropna()
        if seeds.duplicated().any():
            notes.append(f"{row}: seed(s) {', '.join(map(str, sorted(set(seeds[seeds.duplicated()]))))} appear "
                         "more than once (the same run loaded twice?); each copy counts.")
        if not finite.all():
            notes.append(f"{row}: {(~finite).sum()} of {len(values)} runs have no value"
                         f"{' (left out)' if finite.any() else '; not plotted'}.")
        estimators = sorted({str(e) for e in g["estimator"] if not _missing(e)})
        out.append({
            "row": row, "entry": g["entry"].iloc[0], "section": g["section"].iloc[0], "kind": g["kind"].iloc[0],
            "mean": values[finite].mean() if finite.any() else math.nan,
            "std": values[finite].std(ddof=1) if finite.sum() > 1 else math.nan,
            "seeds": int(finite.sum()), "seeded": g["seed"].notna().all(),
            "bound": any(e in entries.BOUND_ESTIMATORS for e in estimators), "estimator": ", ".join(estimators),
            # times: the fastest seed, since sharing the machine only ever slows a run (timeit's rule)
            **{c: (_min if c in TIMED else _mean)(g[c]) for c in COSTS if c in g},
            "sample_seconds": _min(1.0 / pd.to_numeric(g["sample_images_per_s"], errors="coerce"))
            if "sample_images_per_s" in g else math.nan,
            "devices": sorted({str(d) for d in g["device"] if not _missing(d)}),
        })
    return pd.DataFrame(out), notes


def _unit(sel: pd.DataFrame) -> str | None:
    units = {str(u) for u in sel["unit"] if not _missing(u)}
    return units.pop() if len(units) == 1 else None


def _finite(s: pd.Series) -> np.ndarray:
    v = pd.to_numeric(s, errors="coerce").to_numpy(float)
    return v[np.isfinite(v)]


def _min(s: pd.Series) -> float:
    v = _finite(s)
    return float(v.min()) if len(v) else math.nan


def _mean(s: pd.Series) -> float:
    v = _finite(s)
    return float(v.mean()) if len(v) else math.nan


def _best(means: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Mask of the best values (all of them when tied)."""
    target = np.nanmax(means) if higher_is_better else np.nanmin(means)
    return np.isclose(means, target, rtol=1e-12, atol=0)


@_styled
def bar_chart(frame: pd.DataFrame, column: str) -> Figure:
    """One horizontal bar per row of the long table for metric column `column`: the mean over seeds, error
    bars of one standard deviation (ddof=1) where there is more than one seed, the seed count beside each bar,
    the best row highlighted and listed first. Reference rows are grey, likelihood bounds hatched. Raises
    ValueError if the column's records differ in how they were made (n, reference, extractor, ...)."""
    sel = _select(frame, column)
    hib = bool(sel["higher_is_better"].iloc[0])
    agg, notes = _aggregate(sel)
    shown = agg[agg["seeds"] > 0].copy()
    shown = shown.sort_values("mean", ascending=not hib, kind="stable").reset_index(drop=True)
    label = metric_label(column, unit=_unit(sel), higher_is_better=hib)

    fig = _figure(1.3 + 0.45 * max(len(shown), 1))
    ax = fig.add_subplot()
    _title(ax, f"{metric_label(column)} on {sel['dataset'].iloc[0]}", _column_details(sel))
    ax.set_xlabel(label)
    if shown.empty:
        ax.text(0.5, 0.5, "no values to plot", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        _footnote(fig, notes)
        return fig

    y = np.arange(len(shown))
    means, stds = shown["mean"].to_numpy(float), shown["std"].to_numpy(float)
    is_ref = (shown["section"] == "reference").to_numpy()
    best = np.zeros(len(shown), bool)
    if (~is_ref).sum() > 1:  # "best" of one means nothing
        best[~is_ref] = _best(means[~is_ref], hib)
    colors = [REFERENCE if r else BEST if b else BAR for r, b in zip(is_ref, best)]
    bars = ax.barh(y, means, height=0.6, color=colors, edgecolor="white", linewidth=0.5, zorder=2)
    for bar, bound in zip(bars, shown["bound"]):
        if bound:
            bar.set_hatch("///")
    multi = np.isfinite(stds)
    if multi.any():
        ax.errorbar(means[multi], y[multi], xerr=stds[multi], fmt="none", ecolor="black", elinewidth=1,
                    capsize=3, zorder=3)
    ax.set_yticks(y, [r.replace(" · ", "\n") for r in shown["row"]])
    ax.invert_yaxis()  # best on top
    ax.axvline(0, color="black", linewidth=0.8)
    ax.grid(axis="x")
    ax.set_axisbelow(True)

    # the numbers, in a column right of the plot: "103.0 ± 2.1 · 3 seeds · best"
    trans = matplotlib.transforms.blended_transform_factory(ax.transAxes, ax.transData)
    for i, r in shown.iterrows():
        text = _fmt(r["mean"]) + (f" ± {_fmt(r['std'], 2)}" if np.isfinite(r["std"]) else "")
        text += f" · {_count(r['seeds'], r['section'], r['seeded'])}" + (" · best" if best[i] else "")
        ax.text(1.02, i, text, transform=trans, va="center", ha="left", fontsize=8,
                fontweight="bold" if best[i] else "normal", clip_on=False)

    handles = []
    if is_ref.any():
        handles.append(Patch(facecolor=REFERENCE, label="reference (not a model)"))
    if shown["bound"].any():
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                             label="bound (" + ", ".join(sorted(set(e for e, b in zip(shown["estimator"],
                                                                               shown["bound"]) if b))) +
                                   "): the true NLL is lower"))
    if handles:  # under the x label, where it hides no bar (an axes legend, so the layout makes room for it)
        below = ax.transAxes + matplotlib.transforms.ScaledTranslation(0, -0.42, fig.dpi_scale_trans)
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, 0), bbox_transform=below,
                  ncols=len(handles), frameon=False, borderaxespad=0)
    if multi.any():
        notes.insert(0, "Error bars: one standard deviation across seeds (ddof = 1).")
    _footnote(fig, notes)
    return fig


# ------------------------------------------------------------------------------------------- Pareto front

def pareto_front(costs: np.ndarray, values: np.ndarray, *, higher_is_better: bool) -> np.ndarray:
    """Indices of the points that no other point dominates, sorted by cost (ties: best value first, then index).

    A point dominates another when it costs no more and scores no worse, and is strictly better in one of the
    two. Identical points do not dominate each other, so both stay on the front. Points with a NaN cost or
    value are never on it."""
    c = np.asarray(costs, float)
    v = np.asarray(values, float)
    if c.shape != v.shape or c.ndim != 1:
        raise ValueError(f"costs and values must be 1-D arrays of one length, got {c.shape} and {v.shape}")
    if not higher_is_better:
        v = -v  # from here on, higher is better
    ok = np.isfinite(c) & np.isfinite(v)
    idx = np.flatnonzero(ok)
    cc, vv = c[idx], v[idx]
    # dominated[i]: some j with c_j <= c_i and v_j >= v_i, strictly better in one of them
    no_worse = (cc[None, :] <= cc[:, None]) & (vv[None, :] >= vv[:, None])
    strictly = (cc[None, :] < cc[:, None]) | (vv[None, :] > vv[:, None])
    front = idx[~(no_worse & strictly).any(axis=1)]
    return front[np.lexsort((front, -v[front], c[front]))]


def _cost_axis(cost: str, values: np.ndarray) -> tuple[float, str]:
    """(divisor, axis label) for a cost: training time in s, min or h depending on its range; sampling time
    per image in ms."""
    if cost == "parameters":
        return 1.0, "parameters"
    if cost == "sample_seconds":
        return 1e-3, "sampling time per image (ms)"
    top = np.nanmax(values) if np.isfinite(values).any() else 0
    if top >= 2 * 3600:
        return 3600.0, "training time (hours)"
    if top >= 120:
        return 60.0, "training time (minutes)"
    return 1.0, "training time (seconds)"


def _count_formatter(v: float, _pos=None) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:g}{suffix}"
    return f"{v:g}"


@_styled
def quality_vs_cost(frame: pd.DataFrame, column: str, cost: str) -> Figure:
    """Metric `column` (mean over seeds, std error bars) against `cost` (a key of COSTS: training time,
    parameters or sampling time per image; times the fastest seed's, since a busy machine only slows a run,
    parameters the mean), one point per row, labelled; the Pareto front
    (nothing both cheaper and better) as a step line. The cost axis is logarithmic where the costs span more
    than 10x. Rows without the cost (submitted samples) are named in a note, not drawn at 0; reference values
    (e.g. independent pixels) are horizontal lines."""
    return _quality_vs_costs(frame, column, (cost,))


@_styled
def quality_vs_costs(frame: pd.DataFrame, column: str, costs: Sequence[str] = ("train_seconds", "sample_seconds")
                     ) -> Figure:
    """quality_vs_cost with one panel per cost side by side, sharing the metric axis: by default what an
    entry cost to train and what each sample costs to draw, the two costs a family trades quality against."""
    return _quality_vs_costs(frame, column, tuple(costs))


def _quality_vs_costs(frame: pd.DataFrame, column: str, costs: tuple[str, ...]) -> Figure:
    for cost in costs:
        if cost not in COSTS:
            raise ValueError(f"cost must be one of {', '.join(COSTS)}, got {cost!r}")
    sel = _select(frame, column)
    hib = bool(sel["higher_is_better"].iloc[0])
    agg, notes = _aggregate(sel)
    refs = agg[(agg["section"] == "reference") & (agg["seeds"] > 0)]
    models = agg[(agg["section"] != "reference") & (agg["seeds"] > 0)]
    # side by side, each panel as wide as a one-cost figure: every figure but this one has WIDTH
    fig = _figure(4.2) if len(costs) == 1 else _figure(5.6, width=WIDTH * len(costs) * 0.8)
    axes = fig.subplots(1, len(costs), sharey=True, squeeze=False)[0]
    against = " and ".join(COSTS[c] for c in costs)
    _title(axes[0], f"{metric_label(column)} against {against}, {sel['dataset'].iloc[0]}", _column_details(sel))
    axes[0].set_ylabel(metric_label(column, unit=_unit(sel), higher_is_better=hib))
    handles = {}
    for ax, cost in zip(axes, costs):
        # many entries side by side: only each panel's front is labelled, or the names would cover the points
        for h in _cost_panel(ax, models, refs, cost, hib, notes, label_all=len(costs) == 1):
            handles.setdefault(h.get_label(), h)
    if len(costs) == 1:
        axes[0].legend(handles=list(handles.values()), loc="best")
    else:
        axes[-1].legend(handles=list(handles.values()), loc="best")
        notes.append("Labelled: the entries on each panel's Pareto front.")
    _footnote(fig, list(dict.fromkeys(notes)))
    return fig


def _cost_panel(ax, models: pd.DataFrame, refs: pd.DataFrame, cost: str, hib: bool, notes: list[str], *,
                label_all: bool = True) -> list:
    """One quality-against-cost panel; its legend handles. Notes for what it leaves out go into `notes`.
    label_all: name every point (else only those on the front)."""
    has_cost = np.isfinite(models[cost].to_numpy(float)) & (models[cost].to_numpy(float) > 0)
    missing = models[~has_cost]
    pts = models[has_cost].reset_index(drop=True)
    if len(missing):
        notes.append(f"Not plotted, no {COSTS[cost]} recorded: " +
                     "; ".join(f"{r} ({k})" for r, k in zip(missing["row"], missing["kind"])) + ".")
    x_all = pts[cost].to_numpy(float)
    div, xlabel = _cost_axis(cost, x_all)
    x, y, std = x_all / div, pts["mean"].to_numpy(float), pts["std"].to_numpy(float)

    devices = sorted({d for ds in pts["devices"] for d in ds})
    if cost in TIMED and len(devices) == 1:
        xlabel += f" on {devices[0]}"
    elif cost in TIMED and len(devices) > 1:
        xlabel += " (devices differ, see note)"
        on = {d: [n for n, ds in zip(_short_labels(pts), pts["devices"]) if d in ds] for d in devices}
        notes.append("Times come from different devices and are not directly comparable: " +
                     "; ".join(f"{d}: {', '.join(names)}" for d, names in on.items()) + ".")
    ax.set_xlabel(xlabel)
    if len(x) and x.min() > 0 and x.max() / x.min() > 10:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # 10, 20, 50, 100 rather than 10^1, 10^2
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(_count_formatter if cost == "parameters" else
                                               lambda v, _pos=None: f"{v:g}"))
    if len(x):  # limits from the data, with room for the labels right of the points (matplotlib's autoscaling
        # warns about a singular range while the first points are drawn: one cost, or one point on a log axis)
        lo, hi = x.min(), x.max()
        if ax.get_xscale() == "log":
            ax.set_xlim(lo / 1.5, hi * 2.0)
        else:
            pad = 0.15 * (hi - lo) if hi > lo else 0.2 * abs(lo) or 1.0
            ax.set_xlim(lo - pad, hi + pad)

    handles = []
    if len(x):
        front = pareto_front(x, y, higher_is_better=hib)
        on_front = np.isin(np.arange(len(x)), front)
        multi = np.isfinite(std)
        if multi.any():
            ax.errorbar(x[multi], y[multi], yerr=std[multi], fmt="none", ecolor="#555555", elinewidth=0.9,
                        capsize=2.5, zorder=2)
        ax.scatter(x[~on_front], y[~on_front], s=30, color=BAR, zorder=3)
        ax.scatter(x[on_front], y[on_front], s=42, color=FRONT, zorder=4)
        if len(front) > 1:
            ax.step(x[front], y[front], where="post", color=FRONT, linewidth=1.2, alpha=0.8, zorder=1)
        handles.append(Line2D([], [], color=FRONT, marker="o", label="Pareto front: nothing is both cheaper "
                                                                     "and better"))
        if (~on_front).any():
            handles.append(Line2D([], [], color=BAR, marker="o", linestyle="none", label="dominated"))
        names = _short_labels(pts)
        near = 0.04 * (np.nanmax(y) - np.nanmin(y))  # front neighbours closer than this would overprint
        dy, last = 4, None
        for i in range(len(x)) if label_all else front:
            # front labels alone: below the front where the previous label is above it and close
            dy = -11 if not label_all and last is not None and abs(y[i] - last) < near and dy > 0 else 4
            last = y[i]
            label = ax.annotate(names[i], (x[i], y[i]), xytext=(5, dy), textcoords="offset points", fontsize=7.5)
            label.set_in_layout(label_all)  # side by side, labels must not squeeze the panels
        if multi.any():
            notes.insert(0, "Points: mean over seeds; error bars: one standard deviation (ddof = 1)" +
                         ("; times: the fastest seed's (sharing the machine only slows a run)." if cost in TIMED
                          else "."))
        if pts["bound"].any():
            notes.append("Bounds, not exact values (the true NLL is lower): " +
                         "; ".join(f"{n} ({e})" for n, e, b in zip(names, pts["estimator"], pts["bound"]) if b) + ".")
    else:
        ax.text(0.5, 0.5, f"no entry has both a value and a {COSTS[cost]}", ha="center", va="center",
                transform=ax.transAxes)
    for (_, r), color in zip(refs.iterrows(), ("#777777", "#444444", "#AAAAAA")):
        ax.axhline(r["mean"], color=color, linestyle=":", linewidth=1.2, zorder=1)
        handles.append(Line2D([], [], color=color, linestyle=":", label=f"{r['entry']} (reference), "
                                                                        f"{_fmt(r['mean'])}"))
    ax.grid(True, which="major")
    ax.set_axisbelow(True)
    return handles


def _short_labels(rows: pd.DataFrame) -> list[str]:
    """Entry names where they are unambiguous, the full row ("entry · protocol@version") where not."""
    counts = rows["entry"].value_counts()
    return [e if counts[e] == 1 else r for e, r in zip(rows["entry"], rows["row"])]


# ----------------------------------------------------------------------------------------------- saving

_METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {}}


def save(fig: Figure, path_stem: Path, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write `fig` to PATH_STEM.png, PATH_STEM.svg, ... (each atomically: a crash leaves the old file or the
    new one, never half of it), close it, and return the paths. The same figure gives byte-identical files."""
    stem = Path(path_stem)
    paths = []
    try:
        formats = [fmt.lower().lstrip(".") for fmt in formats]
        supported = fig.canvas.get_supported_filetypes()
        for fmt in formats:  # all checked before any is written
            if fmt not in supported:
                raise ValueError(f"cannot save a figure as {fmt!r}; formats: {', '.join(sorted(supported))}")
        for fmt in formats:
            path = stem.parent / f"{stem.name}.{fmt}"
            with matplotlib.rc_context(STYLE):
                atomic_write(path, lambda f, fmt=fmt: fig.savefig(f, format=fmt, dpi=DPI,
                                                                  metadata=_METADATA.get(fmt, {})))
            paths.append(path)
    finally:
        if "matplotlib.pyplot" in sys.modules:  # a figure made through pyplot is registered there
            sys.modules["matplotlib.pyplot"].close(fig)
    return paths


# ------------------------------------------------------------------------- moved to run_plots, still here

_RUN_PLOTS = frozenset({"read_log", "run_label", "training_curves", "loss_curves", "sample_grid", "snapshot_curve",
                        "snapshot_kinds", "LOSS_TERMS"})


def __getattr__(name: str):
    """`plots.training_curves` and the other plots of runs, which live in run_plots (imported on first use:
    run_plots builds on this module, so it cannot be imported at the top)."""
    if name in _RUN_PLOTS:
        from genbench.report import run_plots

        return getattr(run_plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
