"""Grid generation in log10 space (method §3)."""

import math

import pytest

from hplandscape.study.config import GridConfig
from hplandscape.study.grid import GridPoint, axis_values, extend_axis, make_grid


def test_nine_by_nine_step_02_spans_08_decades_around_prior():
    grid = GridConfig(prior_lr=0.1, prior_wd=1e-4, n_lr=9, n_wd=9, step=0.2)
    points = make_grid(grid)
    assert len(points) == 81 and len(set(points)) == 81
    lrs = sorted({p.log10_lr for p in points})
    assert lrs[0] == -1.8 and lrs[-1] == -0.2
    assert all(math.isclose(b - a, 0.2, abs_tol=1e-9) for a, b in zip(lrs, lrs[1:]))
    assert GridPoint(-1.0, -4.0) in points


def test_even_sizes_are_centred_between_points():
    assert axis_values(-1.0, 2, 0.4) == [-1.2, -0.8]


def test_identity_is_stable_under_float_noise_and_extension():
    p = GridPoint.from_values(10 ** -0.6000000001, 1e-4)
    assert p == GridPoint(-0.6, -4.0) and p.key == "lr-0.6000_wd-4.0000"
    assert hash(p) == hash(GridPoint(-0.6, -4.0))
    base = axis_values(-1.0, 9, 0.2)
    extended = extend_axis(base, [-0.2, 0.0])  # -0.2 is already there: not added twice
    assert extended == sorted(base + [0.0])


def test_values_are_real_powers_of_ten():
    p = GridPoint(-1.0, -4.0)
    assert p.lr == pytest.approx(0.1) and p.wd == pytest.approx(1e-4)
    assert p.to_dict() == {"lr": p.lr, "wd": p.wd, "log10_lr": -1.0, "log10_wd": -4.0}
