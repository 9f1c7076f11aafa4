"""The on-disk layout of a study: the one place that builds its paths.

A study directory holds the resolved config, the pruned architecture specs, one folder per run with
its record, checkpoint, weights and claim, and the launcher logs (see ``docs/architecture.md``)::

    STUDY/study.yaml
    STUDY/specs/<condition>.json
    STUDY/runs/<condition>/<point.key>/seed<k>/{record.json, checkpoint.pt, model.pt, claim.json,
                                                error.json, error.log}
    STUDY/logs/

A run's state is derived from these files alone (:class:`RunState`); nothing keeps a second copy
that could disagree with them. Every file is written atomically (temp file + ``os.replace``) so a
crash leaves either the old file or the new one, never half of one.

Claims stop two jobs from training the same run: a job writes ``claim.json`` (job id, host, pid)
under an exclusive lock before training and a background thread keeps touching its mtime (the
heartbeat). A claim whose heartbeat is older than ``stale_after`` seconds, or whose process is gone
from this host, is stale and may be taken over.

Examples
--------
>>> import tempfile
>>> from hplandscape.config import load_quickstart
>>> store = StudyStore(tempfile.mkdtemp())
>>> store.init_study(load_quickstart())
>>> store.status().to_json()["conditions"]["base"]["missing"]
25
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hplandscape.atomic import write_json as atomic_write_json
from hplandscape.atomic import write_text as atomic_write_text
from hplandscape.errors import UserError

#: Seconds without a heartbeat after which a claim is considered abandoned.
STALE_AFTER_S = 120.0
#: Seconds between heartbeats; well below ``STALE_AFTER_S`` so a busy file system cannot fake death.
HEARTBEAT_S = 10.0
#: Record keys without which a record is not a finished run.
REQUIRED_RECORD_KEYS = ("run_id", "top1", "diverged")


class RunState(enum.Enum):
    """What the files of one run say about it."""

    DONE = "done"
    DIVERGED = "diverged"  # finished: loss became NaN/inf, a valid outcome (method §7)
    RUNNING = "running"  # a live claim, no record yet
    FAILED = "failed"  # train_run raised; error.json names the traceback
    MISSING = "missing"  # nothing yet (or only a stale claim)
    CORRUPT = "corrupt"  # record.json exists but is truncated or not a record: re-run it

    @property
    def finished(self) -> bool:
        return self in (RunState.DONE, RunState.DIVERGED)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def current_job_id() -> str:
    """The submitit/SLURM job id of this process, or ``local-<pid>`` outside a scheduler.

    A requeued SLURM job keeps its id, which is how it recognises (and takes back) its own claim.
    """
    if os.environ.get("SLURM_JOB_ID"):
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"{array}_{task}" if array and task else os.environ["SLURM_JOB_ID"]
    return f"local-{os.getpid()}"


@dataclass(frozen=True)
class RunFiles:
    """The files of one run directory; the store names them and engines and jobs use these.

    Examples
    --------
    >>> RunFiles("/s/runs/base/lr-1.0000_wd-4.0000/seed0").checkpoint.name
    'checkpoint.pt'
    """

    dir: Path

    def __init__(self, directory):
        object.__setattr__(self, "dir", Path(directory))

    @property
    def record(self) -> Path:
        return self.dir / "record.json"

    @property
    def checkpoint(self) -> Path:
        """Per-epoch training state while the run is unfinished (deleted once the record is stored)."""
        return self.dir / "checkpoint.pt"

    @property
    def weights(self) -> Path:
        """Final weights (the basemodel at the prior: the pruning source)."""
        return self.dir / "model.pt"

    @property
    def claim(self) -> Path:
        return self.dir / "claim.json"

    @property
    def claim_lock(self) -> Path:
        return self.dir / ".claim.lock"

    @property
    def error(self) -> Path:
        return self.dir / "error.json"

    @property
    def error_log(self) -> Path:
        return self.dir / "error.log"


# -- status -----------------------------------------------------------------------------------

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
    corrupt: tuple = field(default=())  # record paths that are truncated or not records
    failed: tuple = field(default=())  # (run_id, error log path)

    def to_json(self) -> dict:
        """``{"conditions": {NAME: {"total", "done", "running", "failed", "missing", "diverged",
        "corrupt"}}}``."""
        return {"conditions": {c.name: c.counts() for c in self.conditions}}

    @property
    def total(self) -> int:
        return sum(c.total for c in self.conditions)

    @property
    def finished(self) -> int:
        return sum(c.count(RunState.DONE) + c.count(RunState.DIVERGED) for c in self.conditions)

    @property
    def complete(self) -> bool:
        return self.finished == self.total

    def render(self) -> str:
        """Human-readable counts and a grid map per condition."""
        lines = [f"Study {self.study_dir}: {self.finished}/{self.total} runs finished"]
        header = f"  {'condition':<16}{'total':>7}{'done':>7}{'running':>9}{'failed':>8}{'missing':>9}{'diverged':>10}"
        lines.append(header)
        for c in self.conditions:
            n = c.counts()
            lines.append(f"  {c.name:<16}{n['total']:>7}{n['done']:>7}{n['running']:>9}{n['failed']:>8}"
                         f"{n['missing']:>9}{n['diverged']:>10}")
        legend = "  map: # done, x diverged, R running, ! failed, . missing, ? corrupt record"
        for c in self.conditions:
            lines += ["", f"{c.name}:"] + c.grid_map()
        lines += ["", legend]
        if self.corrupt:
            lines.append(f"{len(self.corrupt)} corrupt record(s), re-run by the next sweep:")
            lines += [f"  {p}" for p in self.corrupt]
        if self.failed:
            lines.append(f"{len(self.failed)} failed run(s); tracebacks:")
            lines += [f"  {rid}: {log}" for rid, log in self.failed]
        return "\n".join(lines)


# -- the store --------------------------------------------------------------------------------


class StudyStore:
    """Owner of every path of one study directory.

    Parameters
    ----------
    root : str or Path
        The study directory (created by :meth:`init_study`).
    stale_after : float
        Seconds without a heartbeat after which a claim counts as abandoned.
    """

    def __init__(self, root, *, stale_after: float = STALE_AFTER_S):
        self.root = Path(root)
        self.stale_after = float(stale_after)

    def __repr__(self) -> str:
        return f"StudyStore({str(self.root)!r})"

    @classmethod
    def open(cls, root, **kwargs) -> "StudyStore":
        """The store of an existing study; ``UserError`` when ``root`` holds no study."""
        store = cls(root, **kwargs)
        if not store.study_yaml.is_file():
            hint = "it does not exist" if not store.root.exists() else f"{store.study_yaml} is missing"
            raise UserError(f"{root} is not a study directory ({hint}); "
                            "create one with `hplandscape sweep CONFIG --study-dir DIR`")
        return store

    # paths ---------------------------------------------------------------------------------
    @property
    def study_yaml(self) -> Path:
        return self.root / "study.yaml"

    @property
    def specs_dir(self) -> Path:
        return self.root / "specs"

    def spec_path(self, condition_name: str) -> Path:
        return self.specs_dir / f"{condition_name}.json"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        parts = run_id.split("/")
        if len(parts) != 3 or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"not a run id (condition/point/seedK): {run_id!r}")
        return self.runs_dir.joinpath(*parts)

    def record_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "record.json"

    def checkpoint_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "checkpoint.pt"

    def model_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "model.pt"

    def claim_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "claim.json"

    def error_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "error.json"

    def error_log_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "error.log"

    def _lock_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / ".claim.lock"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    @property
    def analysis_dir(self) -> Path:
        return self.root / "analysis"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    # config --------------------------------------------------------------------------------
    def init_study(self, config, force: bool = False) -> None:
        """Create the study directory for ``config``, or check that it was made from it.

        The resolved config is written to ``study.yaml``. Launcher settings (how runs are started)
        and grid extensions (new rows/columns) do not change which records are valid, so they may
        differ from the stored config; anything else may not.

        Raises
        ------
        UserError
            The directory holds a study made from a different config and ``force`` is false.
        """
        new = config.to_dict()
        if self.study_yaml.exists():
            old = self.read_config_dict()
            diffs = _config_differences(old, new)
            if old == new:
                return
            if diffs and not force:
                shown = "; ".join(diffs[:5]) + ("; …" if len(diffs) > 5 else "")
                raise UserError(
                    f"{self.study_yaml} was made from a different config ({shown}). Its records "
                    f"would not match the new settings: use a new --study-dir for the new config, "
                    f"or pass --force to adopt the new config here (existing records are kept).")
        self.root.mkdir(parents=True, exist_ok=True)
        for d in (self.specs_dir, self.runs_dir, self.logs_dir):
            d.mkdir(exist_ok=True)
        header = ("# Resolved study config written by hplandscape; a sweep with a different\n"
                  "# config is refused for this directory.\n")
        atomic_write_text(self.study_yaml, header + yaml.safe_dump(new, sort_keys=False))

    def read_config_dict(self) -> dict:
        """The resolved config stored in ``study.yaml`` as plain data."""
        try:
            data = yaml.safe_load(self.study_yaml.read_text())
        except FileNotFoundError:
            raise UserError(f"{self.root} is not a study directory ({self.study_yaml} is missing)") from None
        except yaml.YAMLError as e:
            raise UserError(f"{self.study_yaml} is not valid YAML ({str(e).splitlines()[0]}); "
                            "restore it or start a new study directory") from None
        if not isinstance(data, dict):
            raise UserError(f"{self.study_yaml} does not hold a study config mapping")
        return data

    def config(self):
        """The :class:`~hplandscape.config.StudyConfig` stored in ``study.yaml``."""
        from hplandscape.config import study_from_dict

        return study_from_dict(self.read_config_dict(), str(self.study_yaml))

    # records -------------------------------------------------------------------------------
    def write_record(self, run_id: str, record: dict) -> Path:
        """Write the run record atomically and clear a previous failure of the run."""
        if record.get("run_id", run_id) != run_id:
            raise ValueError(f"record of {record.get('run_id')!r} written as {run_id!r}")
        path = self.record_path(run_id)
        atomic_write_json(path, {**record, "run_id": run_id})
        for stale in (self.error_path(run_id), self.error_log_path(run_id)):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        return path

    def read_record(self, run_id: str) -> tuple:
        """``(state, record)``: DONE/DIVERGED with the record, CORRUPT or MISSING with None.

        A record that is truncated, is not JSON, lacks ``run_id``/``top1``/``diverged`` or names
        another run is CORRUPT: never counted as done, re-run by the next sweep.
        """
        path = self.record_path(run_id)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return RunState.MISSING, None
        except (OSError, UnicodeDecodeError):
            return RunState.CORRUPT, None
        try:
            record = json.loads(text)
        except ValueError:
            return RunState.CORRUPT, None
        if (not isinstance(record, dict) or any(k not in record for k in REQUIRED_RECORD_KEYS)
                or record["run_id"] != run_id):
            return RunState.CORRUPT, None
        return (RunState.DIVERGED if record["diverged"] else RunState.DONE), record

    def iter_records(self):
        """Every valid record under ``runs/`` (whatever the config says), sorted by run id."""
        for path in sorted(self.runs_dir.glob("*/*/*/record.json")):
            run_id = "/".join(path.parent.relative_to(self.runs_dir).parts)
            state, record = self.read_record(run_id)
            if state.finished:
                yield record

    def write_error(self, run_id: str, job_id: str, error: BaseException, traceback_text: str,
                    log: str | None = None) -> Path:
        """Record that the run failed: ``error.log`` (traceback) and ``error.json`` naming it."""
        log_path = self.error_log_path(run_id)
        atomic_write_text(log_path, traceback_text)
        atomic_write_json(self.error_path(run_id), {
            "run_id": run_id, "job_id": job_id, "error": f"{type(error).__name__}: {error}",
            "traceback": str(log_path), "job_log": log, "time": time.time()})
        return log_path

    def read_error(self, run_id: str) -> dict | None:
        try:
            data = json.loads(self.error_path(run_id).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def run_state(self, run_id: str) -> RunState:
        """The state of one run, from its files only."""
        state, _ = self.read_record(run_id)
        if state.finished:
            return state
        if self.live_claim(run_id) is not None:
            return RunState.RUNNING
        if state is RunState.CORRUPT:
            return state
        if self.error_path(run_id).exists():
            return RunState.FAILED
        return RunState.MISSING

    # claims --------------------------------------------------------------------------------
    def read_claim(self, run_id: str) -> dict | None:
        """The claim of a run with its heartbeat age (``age_s``), or None."""
        path = self.claim_path(run_id)
        try:
            text = path.read_text()
            mtime = path.stat().st_mtime
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

    def claim_is_stale(self, claim: dict) -> bool:
        """Heartbeat older than ``stale_after`` or (same host) its process has exited."""
        if claim.get("age_s", 0.0) > self.stale_after:
            return True
        pid = claim.get("pid")
        if claim.get("host") == socket.gethostname() and isinstance(pid, int):
            return not _pid_alive(pid)
        return not claim.get("job_id")  # unreadable claim: its writer died mid-way

    def live_claim(self, run_id: str) -> dict | None:
        """The run's claim when it is held by a living job, else None."""
        claim = self.read_claim(run_id)
        if claim is None or self.claim_is_stale(claim):
            return None
        return claim

    @contextlib.contextmanager
    def _locked(self, run_id: str):
        path = self._lock_path(run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def claim(self, run_id: str, job_id: str) -> bool:
        """Take the run for ``job_id``; False when it is finished or held by another living job.

        A stale claim is taken over, and so is a claim of the same ``job_id`` from another process
        (a requeued SLURM job resuming its own run). The check and the write happen under an
        exclusive file lock, so two concurrent callers never both get True.
        """
        with self._locked(run_id):
            if self.read_record(run_id)[0].finished:
                return False
            old = self.read_claim(run_id)
            if old is not None and not self.claim_is_stale(old) and old.get("job_id") != job_id:
                return False
            atomic_write_json(self.claim_path(run_id), {
                "job_id": job_id, "host": socket.gethostname(), "pid": os.getpid(),
                "claimed_at": time.time(), "heartbeat": time.time()})
            return True

    def release(self, run_id: str, job_id: str) -> None:
        """Remove the run's claim if ``job_id`` holds it."""
        with self._locked(run_id):
            claim = self.read_claim(run_id)
            if claim is not None and claim.get("job_id") == job_id:
                with contextlib.suppress(FileNotFoundError):
                    self.claim_path(run_id).unlink()

    def touch_claim(self, run_id: str) -> None:
        """One heartbeat: refresh the claim's mtime."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.claim_path(run_id))

    @contextlib.contextmanager
    def heartbeat(self, run_ids, interval: float = HEARTBEAT_S):
        """Keep the claims of ``run_ids`` fresh from a background thread while the block runs."""
        run_ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        stop = threading.Event()

        def beat():
            while not stop.wait(interval):
                for run_id in run_ids:
                    self.touch_claim(run_id)

        thread = threading.Thread(target=beat, name="claim heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    # status --------------------------------------------------------------------------------
    def run_ids(self, config=None) -> list[str]:
        """Every run id of the study config (conditions × grid points × seeds)."""
        from hplandscape.grid import make_grid

        config = config or self.config()
        points = make_grid(config.grid)
        return [f"{c.name}/{p.key}/seed{s}" for c in config.conditions for p in points for s in config.seeds]

    def status(self, config=None) -> StudyStatus:
        """Counts and grid maps per condition, derived from the files."""
        from hplandscape.grid import make_grid

        config = config or self.config()
        points = make_grid(config.grid)
        lrs = tuple(config.grid.log10_lr_values())
        wds = tuple(config.grid.log10_wd_values())
        conditions, corrupt, failed = [], [], []
        for c in config.conditions:
            states = {}
            for p in points:
                seeds = []
                for s in config.seeds:
                    run_id = f"{c.name}/{p.key}/seed{s}"
                    state = self.run_state(run_id)
                    seeds.append(state)
                    if state is RunState.CORRUPT:
                        corrupt.append(str(self.record_path(run_id)))
                    elif state is RunState.FAILED:
                        err = self.read_error(run_id) or {}
                        failed.append((run_id, err.get("traceback", str(self.error_log_path(run_id)))))
                states[(p.log10_lr, p.log10_wd)] = seeds
            conditions.append(ConditionStatus(c.name, lrs, wds, states))
        return StudyStatus(str(self.root), tuple(conditions), tuple(corrupt), tuple(failed))

    def follow(self, interval: float = 5.0, *, timeout: float | None = None, file=None) -> StudyStatus:
        """Show a progress bar of finished runs until every run is finished (or ``timeout``)."""
        from tqdm import tqdm

        config = self.config()
        status = self.status(config)
        start = time.monotonic()
        with tqdm(total=status.total, initial=status.finished, desc=config.name, unit="run",
                  file=file, dynamic_ncols=True) as bar:
            while not status.complete:
                if timeout is not None and time.monotonic() - start > timeout:
                    break
                time.sleep(interval)
                status = self.status(config)
                bar.update(status.finished - bar.n)
                n = {k: sum(c.counts()[k] for c in status.conditions) for k in ("running", "failed")}
                bar.set_postfix(running=n["running"], failed=n["failed"])
        return status


def _strip_volatile(d: dict) -> dict:
    """The parts of a resolved config that decide whether existing records stay valid."""
    d = {k: v for k, v in d.items() if k != "launcher"}
    grid = dict(d.get("grid", {}))
    grid.pop("extra_log10_lr", None)
    grid.pop("extra_log10_wd", None)
    d["grid"] = grid
    return d


def _config_differences(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ, as ``key: old → new`` strings."""
    out: list[str] = []

    def walk(a, b, prefix):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        elif _normal(a) != _normal(b):
            out.append(f"{prefix}: {_short(a)} → {_short(b)}")

    walk(_strip_volatile(old), _strip_volatile(new), "")
    return out


def _short(v, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _normal(v):
    if isinstance(v, (list, tuple)):
        return [_normal(x) for x in v]
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items()}
    return v
