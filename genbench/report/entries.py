"""Result files as rows: the one place where result JSONs become a long table of numbers.

Everything in the reporting layer (tables, plots, leaderboards) reads result JSONs through `load_results`
and `long_table`, and never imports model code. One row of the long table is one metric of one result:

    entry        display name of what was evaluated: "vae (small)" for a training run of a family preset,
                 the sample set's name for submitted samples
    row          the row a report shows it in: the entry under one protocol version,
                 "vae (small) · fashion-mnist/vae/quick@2"; seeds of one row are aggregated
    column       how the number was made, everything that must match for two numbers to share a column:
                 the metric's name in the result (e.g. "fid[lenet-fashion-mnist]") plus its sample count,
                 reference or split, extractor weights, estimator; see `column_key`

Reference values in a result's `references` section become entries of their own: the independent-pixel
model's exact bits/dim is the entry "independent pixels" in the `bpd` column. Held-out real images scored
like samples (`genbench score DATASET:SPLIT`) are reference entries too (section "reference"): the floor of
the sample-quality metrics, never ranked with models.

A column never mixes sample counts, reference splits or extractors (they are in its key), and a
row never mixes protocol versions (the version is in the row). `split_reasons` says in words why two
columns of the same metric were kept apart, so a report can print it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from genbench import GenbenchError
from genbench import results as results_mod

# Estimators whose value is an upper bound on the NLL (the exact value is at most it): the VAE's ELBO and IWAE,
# DDPM's variational bound (all terms, or its unbiased sampled estimate), the probability-flow ODE on
# uniformly dequantized data (a bound up to the solver's and the trace estimate's error), and the flows'
# dequantization bounds (uniform or variational q(u | x), single-sample or importance-weighted).
BOUND_ESTIMATORS = frozenset({"elbo", "iwae", "vlb", "vlb-mc", "ode", "bound", "uniform-dequantization",
                              "variational-dequantization", "iw-uniform-dequantization",
                              "iw-variational-dequantization"})

# Estimators whose value is neither exact nor a bound: annealed importance sampling's log Z-hat of an energy-based
# model (low in expectation, so the NLL errs low, while the dequantization draw errs the other way).
ESTIMATE_ESTIMATORS = frozenset({"ais"})

# Fields of a metric record that define how its number was made; two records share a column only when the
# metric name and all of these agree. (The extractor's weights hash matters: a retrained extractor is another
# instrument even under the same name.) The likelihood estimator is not among them: an exact bits/dim and an
# ELBO on the same images share a column, as in the literature, and reports mark bounds (`estimator`).
COLUMN_FIELDS = ("n", "reference", "split", "extractor", "extractor_sha256", "k", "subsets", "subset_size",
                 "splits")

LONG_COLUMNS = (
    "entry", "row", "column", "metric", "section", "value", "higher_is_better", "unit", "estimator",
    *COLUMN_FIELDS,
    "dataset", "kind", "model", "preset", "protocol", "protocol_version", "protocol_hash", "tier", "seed",
    "run_id", "created", "parameters", "train_seconds", "sample_images_per_s", "device", "genbench_version",
    "git_commit", "path",
)


@dataclass(frozen=True)
class LoadedResult:
    path: Path  # the result file
    result: dict

    @property
    def run_dir(self) -> Path:
        return self.path.parent


def load_results(paths: Iterable[str | Path]) -> list[LoadedResult]:
    """Result files from paths naming result files, run directories, or folders holding either (searched
    recursively for `result.json` and `*.json` results). Each is validated; an invalid file raises with its
    path and what is wrong. Duplicates (the same file reached twice) are dropped."""
    paths = list(paths)  # iterated twice: once here, once for the message below
    found: dict[Path, None] = {}
    for p in map(Path, paths):
        if p.is_file():
            found[p.resolve()] = None
        elif (p / results_mod.FILENAME).is_file():
            found[(p / results_mod.FILENAME).resolve()] = None
        elif p.is_dir():
            hits = sorted(p.rglob("*.json"))
            for hit in hits:
                if _looks_like_result(hit):
                    found[hit.resolve()] = None
        else:
            raise GenbenchError(f"{p}: no such file or directory (give result files, run directories, or "
                                "folders that hold them).")
    if not found:
        raise GenbenchError("no result files found in " + ", ".join(map(str, paths)) +
                            " (a finished `genbench run` writes RUN_DIR/result.json; `genbench score --json OUT` "
                            "writes one for a sample folder).")
    return [LoadedResult(path, results_mod.load(path)) for path in found]


def _looks_like_result(path: Path) -> bool:
    """A JSON file in a searched folder counts as a result if it is named result.json or declares a schema;
    other JSON files (run.json, checkpoint.json, ...) are skipped without being validated."""
    if path.name == results_mod.FILENAME:
        return True
    if path.name in ("run.json", "checkpoint.json") or path.stat().st_size > 50 << 20:
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return False
    return '"schema"' in head and '"kind"' in head


def dataset_of(result: dict) -> str:
    """The dataset a result is about, without a split: submitted samples name their reference
    ("fashion-mnist:train" -> "fashion-mnist")."""
    name = result["dataset"]
    if result["kind"] == "submitted samples" and ":" in name and not name.startswith("folder:"):
        return name.split(":", 1)[0]
    return name


def entry_of(result: dict) -> str:
    """Display name of what a result evaluates."""
    if result["kind"] == "training run":
        preset = result.get("preset")
        return f"{result['model']} ({preset})" if preset else result["model"]
    return result.get("name") or result["model"]


def row_of(result: dict) -> str:
    p = result["protocol"]
    return f"{entry_of(result)} · {p['name']}@{p['version']}"


def column_key(name: str, record: dict) -> tuple:
    """What must agree for two metric records to share a column (see COLUMN_FIELDS)."""
    return (name, *(_hashable(record.get(f)) for f in COLUMN_FIELDS))


def base_metric(name: str) -> str:
    """"fid[lenet-fashion-mnist]" -> "fid"."""
    return name.split("[", 1)[0]


def long_table(loaded: Iterable[LoadedResult], *, references: bool = True) -> pd.DataFrame:
    """One row per (result, metric), with the columns in LONG_COLUMNS. Missing values are NaN/None, never 0.
    `references=True` includes a result's `references` section (e.g. the independent-pixel model), as
    section "reference"; the metrics themselves are section "metric"."""
    rows: list[dict[str, Any]] = []
    for item in loaded:
        r = item.result
        sections = [("metric", r["metrics"])]
        if references:
            sections.append(("reference", r.get("references") or {}))
        for section, records in sections:
            for name, rec in records.items():
                rows.append(_flat(item, name, rec, section))
    # object dtype keeps "absent" as None and integers as integers in the key fields (pandas would turn a
    # column with gaps into floats and NaN, and NaN != NaN in keys)
    frame = pd.DataFrame(rows, columns=list(LONG_COLUMNS), dtype=object)
    for numeric in ("value", "parameters", "train_seconds", "sample_images_per_s"):
        frame[numeric] = pd.to_numeric(frame[numeric], errors="coerce").astype(float)
    frame["higher_is_better"] = frame["higher_is_better"].astype(bool)
    # A reference value (e.g. the independent-pixel model on the test split) is repeated in every result of
    # the dataset; it is one number, not one per run.
    is_ref = frame["section"] == "reference"
    dup = frame[is_ref].duplicated(subset=["row", "column", *COLUMN_FIELDS, "value"])
    return frame.drop(index=dup[dup].index).reset_index(drop=True)


def _flat(item: LoadedResult, name: str, rec: dict, section: str) -> dict[str, Any]:
    r = item.result
    compute, prov, protocol = r.get("compute", {}), r.get("provenance", {}), r["protocol"]
    value = rec.get("value")
    entry = entry_of(r)
    if (r.get("samples") or {}).get("real_data"):  # held-out real images scored as samples: the metric floor
        section = "reference"
    elif section == "reference":
        entry, name, estimator = _REFERENCES.get(name, (name, name, None))
        rec = {**rec, "estimator": rec.get("estimator", estimator)}
    return {
        "entry": entry,
        "row": f"{entry} · {protocol['name']}@{protocol['version']}" if section == "metric" else
               f"{entry} · {dataset_of(r)}",
        "column": name,
        "metric": base_metric(name),
        "section": section,
        "value": math.nan if value is None else float(value),
        "higher_is_better": bool(rec["higher_is_better"]),
        "unit": rec.get("unit"),
        "estimator": rec.get("estimator"),
        **{f: _hashable(rec.get(f)) for f in COLUMN_FIELDS},
        "dataset": dataset_of(r),
        "kind": r["kind"] if section == "metric" else "reference",
        "model": r["model"] if section == "metric" else entry,
        "preset": r.get("preset") if section == "metric" else None,
        "protocol": protocol["name"],
        "protocol_version": protocol["version"],
        "protocol_hash": protocol["hash"],
        "tier": protocol.get("tier"),
        "seed": r.get("seed"),
        "run_id": r["run_id"],
        "created": r.get("created"),
        "parameters": compute.get("parameters"),
        "train_seconds": compute.get("train_seconds"),
        "sample_images_per_s": compute.get("sample_images_per_s"),
        "device": compute.get("device"),
        "genbench_version": prov.get("genbench_version"),
        "git_commit": prov.get("git_commit"),
        "path": str(item.path),
    }


# reference name in results -> (entry, column, estimator)
_REFERENCES = {"independent_pixel_bpd": ("independent pixels", "bpd", "exact")}


def _hashable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


def split_reasons(frame: pd.DataFrame) -> list[str]:
    """Sentences saying why records of one metric landed in different columns (different sample counts,
    references, extractors, ...), for each metric where that happened."""
    notes = []
    for metric, group in frame.groupby("metric", sort=True):
        keys = {column_key(c, dict(zip(COLUMN_FIELDS, vals))) for c, *vals in
                group[["column", *COLUMN_FIELDS]].itertuples(index=False)}
        if len(keys) < 2:
            continue
        differing = [f for i, f in enumerate(("name", *COLUMN_FIELDS)) if len({k[i] for k in keys}) > 1]
        parts = []
        for f in differing:
            values = sorted({str(k[("name", *COLUMN_FIELDS).index(f)]) for k in keys})
            parts.append(f"{'metric name' if f == 'name' else f} ({', '.join(values)})")
        notes.append(f"{metric}: kept in {len(keys)} separate columns because they differ in " +
                     "; ".join(parts) + ".")
    return notes
