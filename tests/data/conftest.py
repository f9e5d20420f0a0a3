import pytest


@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path, monkeypatch):
    """Each test gets an empty genbench cache and no $GENBENCH_DATA from the developer's shell."""
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GENBENCH_DATA", raising=False)
