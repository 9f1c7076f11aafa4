"""Recipe presets and the learning-rate schedule of method §6."""

import pytest

from hplandscape.study.recipes import PRESETS, recipe_preset


def test_cifar_schedule_divides_by_ten_at_90_and_135():
    r = recipe_preset("cifar10")
    lrs = [r.lr_at_epoch(0.1, e) for e in range(180)]
    assert lrs[:90] == [0.1] * 90
    assert all(lr == pytest.approx(0.01) for lr in lrs[90:135])
    assert all(lr == pytest.approx(0.001) for lr in lrs[135:])
    assert (r.batch_size, r.momentum, r.epochs) == (128, 0.9, 180)


def test_imagenet_schedule_at_30_and_60():
    r = recipe_preset("imagenet")
    assert r.milestone_epochs() == (30, 60) and r.batch_size == 256 and r.epochs == 90
    assert r.lr_at_epoch(0.1, 29) == 0.1 and r.lr_at_epoch(0.1, 30) == pytest.approx(0.01)
    assert r.lr_at_epoch(0.1, 60) == pytest.approx(0.001)


def test_unknown_preset_lists_available():
    with pytest.raises(KeyError, match="cifar10, digits, imagenet"):
        recipe_preset("mnist")
    assert set(PRESETS) == {"cifar10", "digits", "imagenet"}


def test_fraction_milestones_that_would_fall_on_epoch_0_fall_on_steps():
    # 1 epoch: 0.5 × 1 rounds to epoch 0, so the lr drops after 50 % and 75 % of all SGD steps
    import dataclasses

    r = dataclasses.replace(recipe_preset("digits"), epochs=1)
    assert r.milestones_on_steps and r.decay_steps(8) == (4, 6)
    lrs = [r.lr_at_step(0.1, 0, step, 8) for step in range(8)]
    assert lrs[:4] == [0.1] * 4 and lrs[4:6] == pytest.approx([0.01] * 2) and lrs[6:] == pytest.approx([0.001] * 2)
    # over several epochs the steps are counted across epoch ends: 0.2 × 2 epochs rounds to epoch 0
    r = dataclasses.replace(r, epochs=2, milestones=(0.2, 0.75))
    assert r.milestones_on_steps and r.decay_steps(4) == (2, 6)
    assert [round(r.lr_at_step(1.0, e, s, 4), 12) for e in (0, 1) for s in range(4)] == [1, 1, .1, .1, .1, .1, .01, .01]
    with pytest.raises(ValueError, match="lr_at_step"):
        r.lr_at_epoch(0.1, 0)


def test_epoch_milestones_stay_where_they_fall_on_an_epoch():
    # every schedule that was valid before keeps its epochs, whatever the number of steps
    import dataclasses

    digits = recipe_preset("digits")
    for r in (recipe_preset("cifar10"), recipe_preset("imagenet"), digits,
              dataclasses.replace(digits, epochs=3), dataclasses.replace(digits, epochs=2)):
        assert not r.milestones_on_steps and r.decay_steps(391) is None
        assert all(r.lr_at_step(0.1, e, s, 391) == r.lr_at_epoch(0.1, e) for e in range(r.epochs) for s in (0, 390))
