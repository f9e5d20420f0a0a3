"""dSprites end to end: `genbench run` of the beta-VAE and FactorVAE smoke protocols trains on the `subset` split,
scores the encoder mean with every disentanglement score, draws the latent traversals, and writes a result the
leaderboard accepts. Also the evaluation's seeded image subset and the traversal plot's numbers."""

import json
import shutil
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from genbench import GenbenchWarning, registry, results
from genbench.baselines import beta_vae
from genbench.data import ImageData
from genbench.metrics import disentanglement as dis
from genbench.metrics.likelihood import gaussian_kl_standard_normal
from genbench.runner import RunOptions, run
from genbench.traversals import VALUES, kl_per_dimension, save_traversals, traverse

SCORES = (*dis.FIXED_SAMPLE_SCORES, *dis.MODEL_SCORES)


def quiet(*_):
    pass


@pytest.fixture(scope="module", params=["beta-vae", "factor-vae"])
def smoke_run(request, tmp_path_factory):
    protocol = registry.protocol(f"dsprites/{request.param}/smoke")
    out = tmp_path_factory.mktemp(request.param)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenbenchWarning)  # the note that dSprites is rendered, not downloaded
        result = run(protocol, RunOptions(out=out, progress=False, download=False), echo=quiet)
    return protocol, out, result


def test_the_result_holds_every_score_and_how_it_was_made(smoke_run):
    protocol, out, result = smoke_run
    assert results.load(out) == result
    m = result["metrics"]
    assert set(m) == {"bpd", "bpd_iwae", "psnr", "ssim", *SCORES}
    for name in SCORES:
        assert m[name]["higher_is_better"] is True
        assert m[name]["value"] is None or 0 <= m[name]["value"] <= 1, (name, m[name]["value"])
    assert m["bpd"]["n"] == 256 and m["bpd"]["split"] == "dsprites:subset" and m["bpd_iwae"]["k"] == 8
    assert m["dci_disentanglement"]["estimator"] == "hist_gbt"
    how = result["disentanglement"]
    assert how["settings"] == dis.settings_dict(protocol.evaluation.disentanglement)
    assert how["version"] == dis.VERSION and how["representation"] == "encoder mean"
    assert how["ground_truth"]["factors"] == ["shape", "scale", "orientation", "pos_x", "pos_y"]
    assert how["ground_truth"]["observations"].startswith("procedural: genbench dsprites generator")
    assert result["provenance"]["data_hash"]["subset"].startswith("sha256:")


def test_smoke_numbers_are_pinned(smoke_run):
    """40 steps at lr 3e-3 on the subset (seed 0, torch 2.14, x86-64, 2 threads). bits/dim pinned +-2%: float
    reductions differ across CPUs and 40 steps at a high rate amplify them."""
    protocol, _, result = smoke_run
    m = result["metrics"]
    pinned = {"beta-vae": 0.2729, "factor-vae": 0.2682}[protocol.model]
    assert m["bpd"]["value"] == pytest.approx(pinned, rel=2e-2)
    # From 1 bit/dim untrained (logits 0); not yet below the independent-pixel model after 40 steps.
    assert result["references"]["independent_pixel_bpd"]["value"] == pytest.approx(0.2222, abs=1e-4)


def test_traversals_are_drawn_for_every_latent_dimension(smoke_run):
    protocol, out, result = smoke_run
    info = result["traversals"]
    D = protocol.model_config.latent_dim
    assert result["files"]["traversals"] == "traversals.png"
    assert sorted(info["order"]) == list(range(D)) and info["values"] == list(VALUES)
    kl = np.array(info["kl_per_dim_nats"])
    assert (kl >= 0).all() and (np.diff(kl[info["order"]]) <= 0).all()  # rows by decreasing KL
    with Image.open(out / "traversals.png") as image:
        assert image.format == "PNG" and image.height > D * 64


def test_the_leaderboard_accepts_the_run_and_wants_every_score(smoke_run, tmp_path):
    from genbench.report.leaderboard import SubmitError, submit

    _, out, result = smoke_run
    board = tmp_path / "board"
    (board / "results").mkdir(parents=True)
    submit(out, board)
    edited = tmp_path / "edited"
    shutil.copytree(out, edited)
    damaged = json.loads((edited / "result.json").read_text())
    del damaged["metrics"]["mig"]
    (edited / "result.json").write_text(json.dumps(damaged))
    other = tmp_path / "board2"
    (other / "results").mkdir(parents=True)
    with pytest.raises(SubmitError, match="mig missing"):
        submit(edited, other)


def test_evaluation_subset_is_a_seeded_uniform_sample():
    from genbench.evaluate import _evaluation_images

    images = np.arange(1000, dtype=np.uint8).reshape(1000, 1, 1, 1) % 251
    data = ImageData("toy", "train", images, None, "sha256:0", "test")
    np.testing.assert_array_equal(_evaluation_images(data, 10, None), images[:10])
    picked = _evaluation_images(data, 100, subset_seed=0)
    expected = np.sort(np.random.RandomState(0).choice(1000, 100, replace=False))
    np.testing.assert_array_equal(picked, images[expected])
    assert not np.array_equal(picked, _evaluation_images(data, 100, subset_seed=1))
    np.testing.assert_array_equal(_evaluation_images(data, None, subset_seed=0), images)  # all: no sampling


def test_traversal_rows_and_per_dimension_kl():
    torch.manual_seed(0)
    model = beta_vae.Model(beta_vae.PRESETS["smoke"], (1, 64, 64)).eval()
    images = (torch.rand(20, 1, 64, 64) > 0.9).to(torch.uint8).numpy() * 255
    order = np.array([2, 0, 3, 1])
    grid = traverse(model, images[3], values=(-1.0, 0.5), order=order)
    assert grid.shape == (4, 2, 1, 64, 64) and grid.dtype == np.uint8
    mu = model.encode(torch.from_numpy(images[3:4]))[0]
    for r, d in enumerate(order):
        for c, v in enumerate((-1.0, 0.5)):
            z = mu.clone()
            z[d] = v
            np.testing.assert_array_equal(grid[r, c], model.decode(z[None])[0].numpy())
    kl = kl_per_dimension(model, images, batch_size=7)  # batches of 7 do not change the mean
    with torch.no_grad():
        mu_all, logvar = model.posterior(torch.from_numpy(images))
        total = gaussian_kl_standard_normal(mu_all.double(), logvar.double()).mean()
    assert kl.shape == (4,) and kl.sum() == pytest.approx(float(total), rel=1e-4)  # float32 sums per dimension


def test_traversal_plot_leaves_the_callers_matplotlib_alone(tmp_path):
    import matplotlib

    backend = matplotlib.get_backend()
    torch.manual_seed(0)
    model = beta_vae.Model(beta_vae.PRESETS["smoke"], (1, 64, 64)).eval()
    images = (torch.rand(8, 1, 64, 64) > 0.9).to(torch.uint8).numpy() * 255
    info = save_traversals(model, images, tmp_path / "t.png", image_index=2)
    assert matplotlib.get_backend() == backend  # no backend switch, no pyplot figure left open
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()
    assert info["image_index"] == 2 and len(info["kl_per_dim_nats"]) == 4
    with Image.open(tmp_path / "t.png") as image:
        assert image.format == "PNG" and image.height > 4 * 64 and image.width > len(VALUES) * 64
