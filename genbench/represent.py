"""Scoring a user's own representation: `genbench evaluate-representation CODES.npz`.

The file holds arrays, never pickles (it is read with `allow_pickle=False`):

    codes          (N, D) float     the representation of N observations
    factors        (N, F) integer   their ground-truth factor classes
    codes_test     (M, D) float     optional held-out pair, for the scores that fit a predictor
    factors_test   (M, F) integer   (DCI, SAP, Explicitness); without them those scores split (codes, factors)
                                    as genbench.metrics.disentanglement.evaluate_fixed documents

Only the scores that need nothing but a fixed sample are computed (MIG, DCI, SAP, Modularity, Explicitness).
The BetaVAE and FactorVAE scores draw new observations with one factor held fixed and encode them, which
needs the model itself; `genbench run` computes them for the baselines.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from genbench import GenbenchError, results
from genbench.files import sha256_file

KIND = "submitted representation"
MIN_POINTS = 100  # below this the histogram and predictor-based scores say nothing


def load_codes(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a CODES.npz, checked: shapes, dtypes, finite values, matching lengths and dimensions."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":  # np.load would take any other bytes for a pickle
            raise GenbenchError(f"{path}: not a readable .npz file (no zip header). Write it with "
                                "np.savez(path, codes=codes, factors=factors).")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise GenbenchError(f"{path}: holds Python objects (pickled arrays), which genbench never loads; "
                                "save plain numeric arrays with np.savez(path, codes=..., factors=...).") from None
        raise GenbenchError(f"{path}: not a readable .npz file ({e}).") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise GenbenchError(f"{path}: not a readable .npz file ({e}). Write it with "
                            "np.savez(path, codes=codes, factors=factors).") from None

    missing = [k for k in ("codes", "factors") if k not in arrays]
    if missing:
        raise GenbenchError(f"{path}: missing array(s) {', '.join(missing)}; found {', '.join(arrays) or 'none'}. "
                            "Expected codes (N, D) float and factors (N, F) integer classes.")
    if ("codes_test" in arrays) != ("factors_test" in arrays):
        raise GenbenchError(f"{path}: codes_test and factors_test come together; found only one of them.")
    out = {}
    for suffix in ("", "_test"):
        if f"codes{suffix}" not in arrays:
            continue
        codes = _codes(arrays[f"codes{suffix}"], f"{path}: codes{suffix}")
        factors = _factors(arrays[f"factors{suffix}"], f"{path}: factors{suffix}")
        if len(codes) != len(factors):
            raise GenbenchError(f"{path}: codes{suffix} has {len(codes)} rows but factors{suffix} has "
                                f"{len(factors)}; row i of both must describe the same observation.")
        out[f"codes{suffix}"], out[f"factors{suffix}"] = codes, factors
    if "codes_test" in out:
        if out["codes_test"].shape[1] != out["codes"].shape[1]:
            raise GenbenchError(f"{path}: codes has {out['codes'].shape[1]} dimensions but codes_test has "
                                f"{out['codes_test'].shape[1]}.")
        if out["factors_test"].shape[1] != out["factors"].shape[1]:
            raise GenbenchError(f"{path}: factors has {out['factors'].shape[1]} factors but factors_test has "
                                f"{out['factors_test'].shape[1]}.")
    if len(out["codes"]) < MIN_POINTS:
        raise GenbenchError(f"{path}: only {len(out['codes'])} points; the scores need at least {MIN_POINTS} "
                            "(disentanglement_lib uses 10,000 train and 5,000 test points).")
    return out


def _codes(a: np.ndarray, where: str) -> np.ndarray:
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.dtype.kind not in "fiu":
        raise GenbenchError(f"{where} must be a numeric (N, D) array, got {a.dtype} {a.shape}.")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        rows = np.flatnonzero(~np.isfinite(a).all(1))
        raise GenbenchError(f"{where} holds NaN or inf in {len(rows)} rows (first: row {rows[0]}); "
                            "fix the encoder output or drop those rows from codes and factors alike.")
    return a


def _factors(a: np.ndarray, where: str) -> np.ndarray:
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise GenbenchError(f"{where} must be an (N, F) array of integer classes, got shape {a.shape}.")
    if a.dtype.kind == "f":
        if not (np.isfinite(a).all() and (a == np.round(a)).all()):
            raise GenbenchError(f"{where} must hold integer classes (0, 1, 2, ...); found non-integer values. "
                                "Map continuous factor values to their class indices first.")
    elif a.dtype.kind not in "iub":
        raise GenbenchError(f"{where} must hold integer classes, got {a.dtype}.")
    return a.astype(np.int64)


def settings_hash(seed: int) -> str:
    """Hash of every setting that can move a score (the metrics' Settings with this seed)."""
    import hashlib
    import json

    from genbench.metrics import disentanglement as dis

    blob = json.dumps(dis.settings_dict(dis.Settings(seed=seed)), sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def evaluate_codes(arrays: dict[str, np.ndarray], *, seed: int = 0) -> dict[str, dict]:
    """The fixed-sample disentanglement scores of loaded arrays, as result metric records."""
    from genbench.metrics import disentanglement as dis

    settings = dis.Settings(seed=seed)
    return dis.evaluate_fixed(arrays["codes"], arrays["factors"], arrays.get("codes_test"),
                              arrays.get("factors_test"), settings=settings)


def evaluate_codes_file(path: str | Path, *, seed: int = 0) -> dict[str, dict]:
    return evaluate_codes(load_codes(path), seed=seed)


def result_for_codes(path: str | Path, *, seed: int = 0) -> dict:
    """A result file (kind "submitted representation") for the scores of CODES.npz, with what they need and
    how they were made; the model-based scores are listed under `not_computed` with the reason."""
    from genbench.metrics import disentanglement as dis

    path = Path(path)
    arrays = load_codes(path)
    scores = evaluate_codes(arrays, seed=seed)
    return {
        "schema": results.SCHEMA,
        "kind": KIND,
        "run_id": f"codes-{sha256_file(path)[7:19]}",
        "created": results.now(),
        "model": path.stem,
        "dataset": "codes",
        "seed": seed,
        "protocol": {"name": "evaluate-representation", "version": dis.VERSION, "hash": settings_hash(seed)},
        "metrics": scores,
        "not_computed": dict(dis.MODEL_SCORES),
        "codes": {"path": str(path.resolve()), "n": len(arrays["codes"]), "dims": arrays["codes"].shape[1],
                  "factors": arrays["factors"].shape[1], "n_test": len(arrays.get("codes_test", ()))},
        "compute": {"parameters": None, "train_seconds": None, "device": "cpu", "sample_images_per_s": None},
        "provenance": results.provenance(data_hash={"codes": sha256_file(path)}, checkpoint_sha256=None),
    }
