"""Adaptive replication in a sweep (``design.replicates: adaptive``, method §12): round after round.

The first round of an adaptive design is the runs :func:`hplandscape.study.replication.requested_runs`
asks for before any later round: the first seed everywhere and every seed at the prior's block.
Once a round's runs have all finished (done or diverged), the next one is decided from their
top-1 values (:func:`decide_next_round`, the rule of :mod:`hplandscape.analysis.adaptive`) and
stored in the study's ``rounds.json``; the sweep then runs it. A round stored is never decided
again, so a sweep killed in round 3 continues round 3. The rounds end when a decision adds
nothing: the design is settled.

Locally, and on SLURM with ``--wait``, one sweep runs round after round until settled
(:func:`replication_rounds`); on SLURM without ``--wait`` each call advances one round, as
``--extend`` does (:mod:`hplandscape.run.extend`). Grid extension and the rounds combine: an
extension round sweeps the grown grid, whose new points get the first seed and then their own
replication rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from hplandscape.errors import ConfigChanged
from hplandscape.store.study_store import StudyStore
from hplandscape.study.grid import make_grid
from hplandscape.study.replication import added_runs, current_round, full_runs, next_seed, requested_runs


@dataclass(frozen=True)
class RoundProgress:
    """Where an adaptive study stands: the current ``round`` (1 before a later one is stored),
    the runs it asks for so far (``requested``), how many of them have a valid record
    (``finished``) and how many runs the full design has (``full``)."""

    round: int
    requested: int
    finished: int
    full: int

    @property
    def ended(self) -> bool:
        """Every run asked for so far has finished: the next round may be decided."""
        return self.finished == self.requested

    def share(self) -> str:
        """``"412 of 1,215 runs (34 %) of the full design"``."""
        return f"{self.requested:,} of {self.full:,} runs ({100 * self.requested / max(1, self.full):.0f} %) " \
               "of the full design"


def round_progress(config, store: StudyStore) -> RoundProgress:
    """The current round of ``config``'s adaptive design in ``store`` and its runs' progress."""
    rounds = store.read_rounds()
    runs = store.runs(config)
    finished = sum(store.read_record(r.run_id)[0].finished for r in runs)
    return RoundProgress(current_round(rounds), len(runs), finished, full_runs(config))


def seed_matrices(config, runs, store: StudyStore) -> dict:
    """``{condition: (SeedMatrix, points)}`` of the finished ``runs``: rows the condition's grid
    points with at least one finished top-1 (a diverged run counts with its top-1; a failed one
    has none), in grid order; columns ``config.seeds`` in order, NaN where a seed has no result.
    A point off the grid (the pruning source at a prior the grid leaves out) is not a row."""
    import numpy as np

    from hplandscape.analysis.bootstrap import SeedMatrix  # late: the analysis package loads pandas

    col = {s: j for j, s in enumerate(config.seeds)}
    grid = make_grid(config.grid)
    values = {c.name: {} for c in config.conditions}
    for r in runs:
        state, record = store.read_record(r.run_id)
        if state.finished:
            values[r.condition.name].setdefault(r.point, {})[r.seed] = float(record["top1"])
    out = {}
    for name, by_point in values.items():
        points = [p for p in grid if p in by_point]
        if not points:
            continue
        m = np.full((len(points), len(config.seeds)), np.nan)
        for i, p in enumerate(points):
            for seed, top1 in by_point[p].items():
                m[i, col[seed]] = top1
        out[name] = (SeedMatrix(m, [p.log10_wd for p in points], [p.log10_lr for p in points], "independent"),
                     points)
    return out


@dataclass(frozen=True)
class RoundDecision:
    """What :func:`decide_next_round` found: ``outcome`` ``"added"`` (``round`` is the stored
    entry of ``rounds.json``), ``"settled"`` (the rule adds nothing) or ``"unfinished"`` (runs
    asked for have not all finished; nothing was decided)."""

    outcome: str
    round: dict | None = None


def decide_next_round(config, store: StudyStore) -> RoundDecision:
    """Decide the next round from the finished runs and store it in ``rounds.json``, once.

    Per condition, the rule (:func:`hplandscape.analysis.adaptive.next_round`) picks the points
    that get their next seed (:func:`~hplandscape.study.replication.next_seed`, in
    ``config.seeds`` order). Decided under the rounds' lock from the rounds stored then, so two
    sweeps that finish a round together store it once.
    """
    from hplandscape.analysis.adaptive import next_round  # late: numpy and the analysis package

    outcome = "settled"

    def decide(rounds):
        nonlocal outcome
        runs = requested_runs(config, added_runs(rounds))
        if not all(store.read_record(r.run_id)[0].finished for r in runs):
            outcome = "unfinished"
            return None
        matrices = seed_matrices(config, runs, store)
        decisions = next_round({name: m for name, (m, _) in matrices.items()}, len(config.seeds),
                               config.analysis.roi)
        new, reasons = [], {}
        for name, decision in decisions.items():
            m, points = matrices[name]
            for p in decision.add:
                have = {s for s, v in zip(config.seeds, m.values[p.index]) if v == v}
                run_id = next_seed(config, name, points[p.index], have)
                if run_id is not None and run_id not in reasons:
                    new.append(run_id)
                    reasons[run_id] = list(p.reasons)
        if not new:
            return None
        outcome = "added"
        return {"runs": new, "noise": {name: d.to_json() for name, d in decisions.items()}, "reasons": reasons}

    entry = store.append_round(decide)
    return RoundDecision(outcome, entry)


def _same_study(config, store: StudyStore) -> bool:
    """Whether ``store`` holds a study made from ``config`` (whose records may decide its rounds)."""
    if not store.study_yaml.exists():
        return False
    try:
        store.check_config(config)
    except ConfigChanged:
        return False  # ``--force`` adopts the config in this call's sweep; the next call decides
    return True


def replication_rounds(config, store: StudyStore, sweep: Callable, *, waits: bool) -> tuple:
    """Sweep the current round, then decide and sweep the next, until the design is settled or a
    round's runs do not all finish (on SLURM without ``wait``: one round per call).

    ``sweep(config)`` runs one sweep of what the study asks for now, as the caller was asked to
    (executor, force, ...), and returns its summary; it makes the sweep's checks (a study
    directory of another config is refused there) before anything is decided. ``waits``:
    whether it returns once its runs have ended. Returns the last sweep's summary and a sentence
    saying what the rounds did.
    """
    if not waits:
        progress = round_progress(config, store)
        decision = None
        if progress.requested and progress.ended and _same_study(config, store):
            decision = decide_next_round(config, store)
        summary = sweep(config)
        progress = round_progress(config, store)
        if decision is not None and decision.outcome == "settled":
            return summary, f"Adaptive replication: settled after round {progress.round}: {progress.share()}."
        if decision is not None and decision.outcome == "added":
            entry = decision.round
            return summary, (f"Adaptive replication: round {entry['round']} ({_added(entry)}) submitted; without "
                             "--wait each call advances one round: run the same command again once these jobs "
                             "have finished.")
        return summary, (f"Adaptive replication: round {progress.round} submitted ({progress.finished} of its "
                         f"{progress.requested} runs so far finished); without --wait each call advances one "
                         "round: run the same command again once these jobs have finished to decide the next.")
    summary = sweep(config)
    done, unfinished = [], 0
    while True:
        progress = round_progress(config, store)
        if not summary.finished or unfinished > 1:
            tail = (f"paused in round {progress.round}: its runs are not all finished (see above); run the same "
                    f"command again to continue it (the rounds decided so far are kept in {store.rounds_json} "
                    "and not decided again)")
            break
        decision = decide_next_round(config, store)
        if decision.outcome == "settled":
            tail = f"settled after round {progress.round}: {progress.share()}"
            break
        if decision.outcome == "added":
            done.append(f"round {decision.round['round']} added {_added(decision.round)}")
        # "unfinished": another sweep of the directory stored a round meanwhile; this one runs it too
        unfinished = unfinished + 1 if decision.outcome == "unfinished" else 0
        summary = sweep(config)
    return summary, "Adaptive replication: " + "; ".join(done + [tail]) + "."


def _added(entry: dict) -> str:
    """``"12 run(s) (base 5, uniform-0.5 7)"`` for a stored round (one run per point it adds)."""
    by_condition: dict = {}
    for run_id in entry["runs"]:
        name = run_id.split("/")[0]
        by_condition[name] = by_condition.get(name, 0) + 1
    return f"{len(entry['runs'])} run(s) ({', '.join(f'{c} {n}' for c, n in by_condition.items())})"


def dry_run_note(config, store: StudyStore) -> str:
    """What a dry run says about an adaptive design: the most runs it may take (the full
    design's), what the first round takes or, on a study in progress, the current round and
    what is recorded."""
    progress = round_progress(config, store)
    if progress.round == 1 and not progress.finished:
        return (f"Adaptive replication (design.replicates: adaptive): round 1 takes {progress.requested:,} runs; "
                f"later rounds add seeds where the results ask for them, at most {progress.full:,} runs in all "
                "(the full design).")
    then = (f"its runs are all finished: the sweep decides from them whether a round {progress.round + 1} is needed"
            if progress.ended else f"{progress.requested - progress.finished:,} of its runs are left")
    return (f"Adaptive replication (design.replicates: adaptive): round {progress.round}, "
            f"{progress.finished:,} of the {progress.requested:,} runs asked for so far recorded; {then}. "
            f"At most {progress.full:,} runs in all (the full design).")
