"""Submitting a result to a leaderboard: every check a result passes before a board takes it, and the atomic add.

`submit` validates a result against the registry (schema, protocol known and current, protocol hash,
checksums, weights beside it, the metrics its protocol produces, its snapshot curve) and its training log
(JSON lines, at most MAX_TRAIN_LOG_BYTES), and adds them atomically: the files are written into a temporary
folder inside the board, then renamed into place, so a failed submit leaves the board as it was. The board
layout and `build` are in genbench.report.leaderboard.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from genbench import GenbenchError, reference, registry
from genbench import results as results_mod
from genbench.files import sha256_file
from genbench.report import entries
from genbench.score import GROUP_METRICS

RESULTS = "results"
SAMPLES = "samples.png"
TRAIN_LOG = "train_log.jsonl"
MAX_TRAIN_LOG_BYTES = 8 << 20  # 300,000 steps logged every 100 take about 1 MiB
MAX_SAMPLES_PIXELS = 8192 * 8192  # a samples.png larger than this is not a sample grid

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")  # a run_id names a folder of the board
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_SCORED = frozenset(m for group in GROUP_METRICS.values() for m in group)  # what `genbench score` writes
# scored against the protocol's reference split (mode coverage compares with the training split's classes)
_FIDELITY = frozenset(m for name, group in GROUP_METRICS.items() if name != "modes" for m in group)
_NO_REFERENCE = frozenset({"is"})  # the Inception Score is computed from the samples alone


class SubmitError(GenbenchError):
    """A result the board does not accept. `reason` names the check that failed (one of REASONS)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


REASONS = ("malformed", "run_id", "unknown_protocol", "superseded", "protocol_hash", "inconsistent", "checksum",
           "weights", "metrics", "snapshots", "samples", "train_log", "duplicate_run_id", "duplicate_content", "io")


# --------------------------------------------------------------------------------------------------- submit

def submit(result_path: str | Path, board_dir: str | Path) -> Path:
    """Validate the result at `result_path` (a result file or a run directory) and add it to the board, with the
    samples.png beside it if there is one, and the training log the result names (`files.train_log`) if it lies
    beside it. Returns the board's copy of the result file. Raises SubmitError, naming the check that failed and
    what to do, and leaves the board unchanged."""
    path = Path(result_path)
    if path.is_dir():
        path = path / results_mod.FILENAME
    board = Path(board_dir)
    try:
        result = results_mod.load(path)
    except GenbenchError as e:
        raise SubmitError("malformed", f"rejected {path}: {e}") from None

    where = f"rejected {path}"
    run_id = result["run_id"]
    if not _RUN_ID.match(run_id):
        raise SubmitError("run_id", f"{where}: run_id {run_id!r} cannot name a board folder (use letters, digits, "
                                    "'.', '_', '+', '-', at most 200 characters, not starting with a dot).")
    if result["kind"] == "training run":
        _check_training_run(result, path, where)
    else:
        _check_submitted_samples(result, where)
    samples = path.parent / SAMPLES
    samples = samples if samples.is_file() else None
    if samples is not None:
        _check_samples_png(samples, where)
    log = _train_log(result, path)
    if log is not None:
        check_train_log(log, where=where)
    _check_not_on_board(result, path, board, where)
    return _add(board, run_id, [(path, results_mod.FILENAME), *([(samples, SAMPLES)] if samples else []),
                                *([(log, TRAIN_LOG)] if log else [])])


def _check_training_run(result: dict, path: Path, where: str) -> None:
    p = result["protocol"]
    protocol = _current_protocol(p["name"], p["version"], where)
    if p["hash"] != protocol.hash:
        raise SubmitError("protocol_hash", f"{where}: its protocol hash {p['hash']} is not the hash of "
                          f"{protocol.ref} ({protocol.hash}): the run was made under a modified protocol (a changed "
                          "setting without a version bump, or an edited result). Re-run it with an unmodified "
                          "genbench.")
    for key, want in (("dataset", protocol.dataset), ("model", protocol.model)):
        if result[key] != want:
            raise SubmitError("inconsistent", f"{where}: {key} is {result[key]!r}, but {protocol.ref} trains "
                                              f"{protocol.model} on {protocol.dataset}.")

    prov = result["provenance"]
    checkpoint = prov.get("checkpoint_sha256")
    if not isinstance(checkpoint, str) or not _SHA256.match(checkpoint):
        raise SubmitError("checksum", f"{where}: provenance.checkpoint_sha256 is {checkpoint!r}; a training run must "
                                      "record the sha256 of its weights (\"sha256:<64 hex digits>\"). Re-run "
                                      "evaluation with this genbench to write it.")
    _check_data_hash(prov.get("data_hash"), where, required=None)

    files = result.get("files") if isinstance(result.get("files"), dict) else {}
    weights = path.parent / Path(str(files.get("weights") or "model.pt")).name
    if weights.is_file():
        actual = sha256_file(weights)
        if actual != checkpoint:
            raise SubmitError("weights", f"{where}: {weights} has sha256 {actual}, but the result records "
                                         f"{checkpoint}: the weights are not the ones that were evaluated (replaced "
                                         "or modified after evaluation). Evaluate these weights again.")

    from genbench.evaluate import expected_metrics  # submit checks against the protocol; build never does

    expected = expected_metrics(protocol)
    missing = [m for m in expected if m not in result["metrics"]]
    if missing:
        raise SubmitError("metrics", f"{where}: metric(s) {', '.join(missing)} missing; the evaluation of "
                                     f"{protocol.ref} writes {', '.join(expected)}. Submit the result file that "
                                     "evaluation wrote, unedited.")
    ev = protocol.evaluation
    for name in expected:
        rec = result["metrics"][name]
        if entries.base_metric(name) not in _FIDELITY:
            continue
        want = {"extractor": ev.extractor, "n": ev.num_samples}
        if entries.base_metric(name) not in _NO_REFERENCE:
            want["reference"] = f"{protocol.dataset}:{ev.reference_split}"
        for key, value in want.items():
            if rec.get(key) != value:
                raise SubmitError("metrics", f"{where}: metrics.{name}.{key} is {rec.get(key)!r}, but "
                                             f"{protocol.ref} evaluates with {key} {value!r}.")
    if "snapshots" in result:
        _check_snapshots(result["snapshots"], protocol, where)


def _check_snapshots(section, protocol, where: str) -> None:
    """The `snapshots` section: {"every", "n", "metrics", "reference", "extractor", "curve": [{"step", METRIC:
    value or null}, ...]}, made as the protocol makes it."""
    def fail(what: str):
        raise SubmitError("snapshots", f"{where}: {what}. Submit the result file that evaluation wrote, unedited.")

    if not isinstance(section, dict):
        fail(f"snapshots is {type(section).__name__}, not an object")
    names, curve = section.get("metrics"), section.get("curve")
    if not (isinstance(names, list) and names and all(isinstance(m, str) for m in names)):
        fail(f"snapshots.metrics is {names!r}, not a list of the metric names on the curve")
    if not isinstance(curve, list) or not curve:
        fail("snapshots.curve is not a list of points")
    for i, point in enumerate(curve):
        step = point.get("step") if isinstance(point, dict) else None
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            fail(f"snapshots.curve[{i}] has no integer step")
        for m in names:
            v = point.get(m, "missing")
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                fail(f"snapshots.curve[{i}].{m} must be a number or null, found {v!r}")
    ev = protocol.evaluation
    want = {"every": getattr(protocol, "snapshot_every", None), "n": getattr(ev, "snapshot_samples", None),
            "extractor": ev.extractor, "reference": f"{protocol.dataset}:{ev.reference_split}"}
    if not want["every"]:
        fail(f"it has a snapshots section, but {protocol.ref} keeps no snapshots")
    for key, value in want.items():
        if value is not None and section.get(key) != value:
            fail(f"snapshots.{key} is {section.get(key)!r}, but {protocol.ref} scores its snapshots with "
                 f"{key} {value!r}")


def _current_protocol(name: str, version: int, where: str):
    """The registered protocol `name@version`, which must be the current version of `name`."""
    versions = sorted(key for key in registry.PROTOCOLS if key.split("@")[0] == name)
    if not versions:
        known = ", ".join(sorted({key.split("@")[0] for key in registry.PROTOCOLS}))
        raise SubmitError("unknown_protocol", f"{where}: unknown protocol {name}@{version}; this genbench knows "
                                              f"{known} (see `genbench list protocols`).")
    current = registry.protocol(name)
    if version < current.version:
        raise SubmitError("superseded", f"{where}: protocol {name}@{version} is superseded by {current.ref}, the "
                                        f"current version; results of older versions are not comparable. Re-run "
                                        f"under {current.ref}.")
    if version > current.version or f"{name}@{version}" not in registry.PROTOCOLS:
        raise SubmitError("unknown_protocol", f"{where}: unknown protocol version {name}@{version}; this genbench "
                                              f"knows up to {current.ref} (a newer genbench wrote the result? "
                                              "build the board with that version).")
    return current


def _check_submitted_samples(result: dict, where: str) -> None:
    p = result["protocol"]
    prefix, _, extractor = p["name"].partition("/")
    if prefix != "score" or extractor not in registry.EXTRACTORS:
        known = ", ".join(f"score/{e}" for e in registry.EXTRACTORS)
        raise SubmitError("unknown_protocol", f"{where}: unknown protocol {p['name']}@{p['version']} for submitted "
                                              f"samples; `genbench score` writes one of {known}.")
    current = reference.FEATURE_PIPELINE_VERSION
    if p["version"] < current:
        raise SubmitError("superseded", f"{where}: protocol {p['name']}@{p['version']} is superseded by "
                                        f"{p['name']}@{current}, the current version of the feature pipeline; "
                                        "score the samples again with this genbench.")
    if p["version"] > current:
        raise SubmitError("unknown_protocol", f"{where}: unknown protocol version {p['name']}@{p['version']}; this "
                                              f"genbench knows up to {p['name']}@{current}.")
    data_hash = result["provenance"].get("data_hash")
    _check_data_hash(data_hash, where, required="samples")

    if not result["metrics"]:
        raise SubmitError("metrics", f"{where}: no metrics; `genbench score` writes at least one.")
    from genbench.score import metric_name

    for name, rec in result["metrics"].items():
        base = entries.base_metric(name)
        if base not in _SCORED:
            raise SubmitError("metrics", f"{where}: metric {name} is not a sample-quality metric; submitted samples "
                                         f"carry {', '.join(sorted(_SCORED))} only.")
        if not rec.get("extractor"):
            raise SubmitError("metrics", f"{where}: metrics.{name} does not name its extractor; every sample-quality "
                                         "score must say which network made its features.")
        if rec["extractor"] != extractor or name != metric_name(base, extractor):
            raise SubmitError("metrics", f"{where}: metrics.{name} was computed with extractor {rec['extractor']!r}, "
                                         f"but the result's protocol is {p['name']} (its column would be "
                                         f"{metric_name(base, rec['extractor'])}).")
        if base not in _NO_REFERENCE and not rec.get("reference"):
            raise SubmitError("metrics", f"{where}: metrics.{name} does not name its reference (the data the "
                                         "samples were compared with).")


def _check_data_hash(data_hash, where: str, *, required: str | None) -> None:
    """data_hash: "sha256:<hex>" or {part: "sha256:<hex>" or null}, with `required` (if given) set."""
    hashes = data_hash if isinstance(data_hash, dict) else {"data": data_hash}
    ok = bool(hashes) and all(v is None or (isinstance(v, str) and _SHA256.match(v)) for v in hashes.values())
    ok = ok and any(v is not None for v in hashes.values())
    if required is not None:
        ok = ok and isinstance(data_hash, dict) and data_hash.get(required) is not None
    if not ok:
        need = f" with {required!r} set" if required else ""
        raise SubmitError("checksum", f"{where}: provenance.data_hash is {data_hash!r}; it must record the sha256 of "
                                      f"the data (\"sha256:<64 hex digits>\", or an object of them{need}).")


def _train_log(result: dict, path: Path) -> Path | None:
    """The training log the result names (`files.train_log`), if it lies beside the result file."""
    files = result.get("files") if isinstance(result.get("files"), dict) else {}
    name = files.get("train_log")
    if not isinstance(name, str) or not name.strip():
        return None
    log = path.parent / Path(name).name  # beside the result, whatever folder the name gives
    return log if log.is_file() else None


_WITHOUT_LOG = "Remove it to submit the result without its training curves"
_LOG_FIX = f"{_WITHOUT_LOG}, or put back the run's own {TRAIN_LOG}."


def check_train_log(log: Path, *, where: str = "rejected") -> int:
    """Check a training log as a board keeps it: UTF-8 JSON lines, each an object with an integer "step", at
    least one, at most MAX_TRAIN_LOG_BYTES. Returns the number of rows; raises SubmitError (reason "train_log")
    naming the file and the first bad line."""
    log = Path(log)
    size = log.stat().st_size
    if size > MAX_TRAIN_LOG_BYTES:
        raise SubmitError("train_log", f"{where}: {log} is {_size(size)}, more than the {_size(MAX_TRAIN_LOG_BYTES)} "
                                       f"a board keeps of a training log. {_WITHOUT_LOG}.")
    try:
        text = log.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SubmitError("train_log", f"{where}: {log} is not UTF-8 text (byte {e.start}); it is not a training "
                                       f"log genbench wrote. {_LOG_FIX}") from None
    rows = 0
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SubmitError("train_log", f"{where}: {log}, line {i}: not valid JSON ({e.msg}, column {e.colno}); "
                                           f"the log is damaged (cut short or edited). {_LOG_FIX}") from None
        if not isinstance(row, dict):
            raise SubmitError("train_log", f"{where}: {log}, line {i}: a JSON {type(row).__name__}, not an object "
                                           f"(one row of the log). {_LOG_FIX}")
        step = row.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise SubmitError("train_log", f"{where}: {log}, line {i}: step is {step!r}, not a training step (an "
                                           f"integer >= 0). {_LOG_FIX}")
        rows += 1
    if not rows:
        raise SubmitError("train_log", f"{where}: {log} is empty. {_LOG_FIX}")
    return rows


def _size(n: int) -> str:
    return f"{n / 2 ** 20:.1f} MiB" if n >= 2 ** 20 else f"{n / 2 ** 10:.1f} KiB" if n >= 2 ** 10 else f"{n} bytes"


def _check_samples_png(samples: Path, where: str) -> None:
    from PIL import Image

    with open(samples, "rb") as f:
        magic = f.read(len(_PNG_MAGIC))
    if magic != _PNG_MAGIC:
        raise SubmitError("samples", f"{where}: {samples} is not a PNG file; remove it or replace it with the grid "
                                     "the run saved.")
    try:
        with Image.open(samples) as im:
            size = im.size
            im.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # how PIL says "damaged"
        raise SubmitError("samples", f"{where}: {samples} is a damaged PNG ({e}).") from None
    if size[0] * size[1] > MAX_SAMPLES_PIXELS:
        raise SubmitError("samples", f"{where}: {samples} is {size[0]}x{size[1]} pixels, too large for a sample grid.")


def content_fingerprint(result: dict) -> str:
    """The result without the fields that name one submission (run_id, created), hashed: two files with the
    same fingerprint report the same numbers from the same run."""
    content = {k: v for k, v in result.items() if k not in ("run_id", "created")}
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def _same_source(result: dict) -> tuple | None:
    """What identifies the evaluated artefact: the weights of a training run under one protocol version (a later
    version that evaluates the same weights with more metrics is a row of its own), the samples (under one
    protocol and reference) of submitted samples."""
    prov, p = result["provenance"], result["protocol"]
    if result["kind"] == "training run":
        return ("weights", prov.get("checkpoint_sha256"), p["name"], p["version"])
    data_hash = prov.get("data_hash")
    samples = data_hash.get("samples") if isinstance(data_hash, dict) else None
    return ("samples", samples, p["name"], p["version"], p["hash"], result["dataset"]) if samples else None


def _check_not_on_board(result: dict, path: Path, board: Path, where: str) -> None:
    run_id = result["run_id"]
    fingerprint, source = content_fingerprint(result), _same_source(result)
    for folder, file in _board_results(board):
        if folder.name == run_id:
            raise SubmitError("duplicate_run_id", f"{where}: run {run_id} is already on the board ({file}).")
        try:
            other = results_mod.load(file)
        except GenbenchError as e:
            raise SubmitError("io", f"{where}: the board holds a damaged result, so duplicates cannot be ruled out: "
                                    f"{e}") from None
        if other["run_id"] == run_id:
            raise SubmitError("duplicate_run_id", f"{where}: run {run_id} is already on the board ({file}).")
        if content_fingerprint(other) == fingerprint:
            raise SubmitError("duplicate_content", f"{where}: the same result is already on the board as run "
                                                   f"{other['run_id']} ({file}); only run_id/created differ.")
        if source is not None and _same_source(other) == source:
            what = "weights" if source[0] == "weights" else "samples, scored the same way,"
            raise SubmitError("duplicate_content", f"{where}: the same {what} are already on the board as run "
                                                   f"{other['run_id']} ({file}).")


def _add(board: Path, run_id: str, files: list[tuple[Path, str]]) -> Path:
    """Copy `files` (source, name) into BOARD/results/<run_id>/ all at once: into a temporary folder inside the
    board first, then one rename; on any failure the temporary folder is removed and the board is unchanged."""
    parent = board / RESULTS
    target = parent / run_id
    tmp: Path | None = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".submit-", dir=parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the mode mkdir would
        for src, name in files:
            _copy(src, tmp / name)
        _fsync_dir(tmp)
        if target.exists():
            raise SubmitError("duplicate_run_id", f"run {run_id} was added to the board by another submit meanwhile.")
        os.replace(tmp, target)
        tmp = None
        _fsync_dir(parent)
    except OSError as e:
        raise SubmitError("io", f"could not add run {run_id} to {board} ({e}); nothing was added.") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return target / results_mod.FILENAME


def _copy(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _board_results(board: Path) -> list[tuple[Path, Path]]:
    """(folder, result file) of each entry under BOARD/results, sorted by folder name; temporary folders of an
    unfinished submit (names starting with a dot) are skipped."""
    parent = board / RESULTS
    if not parent.is_dir():
        return []
    found = []
    for folder in sorted(parent.iterdir(), key=lambda p: p.name):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        file = folder / results_mod.FILENAME
        if file.is_file():
            found.append((folder, file))
    return found
