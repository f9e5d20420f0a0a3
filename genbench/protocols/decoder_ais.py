"""The decoder AIS settings every decoder-based family's protocols on one dataset share (the VAE's decoder, the
GANs' generators), so their log p(x) columns compare: genbench.metrics.ais.Decoder, evaluated by
genbench.annealing.

Standard follows Wu, Burda, Salakhutdinov & Grosse 2017 (Sec. 5: 16 chains, 10,000 intermediate
distributions on the sigmoid schedule, 10 leapfrog steps, step sizes adapted toward acceptance 0.65; BDMC on
simulated data) with IWAE at k = 5000 (Burda et al. 2016) beside the VAE's figure. The observation noise
sigma = 0.1 on [0, 1] pixels is genbench's: fixed, so every decoder is scored under one observation model.
Quick is sized to a few minutes of a 2-core CPU (one HMC gradient of the quick VAE's decoder takes about 1 ms
per latent, of the quick DCGAN's about 0.4 ms), so it scores 8 images with short paths: an honest bound, looser
than the standard one, and the bdmc gap in the result says how loose on the model's own data.
"""

from __future__ import annotations

from genbench.metrics.ais import Decoder, Settings

SIGMA = 0.1
SMOKE = Decoder(sigma=SIGMA, images=4, simulated=2, iwae_k=50,
                settings=Settings(chains=2, steps=10, leapfrog_steps=2, pilot_chains=1))
QUICK = Decoder(sigma=SIGMA, images=8, simulated=4, iwae_k=5000,
                settings=Settings(chains=4, steps=200, leapfrog_steps=5, pilot_chains=2))
STANDARD = Decoder(sigma=SIGMA, images=1000, simulated=100, iwae_k=5000,
                   settings=Settings(chains=16, steps=10_000, leapfrog_steps=10, pilot_chains=4))
BY_TIER = {"smoke": SMOKE, "quick": QUICK, "standard": STANDARD}
