"""The worker side: what runs inside a job, whichever executor started it.

The unit shipped to a worker is a :class:`RunJob`: a block of :class:`~hplandscape.study.run_spec.RunSpec`
and the study directory. For each run it takes the claim, trains with
:func:`hplandscape.training.sequential_engine.train_run`, writes the record atomically and drops the epoch checkpoint.
A run that raises is recorded as failed (``error.json`` names the traceback) and the block goes on.

A block is either the job's own (its runs claimed together before the first trains: what SLURM
arrays and fused blocks use) or a work list shared with other jobs (``pull_since``): the job claims
each run just before training it and skips those another job holds, so jobs that share a list
finish together whatever each run costs (the local runner's workers).

On SLURM timeout or preemption submitit signals the job (USR2); :meth:`RunJob.checkpoint` hands
back a resubmission of the same block, which skips the recorded runs, takes back its own claim
(a requeued job keeps its id) and lets ``train_run`` resume from the last epoch checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import traceback

import submitit
from submitit.core.utils import UncompletedJobError

from hplandscape.errors import RunFailure
from hplandscape.store import claims
from hplandscape.store.claims import HEARTBEAT_S, STALE_AFTER_S, current_job_id
from hplandscape.store.study_store import RunState, StudyStore, set_aside

# -- the job ----------------------------------------------------------------------------------


class RunJob(submitit.helpers.Checkpointable):
    """Train a block of runs of one study; picklable, checkpointable.

    Parameters
    ----------
    specs : sequence of RunSpec
        The runs, trained one after the other, or as one fused network
        (:func:`hplandscape.training.fused_engine.train_fused`) when their engine resolves to ``fused``; a fused
        block that raises records all of its runs as failed.
    study_dir : str
        The study directory; the job writes records, errors and claims there.
    threads : int, optional
        torch CPU threads when the recipe does not fix them.
    stale_after, heartbeat_s : float
        Claim staleness and heartbeat period in seconds (see :mod:`hplandscape.store.claims`).
    train_fn : callable, optional
        Replacement for :func:`hplandscape.training.sequential_engine.train_run` (tests); must be picklable.
    raise_on_failure : bool
        Raise :class:`RunFailure` at the end of the block when a run failed, so that a SLURM
        dependency (``afterok``) on this job is not satisfied.
    pull_since : float, optional
        The block is a work list shared with other jobs: claim each run only when its turn comes
        (sequential engine), and skip runs tried since this time (the sweep's start) without
        success: they failed, or killed the worker that held them (:meth:`StudyStore.settled`).
        None: claim the whole block first.

    Returns
    -------
    list of dict
        ``{"run_id", "state"}`` per run: ``done``, ``diverged``, ``failed`` or ``skipped`` (finished
        already, or held by another job).
    """

    def __init__(self, specs, study_dir, *, threads=None, stale_after=STALE_AFTER_S,
                 heartbeat_s=HEARTBEAT_S, train_fn=None, raise_on_failure=False, pull_since=None):
        self.specs = tuple(specs)
        self.study_dir = str(study_dir)
        self.threads = threads
        self.stale_after = stale_after
        self.heartbeat_s = heartbeat_s
        self.train_fn = train_fn
        self.raise_on_failure = raise_on_failure
        self.pull_since = pull_since

    def __repr__(self) -> str:
        return f"RunJob({len(self.specs)} runs of {self.study_dir})"

    def __call__(self) -> list:
        store = StudyStore(self.study_dir, stale_after=self.stale_after)
        job_id = current_job_id()
        worker = _in_job(lambda env: str(env.job_id))
        _set_threads(self.threads, self.specs)
        if any(s.model_source for s in self.specs):  # a model named by import path: registered before
            from hplandscape.models.imported import use_source  # a pruned spec's file names it

            for spec in self.specs:
                use_source(spec.model_source)
        outcomes = {}

        def take(spec) -> bool:
            try:
                taken = claims.take(store.files(spec.run_id), job_id, stale_after=self.stale_after, worker=worker,
                                    finished=lambda: store.settled(spec.run_id, self.pull_since))
            except OSError as e:  # the claim lock or the claim cannot be written: the run fails, naming it
                outcomes[spec.run_id] = _store_failure(store, spec, job_id, e)
                return False
            if taken:
                return True
            outcomes[spec.run_id] = "skipped"
            return False

        if self.pull_since is not None and (self.train_fn is not None or engine_of(self.specs) == "sequential"):
            for spec in self.specs:  # one at a time: the other workers of the list take the rest
                if take(spec):
                    outcomes[spec.run_id] = _train_one(store, spec, job_id, self.train_fn, self.heartbeat_s)
        else:
            claimed = [spec for spec in self.specs if take(spec)]
            if self.train_fn is None and engine_of(claimed) == "fused":
                outcomes.update(_train_fused_block(store, claimed, job_id, self.heartbeat_s))
            else:
                for spec in claimed:
                    outcomes[spec.run_id] = _train_one(store, spec, job_id, self.train_fn, self.heartbeat_s)
        result = [{"run_id": s.run_id, "state": outcomes[s.run_id]} for s in self.specs]
        failed = [r["run_id"] for r in result if r["state"] == "failed"]
        if failed and self.raise_on_failure:
            logs = ", ".join(str(store.error_log_path(r)) for r in failed)
            raise RunFailure(f"{len(failed)} run(s) failed: {', '.join(failed)}; tracebacks: {logs}")
        return result

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Resubmit the same block: recorded runs are skipped, the interrupted one resumes from its
        epoch checkpoint (the engine finds it in the run directory)."""
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


# -- one run, or one fused block, inside the job -----------------------------------------------


def _set_threads(threads, specs) -> None:
    if not threads or any(s.recipe.threads for s in specs):
        return  # the recipe's own setting wins (the engine applies it)
    # Before torch is imported the environment is enough, and importing torch here just to
    # set it would cost seconds per job.
    os.environ["OMP_NUM_THREADS"] = str(int(threads))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(threads))


def engine_of(specs, say: bool = True) -> str:
    """``fused`` when every run asks for it (``auto``: on CUDA), there are several and the
    fused engine can train them all (not masked runs nor gradient flow: those train one by one);
    else ``sequential``. ``say``: print why runs that asked for fusion train one by one."""
    if len(specs) < 2 or all(s.engine == "sequential" for s in specs):
        return "sequential"
    from hplandscape.training.fused_engine import choose_engine, fused_unsupported

    engines = {choose_engine(s.engine, s.device) for s in specs}
    if engines != {"fused"}:
        return "sequential"
    why = next((w for w in map(fused_unsupported, specs) if w is not None), None)
    if why is not None:
        if say:
            print(f"{len(specs)} runs train one by one (sequential engine): {why}", flush=True)
        return "sequential"
    return "fused"


def _resolve(store: StudyStore, spec):
    """Fill in the pruned architecture (or the masks' spec) when the spec was planned before it
    existed (SLURM steps submitted together with a dependency)."""
    if spec.condition.sparse and spec.sparsity is None:
        masks = store.read_mask_spec(spec.condition.name)
        if masks is None:
            raise RunFailure(f"masks of {spec.condition.name!r} are missing: {store.spec_path(spec.condition.name)}")
        return dataclasses.replace(spec, sparsity={**masks.to_dict(), "content_hash": masks.content_hash})
    if spec.arch is not None or not spec.condition.structured:
        return spec
    arch = store.read_arch(spec.condition.name)
    if arch is None:
        raise RunFailure(f"pruned architecture of {spec.condition.name!r} is missing: "
                         f"{store.spec_path(spec.condition.name)}")
    return dataclasses.replace(spec, arch={**arch.to_dict(), "content_hash": arch.content_hash})


def _keep_invalid_record(store: StudyStore, spec) -> None:
    """A damaged record is kept for inspection, never silently overwritten by the new one."""
    if store.record_problem(spec.run_id) is not None:
        moved = set_aside(store.record_path(spec.run_id))
        print(f"{spec.run_id}: invalid record moved to {moved}", flush=True)


def _store_record(store: StudyStore, spec, record: dict) -> str:
    store.write_record(spec.run_id, record)
    # The record is safely on disk now; the checkpoint only mattered for resuming (the final
    # weights of the pruning source live in model.pt, not here).
    store.checkpoint_path(spec.run_id).unlink(missing_ok=True)
    return RunState.DIVERGED.value if record.get("diverged") else RunState.DONE.value


def _in_job(read):
    """``read(env)`` of submitit's environment of the job this process runs (its id, its log
    paths), or None outside a submitit job (a direct call)."""
    try:
        return read(submitit.JobEnvironment())
    except Exception:  # noqa: BLE001 - submitit raises several types outside a job
        return None


def _store_failure(store: StudyStore, spec, job_id: str, error: Exception) -> str:
    log = _in_job(lambda env: str(env.paths.stdout))
    store.write_error(spec.run_id, job_id, error, traceback.format_exc(), log)
    return RunState.FAILED.value


def _train_one(store: StudyStore, spec, job_id: str, train_fn, heartbeat_s: float) -> str:
    if train_fn is None:
        from hplandscape.training.sequential_engine import train_run as train_fn
    _keep_invalid_record(store, spec)
    ckpt = store.checkpoint_path(spec.run_id)
    # Into the job's log: whoever reads it after a preemption sees where the run picked up.
    print(f"{spec.run_id}: {'resuming from ' + str(ckpt) if ckpt.exists() else 'starting'}", flush=True)
    try:
        with claims.heartbeat([store.files(spec.run_id)], heartbeat_s):
            record = train_fn(_resolve(store, spec))
        state = _store_record(store, spec, record)
    except UncompletedJobError:
        raise  # submitit ending the job (timed out too often): not a failure of this run
    except Exception as e:
        state = _store_failure(store, spec, job_id, e)
    # Preemption (SystemExit from submitit's signal handler) skips this on purpose: the claim
    # stays with this job id so the requeued job takes it back.
    claims.release(store.files(spec.run_id), job_id)
    return state


def _train_fused_block(store: StudyStore, specs, job_id: str, heartbeat_s: float) -> dict:
    from hplandscape.training.fused_engine import train_fused

    out = {}
    for spec in specs:
        _keep_invalid_record(store, spec)
    try:
        with claims.heartbeat([store.files(s.run_id) for s in specs], heartbeat_s):
            records = train_fused([_resolve(store, s) for s in specs])
        for spec, record in zip(specs, records):
            out[spec.run_id] = _store_record(store, spec, record)
    except UncompletedJobError:
        raise
    except Exception as e:
        for spec in specs:
            if spec.run_id not in out:
                out[spec.run_id] = _store_failure(store, spec, job_id, e)
    for spec in specs:
        claims.release(store.files(spec.run_id), job_id)
    return out
