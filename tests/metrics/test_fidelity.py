"""genbench.metrics.fidelity: properties, closed forms, conventions, and agreement with torch-fidelity 0.4
on identical features (its feature-level functions are called directly)."""

import warnings

import numpy as np
import pytest
import torch

from genbench import GenbenchError, GenbenchWarning
from genbench.metrics import fidelity as F

tf_fid = pytest.importorskip("torch_fidelity.metric_fid")
tf_kid = pytest.importorskip("torch_fidelity.metric_kid")
tf_isc = pytest.importorskip("torch_fidelity.metric_isc")
tf_prc = pytest.importorskip("torch_fidelity.metric_prc")


def gaussian_features(n, d, *, seed, scale=1.0, shift=0.0, decay=0.0, dtype=np.float64):
    """(n, d) Gaussian features with a power-law spectrum (decay > 0 mimics real extractor features)."""
    rng = np.random.default_rng(seed)
    spectrum = np.arange(1, d + 1) ** (-decay / 2)
    basis = np.linalg.qr(np.random.default_rng(1234).standard_normal((d, d)))[0]  # shared by all calls
    return ((rng.standard_normal((n, d)) * spectrum * scale) @ basis + shift).astype(dtype)


def exact_fid(x, y):
    """FID from the features without forming S1 S2: the nonzero eigenvalues of S1 S2 are the squared singular
    values of Xc Yc^T / sqrt((n1 - 1)(n2 - 1)), so tr((S1 S2)^(1/2)) is that matrix's nuclear norm. Exact for any
    N, including N < D where the covariances are singular."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    n1, n2 = len(x), len(y)
    tr_covmean = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
    d = x.mean(0) - y.mean(0)
    return d @ d + (xc * xc).sum() / (n1 - 1) + (yc * yc).sum() / (n2 - 1) - 2 * tr_covmean


def torch_fidelity_fid(real, fake):
    stats = [tf_fid.fid_features_to_statistics(torch.from_numpy(x)) for x in (real, fake)]
    return tf_fid.fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]


def test_directions_are_declared():
    assert F.HIGHER_IS_BETTER == {"fid": False, "kid": False, "is": True, "precision": True, "recall": True,
                                  "density": True, "coverage": True}


# ------------------------------------------------------------------------------------ Gaussian statistics

def test_gaussian_stats_match_numpy_and_do_not_depend_on_batch_size():
    x = gaussian_features(1000, 24, seed=0, shift=50.0, decay=1.0, dtype=np.float32)  # large mean: cancellation
    mu, sigma = F.gaussian_stats(x)
    assert mu.dtype == sigma.dtype == np.float64
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mu, x64.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x64, rowvar=False), rtol=1e-9, atol=1e-12 * np.abs(sigma).max())
    for batch in (1, 7, 64, 999):
        acc = F.GaussianStats()
        for start in range(0, len(x), batch):
            acc.update(torch.from_numpy(x[start:start + batch]))
        mu_b, sigma_b, n = acc.compute()
        assert n == len(x)
        np.testing.assert_allclose(mu_b, mu, rtol=1e-12)
        np.testing.assert_allclose(sigma_b, sigma, rtol=1e-9, atol=1e-12 * np.abs(sigma).max())


def test_gaussian_stats_reject_bad_input():
    with pytest.raises(GenbenchError, match="at least 2 samples"):
        F.gaussian_stats(np.ones((1, 4)))
    with pytest.raises(GenbenchError, match=r"\(N, D\)"):
        F.gaussian_stats(np.ones(4))
    with pytest.raises(GenbenchError, match="NaN"):
        F.gaussian_stats(np.array([[1.0, np.nan], [0.0, 1.0]]))
    acc = F.GaussianStats()
    acc.update(np.ones((3, 4)))
    with pytest.raises(GenbenchError, match="dimension 5"):
        acc.update(np.ones((3, 5)))


# ---------------------------------------------------------------------------------------------------- FID

def test_fid_of_identical_sets_is_zero_and_fid_is_symmetric():
    x = gaussian_features(500, 32, seed=0, decay=1.0)
    y = gaussian_features(400, 32, seed=1, scale=1.3, shift=0.2, decay=1.0)
    assert abs(F.fid(real=x, fake=x)) < 1e-12 * np.trace(np.cov(x, rowvar=False))
    assert F.fid(real=x, fake=y) == pytest.approx(F.fid(real=y, fake=x), rel=1e-10)
    assert F.fid(real=x, fake=torch.from_numpy(y)) == F.fid(real=x, fake=y)  # numpy and torch inputs alike


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    d = 50
    a = rng.standard_normal((d, d))
    sigma = a @ a.T / d + 0.1 * np.eye(d)
    mu, delta = rng.standard_normal(d), rng.standard_normal(d)
    # equal covariances, means shifted by delta: FID = |delta|^2
    assert F.frechet_distance(mu, sigma, mu + delta, sigma) == pytest.approx(delta @ delta, rel=1e-10)
    # commuting covariances Q diag(a) Q^T, Q diag(b) Q^T: FID = |delta|^2 + sum (sqrt(a) - sqrt(b))^2
    q = np.linalg.qr(a)[0]
    ea, eb = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    expected = delta @ delta + np.sum((np.sqrt(ea) - np.sqrt(eb)) ** 2)
    got = F.frechet_distance(mu, (q * ea) @ q.T, mu + delta, (q * eb) @ q.T)
    assert got == pytest.approx(expected, rel=1e-10)


def test_fid_of_shifted_gaussian_features():
    x = gaussian_features(20000, 8, seed=0)
    delta = np.linspace(-1, 1, 8)
    # the same samples shifted: the sample covariances are identical, FID = |delta|^2 up to rounding
    assert F.fid(real=x, fake=x + delta) == pytest.approx(delta @ delta, rel=1e-9)
    # independent samples: |delta|^2 up to the estimator's O(D/N) bias and sampling noise
    y = gaussian_features(20000, 8, seed=1, shift=delta)
    assert F.fid(real=x, fake=y) == pytest.approx(delta @ delta, rel=0.05)


def test_fid_accumulator_equals_fid():
    x = gaussian_features(300, 16, seed=0)
    y = gaussian_features(200, 16, seed=1, shift=0.5)
    acc = F.FID()
    for i in range(0, 300, 64):
        acc.update(real=x[i:i + 64], fake=y[i:i + 64] if i < 200 else None)
    out = acc.compute()
    assert (out["n_real"], out["n_fake"]) == (300, 200)
    assert out["fid"] == pytest.approx(F.fid(real=x, fake=y), rel=1e-10)


@pytest.mark.parametrize("decay", [0.0, 1.5])
def test_fid_agrees_with_torch_fidelity(decay):
    real = gaussian_features(700, 128, seed=0, decay=decay)
    fake = gaussian_features(600, 128, seed=1, scale=1.1, shift=0.03, decay=decay)
    ours = F.fid(real=real, fake=fake)
    # on float64 features both compute the same statistics; the distance functions differ only in route
    assert ours == pytest.approx(torch_fidelity_fid(real, fake), rel=1e-9)
    assert ours == pytest.approx(exact_fid(real, fake), rel=1e-9)
    # the distance function alone, on the same statistics
    mu_r, sigma_r = F.gaussian_stats(real)
    mu_f, sigma_f = F.gaussian_stats(fake)
    theirs = tf_fid.fid_statistics_to_metric({"mu": mu_f, "sigma": sigma_f}, {"mu": mu_r, "sigma": sigma_r},
                                             verbose=False)["frechet_inception_distance"]
    assert F.frechet_distance(mu_r, sigma_r, mu_f, sigma_f) == pytest.approx(theirs, rel=1e-9)
    # float32 features: torch-fidelity keeps the mean in float32, genbench in float64; still within 1e-6
    r32, f32 = real.astype(np.float32), fake.astype(np.float32)
    assert F.fid(real=r32, fake=f32) == pytest.approx(torch_fidelity_fid(r32, f32), rel=1e-6)


@pytest.mark.parametrize("n_real,n_fake,d,decay", [(100, 120, 256, 0.0), (100, 120, 256, 1.5), (40, 60, 512, 1.0)])
def test_fid_with_fewer_samples_than_dimensions(n_real, n_fake, d, decay):
    """N < D: singular covariances. genbench computes the exact distance between the degenerate Gaussians (no
    diagonal offset) and warns; it matches the exact route from the features to ~1e-12, where torch-fidelity's
    eigvals(S1 S2) is off by up to ~1e-6 (spurious complex eigenvalues around 0)."""
    real = gaussian_features(n_real, d, seed=0, decay=decay)
    fake = gaussian_features(n_fake, d, seed=1, scale=1.2, shift=0.05, decay=decay)
    with pytest.warns(GenbenchWarning, match="rank-deficient"):
        ours = F.fid(real=real, fake=fake)
    exact = exact_fid(real, fake)
    theirs = torch_fidelity_fid(real, fake)
    assert ours == pytest.approx(exact, rel=1e-10)
    assert abs(ours - exact) <= abs(theirs - exact)
    assert theirs == pytest.approx(exact, rel=1e-5)  # torch-fidelity agrees with genbench to its own accuracy


def test_fid_with_enough_samples_does_not_warn():
    x = gaussian_features(40, 8, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.fid(real=x, fake=x + 1)


def test_frechet_distance_rejects_mismatched_statistics():
    with pytest.raises(GenbenchError, match="mu \\(D,\\) and sigma \\(D, D\\)"):
        F.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(GenbenchError, match="differ in dimension"):
        F.fid(real=np.ones((10, 3)), fake=np.ones((10, 4)))


# ---------------------------------------------------------------------------------------------------- KID

def test_kid_agrees_with_torch_fidelity_draw_for_draw():
    real = gaussian_features(700, 64, seed=0, decay=1.0)
    fake = gaussian_features(600, 64, seed=1, scale=1.1, shift=0.02, decay=1.0)
    ours = F.kid(real=real, fake=fake, subsets=20, subset_size=200, seed=7)
    # torch-fidelity's input1 is the generated set: its subsets draw from input1 first
    theirs = tf_kid.kid_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real), kid_subsets=20,
                                           kid_subset_size=200, rng_seed=7, verbose=False)
    assert ours[0] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-10)
    assert ours[1] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-10)
    # other kernel settings pass through the same way
    ours = F.kid(real=real, fake=fake, subsets=5, subset_size=100, degree=2, gamma=0.5, coef0=0.3, seed=1)
    theirs = tf_kid.kid_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real), kid_subsets=5,
                                           kid_subset_size=100, kid_kernel_poly_degree=2, kid_kernel_poly_gamma=0.5,
                                           kid_kernel_poly_coef0=0.3, rng_seed=1, verbose=False)
    assert ours[0] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-10)
    # float32 features: torch-fidelity sums its kernels in float32, genbench in float64
    r32, f32 = torch.from_numpy(real).float(), torch.from_numpy(fake).float()
    theirs = tf_kid.kid_features_to_metric(f32, r32, kid_subsets=20, kid_subset_size=200, rng_seed=7, verbose=False)
    assert F.kid(real=r32, fake=f32, subsets=20, subset_size=200, seed=7)[0] == pytest.approx(
        theirs["kernel_inception_distance_mean"], rel=1e-3)


def test_kid_of_float32_features_stays_within_float32_rounding_of_the_float64_kid():
    """Float32 features: Gram matrices in float32 (as torch-fidelity), kernel values and sums in float64. Against
    the same features evaluated in float64 throughout, KID moves by about as much as float32 rounding does."""
    real = gaussian_features(1200, 256, seed=0, decay=0.5)
    fake = gaussian_features(1200, 256, seed=1, scale=1.05, shift=0.01, decay=0.5)
    r32, f32 = real.astype(np.float32), fake.astype(np.float32)
    exact = F.kid(real=r32.astype(np.float64), fake=f32.astype(np.float64), subsets=10, subset_size=1000, seed=3)
    fast = F.kid(real=r32, fake=f32, subsets=10, subset_size=1000, seed=3)
    assert fast[0] == pytest.approx(exact[0], rel=1e-5) and fast[1] == pytest.approx(exact[1], rel=1e-4)


def test_kid_identity_seed_and_linear_kernel_closed_form():
    x = gaussian_features(1000, 16, seed=0)
    y = gaussian_features(1000, 16, seed=1, shift=0.5)
    apart = F.kid(real=x, fake=y, subsets=10, subset_size=200)
    # identical sets, and independent samples of one distribution: ~0, two orders of magnitude below a shift of
    # 0.5 per dimension (negative values are allowed: the estimator is unbiased, and subsets drawn from one set
    # share samples)
    other = gaussian_features(1000, 16, seed=5)
    assert abs(F.kid(real=x, fake=x, subsets=10, subset_size=200)[0]) < 0.03 * apart[0]
    assert abs(F.kid(real=x, fake=other, subsets=10, subset_size=200)[0]) < 0.03 * apart[0]
    assert F.kid(real=x, fake=y, subsets=10, subset_size=200, seed=3) == F.kid(real=x, fake=y, subsets=10,
                                                                                subset_size=200, seed=3)
    assert F.kid(real=x, fake=y, subsets=10, subset_size=200, seed=4) != F.kid(real=x, fake=y, subsets=10,
                                                                                subset_size=200, seed=3)
    # linear kernel x.y on whole sets: unbiased MMD^2 = (|sum x|^2 - sum |x|^2 + |sum y|^2 - sum |y|^2) / (m (m-1))
    # - 2 (sum x).(sum y) / m^2, an unbiased estimate of |mu_x - mu_y|^2 = 16 * 0.5^2
    m, sx, sy = len(x), x.sum(0), y.sum(0)
    expected = ((sx @ sx - (x * x).sum() + sy @ sy - (y * y).sum()) / (m * (m - 1)) - 2 * sx @ sy / m ** 2)
    linear = F.kid(real=x, fake=y, subsets=3, subset_size=m, degree=1, gamma=1.0, coef0=0.0)
    assert linear[0] == pytest.approx(expected, rel=1e-10) and linear[1] < 1e-10 * expected
    assert expected == pytest.approx(4.0, rel=0.15)


def test_kid_is_the_same_on_any_number_of_workers_and_gives_blas_its_threads_back(monkeypatch):
    """Subsets run in parallel on one BLAS thread each: the value does not depend on how many workers there are
    (nor on the machine's cores: float32 products on 2 BLAS threads differ from 1 thread's in the last bits),
    the subsets are those of the sequential draw (torch-fidelity's order), and BLAS keeps its thread count."""
    from threadpoolctl import threadpool_info, threadpool_limits
    real = gaussian_features(500, 96, seed=0).astype(np.float32)
    fake = gaussian_features(400, 96, seed=1, scale=1.1, shift=0.05).astype(np.float32)
    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    values = {}
    for threads in (1, 3, 8):
        monkeypatch.setattr(F, "threadpool_info", lambda t=threads: [{"user_api": "blas", "num_threads": t}])
        values[threads] = F.kid(real=real, fake=fake, subsets=12, subset_size=150, seed=5)
    assert values[1] == values[3] == values[8]
    rng = np.random.RandomState(5)
    draws = [(rng.choice(400, 150, replace=False), rng.choice(500, 150, replace=False)) for _ in range(12)]
    with threadpool_limits(limits=1, user_api="blas"):
        mmd2 = F._PolyMMD(150, np.float32, 3, 1 / 96, 1)
        sequential = [mmd2(fake[f], real[r]) for f, r in draws]
    assert values[1] == (float(np.mean(sequential)), float(np.std(sequential)))
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == before


def test_kid_refuses_non_finite_features_wherever_they_are():
    real, fake = gaussian_features(300, 8, seed=0), gaussian_features(300, 8, seed=1)
    fake[123, 4] = np.nan  # one row, which a few subsets may miss: checked once on the whole set
    with pytest.raises(GenbenchError, match="NaN or inf"):
        F.kid(real=real, fake=fake, subsets=2, subset_size=10)


def test_kid_shrinks_the_subset_size_with_a_warning():
    x = gaussian_features(80, 8, seed=0)
    y = gaussian_features(50, 8, seed=1, shift=0.3)
    with pytest.warns(GenbenchWarning, match="using subsets of 50"):
        shrunk = F.kid(real=x, fake=y, subsets=5)
    assert shrunk == F.kid(real=x, fake=y, subsets=5, subset_size=50)
    with pytest.raises(GenbenchError, match="at least 2"):
        F.kid(real=x, fake=y[:1], subsets=5)


# -------------------------------------------------------------------------------------------- Inception Score

def test_inception_score_agrees_with_torch_fidelity():
    logits = torch.from_numpy(np.random.default_rng(0).standard_normal((1003, 10)) * 3).float()
    for seed, shuffle in ((2020, True), (5, True), (0, False)):
        theirs = tf_isc.isc_features_to_metric(logits, splits=10, shuffle=shuffle, rng_seed=seed)
        ours = F.inception_score(logits, splits=10, seed=seed if shuffle else None)
        assert ours[0] == pytest.approx(theirs["inception_score_mean"], rel=1e-12)
        assert ours[1] == pytest.approx(theirs["inception_score_std"], rel=1e-9)


def test_inception_score_closed_forms_and_seed():
    classes = 7
    confident = 60.0 * np.eye(classes)[np.arange(700) % classes]  # sure of one class, classes balanced per split
    assert F.inception_score(confident, splits=10, seed=None)[0] == pytest.approx(classes, rel=1e-12)
    assert F.inception_score(np.zeros((100, classes)), splits=5)[0] == pytest.approx(1.0, abs=1e-12)
    logits = np.random.default_rng(1).standard_normal((500, 10)) * 2
    assert F.inception_score(logits, seed=3) == F.inception_score(logits, seed=3)
    assert F.inception_score(logits, seed=3) != F.inception_score(logits, seed=4)
    with pytest.raises(GenbenchError, match="splits"):
        F.inception_score(logits[:5], splits=10)


# ------------------------------------------------------------------------------- precision/recall, density/coverage

def test_precision_recall_roles_tight_fake_cluster_in_spread_real_set():
    spread = gaussian_features(1000, 8, seed=0)
    tight = gaussian_features(500, 8, seed=1, scale=0.1)
    precision, recall = F.precision_recall(real=spread, fake=tight)
    assert precision > 0.95 and recall < 0.2   # every fake looks real; the fakes cover little of the real set
    precision, recall = F.precision_recall(real=tight, fake=spread)
    assert precision < 0.2 and recall > 0.95
    density, coverage = F.density_coverage(real=spread, fake=tight)
    assert density > 1 and coverage < 0.2


def test_precision_recall_agrees_with_torch_fidelity():
    real = torch.from_numpy(gaussian_features(1200, 32, seed=0, decay=0.5, dtype=np.float32))
    fake = torch.from_numpy(gaussian_features(900, 32, seed=1, scale=1.2, shift=0.1, decay=0.5, dtype=np.float32))
    ours = F.precision_recall(real=real, fake=fake, k=3)
    for save_cpu_ram in (False, True):
        # torch-fidelity's prc takes (generated, real) positionally
        theirs = tf_prc.prc_features_to_metric(fake, real, prc_neighborhood=3, save_cpu_ram=save_cpu_ram,
                                               prc_batch_size=500, verbose=False)
        assert ours == pytest.approx((theirs["precision"], theirs["recall"]), rel=1e-7)  # theirs: float32 mean
    assert 0.1 < ours[0] < 0.95 and 0.1 < ours[1] < 0.95  # a non-trivial case
    assert F.precision_recall(real=real.double(), fake=fake.double(), k=5) == pytest.approx(
        tuple(tf_prc.prc_features_to_metric(fake.double(), real.double(), prc_neighborhood=5,
                                            verbose=False)[m] for m in ("precision", "recall")), rel=1e-7)


def brute_force_manifold_metrics(real, fake, k):
    """The paper formulas on full distance matrices, float64, `<=` radius convention."""
    d_rr = np.sqrt(((real[:, None] - real[None]) ** 2).sum(-1))
    d_ff = np.sqrt(((fake[:, None] - fake[None]) ** 2).sum(-1))
    d_fr = np.sqrt(((fake[:, None] - real[None]) ** 2).sum(-1))  # (fake, real)
    r_real = np.sort(d_rr, axis=1)[:, k]  # column 0 is the sample itself
    r_fake = np.sort(d_ff, axis=1)[:, k]
    inside_real = d_fr <= r_real[None, :]
    precision = inside_real.any(axis=1).mean()
    recall = (d_fr <= r_fake[:, None]).any(axis=0).mean()
    density = inside_real.sum() / (k * len(fake))
    coverage = (d_fr.min(axis=0) <= r_real).mean()
    return precision, recall, density, coverage


@pytest.mark.parametrize("k", [1, 3, 5])
def test_manifold_metrics_match_brute_force_and_do_not_depend_on_blocks(k):
    real = gaussian_features(300, 6, seed=0)
    fake = gaussian_features(250, 6, seed=1, scale=0.8, shift=0.3)
    p, r, d, c = brute_force_manifold_metrics(real, fake, k)
    for block_rows in (None, 1, 7, 1000):
        assert F.precision_recall(real=real, fake=fake, k=k, block_rows=block_rows) == pytest.approx((p, r), abs=1e-12)
        assert F.density_coverage(real=real, fake=fake, k=k, block_rows=block_rows) == pytest.approx((d, c), abs=1e-12)


def test_manifold_metrics_reject_bad_input():
    with pytest.raises(GenbenchError, match="more than k = 3"):
        F.precision_recall(real=np.ones((3, 2)), fake=np.ones((10, 2)))
    with pytest.raises(GenbenchError, match="differ in dimension"):
        F.density_coverage(real=np.ones((10, 2)), fake=np.ones((10, 3)))
    with pytest.raises(GenbenchError, match="NaN"):
        F.precision_recall(real=np.full((10, 2), np.inf), fake=np.ones((10, 2)))
