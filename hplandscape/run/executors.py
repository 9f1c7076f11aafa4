"""submitit executors for the runners: local processes, SLURM job arrays, or in process.

The runners (:mod:`hplandscape.run.local_runner`, :mod:`hplandscape.run.slurm_runner`) make their executors here
and ask SLURM about its limits and job states; the worker side (what runs inside a job) is
:mod:`hplandscape.run.worker`.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import submitit

from hplandscape.choices import executor_names
from hplandscape.errors import ConfigError, UserError

#: Local jobs have no scheduler limit; submitit's 2-minute default would interrupt real runs.
LOCAL_TIMEOUT_MIN = 7 * 24 * 60
#: The executors :func:`make_executor` makes (submitit's); a runner of another kind makes its own.
SUBMITIT_KINDS = ("local", "slurm", "debug")
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


def runs_at_once(config, runs_here: bool = True, max_parallel: int | None = None, runs: int | None = None) -> int:
    """How many runs of ``config`` train at once: on this machine the sweep's ``max_parallel``
    (``--max-parallel``), else ``launcher.max_parallel``, else :func:`default_max_parallel`; on a
    scheduler the array
    parallelism (no more than the ``runs`` to train). The sweep, its cost estimate and the
    status's ETA all count with it."""
    if runs_here:
        return max_parallel or config.launcher.max_parallel or default_max_parallel(config.launcher, config.recipe)
    return max(1, min(config.launcher.array_parallelism, runs if runs is not None else config.launcher.array_parallelism))


def check_executor(kind: str) -> None:
    """``UserError`` for an unknown executor, or ``slurm`` where SLURM's commands are missing;
    called before a sweep writes anything."""
    if kind not in executor_names():
        raise UserError(f"unknown executor {kind!r}; available: {', '.join(executor_names())}")
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
    if kind not in SUBMITIT_KINDS:
        raise UserError(f"executor {kind!r} has no submitit executor here (those are {', '.join(SUBMITIT_KINDS)})")
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
                  mem=f"{slurm_mem_mb(launcher_cfg)}MB",
                  array_parallelism=int(launcher_cfg.array_parallelism))
    if launcher_cfg.partition:
        params["partition"] = launcher_cfg.partition
    if launcher_cfg.gpus_per_task:
        params["gpus_per_task"] = int(launcher_cfg.gpus_per_task)
    if extra:
        params["additional_parameters"] = extra
    ex.update_parameters(**params)
    return ex


def slurm_mem_mb(launcher_cfg) -> int:
    """The memory a SLURM job of the study asks for (``--mem``), in MB: ``launcher.mem_gb`` × 1024."""
    return int(round(launcher_cfg.mem_gb * 1024))


@dataclass(frozen=True)
class SlurmNode:
    """What one node offers in one partition, as ``sinfo`` reports it.

    ``time_limit_min`` is the partition's time limit in minutes (None: no limit); ``gpus`` counts
    the node's ``gpu`` generic resources.
    """

    partition: str
    default: bool  # the partition jobs go to when they name none
    mem_mb: int
    cpus: int
    gpus: int
    time_limit_min: float | None


_SINFO_FORMAT = "%P|%m|%c|%G|%l"


def slurm_nodes() -> list[SlurmNode] | None:
    """Every (node, partition) of the cluster from ``sinfo -N``, or None when ``sinfo`` is absent or
    did not answer in time (then nothing can be checked).

    Raises
    ------
    UserError
        ``sinfo`` answered that it cannot reach the controller (nothing could be submitted either).
    """
    try:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", _SINFO_FORMAT], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}").splitlines()[0]
        raise UserError(f"executor 'slurm': sinfo cannot reach the SLURM controller ({said}), so no job could be "
                        "submitted; check that the cluster is up (slurm/local-cluster.sh status, for the "
                        "one-node test cluster) or use --executor local")
    nodes = []
    for line in proc.stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 5:
            continue
        partition, mem, cpus, gres, limit = fields
        nodes.append(SlurmNode(partition.rstrip("*"), partition.endswith("*"), _leading_int(mem), _leading_int(cpus),
                               _gpu_count(gres), _minutes(limit)))
    return nodes


def _leading_int(text: str) -> int:
    """``"64000+"`` (sinfo's "this or more") → 64000; 0 when there is no number."""
    m = re.match(r"\d+", text.strip())
    return int(m.group()) if m else 0


def _gpu_count(gres: str) -> int:
    """GPUs in a node's generic resources: ``gpu:a100:4(S:0-1),gpu:v100:2`` → 6, ``(null)`` → 0."""
    return sum(int(n) for n in re.findall(r"\bgpu(?::[^:,()]+)?:(\d+)", gres))


def _minutes(limit: str) -> float | None:
    """A SLURM time limit (``infinite``, ``D-HH:MM:SS``, ``HH:MM:SS``, ``MM:SS``, ``MM``) in minutes;
    None for no limit (or one that cannot be read: never refuse on a guess)."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", limit.strip())
    if not m:
        return None
    days, a, b, c = (int(x) if x else None for x in m.groups())
    if c is not None:  # [D-]HH:MM:SS
        hours, minutes, seconds = a, b, c
    elif days is not None:  # D-HH or D-HH:MM
        hours, minutes, seconds = a, b or 0, 0
    elif b is not None:  # MM:SS
        hours, minutes, seconds = 0, a, b
    else:  # MM
        hours, minutes, seconds = 0, a, 0
    return (days or 0) * 1440 + hours * 60 + minutes + seconds / 60


#: sbatch options in ``launcher.slurm_additional_parameters`` that replace what a launcher key asks.
_REPLACES = {"mem": ("mem", "mem-per-cpu", "mem-per-gpu"), "cpus": ("cpus-per-task",), "time": ("time",),
             "gpus": ("gres", "gpus", "gpus-per-task", "gpus-per-node")}


def check_slurm_request(launcher_cfg, source: str) -> None:
    """Refuse a job request that no node of the partition can hold, before anything is submitted.

    sbatch refuses such a job with "Requested node configuration is not available", after the
    study directory is written; this names the ``launcher`` key to change and the value that fits
    instead, from what ``sinfo`` says the nodes offer (memory, CPUs, GPUs, the partition's time
    limit). A key that ``launcher.slurm_additional_parameters`` replaces is left to sbatch.

    Raises
    ------
    ConfigError
        The partition does not exist, or its largest node is smaller than one job asks for.
    UserError
        ``sinfo`` cannot reach the controller.
    """
    nodes = slurm_nodes()
    if not nodes:
        return
    lc = launcher_cfg
    extra = {str(k).replace("_", "-"): v for k, v in (lc.slurm_additional_parameters or {}).items()}
    replaced = {what for what, options in _REPLACES.items() if any(o in extra for o in options)}
    partition = extra.get("partition", lc.partition)
    if partition is not None:
        names = sorted({n.partition for n in nodes})
        key = "launcher.slurm_additional_parameters.partition" if "partition" in extra else "launcher.partition"
        if str(partition) not in names:
            raise ConfigError(source, key, f"is {partition!r}, which is not a partition of this cluster (sinfo lists "
                                           f"{', '.join(names)}); set it to one of them, or leave it out for the "
                                           "default partition")
        nodes, where = [n for n in nodes if n.partition == str(partition)], f"partition {partition}"
    else:
        default = [n for n in nodes if n.default]
        nodes = default or nodes
        where = f"partition {default[0].partition}" if default else "this cluster"
    mem, mem_max = slurm_mem_mb(lc), max(n.mem_mb for n in nodes)
    if "mem" not in replaced and mem > mem_max:
        fit = math.floor(mem_max / 1024 * 10) / 10 or math.floor(mem_max / 1024 * 1000) / 1000
        raise ConfigError(source, "launcher.mem_gb", f"is {lc.mem_gb:g}: each job asks {mem} MB, but the largest "
                                                     f"node of {where} offers {mem_max} MB; set launcher.mem_gb to "
                                                     f"{fit:g} or less")
    cpus_max = max(n.cpus for n in nodes)
    if "cpus" not in replaced and lc.cpus_per_task > cpus_max:
        raise ConfigError(source, "launcher.cpus_per_task", f"is {lc.cpus_per_task}, but the largest node of {where} "
                                                            f"has {cpus_max} CPUs; set launcher.cpus_per_task to "
                                                            f"{cpus_max} or less")
    gpus_max = max(n.gpus for n in nodes)
    if "gpus" not in replaced and lc.gpus_per_task > gpus_max:
        offer = "a GPU" if gpus_max == 0 else f"more than {gpus_max} GPUs"
        raise ConfigError(source, "launcher.gpus_per_task", f"is {lc.gpus_per_task}, but no node of {where} has "
                                                            f"{offer}; set launcher.gpus_per_task to {gpus_max}"
                                                            + ("" if gpus_max == 0 else " or less")
                                                            + ", or choose a partition with GPUs (launcher.partition)")
    limits = [n.time_limit_min for n in nodes]
    if "time" not in replaced and None not in limits and lc.timeout_min > max(limits):
        raise ConfigError(source, "launcher.timeout_min", f"is {lc.timeout_min}, but {where} allows jobs of at most "
                                                          f"{max(limits):g} min; set launcher.timeout_min to "
                                                          f"{math.floor(max(limits))} or less (a job that reaches it "
                                                          "requeues itself and resumes)")


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
