"""Sample-quality metrics on extracted features: FID, KID, Inception Score, precision/recall, density/coverage.

Every function here takes FEATURES, (N, D) numpy arrays or torch tensors; feature extraction lives in
genbench.metrics.features. Roles are keywords (`real=`, `fake=`) wherever a metric is not symmetric in them.

Provenance
----------
- FID: Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter, "GANs trained by a two time-scale update rule
  converge to a local Nash equilibrium" (NeurIPS 2017). Fréchet distance between Gaussians,
  |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)); sample covariance with N - 1 in the denominator.
- KID: Binkowski, Sutherland, Arbel & Gretton, "Demystifying MMD GANs" (ICLR 2018): unbiased MMD^2 with the
  kernel k(x, y) = (gamma x.y + coef0)^degree, gamma = 1/D, coef0 = 1, degree = 3, averaged over random subsets.
- Inception Score: Salimans et al., "Improved techniques for training GANs" (NeurIPS 2016):
  exp(E_x KL(p(y|x) || p(y))) per split, mean and standard deviation over splits.
- Precision/recall: Kynkäänniemi, Karras, Laine, Lehtinen & Aila, "Improved precision and recall metric for
  assessing generative models" (NeurIPS 2019): k-NN balls around each real (fake) sample approximate the real
  (fake) manifold; precision = fraction of fake samples inside the real manifold, recall = fraction of real
  samples inside the fake manifold.
- Density/coverage: Naeem, Oh, Uh, Choi & Yoo, "Reliable fidelity and diversity metrics for generative
  models" (ICML 2020), built on k-NN balls around real samples only.

Reference implementation: torch-fidelity 0.4.0 (metric_fid, metric_kid, metric_isc, metric_prc), read for its
conventions; the code here is genbench's own. Checked in tests/metrics/test_fidelity.py on identical features
(figures in benchmarks/README.md):
- FID: frechet_distance vs torch-fidelity's fid_statistics_to_metric on the same statistics, and fid vs its
  features-to-statistics path: relative difference <= 1e-9 for N > D (1e-13 seen). For N < D both are
  checked against an exact route from the features, where genbench is the closer of the two.
- KID: identical subset draws (numpy RandomState(seed); per subset the fake indices are drawn first, then the
  real ones, each `choice(n, subset_size, replace=False)`), i.e. torch-fidelity with input1=fake,
  input2=real and rng_seed=seed; agreement to float64 rounding when both see float64 features.
- IS: same shuffle (RandomState(seed).permutation), same split boundaries (i*N//splits), softmax in float64,
  population std over splits; agreement to float64 rounding.
- Precision/recall: torch-fidelity's `<=` radius convention and k-th neighbour excluding the sample itself;
  its prc functions take (generated, real) positionally, so precision_recall(real=r, fake=f) equals
  prc_features_to_metric(f, r). Identical values on the test features.
- Density/coverage: checked against a brute-force numpy implementation of the paper's formulas.

Conventions decided here
------------------------
- Statistics (mean, covariance, kernel values and sums, softmax) are computed in float64; KID's Gram
  matrices (inner products of features) in the features' own precision.
- k-NN distances (precision/recall, density/coverage) are computed in the features' own floating dtype
  (float32 features -> float32 distances, as torch-fidelity does), block by block: memory stays near
  `block_rows * N` distances however large N is, and no float64 copy of 50k x 2048 features is made.
  A sample is inside a ball when its distance is <= the radius (torch-fidelity's convention). The original
  density/coverage code uses <; the two differ only on exact ties, e.g. duplicated samples, where a radius
  of 0 would otherwise admit nothing.
- N <= D for FID: the covariances are singular (rank <= N - 1). The Fréchet distance between the two degenerate
  Gaussians is still well defined and genbench computes it without any diagonal offset; `fid` warns, because
  the estimate is strongly biased upward at such N. See `frechet_distance` for the accuracy there.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from genbench import GenbenchError, GenbenchWarning

HIGHER_IS_BETTER = {"fid": False, "kid": False, "is": True, "precision": True, "recall": True,
                    "density": True, "coverage": True}

_BLOCK_BYTES = 256 * 2 ** 20  # working-memory unit: a float64 chunk of features in GaussianStats.update, one
                              # block of the distance matrix in the k-NN metrics


# ---------------------------------------------------------------------------------------------------- inputs

def _check_2d(shape, name: str) -> None:
    if len(shape) != 2:
        raise GenbenchError(f"{name} must be (N, D) features, got shape {tuple(shape)}; "
                            "flatten or pool the extractor output to one vector per sample")
    if shape[0] == 0 or shape[1] == 0:
        raise GenbenchError(f"{name} is empty (shape {tuple(shape)})")


def _to_numpy_2d(x, name: str) -> np.ndarray:
    """(N, D) features as a numpy array (no copy for CPU tensors / arrays)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    _check_2d(x.shape, name)
    return x


def _to_torch_2d(x, name: str) -> torch.Tensor:
    """(N, D) features as a floating torch tensor on its own device, in its own precision (no copy for float32
    and float64; other dtypes go to float32)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        a = np.asarray(x)
        if not a.flags.writeable or any(st < 0 for st in a.strides):
            a = np.array(a)  # torch.from_numpy refuses negative strides and warns on read-only memory maps
        t = torch.from_numpy(a)
    _check_2d(t.shape, name)
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    if not all(bool(torch.isfinite(c).all()) for c in t.split(4096)):
        raise GenbenchError(f"{name} contains NaN or inf; the feature extractor or the samples are broken")
    return t


def _f64(x) -> torch.Tensor:
    """A float64 CPU tensor from a numpy array, a tensor or nested sequences."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double()
    return torch.from_numpy(np.array(x, dtype=np.float64))


def _same_dim(real, fake) -> None:
    if real.shape[1] != fake.shape[1]:
        raise GenbenchError(f"real and fake features differ in dimension: {real.shape[1]} vs {fake.shape[1]}; "
                            "they must come from the same extractor layer")


# ---------------------------------------------------------------------------------------- Gaussian statistics

class GaussianStats:
    """Streaming mean and covariance of features, in float64.

    update(features) takes (B, D) batches; compute() -> (mu (D,), sigma (D, D), n), sigma with N - 1 in the
    denominator (np.cov's convention). Sums are taken around a fixed shift (the mean of the first chunk seen),
    which avoids the cancellation of the raw sum of squares; the result does not depend on the batch size
    beyond float64 rounding.
    """

    def __init__(self):
        self.n = 0
        self._shift = None   # (D,)
        self._sum = None     # (D,)   sum of (x - shift)
        self._outer = None   # (D, D) sum of (x - shift)(x - shift)^T

    def update(self, features) -> None:
        x = _to_numpy_2d(features, "features")
        if self._shift is not None and x.shape[1] != self._shift.shape[0]:
            raise GenbenchError(f"features have dimension {x.shape[1]}, earlier batches had {self._shift.shape[0]}")
        rows = max(1, _BLOCK_BYTES // (8 * x.shape[1]))  # 16384 rows at D = 2048
        for start in range(0, x.shape[0], rows):
            chunk = x[start:start + rows].astype(np.float64)
            col_sum = chunk.sum(axis=0)
            if not np.isfinite(col_sum).all():  # any NaN or inf reaches its column's sum
                raise GenbenchError("features contain NaN or inf; the feature extractor or the samples are broken")
            if self._shift is None:
                self._shift = col_sum / chunk.shape[0]
                self._sum = np.zeros_like(self._shift)
                self._outer = np.zeros((chunk.shape[1], chunk.shape[1]))
            chunk -= self._shift
            self._sum += chunk.sum(axis=0)
            self._outer += chunk.T @ chunk  # numpy runs X^T X as a symmetric rank-k update (half the flops)
            self.n += chunk.shape[0]

    def moments(self) -> tuple[int, np.ndarray, np.ndarray]:
        """(n, mean, M2), M2 = sum (x - mean)(x - mean)^T: what merges exactly across shards
        (genbench.distributed.gaussian_stats)."""
        if self.n < 1:
            raise GenbenchError("Gaussian statistics of no samples")
        m = self._sum / self.n
        return self.n, self._shift + m, self._outer - self.n * np.outer(m, m)

    def compute(self) -> tuple[np.ndarray, np.ndarray, int]:
        if self.n < 2:
            raise GenbenchError(f"Gaussian statistics need at least 2 samples, got {self.n}")
        m = self._sum / self.n                                   # mean of (x - shift)
        sigma = (self._outer - self.n * np.outer(m, m)) / (self.n - 1)
        return self._shift + m, sigma, self.n


def gaussian_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D), float64, of (N, D) features (N - 1 in the denominator)."""
    acc = GaussianStats()
    acc.update(features)
    mu, sigma, _ = acc.compute()
    return mu, sigma


# ------------------------------------------------------------------------------------------------------ FID

def _trace_sqrt_product(sigma1: torch.Tensor, sigma2: torch.Tensor) -> float:
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2 (float64).

    S1 S2 is not symmetric, but it is similar to the symmetric PSD matrix  M = L^T S2 L  for any factor
    S1 = L L^T  (S1 S2 = L (L^T S2 L) L^-1 when L is invertible, and the nonzero spectra of AB and BA agree
    in general), so the trace of its square root is sum(sqrt(eig(M))) and only a symmetric eigenvalue
    problem is solved. With L the Cholesky factor this costs one Cholesky (D^3/3), two products and one
    eigvalsh: about 3x faster at D = 2048 than the general (nonsymmetric) eigvals(S1 S2) of torch-fidelity
    (benchmarks/README.md), and no less accurate: symmetric eigenvalues are perfectly conditioned, while the
    nonsymmetric solver returns the near-zero eigenvalues of singular statistics as small complex pairs.
    When S1 is (numerically) singular, e.g. N <= D, Cholesky fails and L = S1^(1/2) from eigh, with
    rounding-level negative eigenvalues set to 0, gives the same M.
    """
    L, info = torch.linalg.cholesky_ex(sigma1)
    if int(info) != 0:
        w, v = torch.linalg.eigh(sigma1)
        L = (v * w.clamp_min(0).sqrt()) @ v.T
    lam = torch.linalg.eigvalsh(L.T @ sigma2 @ L)  # reads the lower triangle; M is symmetric up to rounding
    # Eigenvalues within rounding of zero (the rank tolerance of np.linalg.matrix_rank) count as 0: for
    # rank-deficient statistics (N <= D) the true ones are exactly 0, and sqrt would turn each ~1e-16 of noise
    # into ~1e-8 of bias.
    tol = lam.abs().max() * lam.shape[0] * torch.finfo(lam.dtype).eps
    return float(torch.where(lam > tol, lam, 0).sqrt().sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2): |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    Symmetric in its two Gaussians. Computed in float64 with no diagonal offset. For singular covariances
    (statistics from N <= D samples) the value is the exact distance between the degenerate Gaussians up to
    rounding: tests check it against an exact route from the features (nuclear norm of Y X^T), where it is
    more accurate than torch-fidelity 0.4.0 (whose eigvals of S1 S2 returns spurious complex eigenvalues).
    Tiny negative values (identical statistics give about +-1e-15 x tr(sigma)) are rounding, not clipped.
    """
    mu1, mu2, s1, s2 = _f64(mu1), _f64(mu2), _f64(sigma1), _f64(sigma2)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if not (mu1.shape == mu2.shape == (d,) and s1.shape == s2.shape == (d, d)):
        raise GenbenchError(f"frechet_distance expects mu (D,) and sigma (D, D) for both Gaussians, got mu "
                            f"{tuple(mu1.shape)}, {tuple(mu2.shape)} and sigma {tuple(s1.shape)}, {tuple(s2.shape)}")
    if not all(math.isfinite(float(t.sum())) for t in (mu1, mu2, s1, s2)):  # NaN or inf reach the sum
        raise GenbenchError("frechet_distance got NaN or inf in mu or sigma")
    diff = mu1 - mu2
    tr_covmean = _trace_sqrt_product(s1, s2)
    return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean)


def _warn_rank_deficient(n: int, d: int, role: str) -> None:
    if n <= d:  # the sample covariance has rank <= N - 1 < D
        warnings.warn(f"FID from {n} {role} samples of {d}-dim features: the covariance is rank-deficient "
                      f"(N <= D), so FID is strongly biased upward; use more than {d} samples.",
                      GenbenchWarning, stacklevel=3)


def fid(*, real, fake) -> float:
    """Fréchet Inception Distance between real and fake (N, D) features (symmetric in the two roles)."""
    real, fake = _to_numpy_2d(real, "real"), _to_numpy_2d(fake, "fake")
    _same_dim(real, fake)
    for x, role in ((real, "real"), (fake, "fake")):
        _warn_rank_deficient(x.shape[0], x.shape[1], role)
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


class FID:
    """Thin streaming accumulator: update(real=..., fake=...) with batches of features (either role may be
    omitted), compute() -> {"fid", "n_real", "n_fake"}. Equal to fid() on the concatenated features."""

    higher_is_better = HIGHER_IS_BETTER["fid"]

    def __init__(self):
        self.real, self.fake = GaussianStats(), GaussianStats()

    def update(self, *, real=None, fake=None) -> None:
        if real is not None:
            self.real.update(real)
        if fake is not None:
            self.fake.update(fake)

    def compute(self) -> dict:
        mu_r, sigma_r, n_r = self.real.compute()
        mu_f, sigma_f, n_f = self.fake.compute()
        _warn_rank_deficient(n_r, mu_r.shape[0], "real")
        _warn_rank_deficient(n_f, mu_f.shape[0], "fake")
        return {"fid": frechet_distance(mu_r, sigma_r, mu_f, sigma_f), "n_real": n_r, "n_fake": n_f}


# ------------------------------------------------------------------------------------------------------ KID

class _PolyMMD:
    """Unbiased MMD^2 between equal-size samples x, y (m, D) with the kernel (gamma x.y + coef0)^degree:

        (sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j)) / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2

    Gram matrices in the features' precision, kernel values and their sums in float64, a block of `rows` rows
    at a time. One instance per worker, called once per subset: it reuses one m x m Gram matrix and two
    rows x m float64 blocks, so no m x m float64 matrix is made and a block's kernel values stay in cache."""

    rows = 64

    def __init__(self, m: int, dtype, degree, gamma: float, coef0: float):
        self.m, self.degree, self.gamma, self.coef0 = m, degree, gamma, coef0
        self.gram = np.empty((m, m), dtype)
        self.base, self.out = np.empty((self.rows, m)), np.empty((self.rows, m))

    def __call__(self, x: np.ndarray, y: np.ndarray) -> float:
        m = self.m
        within = self._sum(x, x, off_diagonal=True) + self._sum(y, y, off_diagonal=True)
        return float(within / (m * (m - 1)) - 2.0 * self._sum(x, y, off_diagonal=False) / (m * m))

    def _sum(self, a: np.ndarray, b: np.ndarray, *, off_diagonal: bool) -> float:
        np.matmul(a, b.T, out=self.gram)  # a @ a.T runs as a symmetric rank-k update: half the products
        total = 0.0
        for start in range(0, self.m, self.rows):
            k = self._kernel(self.gram[start:start + self.rows])
            total += k.sum() - (np.trace(k, offset=start) if off_diagonal else 0.0)
        return total

    def _kernel(self, dot: np.ndarray) -> np.ndarray:
        """(gamma dot + coef0)^degree in float64; integer degrees by repeated products (about 2x faster than a
        float power)."""
        base, out = self.base[:dot.shape[0]], self.out[:dot.shape[0]]
        np.multiply(dot, self.gamma, out=base)
        base += self.coef0
        if float(self.degree).is_integer() and 1 <= self.degree <= 8:
            np.copyto(out, base)
            for _ in range(int(self.degree) - 1):
                out *= base
            return out
        return np.power(base, self.degree, out=out)


def kid(*, real, fake, subsets: int = 100, subset_size: int = 1000, degree: int = 3, gamma: float | None = None,
        coef0: float = 1, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: (mean, std) over `subsets` random subsets of unbiased MMD^2 (poly kernel).

    Subsets are drawn without replacement from numpy's RandomState(seed), fake indices then real indices for
    each subset, as torch-fidelity does for input1=fake, input2=real (its default rng_seed is 2020; pass
    seed=2020 to reproduce its default numbers). gamma=None means 1/D. std is over subsets (ddof=0).
    When either set has fewer than `subset_size` samples the subset size shrinks to min(N_real, N_fake)
    with a GenbenchWarning.
    """
    real, fake = _to_numpy_2d(real, "real"), _to_numpy_2d(fake, "fake")
    _same_dim(real, fake)
    n_real, n_fake = real.shape[0], fake.shape[0]
    if subsets < 1:
        raise GenbenchError(f"kid needs subsets >= 1, got {subsets}")
    if min(n_real, n_fake) < 2:
        raise GenbenchError(f"kid needs at least 2 real and 2 fake samples, got {n_real} and {n_fake}")
    if subset_size > min(n_real, n_fake):
        warnings.warn(f"KID subset size {subset_size} is larger than the sample sets (real {n_real}, fake "
                      f"{n_fake}); using subsets of {min(n_real, n_fake)}.", GenbenchWarning, stacklevel=2)
        subset_size = min(n_real, n_fake)
    if subset_size < 2:
        raise GenbenchError(f"kid needs subset_size >= 2, got {subset_size}")
    gamma = 1.0 / real.shape[1] if gamma is None else float(gamma)

    # Gram matrices in the features' own precision (float32 features: float32 products, half the time of
    # float64 and what torch-fidelity computes), kernel values and their sums always in float64.
    dtype = np.float64 if np.float64 in (real.dtype, fake.dtype) else np.float32
    real, fake = real.astype(dtype, copy=False), fake.astype(dtype, copy=False)
    if not (np.isfinite(real).all() and np.isfinite(fake).all()):
        raise GenbenchError("features contain NaN or inf; the feature extractor or the samples are broken")
    rng = np.random.RandomState(seed)
    draws = [(rng.choice(n_fake, subset_size, replace=False), rng.choice(n_real, subset_size, replace=False))
             for _ in range(subsets)]

    def mmd2s(share: list) -> list[float]:  # worker w takes subsets w, w + workers, ...
        mmd2 = _PolyMMD(subset_size, dtype, degree, gamma, coef0)
        return [mmd2(fake[f], real[r]) for f, r in share]

    mmds = np.empty(subsets)
    with _one_blas_thread_per_worker(subsets) as workers, ThreadPoolExecutor(workers) as pool:
        for w, values in enumerate(pool.map(mmd2s, [draws[w::workers] for w in range(workers)])):
            mmds[w::workers] = values
    return float(mmds.mean()), float(mmds.std())


@contextlib.contextmanager
def _one_blas_thread_per_worker(tasks: int, cap: int = 16):
    """Yield a worker count: as many as BLAS has threads (at most `cap` and `tasks`), with BLAS held to one
    thread each meanwhile. KID's subsets are independent and numpy releases the GIL in its products and
    elementwise loops, so whole subsets in parallel keep every core busy, where one subset at a time leaves
    all but one idle during its (single-threaded) kernel work and splits its products across threads less than
    perfectly (benchmarks/README.md). A subset's value is the same whichever worker computes it, and
    whatever the number of cores: each runs on one BLAS thread."""
    blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    workers = max(1, min(max(blas, default=1), tasks, cap))
    with threadpool_limits(limits=1, user_api="blas"):
        yield workers


# ------------------------------------------------------------------------------------------- Inception Score

def inception_score(logits, *, splits: int = 10, seed: int | None = 0) -> tuple[float, float]:
    """Inception Score (mean, std over splits) from classifier logits (N, C) — logits, not probabilities.

    The rows are shuffled by RandomState(seed).permutation(N) first (seed=None: no shuffle), then cut into
    `splits` contiguous parts at i*N//splits, as torch-fidelity does (its default rng_seed is 2020). Per
    split: exp(mean_x KL(p(y|x) || p(y))) with p(y) the split's mean of p(y|x); std has ddof=0.
    """
    x = _to_numpy_2d(logits, "logits")
    n = x.shape[0]
    if not 1 <= splits <= n:
        raise GenbenchError(f"inception_score needs 1 <= splits <= N, got splits={splits}, N={n}")
    if seed is not None:
        x = x[np.random.RandomState(seed).permutation(n)]
    x = torch.as_tensor(x.astype(np.float64))
    if not bool(torch.isfinite(x).all()):
        raise GenbenchError("logits contain NaN or inf; the classifier or the samples are broken")
    log_p = x.log_softmax(dim=1)  # (N, C) log p(y|x)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits:(i + 1) * n // splits]
        log_py = torch.logsumexp(part, dim=0) - math.log(part.shape[0])  # log of the mean of p(y|x)
        kl = (part.exp() * (part - log_py)).sum(dim=1).mean()
        scores.append(math.exp(float(kl)))
    return float(np.mean(scores)), float(np.std(scores))


# ---------------------------------------------------------------------------- k-NN manifolds (P/R, D/C)

def _rows_per_block(n_cols: int, dtype: torch.dtype, block_rows: int | None) -> int:
    if block_rows is not None:
        return max(1, int(block_rows))
    itemsize = torch.finfo(dtype).bits // 8
    return max(1, _BLOCK_BYTES // (n_cols * itemsize))


def _each_sq_dist_block(a: torch.Tensor, b: torch.Tensor, rows: int, visit) -> None:
    """Call visit(start, d2) for each block of rows of a, d2 = squared distances from a[start:start + rows] to all
    of b, (rows, Nb). One block is alive at a time (a generator would keep the previous one referenced by the
    caller while the next is built, doubling the peak)."""
    b_sq = torch.cat([(c * c).sum(dim=1) for c in b.split(4096)])  # |b|^2 by chunks: no (Nb, D) temporary
    for start in range(0, a.shape[0], rows):
        a_blk = a[start:start + rows]
        d2 = torch.addmm(b_sq[None, :], a_blk, b.T, alpha=-2.0)  # |b|^2 - 2 a.b
        d2.add_((a_blk * a_blk).sum(dim=1, keepdim=True)).clamp_min_(0)
        visit(start, d2)
        del d2


def _kth_nn_sq_radii(x: torch.Tensor, k: int, block_rows: int | None) -> torch.Tensor:
    """Squared distance from each row of x to its k-th nearest other row of x, (N,)."""
    n = x.shape[0]
    if n <= k:
        raise GenbenchError(f"k-NN radii need more than k = {k} samples per set, got {n}")
    radii = torch.empty(n, dtype=x.dtype, device=x.device)

    def visit(start, d2):
        idx = torch.arange(d2.shape[0], device=x.device)
        d2[idx, start + idx] = 0  # the sample itself, exactly; it is the first of the k + 1 smallest
        radii[start:start + d2.shape[0]] = d2.topk(k + 1, dim=1, largest=False).values.max(dim=1).values

    _each_sq_dist_block(x, x, _rows_per_block(n, x.dtype, block_rows), visit)
    return radii


def _prepare_pair(real, fake) -> tuple[torch.Tensor, torch.Tensor]:
    real, fake = _to_torch_2d(real, "real"), _to_torch_2d(fake, "fake")
    _same_dim(real, fake)
    dtype = torch.promote_types(real.dtype, fake.dtype)
    return real.to(dtype), fake.to(device=real.device, dtype=dtype)


def precision_recall(*, real, fake, k: int = 3, block_rows: int | None = None) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of fake features against real ones.

    precision = fraction of fake samples within the k-NN radius of at least one real sample (fidelity);
    recall    = fraction of real samples within the k-NN radius of at least one fake sample (diversity).
    A sample counts as inside when distance <= radius. Distances are computed in the features' dtype, in
    row blocks of `block_rows` (default: ~256 MiB per block), on the device of `real`.
    """
    real, fake = _prepare_pair(real, fake)
    r2_real = _kth_nn_sq_radii(real, k, block_rows)
    r2_fake = _kth_nn_sq_radii(fake, k, block_rows)
    fake_inside_real = torch.zeros(fake.shape[0], dtype=torch.bool, device=real.device)
    real_inside_fake = torch.zeros(real.shape[0], dtype=torch.bool, device=real.device)

    def visit(start, d2):  # d2: (rows of fake, N_real)
        stop = start + d2.shape[0]
        fake_inside_real[start:stop] = (d2 <= r2_real[None, :]).any(dim=1)
        real_inside_fake.logical_or_((d2 <= r2_fake[start:stop, None]).any(dim=0))

    _each_sq_dist_block(fake, real, _rows_per_block(real.shape[0], real.dtype, block_rows), visit)
    return float(fake_inside_real.double().mean()), float(real_inside_fake.double().mean())


def density_coverage(*, real, fake, k: int = 5, block_rows: int | None = None) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) of fake features against real ones, k-NN balls on real only.

    density  = (1 / (k M)) sum_fake sum_real 1[d(fake, real) <= r_real]   (can exceed 1);
    coverage = fraction of real samples whose k-NN ball holds at least one fake sample.
    Blocked like precision_recall.
    """
    real, fake = _prepare_pair(real, fake)
    r2_real = _kth_nn_sq_radii(real, k, block_rows)
    count = torch.zeros((), dtype=torch.int64, device=real.device)
    covered = torch.zeros(real.shape[0], dtype=torch.bool, device=real.device)

    def visit(start, d2):
        inside = d2 <= r2_real[None, :]  # (rows of fake, N_real)
        count.add_(torch.count_nonzero(inside))  # count_nonzero, unlike sum, makes no int64 copy of the block
        covered.logical_or_(inside.any(dim=0))

    _each_sq_dist_block(fake, real, _rows_per_block(real.shape[0], real.dtype, block_rows), visit)
    return int(count) / (k * fake.shape[0]), float(covered.double().mean())
