"""Log-scaled learning-rate × weight-decay grids (method §3).

All arithmetic happens in log10 space. A grid point's identity is its pair of log10 values rounded
to ``GRID_DECIMALS`` decimals, so the same (lr, wd) maps to the same point whether it came from the
initial grid or from an extension, and floating-point noise (0.1 + 0.2) cannot create twins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

GRID_DECIMALS = 4


def round_log10(x: float) -> float:
    """A log10 value as a grid coordinate: rounded to ``GRID_DECIMALS`` decimals (never ``-0.0``).

    Two values with the same rounding are the same grid point.

    Examples
    --------
    >>> round_log10(-0.8 - 1e-12), round_log10(-0.00001)
    (-0.8, 0.0)
    """
    r = round(float(x), GRID_DECIMALS)
    return 0.0 if r == 0 else r  # no "-0.0" in keys


class Log10Values:
    """``lr`` and ``wd`` of anything that stores ``log10_lr`` and ``log10_wd``."""

    __slots__ = ()
    log10_lr: float
    log10_wd: float

    @property
    def lr(self) -> float:
        return float(10.0**self.log10_lr)

    @property
    def wd(self) -> float:
        return float(10.0**self.log10_wd)


@dataclass(frozen=True, order=True)
class GridPoint(Log10Values):
    """One (learning rate, weight decay) point, stored as rounded log10 values.

    Examples
    --------
    >>> p = GridPoint(-1.0, -4.0)
    >>> p.lr, p.wd, p.key
    (0.1, 0.0001, 'lr-1.0000_wd-4.0000')
    >>> GridPoint(-0.8 - 1e-12, -4.0) == GridPoint(-0.8, -4.0)
    True
    """

    log10_lr: float
    log10_wd: float

    def __post_init__(self):
        object.__setattr__(self, "log10_lr", round_log10(self.log10_lr))
        object.__setattr__(self, "log10_wd", round_log10(self.log10_wd))

    @classmethod
    def from_values(cls, lr: float, wd: float) -> "GridPoint":
        return cls(math.log10(lr), math.log10(wd))

    @property
    def key(self) -> str:
        return f"lr{self.log10_lr:+.{GRID_DECIMALS}f}_wd{self.log10_wd:+.{GRID_DECIMALS}f}"

    def to_dict(self) -> dict:
        return {"lr": self.lr, "wd": self.wd, "log10_lr": self.log10_lr, "log10_wd": self.log10_wd}


def axis_values(centre: float, size: int, step: float) -> list[float]:
    """``size`` log10 values with spacing ``step`` centred on ``centre``: c + s·(i − (n−1)/2)."""
    return [round_log10(centre + step * (i - (size - 1) / 2)) for i in range(size)]


def make_grid(grid) -> list[GridPoint]:
    """All points of a :class:`hplandscape.study.config.GridConfig`, lr-major, ascending.

    The axes are either centred on the prior (``size`` and ``step``) or explicit log10 value lists,
    plus any extension values (``extra_log10_lr`` / ``extra_log10_wd``) added by ``sweep --extend``.
    """
    return [GridPoint(a, b) for a in grid.log10_lr_values() for b in grid.log10_wd_values()]


def extend_axis(values: Iterable[float], new: Iterable[float]) -> list[float]:
    """Union of two lists of log10 values, by grid identity, sorted."""
    return sorted({round_log10(v) for v in values} | {round_log10(v) for v in new})
