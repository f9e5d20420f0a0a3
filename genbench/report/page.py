"""The leaderboard page: one static index.html that works opened from disk (file://), with no network.

The page is a fixed template; everything that comes from results (entry names, notes, paths, numbers) travels
as data, never as markup:

- the data is one JSON document in `<script type="application/json" id="board-data">`, with `<`, `>`, `&` and
  U+2028/U+2029 written as \\u escapes, so no string can end the script element or open a comment;
- the script (static/board.js) parses it and builds the DOM with createElement/textContent only (never
  innerHTML); links it makes are relative paths the build chose, thumbnails data: URIs the build encoded;
- a Content-Security-Policy allows exactly the inlined script and style (by their sha256) and images from
  the page's folder or data: URIs; nothing else loads or runs.

The script and style live in static/board.js and static/board.css (package data) and are inlined at build
time, so the page is a single file besides the images it links.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import warnings
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from genbench import GenbenchWarning
from genbench.report import tables

THUMBNAIL = 128  # pixels, the longer side of a sample thumbnail

# ------------------------------------------------------------------------------------------------------ data

def data(built: Sequence[tables.Table], *, title: str, summary: str, plots: Sequence[dict],
         samples: Callable[[tables.Row], tuple[str, Path, str] | None]) -> dict:
    """Everything the page shows, as plain JSON: the tables with display texts made here (the script only
    places them), provenance per run, thumbnails. `plots`: {dataset, title, src, svg} with relative URLs;
    `samples(row)`: (run_id, samples.png, its relative URL), or None where the row has none."""
    return {
        "title": title,
        "summary": f"{summary}, {sum(len(t.rows) for t in built)} rows in {len(built)} "
                   f"table{'s' if len(built) != 1 else ''}",
        "datasets": [t.dataset for t in built],
        "protocols": sorted({_protocol_ref(r) for t in built for r in t.rows}),
        "tables": [_table_data(t, samples) for t in built],
        "plots": [{k: p.get(k) for k in ("dataset", "title", "src", "svg")} for p in plots],
    }


def _protocol_ref(row: tables.Row) -> str:
    return f"{row.protocol}@{row.protocol_version}"


def _table_data(t: tables.Table, samples) -> dict:
    columns = [{"label": col.label, "name": col.name, "higher_is_better": col.higher_is_better,
                "title": _column_title(col)} for col in t.columns]
    return {"dataset": t.dataset, "title": t.title, "columns": columns,
            "rows": [_row_data(t, row, samples(row)) for row in t.rows], "notes": list(t.notes)}


def _column_title(col: tables.Column) -> str:
    details = ", ".join(f"{k} {v}" for k, v in col.details.items())
    direction = "higher is better" if col.higher_is_better else "lower is better"
    return f"{col.name}: {direction}" + (f"; {details}" if details else "")


def _row_data(t: tables.Table, row: tables.Row, samples: tuple[str, Path, str] | None) -> dict:
    params = _mean([p.get("parameters") for p in row.provenance])
    seconds = _mean([p.get("train_seconds") for p in row.provenance])
    thumb = None
    if samples is not None:
        run_id, png, href = samples
        src = thumbnail(png)
        if src is not None:
            thumb = {"src": src, "href": href, "alt": f"samples of {row.label} (run {run_id})"}
    return {
        "label": row.label, "entry": row.entry, "kind": row.kind, "dataset": t.dataset,
        "protocol": _protocol_ref(row), "reference": row.is_reference, "seeds": len(row.seeds),
        "parameters": {"value": params, "text": _count_text(params)},
        "train_seconds": {"value": seconds, "text": _duration_text(seconds)},
        "cells": [_cell_data(cell, col, len(row.seeds)) for cell, col in zip(row.cells, t.columns)],
        "provenance": [_provenance_data(p) for p in row.provenance],
        "thumbnail": thumb,
    }


def _cell_data(cell: tables.Cell, col: tables.Column, seeds: int) -> dict:
    """The number as the tables print it (their decimals), and a tooltip with the values behind it."""
    if cell.mean is None:
        return {"value": None, "text": tables.MISSING, "title": "not reported", "best": False, "bound": False}

    def number(x: float) -> str:
        return tables.format_number(col, x, like=cell.mean)

    text = tables.format_number(col, cell.mean)
    if cell.std is not None:
        text += f" ± {number(cell.std)}"
    if cell.ci is not None:
        text += f" [{number(cell.ci[0])}, {number(cell.ci[1])}]"
    title = [f"mean of {cell.count} value{'s' if cell.count != 1 else ''}: " + ", ".join(map(repr, cell.values))]
    if cell.count != seeds:
        title.append(f"{seeds - cell.count} of {seeds} results have no value")
    if cell.bound:
        title.append("an upper bound (ELBO/IWAE): the exact bits/dim is at most this")
    if cell.estimate:
        title.append("an estimate, neither exact nor a bound (AIS: log Z-hat is low in expectation, the NLL errs low)")
    if cell.best:
        title.append("best in column")
    mark = "≤ " if cell.bound else "≈ " if cell.estimate else ""
    return {"value": cell.mean, "text": mark + text, "title": "; ".join(title),
            "best": cell.best, "bound": cell.bound}


def _provenance_data(p: dict) -> list[list[str]]:
    """(label, text) pairs of one run, in a fixed order."""
    fields = (("run", p.get("run_id")), ("created", p.get("created")), ("result file", p.get("path")),
              ("protocol hash", p.get("protocol_hash")), ("git commit", p.get("git_commit")),
              ("genbench", p.get("genbench_version")), ("device", p.get("device")),
              ("parameters", _count_text(p.get("parameters"))),
              ("training time", _duration_text(p.get("train_seconds"))))
    return [[label, str(value)] for label, value in fields if value is not None and value != ""]


def _mean(values) -> float | None:
    v = [float(x) for x in values if isinstance(x, (int, float)) and math.isfinite(x)]
    return sum(v) / len(v) if v else None


def _count_text(n: float | None) -> str | None:
    if n is None:
        return None
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}"
    return f"{n:.0f}"


def _duration_text(s: float | None) -> str | None:
    if s is None:
        return None
    if s >= 2 * 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def thumbnail(png: Path) -> str | None:
    """The image scaled to THUMBNAIL pixels on its longer side and re-encoded (nothing of the submitted file is
    passed through), as a data: URI; None, with a warning, if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(png) as im:
            im.load()
            image = im.convert("L" if im.mode in ("1", "L", "I;16", "I", "LA") else "RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # how PIL says "damaged"
        warnings.warn(f"{png}: not a readable PNG ({e}); no thumbnail.", GenbenchWarning, stacklevel=2)
        return None
    if image.mode == "RGB":
        r, g, b = image.split()
        if r.tobytes() == g.tobytes() == b.tobytes():  # gray saved as RGB: a third of the bytes
            image = r
    scale = THUMBNAIL / max(image.size)
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ------------------------------------------------------------------------------------------------------ page

_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def embed_json(data: Any) -> str:
    """`data` as JSON safe to place inside a <script> element: sorted keys, no NaN (as null), and the
    characters that could end the element or the script (`<`, `>`, `&`, U+2028, U+2029) \\u-escaped."""
    text = json.dumps(_finite(data), ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def static(name: str) -> str:
    """A file of genbench/report/static/ as text."""
    return resources.files("genbench.report").joinpath("static", name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode("ascii") + "'"


def render(data: dict, *, title: str) -> str:
    """The page for `data` (see board.js for the fields it reads). Deterministic: the same data gives the same
    bytes."""
    script, style = static("board.js"), static("board.css")
    csp = (f"default-src 'none'; script-src {_csp_hash(script)}; style-src {_csp_hash(style)}; "
           "img-src 'self' file: data:; base-uri 'none'; form-action 'none'")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="genbench leaderboard build">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{style}</style>",
        "</head>",
        "<body>",
        f'<header><h1 id="title">{html.escape(title)}</h1><p id="summary"></p></header>',
        ("<noscript><p>This page needs JavaScript to show the tables; README.md beside it has them as "
         "Markdown.</p></noscript>"),
        '<main id="board"></main>',
        f'<script type="application/json" id="board-data">{embed_json(data)}</script>',
        f"<script>{script}</script>",
        "</body>",
        "</html>",
        "",
    ])
