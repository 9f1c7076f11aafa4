"""Submit a study plan to SLURM: one job array per step, chained by the plan's needs.

Every step of the :class:`~hplandscape.run.plan.StudyPlan` becomes submitit job arrays (split below the
cluster's ``MaxArraySize``) whose ``afterok`` dependencies are the jobs of the steps it needs, so
nothing waits on the login node. The pruning source runs alone in a job that fails when its run
fails, so that the prune job and the pruned arrays behind it are cancelled instead of starting
without an architecture. A prune step with nothing to wait for runs in this process.
:func:`follow_jobs` polls ``squeue`` (no ``sacct`` needed) until the jobs have left the queue.
"""

from __future__ import annotations

import time
from typing import Callable

from submitit.core.utils import FailedJobError, FailedSubmissionError

from hplandscape.errors import RunFailure, UserError
from hplandscape.run.executors import (check_executor, check_slurm_request, make_executor, max_array_size,
                                       slurm_base_id, slurm_jobs_active, submit_slurm_arrays)
from hplandscape.run.plan import StudyPlan
from hplandscape.run.prune_step import make_pruning_specs
from hplandscape.run.runners import Launch, Outcome, Runner
from hplandscape.run.status import RecordedBar
from hplandscape.store.study_store import StudyStore


class SlurmRunner(Runner):
    """The ``slurm`` executor: every step as job arrays chained by ``afterok`` (:func:`submit_plan`);
    the sweep returns once they are submitted, or with ``wait`` once they have left the queue."""

    runs_here = False  # on the cluster's nodes: their GPUs, not this machine's

    def check_available(self) -> None:
        check_executor(self.name)

    def check_request(self, config) -> None:
        check_slurm_request(config.launcher, config.source)

    def run(self, launch: Launch) -> Outcome:
        job_ids = submit_plan(launch.plan, launch.config, launch.store, make_job=launch.make_job,
                              prune_fn=launch.options.prune_fn)
        return Outcome(len(launch.plan.runs), job_ids=job_ids)

    def follow(self, launch: Launch, outcome: Outcome) -> None:
        if launch.wait and outcome.job_ids:
            follow_jobs(outcome.job_ids, launch.store, [r.run_id for r in launch.plan.runs],
                        progress=launch.progress, poll_s=launch.options.poll_s, name=launch.config.name)

    def where(self, config, max_parallel: int, plan) -> str:
        lc = config.launcher
        return (f"slurm {lc.partition or 'default partition'}, {lc.cpus_per_task} cpu, "
                f"{lc.gpus_per_task} gpu, {lc.mem_gb:g} GB, {lc.timeout_min} min")

    def finishes(self, wait: bool) -> bool:
        return wait


def submit_plan(plan: StudyPlan, config, store: StudyStore, *, make_job: Callable, prune_fn=None) -> tuple:
    """Submit every step of ``plan``; returns the SLURM job ids (one per array), in step order.

    Raises
    ------
    UserError
        sbatch refused a job (an account, a QOS, a constraint: what :func:`check_slurm_request`
        cannot see); the message gives sbatch's words, the launcher keys behind the request and
        the jobs submitted before.
    """
    ids_of: dict[str, list] = {}
    try:
        _submit_steps(plan, config, store, make_job, prune_fn, ids_of)
    except (FailedJobError, FailedSubmissionError) as e:
        said = " ".join(str(e).split()) or type(e).__name__
        before = [j for ids in ids_of.values() for j in ids]
        raise UserError(f"sbatch refused the jobs of {config.name} ({said}). They ask for what the launcher section "
                        "sets: launcher.partition, mem_gb, cpus_per_task, gpus_per_task, timeout_min and "
                        "launcher.slurm_additional_parameters (account, qos, constraint, ...); `sinfo -N -o "
                        "'%P %m %c %G %l'` shows what the nodes offer. Fix them and run the same sweep again"
                        + (f" (jobs {', '.join(before)} were submitted before: `scancel` them first if the fix "
                           "changes them)." if before else "; nothing was submitted.")) from None
    return tuple(j for step in plan.steps for j in ids_of[step.name])


def _submit_steps(plan: StudyPlan, config, store: StudyStore, make_job: Callable, prune_fn, ids_of: dict) -> None:
    """Submit the steps in order, filling ``ids_of`` (step name → job ids) as they go."""
    lc, logs, name = config.launcher, store.logs_dir, config.name
    size, limit = max(1, int(lc.runs_per_job)), max_array_size()
    for step in plan.steps:
        deps = [j for need in step.needs for j in ids_of.get(need, [])]
        dependency = f"afterok:{':'.join(deps)}" if deps else None
        if step.conditions:
            if dependency is None:
                make_pruning_specs(config, store.root, prune_fn=prune_fn)
                ids_of[step.name] = []
                continue
            ex = make_executor("slurm", logs, lc, name=f"{name}-prune", dependency=dependency)
            ids_of[step.name] = [ex.submit(make_pruning_specs, config, str(store.root), prune_fn=prune_fn).job_id]
            continue
        source = step.name == "source"
        ex = make_executor("slurm", logs, lc, name=f"{name}-base" if source else name, dependency=dependency)
        jobs = submit_slurm_arrays(ex, [make_job(b, raise_on_failure=source) for b in step.blocks(size)],
                                   limit)
        # Dependencies and squeue name an array by its job id: one id per array.
        ids_of[step.name] = sorted({slurm_base_id(j.job_id) for j in jobs}, key=lambda j: (len(j), j))


def follow_jobs(job_ids, store: StudyStore, run_ids, *, progress: bool = True, poll_s: float = 2.0,
                name: str = "study") -> None:
    """Wait until every job has left the SLURM queue, with a progress bar of recorded runs.

    Raises
    ------
    RunFailure
        ``squeue`` did not answer for minutes (the jobs may still run; the message says how to check).
    """
    bar = RecordedBar(store, run_ids, name, enabled=progress)
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
                                 f"may still run: check `squeue` and `hplandscape status {store.root}`")
            bar.tick()
            time.sleep(max(poll_s, 2.0))
    finally:
        bar.close()
