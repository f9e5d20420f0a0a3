"""entries.py: result files -> the long table every report is built from."""

import json
import math

import pytest

from genbench import GenbenchError
from genbench import results as R
from genbench.report import entries


def make_result(*, model="vae", preset="small", dataset="fashion-mnist", seed=0, version=1, metrics=None,
                references=None, kind="training run", run_id=None, tier="quick"):
    """A valid schema-1 result with the given metrics (records built with genbench.results.metric)."""
    protocol = ({"name": f"{dataset}/{model}/quick", "version": version, "hash": f"sha256:v{version}", "tier": tier}
                if kind == "training run" else {"name": "score/lenet-fashion-mnist", "version": version,
                                                "hash": "sha256:s"})
    result = {
        "schema": R.SCHEMA, "kind": kind, "run_id": run_id or f"{model}-{preset}-v{version}-s{seed}",
        "created": "2026-01-01T00:00:00+00:00", "model": model, "dataset": dataset, "seed": seed,
        "protocol": protocol, "metrics": metrics if metrics is not None else {"bpd": bpd(3.5)},
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


def fid(value, *, n=1000, extractor="lenet-fashion-mnist", sha="sha256:aa"):
    return R.metric(value, higher_is_better=False, n=n, reference="fashion-mnist:train", extractor=extractor,
                    extractor_sha256=sha)


def independent_pixels(value=4.5875, n=1000):
    return {"independent_pixel_bpd": R.metric(value, higher_is_better=False, n=n, split="fashion-mnist:test",
                                              fitted_on="fashion-mnist:train", alpha=1.0, unit="bits/dim")}


def write(tmp_path, *results, names=None):
    paths = []
    for i, r in enumerate(results):
        paths.append(R.write_file(tmp_path / (names[i] if names else f"run{i}") / R.FILENAME, r))
    return paths


def table(tmp_path, *results, **kw):
    write(tmp_path, *results)
    return entries.long_table(entries.load_results([tmp_path]), **kw)


def test_load_results_from_files_run_dirs_and_nested_folders(tmp_path):
    a, b = write(tmp_path / "runs", make_result(seed=0), make_result(seed=1))
    deep = R.write_file(tmp_path / "board" / "x" / "y" / "scores.json", make_result(seed=2))  # any name, nested
    (tmp_path / "board" / "x" / "y" / "run.json").write_text("{not even json")  # a run's own file: skipped
    (tmp_path / "board" / "x" / "notes.json").write_text(json.dumps({"hello": 1}))  # not a result: skipped

    assert [x.result["seed"] for x in entries.load_results([a])] == [0]  # a result file
    assert [x.result["seed"] for x in entries.load_results([b.parent])] == [1]  # a run directory
    assert [x.path for x in entries.load_results([tmp_path / "board"])] == [deep.resolve()]  # searched
    everything = entries.load_results([tmp_path, a, str(b.parent)])  # each file once
    assert sorted(x.result["seed"] for x in everything) == [0, 1, 2]
    assert everything[0].run_dir == everything[0].path.parent


def test_load_results_invalid_file_names_the_file_and_the_problem(tmp_path):
    bad = make_result()
    del bad["protocol"]["hash"]
    path = tmp_path / "r" / "result.json"
    path.parent.mkdir()
    path.write_text(json.dumps(bad))
    with pytest.raises(R.ResultError, match=r"result\.json.*protocol\.hash"):
        entries.load_results([tmp_path])
    path.write_text(json.dumps(make_result())[:40])
    with pytest.raises(R.ResultError, match=r"r/result\.json: (truncated|malformed) JSON"):
        entries.load_results([path.parent])


def test_load_results_missing_or_empty_paths(tmp_path):
    with pytest.raises(GenbenchError, match="no such file or directory"):
        entries.load_results([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenbenchError, match=r"no result files found in .*empty"):
        entries.load_results(p for p in [tmp_path / "empty"])  # a generator still names the path


def test_long_table_one_row_per_metric_with_all_columns(tmp_path):
    r = make_result(seed=3, metrics={"bpd": bpd(3.25), "fid[lenet-fashion-mnist]": fid(None, n=200)})
    frame = table(tmp_path, r)
    assert tuple(frame.columns) == entries.LONG_COLUMNS
    assert list(frame["column"]) == ["bpd", "fid[lenet-fashion-mnist]"]
    assert list(frame["metric"]) == ["bpd", "fid"]
    assert frame["value"].iloc[0] == 3.25
    assert math.isnan(frame["value"].iloc[1])  # a null value stays missing, never 0
    row = frame.iloc[1]
    assert (row["entry"], row["row"]) == ("vae (small)", "vae (small) · fashion-mnist/vae/quick@1")
    assert (row["n"], row["reference"], row["extractor"], row["split"]) == (200, "fashion-mnist:train",
                                                                            "lenet-fashion-mnist", None)
    assert type(row["n"]) is int  # not turned into 200.0 by a column with gaps
    assert (row["seed"], row["protocol_version"], row["tier"], row["parameters"]) == (3, 1, "quick", 1000.0)
    assert bool(row["higher_is_better"]) is False
    assert frame["estimator"].iloc[0] == "elbo" and frame["unit"].iloc[0] == "bits/dim"


def test_reference_becomes_the_independent_pixels_entry_in_the_bpd_column(tmp_path):
    frame = table(tmp_path, make_result(references=independent_pixels(4.5875)))
    ref = frame[frame["section"] == "reference"]
    assert len(ref) == 1
    ref = ref.iloc[0]
    assert (ref["entry"], ref["row"], ref["column"], ref["metric"]) == (
        "independent pixels", "independent pixels · fashion-mnist", "bpd", "bpd")
    assert (ref["kind"], ref["estimator"], ref["value"], ref["n"]) == ("reference", "exact", 4.5875, 1000)
    # it shares the column key of a model's bpd on the same images
    model = frame[frame["section"] == "metric"].iloc[0]
    assert entries.column_key("bpd", ref.to_dict()) == entries.column_key("bpd", model.to_dict())
    assert len(table(tmp_path / "no", make_result(references=independent_pixels()), references=False)) == 1


def test_repeated_references_are_one_number(tmp_path):
    frame = table(tmp_path, *[make_result(seed=s, references=independent_pixels(4.5875)) for s in range(3)],
                  make_result(model="gan", references=independent_pixels(4.61, n=500)))
    ref = frame[frame["section"] == "reference"]
    assert sorted(zip(ref["n"], ref["value"])) == [(500, 4.61), (1000, 4.5875)]  # 3 copies -> 1; other n kept
    assert (frame["section"] == "metric").sum() == 4


def test_entry_row_and_dataset_of_submitted_samples(tmp_path):
    r = make_result(kind="submitted samples", model="my_samples", dataset="fashion-mnist:train", version=2,
                    metrics={"fid[lenet-fashion-mnist]": fid(12.0)})
    assert entries.dataset_of(r) == "fashion-mnist"
    assert entries.entry_of(r) == "my_samples"
    assert entries.row_of(r) == "my_samples · score/lenet-fashion-mnist@2"
    assert entries.entry_of({**r, "name": "DDPM samples"}) == "DDPM samples"
    assert entries.entry_of(make_result(preset=None)) == "vae"
    frame = table(tmp_path, r)
    assert (frame["dataset"].iloc[0], frame["kind"].iloc[0]) == ("fashion-mnist", "submitted samples")


def test_column_key_holds_every_field_that_makes_the_number():
    rec = fid(10.0, n=200)
    key = entries.column_key("fid[lenet-fashion-mnist]", rec)
    assert key == ("fid[lenet-fashion-mnist]", 200, "fashion-mnist:train", None, "lenet-fashion-mnist",
                   "sha256:aa", None, None, None, None)
    assert entries.column_key("fid[lenet-fashion-mnist]", {**rec, "value": 99.0, "reference_n": 5}) == key
    for field, other in [("n", 100), ("reference", "fashion-mnist:test"), ("extractor_sha256", "sha256:bb")]:
        assert entries.column_key("fid[lenet-fashion-mnist]", {**rec, field: other}) != key
    assert entries.column_key("x", {"k": [3, 5]}) == entries.column_key("x", {"k": (3, 5)})  # hashable
    assert entries.base_metric("fid[lenet-fashion-mnist]") == "fid" and entries.base_metric("bpd_iwae") == "bpd_iwae"


def test_split_reasons_name_the_fields_that_differ(tmp_path):
    frame = table(tmp_path,
                  make_result(seed=0, metrics={"fid[lenet-fashion-mnist]": fid(10.0, n=200), "bpd": bpd(3.0)}),
                  make_result(seed=1, metrics={"fid[lenet-fashion-mnist]": fid(11.0, n=1000), "bpd": bpd(3.1)}),
                  make_result(seed=2, metrics={"fid": fid(30.0, extractor="inception-v3-compat", sha="sha256:cc")}))
    notes = entries.split_reasons(frame)
    assert len(notes) == 1  # bpd agrees everywhere: no note
    assert notes[0].startswith("fid: kept in 3 separate columns because they differ in metric name "
                               "(fid, fid[lenet-fashion-mnist]); n (1000, 200); extractor (inception-v3-compat, "
                               "lenet-fashion-mnist); extractor_sha256 (sha256:aa, sha256:cc).")


def test_held_out_real_data_is_a_reference_entry(tmp_path):
    """`genbench score DATASET:SPLIT` results are the metric floor: reference rows, never ranked as models,
    in the same columns as the models' scores."""
    real = make_result(kind="submitted samples", model="held-out real data (fashion-mnist:test)",
                       dataset="fashion-mnist:train", metrics={"fid[lenet-fashion-mnist]": fid(0.3)})
    real["samples"] = {"path": "fashion-mnist:test", "n": 1000, "real_data": True}
    model = make_result(metrics={"fid[lenet-fashion-mnist]": fid(103.0)})
    frame = table(tmp_path, real, model)
    ref = frame[frame["entry"] == "held-out real data (fashion-mnist:test)"].iloc[0]
    assert (ref["section"], ref["kind"], ref["value"]) == ("reference", "reference", 0.3)
    assert len(set(frame["column"])) == 1

    from genbench.report import tables

    (t,) = tables.build(frame)
    best = [r.label for r in t.rows if r.cells[0].best]
    assert t.rows[-1].is_reference and not t.rows[-1].cells[0].best
    assert any("the best a model's sample-quality scores can be" in note for note in t.notes)
    assert best == []  # one model left to rank: nothing is marked


def test_list_valued_record_fields_do_not_break_the_long_table_or_the_reports(tmp_path):
    """Mode-coverage records carry a histogram (a list); a column field may be a list too (e.g. splits)."""
    from genbench.report import page, plots, tables

    hist = list(range(10))
    covered = R.metric(10, higher_is_better=True, n=1000, reference="fashion-mnist:train", num_modes=10,
                       histogram=hist, extractor="lenet-fashion-mnist", settings={"min_count": 1, "bins": [1, 2]})
    split_is = R.metric(5.0, higher_is_better=True, n=1000, extractor="lenet-fashion-mnist", splits=[5, 10])
    results = [make_result(seed=s, metrics={"classes_covered[lenet-fashion-mnist]": covered,
                                            "is[lenet-fashion-mnist]": split_is}) for s in range(2)]
    frame = table(tmp_path, *results)
    assert "histogram" not in frame.columns  # not a field that makes the column: not in the long table
    row = frame[frame["metric"] == "is"].iloc[0]
    assert row["splits"] == (5, 10)  # lists become tuples: hashable keys
    keys = {entries.column_key(c, dict(zip(entries.COLUMN_FIELDS, vals))) for c, *vals in
            frame[["column", *entries.COLUMN_FIELDS]].itertuples(index=False)}
    assert len(keys) == 2 and all(hash(k) is not None for k in keys)

    built = tables.build(frame)
    (t,) = built
    assert [c.label for c in t.columns] == ["IS [lenet-fashion-mnist] ↑", "Classes covered [lenet-fashion-mnist] ↑"]
    assert [c.mean for c in t.rows[0].cells] == [5.0, 10.0] and t.rows[0].cells[1].count == 2
    for fmt in tables.FORMATS:
        assert "Classes covered" in tables.render(built, fmt)
    data = page.data(built, title="t", summary="s", plots=[], samples=lambda row: None)
    assert "splits (5, 10)" in page.embed_json(data)  # the column's tooltip names the field
    fig = plots.bar_chart(frame, "classes_covered[lenet-fashion-mnist]")
    assert [b.get_width() for b in fig.axes[0].containers[0]] == [10.0]
