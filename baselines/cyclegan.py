"""CycleGAN: unpaired image-to-image translation between two domains with cycle-consistent adversarial losses.

Provenance
----------
- Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks"
  (ICCV 2017). Sec. 3: two mappings G: A -> B and F: B -> A with discriminators D_B (judging domain B) and D_A
  (judging A); the adversarial losses L_GAN(G, D_B, A, B) and L_GAN(F, D_A, B, A) (Eq. 1); cycle consistency
  L_cyc = E_a ||F(G(a)) - a||_1 + E_b ||G(F(b)) - b||_1 (Eq. 2); the full objective L_GAN + L_GAN + lambda L_cyc,
  lambda = 10 (Eq. 3). Sec. 4 and Appendix 7.1-7.2: the least-squares GAN loss (Mao et al. 2017) in place of the
  log likelihood; an identity loss E_b ||G(b) - b||_1 + E_a ||F(a) - a||_1 weighted 0.5 lambda for the
  photo <-> painting tasks; each discriminator trained on a history of the 50 last generated images
  (Shrivastava et al. 2017); Adam lr 2e-4, betas (0.5, 0.999), constant for 100 epochs, then linearly decayed to
  0 over the next 100; batch 1; instance normalization; weights N(0, 0.02). The ResNet generator c7s1-64, d128,
  d256, R256 x 6 (128 x 128 training images) or x 9 (256 x 256 and above), u128, u64, c7s1-3 with reflection
  padding; the 70 x 70 PatchGAN C64-C128-C256-C512 with leaky ReLU 0.2, no instance norm on C64, a final
  convolution to one channel.
- Reference implementation: junyanz/pytorch-CycleGAN-and-pix2pix. Checked against copies of its
  models/cycle_gan_model.py in genbench's code index: backward_D_basic halves loss(real) + loss(fake), and D_A is
  trained on fake_B drawn from the pool, i.e. judges domain B. The rest of this paragraph (models/networks.py,
  util/image_pool.py) was not checked against the code here: the generators are updated first with the
  discriminators' gradients switched off, then both discriminators from the same step's detached fakes drawn
  through the pools; the pool stores images until full and afterwards, per image, with probability 0.5 returns
  a uniformly chosen stored image and puts the new one in its slot, else returns the new one; the PatchGAN
  ("basic", n_layers 3) uses 4 x 4 kernels with padding 1, stride 2 in C64-C128-C256 and stride 1 in C512 and
  the output convolution; the ResNet generator uses transposed 3 x 3 convolutions (stride 2, output padding 1)
  to up-sample, convolution biases (instance norm without affine parameters), no dropout; its G_A is A -> B and
  its D_A judges G_A's outputs, i.e. domain B (here D_b; the names below follow the paper: D_x judges domain x).

Conventions and decisions
-------------------------
- Images enter and leave as uint8 (B, C, H, W); inside, pixels live on [-1, 1] (v -> v / 127.5 - 1); the L1
  losses are on that scale, as in the reference. Sides divisible by 4 (two stride-2 down-samplings in G, undone
  exactly by the up-samplings); D's map must keep at least one pixel (side >= 24 at d_layers 3).
- A training batch is one tensor with labels: 0 = domain A, 1 = domain B; both must be present. The step splits
  it by label (any mix; each loss is a mean over its own domain's images), so a protocol's batch of 8 + 8 is 8
  steps of the paper's batch 1 in one (instance norm normalizes per image, so only the losses' averaging and the
  optimizer see the batch).
- One step = one generator update of both G's on adversarial + cycle + identity losses, then one discriminator
  update of both D's on real vs pooled fakes, each D loss halved. `configure_optimizers` builds one optimizer
  over both generators and one over both discriminators (as the reference's itertools.chain). The paper's
  schedule (constant, then linear decay over the second half) is the protocols' Schedule(decay="linear",
  decay_start=steps // 2), applied by the runner.
- The reported terms are the weighted contributions: loss = g_adv_ab + g_adv_ba + cycle_a + cycle_b +
  identity_a + identity_b, with cycle_x = lambda_cycle * mean |reconstruction(x) - x| and identity_a =
  lambda_identity * lambda_cycle * mean |G_ba(a) - a| (the generator INTO a domain fed that domain; the
  reference's loss_idt_B), identity_b likewise with G_ab(b). d_a and d_b are the halved LSGAN D losses.
- Image pools are buffers of the model (a fixed (pool_size, C, H, W) tensor and a count), so a state-dict
  checkpoint resumes them exactly. A query of n images draws n uniforms, then n slot indices, from torch's
  global RNG (fixed consumption, whether or not the pool is full; the reference uses Python's `random` and
  draws the slot only when it swaps), then goes through the images in order.
- eval_loss: the same keys, no update, the D losses on the current fakes (no pool, pools untouched). Nothing in
  it is random; `generator` is accepted for the runner's interface and unused.
- translate(): uint8 in, uint8 out; instance norm here keeps no running statistics and there is no dropout, so
  train and eval mode give the same result. `sample` is not defined: the model translates, it does not sample.

Checked in tests/baselines/test_cyclegan.py: the LSGAN and vanilla losses against closed forms on given logits;
the cycle and identity losses are 0 for identity generators and equal the hand-computed mean |x - f(f(x))| for an
affine map; the PatchGAN's receptive field is 70 x 70 at the standard preset (analytically, and the input
gradient of one logit of the conv stack is nonzero exactly on that window) and its maps are 6 x 6 at 64 px and
30 x 30 at 256 px; the image pool against a hand run with the same seed (pool_size 0, filling, swapping) and its
state dict round trip; train_step's keys, finiteness, and which parameters each phase changes; a missing domain
raises; same seed, same state dicts; bit-exact resume (pools included); translate's shapes, dtype, determinism.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench import GenbenchError
from genbench.optim import Optimizer
from genbench.pixels import to_signed, to_uint8

DESCRIPTION = ("CycleGAN (Zhu et al. 2017): unpaired translation A <-> B, ResNet generators, 70x70 PatchGANs, "
               "LSGAN + cycle + identity losses, image history pools")
GAN_LOSSES = ("lsgan", "vanilla")
TRANSLATE_CHUNK = 256   # images per generator pass in translate()


@dataclass(frozen=True)
class Config:
    channels: int = 1                 # image channels (must match the data)
    g_width: int = 64                 # channels of G's first layer (c7s1-64); 2x and 4x after the down-samplings
    n_res_blocks: int = 6             # R256 blocks: the paper's 6 at <= 128 px (9 at 256 px)
    d_width: int = 64                 # channels of D's first layer (C64), doubled per layer up to 8x
    d_layers: int = 3                 # stride-2 layers of D (3: C64-C128-C256, then C512, the 70x70 PatchGAN)
    lambda_cycle: float = 10.0        # lambda of Eq. 3
    lambda_identity: float = 0.5      # identity weight as a fraction of lambda_cycle; 0 = off
    pool_size: int = 50               # generated images kept per discriminator; 0 = no history
    gan_loss: str = "lsgan"           # "lsgan" (the paper) or "vanilla" (the reference's log-likelihood option)

    def __post_init__(self):
        def bad(why: str):
            raise GenbenchError(f"cyclegan: invalid config ({why}): {self}")

        if min(self.channels, self.g_width, self.d_width, self.d_layers) < 1 or min(self.n_res_blocks,
                                                                                     self.pool_size) < 0:
            bad("channels, widths and d_layers must be >= 1, n_res_blocks and pool_size >= 0")
        if not all(w >= 0 and math.isfinite(w) for w in (self.lambda_cycle, self.lambda_identity)):
            bad("lambda_cycle and lambda_identity must be finite numbers >= 0")
        if self.gan_loss not in GAN_LOSSES:
            bad(f"gan_loss must be one of {GAN_LOSSES}")


# "small": one train_step on 8 + 8 images of 1 x 64 x 64 (Adam) took 0.216 s on the idle 2-core machine (2 threads,
# 20 timed steps after 3; 0.47 s on 1 thread when the machine was shared with a CI run). Narrower is not the fix:
# g_width 4, 1 block, d_width 4 took 0.38 s; the step runs G 6 times and D 4 times over 64 x 64 maps, and the
# backward of the 7 x 7 convolutions to and from 1 channel at full resolution dominates the profile. "standard": the
# paper's ResNet generator with 6 blocks (its choice for 128 x 128 and smaller training images; dSprites is
# 64 x 64) and the 70 x 70 PatchGAN.
PRESETS: dict[str, Config] = {
    "smoke": Config(g_width=4, n_res_blocks=1, d_width=4, d_layers=2, pool_size=4),
    "small": Config(g_width=8, n_res_blocks=2, d_width=8, d_layers=3),
    "standard": Config(g_width=64, n_res_blocks=6, d_width=64, d_layers=3),
}


# ---- losses (pure functions) ------------------------------------------------------------------------------
def gan_d_loss(loss: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss, halved as the reference halves it, from patch logits of any shape.
    lsgan: (E[(r - 1)^2] + E[f^2]) / 2; vanilla: (E[softplus(-r)] + E[softplus(f)]) / 2 (BCE with targets 1, 0)."""
    if loss == "lsgan":
        return 0.5 * ((real_logits - 1).pow(2).mean() + fake_logits.pow(2).mean())
    if loss == "vanilla":
        return 0.5 * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())
    raise GenbenchError(f"unknown GAN loss {loss!r}; expected one of {GAN_LOSSES}")


def gan_g_loss(loss: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss: lsgan E[(f - 1)^2]; vanilla E[softplus(-f)] (the non-saturating form)."""
    if loss == "lsgan":
        return (fake_logits - 1).pow(2).mean()
    if loss == "vanilla":
        return F.softplus(-fake_logits).mean()
    raise GenbenchError(f"unknown GAN loss {loss!r}; expected one of {GAN_LOSSES}")


def l1(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean |x - target| over every element (the reference's nn.L1Loss): the cycle and identity distances."""
    return (x - target).abs().mean()


# ---- networks ---------------------------------------------------------------------------------------------
def n02_init(m: nn.Module) -> None:
    """Every (transposed) convolution weight from N(0, 0.02), biases 0; instance norm has no parameters."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        nn.init.zeros_(m.bias)


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResidualBlock(nn.Module):
    """R_c: x + [reflect-pad 1, conv3, IN, ReLU, reflect-pad 1, conv3, IN](x), shape-preserving."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), instance_norm(c), nn.ReLU(True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), instance_norm(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """(B, C, H, W) on [-1, 1] -> (B, C, H, W) on [-1, 1]: c7s1-w, d2w, d4w, R4w x n, u2w, uw, c7s1-C, tanh."""

    def __init__(self, channels: int, width: int, n_res_blocks: int):
        super().__init__()
        w = width
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(channels, w, 7), instance_norm(w), nn.ReLU(True)]
        for c in (w, 2 * w):                                                   # d2w, d4w: (H, W) -> (H/4, W/4)
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), instance_norm(2 * c), nn.ReLU(True)]
        layers += [ResidualBlock(4 * w) for _ in range(n_res_blocks)]
        for c in (4 * w, 2 * w):                                               # u2w, uw: back to (H, W)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1),
                       instance_norm(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(n02_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def patchgan_layers(d_layers: int) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of every convolution of the PatchGAN: d_layers stride-2 layers, one stride-1
    layer of 8x width at most, the stride-1 output convolution; all 4 x 4 with padding 1."""
    return [(4, 2, 1)] * d_layers + [(4, 1, 1), (4, 1, 1)]


def receptive_field(layers: list[tuple[int, int, int]]) -> int:
    """Side of the input window one output pixel sees: r <- (r - 1) s + k from the output back (r = 1)."""
    r = 1
    for k, s, _ in reversed(layers):
        r = (r - 1) * s + k
    return r


def patchgan_output_side(side: int, d_layers: int) -> int:
    for k, s, p in patchgan_layers(d_layers):
        side = (side + 2 * p - k) // s + 1
    return side


class PatchDiscriminator(nn.Module):
    """(B, C, H, W) -> patch logits (B, 1, h, w): C_w (no norm) - C_2w - ... (stride 2, d_layers in all), then one
    stride-1 C layer and a stride-1 conv to 1 channel; leaky ReLU 0.2; widths capped at 8w (C512 for w = 64)."""

    def __init__(self, channels: int, width: int, d_layers: int):
        super().__init__()
        geometry = patchgan_layers(d_layers)
        widths = [width * min(2 ** i, 8) for i in range(d_layers + 1)] + [1]
        layers, c_in = [], channels
        for i, ((k, s, p), c_out) in enumerate(zip(geometry, widths)):
            layers.append(nn.Conv2d(c_in, c_out, k, stride=s, padding=p))
            if i < len(geometry) - 1:                                          # no norm or activation on the output
                if i > 0:                                                      # no norm on the first layer
                    layers.append(instance_norm(c_out))
                layers.append(nn.LeakyReLU(0.2, True))
            c_in = c_out
        self.net = nn.Sequential(*layers)
        self.apply(n02_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ImagePool(nn.Module):
    """History of generated images for a discriminator (Shrivastava et al. 2017), as buffers: `images`
    (size, C, H, W) and `count` (how many slots are filled). query(x): while not full, store and return each
    image; once full, for each image with probability 0.5 return a uniformly chosen stored image and store the new
    one in its slot, else return the new image. Draws n uniforms then n slots from the global RNG per query."""

    def __init__(self, size: int, image_shape: tuple[int, int, int]):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *image_shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, x: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return x
        x = x.detach()
        u = torch.rand(len(x), device=x.device)                                # (n,) swap when > 0.5
        slot = torch.randint(0, self.size, (len(x),), device=x.device)         # (n,)
        out, count = [], int(self.count)
        for i in range(len(x)):
            if count < self.size:
                self.images[count] = x[i]
                count += 1
                out.append(x[i])
            elif u[i] > 0.5:
                j = int(slot[i])
                out.append(self.images[j].clone())
                self.images[j] = x[i]
            else:
                out.append(x[i])
        self.count.fill_(count)
        return torch.stack(out) if out else x


# ---- the model --------------------------------------------------------------------------------------------
class Model(nn.Module):
    family = "gan"

    def __init__(self, config: Config, image_shape: tuple[int, int, int]):
        super().__init__()
        if not isinstance(config, Config):
            raise GenbenchError(f"cyclegan: expected a cyclegan.Config, got {type(config).__name__}")
        C, H, W = image_shape
        if C != config.channels:
            raise GenbenchError(f"cyclegan: config.channels is {config.channels} but the images have {C} channels")
        if H % 4 or W % 4 or min(patchgan_output_side(H, config.d_layers),
                                 patchgan_output_side(W, config.d_layers)) < 1:
            raise GenbenchError(f"cyclegan: unsupported image shape {tuple(image_shape)}: height and width must be "
                                f"divisible by 4 and leave the {config.d_layers}-layer PatchGAN a map of at "
                                "least 1 x 1")
        self.config, self.image_shape = config, (C, H, W)
        self.G_ab = Generator(C, config.g_width, config.n_res_blocks)          # G: A -> B
        self.G_ba = Generator(C, config.g_width, config.n_res_blocks)          # F: B -> A
        self.D_a = PatchDiscriminator(C, config.d_width, config.d_layers)      # judges domain A
        self.D_b = PatchDiscriminator(C, config.d_width, config.d_layers)      # judges domain B
        self.pool_a = ImagePool(config.pool_size, self.image_shape)            # history of G_ba's outputs
        self.pool_b = ImagePool(config.pool_size, self.image_shape)            # history of G_ab's outputs
        self._optim_settings: Optimizer | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def generator_parameters(self) -> list[nn.Parameter]:
        return [*self.G_ab.parameters(), *self.G_ba.parameters()]

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [*self.D_a.parameters(), *self.D_b.parameters()]

    def _check_images(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise GenbenchError(f"cyclegan expects uint8 images (B, {', '.join(map(str, self.image_shape))}); "
                                f"got {x.dtype} {tuple(x.shape)}")
        return x.to(self.device)

    def _split(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(images of domain A, images of domain B) on [-1, 1] from uint8 x and domain labels 0 / 1."""
        x = self._check_images(x)
        if labels is None:
            raise GenbenchError("cyclegan trains on two domains: pass labels= (0 = domain A, 1 = domain B per image)")
        labels = torch.as_tensor(labels, device=self.device)
        if labels.shape != (len(x),) or labels.is_floating_point() or labels.dtype == torch.bool or \
                (len(x) and (labels.min() < 0 or labels.max() > 1)):
            raise GenbenchError(f"cyclegan needs {len(x)} integer domain labels in {{0, 1}} (0 = A, 1 = B), got "
                                f"{labels.dtype} {tuple(labels.shape)}")
        a, b = x[labels == 0], x[labels == 1]
        if not len(a) or not len(b):
            missing = "A (label 0)" if not len(a) else "B (label 1)"
            raise GenbenchError(f"cyclegan: the batch of {len(x)} images has no image of domain {missing}; every "
                                "step needs images of both domains")
        return to_signed(a), to_signed(b)

    # ---- losses ----------------------------------------------------------------------------------------
    def _generator_terms(self, a: torch.Tensor, b: torch.Tensor) -> tuple[dict[str, torch.Tensor], tuple]:
        """The weighted generator terms and their sum ("total"), plus the fakes (fake_b = G(a), fake_a = F(b))."""
        cfg = self.config
        fake_b, fake_a = self.G_ab(a), self.G_ba(b)                            # (n_a, C, H, W), (n_b, C, H, W)
        terms = {"g_adv_ab": gan_g_loss(cfg.gan_loss, self.D_b(fake_b)),
                 "g_adv_ba": gan_g_loss(cfg.gan_loss, self.D_a(fake_a)),
                 "cycle_a": cfg.lambda_cycle * l1(self.G_ba(fake_b), a),       # F(G(a)) ~ a
                 "cycle_b": cfg.lambda_cycle * l1(self.G_ab(fake_a), b)}       # G(F(b)) ~ b
        w_id = cfg.lambda_identity * cfg.lambda_cycle
        if w_id:
            terms["identity_a"] = w_id * l1(self.G_ba(a), a)
            terms["identity_b"] = w_id * l1(self.G_ab(b), b)
        else:
            terms["identity_a"] = terms["identity_b"] = torch.zeros((), device=a.device)
        terms["total"] = sum(terms.values())
        return terms, (fake_a, fake_b)

    def _discriminator_terms(self, a, b, fake_a, fake_b) -> dict[str, torch.Tensor]:
        loss = self.config.gan_loss
        return {"d_a": gan_d_loss(loss, self.D_a(a), self.D_a(fake_a.detach())),
                "d_b": gan_d_loss(loss, self.D_b(b), self.D_b(fake_b.detach()))}

    # ---- training --------------------------------------------------------------------------------------
    def configure_optimizers(self, settings: Optimizer) -> dict[str, torch.optim.Optimizer]:
        self._optim_settings = settings
        return {"generator": settings.build(self.generator_parameters()),
                "discriminator": settings.build(self.discriminator_parameters())}

    def train_step(self, x: torch.Tensor, optimizers: dict, *, labels: torch.Tensor | None = None) -> dict[str, float]:
        """x uint8 (N, C, H, W), labels (N,) 0 = A, 1 = B. The generators' update, then the discriminators' on the
        real images vs this step's fakes passed through the pools (global RNG)."""
        a, b = self._split(x, labels)
        opt_g, opt_d = optimizers["generator"], optimizers["discriminator"]
        clip_grads = self._optim_settings.clip if self._optim_settings is not None else (lambda params: None)

        g_params = self.generator_parameters()
        g_terms, (fake_a, fake_b) = self._generator_terms(a, b)
        opt_g.zero_grad(set_to_none=True)
        g_terms["total"].backward(inputs=g_params)                            # D's gradients stay untouched
        clip_grads(g_params)
        opt_g.step()

        d_params = self.discriminator_parameters()
        d_terms = self._discriminator_terms(a, b, self.pool_a.query(fake_a), self.pool_b.query(fake_b))
        opt_d.zero_grad(set_to_none=True)
        (d_terms["d_a"] + d_terms["d_b"]).backward(inputs=d_params)
        clip_grads(d_params)
        opt_d.step()
        return self._report(g_terms, d_terms)

    @staticmethod
    def _report(g_terms: dict, d_terms: dict) -> dict[str, float]:
        out = {name: float(v.detach()) for name, v in {**g_terms, **d_terms}.items() if name != "total"}
        return {"loss": float(g_terms["total"].detach()), **out}

    @torch.no_grad()
    def eval_loss(self, x: torch.Tensor, *, labels: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> dict[str, float]:
        """train_step's keys on one batch without updates; D losses on the current fakes, pools untouched.
        Deterministic: `generator` is accepted for the common interface and not used."""
        a, b = self._split(x, labels)
        g_terms, (fake_a, fake_b) = self._generator_terms(a, b)
        return self._report(g_terms, self._discriminator_terms(a, b, fake_a, fake_b))

    # ---- translation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        """uint8 (N, C, H, W) of one domain -> uint8 (N, C, H, W) of the other: "a_to_b" with G_ab, "b_to_a" with
        G_ba. Instance norm keeps no running statistics and there is no dropout: the mode does not matter."""
        nets = {"a_to_b": self.G_ab, "b_to_a": self.G_ba}
        if direction not in nets:
            raise GenbenchError(f"cyclegan: direction must be 'a_to_b' or 'b_to_a', got {direction!r}")
        x = self._check_images(x)
        out = [to_uint8(nets[direction](to_signed(c))) for c in x.split(TRANSLATE_CHUNK)]
        return torch.cat(out) if out else torch.empty(0, *self.image_shape, dtype=torch.uint8, device=self.device)
