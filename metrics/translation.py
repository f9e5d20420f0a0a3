"""Scores of unpaired image translation where the right answer is known: dSprites shapes turned into one another.

    from genbench.metrics import translation
    scores = translation.score_translations(translated, source_factors, target_shape=1)   # squares -> ellipses

A dSprites image is a pure function of its factors (shape, scale, orientation, position), so the image a
translation of a square into an ellipse should produce is the ellipse with the square's scale, orientation and
position (genbench.data.dsprites.render draws it, on the dataset's grid or off it). Each translated image is
scored against that ground truth: PSNR and SSIM (metrics/reconstruction.py, the settings of every other PSNR /
SSIM in genbench) and the IoU of the shape (pixels above 127 in both over pixels above 127 in either).

Rotational symmetry makes some directions one-to-many. A square at orientation theta is the same image as the
square at theta + 90 degrees (its outline maps onto itself), so a square carries no information about which of
the ellipses at theta and theta + 90 degrees it should become; an ellipse is its own image under 180 degrees, a
heart under no turn but a full one. So the valid targets of a source image are the target shape at theta +
2 pi k / s for k = 0..s-1, s the source shape's symmetry order (SYMMETRY: square 4, ellipse 2, heart 1), and
each translation is scored against the valid target closest to it in squared error; every score says so in its
definition and names how many targets it chose among. Ellipse -> square is one-to-one (the square at theta and
theta + 180 degrees is one image); square -> ellipse and ellipse -> heart are one-to-two.
"""

from __future__ import annotations

import math

import numpy as np

from genbench import GenbenchError

SHAPES = ("square", "ellipse", "heart")
DATASETS = ("dsprites", "dsprites-shapes")  # the datasets labelled by dSprites factor classes (N, 5)
SYMMETRY = (4, 2, 1)  # rotational symmetry order of each outline of genbench.data.dsprites (tests check it)
DEFINITION = ("against the ground-truth image of the target shape with the source's scale, position and "
              "orientation turned by 2 pi k / s (s = the source shape's rotational symmetry order), the one "
              "closest to the translation in squared error")


def valid_targets(source_factors: np.ndarray, target_shape: int) -> np.ndarray:
    """uint8 (n, s, 1, 64, 64): the s valid targets of each source (int (n, 5) dSprites factor classes, all of one
    shape), the target shape at the source's orientation + 2 pi k / s."""
    from genbench.data import dsprites

    factors = np.asarray(source_factors)
    if factors.ndim != 2 or factors.shape[1] != 5 or not len(factors):
        raise GenbenchError(f"source factors must be dSprites factor classes (n, 5), n >= 1; got {factors.shape}")
    shapes = np.unique(factors[:, 0])
    if len(shapes) != 1:
        raise GenbenchError(f"score one translation direction at a time: the sources hold shapes {shapes.tolist()}")
    source, target = int(shapes[0]), int(target_shape)
    if target == source or target not in range(len(SHAPES)):
        raise GenbenchError(f"target shape must be another of {SHAPES}, got {target_shape} for {SHAPES[source]}s")
    values = {name: dsprites.FACTOR_VALUES[name][factors[:, i]] for i, name in enumerate(dsprites.FACTOR_NAMES)}
    s = SYMMETRY[source]
    turns = values["orientation"][:, None] + 2 * math.pi * np.arange(s) / s        # (n, s)
    repeat = lambda v: np.repeat(v, s)  # noqa: E731
    images = dsprites.render(np.full(len(factors) * s, target), repeat(values["scale"]), turns.reshape(-1),
                             repeat(values["pos_x"]), repeat(values["pos_y"]))
    return images.reshape(len(factors), s, 1, dsprites.SIZE, dsprites.SIZE)


def closest(translated: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the valid target closest to each translation in squared error (n, 1, H, W), its index k (n,)); ties go to
    the lower k. translated uint8 (n, 1, H, W), targets uint8 (n, s, 1, H, W)."""
    err = ((targets.astype(np.float64) - translated[:, None].astype(np.float64)) ** 2).reshape(*targets.shape[:2],
                                                                                                 -1).sum(2)
    k = err.argmin(1)
    return targets[np.arange(len(targets)), k], k


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 (n,): |A and B| / |A or B| of the masks a > 127 and b > 127 per image (1 where both are empty)."""
    ma, mb = (np.asarray(x).reshape(len(x), -1) > 127 for x in (a, b))
    inter, union = (ma & mb).sum(1), (ma | mb).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def score_translations(translated: np.ndarray, source_factors: np.ndarray, *, target_shape: int,
                       targets: np.ndarray | None = None) -> dict:
    """PSNR, SSIM and IoU of translations (uint8 (n, 1, 64, 64)) of dSprites sources (factor classes (n, 5), one
    shape) into `target_shape`, each against its closest valid target: {"psnr": summary, "ssim": summary, "iou":
    summary, "targets": s, "chosen": counts of k, "definition": ...}, summaries as metrics.reconstruction's."""
    from genbench.metrics.reconstruction import reconstruction_metrics

    translated = np.asarray(translated)
    if translated.dtype != np.uint8 or translated.ndim != 4 or translated.shape[1] != 1 or \
            len(translated) != len(source_factors):
        raise GenbenchError(f"translations must be uint8 (n, 1, 64, 64), one per source ({len(source_factors)}); "
                            f"got {translated.dtype} {translated.shape}")
    targets = valid_targets(source_factors, target_shape) if targets is None else targets  # a caller's own render
    best, k = closest(translated, targets)
    summaries = reconstruction_metrics(real=best, fake=translated)
    overlap = iou(translated, best)
    return {"psnr": summaries["psnr"], "ssim": summaries["ssim"],
            "iou": {"mean": float(overlap.mean()), "std": float(overlap.std()), "n": len(overlap)},
            "targets": targets.shape[1], "chosen": np.bincount(k, minlength=targets.shape[1]).tolist(),
            "definition": DEFINITION}
