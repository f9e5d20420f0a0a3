"""NCSN and NCSNv2: noise-conditional score networks trained by denoising score matching, sampled by annealed
Langevin dynamics (or the predictor-corrector sampler), with the probability-flow likelihood of the VE SDE.

Provenance
----------
- NCSN: Song & Ermon, "Generative Modeling by Estimating Gradients of the Data Distribution" (NeurIPS 2019):
  geometric noise levels sigma_1 = 1 > ... > sigma_10 = 0.01 (Sec. 4.2), the denoising score matching objective
  weighted by lambda(sigma) = sigma^2 (Eq. 6: (1/2) ||sigma s(x~, sigma) + z||^2 with x~ = x + sigma z), annealed
  Langevin dynamics (Algorithm 1, T = 100 steps per level, eps = 2e-5, from U[0, 1]), data on [0, 1]; CIFAR-10:
  Adam 1e-3, batch 128, 200k steps, FID 25.32, IS 8.87; the CondRefineNet of Appendix B.1
  (baselines/refinenet.py). Checked in ermongroup/ncsn: losses/dsm.py (anneal_dsm_score_estimation),
  runners/anneal_runner.py (anneal_Langevin_dynamics, init torch.rand), configs/anneal.yml.
- NCSNv2: Song & Ermon, "Improved Techniques for Training Score-Based Generative Models" (NeurIPS 2020):
  Technique 1, sigma_1 = the largest Euclidean distance between two training images (`largest_pairwise_distance`);
  Technique 2, the ratio gamma = sigma_{i-1} / sigma_i solving Phi(sqrt(2D)(gamma - 1) + 3 gamma) -
  Phi(sqrt(2D)(gamma - 1) - 3 gamma) = 0.5 (`level_ratio`); Technique 3, the unconditional network with its
  output divided by sigma; Technique 4, T as large as the budget allows and the eps that brings Eq. 6's f(eps)
  closest to 1 (`langevin_step_size`); Technique 5, EMA 0.999; the final denoising step (Appendix C). CIFAR-10:
  sigma_1 = 50, L = 232, T = 5, eps = 6.2e-6, batch 128, Adam 1e-4, 300k steps, FID 10.87. Checked in
  ermongroup/ncsnv2: configs/cifar10.yaml, models/__init__.py (anneal_Langevin_dynamics, denoise).
- Predictor-corrector sampling and the probability-flow ODE of the VE SDE (sigma_min = sigma_L, sigma_max =
  sigma_1): Song et al. 2021 (ICLR), Algorithm 2 and Sec. 4.3 (genbench.samplers, genbench.metrics.ode).

Conventions and decisions
-------------------------
- Images enter and leave as uint8; inside, pixels live on [0, 1] (v -> v / 255), the papers' scale, so their
  noise levels apply unchanged. Samples leave by rounding 255 x clipped to [0, 1] (torchvision's save_image,
  which both reference codes use).
- The network: `arch = "refinenet"` is the published one (baselines/refinenet.py: NCSN's CondRefineNet with
  conditional instance norm++, NCSNv2's RefineNet scaled by 1 / sigma). `arch = "unet"` (the quick and smoke
  tiers) is DDPM's U-Net (baselines/unet.py), far cheaper on a CPU at 28x28, conditioned on the noise level by
  the same sinusoidal embedding of the level's time on the VE SDE, 999 log(sigma / sigma_L) / log(sigma_1 /
  sigma_L) (NCSNv2: and divided by sigma, as Song et al. 2021's NCSN++ does). Both accept any sigma, so the
  ODE likelihood runs in continuous time (the CondRefineNet interpolates its per-level parameters in log sigma).
- Training draws one level per image uniformly (as the code's `labels = torch.randint(0, L)`); all training
  noise comes from torch's global RNG.
- The quick tier cannot afford the published L x T network passes per sample for 10,000 samples on a CPU: its
  presets keep each paper's techniques and cut L and T (stated in PRESETS).
- `ode_log_likelihood` (nats, a bound on the discrete NLL in expectation over the dequantization): y = (v + u)
  / 256, nll <= -log p(y) + D log 256.

Checked in tests/baselines/test_ncsn.py: the DSM loss against its closed form, Techniques 2 and 4 against the
published CIFAR-10 values (L = 232 at sigma_1 = 50; eps = 6.2e-6 at T = 5), the pairwise distance against brute
force, determinism and exact resume.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from genbench import GenbenchError, samplers
from genbench.baselines.unet import UNet
from genbench.metrics import ode
from genbench.noise import VESDE, geometric_sigmas, probability_flow_drift
from genbench.optim import Optimizer

ARCHS = ("unet", "refinenet")
SAMPLERS = ("annealed-langevin", "predictor-corrector")
ODE_T0 = 1e-5


@dataclass(frozen=True)
class Config:
    arch: str = "refinenet"
    ngf: int = 128                              # refinenet width
    ch: int = 16                                # unet: base width, multipliers, blocks, attention
    mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attn_resolutions: tuple[int, ...] = ()
    sigma_max: float = 1.0                      # sigma_1
    sigma_min: float = 0.01                     # sigma_L
    levels: int = 10                            # L
    scale_by_sigma: bool = False                # NCSNv2 Technique 3: score = net(x) / sigma
    sampler: str = "annealed-langevin"
    steps_per_level: int = 100                  # T of Algorithm 1
    step_eps: float = 2e-5                      # eps of Algorithm 1
    denoise: bool = False                       # NCSNv2: final step x + sigma_L^2 s(x, sigma_L)
    snr: float = 0.16                           # predictor-corrector: signal-to-noise ratio r
    corrector_steps: int = 1
    ode_rtol: float = 1e-5
    ode_atol: float = 1e-5
    ode_probes: int = 1

    def __post_init__(self):
        def bad(why: str):
            raise GenbenchError(f"ncsn: invalid config ({why}): {self}")

        if self.arch not in ARCHS:
            bad(f"arch must be one of {ARCHS}")
        if self.sampler not in SAMPLERS:
            bad(f"sampler must be one of {SAMPLERS}")
        if not (self.sigma_max > self.sigma_min > 0) or self.levels < 2:
            bad("sigma_max > sigma_min > 0 and at least 2 levels")
        if min(self.steps_per_level, self.corrector_steps, self.ngf, self.ch) < 1 or not self.step_eps > 0:
            bad("positive sizes, steps and step size")


def largest_pairwise_distance(images, *, chunk: int = 1024) -> float:
    """NCSNv2 Technique 1: max ||x_i - x_j||_2 over pairs of images on the [0, 1] scale. Rows are screened in
    float32 and the rows that can hold the maximum (within a margin far above float32's error) are recomputed in
    float64, so the result is the exact maximum at a fraction of the cost."""
    x = torch.from_numpy(np.array(images)).flatten(1)
    x32 = x.float() / 255.0
    sq32 = x32.pow(2).sum(1)
    row_max = torch.cat([(sq32[i:i + chunk, None] + sq32[None] - 2 * x32[i:i + chunk] @ x32.T).amax(1)
                         for i in range(0, len(x32), chunk)])
    margin = 1e-3 * float(row_max.max()) + 1e-3
    rows = torch.nonzero(row_max >= row_max.max() - margin).flatten()
    x64 = x.double() / 255.0
    d2 = (x64[rows, None, :] - x64[None]).pow(2).sum(-1) if len(rows) * len(x64) <= 4_000_000 else torch.stack(
        [(x64[r] - x64).pow(2).sum(1) for r in rows.tolist()])
    return math.sqrt(float(d2.max()))


def level_ratio(dims: int) -> float:
    """NCSNv2 Technique 2: gamma > 1 with Phi(sqrt(2D)(gamma - 1) + 3 gamma) - Phi(sqrt(2D)(gamma - 1) - 3 gamma)
    = 0.5, by bisection (the left side falls from ~1 at gamma = 1 as gamma grows)."""
    phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))  # noqa: E731
    c = math.sqrt(2 * dims)
    f = lambda g: phi(c * (g - 1) + 3 * g) - phi(c * (g - 1) - 3 * g) - 0.5  # noqa: E731
    lo, hi = 1.0, 2.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


def num_levels(sigma_max: float, sigma_min: float, gamma: float) -> int:
    """The number of geometric levels from sigma_max to sigma_min with ratio at most gamma."""
    return math.ceil(math.log(sigma_max / sigma_min) / math.log(gamma)) + 1


def langevin_step_size(sigma_min: float, gamma: float, steps: int) -> float:
    """NCSNv2 Technique 4: the eps in (0, sigma_L^2) whose f(eps) (Eq. 6 of the paper) is closest to 1,
    f(eps) = (1 - eps / s^2)^(2T) (gamma^2 - 2 eps / (s^2 - s^2 (1 - eps / s^2)^2)) + 2 eps / (s^2 - s^2 (1 - eps /
    s^2)^2), s = sigma_L, searched on a log grid and refined by golden section."""
    s2 = sigma_min ** 2

    def f(eps: float) -> float:
        r = 1 - eps / s2
        term = 2 * eps / (s2 - s2 * r ** 2)
        return abs(r ** (2 * steps) * (gamma ** 2 - term) + term - 1)

    grid = [s2 * 10 ** (-k / 100) for k in range(1, 1200)]
    best = min(grid, key=f)
    lo, hi = best / 10 ** 0.01, min(best * 10 ** 0.01, s2 * (1 - 1e-12))
    for _ in range(200):
        m1, m2 = lo + (hi - lo) * 0.382, lo + (hi - lo) * 0.618
        lo, hi = (lo, m2) if f(m1) < f(m2) else (m1, hi)
    return (lo + hi) / 2


# Fashion-MNIST: the largest pairwise distance of the 60,000 training images on [0, 1] (Technique 1), computed
# by largest_pairwise_distance(genbench's fashion-mnist train split); D = 784 gives gamma = level_ratio(784).
FASHION_MNIST_SIGMA_MAX = 22.46

_NCSN_BASE = Config()
_V2_BASE = Config(scale_by_sigma=True, denoise=True, steps_per_level=5)


def _v2(sigma_max: float, dims: int, steps: int, **kw) -> Config:
    """An NCSNv2 configuration from Techniques 1, 2 and 4: sigma_1 given, L and eps from the dimension and T."""
    gamma = level_ratio(dims)
    levels = num_levels(sigma_max, 0.01, gamma)
    eps = langevin_step_size(0.01, gamma, steps)
    return dataclasses.replace(_V2_BASE, sigma_max=sigma_max, levels=levels, steps_per_level=steps,
                               step_eps=float(f"{eps:.3g}"), **kw)


_UNET_SMALL = dict(arch="unet", ch=16, mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(), ode_rtol=1e-3,
                   ode_atol=1e-3)
_UNET_SMOKE = dict(arch="unet", ch=8, mult=(1, 2), num_res_blocks=1, attn_resolutions=(), ode_rtol=1e-3,
                   ode_atol=1e-3)
VARIANTS: dict[str, dict[str, Config]] = {
    "ncsn": {
        "smoke": dataclasses.replace(_NCSN_BASE, **_UNET_SMOKE, levels=4, steps_per_level=2, step_eps=5e-5),
        # 10 levels as published, 1 Langevin step per level (the paper: 100) with eps 1e-4 (the paper: 2e-5),
        # so that alpha_i / sigma_i^2 = eps / sigma_L^2 = 1 and the chain moves in its one step: 10 network passes
        "small": dataclasses.replace(_NCSN_BASE, **_UNET_SMALL, steps_per_level=1, step_eps=1e-4),
        # Song & Ermon 2019: CondRefineNet, L = 10, T = 100, eps = 2e-5 (CIFAR-10, ngf 128)
        "standard": _NCSN_BASE,
        # their MNIST configuration's width (ermongroup/ncsn configs: ngf 64) for 28x28
        "standard-28": dataclasses.replace(_NCSN_BASE, ngf=64),
    },
    "ncsnv2": {
        "smoke": dataclasses.replace(_V2_BASE, **_UNET_SMOKE, sigma_max=FASHION_MNIST_SIGMA_MAX, levels=4,
                                     steps_per_level=1, step_eps=1e-5),
        # Technique 1's sigma_1 for Fashion-MNIST, 10 geometric levels (Technique 2 asks for about 100), T = 1
        # with Technique 4's eps for that ratio and T, the denoising step: 11 network passes per sample
        "small": None,  # filled below (needs the level ratio of 20 levels)
        # Song & Ermon 2020, CIFAR-10: sigma_1 = 50, L = 232, T = 5, eps = 6.2e-6
        "standard": dataclasses.replace(_V2_BASE, sigma_max=50.0, levels=232, steps_per_level=5, step_eps=6.2e-6),
        # Fashion-MNIST at the standard tier: Techniques 1, 2 and 4 for D = 784 and T = 5
        "standard-28": _v2(FASHION_MNIST_SIGMA_MAX, 784, 5),
    },
}
_SMALL_GAMMA = (FASHION_MNIST_SIGMA_MAX / 0.01) ** (1 / 9)
VARIANTS["ncsnv2"]["small"] = dataclasses.replace(
    _V2_BASE, **_UNET_SMALL, sigma_max=FASHION_MNIST_SIGMA_MAX, levels=10, steps_per_level=1,
    step_eps=float(f"{langevin_step_size(0.01, _SMALL_GAMMA, 1):.3g}"))
PRESETS = VARIANTS["ncsn"]
DESCRIPTIONS = {
    "ncsn": "NCSN (Song & Ermon 2019): noise-conditional score network, denoising score matching, annealed Langevin",
    "ncsnv2": "NCSNv2 (Song & Ermon 2020): score network scaled by 1/sigma, sigma_1 from the data, denoised "
              "annealed Langevin",
}


class Model(nn.Module):
    family = "score"

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        c, h, w = image_shape
        if h != w:
            raise GenbenchError(f"ncsn needs square images, got {h}x{w}")
        self.config, self.image_shape = config, tuple(image_shape)
        self.register_buffer("sigmas", geometric_sigmas(config.sigma_max, config.sigma_min, config.levels).float())
        self.sde = VESDE(config.sigma_min, config.sigma_max)
        if config.arch == "unet":
            self.net = UNet(c, h, ch=config.ch, mult=config.mult, num_res_blocks=config.num_res_blocks,
                            attn_resolutions=config.attn_resolutions, dropout=0.0)
        else:
            from genbench.baselines import refinenet

            self.net = (refinenet.RefineNet(c, h, config.ngf) if config.scale_by_sigma
                        else refinenet.CondRefineNet(c, h, config.ngf, self.sigmas))

    @property
    def device(self) -> torch.device:
        return self.sigmas.device

    @property
    def sampler_description(self) -> dict:
        c = self.config
        if c.sampler == "annealed-langevin":
            return {"sampler": "annealed Langevin (Song & Ermon 2019, Algorithm 1)", "levels": c.levels,
                    "steps_per_level": c.steps_per_level, "eps": c.step_eps, "denoise": c.denoise}
        return {"sampler": "predictor-corrector (Song et al. 2021, Algorithm 2)", "levels": c.levels,
                "snr": c.snr, "corrector_steps": c.corrector_steps}

    def _to_unit(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != self.image_shape:
            raise GenbenchError(f"ncsn expects uint8 images of shape (B, {', '.join(map(str, self.image_shape))}), "
                                f"got {x.dtype} {tuple(x.shape)}")
        return x.float() / 255.0

    def score(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """s_theta(x, sigma) for a (B,) tensor of noise levels (any positive values)."""
        c = self.config
        if c.arch == "refinenet":
            return self.net(x, sigma)
        t = torch.log(sigma / c.sigma_min) / math.log(c.sigma_max / c.sigma_min)
        out = self.net(x, 999.0 * t)
        return out / sigma.reshape(-1, 1, 1, 1) if c.scale_by_sigma else out

    # --- training
    def dsm_loss(self, x0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """(1/2) E ||sigma s(x + sigma z, sigma) + z||^2, one level per image drawn uniformly (Eq. 6 with
        lambda = sigma^2), summed over dimensions and averaged over the batch."""
        labels = torch.randint(0, self.config.levels, (x0.shape[0],), generator=generator, device=x0.device)
        sigma = self.sigmas[labels]
        z = torch.randn(x0.shape, generator=generator, device=x0.device)
        s = self.score(x0 + sigma.reshape(-1, 1, 1, 1) * z, sigma)
        return 0.5 * (sigma.reshape(-1, 1, 1, 1) * s + z).pow(2).flatten(1).sum(1).mean()

    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        return {"model": settings.build(self.parameters())}

    def train_step(self, x: torch.Tensor, optimizers: dict) -> dict[str, float]:
        opt = optimizers["model"]
        loss = self.dsm_loss(self._to_unit(x), None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    @torch.no_grad()
    def eval_loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, float]:
        g = generator or torch.Generator(x.device).manual_seed(0)
        return {"loss": float(self.dsm_loss(self._to_unit(x), g))}

    # --- the probability-flow ODE likelihood
    def ode_log_likelihood(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict:
        """-log p(y) + D log 256 of uniformly dequantized images y = (v + u) / 256 (nats, a bound on the
        discrete NLL) as {'nll': (B,) float64, 'nfe': int}."""
        c = self.config
        self._to_unit(x)
        u = torch.rand(x.shape, generator=generator, device=x.device)
        y = (x.float() + u) / 256.0
        score_t = lambda z, t: self.score(z, self.sde.sigma(t))  # noqa: E731
        drift = lambda z, t: probability_flow_drift(self.sde, score_t, z, t)  # noqa: E731
        out = ode.ode_log_prob(drift, self.sde.prior_log_prob, y, t0=ODE_T0, t1=1.0, rtol=c.ode_rtol,
                               atol=c.ode_atol, probes=c.ode_probes, generator=generator)
        return {"nll": -out.log_prob.double() + x[0].numel() * math.log(256.0), "nfe": out.nfe}

    @property
    def ode_details(self) -> dict:
        c = self.config
        return {"sde": f"VE (sigma {c.sigma_min:g} to {c.sigma_max:g})", "solver": "dopri5", "rtol": c.ode_rtol,
                "atol": c.ode_atol, "t0": ODE_T0, "trace": f"hutchinson, {c.ode_probes} rademacher probe(s)"
                if c.ode_probes else "exact", "dequantization": "uniform"}

    # --- sampling
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        c = self.config
        shape = (n, *self.image_shape)
        if c.sampler == "annealed-langevin":
            x = torch.rand(shape, generator=generator, device=self.device)
            x = samplers.annealed_langevin(self.score, self.sigmas, x, steps_per_level=c.steps_per_level,
                                           eps=c.step_eps, denoise=c.denoise, generator=generator)
        else:
            x = self.sde.prior_sample(shape, generator=generator, device=self.device)
            x = samplers.predictor_corrector(self.score, self.sigmas, x, snr=c.snr,
                                             corrector_steps=c.corrector_steps, generator=generator)
        return (x.clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8)
