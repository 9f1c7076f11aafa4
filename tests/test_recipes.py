"""Recipe presets and the learning-rate schedule of method §6."""

import pytest

from hplandscape.recipes import PRESETS, recipe_preset


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
