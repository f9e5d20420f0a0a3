"""Optimizer settings and learning-rate schedules: what the published recipes need, as hashed settings."""

import dataclasses

import pytest
import torch

from genbench import registry
from genbench.files import load_state
from genbench.optim import OPTIMIZERS, Optimizer, Schedule, set_learning_rates
from genbench.runner import RunOptions, run


def test_every_optimizer_builds_the_torch_optimizer_with_the_settings():
    params = [torch.nn.Parameter(torch.zeros(3))]
    built = {name: Optimizer(name, lr=0.1, betas=(0.5, 0.9)).build(params) for name in OPTIMIZERS}
    assert isinstance(built["rmsprop"], torch.optim.RMSprop) and built["rmsprop"].defaults["alpha"] == 0.99
    assert isinstance(built["adamax"], torch.optim.Adamax) and built["adamax"].defaults["betas"] == (0.5, 0.9)
    assert built["sgd"].defaults["momentum"] == 0.5
    assert isinstance(built["adagrad"], torch.optim.Adagrad)  # MADE's recipe
    assert all(opt.defaults["lr"] == 0.1 for opt in built.values())
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        Optimizer("lbfgs")


def test_schedule_factors_follow_warmup_and_linear_decay():
    assert [Schedule().factor(s, 10) for s in (0, 5, 9)] == [1.0, 1.0, 1.0]
    assert [Schedule(warmup=4).factor(s, 10) for s in (0, 1, 3, 4, 9)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    # WGAN-GP's ResNet recipe: lr * (1 - step / total), the last update at 1 / total of the initial rate
    assert [Schedule(decay="linear").factor(s, 10) for s in (0, 5, 9)] == pytest.approx([1.0, 0.5, 0.1])
    assert Schedule(warmup=2, decay="linear").factor(0, 10) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        Schedule(decay="cosine")


def test_linear_decay_from_decay_start_is_cyclegans_constant_then_linear_schedule():
    # Zhu et al.: the rate held for the first half, then lr * (1 - (step - start) / (total - start))
    schedule = Schedule(decay="linear", decay_start=6)
    assert [schedule.factor(s, 10) for s in (0, 5, 6, 7, 9)] == pytest.approx([1.0, 1.0, 1.0, 0.75, 0.25])
    assert Schedule(decay="linear", decay_start=0).factor(5, 10) == Schedule(decay="linear").factor(5, 10)
    for bad in (dict(decay="constant", decay_start=3), dict(decay="linear", decay_start=-1)):
        with pytest.raises(ValueError, match="decay_start"):
            Schedule(**bad)


def test_set_learning_rates_scales_from_the_initial_rate_every_time():
    opt = Optimizer("adam", lr=0.2).build([torch.nn.Parameter(torch.zeros(2))])
    for step in (3, 7, 3):  # a pure function of the step: no drift from repeated scaling
        set_learning_rates([opt], Schedule(decay="linear"), step, 10)
        assert opt.param_groups[0]["lr"] == pytest.approx(0.2 * (1 - step / 10))
    set_learning_rates([opt], None, 5, 10)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2 * 0.7)  # no schedule: left alone


def test_the_runner_applies_the_protocols_schedule(tmp_path):
    smoke = registry.protocol("digits/vae/smoke")  # 40 steps
    warm = dataclasses.replace(smoke, optimizer=dataclasses.replace(smoke.optimizer, schedule=Schedule(warmup=100)))
    assert warm.hash != smoke.hash
    run(warm, RunOptions(out=tmp_path / "warm", progress=False, download=False), echo=lambda *_: None)
    state = load_state(tmp_path / "warm" / "checkpoint.pt")
    group = state["optimizers"]["model"]["param_groups"][0]
    assert group["initial_lr"] == smoke.optimizer.lr
    assert group["lr"] == pytest.approx(smoke.optimizer.lr * 40 / 100)  # the rate of the 40th update


def test_step_decay_multiplies_by_gamma_at_each_milestone():
    s = Schedule(warmup=2, decay="step", milestones=(4, 6), gamma=0.3)
    assert [round(s.factor(i, 10), 6) for i in range(8)] == [0.5, 1.0, 1.0, 1.0, 0.3, 0.3, 0.09, 0.09]
    with pytest.raises(ValueError, match="milestones and gamma"):
        Schedule(decay="step")
    with pytest.raises(ValueError, match="milestones and gamma"):
        Schedule(milestones=(3,), gamma=0.5)
