"""Per-factor predictors behind the disentanglement scores, and the process pool that spreads them.

Part of genbench.metrics.disentanglement; the provenance and the conventions are in that module's header.
Every function here fits the predictors of ONE factor, seeded, so `map_factors` may hand factors to any
process in any order and the scores stay identical for every n_jobs.

- `gbt_factor`: sklearn's GradientBoostingClassifier with its default settings (100 stages of depth-3
  regression trees, learning rate 0.1, multinomial deviance), as disentanglement_lib's DCI fits it.
- `hist_gbt_factor`: the same boosting (same loss, initial prior, stages, depth, learning rate, one-step
  Newton leaf values, impurity-decrease importances) with split thresholds restricted to at most 255 per code
  (midpoints between distinct values when a code has at most 256 of them, else training quantiles), and the
  trees of all classes grown together with numpy histograms. A faster stand-in for `gbt_factor`; its
  deviation from it is measured in benchmarks/README.md.
- `sap_factor`: one linear SVM per code dimension (SAP, discrete factors).
- `explicitness_factor`: one logistic regression on all codes (explicitness, ROC-AUC).
"""

from __future__ import annotations

import os
import warnings

import numpy as np

_TREE_EPS = np.finfo(np.float64).eps  # sklearn's trees do not split a node whose impurity is <= this


# ------------------------------------------------------------------------------------------------- the pool

def resolve_n_jobs(n_jobs: int | None) -> int:
    if n_jobs is None or n_jobs == -1:
        return os.cpu_count() or 1
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1 or -1 (all cores), got {n_jobs}")
    return int(n_jobs)


def map_factors(fn, tasks: list[tuple], costs: list[float], n_jobs: int | None) -> list:
    """[fn(*task) for task in tasks], in worker processes when n_jobs > 1.

    Tasks are dispatched longest first (`costs`), which balances factors of very different sizes (a
    40-class factor costs about 13 times a 3-class one under boosting). Results come back in task order.
    """
    n_jobs = min(resolve_n_jobs(n_jobs), len(tasks))
    if n_jobs <= 1:
        return [_single_threaded(fn, *task) for task in tasks]
    from joblib import Parallel, delayed  # a scikit-learn dependency

    order = sorted(range(len(tasks)), key=lambda i: -costs[i])
    out = Parallel(n_jobs=n_jobs, backend="loky", batch_size=1)(
        delayed(_single_threaded)(fn, *tasks[i]) for i in order)
    results = [None] * len(tasks)
    for i, r in zip(order, out):
        results[i] = r
    return results


def _single_threaded(fn, *args):
    """fn(*args) with BLAS / OpenMP held to one thread, in the calling process as in every worker: the same
    summation order (so identical results) for every n_jobs, and no thread contention. The fits here are on
    thin (N, <= D) matrices, where threads do not pay: explicitness's logistic regressions at the reference
    settings took 11.2 s with OpenBLAS's 2 threads and 1.7 s with one, on the 2-core machine under load."""
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    with threadpool_limits(limits=1):
        return fn(*args)


# --------------------------------------------------------------------------------------------- DCI: sklearn

def gbt_factor(x_train, y_train, x_test, y_test, seed: int):
    """GradientBoostingClassifier() fitted on all codes for one factor.

    Returns (importance (D,), train accuracy, test accuracy). random_state is the only setting changed from
    sklearn's defaults: the exact splitter visits features in a random order and keeps the first of equally
    good splits, so without a seed the importance of exactly duplicated codes would be split at random.
    """
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(n_estimators=100, learning_rate=0.1, max_depth=3, random_state=seed)
    model.fit(x_train, y_train)
    importance = np.abs(model.feature_importances_)  # (D,), sums to 1, or all 0 when no tree ever split
    return (importance, float(np.mean(model.predict(x_train) == y_train)),
            float(np.mean(model.predict(x_test) == y_test)))


# ---------------------------------------------------------------------------------------- DCI: histograms

def _thresholds(x: np.ndarray, max_bins: int) -> np.ndarray:
    """Candidate split thresholds of one code: midpoints between distinct values (the exact splitter's
    candidates) when there are at most max_bins of them, else max_bins - 1 training quantiles."""
    u = np.unique(x)
    if u.size <= max_bins:
        return (u[:-1] + u[1:]) / 2
    return np.unique(np.quantile(x, np.linspace(0, 1, max_bins + 1)[1:-1]))


def _onehot_bins(bins: np.ndarray, B: int):
    """csr (n, D * B) indicator of each sample's bin in each code."""
    from scipy import sparse

    n, D = bins.shape
    cols = (np.arange(D) * B + bins).ravel()
    return sparse.csr_matrix((np.ones(n * D), cols, np.arange(0, n * D + 1, D)), shape=(n, D * B))


def _child_histograms(S, C, SS, node, G_flat, bins_by_code, tree_of, B):
    """Histograms (T, 2m, D, B) of the children from those of the parents (T, m, D, B).

    Only the smaller child of each parent is histogrammed from its samples; its sibling is the parent minus
    it (the subtraction trick of LightGBM and sklearn's HistGradientBoosting).
    """
    T, m, D, _ = S.shape
    cell = (tree_of * 2 * m + node).ravel()                             # (n * T,) child cell of each entry
    count = np.bincount(cell, minlength=T * 2 * m).reshape(T, m, 2)
    small_side = (count[..., 1] < count[..., 0]).astype(np.int64)      # (T, m): 0 left, 1 right
    is_small = np.zeros((T, m, 2), dtype=bool)
    np.put_along_axis(is_small, small_side[..., None], True, -1)
    picked = np.flatnonzero(is_small.reshape(-1)[cell])                 # entries (sample, tree) in small children
    rows, cells, g = picked // T, cell[picked], G_flat[picked]
    size = T * 2 * m * B
    S_small = np.empty((T * 2 * m, D, B))
    C_small = np.empty((T * 2 * m, D, B))
    for f in range(D):
        idx = cells * B + bins_by_code[f][rows]
        S_small[:, f] = np.bincount(idx, g, size).reshape(-1, B)
        C_small[:, f] = np.bincount(idx, minlength=size).reshape(-1, B)
    SS_small = np.bincount(cells, g * g, T * 2 * m).reshape(T, m, 2)
    out = []
    for parent, child in ((S, S_small), (C, C_small), (SS, SS_small)):
        child = child.reshape((T, m, 2) + parent.shape[2:])             # zero where the larger child is
        side = small_side.reshape((T, m, 1) + (1,) * (parent.ndim - 2))
        large = parent - np.take_along_axis(child, side, 2)[:, :, 0]    # parent minus the small child
        np.put_along_axis(child, 1 - side, large[:, :, None], 2)
        out.append(child.reshape((T, 2 * m) + parent.shape[2:]))
    return out


def hist_gbt_factor(x_train, y_train, x_test, y_test, seed: int, *, n_estimators: int = 100,
                    learning_rate: float = 0.1, max_depth: int = 3, max_bins: int = 256):
    """Gradient-boosted trees as GradientBoostingClassifier() grows them, on binned codes.

    Same return as `gbt_factor`. Boosting follows sklearn: raw scores start at the log class priors
    (logit for two classes); each stage fits one regression tree per class (one in all for two classes) to
    the negative gradient y - p of the multinomial (binomial) deviance, by squared-error impurity decrease,
    depth <= max_depth, nodes with impurity <= eps or fewer than 2 samples left whole; each leaf then takes
    one Newton step, sum(y - p) / sum(p (1 - p)), times (K - 1) / K for K > 2 classes (sklearn keeps that
    factor from Friedman's paper), and raw += learning_rate * leaf value. Importance of a code = total
    impurity decrease of its splits, normalised to sum 1. Equal best splits on different codes are broken
    at random (seeded), as sklearn's random feature order does. Codes are rounded to float32 first, as
    sklearn's trees see them.
    """
    classes, y = np.unique(np.asarray(y_train), return_inverse=True)
    x_train = np.asarray(x_train, dtype=np.float32).astype(np.float64)  # (n, D)
    x_test = np.asarray(x_test, dtype=np.float32).astype(np.float64)    # (m, D)
    n, D = x_train.shape
    K = classes.size
    edges = [_thresholds(x_train[:, f], max_bins) for f in range(D)]
    B = max(max(e.size for e in edges), 1) + 1  # bins per code, b <= j <=> x <= edges[j]; >= 2 (constant codes)
    bins = np.stack([np.searchsorted(e, x_train[:, f]) for f, e in enumerate(edges)], 1)      # (n, D)
    bins_test = np.stack([np.searchsorted(e, x_test[:, f]) for f, e in enumerate(edges)], 1)  # (m, D)

    T = 1 if K == 2 else K  # trees per stage
    prior = np.clip(np.bincount(y, minlength=K) / n, _TREE_EPS, 1 - _TREE_EPS)
    if T == 1:
        Y = y[:, None].astype(np.float64)                 # (n, 1)
        init = np.log(prior[1] / (1 - prior[1]))[None]    # logit
    else:
        Y = (y[:, None] == np.arange(K)).astype(np.float64)  # (n, K) one-hot
        init = np.log(prior)
    raw = np.tile(init, (n, 1))                         # (n, T)
    raw_test = np.tile(init, (len(x_test), 1))
    rng = np.random.RandomState(seed)
    importance = np.zeros(D)
    tree_of = np.arange(T)
    bins_by_code = np.ascontiguousarray(bins.T)        # (D, n)
    # the root holds every sample: its counts are the same for all trees and stages, and its sums of y - p
    # are one sparse product with the one-hot bin indicator (n, D * B)
    onehot = _onehot_bins(bins, B)                      # csr (n, D * B)
    C_root = np.broadcast_to(np.asarray(onehot.sum(0)).reshape(1, 1, D, B), (T, 1, D, B))

    for _ in range(n_estimators):
        if T == 1:
            P = 1 / (1 + np.exp(-raw))
        else:
            P = np.exp(raw - raw.max(1, keepdims=True))
            P /= P.sum(1, keepdims=True)
        G = Y - P                                       # (n, T) negative gradient
        G_flat = G.ravel()
        node = np.zeros((n, T), dtype=np.int64)         # node of each sample within its level, per tree
        node_test = np.zeros((len(x_test), T), dtype=np.int64)
        S = np.asarray(onehot.T @ G).reshape(D, B, T).transpose(2, 0, 1)[:, None]   # (T, 1, D, B)
        C = C_root
        SS = (G ** 2).sum(0)[:, None]                   # (T, 1) sum of squares per node
        for depth in range(max_depth):  # m = 2^depth nodes per tree at this level
            if depth > 0:
                S, C, SS = _child_histograms(S, C, SS, node, G_flat, bins_by_code, tree_of, B)
            S_node, C_node = S[:, :, 0].sum(-1), C[:, :, 0].sum(-1)                # (T, m)
            SL, CL = S.cumsum(-1)[..., :-1], C.cumsum(-1)[..., :-1]               # left of threshold j
            SR, CR = S_node[..., None, None] - SL, C_node[..., None, None] - CL
            with np.errstate(divide="ignore", invalid="ignore"):
                # n_node * (impurity decrease) = SL^2/nL + SR^2/nR - S^2/n: squared error, the sums of
                # squares cancel
                gain = SL * SL / CL
                gain += SR * SR / CR
                gain[(CL == 0) | (CR == 0)] = -np.inf
                gain -= (S_node * S_node / C_node)[..., None, None]
                impurity = SS / C_node - (S_node / C_node) ** 2
            j_best = gain.argmax(-1)                                               # (T, m, D) first best
            g_best = np.take_along_axis(gain, j_best[..., None], -1)[..., 0]      # (T, m, D)
            top = g_best.max(-1, keepdims=True)
            tied = np.isfinite(g_best) & (g_best >= top - 1e-12 * np.abs(top))
            f_sel = np.where(tied, rng.random_sample(g_best.shape), -1.0).argmax(-1)   # (T, m)
            j_sel = np.take_along_axis(j_best, f_sel[..., None], -1)[..., 0]
            g_sel = np.take_along_axis(g_best, f_sel[..., None], -1)[..., 0]
            split = np.isfinite(g_sel) & (C_node >= 2) & (impurity > _TREE_EPS)
            np.add.at(importance, f_sel[split], g_sel[split] / n)
            # a node left whole sends all its samples left; its single descendant leaf gets the same value
            for nd, b in ((node, bins), (node_test, bins_test)):
                go_right = split[tree_of, nd] & (np.take_along_axis(b, f_sel[tree_of, nd], 1) > j_sel[tree_of, nd])
                nd *= 2
                nd += go_right
        L = 2 ** max_depth
        leaf = (tree_of * L + node).ravel()
        num = np.bincount(leaf, G_flat, T * L)
        den = np.bincount(leaf, (P * (1 - P)).ravel(), T * L)
        if T > 1:
            num *= (K - 1) / K
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(np.abs(den) < 1e-150, 0.0, num / den).reshape(T, L)
        raw += learning_rate * value[tree_of, node]
        raw_test += learning_rate * value[tree_of, node_test]

    total = importance.sum()
    importance = importance / total if total > 0 else importance

    def predict(r):
        return classes[(r[:, 0] > 0).astype(np.int64)] if T == 1 else classes[r.argmax(1)]

    return (importance, float(np.mean(predict(raw) == y_train)),
            float(np.mean(predict(raw_test) == np.asarray(y_test))))


# ---------------------------------------------------------------------------------------------- SAP, explicitness

def sap_factor(x_train, y_train, x_test, y_test, seed: int):
    """SAP scores of every code dimension for one discrete factor: test accuracy of a linear SVM
    (C = 0.01, balanced class weights) trained on that dimension alone. Returns (D,) accuracies.

    dual=True is pinned (the liblinear solver disentanglement_lib ran under sklearn < 1.5, whose default it
    was) and seeded (the reference left it unseeded, so its dual coordinate descent drew its shuffling seed
    from numpy's global random state).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    scores = np.zeros(x_train.shape[1])
    for i in range(x_train.shape[1]):
        model = LinearSVC(C=0.01, class_weight="balanced", dual=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x_train[:, i:i + 1], y_train)
        scores[i] = np.mean(model.predict(x_test[:, i:i + 1]) == y_test)
    return scores


def explicitness_factor(x_train, y_train, x_test, y_test):
    """Explicitness of one factor: ROC-AUC of a logistic regression on all (standardised) codes.

    LogisticRegression() with sklearn's current defaults (lbfgs, multinomial, C = 1, 100 iterations), as the
    reference constructs it. AUC is macro-averaged over one-vs-rest columns of predict_proba, one per class,
    which is what the reference's roc_auc_score(MultiLabelBinarizer(y), proba) computes whenever the
    evaluated set holds every training class; a class absent from the evaluated set (the reference fails
    there on mismatched shapes) is left out of the average. Returns (auc_train, auc_test, converged);
    an AUC is None when no class is scorable.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    model = LogisticRegression(C=1.0, solver="lbfgs", max_iter=100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x_train, y_train)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)

    def auc(x, y):
        proba = model.predict_proba(x)                          # (n, K) columns in model.classes_ order
        truth = np.asarray(y)[:, None] == model.classes_[None, :]
        keep = truth.any(0) & ~truth.all(0)                      # classes with positives and negatives
        if not keep.any():
            return None
        if keep.sum() == 1:  # one scorable class: a plain binary AUC
            return float(roc_auc_score(truth[:, keep][:, 0], proba[:, keep][:, 0]))
        return float(roc_auc_score(truth[:, keep].astype(np.int64), proba[:, keep], average="macro"))

    return auc(x_train, y_train), auc(x_test, y_test), converged
