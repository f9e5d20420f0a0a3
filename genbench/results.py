"""Result files: one self-describing JSON per run (schema 1), written atomically, validated on load.

A result says how its numbers were made: the protocol (name, version, hash), the seed, each metric with its
direction, sample count, split and estimator, the compute it took, and provenance (genbench version, git
commit, torch version, data hash, checkpoint sha256). Leaderboards are built from these files alone.

Schema 1 grows only by keys its readers may ignore: a translation run (a protocol with two domains) is a
"training run" whose protocol says `"task": "translation"`, whose metrics are named per direction (psnr_a_to_b,
fid_b_to_a[...], ...) as records of the same form, and which holds a `translation` section naming its domains.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import genbench
from genbench import GenbenchError
from genbench.files import write_json

SCHEMA = 1
FILENAME = "result.json"
KINDS = ("training run", "submitted samples", "submitted representation")


class ResultError(GenbenchError):
    pass


def metric(value: float | None, *, higher_is_better: bool, **details: Any) -> dict:
    """One metric record: its value (None if it could not be computed), direction and how it was made."""
    if value is not None:
        value = float(value)
    return {"value": value, "higher_is_better": higher_is_better, **details}


def provenance(*, data_hash: str | dict, checkpoint_sha256: str | None) -> dict:
    return {
        "genbench_version": genbench.__version__,
        "git_commit": git_commit(),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "data_hash": data_hash,
        "checkpoint_sha256": checkpoint_sha256,
    }


def git_commit() -> str | None:
    """The commit of the genbench source in use, with '-dirty' if it has uncommitted changes."""
    src = Path(genbench.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write(run_dir: str | Path, result: dict) -> Path:
    """Write RUN_DIR/result.json atomically, after validating it."""
    return write_file(Path(run_dir) / FILENAME, result)


def write_file(path: str | Path, result: dict) -> Path:
    validate(result, source="the result being written")
    write_json(path, result)
    return Path(path)


def load(path: str | Path) -> dict:
    """Load and validate a result file (or the result.json inside a run directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.exists():
        raise ResultError(f"{path}: no such result file. A run writes it when evaluation finishes; "
                          f"`genbench show {path.parent}` tells where an unfinished run stopped.")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        result = json.loads(text)
    except json.JSONDecodeError as e:
        what = "truncated" if e.pos >= len(text.rstrip()) else "malformed"
        raise ResultError(f"{path}: {what} JSON ({e.msg} at line {e.lineno}, column {e.colno}). "
                          "The file is damaged; re-run evaluation to write it again.") from None
    validate(result, source=str(path))
    return result


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema": int, "kind": str, "run_id": str, "model": str, "dataset": str, "seed": (int, type(None)),
    "protocol": dict, "metrics": dict, "compute": dict, "provenance": dict,
}
_PROTOCOL_KEYS = {"name": str, "version": int, "hash": str}
_PROVENANCE_KEYS = ("genbench_version", "git_commit", "torch_version", "data_hash", "checkpoint_sha256")
_COMPUTE_KEYS = ("parameters", "train_seconds", "device", "sample_images_per_s")


def validate(result: Any, *, source: str) -> None:
    problems = list(_problems(result))
    if problems:
        raise ResultError(f"{source} is not a valid genbench result (schema {SCHEMA}): " + "; ".join(problems))


def _problems(r: Any):
    if not isinstance(r, dict):
        yield f"expected a JSON object, found {type(r).__name__}"
        return
    if r.get("schema") != SCHEMA:
        yield f"schema is {r.get('schema')!r}, this genbench reads schema {SCHEMA}"
        return
    for key, kind in _REQUIRED.items():
        if key not in r:
            yield f"missing key {key!r}"
        elif not isinstance(r[key], kind) or isinstance(r[key], bool):
            yield f"{key!r} has type {type(r[key]).__name__}"
    if r.get("kind") not in KINDS:
        yield f"kind must be one of {KINDS}, found {r.get('kind')!r}"
    protocol = r.get("protocol")
    if isinstance(protocol, dict):
        for key, kind in _PROTOCOL_KEYS.items():
            if not isinstance(protocol.get(key), kind):
                yield f"protocol.{key} missing or not {kind.__name__}"
    for name, m in (r.get("metrics") or {}).items() if isinstance(r.get("metrics"), dict) else ():
        yield from _metric_problems(f"metrics.{name}", m)
    for name, m in (r.get("references") or {}).items() if isinstance(r.get("references"), dict) else ():
        yield from _metric_problems(f"references.{name}", m)
    for section, keys in (("provenance", _PROVENANCE_KEYS), ("compute", _COMPUTE_KEYS)):
        if isinstance(r.get(section), dict):
            for key in keys:
                if key not in r[section]:
                    yield f"{section}.{key} missing"


def _metric_problems(where: str, m: Any):
    if not isinstance(m, dict):
        yield f"{where} is not an object"
        return
    v = m.get("value", "missing")
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
        yield f"{where}.value must be a number or null, found {v!r}"
    elif isinstance(v, float) and math.isnan(v):
        yield f"{where}.value is NaN"
    if not isinstance(m.get("higher_is_better"), bool):
        yield f"{where}.higher_is_better must be true or false"
