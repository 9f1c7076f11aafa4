"""What the files of a study say about its runs: counts and grid maps per condition, and a
follow mode that shows progress until nothing is left to wait for.

Status is derived from the store's files (:meth:`hplandscape.store.study_store.StudyStore.run_state`) over the
study's one list of runs (:func:`hplandscape.study.runs.study_runs`); this module only summarises and
displays it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hplandscape.run.estimate import duration_text, eta_seconds
from hplandscape.run.executors import runs_at_once
from hplandscape.run.runners import runner_class
from hplandscape.store.study_store import RunState, StudyStore

_MAP_CHARS = {RunState.DONE: "#", RunState.DIVERGED: "x", RunState.RUNNING: "R",
              RunState.FAILED: "!", RunState.MISSING: ".", RunState.CORRUPT: "?"}
# When seeds of one grid point disagree, the map shows the state that needs attention first.
_MAP_PRIORITY = (RunState.CORRUPT, RunState.FAILED, RunState.RUNNING, RunState.MISSING,
                 RunState.DIVERGED, RunState.DONE)


@dataclass(frozen=True)
class ConditionStatus:
    """Run states of one condition: ``states[(log10_lr, log10_wd)] = [state per seed]``."""

    name: str
    log10_lr: tuple
    log10_wd: tuple
    states: dict

    def count(self, state: RunState) -> int:
        return sum(s is state for seeds in self.states.values() for s in seeds)

    @property
    def total(self) -> int:
        return sum(len(seeds) for seeds in self.states.values())

    def counts(self) -> dict:
        """``total, done, running, failed, missing, diverged`` (corrupt records count as missing:
        they will be re-run) plus ``corrupt``."""
        c = {s.value: self.count(s) for s in RunState}
        return {"total": self.total, "done": c["done"], "running": c["running"],
                "failed": c["failed"], "missing": c["missing"] + c["corrupt"],
                "diverged": c["diverged"], "corrupt": c["corrupt"]}

    def grid_map(self) -> list[str]:
        """Text map: one row per lr (largest on top), one column per wd (ascending)."""
        lines = ["      log10 wd: " + " ".join(f"{w:+.1f}"[:4].rjust(4) for w in self.log10_wd)]
        for lr in sorted(self.log10_lr, reverse=True):
            cells = []
            for wd in self.log10_wd:
                seeds = self.states.get((lr, wd), [])
                mark = " "
                for s in _MAP_PRIORITY:
                    if s in seeds:
                        mark = _MAP_CHARS[s]
                        break
                cells.append(mark.rjust(4))
            lines.append(f"  lr {lr:+7.2f}    " + " ".join(cells))
        return lines


@dataclass(frozen=True)
class StudyStatus:
    """Per-condition run states of a study, derived from its files."""

    study_dir: str
    conditions: tuple
    corrupt: tuple = field(default=())  # "record path: what is wrong with it"
    failed: tuple = field(default=())  # (run_id, error log path, the error: "Type: message" or None)
    #: Wall seconds until the runs left are done, from the recorded runs' times
    #: (:func:`hplandscape.run.estimate.eta_seconds`); None before any run is recorded.
    eta_s: float | None = None
    parallel: int = 1  # runs at once the ETA assumes
    #: ``{"replicates", "round", "asked", "full"}``: the design, its current round, the runs it asks
    #: for so far and the full design's runs (a full design: round 1, asked = full)
    replication: dict = field(default_factory=dict)

    @property
    def design(self) -> str:
        """An adaptive design's round and share of the full design, in words; "" for a full one."""
        r = self.replication
        if r.get("replicates", "full") == "full":
            return ""
        return (f"design: adaptive replication, round {r['round']}; {r['asked']:,} of the full design's "
                f"{r['full']:,} runs asked for so far ({100 * r['asked'] / max(1, r['full']):.0f} %)")

    def to_json(self) -> dict:
        """``{"conditions": {NAME: {"total", "done", "running", "failed", "missing", "diverged",
        "corrupt"}}, "eta_s", "parallel", "design": {"replicates", "round", "asked", "full"}}``."""
        return {"conditions": {c.name: c.counts() for c in self.conditions}, "eta_s": self.eta_s,
                "parallel": self.parallel, "design": dict(self.replication)}

    @property
    def total(self) -> int:
        return sum(c.total for c in self.conditions)

    @property
    def finished(self) -> int:
        return sum(c.count(RunState.DONE) + c.count(RunState.DIVERGED) for c in self.conditions)

    @property
    def complete(self) -> bool:
        return self.finished == self.total

    def count(self, state: RunState) -> int:
        """Runs of the whole study in ``state``."""
        return sum(c.count(state) for c in self.conditions)

    def render(self) -> str:
        """Human-readable counts and a grid map per condition."""
        lines = [f"Study {self.study_dir}: {self.finished}/{self.total} runs finished"]
        if self.design:
            lines.append(f"  {self.design}")
        w = max([16] + [len(c.name) + 2 for c in self.conditions])  # long names keep the columns aligned
        header = f"  {'condition':<{w}}{'total':>7}{'done':>7}{'running':>9}{'failed':>8}{'missing':>9}{'diverged':>10}"
        lines.append(header)
        for c in self.conditions:
            n = c.counts()
            lines.append(f"  {c.name:<{w}}{n['total']:>7}{n['done']:>7}{n['running']:>9}{n['failed']:>8}"
                         f"{n['missing']:>9}{n['diverged']:>10}")
        if self.eta_s is not None and not self.complete:
            left = self.total - self.finished - self.count(RunState.FAILED)
            lines.append(f"  ETA: about {duration_text(self.eta_s)} for the {left} run(s) left at {self.parallel} at once "
                         "(each condition's mean recorded run time)")
        legend = "  map: # done, x diverged, R running, ! failed, . missing, ? corrupt record"
        for c in self.conditions:
            lines += ["", f"{c.name}:"] + c.grid_map()
        lines += ["", legend]
        if self.corrupt:
            lines.append(f"{len(self.corrupt)} corrupt record(s), re-run by the next sweep:")
            lines += [f"  {p}" for p in self.corrupt]
        if self.failed:
            lines.append(f"{len(self.failed)} failed run(s); tracebacks:")
            lines += [f"  {rid}: {failure_text(error, log)}" for rid, log, error in self.failed]
        return "\n".join(lines)


def study_status(store: StudyStore, config=None) -> StudyStatus:
    """Counts and grid maps per condition, derived from the files.

    A run outside the grid (the basemodel at a prior that explicit axes leave out) is counted
    with its condition and drawn in the map at its own lr and wd.
    """
    config = config or store.config()
    conditions, corrupt, failed, times = [], [], [], []
    left: dict = {}
    states: dict = {c.name: {} for c in config.conditions}
    for run in store.runs(config):
        state, record = store.read_record(run.run_id)  # read once: its state and its time
        if state.finished:
            times.append((run.condition.name, record.get("wall_time_s")))
        else:
            state = store.run_state(run.run_id)  # running, failed, corrupt or missing
            if state is not RunState.FAILED:
                left[run.condition.name] = left.get(run.condition.name, 0) + 1
        states[run.condition.name].setdefault((run.point.log10_lr, run.point.log10_wd), []).append(state)
        if state is RunState.CORRUPT:
            corrupt.append(f"{store.record_path(run.run_id)}: {store.record_problem(run.run_id)}")
        elif state is RunState.FAILED:
            err = store.read_error(run.run_id) or {}
            failed.append((run.run_id, err.get("traceback", str(store.error_log_path(run.run_id))), err.get("error")))
    for c in config.conditions:
        lrs = tuple(sorted({lr for lr, _ in states[c.name]}))
        wds = tuple(sorted({wd for _, wd in states[c.name]}))
        conditions.append(ConditionStatus(c.name, lrs, wds, states[c.name]))
    parallel = runs_at_once(config, runner_class(config.launcher.executor).runs_here)
    return StudyStatus(str(store.root), tuple(conditions), tuple(corrupt), tuple(failed),
                       eta_seconds(times, left, parallel), parallel, _design(store, config))


def _design(store: StudyStore, config) -> dict:
    """The design, its round and the runs it asks for so far (an adaptive design's are the study's runs)."""
    from hplandscape.study.replication import current_round, full_runs

    full = full_runs(config)
    if config.design.replicates == "full":
        return {"replicates": "full", "round": 1, "asked": full, "full": full}
    rounds = store.read_rounds()
    return {"replicates": "adaptive", "round": current_round(rounds),
            "asked": len(store.runs(config)), "full": full}


def failure_text(error: str | None, log: str) -> str:
    """How a failed run is shown: its error (the last line of what it raised) and the traceback's
    file, or the file alone when the error is unknown.

    >>> failure_text("OSError: [Errno 28] No space left on device", "s/error.log")
    'OSError: [Errno 28] No space left on device (traceback: s/error.log)'
    """
    if not error:
        return str(log)
    line = str(error).strip().splitlines()[-1] if str(error).strip() else str(error)
    return f"{line} (traceback: {log})"


def follow(store: StudyStore, interval: float = 5.0, *, timeout: float | None = None,
           file=None, queued=None) -> StudyStatus:
    """Show a progress bar of finished runs until every run is finished, or until nothing is
    running or queued any more (twice in a row: a local sweep passes through short gaps between
    jobs), or ``timeout`` seconds passed.

    ``queued()`` tells whether jobs of the study still wait in a scheduler; by default the SLURM
    jobs submitted for it (their ids are in ``STUDY/logs``) are looked up with ``squeue``.
    """
    from tqdm import tqdm

    queued = queued or (lambda: slurm_jobs_waiting(store))
    config = store.config()
    status = study_status(store, config)
    start, idle = time.monotonic(), 0
    with tqdm(total=status.total, initial=status.finished, desc=config.name, unit="run",
              file=file, dynamic_ncols=True) as bar:
        while not status.complete and idle < 2:
            if timeout is not None and time.monotonic() - start > timeout:
                break
            time.sleep(interval)
            status = study_status(store, config)
            bar.update(status.finished - bar.n)
            bar.set_postfix(running=status.count(RunState.RUNNING), failed=status.count(RunState.FAILED))
            idle = 0 if status.count(RunState.RUNNING) or queued() else idle + 1
    return status


def slurm_jobs_waiting(store: StudyStore) -> bool:
    """Whether a SLURM job submitted for the study is still pending or running (False without
    SLURM, or when ``squeue`` cannot answer)."""
    ids = store.submitted_job_ids()
    if not ids:
        return False
    from hplandscape.run.executors import slurm_jobs_active

    return bool(slurm_jobs_active(ids))


class RecordedBar:
    """A progress bar of how many of ``run_ids`` have a record (for the runners while they wait)."""

    def __init__(self, store: StudyStore, run_ids, name: str, enabled: bool = True):
        self.store, self.run_ids = store, list(run_ids)
        self.bar = None
        if enabled and self.run_ids:
            from tqdm import tqdm

            self.bar = tqdm(total=len(self.run_ids), desc=name, unit="run", dynamic_ncols=True)

    def tick(self) -> None:
        if self.bar is None:
            return
        n = sum(self.store.record_path(r).exists() for r in self.run_ids)
        if n != self.bar.n:
            self.bar.update(n - self.bar.n)

    def close(self) -> None:
        self.tick()
        if self.bar is not None:
            self.bar.close()
