"""`genbench evaluate-representation`: a user's codes and factors in an .npz, checked, scored, written."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from genbench import GenbenchError, results
from genbench.cli import main
from genbench.metrics import disentanglement as dis
from genbench.represent import load_codes, result_for_codes

SIZES = (3, 6, 10)


def factors(n, seed):
    rng = np.random.RandomState(seed)
    return np.stack([rng.randint(s, size=n) for s in SIZES], 1)


@pytest.fixture
def codes_file(tmp_path):
    """A perfect code (each factor in one dimension, plus a noise dimension), with a held-out pair."""
    f, f_test = factors(600, 0), factors(300, 1)
    code = lambda y, seed: np.c_[y + 0.01 * np.random.RandomState(seed).randn(*y.shape),  # noqa: E731
                                 np.random.RandomState(seed + 9).randn(len(y))]
    path = tmp_path / "codes.npz"
    np.savez(path, codes=code(f, 2), factors=f, codes_test=code(f_test, 3), factors_test=f_test)
    return path


def test_scores_equal_the_metrics_on_the_same_arrays(codes_file):
    result = result_for_codes(codes_file)
    results.validate(result, source="test")
    z = np.load(codes_file)
    expected = dis.evaluate_fixed(z["codes"], z["factors"], z["codes_test"], z["factors_test"])
    assert set(result["metrics"]) == set(dis.FIXED_SAMPLE_SCORES)
    for name, rec in expected.items():
        assert result["metrics"][name]["value"] == pytest.approx(rec["value"], abs=1e-12)
    assert result["metrics"]["mig"]["value"] > 0.5 and result["metrics"]["dci_disentanglement"]["value"] > 0.8
    assert set(result["not_computed"]) == set(dis.MODEL_SCORES)
    assert result["kind"] == "submitted representation" and result["codes"]["n_test"] == 300


def test_cli_prints_and_writes_the_result(codes_file, tmp_path):
    out = tmp_path / "scores.json"
    run = CliRunner().invoke(main, ["evaluate-representation", str(codes_file), "--json", str(out)])
    assert run.exit_code == 0, run.output
    assert "mig" in run.output and "they need the model" in run.output
    assert results.load(out)["metrics"].keys() == json.loads(out.read_text())["metrics"].keys()


@pytest.mark.parametrize("arrays, message", [
    (dict(codes=np.zeros((200, 2))), "missing array"),
    (dict(codes=np.zeros((200, 2)), factors=np.zeros((199, 1), int)), "has 200 rows but factors has 199"),
    (dict(codes=np.full((200, 2), np.nan), factors=np.zeros((200, 1), int)), "NaN or inf in 200 rows"),
    (dict(codes=np.zeros((200, 2)), factors=np.full((200, 1), 0.5)), "integer classes"),
    (dict(codes=np.zeros((50, 2)), factors=np.zeros((50, 1), int)), "at least 100"),
    (dict(codes=np.zeros((200, 2)), factors=np.zeros((200, 1), int), codes_test=np.zeros((10, 2))),
     "come together"),
    (dict(codes=np.zeros((200, 2)), factors=np.zeros((200, 1), int), codes_test=np.zeros((100, 3)),
          factors_test=np.zeros((100, 1), int)), "codes has 2 dimensions but codes_test has 3"),
])
def test_bad_files_name_the_problem(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(GenbenchError, match=message):
        load_codes(path)


def test_pickled_arrays_are_never_loaded(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, codes=np.array([{"a": 1}] * 200, dtype=object), factors=np.zeros((200, 1), int))
    with pytest.raises(GenbenchError, match="never loads"):
        load_codes(path)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(GenbenchError, match="not a readable .npz"):
        load_codes(tmp_path / "broken.npz")
