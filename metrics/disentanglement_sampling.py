"""Drawing factors in disentanglement_lib's order and encoding them, for genbench.metrics.disentanglement.

Part of genbench.metrics.disentanglement (provenance and conventions in its header). The reference draws its
random numbers in a fixed order (per BetaVAE point: the fixed factor, then two batches of factors; per
FactorVAE point: the fixed factor, then one batch; fixed samples: `batch` factors at a time); the functions here
draw in exactly that order and only then encode, in batches of `encode_batch_size` observations: that changes
nothing for an encoder whose code of an observation does not depend on the rest of its batch (beyond the
floating-point rounding of batched kernels).
"""

from __future__ import annotations

import warnings

import numpy as np

from genbench import GenbenchError, GenbenchWarning


def _warn(message: str) -> None:
    warnings.warn(message, GenbenchWarning, stacklevel=4)


def draw(ground_truth, n: int, random_state: np.random.RandomState) -> np.ndarray:
    """One call of sample_factors, checked; a writable int64 (n, F) copy."""
    f = np.array(ground_truth.sample_factors(n, random_state), dtype=np.int64)
    F = len(ground_truth.factor_sizes)
    if f.shape != (n, F):
        raise GenbenchError(f"sample_factors({n}) returned shape {f.shape}, expected ({n}, {F})")
    return f


def sample(ground_truth, n: int, random_state: np.random.RandomState, batch: int) -> np.ndarray:
    """n factor rows drawn `batch` at a time (the reference's generate_batch_factor_code)."""
    return np.concatenate([draw(ground_truth, min(batch, n - s), random_state) for s in range(0, n, batch)])


def encode(ground_truth, represent, factors: np.ndarray, batch: int) -> np.ndarray:
    """(n, D) float64 codes of the observations of (n, F) factors, `batch` observations per call."""
    parts = []
    for s in range(0, len(factors), batch):
        obs = ground_truth.observations(factors[s:s + batch])
        z = represent(obs)
        if hasattr(z, "detach"):
            z = z.detach().cpu().numpy()
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or len(z) != len(obs):
            raise GenbenchError(f"represent returned shape {z.shape} for {len(obs)} observations; "
                                "it must return codes of shape (n, D)")
        parts.append(z)
    codes = np.concatenate(parts)
    if not np.isfinite(codes).all():
        raise GenbenchError("represent returned NaN or inf codes; the encoder is broken or diverged")
    return codes


def fixable_factors(ground_truth, score: str) -> list[int]:
    """Factors a vote-based score may hold fixed: those with more than one value."""
    sizes = tuple(ground_truth.factor_sizes)
    varying = [j for j, s in enumerate(sizes) if s > 1]
    if len(varying) < len(sizes):
        names = [ground_truth.factor_names[j] for j in range(len(sizes)) if j not in varying]
        _warn(f"{score}: factor(s) {', '.join(names)} have a single value and are never the fixed factor")
    return varying


def beta_vae_points(ground_truth, represent, num_points, random_state, varying, settings):
    """(num_points, D) mean |z1 - z2| over batch pairs sharing one factor, and that factor's index."""
    B = settings.batch_size
    per_call = max(1, settings.encode_batch_size // (2 * B))
    labels = np.empty(num_points, dtype=np.int64)
    points = []
    for start in range(0, num_points, per_call):
        batch = []
        for p in range(start, min(start + per_call, num_points)):
            k = varying[random_state.randint(len(varying))]   # reference order: factor, batch 1, batch 2
            f1 = draw(ground_truth, B, random_state)
            f2 = draw(ground_truth, B, random_state)
            f2[:, k] = f1[:, k]
            labels[p] = k
            batch += [f1, f2]
        z = encode(ground_truth, represent, np.concatenate(batch), settings.encode_batch_size)
        z = z.reshape(len(batch) // 2, 2, B, -1)
        points.append(np.abs(z[:, 0] - z[:, 1]).mean(1))
    return np.concatenate(points), labels


def factor_vae_votes(ground_truth, represent, num_points, random_state, global_var, active, varying, settings):
    """(F, D) votes: for each batch with factor k fixed, the active code with least variance / global variance."""
    B = settings.batch_size
    per_call = max(1, settings.encode_batch_size // B)
    active_dims = np.flatnonzero(active)
    votes = np.zeros((len(ground_truth.factor_sizes), len(global_var)), dtype=np.int64)
    for start in range(0, num_points, per_call):
        batch, fixed = [], []
        for _ in range(start, min(start + per_call, num_points)):
            k = varying[random_state.randint(len(varying))]   # reference order: factor, then its batch
            f = draw(ground_truth, B, random_state)
            f[:, k] = f[0, k]
            batch.append(f)
            fixed.append(k)
        z = encode(ground_truth, represent, np.concatenate(batch), settings.encode_batch_size)
        local_var = z.reshape(len(batch), B, -1).var(1, ddof=1)                    # (points, D)
        dim = active_dims[np.argmin(local_var[:, active_dims] / global_var[active_dims], axis=1)]
        np.add.at(votes, (np.array(fixed), dim), 1)
    return votes
