"""Grid extension (method §3): grow the grid where a near-optimal region touches its edge.

``sweep --extend`` sweeps, analyses the finished runs, adds the rows and columns the analysis
proposes (:func:`hplandscape.analysis.edge_proposals`) and sweeps only the new points, round after
round (:func:`extend_rounds`). Rows and columns added by earlier rounds are kept in the study's
``study.yaml`` and every later sweep of the directory keeps them (:func:`with_stored_extensions`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from hplandscape.store.study_store import StudyStore
from hplandscape.study.config import MAX_AXIS_POINTS


def with_stored_extensions(config, store: StudyStore):
    """Keep grid rows/columns added by earlier ``--extend`` sweeps of this directory."""
    grid = store.read_config_dict().get("grid", {})
    extra_lr = set(config.grid.extra_log10_lr) | set(grid.get("extra_log10_lr") or ())
    extra_wd = set(config.grid.extra_log10_wd) | set(grid.get("extra_log10_wd") or ())
    if extra_lr == set(config.grid.extra_log10_lr) and extra_wd == set(config.grid.extra_log10_wd):
        return config
    return config.with_grid(dataclasses.replace(
        config.grid, extra_log10_lr=tuple(sorted(extra_lr)), extra_log10_wd=tuple(sorted(extra_wd))))


def extend_rounds(config, store: StudyStore, sweep: Callable, *, waits: bool, dry_run: bool) -> tuple:
    """Sweep, then add the rows/columns the analysis asks for and sweep only the new points, until
    no condition's 1.0-ROI touches the grid's edge or ``grid.max_extend_rounds`` is reached (on
    SLURM without ``wait``, and in a dry run: one round per call).

    ``sweep(config)`` runs one sweep of ``config`` as the caller was asked to (executor, dry run,
    ...) and returns its summary; ``waits``: whether it returns once its runs have finished.
    Returns the last round's summary and a sentence saying why the rounds stopped.
    """
    from hplandscape import analysis  # late: pandas and scipy, for the sweep that extends only
    from hplandscape.store.results import records_table

    summary = None
    if not dry_run:
        summary = sweep(config)  # the current grid first
    limit = config.grid.max_extend_rounds if waits else 1
    rounds, note = 0, ""
    while True:
        table = records_table(store.iter_records(config))
        if table.empty:
            note = "Grid extension: no finished runs to analyse yet."
            break
        proposal = analysis.edge_proposals(analysis.analyze(table))
        grid = config.grid
        new_lr = set(proposal["extra_log10_lr"]) - set(grid.log10_lr_values())
        new_wd = set(proposal["extra_log10_wd"]) - set(grid.log10_wd_values())
        if not new_lr and not new_wd:
            note = (f"Grid extension: every condition's 1.0-ROI is enclosed by the grid"
                    f"{f' after {rounds} round(s)' if rounds else ''}.")
            break
        too_long = [axis for axis, values, new in (("lr", grid.log10_lr_values(), new_lr),
                                                   ("wd", grid.log10_wd_values(), new_wd))
                    if len(values) + len(new) > MAX_AXIS_POINTS]
        if too_long:
            note = (f"Grid extension stopped: one more round would give the {' and '.join(too_long)} axis more "
                    f"than {MAX_AXIS_POINTS} points (the limit of a grid axis); the near-optimal region is "
                    "still cut by the grid: check the prior and the grid step.")
            break
        if rounds == limit:
            sides = "; ".join(f"{c}: {', '.join(v)}" for c, v in proposal["sides"].items() if v)
            note = (f"Grid extension stopped after {rounds} round(s) (grid.max_extend_rounds = {limit}) with "
                    f"1.0-ROIs still at the edge ({sides}); raise grid.max_extend_rounds or run "
                    "`hplandscape sweep --extend` again.")
            break
        config = config.with_grid(dataclasses.replace(
            grid, extra_log10_lr=tuple(sorted(set(grid.extra_log10_lr) | new_lr)),
            extra_log10_wd=tuple(sorted(set(grid.extra_log10_wd) | new_wd))))
        summary = sweep(config)
        rounds += 1
        added = f"{len(new_lr)} lr row(s) and {len(new_wd)} wd column(s)"
        if dry_run:
            note = f"Grid extension: the next round would add {added} (a dry run shows one round)."
            break
        if not waits:
            note = (f"Grid extension: one round ({added}) submitted; without --wait each call advances one "
                    "round: run the same command again once these jobs have finished.")
            break
        if not summary.finished:
            note = (f"Grid extension paused after round {rounds}: its runs are not all finished (see above); "
                    "run the same command again to continue.")
            break
    if summary is None:
        summary = sweep(config)
    return summary, note
