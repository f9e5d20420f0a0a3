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
