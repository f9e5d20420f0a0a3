"""genbench: a benchmark and evaluation suite for deep generative models."""

__version__ = "0.1.0"


class GenbenchError(Exception):
    """An error whose message tells the user what went wrong and how to fix it."""


class GenbenchWarning(UserWarning):
    """A warning about the trustworthiness of a number (too few samples, skipped files, ...)."""


__all__ = ["__version__", "GenbenchError", "GenbenchWarning"]
