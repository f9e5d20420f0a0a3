"""Comparison tables: the engine of `genbench report` (and of the leaderboards built on it).

    result JSONs --entries.load_results/long_table--> long frame --build--> [Table] --render--> md|csv|latex|html

One `Table` per dataset. Its rows are `entries` rows (an entry under one protocol version: "vae (small) ·
fashion-mnist/vae/quick@2"); its columns are `entries.column_key`s, so a column never mixes sample counts,
reference splits, extractors or extractor weights, and Inception `fid` never shares a column with
`fid[lenet-fashion-mnist]`. Where one metric was split over several columns, the table's notes say why
(`entries.split_reasons`), and the labels carry a qualifier such as "(n=200)" only where one is needed to tell
them apart.

A cell aggregates the results (seeds) of its row: mean, sample std (ddof=1), count, and, on request, a
bootstrap percentile confidence interval of the mean. A metric a row lacks (or recorded as null) is missing,
rendered as a dash, never as 0. The best cell per column is marked (ties all marked; a column with a single
ranked value marks nothing); reference rows such as "independent pixels" are listed last and never ranked.
Likelihood bounds (ELBO, IWAE) carry a "≤" marker: the true bits/dim is at most the value shown; estimates that
are neither exact nor a bound (AIS) carry "≈".
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from genbench import GenbenchError
from genbench.metrics.disentanglement import SCORE_NAMES
from genbench.report import entries

FORMATS = ("md", "csv", "latex", "html")
_FORMAT_ALIASES = {"markdown": "md", "tex": "latex"}

# A translation protocol's scores, per direction (genbench.translations), after everything else.
TRANSLATION_NAMES = {f"{m}_{d}": f"{label} {arrow}" for d, arrow in (("a_to_b", "A→B"), ("b_to_a", "B→A"))
                     for m, label in (("psnr", "PSNR"), ("ssim", "SSIM"), ("iou", "IoU"), ("fid", "FID"),
                                      ("kid", "KID"), ("target_accuracy", "Target accuracy"))}

# Column order: likelihood, reconstruction, sample quality, mode coverage, then any other metric alphabetically.
METRIC_ORDER = ("bpd", "bpd_iwae", "bpd_ode", "bpd_ais", "log_px_gauss_ais", "bpd_conditional", "accuracy", "psnr",
                "ssim", "fid", "kid", "is", "precision", "recall", "density", "coverage", "classes_covered",
                "class_kl", "modes_covered", "mode_kl", "class_accuracy", "fid_intra", *SCORE_NAMES,
                *TRANSLATION_NAMES)
DISPLAY = {"bpd": "bits/dim", "bpd_iwae": "bits/dim IWAE", "bpd_ode": "bits/dim ODE", "bpd_ais": "bits/dim AIS",
           "log_px_gauss_ais": "log p(x) Gaussian AIS",
           "bpd_conditional": "bits/dim given class", "accuracy": "Test accuracy", "class_accuracy": "Class accuracy",
           "fid_intra": "Intra-FID", "psnr": "PSNR", "ssim": "SSIM", "fid": "FID",
           "kid": "KID", "is": "IS", "precision": "Precision", "recall": "Recall", "density": "Density",
           "coverage": "Coverage", "classes_covered": "Classes covered", "class_kl": "Class KL",
           "modes_covered": "Modes covered", "mode_kl": "Mode KL", **SCORE_NAMES, **TRANSLATION_NAMES}
# Metrics that count something (classes, modes): whole numbers shown as such, a mean over seeds that is not one
# with one decimal.
COUNTS = frozenset({"classes_covered", "modes_covered"})
# Decimals shown per metric; the rest (KID, which is stored unscaled, and unknown metrics) get SIGNIFICANT
# significant digits. A std or CI is shown with the decimals of its mean.
DECIMALS = {"bpd": 3, "bpd_iwae": 3, "bpd_ode": 3, "bpd_ais": 3, "log_px_gauss_ais": 1, "bpd_conditional": 3,
            "accuracy": 3, "class_accuracy": 3, "fid_intra": 2, "fid": 2, "is": 2, "psnr": 2, "ssim": 3,
            "precision": 3, "recall": 3, "density": 3, "coverage": 3, **dict.fromkeys(SCORE_NAMES, 3),
            **{name: 2 if name.startswith(("psnr", "fid")) else 3 for name in TRANSLATION_NAMES if
               not name.startswith("kid")}}
SIGNIFICANT = 4
REFERENCE_DESCRIPTIONS = {
    "independent pixels": "each pixel an independent categorical distribution fitted on the training split; "
                          "exact bits/dim",
    "held-out real data": "real held-out images scored exactly as samples are, by genbench score DATASET:SPLIT; "
                          "the best a model's sample-quality scores can be with as many samples",
}
# how a COLUMN_FIELD is named in a label qualifier
_FIELD_LABELS = {"n": "n", "reference": "ref", "split": "split", "extractor": "extractor",
                 "extractor_sha256": "weights", "k": "k", "subsets": "subsets", "subset_size": "subset size",
                 "splits": "splits"}
MISSING = "–"


@dataclass(frozen=True)
class Column:
    key: tuple  # entries.column_key(name, record)
    name: str  # metric name in results, "fid[lenet-fashion-mnist]"
    label: str  # unique within its table, with the direction: "FID [lenet-fashion-mnist] ↓"
    metric: str  # base metric, "fid"
    higher_is_better: bool
    unit: str | None
    details: dict  # the entries.COLUMN_FIELDS that are set


@dataclass(frozen=True)
class Cell:
    mean: float | None  # None: missing, rendered as a dash
    std: float | None  # across seeds, ddof=1; None for fewer than two values
    count: int  # values aggregated
    ci: tuple[float, float] | None  # bootstrap percentile CI of the mean, when requested and count >= 2
    values: tuple[float, ...]
    best: bool
    bound: bool  # the value is a bound (estimator elbo/iwae), shown with "≤"
    estimate: bool = False  # the value is an estimate that errs either way (estimator ais), shown with "≈"


@dataclass(frozen=True)
class Row:
    label: str  # entries "row"
    entry: str
    kind: str
    model: str
    preset: str | None
    protocol: str
    protocol_version: int
    tier: str | None
    seeds: tuple  # one per result, sorted
    provenance: tuple[dict, ...]  # one per result, in the order of `seeds`
    cells: tuple[Cell, ...]  # aligned with Table.columns

    @property
    def is_reference(self) -> bool:
        return self.kind == "reference"


@dataclass(frozen=True)
class Table:
    dataset: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...]


def report(paths: Sequence[str | Path], *, fmt: str = "md", ci: float | None = None,
           metrics: Sequence[str] | str | None = None, min_seeds: int | None = None) -> str:
    """The comparison tables of the results under `paths` (result files, run directories, folders of them).
    min_seeds: only the entries (an entry under one protocol version) with at least this many seeds, beside
    the reference rows (a board's headline: the entries run over all their protocol's seeds)."""
    fmt = _check_format(fmt)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    frame = entries.long_table(entries.load_results(paths))
    if min_seeds is not None and not frame.empty:
        seeds = frame[frame["section"] != "reference"].groupby("row")["seed"].nunique()
        keep = set(seeds[seeds >= min_seeds].index)
        if not keep:
            raise GenbenchError(f"no entry has {min_seeds} or more seeds; the most any has is {seeds.max()}.")
        frame = frame[(frame["section"] == "reference") | frame["row"].isin(keep)]
    tables = build(frame, ci=ci, metrics=metrics)
    if not tables:
        raise GenbenchError("the results hold no metric values to report.")
    return render(tables, fmt)


# ---------------------------------------------------------------------------------------------------- build

def build(frame: pd.DataFrame, *, ci: float | None = None, n_boot: int = 10_000, seed: int = 0,
          metrics: Sequence[str] | None = None) -> list[Table]:
    """One Table per dataset from an `entries.long_table` frame. `metrics` keeps only these metrics (a name
    as in results, "fid[lenet-fashion-mnist]", or a base metric, "fid"), in that order; `ci` (e.g. 0.95) adds
    bootstrap percentile intervals of the mean from `n_boot` resamples drawn with `seed`."""
    if ci is not None and not 0 < ci < 1:
        raise GenbenchError(f"the confidence level must lie between 0 and 1 (e.g. 0.95), not {ci}.")
    if n_boot < 1:
        raise GenbenchError(f"n_boot must be at least 1, not {n_boot}.")
    if frame.empty:
        return []
    frame = _select(frame, metrics)
    _check_duplicate_runs(frame)
    tables = [_table(str(dataset), frame[frame["dataset"] == dataset], ci=ci, n_boot=n_boot, seed=seed,
                     metrics=metrics) for dataset in sorted(frame["dataset"].unique())]
    return [t for t in tables if t.columns]


def aggregate(values: Sequence[float], *, ci: float | None = None, n_boot: int = 10_000,
              seed: int = 0) -> tuple[float | None, float | None, tuple[float, float] | None]:
    """(mean, std with ddof=1, bootstrap CI) of the finite `values`; (None, None, None) when there are none."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return None, None, None
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if len(v) > 1 else None
    interval = bootstrap_ci(v, ci, n_boot=n_boot, seed=seed) if ci is not None and len(v) > 1 else None
    return mean, std, interval


def bootstrap_ci(values: Sequence[float], ci: float, *, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: `n_boot` resamples with replacement, drawn as one
    (n_boot, len(values)) index array from numpy's default_rng(seed); the (1-ci)/2 and (1+ci)/2 quantiles."""
    v = np.asarray(values, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))
    means = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - ci) / 2, (1 + ci) / 2])
    return float(lo), float(hi)


def _select(frame: pd.DataFrame, metrics: Sequence[str] | None) -> pd.DataFrame:
    if metrics is None:
        return frame
    wanted = set(metrics)
    unknown = [m for m in metrics if not ((frame["column"] == m) | (frame["metric"] == m)).any()]
    if unknown:
        available = sorted(set(frame["column"]))
        raise GenbenchError(f"no result has the metric(s) {', '.join(unknown)}; these have: {', '.join(available)}.")
    return frame[frame["column"].isin(wanted) | frame["metric"].isin(wanted)]


def _check_duplicate_runs(frame: pd.DataFrame) -> None:
    """The same run reached through two files (a copied result) must not count as two seeds."""
    paths: dict[tuple[str, str], set[str]] = {}
    for row, run_id, path in frame[["row", "run_id", "path"]].itertuples(index=False):
        paths.setdefault((row, run_id), set()).add(path)
    for (row, run_id), found in paths.items():
        if len(found) > 1:
            a, b, *_ = sorted(found)
            raise GenbenchError(f"run {run_id} ({row}) appears in two result files, {a} and {b}: one run is one "
                                "seed; remove the copy (or pass only one of the folders).")


def _table(dataset: str, part: pd.DataFrame, *, ci, n_boot, seed, metrics) -> Table:
    part = part.copy()
    part["_key"] = [entries.column_key(name, dict(zip(entries.COLUMN_FIELDS, vals))) for name, *vals in
                    part[["column", *entries.COLUMN_FIELDS]].itertuples(index=False)]
    columns = _columns(part, metrics)
    rows = []
    for label in dict.fromkeys(part["row"]):
        rows.append(_row(part[part["row"] == label], columns, ci=ci, n_boot=n_boot, seed=seed))
    rows = _mark_best(rows, columns)
    rows = [r for r in rows if not (r.is_reference and all(c.mean is None for c in r.cells))]
    rows.sort(key=lambda r: _row_sort_key(r, columns))
    return Table(dataset=dataset, title=dataset, columns=tuple(columns), rows=tuple(rows),
                 notes=tuple(_notes(part, rows)))


def _columns(part: pd.DataFrame, metrics: Sequence[str] | None) -> list[Column]:
    found = {key: part[[k == key for k in part["_key"]]] for key in dict.fromkeys(part["_key"])}
    columns = []
    for key, records in found.items():
        name, metric = key[0], entries.base_metric(key[0])
        directions = set(records["higher_is_better"])
        if len(directions) > 1:
            files = sorted(set(records["path"]))
            raise GenbenchError(f"metric {name} is recorded as higher-is-better in some results and lower-is-better "
                                f"in others ({', '.join(files)}); these results disagree on what the metric is.")
        units = [u for u in records["unit"] if isinstance(u, str)]
        details = {f: v for f, v in zip(entries.COLUMN_FIELDS, key[1:]) if v is not None}
        columns.append(Column(key=key, name=name, label="", metric=metric, higher_is_better=directions.pop(),
                              unit=units[0] if units else None, details=details))
    columns.sort(key=lambda c: _column_sort_key(c, metrics))
    return _labelled(columns)


def _column_sort_key(c: Column, metrics: Sequence[str] | None) -> tuple:
    if metrics is not None:  # the order asked for
        rank = min(i for i, m in enumerate(metrics) if m in (c.name, c.metric))
    else:
        rank = METRIC_ORDER.index(c.metric) if c.metric in METRIC_ORDER else len(METRIC_ORDER)
    n = c.details.get("n")
    # unlabelled (standard-extractor) scores before extractor-labelled ones, larger sample counts first
    return (rank, c.metric, c.name != c.metric, c.name, -n if isinstance(n, (int, float)) else 0,
            [(f, str(v)) for f, v in sorted(c.details.items())])


def _labelled(columns: list[Column]) -> list[Column]:
    """Labels with the direction; a qualifier naming the fields that differ only where columns share a label."""
    base = [_base_label(c) for c in columns]
    out = []
    for i, c in enumerate(columns):
        same = [columns[j] for j in range(len(columns)) if base[j] == base[i]]
        qualifiers = [] if c.unit is None or c.unit in base[i] else [c.unit]
        if len(same) > 1:
            for f in entries.COLUMN_FIELDS:
                if len({o.details.get(f) for o in same}) > 1:
                    qualifiers.append(f"{_FIELD_LABELS.get(f, f)}={_field_value(f, c.details.get(f))}")
        label = (base[i] + (f" ({', '.join(qualifiers)})" if qualifiers else "") +
                 (" ↑" if c.higher_is_better else " ↓"))
        out.append(Column(c.key, c.name, label, c.metric, c.higher_is_better, c.unit, c.details))
    labels = [c.label for c in out]
    for i, c in enumerate(out):  # fields differing only beyond what a label shows (cannot happen today)
        if labels.count(c.label) > 1:
            out[i] = Column(c.key, c.name, f"{c.label} #{labels[:i + 1].count(c.label)}", c.metric,
                            c.higher_is_better, c.unit, c.details)
    return out


def _base_label(c: Column) -> str:
    return display_name(c.name)


def display_name(name: str) -> str:
    """A metric's name as tables show it, without direction or qualifiers: "fid[lenet-fashion-mnist]" ->
    "FID [lenet-fashion-mnist]", "classes_covered[lenet-fashion-mnist]" -> "Classes covered [lenet-fashion-mnist]"."""
    metric = entries.base_metric(name)
    bracket = name[len(metric):]  # "[lenet-fashion-mnist]" or ""
    return DISPLAY.get(metric, metric) + (f" {bracket}" if bracket else "")


def _field_value(field: str, v) -> str:
    if v is None:
        return "none"
    if field == "extractor_sha256" and isinstance(v, str):
        return v.removeprefix("sha256:")[:12]
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _row(records: pd.DataFrame, columns: list[Column], *, ci, n_boot, seed) -> Row:
    first = records.iloc[0]
    runs = records.drop_duplicates("run_id")
    runs = runs.iloc[sorted(range(len(runs)), key=lambda i: _seed_order(runs["seed"].iloc[i], runs["run_id"].iloc[i]))]
    order = {run_id: i for i, run_id in enumerate(runs["run_id"])}
    cells = []
    for col in columns:
        here = records[[k == col.key for k in records["_key"]]]
        here = here.iloc[sorted(range(len(here)), key=lambda i: order[here["run_id"].iloc[i]])]
        values = [float(v) for v in here["value"] if math.isfinite(v)]
        mean, std, interval = aggregate(values, ci=ci, n_boot=n_boot, seed=seed)
        named = [e for e in here["estimator"] if isinstance(e, str)]
        bound = any(e in entries.BOUND_ESTIMATORS for e in named)
        estimate = any(e in entries.ESTIMATE_ESTIMATORS for e in named)
        cells.append(Cell(mean=mean, std=std, count=len(values), ci=interval, values=tuple(values), best=False,
                          bound=bound and mean is not None, estimate=estimate and mean is not None))
    return Row(label=first["row"], entry=first["entry"], kind=first["kind"], model=first["model"],
               preset=_none(first["preset"]), protocol=first["protocol"],
               protocol_version=int(first["protocol_version"]), tier=_none(first["tier"]), seeds=tuple(runs["seed"]),
               provenance=tuple(_provenance(r) for _, r in runs.iterrows()), cells=tuple(cells))


def _seed_order(seed, run_id) -> tuple:
    return (seed is None, seed if isinstance(seed, (int, float)) else 0, str(seed), run_id)


def _provenance(r: pd.Series) -> dict:
    params = _none(r["parameters"])
    return {"run_id": r["run_id"], "path": r["path"], "protocol_hash": r["protocol_hash"],
            "git_commit": _none(r["git_commit"]), "genbench_version": _none(r["genbench_version"]),
            "created": _none(r["created"]), "parameters": int(params) if params is not None else None,
            "train_seconds": None if (ts := _none(r["train_seconds"])) is None else float(ts),
            "device": _none(r["device"])}


def _none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _mark_best(rows: list[Row], columns: list[Column]) -> list[Row]:
    """Best per column among the ranked rows (not references), compared as displayed; ties all marked."""
    best = [set() for _ in columns]
    for j, col in enumerate(columns):
        shown = {i: float(format_number(col, r.cells[j].mean)) for i, r in enumerate(rows)
                 if not r.is_reference and r.cells[j].mean is not None}
        if len(shown) >= 2:
            top = (max if col.higher_is_better else min)(shown.values())
            best[j] = {i for i, v in shown.items() if v == top}
    return [replace(r, cells=tuple(replace(c, best=i in best[j]) for j, c in enumerate(r.cells)))
            for i, r in enumerate(rows)]


def _row_sort_key(r: Row, columns: list[Column]) -> tuple:
    """References last; then best-first by the first column, ties and gaps broken by the next columns."""
    by_value = tuple((1, 0.0) if c.mean is None else (0, -c.mean if col.higher_is_better else c.mean)
                     for c, col in zip(r.cells, columns))
    return (r.is_reference, by_value, r.label)


def _notes(part: pd.DataFrame, rows: list[Row]) -> list[str]:
    notes = list(entries.split_reasons(part))
    ranked = [r for r in rows if not r.is_reference]
    versions: dict[tuple[str, str], set[int]] = {}
    for r in ranked:
        versions.setdefault((r.entry, r.protocol), set()).add(r.protocol_version)
    for (entry, protocol), vs in versions.items():
        if len(vs) > 1:
            vs = sorted(vs)
            notes.append(f"{entry}: {protocol}@" + " and @".join(map(str, vs)) + " are separate rows and must not "
                         f"be compared as one entry (a new protocol version changes what can move the numbers); "
                         f"the newest here is @{vs[-1]}.")
    tiers = sorted({r.tier for r in ranked if r.tier})
    if len(tiers) > 1:
        notes.append(f"rows come from protocol tiers {', '.join(tiers)}, whose training budgets differ.")
    for r in ranked:
        seen = [s for s in r.seeds if s is not None]
        repeated = sorted({s for s in seen if seen.count(s) > 1})
        if repeated:
            notes.append(f"{r.label}: seed {', '.join(map(str, repeated))} has several results (runs "
                         f"{', '.join(p['run_id'] for p in r.provenance)}); each counts as one value.")
    for entry in dict.fromkeys(r.entry for r in rows if r.is_reference):
        what = REFERENCE_DESCRIPTIONS.get(entry) or REFERENCE_DESCRIPTIONS.get(entry.split(" (")[0])
        notes.append(f"{entry}: a reference point, not a trained model" + (f" ({what})" if what else "") +
                     "; listed last and not ranked.")
    return notes


# --------------------------------------------------------------------------------------------------- render

def render(tables: Sequence[Table], fmt: str) -> str:
    """The tables as Markdown ("md"), CSV, booktabs LaTeX ("latex") or HTML fragments ("html")."""
    fmt = _check_format(fmt)
    if fmt == "csv":
        return "\n".join(_csv(t) for t in tables)
    return "\n".join({"md": _markdown, "latex": _latex, "html": _html}[fmt](t) for t in tables)


def _check_format(fmt: str) -> str:
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in FORMATS:
        raise GenbenchError(f"unknown report format {fmt!r}; choose from {', '.join(FORMATS)}.")
    return fmt


def format_number(col: Column, x: float, *, like: float | None = None) -> str:
    """`x` with the decimals of its metric (or SIGNIFICANT digits of `like`, default x); a count (COUNTS) without
    decimals where `x` and `like` are whole numbers, else with one."""
    if col.metric in COUNTS:
        d = 0 if float(x).is_integer() and (like is None or float(like).is_integer()) else 1
    elif col.metric in DECIMALS or col.unit == "bits/dim":
        d = DECIMALS.get(col.metric, 3)
    else:
        ref = abs(x if like is None else like)
        d = 3 if ref == 0 or not math.isfinite(ref) else min(12, max(0, SIGNIFICANT - 1 - math.floor(math.log10(ref))))
    s = f"{x:.{d}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s  # no "-0.000"


@dataclass(frozen=True)
class _Style:
    escape: Callable[[str], str]
    bold: Callable[[str], str]
    italic: Callable[[str], str]
    pm: str
    leq: str
    missing: str
    approx: str = "≈"


def _cell_text(cell: Cell, col: Column, seeds: int, s: _Style) -> str:
    if cell.mean is None:
        return s.missing
    text = format_number(col, cell.mean)
    text = s.bold(text) if cell.best else text
    if cell.std is not None:
        text += f" {s.pm} {format_number(col, cell.std, like=cell.mean)}"
    if cell.ci is not None:
        text += f" [{format_number(col, cell.ci[0], like=cell.mean)}, {format_number(col, cell.ci[1], like=cell.mean)}]"
    if cell.count != seeds:
        text += f" ({cell.count} {'seed' if cell.count == 1 else 'seeds'})"
    return f"{s.leq} {text}" if cell.bound else f"{s.approx} {text}" if cell.estimate else text


def _legend(t: Table, s: _Style) -> str:
    cells = [c for r in t.rows for c in r.cells]
    parts = []
    if any(c.std is not None for c in cells):
        parts.append(f"mean {s.pm} std over seeds (ddof=1)")
    if any(c.ci is not None for c in cells):
        parts.append("[low, high]: bootstrap confidence interval of the mean")
    if any(c.best for c in cells):
        parts.append(f"{s.bold('bold')}: best in column")
    if any(c.bound for c in cells):
        parts.append(f"{s.leq}: upper bound on bits/dim (ELBO, IWAE, VLB, dequantized ODE, dequantized flows), the "
                     "exact value is at most this")
    if any(c.estimate for c in cells):
        parts.append(f"{s.approx}: an estimate, neither exact nor a bound (AIS: its log Z-hat is low in expectation, "
                     "so the NLL errs low)")
    if any(c.mean is None for c in cells):
        parts.append(f"{s.missing}: not reported")
    return "; ".join(parts)


def _md_escape(text: str) -> str:
    for ch in "\\|*_`<":
        text = text.replace(ch, "\\" + ch)
    return text


_MD = _Style(escape=_md_escape, bold=lambda x: f"**{x}**", italic=lambda x: f"*{x}*", pm="±", leq="≤",
             missing=MISSING)


def _markdown(t: Table) -> str:
    s = _MD
    head = ["Entry", "Seeds", *(s.escape(c.label) for c in t.columns)]
    lines = [f"### {s.escape(t.title)}", "", "| " + " | ".join(head) + " |",
             "| " + " | ".join([":--", *["--:"] * (len(head) - 1)]) + " |"]
    for r in t.rows:
        label = s.italic(s.escape(r.label)) if r.is_reference else s.escape(r.label)
        cells = [_cell_text(c, col, len(r.seeds), s) for c, col in zip(r.cells, t.columns)]
        lines.append("| " + " | ".join([label, str(len(r.seeds)), *cells]) + " |")
    notes = [*(s.escape(n) for n in t.notes), *([legend] if (legend := _legend(t, s)) else [])]
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "<": r"\textless{}", ">": r"\textgreater{}"}
_LATEX_UNICODE = {"↓": r"$\downarrow$", "↑": r"$\uparrow$", "±": r"$\pm$", "≤": r"$\leq$", "≈": r"$\approx$",
                  "·": r"$\cdot$", "–": "--", "—": "---"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_UNICODE.get(ch) or _LATEX_SPECIAL.get(ch, ch) for ch in text)


_LATEX = _Style(escape=_latex_escape, bold=lambda x: rf"\textbf{{{x}}}", italic=lambda x: rf"\textit{{{x}}}",
                pm=r"$\pm$", leq=r"$\leq$", missing="--", approx=r"$\approx$")


def _latex(t: Table) -> str:
    """A booktabs tabular (needs \\usepackage{booktabs}); the title and notes as comments above it."""
    s = _LATEX
    lines = [f"% {t.title}", *(f"% {n}" for n in t.notes),
             r"\begin{tabular}{l" + "r" * (len(t.columns) + 1) + "}", r"\toprule",
             " & ".join(["Entry", "Seeds", *(s.escape(c.label) for c in t.columns)]) + r" \\", r"\midrule"]
    for r in t.rows:
        label = s.italic(s.escape(r.label)) if r.is_reference else s.escape(r.label)
        label = "{}" + label if label.startswith("[") else label  # not an optional argument of the \\ before it
        cells = [_cell_text(c, col, len(r.seeds), s) for c, col in zip(r.cells, t.columns)]
        lines.append(" & ".join([label, str(len(r.seeds)), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


_HTML = _Style(escape=html.escape, bold=lambda x: f"<strong>{x}</strong>", italic=lambda x: f"<em>{x}</em>",
               pm="±", leq="≤", missing=MISSING)


def _html(t: Table) -> str:
    """A plain <table> fragment: the title as caption, the notes in the footer; no scripts, no styles."""
    s = _HTML
    width = len(t.columns) + 2
    lines = ['<table class="genbench-report">', f"<caption>{s.escape(t.title)}</caption>", "<thead>",
             "<tr>" + "".join(f"<th>{x}</th>" for x in ["Entry", "Seeds", *(s.escape(c.label) for c in t.columns)])
             + "</tr>", "</thead>", "<tbody>"]
    for r in t.rows:
        label = s.italic(s.escape(r.label)) if r.is_reference else s.escape(r.label)
        cells = [_cell_text(c, col, len(r.seeds), s) for c, col in zip(r.cells, t.columns)]
        attr = ' class="reference"' if r.is_reference else ""
        lines.append(f"<tr{attr}>" + "".join(f"<td>{x}</td>" for x in [label, len(r.seeds), *cells]) + "</tr>")
    lines.append("</tbody>")
    notes = [*(s.escape(n) for n in t.notes), *([legend] if (legend := _legend(t, s)) else [])]
    if notes:
        lines += ["<tfoot>", *(f'<tr><td colspan="{width}">{n}</td></tr>' for n in notes), "</tfoot>"]
    lines.append("</table>")
    return "\n".join(lines) + "\n"


def _csv(t: Table) -> str:
    """One block per table: a header, one line per row (missing values empty; `best` and `bounds` list the
    column labels where the row is best or holds a bound), then the notes as '# ' comment lines."""
    with_ci = any(c.ci is not None for r in t.rows for c in r.cells)
    head = ["dataset", "entry", "kind", "seeds"]
    for c in t.columns:
        head += [c.label, f"{c.label} std", *([f"{c.label} ci low", f"{c.label} ci high"] if with_ci else [])]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*head, "best", "bounds"])

    def fmt(col: Column, x: float | None, like: float | None = None) -> str:
        return "" if x is None else format_number(col, x, like=like)

    for r in t.rows:
        line = [t.dataset, r.label, r.kind, len(r.seeds)]
        for c, col in zip(r.cells, t.columns):
            line += [fmt(col, c.mean), fmt(col, c.std, c.mean)]
            if with_ci:
                line += [fmt(col, c.ci and c.ci[0], c.mean), fmt(col, c.ci and c.ci[1], c.mean)]
        line += ["; ".join(col.label for c, col in zip(r.cells, t.columns) if c.best),
                 "; ".join(col.label for c, col in zip(r.cells, t.columns) if c.bound)]
        w.writerow(line)
    for n in t.notes:
        buf.write(f"# {n}\n")
    return buf.getvalue()
