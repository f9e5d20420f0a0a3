"""Evaluation steps that estimate a likelihood by annealed importance sampling (genbench.metrics.ais), for the
families that have none in closed form: an energy-based model's exp(-E) / Z, and a decoder's p(x) =
integral of p(x | z) p(z) dz (a VAE's decoder, a GAN's generator) as Wu et al. (2017) evaluate them.

Each estimate names its direction in the result. For an energy-based model AIS's log Z-hat is low in expectation,
so the NLL errs low. For a decoder p-hat is unbiased, so log p-hat is a stochastic lower bound and the NLL errs
high; bidirectional Monte Carlo on images simulated from the model brackets the estimator's error there.

What a decoder AIS anneals from: a model with an encoder (`posterior`, the VAE's q(z | x)) from it, a model
without one (a GAN) from its prior N(0, I). Both are unbiased; the encoder's path is far shorter, so at one
budget the GAN's bound is the looser one. Both families get `log_px_gauss_ais`, log p(x) under the stated
observation model N(v / 255; decoder_mean(z), sigma^2 I) on the continuous pixel values v / 255, in nats per
image (a density, so comparable only at one sigma); a model with its own p(x | z) on 8-bit images (`log_px_z`)
also gets `bpd_ais`, the likelihood the family trains, in bits/dim beside its ELBO and IWAE bound.
"""

from __future__ import annotations

import numpy as np
import torch

from genbench import results
from genbench.evalkit import Context, batches, bpd_metric, dims
from genbench.metrics import ais
from genbench.metrics.likelihood import bits_per_dim

GAUSSIAN_OBSERVATION = "N(v / 255; decoder_mean(z), sigma^2 I) on the continuous pixel values v / 255"


# ---------------------------------------------------------------------------------------------------------
# An energy-based model: log Z by AIS from the uniform base on its box

def has_energy_ais(model_class, protocol) -> bool:
    return hasattr(model_class, "energy") and protocol.evaluation.ais is not None


def energy_likelihood(ctx: Context) -> None:
    """Bits/dim of the scored images under p(x) = exp(-E(x)) / Z on the model's box, log Z by AIS from the uniform
    base on the box (genbench.metrics.ais.log_normalizer), each image uniformly dequantized once: y = (v + u) / 256
    on [0, 1]^D, x = lo + (hi - lo) y, log P(v) ~ -E(x) - log Z + D log(hi - lo) - D log 256. An estimate, not a
    bound: AIS's log Z-hat is low in expectation (the NLL errs low), the single dequantization draw makes it an
    upper bound for an exact log Z (the NLL errs high)."""
    model, ev = ctx.model, ctx.ev
    lo, hi = model.box
    d = dims(ctx.images)
    log_z = ais.log_normalizer(model.energy, shape=model.image_shape, bounds=(lo, hi), settings=ev.ais,
                               generator=ctx.generator(5), device=ctx.device, progress=ctx.progress)
    g, nll = ctx.generator(6), []
    with torch.no_grad():
        for v in batches(ctx.images, ev.batch_size, ctx.device, ctx.progress, "energies"):
            u = torch.rand(v.shape, generator=g, device=ctx.device)
            x = lo + (hi - lo) * (v.float() + u) / 256.0
            log_p = -model.energy(x).double() - log_z["log_z"] + d * (np.log(hi - lo) - np.log(256.0))
            nll.append(-log_p.cpu())
    details = {k: log_z[k] for k in ("chains", "ess", "acceptance", "settings")}
    ctx.metrics["bpd_ais"] = bpd_metric(
        torch.cat(nll), ctx.images, split=ctx.split, estimator="ais", log_z=log_z["log_z"],
        log_z_std_error=log_z["std_error"], **details, density=f"exp(-E(x)) / Z on the box [{lo:g}, {hi:g}]^D",
        dequantization="uniform, one draw per image",
        direction=f"{log_z['direction']}; the one dequantization draw errs the other way (Jensen): an estimate, "
                  "not a bound")


# ---------------------------------------------------------------------------------------------------------
# A decoder: log p(x) by AIS over its latent

def has_decoder_ais(model_class, protocol) -> bool:
    return hasattr(model_class, "decoder_mean") and protocol.evaluation.decoder_ais is not None


def decoder_metric_names(model_class, protocol) -> list[str]:
    return [*(["bpd_ais"] if hasattr(model_class, "log_px_z") else []), "log_px_gauss_ais"]


def base_name(model) -> str:
    return "encoder q(z | x)" if hasattr(model, "posterior") else "prior N(0, I)"


def _base(model, x: torch.Tensor) -> ais.GaussianBase | None:
    """The model's encoder q(z | x) as the AIS base where it has one (None: the prior). Continuous x on [0, 1] is
    rounded to 8 bits for the encoder, which reads images: the base may be any distribution, so this only
    changes how far the chains have to travel, never what they estimate."""
    if not hasattr(model, "posterior"):
        return None
    v = x if x.dtype == torch.uint8 else (x * 255).round().clamp(0, 255).to(torch.uint8)
    with torch.no_grad():
        mean, log_var = model.posterior(v)
    return ais.GaussianBase(mean, log_var)


def _prior(model):
    d = model.latent_dim
    return (lambda n, g: torch.randn((n, d), generator=g, device=model.device)), ais.standard_normal_log_prob


def _log_marginal(model, decoder_log_prob, x: torch.Tensor, settings: ais.Settings, generator, *,
                  batch_size: int, progress: bool, posterior_sample: torch.Tensor | None = None,
                  step_sizes: list | None = None) -> dict:
    """ais.log_marginal over images in groups of `batch_size` // chains (one batch of latents each), from
    the model's base; returns log_p and std_error (m,) float64 on the CPU, the mean acceptance and the step
    sizes of each group (pass them to a reverse run over the same images)."""
    prior_sample, prior_log_prob = _prior(model)
    per = max(1, batch_size // settings.chains)
    log_p, se, acceptance, steps = [], [], [], []
    for i, start in enumerate(range(0, len(x), per)):
        xi = x[start:start + per]
        out = ais.log_marginal(decoder_log_prob, prior_sample, prior_log_prob, xi, settings, generator,
                               base=_base(model, xi), progress=progress,
                               posterior_sample=None if posterior_sample is None else
                               posterior_sample[start:start + per],
                               step_sizes=None if step_sizes is None else step_sizes[i])
        log_p.append(out["log_p"].cpu())
        se.append(out["std_error"].cpu())
        acceptance.append(out["acceptance"])
        steps.append(out["step_sizes"])
    return {"log_p": torch.cat(log_p), "std_error": torch.cat(se), "acceptance": float(np.mean(acceptance)),
            "step_sizes": steps}


def _estimator_details(model, settings: ais.Settings, run: dict) -> dict:
    # the error of the mean over images from each image's delta-method error (the chains are independent)
    se = run["std_error"]
    return {"estimator": "ais", "base": base_name(model), "chains": settings.chains, "acceptance": run["acceptance"],
            "ais_std_error_nats": float(se.pow(2).sum().sqrt() / len(se)) if torch.isfinite(se).all() else None,
            "direction": ais.LOG_P_DIRECTION, "settings": settings.to_dict()}


def decoder_likelihood(ctx: Context) -> None:
    """log p(x) of the first `decoder_ais.images` scored images by forward AIS over the model's latent: under the
    model's own p(x | z) as `bpd_ais` (where it has one), and under the Gaussian observation model as
    `log_px_gauss_ais`, with BDMC on `simulated` images drawn from that model (z ~ N(0, I), x = decoder_mean(z)
    + sigma noise): forward AIS bounds their log p(x) from below, reverse AIS from the z that drew them from
    above, and the gap bounds the error of either on data like the model's own."""
    model, cfg = ctx.model, ctx.ev.decoder_ais
    settings, sigma, device = cfg.settings, cfg.sigma, ctx.device
    images = ctx.images[: cfg.images]
    v = torch.from_numpy(np.array(images)).to(device)
    common = dict(batch_size=ctx.ev.batch_size, progress=ctx.progress)

    def gaussian(y, z):
        return ais.gaussian_log_prob(y, model.decoder_mean(z), sigma)

    if hasattr(model, "log_px_z"):
        run = _log_marginal(model, model.log_px_z, v, settings, ctx.generator(7), **common)
        ctx.metrics["bpd_ais"] = bpd_metric(-run["log_p"], images, split=ctx.split,
                                            **_estimator_details(model, settings, run),
                                            observation="the model's own p(x | z) on 8-bit images")
        if cfg.iwae_k and getattr(model, "importance_sampling", False):
            with torch.no_grad():
                iwae = model.log_likelihood(v, k=cfg.iwae_k, generator=ctx.generator(8)).double().cpu()
            ctx.metrics["bpd_ais"]["iwae_same_images"] = {
                "k": cfg.iwae_k, "value": float(bits_per_dim(-iwae.mean(), dims(images))),
                "nats_per_image": float(-iwae.mean())}

    y = v.float() / 255.0
    run = _log_marginal(model, gaussian, y, settings, ctx.generator(9), **common)
    log_p = run["log_p"]
    metric = results.metric(float(log_p.mean()), higher_is_better=True, n=len(log_p), split=ctx.split,
                            unit="nats/image", std_error=float(log_p.std() / len(log_p) ** 0.5) if len(log_p) > 1
                            else None, sigma=sigma, observation=GAUSSIAN_OBSERVATION,
                            **_estimator_details(model, settings, run))
    if cfg.simulated:
        metric["bdmc"] = _bdmc(ctx, gaussian, settings, cfg.simulated, sigma, common)
    ctx.metrics["log_px_gauss_ais"] = metric


def _bdmc(ctx: Context, gaussian, settings: ais.Settings, n: int, sigma: float, common: dict) -> dict:
    model, g = ctx.model, ctx.generator(10)
    with torch.no_grad():
        z = torch.randn((n, model.latent_dim), generator=g, device=ctx.device)
        mean = model.decoder_mean(z)
        y = mean + sigma * torch.randn(mean.shape, generator=g, device=ctx.device)
    forward = _log_marginal(model, gaussian, y, settings, g, **common)
    reverse = _log_marginal(model, gaussian, y, settings, g, posterior_sample=z,
                            step_sizes=forward["step_sizes"], **common)
    lower, upper = float(forward["log_p"].mean()), float(reverse["log_p"].mean())
    return {"images": n, "lower": lower, "upper": upper, "gap": upper - lower,
            "simulated": f"z ~ N(0, I), x = decoder_mean(z) + {sigma:g} N(0, I)",
            "what": "mean log p(x) of simulated images, nats: forward AIS a stochastic lower bound, reverse AIS from "
                    "the z that drew each image a stochastic upper bound (Grosse et al. 2015); the gap bounds the "
                    "error of the forward estimate on data drawn from the model"}
