"""The runs of a study, listed once: every (condition, grid point, seed) and its run id.

:func:`study_runs` lists them, the pruning source first: the basemodel at the prior with the first
seed, part of the study even when explicit grid axes leave the prior out (the pruned conditions
need its weights, method §5). The plan, ``status``, ``collect`` and the analysis all use this
list; the store keeps each run's files under ``STUDY/runs/<run id>/``.

>>> from hplandscape.study.loading import load_quickstart
>>> runs = study_runs(load_quickstart())
>>> len(runs), runs[0].run_id
(150, 'base/lr-1.7500_wd-1.7500/seed0')
"""

from __future__ import annotations

from typing import NamedTuple

from hplandscape.study.grid import GridPoint, make_grid


def run_id(condition: str, point: GridPoint, seed: int) -> str:
    """The id of one run, ``<condition>/<point.key>/seed<k>``: its place under ``STUDY/runs/``.

    >>> run_id("base", GridPoint(-1.0, -4.0), 0)
    'base/lr-1.0000_wd-4.0000/seed0'
    """
    return f"{condition}/{point.key}/seed{seed}"


class StudyRun(NamedTuple):
    """One (condition, grid point, seed) of a study and its run id."""

    condition: object  # config.Condition
    point: GridPoint
    seed: int
    run_id: str


def prior_point(config) -> GridPoint:
    """The grid point of the prior (method §3, Table 3.4), where the pruning source is trained."""
    return GridPoint.from_values(config.grid.prior_lr, config.grid.prior_wd)


def source_run(config) -> StudyRun:
    """The basemodel at the prior with the first seed: its weights rank the filters (method §5)."""
    point, seed = prior_point(config), config.seeds[0]
    return StudyRun(config.base, point, seed, run_id(config.base.name, point, seed))


def study_runs(config) -> list[StudyRun]:
    """Every run of a study, the pruning source first, then condition × grid point × seed.

    Explicit grid axes may leave out the prior; its basemodel run is then part of the study
    anyway, because the pruned conditions need its weights.
    """
    first = source_run(config)
    points = make_grid(config.grid)
    rest = [StudyRun(c, p, s, run_id(c.name, p, s)) for c in config.conditions for p in points
            for s in config.seeds]
    return [first] + [r for r in rest if r.run_id != first.run_id]
