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
    """What ran the work, as results record it: the GPU's name, or the CPU's model and the threads used (times
    from different CPUs are not comparable, and a board's plots say so when the descriptions differ)."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    model = cpu_model()
    return f"cpu ({model + ', ' if model else ''}{torch.get_num_threads()} threads)"


def cpu_model() -> str | None:
    """The CPU's model name (/proc/cpuinfo on Linux, else the platform's processor string), if it says one."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a clock read afterwards times it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
