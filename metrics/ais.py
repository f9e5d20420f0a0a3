"""Annealed importance sampling (AIS) with HMC transitions, bidirectional Monte Carlo (BDMC), and the two
estimates genbench builds on them: the log normalizer of an energy-based model on a box, and the log marginal
likelihood of a decoder (a GAN generator with a stated noise sigma, a VAE decoder).

Provenance
----------
- AIS: Neal, "Annealed importance sampling" (Statistics and Computing 11, 2001). With normalized
  base p_0, unnormalized target f_T and intermediates f_0 = p_0, ..., f_T: x_0 ~ p_0; for t = 1..T the log
  weight gains log f_t(x_{t-1}) - log f_{t-1}(x_{t-1}), then x_t ~ T_t(. | x_{t-1}) with T_t leaving f_t
  invariant (the last transition, which no weight reads, is skipped). E[w] = Z_T exactly, so log-mean-exp of
  the weights is low in expectation (Jensen): a stochastic lower bound on log Z_T.
- Geometric path log f_t = (1 - beta_t) log p_0 + beta_t log f_T, so the increment is
  (beta_t - beta_{t-1}) (log f_T - log p_0)(x_{t-1}); HMC transitions (genbench.mcmc.hmc_step, 10 leapfrog
  steps) and per-chain step-size adaptation toward acceptance 0.65: Wu, Burda, Salakhutdinov & Grosse,
  "On the Quantitative Analysis of Decoder-Based Generative Models" (ICLR 2017); the constants as in
  the PyTorch port of their code (lxuechen/BDMC; initial step 0.01, factors 1.02 / 0.98, range [1e-4, 0.5]).
- Sigmoid schedule, as recalled from Grosse et al.'s BDMC code (the same formula with radius 4 appears in
  public ports; the original was not read): beta_t = (s(t) - s(0)) / (s(T) - s(0)), s(t) = sigmoid(r (2t/T - 1)),
  sharpness r = 4: small increments at both ends, where the weight changes fastest.
- BDMC: Grosse, Ghahramani & Adams, "Sandwiching the marginal likelihood using bidirectional Monte Carlo"
  (arXiv 1511.02543, 2015): AIS run backwards (beta 1 -> 0) from an exact sample of the normalized
  target p_T = f_T / Z (available on data simulated from the model: the z that generated x is an exact
  posterior sample) has E[w_rev] = 1 / Z, so -log-mean-exp(log w_rev) is a stochastic UPPER bound on log Z;
  forward AIS gives the lower one, and the gap bounds both errors on simulated data.
- Step sizes. adapt="online" is Wu et al.'s rule on each chain's own history: close to, but not exactly,
  unbiased (see genbench.mcmc.adapt_step_size). The acceptance rate it reads is, by default, an exponential
  moving average (memory 0.9, the "slowness" of the deeplearning.net HMC tutorial, as recalled) rather than
  their code's mean over all past transitions (accept_memory=None): on a path whose targets narrow, the
  all-history mean lags. On a 3-D linear-Gaussian decoder (posterior stds 0.15-0.5, 300 steps) it drove the
  step to its 0.5 cap while HMC accepted under 5% of proposals for ~60 transitions mid-path; the moving
  average held the acceptance near 0.6 throughout. adapt="pilot" (the default) first runs `pilot_chains`
  extra forward chains per group with the online rule and gives every estimate chain their geometric-mean
  step size at each transition: the estimate chains' kernels are then fixed independently of them and every
  guarantee above holds exactly. adapt="none" keeps `step_size` throughout.
- Per-image base (`GaussianBase`): any normalized base with the target's support keeps E[w] = Z, so a
  decoder's AIS may start from an amortized posterior q(z | x) (a VAE's encoder) instead of the prior; the path
  is then far shorter. With one intermediate distribution (T = 1) the estimate is exactly IWAE with k = chains
  (Burda et al. 2016), which the tests check to 1e-10.
- Error bars: the delta method, SE(log mean w) ~ std(w) / (sqrt(n) mean w), from the sample standard
  deviation of the weights (first order, and itself noisy when the weights are heavy-tailed); effective
  sample size (sum w)^2 / sum w^2 (Kish).
Checked in tests/metrics/test_ais.py: E[w] = Z and E[w_rev] = 1 / Z on a short 2-D path (50,000 chains);
a 10-D Gaussian normalizer (the one-chain shortfall falling as steps go 10 -> 100 -> 1000, every adaptation
mode recovering log Z); a linear-Gaussian decoder's exact log p(x); BDMC bounds around the truth on
simulated data; a box integral in closed form; the delta-method error bar against the spread over repeats.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from genbench import GenbenchError
from genbench.mcmc import adapt_step_size, hmc_step

HIGHER_IS_BETTER = {"log_p": True}  # log Z has no better direction

F64 = torch.float64
SCHEDULES = ("sigmoid", "linear")
ADAPT = ("pilot", "online", "none")
LogProb = Callable[[torch.Tensor], torch.Tensor]       # (n, ...) -> (n,)
Sampler = Callable[[int, torch.Generator], torch.Tensor]  # (n, generator) -> (n, ...)


@dataclass(frozen=True)
class Settings:
    chains: int = 16              # chains per estimate (per image for log_marginal)
    steps: int = 1000             # T: intermediate distributions beta_1..beta_T
    schedule: str = "sigmoid"     # or "linear"
    sharpness: float = 4.0        # r of the sigmoid schedule
    leapfrog_steps: int = 10      # Wu et al. 2017
    step_size: float = 0.01       # initial (or fixed, adapt="none") HMC step size
    adapt: str = "pilot"          # "pilot" (exact), "online" (Wu et al.; approximate), "none"
    pilot_chains: int = 4         # per group, for adapt="pilot"
    target_accept: float = 0.65
    accept_memory: float | None = 0.9  # EMA of acceptances read by the adaptation; None: all-history mean
    step_range: tuple[float, float] = (1e-4, 0.5)
    seed: int = 0                 # seeds the generator when none is passed

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise GenbenchError(f"AIS schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.adapt not in ADAPT:
            raise GenbenchError(f"AIS adapt must be one of {ADAPT}, got {self.adapt!r}")
        for name in ("chains", "steps", "leapfrog_steps", "pilot_chains"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise GenbenchError(f"AIS {name} must be a positive integer, got {getattr(self, name)!r}")
        lo, hi = self.step_range
        if not 0 < lo <= self.step_size <= hi:
            raise GenbenchError(f"AIS step_size {self.step_size} must lie in step_range {self.step_range}")
        if not 0 < self.target_accept < 1 or self.sharpness <= 0:
            raise GenbenchError("AIS target_accept must lie in (0, 1) and sharpness be positive")
        if self.accept_memory is not None and not 0 <= self.accept_memory < 1:
            raise GenbenchError(f"AIS accept_memory must lie in [0, 1) or be None, got {self.accept_memory!r}")

    def to_dict(self) -> dict:
        return {**asdict(self), "step_range": list(self.step_range)}


@dataclass(frozen=True)
class Decoder:
    """What a protocol fixes for the AIS log-likelihood of a decoder-based model (Wu et al. 2017), evaluated by
    genbench.annealing: the first `images` scored images, `simulated` images drawn from the model for BDMC, and
    for a model with an encoder, IWAE with `iwae_k` samples on the same images beside the AIS figure."""
    sigma: float = 0.1            # std of the Gaussian observation noise on pixels scaled to [0, 1]
    images: int = 8
    simulated: int = 4            # 0: no BDMC
    iwae_k: int = 0               # 0: no IWAE beside it
    settings: Settings = Settings()

    def __post_init__(self):
        if not self.sigma > 0:
            raise GenbenchError(f"decoder AIS needs a positive observation sigma, got {self.sigma!r}")
        if self.images < 1 or self.simulated < 0 or self.iwae_k < 0:
            raise GenbenchError("decoder AIS needs images >= 1, simulated >= 0 and iwae_k >= 0")


def schedule(steps: int, kind: str = "sigmoid", *, sharpness: float = 4.0) -> torch.Tensor:
    """beta_0 = 0 < beta_1 < ... < beta_T = 1, T = steps, float64 (steps + 1,)."""
    if int(steps) != steps or steps < 1:
        raise GenbenchError(f"schedule needs a positive integer number of steps, got {steps!r}")
    if kind == "linear":
        beta = torch.linspace(0.0, 1.0, steps + 1, dtype=F64)
    elif kind == "sigmoid":
        s = torch.sigmoid(torch.linspace(-sharpness, sharpness, steps + 1, dtype=F64))
        beta = (s - s[0]) / (s[-1] - s[0])
    else:
        raise GenbenchError(f"schedule kind must be one of {SCHEDULES}, got {kind!r}")
    beta[0], beta[-1] = 0.0, 1.0
    return beta


# ------------------------------------------------------------------------------ weights and their error

def log_mean_exp(log_w: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log((1/n) sum_i exp(log_w_i)) along dim, in float64."""
    log_w = log_w.to(F64)
    return torch.logsumexp(log_w, dim) - math.log(log_w.shape[dim])


def log_mean_exp_std_error(log_w: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Delta-method standard error of log_mean_exp: std(w) / (sqrt(n) mean(w)), sample std (n - 1), from
    weights rescaled by their maximum (the ratio is scale free, so nothing overflows). NaN when n < 2."""
    log_w = log_w.to(F64)
    n = log_w.shape[dim]
    if n < 2:
        return torch.full_like(log_w.select(dim, 0), math.nan)
    w = torch.exp(log_w - log_w.amax(dim, keepdim=True))
    return w.std(dim) / (math.sqrt(n) * w.mean(dim))


def effective_sample_size(log_w: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """(sum w)^2 / sum w^2 along dim, in float64: n for equal weights, 1 when one weight dominates."""
    log_w = log_w.to(F64)
    return torch.exp(2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim))


@dataclass(frozen=True)
class Result:
    log_weights: torch.Tensor  # (n,) float64; forward: E[w] = Z, reverse: E[w] = 1 / Z
    direction: str             # "forward" | "reverse"
    acceptance: float          # mean HMC acceptance probability over chains and transitions
    step_sizes: torch.Tensor   # (T - 1, n): the step size of each chain at each transition

    def log_z(self, groups: int = 1) -> torch.Tensor:
        """(groups,) float64 estimates of log Z over group-major chains: forward, log-mean-exp (low in
        expectation: a stochastic lower bound); reverse, -log-mean-exp (a stochastic upper bound)."""
        lme = log_mean_exp(self.log_weights.reshape(groups, -1))
        return lme if self.direction == "forward" else -lme

    def std_error(self, groups: int = 1) -> torch.Tensor:
        return log_mean_exp_std_error(self.log_weights.reshape(groups, -1))

    def ess(self, groups: int = 1) -> torch.Tensor:
        return effective_sample_size(self.log_weights.reshape(groups, -1))


# ------------------------------------------------------------------------------------------ the chains

def _intermediate(base_log_prob: LogProb, target_log_prob: LogProb, beta: float) -> LogProb:
    """log f_beta = (1 - beta) log p_0 + beta log f_T."""
    return lambda z: (1 - beta) * base_log_prob(z) + beta * target_log_prob(z)


def _anneal(x, path, base_log_prob, target_log_prob, settings, generator, bounds, *, fixed=None,
            online=False, progress=False, desc="ais") -> Result:
    """Walk the betas in `path` (0 -> 1 forward, 1 -> 0 reverse) from states x (n, ...): add
    (path[k] - path[k-1]) (log f_T - log p_0)(x), then (k < T) one HMC transition leaving f_{path[k]} invariant.
    Step sizes: `fixed` (T - 1, n) by transition index (beta order), else settings.step_size, adapted online."""
    n, T, reverse = x.shape[0], len(path) - 1, bool(path[0] > path[-1])
    log_w = torch.zeros(n, dtype=F64, device=x.device)
    eps = torch.full((n,), settings.step_size, dtype=x.dtype, device=x.device)
    used = torch.empty(T - 1, n, dtype=x.dtype, device=x.device)
    accepts = torch.zeros(n, dtype=F64, device=x.device)
    rate, accept_prob = accepts, torch.zeros((), dtype=F64, device=x.device)
    betas = path.tolist()
    for k in tqdm(range(1, T + 1), desc=desc, unit="step", disable=not progress):
        with torch.no_grad():
            log_w += (betas[k] - betas[k - 1]) * (target_log_prob(x) - base_log_prob(x)).to(F64)
        if k == T:
            break
        j = T - k if reverse else k               # transition index: leaves f_{beta_j} invariant
        if fixed is not None:
            eps = fixed[j - 1]
        out = hmc_step(x, _intermediate(base_log_prob, target_log_prob, betas[k]), eps, settings.leapfrog_steps,
                       generator=generator, bounds=bounds)
        x, used[j - 1] = out.x, eps
        a = out.accepted.to(F64)
        if settings.accept_memory is None:     # Wu et al.'s code: the mean over all past transitions
            accepts += a
            rate = accepts / k
        else:                                  # an exponential moving average that tracks the path
            rate = a if k == 1 else settings.accept_memory * rate + (1 - settings.accept_memory) * a
        accept_prob += out.accept_prob.double().mean()
        if online:
            eps = adapt_step_size(eps, rate, target=settings.target_accept,
                                  min_step=settings.step_range[0], max_step=settings.step_range[1])
    return Result(log_weights=log_w, direction="reverse" if reverse else "forward",
                  acceptance=accept_prob.item() / (T - 1) if T > 1 else math.nan, step_sizes=used)


def pilot_step_sizes(*, base_sample: Sampler, base_log_prob: LogProb, target_log_prob: LogProb,
                     settings: Settings, groups: int = 1, generator: torch.Generator | None = None,
                     bounds=None) -> torch.Tensor:
    """(T - 1, groups): per transition, the geometric mean step size of `settings.pilot_chains` forward chains
    per group adapted online (Wu et al.'s rule). Used as fixed step sizes by other chains, it keeps them exact.
    Chains are group-major: target_log_prob must accept groups * c states, chain i in group i // c."""
    g = _generator(settings, generator)
    m = groups * settings.pilot_chains
    path = schedule(settings.steps, settings.schedule, sharpness=settings.sharpness)
    run = _anneal(base_sample(m, g), path, base_log_prob, target_log_prob, settings, g, bounds, online=True,
                  desc="ais pilot")
    return run.step_sizes.reshape(settings.steps - 1, groups, settings.pilot_chains).log().mean(-1).exp()


def _plan(step_sizes, n: int, problem: dict) -> torch.Tensor | None:
    """Fixed (T - 1, n) step sizes: given ones (T - 1,), (T - 1, groups) or (T - 1, n), a pilot's on `problem`
    (pilot_step_sizes' arguments) for adapt="pilot", or None (fixed settings.step_size or online adaptation)."""
    settings, groups = problem["settings"], problem["groups"]
    if step_sizes is None and settings.adapt == "pilot" and settings.steps > 1:  # steps = 1: no transitions
        step_sizes = pilot_step_sizes(**problem)
    if step_sizes is None:
        return None
    s = step_sizes if step_sizes.ndim == 2 else step_sizes.reshape(-1, 1)
    if s.shape[0] != settings.steps - 1 or s.shape[1] not in (1, groups, n) or n % s.shape[1]:
        raise GenbenchError(f"step_sizes must be (steps - 1 = {settings.steps - 1},) or (steps - 1, groups "
                            f"{groups} or chains {n}), got {tuple(step_sizes.shape)}")
    return s.repeat_interleave(n // s.shape[1], dim=1)


def _generator(settings: Settings, generator, device="cpu") -> torch.Generator:
    """The caller's generator, else one on `device` seeded with settings.seed (pass one for GPU states)."""
    return torch.Generator(device).manual_seed(settings.seed) if generator is None else generator


def ais(*, base_sample: Sampler, base_log_prob: LogProb, target_log_prob: LogProb, settings: Settings,
        n: int, generator: torch.Generator | None = None, bounds=None, groups: int = 1,
        step_sizes: torch.Tensor | None = None, progress: bool = False) -> Result:
    """Forward AIS (Neal 2001) on the geometric path from the normalized base p_0 to f_T, n chains in one
    batch (group-major when groups > 1). base_sample(n, generator) -> (n, ...) states; base_log_prob and
    target_log_prob (n, ...) -> (n,), differentiable; bounds (lo, hi): the box both live on (HMC reflects off
    it). Result.log_z() is then a stochastic LOWER bound on log Z (E[Z-hat] = Z exactly). `step_sizes` (e.g.
    another run's Result.step_sizes) overrides the adaptation; a pilot draws from `generator` first."""
    g = _generator(settings, generator)
    fixed = _plan(step_sizes, n, dict(
        base_sample=base_sample, base_log_prob=base_log_prob, target_log_prob=target_log_prob, settings=settings,
        groups=groups, generator=g, bounds=bounds))
    path = schedule(settings.steps, settings.schedule, sharpness=settings.sharpness)
    return _anneal(base_sample(n, g), path, base_log_prob, target_log_prob, settings, g, bounds, fixed=fixed,
                   online=fixed is None and settings.adapt == "online", progress=progress)


def reverse_ais(*, target_sample: torch.Tensor, base_log_prob: LogProb, target_log_prob: LogProb,
                settings: Settings, base_sample: Sampler | None = None, generator: torch.Generator | None = None,
                bounds=None, groups: int = 1, step_sizes: torch.Tensor | None = None,
                progress: bool = False) -> Result:
    """Reverse AIS (BDMC, Grosse et al. 2015): from EXACT samples of p_T = f_T / Z, target_sample (n, ...),
    walk beta 1 -> 0. Result.log_weights are log w_rev with E[w_rev] = 1 / Z; Result.log_z() returns
    -log-mean-exp(log w_rev), a stochastic UPPER bound on log Z. Only valid when target_sample really is
    exact (data simulated from the model); approximate samples void the bound. adapt="pilot" runs its pilot
    FORWARD from the base, so it needs base_sample (or pass step_sizes, e.g. the forward run's)."""
    if step_sizes is None and settings.adapt == "pilot" and base_sample is None:
        raise GenbenchError("reverse_ais with adapt='pilot' needs base_sample for its forward pilot, or "
                            "step_sizes (e.g. the forward run's Result.step_sizes)")
    g = _generator(settings, generator, target_sample.device)
    fixed = _plan(step_sizes, target_sample.shape[0], dict(
        base_sample=base_sample, base_log_prob=base_log_prob, target_log_prob=target_log_prob, settings=settings,
        groups=groups, generator=g, bounds=bounds))
    path = schedule(settings.steps, settings.schedule, sharpness=settings.sharpness).flip(0)
    return _anneal(target_sample.detach(), path, base_log_prob, target_log_prob, settings, g, bounds,
                   fixed=fixed, online=fixed is None and settings.adapt == "online", progress=progress,
                   desc="reverse ais")


# ------------------------------------------------------------------------------------------ densities

LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over all but the first dimension: (n, ...) -> (n,)."""
    return -0.5 * (z.pow(2) + LOG_2PI).flatten(1).sum(1)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """log N(x; mean, sigma^2 I) summed over all but the first dimension: (n, ...) -> (n,)."""
    return -0.5 * (((x - mean) / sigma).pow(2) + LOG_2PI + 2 * math.log(sigma)).flatten(1).sum(1)


@dataclass(frozen=True)
class GaussianBase:
    """One diagonal Gaussian per image, N(mean_i, diag exp(log_var_i)), mean and log_var (m, D): the base of a
    decoder's AIS from an amortized posterior. Chains are image-major (chain j of image i is row i * c + j), as
    log_marginal lays them out; the noise is drawn as (c, m, D), the layout of
    genbench.metrics.likelihood.gaussian_latent_bound, so one generator state gives both the same draws."""

    mean: torch.Tensor
    log_var: torch.Tensor

    def __post_init__(self):
        if self.mean.ndim != 2 or self.mean.shape != self.log_var.shape:
            raise GenbenchError(f"GaussianBase needs mean and log_var of one shape (images, latent dims), got "
                                f"{tuple(self.mean.shape)} and {tuple(self.log_var.shape)}")

    def _per_chain(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.mean.shape[0]
        if n % m:
            raise GenbenchError(f"GaussianBase of {m} images cannot lay out {n} chains image-major")
        c = n // m
        return self.mean.repeat_interleave(c, 0), self.log_var.repeat_interleave(c, 0)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        m, d = self.mean.shape
        mean, log_var = self._per_chain(n)
        eps = torch.randn((n // m, m, d), generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return mean + (0.5 * log_var).exp() * eps.transpose(0, 1).reshape(n, d)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        mean, log_var = self._per_chain(z.shape[0])
        return -0.5 * ((z - mean).pow(2) / log_var.exp() + log_var + LOG_2PI).sum(1)


# ------------------------------------------------------------------------------------------ estimates

LOG_P_DIRECTION = ("p-hat is unbiased (E[p-hat] = p(x)), so log p-hat is low in expectation (Jensen): a "
                   "stochastic lower bound on log p(x); the NLL errs high")
LOG_Z_DIRECTION = ("log Z-hat is low in expectation (Jensen: E[Z-hat] = Z, so E[log Z-hat] <= log Z), so a "
                   "log-likelihood -E(x) - log Z-hat from it errs high / NLL errs low")


def log_normalizer(energy: Callable[[torch.Tensor], torch.Tensor], *, shape, bounds, settings: Settings,
                   generator: torch.Generator | None = None, device="cpu", dtype=torch.float32,
                   progress: bool = False) -> dict:
    """log Z = log of the integral over the box [lo, hi]^D of exp(-energy(x)) dx, for an energy-based model
    with energy (n, *shape) -> (n,), by forward AIS from the uniform base on the box (log p_0 = -D log(hi - lo))
    with settings.chains chains. Returns JSON-ready floats; see `direction` for which way it errs."""
    lo, hi = (float(b) for b in bounds)
    if not hi > lo:
        raise GenbenchError(f"log_normalizer needs bounds lo < hi, got {bounds!r}")
    shape = tuple(shape)
    log_p0 = -math.prod(shape) * math.log(hi - lo)
    g = _generator(settings, generator, device)
    run = ais(base_sample=lambda n, gen: lo + (hi - lo) * torch.rand((n, *shape), generator=gen, device=device,
                                                                     dtype=dtype),
              base_log_prob=lambda x: torch.full((x.shape[0],), log_p0, dtype=x.dtype, device=x.device),
              target_log_prob=lambda x: -energy(x), settings=settings, n=settings.chains, generator=g,
              bounds=(lo, hi), progress=progress)
    return {"log_z": run.log_z().item(), "std_error": run.std_error().item(), "chains": settings.chains,
            "ess": run.ess().item(), "acceptance": run.acceptance, "direction": LOG_Z_DIRECTION,
            "estimator": "ais", "settings": settings.to_dict()}


def log_marginal(decoder_log_prob: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], prior_sample: Sampler,
                 prior_log_prob: LogProb, x: torch.Tensor, settings: Settings,
                 generator: torch.Generator | None = None, *, base: GaussianBase | None = None,
                 posterior_sample: torch.Tensor | None = None, step_sizes: torch.Tensor | None = None,
                 progress: bool = False) -> dict:
    """Per-image log p(x) = log of the integral of p(x | z) p(z) dz (Wu et al. 2017), with settings.chains
    chains per image run as one batch of m * chains, image-major, from the prior as base (so
    log f_beta = log p(z) + beta log p(x | z)). decoder_log_prob(x_rep, z) -> (m * c,) for images repeated to
    match z; prior_sample(n, generator) -> (n, ...); prior_log_prob(z) -> (n,). With `base` (one distribution
    per image, e.g. a VAE's q(z | x)) the chains start from it instead, log f_beta = (1 - beta) log q(z | x) +
    beta (log p(z) + log p(x | z)): still unbiased for p(x), and at steps = 1 exactly IWAE with k = chains.

    Forward (default): p-hat is unbiased, so log p-hat is a stochastic LOWER bound (NLL errs high).
    With posterior_sample (m, ...), exact posterior draws (the z that generated each simulated x), runs
    reverse AIS from them (each repeated `chains` times): a stochastic UPPER bound (BDMC).
    Returns log_p and std_error, (m,) float64, bound "lower" | "upper", acceptance, and step_sizes
    (pass a forward run's to the reverse run so both use one schedule)."""
    m, repeated = x.shape[0], {}
    if base is not None and base.mean.shape[0] != m:
        raise GenbenchError(f"the AIS base must hold one distribution per image ({m}), got {base.mean.shape[0]}")
    base_sample, base_log_prob = (prior_sample, prior_log_prob) if base is None else (base.sample, base.log_prob)

    def target(z):
        c = z.shape[0] // m
        if c not in repeated:
            repeated[c] = x.repeat_interleave(c, dim=0)
        return prior_log_prob(z) + decoder_log_prob(repeated[c], z)

    common = dict(base_log_prob=base_log_prob, target_log_prob=target, settings=settings, groups=m,
                  generator=_generator(settings, generator, x.device), step_sizes=step_sizes, progress=progress)
    if posterior_sample is None:
        run = ais(base_sample=base_sample, n=m * settings.chains, **common)
    else:
        if posterior_sample.shape[0] != m:
            raise GenbenchError(f"posterior_sample must hold one exact draw per image ({m}), "
                                f"got {posterior_sample.shape[0]}")
        run = reverse_ais(target_sample=posterior_sample.repeat_interleave(settings.chains, dim=0),
                          base_sample=base_sample, **common)
    return {"log_p": run.log_z(groups=m), "std_error": run.std_error(groups=m),
            "bound": "lower" if run.direction == "forward" else "upper", "acceptance": run.acceptance,
            "step_sizes": run.step_sizes}
