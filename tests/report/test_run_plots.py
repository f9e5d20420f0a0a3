"""Plots of runs: curves over training drawn from run directories (train/eval logs, board entries) and from the
`snapshots` sections of results, and sample grids. The drawn series carry the logged numbers: lines are read
back from the Figure's axes."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from genbench import GenbenchError, GenbenchWarning, results
from genbench.report import entries, plots
from genbench.report import run_plots

FID = "fid[lenet-fashion-mnist]"
SNAP = {"every": 500, "n": 2000, "metrics": [FID], "reference": "fashion-mnist:train",
        "extractor": "lenet-fashion-mnist"}


def all_text(fig: Figure) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def test_the_plots_of_runs_are_still_importable_from_plots():
    from genbench.report.plots import read_log, run_label, sample_grid, training_curves

    assert training_curves is run_plots.training_curves and sample_grid is run_plots.sample_grid
    assert read_log is run_plots.read_log and run_label is run_plots.run_label
    assert plots.snapshot_curve is run_plots.snapshot_curve and plots.loss_curves is run_plots.loss_curves
    with pytest.raises(AttributeError, match="no attribute 'no_such_plot'"):
        plots.no_such_plot  # noqa: B018


# -------------------------------------------------------------------------------------------- run directories

def write_run(path, *, preset="small", seed=0, train=(), held=(), batch_size=16, tail=""):
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"seed": seed, "protocol": {
        "protocol": "digits/vae/quick@1", "model": "vae", "preset": preset, "batch_size": batch_size}}))
    (path / "train_log.jsonl").write_text("".join(json.dumps({"step": s, "loss": v}) + "\n" for s, v in train) + tail)
    if held:
        (path / "eval_log.jsonl").write_text("".join(json.dumps({"step": s, "loss": v}) + "\n" for s, v in held))
    return path


def test_training_curves_draw_the_logged_values(tmp_path):
    a0 = write_run(tmp_path / "a0", train=[(10, 5.0), (20, 4.0), (30, 3.5)], held=[(20, 4.5), (30, 4.2)])
    a1 = write_run(tmp_path / "a1", seed=1, train=[(10, 5.5), (20, 4.1)])
    b0 = write_run(tmp_path / "b0", preset="large", train=[(10, 4.0), (20, 3.0)])
    fig = run_plots.training_curves([a0, a1, b0])
    ax = fig.axes[0]
    lines = {line.get_gid(): line for line in ax.get_lines()}
    assert set(lines) == {f"train:{a0}", f"eval:{a0}", f"train:{a1}", f"train:{b0}"}
    assert lines[f"train:{a0}"].get_xdata().tolist() == [10, 20, 30]
    assert lines[f"train:{a0}"].get_ydata().tolist() == [5.0, 4.0, 3.5]
    assert lines[f"eval:{a0}"].get_ydata().tolist() == [4.5, 4.2] and lines[f"eval:{a0}"].get_linestyle() == "--"
    assert lines[f"train:{a0}"].get_color() == lines[f"train:{a1}"].get_color() == lines[f"eval:{a0}"].get_color()
    assert lines[f"train:{b0}"].get_color() != lines[f"train:{a0}"].get_color()
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "loss" and ax.get_yscale() == "linear"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "vae (small) · digits/vae/quick@1 (2 seeds)", "vae (large) · digits/vae/quick@1 (1 seed)",
        "training batches", "held-out (eval_log)"]
    (top,) = [c for c in ax.child_axes]
    assert top.get_xlabel() == "images seen (batch size 16)"

    labelled = run_plots.training_curves([a0, b0], labels=["x", "y"])
    assert [t.get_text() for t in labelled.axes[0].get_legend().get_texts()][:2] == ["x (1 seed)", "y (1 seed)"]
    with pytest.raises(ValueError, match="one label per run"):
        run_plots.training_curves([a0, b0], labels=["x"])


def test_training_curves_skip_a_truncated_last_line_with_a_warning(tmp_path):
    run = write_run(tmp_path / "r", train=[(1, 100.0), (2, 5.0)], tail='{"step": 3, "lo')
    with pytest.warns(GenbenchWarning, match=r"train_log.jsonl: line 3 is truncated"):
        fig = run_plots.training_curves([run])
    (line,) = fig.axes[0].get_lines()
    assert line.get_xdata().tolist() == [1, 2] and line.get_ydata().tolist() == [100.0, 5.0]
    assert fig.axes[0].get_yscale() == "log"  # 5 to 100 spans more than 10x
    assert "r/train_log.jsonl: line 3 is truncated" in all_text(fig)  # said on the figure too
    empty = write_run(tmp_path / "e", train=[])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = run_plots.training_curves([empty])
    assert not fig.axes[0].get_lines() and "e: no 'loss' in train_log.jsonl or eval_log.jsonl" in all_text(fig)


def test_sample_grid_tiles_the_saved_samples(tmp_path):
    assert run_plots.sample_grid(tmp_path) is None  # no samples saved
    images = np.arange(10 * 3 * 8 * 6, dtype=np.int64).reshape(10, 3, 8, 6).astype(np.uint8)
    np.savez(tmp_path / "samples.npz", images=images)
    fig = run_plots.sample_grid(tmp_path, n=10)
    grid = fig.axes[0].images[0].get_array()
    assert grid.shape == (3 * (8 + 2) + 2, 4 * (6 + 2) + 2, 3)  # 10 images: 4 columns, 3 rows, 2 px gaps
    assert (grid[2:10, 2:8] == images[0].transpose(1, 2, 0)).all()
    assert (grid[12:20, 2:8] == images[4].transpose(1, 2, 0)).all()  # row-major: image 4 starts row 2
    assert (grid[:2] == 255).all() and (grid[22:, 18:] == 255).all()  # gaps and the 2 empty cells: white
    assert "10 of 10 saved samples, 6×8 pixels" in fig.axes[0].get_title()

    gray = np.zeros((100, 1, 28, 28), np.uint8)
    np.savez(tmp_path / "samples.npz", images=gray)
    assert run_plots.sample_grid(tmp_path).axes[0].images[0].get_array().shape == (8 * 30 + 2, 8 * 30 + 2)


def test_sample_grid_falls_back_to_samples_png(tmp_path):
    Image.fromarray(np.full((20, 30), 128, np.uint8)).save(tmp_path / "samples.png")
    grid = run_plots.sample_grid(tmp_path).axes[0].images[0].get_array()
    assert grid.shape[:2] == (20, 30)
    np.savez(tmp_path / "samples.npz", images=np.zeros((4, 28, 28), np.float32))  # not the contract
    with pytest.warns(GenbenchWarning, match="'images' must be uint8"):
        assert run_plots.sample_grid(tmp_path).axes[0].images[0].get_array().shape[:2] == (20, 30)
    (tmp_path / "samples.png").unlink()
    with pytest.raises(GenbenchError, match="samples.npz: 'images' must be uint8"):
        run_plots.sample_grid(tmp_path)


# ------------------------------------------------------------------------------------------ GAN loss terms

def gan_result(model="dcgan", *, seed=0, version=1, curve=None, snapshots=None, fid=30.0, n=10000) -> dict:
    """A GAN training run's result on fashion-mnist, with a snapshot curve where `curve` ([(step, value)]) or
    `snapshots` (the whole section) is given."""
    r = {
        "schema": 1, "kind": "training run", "run_id": f"{model}-v{version}-s{seed}", "model": model,
        "preset": "small", "dataset": "fashion-mnist", "seed": seed,
        "protocol": {"name": f"fashion-mnist/{model}/quick", "version": version, "hash": "sha256:00",
                     "tier": "quick"},
        "metrics": {FID: results.metric(fid, higher_is_better=False, n=n, reference="fashion-mnist:train",
                                        extractor="lenet-fashion-mnist")},
        "compute": {"parameters": 1000, "train_seconds": 10.0, "device": "cpu", "sample_images_per_s": 100.0},
        "provenance": {"genbench_version": "0", "git_commit": None, "torch_version": "0", "data_hash": "sha256:0",
                       "checkpoint_sha256": None},
        "files": {"train_log": "train_log.jsonl"},
    }
    if curve is not None:
        snapshots = {**SNAP, "curve": [{"step": s, FID: v} for s, v in curve]}
    if snapshots is not None:
        r["snapshots"] = snapshots
    return r


def board_entry(root, result, log_rows) -> Path:
    """A board entry folder: result.json and the train_log.jsonl submitted with it (no run.json)."""
    d = root / result["run_id"]
    results.write_file(d / "result.json", result)
    (d / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log_rows))
    return d


def gan_log(steps, *, g, d, w=None):
    rows = []
    for i, s in enumerate(steps):
        row = {"step": s, "loss": g[i], "g_loss": g[i], "d_loss": d[i], "d_real": 0.6, "d_fake": 0.4,
               "images_per_s": 900.0, "train_seconds": 0.1 * s}
        if w is not None:
            row["wasserstein"] = w[i]
            row["gp"] = 0.01
        rows.append(row)
    return rows


def test_loss_curves_draw_each_logged_term_in_its_own_panel(tmp_path):
    steps = [25, 50, 75]
    a0 = board_entry(tmp_path, gan_result("dcgan", seed=0), gan_log(steps, g=[2.0, 1.5, 1.2], d=[1.4, 1.3, 1.2]))
    a1 = board_entry(tmp_path, gan_result("dcgan", seed=1), gan_log(steps, g=[2.1, 1.6, 1.1], d=[1.3, 1.2, 1.1]))
    w0 = board_entry(tmp_path, gan_result("wgan-gp", seed=0),
                     gan_log(steps, g=[-0.5, 0.1, 0.3], d=[-3.0, -2.0, -1.0], w=[3.2, 2.1, 1.1]))
    assert run_plots.logged_terms([a0, a1]) == ["g_loss", "d_loss"]
    assert run_plots.logged_terms([a0, w0]) == ["g_loss", "d_loss", "wasserstein"]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = run_plots.loss_curves([a0, a1, w0], title="Losses during training, fashion-mnist")
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == ["generator loss", "discriminator / critic loss",
                                                "Wasserstein estimate"]
    assert axes[-1].get_xlabel() == "training step"
    lines = {line.get_gid(): line for ax in axes for line in ax.get_lines()}
    assert set(lines) == {f"g_loss:{a0}", f"g_loss:{a1}", f"g_loss:{w0}", f"d_loss:{a0}", f"d_loss:{a1}",
                          f"d_loss:{w0}", f"wasserstein:{w0}"}
    assert lines[f"d_loss:{a1}"].get_xdata().tolist() == steps
    assert lines[f"d_loss:{a1}"].get_ydata().tolist() == [1.3, 1.2, 1.1]
    assert lines[f"wasserstein:{w0}"].get_ydata().tolist() == [3.2, 2.1, 1.1]
    assert lines[f"wasserstein:{w0}"] in axes[2].get_lines() and lines[f"g_loss:{a0}"] in axes[0].get_lines()
    # the seeds of an entry share a colour; the legend counts them from the results (a board has no run.json)
    assert lines[f"g_loss:{a0}"].get_color() == lines[f"g_loss:{a1}"].get_color() != lines[f"g_loss:{w0}"].get_color()
    assert [t.get_text() for t in axes[-1].get_legend().get_texts()] == [
        "dcgan (small) · fashion-mnist/dcgan/quick@1 (2 seeds)",
        "wgan-gp (small) · fashion-mnist/wgan-gp/quick@1 (1 seed)"]
    text = all_text(fig)
    assert "Losses during training, fashion-mnist" in text
    assert "Wasserstein estimate (wasserstein): not logged by dcgan (small) · fashion-mnist/dcgan/quick@1." in text


def test_loss_curves_of_logs_without_gan_terms(tmp_path):
    vae = board_entry(tmp_path, gan_result("vae"), [{"step": 10, "loss": 3.0, "recon": 2.0, "kl": 1.0}])
    gan = board_entry(tmp_path, gan_result("dcgan"), gan_log([10, 20], g=[1.0, 0.9], d=[1.2, 1.1]))
    assert run_plots.logged_terms([vae]) == []
    with pytest.raises(ValueError, match="no run logged any of g_loss, d_loss, wasserstein in train_log.jsonl"):
        run_plots.loss_curves([vae])
    fig = run_plots.loss_curves([vae, gan])
    assert len(fig.axes) == 2 and len(fig.axes[0].get_lines()) == 1
    assert ("vae (small) · fashion-mnist/vae/quick@1 (vae-v1-s0): no g_loss, d_loss in train_log.jsonl; not "
            "plotted.") in " ".join(all_text(fig).split())
    fig = run_plots.loss_curves([vae], keys=("loss", "kl"))  # any keys a log holds
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "KL term"]
    with pytest.raises(ValueError, match="one label per run"):
        run_plots.loss_curves([vae, gan], labels=["x"])


# ------------------------------------------------------------------------------ sample quality over training

def band_of(ax, gid):
    """(x, low, high) of a fill_between band, from its polygon's vertices."""
    (poly,) = [c for c in ax.collections if c.get_gid() == gid]
    xs, lows, highs = [], [], []
    for path in poly.get_paths():
        v = path.vertices[np.isfinite(path.vertices).all(axis=1)]
        for x in np.unique(v[:, 0]):
            ys = v[v[:, 0] == x, 1]
            xs.append(x), lows.append(ys.min()), highs.append(ys.max())
    return np.array(xs), np.array(lows), np.array(highs)


def test_snapshot_curve_one_line_per_row_seeds_as_mean_and_band():
    rs = [gan_result("dcgan", seed=0, curve=[(500, 180.0), (1000, 150.0), (1500, 120.0)]),
          gan_result("dcgan", seed=1, curve=[(500, 190.0), (1000, 146.0), (1500, 124.0)]),
          gan_result("dcgan", seed=2, curve=[(500, 170.0), (1000, 148.0), (1500, 116.0)]),
          gan_result("wgan", seed=0, curve=[(500, 200.0), (1000, 100.0), (1500, 80.0)]),
          gan_result("vae", seed=0)]  # no snapshots section: simply not in the plot
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = run_plots.snapshot_curve(rs)
    ax = fig.axes[0]
    lines = {line.get_gid(): line for line in ax.get_lines()}
    dcgan = "snapshots:dcgan (small) · fashion-mnist/dcgan/quick@1"
    wgan = "snapshots:wgan (small) · fashion-mnist/wgan/quick@1"
    assert set(lines) == {dcgan, wgan}
    assert lines[dcgan].get_xdata().tolist() == [500, 1000, 1500]
    assert lines[dcgan].get_ydata() == pytest.approx([180.0, 148.0, 120.0])  # the mean of the three seeds
    assert lines[wgan].get_ydata().tolist() == [200.0, 100.0, 80.0]
    x, lo, hi = band_of(ax, dcgan.replace("snapshots:", "band:"))
    assert x.tolist() == [500, 1000, 1500]
    assert hi - lo == pytest.approx(2 * np.array([10.0, 2.0, 4.0]))  # ± one std (ddof = 1) across seeds
    assert (hi + lo) / 2 == pytest.approx([180.0, 148.0, 120.0])
    assert not [c for c in ax.collections if c.get_gid() == wgan.replace("snapshots:", "band:")]  # one seed: no band
    assert ax.get_xlabel() == "training step"
    assert ax.get_ylabel() == "FID [lenet-fashion-mnist], n = 2,000\n(↓ lower is better)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "dcgan (small) · fashion-mnist/dcgan/quick@1 (3 seeds)", "wgan (small) · fashion-mnist/wgan/quick@1 (1 seed)"]
    text = " ".join(all_text(fig).split())
    assert "FID [lenet-fashion-mnist] over training, fashion-mnist" in text
    assert ("n = 2,000 samples per snapshot · reference fashion-mnist:train · extractor lenet-fashion-mnist · a "
            "snapshot every 500 steps") in text
    assert "fewer than the headline metrics in the tables (n = 10,000)" in text
    assert "bands: one standard deviation across seeds (ddof = 1)" in text


def test_snapshot_curve_gaps_and_missing_values():
    rs = [gan_result("dcgan", seed=0, curve=[(500, 180.0), (1000, None), (1500, 120.0)]),
          gan_result("dcgan", seed=1, curve=[(500, 190.0), (1000, 150.0)]),  # stopped early
          gan_result("dcgan", seed=2, snapshots={**SNAP, "curve": []})]  # kept no snapshot yet
    fig = run_plots.snapshot_curve(rs, FID)
    (line,) = fig.axes[0].get_lines()
    assert line.get_xdata().tolist() == [500, 1000, 1500]
    assert line.get_ydata() == pytest.approx([185.0, 150.0, 120.0])  # the mean of the seeds that have a value
    x, lo, hi = band_of(fig.axes[0], "band:dcgan (small) · fashion-mnist/dcgan/quick@1")
    assert x.tolist() == [500]  # only step 500 has two values
    text = " ".join(all_text(fig).split())
    assert "1 snapshot value missing (left out)" in text
    assert "not every seed has a value at every step" in text


def test_snapshot_curves_made_differently_do_not_share_an_axis():
    small = gan_result("dcgan", seed=0, curve=[(500, 180.0)])
    big = gan_result("wgan", seed=0, snapshots={**SNAP, "n": 10000, "curve": [{"step": 500, FID: 160.0}]})
    kinds = run_plots.snapshot_kinds([small, big, gan_result("vae")])
    assert kinds == [run_plots.SnapshotKind(FID, 2000, "fashion-mnist:train", "lenet-fashion-mnist"),
                     run_plots.SnapshotKind(FID, 10000, "fashion-mnist:train", "lenet-fashion-mnist")]
    with pytest.raises(ValueError, match=r"made differently: they differ in n \(10000, 2000\)"):
        run_plots.snapshot_curve([small, big])
    fig = run_plots.snapshot_curve([small, big], kinds[1])  # one kind at a time
    (line,) = fig.axes[0].get_lines()
    assert line.get_ydata().tolist() == [160.0] and "wgan" in line.get_gid()
    assert "fewer than the headline" not in all_text(fig)  # n = 10,000 both: nothing to warn about
    with pytest.raises(ValueError, match="no result has a snapshots section"):
        run_plots.snapshot_curve([gan_result("vae")])
    with pytest.raises(ValueError, match=r"no result has a snapshot curve of 'kid\[x\]'"):
        run_plots.snapshot_curve([small], "kid[x]")
    two = gan_result("dcgan", snapshots={**SNAP, "metrics": [FID, "kid[lenet-fashion-mnist]"],
                                         "curve": [{"step": 1, FID: 1.0, "kid[lenet-fashion-mnist]": 0.1}]})
    with pytest.raises(ValueError, match="name the one to plot"):
        run_plots.snapshot_curve([two])
    other = {**gan_result("dcgan", seed=5, curve=[(1, 2.0)]), "dataset": "mnist"}
    with pytest.raises(ValueError, match="several datasets"):
        run_plots.snapshot_curve([small, other])


def test_snapshot_curve_skips_a_malformed_section_with_a_warning(tmp_path):
    good = gan_result("dcgan", seed=0, curve=[(500, 180.0), (1000, 150.0)])
    bad = gan_result("wgan", seed=0, snapshots={**SNAP, "curve": "not a list"})
    with pytest.warns(GenbenchWarning, match="run wgan-v1-s0: its snapshots section holds no curve"):
        fig = run_plots.snapshot_curve([good, bad])
    assert [line.get_gid() for line in fig.axes[0].get_lines()] == [
        "snapshots:dcgan (small) · fashion-mnist/dcgan/quick@1"]
    # LoadedResults (as a board reads them) work as well as dicts
    path = results.write_file(tmp_path / "r" / "result.json", good)
    fig = run_plots.snapshot_curve(entries.load_results([path]))
    assert fig.axes[0].get_lines()[0].get_ydata().tolist() == [180.0, 150.0]
    plots.save(fig, tmp_path / "curve")  # draws and saves without complaint
    assert (tmp_path / "curve.png").is_file() and (tmp_path / "curve.svg").is_file()
