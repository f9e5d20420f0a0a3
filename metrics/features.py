"""Feature extractors: networks mapping uint8 images to the features that FID, KID, IS and P/R are built on.

Provenance. `inception-v3-compat` is genbench's own implementation of the TF Inception 2015-12-05 graph
(metrics/inception.py), reading the weights file torch-fidelity reads and checked against torch-fidelity 0.4.0
on identical inputs (tests/metrics/test_features.py). The other built-ins (vgg16, clip-*, dinov2-*) wrap
torch-fidelity's own extractor classes unchanged, so their features are torch-fidelity's by construction.

Weights. A weights file is looked up, in order: the `weights=` argument (CLI `--weights PATH`), the extractor's
environment variable, the torch hub cache (`torch.hub.get_dir()/checkpoints`), else downloaded there from the
official URL. Its sha256 is checked before anything reads it, whichever way it was found; files are read with
`torch.load(weights_only=True)` (torch-fidelity's own loads run with weights-only loading forced). Where the
file is absent and cannot be downloaded, a `WeightsUnavailable` error says where genbench looked and how to get
the file; nothing is ever substituted silently. The domain extractor `lenet-fashion-mnist` (metrics/domain.py,
weights shipped with genbench) is the offline alternative; its scores are labelled with its name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from genbench import GenbenchError, files
from genbench.metrics import inception


@dataclass(frozen=True)
class ExtractorSpec:
    """A named feature extractor.

    `build(weights=None, device="cpu")` returns an `nn.Module` in eval mode whose forward takes uint8 images
    (B, C, H, W) and returns {"features": (B, feature_dim) float32, "logits": (B, num_classes) or absent}.
    The module has an attribute `weights_sha256` ("sha256:<hex>", or None where no weights file is used).
    """

    name: str
    description: str
    feature_dim: int
    num_classes: int | None  # logits for the Inception Score; None: IS is not available with this extractor
    input: str  # how images are prepared (resize, channels), recorded in results
    build: Callable[..., torch.nn.Module] = field(repr=False, compare=False)
    classifies: str | None = None  # the dataset whose classes the logits are (class accuracy of samples needs it)
    channels: int | None = None  # 1: takes grayscale images only (samples are read as such, colour files named)

    def load(self, weights: str | Path | None = None, device: str | torch.device = "cpu") -> torch.nn.Module:
        return self.build(weights=weights, device=device)


# ---------------------------------------------------------------------------------------------------------------
# Weights files: lookup, download, sha256


class WeightsUnavailable(GenbenchError):
    """The weights file of an extractor is not on this machine and could not be downloaded."""


class WeightsMismatch(GenbenchError):
    """A weights file does not have the sha256 of the file the extractor is defined by."""


OFFLINE_ALTERNATIVE = (
    "Without these weights, the domain extractor `lenet-fashion-mnist` (trained by genbench, its weights ship with "
    "the package) works offline; its scores carry its name and are never mixed with Inception scores."
)


@dataclass(frozen=True)
class WeightsSource:
    """Where the one weights file of an extractor comes from, and the sha256 it must have."""

    extractor: str
    url: str
    sha256: str | None  # full hex digest; None only where no digest is published (dinov2: the hash is recorded)
    filenames: tuple[str, ...]  # names looked for in the torch hub cache; the first is the download's name
    env: str | None = None  # environment variable that may hold a path to the file


def hub_checkpoints() -> Path:
    """The torch hub cache folder for weights files (`$TORCH_HOME/hub/checkpoints` unless set otherwise)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_file(path: str | Path) -> str:
    """The bare hex digest, as published beside weights files."""
    return files.sha256_file(path).removeprefix("sha256:")


def check_sha256(path: Path, source: WeightsSource) -> str:
    """'sha256:<hex>' of `path`; a `WeightsMismatch` naming the file and both hashes when it is not the expected."""
    found = sha256_file(path)
    if source.sha256 is not None and found != source.sha256:
        raise WeightsMismatch(
            f"{path}: sha256 {found} does not match the expected {source.sha256} of the {source.extractor} weights "
            f"({source.url}). The file is incomplete, damaged or a different network, and was not loaded. "
            f"Delete or replace it with the file from that URL."
        )
    return f"sha256:{found}"


def download(url: str, dst: Path, sha256: str | None) -> None:
    """The one network access of this module (torch hub's downloader, which writes `dst` only once complete).
    Tests replace it; it is looked up at call time."""
    torch.hub.download_url_to_file(url, str(dst), hash_prefix=sha256, progress=True)


def locate_weights(source: WeightsSource, weights: str | Path | None = None) -> Path:
    """The weights file of `source`: `weights`, else the env variable, else the hub cache, else downloaded."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(
                f"{source.extractor}: weights file {path} (given as weights= / --weights) does not exist."
            )
        return path
    env_value = os.environ.get(source.env, "") if source.env else ""
    if env_value:
        path = Path(env_value).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(
                f"{source.extractor}: ${source.env} is {env_value}, but no file exists there. Fix or unset it."
            )
        return path
    cache = hub_checkpoints()
    for name in source.filenames:
        if (cache / name).is_file():
            return cache / name
    dst = cache / source.filenames[0]
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        download(source.url, dst, source.sha256)
    except Exception as e:  # noqa: BLE001 - offline, proxy, disk, hash: all end in the same advice
        raise WeightsUnavailable(_unavailable_message(source, f"{type(e).__name__}: {e}")) from None
    return dst


def _unavailable_message(source: WeightsSource, failure: str) -> str:
    cache = hub_checkpoints()
    env = f"${source.env}" if source.env else None
    looked = ["  - the weights= argument / --weights PATH: not given"]
    if env:
        looked.append(f"  - the environment variable {env}: not set")
    looked += [f"  - the torch hub cache: {cache / n} (absent)" for n in source.filenames]
    looked.append(f"  - download from {source.url}: failed ({failure})")
    sha = f"sha256 {source.sha256}" if source.sha256 else "no published sha256; its hash is recorded"
    ways = f"pass --weights PATH (weights=PATH in Python), put it at {cache / source.filenames[0]}"
    ways += f", or set {source.env}=PATH" if source.env else ""
    return (
        f"the {source.extractor} weights are not on this machine and could not be downloaded. Looked at:\n"
        + "\n".join(looked)
        + f"\nTo get them: on a machine with internet, download {source.url} ({sha}); then {ways}. "
        f"Its sha256 is checked whichever way it is given.\n{OFFLINE_ALTERNATIVE}"
    )


def fetch_weights(source: WeightsSource, weights: str | Path | None = None) -> tuple[Path, str]:
    """(path, 'sha256:<hex>') of the weights file of `source`, located and hash-checked (see `locate_weights`)."""
    path = locate_weights(source, weights)
    return path, check_sha256(path, source)


def load_state_dict(path: Path) -> dict:
    """A hash-checked weights file read without unpickling anything but tensors and containers."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise GenbenchError(f"{path}: not a readable state dict ({type(e).__name__}: {e}).") from None


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Within: every torch.load, including torch-fidelity's own (it passes weights_only=False), reads tensors only."""
    saved = {k: os.environ.pop(k, None) for k in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


# ---------------------------------------------------------------------------------------------------------------
# inception-v3-compat (genbench's implementation, metrics/inception.py)

INCEPTION_ENV = "GENBENCH_INCEPTION_WEIGHTS"
INCEPTION_WEIGHTS = WeightsSource(
    extractor="inception-v3-compat",
    url=inception.INCEPTION_URL,
    sha256=inception.INCEPTION_SHA256,
    filenames=inception.INCEPTION_FILENAMES,
    env=INCEPTION_ENV,
)


def build_inception(
    weights: str | Path | None = None, device: str | torch.device = "cpu", *, source: WeightsSource | None = None
) -> inception.InceptionV3Compat:
    """inception-v3-compat in eval mode on `device`; `source` (default INCEPTION_WEIGHTS) names the file's hash."""
    path, digest = fetch_weights(source or INCEPTION_WEIGHTS, weights)
    model = inception.InceptionV3Compat(load_state_dict(path), source=str(path))
    model.weights_sha256 = digest
    return model.to(device).eval()


INCEPTION_V3_COMPAT = ExtractorSpec(
    name="inception-v3-compat",
    description="Inception-v3, TF graph 2015-12-05 (the FID/IS standard; torch-fidelity's inception-v3-compat)",
    feature_dim=inception.FEATURE_DIM,
    num_classes=inception.NUM_CLASSES,
    input="uint8 RGB (grayscale repeated); TF1 bilinear resize to 299x299 (align_corners=False); (x - 128) / 128",
    build=build_inception,
)


# ---------------------------------------------------------------------------------------------------------------
# torch-fidelity's other extractors, wrapped unchanged


class FidelityExtractor(torch.nn.Module):
    """A torch-fidelity feature extractor behind genbench's contract: uint8 (B, 3, H, W) -> {"features": ...}."""

    input_channels = 3

    def __init__(self, inner: torch.nn.Module, feature: str, weights_sha256: str | None):
        super().__init__()
        self.inner = inner.requires_grad_(False).eval()
        self.feature = feature
        self.weights_sha256 = weights_sha256

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        device = next(self.inner.parameters()).device
        with torch.inference_mode():
            (features,) = self.inner(images.to(device))
        return {"features": features.float()}


_CLIP = {  # torch-fidelity name: (feature dim, input resolution)
    "clip-rn50": (1024, 224),
    "clip-rn101": (512, 224),
    "clip-rn50x4": (640, 288),
    "clip-rn50x16": (768, 384),
    "clip-rn50x64": (1024, 448),
    "clip-vit-b-32": (512, 224),
    "clip-vit-b-16": (512, 224),
    "clip-vit-l-14": (768, 224),
    "clip-vit-l-14-336px": (768, 336),
}
_DINOV2 = {  # torch-fidelity name: (feature dim, ViT size letter)
    "dinov2-vit-s-14": (384, "s"),
    "dinov2-vit-b-14": (768, "b"),
    "dinov2-vit-l-14": (1024, "l"),
    "dinov2-vit-g-14": (1536, "g"),
}
VGG16_SHA256 = "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"  # torchvision's IMAGENET1K_V1 file


def _env_name(name: str) -> str:
    return "GENBENCH_" + name.upper().replace("-", "_") + "_WEIGHTS"


def _clip_source(name: str) -> WeightsSource:
    from torch_fidelity.feature_extractor_clip import MODEL_METADATA, MODEL_URLS

    sha = MODEL_METADATA[name]["hash"]  # OpenAI's URLs carry the full sha256 of the file
    return WeightsSource(name, MODEL_URLS[name], sha, (f"{name}-{sha}.pt",), _env_name(name))


def _vgg16_source() -> WeightsSource:
    url = "https://download.pytorch.org/models/vgg16-397923af.pth"
    return WeightsSource("vgg16", url, VGG16_SHA256, ("vgg16-397923af.pth",), _env_name("vgg16"))


def _dinov2_source(name: str) -> WeightsSource:
    arch = f"dinov2_vit{_DINOV2[name][1]}14"
    url = f"https://dl.fbaipublicfiles.com/dinov2/{arch}/{arch}_pretrain.pth"
    return WeightsSource(name, url, None, (f"{arch}_pretrain.pth",), None)


def _build_fidelity(name: str, feature: str, source: WeightsSource, weights, device) -> FidelityExtractor:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    cls = FEATURE_EXTRACTORS_REGISTRY[name]
    if name.startswith("dinov2"):
        # torch-fidelity builds dinov2 only through torch.hub (the facebookresearch/dinov2 repository code and
        # its checkpoint in the hub cache); it takes no weights path.
        if weights is not None:
            raise GenbenchError(
                f"{name}: a weights path is not supported; torch-fidelity loads dinov2 from the torch hub cache "
                f"({hub_checkpoints()})."
            )
        path, digest = fetch_weights(source)  # makes sure the checkpoint is in the hub cache, hashes it
        kwargs = {}
    else:
        path, digest = fetch_weights(source, weights)
        kwargs = {"feature_extractor_weights_path": str(path)}
    try:
        with _weights_only_loads():
            inner = cls(name, [feature], **kwargs)
    except Exception as e:  # noqa: BLE001
        raise WeightsUnavailable(
            f"{name}: torch-fidelity could not build the extractor from {path}: {type(e).__name__}: {e}\n"
            f"{OFFLINE_ALTERNATIVE}"
        ) from None
    return FidelityExtractor(inner, feature, digest).to(device).eval()


def _fidelity_spec(
    name: str, feature: str, dim: int, source_of: Callable[[], WeightsSource], what: str, size: int
) -> ExtractorSpec:
    def build(weights: str | Path | None = None, device: str | torch.device = "cpu") -> FidelityExtractor:
        return _build_fidelity(name, feature, source_of(), weights, device)

    return ExtractorSpec(
        name=name,
        description=f"{what} (torch-fidelity's {name}, feature '{feature}')",
        feature_dim=dim,
        num_classes=None,
        input=f"uint8 RGB (grayscale repeated); TF1 bilinear resize to {size}x{size}; per-channel normalisation",
        build=build,
    )


PASS_THROUGH: tuple[ExtractorSpec, ...] = (
    _fidelity_spec("vgg16", "fc2_relu", 4096, _vgg16_source, "VGG-16 ImageNet classifier, fc2 after ReLU", 224),
    *(
        _fidelity_spec(n, "clip", dim, lambda n=n: _clip_source(n), "CLIP image encoder", size)
        for n, (dim, size) in _CLIP.items()
    ),
    *(
        _fidelity_spec(n, "dinov2", dim, lambda n=n: _dinov2_source(n), "DINOv2 ViT (runs the dinov2 hub code)", 224)
        for n, (dim, _) in _DINOV2.items()
    ),
)

BUILTIN: tuple[ExtractorSpec, ...] = (INCEPTION_V3_COMPAT, *PASS_THROUGH)


# ---------------------------------------------------------------------------------------------------------------
# Extraction


def as_tensor(batch) -> torch.Tensor:
    """A batch of images (numpy array, memmap or tensor) as a tensor sharing memory where it can."""
    if not isinstance(batch, np.ndarray):
        return batch
    batch = np.ascontiguousarray(batch)
    return torch.from_numpy(batch if batch.flags.writeable else batch.copy())  # memmaps are read-only


def extract(
    module: torch.nn.Module,
    images: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Run an extractor over uint8 images (N, C, H, W) in batches -> {"features": (N, D), ...} float32 numpy.

    The module is put in eval mode (and must stay there); it should already sit on `device`, where the batches
    go. Grayscale images (C=1) are repeated to 3 channels for networks that declare `input_channels = 3`; a
    module without that attribute gets the images as they are. Outputs do not depend on `batch_size` beyond
    float rounding (checked: within 1e-5 for inception-v3-compat)."""
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        raise GenbenchError(f"images must be a uint8 numpy array or tensor (N, C, H, W); got {type(images).__name__}.")
    is_uint8 = images.dtype == (torch.uint8 if isinstance(images, torch.Tensor) else np.uint8)
    if not is_uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise GenbenchError(
            f"images must be uint8 (N, C, H, W) with C = 1 or 3; got {images.dtype} {tuple(images.shape)}. "
            f"Convert float images in [0, 1] with (x * 255).round() to uint8 first."
        )
    if len(images) == 0:
        raise GenbenchError("no images to extract features from.")
    if batch_size < 1:
        raise GenbenchError(f"batch_size must be at least 1, got {batch_size}.")
    if module.training:
        module.eval()
    to_rgb = getattr(module, "input_channels", None) == 3 and images.shape[1] == 1
    name = getattr(module, "name", None) or type(module).__name__
    parts: dict[str, list[np.ndarray]] = {}
    bar = tqdm(total=len(images), desc=f"features ({name})", unit="img", disable=not progress)
    with torch.inference_mode(), bar:
        for start in range(0, len(images), batch_size):
            x = as_tensor(images[start : start + batch_size]).to(device)
            if to_rgb:
                x = x.expand(-1, 3, -1, -1).contiguous()  # (B, 3, H, W), the gray value in every channel
            out = module(x)
            if not isinstance(out, dict) or "features" not in out:
                raise GenbenchError(f"the extractor {name} must return a dict with 'features'; got {type(out).__name__}.")
            if module.training:
                raise GenbenchError(f"the extractor {name} switched itself to training mode; features need eval mode.")
            for key, value in out.items():
                parts.setdefault(key, []).append(value.detach().to("cpu", torch.float32).numpy())
            bar.update(len(x))
    return {key: np.concatenate(chunks) for key, chunks in parts.items()}
