"""Disentanglement scores: the reference's own sanity bands and closed forms (disentanglement_lib's *_test.py),
agreement with sklearn (mutual information, boosting), the reference's sampling order, n_jobs and seeds.

Ground truth: a dSprites-like factor space whose observations are the factor values themselves, so a
representation is any function of the factors. Default tests use a few hundred to two thousand points; the
reference settings (10,000 / 5,000 points, sklearn's boosting) run in one `slow` test.
"""

import json
import math
import warnings

import numpy as np
import pytest
import sklearn.metrics
from scipy import stats

from genbench import GenbenchError, GenbenchWarning
from genbench.metrics import disentanglement as dis
from genbench.metrics import disentanglement_predictors as predictors

LN2_LN10 = 1 - math.log(2) / math.log(10)  # completeness of codes duplicated once, 5 factors, 10 codes


class DSpritesLike:
    factor_names = ("shape", "scale", "orientation", "pos_x", "pos_y")
    factor_sizes = (3, 6, 40, 32, 32)

    def sample_factors(self, n, random_state):
        # one randint per factor, in order: how disentanglement_lib's state spaces draw
        return np.stack([random_state.randint(s, size=n) for s in self.factor_sizes], axis=1).astype(np.int64)

    def observations(self, factors):
        return factors.astype(np.float64)


GT = DSpritesLike()
FAST = dis.Settings(num_train=1000, num_eval=500, num_variance_estimate=1000, dci_estimator="hist_gbt", n_jobs=1)
SMALL_VOTES = dis.Settings(num_train=300, num_eval=200, num_variance_estimate=1000, n_jobs=1)


def identity(f):
    return np.asarray(f, dtype=np.float64)


def rotated(f, degrees=30.0):
    """pos_x and pos_y rotated into each other (not 45 degrees, where fixing x or y looks the same)."""
    z = identity(f).copy()
    a = np.deg2rad(degrees)
    x, y = z[:, 3].copy(), z[:, 4].copy()
    z[:, 3], z[:, 4] = np.cos(a) * x - np.sin(a) * y, np.sin(a) * x + np.cos(a) * y
    return z


def blurred(f):
    """Rotated, rounded, plus integer noise seeded by the batch: an imperfect code with few distinct values per
    dimension (few split thresholds keep the boosting fast)."""
    f = np.asarray(f)
    noise = np.random.RandomState(int(f.sum()) % 2 ** 31).randint(-2, 3, size=(len(f), 5))
    return np.round(rotated(f)) + noise


def gaussian(f):
    """Codes independent of the factors (seeded by the batch so the function is deterministic)."""
    f = np.asarray(f)
    return np.round(np.random.RandomState(int(f.sum()) % 2 ** 31).randn(len(f), 5), 1)


def values(scores):
    return {k: v["value"] for k, v in scores.items()}


def fixed_sets(n_train=1000, n_test=500, seed=0):
    rs = np.random.RandomState(seed)
    return GT.sample_factors(n_train, rs), GT.sample_factors(n_test, rs)


@pytest.fixture(scope="module")
def identity_scores():
    return dis.evaluate(GT, identity, FAST, progress=False)


@pytest.fixture(scope="module")
def random_scores():
    return dis.evaluate(GT, gaussian, FAST, progress=False)


# ---------------------------------------------------------------------------------------- closed forms

def test_discretize_matches_reference_example():
    # disentanglement_lib utils_test: 3 equal-width bins, the maximum in the last bin
    codes = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]]).T  # (N=6, D=2)
    np.testing.assert_array_equal(dis.discretize(codes, 3), [[1, 3], [1, 3], [2, 2], [2, 2], [3, 1], [3, 1]])


def test_entropy_and_mutual_information_closed_forms():
    assert dis.entropy(np.array([1, 1, 2, 2, 3, 3])) == pytest.approx(math.log(3), abs=1e-15)
    assert dis.mutual_information([1, 2, 1, 2], [1, 2, 1, 2]) == pytest.approx(math.log(2), abs=1e-15)
    assert dis.mutual_information([1, 2, 1, 2], [2, 2, 1, 1]) == 0.0


def test_mutual_information_agrees_with_sklearn():
    y_train, _ = fixed_sets(2000)
    codes = rotated(y_train) + np.random.RandomState(3).randn(2000, 5)
    binned = dis.discretize(codes, 20)
    for i in range(5):
        for j in range(5):
            ours = dis.mutual_information(binned[:, i], y_train[:, j])
            ref = sklearn.metrics.mutual_info_score(y_train[:, j], binned[:, i])
            assert ours == pytest.approx(ref, rel=1e-12, abs=1e-15)


def test_mig_closed_form_bijection_and_entropy_normalisation():
    # one factor (orientation); code 0 an affine bijection of it, code 1 its halves (orientation // 2),
    # code 2 constant. 40 bins separate every integer value, so MI(code 0) = H(v), MI(code 1) = H(v // 2) and
    # MIG = (H(v) - H(v // 2)) / H(v), with entropies of the empirical frequencies.
    v = np.random.RandomState(0).randint(40, size=3000)
    codes = np.stack([3.0 * v + 7, v // 2, np.zeros(3000)], axis=1)
    H = stats.entropy(np.bincount(v))
    H_half = stats.entropy(np.bincount(v // 2))
    scores = dis.mig(codes, v[:, None], dis.Settings(num_bins=40))
    assert scores["mig"]["value"] == pytest.approx((H - H_half) / H, rel=1e-12)
    # a lone bijection: gap to the constant code = H(v), normalised to exactly 1
    assert dis.mig(codes[:, [0, 2]], v[:, None], dis.Settings(num_bins=40))["mig"]["value"] == pytest.approx(1.0)


@pytest.mark.parametrize("name, matrix, expected_d, expected_c", [
    ("diagonal", np.diag(5.0 * np.ones(5)), 1.0, 1.0),
    ("diagonal, empty code", np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 1.0, 1.0),
    ("zero", np.zeros((10, 10)), 0.0, 0.0),
    ("redundant codes", np.vstack([np.diag(5.0 * np.ones(5))] * 2), 1.0, LN2_LN10),
    ("missed factors", np.diag(5.0 * np.ones(5))[:2], 1.0, 1.0),
    ("one code two factors", np.hstack([np.diag(5.0 * np.ones(5))] * 2), LN2_LN10, 1.0),
])
def test_dci_closed_forms(name, matrix, expected_d, expected_c):
    # disentanglement_lib dci_test: hand-built importance matrices (codes x factors)
    d, c, _, _ = dis.disentanglement_completeness(matrix)
    assert d == pytest.approx(expected_d, abs=1e-7), name
    assert c == pytest.approx(expected_c, abs=1e-7), name


@pytest.mark.parametrize("name, matrix, expected", [
    ("diagonal", np.diag(5.0 * np.ones(5)), 1.0),
    ("diagonal, empty code", np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 2.0 / 3.0),
    ("zero", np.zeros((10, 10)), 0.0),
    ("redundant codes", np.vstack([np.diag(5.0 * np.ones(5))] * 2), 1.0),
    ("missed factors", np.diag(5.0 * np.ones(5))[:2], 1.0),
    ("one code two factors", np.hstack([np.diag(5.0 * np.ones(5))] * 2), 1.0 - 1.0 / 9.0),
])
def test_modularity_closed_forms(name, matrix, expected):
    # disentanglement_lib modularity_explicitness_test: hand-built mutual-information matrices
    assert dis.modularity_from_mi(matrix) == pytest.approx(expected, abs=1e-12), name


def test_sap_hand_made():
    # two binary factors on a full grid, repeated: code i = +-5 according to factor i. A linear SVM on the
    # right code is exact; on the other code (independent of the factor on the grid) every classifier is
    # right half the time. Score matrix [[1, .5], [.5, 1]] -> SAP 0.5 exactly.
    f = np.array([[a, b] for a in (0, 1) for b in (0, 1)] * 25)
    codes = 10.0 * f - 5
    out = dis.sap(codes, f, codes, f, dis.Settings(n_jobs=1))["sap"]
    np.testing.assert_array_equal(out["score_matrix"], [[1.0, 0.5], [0.5, 1.0]])
    assert out["value"] == 0.5
    # continuous: 4 x 4 grid (zero sample covariance between factors), code 0 = f0, code 1 = f0 + f1:
    # R^2 = [[1, 0], [.5, .5]] -> gaps .5 and .5
    g = np.array([[a, b] for a in range(4) for b in range(4)])
    codes = np.stack([g[:, 0], g[:, 0] + g[:, 1]], axis=1).astype(float)
    out = dis.sap(codes, g, codes, g, dis.Settings(sap_continuous=True))["sap"]
    np.testing.assert_allclose(out["score_matrix"], [[1.0, 0.0], [0.5, 0.5]], atol=1e-12)
    assert out["value"] == pytest.approx(0.5, abs=1e-12)


# ---------------------------------------------------------------------------------- sanity bands

def test_identity_code_scores_high(identity_scores):
    v = values(identity_scores)
    assert set(v) == set(dis.FIXED_SAMPLE_SCORES) | set(dis.MODEL_SCORES)
    # 20 equal-width bins merge the values of orientation (40) and positions (32): their MIG is ~0.75-0.8
    assert v["mig"] > 0.8
    for name in ("dci_disentanglement", "dci_completeness", "dci_informativeness", "modularity", "explicitness",
                 "beta_vae", "factor_vae"):
        assert v[name] > 0.9, name
    # SAP: the reference tests the identity code with its continuous variant
    y_train, y_test = fixed_sets()
    assert dis.sap(identity(y_train), y_train, identity(y_test), y_test,
                   dis.Settings(sap_continuous=True))["sap"]["value"] > 0.9


def test_random_code_scores_low(random_scores, identity_scores):
    v = values(random_scores)
    assert v["mig"] < 0.05
    assert v["dci_disentanglement"] < 0.2 and v["dci_completeness"] < 0.2
    assert v["sap"] < 0.05
    assert abs(v["explicitness"] - 0.5) < 0.05
    assert v["beta_vae"] < 0.35 and v["factor_vae"] < 0.35   # chance: 1 / 5 factors
    # discrete SAP of the identity code is far above chance, though 1-D linear SVMs cannot separate the
    # middle values of a 40-valued factor
    assert identity_scores["sap"]["value"] > v["sap"] + 0.2
    # modularity is NOT near 0 for random codes: 20-bin mutual information is biased upwards, most for the
    # factor with the most values, so a random code looks modular (the reference behaves the same)
    assert v["modularity"] < identity_scores["modularity"]["value"] - 0.2


def test_collapsed_code_scores_zero_with_warning():
    with pytest.warns(GenbenchWarning) as caught:
        v = values(dis.evaluate(GT, lambda f: np.zeros((len(f), 5)), FAST, progress=False))
    text = " ".join(str(w.message) for w in caught)
    assert "collapsed" in text and "FactorVAE" in text and "BetaVAE" in text
    for name in ("mig", "dci_disentanglement", "dci_completeness", "sap", "modularity", "factor_vae"):
        assert v[name] == 0.0, name
    assert v["explicitness"] == 0.5                      # chance level, not 0
    assert v["dci_informativeness"] < 0.5                # majority-class accuracy
    assert v["beta_vae"] < 0.35


def test_duplicated_code():
    # each factor copied into two code dimensions (10 codes): MIG 0, DCI completeness ~ 1 - ln2/ln10
    y_train, y_test = fixed_sets(600, 300)
    dup = lambda f: np.hstack([identity(f), identity(f)])  # noqa: E731
    assert dis.mig(dup(y_train), y_train, FAST)["mig"]["value"] == 0.0
    scores = dis.dci(dup(y_train), y_train, dup(y_test), y_test, FAST)
    assert scores["dci_disentanglement"]["value"] > 0.9
    # equal best splits on the two copies are broken at random, so each copy gets about half the importance
    assert abs(scores["dci_completeness"]["value"] - LN2_LN10) < 0.1


def test_rotated_code_lowers_mig_but_not_beta_vae():
    y_train, _ = fixed_sets(2000)
    plain = dis.mig(identity(y_train), y_train, FAST, factor_names=GT.factor_names)["mig"]
    turned = dis.mig(rotated(y_train), y_train, FAST, factor_names=GT.factor_names)["mig"]
    for name in ("pos_x", "pos_y"):
        assert turned["per_factor"][name] < plain["per_factor"][name] - 0.4, name
    assert turned["value"] < plain["value"] - 0.2
    assert dis.beta_vae_score(GT, rotated, SMALL_VOTES)["beta_vae"]["value"] > 0.95


# ------------------------------------------------------------------------ estimators and sampling

def test_hist_gbt_reproduces_sklearn_boosting():
    # codes with few distinct values: every threshold the exact splitter tries is a bin edge, so the
    # histogram boosting must give sklearn's importances and predictions
    rs = np.random.RandomState(0)
    f = GT.sample_factors(600, rs)[:, :2]                         # shape (3 values), scale (6 values)
    codes = np.hstack([identity(f), rs.randint(4, size=(600, 2)).astype(float)])
    for j in range(2):
        ref = predictors.gbt_factor(codes[:400], f[:400, j], codes[400:], f[400:, j], 0)
        ours = predictors.hist_gbt_factor(codes[:400], f[:400, j], codes[400:], f[400:, j], 0)
        np.testing.assert_allclose(ours[0], ref[0], atol=1e-10)
        assert ours[1:] == ref[1:]
    # binary factor: one tree per stage, logit start
    b = f[:, 0] % 2
    ref = predictors.gbt_factor(codes[:400], b[:400], codes[400:], b[400:], 0)
    ours = predictors.hist_gbt_factor(codes[:400], b[:400], codes[400:], b[400:], 0)
    np.testing.assert_allclose(ours[0], ref[0], atol=1e-10)
    assert ours[1:] == ref[1:]
    # continuous codes: thresholds restricted to quantiles; close, not equal
    noisy = codes + 0.3 * rs.randn(*codes.shape)
    ref = predictors.gbt_factor(noisy[:400], f[:400, 1], noisy[400:], f[400:, 1], 0)
    ours = predictors.hist_gbt_factor(noisy[:400], f[:400, 1], noisy[400:], f[400:, 1], 0, max_bins=64)
    assert np.abs(ours[0] - ref[0]).max() < 0.05 and abs(ours[2] - ref[2]) < 0.05


def test_n_jobs_gives_identical_scores():
    y_train, y_test = fixed_sets(400, 200)
    codes_train, codes_test = blurred(y_train), blurred(y_test)
    one = dis.evaluate_fixed(codes_train, y_train, codes_test, y_test, FAST)
    two = dis.evaluate_fixed(codes_train, y_train, codes_test, y_test,
                             dis.Settings(**{**dis.settings_dict(FAST), "n_jobs": 2}))
    assert one == two


def test_seed_reproducibility():
    tiny = dis.Settings(num_train=150, num_eval=80, num_variance_estimate=500, dci_estimator="hist_gbt", n_jobs=1)
    first = dis.evaluate(GT, blurred, tiny, progress=False)
    assert dis.evaluate(GT, blurred, tiny, progress=False) == first
    other = dis.evaluate(GT, blurred, dis.Settings(**{**dis.settings_dict(tiny), "seed": 1}), progress=False)
    assert values(other) != values(first)


def test_draws_follow_the_reference_order(monkeypatch):
    """The scores equal a literal point-by-point rendering of the reference's procedure (its RandomState
    use, the representation called once per batch, as disentanglement_lib does)."""
    from sklearn.linear_model import LogisticRegression

    s = dis.Settings(num_train=120, num_eval=80, num_variance_estimate=700, n_jobs=1)
    rep = rotated

    def beta_points(n, rs):
        x, y = [], []
        for _ in range(n):
            k = rs.randint(5)
            a, b = GT.sample_factors(64, rs), GT.sample_factors(64, rs)
            b[:, k] = a[:, k]
            x.append(np.mean(np.abs(rep(GT.observations(a)) - rep(GT.observations(b))), axis=0))
            y.append(k)
        return np.array(x), np.array(y)

    rs = np.random.RandomState(0)
    x, y = beta_points(120, rs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs may stop at 100 iterations, here as in the score
        model = LogisticRegression().fit(x, y)
    x_eval, y_eval = beta_points(80, rs)
    assert dis.beta_vae_score(GT, rep, s)["beta_vae"]["value"] == np.mean(model.predict(x_eval) == y_eval)

    rs = np.random.RandomState(0)
    global_var = np.var(rep(GT.observations(GT.sample_factors(700, rs))), axis=0, ddof=1)
    active = np.sqrt(global_var) >= 0.05

    def votes(n):
        out = np.zeros((5, 5), dtype=np.int64)
        for _ in range(n):
            k = rs.randint(5)
            f = GT.sample_factors(64, rs)
            f[:, k] = f[0, k]
            local = np.var(rep(GT.observations(f)), axis=0, ddof=1)
            out[k, np.flatnonzero(active)[np.argmin(local[active] / global_var[active])]] += 1
        return out

    train_votes = votes(120)
    eval_votes = votes(80)
    expected = eval_votes[train_votes.argmax(0), np.arange(5)].sum() / eval_votes.sum()
    assert dis.factor_vae_score(GT, rep, s)["factor_vae"]["value"] == expected

    # fixed samples: train then test points from one RandomState(seed), 16 factors per draw
    rs = np.random.RandomState(0)
    y_train = np.concatenate([GT.sample_factors(min(16, 120 - i), rs) for i in range(0, 120, 16)])
    y_test = np.concatenate([GT.sample_factors(min(16, 80 - i), rs) for i in range(0, 80, 16)])
    seen = {}
    monkeypatch.setattr(dis, "evaluate_fixed", lambda *args, **kw: seen.update(args=args) or {})
    monkeypatch.setattr(dis, "beta_vae_score", lambda *args: {})
    monkeypatch.setattr(dis, "factor_vae_score", lambda *args: {})
    dis.evaluate(GT, rep, s, progress=False)
    for got, want in zip(seen["args"][:4], (rep(y_train), y_train, rep(y_test), y_test)):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------------------- degenerate input

def test_constant_factor_is_left_out_with_warning():
    y_train, y_test = fixed_sets(400, 200)
    with_constant = np.hstack([y_train, np.zeros((400, 1), dtype=np.int64)])
    with_constant_test = np.hstack([y_test, np.zeros((200, 1), dtype=np.int64)])
    codes, codes_test = blurred(y_train), blurred(y_test)
    names = GT.factor_names + ("colour",)
    with pytest.warns(GenbenchWarning, match="colour"):
        got = dis.evaluate_fixed(codes, with_constant, codes_test, with_constant_test, FAST, factor_names=names)
    plain = dis.evaluate_fixed(codes, y_train, codes_test, y_test, FAST, factor_names=GT.factor_names)
    assert values(got) == values(plain)
    assert got["mig"]["per_factor"]["colour"] is None
    with pytest.warns(GenbenchWarning, match="none is defined"):
        nothing = dis.evaluate_fixed(codes, np.zeros((400, 2)), codes_test, np.zeros((200, 2)), FAST)
    assert all(v is None for v in values(nothing).values())


def test_evaluate_fixed_without_test_arrays_uses_the_reference_split():
    y, _ = fixed_sets(500)
    scores = dis.evaluate_fixed(blurred(y), y, settings=FAST)
    assert scores["mig"]["n_train"] == 500 and scores["modularity"]["n_train"] == 500
    for name in ("dci_informativeness", "sap", "explicitness"):
        assert (scores[name]["n_train"], scores[name]["n_eval"]) == (450, 50), name
    first_450 = dis.dci(blurred(y)[:450], y[:450], blurred(y)[450:], y[450:], FAST)
    assert scores["dci_completeness"] == first_450["dci_completeness"]


def test_bad_input_is_a_clear_error():
    y, _ = fixed_sets(100)
    with pytest.raises(GenbenchError, match="NaN"):
        dis.mig(np.full((100, 3), np.nan), y)
    with pytest.raises(GenbenchError, match="matching the codes"):
        dis.mig(np.zeros((99, 3)), y)
    with pytest.raises(GenbenchError, match="dci_estimator"):
        dis.Settings(dci_estimator="forest")
    with pytest.raises(GenbenchError, match="represent returned shape"):
        dis.beta_vae_score(GT, lambda f: np.zeros(len(f)), SMALL_VOTES)


def test_records_are_json_ready(identity_scores):
    text = json.dumps(identity_scores)
    assert "NaN" not in text
    for name, record in identity_scores.items():
        assert record["higher_is_better"] is True, name
        assert isinstance(record["value"], float), name
    assert identity_scores["dci_disentanglement"]["importance_factors"] == list(GT.factor_names)
    assert set(dis.MODEL_SCORES) == {"beta_vae", "factor_vae"}


# ------------------------------------------------------------------------------------------- slow

@pytest.mark.slow
def test_reference_settings(request):
    """disentanglement_lib's settings end to end (sklearn boosting, 10,000 / 5,000 points): several minutes."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("reference settings take minutes; run with `pytest -m slow`")
    mix = np.random.RandomState(1).randn(5, 10)

    def code(f):  # a noisy linear mix of the (scaled) factors, 10 dimensions
        f = np.asarray(f, dtype=np.float64) / np.array(GT.factor_sizes)
        return f @ mix + 0.05 * np.random.RandomState(int(f.sum() * 1000) % 2 ** 31).randn(len(f), 10)

    with warnings.catch_warnings():
        warnings.simplefilter("error", GenbenchWarning)
        scores = dis.evaluate(GT, code, dis.Settings(), progress=False)
    v = values(scores)
    assert scores["dci_informativeness"]["n_train"] == 10_000 and scores["sap"]["n_eval"] == 5_000
    assert all(0.0 <= x <= 1.0 for x in v.values())
    assert v["beta_vae"] > 0.9 and v["dci_informativeness"] > 0.2 and v["mig"] < 0.5
