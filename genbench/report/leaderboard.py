"""Leaderboards: a folder of submitted result files, rendered as a README.md and one static index.html.

    genbench leaderboard submit RESULT.json --board BOARD_DIR   -> submit(result_path, board_dir)
    genbench leaderboard build BOARD_DIR                        -> build(board_dir)

Board layout:

    BOARD_DIR/
      results/<run_id>/result.json     one submitted result, byte for byte as submitted
      results/<run_id>/samples.png     its sample grid, where one lay beside the submitted result (optional)
      results/<run_id>/train_log.jsonl its training log, where the result names one that lay beside it (optional)
      plots/<dataset>--<metric>.png    one bar chart per table column (and .svg), written by build
      plots/<dataset>--<metric>--vs-train-time.png   the first column with training times against them
      plots/<dataset>--<metric>--vs-cost.png         the first FID column against training time and sampling
                                                     time per image, side by side: the comparison across families
      plots/<dataset>--<metric>--over-training.png   sample quality over training, where results have snapshots
      plots/<dataset>--training-losses.png           the loss terms GANs log, where entries have training logs
      README.md                        the tables (Markdown), the plots, links to the sample grids
      index.html                       the same as one page: sortable table, dataset/protocol filters,
                                       provenance per entry, sample thumbnails (inlined), the plots

`results/` changes only through `submit` (genbench.report.submit), which validates a result against the registry (schema, protocol
known and current, protocol hash, checksums, weights beside it, the metrics its protocol produces, its
snapshot curve) and its training log (JSON lines, at most MAX_TRAIN_LOG_BYTES), and adds them atomically: the
files are written into a temporary folder inside the board, then renamed into place, so a failed submit leaves
the board as it was. Everything else is rendered from `results/` by `build` and replaced
on each build; the same results give byte-identical README.md and index.html (no clock is read: the only
times shown come from the results). Like every report, a board is built from result files alone and never
imports model code.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from genbench import GenbenchError, GenbenchWarning
from genbench import results as results_mod
from genbench.files import atomic_write
from genbench.report import entries, page, tables
from genbench.report.submit import (MAX_TRAIN_LOG_BYTES, REASONS, RESULTS, SAMPLES, TRAIN_LOG,  # noqa: F401
                                    SubmitError, _board_results, check_train_log, content_fingerprint, submit)

PLOTS = "plots"
PLOT_FORMATS = ("png", "svg")


# ---------------------------------------------------------------------------------------------------- build

def build(board_dir: str | Path, *, plots: bool = True, formats: tuple[str, ...] = PLOT_FORMATS) -> list[Path]:
    """Render BOARD/README.md, BOARD/index.html and BOARD/plots/ from BOARD/results/; returns the files written.
    The same results give byte-identical README.md and index.html. `plots=False` skips the plots."""
    board = Path(board_dir)
    found = _board_results(board)
    if not found:
        raise GenbenchError(f"{board / RESULTS}: no results (expected {RESULTS}/<run_id>/{results_mod.FILENAME}); "
                            "add them with `genbench leaderboard submit RESULT.json --board "
                            f"{board}`.")
    stray = sorted(p.name for p in (board / RESULTS).iterdir() if p.is_file() and not p.name.startswith("."))
    if stray:
        warnings.warn(f"{board / RESULTS}: ignoring {', '.join(stray)}: a board reads only "
                      f"{RESULTS}/<run_id>/{results_mod.FILENAME} (use `genbench leaderboard submit`).",
                      GenbenchWarning, stacklevel=2)
    loaded = entries.load_results([file for _, file in found])
    frame = entries.long_table(loaded)
    by_file = {file.resolve(): folder for folder, file in found}  # load_results resolves paths
    # paths relative to the board: the rendering does not depend on where the board lies
    frame["path"] = [f"{RESULTS}/{by_file[Path(p)].name}/{results_mod.FILENAME}" for p in frame["path"]]
    built = tables.build(frame)
    if not built:
        raise GenbenchError(f"{board / RESULTS}: the results hold no metric values to show.")

    folders = {item.result["run_id"]: by_file[item.path] for item in loaded}
    runs = {item.result["run_id"]: item.result for item in loaded}
    drawn = _draw_plots(board, frame, built, formats, [(item.result, by_file[item.path]) for item in loaded]) \
        if plots else []
    if not plots:
        _remove_stale_plots(board, [])
    readme = board / "README.md"
    index = board / "index.html"
    context = _Context(board, built, runs, folders, drawn)
    text = _readme(context)
    atomic_write(readme, lambda f: f.write(text.encode()))
    html = page.render(_page_data(context), title=_title(board))
    atomic_write(index, lambda f: f.write(html.encode()))
    return [readme, index, *(p for plot in drawn for p in plot["files"])]


@dataclass(frozen=True)
class _Context:
    board: Path
    tables: list[tables.Table]
    runs: dict[str, dict]  # run_id -> result
    folders: dict[str, Path]  # run_id -> its folder in the board
    plots: list[dict]  # dataset, kind, title, files

    def samples(self, row: tables.Row) -> tuple[str, Path] | None:
        """(run_id, samples.png) of the row's first run (in seed order) that has one; None for a reference row."""
        if row.is_reference:
            return None
        for prov in row.provenance:
            folder = self.folders.get(prov["run_id"])
            if folder is not None and (folder / SAMPLES).is_file():
                return prov["run_id"], folder / SAMPLES
        return None

    def href(self, path: Path) -> str:
        """A relative URL (percent-encoded) from the board to `path`."""
        return quote(Path(os.path.relpath(path, self.board)).as_posix())


def _title(board: Path) -> str:
    return f"genbench leaderboard: {board.resolve().name}"


def _draw_plots(board: Path, frame, built: list[tables.Table], formats, results: list[tuple[dict, Path]]) -> list[dict]:
    """Per table: a bar chart of each column, and the first column with training times against training time;
    then, where results of its dataset have them, their sample quality over training (one plot per kind of
    snapshot curve), each truncation curve (FID against IS) and the loss terms of the entries' training logs.
    `results`: (result, its board folder)."""
    from genbench.report import plots, run_plots

    keys = [entries.column_key(name, dict(zip(entries.COLUMN_FIELDS, vals))) for name, *vals in
            frame[["column", *entries.COLUMN_FIELDS]].itertuples(index=False)]
    frame = frame.assign(_key=keys)
    out, used = [], set()

    def stem(*parts: str) -> Path:
        name = "--".join(plots.slug(p) for p in parts)
        unique, i = name, 2
        while unique in used:
            unique, i = f"{name}-{i}", i + 1
        used.add(unique)
        return board / PLOTS / unique

    def draw(dataset: str, what: str, title: str, parts: tuple[str, ...], make) -> None:
        try:
            fig = make()
        except ValueError as e:
            warnings.warn(f"plot {title!r} skipped: {e}", GenbenchWarning, stacklevel=3)
            return
        files = plots.save(fig, stem(dataset, *parts), formats)
        out.append({"dataset": dataset, "kind": what, "title": title, "files": files})

    for t in built:
        part = frame[frame["dataset"] == t.dataset]
        cost_done = family_done = False
        for col in t.columns:
            sel = part[[k == col.key for k in part["_key"]]]
            draw(t.dataset, "bar", f"{col.label} on {t.dataset}", (col.name,),
                 lambda sel=sel, col=col: plots.bar_chart(sel, col.name))
            costs = sel.loc[sel["kind"] == "training run", "train_seconds"].astype(float)
            if not cost_done and (costs > 0).any():
                cost_done = True
                draw(t.dataset, "cost", f"{col.label} against training time, {t.dataset}",
                     (col.name, "vs-train-time"), lambda sel=sel, col=col: plots.quality_vs_cost(sel, col.name,
                                                                                                  "train_seconds"))
            # the comparison across families: the first FID column, which every family that samples shares,
            # against what an entry cost to train and what a sample costs to draw
            if not family_done and col.metric == "fid" and (costs > 0).sum() >= 2:
                family_done = True
                draw(t.dataset, "cost", f"{col.label} against training time and sampling time, {t.dataset}",
                     (col.name, "vs-cost"), lambda sel=sel, col=col: plots.quality_vs_costs(sel, col.name))
        here = [(r, folder) for r, folder in results if entries.dataset_of(r) == t.dataset]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GenbenchWarning)  # a malformed section warns when it is drawn
            kinds = run_plots.snapshot_kinds([r for r, _ in here])
        for kind in kinds:
            n = f"{kind.n:,}" if isinstance(kind.n, int) else str(kind.n)
            draw(t.dataset, "snapshots", f"{tables.display_name(kind.metric)} over training (n = {n} samples per "
                                         f"snapshot), {t.dataset}", (kind.metric, "over-training"),
                 lambda kind=kind: run_plots.snapshot_curve([r for r, _ in here], kind))
        for r, _ in here:
            if "truncation_curve" in r:
                label = f"{r.get('model', 'model')} seed {r.get('seed', '?')}"
                draw(t.dataset, "truncation", f"FID against IS over the truncation threshold, {label}, {t.dataset}",
                     (r.get("run_id", "run"), "truncation"), lambda r=r: run_plots.truncation_plot(
                         r["truncation_curve"], title=f"{label}: FID against IS over the truncation threshold"))
        logs = [folder for _, folder in here if (folder / TRAIN_LOG).is_file()]
        if logs and run_plots.logged_terms(logs):
            draw(t.dataset, "losses", f"Training losses on {t.dataset}", ("training-losses",),
                 lambda: run_plots.loss_curves(logs, title=f"Losses during training, {t.dataset}"))
    _remove_stale_plots(board, [p for plot in out for p in plot["files"]])
    return out


def _remove_stale_plots(board: Path, keep: list[Path]) -> None:
    """Plots of a previous build that this one did not draw (a column that went away) are removed."""
    folder = board / PLOTS
    if not folder.is_dir():
        return
    keep_names = {p.name for p in keep}
    for p in folder.iterdir():
        if p.is_file() and p.suffix in (".png", ".svg", ".pdf") and p.name not in keep_names:
            p.unlink()


# ------------------------------------------------------------------------------------------------- README.md

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|&])")


def _md(text: str) -> str:
    """Text for Markdown: specials backslash-escaped (`<` too, so nothing from a result becomes HTML)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def _readme(c: _Context) -> str:
    created = sorted(r["created"] for r in c.runs.values() if isinstance(r.get("created"), str))
    lines = [f"# {_md(_title(c.board))}", "",
             f"Built by `genbench leaderboard build` from {len(c.runs)} result file"
             f"{'s' if len(c.runs) != 1 else ''} in `{RESULTS}/`" +
             (f" (the newest from {_md(created[-1])})" if created else "") + ". Open `index.html` for a sortable "
             "table with filters, each entry's provenance and sample thumbnails; add results with "
             "`genbench leaderboard submit RESULT.json --board .`.", "",
             "## Tables", "", tables.render(c.tables, "md").rstrip("\n"), ""]
    if c.plots:
        lines += ["## Plots", ""]
        for dataset in dict.fromkeys(p["dataset"] for p in c.plots):
            lines += [f"### {_md(dataset)}", ""]
            for p in (p for p in c.plots if p["dataset"] == dataset):
                png = next((f for f in p["files"] if f.suffix == ".png"), p["files"][0])
                svg = next((f for f in p["files"] if f.suffix == ".svg"), None)
                lines.append(f"![{_md(p['title'])}]({c.href(png)})" + (f" ([SVG]({c.href(svg)}))" if svg else ""))
                lines.append("")
    samples = [(t, row, s) for t in c.tables for row in t.rows if (s := c.samples(row))]
    if samples:
        lines += ["## Samples", "", "| Dataset | Entry | Samples of |", "| :-- | :-- | :-- |"]
        for t, row, (run_id, png) in samples:
            lines.append(f"| {_md(t.dataset)} | {_md(row.label)} | [{_md(run_id)}]({c.href(png)}) |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _page_data(c: _Context) -> dict:
    def samples(row: tables.Row):
        found = c.samples(row)
        return None if found is None else (found[0], found[1], c.href(found[1]))

    plots = [{"dataset": p["dataset"], "title": p["title"],
              "src": c.href(next((f for f in p["files"] if f.suffix == ".png"), p["files"][0])),
              "svg": next((c.href(f) for f in p["files"] if f.suffix == ".svg"), None)} for p in c.plots]
    n = len(c.runs)
    return page.data(c.tables, title=_title(c.board), summary=f"{n} result file{'s' if n != 1 else ''}",
                     plots=plots, samples=samples)
