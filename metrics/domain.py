"""genbench's domain feature extractors: small LeNet-style classifiers that genbench trains itself, so FID, KID,
IS, precision/recall and class shares can be computed fully offline where the standard Inception weights cannot
be downloaded.

    from genbench.metrics.domain import LENET_DSPRITES_SHAPES, LENET_FASHION_MNIST
    net = LENET_FASHION_MNIST.load()              # shipped weights, sha256 checked before loading
    out = net(images_uint8)                       # {"features": (B, 128) float32, "logits": (B, 10)}
    shapes = LENET_DSPRITES_SHAPES.load()         # uint8 (B, 1, 64, 64) -> features (B, 128), logits (B, 3)

Each extractor is one `Domain` (below): its dataset, input side, classes, pixel mean/std, fixed training recipe,
the sha256 of its shipped weights and the command that reproduces them. All share the LeNet, the loading and
`train_extractor(dataset=...)`.

Provenance
----------
- Architecture: after LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
  recognition" (Proc. IEEE, 1998): two 5x5 convolution + 2x2 max-pool stages, then two fully connected layers,
  here with ReLU, 16/32 channels and a 128-wide hidden layer. The features are the 128-d penultimate activations
  after the ReLU; the logits feed the Inception Score and class shares.
  - lenet-fashion-mnist, 28x28: conv1 5x5 (padding 2) keeps 28x28; 117,066 parameters.
  - lenet-dsprites-shapes, 64x64: conv1 is a 6x6 convolution with stride 2 (padding 2), so it reads the
    full-resolution sprite and halves it to 32x32; then the same stages give (B, 32, 6, 6) and fc1 is
    1152 -> 128: 161,395 parameters (a 649 kB file). A fixed 2x2 max-pool of the input in its place reached
    only 0.976 test accuracy in 8 epochs (small sprites are 7 px tall; the shapes differ in a few pixels).
- Weights: trained by `train_extractor` (the fixed recipe of each Domain) on the train split and shipped in
  `weights/<name>.pt`; `weights/<name>.json` records their sha256, test accuracy (the whole test split), train
  seconds, versions and the reproducing command `genbench extractor train --dataset DATASET --out DIR --seed 0`.
  - lenet-fashion-mnist on Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017), 10 classes: 0.9164 test accuracy (all
    10,000 test images; 0.921 on the first 2000).
  - lenet-dsprites-shapes on dsprites-shapes (genbench.data.dsprites_shapes, from dSprites, Matthey et al.,
    2017), 3 classes: the shape, labels[:, 0] (0 square, 1 ellipse, 2 heart): 0.9980 test accuracy (3,066 of
    all 3,072 test images; 5 of the 6 errors are hearts). Its recipe is Fashion-MNIST's (10 epochs, batch 128,
    AdamW 2e-3, cosine), about 2 minutes on one CPU thread. It is trained on binary {0, 255} sprites and takes
    any uint8 values (e.g. translations).
- Checked in tests/metrics/test_domain.py: each shipped file's sha256 matches the constant and the record, the
  test accuracy passes its floor and matches the record, a tampered file is refused before it is read, and
  training is bitwise reproducible (same sha256 from two runs on the same machine and torch version). Training
  runs on one CPU thread (TRAIN_THREADS) because the thread count changes the floating-point reduction order and
  so the weights; other CPUs (instruction sets) or torch versions may still give different bits.

Scores from these extractors are not comparable with Inception scores and are labelled with their names.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genbench import GenbenchError, __version__
from genbench.files import load_state, save_state, sha256_file, write_json
from genbench.metrics.features import ExtractorSpec

WEIGHTS_DIR = Path(__file__).parent / "weights"
FEATURE_DIM = 128
TRAIN_THREADS = 1  # fixed: the weights then do not depend on the machine's core count (and OpenMP threads do not fight
# other processes on a shared CPU)
FALLBACK = "inception-v3-compat"  # the extractor for images no domain extractor takes


@dataclass(frozen=True)
class Domain:
    """One domain extractor: what it classifies, its input, and the fixed recipe its shipped weights came from.
    Changing any recipe field changes the weights (and so every score made with them)."""

    name: str
    dataset: str  # the genbench dataset it is trained and tested on (its train and test splits)
    side: int  # input: uint8 (B, 1, side, side)
    num_classes: int
    label_column: int | None  # the class is labels[:, label_column]; None: the labels are the classes (N,)
    pixel_mean: float  # train-split pixel mean and std on the [0, 1] scale; inputs are standardized by them
    pixel_std: float
    conv1: tuple[int, int]  # (kernel, stride) of the first convolution (padding 2); stride 2 halves the input
    sha256: str  # of the shipped weights file, written by `train_extractor(dataset=..., out=..., seed=0)`
    meant_for: str  # the data it suits, for error messages
    epochs: int
    batch_size: int = 128
    lr: float = 2e-3  # AdamW, cosine decay to 0 over all steps
    weight_decay: float = 1e-4
    dropout: float = 0.25

    @property
    def weights_file(self) -> Path:
        """The shipped weights file, weights/<name>.pt."""
        return WEIGHTS_DIR / f"{self.name}.pt"

    @property
    def reproduce(self) -> str:
        """The CLI command that retrains the shipped weights (format with seed=)."""
        return f"genbench extractor train --dataset {self.dataset} --out DIR --seed {{seed}}"

    def classes(self, labels: np.ndarray) -> np.ndarray:
        """Class labels (N,) from a split's labels ((N,) classes or (N, K) factors)."""
        return labels if self.label_column is None else labels[:, self.label_column]


FASHION = Domain(
    name="lenet-fashion-mnist", dataset="fashion-mnist", side=28, num_classes=10, label_column=None,
    pixel_mean=0.2860, pixel_std=0.3530, conv1=(5, 1),
    sha256="sha256:1fe06915a72086b796e7867d698c01ca2ef1f5ea6207745e2e32a6b5a0a555c0",
    meant_for="Fashion-MNIST-like data", epochs=10,
)
SHAPES = Domain(
    name="lenet-dsprites-shapes", dataset="dsprites-shapes", side=64, num_classes=3, label_column=0,
    # binary sprites: the std is sqrt(mean * (1 - mean)) of the train split's share of white pixels, 0.042496
    pixel_mean=0.0425, pixel_std=0.2017, conv1=(6, 2),
    sha256="sha256:70b210ee9f6d0729fa7508c710a064368cd227abcd8917e4e29a8b7219c9288c",
    meant_for="dsprites-shapes-like data (white sprites on black: squares, ellipses, hearts)", epochs=10,
)
DOMAINS: dict[str, Domain] = {d.dataset: d for d in (FASHION, SHAPES)}  # by dataset name (the CLI's --dataset)

# The shipped files and hashes (the build functions read the paths at call time, so tests can point them elsewhere),
# and lenet-fashion-mnist's constants under their original names.
SHIPPED_WEIGHTS_DSPRITES_SHAPES = SHAPES.weights_file
SHIPPED_SHA256_DSPRITES_SHAPES = SHAPES.sha256
NAME = FASHION.name
SHIPPED_WEIGHTS = FASHION.weights_file
SHIPPED_SHA256 = FASHION.sha256
NUM_CLASSES = FASHION.num_classes
PIXEL_MEAN, PIXEL_STD = FASHION.pixel_mean, FASHION.pixel_std
EPOCHS, BATCH_SIZE, LR = FASHION.epochs, FASHION.batch_size, FASHION.lr
WEIGHT_DECAY, DROPOUT = FASHION.weight_decay, FASHION.dropout
REPRODUCE = FASHION.reproduce


class LeNet(nn.Module):
    """LeNet-style CNN on uint8 (B, 1, side, side) images -> {"features": (B, 128), "logits": (B, num_classes)};
    `LeNet()` is lenet-fashion-mnist's (side 28, 10 classes), `LeNet(SHAPES)` lenet-dsprites-shapes' (64, 3)."""

    def __init__(self, domain: Domain = FASHION):
        super().__init__()
        self.domain = domain
        kernel, stride = domain.conv1
        # 28: (B, 16, 28, 28) -> pool (B, 16, 14, 14); 64: (B, 16, 32, 32) -> pool (B, 16, 16, 16)
        self.conv1 = nn.Conv2d(1, 16, kernel, stride=stride, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5)  # 28: (B, 32, 10, 10) -> pool (B, 32, 5, 5); 64: 12x12 -> pool 6x6
        side = (((domain.side + 4 - kernel) // stride + 1) // 2 - 4) // 2  # after the second pool: 5 | 6
        self.fc1 = nn.Linear(32 * side * side, FEATURE_DIM)
        self.dropout = nn.Dropout(domain.dropout)  # active in training only; features are read in eval mode
        self.fc2 = nn.Linear(FEATURE_DIM, domain.num_classes)
        self.weights_sha256: str | None = None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        d = self.domain
        is_tensor = isinstance(x, torch.Tensor)
        if not (is_tensor and x.dtype == torch.uint8 and x.ndim == 4 and tuple(x.shape[1:]) == (1, d.side, d.side)):
            raise GenbenchError(_wrong_input(d, x))
        x = x.to(self.conv1.weight.device)
        h = (x.float() / 255.0 - d.pixel_mean) / d.pixel_std  # (B, 1, side, side), standardized
        h = F.max_pool2d(F.relu(self.conv1(h)), 2)  # (B, 16, 14, 14) | (B, 16, 16, 16)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # (B, 32, 5, 5) | (B, 32, 6, 6)
        features = F.relu(self.fc1(h.flatten(1)))  # (B, 128)
        logits = self.fc2(self.dropout(features))  # (B, num_classes)
        return {"features": features, "logits": logits}


def _wrong_input(d: Domain, x) -> str:
    """The error for input `d`'s LeNet does not take, naming the extractor to use instead."""
    if not isinstance(x, torch.Tensor):
        got, other = type(x).__name__, None
    else:
        got = f"{x.dtype} {tuple(x.shape)}"
        sides = {(1, o.side, o.side): o for o in DOMAINS.values() if o is not d}
        other = sides.get(tuple(x.shape[1:])) if x.ndim == 4 else None
    instead = f"for other images use the {FALLBACK} extractor"
    if other is not None:
        instead = f"for {other.meant_for} use the {other.name} extractor, for other images the {FALLBACK} extractor"
    return (f"the {d.name} extractor takes {d.side}x{d.side} grayscale images as uint8 tensors of shape "
            f"(B, 1, {d.side}, {d.side}); got {got}. It is meant for {d.meant_for}; {instead}.")


# ---------------------------------------------------------------------------------------------------------------
# Loading


def load_weights(path: str | Path, *, expected_sha256: str | None = None, domain: Domain = FASHION
                 ) -> tuple[dict, str]:
    """The state dict in `path` and its sha256; the hash is checked against `expected_sha256` before loading."""
    path = Path(path).expanduser()
    name, command = domain.name, domain.reproduce.format(seed=0)
    if not path.is_file():
        raise GenbenchError(
            f"weights file {path} does not exist. Reinstall genbench for the shipped {name} weights, or make them "
            f"with `{command}` and pass DIR/{name}.pt."
        )
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise GenbenchError(
            f"weights file {path} has sha256 {digest}, but {expected_sha256} was expected; the file is damaged or "
            f"was replaced, and it was not loaded. Reinstall genbench, or retrain with "
            f"`{command}` and pass weights=DIR/{name}.pt."
        )
    try:
        state = load_state(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise GenbenchError(f"cannot read weights file {path}: {exc}") from None
    return state, digest


def build_domain(domain: Domain, weights: str | Path | None = None, device: str | torch.device = "cpu", *,
                 shipped: Path | None = None) -> LeNet:
    """`domain`'s extractor in eval mode: the shipped weights (`shipped`, default domain.weights_file; hash
    checked against domain.sha256), or the file `weights` (hashed; its hash becomes `weights_sha256`)."""
    path = (shipped or domain.weights_file) if weights is None else Path(weights)
    state, digest = load_weights(path, expected_sha256=domain.sha256 if weights is None else None, domain=domain)
    model = LeNet(domain)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise GenbenchError(
            f"weights file {path} does not hold {domain.name} weights (a LeNet state dict as written by "
            f"`genbench extractor train --dataset {domain.dataset}`): {str(exc).splitlines()[0]}"
        ) from None
    model.weights_sha256 = digest
    return model.to(device).eval().requires_grad_(False)


def build(weights: str | Path | None = None, device: str | torch.device = "cpu") -> LeNet:
    """lenet-fashion-mnist (see `build_domain`); its shipped file is SHIPPED_WEIGHTS."""
    return build_domain(FASHION, weights, device, shipped=SHIPPED_WEIGHTS)


def build_dsprites_shapes(weights: str | Path | None = None, device: str | torch.device = "cpu") -> LeNet:
    """lenet-dsprites-shapes (see `build_domain`); its shipped file is SHIPPED_WEIGHTS_DSPRITES_SHAPES."""
    return build_domain(SHAPES, weights, device, shipped=SHIPPED_WEIGHTS_DSPRITES_SHAPES)


LENET_FASHION_MNIST = ExtractorSpec(
    name=FASHION.name,
    description="LeNet-style CNN trained by genbench on Fashion-MNIST (offline; not comparable with Inception)",
    feature_dim=FEATURE_DIM,
    num_classes=FASHION.num_classes,
    input="uint8 1x28x28 grayscale, no resizing; x/255 standardized by the Fashion-MNIST train mean/std",
    build=build,
    classifies=FASHION.dataset,
    channels=1,
)
LENET_DSPRITES_SHAPES = ExtractorSpec(
    name=SHAPES.name,
    description="LeNet-style CNN trained by genbench on dsprites-shapes, classifying the shape (square, ellipse, "
                "heart) (offline; not comparable with Inception)",
    feature_dim=FEATURE_DIM,
    num_classes=SHAPES.num_classes,
    input="uint8 1x64x64 grayscale, no resizing; x/255 standardized by the dsprites-shapes train mean/std",
    build=build_dsprites_shapes,
    classifies=SHAPES.dataset,
    channels=1,
)


# ---------------------------------------------------------------------------------------------------------------
# Training


@torch.no_grad()
def accuracy(model: LeNet, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of `model` (put in eval mode) on uint8 images (N, 1, side, side) with classes (N,)."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = model(images[i : i + batch_size])["logits"]
        correct += int((logits.argmax(1).cpu() == labels[i : i + batch_size]).sum())
    return correct / len(images)


def _load_split(dataset: str, split: str, *, data_root: str | Path | None, progress: bool):
    """ImageData of a genbench dataset's split (genbench.data is imported here, when training needs it)."""
    from genbench.data import BUILTIN

    spec = next(s for s in BUILTIN if s.name == dataset)
    return spec.load(split, data_root=data_root, progress=progress)


def train_extractor(
    *,
    dataset: str = "fashion-mnist",
    out: str | Path,
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = True,
    data_root: str | Path | None = None,
    limit: int | None = None,
) -> dict:
    """Train the LeNet extractor of `dataset` (a key of DOMAINS) with its fixed recipe on CPU; write OUT/<name>.pt
    (state dict) and OUT/<name>.json (its record), and return the record. `epochs` defaults to the recipe's.

    Deterministic: the same seed, torch version and machine give a bitwise-identical weights file. `limit`
    trains on `limit` train images and tests on `limit` test images, evenly spaced through each split so that
    every class is present in a split sorted by class (for tests only).
    """
    from tqdm.auto import tqdm

    if dataset not in DOMAINS:
        raise GenbenchError(f"genbench trains domain extractors on {', '.join(DOMAINS)}, not {dataset!r}")
    d = DOMAINS[dataset]
    epochs = d.epochs if epochs is None else epochs
    out = Path(out).expanduser()
    train = _load_split(dataset, "train", data_root=data_root, progress=progress)
    test = _load_split(dataset, "test", data_root=data_root, progress=progress)

    def subset(split, n):  # n evenly spaced images (all of them when n is the split's size): uint8, int64 classes
        idx = np.arange(n) * len(split) // n
        return torch.from_numpy(split.images[idx]), torch.from_numpy(d.classes(split.labels)[idx].astype(np.int64))

    n_train = len(train) if limit is None else min(limit, len(train))
    n_test = len(test) if limit is None else min(limit, len(test))
    x_train, y_train = subset(train, n_train)  # (N, 1, side, side) uint8, (N,)
    x_test, y_test = subset(test, n_test)

    steps_per_epoch = math.ceil(n_train / d.batch_size)
    total_steps = epochs * steps_per_epoch
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(TRAIN_THREADS)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG state is left as it was
            torch.manual_seed(seed)  # initialization and dropout
            order = torch.Generator().manual_seed(seed)  # data order
            model = LeNet(d)
            opt = torch.optim.AdamW(model.parameters(), lr=d.lr, weight_decay=d.weight_decay)
            # cosine decay from lr to 0 over all steps
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total_steps)))
            start = time.perf_counter()
            bar = tqdm(total=total_steps, desc=f"train {d.name}", unit="step", disable=not progress)
            for epoch in range(epochs):
                model.train()
                perm = torch.randperm(n_train, generator=order)
                for i in range(0, n_train, d.batch_size):
                    idx = perm[i : i + d.batch_size]
                    loss = F.cross_entropy(model(x_train[idx])["logits"], y_train[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
            bar.close()
            train_seconds = time.perf_counter() - start
            test_accuracy = accuracy(model, x_test, y_test)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)

    weights = out / f"{d.name}.pt"
    save_state(weights, model.state_dict())
    default = epochs == d.epochs and limit is None
    record = {
        "name": d.name,
        "file": weights.name,
        "sha256": sha256_file(weights),
        "size_bytes": weights.stat().st_size,
        "dataset": dataset,
        "train_data_hash": train.content_hash,
        "test_accuracy": test_accuracy,
        "test_images": n_test,
        "train_images": n_train,
        "train_seconds": round(train_seconds, 1),
        "command": d.reproduce.format(seed=seed) if default else None,
        "python": f"genbench.metrics.domain.train_extractor(dataset={dataset!r}, out=DIR, seed={seed}, "
                  f"epochs={epochs}, limit={limit})",
        "recipe": {
            "seed": seed, "epochs": epochs, "batch_size": d.batch_size, "optimizer": "AdamW", "lr": d.lr,
            "lr_schedule": "cosine to 0 per step", "weight_decay": d.weight_decay, "dropout": d.dropout,
            "threads": TRAIN_THREADS, "device": "cpu",
        },
        "genbench_version": __version__,
        "torch_version": torch.__version__,
    }
    write_json(out / f"{d.name}.json", record)
    return record
