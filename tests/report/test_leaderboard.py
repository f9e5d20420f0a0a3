"""leaderboard.py: submit (validation, duplicates, atomicity) and build (README.md, index.html, plots); training
logs and snapshot curves: test_leaderboard_logs.py."""

import json
import os
import re

import pytest

from genbench import GenbenchError, registry
from genbench import results as R
from genbench.report import leaderboard as L
from genbench.report import submit as S
from genbench.report import page
from board_results import FASHION, json_block, listing, run_dir, samples_result, sha, training_result

SCRIPT = "<script>alert(1)</script>"

# ------------------------------------------------------------------------------------------------ a board

@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """Seven results on two datasets and three protocols, submitted one by one, then built (plots as PNG)."""
    runs, board = tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("boards") / "board"
    for seed, bpd in enumerate((2.0, 2.2, 2.1)):
        w = f"digits smoke {seed}".encode()
        L.submit(run_dir(runs, training_result(seed=seed, bpd=bpd, weights=w), weights=w), board)
    w = b"digits quick"
    L.submit(run_dir(runs, training_result("digits/vae/quick", bpd=1.5, weights=w), weights=w), board)
    w = b"fashion smoke"
    L.submit(run_dir(runs, training_result("fashion-mnist/vae/smoke", weights=w), weights=w), board)
    L.submit(run_dir(runs, samples_result(SCRIPT, fid=25.0)) / "result.json", board)
    L.submit(run_dir(runs, samples_result("sampler-a", fid=30.0), samples=False), board)
    written = L.build(board, formats=("png",))
    return board, written


def test_build_writes_readme_index_and_plots(board):
    board, written = board
    readme, index = board / "README.md", board / "index.html"
    assert written[:2] == [readme, index]
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    plots = sorted(p.name for p in (board / "plots").iterdir())
    assert plots == sorted(p.name for p in written[2:])
    assert "digits--bpd.png" in plots and "fashion-mnist--fid-lenet-fashion-mnist.png" in plots
    assert "digits--bpd--vs-train-time.png" in plots
    text = readme.read_text()
    # one table per dataset, a row per entry and protocol version, seeds aggregated (3 results -> "| 3 |")
    assert "### digits" in text and "### fashion-mnist" in text
    assert "| vae (smoke) · digits/vae/smoke@2 | 3 | ≤ 2.100 ± 0.100 |" in text
    assert "| vae (small) · digits/vae/quick@2 | 1 |" in text
    assert "| sampler-a · score/lenet-fashion-mnist@1 | 1 |" in text
    assert "](plots/digits--bpd.png)" in text
    assert "(results/" + training_result(seed=0, weights=b"digits smoke 0")["run_id"] + "/samples.png)" in text
    assert SCRIPT not in text  # escaped in Markdown too
    # the page embeds a thumbnail per entry with samples, and links the plots and full grids by relative path
    html = index.read_text()
    assert html.count("data:image/png;base64,") == 4  # digits smoke, digits quick, fashion smoke, the script entry
    assert '"src":"plots/digits--bpd.png"' in html and "file://" not in html and str(board) not in html
    data = json.loads(json_block(html))
    assert [t["dataset"] for t in data["tables"]] == data["datasets"] == ["digits", "fashion-mnist"]
    assert data["protocols"] == ["digits/vae/quick@2", "digits/vae/smoke@2", "fashion-mnist/vae/smoke@4",
                                 "score/lenet-fashion-mnist@1"]


def test_build_is_deterministic(board):
    board, _ = board
    before = listing(board)
    L.build(board, formats=("png",))
    assert listing(board) == before


def test_build_does_not_depend_on_where_the_board_lies(board, tmp_path):
    board, _ = board
    a, b = tmp_path / "a" / board.name, tmp_path / "b" / "c" / board.name
    for copy in (a, b):
        copy.mkdir(parents=True)
        os.symlink(board / "results", copy / "results")
        L.build(copy, plots=False)
    for name in ("README.md", "index.html"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert not (a / "plots").exists() and "plots/" not in (a / "README.md").read_text()


def test_index_escapes_every_string_from_results(board):
    board, _ = board
    html = (board / "index.html").read_text()
    assert SCRIPT not in html and "<script>alert" not in html
    assert html.count("<script") == 2 and html.count("</script>") == 2  # the data block and the page's script
    block = json_block(html)
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in block
    assert not set("<>&") & set(block)
    rows = [r for t in json.loads(block)["tables"] for r in t["rows"]]
    assert SCRIPT in [r["entry"] for r in rows]  # the name itself survives, as data
    assert "innerHTML" not in page.static("board.js")


def test_embed_json_escapes_markup_and_line_separators():
    data = {"a": "</script><!-- & \u2028\u2029 >", "n": float("nan"), "x": [1.5, None]}
    text = page.embed_json(data)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == {"a": data["a"], "n": None, "x": [1.5, None]}
    assert page.embed_json(data) == text


def test_page_allows_only_its_own_script_and_style():
    html = page.render({"title": "t"}, title="a <b> & c")
    assert "<title>a &lt;b&gt; &amp; c</title>" in html
    csp = html.split('http-equiv="Content-Security-Policy" content="', 1)[1].split('"', 1)[0]
    assert "default-src &#x27;none&#x27;" in csp and "script-src &#x27;sha256-" in csp


def test_build_an_empty_board_says_how_to_fill_it(tmp_path):
    with pytest.raises(GenbenchError, match="leaderboard submit"):
        L.build(tmp_path / "empty")


# -------------------------------------------------------------------------------------------------- submit

def test_submit_copies_the_result_and_its_samples_byte_for_byte(tmp_path):
    w = b"weights"
    src = run_dir(tmp_path / "runs", training_result(weights=w), weights=w)
    out = L.submit(src / "result.json", tmp_path / "board")
    assert out == tmp_path / "board" / "results" / src.name / "result.json"
    assert out.read_bytes() == (src / "result.json").read_bytes()
    assert (out.parent / "samples.png").read_bytes() == (src / "samples.png").read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.json", "samples.png"]  # no weights
    assert sorted(p.name for p in (tmp_path / "board" / "results").iterdir()) == [src.name]  # no temp folder


def _edited(result: dict, edit) -> dict:
    result = json.loads(json.dumps(result))
    edit(result)
    return result


def _set(path: str, value):
    def edit(r):
        *parents, last = path.split(".")
        for key in parents:
            r = r[key]
        if value is KeyError:
            del r[last]
        else:
            r[last] = value
    return edit


CASES = {
    "unknown protocol": (None, _set("protocol.name", "digits/vae/huge"), "unknown_protocol",
                         "unknown protocol digits/vae/huge@2"),
    "unknown protocol version": (None, _set("protocol.version", 9), "unknown_protocol",
                                 "knows up to digits/vae/smoke@2"),
    "superseded version": (None, _set("protocol.version", 1), "superseded",
                           "digits/vae/smoke@1 is superseded by digits/vae/smoke@2"),
    "protocol hash mismatch": (None, _set("protocol.hash", "sha256:0123456789abcdef"), "protocol_hash",
                               "is not the hash of digits/vae/smoke@2"),
    "dataset of another protocol": (None, _set("dataset", "mnist"), "inconsistent", "trains vae on digits"),
    "missing checkpoint checksum": (None, _set("provenance.checkpoint_sha256", None), "checksum",
                                    "provenance.checkpoint_sha256 is None"),
    "missing data hash": (None, _set("provenance.data_hash", {}), "checksum", "provenance.data_hash is {}"),
    "bad data hash": (None, _set("provenance.data_hash", {"train": "d"}), "checksum", "provenance.data_hash"),
    "metric missing": (None, _set("metrics.bpd_iwae", KeyError), "metrics",
                       "metric(s) bpd_iwae missing; the evaluation of digits/vae/smoke@2 writes bpd, bpd_iwae"),
    "fidelity metric missing": (FASHION, _set("metrics.recall[lenet-fashion-mnist]", KeyError), "metrics",
                                "recall[lenet-fashion-mnist] missing"),
    "fidelity metric of another sample count": (FASHION, _set("metrics.fid[lenet-fashion-mnist].n", 10), "metrics",
                                                ("metrics.fid[lenet-fashion-mnist].n is 10, but "
                                                 "fashion-mnist/vae/smoke@4 evaluates with n 200")),
    "run_id not a folder name": (None, _set("run_id", "../../etc"), "run_id", "cannot name a board folder"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_submit_rejects_a_training_run(tmp_path, case):
    protocol, edit, reason, message = CASES[case]
    w = b"weights"
    result = _edited(training_result(protocol or "digits/vae/smoke", weights=w), edit)
    src = run_dir(tmp_path / "runs", {**result, "run_id": "run"}, weights=w) / "result.json"
    src.write_text(json.dumps(result))
    with pytest.raises(L.SubmitError, match="^rejected .*" + re.escape(message)) as e:
        L.submit(src, tmp_path / "board")
    assert e.value.reason == reason
    assert not (tmp_path / "board" / "results").exists() or not any((tmp_path / "board" / "results").iterdir())


def test_submit_rejects_weights_that_are_not_the_evaluated_ones(tmp_path):
    src = run_dir(tmp_path / "runs", training_result(weights=b"evaluated"), weights=b"swapped afterwards")
    with pytest.raises(L.SubmitError, match="model.pt has sha256 sha256:[0-9a-f]{64}, but the result records") as e:
        L.submit(src, tmp_path / "board")
    assert e.value.reason == "weights"


SAMPLE_CASES = {
    "unknown extractor": (_set("protocol.name", "score/no-such-net"), "unknown_protocol",
                          "unknown protocol score/no-such-net@1"),
    "superseded feature pipeline": (_set("protocol.version", 0), "superseded",
                                    "score/lenet-fashion-mnist@0 is superseded by score/lenet-fashion-mnist@1"),
    "metric without extractor": (_set("metrics.fid[lenet-fashion-mnist].extractor", KeyError), "metrics",
                                 "metrics.fid[lenet-fashion-mnist] does not name its extractor"),
    "metric without reference": (_set("metrics.precision[lenet-fashion-mnist].reference", None), "metrics",
                                 "metrics.precision[lenet-fashion-mnist] does not name its reference"),
    "metric of another extractor": (_set("metrics.fid[lenet-fashion-mnist].extractor", "inception-v3-compat"),
                                    "metrics", "computed with extractor 'inception-v3-compat'"),
    "samples not hashed": (_set("provenance.data_hash", {"reference": sha("train")}), "checksum",
                           "with 'samples' set"),
}


@pytest.mark.parametrize("case", list(SAMPLE_CASES))
def test_submit_rejects_submitted_samples(tmp_path, case):
    edit, reason, message = SAMPLE_CASES[case]
    src = run_dir(tmp_path, _edited(samples_result("s"), edit), samples=False)
    with pytest.raises(L.SubmitError, match=re.escape(message)) as e:
        L.submit(src, tmp_path / "board")
    assert e.value.reason == reason


@pytest.mark.parametrize("text, what", [("{\"schema\": 1, \"kind\": ", "truncated JSON"),
                                        ("{'schema': 1}", "malformed JSON"),
                                        ("[1, 2]", "expected a JSON object"),
                                        ("{\"schema\": 1}", "missing key 'run_id'")])
def test_submit_rejects_a_malformed_file(tmp_path, text, what):
    (tmp_path / "result.json").write_text(text)
    with pytest.raises(L.SubmitError, match=re.escape(what)) as e:
        L.submit(tmp_path / "result.json", tmp_path / "board")
    assert e.value.reason == "malformed" and str(tmp_path / "result.json") in str(e.value)


def test_submit_rejects_a_samples_png_that_is_not_one(tmp_path):
    src = run_dir(tmp_path, samples_result("s"), samples=False)
    (src / "samples.png").write_bytes(b"<html>not an image</html>")
    with pytest.raises(L.SubmitError, match="samples.png is not a PNG file") as e:
        L.submit(src, tmp_path / "board")
    assert e.value.reason == "samples"


def test_submit_takes_the_mode_coverage_genbench_score_writes(tmp_path):
    """`genbench score --metrics modes` (the held-out real data entry of a board's mode-coverage column): its
    class KL is against the reference split's labels; an unknown metric is still refused."""
    r = samples_result("real")
    common = {"n": 1000, "extractor": "lenet-fashion-mnist", "extractor_sha256": sha("extractor"),
              "reference": "fashion-mnist:train", "num_modes": 10, "histogram": [100] * 10}
    r["metrics"]["classes_covered[lenet-fashion-mnist]"] = R.metric(10, higher_is_better=True, **common)
    r["metrics"]["class_kl[lenet-fashion-mnist]"] = R.metric(0.0002, higher_is_better=False, unit="nats", **common)
    L.submit(run_dir(tmp_path, r, samples=False), tmp_path / "board")
    assert (tmp_path / "board" / "results" / r["run_id"] / "result.json").is_file()
    r = samples_result("odd")
    r["metrics"]["bpd[lenet-fashion-mnist]"] = R.metric(3.0, higher_is_better=False, extractor="lenet-fashion-mnist")
    with pytest.raises(L.SubmitError, match="not a sample-quality metric"):
        L.submit(run_dir(tmp_path, r, samples=False), tmp_path / "board")


def test_the_same_weights_under_a_later_protocol_version_are_a_row_of_their_own(tmp_path):
    """fashion-mnist/vae/smoke@4 evaluates the weights of @2 with mode coverage and AIS added: a board that holds
    the @2 result (submitted while @2 was current) takes the @4 one beside it, and still refuses it twice."""
    board, w = tmp_path / "board", b"weights"
    v4 = training_result(FASHION, weights=w)
    old = registry.PROTOCOLS["fashion-mnist/vae/smoke@2"]
    added = ("classes_covered", "class_kl", "bpd_ais", "log_px_gauss_ais")
    v2 = {**v4, "run_id": "v2-run", "protocol": {**v4["protocol"], "version": 2, "hash": old.hash},
          "metrics": {k: m for k, m in v4["metrics"].items() if not k.startswith(added)}}
    (board / "results" / "v2-run").mkdir(parents=True)
    (board / "results" / "v2-run" / "result.json").write_text(json.dumps(v2))
    L.submit(run_dir(tmp_path / "a", v4, weights=w), board)
    with pytest.raises(L.SubmitError, match=f"already on the board as run {v4['run_id']}"):
        L.submit(run_dir(tmp_path / "b", {**v4, "run_id": "again"}, weights=w), board)


def test_submit_rejects_duplicates(tmp_path):
    board = tmp_path / "board"
    w = b"weights"
    first = training_result(weights=w)
    L.submit(run_dir(tmp_path / "a", first, weights=w), board)
    before = listing(board)

    again = run_dir(tmp_path / "b", first, weights=w)  # the same run, submitted twice
    with pytest.raises(L.SubmitError, match=f"run {first['run_id']} is already on the board") as e:
        L.submit(again, board)
    assert e.value.reason == "duplicate_run_id"

    renamed = run_dir(tmp_path / "c", {**first, "run_id": "renamed", "created": "2027-01-01T00:00:00+00:00"})
    with pytest.raises(L.SubmitError, match=f"the same result is already on the board as run {first['run_id']}") as e:
        L.submit(renamed, board)
    assert e.value.reason == "duplicate_content"

    reevaluated = _edited({**first, "run_id": "re-evaluated"}, _set("metrics.psnr.value", 21.5))
    with pytest.raises(L.SubmitError, match=f"the same weights are already on the board as run {first['run_id']}"):
        L.submit(run_dir(tmp_path / "d", reevaluated), board)

    s = samples_result("s")
    L.submit(run_dir(tmp_path / "e", s, samples=False), board)
    before = listing(board)
    rescored = _edited({**s, "run_id": "score-again"}, _set("metrics.fid[lenet-fashion-mnist].value", 1.0))
    with pytest.raises(L.SubmitError, match="the same samples, scored the same way, are already on the board"):
        L.submit(run_dir(tmp_path / "f", rescored, samples=False), board)
    assert listing(board) == before


def test_failed_submit_leaves_the_board_unchanged(tmp_path, monkeypatch):
    board = tmp_path / "board"
    w = b"first"
    L.submit(run_dir(tmp_path / "a", training_result(weights=w), weights=w), board)
    L.build(board, plots=False)
    before = listing(board)

    copies, real_copy = [], S._copy

    def failing_copy(src, dst):
        copies.append(dst.name)
        if len(copies) == 2:  # the result is in the temporary folder; samples.png fails
            raise OSError(28, "No space left on device")
        real_copy(src, dst)

    monkeypatch.setattr(S, "_copy", failing_copy)
    w = b"second"
    src = run_dir(tmp_path / "b", training_result(seed=1, weights=w), weights=w)
    with pytest.raises(L.SubmitError, match="No space left on device.*nothing was added") as e:
        L.submit(src, board)
    assert e.value.reason == "io" and copies == ["result.json", "samples.png"]
    assert listing(board) == before  # no new entry, no temporary folder left behind

    monkeypatch.setattr(S, "_copy", real_copy)
    assert L.submit(src, board).is_file()  # and the same submit succeeds once the disk has room


def test_cli_submit_build_and_report(tmp_path):
    """The commands only resolve options and call the functions above; a rejection is one clear line."""
    from click.testing import CliRunner

    from genbench.cli import main

    run = run_dir(tmp_path / "runs", training_result(bpd=2.25))
    cli = CliRunner()
    out = cli.invoke(main, ["leaderboard", "submit", str(run), "--board", str(tmp_path / "b")])
    assert out.exit_code == 0, out.output
    again = cli.invoke(main, ["leaderboard", "submit", str(run), "--board", str(tmp_path / "b")])
    assert again.exit_code == 1 and "Error:" in again.output and "Traceback" not in again.output
    built = cli.invoke(main, ["leaderboard", "build", str(tmp_path / "b"), "--no-plots"])
    assert built.exit_code == 0 and "index.html" in built.output
    assert "≤ 2.250" in (tmp_path / "b" / "README.md").read_text()
    report = cli.invoke(main, ["report", str(run), "--format", "csv"])
    assert report.exit_code == 0 and "2.25" in report.output
    cli.invoke(main, ["report", str(run), "--format", "latex", "--out", str(tmp_path / "t.tex")])
    assert "\\toprule" in (tmp_path / "t.tex").read_text()


def test_build_without_logs_or_snapshots_draws_no_curves(board):
    board, written = board
    names = [p.name for p in written]
    assert not [n for n in names if "over-training" in n or "training-losses" in n]
