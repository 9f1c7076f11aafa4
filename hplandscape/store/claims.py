"""Claims: which job is training a run, so that no run is trained twice at once.

A job writes ``claim.json`` (job id, host, pid, and the submitit job id of the worker) into the run
directory under an exclusive file lock before training, and a background thread keeps touching its
mtime (the heartbeat). A claim whose
heartbeat is older than ``stale_after`` seconds, or whose process is gone from this host, is stale
and may be taken over. A requeued SLURM job keeps its job id, which is how it takes back its own
claim after a preemption.

The files are named by :class:`hplandscape.store.layout.RunFiles`; this module only reads and writes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from typing import Callable, Iterable

from hplandscape.atomic import file_lock
from hplandscape.atomic import write_json as atomic_write_json

#: Seconds without a heartbeat after which a claim is considered abandoned.
STALE_AFTER_S = 120.0
#: Seconds between heartbeats; well below ``STALE_AFTER_S`` so a busy file system cannot fake death.
HEARTBEAT_S = 10.0


def current_job_id() -> str:
    """The submitit/SLURM job id of this process, or ``local-<pid>`` outside a scheduler.

    A requeued SLURM job keeps its id, which is how it recognises (and takes back) its own claim.
    """
    if os.environ.get("SLURM_JOB_ID"):
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"{array}_{task}" if array and task else os.environ["SLURM_JOB_ID"]
    return f"local-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_claim(files) -> dict | None:
    """The claim of a run (``files``: its :class:`~hplandscape.store.layout.RunFiles`) with its heartbeat
    age ``age_s``, or None."""
    try:
        text = files.claim.read_text()
        mtime = files.claim.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        claim = json.loads(text)
    except ValueError:
        claim = {}
    if not isinstance(claim, dict):
        claim = {}
    claim["age_s"] = time.time() - mtime
    return claim


def is_stale(claim: dict, stale_after: float = STALE_AFTER_S) -> bool:
    """Heartbeat older than ``stale_after`` or (same host) its process has exited."""
    if claim.get("age_s", 0.0) > stale_after:
        return True
    pid = claim.get("pid")
    if claim.get("host") == socket.gethostname() and isinstance(pid, int):
        return not _pid_alive(pid)
    return not claim.get("job_id")  # unreadable claim: its writer died mid-way


def live_claim(files, stale_after: float = STALE_AFTER_S) -> dict | None:
    """The run's claim when a living job holds it, else None."""
    claim = read_claim(files)
    if claim is None or is_stale(claim, stale_after):
        return None
    return claim


def _locked(files):
    files.dir.mkdir(parents=True, exist_ok=True)
    return file_lock(files.claim_lock)


def take(files, job_id: str, *, finished: Callable[[], bool], stale_after: float = STALE_AFTER_S,
         worker: str | None = None) -> bool:
    """Claim the run for ``job_id``; False when ``finished()`` or another living job holds it.

    A stale claim is taken over, and so is a claim of the same ``job_id`` from another process
    (a requeued SLURM job resuming its own run). The check and the write happen under an
    exclusive file lock, so two concurrent callers never both get True. ``worker`` (the submitit
    job id of the calling job, as the runner that started it knows it) is stored with the claim:
    when that job dies, the runner reads which run it was training.

    Raises
    ------
    OSError
        The lock file (``.claim.lock``) or the claim cannot be written (permissions, a full disk).
    """
    with _locked(files):
        if finished():
            return False
        old = read_claim(files)
        if old is not None and not is_stale(old, stale_after) and old.get("job_id") != job_id:
            return False
        now = time.time()
        claim = {"job_id": job_id, "host": socket.gethostname(), "pid": os.getpid(), "claimed_at": now,
                 "heartbeat": now}
        if worker is not None:
            claim["worker"] = worker
        atomic_write_json(files.claim, claim)
        return True


def release(files, job_id: str) -> None:
    """Remove the run's claim if ``job_id`` holds it."""
    with _locked(files):
        claim = read_claim(files)
        if claim is not None and claim.get("job_id") == job_id:
            with contextlib.suppress(FileNotFoundError):
                files.claim.unlink()


def touch(files) -> None:
    """One heartbeat: refresh the claim's mtime."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(files.claim)


@contextlib.contextmanager
def heartbeat(files_list: Iterable, interval: float = HEARTBEAT_S):
    """Keep the claims of the runs in ``files_list`` fresh from a background thread while the
    block runs."""
    files_list = list(files_list)
    stop = threading.Event()

    def beat():
        while not stop.wait(interval):
            for files in files_list:
                touch(files)

    thread = threading.Thread(target=beat, name="claim heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
