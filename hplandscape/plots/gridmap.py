"""The grid map of the method's Fig. 4.4: the initial grid and every extension marked.

A study directory keeps its initial grid in ``study.yaml`` (prior, size and step, or explicit
axes) and the rows/columns ``sweep --extend`` added in ``grid.extra_log10_lr`` /
``extra_log10_wd``. The rounds themselves are not stored, but each round adds at most one row or
column per side, one grid step beyond the last, so the k-th value beyond an initial edge is the
k-th extension of that side: a point's *ring* is the larger of its two axes' ring numbers (0 for
the initial grid). numpy only; both back ends draw :class:`GridMapInfo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from hplandscape.analysis.notation import hp_log10_text
from hplandscape.analysis.study_analysis import StudyAnalysis
from hplandscape.study.grid import round_log10

#: Ring colours: the initial grid, then extensions 1, 2, 3, … (the last colour repeats).
RING_COLOURS = ("#4d4d4d", "#e69f00", "#d55e00", "#cc79a7", "#0072b2", "#009e73")


@dataclass(frozen=True)
class GridMapInfo:
    """Every grid point with its ring and how many conditions measured it.

    ``ring[i]`` is 0 for a point of the initial grid and k for the k-th extension;
    ``measured[i]`` counts the conditions with a result at point i (``n_conditions`` when all
    did). ``initial_box`` is ``(wd_lo, wd_hi, lr_lo, lr_hi)`` of the initial grid (None when it
    is unknown: a results table without its study). ``touching`` lists ``(condition, sides)`` of
    the edge-ROIs that still touch the grid.
    """

    wd: np.ndarray
    lr: np.ndarray
    ring: np.ndarray
    measured: np.ndarray
    n_conditions: int
    rings: int
    initial_box: Optional[tuple]
    prior: Optional[tuple]  # (log10_wd, log10_lr)
    wd_ticks: tuple
    lr_ticks: tuple
    touching: tuple
    title: str

    def ring_label(self, k: int) -> str:
        """``"initial grid"``, ``"extension 1"``, …"""
        return "initial grid" if k == 0 else f"extension {k}"

    @staticmethod
    def ring_colour(k: int) -> str:
        return RING_COLOURS[min(k, len(RING_COLOURS) - 1)]


def _rings(values, initial) -> dict:
    """Ring number of every axis value: 0 inside the initial range, k for the k-th value beyond it."""
    lo, hi = min(initial), max(initial)
    above = sorted(v for v in values if v > hi + 1e-9)
    below = sorted((v for v in values if v < lo - 1e-9), reverse=True)
    out = {v: 0 for v in values}
    out.update({v: k + 1 for k, v in enumerate(above)})
    out.update({v: k + 1 for k, v in enumerate(below)})
    return out


def _ticks(axis) -> tuple:
    values = tuple(axis)
    stride = max(1, int(np.ceil(len(values) / 9)))
    values = values[::stride]
    return values, tuple(hp_log10_text(v) for v in values)


def grid_map_info(result: StudyAnalysis, initial_log10_lr=None, initial_log10_wd=None) -> GridMapInfo:
    """Where the grid came from: the initial grid, each extension ring, what was measured.

    Parameters
    ----------
    result : StudyAnalysis
        Gives the grid's axes and the conditions' measured points.
    initial_log10_lr, initial_log10_wd : sequence of float, optional
        The initial grid's axes (the study config without its extensions). Without them every
        point counts as initial and the title says the extensions are unknown.

    Returns
    -------
    GridMapInfo
    """
    lr_axis, wd_axis = result.grid.log10_lr, result.grid.log10_wd
    known = initial_log10_lr is not None and initial_log10_wd is not None
    init_lr = [round_log10(v) for v in initial_log10_lr] if known else list(lr_axis)
    init_wd = [round_log10(v) for v in initial_log10_wd] if known else list(wd_axis)
    ring_lr, ring_wd = _rings(lr_axis, init_lr), _rings(wd_axis, init_wd)
    have = {}
    for c in result.conditions:
        for p in c.points:
            have[(p.log10_wd, p.log10_lr)] = have.get((p.log10_wd, p.log10_lr), 0) + 1
    wd, lr, ring, measured = [], [], [], []
    for a in lr_axis:
        for b in wd_axis:
            wd.append(b)
            lr.append(a)
            ring.append(max(ring_lr[a], ring_wd[b]))
            measured.append(have.get((b, a), 0))
    rings = int(max(ring)) if ring else 0
    n = len(result.conditions)
    missing = sum(1 for m in measured if m < n)
    if not known:
        title = "grid map (the initial grid is unknown without the study's study.yaml)"
    elif rings == 0:
        title = f"grid map: the initial {len(init_lr)} × {len(init_wd)} grid, never extended"
    else:
        title = (f"grid map: the initial {len(init_lr)} × {len(init_wd)} grid and {rings} extension ring"
                 f"{'s' if rings > 1 else ''} ({len(lr_axis)} × {len(wd_axis)} in all)")
    if missing:
        title += f"; {missing} point{'s' if missing > 1 else ''} not measured by every condition (hollow)"
    prior = (result.prior.log10_wd, result.prior.log10_lr) if result.prior is not None else None
    box = (min(init_wd), max(init_wd), min(init_lr), max(init_lr)) if known else None
    touching = tuple((c.name, c.edge.sides) for c in result.conditions if c.edge.touches)
    return GridMapInfo(wd=np.array(wd, float), lr=np.array(lr, float), ring=np.array(ring, int),
                       measured=np.array(measured, int), n_conditions=n, rings=rings, initial_box=box,
                       prior=prior, wd_ticks=_ticks(wd_axis), lr_ticks=_ticks(lr_axis), touching=touching,
                       title=title)
