"""Run a study plan on this machine: local processes (bounded parallelism) or in process (debug).

The runner executes :class:`~hplandscape.run.plan.StudyPlan` steps and nothing else decides the
order: a step's runs are released once every step it ``needs`` is done, so basemodel runs fill
the free cores while the pruning source trains, and pruned runs start as soon as their
architectures exist. The prune step runs in this process (it takes seconds).

Runs trained one by one go to workers, one per free slot, that share a work list and claim each
run when they get to it: the slots end together and each worker pays one process start for
many runs (``docs/performance.md``). Fused runs go in blocks of ``launcher.runs_per_job``.

Runs claimed by another sweep (a concurrent ``sweep`` call, or jobs that outlived a killed one)
are not launched: the runner waits until they are recorded or their claims go stale, then plans
again (a stale claim's run is launched in the next round).

Stopping: Ctrl-C reaches every process of the terminal's process group, so the workers stop with
the sweep. SIGTERM (``kill PID``, ``timeout``, a batch system ending the sweep) may reach the sweep
alone, and submitit's workers ignore it; the runner then stops its workers as Ctrl-C does (SIGINT
to each job's controlling process, which ends the job's process) and raises
:class:`~hplandscape.errors.Terminated`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from submitit import LocalJob
from submitit.core.utils import pickle_load

from hplandscape.errors import RunFailure, Terminated
from hplandscape.run.executors import make_executor
from hplandscape.run.plan import StudyPlan
from hplandscape.run.prune_step import make_pruning_specs
from hplandscape.run.runners import Launch, Outcome, Runner
from hplandscape.run.status import RecordedBar
from hplandscape.store import claims
from hplandscape.store.study_store import RunState, StudyStore
from hplandscape.study.runs import source_run

#: Rounds of "launch what is missing, wait for what others run" before a local sweep gives up.
MAX_ROUNDS = 5
#: Seconds a stopped job gets to end; submitit's controller kills its task 1 s after the SIGINT.
STOP_TIMEOUT_S = 15.0
#: Seconds to wait for the tasks killed after a stop to end.
KILL_WAIT_S = 5.0


#: Workers that may die holding no run (a broken environment kills each one as it starts) in one
#: round before the runs of a dying worker's list get no new worker until the next sweep.
MAX_IDLE_DEATHS = 2


@dataclass(frozen=True)
class JobFailure:
    """A job that died without recording its runs (killed, out of memory, an error outside a run).

    ``error`` is what the job's own files say: the exception that ended it, or that its process
    ended without a result; ``runs`` are the runs it was training when it died (none when it held
    none); ``log`` is its stderr file.
    """

    job_id: str
    error: str
    log: str | None
    runs: tuple = ()

    def describe(self) -> str:
        held = f" while training {', '.join(self.runs)}" if self.runs else ""
        return f"job {self.job_id} died{held}: {self.error}" + (f"; log: {self.log}" if self.log else "")


@dataclass(frozen=True)
class LocalOutcome:
    submitted: int
    job_failures: tuple = ()


def run_local(plan_fn: Callable[[], StudyPlan], config, store: StudyStore, *, kind: str,
              max_parallel: int, make_job: Callable, prune_fn=None, progress: bool = True,
              poll_s: float = 0.5) -> LocalOutcome:
    """Execute the study's plan until nothing is left to launch or to wait for.

    Parameters
    ----------
    plan_fn : callable
        Returns the current :class:`StudyPlan` (called once per round).
    kind : {"local", "debug"}
    max_parallel : int
        Jobs at once (local); debug runs one job at a time in this process.
    make_job : callable
        ``make_job(specs, raise_on_failure=False)`` → the picklable job of a block of runs.
    prune_fn : callable, optional
        Replacement for the pruning function (tests).

    Raises
    ------
    RunFailure
        The prune step failed (e.g. the pruning source failed or diverged); every run that did not
        need it was still trained.
    """
    plan = plan_fn()
    bar = RecordedBar(store, [r.run_id for r in plan.runs], config.name, enabled=progress)
    tick = bar.tick
    attempted: set = set()
    submitted, failures, prune_error = 0, [], None
    try:
        with _SigtermStops() as sigterm:
            for round_ in range(MAX_ROUNDS):
                if round_:
                    plan = plan_fn()
                steps = _launchable(plan, store, attempted)
                if any(s.runs or s.conditions for s in steps):
                    attempted.update(r.run_id for s in steps for r in s.runs)
                    result = _execute(steps, config, store, kind, max_parallel, make_job, prune_fn, poll_s, tick,
                                      sigterm)
                    failures += result[0]
                    prune_error = prune_error or result[1]
                    submitted += result[2]
                    if prune_error is not None:
                        break
                    continue
                elsewhere = [r.run_id for r in plan.runs if store.run_state(r.run_id) is RunState.RUNNING]
                if not elsewhere:
                    break
                _wait_elsewhere(store, elsewhere, poll_s, tick)
    except Terminated as e:
        raise (e if e.args else _terminated(0)) from None
    finally:
        bar.close()
    if prune_error is not None:
        raise prune_error
    return LocalOutcome(submitted, tuple(failures))


class LocalRunner(Runner):
    """The ``local`` executor: the plan's runs in local processes, ``max_parallel`` at once
    (:func:`run_local`); the sweep returns when they are done."""

    def check_request(self, config) -> None:
        """Nothing to ask of a scheduler: the machine checks are ``preflight.check_runnable``'s."""

    def run(self, launch: Launch) -> Outcome:
        opts = launch.options
        outcome = run_local(launch.replan, launch.config, launch.store, kind=self.name,
                            max_parallel=launch.max_parallel, make_job=launch.make_job, prune_fn=opts.prune_fn,
                            progress=launch.progress, poll_s=opts.poll_s)
        return Outcome(outcome.submitted, job_failures=outcome.job_failures)

    def follow(self, launch: Launch, outcome: Outcome) -> None:
        """:meth:`run` returned with every run ended: nothing to follow."""

    def where(self, config, max_parallel: int, plan) -> str:
        from hplandscape.run.worker import engine_of

        if engine_of(plan.runs, say=False) == "fused":
            return (f"local, {max_parallel} job(s) at once, fused blocks of up to "
                    f"{config.launcher.runs_per_job} runs")
        return f"local, {max_parallel} worker(s) at once, each taking the next free run"


class DebugRunner(LocalRunner):
    """The ``debug`` executor: the local runner's rounds, each job in this process, one after the
    other (submitit's ``DebugExecutor``; a debugger stops in the run)."""

    def where(self, config, max_parallel: int, plan) -> str:
        return "debug, one after the other in this process"


def _launchable(plan: StudyPlan, store: StudyStore, attempted: set) -> list:
    """The plan's steps without runs tried already in this call or held by another job."""
    out = []
    for s in plan.steps:
        runs = tuple(r for r in s.runs if r.run_id not in attempted
                     and store.run_state(r.run_id) is not RunState.RUNNING)
        out.append(dataclasses.replace(s, runs=runs))
    return out


def local_job_size(runs_per_job: int, runs: int, max_parallel: int, kind: str = "local") -> int:
    """Runs per job on this machine: ``runs_per_job``, made smaller when so few jobs would leave
    slots idle while the last ones finish.

    Every job pays one process start (a torch import, the data); fewer jobs pay it less often,
    but with 75 runs, 2 slots and 25 runs per job the third job trained alone for a third of the
    sweep (``docs/performance.md``). Jobs of at most ``ceil(runs / (2 · max_parallel))`` runs give
    each slot at least two, so the slots finish close together. The debug executor runs
    everything in this process, one job after the other: its size stays as configured.

    >>> local_job_size(25, 75, 2), local_job_size(25, 20, 2), local_job_size(5, 75, 2), local_job_size(25, 75, 2, "debug")
    (19, 5, 5, 25)
    """
    size = max(1, int(runs_per_job))
    if kind == "debug" or runs <= 0:
        return size
    return max(1, min(size, -(-runs // (2 * max(1, max_parallel)))))


def _pulls(kind: str, runs) -> bool:
    """Whether a step's runs go to workers that share one work list (local, sequential engine)
    rather than to blocks of their own (fused blocks, the debug executor)."""
    from hplandscape.run.worker import engine_of

    return kind == "local" and bool(runs) and engine_of(runs, say=False) == "sequential"


@dataclass(frozen=True)
class _Running:
    """A job started in this round: its step (``worker`` for a work list shared by workers), the
    steps that step needs, the submitit job, and its runs (a worker's: the list it shares)."""

    step: str
    needs: tuple
    job: object
    runs: tuple
    pulls: bool = False


def _open(store: StudyStore, run_id: str, since: float, abandoned: set) -> bool:
    """A run a new worker would train: no living job holds it, and in this round it has not been
    settled (:meth:`StudyStore.settled`: recorded, failed, or died with its worker) nor been
    given up after workers kept dying without holding a run (``abandoned``)."""
    return (run_id not in abandoned and store.run_state(run_id) is not RunState.RUNNING
            and not store.settled(run_id, since))


def _execute(steps, config, store, kind, max_parallel, make_job, prune_fn, poll_s, tick, sigterm):
    """Run one round of steps; returns (job failures, prune error or None, runs this call trained:
    a run another job claimed first is not counted).

    Runs trained one by one on this machine go to *workers*: whenever a slot is free and some
    ready step has runs nobody holds, a job starts with all of them as a shared work list and
    claims each run when it gets to it (:class:`~hplandscape.run.worker.RunJob`'s ``pull_since``).
    The slots then finish within one run of each other whatever the runs cost, and a sweep pays
    one process start per worker, not per block. Fused runs and the debug executor keep blocks.

    A worker that dies (killed, out of memory) loses only the run it was training: that run is
    settled for this round (it might kill every worker; the next sweep tries it again) and a new
    worker takes the rest of the list. Workers that die holding no run are replaced
    ``MAX_IDLE_DEATHS`` times in a round; after that a dying worker's list waits for the next sweep.

    On SIGTERM (``sigterm``) the jobs still running are stopped before :class:`Terminated` goes on.
    """
    started = time.time()
    pull = {s.name for s in steps if _pulls(kind, s.runs)}
    block_runs = sum(len(s.runs) for s in steps if s.name not in pull)
    size = local_job_size(config.launcher.runs_per_job, block_runs, max_parallel, kind)
    pending = [(s.name, s.needs, make_job(block)) for s in steps if s.name not in pull for block in s.blocks(size)]
    waiting = {s.name: s for s in steps}  # steps not finished yet
    done, failed = set(), set()
    abandoned = set()  # runs no new worker gets this round: workers on their list kept dying idle
    idle_deaths = 0  # workers that died holding no run
    ex = make_executor(kind, store.logs_dir, config.launcher, name=config.name)
    running, failures, prune_error, outcomes = [], [], None, []  # running: _Running
    source_id = source_run(config).run_id

    def submit(job):
        with _children_write_to(store.local_controllers_log if kind == "local" else None):
            return ex.submit(job)

    try:
        while True:
            for name, step in list(waiting.items()):
                if set(step.needs) & failed:  # what it needs will not come in this call
                    failed.add(name)
                    del waiting[name]
                elif not set(step.needs) <= done:
                    continue
                elif step.conditions:
                    if store.run_state(source_id) is RunState.RUNNING:
                        continue  # the source trains in another sweep: wait for its weights
                    try:
                        make_pruning_specs(config, store.root, prune_fn=prune_fn)
                        done.add(name)
                    except RunFailure as e:
                        prune_error = e
                        failed.add(name)
                    del waiting[name]
                elif name in pull:
                    held = {r for item in running if item.pulls for r in item.runs}
                    if all(store.settled(r.run_id, started) or (r.run_id in abandoned and r.run_id not in held)
                           for r in step.runs):
                        done.add(name)
                        del waiting[name]
                elif not any(n == name for n, _, _ in pending) and not any(r.step == name for r in running):
                    done.add(name)
                    del waiting[name]
            pending = [p for p in pending if not set(p[1]) & failed]
            for item in [p for p in pending if set(p[1]) <= done]:
                if kind != "debug" and len(running) >= max_parallel:
                    break
                pending.remove(item)
                block = _Running(item[0], item[1], None, tuple(s.run_id for s in item[2].specs))
                with sigterm.held():  # a job is on the running list before SIGTERM can stop the runner
                    block = dataclasses.replace(block, job=submit(item[2]))
                    if kind != "debug":
                        running.append(block)
                if kind == "debug":  # runs in this process, now
                    outcomes += _collect(block, store, failures)
            while len(running) < max_parallel:
                work = [r for s in steps if s.name in pull and s.name in waiting and set(s.needs) <= done
                        for r in s.runs if _open(store, r.run_id, started, abandoned)]
                ids = {r.run_id for r in work}
                if len(work) <= sum(1 for item in running if item.pulls and ids & set(item.runs)):
                    break  # the workers already on these runs are as many as the runs
                with sigterm.held():
                    running.append(_Running("worker", (), submit(make_job(work, pull_since=started)),
                                            tuple(r.run_id for r in work), pulls=True))
            still = []
            for item in running:
                if not item.job.done():
                    still.append(item)
                    continue
                before = len(failures)
                outcomes += _collect(item, store, failures)
                if len(failures) > before and item.pulls and not failures[-1].runs:
                    idle_deaths += 1  # it died holding no run: nothing tells it will not happen again
                    if idle_deaths >= MAX_IDLE_DEATHS:
                        abandoned.update(item.runs)
            running = still
            tick()
            if not (pending or running or waiting):
                return failures, prune_error, sum(o.get("state") != "skipped" for o in outcomes)
            if kind != "debug" or not (pending and any(set(p[1]) <= done for p in pending)):
                time.sleep(poll_s)
    except Terminated:
        stopped = _stop_jobs([item.job for item in running], sigterm, tasks=_claimed_by(store, running))
        raise _terminated(stopped, kind) from None


@contextlib.contextmanager
def _children_write_to(path):
    """Processes started inside the block write their stdout and stderr to ``path``.

    submitit's local executor starts one supervising process per job that inherits the terminal;
    on Ctrl-C each printed a KeyboardInterrupt traceback after the prompt had returned. Their
    output belongs in the study's logs. (The jobs' own output goes to their log files anyway.)
    """
    if path is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "a") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _collect(item: _Running, store: StudyStore, failures: list) -> list:
    """The outcomes of a finished job; a job that died is added to ``failures`` as its own files
    explain it, with the runs it was training (their claims name it).

    :class:`~hplandscape.run.worker.RunJob` records each run's failure itself; a death here is around
    the runs (killed, out of memory, an error before the first), leaving the run it held
    unrecorded with a stale claim, so the next sweep trains it again.
    """
    job = item.job
    try:
        if isinstance(job, LocalJob) and not job.paths.result_pickle.exists():
            # The process ended without a result: killed. (job.result() would wait 15 s for one.)
            failures.append(_job_failure(job, None, _held_by(store, job, item.runs)))
            return []
        return [o for o in (job.result() or ()) if isinstance(o, dict)]
    except Exception as e:  # noqa: BLE001 - any job death is reported, none is fatal to the sweep
        failures.append(_job_failure(job, e, _held_by(store, job, item.runs)))
        return []


def _held_by(store: StudyStore, job, run_ids) -> tuple:
    """The runs among ``run_ids`` that the job (now ended) held unfinished: their claims name it."""
    worker = str(getattr(job, "job_id", ""))
    held = []
    for run_id in run_ids:
        claim = claims.read_claim(store.files(run_id))
        if claim is not None and claim.get("worker") == worker and not store.read_record(run_id)[0].finished:
            held.append(run_id)
    return tuple(held)


def _job_failure(job, error: Exception | None, runs: tuple) -> JobFailure:
    """Why a job died, from what is its own: the exception its result holds (a local job) or that
    it raised (the debug executor), else the end of a traceback in its stderr; failing those, that
    it ended without a result. Nothing else from its logs is quoted: their last line is often
    submitit's or a run's progress, unrelated to the death."""
    paths = getattr(job, "paths", None)
    log = str(paths.stderr) if paths is not None else None
    if isinstance(job, LocalJob):
        why = None
        if paths.result_pickle.exists():
            with contextlib.suppress(Exception):
                outcome, trace = pickle_load(paths.result_pickle)
                why = _exception_line(str(trace)) if outcome == "error" else None
        if why is None and paths.stderr.exists():
            why = _exception_line(paths.stderr.read_text(errors="replace"))
        why = why or ("its process ended without a result (killed: out of memory, a signal, or a crash) "
                      "and left no traceback")
    else:
        text = str(error).strip().splitlines() if error is not None else []
        why = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return JobFailure(str(getattr(job, "job_id", "?")), why, log, runs)


def _exception_line(text: str) -> str | None:
    r"""The line naming the exception of the last Python traceback in ``text`` (or a fatal error
    of the interpreter), None when there is none.

    >>> log = ["submitit INFO - starting", "Traceback (most recent call last):", '  File "a.py", line 1',
    ...        "ValueError: bad", "submitit INFO - exiting"]
    >>> _exception_line("\n".join(log)), _exception_line("submitit INFO - starting")
    ('ValueError: bad', None)
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last):")]
    if starts:
        for line in lines[starts[-1] + 1:]:
            if line.strip() and not line[0].isspace():
                return line.strip()
    fatal = [line.strip() for line in lines if line.startswith("Fatal Python error:")]
    return fatal[-1] if fatal else None


class _SigtermStops:
    """While the block runs, SIGTERM raises :class:`Terminated` in this (main) thread, as Ctrl-C
    raises ``KeyboardInterrupt``; the previous handler comes back at the end.

    Inside :meth:`held` (a job being started) the signal waits for the block's end, so no job
    starts untracked; while the runner stops its jobs (:meth:`stopping`) another SIGTERM is ignored.
    Outside the main thread signals cannot be handled: the block runs without.
    """

    def __init__(self):
        self.held_depth, self.pending, self.ignore = 0, False, False
        self.previous = None

    def __enter__(self) -> "_SigtermStops":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)

    def _handle(self, signum, frame) -> None:
        if self.ignore:
            return
        if self.held_depth:
            self.pending = True
            return
        raise Terminated()

    @contextlib.contextmanager
    def held(self):
        self.held_depth += 1
        try:
            yield
        finally:
            self.held_depth -= 1
        if self.pending and not self.held_depth:
            self.pending = False
            raise Terminated()

    @contextlib.contextmanager
    def stopping(self):
        self.ignore = True
        try:
            yield
        finally:
            self.ignore = False


def _stop_jobs(jobs, sigterm: _SigtermStops, timeout_s: float = STOP_TIMEOUT_S, tasks=()) -> int:
    """Stop the jobs still running as Ctrl-C does and wait (at most ``timeout_s``) until they have
    ended; returns how many were stopped.

    Ctrl-C sends SIGINT to every process of the terminal's group; here each job's controlling
    process gets it (``LocalJob.cancel``), which interrupts its task and kills it a second later.
    A run interrupted so keeps its last checkpoint, and its claim goes stale with its process.
    ``tasks``: pids of the processes training the jobs' runs (their claims name them); any of
    them, or of the controllers' children, still running after the wait is killed (SIGKILL), so
    no task trains on once the sweep says it stopped, even one whose controller is gone and whom
    no signal of its controller reaches.
    """
    with sigterm.stopping():
        alive = [job for job in jobs if not job.done()]
        # the tasks the controllers run: a controller SIGKILLs its task and exits without waiting
        # for it to die, so on a busy machine the task may outlive its controller for a moment
        tasks = set(tasks) | set(_children({getattr(getattr(job, "_process", None), "pid", None)
                                            for job in alive} - {None}))
        for job in alive:
            job.cancel(check=False)
        deadline = time.monotonic() + timeout_s
        while (any(not job.done() for job in alive) or any(_running(pid) for pid in tasks)) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [pid for pid in tasks if _running(pid)]
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + KILL_WAIT_S
        while any(_running(pid) for pid in left) and time.monotonic() < deadline:
            time.sleep(0.05)
    return len(alive)


def _claimed_by(store: StudyStore, running) -> list[int]:
    """Pids of the processes that hold claims of the runs of ``running`` for those very jobs (the
    claim names its job as ``worker``; another sweep's claims are left alone), on this host."""
    host, pids = socket.gethostname(), []
    for item in running:
        job_id = str(getattr(item.job, "job_id", ""))
        for run_id in item.runs:
            claim = claims.read_claim(store.files(run_id)) or {}
            pid = claim.get("pid")
            if claim.get("worker") == job_id and claim.get("host") == host and isinstance(pid, int) \
                    and pid != os.getpid():
                pids.append(pid)
    return pids


def _children(parents: set) -> list[int]:
    """The pids of the processes whose parent is in ``parents`` (Linux's /proc; none elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        if int(fields[1]) in parents:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _terminated(workers: int, kind: str = "local") -> Terminated:
    """What a sweep stopped by SIGTERM says (one line, printed by the CLI)."""
    if kind == "debug":
        stopped = "stopped the run it was training in this process"
    elif workers:
        stopped = f"stopped {workers} worker(s) of this sweep and the runs they were training"
    else:
        stopped = "no worker of this sweep was running"
    return Terminated(f"terminated by SIGTERM: {stopped}; recorded runs are kept and interrupted runs continue "
                      "from their last checkpoint: re-run the same command to resume")


def _wait_elsewhere(store: StudyStore, run_ids, poll_s: float, tick) -> None:
    """Wait until runs held by other jobs are finished or their claims went stale."""
    pending = set(run_ids)
    while pending:
        pending = {r for r in pending if store.run_state(r) is RunState.RUNNING}
        tick()
        if pending:
            time.sleep(max(poll_s, 0.5))
