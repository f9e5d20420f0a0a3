"""Feature extractors: inception-v3-compat against torch-fidelity, weights lookup and hashing, extract().

The real Inception weights are not on the test machines, so agreement is checked with seeded synthetic
weights written in the file layout torch-fidelity reads: the same file is loaded by torch-fidelity's
FeatureExtractorInceptionV3 (its strict load_state_dict also proves the key names and shapes) and by genbench.
No test touches the network: `features.download` is replaced by one that fails, and the torch hub cache is a
temporary folder.
"""

import dataclasses
import datetime
import hashlib
import os
import urllib.error

import numpy as np
import pytest
import torch
from torch import nn

from genbench import GenbenchError
from genbench.metrics import features, inception
from genbench.metrics.features import (
    BUILTIN,
    INCEPTION_ENV,
    INCEPTION_WEIGHTS,
    ExtractorSpec,
    WeightsMismatch,
    WeightsSource,
    WeightsUnavailable,
    extract,
    fetch_weights,
)

REL_TOL = 1e-4  # agreement with torch-fidelity, max relative error per feature vector


def tiny_extractor_spec(seed: int = 0) -> ExtractorSpec:
    """A closed-form stand-in extractor for tests: 4x4 average-pooled pixels through a fixed random map."""

    class Tiny(nn.Module):
        input_channels = 3

        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            self.proj = nn.Linear(3 * 4 * 4, 8)
            self.proj.weight.data = torch.randn(8, 48, generator=g) / 48**0.5
            self.proj.bias.data = torch.randn(8, generator=g)
            self.head = nn.Linear(8, 3)
            self.head.weight.data = torch.randn(3, 8, generator=g)
            self.head.bias.data.zero_()
            self.weights_sha256 = None
            self.seen_training: list[bool] = []

        def forward(self, x):
            self.seen_training.append(self.training)
            h = nn.functional.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1)  # (B, 48)
            f = torch.tanh(self.proj(h))  # (B, 8)
            return {"features": f, "logits": self.head(f)}

    return ExtractorSpec(
        name="tiny",
        description="test stand-in",
        feature_dim=8,
        num_classes=3,
        input="uint8 RGB, 4x4 average pool",
        build=lambda weights=None, device="cpu": Tiny().to(device).eval(),
    )


def _rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max over vectors of max|ours - ref| / max|ref|."""
    ours, ref = torch.as_tensor(ours).double(), torch.as_tensor(ref).double()
    return ((ours - ref).abs().amax(1) / ref.abs().amax(1)).max().item()


def _images(shape, seed=0):
    """Smooth random uint8 images so that the upsampled inputs look like images, not noise."""
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    low = torch.rand(n, c, max(h // 4, 2), max(w // 4, 2), generator=g)
    x = nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    x = x + 0.15 * torch.rand(n, c, h, w, generator=g)
    return (x / x.amax() * 255).round().to(torch.uint8)


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    """Every test: an empty private hub cache, no env override, and a download that fails."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(INCEPTION_ENV, raising=False)

    def no_network(url, dst, sha256):
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr(features, "download", no_network)
    return hub


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """(path, sha256 hex) of a synthetic inception-v3-compat weights file."""
    path = tmp_path_factory.mktemp("weights") / "synthetic-inception.pth"
    torch.save(inception.synthetic_state_dict(seed=0), path)
    return path, features.sha256_file(path)


@pytest.fixture(scope="module")
def source(synthetic):
    return dataclasses.replace(INCEPTION_WEIGHTS, sha256=synthetic[1])


@pytest.fixture(scope="module")
def ours(synthetic, source):
    return features.build_inception(weights=synthetic[0], source=source)


@pytest.fixture(scope="module")
def reference(synthetic):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3(
        "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(synthetic[0])
    )


# ---------------------------------------------------------------------------------------------------------------
# inception-v3-compat against torch-fidelity


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (299, 299), (28, 40)])
def test_resize_is_bit_identical_to_torch_fidelity(size):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = _images((2, 3, *size), seed=1).float()
    ref = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    assert torch.equal(inception.resize_bilinear_tf1(x, 299), ref)


def test_features_and_logits_agree_with_torch_fidelity(ours, reference):
    gray = _images((1, 1, 32, 32), seed=5).expand(-1, 3, -1, -1)  # grayscale repeated to 3 channels
    small = torch.cat([_images((1, 3, 32, 32), seed=2), gray])
    batches = [small, _images((1, 3, 64, 64), seed=3), _images((1, 3, 299, 299), seed=4)]
    seen = []
    for x in batches:
        with torch.no_grad():
            ref_features, ref_logits = reference(x)
        seen.append(ref_features)
        out = ours(x)
        assert out["features"].shape == (len(x), 2048) and out["logits"].shape == (len(x), 1008)
        assert out["features"].dtype == out["logits"].dtype == torch.float32
        assert _rel_err(out["features"], ref_features) < REL_TOL, tuple(x.shape)
        assert _rel_err(out["logits"], ref_logits) < REL_TOL, tuple(x.shape)
        # the synthetic weights give informative features, not a degenerate agreement on zeros
        assert (ref_features > 0).float().mean() > 0.3 and torch.isfinite(ref_logits).all()
    assert _rel_err(seen[0][:1], seen[0][1:]) > 0.01 and _rel_err(seen[1], seen[2]) > 0.01  # images differ: features too


def test_plain_path_computes_the_same_function(ours):
    """The fused oneDNN kernels and the plain conv2d + ReLU path (other devices) agree."""
    x = _images((2, 3, 32, 32), seed=6)
    fused = ours(x)["features"]
    try:
        plain = ours.use_fused(False)(x)["features"]
    finally:
        ours.use_fused(True)
    assert _rel_err(fused, plain) < 1e-5


def test_state_dict_check_names_the_file():
    state = inception.synthetic_state_dict(seed=1)
    del state["Mixed_6b.branch7x7_2.conv.weight"]
    state["Mixed_6b.extra"] = torch.zeros(1)
    with pytest.raises(GenbenchError, match=r"odd\.pth.*1 missing.*Mixed_6b\.branch7x7_2.*1 unexpected"):
        inception.InceptionV3Compat(state, source="odd.pth")


# ---------------------------------------------------------------------------------------------------------------
# Weights: hash, lookup order, offline message


def test_sha256_mismatch_is_rejected_before_loading(tmp_path):
    bogus = tmp_path / "bogus-inception.pth"
    bogus.write_bytes(b"not the inception weights")
    found = features.sha256_file(bogus)
    with pytest.raises(WeightsMismatch) as e:
        features.INCEPTION_V3_COMPAT.load(weights=bogus)
    message = str(e.value)
    assert str(bogus) in message and inception.INCEPTION_SHA256 in message and found in message


def test_expected_inception_hash_matches_the_url_prefix():
    prefix = inception.INCEPTION_URL.rsplit("-", 1)[1].split(".")[0]  # torch hub convention: name-<sha256 prefix>.pth
    assert len(inception.INCEPTION_SHA256) == 64 and inception.INCEPTION_SHA256.startswith(prefix)
    assert all(prefix in name for name in inception.INCEPTION_FILENAMES)


def test_lookup_order_argument_env_hub_download(tmp_path, monkeypatch, _offline):
    payload = b"weights bytes"
    url, sha = "https://example.invalid/toy-0123.pth", hashlib.sha256(payload).hexdigest()
    src = WeightsSource("toy", url, sha, ("toy-0123.pth", "old-toy.pth"), "GENBENCH_TOY")
    arg, env, hub = tmp_path / "arg.pth", tmp_path / "env.pth", _offline / "checkpoints" / "old-toy.pth"
    for p in (arg, env, hub):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(payload)
    monkeypatch.setenv("GENBENCH_TOY", str(env))
    assert fetch_weights(src, arg) == (arg, "sha256:" + src.sha256)
    assert fetch_weights(src)[0] == env
    monkeypatch.delenv("GENBENCH_TOY")
    assert fetch_weights(src)[0] == hub  # the second cache name is found too
    hub.unlink()

    calls = []

    def fake_download(url, dst, sha256):
        calls.append((url, dst, sha256))
        dst.write_bytes(payload)

    monkeypatch.setattr(features, "download", fake_download)
    assert fetch_weights(src)[0] == _offline / "checkpoints" / "toy-0123.pth"  # downloaded under the first name
    assert calls == [(src.url, _offline / "checkpoints" / "toy-0123.pth", src.sha256)]

    monkeypatch.setenv("GENBENCH_TOY", str(tmp_path / "missing.pth"))  # a set variable is never skipped silently
    with pytest.raises(WeightsUnavailable, match="GENBENCH_TOY.*missing.pth"):
        fetch_weights(src)
    with pytest.raises(WeightsUnavailable, match="nowhere.pth"):
        fetch_weights(src, tmp_path / "nowhere.pth")


def test_env_variable_builds_inception(synthetic, source, monkeypatch):
    monkeypatch.setattr(features, "INCEPTION_WEIGHTS", source)
    monkeypatch.setenv(INCEPTION_ENV, str(synthetic[0]))
    model = features.INCEPTION_V3_COMPAT.load()
    assert model.weights_sha256 == "sha256:" + synthetic[1]
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_hub_cache_is_found_and_a_wrong_hash_there_is_an_error(synthetic, source, monkeypatch, _offline):
    cached = _offline / "checkpoints" / inception.INCEPTION_FILENAMES[1]
    cached.parent.mkdir(parents=True)
    cached.symlink_to(synthetic[0])
    with pytest.raises(WeightsMismatch, match=str(cached)):  # the real expected hash: the synthetic file is refused
        features.INCEPTION_V3_COMPAT.load()
    monkeypatch.setattr(features, "INCEPTION_WEIGHTS", source)
    assert fetch_weights(features.INCEPTION_WEIGHTS) == (cached, "sha256:" + synthetic[1])


def test_offline_and_absent_says_where_it_looked_and_what_to_do(_offline):
    with pytest.raises(WeightsUnavailable) as e:
        features.INCEPTION_V3_COMPAT.load()
    message = str(e.value)
    for needle in [
        "--weights",
        INCEPTION_ENV,
        str(_offline / "checkpoints" / inception.INCEPTION_FILENAMES[0]),
        str(_offline / "checkpoints" / inception.INCEPTION_FILENAMES[1]),
        inception.INCEPTION_URL,
        inception.INCEPTION_SHA256,
        "network unreachable",
        "lenet-fashion-mnist",
    ]:
        assert needle in message, needle
    assert not (_offline / "checkpoints" / inception.INCEPTION_FILENAMES[0]).exists()


@pytest.mark.parametrize("name", ["vgg16", "clip-vit-b-32", "dinov2-vit-s-14"])
def test_pass_through_extractors_offline_error(name, _offline):
    spec = {s.name: s for s in BUILTIN}[name]
    with pytest.raises(WeightsUnavailable) as e:
        spec.load()
    message = str(e.value)
    assert "https://" in message and str(_offline / "checkpoints") in message and "lenet-fashion-mnist" in message


def test_pass_through_hash_mismatch(tmp_path):
    bogus = tmp_path / "vgg16.pth"
    bogus.write_bytes(b"not vgg")
    with pytest.raises(WeightsMismatch, match=features.VGG16_SHA256):
        {s.name: s for s in BUILTIN}["vgg16"].load(weights=bogus)


def test_pass_through_wraps_torch_fidelity_and_forces_weights_only_loads(tmp_path, monkeypatch):
    """The wrapper's contract, with a stand-in for torch-fidelity's class that loads as torch-fidelity does
    (torch.load(..., weights_only=False)): genbench forces tensor-only loading all the same."""
    from torch_fidelity import registry

    monkeypatch.delenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", raising=False)

    class StandIn(nn.Module):
        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__()
            state = torch.load(feature_extractor_weights_path, weights_only=False)
            self.scale = nn.Parameter(state["scale"])

        def forward(self, x):
            return (x.float().mean(dim=(2, 3)) * self.scale,)

    monkeypatch.setitem(registry.FEATURE_EXTRACTORS_REGISTRY, "vgg16", StandIn)
    spec = {s.name: s for s in BUILTIN}["vgg16"]
    path = tmp_path / "vgg16-standin.pth"
    torch.save({"scale": torch.tensor([1.0, 2.0, 3.0])}, path)
    monkeypatch.setattr(features, "VGG16_SHA256", features.sha256_file(path))
    model = spec.load(weights=path)
    assert model.weights_sha256 == "sha256:" + features.VGG16_SHA256 and not model.training
    out = extract(model, np.full((2, 1, 5, 5), 10, np.uint8), progress=False)  # gray -> RGB
    np.testing.assert_allclose(out["features"], [[10.0, 20.0, 30.0]] * 2)

    evil = tmp_path / "vgg16-with-objects.pth"  # a pickle holding more than tensors is refused
    torch.save({"scale": torch.ones(3), "payload": datetime.date(2020, 1, 1)}, evil)
    monkeypatch.setattr(features, "VGG16_SHA256", features.sha256_file(evil))
    with pytest.raises(WeightsUnavailable, match="Weights only load failed"):
        spec.load(weights=evil)
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ  # restored afterwards


def test_builtin_registry():
    names = [s.name for s in BUILTIN]
    assert len(names) == len(set(names)) and names[0] == "inception-v3-compat"
    assert {"vgg16", "clip-vit-b-32", "dinov2-vit-s-14"} <= set(names)
    spec = BUILTIN[0]
    assert (spec.feature_dim, spec.num_classes) == (2048, 1008)
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    assert set(names) <= set(FEATURE_EXTRACTORS_REGISTRY)


# ---------------------------------------------------------------------------------------------------------------
# extract()


def test_extract_is_batch_size_independent(ours):
    x = _images((2, 3, 32, 32), seed=7)
    one = extract(ours, x, batch_size=1, progress=False)
    all_ = extract(ours, x.numpy(), batch_size=2, progress=False)  # numpy input too
    assert set(one) == {"features", "logits"} and one["features"].dtype == np.float32
    for key in one:
        scale = np.abs(all_[key]).max()
        assert np.abs(one[key] - all_[key]).max() <= 1e-5 * scale, key


def test_extract_grayscale_is_repeated_to_rgb(ours):
    gray = _images((1, 1, 32, 32), seed=8)
    a = extract(ours, gray, progress=False)["features"]
    b = extract(ours, gray.expand(-1, 3, -1, -1).contiguous(), progress=False)["features"]
    np.testing.assert_array_equal(a, b)

    class OneChannel(nn.Module):  # declares no input_channels: gets the images as they are
        def forward(self, x):
            return {"features": x.float().flatten(1)[:, :4], "channels": torch.full((len(x), 1), float(x.shape[1]))}

    assert (extract(OneChannel(), gray, progress=False)["channels"] == 1).all()


def test_extract_puts_and_keeps_the_extractor_in_eval_mode():
    model = tiny_extractor_spec().load()
    model.train()
    x = _images((5, 1, 8, 8), seed=9)
    out = extract(model, x, batch_size=2, progress=False)
    assert not model.training and model.seen_training == [False, False, False]
    assert out["features"].shape == (5, 8) and out["logits"].shape == (5, 3)
    np.testing.assert_allclose(extract(model, x, batch_size=5, progress=False)["features"], out["features"], atol=1e-6)

    class Rogue(nn.Module):
        def forward(self, x):
            self.train()
            return {"features": x.float().flatten(1)}

    with pytest.raises(GenbenchError, match="training mode"):
        extract(Rogue(), x, progress=False)


def test_extract_rejects_bad_input():
    model = tiny_extractor_spec().load()
    with pytest.raises(GenbenchError, match="uint8"):
        extract(model, np.zeros((2, 3, 8, 8), np.float32), progress=False)
    with pytest.raises(GenbenchError, match="C = 1 or 3"):
        extract(model, np.zeros((2, 4, 8, 8), np.uint8), progress=False)
    with pytest.raises(GenbenchError, match="no images"):
        extract(model, np.zeros((0, 3, 8, 8), np.uint8), progress=False)
