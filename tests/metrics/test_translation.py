"""The translation scores on constructed translations: exact ones (every valid target), shifted ones (against
brute force), the symmetries the valid targets rest on, and bad input."""

import math
import warnings

import numpy as np
import pytest

from genbench import GenbenchError
from genbench.data import dsprites
from genbench.metrics import translation


def sources(shape: int, n: int, seed: int = 0) -> np.ndarray:
    f = dsprites.DSpritesFactors().sample_factors(n, np.random.RandomState(seed))
    f[:, 0] = shape
    return f


def values(f: np.ndarray) -> dict:
    return {name: dsprites.FACTOR_VALUES[name][f[:, i]] for i, name in enumerate(dsprites.FACTOR_NAMES)}


def test_render_on_the_grid_is_the_dataset_and_the_symmetries_hold():
    f = sources(0, 30)
    f[:, 0] = np.arange(30) % 3
    v = values(f)
    args = (v["scale"], v["orientation"], v["pos_x"], v["pos_y"])
    assert np.array_equal(dsprites.render(f[:, 0], *args), dsprites.images_from_factors(f))
    for shape, order in enumerate(translation.SYMMETRY):
        s = np.full(30, shape)
        turned = dsprites.render(s, v["scale"], v["orientation"] + 2 * math.pi / order, v["pos_x"], v["pos_y"])
        assert np.array_equal(turned, dsprites.render(s, *args))  # its own image under 2 pi / order
    half = dsprites.render(np.full(30, 0), v["scale"], v["orientation"] + math.pi / 4, v["pos_x"], v["pos_y"])
    assert not np.array_equal(half, dsprites.render(np.full(30, 0), *args))  # 45 degrees is another square
    heart = dsprites.render(np.full(30, 2), v["scale"], v["orientation"] + math.pi, v["pos_x"], v["pos_y"])
    assert (heart != dsprites.render(np.full(30, 2), *args)).reshape(30, -1).any(1).all()


def test_every_valid_target_scores_as_an_exact_translation():
    f = sources(0, 12)                                                     # squares -> ellipses: two targets
    targets = translation.valid_targets(f, 1)
    assert targets.shape == (12, 4, 1, 64, 64)
    assert np.array_equal(targets[:, 0], targets[:, 2]) and np.array_equal(targets[:, 1], targets[:, 3])
    v = values(f)
    assert np.array_equal(targets[:, 0], dsprites.render(np.ones(12, int), v["scale"], v["orientation"], v["pos_x"],
                                                         v["pos_y"]))
    pick = np.arange(12) % 2                                               # half at theta, half at theta + 90
    translated = targets[np.arange(12), pick]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                    # identical pairs: PSNR inf, warned
        scores = translation.score_translations(translated, f, target_shape=1)
    assert scores["iou"]["mean"] == 1.0 and scores["ssim"]["mean"] == pytest.approx(1.0)
    assert scores["psnr"]["n_identical"] == 12 and scores["targets"] == 4 and scores["chosen"] == [6, 6, 0, 0]
    # ellipse -> square is one-to-one in images (the square at theta and theta + 180 degrees coincide)
    e = sources(1, 5, seed=1)
    assert translation.valid_targets(e, 0).shape[1] == 2
    assert np.array_equal(*translation.valid_targets(e, 0).transpose(1, 0, 2, 3, 4))


def test_a_shifted_translation_scores_as_brute_force_says():
    f = sources(1, 10, seed=2)                                             # ellipses -> hearts
    targets = translation.valid_targets(f, 2)
    truth = targets[:, 0]
    shifted = np.roll(truth, 2, axis=3)                                    # two pixels to the right
    scores = translation.score_translations(shifted, f, target_shape=2)
    best, _ = translation.closest(shifted, targets)
    a, b = shifted.reshape(10, -1) > 127, best.reshape(10, -1) > 127
    assert scores["iou"]["mean"] == pytest.approx(np.mean((a & b).sum(1) / (a | b).sum(1)))
    mse = ((shifted.astype(float) - best.astype(float)) ** 2).reshape(10, -1).mean(1)
    assert scores["psnr"]["mean"] == pytest.approx(np.mean(10 * np.log10(255 ** 2 / mse)))
    assert 0 < scores["iou"]["mean"] < 1 and scores["ssim"]["mean"] < 1
    # the closest target is the one of smaller squared error
    err = ((targets.astype(float) - shifted[:, None].astype(float)) ** 2).reshape(10, 2, -1).sum(2)
    assert np.array_equal(translation.closest(shifted, targets)[1], err.argmin(1))
    assert translation.iou(np.zeros((1, 1, 4, 4), np.uint8), np.zeros((1, 1, 4, 4), np.uint8)).tolist() == [1.0]


def test_bad_input_is_named():
    f = sources(0, 4)
    with pytest.raises(GenbenchError, match="one translation direction"):
        translation.valid_targets(np.concatenate([f, sources(1, 2)]), 2)
    with pytest.raises(GenbenchError, match="another of"):
        translation.valid_targets(f, 0)
    with pytest.raises(GenbenchError, match="uint8"):
        translation.score_translations(np.zeros((4, 1, 64, 64)), f, target_shape=1)
    with pytest.raises(GenbenchError, match="positions in"):
        dsprites.render(np.zeros(1, int), 1.0, 0.0, 1.5, 0.5)
