"""A domain feature extractor for Fashion-MNIST: a small LeNet-style classifier that genbench trains itself, so
FID, KID, IS and precision/recall can be computed fully offline where the standard Inception weights cannot be
downloaded.

    from genbench.metrics.domain import LENET_FASHION_MNIST
    net = LENET_FASHION_MNIST.load()              # shipped weights, sha256 checked before loading
    out = net(images_uint8)                       # {"features": (B, 128) float32, "logits": (B, 10)}

Provenance
----------
- Architecture: after LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document
  recognition" (Proc. IEEE, 1998): two 5x5 convolution + 2x2 max-pool stages, then two fully connected layers,
  here with ReLU, 16/32 channels and a 128-wide hidden layer (117,066 parameters). The features are the
  128-d penultimate activations after the ReLU; the logits feed the Inception Score.
- Weights: trained by `train_extractor` (the fixed recipe below) on the Fashion-MNIST train split (Xiao, Rasul &
  Vollgraf, 2017) and shipped in `weights/lenet-fashion-mnist.pt`; `weights/lenet-fashion-mnist.json` records
  their sha256, test accuracy (all 10,000 test images), train seconds, versions and the reproducing command
  `genbench extractor train --dataset fashion-mnist --out DIR --seed 0`. The shipped weights reach
  0.9164 test accuracy (0.921 on the first 2000 test images).
- Checked in tests/metrics/test_domain.py: the shipped file's sha256 matches the constant and the record, the
  test accuracy is >= 0.9 and matches the record, a tampered file is refused before it is read, and training
  is bitwise reproducible (same sha256 from two runs on the same machine and torch version). Training runs on
  one CPU thread (TRAIN_THREADS) because the thread count changes the floating-point reduction order and so the
  weights; other CPUs (instruction sets) or torch versions may still give different bits.

Scores from this extractor are not comparable with Inception scores and are labelled with its name.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genbench import GenbenchError, __version__
from genbench.files import load_state, save_state, sha256_file, write_json
from genbench.metrics.features import ExtractorSpec

NAME = "lenet-fashion-mnist"
WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / f"{NAME}.pt"
# sha256 of the shipped weights file, written by `train_extractor(out=..., seed=0)`; checked before loading.
SHIPPED_SHA256 = "sha256:1fe06915a72086b796e7867d698c01ca2ef1f5ea6207745e2e32a6b5a0a555c0"

FEATURE_DIM = 128
NUM_CLASSES = 10
# Fashion-MNIST train-split pixel mean and std on the [0, 1] scale; fixed constants, part of the recipe.
PIXEL_MEAN = 0.2860
PIXEL_STD = 0.3530

# The fixed training recipe. Changing any of these changes the weights (and so every score made with them).
EPOCHS = 10
BATCH_SIZE = 128
LR = 2e-3
WEIGHT_DECAY = 1e-4
DROPOUT = 0.25
TRAIN_THREADS = 1  # fixed: the weights then do not depend on the machine's core count (and OpenMP threads do not fight
# other processes on a shared CPU)
REPRODUCE = "genbench extractor train --dataset fashion-mnist --out DIR --seed {seed}"


class LeNet(nn.Module):
    """LeNet-style CNN on uint8 (B, 1, 28, 28) images -> {"features": (B, 128), "logits": (B, 10)}."""

    def __init__(self, feature_dim: int = FEATURE_DIM, num_classes: int = NUM_CLASSES, dropout: float = DROPOUT):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)  # (B, 16, 28, 28) -> pool (B, 16, 14, 14)
        self.conv2 = nn.Conv2d(16, 32, 5)  # (B, 32, 10, 10) -> pool (B, 32, 5, 5)
        self.fc1 = nn.Linear(32 * 5 * 5, feature_dim)
        self.dropout = nn.Dropout(dropout)  # active in training only; features are read in eval mode
        self.fc2 = nn.Linear(feature_dim, num_classes)
        self.weights_sha256: str | None = None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        is_tensor = isinstance(x, torch.Tensor)
        if not (is_tensor and x.dtype == torch.uint8 and x.ndim == 4 and tuple(x.shape[1:]) == (1, 28, 28)):
            got = f"{x.dtype} {tuple(x.shape)}" if is_tensor else type(x).__name__
            raise GenbenchError(
                f"the {NAME} extractor takes 28x28 grayscale images as uint8 tensors of shape (B, 1, 28, 28); "
                f"got {got}. It is meant for Fashion-MNIST-like data; for other images use the "
                f"inception-v3-compat extractor."
            )
        x = x.to(self.conv1.weight.device)
        h = (x.float() / 255.0 - PIXEL_MEAN) / PIXEL_STD  # (B, 1, 28, 28), standardized
        h = F.max_pool2d(F.relu(self.conv1(h)), 2)  # (B, 16, 14, 14)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # (B, 32, 5, 5)
        features = F.relu(self.fc1(h.flatten(1)))  # (B, 128)
        logits = self.fc2(self.dropout(features))  # (B, 10)
        return {"features": features, "logits": logits}


# ---------------------------------------------------------------------------------------------------------------
# Loading


def load_weights(path: str | Path, *, expected_sha256: str | None = None) -> tuple[dict, str]:
    """The state dict in `path` and its sha256; the hash is checked against `expected_sha256` before loading."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise GenbenchError(
            f"weights file {path} does not exist. Reinstall genbench for the shipped {NAME} weights, or make them "
            f"with `{REPRODUCE.format(seed=0)}` and pass DIR/{NAME}.pt."
        )
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise GenbenchError(
            f"weights file {path} has sha256 {digest}, but {expected_sha256} was expected; the file is damaged or "
            f"was replaced, and it was not loaded. Reinstall genbench, or retrain with "
            f"`{REPRODUCE.format(seed=0)}` and pass weights=DIR/{NAME}.pt."
        )
    try:
        state = load_state(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise GenbenchError(f"cannot read weights file {path}: {exc}") from None
    return state, digest


def build(weights: str | Path | None = None, device: str | torch.device = "cpu") -> LeNet:
    """The extractor in eval mode: the shipped weights (hash checked against SHIPPED_SHA256), or the file
    `weights` (hashed; its hash becomes `weights_sha256`)."""
    path = SHIPPED_WEIGHTS if weights is None else Path(weights)
    state, digest = load_weights(path, expected_sha256=SHIPPED_SHA256 if weights is None else None)
    model = LeNet()
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise GenbenchError(
            f"weights file {path} does not hold {NAME} weights (a LeNet state dict as written by "
            f"`genbench extractor train`): {str(exc).splitlines()[0]}"
        ) from None
    model.weights_sha256 = digest
    return model.to(device).eval().requires_grad_(False)


LENET_FASHION_MNIST = ExtractorSpec(
    name=NAME,
    description="LeNet-style CNN trained by genbench on Fashion-MNIST (offline; not comparable with Inception)",
    feature_dim=FEATURE_DIM,
    num_classes=NUM_CLASSES,
    input="uint8 1x28x28 grayscale, no resizing; x/255 standardized by the Fashion-MNIST train mean/std",
    build=build,
    classifies="fashion-mnist",
)


# ---------------------------------------------------------------------------------------------------------------
# Training


@torch.no_grad()
def accuracy(model: LeNet, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of `model` (put in eval mode) on uint8 images (N, 1, 28, 28)."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        logits = model(images[i : i + batch_size])["logits"]
        correct += int((logits.argmax(1).cpu() == labels[i : i + batch_size]).sum())
    return correct / len(images)


def train_extractor(
    *,
    dataset: str = "fashion-mnist",
    out: str | Path,
    seed: int = 0,
    epochs: int = EPOCHS,
    progress: bool = True,
    data_root: str | Path | None = None,
    limit: int | None = None,
) -> dict:
    """Train the LeNet extractor with the fixed recipe on CPU; write OUT/lenet-fashion-mnist.pt (state dict)
    and OUT/lenet-fashion-mnist.json (its record), and return the record.

    Deterministic: the same seed, torch version and machine give a bitwise-identical weights file. `limit`
    trains on the first `limit` train images and tests on the first `limit` test images (for tests only).
    """
    from tqdm.auto import tqdm

    from genbench.data import FASHION_MNIST

    if dataset != "fashion-mnist":
        raise GenbenchError(f"the domain extractor is trained on fashion-mnist only, not {dataset!r}")
    out = Path(out).expanduser()
    train = FASHION_MNIST.load("train", data_root=data_root, progress=progress)
    test = FASHION_MNIST.load("test", data_root=data_root, progress=progress)
    n_train = len(train) if limit is None else min(limit, len(train))
    n_test = len(test) if limit is None else min(limit, len(test))
    x_train = torch.from_numpy(train.images[:n_train].copy())  # (N, 1, 28, 28) uint8
    y_train = torch.from_numpy(train.labels[:n_train].copy())
    x_test = torch.from_numpy(test.images[:n_test].copy())
    y_test = torch.from_numpy(test.labels[:n_test].copy())

    steps_per_epoch = math.ceil(n_train / BATCH_SIZE)
    total_steps = epochs * steps_per_epoch
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(TRAIN_THREADS)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG state is left as it was
            torch.manual_seed(seed)  # initialization and dropout
            order = torch.Generator().manual_seed(seed)  # data order
            model = LeNet()
            opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
            # cosine decay from LR to 0 over all steps
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total_steps)))
            start = time.perf_counter()
            bar = tqdm(total=total_steps, desc=f"train {NAME}", unit="step", disable=not progress)
            for epoch in range(epochs):
                model.train()
                perm = torch.randperm(n_train, generator=order)
                for i in range(0, n_train, BATCH_SIZE):
                    idx = perm[i : i + BATCH_SIZE]
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

    weights = out / f"{NAME}.pt"
    save_state(weights, model.state_dict())
    default = epochs == EPOCHS and limit is None
    record = {
        "name": NAME,
        "file": weights.name,
        "sha256": sha256_file(weights),
        "size_bytes": weights.stat().st_size,
        "dataset": dataset,
        "train_data_hash": train.content_hash,
        "test_accuracy": test_accuracy,
        "test_images": n_test,
        "train_images": n_train,
        "train_seconds": round(train_seconds, 1),
        "command": REPRODUCE.format(seed=seed) if default else None,
        "python": f"genbench.metrics.domain.train_extractor(out=DIR, seed={seed}, epochs={epochs}, limit={limit})",
        "recipe": {
            "seed": seed, "epochs": epochs, "batch_size": BATCH_SIZE, "optimizer": "AdamW", "lr": LR,
            "lr_schedule": "cosine to 0 per step", "weight_decay": WEIGHT_DECAY, "dropout": DROPOUT,
            "threads": TRAIN_THREADS, "device": "cpu",
        },
        "genbench_version": __version__,
        "torch_version": torch.__version__,
    }
    write_json(out / f"{NAME}.json", record)
    return record
