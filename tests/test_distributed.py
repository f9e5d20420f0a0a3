"""Data-parallel runs under torchrun, two CPU ranks on gloo: the sharding of a step's indices, NADE (a deterministic
step) reaching one process's weights within float reduction tolerance, rank 0 alone writing the run, and exact
resume of a 2-rank run killed by SIGKILL (continued through `genbench run --nproc 2`)."""

import json
import os
import subprocess
import sys

import pytest
import torch

from genbench import GenbenchError, distributed, results
from genbench.files import load_state

pytestmark = pytest.mark.usefixtures("fashion_mnist")  # tests/conftest.py: skips without it

RUN = ["-m", "genbench", "run", "--model", "nade", "--dataset", "fashion-mnist", "--protocol", "smoke",
       "--no-progress", "--offline"]


def genbench(out, *extra, ranks=1, env=None, port=29610):
    launcher = [sys.executable] if ranks == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                    "--nproc_per_node", str(ranks), "--master_port", str(port)]
    return subprocess.run(launcher + RUN + ["--out", str(out), *extra], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_each_rank_takes_its_slice_of_every_part_of_a_step():
    index = torch.arange(16)
    two = [distributed.shard(index, 2, distributed.World(rank, 2)) for rank in (0, 1)]
    # two parts of 8 (a translation batch's domain halves): each rank gets 4 of each
    assert two[0].tolist() == [0, 1, 2, 3, 8, 9, 10, 11] and two[1].tolist() == [4, 5, 6, 7, 12, 13, 14, 15]
    assert distributed.shard(index, 1, distributed.World()).tolist() == index.tolist()
    with pytest.raises(GenbenchError, match="cannot be split evenly over 3 ranks"):
        distributed.shard(index, 1, distributed.World(0, 3))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    proc = genbench(out, ranks=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_two_ranks_reach_one_processs_weights(two_ranks, tmp_path):
    out, proc = two_ranks
    # torchrun gives each rank one thread (OMP_NUM_THREADS=1): the single process runs with one too
    single = genbench(tmp_path / "one", env={"OMP_NUM_THREADS": "1"})
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = load_state(tmp_path / "one" / "model.pt"), load_state(out / "model.pt")
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=1e-5, atol=1e-6), name  # float reduction order only
    bpd = [results.load(p)["metrics"]["bpd"]["value"] for p in (tmp_path / "one", out)]
    assert bpd[0] == pytest.approx(bpd[1], rel=1e-7)
    # rank 0 speaks for the run: one protocol header, one result
    assert proc.stdout.count("fashion-mnist/nade/smoke@") == 1 and proc.stdout.count("Result written") == 1
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [2, 4, 6, 8, 10, 12]  # written once


def test_a_two_rank_run_killed_by_sigkill_resumes_exactly(two_ranks, tmp_path):
    out = tmp_path / "killed"
    proc = genbench(out, ranks=2, env={"GENBENCH_FAULT_KILL_AT_STEP": "6"}, port=29611)  # past the checkpoint at 4
    assert proc.returncode != 0
    assert json.loads((out / "checkpoint.json").read_text())["step"] == 4
    proc = genbench(out, "--resume", "--nproc", "2")  # the shortcut: the same command under torchrun
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Resuming from step 4/12" in proc.stdout
    ref = results.load(two_ranks[0])
    got = results.load(out)
    assert got["metrics"] == ref["metrics"]
    assert got["provenance"]["checkpoint_sha256"] == ref["provenance"]["checkpoint_sha256"]
