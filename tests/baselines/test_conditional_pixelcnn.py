"""The class-conditional Gated PixelCNN (van den Oord et al. 2016b, Sec. 2.3): given any class it is an exact
autoregressive model (no leak, normalized by brute force), the class moves its conditionals, a zero class bias
is the unconditional network, and cached generation given labels equals naive generation."""

import pytest
import torch

import autoregressive_checks as checks
from genbench import GenbenchError
from genbench.baselines import pixelcnn

pytestmark = pytest.mark.usefixtures("one_thread")


def conditional(shape, seed: int = 0):
    return checks.randomize(pixelcnn.Model(pixelcnn.VARIANTS["gated-pixelcnn-class"]["smoke"], shape), seed=seed)


class GivenClass:
    """The model with its class fixed: the contract of the exactness checks, which pass no labels."""

    def __init__(self, model, label: int):
        self.model, self.label = model, label

    def _labels(self, batch: int) -> torch.Tensor:
        return torch.full((batch,), self.label, dtype=torch.long)

    def conditionals(self, u, member=0):
        return self.model.conditionals(u, member, labels=self._labels(len(u)))

    def log_likelihood(self, x, **kw):
        return self.model.log_likelihood(x, labels=self._labels(len(x)), **kw)

    def __getattr__(self, name):
        return getattr(self.model, name)


@pytest.mark.parametrize("label", [0, 7])
@pytest.mark.parametrize("shape", [(1, 2, 2), (3, 2, 3)])
def test_given_a_class_no_conditional_sees_its_own_or_a_later_sub_pixel(shape, label):
    assert checks.leaks(GivenClass(conditional(shape), label), shape) == []


def test_given_a_class_it_sees_every_earlier_pixel():
    shape = (1, 4, 4)
    assert checks.depends_on_every_earlier_position(GivenClass(conditional(shape), 3), shape)


@pytest.mark.parametrize("shape", [(1, 1, 2), (1, 2, 1)])
def test_given_each_class_the_probabilities_of_all_images_sum_to_one(shape):
    model = conditional(shape)
    for label in (0, 9):
        assert checks.total_probability(GivenClass(model, label), shape) == pytest.approx(1.0, abs=1e-4)


def test_the_class_moves_the_likelihood_and_a_zero_class_bias_is_the_unconditional_network():
    shape = (1, 4, 4)
    model = conditional(shape)
    x = checks.random_images(shape, n=6)
    per_class = torch.stack([model.log_likelihood(x, labels=torch.full((6,), c)) for c in range(10)], 1)
    assert per_class.std(1).min() > 1e-3  # randomized class biases: every image's likelihood depends on y
    plain = pixelcnn.Model(pixelcnn.VARIANTS["gated-pixelcnn"]["smoke"], shape)
    weights = {k: v for k, v in model.state_dict().items() if ".class_" not in k}
    assert set(model.state_dict()) - set(weights) == {f"net.layers.{i}.class_{s}.weight" for i in (0, 1)
                                                        for s in "vh"}
    plain.load_state_dict(weights)
    for p in (q for name, q in model.named_parameters() if ".class_" in name):
        p.data.zero_()
    labels = torch.tensor([0, 1, 2, 3, 4, 9])
    torch.testing.assert_close(model.log_likelihood(x, labels=labels), plain.log_likelihood(x), rtol=0, atol=1e-9)


def test_new_models_start_unconditional():
    """genbench initialises the class embeddings at zero: training starts from the unconditional network."""
    model = pixelcnn.Model(pixelcnn.VARIANTS["gated-pixelcnn-class"]["smoke"], (1, 3, 3))
    assert all(float(p.detach().abs().max()) == 0.0 for name, p in model.named_parameters() if ".class_" in name)


def test_cached_generation_given_labels_equals_naive_generation():
    shape = (3, 3, 4)
    model = conditional(shape, seed=1)
    labels = torch.tensor([0, 5, 5, 9])
    cached = model.sample(4, generator=torch.Generator().manual_seed(3), labels=labels)
    naive = model.sample_naive(4, generator=torch.Generator().manual_seed(3), labels=labels)
    assert torch.equal(cached, naive)
    other = model.sample(4, generator=torch.Generator().manual_seed(3), labels=torch.tensor([1, 2, 3, 4]))
    assert not torch.equal(cached, other)


def test_training_and_the_held_out_loss_read_the_labels():
    shape = (1, 3, 3)
    model = conditional(shape)
    x, labels = checks.random_images(shape, n=4), torch.tensor([0, 1, 2, 3])
    nats = -model.log_likelihood(x, labels=labels).mean()
    assert model.eval_loss(x, labels=labels)["loss"] == pytest.approx(float(nats), rel=1e-6)
    from genbench.optim import Optimizer

    opt = model.configure_optimizers(Optimizer("adam", lr=1e-3))
    stats = model.train_step(x, opt, labels=labels)
    assert stats["loss"] == pytest.approx(float(nats), rel=1e-5)


def test_labels_are_required_by_the_conditional_model_and_refused_by_the_others():
    shape = (1, 2, 2)
    x = checks.random_images(shape, n=2)
    with pytest.raises(GenbenchError, match="class-conditional: pass the labels"):
        conditional(shape).log_likelihood(x)
    with pytest.raises(GenbenchError, match=r"labels must be long \(B,\) = \(2,\) in 0..9"):
        conditional(shape).log_likelihood(x, labels=torch.tensor([0, 10]))
    plain = pixelcnn.Model(pixelcnn.VARIANTS["gated-pixelcnn"]["smoke"], shape)
    with pytest.raises(GenbenchError, match="unconditional: it takes no labels"):
        plain.sample(2, labels=torch.tensor([0, 1]))
    with pytest.raises(GenbenchError, match="class conditioning needs arch 'gated'"):
        pixelcnn.Config(num_classes=10)
