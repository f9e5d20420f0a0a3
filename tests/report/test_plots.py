"""Plots of result tables: the drawn series carry the numbers of the results (bar lengths are seed means, error
bars the std, Pareto fronts the non-dominated entries), and saving is atomic and reproducible. Plots of runs
(curves over training, sample grids) are tested in test_run_plots.py."""

import math
import warnings

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure

from genbench import results
from genbench.report import entries, plots

FID = "fid[tiny]"
TINY = {"n": 1000, "reference": "digits:train", "extractor": "tiny"}


def make_result(*, model="vae", preset="small", seed=0, version=1, metrics=None, references=None,
                parameters=1000, train_seconds=10.0, device="cpu", kind="training run", name=None,
                sample_ips=100.0) -> dict:
    r = {
        "schema": 1, "kind": kind, "run_id": f"{model}-{preset}-v{version}-s{seed}", "model": model,
        "preset": preset, "dataset": "digits", "seed": seed,
        "protocol": {"name": f"digits/{model}/quick", "version": version, "hash": "sha256:00", "tier": "quick"},
        "metrics": metrics or {}, "references": references or {},
        "compute": {"parameters": parameters, "train_seconds": train_seconds, "device": device,
                    "sample_images_per_s": sample_ips},
        "provenance": {"genbench_version": "0", "git_commit": None, "torch_version": "0", "data_hash": "sha256:0",
                       "checkpoint_sha256": None},
    }
    if name:
        r["name"] = name
    return r


def fid(value, **details):
    return {FID: results.metric(value, higher_is_better=False, **{**TINY, **details})}


def table(tmp_path, rs) -> "entries.pd.DataFrame":
    paths = []
    for i, r in enumerate(rs):
        paths.append(results.write_file(tmp_path / "results" / f"{i:02d}-{r['run_id']}" / "result.json", r))
    return entries.long_table(entries.load_results(paths))


def bars_of(fig: Figure):
    ax = fig.axes[0]
    (container,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    return ax, list(container)


def error_segments(ax) -> list[np.ndarray]:
    """The (x0, x1) or (y0, y1) extents of each error bar line, in drawing order."""
    out = []
    for c in ax.containers:
        if isinstance(c, ErrorbarContainer):
            for coll in c.lines[2]:
                assert isinstance(coll, LineCollection)
                out += [np.asarray(seg) for seg in coll.get_segments()]
    return out


def all_text(fig: Figure) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


# ------------------------------------------------------------------------------------------------ bar chart

def test_bar_chart_bars_are_seed_means_with_std_error_bars_best_first(tmp_path):
    frame = table(tmp_path, [
        *(make_result(model="vae", seed=s, metrics=fid(v)) for s, v in enumerate([10.0, 12.0, 14.0])),
        *(make_result(model="gan", seed=s, metrics=fid(v)) for s, v in enumerate([20.0, 22.0])),
        make_result(model="flow", seed=0, metrics=fid(5.0)),
    ])
    fig = plots.bar_chart(frame, FID)
    ax, bars = bars_of(fig)
    assert ax.get_xlabel() == "FID [tiny] (↓ lower is better)"
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "flow (small)\ndigits/flow/quick@1", "vae (small)\ndigits/vae/quick@1", "gan (small)\ndigits/gan/quick@1"]
    assert [b.get_width() for b in bars] == pytest.approx([5.0, 12.0, 21.0])  # lower is better: best first
    assert _hex(bars[0]) == plots.BEST and _hex(bars[1]) == _hex(bars[2]) == plots.BAR
    # one error bar per multi-seed row, from mean - std to mean + std (ddof = 1); none for the single seed
    segs = error_segments(ax)
    assert len(segs) == 2
    (x0, y0), (x1, y1) = segs[0]
    assert (x0, x1) == pytest.approx((12.0 - 2.0, 12.0 + 2.0)) and y0 == y1 == bars[1].get_y() + 0.3
    (x0, _), (x1, _) = segs[1]
    assert (x1 - x0) / 2 == pytest.approx(math.sqrt(2.0)) and (x0 + x1) / 2 == pytest.approx(21.0)
    text = all_text(fig)
    assert "5.000 · 1 seed · best" in text and "12.00 ± 2.0 · 3 seeds" in text and "21.00 ± 1.4 · 2 seeds" in text
    assert "n = 1,000 · reference digits:train · extractor tiny" in text


def _hex(bar) -> str:
    return "#" + "".join(f"{round(c * 255):02X}" for c in bar.get_facecolor()[:3])


def test_bar_chart_higher_is_better_skips_missing_values_with_a_note(tmp_path):
    def prec(v):
        return {"precision[tiny]": results.metric(v, higher_is_better=True, k=3, **TINY)}

    frame = table(tmp_path, [
        make_result(model="vae", seed=0, metrics=prec(0.5)),
        make_result(model="vae", seed=1, metrics=prec(None)),  # failed to compute: not a 0
        make_result(model="vae", seed=2, metrics=prec(0.7)),
        make_result(model="gan", seed=0, metrics=prec(0.9)),
        make_result(model="ebm", seed=0, metrics=prec(None)),
    ])
    fig = plots.bar_chart(frame, "precision[tiny]")
    ax, bars = bars_of(fig)
    assert ax.get_xlabel() == "Precision [tiny] (↑ higher is better)"
    assert [b.get_width() for b in bars] == pytest.approx([0.9, 0.6])  # ebm has no value: no bar at all
    (seg,) = error_segments(ax)
    assert seg[:, 0] == pytest.approx([0.6 - math.sqrt(0.02), 0.6 + math.sqrt(0.02)])
    text = all_text(fig)
    assert "vae (small) · digits/vae/quick@1: 1 of 3 runs have no value (left out)." in text
    assert "ebm (small) · digits/ebm/quick@1: 1 of 1 runs have no value; not plotted." in text
    assert "0.6000 ± 0.14 · 2 seeds" in text


def test_bar_chart_marks_references_and_bounds(tmp_path):
    bpd = {"bpd": results.metric(3.2, higher_is_better=False, n=100, split="digits:test", unit="bits/dim",
                                 estimator="elbo")}
    ref = {"independent_pixel_bpd": results.metric(4.5, higher_is_better=False, n=100, split="digits:test",
                                                   unit="bits/dim")}
    frame = table(tmp_path, [make_result(seed=s, metrics=bpd, references=ref) for s in range(2)])
    fig = plots.bar_chart(frame, "bpd")
    ax, bars = bars_of(fig)
    assert ax.get_xlabel() == "NLL, bits/dim (↓ lower is better)"
    assert [b.get_width() for b in bars] == pytest.approx([3.2, 4.5])  # the reference is one bar, not two
    assert bars[0].get_hatch() == "///" and _hex(bars[0]) == plots.BAR and _hex(bars[1]) == plots.REFERENCE
    assert "4.500 · reference" in all_text(fig) and "best" not in all_text(fig)  # one model: no "best"
    assert "bound (elbo): the true NLL is lower" in all_text(fig)


def test_bar_chart_refuses_a_column_made_two_ways(tmp_path):
    frame = table(tmp_path, [make_result(model="vae", metrics=fid(10.0)),
                             make_result(model="gan", metrics=fid(20.0, n=10000))])
    with pytest.raises(ValueError, match=r"differ in n \(1000, 10000\).*filter the frame"):
        plots.bar_chart(frame, FID)
    with pytest.raises(ValueError, match=r"no records for column 'kid\[tiny\]'; columns in this frame: fid\[tiny\]"):
        plots.bar_chart(frame, "kid[tiny]")
    plots.bar_chart(frame[frame["n"] == 10000], FID)  # filtered, it draws


@pytest.mark.parametrize("column, unit, hib, label", [
    ("fid[lenet-fashion-mnist]", None, False, "FID [lenet-fashion-mnist] (↓ lower is better)"),
    ("psnr", None, True, "PSNR, dB (↑ higher is better)"),
    ("bpd_iwae", "bits/dim", False, "NLL, IWAE bound, bits/dim (↓ lower is better)"),
    ("my_metric", "m", None, "my metric, m"),
    ("classes_covered[lenet-fashion-mnist]", None, True, "Classes covered [lenet-fashion-mnist] (↑ higher is better)"),
    ("mode_kl[lenet-fashion-mnist]", None, False, "Mode KL [lenet-fashion-mnist], nats (↓ lower is better)"),
])
def test_metric_label(column, unit, hib, label):
    assert plots.metric_label(column, unit=unit, higher_is_better=hib) == label


# --------------------------------------------------------------------------------------------- Pareto front

@pytest.mark.parametrize("hib", [False, True])
def test_pareto_front_drops_dominated_points_in_either_direction(hib):
    costs = np.array([4.0, 2.0, 3.0, 1.0, 2.0, 5.0])
    values = np.array([1.0, 3.0, 3.0, 5.0, 4.0, 1.0])  # lower is better
    # 2 (3, 3): same value as 1 but costlier; 4 (2, 4): same cost as 1 but worse; 5 (5, 1): costlier than 0
    front = plots.pareto_front(costs, -values if hib else values, higher_is_better=hib)
    assert front.tolist() == [3, 1, 0]  # sorted by cost


def test_pareto_front_ties_and_missing_values():
    costs = np.array([1.0, 1.0, 2.0, np.nan, 0.5])
    values = np.array([3.0, 3.0, 5.0, 9.0, np.nan])
    # identical points do not dominate each other; NaN cost or value is never on the front
    assert plots.pareto_front(costs, values, higher_is_better=True).tolist() == [0, 1, 2]
    assert plots.pareto_front(costs, values, higher_is_better=False).tolist() == [0, 1]
    assert plots.pareto_front(np.array([]), np.array([]), higher_is_better=True).tolist() == []
    with pytest.raises(ValueError, match="one length"):
        plots.pareto_front(costs, values[:2], higher_is_better=True)


# ------------------------------------------------------------------------------------------ quality vs cost

def cost_frame(tmp_path):
    return table(tmp_path, [
        *(make_result(model="small", seed=s, metrics=fid(v), parameters=1_000, train_seconds=t)
          for s, (v, t) in enumerate([(30.0, 10.0), (34.0, 14.0)])),
        make_result(model="mid", metrics=fid(20.0), parameters=100_000, train_seconds=30.0),
        make_result(model="waste", metrics=fid(25.0), parameters=500_000, train_seconds=40.0),
        make_result(model="big", metrics=fid(10.0), parameters=2_000_000, train_seconds=50.0),
        make_result(model="samples", kind="submitted samples", name="my samples", seed=None, metrics=fid(15.0),
                    parameters=None, train_seconds=None),
    ])


def test_quality_vs_cost_parameters_log_scale_and_pareto_step_line(tmp_path):
    fig = plots.quality_vs_cost(cost_frame(tmp_path), FID, "parameters")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"  # 1k to 2M spans more than 10x
    assert ax.get_xlabel() == "parameters" and ax.get_ylabel() == "FID [tiny] (↓ lower is better)"
    points = np.concatenate([c.get_offsets() for c in ax.collections if c.get_offsets().shape[0]
                             and not isinstance(c, LineCollection)])
    assert sorted(map(tuple, points)) == sorted([(1e3, 32.0), (1e5, 20.0), (5e5, 25.0), (2e6, 10.0)])
    (step,) = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
    assert step.get_xdata().tolist() == [1e3, 1e5, 2e6] and step.get_ydata().tolist() == [32.0, 20.0, 10.0]
    (seg,) = error_segments(ax)  # the two-seed entry: std of 30 and 34
    assert seg[:, 1] == pytest.approx([32.0 - math.sqrt(8), 32.0 + math.sqrt(8)])
    labels = {t.get_text() for t in ax.texts}
    assert {"small (small)", "mid (small)", "waste (small)", "big (small)"} <= labels
    assert "my samples" not in labels  # no parameter count: named in the note, not drawn at 0
    assert "Not plotted, no parameters recorded: my samples · digits/samples/quick@1 (submitted samples)." \
        in all_text(fig)


def test_quality_vs_cost_training_time_linear_with_device_and_reference(tmp_path):
    frame = cost_frame(tmp_path)
    fig = plots.quality_vs_cost(frame, FID, "train_seconds")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"  # 12 s to 50 s
    assert ax.get_xlabel() == "training time (seconds) on cpu"
    (step,) = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
    assert step.get_xdata().tolist() == [10.0, 30.0, 50.0]  # the faster of the two seeds (10 s and 14 s)
    with pytest.raises(ValueError, match="cost must be one of train_seconds, parameters"):
        plots.quality_vs_cost(frame, FID, "flops")


def test_quality_vs_cost_draws_references_as_lines_and_converts_long_times(tmp_path):
    bpd = lambda v: {"bpd": results.metric(v, higher_is_better=False, split="digits:test", unit="bits/dim")}  # noqa
    ref = {"independent_pixel_bpd": results.metric(4.5, higher_is_better=False, split="digits:test")}
    frame = table(tmp_path, [make_result(model="a", metrics=bpd(3.0), references=ref, train_seconds=600),
                             make_result(model="b", metrics=bpd(2.0), references=ref, train_seconds=1800,
                                         device="cuda")])
    fig = plots.quality_vs_cost(frame, "bpd", "train_seconds")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training time (minutes) (devices differ, see note)"
    (step,) = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
    assert step.get_xdata().tolist() == [10.0, 30.0]
    (hline,) = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert list(hline.get_ydata()) == [4.5, 4.5]
    assert "independent pixels (reference), 4.500" in all_text(fig)
    assert "different devices and are not directly comparable: cpu: a (small); cuda: b (small)." in " ".join(all_text(fig).split())


def test_quality_vs_cost_with_one_cost_value_draws_without_warnings(tmp_path):
    frame = table(tmp_path, [make_result(model="only", seed=s, metrics=fid(v), parameters=5_000, train_seconds=20.0)
                             for s, v in enumerate([30.0, 34.0])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns about singular x limits when left to itself
        fig = plots.quality_vs_cost(frame, FID, "train_seconds")
        plots.save(fig, tmp_path / "one")
    assert fig.axes[0].get_xlim() == pytest.approx((16.0, 24.0))


def test_quality_against_training_and_sampling_time_side_by_side(tmp_path):
    """The comparison across families: one metric axis, a panel per cost; sampling time per image is 1 / images
    per second of the fastest seed, in ms."""
    frame = table(tmp_path, [
        *(make_result(model="slow-sampler", seed=s, metrics=fid(v), train_seconds=10.0, sample_ips=ips)
          for s, (v, ips) in enumerate([(12.0, 1.0), (14.0, 0.5)])),  # 1,000 and 2,000 ms: the first counts
        make_result(model="fast-sampler", metrics=fid(30.0), train_seconds=40.0, sample_ips=1000.0),  # 1 ms
        make_result(model="samples", kind="submitted samples", name="my samples", seed=None, metrics=fid(15.0),
                    parameters=None, train_seconds=None, sample_ips=None),
    ])
    fig = plots.quality_vs_costs(frame, FID)
    train, sampling = fig.axes[:2]
    assert train.get_xlabel() == "training time (seconds) on cpu"
    assert sampling.get_xlabel() == "sampling time per image (ms) on cpu"
    assert sampling.get_xscale() == "log"  # 1 ms to 1 s
    points = lambda ax: sorted(map(tuple, np.concatenate([c.get_offsets() for c in ax.collections  # noqa: E731
                                                          if c.get_offsets().shape[0]
                                                          and not isinstance(c, LineCollection)])))
    assert points(train) == [(10.0, 13.0), (40.0, 30.0)]
    np.testing.assert_allclose(points(sampling), [(1.0, 30.0), (1000.0, 13.0)])
    # each is on the front of one panel: cheapest to sample, or best
    (step,) = [line for line in sampling.get_lines() if line.get_drawstyle() == "steps-post"]
    assert step.get_xdata().tolist() == pytest.approx([1.0, 1000.0])
    assert "times: the fastest seed's" in all_text(fig)
    assert train.get_shared_y_axes().joined(train, sampling)
    assert "Not plotted, no sampling time recorded: my samples" in all_text(fig)
    with pytest.raises(ValueError, match="cost must be one of"):
        plots.quality_vs_costs(frame, FID, ("train_seconds", "flops"))


# ------------------------------------------------------------------------------------------------- saving

def test_save_writes_png_and_svg_atomically_and_reproducibly(tmp_path):
    def figure():
        fig = Figure()
        fig.add_subplot().plot([1, 2, 3], [3, 1, 2])
        return fig

    paths = plots.save(figure(), tmp_path / "out" / "fid[tiny]")
    assert paths == [tmp_path / "out" / "fid[tiny].png", tmp_path / "out" / "fid[tiny].svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:500]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fid[tiny].png", "fid[tiny].svg"]  # no temps
    first = [p.read_bytes() for p in paths]
    plots.save(figure(), tmp_path / "out" / "fid[tiny]")
    assert [p.read_bytes() for p in paths] == first  # same figure, same bytes (no dates, fixed SVG ids)
    with pytest.raises(ValueError, match="cannot save a figure as 'doc'"):
        plots.save(figure(), tmp_path / "x", formats=("png", "doc"))  # checked before anything is written
    assert not list(tmp_path.glob("x*")) and not list(tmp_path.glob(".x*"))
