"""A sweep: check the config, plan what is left, hand the plan to a runner, summarise.

``run_sweep`` is the public entry point of ``hplandscape sweep``. It validates its arguments,
creates (or checks) the study directory, asks :func:`hplandscape.run.plan.plan_study` what is left to
do and gives that plan to the runner its executor names (:mod:`hplandscape.run.runners`: the local
and in-process ``debug`` runners of :mod:`hplandscape.run.local_runner`, the SLURM runner of
:mod:`hplandscape.run.slurm_runner`). The phase order lives in the plan only; nothing here depends on
which runner runs it. With ``extend`` it repeats this on a grid grown where a near-optimal region
touches the grid's edge (method §3); with ``design.replicates: adaptive`` it runs the design's
rounds (:mod:`hplandscape.run.rounds`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

from hplandscape.errors import UserError
from hplandscape.run.executors import runs_at_once, threads_per_run
from hplandscape.run.extend import extend_rounds, with_stored_extensions
from hplandscape.run.plan import PlannedRun, plan_study
from hplandscape.run.preflight import check_runnable
from hplandscape.run.prune_step import damaged_source, set_source_aside
from hplandscape.run.rounds import dry_run_note, replication_rounds
from hplandscape.run.runners import Launch, Runner, RunOptions, get_runner
from hplandscape.run.status import failure_text, study_status
from hplandscape.store.claims import HEARTBEAT_S
from hplandscape.store.layout import check_dir_target
from hplandscape.store.study_store import StudyStore
from hplandscape.study.overrides import explain
from hplandscape.study.runs import source_run

__all__ = ["SweepSummary", "PlannedRun", "RunOptions", "run_sweep"]


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did.

    ``planned`` counts every run of the study, ``skipped`` those already recorded before the sweep,
    ``submitted`` those sent to an executor; ``done``, ``diverged`` and ``failed`` describe the
    study when the sweep returned. ``job_failures`` are jobs that died around their runs, each
    with the log that explains it. A dry run carries the plan's lines and its text.
    """

    study_dir: str
    executor: str
    planned: int
    skipped: int
    submitted: int
    done: int = 0
    failed: int = 0
    diverged: int = 0
    running: int = 0
    missing: int = 0
    dry_run: bool = False
    finished: bool = False
    plan: tuple = ()
    text: str = ""
    job_ids: tuple = ()
    failed_logs: tuple = field(default=())
    job_failures: tuple = field(default=())
    extension: str = ""  # what ``--extend`` did and why it stopped
    replication: str = ""  # what the rounds of an adaptive design did (``design.replicates: adaptive``)
    notes: tuple = ()  # what the sweep did besides running the plan (a damaged source set aside)

    def incomplete(self) -> str:
        """Why the study is not finished after this sweep, and where to look (for exit code 1)."""
        parts = []
        if self.failed:
            logs = ", ".join(log for _, log, _ in self.failed_logs[:3]) + (", …" if self.failed > 3 else "")
            parts.append(f"{self.failed} run(s) failed (tracebacks: {logs})")
        if self.missing:
            parts.append(f"{self.missing} run(s) are missing")
        if self.running:
            parts.append(f"{self.running} run(s) are still running in other jobs")
        if self.job_failures:
            parts.append("; ".join(f.describe() for f in self.job_failures[:3]))
        return (f"the study {self.study_dir} is not complete: {'; '.join(parts) or 'runs are unfinished'}. "
                "Re-run the same command to retry what failed or is missing.")

    def describe(self) -> str:
        """Human-readable summary (and, for dry runs, the plan)."""
        if self.dry_run:
            return "\n".join(t for t in (self.text, self.replication, self.extension) if t)
        lines = [f"Study {self.study_dir} ({self.executor}): {self.planned} runs, {self.skipped} "
                 f"already recorded, {self.submitted} submitted; now {self.done} done, "
                 f"{self.diverged} diverged, {self.failed} failed, {self.running} running, "
                 f"{self.missing} missing."] + list(self.notes)
        if self.job_ids:
            lines.append(f"SLURM jobs: {', '.join(self.job_ids)} (follow with `hplandscape status "
                         f"{self.study_dir} --follow`)")
        for run_id, log, error in self.failed_logs[:10]:
            lines.append(f"  failed {run_id}: {failure_text(error, log)}")
        lines += [f"  {f.describe()}" for f in self.job_failures[:10]]
        if self.replication:
            lines.append(self.replication)
        if self.extension:
            lines.append(self.extension)
        return "\n".join(lines)


def _explaining_overrides(sweep):
    """Config errors of a sweep name the overrides behind them (:func:`hplandscape.study.overrides.explain`):
    the machine checks (``launcher.device=cuda`` without CUDA) and a study directory of another config."""
    @functools.wraps(sweep)
    def run(config, *args, **kwargs):
        with explain(config.overrides):
            return sweep(config, *args, **kwargs)
    return run


@_explaining_overrides
def run_sweep(config, study_dir, *, executor: str | None = None, max_parallel: int | None = None,
              dry_run: bool = False, force: bool = False, engine: str | None = None,
              extend: bool = False, progress: bool = True, wait: bool = False,
              options: RunOptions | None = None, estimate: bool = False) -> SweepSummary:
    """Run every run of the study that has no valid record yet.

    Parameters
    ----------
    config : StudyConfig
    study_dir : str or Path
        The study directory (created; refused if made from a different config unless ``force``).
    executor : str, optional
        Overrides ``config.launcher.executor``: ``local``, ``slurm``, ``debug`` or another registered
        runner (:func:`hplandscape.run.runners.executor_names`).
    max_parallel : int, optional
        Local jobs at once; default: cores // threads per run.
    dry_run : bool
        Make every check the sweep makes before it writes (the executor, the study directory, the
        stored config, CUDA, the data, the pruning ratios, a damaged pruning source), then run and
        write nothing: the summary's ``plan`` lists what would run where.
    force : bool
        Adopt the new config in a directory made from a different one (records are kept).
    engine : {"auto", "sequential", "fused"}, optional
        Overrides ``config.launcher.engine``.
    extend : bool
        After the sweep, extend the grid where a condition's near-optimal region touches its edge
        (``analysis.edge_proposals``) and run only the new points; repeated until enclosed.
        The added rows/columns are kept in ``study.yaml``.
    progress : bool
        tqdm progress bar while waiting (local/debug, or SLURM with ``wait``).
    wait : bool
        SLURM only: poll ``squeue`` and the store until the submitted jobs end. An adaptive design
        (``design.replicates: adaptive``) then runs round after round until it is settled, as it
        does locally; without it, each call advances one round.
    estimate : bool
        With ``dry_run``: time each distinct architecture on the configured device and add what the
        runs will cost (compute hours, wall time at the parallelism) to the summary
        (:func:`hplandscape.run.estimate.estimate_cost`).
    options : RunOptions, optional
        The hooks of tests and benchmarks (stand-ins for training and pruning, claim staleness,
        heartbeat and poll periods); each field is documented on
        :class:`~hplandscape.run.runners.RunOptions`. Default: ``RunOptions()``.

    Returns
    -------
    SweepSummary

    Raises
    ------
    UserError
        Bad executor or a study directory made from another config (a ``ConfigChanged`` naming the
        keys that differ, the overrides behind them and the overrides that would continue it), or
        anything :func:`hplandscape.run.preflight.check_runnable` refuses; a dry run raises the same.
    RunFailure
        The pruning source could not be trained, so pruned conditions cannot run.
    """
    options = options if options is not None else RunOptions()
    kind = executor or config.launcher.executor
    runner = get_runner(kind)  # an unknown executor: a UserError listing the registered ones
    if estimate and not dry_run:
        raise UserError("--estimate goes with --dry-run: it says what the sweep would cost, then runs nothing")
    if max_parallel is not None and (not isinstance(max_parallel, int) or max_parallel < 1):
        raise UserError(f"max_parallel must be a positive integer, got {max_parallel!r}")
    study_dir = check_dir_target(study_dir, "the study directory")  # before anything in it is read
    store = StudyStore(study_dir, stale_after=options.stale_after)
    if store.study_yaml.exists() and not force:
        config = with_stored_extensions(config, store)
    if extend:
        arguments = dict(executor=executor, max_parallel=max_parallel, dry_run=dry_run, force=force,
                         engine=engine, progress=progress, wait=wait, options=options)
        if dry_run and not store.study_yaml.exists():
            raise UserError(f"nothing to extend in {store.root}: run `hplandscape sweep` without --extend first")
        replication = []  # each extension round's sweep runs its own replication rounds: say them all

        def sweep_grid(grid_config):
            done = run_sweep(grid_config, study_dir=store.root, **arguments)
            if done.replication and done.replication not in replication:
                replication.append(done.replication)
            return done

        summary, note = extend_rounds(config, store, sweep_grid, waits=runner.finishes(wait) and not dry_run,
                                      dry_run=dry_run)
        return dataclasses.replace(summary, extension=note, replication="\n".join(replication))
    arguments = dict(runner=runner, kind=kind, max_parallel=max_parallel, dry_run=dry_run, force=force,
                     engine=engine, progress=progress, wait=wait, options=options, estimate=estimate)
    if config.design.replicates != "adaptive":
        return _sweep(config, store, **arguments)
    if dry_run:
        summary = _sweep(config, store, **arguments)
        return dataclasses.replace(summary, replication=dry_run_note(config, store))
    summary, note = replication_rounds(config, store, functools.partial(_sweep, store=store, **arguments),
                                       waits=runner.finishes(wait))
    return dataclasses.replace(summary, replication=note)


def _sweep(config, store: StudyStore, *, runner: Runner, kind: str, max_parallel, dry_run: bool, force: bool,
           engine, progress: bool, wait: bool, options: RunOptions, estimate: bool) -> SweepSummary:
    """One sweep of what the study asks for now (:meth:`StudyStore.runs`): check, plan, run, summarise."""
    study_dir = store.root
    max_parallel = runs_at_once(config, True, max_parallel)
    damaged = _check_before_writing(config, runner, store, force=force, options=options)
    if dry_run:
        source = source_run(config).run_id
        plan = plan_study(config, store, engine=engine, retrain=(source,) if damaged else ())
        text = plan.describe(store, runner.where(config, max_parallel, plan))
        if damaged:
            text = (f"The pruning source is damaged ({damaged}): the sweep will set it and its record aside "
                    f"(kept as *.corrupt-<time>) and train the basemodel at the prior ({source}) again.\n" + text)
        if estimate:
            from hplandscape.run.estimate import estimate_cost  # late: torch

            parallel = runs_at_once(config, runner.runs_here, max_parallel, len(plan.runs))
            text += "\n" + "\n".join(estimate_cost(config, plan, parallel=parallel, engine=engine).lines())
        return SweepSummary(str(study_dir), kind, plan.total, plan.recorded, 0, dry_run=True,
                            plan=tuple(plan.lines(store)), text=text)
    store.init_study(config, force=force)
    notes = ()
    if damaged:
        kept = set_source_aside(store, config)
        notes = (f"The pruning source was damaged ({damaged}); it and its record were set aside as "
                 f"{', '.join(str(k) for k in kept)}, and the basemodel at the prior was trained again.",)
    from hplandscape.run.worker import RunJob  # late: submitit is only needed once something runs

    stale_after = options.stale_after
    job_kwargs = dict(threads=threads_per_run(config.launcher, config.recipe), stale_after=stale_after,
                      heartbeat_s=options.heartbeat_s or min(HEARTBEAT_S, stale_after / 6),
                      train_fn=options.train_fn)

    def make_job(specs, raise_on_failure=False, pull_since=None):
        return RunJob(specs, str(store.root), raise_on_failure=raise_on_failure, pull_since=pull_since,
                      **job_kwargs)

    plan = plan_study(config, store, engine=engine)
    launch = Launch(config, store, plan, replan=lambda: plan_study(config, store, engine=engine), make_job=make_job,
                    max_parallel=max_parallel, progress=progress, wait=wait, options=options)
    outcome = runner.run(launch)
    runner.follow(launch, outcome)
    summary = _summary(store, config, kind, plan, outcome.submitted, outcome.job_ids, outcome.job_failures)
    return dataclasses.replace(summary, notes=notes)


def _check_before_writing(config, runner: Runner, store: StudyStore, *, force: bool, options: RunOptions):
    """Every check a sweep makes before it writes anything (the study directory itself was checked
    before its ``study.yaml`` was read); its dry run makes the same ones, so a dry run that passes
    is a sweep that starts. Returns the error of a damaged pruning source that the sweep will set
    aside and train again (:func:`hplandscape.run.prune_step.damaged_source`), or None.

    Without the stand-ins of tests (``options.train_fn``, ``options.prune_fn``) this also checks what
    the machine decides: a missing data directory, an absent GPU or an unreachable ratio would
    otherwise be found by every run, or after the basemodel trained. The runner checks that this
    machine can use it (first) and what its jobs ask for (:meth:`Runner.check_request`).
    """
    runner.check_available()
    if not force:
        store.check_config(config)
    if options.train_fn is None:
        check_runnable(config, runner.name)
    runner.check_request(config)
    return damaged_source(store, config) if options.prune_fn is None else None


def _summary(store: StudyStore, config, kind: str, plan, submitted: int, job_ids, job_failures) -> SweepSummary:
    status = study_status(store, config)
    totals = {k: sum(c.counts()[k] for c in status.conditions)
              for k in ("done", "failed", "diverged", "running", "missing")}
    return SweepSummary(str(store.root), kind, plan.total, plan.recorded, submitted,
                        finished=status.complete, job_ids=tuple(job_ids), failed_logs=tuple(status.failed),
                        job_failures=tuple(job_failures), **totals)
