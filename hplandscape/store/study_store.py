"""A study directory's files, read and written: its config, the conditions' specs, the runs' records,
errors and states (where each file is: :mod:`hplandscape.store.layout`).

A run's state is derived from these files alone (:class:`RunState`); nothing keeps a second copy
that could disagree with them. Every file is written atomically (temp file + ``os.replace``) so a
crash leaves either the old file or the new one, never half of one. Claims (who trains a run now)
are read and written by :mod:`hplandscape.store.claims`; the status display lives in
:mod:`hplandscape.run.status`.

The runs of a study are listed once, by :func:`hplandscape.study.runs.study_runs`; the store
finds each one's files under its run id.

Examples
--------
>>> import tempfile
>>> from hplandscape.study.loading import load_quickstart
>>> store = StudyStore(tempfile.mkdtemp())
>>> store.init_study(load_quickstart())
>>> len(store.runs())
150
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import shlex
import time
from pathlib import Path

import yaml

from hplandscape.atomic import file_lock
from hplandscape.atomic import write_json as atomic_write_json
from hplandscape.atomic import write_text as atomic_write_text
from hplandscape.errors import ConfigChanged, UserError
from hplandscape.path_checks import check_path
from hplandscape.store import claims
from hplandscape.store.claims import STALE_AFTER_S
from hplandscape.store.layout import StudyLayout, check_dir_target
from hplandscape.store.run_record import record_problem  # the record's schema; callers may import it from here
from hplandscape.study.replication import added_runs, requested_runs
from hplandscape.study.runs import StudyRun


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


def set_aside(path, why: str = "corrupt") -> Path:
    """Rename a file a run cannot use to ``<name>.<why>-<UTC time>`` next to it: kept for
    inspection, out of the way of the run that replaces it. Returns the new path.

    ``why`` is ``corrupt`` for a damaged file, ``stale`` for one made under another config (a
    checkpoint from before ``sweep --force`` adopted a changed recipe)."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.{why}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{why}-{stamp}-{n}")
    path.replace(target)
    return target


# -- the store --------------------------------------------------------------------------------


class StudyStore(StudyLayout):
    """Reads and writes the files of one study directory (their paths: :class:`StudyLayout`).

    Parameters
    ----------
    root : str or Path
        The study directory (created by :meth:`init_study`).
    stale_after : float
        Seconds without a heartbeat after which a claim counts as abandoned.
    """

    def __init__(self, root, *, stale_after: float = STALE_AFTER_S):
        super().__init__(root)
        self.stale_after = float(stale_after)

    @classmethod
    def open(cls, root, **kwargs) -> "StudyStore":
        """The store of an existing study; ``UserError`` when ``root`` holds no study."""
        store = cls(check_path(root, "the study directory"), **kwargs)
        if not store.study_yaml.is_file():
            hint = "it does not exist" if not store.root.exists() else f"{store.study_yaml} is missing"
            raise UserError(f"{root} is not a study directory ({hint}); "
                            "create one with `hplandscape sweep CONFIG --study-dir DIR`")
        return store

    # config --------------------------------------------------------------------------------
    def init_study(self, config, force: bool = False) -> None:
        """Create the study directory for ``config``, or check that it was made from it.

        The resolved config is written to ``study.yaml``, after a comment naming the file it was
        read from and the overrides applied to it, and before a last line holding the sha256 of
        the lines above it (:meth:`read_config_dict` refuses a file cut short). With ``force``, a
        damaged ``study.yaml`` is written again from ``config``. Launcher settings (how runs are started) and
        grid extensions (new rows/columns) do not change which records are valid, so they may
        differ from the stored config; anything else may not.

        Raises
        ------
        ConfigChanged
            The directory holds a study made from a different config and ``force`` is false.
        """
        new = config.to_dict()
        check_dir_target(self.root, "the study directory")
        self.root.mkdir(parents=True, exist_ok=True)
        # Check and write under one lock: two sweeps started together on a new directory would
        # otherwise both find no study.yaml and both be accepted, whatever their configs.
        with file_lock(self.study_lock):
            if self.study_yaml.exists():
                try:
                    stored = self.read_config_dict()
                except UserError:
                    if not force:
                        raise
                    stored = None  # damaged: --force writes it again from this config
                if stored == new:
                    return
                if stored is not None and not force:
                    self.check_config(config)
            for d in (self.specs_dir, self.runs_dir, self.logs_dir):
                d.mkdir(exist_ok=True)
            text = _config_header(config) + yaml.safe_dump(new, sort_keys=False)
            atomic_write_text(self.study_yaml, text + _checksum_line(text))

    def check_config(self, config) -> None:
        """Refuse ``config`` if the stored study was made from a config whose records differ.

        Writes nothing (the dry run uses it as is); a directory without ``study.yaml`` passes.

        Raises
        ------
        ConfigChanged
            Names every dotted key that differs, with the stored and the new value.
        """
        if not self.study_yaml.exists():
            return
        stored = self.read_config_dict()
        changes = config_changes(stored, config.to_dict())
        if changes:
            raise ConfigChanged(self.study_yaml, changes, _code_hint(stored, changes))

    def read_config_dict(self) -> dict:
        """The resolved config stored in ``study.yaml`` as plain data.

        A file written with a checksum line must match it; an older one (none) must hold every
        section the writer has always written. A file cut short is thus refused instead of being
        completed with defaults, which would change the study's runs (a cut ``seeds`` list).

        Raises
        ------
        UserError
            The file is missing, not YAML, cut short or altered; the message says how to write it
            again (the sweep that made it, with ``--force``: the records are kept).
        """
        try:
            text = self.study_yaml.read_text()
        except FileNotFoundError:
            raise UserError(f"{self.root} is not a study directory ({self.study_yaml} is missing)") from None
        except (OSError, UnicodeDecodeError) as e:
            raise self._damaged(f"it cannot be read ({type(e).__name__})", "") from None
        if _CHECKSUM_NOTE in text:
            problem = _checksum_problem(text)
            if problem:
                raise self._damaged(problem, text)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise self._damaged(f"it is not valid YAML ({str(e).splitlines()[0]})", text) from None
        if not isinstance(data, dict):
            raise self._damaged("it does not hold a study config mapping", text)
        lacking = [k for k in _ALWAYS_WRITTEN if not data.get(k)]
        if lacking:
            raise self._damaged(f"it lacks {', '.join(lacking)}, which every study.yaml holds (cut short?)", text)
        return data

    def _damaged(self, problem: str, text: str) -> UserError:
        """The error for a ``study.yaml`` that cannot be trusted, saying how to write it again."""
        origin = _origin_command(text)
        again = (f"`hplandscape sweep {origin} --study-dir {shlex.quote(str(self.root))} --force`" if origin
                 else f"`hplandscape sweep CONFIG --study-dir {shlex.quote(str(self.root))} --force` with the config "
                      "(and overrides) that made it")
        return UserError(f"{self.study_yaml} is damaged: {problem}. It decides which runs belong to the study, "
                         f"so it is not read with defaults for what is lost. Write it again with {again} "
                         "(every record is kept), or restore it from a backup.")

    def config(self):
        """The :class:`~hplandscape.study.config.StudyConfig` stored in ``study.yaml``."""
        from hplandscape.study.validation import study_from_dict
        return study_from_dict(self.read_config_dict(), str(self.study_yaml))

    # records -------------------------------------------------------------------------------
    def write_record(self, run_id: str, record: dict) -> Path:
        """Write the run record atomically and clear a previous failure of the run.

        ``record`` is a :class:`~hplandscape.store.run_record.RunRecord`'s JSON form, as the engines return it;
        it is written as it is (its keys in their order), so what is read back is what was written.
        """
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

        A record that is truncated, is not JSON, or fails :func:`~hplandscape.store.run_record.record_problem`
        (a missing key, a wrong type, a value out of range, another run's id) is CORRUPT: never
        counted as done, re-run by the next sweep.
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
        if record_problem(record, run_id) is not None:
            return RunState.CORRUPT, None
        return (RunState.DIVERGED if record["diverged"] else RunState.DONE), record

    def record_problem(self, run_id: str) -> str | None:
        """Why the run's record file is not a valid record (None when it is valid or absent)."""
        try:
            text = self.record_path(run_id).read_text()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            return f"unreadable ({type(e).__name__})"
        try:
            return record_problem(json.loads(text), run_id)
        except ValueError:
            return "not complete JSON (truncated?)"

    def iter_records(self, config=None):
        """The valid records of the runs the study asks for (:meth:`runs`), in that order."""
        for run in self.runs(config):
            state, record = self.read_record(run.run_id)
            if state.finished:
                yield record

    def runs(self, config=None) -> list[StudyRun]:
        """The runs the study asks for (``config`` or the one in ``study.yaml``), in
        :func:`~hplandscape.study.runs.study_runs` order: every run of a full design; for ``design.replicates: adaptive``
        its first round and the runs of the rounds stored in ``rounds.json``
        (:func:`~hplandscape.study.replication.requested_runs`)."""
        return requested_runs(config or self.config(), self.added_runs())

    def run_ids(self, config=None) -> list[str]:
        return [r.run_id for r in self.runs(config)]

    # adaptive rounds -----------------------------------------------------------------------
    def read_rounds(self) -> list[dict]:
        """The rounds after the first that an adaptive design decided, in order (``[]`` before
        any): each ``{"round": k, "runs": [run ids], "noise": {condition: ...}, "reasons":
        {run id: [reasons]}}``, rounds numbered 2, 3, ... without a gap.

        Raises
        ------
        UserError
            ``rounds.json`` cannot be read or is not such a list; the message names the file and
            what is wrong with it.
        """
        try:
            text = self.rounds_json.read_text()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as e:
            raise self._damaged_rounds(f"it cannot be read ({type(e).__name__})") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise self._damaged_rounds("it is not complete JSON") from None
        problem = _rounds_problem(data)
        if problem:
            raise self._damaged_rounds(problem)
        return data["rounds"]

    def added_runs(self) -> dict:
        """``{run id: round}`` of every run the stored later rounds asked for (:meth:`read_rounds`)."""
        return added_runs(self.read_rounds())

    def append_round(self, decide) -> dict | None:
        """Decide the next round and store it, once: under the rounds' lock, ``decide(rounds)``
        gets the stored rounds and returns the next one (``runs``, ``noise``, ``reasons``) or None
        when the design is settled. Two sweeps that finish a round together thus store it once;
        a round stored already is never decided again. Returns the stored round, or None.

        ``rounds.json`` is rewritten atomically with every earlier round as it was.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.rounds_lock):
            rounds = self.read_rounds()
            entry = decide(rounds)
            if entry is None:
                return None
            entry = {"round": (rounds[-1]["round"] if rounds else 1) + 1, **entry}
            problem = _rounds_problem({"rounds": [*rounds, entry]})
            if problem:
                raise ValueError(f"not a round of {self.rounds_json}: {problem}")
            atomic_write_json(self.rounds_json, {"rounds": [*rounds, entry]})
            return entry

    def _damaged_rounds(self, problem: str) -> UserError:
        return UserError(f"{self.rounds_json} is damaged: {problem}. It lists the runs that the later rounds of "
                         "the adaptive design (design.replicates: adaptive) asked for, so the study's runs cannot "
                         "be told without it. Restore it from a backup, or move it aside to decide the rounds "
                         "after the first again from the recorded runs (every record is kept).")

    # pruned architectures ------------------------------------------------------------------
    def write_arch(self, condition_name: str, spec) -> Path:
        """Store a condition's pruned :class:`~hplandscape.pruning.arch_spec.ArchSpec`."""
        from hplandscape.pruning.arch_spec import save_spec

        return save_spec(spec, self.spec_path(condition_name))

    def read_arch(self, condition_name: str, *, check_architecture: bool = True):
        """The stored :class:`~hplandscape.pruning.arch_spec.ArchSpec` of a condition, or None when there is
        none; a damaged file raises ``UserError`` naming it. ``check_architecture=False`` skips the
        check against the registered architecture (which imports torch), for display only."""
        from hplandscape.pruning.arch_spec import load_spec

        if not self.spec_path(condition_name).exists():
            return None
        return load_spec(self.spec_path(condition_name), check_architecture=check_architecture)

    def write_masks(self, condition_name: str, spec, masks) -> Path:
        """Store an unstructured condition's masks and their :class:`~hplandscape.pruning.mask_spec.MaskSpec`.

        The masks file is written first: a spec on disk always describes a complete masks file.
        """
        from hplandscape.pruning.mask_spec import save_mask_spec
        from hplandscape.pruning.unstructured import save_masks  # late: torch

        save_masks(self.masks_path(condition_name), masks)
        return save_mask_spec(spec, self.spec_path(condition_name))

    def read_mask_spec(self, condition_name: str):
        """The stored :class:`~hplandscape.pruning.mask_spec.MaskSpec` of an unstructured condition, or None
        when there is none (or no masks file next to it); a damaged file raises ``UserError``."""
        from hplandscape.pruning.mask_spec import load_mask_spec

        if not self.spec_path(condition_name).exists() or not self.masks_path(condition_name).exists():
            return None
        return load_mask_spec(self.spec_path(condition_name))

    def write_start_weights(self, condition_name: str, spec, model) -> Path:
        """Store the trained, pruned network a fine-tuned structured condition starts from."""
        from hplandscape.models import save_weights  # late: torch

        return save_weights(self.start_weights_path(condition_name), spec.model, model, spec.num_classes,
                            spec.in_channels, widths=spec.widths)

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

    def settled(self, run_id: str, since: float | None = None) -> bool:
        """Finished (a valid record), or tried since ``since`` (a time) without success: it failed
        (``error.json``), or the job that claimed it then has died (its claim went stale). A sweep
        that started at ``since`` does not train such a run again; the next sweep does."""
        if self.read_record(run_id)[0].finished:
            return True
        if since is None:
            return False
        error = self.read_error(run_id)
        t = error.get("time") if error else None
        if isinstance(t, (int, float)) and t >= since:
            return True
        claim = claims.read_claim(self.files(run_id))
        t = claim.get("claimed_at") if claim else None
        return isinstance(t, (int, float)) and t >= since and claims.is_stale(claim, self.stale_after)

    def run_state(self, run_id: str) -> RunState:
        """The state of one run, from its files only."""
        state, _ = self.read_record(run_id)
        if state.finished:
            return state
        if claims.live_claim(self.files(run_id), self.stale_after) is not None:
            return RunState.RUNNING
        if state is RunState.CORRUPT:
            return state
        if self.error_path(run_id).exists():
            return RunState.FAILED
        return RunState.MISSING


def _rounds_problem(data) -> str | None:
    """Why ``data`` (a loaded ``rounds.json``) is not a list of rounds, or None when it is."""
    if not isinstance(data, dict) or not isinstance(data.get("rounds"), list):
        return 'it does not hold {"rounds": [...]}'
    for k, r in enumerate(data["rounds"], start=2):
        if not isinstance(r, dict):
            return f"round {k} is not a JSON object"
        if r.get("round") != k or isinstance(r.get("round"), bool):
            return f"the rounds must be numbered 2, 3, ... in order; entry {k - 1} says round {r.get('round')!r}"
        runs = r.get("runs")
        if not isinstance(runs, list) or not all(isinstance(x, str) and len(x.split("/")) == 3 for x in runs):
            return f"round {k}: runs must be a list of run ids (<condition>/<point>/seed<k>), got {runs!r:.80}"
        for key in ("noise", "reasons"):
            if not isinstance(r.get(key), dict):
                return f"round {k}: {key} must be a JSON object, got {r.get(key)!r:.80}"
    return None


def _strip_volatile(d: dict) -> dict:
    """The parts of a resolved config that decide whether existing records stay valid."""
    d = {k: v for k, v in d.items() if k not in ("launcher", "analysis")}  # neither decides a run
    grid = dict(d.get("grid", {}))
    grid.pop("extra_log10_lr", None)
    grid.pop("extra_log10_wd", None)
    grid.pop("max_extend_rounds", None)
    d["grid"] = grid
    # A full design's study.yaml has no design section; spelled out, a change of design names its key
    design = d.get("design")
    d["design"] = {"replicates": "full", **(design if isinstance(design, dict) else {})}
    if isinstance(d.get("data"), dict):
        d["data"] = {k: v for k, v in d["data"].items() if k != "in_memory"}  # the same batches either way
    return d


def _code_hint(stored: dict, changes: list[tuple]) -> str:
    """Sentences naming the source files of the study's own code (its model, its data loader) when
    they are what changed."""
    hints = []
    for prefix, what, recorded in (("model_source.", "model", stored.get("model_source")),
                                   ("data.python_source.", "data loader", (stored.get("data") or {}).get("python_source"))):
        if any(key.startswith(prefix) for key, *_ in changes):
            hints.append(f"The {what}'s source file {(recorded or {}).get('file', '?')} changed since the study began "
                         f"(its sha256 is recorded in study.yaml and every run record): restore it, or use a new "
                         f"--study-dir for the changed {what}.")
    return " ".join(hints)


def config_changes(old: dict, new: dict) -> list[tuple]:
    """Settings that decide which records are valid and differ between two resolved configs.

    Returns
    -------
    list of (key, old value, new value)
        Dotted keys in sorted order; a list (``seeds``, ``conditions``) is compared whole. A key
        absent on one side has the value None there.
    """
    out: list[tuple] = []

    def walk(a, b, prefix):
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        elif _normal(a) != _normal(b):
            out.append((prefix, a, b))

    walk(_strip_volatile(old), _strip_volatile(new), "")
    return out


#: ``study.yaml``'s header line saying that its last line is a checksum (files written before it
#: have neither, and must hold the sections of :data:`_ALWAYS_WRITTEN`).
_CHECKSUM_NOTE = "# Its last line is the sha256 of the lines above it: a file cut short is refused."
_CHECKSUM_PREFIX = "# sha256 "
#: The sections every version of the writer put in ``study.yaml``; ``launcher`` follows every
#: section that decides the runs, so a file cut short of it has lost some of them.
_ALWAYS_WRITTEN = ("name", "model", "data", "conditions", "grid", "seeds", "train", "pruning", "launcher")
_ORIGIN = "# Read from "
_WITH_OVERRIDES = " with the overrides "


def _config_header(config) -> str:
    """The comment on top of ``study.yaml``: what it is and where it came from."""
    origin = _ORIGIN + config.source + (
        _WITH_OVERRIDES + " ".join(shlex.quote(o) for o in config.overrides) if config.overrides else "") + "."
    return ("# Resolved study config written by hplandscape; a sweep with a different\n"
            "# config is refused for this directory.\n" + _CHECKSUM_NOTE + "\n" + origin.replace("\n", " ") + "\n")


def _checksum_line(text: str) -> str:
    return f"{_CHECKSUM_PREFIX}{hashlib.sha256(text.encode()).hexdigest()}\n"


def _checksum_problem(text: str) -> str | None:
    """Why ``text`` (a ``study.yaml`` with a checksum note) is not complete, or None."""
    body, _, last = text.removesuffix("\n").rpartition("\n")
    if not last.startswith(_CHECKSUM_PREFIX):
        return "its last line, a checksum, is missing (the file was cut short)"
    if _checksum_line(body + "\n") != last + "\n" or not text.endswith("\n"):
        return "its text does not match the checksum on its last line (cut short, damaged or edited by hand)"
    return None


def _origin_command(text: str) -> str | None:
    """``CONFIG OVERRIDES`` of the sweep that wrote ``study.yaml``, from its header, or None when
    it came from no file (a config built in Python) or the header is gone."""
    for line in text.splitlines():
        if line.startswith(_ORIGIN) and line.endswith("."):
            source, _, overrides = line[len(_ORIGIN):-1].partition(_WITH_OVERRIDES)
            if source.startswith("<") and source.endswith(">"):
                return None
            return " ".join(x for x in (shlex.quote(source), overrides) if x)
    return None


def _normal(v):
    if isinstance(v, (list, tuple)):
        return [_normal(x) for x in v]
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items()}
    return v
