"""The wheel installs baselines/ and metrics/ under the genbench namespace, and nothing at the top level."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory):
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = out.glob("genbench-*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_wheel_maps_baselines_and_metrics_under_genbench(wheel_names):
    for module in ("genbench/cli.py", "genbench/data/__init__.py", "genbench/baselines/vae.py",
                   "genbench/metrics/likelihood.py", "genbench/metrics/reconstruction.py"):
        assert module in wheel_names
    top = {name.split("/")[0] for name in wheel_names}
    assert not top & {"baselines", "metrics", "tests"}, top
    assert any(name.endswith("entry_points.txt") for name in wheel_names)


def test_python_dash_m_genbench():
    out = subprocess.run([sys.executable, "-m", "genbench", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("genbench, version")
