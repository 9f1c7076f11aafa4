"""Launching runs through submitit: local, SLURM or in-process, all checkpointable.

The unit shipped to a worker is a :class:`RunJob`: a block of :class:`~hplandscape.spec.RunSpec`
and the study directory. For each run it takes the claim, trains with
:func:`hplandscape.train.train_run`, writes the record atomically and drops the epoch checkpoint.
A run that raises is recorded as failed (``error.json`` names the traceback) and the block goes on.

On SLURM timeout or preemption submitit signals the job (USR2); :meth:`RunJob.checkpoint` hands
back a resubmission of the same block, which skips the recorded runs, takes back its own claim
(a requeued job keeps its id) and lets ``train_run`` resume from the last epoch checkpoint.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

import submitit
from submitit.core.utils import UncompletedJobError

from hplandscape.errors import RunFailure, UserError
from hplandscape.store import HEARTBEAT_S, STALE_AFTER_S, RunState, StudyStore, current_job_id

EXECUTORS = ("local", "slurm", "debug")
#: Local jobs have no scheduler limit; submitit's 2-minute default would interrupt real runs.
LOCAL_TIMEOUT_MIN = 7 * 24 * 60
#: SLURM's own default when ``scontrol show config`` cannot be read.
DEFAULT_MAX_ARRAY_SIZE = 1001


def available_cpus() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_run(launcher_cfg, recipe=None) -> int:
    """Torch CPU threads one run uses: the recipe's ``threads`` or the launcher's ``cpus_per_task``."""
    threads = getattr(recipe, "threads", None) if recipe is not None else None
    return max(1, int(threads or launcher_cfg.cpus_per_task or 1))


def default_max_parallel(launcher_cfg, recipe=None) -> int:
    """Local jobs at once: cores // threads per run (at least 1)."""
    return max(1, available_cpus() // threads_per_run(launcher_cfg, recipe))


# -- the job ----------------------------------------------------------------------------------


class RunJob(submitit.helpers.Checkpointable):
    """Train a block of runs of one study; picklable, checkpointable.

    Parameters
    ----------
    specs : sequence of RunSpec
        The runs, trained one after the other, or as one fused network
        (:func:`hplandscape.fused.train_fused`) when their engine resolves to ``fused``; a fused
        block that raises records all of its runs as failed.
    study_dir : str
        The study directory; the job writes records, errors and claims there.
    threads : int, optional
        torch CPU threads when the recipe does not fix them.
    stale_after, heartbeat_s : float
        Claim staleness and heartbeat period in seconds (see :mod:`hplandscape.store`).
    train_fn : callable, optional
        Replacement for :func:`hplandscape.train.train_run` (tests); must be picklable.
    raise_on_failure : bool
        Raise :class:`RunFailure` at the end of the block when a run failed, so that a SLURM
        dependency (``afterok``) on this job is not satisfied.

    Returns
    -------
    list of dict
        ``{"run_id", "state"}`` per run: ``done``, ``diverged``, ``failed`` or ``skipped`` (finished
        already, or held by another job).
    """

    def __init__(self, specs, study_dir, *, threads=None, stale_after=STALE_AFTER_S,
                 heartbeat_s=HEARTBEAT_S, train_fn=None, raise_on_failure=False):
        self.specs = tuple(specs)
        self.study_dir = str(study_dir)
        self.threads = threads
        self.stale_after = stale_after
        self.heartbeat_s = heartbeat_s
        self.train_fn = train_fn
        self.raise_on_failure = raise_on_failure

    def __repr__(self) -> str:
        return f"RunJob({len(self.specs)} runs of {self.study_dir})"

    def __call__(self) -> list:
        store = StudyStore(self.study_dir, stale_after=self.stale_after)
        job_id = current_job_id()
        self._set_threads()
        claimed, outcomes = [], {}
        for spec in self.specs:
            if store.claim(spec.run_id, job_id):
                claimed.append(spec)
            else:
                outcomes[spec.run_id] = "skipped"
        if self._engine(claimed) == "fused":
            outcomes.update(self._run_fused(store, claimed, job_id))
        else:
            for spec in claimed:
                outcomes[spec.run_id] = self._run_one(store, spec, job_id)
        result = [{"run_id": s.run_id, "state": outcomes[s.run_id]} for s in self.specs]
        failed = [r["run_id"] for r in result if r["state"] == "failed"]
        if failed and self.raise_on_failure:
            logs = ", ".join(str(store.error_log_path(r)) for r in failed)
            raise RunFailure(f"{len(failed)} run(s) failed: {', '.join(failed)}; tracebacks: {logs}")
        return result

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Resubmit the same block: recorded runs are skipped, the interrupted one resumes from its
        epoch checkpoint (``train_run`` finds ``checkpoint.pt``)."""
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)

    # internals ------------------------------------------------------------------------------
    def _set_threads(self) -> None:
        if not self.threads or any(s.recipe.threads for s in self.specs):
            return  # the recipe's own setting wins (train_run applies it)
        # Before torch is imported the environment is enough, and importing torch here just to
        # set it would cost seconds per job.
        os.environ["OMP_NUM_THREADS"] = str(int(self.threads))
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(int(self.threads))

    def _engine(self, specs) -> str:
        """``fused`` when every claimed run asks for it (``auto``: on CUDA) and there are several."""
        if self.train_fn is not None or len(specs) < 2 or all(s.engine == "sequential" for s in specs):
            return "sequential"
        from hplandscape.fused import choose_engine

        engines = {choose_engine(s.engine, s.device) for s in specs}
        return "fused" if engines == {"fused"} else "sequential"

    def _train(self):
        if self.train_fn is not None:
            return self.train_fn
        from hplandscape.train import train_run

        return train_run

    def _resolve(self, store: StudyStore, spec):
        """Fill in the pruned architecture when the spec was planned before it existed (SLURM
        phases submitted together with a dependency)."""
        if spec.arch is not None or not spec.condition.pruned:
            return spec
        import dataclasses
        import json

        path = store.spec_path(spec.condition.name)
        try:
            arch = json.loads(path.read_text())
        except (FileNotFoundError, ValueError) as e:
            raise RunFailure(f"pruned architecture of {spec.condition.name!r} is missing or "
                             f"unreadable: {path} ({type(e).__name__})") from None
        return dataclasses.replace(spec, arch=arch)

    def _finish(self, store: StudyStore, spec, record: dict) -> str:
        store.write_record(spec.run_id, record)
        # The record is safely on disk now; the checkpoint only mattered for resuming (the final
        # weights of the pruning source live in model.pt, not here).
        store.checkpoint_path(spec.run_id).unlink(missing_ok=True)
        return RunState.DIVERGED.value if record.get("diverged") else RunState.DONE.value

    def _fail(self, store: StudyStore, spec, job_id: str, error: Exception) -> str:
        log = None
        try:
            log = str(submitit.JobEnvironment().paths.stdout)
        except Exception:  # not inside a submitit job (debug executor, direct call)
            pass
        store.write_error(spec.run_id, job_id, error, traceback.format_exc(), log)
        return RunState.FAILED.value

    def _run_one(self, store: StudyStore, spec, job_id: str) -> str:
        train = self._train()
        ckpt = store.checkpoint_path(spec.run_id)
        # Into the job's log: whoever reads it after a preemption sees where the run picked up.
        print(f"{spec.run_id}: {'resuming from ' + str(ckpt) if ckpt.exists() else 'starting'}", flush=True)
        try:
            with store.heartbeat([spec.run_id], self.heartbeat_s):
                record = train(self._resolve(store, spec))
            state = self._finish(store, spec, record)
        except UncompletedJobError:
            raise  # submitit ending the job (timed out too often): not a failure of this run
        except Exception as e:
            state = self._fail(store, spec, job_id, e)
        # Preemption (SystemExit from submitit's signal handler) skips this on purpose: the claim
        # stays with this job id so the requeued job takes it back.
        store.release(spec.run_id, job_id)
        return state

    def _run_fused(self, store: StudyStore, specs, job_id: str) -> dict:
        from hplandscape.fused import train_fused

        out = {}
        try:
            with store.heartbeat([s.run_id for s in specs], self.heartbeat_s):
                records = train_fused([self._resolve(store, s) for s in specs])
            for spec, record in zip(specs, records):
                out[spec.run_id] = self._finish(store, spec, record)
        except UncompletedJobError:
            raise
        except Exception as e:
            for spec in specs:
                if spec.run_id not in out:
                    out[spec.run_id] = self._fail(store, spec, job_id, e)
        for spec in specs:
            store.release(spec.run_id, job_id)
        return out


class PrepareSpecs(submitit.helpers.Checkpointable):
    """A job that makes the pruned architecture specs of a study (SLURM phase 2).

    Parameters
    ----------
    config : StudyConfig
    study_dir : str
    prune_fn : callable, optional
        Replacement for :func:`hplandscape.pruning.prune` (tests).
    """

    def __init__(self, config, study_dir, *, prune_fn=None):
        self.config = config
        self.study_dir = str(study_dir)
        self.prune_fn = prune_fn

    def __call__(self) -> list:
        from hplandscape.sweep import make_pruning_specs

        return make_pruning_specs(self.config, StudyStore(self.study_dir), prune_fn=self.prune_fn)


# -- executors --------------------------------------------------------------------------------


def make_executor(kind: str, folder, launcher_cfg, *, name: str = "hplandscape",
                  dependency: str | None = None):
    """A submitit executor for ``kind`` configured from the study's launcher settings.

    Parameters
    ----------
    kind : {"local", "slurm", "debug"}
        ``local``: one process per job on this machine (the caller bounds how many run at once,
        see :func:`submit_bounded`); ``slurm``: ``sbatch`` job arrays; ``debug``: in process.
    folder : str or Path
        Where submitit writes pickles and logs (``STUDY/logs``).
    launcher_cfg : LauncherConfig
        partition, gpus_per_task, cpus_per_task, mem_gb, timeout_min, array_parallelism and
        slurm_additional_parameters are used for SLURM.
    name : str
        SLURM job name.
    dependency : str, optional
        SLURM dependency such as ``"afterok:1234"``; jobs wait for it without a login-node loop.

    Raises
    ------
    UserError
        Unknown ``kind``, or ``slurm`` without a SLURM installation.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "local":
        ex = submitit.LocalExecutor(folder)
        ex.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        return ex
    if kind == "debug":
        return submitit.DebugExecutor(folder)
    if kind != "slurm":
        raise UserError(f"unknown executor {kind!r}; available: {', '.join(EXECUTORS)}")
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise UserError("executor 'slurm' needs SLURM's sbatch and srun on PATH; run on a login node "
                        "of a cluster, or use --executor local (slurm/local-cluster.sh starts a "
                        "one-node test cluster)")
    ex = submitit.SlurmExecutor(folder)
    extra = dict(launcher_cfg.slurm_additional_parameters or {})
    if dependency:
        extra["dependency"] = dependency
        # A failed prerequisite would leave dependants pending forever; cancel them instead.
        extra.setdefault("kill-on-invalid-dep", "yes")
    params = dict(job_name=name, time=int(launcher_cfg.timeout_min),
                  cpus_per_task=int(launcher_cfg.cpus_per_task),
                  mem=f"{int(round(launcher_cfg.mem_gb * 1024))}MB",
                  array_parallelism=int(launcher_cfg.array_parallelism))
    if launcher_cfg.partition:
        params["partition"] = launcher_cfg.partition
    if launcher_cfg.gpus_per_task:
        params["gpus_per_task"] = int(launcher_cfg.gpus_per_task)
    if extra:
        params["additional_parameters"] = extra
    ex.update_parameters(**params)
    return ex


def max_array_size() -> int:
    """The cluster's ``MaxArraySize`` from ``scontrol show config`` (SLURM's default when unreadable)."""
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return DEFAULT_MAX_ARRAY_SIZE
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
    return int(m.group(1)) if m else DEFAULT_MAX_ARRAY_SIZE


def submit_slurm_arrays(executor, jobs, array_size: int) -> list:
    """Submit callables as job arrays of at most ``array_size`` tasks (indices 0..size-1 must stay
    below the cluster's MaxArraySize). Returns the submitit jobs in order."""
    out = []
    for i in range(0, len(jobs), array_size):
        chunk = list(jobs[i:i + array_size])
        out += executor.submit_array(chunk) if len(chunk) > 1 else [executor.submit(chunk[0])]
    return out


def slurm_base_id(job_id: str) -> str:
    """``"123_4"`` → ``"123"``: dependencies on an array name the array job."""
    return str(job_id).split("_")[0]


def squeue_states(job_ids) -> dict | None:
    """``{job id: state}`` from ``squeue`` (works without ``slurmdbd``, unlike ``sacct``).

    Array tasks appear as ``123_4``; jobs no longer known to SLURM are absent. None when
    ``squeue`` itself failed (a busy controller times out now and then): the states are unknown.
    """
    ids = sorted({slurm_base_id(j) for j in job_ids})
    if not ids:
        return {}
    try:
        proc = subprocess.run(["squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%i %T"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        # squeue also fails for ids it no longer knows; ask about each id alone in that case.
        if len(ids) > 1 and "Invalid job id" in proc.stderr:
            states = {}
            for i in ids:
                one = squeue_states([i])
                if one is None:
                    return None
                states.update(one)
            return states
        return {} if "Invalid job id" in proc.stderr else None
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


#: squeue states after which a job does nothing more.
SLURM_FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
               "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"}


def slurm_jobs_active(job_ids) -> bool | None:
    """Whether any of the jobs is still pending, running or requeued (None: squeue failed)."""
    states = squeue_states(job_ids)
    if states is None:
        return None
    return any(state not in SLURM_FINAL for state in states.values())


def submit_bounded(executor, jobs, max_parallel: int, *, poll_s: float = 0.5, on_tick=None,
                   ready=None) -> list:
    """Run callables through a local executor, at most ``max_parallel`` at once.

    submitit's LocalExecutor starts every submitted job immediately; on a small machine that
    oversubscribes the cores, so jobs are submitted only as earlier ones finish.

    Parameters
    ----------
    executor : submitit executor
    jobs : sequence of callables
    max_parallel : int
    poll_s : float
        Seconds between checks of the running jobs.
    on_tick : callable, optional
        Called without arguments at every check (progress display).
    ready : callable, optional
        ``ready(fn, running_fns)`` for a pending job: True submits it, False keeps it waiting
        (e.g. for a job it depends on), None drops it. Default: always True.

    Returns
    -------
    list of (callable, submitit job) pairs, all finished; dropped jobs are not in it.
    """
    import time

    pending = list(jobs)
    running, finished = [], []
    while pending or running:
        for fn in list(pending):
            if len(running) >= max_parallel:
                break
            verdict = True if ready is None else ready(fn, [f for f, _ in running])
            if verdict is None:
                pending.remove(fn)
            elif verdict:
                pending.remove(fn)
                running.append((fn, executor.submit(fn)))
        still = []
        for fn, job in running:
            (finished if job.done() else still).append((fn, job))
        running = still
        if on_tick is not None:
            on_tick()
        if running or pending:
            time.sleep(poll_s)
    return finished
