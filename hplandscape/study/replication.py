"""The replication design: which of a study's seeds run at which grid point (``design.replicates``).

``full`` (the default) runs every seed at every point of every condition. ``adaptive`` runs them
in rounds (docs/method.md §12, "Adaptive replication"): the first round is the first seed at
every point plus every seed at the replicated block, the prior's grid point and its axis
neighbours (:func:`first_round`), so that the seed noise is measured from the start; each later
round adds the next seed at the points the rule of :mod:`hplandscape.analysis.adaptive` picks
from the results so far. The rounds decided so far are kept by the study's store; the runs a
study asks for are then the first round's and those rounds' (:func:`requested_runs`).

>>> from hplandscape.study.loading import load_quickstart
>>> config = load_quickstart(["design.replicates=adaptive"])
>>> sorted(p.key for p in first_round(config))
['lr-1.2500_wd-1.7500', 'lr-1.7500_wd-1.2500', 'lr-1.7500_wd-1.7500', 'lr-1.7500_wd-2.2500', 'lr-2.2500_wd-1.7500']
>>> len(requested_runs(config, {})), len(requested_runs(config.with_replicates("full"), {}))
(90, 150)
"""

from __future__ import annotations

from hplandscape.study.grid import GridPoint
from hplandscape.study.runs import prior_point, run_id, study_runs

#: The designs ``design.replicates`` may name.
REPLICATES = ("full", "adaptive")


def first_round(config) -> set:
    """The replicated block of an adaptive design's first round: the grid point nearest the prior
    (the prior itself on a grid centred on it) and its neighbours along each axis, where the grid
    has them (5 points inside the grid, 3 at a corner)."""
    lrs = sorted(config.grid.log10_lr_values())
    wds = sorted(config.grid.log10_wd_values())
    prior = prior_point(config)
    i = min(range(len(lrs)), key=lambda k: (abs(lrs[k] - prior.log10_lr), k))
    j = min(range(len(wds)), key=lambda k: (abs(wds[k] - prior.log10_wd), k))
    block = {(i, j), (i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)}
    return {GridPoint(lrs[a], wds[b]) for a, b in block if 0 <= a < len(lrs) and 0 <= b < len(wds)}


def requested_runs(config, added: dict) -> list:
    """The runs the study asks for so far, in :func:`~hplandscape.study.runs.study_runs` order.

    ``added`` maps the run ids that later rounds of an adaptive design asked for to their round
    (from the study's store); a full design asks for every run and ignores it.
    """
    runs = study_runs(config)
    if config.design.replicates == "full":
        return runs
    first = config.seeds[0]
    block = first_round(config)
    return [r for r in runs if r.seed == first or r.point in block or r.run_id in added]


def added_runs(rounds) -> dict:
    """``{run id: round}`` of every run the later rounds ``rounds`` (as the store keeps them) asked for;
    a run not in it belongs to round 1."""
    return {run_id: r["round"] for r in rounds for run_id in r["runs"]}


def current_round(rounds) -> int:
    """The round an adaptive design is in: the last one stored, 1 before any."""
    return rounds[-1]["round"] if rounds else 1


def full_runs(config) -> int:
    """How many runs the full design of ``config`` has (what an adaptive one saves against)."""
    return len(study_runs(config))


def next_seed(config, condition: str, point: GridPoint, have: set) -> str | None:
    """The run id of the next seed (in ``config.seeds`` order) that ``point`` of ``condition`` lacks,
    given the seeds it has; None when it has them all."""
    for s in config.seeds:
        if s not in have:
            return run_id(condition, point, s)
    return None

