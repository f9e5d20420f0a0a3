"""Disentanglement scores of a representation against ground-truth factors, computed as
google-research/disentanglement_lib computes them: BetaVAE, FactorVAE, MIG, DCI, SAP, modularity, explicitness.

A representation is scored either from fixed arrays (codes (N, D) with their factors (N, F): `mig`, `dci`,
`sap`, `modularity_explicitness`, `evaluate_fixed`) or from a model, by sampling factors from a `GroundTruth`
space and encoding observations rendered from them (`beta_vae_score`, `factor_vae_score`, `evaluate`). Every
function returns {score name: genbench.results.metric record}; all scores are higher-is-better.

Provenance
----------
- BetaVAE score: Higgins et al., "beta-VAE: Learning basic visual concepts with a constrained variational
  framework" (ICLR 2017). FactorVAE score: Kim & Mnih, "Disentangling by factorising" (ICML 2018). MIG: Chen,
  Li, Grosse & Duvenaud, "Isolating sources of disentanglement in VAEs" (NeurIPS 2018). DCI: Eastwood &
  Williams, "A framework for the quantitative evaluation of disentangled representations" (ICLR 2018). SAP:
  Kumar, Sattigeri & Balakrishnan, "Variational inference of disentangled latent concepts from unlabeled
  observations" (ICLR 2018). Modularity and explicitness: Ridgeway & Mozer, "Learning deep disentangled
  embeddings with the F-statistic loss" (NeurIPS 2018).
- Reference implementation: google-research/disentanglement_lib, evaluation/metrics/{beta_vae, factor_vae,
  mig, dci, sap_score, modularity_explicitness, utils}.py and their *_test.py, with the settings of its study
  configs (evaluation.random_seed = 0; 10,000 train / 5,000 test points; batch 64 and prune threshold 0.05
  for the vote-based scores, 10,000 points for FactorVAE's variances; 20 histogram bins; SAP on discrete
  factors). Read for what it computes; the code here is genbench's own.
- Checked in tests/metrics/test_disentanglement.py: the reference's own test bands (identity code high,
  random/collapsed low, duplicated code MIG ~ 0 and DCI completeness ~ 1 - ln2/ln10), its closed forms
  (DCI and modularity on hand-built matrices, the 3-bin histogram example, discrete entropies), mutual
  information against sklearn.metrics.mutual_info_score, the boosting of `dci_estimator="hist_gbt"`
  against sklearn's GradientBoostingClassifier (identical importances on codes with few distinct values),
  BetaVAE / FactorVAE / fixed-sample draws against a literal point-by-point rendering of the reference's
  procedure (identical scores), n_jobs = 1 vs 2 and seed reproducibility. Not checked: a run of
  disentanglement_lib itself (it needs TensorFlow 1, which has no build for this Python).

Sampling, as in the reference
-----------------------------
disentanglement_lib draws each score from its own RandomState(0). The fixed-sample scores (MIG, DCI, SAP,
modularity/explicitness) each draw num_train training points and then num_eval test points, 16 at a time
(`sample_batch_size`), so they all see the same two sets: `evaluate` draws them once and scores them all.
The BetaVAE and FactorVAE scores draw from a fresh RandomState(seed) each, in the reference's order (BetaVAE
per point: the fixed factor, then two batches of factors; FactorVAE: the variance sample in one call, then per
point the fixed factor and one batch). These reproduce the reference's draws when `sample_factors` draws as
disentanglement_lib's state spaces do (one `randint(size, n)` per factor, in order) and rendering draws no
randomness. Only factors are drawn in that order; encoding is batched freely (`encode_batch_size`), which
changes nothing for a deterministic encoder.

Conventions, and where the reference's quirks are kept
------------------------------------------------------
- Histogram discretisation (MIG, modularity): each code dimension gets num_bins equal-width bins between its
  own min and max (np.histogram's edges), labelled with np.digitize against all edges but the last, so the
  maximum falls in the last bin. Kept as is, including its sensitivity to outliers.
- Mutual information and entropies are discrete, in nats, from contingency tables (= mutual_info_score).
  MIG divides each factor's gap between its two most informative codes by the factor's entropy H(v_k),
  and averages over factors.
- DCI: importances are sklearn's impurity-based feature_importances_ of GradientBoostingClassifier() per
  factor (sum to 1 per factor); disentanglement and completeness are 1 - entropy with base F (resp. D) of
  the rows (columns) after adding 1e-11 to every importance, weighted by row (column) share of the total
  importance (uniform if all are 0), as the reference. Informativeness is the reference's mean prediction
  ACCURACY over factors, not Eastwood & Williams' error, so higher is better; the record's value is the test
  accuracy, the train accuracy sits in the details. Seeded trees (see disentanglement_predictors).
- SAP: with discrete factors (the reference's study setting) the score matrix holds test accuracies of
  one linear SVM per (code, factor), not the paper's R^2; an uninformative code still scores its
  classifier's chance accuracy, and only the gap between the top two codes counts. `sap_continuous=True`
  gives the reference's continuous variant: squared correlation on the training points only (0 when a
  code's variance is <= 1e-12).
- Modularity uses the same discretised mutual information; a code with no information about any factor
  scores 0 and still counts in the mean (the reference's convention). Explicitness is the mean over factors
  of the macro one-vs-rest ROC-AUC of LogisticRegression() on codes standardised with the training mean
  and standard deviation.
- BetaVAE score: LogisticRegression() on the mean absolute code difference of batch pairs (sklearn's
  current defaults, lbfgs and multinomial; sklearn < 0.22, which the reference was first run with, used
  liblinear one-vs-rest). FactorVAE score: majority vote of (code with least normalised variance -> fixed
  factor); the value is the eval accuracy. The reference files a vote under the code's position among the
  ACTIVE codes and reports the number of codes as num_active_dims; the accuracy is the same either way, here
  votes go to the true code index and num_active_dims counts active codes.
- Classifiers keep sklearn's defaults except where noted; non-converged lbfgs fits are what the reference
  gets too and are recorded in the details (`converged`).

Degenerate inputs (never a crash; a GenbenchWarning names the problem)
---------------------------------------------------------------------
- A factor with one value on the training points carries no information: it is left out of every
  fixed-sample score (the reference divides by its zero entropy in MIG and fails to fit a classifier in DCI,
  SAP and explicitness) and of the factors the model scores fix. No factor left: every value is None.
- A collapsed code (all dimensions constant): MIG, DCI disentanglement/completeness, SAP and modularity are
  0 and FactorVAE is 0 (all codes pruned, as the reference); informativeness (majority-class accuracy),
  explicitness (AUC 0.5) and BetaVAE (about 1/F) stay at their chance levels, which is what they mean.
- A score undefined at the given size is None: DCI disentanglement with one factor (entropy base 1),
  completeness with one code, modularity with one factor. MIG and SAP with a single code take 0 as the
  second-best code.
- Constant code dimensions are standardised with a standard deviation of 1 for explicitness (the reference
  divides by 0 and the regression fails on NaN).
"""

from __future__ import annotations

import dataclasses
import math
import typing
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats

from genbench import GenbenchError, GenbenchWarning
from genbench.metrics import disentanglement_predictors as predictors
from genbench.metrics import disentanglement_sampling as sampling
from genbench.results import metric


class GroundTruth(typing.Protocol):
    """A space of ground-truth factors (e.g. dSprites: shape, scale, orientation, x, y)."""

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]

    def sample_factors(self, n: int, random_state: np.random.RandomState) -> np.ndarray:
        """(n, F) int64 factor values, factor j in [0, factor_sizes[j])."""

    def observations(self, factors: np.ndarray) -> np.ndarray:
        """(n, ...) inputs of the representation for (n, F) factors."""


Represent = Callable[[np.ndarray], np.ndarray]  # observations (n, ...) -> codes (n, D); called in batches

DCI_ESTIMATORS = {"gbt": predictors.gbt_factor, "hist_gbt": predictors.hist_gbt_factor}


VERSION = 1  # bump when a change can move a score; recorded with scores of user representations


@dataclass(frozen=True)
class Settings:
    """disentanglement_lib's study settings by default."""

    num_train: int = 10_000          # training points (BetaVAE/FactorVAE: training batches)
    num_eval: int = 5_000            # evaluation points / batches
    batch_size: int = 64             # observations per BetaVAE / FactorVAE point
    num_variance_estimate: int = 10_000   # FactorVAE: points for the global variance of each code
    prune_threshold: float = 0.05    # FactorVAE: codes with standard deviation below this are ignored
    num_bins: int = 20               # histogram bins per code for MIG and modularity
    seed: int = 0                    # every RandomState, and the seed of the trees and SVMs
    dci_estimator: str = "gbt"       # "gbt" (sklearn, the reference) or "hist_gbt" (same boosting on bins, faster)
    n_jobs: int = 2                  # processes for the per-factor fits (DCI, SAP, explicitness); -1: all cores
    sap_continuous: bool = False     # the reference's study scores SAP on discrete factors
    sample_batch_size: int = 16      # the reference draws fixed samples this many at a time (it moves the draws)
    encode_batch_size: int = 1024    # at most this many observations per call of `represent`
    train_fraction: float = 0.9      # evaluate_fixed without test arrays: the first ceil(0.9 N) points train

    def __post_init__(self):
        for name in ("num_train", "num_eval", "num_variance_estimate", "num_bins", "sample_batch_size",
                     "encode_batch_size"):
            if getattr(self, name) < 1:
                raise GenbenchError(f"Settings.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise GenbenchError(f"Settings.batch_size must be >= 2 (FactorVAE takes a variance over each batch), "
                                f"got {self.batch_size}")
        if self.dci_estimator not in DCI_ESTIMATORS:
            raise GenbenchError(f"Settings.dci_estimator must be one of {sorted(DCI_ESTIMATORS)}, "
                                f"got {self.dci_estimator!r}")
        if not 0 < self.train_fraction < 1:
            raise GenbenchError(f"Settings.train_fraction must be in (0, 1), got {self.train_fraction}")
        if self.n_jobs is not None and self.n_jobs != -1 and self.n_jobs < 1:
            raise GenbenchError(f"Settings.n_jobs must be >= 1, or -1 for all cores, got {self.n_jobs}")


FIXED_SAMPLE_SCORES: tuple[str, ...] = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness",
                                        "sap", "modularity", "explicitness")
# Every score's record name -> its display name, in the order reports show them.
SCORE_NAMES: dict[str, str] = {
    "beta_vae": "BetaVAE score", "factor_vae": "FactorVAE score", "mig": "MIG",
    "dci_disentanglement": "DCI disentanglement", "dci_completeness": "DCI completeness",
    "dci_informativeness": "DCI informativeness", "sap": "SAP", "modularity": "Modularity",
    "explicitness": "Explicitness",
}
MODEL_SCORES: dict[str, str] = {
    "beta_vae": "draws pairs of batches that share one factor's value and encodes them; needs the encoder and "
                "a ground-truth renderer, not fixed (code, factor) arrays",
    "factor_vae": "draws batches with one factor held fixed and encodes them; needs the encoder and a "
                  "ground-truth renderer, not fixed (code, factor) arrays",
}


def _warn(message: str) -> None:
    warnings.warn(message, GenbenchWarning, stacklevel=3)


# --------------------------------------------------------------------------------------------- inputs

def _codes(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise GenbenchError(f"{name} must be codes of shape (N, D) with N, D >= 1, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise GenbenchError(f"{name} contains NaN or inf; the encoder is broken or diverged")
    return x


def _factors(y, name: str, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[0] != n or y.shape[1] == 0:
        raise GenbenchError(f"{name} must be factor values of shape ({n}, F) matching the codes, got {y.shape}")
    return y


@dataclass
class _Data:
    """Validated codes and factors; `used`: indices of factors with more than one training value."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    names: tuple[str, ...]
    used: list[int]


def _prepare(x_train, y_train, x_test=None, y_test=None, names=None, *, need_test: bool = False) -> _Data:
    if need_test and (x_test is None or y_test is None):
        raise GenbenchError("this score is trained on codes_train and evaluated on codes_test: pass both test "
                            "arrays, or call evaluate_fixed, which splits fixed data as the reference does")
    x_train = _codes(x_train, "codes_train")
    y_train = _factors(y_train, "factors_train", len(x_train))
    if x_test is not None:
        x_test = _codes(x_test, "codes_test")
        y_test = _factors(y_test, "factors_test", len(x_test))
        if x_test.shape[1] != x_train.shape[1] or y_test.shape[1] != y_train.shape[1]:
            raise GenbenchError(f"train and test differ in shape: codes {x_train.shape[1]} vs {x_test.shape[1]} "
                                f"dimensions, factors {y_train.shape[1]} vs {y_test.shape[1]}")
    F = y_train.shape[1]
    names = tuple(names) if names is not None else tuple(f"factor_{j}" for j in range(F))
    if len(names) != F:
        raise GenbenchError(f"{len(names)} factor names for {F} factors")
    used = [j for j in range(F) if np.unique(y_train[:, j]).size > 1]
    if len(used) < F:
        dropped = [names[j] for j in range(F) if j not in used]
        _warn(f"factor(s) {', '.join(dropped)} take a single value on the {len(y_train)} training points and "
              "carry no information; they are left out of every score" + ("" if used else ", so none is defined"))
    if np.ptp(x_train, axis=0).max() == 0:
        _warn(f"all {x_train.shape[1]} code dimensions are constant on the training points: the representation "
              "has collapsed (MIG, DCI, SAP, modularity 0; informativeness, explicitness at chance level)")
    return _Data(x_train, y_train, x_test, y_test, names, used)


def _split(x, y, fraction: float):
    """The reference's split of fixed data (utils.split_train_test): first ceil(fraction N) points train."""
    n_train = int(math.ceil(len(x) * fraction))
    if n_train >= len(x):
        raise GenbenchError(f"{len(x)} points are too few to split {fraction:.0%} / {1 - fraction:.0%} into "
                            "train and test; pass codes_test and factors_test")
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


# ------------------------------------------------------------------------------- discrete information

def discretize(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """(N, D) float codes -> (N, D) int bin labels in 1..num_bins, per dimension (the reference's
    `_histogram_discretize`: equal-width bins over the dimension's own range)."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, i], bins=num_bins)
        out[:, i] = np.digitize(codes[:, i], edges[:-1])
    return out


def _inverse(labels: np.ndarray) -> tuple[np.ndarray, int]:
    values, inverse = np.unique(labels, return_inverse=True)
    return inverse.ravel(), values.size


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Discrete mutual information I(a; b) in nats of two label vectors, from their contingency table."""
    ia, na = _inverse(np.asarray(a))
    ib, nb = _inverse(np.asarray(b))
    joint = np.bincount(ia * nb + ib, minlength=na * nb).reshape(na, nb) / len(ia)
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = np.sum(joint[nz] * (np.log(joint[nz]) - np.log(np.outer(pa, pb)[nz])))
    return max(float(mi), 0.0)  # rounding can leave -1e-17 for independent labels


def entropy(labels: np.ndarray) -> float:
    """Discrete entropy in nats (= I(v; v), as the reference computes it)."""
    p = np.bincount(_inverse(np.asarray(labels))[0]) / len(labels)
    return float(-np.sum(p * np.log(p)))


def _mi_matrix(codes: np.ndarray, factors: np.ndarray, used: list[int], num_bins: int) -> np.ndarray:
    """(D, len(used)) mutual information between discretised codes and the used factors."""
    binned = discretize(codes, num_bins)
    return np.array([[mutual_information(binned[:, i], factors[:, j]) for j in used]
                     for i in range(codes.shape[1])]).reshape(codes.shape[1], len(used))


def _top_two_gap(matrix: np.ndarray) -> np.ndarray:
    """Per column: largest minus second largest entry (0 stands in for a missing second)."""
    ordered = np.sort(matrix, axis=0)[::-1]
    second = ordered[1] if len(ordered) > 1 else np.zeros(matrix.shape[1])
    return ordered[0] - second


def _per_factor(data: _Data, values) -> dict:
    out = {name: None for name in data.names}
    for j, v in zip(data.used, values):
        out[data.names[j]] = None if v is None else float(v)
    return out


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


# -------------------------------------------------------------------------------------------- MIG

def _mig(data: _Data, mi: np.ndarray, settings: Settings) -> dict:
    x, y = data.x_train, data.y_train
    if not data.used:
        return {"mig": metric(None, higher_is_better=True, n_train=len(x), num_bins=settings.num_bins)}
    if x.shape[1] < 2:
        _warn("MIG with a single code dimension: the gap is taken to a second code with zero information")
    H = np.array([entropy(y[:, j]) for j in data.used])
    gaps = _top_two_gap(mi) / H
    return {"mig": metric(float(np.mean(gaps)), higher_is_better=True, n_train=len(x), num_bins=settings.num_bins,
                          per_factor=_per_factor(data, gaps),
                          factor_entropy_nats=_per_factor(data, H),
                          mutual_information_nats=mi.tolist())}


def mig(codes, factors, settings: Settings = Settings(), *, factor_names: Sequence[str] | None = None) -> dict:
    """Mutual information gap (Chen et al. 2018) on all the given points: {"mig": record}."""
    data = _prepare(codes, factors, names=factor_names)
    return _mig(data, _mi_matrix(data.x_train, data.y_train, data.used, settings.num_bins), settings)


# -------------------------------------------------------------------------------------------- DCI

def disentanglement_completeness(importance: np.ndarray):
    """DCI disentanglement and completeness of an importance matrix R (D codes, F factors).

    Returns (disentanglement, completeness, per-code disentanglement (D,), per-factor completeness (F,));
    disentanglement is None when F < 2 and completeness None when D < 2 (entropy base 1).
    """
    R = np.abs(np.asarray(importance, dtype=np.float64))
    D, F = R.shape
    weights_total = R.sum() if R.sum() > 0 else None

    def score(M, base):  # rows of M are distributions over `base` outcomes
        per = 1.0 - stats.entropy(M.T + 1e-11, base=base)   # the reference's 1e-11 keeps log(0) away
        shares = M.sum(1) / weights_total if weights_total else np.full(len(M), 1.0 / len(M))
        return float(np.sum(per * shares)), per

    d, per_code = score(R, F) if F > 1 else (None, np.full(D, np.nan))
    c, per_factor = score(R.T, D) if D > 1 else (None, np.full(F, np.nan))
    if weights_total is None:  # the reference's answer up to rounding
        d, c = (None if d is None else 0.0), (None if c is None else 0.0)
    return d, c, per_code, per_factor


def _dci(data: _Data, settings: Settings) -> dict:
    n_train, n_eval = len(data.x_train), len(data.x_test)
    common = dict(n_train=n_train, n_eval=n_eval, estimator=settings.dci_estimator, seed=settings.seed)
    if not data.used:
        return {k: metric(None, higher_is_better=True, **common)
                for k in ("dci_disentanglement", "dci_completeness", "dci_informativeness")}
    fit = DCI_ESTIMATORS[settings.dci_estimator]
    tasks = [(data.x_train, data.y_train[:, j], data.x_test, data.y_test[:, j], settings.seed) for j in data.used]
    classes = [np.unique(data.y_train[:, j]).size for j in data.used]
    out = predictors.map_factors(fit, tasks, [k if k > 2 else 1 for k in classes], settings.n_jobs)
    R = np.stack([o[0] for o in out], axis=1)                   # (D, F_used)
    train_acc, test_acc = [o[1] for o in out], [o[2] for o in out]
    d, c, per_code, per_factor = disentanglement_completeness(R)
    if len(data.used) < 2:
        _warn("DCI disentanglement is undefined with fewer than 2 informative factors; it is None")
    if R.shape[0] < 2:
        _warn("DCI completeness is undefined with a single code dimension; it is None")
    factors = [data.names[j] for j in data.used]
    return {
        "dci_disentanglement": metric(d, higher_is_better=True, **common, per_code=_floats(per_code),
                                      importance_matrix=R.tolist(), importance_factors=factors),
        "dci_completeness": metric(c, higher_is_better=True, **common, per_factor=_per_factor(data, per_factor)),
        "dci_informativeness": metric(float(np.mean(test_acc)), higher_is_better=True, **common,
                                      kind="mean test accuracy", train=float(np.mean(train_acc)),
                                      per_factor_test=_per_factor(data, test_acc),
                                      per_factor_train=_per_factor(data, train_acc)),
    }


def _floats(a) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=np.float64)]


def dci(codes_train, factors_train, codes_test, factors_test, settings: Settings = Settings(), *,
        factor_names: Sequence[str] | None = None) -> dict:
    """DCI disentanglement, completeness and informativeness (Eastwood & Williams 2018), importances from
    gradient-boosted trees fitted per factor on the training points, accuracy on both sets."""
    data = _prepare(codes_train, factors_train, codes_test, factors_test, factor_names, need_test=True)
    return _dci(data, settings)


# -------------------------------------------------------------------------------------------- SAP

def _sap(data: _Data, settings: Settings) -> dict:
    x, y = data.x_train, data.y_train
    common = dict(n_train=len(x), n_eval=None if settings.sap_continuous else len(data.x_test),
                  factors="continuous" if settings.sap_continuous else "discrete")
    if not data.used:
        return {"sap": metric(None, higher_is_better=True, **common)}
    if settings.sap_continuous:
        # squared correlation, training points only; a code with variance <= 1e-12 scores 0 (the reference)
        xc, yc = x - x.mean(0), (y[:, data.used] - y[:, data.used].mean(0)).astype(np.float64)
        cov = xc.T @ yc / (len(x) - 1)                                   # (D, F_used)
        var_x, var_y = xc.var(0, ddof=1), yc.var(0, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.where(var_x[:, None] > 1e-12, cov ** 2 / (var_x[:, None] * var_y[None, :]), 0.0)
    else:
        tasks = [(x, y[:, j], data.x_test, data.y_test[:, j], settings.seed) for j in data.used]
        costs = [np.unique(y[:, j]).size for j in data.used]
        scores = np.stack(predictors.map_factors(predictors.sap_factor, tasks, costs, settings.n_jobs), axis=1)
    if x.shape[1] < 2:
        _warn("SAP with a single code dimension: the gap is taken to a second code scoring 0")
    gaps = _top_two_gap(scores)
    return {"sap": metric(float(np.mean(gaps)), higher_is_better=True, **common,
                          per_factor=_per_factor(data, gaps), score_matrix=scores.tolist())}


def sap(codes_train, factors_train, codes_test, factors_test, settings: Settings = Settings(), *,
        factor_names: Sequence[str] | None = None) -> dict:
    """Separated attribute predictability (Kumar et al. 2018): {"sap": record}."""
    data = _prepare(codes_train, factors_train, codes_test, factors_test, factor_names,
                    need_test=not settings.sap_continuous)
    return _sap(data, settings)


# ------------------------------------------------------------------------ modularity, explicitness

def modularity_from_mi(mi: np.ndarray) -> float | None:
    """Ridgeway & Mozer's modularity from a (D, F) mutual-information matrix: per code, 1 - (sum of squared
    MI off its best factor) / (best squared MI * (F - 1)); 0 for a code without information; mean over
    codes. None for F < 2."""
    sq = np.square(np.asarray(mi, dtype=np.float64))
    if sq.shape[1] < 2:
        return None
    best = sq.max(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_code = np.where(best > 0, 1.0 - (sq.sum(1) - best) / (best * (sq.shape[1] - 1)), 0.0)
    return float(per_code.mean())


def _modularity(data: _Data, mi: np.ndarray, settings: Settings) -> dict:
    if data.used and len(data.used) < 2:
        _warn("modularity is undefined with fewer than 2 informative factors; it is None")
    value = modularity_from_mi(mi) if data.used else None
    return {"modularity": metric(value, higher_is_better=True, n_train=len(data.x_train),
                                 num_bins=settings.num_bins)}


def _explicitness(data: _Data, settings: Settings) -> dict:
    common = dict(n_train=len(data.x_train), n_eval=len(data.x_test))
    if not data.used:
        return {"explicitness": metric(None, higher_is_better=True, **common)}
    mean, std = data.x_train.mean(0), data.x_train.std(0)
    std = np.where(std > 0, std, 1.0)   # the reference divides by 0 here; a constant code becomes 0
    x_train, x_test = (data.x_train - mean) / std, (data.x_test - mean) / std
    tasks = [(x_train, data.y_train[:, j], x_test, data.y_test[:, j]) for j in data.used]
    costs = [np.unique(data.y_train[:, j]).size for j in data.used]
    out = predictors.map_factors(predictors.explicitness_factor, tasks, costs, settings.n_jobs)
    test = [o[1] for o in out]
    if any(v is None for v in test):
        _warn("explicitness: some factors have no class that is both present and absent in the test points; "
              "they are left out of the mean")
    return {"explicitness": metric(_mean(test), higher_is_better=True, **common, kind="mean test ROC-AUC",
                                   train=_mean([o[0] for o in out]), per_factor_test=_per_factor(data, test),
                                   converged=all(o[2] for o in out))}


def modularity_explicitness(codes_train, factors_train, codes_test, factors_test, settings: Settings = Settings(),
                            *, factor_names: Sequence[str] | None = None) -> dict:
    """Modularity (mutual information on the training points) and explicitness (Ridgeway & Mozer 2018)."""
    data = _prepare(codes_train, factors_train, codes_test, factors_test, factor_names, need_test=True)
    mi = _mi_matrix(data.x_train, data.y_train, data.used, settings.num_bins)
    return {**_modularity(data, mi, settings), **_explicitness(data, settings)}


# ------------------------------------------------------------------------------------ fixed arrays

def evaluate_fixed(codes_train, factors_train, codes_test=None, factors_test=None, settings: Settings = Settings(),
                   *, factor_names: Sequence[str] | None = None) -> dict:
    """Every score that needs only (codes, factors) arrays: MIG, DCI, SAP, modularity, explicitness.

    With test arrays: MIG and modularity on the training points, the rest trained on them and evaluated on
    the test points (the reference's sampled protocol). Without: the reference's convention for fixed data
    (its *_on_fixed_data functions), MIG on all points and DCI / SAP on the first ceil(train_fraction N)
    points for training and the rest for testing; modularity, which the reference has only sampled, uses all
    points like MIG and explicitness uses the split like DCI.
    """
    if (codes_test is None) != (factors_test is None):
        raise GenbenchError("pass both codes_test and factors_test, or neither")
    if codes_test is None:
        whole = _prepare(codes_train, factors_train, names=factor_names)
        x_tr, y_tr, x_te, y_te = _split(whole.x_train, whole.y_train, settings.train_fraction)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GenbenchWarning)  # already said for the whole set
            data = _prepare(x_tr, y_tr, x_te, y_te, whole.names)
        data.used = [j for j in data.used if j in whole.used]
    else:
        data = whole = _prepare(codes_train, factors_train, codes_test, factors_test, factor_names)
    mi = _mi_matrix(whole.x_train, whole.y_train, whole.used, settings.num_bins)
    return {**_mig(whole, mi, settings), **_dci(data, settings), **_sap(data, settings),
            **_modularity(whole, mi, settings), **_explicitness(data, settings)}


# --------------------------------------------------------------------------------------- BetaVAE

def beta_vae_score(ground_truth: GroundTruth, represent: Represent, settings: Settings = Settings()) -> dict:
    """BetaVAE score (Higgins et al. 2017): eval accuracy of a logistic regression that names the factor two
    batches share from their mean absolute code difference. {"beta_vae": record}."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    common = dict(n_train=settings.num_train, n_eval=settings.num_eval, batch_size=settings.batch_size,
                  seed=settings.seed)
    varying = sampling.fixable_factors(ground_truth, "BetaVAE score")
    if len(varying) < 2:
        _warn("BetaVAE score needs at least 2 factors with more than one value; it is None")
        return {"beta_vae": metric(None, higher_is_better=True, **common)}
    rs = np.random.RandomState(settings.seed)
    x_train, y_train = sampling.beta_vae_points(ground_truth, represent, settings.num_train, rs, varying, settings)
    if not x_train.any():
        _warn("BetaVAE score: the representation is constant on every training batch (collapsed); "
              "the classifier can only guess")
    # random_state as the reference passes it; lbfgs draws nothing from it, so the eval draws are unchanged
    model = LogisticRegression(C=1.0, solver="lbfgs", max_iter=100, random_state=rs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x_train, y_train)
    train_accuracy = float(np.mean(model.predict(x_train) == y_train))
    x_eval, y_eval = sampling.beta_vae_points(ground_truth, represent, settings.num_eval, rs, varying, settings)
    eval_accuracy = float(np.mean(model.predict(x_eval) == y_eval))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return {"beta_vae": metric(eval_accuracy, higher_is_better=True, **common, kind="eval accuracy",
                               train=train_accuracy, converged=converged)}


# ------------------------------------------------------------------------------------- FactorVAE

def factor_vae_score(ground_truth: GroundTruth, represent: Represent, settings: Settings = Settings()) -> dict:
    """FactorVAE score (Kim & Mnih 2018): eval accuracy of the majority-vote classifier code -> fixed factor,
    codes normalised by their global variance and pruned below prune_threshold. {"factor_vae": record}."""
    common = dict(n_train=settings.num_train, n_eval=settings.num_eval, batch_size=settings.batch_size,
                  num_variance_estimate=settings.num_variance_estimate, prune_threshold=settings.prune_threshold,
                  seed=settings.seed)
    varying = sampling.fixable_factors(ground_truth, "FactorVAE score")
    if not varying:
        _warn("FactorVAE score needs a factor with more than one value; it is None")
        return {"factor_vae": metric(None, higher_is_better=True, **common)}
    rs = np.random.RandomState(settings.seed)
    factors = sampling.draw(ground_truth, settings.num_variance_estimate, rs)   # one call, as the reference
    global_var = sampling.encode(ground_truth, represent, factors, settings.encode_batch_size).var(0, ddof=1)
    active = np.sqrt(global_var) >= settings.prune_threshold
    if not active.any():
        _warn(f"FactorVAE score: every code dimension has standard deviation below {settings.prune_threshold} "
              "(collapsed representation); the score is 0, as the reference returns")
        return {"factor_vae": metric(0.0, higher_is_better=True, **common, train=0.0, num_active_dims=0)}
    train_votes = sampling.factor_vae_votes(ground_truth, represent, settings.num_train, rs, global_var, active,
                                            varying, settings)
    classifier = train_votes.argmax(0)             # (D,) factor each code votes for (0 where it has no votes)
    columns = np.arange(len(global_var))
    train_accuracy = train_votes[classifier, columns].sum() / train_votes.sum()
    eval_votes = sampling.factor_vae_votes(ground_truth, represent, settings.num_eval, rs, global_var, active,
                                           varying, settings)
    eval_accuracy = eval_votes[classifier, columns].sum() / eval_votes.sum()
    names = ground_truth.factor_names
    return {"factor_vae": metric(eval_accuracy, higher_is_better=True, **common, kind="eval accuracy",
                                 train=float(train_accuracy), num_active_dims=int(active.sum()),
                                 code_to_factor=[names[classifier[d]] if train_votes[:, d].any() else None
                                                 for d in columns])}


# ----------------------------------------------------------------------------------------- all scores

def evaluate(ground_truth: GroundTruth, represent: Represent, settings: Settings = Settings(),
             progress: bool = True) -> dict:
    """Every score of a representation: draws num_train then num_eval points from RandomState(seed) for the
    fixed-sample scores (the sets each of them draws in the reference), then the BetaVAE and FactorVAE
    scores with their own RandomState(seed)."""
    from tqdm.auto import tqdm

    stages = ["sample", "MIG / DCI / SAP / modularity / explicitness", "BetaVAE", "FactorVAE"]
    with tqdm(total=len(stages), desc="disentanglement", disable=not progress) as bar:
        bar.set_postfix_str(stages[0])
        rs = np.random.RandomState(settings.seed)
        factors_train = sampling.sample(ground_truth, settings.num_train, rs, settings.sample_batch_size)
        factors_test = sampling.sample(ground_truth, settings.num_eval, rs, settings.sample_batch_size)
        codes_train = sampling.encode(ground_truth, represent, factors_train, settings.encode_batch_size)
        codes_test = sampling.encode(ground_truth, represent, factors_test, settings.encode_batch_size)
        bar.update(1)
        bar.set_postfix_str(stages[1])
        scores = evaluate_fixed(codes_train, factors_train, codes_test, factors_test, settings,
                                factor_names=ground_truth.factor_names)
        bar.update(1)
        bar.set_postfix_str(stages[2])
        scores.update(beta_vae_score(ground_truth, represent, settings))
        bar.update(1)
        bar.set_postfix_str(stages[3])
        scores.update(factor_vae_score(ground_truth, represent, settings))
        bar.update(1)
    return scores


def settings_dict(settings: Settings) -> dict:
    """The settings as a JSON-ready dict, for result files."""
    return dataclasses.asdict(settings)
