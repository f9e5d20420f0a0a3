"""The command line: help, version, listings, dry runs, errors and `show`."""

import json

from click.testing import CliRunner

from genbench import __version__, registry
from genbench.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_version_and_help():
    assert invoke("--version").output.strip() == f"genbench, version {__version__}"
    out = invoke("--help").output
    for command in ("list", "run", "show"):
        assert command in out
    run_help = invoke("run", "--help").output
    for option in ("--protocol", "--resume", "--dry-run", "--data-root", "--device", "--max-minutes",
                   "[default: standard]"):
        assert option in run_help


def test_list_shows_every_registered_entry():
    out = invoke("list").output
    for name in [*registry.MODELS, *registry.DATASETS, *registry.PROTOCOLS, *registry.METRICS]:
        assert name in out
    assert "folder:PATH" in invoke("list", "datasets").output
    assert "log_likelihood (bound)" in invoke("list", "models").output


def test_dry_run_prints_the_resolved_protocol():
    result = invoke("run", "--model", "vae", "--dataset", "fashion-mnist", "--protocol", "quick", "--dry-run")
    resolved = json.loads(result.output)
    p = registry.protocol("fashion-mnist/vae/quick")
    assert resolved["protocol"] == p.ref and resolved["hash"] == p.hash
    assert resolved["model_config"]["class"] == "genbench.baselines.vae.Config"
    assert resolved["run_dir"] == "runs/fashion-mnist-vae-quick-v4-seed0"
    default = json.loads(invoke("run", "--model", "vae", "--dataset", "fashion-mnist", "--dry-run").output)
    assert default["tier"] == "standard"


def test_errors_are_one_clear_line():
    result = CliRunner().invoke(main, ["run", "--model", "vea", "--dataset", "digits", "--dry-run"])
    assert result.exit_code == 1 and "Did you mean vae" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, ["run", "--model", "vae", "--dataset", "digits",
                                       "--protocol", "fashion-mnist/vae/quick@2", "--dry-run"])
    assert "trains vae on fashion-mnist, not vae on digits" in result.output


def test_run_and_show(tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "--model", "vae", "--dataset", "digits", "--protocol", "smoke", "--out", str(out),
                    "--no-progress", "--offline")
    assert "digits/vae/smoke@2" in result.output and "Estimated training time" in result.output
    assert "bpd_iwae" in result.output and "independent_pixel_bpd (reference)" in result.output
    shown = invoke("show", str(out)).output
    assert "finished" in shown and "digits/vae/smoke@2" in shown and "step 40/40" in shown
    assert "psnr" in shown and "ssim" in shown  # ssim shown as a dash: 8x8 digits are below its window
    assert "Warning: SSIM skipped" in result.output
