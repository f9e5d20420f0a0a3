"""FFJORD: a continuous normalizing flow, dx/dt = f_theta(x, t) with a free-form convolutional f_theta, trained by
maximum likelihood through the instantaneous change of variables with Hutchinson's trace estimator, in the
multiscale architecture of Real NVP; the likelihood of 8-bit images is the uniform-dequantization bound.

Provenance
----------
- Grathwohl, Chen, Bettencourt, Sutskever & Duvenaud, "FFJORD: Free-form Continuous Dynamics for Scalable
  Reversible Generative Models" (ICLR 2019): log p(x(t0)) = log p(x(t1)) + int_t0^t1 Tr(df/dx) dt (Eq. 4, the
  instantaneous change of variables of Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018,
  Theorem 1), Tr(df/dx) estimated without bias by e^T (df/dx) e with one vector-Jacobian product (Sec. 3.1),
  the noise e drawn once per solve and kept fixed over it. Published: MNIST 0.99, CIFAR-10 3.40 bits/dim
  (Table 2, multiscale models).
- The reference implementation, rtqichen/ffjord, read for the image recipe (README's MNIST/CIFAR-10 command;
  train_cnf.py's defaults; lib/odenvp.py, lib/layers/{cnf,odefunc,elemwise}.py,
  lib/layers/diffeq_layers/basic.py): `train_cnf.py --dims 64,64,64 --strides 1,1,1,1 --num_blocks 2
  --layer_type concat --multiscale True --rademacher True`, i.e. per CNF an ODE net of four 3x3 convolutions
  (three hidden layers of 64 channels, then back to the input's channels), each reading t as one more constant
  input channel ("concat"; the multiscale model builds concat layers whatever --layer_type says), softplus
  between them; Rademacher probes; dopri5 with atol = rtol = 1e-5 in training and at test time; the logit
  transform with alpha = 1e-6 on y = (v + u) / 256 (u ~ U[0, 1)); each CNF's end time T = 1 learned through
  sqrt(T) (train_T); Adam lr 1e-3 (linear warmup over 1,000 iterations), no weight decay, batch 200, no
  gradient clipping in effect (max_grad_norm 1e10); CIFAR-10 with random horizontal flips. The multiscale
  model (ODENVP): at each scale `blocks` CNFs, a 2x2 squeeze, `blocks` CNFs, then half of the channels factored
  out to the prior; the last scale has no squeeze; scales are added while both sides are >= 4 (MNIST 28x28: 3
  scales, 10 CNFs; CIFAR-10 32x32: 4 scales, 14 CNFs). The reference backpropagates by the adjoint method
  (torchdiffeq's odeint_adjoint).
- Presets. `standard`: the reference's multiscale model (800,646 parameters at 1x28x28, 1,358,882 at 3x32x32);
  departures: gradients by direct backpropagation through dopri5's steps, not the adjoint, so memory grows
  with the evaluations kept (measured ~1.2-1.4 MB per image per CNF evaluation: at batch 200 and ~50
  evaluations per CNF solve, ~120 GB for MNIST's 10 CNFs, ~170 GB for CIFAR-10's 14, i.e. data-parallel over
  several GPUs); no horizontal flips (the runner has no augmentation); the batch, steps and warmup are the
  protocol's.
- `small` (the quick tier, a 2-core CPU) departs further, as the published model costs about 6e10 multiply-adds per
  training image (~50 evaluations per solve, ~3 network passes each): seconds per image on such a CPU. One CNF on
  the whole image (no multiscale), 2 x 32 hidden channels, trained through one RK4 step (4 evaluations) and
  evaluated through four: a fixed cost for the 10,000 samples, where dopri5's grows as the field stiffens in
  training. A model trained through one step learns to profit from that step's error (after 50 steps the one-step
  value was 0.03 bits/dim better than the continuous model's; over 600 steps of the quick protocol's first version
  the training bound fell to 3.1 bits/dim while the held-out bound under four steps rose to 8.2). `small-rnode`
  (the quick protocol's second version) is that model trained as RNODE trains FFJORD: Finlay, Jacobsen, Nurbekyan
  & Oberman, "How to train your neural ODE: the world of Jacobian and kinetic regularization" (ICML 2020), and
  its code, cfinlay/ffjord-rnode (example-scripts/mnist.sh: RK4 with step 0.25, --kinetic-energy 0.01
  --jacobian-norm2 0.01, dopri5 at 1e-5 for testing; lib/layers/wrappers/cnf_regularization.py and odefunc.py:
  both penalties are means over the dimensions, 1/2 |f|^2 and |e^T df/dx|^2 from the trace's own probe, added
  to the bits/dim). Here two RK4 steps of 0.5 (a CPU budget), the penalties on the solver's field T f(x, sT) of
  s in [0, 1] (the reference's own field when T = 1), four RK4 steps at evaluation. `smoke`: one 8-channel CNF,
  two RK4 steps everywhere.
- Not verified: the paper's appendix text itself (its description of the image models and training length
  could not be re-read here; the recipe above is the code's). Not reproduced: the paper's multi-GPU batch and
  training length, and the spectral normalization option of the code (off by default).

Conventions and decisions
-------------------------
- Images enter and leave as uint8 (B, C, H, W). Dequantization is uniform: y = (v + u) / 256, u ~ U[0, 1)^D, so
  log P(v) >= E_u[log p_Y(y)] - D log 256 (Theis et al. 2016), a bound: likelihood = "bound", estimator
  "uniform-dequantization". Preprocessing is the logit transform x = logit(alpha + (1 - 2 alpha) y) and its
  log-determinant, sum_d log(1 - 2 alpha) - log s_d - log(1 - s_d), is part of log p_Y. The logit's range
  [logit alpha, logit(1 - alpha)] is bounded, so the mass the flow puts outside it is lost to the 256 bins: the
  model of the 8-bit data is sub-normalized, which keeps the bound a bound (sampling clips such y to the edge
  bins). Time runs from data (t = 0) to the prior N(0, I) (t = T), as in the reference.
- Each CNF is solved on s = t / T in [0, 1], dx/ds = T f_theta(x, s T): the same map, so a learned T needs no
  time-dependent solver interval, and a fixed-step solver's steps are fractions of T.
- Solvers are genbench.metrics.ode's (dopri5: Dormand-Prince 5(4), the method torchdiffeq's dopri5 is; rk4 and
  euler with fixed steps). genbench takes no torchdiffeq: no dependency, the solver the probability-flow
  likelihood of DDPM and NCSN already uses and tests. Training backpropagates directly through the solver's
  steps ("discretize, then optimize"): the gradient is exact for the computed loss, needs no second (backward)
  solve, and a fixed-step training run is bit-reproducible; the price is memory that grows with the number of
  function evaluations, which the CPU tiers' few fixed steps keep small (the reference's adjoint is O(1)).
- Config fields `solver`, `rtol`, `atol`, `steps` govern training (and the held-out loss, the same objective);
  the `eval_` fields govern `log_likelihood`, `sample`, `encode` and `decode`. `max_steps` caps dopri5's tried
  steps per CNF solve (an error, never a silent truncation). Hutchinson probes: `probe` ("rademacher", the
  reference's --rademacher True, or "gaussian"), `probes` per CNF solve in training, `eval_probes` at evaluation
  (0: the exact trace, one vector-Jacobian product per dimension: for tests and tiny images). All training
  randomness (u, probes) comes from torch's global RNG, which the runner checkpoints; evaluation draws from its
  generator: u first, then each CNF's probes in order.
- The training loss is the mean negative bound in nats per image (the reference minimizes bits/dim, the same
  up to a constant factor, which Adam's updates do not see). With dopri5 the batch shares its steps, and the
  error norm is the RMS over one state holding every image's x and its trace integral (genbench.metrics.ode;
  torchdiffeq, given the pair, takes the larger of the two RMS norms), so an image's value moves within the tolerances
  with its batch; the evaluation fixes the batches.
- `log_likelihood` takes k = 1 only: a log-sum-exp over k dequantizations of Hutchinson estimates of log p is
  biased upwards (E exp(noise) > 1), so it would not be a bound.
- Latents: `encode` maps each image's bin centres, y = (v + 1/2) / 256, to z, returned flat (B, D): the factored
  halves in the order they leave the network, then the last scale, each flattened as (C, H, W). `decode` and
  `sample` run the flow backwards and quantize by the bin, v = floor(256 y) clipped to [0, 255], so
  decode(encode(v)) = v wherever the solves are accurate to well under half a bin.

Checked in tests/baselines/test_ffjord.py: the reference's multiscale plan and parameter count; decode(encode(v))
= v and the continuous map's inverse to 1e-4; the exact-trace integral against log|det| of the autograd Jacobian of
the solved end-to-end map (squeeze and split included); Hutchinson's mean (Rademacher and Gaussian) against the
exact trace within its standard error; a 1-D CNF's density integrating to one by quadrature; the closed forms of
linear fields (T tr(A) and the solution itself; concatsquash's time-gated trace); the bound against a direct
computation of the dequantization identity, and against the exact bin probabilities Phi(z(b)) - Phi(z(a)) of a
one-pixel toy (no trace needed there) by Jensen; the training gradient (through RK4 and the divergence's
vector-Jacobian products) against finite differences; RNODE's penalty on constant and linear fields against closed
forms; training and sampling determinism.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.metrics import ode
from genbench.optim import Optimizer

DESCRIPTION = ("FFJORD (Grathwohl et al. 2019): continuous normalizing flow with free-form conv dynamics, "
               "Hutchinson trace estimator, multiscale; uniform-dequantization bound")
LAYERS = ("concat", "concatsquash")
NONLINEARITIES = {"softplus": F.softplus, "tanh": torch.tanh}
PROBES = ("rademacher", "gaussian")
BINS = 256


@dataclass(frozen=True)
class Config:
    hidden: tuple[int, ...] = (64, 64, 64)  # hidden channels of each ODE net (3x3 convolutions)
    layer: str = "concat"                   # how a layer reads t: "concat" (a channel) | "concatsquash" (gate)
    nonlinearity: str = "softplus"
    blocks: int = 2                         # CNFs per scale, before the squeeze and again after it
    scales: int | None = None               # None: the reference's rule (scales while both sides are >= 4)
    alpha: float = 1e-6                     # logit transform of y in [0, 1): logit(alpha + (1 - 2 alpha) y)
    time: float = 1.0                       # each CNF's end time T at initialization
    learn_time: bool = True                 # T trained (through sqrt T, as the reference's train_T)
    solver: str = "dopri5"                  # training: "dopri5" | "rk4" | "euler"
    rtol: float = 1e-5
    atol: float = 1e-5
    steps: int | None = None                # fixed-step solvers: steps per CNF solve
    probe: str = "rademacher"               # Hutchinson noise: "rademacher" | "gaussian"
    probes: int = 1                         # per CNF solve in training (0: exact trace)
    eval_solver: str = "dopri5"             # likelihood, sampling, encode, decode
    eval_rtol: float = 1e-5
    eval_atol: float = 1e-5
    eval_steps: int | None = None
    eval_probes: int = 1                    # per CNF solve at evaluation (0: exact trace)
    max_steps: int = 1000                   # dopri5: tried steps per CNF solve before it gives up
    # Optional (genbench.protocols.base.OPTIONAL_FIELDS): RNODE's penalties in training (Finlay et al. 2020),
    # the weights of the kinetic energy and of the Jacobian's squared Frobenius norm, both per dimension and
    # integrated over each CNF's solve; None: off
    kinetic_energy: float | None = None
    jacobian_norm: float | None = None

    def __post_init__(self):
        def bad(why: str):
            raise GenbenchError(f"ffjord: invalid config ({why}): {self}")

        if not isinstance(self.hidden, tuple) or any(int(h) != h or h < 1 for h in self.hidden):
            bad("hidden must be a tuple of positive integers")
        if self.layer not in LAYERS:
            bad(f"layer must be one of {LAYERS}")
        if self.nonlinearity not in NONLINEARITIES:
            bad(f"nonlinearity must be one of {tuple(NONLINEARITIES)}")
        if self.blocks < 1 or (self.scales is not None and self.scales < 1):
            bad("blocks >= 1 and scales None or >= 1")
        if not 0 <= self.alpha < 0.5 or not self.time > 0:
            bad("0 <= alpha < 1/2 and time > 0")
        for prefix, solver, steps in (("", self.solver, self.steps), ("eval_", self.eval_solver, self.eval_steps)):
            if solver not in ode.SOLVERS:
                bad(f"{prefix}solver must be one of {ode.SOLVERS}")
            if (solver == "dopri5") != (steps is None) or (steps is not None and steps < 1):
                bad(f"{prefix}steps: a positive integer for a fixed-step solver, None for dopri5")
        if min(self.rtol, self.atol, self.eval_rtol, self.eval_atol) <= 0 or self.max_steps < 1:
            bad("tolerances > 0 and max_steps >= 1")
        if self.probe not in PROBES or self.probes < 0 or self.eval_probes < 0:
            bad(f"probe must be one of {PROBES}; probes and eval_probes >= 0")
        if any(w is not None and not w >= 0 for w in (self.kinetic_energy, self.jacobian_norm)):
            bad("kinetic_energy and jacobian_norm: None or >= 0")

    @property
    def regularized(self) -> bool:
        return bool(self.kinetic_energy or self.jacobian_norm)


PRESETS: dict[str, Config] = {
    # seconds on a CPU: tests and CI (one small CNF, two RK4 steps)
    "smoke": Config(hidden=(8,), blocks=1, scales=1, solver="rk4", steps=2, eval_solver="rk4", eval_steps=2),
    # quick tier (Fashion-MNIST 28x28 on a 2-core CPU): one CNF on the whole image (no multiscale), two hidden
    # layers of 32 channels (10,443 parameters), trained through ONE classical RK4 step over [0, T] (4
    # evaluations; dopri5 at 1e-5 takes ~10x more, and a training evaluation costs ~3 network passes), evaluated
    # with four RK4 steps: a fixed cost for the 10,000 samples, 4x finer than training. Sized at 50 steps (batch
    # 64, one thread of a shared machine): ~67 images/s in training; the four-step likelihood was within 3e-4
    # bits/dim of dopri5 at 1e-5 (which took 67 evaluations), the one-step training solver 0.03 below it
    "small": Config(hidden=(32, 32), blocks=1, scales=1, solver="rk4", steps=1, eval_solver="rk4", eval_steps=4),
    # quick tier, second version: the `small` model trained as RNODE trains FFJORD (Finlay et al. 2020: fixed-step
    # RK4 in training, kinetic-energy and Jacobian-Frobenius penalties of weight 0.01 each, which keep the
    # trajectories straight enough for a few steps to solve them), with two RK4 steps (8 evaluations; RNODE's MNIST
    # script takes four of 0.25) and evaluated with four. Trained through one step without the penalties, `small`
    # learned to exploit that step's error (README, "Normalizing flows"); here, in a 300-step trial (batch 64, 2
    # threads; a one-off script calling log_likelihood with the solver swapped), the held-out bound under the
    # training solver, under four RK4 steps and under dopri5 at 1e-5 agreed to 1e-3 bits/dim at every 50 steps. 49
    # training images/s against `small`'s 112
    "small-rnode": Config(hidden=(32, 32), blocks=1, scales=1, solver="rk4", steps=2, eval_solver="rk4", eval_steps=4,
                          kinetic_energy=0.01, jacobian_norm=0.01),
    # the reference's multiscale image model (README command, train_cnf.py defaults): 3 x 64 hidden channels,
    # concat layers, softplus, 2 CNFs per half-scale, dopri5 at 1e-5 in training and evaluation, learned T
    "standard": Config(),
}


# ----------------------------------------------------------------------------------------------------------
# The dynamics f_theta(x, t)

class ConcatConv2d(nn.Module):
    """A 3x3 convolution of [t, h]: the time as one more constant input channel (the reference's ConcatConv2d)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in + 1, c_out, 3, padding=1)

    def forward(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt = t.to(h.dtype)[:, None, None, None].expand(-1, 1, *h.shape[2:])  # (B, 1, H, W)
        return self.conv(torch.cat([tt, h], 1))


class ConcatSquashConv2d(nn.Module):
    """conv(h) * sigmoid(W_g t + b_g) + W_b t, per output channel (the reference's ConcatSquashConv2d)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.gate = nn.Linear(1, c_out)
        self.shift = nn.Linear(1, c_out, bias=False)

    def forward(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt = t.to(h.dtype)[:, None]  # (B, 1)
        return self.conv(h) * torch.sigmoid(self.gate(tt))[:, :, None, None] + self.shift(tt)[:, :, None, None]


class ODENet(nn.Module):
    """f_theta(x, t): (B, C, H, W), (B,) -> (B, C, H, W), len(hidden) + 1 time-reading 3x3 convolutions with the
    nonlinearity between them (none after the last)."""

    def __init__(self, channels: int, hidden: tuple[int, ...], layer: str, nonlinearity: str):
        super().__init__()
        kind = ConcatConv2d if layer == "concat" else ConcatSquashConv2d
        widths = (channels, *hidden, channels)
        self.layers = nn.ModuleList(kind(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.act = NONLINEARITIES[nonlinearity]

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h, t)
            if i + 1 < len(self.layers):
                h = self.act(h)
        return h


class CNF(nn.Module):
    """One continuous normalizing flow dx/dt = f_theta(x, t) on [0, T], as dx/ds = T f_theta(x, s T) on s in
    [0, 1]; T = sqrt_end_time^2, a parameter when learn_time."""

    def __init__(self, channels: int, config: Config):
        super().__init__()
        self.net = ODENet(channels, config.hidden, config.layer, config.nonlinearity)
        sqrt_t = torch.tensor(math.sqrt(config.time))
        if config.learn_time:
            self.sqrt_end_time = nn.Parameter(sqrt_t)
        else:
            self.register_buffer("sqrt_end_time", sqrt_t)

    @property
    def end_time(self) -> torch.Tensor:
        return self.sqrt_end_time ** 2

    def drift(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        T = self.end_time
        return T * self.net(x, s * T)


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 patch into channels (channel 4c + 2i + j holds (c, i, j))."""
    B, C, H, W = x.shape
    return x.reshape(B, C, H // 2, 2, W // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(B, 4 * C, H // 2, W // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    B, C, H, W = x.shape
    return x.reshape(B, C // 4, 2, 2, H, W).permute(0, 1, 4, 2, 5, 3).reshape(B, C // 4, 2 * H, 2 * W)


def reference_scales(h: int, w: int) -> int:
    """The reference's number of scales: one more while both sides are >= 4, halving them (ODENVP)."""
    n = 0
    while h >= 4 and w >= 4:
        n, h, w = n + 1, h // 2, w // 2
    return n


# ----------------------------------------------------------------------------------------------------------
# The model

class Model(nn.Module):
    family = "flow"
    likelihood = "bound"
    likelihood_estimator = "uniform-dequantization"

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        self.config, self.image_shape = config, tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise GenbenchError(f"ffjord needs an image shape (C, H, W), got {image_shape}")
        c, h, w = self.image_shape
        scales = config.scales or max(1, reference_scales(h, w))
        # the plan: ("cnf", index) | ("squeeze", -1) | ("split", -1), in the data -> prior direction
        self.plan: list[tuple[str, int]] = []
        self.cnfs = nn.ModuleList()
        self.latent_shapes: list[tuple[int, int, int]] = []  # the factored parts, then the last scale

        def add_cnfs(channels: int) -> None:
            for _ in range(config.blocks):
                self.plan.append(("cnf", len(self.cnfs)))
                self.cnfs.append(CNF(channels, config))

        for i in range(scales):
            add_cnfs(c)
            if i + 1 < scales:
                if h % 2 or w % 2 or h < 2 or w < 2:
                    raise GenbenchError(f"ffjord: {scales} scales need even sides at every squeeze; the image "
                                        f"{self.image_shape} reaches {h}x{w} at scale {i + 1}. Use fewer scales.")
                self.plan.append(("squeeze", -1))
                c, h, w = 4 * c, h // 2, w // 2
                add_cnfs(c)
                self.plan.append(("split", -1))
                self.latent_shapes.append((c // 2, h, w))  # 4C channels: the second half is factored out
                c = c // 2
        self.latent_shapes.append((c, h, w))
        self.dims = math.prod(self.image_shape)

    # --- what the evaluation records
    @property
    def likelihood_details(self) -> dict:
        c = self.config
        trace = (f"hutchinson ({c.probe}, {c.eval_probes} probe{'s' if c.eval_probes > 1 else ''} per CNF solve)"
                 if c.eval_probes else "exact")
        return {"dequantization": "uniform", "preprocessing": f"logit (alpha = {c.alpha:g})",
                **self._solver_details(), "trace": trace, "cnf_blocks": len(self.cnfs)}

    @property
    def sampler_description(self) -> dict:
        return {"sampler": "the flow solved backwards from z ~ N(0, I)", **self._solver_details()}

    def _solver_details(self) -> dict:
        c = self.config
        if c.eval_solver == "dopri5":
            return {"solver": "dopri5", "rtol": c.eval_rtol, "atol": c.eval_atol}
        return {"solver": c.eval_solver, "steps": c.eval_steps}

    def _solver(self, training: bool) -> dict:
        c = self.config
        if training:
            return dict(solver=c.solver, rtol=c.rtol, atol=c.atol, steps=c.steps, max_steps=c.max_steps)
        return dict(solver=c.eval_solver, rtol=c.eval_rtol, atol=c.eval_atol, steps=c.eval_steps,
                    max_steps=c.max_steps)

    @property
    def device(self) -> torch.device:
        return self.cnfs[0].sqrt_end_time.device

    @property
    def dtype(self) -> torch.dtype:
        return self.cnfs[0].sqrt_end_time.dtype

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4 \
                or tuple(x.shape[1:]) != self.image_shape:
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise GenbenchError(f"ffjord expects uint8 images of shape (B, {', '.join(map(str, self.image_shape))}), "
                                f"got {got}")

    # --- preprocessing: y in [0, 1) <-> x = logit(alpha + (1 - 2 alpha) y)
    def logit(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x and log|dx/dy| per image, (B,)."""
        a = self.config.alpha
        s = a + (1 - 2 * a) * y
        logdet = (math.log1p(-2 * a) - torch.log(s) - torch.log1p(-s)).flatten(1).sum(1)
        return torch.log(s) - torch.log1p(-s), logdet

    def unlogit(self, x: torch.Tensor) -> torch.Tensor:
        a = self.config.alpha
        return (torch.sigmoid(x) - a) / (1 - 2 * a)

    @staticmethod
    def quantize(y: torch.Tensor) -> torch.Tensor:
        """The bin of y in [0, 1): floor(256 y) clipped to [0, 255], uint8."""
        return torch.floor(y * BINS).clamp(0, BINS - 1).to(torch.uint8)

    # --- the flow
    def _probe(self, shape, generator: torch.Generator | None) -> torch.Tensor:
        if self.config.probe == "gaussian":
            return torch.randn(shape, generator=generator, device=self.device, dtype=self.dtype)
        return ode.rademacher(shape, generator=generator, device=self.device, dtype=self.dtype)

    def flow_log_density(self, x: torch.Tensor, *, training: bool, probes: int,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
        """z (B, D) and delta (B,) with log p_X(x) = log N(z; 0, I) + delta, by the instantaneous change of
        variables through every CNF (`probes` Hutchinson vectors per solve, drawn from `generator`; 0: exact);
        training: the solver of training, differentiable; else the evaluation's, detached. Also the total
        number of function evaluations."""
        z, delta, nfe, _ = self.flow_terms(x, training=training, probes=probes, generator=generator)
        return z, delta, nfe

    def flow_terms(self, x: torch.Tensor, *, training: bool, probes: int, generator: torch.Generator | None = None,
                   regularize: bool = False):
        """flow_log_density's (z, delta, nfe), and with regularize the RNODE penalty per image (B,):
        lambda_K int 1/2 |v|^2 / D_i + lambda_J int ||dv/dx||_F^2 / D_i summed over the CNFs (D_i: the
        dimension a CNF acts on), else None."""
        solver, delta, nfe, penalty = self._solver(training), 0.0, 0, 0.0
        c = self.config

        def through(cnf: CNF, y: torch.Tensor) -> torch.Tensor:
            nonlocal delta, nfe, penalty
            e = [self._probe(y.shape, generator) for _ in range(probes)] or None
            out = ode.change_of_variables(cnf.drift, y, t0=0.0, t1=1.0, probes=e, create_graph=training,
                                          regularize=regularize, **solver)
            delta, nfe = delta + out.delta, nfe + out.nfe
            if regularize:
                penalty = penalty + (c.kinetic_energy or 0.0) * out.kinetic + (c.jacobian_norm or 0.0) * out.frobenius
            return out.z

        z = self._forwards(x, through)
        return z, delta, nfe, (penalty if regularize else None)

    def _forwards(self, x: torch.Tensor, through) -> torch.Tensor:
        """z (B, D): the plan from data to prior, each CNF applied by `through(cnf, x) -> x`, the factored-out
        halves and the last state flattened in order."""
        zs = []
        for op, i in self.plan:
            if op == "cnf":
                x = through(self.cnfs[i], x)
            elif op == "squeeze":
                x = squeeze(x)
            else:
                half = x.shape[1] // 2
                zs.append(x[:, half:].flatten(1))
                x = x[:, :half]
        zs.append(x.flatten(1))
        return torch.cat(zs, 1)

    def _transport(self, cnf: CNF, x: torch.Tensor, s0: float, s1: float) -> torch.Tensor:
        """x(s1) from x(s0) by one CNF, the evaluation's solver, no trace."""
        shape = x.shape

        def f(s: float, y: torch.Tensor) -> torch.Tensor:
            return cnf.drift(y.reshape(shape), torch.full((shape[0],), s, dtype=y.dtype, device=y.device)).flatten(1)

        return ode.solve(f, x.flatten(1), s0, s1, **self._solver(False)).y.reshape(shape)

    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """z (B, D) of x (B, C, H, W) on the logit scale (the data -> prior direction)."""
        return self._forwards(x, lambda cnf, y: self._transport(cnf, y, 0.0, 1.0))

    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) on the logit scale of z (B, D): the flow backwards."""
        if z.dim() != 2 or z.shape[1] != self.dims or not z.is_floating_point():
            raise GenbenchError(f"ffjord latents are float (B, {self.dims}), got {z.dtype} {tuple(z.shape)}")
        sizes = [math.prod(s) for s in self.latent_shapes]
        parts = [p.reshape(z.shape[0], *s) for p, s in zip(torch.split(z, sizes, 1), self.latent_shapes)]
        x, j = parts[-1], len(parts) - 2
        for op, i in reversed(self.plan):
            if op == "cnf":
                x = self._transport(self.cnfs[i], x, 1.0, 0.0)
            elif op == "squeeze":
                x = unsqueeze(x)
            else:
                x, j = torch.cat([x, parts[j]], 1), j - 1
        return x

    # --- the bound
    def log_density_dequantized(self, v: torch.Tensor, u: torch.Tensor, *, training: bool, probes: int,
                                generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
        """log p_Y(y) - D log 256 for y = (v + u) / 256, per image (B,): the integrand of the uniform-
        dequantization bound, in nats (and the number of function evaluations)."""
        log_p, nfe, _ = self._dequantized(v, u, training=training, probes=probes, generator=generator)
        return log_p, nfe

    def _dequantized(self, v, u, *, training: bool, probes: int, generator=None, regularize: bool = False):
        x, logdet = self.logit((v.to(u.dtype) + u) / BINS)
        z, delta, nfe, penalty = self.flow_terms(x, training=training, probes=probes, generator=generator,
                                                 regularize=regularize)
        log_prior = -0.5 * (z ** 2 + math.log(2 * math.pi)).sum(1)
        return log_prior + delta + logdet - self.dims * math.log(BINS), nfe, penalty

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, *, k: int = 1, generator: torch.Generator | None = None
                       ) -> torch.Tensor:
        """A lower bound on log P(x) of the 8-bit images in nats, (B,) float64, in expectation over the uniform
        dequantization u and the trace probes (both from `generator`); the evaluation's solver."""
        if k != 1:
            raise GenbenchError("ffjord takes no importance samples (k must be 1): a log-mean-exp over "
                                "Hutchinson estimates of log p is not a bound")
        self._check(x)
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=self.dtype)
        log_p, _ = self.log_density_dequantized(x, u, training=False, probes=self.config.eval_probes,
                                                generator=generator)
        return log_p.double()

    # --- training
    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        self._optim_settings = settings
        return {"model": settings.build(self.parameters())}

    def train_step(self, x: torch.Tensor, optimizers: dict) -> dict[str, float]:
        """One step on the negative bound, mean nats per image (u and the probes from torch's global RNG), plus
        RNODE's penalty when the config weighs it. The reference minimizes bits/dim + lambda . R (R per
        dimension), so here the penalty enters as D log 2 lambda . R: the same objective times D log 2."""
        self._check(x)
        opt = optimizers["model"]
        u = torch.rand(x.shape, device=x.device, dtype=self.dtype)
        regularize = self.config.regularized
        log_p, nfe, penalty = self._dequantized(x, u, training=True, probes=self.config.probes,
                                                regularize=regularize)
        nll = -log_p.mean()
        loss = nll + self.dims * math.log(2.0) * penalty.mean() if regularize else nll
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nats = float(nll.detach())
        out = {"loss": nats, "bpd": nats / (self.dims * math.log(2.0)), "nfe": float(nfe),
               "end_time": float(torch.stack([cnf.end_time.detach() for cnf in self.cnfs]).mean())}
        if regularize:
            out["penalty_bpd"] = float(penalty.detach().mean())  # lambda . R, in the reference's bits/dim units
        settings = getattr(self, "_optim_settings", None)
        if settings is not None and settings.grad_clip is not None:
            out["grad_norm"] = settings.clip(self.parameters())
        opt.step()
        return out

    @torch.no_grad()
    def eval_loss(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, float]:
        """The training objective on held-out images (the training solver), mean nats per image; u and the
        probes from `generator` (None: a private one seeded 0, so evaluating never moves the global RNG)."""
        self._check(x)
        generator = generator or torch.Generator(x.device).manual_seed(0)
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=self.dtype)
        log_p, nfe = self.log_density_dequantized(x, u, training=False, probes=self.config.probes,
                                                  generator=generator)
        nats = float(-log_p.mean())
        return {"loss": nats, "bpd": nats / (self.dims * math.log(2.0)), "nfe": float(nfe)}

    # --- latents and samples
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z (B, D) of the images' bin centres (module docstring)."""
        self._check(x)
        y = (x.to(self.dtype) + 0.5) / BINS
        return self.to_latent(self.logit(y)[0])

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) images of latents z (B, D): the flow backwards, then the bin of y."""
        return self.quantize(self.unlogit(self.from_latent(z.to(self.dtype))))

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images, uint8 (n, C, H, W): z ~ N(0, I) from `generator`, decoded."""
        z = torch.randn((n, self.dims), generator=generator, device=self.device, dtype=self.dtype)
        return self.decode(z)
