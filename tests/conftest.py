import os
import shutil
import tempfile

_made = None


def pytest_configure(config):
    """Tests (and the processes they start) decode datasets into a private cache, never the user's."""
    global _made
    if "GENBENCH_CACHE" not in os.environ:
        _made = os.environ["GENBENCH_CACHE"] = tempfile.mkdtemp(prefix="genbench-test-cache-")


def pytest_unconfigure(config):
    if _made:
        shutil.rmtree(_made, ignore_errors=True)
        os.environ.pop("GENBENCH_CACHE", None)


import pytest  # noqa: E402
import torch  # noqa: E402

TINY = "tiny-test"


@pytest.fixture(scope="module")
def fashion_mnist():
    """Skip the module's tests where Fashion-MNIST is not installed (`apt-get install dataset-fashion-mnist`)."""
    from genbench import registry
    from genbench.data import DatasetUnavailable

    try:
        registry.dataset("fashion-mnist").load("test", download=False, progress=False)
    except DatasetUnavailable:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")


@pytest.fixture
def one_thread():
    """One intra-op thread for a test of small tensors: they run fastest so, and on a shared 2-core machine two
    threads made elementwise work about 300x slower (tests/test_samplers.py, tests/metrics/test_ode.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TinyExtractor(torch.nn.Module):
    """A closed-form stand-in for a feature network: 4x4 average pooling per RGB channel, then fixed seeded
    projections. Deterministic, any input size, milliseconds per batch."""

    weights_sha256 = None

    def __init__(self, dim: int = 16, classes: int = 5):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(48, dim, generator=g) / 48 ** 0.5)
        self.register_buffer("head", torch.randn(dim, classes, generator=g))
        self.eval()

    def forward(self, x: torch.Tensor) -> dict:
        x = x.float() / 255.0
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x  # (B, 3, H, W)
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)  # (B, 48)
        features = torch.tanh(4 * (pooled - 0.3) @ self.proj)  # (B, 16)
        return {"features": features, "logits": features @ self.head}


@pytest.fixture(scope="session")
def tiny_extractor():
    """The stand-in, registered with genbench's extractor registry as a user would register their own."""
    from genbench import registry
    from genbench.metrics.features import ExtractorSpec

    if TINY not in registry.EXTRACTORS:
        registry.EXTRACTORS.register(TINY, ExtractorSpec(
            TINY, "test stand-in", feature_dim=16, num_classes=5, input="any size; 4x4 average pool",
            build=lambda weights=None, device="cpu": TinyExtractor().to(device)))
    return registry.EXTRACTORS[TINY]
