"""`genbench score` and the reference-statistics cache, end to end with a stand-in extractor."""

import dataclasses
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from genbench import GenbenchError, GenbenchWarning, reference, registry, results
from genbench.cli import main
from genbench.data.base import content_hash
from genbench.metrics import fidelity
from genbench.metrics.features import extract
from genbench.score import ScoreSettings, score


@pytest.fixture
def samples_dir(tmp_path):
    """64 noisy copies of real digits test images, as PNGs in nested folders."""
    real = registry.dataset("digits").load("test").images
    rng = np.random.default_rng(0)
    noisy = np.clip(real[:64].astype(int) + rng.integers(-40, 41, real[:64].shape), 0, 255).astype(np.uint8)
    for i, img in enumerate(noisy):
        (tmp_path / "s" / f"part{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0]).save(tmp_path / "s" / f"part{i % 2}" / f"{i:03d}.png")
    return tmp_path / "s"


def settings(**kw):
    kw.setdefault("extractor", "tiny-test")
    kw.setdefault("progress", False)
    kw.setdefault("kid_subset_size", 50)
    kw.setdefault("kid_subsets", 20)
    return ScoreSettings(**kw)


def features_of(images, spec):
    return extract(spec.load(), images, batch_size=32, progress=False)


def test_score_matches_the_metrics_on_the_same_features(samples_dir, tiny_extractor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenbenchWarning)
        result = score(samples_dir, "digits:test", settings())
    results.validate(result, source="score")
    assert result["kind"] == "submitted samples"
    assert set(result["metrics"]) == {f"{m}[tiny-test]" for m in ("fid", "kid", "is", "precision", "recall")}

    from genbench.samples import load_samples
    fake = features_of(load_samples(samples_dir, progress=False).images, tiny_extractor)
    real = features_of(registry.dataset("digits").load("test").images, tiny_extractor)["features"]
    fid = result["metrics"]["fid[tiny-test]"]
    assert fid["value"] == pytest.approx(fidelity.fid(real=real, fake=fake["features"]), rel=1e-9)
    assert fid["n"] == 64 and fid["reference"] == "digits:test" and fid["reference_n"] == 297
    assert fid["extractor"] == "tiny-test" and not fid["higher_is_better"]
    p, r = fidelity.precision_recall(real=real, fake=fake["features"], k=3)
    assert result["metrics"]["precision[tiny-test]"]["value"] == pytest.approx(p)
    assert result["metrics"]["recall[tiny-test]"]["value"] == pytest.approx(r)
    assert result["metrics"]["is[tiny-test]"]["value"] == pytest.approx(
        fidelity.inception_score(fake["logits"], splits=10, seed=0)[0])


def test_density_and_coverage_on_request(samples_dir, tiny_extractor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenbenchWarning)
        result = score(samples_dir, "digits:test", settings(metrics=("dc",)))
    from genbench.samples import load_samples
    fake = features_of(load_samples(samples_dir, progress=False).images, tiny_extractor)["features"]
    real = features_of(registry.dataset("digits").load("test").images, tiny_extractor)["features"]
    density, coverage = fidelity.density_coverage(real=real, fake=fake, k=5)
    assert set(result["metrics"]) == {"density[tiny-test]", "coverage[tiny-test]"}
    assert result["metrics"]["density[tiny-test]"]["value"] == pytest.approx(density)
    assert result["metrics"]["coverage[tiny-test]"]["value"] == pytest.approx(coverage)
    assert result["metrics"]["coverage[tiny-test]"]["k"] == 5


def test_reference_cache_is_reused_and_keyed(tiny_extractor, monkeypatch):
    images = registry.dataset("digits").load("test").images
    module = tiny_extractor.load()
    first = reference.from_images(images, label="digits:test", data_hash="sha256:a", extractor=tiny_extractor,
                                  module=module, progress=False)
    assert first.path.exists()

    calls = []
    real_extract = extract
    monkeypatch.setattr("genbench.metrics.features.extract", lambda *a, **k: calls.append(1) or real_extract(*a, **k))
    again = reference.from_images(images, label="digits:test", data_hash="sha256:a", extractor=tiny_extractor,
                                  module=module, progress=False)
    assert calls == [] and np.array_equal(again.mu, first.mu) and np.array_equal(again.features, first.features)

    other = reference.from_images(images, label="digits:test", data_hash="sha256:b", extractor=tiny_extractor,
                                  module=module, progress=False)  # another data hash: another key, recomputed
    assert calls == [1] and other.path != first.path

    first.path.write_bytes(b"damaged")  # a damaged cache file is recomputed, not trusted
    reference.from_images(images, label="digits:test", data_hash="sha256:a", extractor=tiny_extractor,
                          module=module, progress=False)
    assert calls == [1, 1]


def test_a_statistics_file_scores_fid_only(samples_dir, tiny_extractor, tmp_path):
    real = features_of(registry.dataset("digits").load("test").images, tiny_extractor)["features"]
    mu, sigma = fidelity.gaussian_stats(real)
    np.savez(tmp_path / "stats.npz", mu=mu, sigma=sigma)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenbenchWarning)
        result = score(samples_dir, str(tmp_path / "stats.npz"), settings(metrics=("fid",)))
        with pytest.raises(GenbenchError, match="only Fréchet statistics"):
            score(samples_dir, str(tmp_path / "stats.npz"), settings(metrics=("fid", "kid")))
    assert result["metrics"]["fid[tiny-test]"]["reference"] == str(tmp_path / "stats.npz")
    np.savez(tmp_path / "bad.npz", mu=mu, sigma=sigma[:3])
    with pytest.raises(GenbenchError, match="expected \\(D,\\) and \\(D, D\\)"):
        reference.from_statistics_file(tmp_path / "bad.npz")


def test_errors_name_the_problem(samples_dir, tiny_extractor):
    with pytest.raises(GenbenchError, match="unknown metrics \\['fdi'\\]"):
        score(samples_dir, "digits:test", settings(metrics=("fdi",)))
    with pytest.raises(GenbenchError, match="not of the form DATASET:SPLIT"):
        score(samples_dir, "nowhere", settings())
    with pytest.raises(GenbenchError, match="unknown extractor 'incepton-v3-compat'"):
        score(samples_dir, "digits:test", settings(extractor="incepton-v3-compat"))


def test_too_few_samples_warn(samples_dir, tiny_extractor):
    with pytest.warns(GenbenchWarning, match="fewer than the feature dimension 16"):
        score(samples_dir, "digits:test", settings(metrics=("fid",), num_samples=10))


def test_cli_score_writes_a_result_and_stats_caches(samples_dir, tiny_extractor, tmp_path):
    out = tmp_path / "r.json"
    run = CliRunner().invoke(main, ["score", str(samples_dir), "--ref", "digits:test", "--extractor", "tiny-test",
                                    "--metrics", "fid,prc", "--json", str(out), "--no-progress"])
    assert run.exit_code == 0, run.output
    assert "fid[tiny-test]" in run.output and "recall[tiny-test]" in run.output
    assert results.load(out)["metrics"]["fid[tiny-test]"]["n"] == 64
    stats = CliRunner().invoke(main, ["stats", "digits:train", "--extractor", "tiny-test", "--no-progress"])
    assert stats.exit_code == 0 and "1500 images, 16-d tiny-test features" in stats.output
    help_text = CliRunner().invoke(main, ["score", "--help"]).output
    assert "Sample files:" in help_text and "--ref" in help_text


def test_agrees_with_torch_fidelity_end_to_end(samples_dir, tiny_extractor):
    """The stand-in registered with torch-fidelity too; both tools score the same images."""
    import torch
    import torch_fidelity
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    from genbench.samples import load_samples

    net = tiny_extractor.load()

    class Standin(FeatureExtractorBase):
        def __init__(self, name, features_list, **kwargs):
            super().__init__(name, features_list)
            self.net = net

        @staticmethod
        def get_provided_features_list():
            return ("features", "logits")

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"isc": "logits"}.get(metric, "features")

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return None

        def forward(self, x):
            out = self.net(x)
            return tuple(out[name] for name in self.features_list)

    if "genbench-standin" not in torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor("genbench-standin", Standin)

    class Images(torch.utils.data.Dataset):
        def __init__(self, images):
            self.images = torch.from_numpy(np.array(images)).expand(-1, 3, -1, -1)  # uint8 (N, 3, H, W)

        def __len__(self):
            return len(self.images)

        def __getitem__(self, i):
            return self.images[i]

    fake = load_samples(samples_dir, progress=False).images
    real = registry.dataset("digits").load("test").images
    theirs = torch_fidelity.calculate_metrics(
        input1=Images(fake), input2=Images(real), feature_extractor="genbench-standin", fid=True, kid=True,
        isc=True, prc=True, kid_subsets=20, kid_subset_size=50, isc_splits=10, prc_neighborhood=3, cuda=False,
        cache=False, verbose=False, rng_seed=0)  # genbench seeds subsets with 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenbenchWarning)
        ours = score(samples_dir, "digits:test", settings())["metrics"]
    assert ours["fid[tiny-test]"]["value"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)
    # torch-fidelity takes KID's kernel sums over float32 features, genbench over float64: ~2e-6 apart
    assert ours["kid[tiny-test]"]["value"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-5)
    assert ours["kid[tiny-test]"]["std"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-5)
    assert ours["is[tiny-test]"]["value"] == pytest.approx(theirs["inception_score_mean"], rel=1e-6)
    assert ours["precision[tiny-test]"]["value"] == pytest.approx(theirs["precision"], rel=1e-6)  # theirs: float32
    assert ours["recall[tiny-test]"]["value"] == pytest.approx(theirs["recall"], rel=1e-6)


def test_a_dataset_split_scores_as_real_held_out_samples(tiny_extractor):
    """DATASET:SPLIT as SAMPLES scores real images like samples: the floor of a model's scores."""
    settings = ScoreSettings(metrics=("fid", "prc"), extractor="tiny-test", progress=False)
    same = score("digits:test", "digits:test", settings)
    assert same["metrics"]["fid[tiny-test]"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert same["metrics"]["precision[tiny-test]"]["value"] == 1.0
    assert same["model"] == "held-out real data (digits:test)" and same["samples"]["n"] == 297
    assert same["samples"]["real_data"] is True

    held_out = score("digits:test", "digits:train", dataclasses.replace(settings, num_samples=200))
    test = registry.dataset("digits").load("test").images[:200]
    real = features_of(registry.dataset("digits").load("train").images, tiny_extractor)["features"]
    expected = fidelity.fid(real=real, fake=features_of(test, tiny_extractor)["features"])
    assert held_out["metrics"]["fid[tiny-test]"]["value"] == pytest.approx(expected, rel=1e-9)
    assert held_out["provenance"]["data_hash"]["samples"] == content_hash(np.ascontiguousarray(test), None)
    with pytest.raises(GenbenchError, match="holds 297 images"):
        score("digits:test", "digits:train", dataclasses.replace(settings, num_samples=300))


def test_a_colour_file_among_grayscale_samples_is_named_for_a_grayscale_extractor(tmp_path):
    rng = np.random.default_rng(0)
    for folder in ("s", "ref"):
        for i in range(12):
            (tmp_path / folder).mkdir(exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (28, 28), np.uint8)).save(tmp_path / folder / f"{i:02d}.png")
    # a gray picture saved as a CMYK JPEG is read as grayscale and scored
    cmyk = np.dstack([np.zeros((28, 28, 3), np.uint8), rng.integers(0, 256, (28, 28, 1), np.uint8)])
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "s" / "99.jpg", quality=95)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenbenchWarning)
        result = score(tmp_path / "s", str(tmp_path / "ref"), settings(extractor="lenet-fashion-mnist",
                                                                       metrics=("fid",)))
    assert result["samples"]["n"] == 13
    # a real colour image among them: refused with its name, not with a tensor shape
    Image.fromarray(rng.integers(0, 256, (28, 28, 3), np.uint8)).save(tmp_path / "s" / "05-colour.png")
    with pytest.raises(GenbenchError, match=r"05-colour\.png is in colour"):
        score(tmp_path / "s", str(tmp_path / "ref"), settings(extractor="lenet-fashion-mnist", metrics=("fid",)))


def test_mode_coverage_on_request_agrees_with_the_evaluation_step(samples_dir, tiny_extractor, tmp_path):
    """`--metrics modes` classifies the samples by the extractor's logits, as a run's mode-coverage step does
    with its own pass (genbench.metrics.modes): against the uniform distribution over the extractor's classes
    where the extractor does not classify the reference's dataset."""
    from genbench.metrics.modes import evaluate_modes
    from genbench.samples import load_samples

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenbenchWarning)
        result = score(samples_dir, "digits:test", settings(metrics=("modes",)))
    assert set(result["metrics"]) == {"classes_covered[tiny-test]", "class_kl[tiny-test]"}
    expected = evaluate_modes(tiny_extractor.load(), load_samples(samples_dir, progress=False).images,
                              extractor="tiny-test", dataset_classes=tiny_extractor.num_classes)
    for name, record in expected.items():
        got = result["metrics"][name]
        assert got["value"] == pytest.approx(record["value"], rel=1e-12) and got["histogram"] == record["histogram"]
        assert got["reference"] == "uniform" and got["n"] == 64 and got["num_modes"] == 5


def test_mode_coverage_of_held_out_images_against_the_splits_labels(fashion_mnist):
    """lenet-fashion-mnist classifies Fashion-MNIST: the KL is from the reference split's label frequencies, and
    held-out real images cover every class with a KL near 0 (the reference entry of a board's column)."""
    from genbench.metrics.modes import evaluate_modes

    got = score("fashion-mnist:test", "fashion-mnist:test", ScoreSettings(
        metrics=("modes",), extractor="lenet-fashion-mnist", num_samples=2000, progress=False))["metrics"]
    data = registry.dataset("fashion-mnist").load("test", download=False, progress=False)
    expected = evaluate_modes(registry.EXTRACTORS["lenet-fashion-mnist"].load(), data.images[:2000],
                              extractor="lenet-fashion-mnist", reference=data)
    for name, record in expected.items():
        assert got[name]["value"] == pytest.approx(record["value"], rel=1e-12)
        assert got[name]["histogram"] == record["histogram"] and got[name]["reference"] == "fashion-mnist:test"
    assert got["classes_covered[lenet-fashion-mnist]"]["value"] == 10
    assert 0 < got["class_kl[lenet-fashion-mnist]"]["value"] < 0.02
