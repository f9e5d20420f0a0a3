"""Which device a run uses, and how it is named in results."""

from __future__ import annotations

import torch

from genbench import GenbenchError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GenbenchError("--device cuda was asked for, but torch sees no CUDA device; use --device cpu.")
    return torch.device(name)


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock read afterwards times it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
