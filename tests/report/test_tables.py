"""tables.py: aggregation, the never-mix rule, best marking, missing values and the four output formats."""

import csv
import io

import numpy as np
import pytest

from genbench import GenbenchError
from genbench import results as R
from genbench.report import entries, tables

LENET = "fid[lenet-fashion-mnist]"


# ------------------------------------------------------------------------------------------- synthetic results

def make_result(*, model="vae", preset="small", dataset="fashion-mnist", seed=0, version=1, metrics=None,
                references=None, kind="training run", run_id=None, tier="quick"):
    protocol = ({"name": f"{dataset}/{model}/quick", "version": version, "hash": f"sha256:v{version}", "tier": tier}
                if kind == "training run" else {"name": "score/lenet-fashion-mnist", "version": version,
                                                "hash": "sha256:s"})
    result = {
        "schema": R.SCHEMA, "kind": kind, "run_id": run_id or f"{model}-{preset}-v{version}-s{seed}",
        "created": "2026-01-01T00:00:00+00:00", "model": model, "dataset": dataset, "seed": seed,
        "protocol": protocol, "metrics": metrics,
        "compute": {"parameters": 1000, "train_seconds": 12.5, "device": "cpu", "sample_images_per_s": None},
        "provenance": {"genbench_version": "0.1.0", "git_commit": "abc", "torch_version": "2", "data_hash": "d",
                       "checkpoint_sha256": None},
    }
    if kind == "training run":
        result["preset"] = preset
    if references is not None:
        result["references"] = references
    return result


def bpd(value, *, n=1000, estimator="elbo"):
    return R.metric(value, higher_is_better=False, n=n, split="fashion-mnist:test", estimator=estimator,
                    unit="bits/dim")


def fid(value, *, n=1000, extractor="lenet-fashion-mnist", sha="sha256:aa", reference="fashion-mnist:train"):
    return R.metric(value, higher_is_better=False, n=n, reference=reference, extractor=extractor,
                    extractor_sha256=sha)


def higher(value, **details):
    return R.metric(value, higher_is_better=True, **details)


def independent_pixels(value=4.5875, n=1000):
    return {"independent_pixel_bpd": R.metric(value, higher_is_better=False, n=n, split="fashion-mnist:test",
                                              fitted_on="fashion-mnist:train", alpha=1.0, unit="bits/dim")}


def write(folder, *results):
    return [R.write_file(folder / f"run{i}" / R.FILENAME, r) for i, r in enumerate(results)]


def build(tmp_path, *results, **kw):
    write(tmp_path, *results)
    return tables.build(entries.long_table(entries.load_results([tmp_path])), **kw)


def only(tables_):
    assert len(tables_) == 1
    return tables_[0]


def cells(table, column_label):
    """{row label: cell} of one column."""
    j = [c.label for c in table.columns].index(column_label)
    return {r.label: r.cells[j] for r in table.rows}


VAE, GAN, PIXELCNN = ("vae (small) · fashion-mnist/vae/quick@1", "gan (dcgan) · fashion-mnist/gan/quick@1",
                      "pixelcnn (small) · fashion-mnist/pixelcnn/quick@1")
REF = "independent pixels · fashion-mnist"


# ------------------------------------------------------------------------------------------------ aggregation

def test_seeds_aggregate_to_mean_std_ddof1_and_count(tmp_path):
    t = only(build(tmp_path, *[make_result(seed=s, metrics={"bpd": bpd(v)}) for s, v in [(2, 4.0), (0, 1.0),
                                                                                         (1, 2.0)]]))
    cell = cells(t, "bits/dim ↓")[VAE]
    assert cell.mean == pytest.approx(7 / 3, abs=1e-12)
    assert cell.std == pytest.approx(1.5275252316519468, abs=1e-12)  # sqrt(((1-7/3)^2+(2-7/3)^2+(4-7/3)^2)/2)
    assert cell.count == 3 and cell.values == (1.0, 2.0, 4.0)  # in seed order
    assert cell.ci is None and cell.bound and not cell.best  # an ELBO; alone in its column
    assert t.rows[0].seeds == (0, 1, 2)
    assert "| vae (small) · fashion-mnist/vae/quick@1 | 3 | ≤ 2.333 ± 1.528 |" in tables.render([t], "md")


def test_single_value_has_no_std_and_no_interval(tmp_path):
    t = only(build(tmp_path, make_result(metrics={"bpd": bpd(3.25, estimator="exact")}), ci=0.95))
    cell = t.rows[0].cells[0]
    assert (cell.mean, cell.std, cell.ci, cell.count, cell.bound) == (3.25, None, None, 1, False)
    assert tables.aggregate([]) == (None, None, None)


def test_an_ais_estimate_is_marked_as_neither_exact_nor_a_bound(tmp_path):
    t = only(build(tmp_path, make_result(model="igebm", metrics={"bpd_ais": bpd(4.125, estimator="ais")})))
    cell = t.rows[0].cells[0]
    assert cell.estimate and not cell.bound
    md = tables.render([t], "md")
    assert "| ≈ 4.125 |" in md and "≈: an estimate, neither exact nor a bound" in md
    assert r"$\approx$ 4.125" in tables.render([t], "latex")


def test_bootstrap_interval_matches_numpy_and_contains_the_mean(tmp_path):
    values = [3.1, 3.4, 3.2, 3.6, 3.3]
    t = only(build(tmp_path, *[make_result(seed=s, metrics={"bpd": bpd(v)}) for s, v in enumerate(values)],
                   ci=0.9, n_boot=2000, seed=7))
    cell = t.rows[0].cells[0]

    v = np.array(values)
    idx = np.random.default_rng(7).integers(0, 5, size=(2000, 5))
    expected = np.quantile(v[idx].mean(axis=1), [0.05, 0.95])
    assert cell.ci == pytest.approx(tuple(expected), abs=1e-12)
    assert tables.bootstrap_ci(values, 0.9, n_boot=2000, seed=7) == pytest.approx(tuple(expected), abs=1e-12)
    assert cell.mean == pytest.approx(3.32) and cell.ci[0] < cell.mean < cell.ci[1]
    assert 3.1 <= cell.ci[0] and cell.ci[1] <= 3.6
    lo, hi = (f"{x:.3f}" for x in expected)
    assert f"≤ 3.320 ± 0.192 [{lo}, {hi}]" in tables.render([t], "md")


def test_interval_narrows_with_more_seeds():
    widths = []
    for repeats in (1, 4, 16):  # the same spread from 3, 12, 48 seeds
        _, _, (lo, hi) = tables.aggregate([2.9, 3.0, 3.1] * repeats, ci=0.95, n_boot=4000, seed=1)
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    # normal theory for the bootstrap's plug-in spread sqrt(2/3) * 0.1: 2 * 1.96 * sd / sqrt(48) = 0.0462
    assert widths[2] == pytest.approx(2 * 1.96 * (2 / 3) ** 0.5 * 0.1 / 48 ** 0.5, rel=0.05)


def test_a_seed_without_the_metric_shows_its_count(tmp_path):
    t = only(build(tmp_path, make_result(seed=0, metrics={"bpd": bpd(3.4), LENET: fid(40.0)}),
                   make_result(seed=1, metrics={"bpd": bpd(3.5), LENET: fid(None)})))
    cell = cells(t, "FID [lenet-fashion-mnist] ↓")[VAE]
    assert (cell.mean, cell.std, cell.count, cell.values) == (40.0, None, 1, (40.0,))
    assert "| 40.00 (1 seed) |" in tables.render([t], "md")


# --------------------------------------------------------------------------------------------- never mix

@pytest.mark.parametrize("field, a, b, labels", [
    ("n", 1000, 200, ["FID [lenet-fashion-mnist] (n=1,000) ↓", "FID [lenet-fashion-mnist] (n=200) ↓"]),
    ("reference", "fashion-mnist:test", "fashion-mnist:train",
     ["FID [lenet-fashion-mnist] (ref=fashion-mnist:test) ↓",
      "FID [lenet-fashion-mnist] (ref=fashion-mnist:train) ↓"]),
    ("sha", "sha256:aaaaaaaaaaaaaaaa", "sha256:bbbbbbbbbbbbbbbb",
     ["FID [lenet-fashion-mnist] (weights=aaaaaaaaaaaa) ↓", "FID [lenet-fashion-mnist] (weights=bbbbbbbbbbbb) ↓"]),
])
def test_results_differing_in_one_setting_get_separate_columns_and_a_note(tmp_path, field, a, b, labels):
    t = only(build(tmp_path, make_result(model="vae", metrics={LENET: fid(30.0, **{field: a})}),
                   make_result(model="gan", preset="dcgan", metrics={LENET: fid(20.0, **{field: b})})))
    assert [c.label for c in t.columns] == labels
    assert [c.name for c in t.columns] == [LENET, LENET]
    assert cells(t, labels[0])[VAE].mean == 30.0 and cells(t, labels[0])[GAN].mean is None
    assert cells(t, labels[1])[GAN].mean == 20.0 and cells(t, labels[1])[VAE].mean is None
    assert not any(c.best for r in t.rows for c in r.cells)  # each column has one value: nothing to rank
    field_name = {"sha": "extractor_sha256"}.get(field, field)
    assert t.notes[0].startswith(f"fid: kept in 2 separate columns because they differ in {field_name} (")


def test_inception_fid_never_shares_a_column_with_an_extractor_labelled_fid(tmp_path):
    t = only(build(tmp_path,
                   make_result(metrics={"fid": fid(30.0, extractor="inception-v3-compat", sha="sha256:cc"),
                                        LENET: fid(12.0)}),
                   make_result(model="gan", preset="dcgan", metrics={LENET: fid(9.0)})))
    assert [(c.label, c.name, c.metric) for c in t.columns] == [
        ("FID ↓", "fid", "fid"), ("FID [lenet-fashion-mnist] ↓", LENET, "fid")]
    assert t.columns[0].details == {"n": 1000, "reference": "fashion-mnist:train", "extractor": "inception-v3-compat",
                                    "extractor_sha256": "sha256:cc"}
    assert t.columns[1].key == entries.column_key(LENET, fid(0.0))
    assert cells(t, "FID ↓")[GAN].mean is None
    assert cells(t, "FID [lenet-fashion-mnist] ↓")[GAN].best
    assert "differ in metric name (fid, fid[lenet-fashion-mnist])" in t.notes[0]


def test_datasets_are_separate_tables(tmp_path):
    ts = build(tmp_path, make_result(dataset="mnist", metrics={"bpd": bpd(1.0)}),
               make_result(dataset="fashion-mnist", metrics={"bpd": bpd(3.0)}))
    assert [(t.dataset, t.title, len(t.rows)) for t in ts] == [("fashion-mnist", "fashion-mnist", 1),
                                                                ("mnist", "mnist", 1)]
    md = tables.render(ts, "md")
    assert md.index("### fashion-mnist") < md.index("### mnist")


def test_protocol_versions_stay_separate_rows_with_a_note(tmp_path):
    t = only(build(tmp_path, make_result(version=1, metrics={"bpd": bpd(3.5)}),
                   make_result(version=2, metrics={"bpd": bpd(3.4)})))
    assert [(r.label, r.protocol_version) for r in t.rows] == [
        ("vae (small) · fashion-mnist/vae/quick@2", 2), ("vae (small) · fashion-mnist/vae/quick@1", 1)]
    assert [r.cells[0].count for r in t.rows] == [1, 1]
    assert t.notes == (("vae (small): fashion-mnist/vae/quick@1 and @2 are separate rows and must not be compared "
                        "as one entry (a new protocol version changes what can move the numbers); the newest here "
                        "is @2."),)


def test_the_same_run_in_two_files_is_an_error_naming_both(tmp_path):
    r = make_result(metrics={"bpd": bpd(3.5)})
    a = R.write_file(tmp_path / "runs" / "x" / "result.json", r)
    b = R.write_file(tmp_path / "board" / "copy.json", r)
    frame = entries.long_table(entries.load_results([tmp_path]))
    with pytest.raises(GenbenchError, match="run vae-small-v1-s0") as e:
        tables.build(frame)
    assert str(a.resolve()) in str(e.value) and str(b.resolve()) in str(e.value)


def test_two_runs_of_one_seed_are_noted(tmp_path):
    t = only(build(tmp_path, make_result(run_id="r1", metrics={"bpd": bpd(3.5)}),
                   make_result(run_id="r2", metrics={"bpd": bpd(3.7)})))
    assert t.rows[0].seeds == (0, 0) and t.rows[0].cells[0].count == 2
    assert f"{VAE}: seed 0 has several results (runs r1, r2); each counts as one value." in t.notes


# -------------------------------------------------------------------------------------------- best, missing

def test_best_follows_the_direction_of_each_metric(tmp_path):
    t = only(build(tmp_path,
                   make_result(model="a", metrics={LENET: fid(20.0), "is[lenet-fashion-mnist]": higher(5.0)}),
                   make_result(model="b", metrics={LENET: fid(10.0), "is[lenet-fashion-mnist]": higher(7.0)}),
                   make_result(model="c", metrics={LENET: fid(30.0), "is[lenet-fashion-mnist]": higher(9.0)})))
    assert [c.label for c in t.columns] == ["FID [lenet-fashion-mnist] ↓", "IS [lenet-fashion-mnist] ↑"]
    assert [r.model for r in t.rows] == ["b", "a", "c"]  # best-first by the first column
    assert [[c.best for c in r.cells] for r in t.rows] == [[True, False], [False, False], [False, True]]


def test_ties_are_all_best_single_values_and_references_never(tmp_path):
    ref = independent_pixels(1.0)  # better than every model, but a reference point
    t = only(build(tmp_path,
                   make_result(model="a", metrics={"bpd": bpd(3.0004), "ssim": higher(0.5)}, references=ref),
                   make_result(model="b", metrics={"bpd": bpd(2.9996)}, references=ref),
                   make_result(model="c", metrics={"bpd": bpd(3.2)}, references=ref)))
    bits = cells(t, "bits/dim ↓")
    assert [r.label for r in t.rows][-1] == REF
    assert {k.split(" ")[0]: v.best for k, v in bits.items()} == {"a": True, "b": True, "c": False,
                                                                   "independent": False}  # both shown as 3.000
    assert not any(c.best for c in cells(t, "SSIM ↑").values())  # one value: nothing to compare
    assert bits[REF].mean == 1.0 and not bits[REF].bound
    assert t.notes[-1].startswith("independent pixels: a reference point, not a trained model (each pixel")


def test_missing_metrics_are_a_dash_never_zero(tmp_path):
    t = only(build(tmp_path, make_result(model="gan", preset="dcgan", metrics={LENET: fid(25.5)}),
                   make_result(model="pixelcnn", metrics={"bpd": bpd(None, estimator="exact"), LENET: fid(30.0)})))
    assert [(c.mean, c.count, c.values, c.best, c.bound) for c in cells(t, "bits/dim ↓").values()] == [
        (None, 0, (), False, False)] * 2
    md, latex, html = (tables.render([t], f) for f in ("md", "latex", "html"))
    assert f"| {GAN} | 1 | – | **25.50** |" in md and f"| {PIXELCNN} | 1 | – | 30.00 |" in md
    assert r"gan (dcgan) $\cdot$ fashion-mnist/gan/quick@1 & 1 & -- & \textbf{25.50} \\" in latex
    assert "<td>1</td><td>–</td><td><strong>25.50</strong></td>" in html
    rows = list(csv.DictReader(io.StringIO(tables.render([t], "csv")), ))
    assert [r["bits/dim ↓"] for r in rows] == ["", ""]
    assert not any("0.000" in out for out in (md, latex, html))


# ---------------------------------------------------------------------------------------------- formatting

def test_number_formats_follow_the_metric(tmp_path):
    t = only(build(tmp_path, make_result(metrics={
        "bpd": bpd(3.4299), "psnr": higher(20.5008, unit="dB"), "ssim": higher(0.72642), LENET: fid(103.0434),
        "kid[lenet-fashion-mnist]": R.metric(29.280647, higher_is_better=False), "kid": R.metric(
            0.00123456, higher_is_better=False), "widgets": higher(1234.56), "zeta": higher(-0.00001, unit="x"),
        "mig": higher(0.054031)})))
    assert [c.label for c in t.columns] == [
        "bits/dim ↓", "PSNR (dB) ↑", "SSIM ↑", "FID [lenet-fashion-mnist] ↓", "KID ↓",
        "KID [lenet-fashion-mnist] ↓", "MIG ↑", "widgets ↑", "zeta (x) ↑"]
    # likelihood, reconstruction, sample quality, disentanglement, then others alphabetically
    assert tables.render([t], "md").splitlines()[4] == (
        f"| {VAE} | 1 | ≤ 3.430 | 20.50 | 0.726 | 103.04 | 0.001235 | 29.28 | 0.054 | 1235 | -0.00001000 |")
    assert tables.format_number(t.columns[0], -0.0001) == "0.000"  # never "-0.000"


def modes(name, covered, kl, *, num_modes=10, n=10000, reference="fashion-mnist:train"):
    """The two records metrics/modes.py writes for one sample set (with its list-valued histogram)."""
    hist = [n // num_modes] * num_modes
    common = {"n": n, "extractor": "lenet-fashion-mnist", "extractor_sha256": "sha256:aa", "reference": reference,
              "num_modes": num_modes, "histogram": hist}
    return {f"{name[0]}[lenet-fashion-mnist]": higher(covered, min_count=1, **common),
            f"{name[1]}[lenet-fashion-mnist]": R.metric(kl, higher_is_better=False, unit="nats",
                                                        divergence="KL(generated || reference)",
                                                        sampling_floor=0.0004, **common)}


CLASSES, MODES = ("classes_covered", "class_kl"), ("modes_covered", "mode_kl")


def test_mode_coverage_columns_are_named_and_ordered_after_the_fidelity_metrics(tmp_path):
    t = only(build(tmp_path, make_result(model="gan", preset="dcgan", metrics={
        "widgets": higher(1.0), **modes(MODES, 990, 0.3, num_modes=1000), **modes(CLASSES, 10, 0.0123),
        "coverage[lenet-fashion-mnist]": higher(0.5), LENET: fid(30.0), "mig": higher(0.1)})))
    assert [c.label for c in t.columns] == [
        "FID [lenet-fashion-mnist] ↓", "Coverage [lenet-fashion-mnist] ↑", "Classes covered [lenet-fashion-mnist] ↑",
        "Class KL [lenet-fashion-mnist] (nats) ↓", "Modes covered [lenet-fashion-mnist] ↑",
        "Mode KL [lenet-fashion-mnist] (nats) ↓", "MIG ↑", "widgets ↑"]
    assert tables.render([t], "md").splitlines()[4] == (
        f"| {GAN} | 1 | 30.00 | 0.500 | 10 | 0.01230 | 990 | 0.3000 | 0.100 | 1.000 |")
    assert [tables.display_name(n) for n in ("classes_covered[x]", "class_kl", "modes_covered", "mode_kl[x]")] == [
        "Classes covered [x]", "Class KL", "Modes covered", "Mode KL [x]"]


def test_counts_are_whole_numbers_and_their_seed_means_keep_one_decimal(tmp_path):
    t = only(build(tmp_path, *(make_result(model="gan", preset="dcgan", seed=s, metrics=modes(CLASSES, c, 0.1))
                               for s, c in enumerate((9, 10, 10))),
                   *(make_result(model="vae", seed=s, metrics=modes(CLASSES, 10, 0.2)) for s in range(2))))
    col = t.columns[0]
    assert col.label == "Classes covered [lenet-fashion-mnist] ↑"
    md = tables.render([t], "md")
    assert f"| {VAE} | 2 | **10** ± 0 | 0.2000 ± 0.0000 |" in md  # ranked as shown: 10 beats 9.7
    assert f"| {GAN} | 3 | 9.7 ± 0.6 | **0.1000** ± 0.0000 |" in md
    assert tables.format_number(col, 1000.0) == "1000" and tables.format_number(col, 2.0, like=9.5) == "2.0"
    assert f"{VAE},training run,2,10,0," in tables.render([t], "csv")


def test_metrics_selects_and_orders_columns(tmp_path):
    write(tmp_path, make_result(metrics={"bpd": bpd(3.0), LENET: fid(10.0), "fid": fid(
        20.0, extractor="inception-v3-compat"), "ssim": higher(0.7)}))
    frame = entries.long_table(entries.load_results([tmp_path]))
    t = only(tables.build(frame, metrics=["fid", "bpd"]))
    assert [c.name for c in t.columns] == ["fid", LENET, "bpd"]
    assert [c.name for c in only(tables.build(frame, metrics=[LENET])).columns] == [LENET]
    with pytest.raises(GenbenchError, match=r"no result has the metric\(s\) fdi; these have: bpd, fid, fid\["):
        tables.build(frame, metrics=["fdi"])
    assert only(tables.build(frame, metrics=["ssim"])).rows[0].cells[0].mean == 0.7


def test_rows_carry_provenance_per_result(tmp_path):
    paths = write(tmp_path, make_result(seed=1, metrics={"bpd": bpd(3.0)}), make_result(seed=0, metrics={
        "bpd": bpd(3.2)}))
    row = only(tables.build(entries.long_table(entries.load_results([tmp_path])))).rows[0]
    assert (row.entry, row.kind, row.model, row.preset, row.protocol, row.protocol_version, row.tier) == (
        "vae (small)", "training run", "vae", "small", "fashion-mnist/vae/quick", 1, "quick")
    assert row.seeds == (0, 1)
    assert [p["run_id"] for p in row.provenance] == ["vae-small-v1-s0", "vae-small-v1-s1"]
    assert row.provenance[0] == {"run_id": "vae-small-v1-s0", "path": str(paths[1].resolve()),
                                 "protocol_hash": "sha256:v1", "git_commit": "abc", "genbench_version": "0.1.0",
                                 "created": "2026-01-01T00:00:00+00:00", "parameters": 1000, "train_seconds": 12.5,
                                 "device": "cpu"}


# ------------------------------------------------------------------------------------------ golden outputs

def golden_tables(tmp_path):
    ref = independent_pixels(4.5875)
    return build(tmp_path,
                 make_result(seed=0, metrics={"bpd": bpd(3.40), LENET: fid(40.0)}, references=ref),
                 make_result(seed=1, metrics={"bpd": bpd(3.46), LENET: fid(44.0)}, references=ref),
                 make_result(model="gan", preset="dcgan", metrics={LENET: fid(25.5)}, references=ref),
                 make_result(model="pixelcnn", metrics={"bpd": bpd(3.1, estimator="exact"), LENET: fid(None)},
                             references=ref))


REF_NOTE = ("independent pixels: a reference point, not a trained model (each pixel an independent categorical "
            "distribution fitted on the training split; exact bits/dim); listed last and not ranked.")

GOLDEN_MD = f"""\
### fashion-mnist

| Entry | Seeds | bits/dim ↓ | FID [lenet-fashion-mnist] ↓ |
| :-- | --: | --: | --: |
| pixelcnn (small) · fashion-mnist/pixelcnn/quick@1 | 1 | **3.100** | – |
| vae (small) · fashion-mnist/vae/quick@1 | 2 | ≤ 3.430 ± 0.042 | 42.00 ± 2.83 |
| gan (dcgan) · fashion-mnist/gan/quick@1 | 1 | – | **25.50** |
| *independent pixels · fashion-mnist* | 1 | 4.588 | – |

- {REF_NOTE}
- mean ± std over seeds (ddof=1); **bold**: best in column; ≤: upper bound on bits/dim (ELBO, IWAE, VLB, \
dequantized ODE, dequantized flows), the exact value is at most this; –: not reported
"""

GOLDEN_LATEX = rf"""% fashion-mnist
% {REF_NOTE}
\begin{{tabular}}{{lrrr}}
\toprule
Entry & Seeds & bits/dim $\downarrow$ & FID [lenet-fashion-mnist] $\downarrow$ \\
\midrule
pixelcnn (small) $\cdot$ fashion-mnist/pixelcnn/quick@1 & 1 & \textbf{{3.100}} & -- \\
vae (small) $\cdot$ fashion-mnist/vae/quick@1 & 2 & $\leq$ 3.430 $\pm$ 0.042 & 42.00 $\pm$ 2.83 \\
gan (dcgan) $\cdot$ fashion-mnist/gan/quick@1 & 1 & -- & \textbf{{25.50}} \\
\textit{{independent pixels $\cdot$ fashion-mnist}} & 1 & 4.588 & -- \\
\bottomrule
\end{{tabular}}
"""

GOLDEN_CSV = f"""\
dataset,entry,kind,seeds,bits/dim ↓,bits/dim ↓ std,FID [lenet-fashion-mnist] ↓,FID [lenet-fashion-mnist] ↓ std,best,bounds
fashion-mnist,pixelcnn (small) · fashion-mnist/pixelcnn/quick@1,training run,1,3.100,,,,bits/dim ↓,
fashion-mnist,vae (small) · fashion-mnist/vae/quick@1,training run,2,3.430,0.042,42.00,2.83,,bits/dim ↓
fashion-mnist,gan (dcgan) · fashion-mnist/gan/quick@1,training run,1,,,25.50,,FID [lenet-fashion-mnist] ↓,
fashion-mnist,independent pixels · fashion-mnist,reference,1,4.588,,,,,
# {REF_NOTE}
"""

GOLDEN_HTML = f"""\
<table class="genbench-report">
<caption>fashion-mnist</caption>
<thead>
<tr><th>Entry</th><th>Seeds</th><th>bits/dim ↓</th><th>FID [lenet-fashion-mnist] ↓</th></tr>
</thead>
<tbody>
<tr><td>pixelcnn (small) · fashion-mnist/pixelcnn/quick@1</td><td>1</td><td><strong>3.100</strong></td><td>–</td></tr>
<tr><td>vae (small) · fashion-mnist/vae/quick@1</td><td>2</td><td>≤ 3.430 ± 0.042</td><td>42.00 ± 2.83</td></tr>
<tr><td>gan (dcgan) · fashion-mnist/gan/quick@1</td><td>1</td><td>–</td><td><strong>25.50</strong></td></tr>
<tr class="reference"><td><em>independent pixels · fashion-mnist</em></td><td>1</td><td>4.588</td><td>–</td></tr>
</tbody>
<tfoot>
<tr><td colspan="4">{REF_NOTE}</td></tr>
<tr><td colspan="4">mean ± std over seeds (ddof=1); <strong>bold</strong>: best in column; ≤: upper bound on \
bits/dim (ELBO, IWAE, VLB, dequantized ODE, dequantized flows), the exact value is at most this; –: not \
reported</td></tr>
</tfoot>
</table>
"""


@pytest.mark.parametrize("fmt, golden", [("md", GOLDEN_MD), ("latex", GOLDEN_LATEX), ("csv", GOLDEN_CSV),
                                         ("html", GOLDEN_HTML)])
def test_golden_output(tmp_path, fmt, golden):
    assert tables.render(golden_tables(tmp_path), fmt) == golden


def test_report_runs_the_whole_pipeline(tmp_path):
    expected = tables.render(golden_tables(tmp_path), "md")
    assert tables.report([tmp_path]) == expected == GOLDEN_MD
    assert tables.report([tmp_path / "run2"], fmt="markdown", metrics="fid") == (
        "### fashion-mnist\n\n| Entry | Seeds | FID [lenet-fashion-mnist] ↓ |\n| :-- | --: | --: |\n"
        "| gan (dcgan) · fashion-mnist/gan/quick@1 | 1 | 25.50 |\n")
    with pytest.raises(GenbenchError, match="unknown report format 'pdf'; choose from md, csv, latex, html"):
        tables.report([tmp_path], fmt="pdf")


def test_latex_markdown_and_html_escape_names(tmp_path):
    def submitted(name, value):
        return make_result(kind="submitted samples", model=name, dataset="fashion-mnist:train", run_id=name,
                           metrics={LENET: fid(value)})

    ts = build(tmp_path, submitted("a_b & 50% #1 {x} ~$^\\", 10.0), submitted("a|b <i>*", 12.0))
    latex = tables.render(ts, "latex")
    assert (r"a\_b \& 50\% \#1 \{x\} \textasciitilde{}\$\textasciicircum{}\textbackslash{} $\cdot$ "
            r"score/lenet-fashion-mnist@1 & 1 & \textbf{10.00} \\") in latex
    assert r"a|b \textless{}i\textgreater{}* $\cdot$ score/lenet-fashion-mnist@1 & 1 & 12.00 \\" in latex
    md = tables.render(ts, "md")
    line = r"| a\|b \<i>\* · score/lenet-fashion-mnist@1 | 1 | 12.00 |"
    assert line in md.splitlines()
    assert line.replace(r"\|", "").count("|") == 4  # the escaped pipe does not open a column
    assert r"| a\_b & 50% #1 {x} ~$^\\ · score/lenet-fashion-mnist@1 | 1 | **10.00** |" in md
    assert "<td>a|b &lt;i&gt;* · score/lenet-fashion-mnist@1</td>" in tables.render(ts, "html")
    rows = list(csv.reader(io.StringIO(tables.render(ts, "csv"))))
    assert rows[1][1] == "a_b & 50% #1 {x} ~$^\\ · score/lenet-fashion-mnist@1"  # CSV quoting, no escapes


def test_min_seeds_keeps_the_entries_run_over_enough_seeds_and_the_references(tmp_path):
    ref = independent_pixels()
    write(tmp_path,
          *(make_result(model="vae", seed=s, metrics={"bpd": bpd(3.4 + s / 100)}, references=ref) for s in range(3)),
          *(make_result(model="nade", seed=s, metrics={"bpd": bpd(3.6)}, references=ref) for s in range(2)),
          make_result(model="vae", version=2, metrics={"bpd": bpd(3.3)}, references=ref))
    everything = tables.report([tmp_path])
    assert "nade" in everything and "quick@2" in everything
    three = tables.report([tmp_path], min_seeds=3)
    assert "vae (small) · fashion-mnist/vae/quick@1 | 3 | ≤ 3.410 ± 0.010" in three
    assert "nade" not in three and "quick@2" not in three  # two seeds; one seed of another version
    assert "independent pixels" in three
    with pytest.raises(GenbenchError, match="no entry has 4 or more seeds; the most any has is 3"):
        tables.report([tmp_path], min_seeds=4)
