"""Scores of class-conditional samples (genbench.metrics.conditional): the label plan's exact proportions,
intra-FID against a per-class loop over the unconditional FID, and the records on a constructed classifier."""

import numpy as np
import pytest
import torch

from genbench import GenbenchError
from genbench.metrics import conditional
from genbench.metrics.fidelity import fid


def test_the_label_plan_follows_the_training_proportions_by_largest_remainders():
    train = np.repeat(np.arange(3), [50, 30, 20])  # 0.5, 0.3, 0.2
    plan = conditional.label_plan(train, 7, num_classes=3, seed=0)
    # 3.5, 2.1, 1.4 -> floors 3, 2, 1 and one more for the largest remainder (class 0's 0.5)
    assert np.bincount(plan, minlength=3).tolist() == [4, 2, 1]
    balanced = conditional.label_plan(np.arange(60) % 10, 10_000, num_classes=10, seed=0)
    assert np.bincount(balanced).tolist() == [1000] * 10
    assert np.bincount(balanced[:1000], minlength=10).min() > 70  # shuffled: any prefix is mixed
    again = conditional.label_plan(np.arange(60) % 10, 10_000, num_classes=10, seed=0)
    other = conditional.label_plan(np.arange(60) % 10, 10_000, num_classes=10, seed=1)
    assert np.array_equal(balanced, again) and not np.array_equal(balanced, other)
    assert np.bincount(conditional.label_plan(np.array([0, 1]), 3, num_classes=4, seed=0), minlength=4)[2:].sum() == 0


def test_intra_fid_is_the_mean_of_the_per_class_fids():
    rng = np.random.default_rng(0)
    real_labels, fake_labels = rng.integers(0, 3, 600), rng.integers(0, 3, 450)
    real = rng.normal(size=(600, 4)) + real_labels[:, None]
    fake = rng.normal(size=(450, 4)) * 1.2 + fake_labels[:, None] * 0.8
    mean, per_class = conditional.intra_fid(real=real, real_labels=real_labels, fake=fake, fake_labels=fake_labels,
                                            num_classes=3)
    expected = [fid(real=real[real_labels == c], fake=fake[fake_labels == c]) for c in range(3)]
    assert per_class == pytest.approx(expected, rel=1e-12) and mean == pytest.approx(np.mean(expected), rel=1e-12)
    # a class without two fake samples is left out of the mean, and said so
    fake_labels[fake_labels == 2] = 1
    fake_labels[0] = 2
    mean, per_class = conditional.intra_fid(real=real, real_labels=real_labels, fake=fake, fake_labels=fake_labels,
                                            num_classes=3)
    assert per_class[2] is None and mean == pytest.approx(np.mean(per_class[:2]))


class Classifier(torch.nn.Module):
    """Reads the class from the first pixel (value 20 c): features are the pixel values, logits one-hot."""

    name = "toy"

    def forward(self, x):
        v = x.float().flatten(1)
        return {"features": v, "logits": torch.nn.functional.one_hot((x[:, 0, 0, 0].long() // 20).clamp_max(9),
                                                                    10).float()}


def images_of(labels, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (len(labels), 1, 2, 2), generator=g, dtype=torch.uint8)
    x[:, 0, 0, 0] = torch.as_tensor(labels) * 20
    return x.numpy()


def test_the_records_score_samples_against_the_labels_asked_for():
    labels = np.arange(200) % 4
    samples = images_of(labels, 0)
    wrong = labels.copy()
    wrong[:50] = (wrong[:50] + 1) % 4  # 50 of 200 samples drawn for another class than they show
    ref_labels = np.arange(400) % 4
    kw = dict(extractor="toy", reference_features=images_of(ref_labels, 1).reshape(400, 4).astype(np.float32),
              reference_labels=ref_labels, reference="toy:train", real_images=images_of(ref_labels[:100], 2),
              real_labels=ref_labels[:100], real="toy:test", num_classes=4)
    records = conditional.evaluate_conditional(Classifier(), samples, wrong, **kw)
    acc, intra = records["class_accuracy[toy]"], records["fid_intra[toy]"]
    assert acc["value"] == 0.75 and acc["real_accuracy"] == 1.0 and acc["higher_is_better"] is True
    assert intra["classes_scored"] == 4 and intra["higher_is_better"] is False
    feats = samples.reshape(200, 4).astype(np.float64)
    ref = kw["reference_features"].astype(np.float64)
    expected = np.mean([fid(real=ref[ref_labels == c], fake=feats[wrong == c]) for c in range(4)])
    assert intra["value"] == pytest.approx(expected, rel=1e-6)
    assert conditional.metric_names("toy") == list(records)
    # an extractor whose logits are not the dataset's classes (Inception on CIFAR-10) gets intra-FID alone
    only = conditional.evaluate_conditional(Classifier(), samples, wrong, accuracy_too=False, **kw)
    assert list(only) == ["fid_intra[toy]"] == conditional.metric_names("toy", accuracy_too=False)
    assert only["fid_intra[toy]"]["value"] == intra["value"]


def test_class_accuracy_needs_an_extractor_of_the_datasets_own_classes():
    from genbench import registry
    from genbench.evaluate import expected_metrics

    fashion = expected_metrics(registry.protocol("fashion-mnist/biggan/standard"))
    cifar = expected_metrics(registry.protocol("cifar10/biggan/standard"))
    assert "class_accuracy[lenet-fashion-mnist]" in fashion and "fid_intra[lenet-fashion-mnist]" in fashion
    assert "fid_intra" in cifar and not any(name.startswith("class_accuracy") for name in cifar)


def test_bad_labels_are_named():
    with pytest.raises(GenbenchError, match="must lie in 0..3"):
        conditional.label_plan(np.array([0, 4]), 10, num_classes=4, seed=0)
    with pytest.raises(GenbenchError, match="integer array of class indices"):
        conditional.label_plan(np.array([0.5]), 10, num_classes=4, seed=0)
    with pytest.raises(GenbenchError, match="one length"):
        conditional.accuracy(np.zeros(3, int), np.zeros(2, int))
