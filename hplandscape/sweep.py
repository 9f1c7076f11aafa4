"""Planning a study into runs and running them in phases.

A study expands into runs (condition × grid point × seed). A sweep skips every run that already has
a valid record and launches the rest in three phases (method §5: the L1 ranking comes from the
basemodel trained at the prior):

1. the basemodel at the prior grid point with the first seed, keeping its weights (``model.pt``);
2. the pruned architecture of every pruned condition, from those weights (``pruning.source:
   trained``) or from a random He init (``random``), saved in ``STUDY/specs/<condition>.json``;
3. every other run.

With the local and debug executors the sweep waits between phases and returns when every run has
finished. On SLURM all phases are submitted at once and chained with job dependencies
(``afterok``), so nothing has to wait on the login node; ``wait=True`` follows them to the end.

Runs claimed by another sweep (a concurrent ``sweep`` call, or jobs that outlived a killed one)
are not trained twice: the sweep waits until they are recorded or their claims go stale.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from hplandscape.errors import RunFailure, UserError
from hplandscape.grid import GridPoint, make_grid
from hplandscape.launch import (
    EXECUTORS, PrepareSpecs, RunJob, default_max_parallel, make_executor, max_array_size,
    slurm_base_id, slurm_jobs_active, submit_bounded, submit_slurm_arrays, threads_per_run)
from hplandscape.spec import RunSpec
from hplandscape.atomic import write_json as atomic_write_json
from hplandscape.store import STALE_AFTER_S, RunState, StudyStore

#: Rounds of "launch what is missing, wait for what others run" before a local sweep gives up.
MAX_ROUNDS = 5


@dataclass(frozen=True)
class PlannedRun:
    """One line of a dry run: which phase, which run, where it would go."""

    phase: int
    run_id: str
    where: str


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did.

    ``planned`` counts every run of the study, ``skipped`` those already recorded before the sweep,
    ``submitted`` those sent to an executor; ``done``, ``diverged`` and ``failed`` describe the
    study when the sweep returned.
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
    job_ids: tuple = ()
    failed_logs: tuple = field(default=())

    def describe(self) -> str:
        """Human-readable summary (and, for dry runs, the plan)."""
        if self.dry_run:
            runs = sum(p.phase != 2 for p in self.plan)
            prunes = len(self.plan) - runs
            lines = [f"Dry run of {self.study_dir} ({self.executor}): {self.planned} runs, "
                     f"{self.skipped} already recorded, {runs} would run"
                     + (f" and {prunes} pruned architecture(s) would be made:" if prunes else ":")]
            lines += [f"  phase {p.phase}  {p.run_id:<48} {p.where}" for p in self.plan]
            return "\n".join(lines)
        lines = [f"Study {self.study_dir} ({self.executor}): {self.planned} runs, {self.skipped} "
                 f"already recorded, {self.submitted} submitted; now {self.done} done, "
                 f"{self.diverged} diverged, {self.failed} failed, {self.running} running, "
                 f"{self.missing} missing."]
        if self.job_ids:
            lines.append(f"SLURM jobs: {', '.join(self.job_ids)} (follow with `hplandscape status "
                         f"{self.study_dir} --follow`)")
        for run_id, log in self.failed_logs[:10]:
            lines.append(f"  failed {run_id}: {log}")
        return "\n".join(lines)


# -- planning ---------------------------------------------------------------------------------


def prior_point(config) -> GridPoint:
    """The grid point of the prior (method §3, Table 3.4), where the pruning source is trained."""
    return GridPoint.from_values(config.grid.prior_lr, config.grid.prior_wd)


def source_run_id(config) -> str:
    """Run id of the basemodel at the prior with the first seed (the pruning source)."""
    return f"{config.base.name}/{prior_point(config).key}/seed{config.seeds[0]}"


def _all_runs(config):
    """(condition, point, seed) of the whole study, the pruning source first.

    Explicit grid axes may leave out the prior; its basemodel run is then added, because the
    pruned conditions need its weights.
    """
    first = (config.base, prior_point(config), config.seeds[0])
    points = make_grid(config.grid)
    rest = [(c, p, s) for c in config.conditions for p in points for s in config.seeds]
    return [first] + [r for r in rest if r != first]


def plan_runs(config, store: StudyStore, *, engine: str | None = None,
              include_finished: bool = False) -> list[RunSpec]:
    """The runs of the study that still need training, as :class:`RunSpec`, source run first.

    A run with a valid record (done or diverged) is skipped; a corrupt record, a failure or a
    missing record is planned again. Pruned runs carry their architecture when
    ``STUDY/specs/<condition>.json`` exists already, else ``arch=None`` (filled in by the job).

    Parameters
    ----------
    config : StudyConfig
    store : StudyStore
    engine : {"auto", "sequential", "fused"}, optional
        Overrides ``config.launcher.engine``.
    include_finished : bool
        Plan every run, recorded or not.
    """
    source = source_run_id(config)
    archs = {}
    for c in config.conditions:
        if c.pruned:
            d = _read_spec(store, config, c)
            archs[c.name] = d
    specs = []
    for condition, point, seed in _all_runs(config):
        run_id = f"{condition.name}/{point.key}/seed{seed}"
        if not include_finished and store.read_record(run_id)[0].finished:
            continue
        specs.append(RunSpec(
            study=config.name, condition=condition, point=point, seed=seed, model=config.model,
            data=config.data, recipe=config.recipe, arch=archs.get(condition.name),
            run_dir=str(store.run_dir(run_id)), keep_weights=(run_id == source),
            device=config.launcher.device, engine=engine or config.launcher.engine))
    return specs


def _read_spec(store: StudyStore, config, condition) -> dict | None:
    """The stored architecture of a pruned condition, if it matches the config."""
    try:
        d = json.loads(store.spec_path(condition.name).read_text())
    except (FileNotFoundError, ValueError):
        return None
    want_source = "checkpoint:" if config.pruning.source == "trained" else "random-init"
    ok = (isinstance(d, dict) and d.get("model") == config.model and d.get("method") == condition.method
          and isinstance(d.get("target_ratio"), (int, float))
          and abs(d["target_ratio"] - condition.ratio) < 1e-9
          and str(d.get("source", "")).startswith(want_source))
    return d if ok else None


def make_pruning_specs(config, store: StudyStore, *, prune_fn=None) -> list[str]:
    """Prune every pruned condition that has no valid spec yet; write ``specs/<condition>.json``.

    Returns the paths written. The importance ranking comes from the pruning source's
    ``model.pt`` (``pruning.source: trained``) or a random He init seeded with the first seed.

    Raises
    ------
    RunFailure
        The trained source is needed but missing, or it diverged.
    """
    missing = [c for c in config.conditions if c.pruned and _read_spec(store, config, c) is None]
    if not missing:
        return []
    source = None
    if config.pruning.source == "trained":
        run_id = source_run_id(config)
        state, record = store.read_record(run_id)
        weights = store.model_path(run_id)
        if state is RunState.DIVERGED:
            raise RunFailure(f"the basemodel at the prior ({run_id}) diverged, so its weights cannot "
                             f"rank filters; see {store.record_path(run_id)}. Use pruning.source: "
                             "random or a prior that trains.")
        if not state.finished or not weights.exists():
            err = store.read_error(run_id)
            where = err.get("traceback") if err else store.run_dir(run_id)
            raise RunFailure(f"pruned conditions need the trained basemodel at the prior ({run_id}) "
                             f"but {weights} is missing; see {where}. If its record exists without "
                             f"weights, delete {store.record_path(run_id)} and sweep again.")
        source = str(weights)
    if prune_fn is None:
        from hplandscape.pruning import prune as prune_fn
    from hplandscape.data import dataset_info

    info = dataset_info(config.data)
    shape = (info.in_channels, info.image_size, info.image_size)
    written = []
    for c in missing:
        spec = prune_fn(config.model, c.method, c.ratio, num_classes=info.num_classes,
                        in_channels=info.in_channels, input_shape=shape, source=source,
                        seed=config.seeds[0])
        data = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
        path = store.spec_path(c.name)
        atomic_write_json(path, data)
        written.append(str(path))
    return written


def _blocks(specs, size: int) -> list:
    """Split runs into blocks of ``size`` that never mix conditions (one spec file per block)."""
    out, current = [], []
    for s in specs:
        if current and (len(current) == size or current[-1].condition != s.condition):
            out.append(current)
            current = []
        current.append(s)
    if current:
        out.append(current)
    return out


# -- running ----------------------------------------------------------------------------------


def run_sweep(config, study_dir, *, executor: str | None = None, max_parallel: int | None = None,
              dry_run: bool = False, force: bool = False, engine: str | None = None,
              extend: bool = False, progress: bool = True, wait: bool = False,
              train_fn=None, prune_fn=None, stale_after: float = STALE_AFTER_S,
              heartbeat_s: float | None = None, poll_s: float = 0.5) -> SweepSummary:
    """Run every run of the study that has no valid record yet.

    Parameters
    ----------
    config : StudyConfig
    study_dir : str or Path
        The study directory (created; refused if made from a different config unless ``force``).
    executor : {"local", "slurm", "debug"}, optional
        Overrides ``config.launcher.executor``.
    max_parallel : int, optional
        Local jobs at once; default: cores // threads per run.
    dry_run : bool
        Print nothing, run nothing: the summary's ``plan`` lists what would run where.
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
        SLURM only: poll ``squeue`` and the store until the submitted jobs end.
    train_fn, prune_fn : callable, optional
        Replacements for ``train_run`` and ``prune`` (tests; must be picklable).
    stale_after, heartbeat_s : float
        Claim staleness and heartbeat period, seconds.
    poll_s : float
        Seconds between checks while waiting.

    Returns
    -------
    SweepSummary

    Raises
    ------
    UserError
        Bad executor or a study directory made from another config.
    RunFailure
        The pruning source could not be trained, so pruned conditions cannot run.
    """
    kind = executor or config.launcher.executor
    if kind not in EXECUTORS:
        raise UserError(f"unknown executor {kind!r}; available: {', '.join(EXECUTORS)}")
    if max_parallel is not None and (not isinstance(max_parallel, int) or max_parallel < 1):
        raise UserError(f"max_parallel must be a positive integer, got {max_parallel!r}")
    study_dir = Path(study_dir)
    store = StudyStore(study_dir, stale_after=stale_after)
    if store.study_yaml.exists() and not force:
        config = _with_stored_extensions(config, store)
    if extend:
        return _extend_rounds(config, study_dir, dict(
            executor=executor, max_parallel=max_parallel, dry_run=dry_run, force=force, engine=engine,
            progress=progress, wait=wait, train_fn=train_fn, prune_fn=prune_fn,
            stale_after=stale_after, heartbeat_s=heartbeat_s, poll_s=poll_s))
    if dry_run and store.study_yaml.exists() and not force:
        _check_only(store, config)
    elif not dry_run:
        if train_fn is None:
            # Fail before anything is launched: a missing data directory would otherwise be
            # discovered by every single run, each recording the same failure.
            from hplandscape.data import dataset_info

            dataset_info(config.data)
        store.init_study(config, force=force)
    ctx = _Context(config, store, kind, engine,
                   max_parallel or default_max_parallel(config.launcher, config.recipe),
                   dict(threads=threads_per_run(config.launcher, config.recipe), stale_after=stale_after,
                        heartbeat_s=heartbeat_s or min(10.0, stale_after / 6), train_fn=train_fn),
                   prune_fn, progress, poll_s)
    todo = plan_runs(config, store, engine=engine)
    planned = len(_all_runs(config))
    if dry_run:
        return SweepSummary(str(study_dir), kind, planned, planned - len(todo), 0, dry_run=True,
                            plan=tuple(ctx.where(todo)))
    if kind == "slurm":
        job_ids = ctx.submit_slurm(todo)
        if wait and job_ids:
            ctx.wait_slurm(job_ids, todo)
        return ctx.summary(planned, planned - len(todo), len(todo), job_ids)
    submitted = ctx.run_local(todo)
    return ctx.summary(planned, planned - len(todo), submitted, ())


def _with_stored_extensions(config, store: StudyStore):
    """Keep grid rows/columns added by earlier ``--extend`` sweeps of this directory."""
    grid = store.read_config_dict().get("grid", {})
    extra_lr = set(config.grid.extra_log10_lr) | set(grid.get("extra_log10_lr") or ())
    extra_wd = set(config.grid.extra_log10_wd) | set(grid.get("extra_log10_wd") or ())
    if extra_lr == set(config.grid.extra_log10_lr) and extra_wd == set(config.grid.extra_log10_wd):
        return config
    return config.with_grid(dataclasses.replace(
        config.grid, extra_log10_lr=tuple(sorted(extra_lr)), extra_log10_wd=tuple(sorted(extra_wd))))


#: Extension rounds of one ``--extend`` call with a waiting executor (method §3: until enclosed).
MAX_EXTENSIONS = 5


def _extend_rounds(config, study_dir: Path, kwargs: dict) -> SweepSummary:
    """Sweep, then add the rows/columns the analysis asks for and sweep only the new points, until
    the near-optimal region of every condition is enclosed (one round on SLURM without ``wait``)."""
    from hplandscape import analysis
    from hplandscape.results import records_table

    store = StudyStore(study_dir)
    kind = kwargs["executor"] or config.launcher.executor
    waits = (kind != "slurm" or kwargs["wait"]) and not kwargs["dry_run"]
    summary = None
    if not kwargs["dry_run"]:
        summary = run_sweep(config, study_dir, **kwargs)  # the current grid first
    elif not store.study_yaml.exists():
        raise UserError(f"nothing to extend in {study_dir}: run `hplandscape sweep` without --extend first")
    for _ in range(MAX_EXTENSIONS if waits else 1):
        table = records_table(store.iter_records())
        if table.empty:
            break
        proposal = analysis.edge_proposals(analysis.analyze(table))
        grid = config.grid
        new_lr = set(proposal["extra_log10_lr"]) - set(grid.log10_lr_values())
        new_wd = set(proposal["extra_log10_wd"]) - set(grid.log10_wd_values())
        if not new_lr and not new_wd:
            break
        config = config.with_grid(dataclasses.replace(
            grid, extra_log10_lr=tuple(sorted(set(grid.extra_log10_lr) | new_lr)),
            extra_log10_wd=tuple(sorted(set(grid.extra_log10_wd) | new_wd))))
        summary = run_sweep(config, study_dir, **kwargs)
        if not waits or not summary.finished:
            break
    return summary if summary is not None else run_sweep(config, study_dir, **kwargs)


def _check_only(store: StudyStore, config) -> None:
    """Refuse a dry run against a directory of another config, without writing anything."""
    from hplandscape.store import _config_differences

    diffs = _config_differences(store.read_config_dict(), config.to_dict())
    if diffs:
        raise UserError(f"{store.study_yaml} was made from a different config ({'; '.join(diffs[:5])}); "
                        "use a new --study-dir or pass --force")


class _Context:
    """State of one sweep call (kept off the public API)."""

    def __init__(self, config, store, kind, engine, max_parallel, job_kwargs, prune_fn, progress, poll_s):
        self.config, self.store, self.kind, self.engine = config, store, kind, engine
        self.max_parallel, self.job_kwargs = max_parallel, job_kwargs
        self.prune_fn, self.progress, self.poll_s = prune_fn, progress, poll_s
        self.source = source_run_id(config)
        self.pruned = [c for c in config.conditions if c.pruned]

    # where runs go ---------------------------------------------------------------------------
    def where(self, todo) -> list[PlannedRun]:
        lc = self.config.launcher
        if self.kind == "slurm":
            part = lc.partition or "default partition"
            where = (f"slurm {part}, {lc.cpus_per_task} cpu, {lc.gpus_per_task} gpu, "
                     f"{lc.mem_gb:g} GB, {lc.timeout_min} min")
        elif self.kind == "local":
            where = f"local, {self.max_parallel} job(s) at once, {lc.runs_per_job} run(s) per job"
        else:
            where = "debug (in this process)"
        out = []
        for s in todo:
            phase = 1 if s.run_id == self.source else 3
            out.append(PlannedRun(phase, s.run_id, f"{where} -> {s.run_dir}"))
            if phase == 1 and self._specs_needed():
                for c in self.pruned:
                    out.append(PlannedRun(2, f"prune {c.name}", f"{where} -> {self.store.spec_path(c.name)}"))
        if not any(p.phase == 1 for p in out) and self._specs_needed():
            for c in self.pruned:
                out.insert(0, PlannedRun(2, f"prune {c.name}", f"this process -> {self.store.spec_path(c.name)}"))
        return out

    def _specs_needed(self) -> bool:
        return any(_read_spec(self.store, self.config, c) is None for c in self.pruned)

    def _job(self, specs, **kw) -> RunJob:
        return RunJob(specs, str(self.store.root), **{**self.job_kwargs, **kw})

    # local and debug -------------------------------------------------------------------------
    def run_local(self, todo) -> int:
        """Phases without idle cores: the pruning source starts first, basemodel runs fill the
        other slots, and pruned runs are released as soon as their architectures exist."""
        bar = self._bar(len(todo))
        ids = [s.run_id for s in todo]
        self.prune_error = None
        try:
            if self.pruned and self._specs_needed() and self.store.run_state(self.source).finished:
                self._make_specs()  # source trained by an earlier sweep
            submitted = self._launch_and_settle(ids, bar, ids)
        finally:
            if bar is not None:
                self._tick(bar, ids)
                bar.close()
        if self.prune_error is not None:
            raise self.prune_error
        return submitted

    def _make_specs(self) -> bool | None:
        try:
            make_pruning_specs(self.config, self.store, prune_fn=self.prune_fn)
            return True
        except RunFailure as e:
            self.prune_error = e
            return None

    def _ready(self, fn, running) -> bool | None:
        """Gate of pruned blocks: their architecture must exist (phase 2 after phase 1)."""
        if not any(s.condition.pruned for s in fn.specs) or not self._specs_needed():
            return True
        if self.prune_error is not None:
            return None
        state = self.store.run_state(self.source)
        if state.finished or state is RunState.FAILED:
            return self._make_specs()  # a failed source raises a RunFailure naming its log
        source_here = any(self.source in {s.run_id for s in f.specs} for f in running)
        if state is RunState.RUNNING or source_here:
            return False  # still training, in this sweep or another one
        return self._make_specs()

    def _launch_and_settle(self, run_ids, bar, all_ids) -> int:
        """Launch the runs that are not finished nor held elsewhere; wait for those held elsewhere;
        repeat (a claim gone stale is launched again). Failed runs are not retried in one call."""
        attempted, submitted = set(), 0
        for _ in range(MAX_ROUNDS):
            states = {r: self.store.run_state(r) for r in run_ids}
            launch = [r for r, s in states.items() if r not in attempted
                      and s in (RunState.MISSING, RunState.CORRUPT, RunState.FAILED)]
            if launch:
                specs = {s.run_id: s for s in plan_runs(self.config, self.store, engine=self.engine)}
                specs = [specs[r] for r in dict.fromkeys(launch) if r in specs]
                attempted.update(s.run_id for s in specs)
                submitted += len(specs)
                self._execute(specs, bar, all_ids)
                continue
            elsewhere = [r for r, s in states.items() if s is RunState.RUNNING]
            if not elsewhere:
                break
            self._wait_elsewhere(elsewhere, bar, all_ids)
        return submitted

    def _execute(self, specs, bar, all_ids) -> None:
        size = max(1, int(self.config.launcher.runs_per_job))
        if specs and specs[0].run_id == self.source:
            blocks = [[specs[0]]] + _blocks(specs[1:], size)
        else:
            blocks = _blocks(specs, size)
        jobs = [self._job(b) for b in blocks]
        ex = make_executor(self.kind, self.store.logs_dir, self.config.launcher, name=self.config.name)
        if self.kind == "debug":
            for fn in jobs:
                if self._ready(fn, []):
                    self._result(ex.submit(fn))
                    self._tick(bar, all_ids)
            return
        done = submit_bounded(ex, jobs, self.max_parallel, poll_s=self.poll_s,
                              on_tick=lambda: self._tick(bar, all_ids), ready=self._ready)
        for _, job in done:
            self._result(job)

    def _result(self, job) -> None:
        try:
            job.result()
        except Exception:
            # RunJob records failures per run; a job that died (killed, out of memory) leaves its
            # runs unrecorded with a stale claim, and the next round or sweep launches them again.
            pass

    def _wait_elsewhere(self, run_ids, bar, all_ids) -> None:
        """Wait until runs held by other jobs are finished or their claims went stale."""
        pending = set(run_ids)
        while pending:
            pending = {r for r in pending if self.store.run_state(r) is RunState.RUNNING}
            self._tick(bar, all_ids)
            if pending:
                time.sleep(max(self.poll_s, 0.5))

    # progress --------------------------------------------------------------------------------
    def _bar(self, total):
        if not self.progress or total == 0:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=self.config.name, unit="run", dynamic_ncols=True)

    def _tick(self, bar, run_ids) -> None:
        if bar is None:
            return
        n = sum(self.store.record_path(r).exists() for r in run_ids)
        if n != bar.n:
            bar.update(n - bar.n)

    # slurm -----------------------------------------------------------------------------------
    def submit_slurm(self, todo) -> tuple:
        """Submit all phases at once, chained with ``afterok`` dependencies."""
        if not todo and not (self.pruned and self._specs_needed()):
            return ()
        lc, logs, name = self.config.launcher, self.store.logs_dir, self.config.name
        ids: list[str] = []
        spec_dep = None
        source = [s for s in todo if s.run_id == self.source]
        rest = [s for s in todo if s.run_id != self.source]
        if self.pruned and self._specs_needed():
            if source or not self.store.read_record(self.source)[0].finished:
                if not source:
                    raise RunFailure(f"the pruning source {self.source} is neither recorded nor planned")
                ex = make_executor("slurm", logs, lc, name=f"{name}-base")
                job = ex.submit(self._job(source, raise_on_failure=True))
                ids.append(job.job_id)
                ex = make_executor("slurm", logs, lc, name=f"{name}-prune",
                                   dependency=f"afterok:{job.job_id}")
                prep = ex.submit(PrepareSpecs(self.config, str(self.store.root), prune_fn=self.prune_fn))
                ids.append(prep.job_id)
                spec_dep = f"afterok:{prep.job_id}"
            else:
                make_pruning_specs(self.config, self.store, prune_fn=self.prune_fn)
                rest = plan_runs(self.config, self.store, engine=self.engine)
                rest = [s for s in rest if s.run_id != self.source]
        else:
            rest = source + rest  # the source run needs no special treatment any more
        size = max(1, int(lc.runs_per_job))
        limit = max_array_size()
        base_blocks = _blocks([s for s in rest if not s.condition.pruned], size)
        pruned_blocks = _blocks([s for s in rest if s.condition.pruned], size)
        for blocks, dep in ((base_blocks, None), (pruned_blocks, spec_dep)):
            if not blocks:
                continue
            ex = make_executor("slurm", logs, lc, name=name, dependency=dep)
            jobs = submit_slurm_arrays(ex, [self._job(b) for b in blocks], limit)
            # Dependencies and squeue name an array by its job id: one id per array.
            ids += sorted({slurm_base_id(j.job_id) for j in jobs}, key=lambda j: (len(j), j))
        return tuple(ids)

    def wait_slurm(self, job_ids, todo) -> None:
        """Follow submitted jobs through ``squeue`` (no ``sacct`` needed) and the store."""
        bar = self._bar(len(todo))
        ids = [s.run_id for s in todo]
        failures = 0
        try:
            while True:
                active = slurm_jobs_active(job_ids)
                if active is False:
                    break
                # An unanswered squeue is retried; only a controller gone for minutes ends the wait.
                failures = failures + 1 if active is None else 0
                if failures > 60:
                    raise RunFailure(f"squeue has not answered for minutes; jobs {', '.join(job_ids)} "
                                     f"may still run: check `squeue` and `hplandscape status {self.store.root}`")
                self._tick(bar, ids)
                time.sleep(max(self.poll_s, 2.0))
            self._tick(bar, ids)
        finally:
            if bar is not None:
                bar.close()

    # summary ---------------------------------------------------------------------------------
    def summary(self, planned, skipped, submitted, job_ids) -> SweepSummary:
        status = self.store.status(self.config)
        totals = {k: sum(c.counts()[k] for c in status.conditions)
                  for k in ("done", "failed", "diverged", "running", "missing")}
        return SweepSummary(str(self.store.root), self.kind, planned, skipped, submitted,
                            finished=status.complete, job_ids=tuple(job_ids),
                            failed_logs=tuple(status.failed), **totals)
