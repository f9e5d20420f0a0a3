"""Versioned training-and-evaluation protocols, one table per family.

    from genbench.protocols import BUILTIN, Protocol, Evaluation
    registry.protocol("fashion-mnist/vae/quick")      # the current version, by name

The dataclasses and their hash are in `base`; each family's protocols are a module of their own
(`vae`, `disentanglement`, `gan`, `biggan`, `stylegan2`, `cyclegan`, `diffusion`, `autoregressive`, `flows`,
`ebm`), joined here in a fixed order; `decoder_ais` holds the AIS settings the decoder families share.
"""

from genbench.protocols import (autoregressive, biggan, cyclegan, decoder_ais, diffusion, disentanglement, ebm, flows,
                                gan, stylegan2, vae)
from genbench.protocols.base import OPTIONAL_FIELDS, TIERS, Evaluation, Protocol

BUILTIN: tuple[Protocol, ...] = (*vae.PROTOCOLS, *disentanglement.PROTOCOLS, *gan.PROTOCOLS, *biggan.PROTOCOLS,
                                *stylegan2.PROTOCOLS, *cyclegan.PROTOCOLS, *diffusion.PROTOCOLS,
                                *autoregressive.PROTOCOLS, *flows.PROTOCOLS, *ebm.PROTOCOLS)

__all__ = ["BUILTIN", "OPTIONAL_FIELDS", "TIERS", "Evaluation", "Protocol"]
