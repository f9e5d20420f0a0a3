"""DDPM: denoising diffusion probabilistic model with an epsilon-prediction U-Net, ancestral and DDIM sampling,
and two likelihoods: the variational bound and the probability-flow ODE.

Provenance
----------
- Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models" (NeurIPS 2020): the forward process and its
  posterior (genbench.noise), L_simple (Eq. 14: ||eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t)||^2
  with t uniform), the fixed reverse variances sigma_t^2 = beta_t or beta~_t (Sec. 3.2), sampling by Algorithm 2
  (genbench.samplers.ddpm_ancestral), the decoder L_0 of Eq. 13 (a discretized Gaussian, in
  genbench.metrics.likelihood), the U-Net of Appendix B (baselines/unet.py). Published recipe (Appendix B):
  T = 1000, linear betas 1e-4 -> 0.02, Adam 2e-4, batch 128, warmup 5000 steps, gradient norm clipped at 1,
  EMA 0.9999, dropout 0.1, 800k steps on CIFAR-10: FID 3.17, IS 9.46, NLL <= 3.75 bits/dim (L_simple; Table 2).
  Checked in hojonathanho/diffusion: diffusion_utils_2.py (model_var_type 'fixedlarge' for CIFAR-10,
  clip_denoised in p_sample, _vb_terms_bpd and calc_bpd_loop) and scripts/run_cifar.py.
- Cosine schedule: Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models" (ICML 2021), Eq. 17,
  the `cosine` presets.
- DDIM: Song, Meng & Ermon (ICLR 2021), Eq. 12 (genbench.samplers.ddim); published CIFAR-10 FID at eta = 0 for
  S = 10 / 20 / 50 / 100 / 1000: 13.36 / 6.84 / 4.67 / 4.16 / 4.04 (Table 1).
- The variational bound in bits/dim, L_T + sum_{t>1} L_{t-1} + L_0, as openai/improved-diffusion computes it
  (gaussian_diffusion.py: _vb_terms_bpd, calc_bpd_loop, _prior_bpd): per term the KL between the true posterior
  and the model's Gaussian (x_0 predicted from eps, clipped to [-1, 1] as both reference codes do by
  default), the discretized-Gaussian decoder at the first step, and the prior term KL(q(x_T | x_0) || N(0, I)).
- Probability-flow ODE: Song et al. 2021 (ICLR), Sec. 4.3: the VP SDE of the chain (beta_min = T beta_1,
  beta_max = T beta_T), score(x, t) = -eps_theta(x, t (T - 1)) / sqrt(1 - abar(t)) as their code evaluates DDPM
  weights (score_sde: losses.py / sde_lib.py, the network takes t (N - 1) as its timestep), integrated from
  t = 1e-5 to 1 (genbench.metrics.ode). Published for DDPM's CIFAR-10 weights: 3.28 bits/dim.

Conventions and decisions
-------------------------
- Images enter and leave as uint8 (B, C, H, W); inside, pixels live on [-1, 1] (v -> v / 127.5 - 1). Samples
  leave as uint8 by truncation of (x + 1) 127.5 clipped to [0, 255], as both reference codes do.
- Timesteps are 0-indexed (index t is the paper's t + 1). All training noise (t and eps) comes from torch's
  global RNG, which the runner saves and restores; the evaluation paths take a private generator.
- `log_likelihood` is the variational bound in nats per image of the 8-bit data (a bound: likelihood =
  "bound"). With `vlb_timesteps` = None all T - 1 KL terms are summed (the standard tier: T network passes per
  image); with K, K timesteps are drawn uniformly from 1..T-1 per image and the sum is estimated as (T - 1) times
  their mean (unbiased; estimator "vlb-mc", its spread enters the reported standard error). L_T and L_0 are
  always exact.
- `ode_log_likelihood` is the probability-flow density of uniformly dequantized images, y = (v + u) / 128 - 1
  with u ~ U[0, 1)^D, so nll(v) <= -log p(y) + D log 128 in expectation over u (a bound, Theis et al. 2016), up to
  the solver's and Hutchinson's error; the probes, tolerances and u come from the evaluation's generator.

Checked in tests/baselines/test_ddpm.py: the bound against an independent implementation of improved-diffusion's
vb_terms_bpd on the same tiny network, the sampled estimate's mean against the full sum, L_simple's gradient,
the samplers' settings, determinism and exact resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.baselines.unet import UNet
from genbench.metrics import ode
from genbench.metrics.likelihood import discretized_gaussian_log_prob, gaussian_kl
from genbench.noise import DiscreteSchedule, VPSDE, probability_flow_drift
from genbench.optim import Optimizer
from genbench.pixels import to_signed
from genbench import samplers

DESCRIPTION = ("DDPM: epsilon-prediction U-Net, L_simple; ancestral or DDIM sampling; variational bound and "
               "probability-flow ODE likelihoods")
SAMPLERS = ("ancestral", "ddim")
ODE_T0 = 1e-5  # Song et al. 2021: the likelihood integral starts at t = 1e-5, not 0


@dataclass(frozen=True)
class Config:
    ch: int = 128                               # U-Net base width
    mult: tuple[int, ...] = (1, 2, 2, 2)        # width multipliers per resolution
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.1
    timesteps: int = 1000                       # T
    beta_schedule: str = "linear"               # "linear" (Ho et al.) | "cosine" (Nichol & Dhariwal)
    beta_start: float = 1e-4                    # linear schedule only
    beta_end: float = 0.02
    variance: str = "beta"                      # fixed reverse variance: "beta" ('fixedlarge') | "beta_tilde"
    grad_clip: float | None = 1.0               # global gradient-norm clipping (Ho et al. Appendix B)
    sampler: str = "ancestral"                  # "ancestral" (Algorithm 2, T steps) | "ddim"
    sample_steps: int | None = None             # DDIM: S steps
    eta: float = 0.0                            # DDIM: eta (0: deterministic)
    vlb_timesteps: int | None = None            # None: all T terms of the bound; K: unbiased K-term estimate
    ode_rtol: float = 1e-5                      # probability-flow likelihood: solver tolerances (Song et al.)
    ode_atol: float = 1e-5
    ode_probes: int = 1                         # Rademacher probes of the Hutchinson trace estimate

    def __post_init__(self):
        def bad(why: str):
            raise GenbenchError(f"ddpm: invalid config ({why}): {self}")

        if self.beta_schedule not in ("linear", "cosine"):
            bad("beta_schedule must be 'linear' or 'cosine'")
        if self.variance not in ("beta", "beta_tilde"):
            bad("variance must be 'beta' or 'beta_tilde'")
        if self.sampler not in SAMPLERS:
            bad(f"sampler must be one of {SAMPLERS}")
        if self.sampler == "ddim" and not (self.sample_steps and 1 <= self.sample_steps <= self.timesteps):
            bad("the ddim sampler needs 1 <= sample_steps <= timesteps")
        if self.sampler == "ancestral" and self.sample_steps not in (None, self.timesteps):
            bad("the ancestral sampler takes all T steps; leave sample_steps unset")
        if self.timesteps < 2 or self.ch < 1 or self.num_res_blocks < 1:
            bad("timesteps >= 2 and positive sizes")
        if self.vlb_timesteps is not None and self.vlb_timesteps < 1:
            bad("vlb_timesteps must be None or >= 1")
        if not 0 <= self.eta <= 1 or self.ode_probes < 0:
            bad("0 <= eta <= 1 and ode_probes >= 0")


_CIFAR = dict(ch=128, mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1)
PRESETS: dict[str, Config] = {
    # seconds on a CPU: tests and CI
    "smoke": Config(ch=8, mult=(1, 2), num_res_blocks=1, attn_resolutions=(), dropout=0.0, timesteps=50,
                    sampler="ddim", sample_steps=5, vlb_timesteps=4, ode_rtol=1e-3, ode_atol=1e-3),
    # quick tier (Fashion-MNIST 28x28 on a 2-core CPU): 16 channels, one block per level, no attention (at 14x14
    # it cost a third of the throughput: 282 against 445 images/s forward, batch 500, 2 threads), DDIM with 10
    # steps, a 10-term estimate of the bound; 0.27M parameters, about 290 images/s in training
    "small": Config(ch=16, mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(), dropout=0.0,
                    sampler="ddim", sample_steps=10, vlb_timesteps=10, ode_rtol=1e-3, ode_atol=1e-3),
    # Ho et al. Appendix B: the CIFAR-10 U-Net (35.7M parameters), ancestral sampling, the full bound
    "standard": Config(**_CIFAR),
    # Fashion-MNIST at the standard tier: the same U-Net over 28 -> 14 -> 7 (three levels), attention at 14x14
    "standard-28": Config(ch=128, mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(14,), dropout=0.1),
    # CelebA 64x64: Ho et al.'s 64x64 U-Net (multipliers 1, 1, 2, 2, 4, 4 are for 256x256; 64x64 uses 1, 2, 2, 2
    # over one more level in improved-diffusion's convention): (1, 2, 2, 2) with attention at 16x16, dropout 0
    "standard-64": Config(ch=128, mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.0),
    # Nichol & Dhariwal's cosine schedule on the CIFAR-10 U-Net
    "standard-cosine": Config(**_CIFAR, beta_schedule="cosine"),
}


class Model(nn.Module):
    family = "diffusion"
    likelihood = "bound"

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        c, h, w = image_shape
        if h != w:
            raise GenbenchError(f"ddpm needs square images, got {h}x{w}")
        self.config, self.image_shape = config, tuple(image_shape)
        self.net = UNet(c, h, ch=config.ch, mult=config.mult, num_res_blocks=config.num_res_blocks,
                        attn_resolutions=config.attn_resolutions, dropout=config.dropout)
        kw = dict(start=config.beta_start, end=config.beta_end) if config.beta_schedule == "linear" else {}
        self.schedule = DiscreteSchedule.named(config.beta_schedule, config.timesteps, **kw)
        self.sde = VPSDE.of_chain(self.schedule, config.beta_schedule)

    # --- estimator names the evaluation records
    @property
    def likelihood_estimator(self) -> str:
        return "vlb" if self.config.vlb_timesteps is None else "vlb-mc"

    @property
    def likelihood_details(self) -> dict:
        k = self.config.vlb_timesteps
        return {"terms": "all" if k is None else f"{k} sampled timesteps per image", "T": self.config.timesteps}

    @property
    def sampler_description(self) -> dict:
        return self.sampler_description_with(None)

    def sampler_description_with(self, steps: int | None) -> dict:
        """How `sample(n, steps=steps)` draws: the configured sampler, or DDIM with `steps` steps."""
        c = self.config
        if c.sampler == "ancestral" and steps is None:
            return {"sampler": "ancestral (Ho et al. 2020, Algorithm 2)", "steps": c.timesteps,
                    "variance": c.variance}
        return {"sampler": "ddim (Song, Meng & Ermon 2021, Eq. 12)", "steps": steps or c.sample_steps, "eta": c.eta}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _to_unit(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != self.image_shape:
            raise GenbenchError(f"ddpm expects uint8 images of shape (B, {', '.join(map(str, self.image_shape))}), "
                                f"got {x.dtype} {tuple(x.shape)}")
        return to_signed(x)

    def eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, t) for integer (or, on the ODE, fractional) timestep indices t."""
        return self.net(x_t, t)

    # --- training
    def _loss(self, x0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        t = torch.randint(0, self.config.timesteps, (x0.shape[0],), generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        return F.mse_loss(self.eps(self.schedule.q_sample(x0, t, noise), t), noise)

    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        return {"model": settings.build(self.parameters())}

    def train_step(self, x: torch.Tensor, optimizers: dict) -> dict[str, float]:
        opt = optimizers["model"]
        loss = self._loss(self._to_unit(x), None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = (nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip) if self.config.grad_clip
                else torch.zeros(()))
        opt.step()
        return {"loss": float(loss.detach()), "grad_norm": float(norm)}

    @torch.no_grad()
    def eval_loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, float]:
        g = generator or torch.Generator(x.device).manual_seed(0)
        return {"loss": float(self._loss(self._to_unit(x), g))}

    # --- the variational bound
    def _p_mean_log_var(self, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (from the clipped x_0 prediction) and fixed log-variance of p(x_{t-1} | x_t)."""
        x0 = self.schedule.predict_x0(x_t, t, self.eps(x_t, t)).clamp(-1, 1)
        mean, _, _ = self.schedule.q_posterior(x0, x_t, t)
        log_var = self.schedule.model_log_variance(self.config.variance).to(x_t.device)[t].float()
        return mean, log_var.reshape(-1, 1, 1, 1).expand_as(x_t)

    def vb_terms(self, x: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, generator) -> torch.Tensor:
        """Per image, nats: L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for t > 0 and the decoder
        -log p(x_0 | x_1) for t = 0, with x_t ~ q(x_t | x_0) drawn from `generator`."""
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        x_t = self.schedule.q_sample(x0, t, noise)
        mean, log_var = self._p_mean_log_var(x_t, t)
        true_mean, _, true_log_var = self.schedule.q_posterior(x0, x_t, t)
        kl = gaussian_kl(true_mean, true_log_var, mean, log_var).flatten(1).sum(1)
        decoder = -discretized_gaussian_log_prob(x, mean, 0.5 * log_var).flatten(1).sum(1)
        return torch.where(t == 0, decoder, kl)

    def prior_term(self, x0: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(x_T | x_0) || N(0, I)) per image, nats."""
        t = torch.full((x0.shape[0],), self.config.timesteps - 1, device=x0.device)
        mean, var = self.schedule.q_mean_variance(x0, t)
        return gaussian_kl(mean, var.log(), torch.zeros_like(mean), torch.zeros_like(mean)).flatten(1).sum(1)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, *, k: int = 1, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
        """The variational bound on log P(x) in nats per image (all terms, or the unbiased sampled estimate)."""
        if k != 1:
            raise GenbenchError("ddpm's bound takes no importance samples (k must be 1)")
        x0, T, b = self._to_unit(x), self.config.timesteps, x.shape[0]
        zero = torch.zeros(b, dtype=torch.long, device=x.device)
        nll = self.prior_term(x0).double() + self.vb_terms(x, x0, zero, generator).double()
        K = self.config.vlb_timesteps
        if K is None:
            for i in range(1, T):
                nll += self.vb_terms(x, x0, torch.full_like(zero, i), generator).double()
            return -nll
        t = torch.randint(1, T, (K, b), generator=generator, device=x.device)
        terms = torch.stack([self.vb_terms(x, x0, t[j], generator).double() for j in range(K)])
        return -(nll + (T - 1) * terms.mean(0))

    # --- the probability-flow ODE likelihood
    def score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """score(x, t) = -eps_theta(x, t (T - 1)) / sqrt(1 - abar(t)) on the VP SDE's continuous time t."""
        _, std = self.sde.marginal(torch.zeros_like(x), t)
        return -self.eps(x, t * (self.config.timesteps - 1)) / std

    def ode_log_likelihood(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict:
        """-log p(y) + D log 128 of uniformly dequantized images (nats, a bound on the discrete NLL) as
        {'nll': (B,) float64, 'nfe': int}."""
        c = self.config
        u = torch.rand(x.shape, generator=generator, device=x.device)
        y = (x.float() + u) / 128.0 - 1.0
        self._to_unit(x)  # validates shape and dtype
        drift = lambda z, t: probability_flow_drift(self.sde, self.score, z, t)  # noqa: E731
        out = ode.ode_log_prob(drift, self.sde.prior_log_prob, y, t0=ODE_T0, t1=self.sde.t_end, rtol=c.ode_rtol,
                               atol=c.ode_atol, probes=c.ode_probes, generator=generator)
        dims = x[0].numel()
        return {"nll": (-out.log_prob.double() + dims * math.log(128.0)), "nfe": out.nfe}

    @property
    def ode_details(self) -> dict:
        c = self.config
        return {"sde": f"VP ({c.beta_schedule})", "solver": "dopri5", "rtol": c.ode_rtol, "atol": c.ode_atol,
                "t0": ODE_T0, "trace": f"hutchinson, {c.ode_probes} rademacher probe(s)" if c.ode_probes
                else "exact", "dequantization": "uniform"}

    # --- sampling
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, steps: int | None = None) -> torch.Tensor:
        """n samples, uint8, by the configured sampler; with `steps`, by DDIM in that many steps (the config's
        eta) whatever the configured sampler, as DDIM's Table 1 varies S (the sampler-steps curve)."""
        c = self.config
        x_T = torch.randn((n, *self.image_shape), generator=generator, device=self.device)
        if c.sampler == "ancestral" and steps is None:
            x = samplers.ddpm_ancestral(self.eps, self.schedule, x_T, variance=c.variance, generator=generator)
        else:
            x = samplers.ddim(self.eps, self.schedule, x_T, steps=steps or c.sample_steps, eta=c.eta,
                              generator=generator)
        return ((x + 1) * 127.5).clamp(0, 255).to(torch.uint8)
