"""Sharded evaluation across processes (genbench.distributed), two CPU ranks on gloo against one process: whole
batches per rank, rows gathered in order and cut to exactly N (odd N, unequal and empty shares), Fréchet
statistics merged in float64, per-batch sample streams drawn in shares, and `genbench run` evaluation and
`genbench score --nproc 2` giving one process's metrics.

Under torchrun every rank has one thread (OMP_NUM_THREADS=1), so the one-process side runs with one too: the
features are then the same bits, and the metrics equal (FID within float64 rounding of the merge)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genbench import GenbenchError, distributed, results
from genbench.evalkit import draw

WORKER = str(Path(__file__).with_name("ddp_worker.py"))
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def torchrun(*args, ranks=2, port=29620):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_port",
           str(port), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.mark.parametrize("n,batch,ranks", [(101, 8, 2), (100, 100, 2), (7, 2, 3), (5, 8, 3), (64, 8, 4)])
def test_batch_shares_partition_the_items_in_whole_batches(n, batch, ranks):
    shares = [distributed.batch_share(n, batch, distributed.World(r, ranks)) for r in range(ranks)]
    assert shares[0].start == 0 and shares[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(shares, shares[1:]))  # contiguous, in rank order
    assert all(s.start % batch == 0 for s in shares)  # each begins a batch of the one process
    sizes = [s.stop - s.start for s in shares]
    batches = [-(-size // batch) for size in sizes]
    assert max(batches) - min(batches) <= 1  # as even as whole batches allow
    assert distributed.batch_share(n, batch, distributed.World()) == slice(0, n)


def test_101_in_batches_of_8_split_48_and_53():
    assert [distributed.batch_share(101, 8, distributed.World(r, 2)) for r in (0, 1)] == [slice(0, 48),
                                                                                         slice(48, 101)]


class _Noise(torch.nn.Module):
    """A stand-in sampler: each image's pixels drawn from the generator it is given."""

    def sample(self, n, *, generator, labels=None):
        x = torch.randint(0, 256, (n, 1, 2, 2), generator=generator, dtype=torch.uint8)
        if labels is not None:
            x[:, 0, 0, 0] = labels.to(torch.uint8)
        return x


def test_per_batch_streams_draw_any_share_alone_as_the_whole_draws_it():
    model, g = _Noise(), lambda: torch.Generator().manual_seed(5)
    labels = torch.arange(37) % 10
    whole = draw(model, 37, 8, g(), labels=labels, streams="per-batch")
    for ranks in (2, 3):
        parts = [draw(model, 37, 8, g(), labels=labels, streams="per-batch",
                      share=distributed.batch_share(37, 8, distributed.World(r, ranks))) for r in range(ranks)]
        assert torch.equal(torch.cat(parts), whole)
    assert torch.equal(whole[:, 0, 0, 0], labels.to(torch.uint8))
    # one stream through all batches is what every existing protocol draws: unchanged, and not drawn in shares
    sequential = draw(model, 37, 8, g(), labels=labels)
    gen = g()
    assert torch.equal(sequential, torch.cat([model.sample(min(8, 37 - i), generator=gen, labels=labels[i:i + 8])
                                              for i in range(0, 37, 8)]))
    assert not torch.equal(sequential, whole)
    with pytest.raises(GenbenchError, match="only with per-batch sample streams"):
        draw(model, 37, 8, g(), share=slice(8, 16))
    with pytest.raises(GenbenchError, match="unknown sample_streams"):
        draw(model, 37, 8, g(), streams="per-image")


def test_rows_gathered_in_order_and_gaussian_statistics_merged_exactly(tmp_path):
    torchrun(WORKER, "collectives", str(tmp_path))
    got = np.load(tmp_path / "out.npz")
    assert np.array_equal(got["gathered"], got["everyone"])  # 3 + 5 rows, no padding left
    assert got["images"].shape == (4, 1, 2, 2) and (got["images"] == 8).all()  # rank 0 held none
    x = got["everyone"]
    assert int(got["n"]) == 8
    np.testing.assert_allclose(got["mu"], x.mean(0), rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(got["sigma"], np.cov(x, rowvar=False), rtol=1e-12, atol=1e-12)


def test_sharded_features_are_one_processs_for_an_odd_n(tmp_path, fashion_mnist):
    torchrun(WORKER, "summarize", str(tmp_path), "101", port=29621)
    got = np.load(tmp_path / "out.npz")
    assert int(got["n"]) == 101 and got["sharded_features"].shape == (101, got["one_features"].shape[1])
    assert np.array_equal(got["sharded_features"], got["one_features"])  # the same batches, the same bits
    assert np.array_equal(got["sharded_logits"], got["one_logits"])
    np.testing.assert_allclose(got["sharded_mu"], got["one_mu"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["sharded_sigma"], got["one_sigma"], rtol=1e-10, atol=1e-12)


def _metrics(path):
    return results.load(path)["metrics"]


def _assert_same_metrics(one, sharded, fid_key):
    assert one.keys() == sharded.keys()
    for name in one:
        a, b = one[name]["value"], sharded[name]["value"]
        if name.startswith("fid"):
            assert b == pytest.approx(a, rel=1e-9), name  # merged Fréchet statistics: float64 rounding
        else:
            assert a == b, name  # computed from the same gathered features
    assert fid_key in one


@pytest.fixture(scope="module")
def nade_run(tmp_path_factory, fashion_mnist):
    out = tmp_path_factory.mktemp("nade") / "run"
    proc = subprocess.run([sys.executable, "-m", "genbench", "run", "--model", "nade", "--dataset", "fashion-mnist",
                           "--protocol", "smoke", "--no-progress", "--offline", "--out", str(out)],
                          capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_two_ranks_evaluate_a_run_as_one_process_does(nade_run, tmp_path):
    one = subprocess.run([sys.executable, WORKER, "evaluate", str(tmp_path / "one"), str(nade_run)],
                         capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    assert one.returncode == 0, one.stderr[-3000:]
    proc = torchrun(WORKER, "evaluate", str(tmp_path / "two"), str(nade_run), port=29622)
    assert proc.stdout.count("Result written") == 1  # rank 0 writes
    a, b = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    _assert_same_metrics(a, b, "fid[lenet-fashion-mnist]")
    assert a["fid[lenet-fashion-mnist]"]["n"] == b["fid[lenet-fashion-mnist]"]["n"] == 101
    samples = [np.load(p / "samples.npz")["images"] for p in (tmp_path / "one", tmp_path / "two")]
    assert samples[0].shape[0] == 101 and np.array_equal(samples[0], samples[1])  # drawn in shares
    compute = results.load(tmp_path / "two")["compute"]
    assert compute["processes"] == 2 and "processes" not in results.load(tmp_path / "one")["compute"]


def test_score_nproc_2_gives_one_processs_scores(tmp_path, fashion_mnist):
    from genbench import registry

    images = registry.dataset("fashion-mnist").load("test", download=False, progress=False).images[1000:1101]
    np.save(tmp_path / "samples.npy", np.ascontiguousarray(images))
    args = ["-m", "genbench", "score", str(tmp_path / "samples.npy"), "--ref", "fashion-mnist:test",
            "--extractor", "lenet-fashion-mnist", "--metrics", "fid,kid,is,prc,dc", "--batch-size", "16",
            "--no-progress"]
    one = subprocess.run([sys.executable, *args, "--json", str(tmp_path / "one.json")], capture_output=True,
                         text=True, env={**os.environ, **ONE_THREAD})
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, *args, "--json", str(tmp_path / "two.json"), "--nproc", "2"],
                         capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("Result written") == 1
    a, b = (results.load(tmp_path / f"{who}.json") for who in ("one", "two"))
    _assert_same_metrics(a["metrics"], b["metrics"], "fid[lenet-fashion-mnist]")
    assert b["metrics"]["kid[lenet-fashion-mnist]"]["n"] == 101 and b["compute"]["processes"] == 2
