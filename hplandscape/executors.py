"""submitit executors for the runners: local processes, SLURM job arrays, or in process.

The runners (:mod:`hplandscape.run_local`, :mod:`hplandscape.run_slurm`) make their executors here
and ask SLURM about its limits and job states; the worker side (what runs inside a job) is
:mod:`hplandscape.launch`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import submitit

from hplandscape.config import EXECUTORS
from hplandscape.errors import UserError

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


def check_executor(kind: str) -> None:
    """``UserError`` for an unknown executor, or ``slurm`` where SLURM's commands are missing;
    called before a sweep writes anything."""
    if kind not in EXECUTORS:
        raise UserError(f"unknown executor {kind!r}; available: {', '.join(EXECUTORS)}")
    if kind == "slurm" and (shutil.which("sbatch") is None or shutil.which("srun") is None):
        raise UserError("executor 'slurm' needs SLURM's sbatch and srun on PATH; run on a login node "
                        "of a cluster, or use --executor local (slurm/local-cluster.sh starts a "
                        "one-node test cluster)")


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
    check_executor(kind)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "local":
        ex = submitit.LocalExecutor(folder)
        ex.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)
        return ex
    if kind == "debug":
        return submitit.DebugExecutor(folder)
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
