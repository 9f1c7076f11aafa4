"""Export a study's runs as TensorBoard logs, which many researchers already browse their runs in.

``tensorboard --logdir DIR`` then shows the study twice over: the Scalars dashboard has one run per
run record with its per-epoch curves (``train/loss``, ``train/acc``, ``eval/top1``, ``eval/top5``
where the history has it, ``lr``), and the HParams dashboard lists the grid as a table, in
parallel coordinates and as a scatter-plot matrix: the hyperparameters ``condition, method,
ratio, lr, wd, log10_lr, log10_wd, seed, pipeline`` against the metrics ``top1``, ``top5`` and
``diverged`` of every run. Nothing of the grid is lost: each run is one HParams session of its own
(its group is its run id, so seeds are not merged).

What the export writes::

    DIR/events.out.tfevents.*            the experiment: each hyperparameter with its domain, the metrics
    DIR/<run name>/events.out.tfevents.* one run: its per-epoch scalars, its hyperparameters, its final
                                         metrics (``final/top1``, ``final/top5``, ``final/diverged``)
    DIR/hplandscape-tensorboard.json     what this export wrote and from which source

A run's name is its run id with ``/`` written ``__`` (``base__lr-1.0000_wd-4.0000__seed0``): one
folder per run, so the HParams plugin finds each session and its metrics in one place. The
hyperparameters go into the run's own folder (``SummaryWriter.add_hparams`` would put them in a new
timestamped subfolder, a second run per record) and the experiment is written once, at the top,
with the domains of the whole grid (each run writing its own would leave the dashboard to pick one
run's values at random).

A study directory gives the curves, from its run records' histories. A results table (CSV or
Parquet, or a folder that holds ``results.csv``) has no curves: its runs get their hyperparameters
and final metrics only, enough for the HParams dashboard; export the study directory for the curves.

The export never deletes what it did not write: a non-empty ``DIR`` that is not an earlier export
of the same source is refused unless ``overwrite``, and even then only the runs and files an
earlier export recorded in ``hplandscape-tensorboard.json`` are replaced. Each run is written in a
staging folder inside ``DIR`` and moved into place once complete.

Examples
--------
>>> names = to_tensorboard("studies/quickstart", "studies/quickstart/tensorboard")   # doctest: +SKIP
>>> names[0]                                                                         # doctest: +SKIP
'base__lr-1.5000_wd-4.5000__seed0'
"""

from __future__ import annotations

import importlib
import json
import math
import shutil
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

from hplandscape.analysis.results_io import SOURCE_ATTR, STUDY_ATTR, load_results
from hplandscape.atomic import write_json
from hplandscape.errors import UserError
from hplandscape.store.layout import check_dir_target
from hplandscape.store.run_record import table_row
from hplandscape.store.study_store import StudyStore
from hplandscape.study.grid import GridPoint
from hplandscape.study.runs import run_id as make_run_id

TENSORBOARD_HINT = "pip install tensorboard (or pip install 'hplandscape[tensorboard]')"
#: The oldest tensorboard that runs with NumPy 2 (setup.cfg asks for it).
TENSORBOARD_MIN = "2.17"

#: The file that says what an export wrote (its runs, its top-level event files, its source).
MANIFEST = "hplandscape-tensorboard.json"
#: How TensorBoard's event files are named; the only files an export puts in a run's folder.
EVENTS_PREFIX = "events.out.tfevents."

#: Scalar tag ← the history entry's key (the first one present); one point per epoch, step = epoch.
SCALARS = (("train/loss", ("train_loss",)), ("train/acc", ("train_acc",)), ("eval/top1", ("val_acc", "top1")),
           ("eval/top5", ("top5",)), ("lr", ("lr",)))

#: The hyperparameters of each run: name → description (the HParams dashboard shows it).
HPARAMS = {
    "condition": "the condition: the basemodel or one pruned network",
    "method": "the pruning method (none for the basemodel)",
    "ratio": "the FLOPs (structured) or prunable weights (unstructured) kept; 1 for the basemodel",
    "lr": "SGD's learning rate",
    "wd": "SGD's coupled L2 coefficient (weight decay)",
    "log10_lr": "the grid point: log10 of the learning rate, rounded to 4 decimals",
    "log10_wd": "the grid point: log10 of the weight decay, rounded to 4 decimals",
    "seed": "the seed of initialisation, data order and augmentation",
    "pipeline": "retrain (from scratch) or finetune (from the trained basemodel)",
}
#: The metrics of each run: tag → (the record's key, the name shown, description). ``final/top5``
#: is listed only when a run has a top-5.
METRICS = {
    "final/top1": ("top1", "top1", "top-1 accuracy in percent on the held-out split after the last epoch"),
    "final/top5": ("top5", "top5", "top-5 accuracy in percent (none for data of five classes or fewer)"),
    "final/diverged": ("diverged", "diverged", "1 when the training loss became NaN or infinite, else 0"),
}
_STRINGS = ("condition", "method", "pipeline")
_INTERVALS = ("lr", "wd", "log10_lr", "log10_wd")


@dataclass(frozen=True)
class _Trial:
    """One run as the export writes it: its folder name, id, hyperparameters, metrics, history."""

    name: str
    run_id: str
    hparams: dict
    metrics: dict  # tag → float, or None (no value: a failed run's top-1, a top-5 of ≤ 5 classes)
    history: tuple


def _tensorboard():
    """What the export needs of tensorboard (and torch's writer of its event files), or UserError."""
    try:
        importlib.import_module("tensorboard")  # first: torch.utils.tensorboard may be loaded already
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
        from tensorboard.plugins.hparams import summary_v2 as hp
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError(f"exporting to TensorBoard needs the tensorboard package, which is not installed: "
                        f"{TENSORBOARD_HINT}") from None
    except AttributeError as e:  # a tensorboard older than NumPy 2 (np.string_ and the like are gone)
        version = getattr(sys.modules.get("tensorboard"), "__version__", "?")
        raise UserError(f"the installed tensorboard {version} does not run with this NumPy ({e}); "
                        f"upgrade it: pip install -U 'tensorboard>={TENSORBOARD_MIN}'") from None
    return types.SimpleNamespace(Summary=Summary, api_pb2=api_pb2, metadata=metadata,
                                 plugin_data_pb2=plugin_data_pb2, hp=hp, SummaryWriter=SummaryWriter)


def run_name(run_id: str) -> str:
    """The folder (and TensorBoard run) name of a run: its id with ``/`` written ``__`` and any
    character other than letters, digits, ``.``, ``_``, ``+`` and ``-`` written ``_``.

    Examples
    --------
    >>> run_name("uniform-0.5/lr-1.0000_wd-4.0000/seed2")
    'uniform-0.5__lr-1.0000_wd-4.0000__seed2'
    """
    name = "__".join(run_id.split("/"))
    name = "".join(c if c.isascii() and (c.isalnum() or c in "._+-") else "_" for c in name)
    return "_" + name[1:] if name.startswith(".") else name


def _hparams(row: dict) -> dict:
    point = GridPoint.from_values(float(row["lr"]), float(row["wd"]))  # the grid's identity rule
    return {"condition": str(row["condition"]), "method": str(row["method"]), "ratio": float(row["ratio"]),
            "lr": float(row["lr"]), "wd": float(row["wd"]), "log10_lr": point.log10_lr,
            "log10_wd": point.log10_wd, "seed": int(row["seed"]), "pipeline": str(row.get("pipeline") or "retrain")}


def _number(v) -> float | None:
    if v is None or isinstance(v, str):
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _metrics(row: dict) -> dict:
    return {"final/top1": _number(row["top1"]), "final/top5": _number(row.get("top5")),
            "final/diverged": 1.0 if bool(row.get("diverged")) else 0.0}


def _trials_from_records(records) -> list[_Trial]:
    trials = []
    for record in records:
        row = table_row(record)  # the record read as the results table reads it (method, pipeline defaults)
        history = record.get("history")
        history = tuple(h for h in history if isinstance(h, dict)) if isinstance(history, list) else ()
        trials.append(_Trial(run_name(record["run_id"]), record["run_id"], _hparams(row), _metrics(row), history))
    return trials


def _trials_from_table(table) -> list[_Trial]:
    trials = []
    for row in table.to_dict("records"):
        hparams = _hparams(row)
        rid = make_run_id(hparams["condition"], GridPoint(hparams["log10_lr"], hparams["log10_wd"]), hparams["seed"])
        trials.append(_Trial(run_name(rid), rid, hparams, _metrics(row), ()))
    return trials


def _study(source) -> StudyStore | None:
    """The study of ``source`` when it is a study directory; None for a results table."""
    if isinstance(source, (str, Path)) and Path(source).is_dir() and StudyStore(source).study_yaml.is_file():
        return StudyStore.open(source)
    return None


def has_curves(source) -> bool:
    """Whether :func:`to_tensorboard` writes per-epoch curves for ``source``: a study directory
    (its records hold the histories), not a results table."""
    return _study(source) is not None


def _read(source, logdir: Path):
    """(trials, identity of the source, what to call it)."""
    store = _study(source)
    if store is not None:
        if logdir.resolve() == store.root.resolve():
            raise UserError(f"the TensorBoard log directory {logdir} is the study directory itself; "
                            f"choose a folder of its own, e.g. {store.root / 'tensorboard'}")
        config = store.config()
        trials = _trials_from_records(store.iter_records(config))
        if not trials:
            raise UserError(f"{source}: the study has no finished runs to export yet; "
                            f"`hplandscape status {source}` shows where its runs stand")
        return trials, str(store.root.resolve()), config.name
    table = load_results(source)
    where = str(table.attrs.get(SOURCE_ATTR, "<DataFrame>"))
    identity = where if where == "<DataFrame>" else str(Path(where).resolve())
    return _trials_from_table(table), identity, str(table.attrs.get(STUDY_ATTR, where))


def _experiment(tb, trials: list[_Trial]):
    """The experiment summary: every hyperparameter with its domain over ``trials``, the metrics."""
    hp = tb.hp
    hparams = []
    for name, description in HPARAMS.items():
        values = [t.hparams[name] for t in trials]
        if name in _INTERVALS:
            domain = hp.RealInterval(min(values), max(values))
        else:
            domain = hp.Discrete(sorted(set(values)), dtype=str if name in _STRINGS else type(values[0]))
        hparams.append(hp.HParam(name, domain, display_name=name, description=description))
    metrics = [hp.Metric(tag, display_name=shown, description=description,
                         dataset_type=hp.Metric.VALIDATION if tag != "final/diverged" else hp.Metric.TRAINING)
               for tag, (_, shown, description) in METRICS.items()
               if any(t.metrics[tag] is not None for t in trials)]
    return hp.hparams_config_pb(hparams, metrics, time_created_secs=time.time())


def _session_end(tb, end_time: float):
    """The session-end summary of a run (status success: a diverged run is a result, not a failure)."""
    info = tb.plugin_data_pb2.SessionEndInfo(status=tb.api_pb2.STATUS_SUCCESS, end_time_secs=end_time)
    summary = tb.Summary()
    summary.value.add(tag=tb.metadata.SESSION_END_INFO_TAG, tensor=tb.metadata.NULL_TENSOR,
                      metadata=tb.metadata.create_summary_metadata(
                          tb.plugin_data_pb2.HParamsPluginData(session_end_info=info)))
    return summary


def _scalar(entry: dict, keys) -> float | None:
    """An epoch's value of one scalar: the first key present; a null loss is NaN (the epoch the loss
    turned NaN or infinite), any other null or non-number is left out."""
    for key in keys:
        if key in entry:
            v = entry[key]
            if v is None and key == "train_loss":
                return math.nan
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return None


def _write_run(tb, folder: Path, trial: _Trial) -> None:
    now = time.time()
    with tb.SummaryWriter(log_dir=str(folder)) as writer:
        last = 0
        for i, entry in enumerate(trial.history):
            step = int(entry["epoch"]) if isinstance(entry.get("epoch"), int) else i
            last = max(last, step)
            for tag, keys in SCALARS:
                value = _scalar(entry, keys)
                if value is not None:
                    writer.add_scalar(tag, value, global_step=step, walltime=now)
        writer.file_writer.add_summary(tb.hp.hparams_pb(trial.hparams, trial_id=trial.run_id, start_time_secs=now),
                                       global_step=0, walltime=now)
        for tag, value in trial.metrics.items():
            if value is not None:
                writer.add_scalar(tag, value, global_step=last, walltime=now)
        writer.file_writer.add_summary(_session_end(tb, now), global_step=last, walltime=now)


def _plain_name(name) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def _only_events(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but TensorBoard event files (what an export put there)."""
    return folder.is_dir() and not folder.is_symlink() and all(
        p.is_file() and p.name.startswith(EVENTS_PREFIX) for p in folder.iterdir())


def _earlier_export(logdir: Path, identity: str, source, overwrite: bool) -> tuple[set, set]:
    """The runs and top-level files an earlier export wrote into ``logdir`` (to be replaced); raises
    when ``logdir`` holds something else and may not be written into."""
    try:
        if not logdir.exists() or not any(logdir.iterdir()):
            return set(), set()
    except OSError as e:
        raise UserError(f"the TensorBoard log directory {logdir} cannot be read ({e.strerror}); "
                        "choose another folder") from None
    manifest, runs, files = None, set(), set()
    try:
        manifest = json.loads((logdir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    if isinstance(manifest, dict):
        runs = {n for n in manifest.get("runs") or () if _plain_name(n) and _only_events(logdir / n)}
        files = {n for n in manifest.get("files") or () if _plain_name(n) and n.startswith(EVENTS_PREFIX)
                 and (logdir / n).is_file()}
    same = isinstance(manifest, dict) and identity != "<DataFrame>" and manifest.get("source") == identity
    if not (same or overwrite):
        what = (f"holds an export of {manifest.get('source')}, not of {source}" if isinstance(manifest, dict)
                else f"is not empty and holds no export of {source}")
        raise UserError(f"the TensorBoard log directory {logdir} {what}; choose a new or empty folder, or pass "
                        f"--overwrite to write into it (the runs and files an earlier export wrote there are "
                        f"replaced; nothing else is deleted)")
    return runs, files


def to_tensorboard(source, logdir, overwrite: bool = False) -> list[str]:
    """Write one TensorBoard run per run of ``source`` into ``logdir``, with the HParams data.

    Parameters
    ----------
    source : str, os.PathLike or pandas.DataFrame
        A study directory (each run record is a run with its per-epoch curves), or a results
        CSV/Parquet file or table (see :func:`hplandscape.analysis.load_results`; its runs get
        their hyperparameters and final metrics only: a table holds no curves).
    logdir : str or os.PathLike
        The folder ``tensorboard --logdir`` is given; created if missing. It may not be among the
        study's own files, nor the study directory itself.
    overwrite : bool
        Write into a non-empty ``logdir`` that is not an earlier export of ``source``. An earlier
        export of the same source is always brought up to date; either way only the runs and
        files an earlier export recorded (``hplandscape-tensorboard.json``) are replaced or
        removed, never anything else.

    Returns
    -------
    list of str
        The runs written (folder names under ``logdir``, :func:`run_name` of each run id), in the
        study's run order (a table's: condition, lr, wd, seed). Each has the scalars
        :data:`SCALARS` per epoch (step = the history's epoch, from 0), the HParams session of
        the hyperparameters :data:`HPARAMS` (its group is the run id) and the metrics
        :data:`METRICS` as scalars at the last epoch; ``logdir`` itself holds the experiment
        (the hyperparameters' domains over the runs, the metrics).

    Raises
    ------
    hplandscape.errors.UserError
        tensorboard is not installed, ``source`` is not a study or a valid results table or has
        no finished run, ``logdir`` cannot be a folder or lies among the study's files, it is
        not empty and not an earlier export of ``source`` and ``overwrite`` is false, or it holds
        a folder of a run's name that an export did not write.
    """
    tb = _tensorboard()
    logdir = check_dir_target(logdir, "the TensorBoard log directory")
    trials, identity, study = _read(source, logdir)
    names = [t.name for t in trials]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UserError(f"{source}: two runs have the same TensorBoard name {dup!r}; rename a condition")
    old_runs, old_files = _earlier_export(logdir, identity, source, overwrite)
    for name in names:
        if name not in old_runs and (logdir / name).exists():
            raise UserError(f"{logdir / name} exists and was not written by an export of this project; "
                            "move it away or choose another folder for the TensorBoard logs")
    created = not logdir.exists()
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".hplandscape-tensorboard-", dir=logdir))
    except OSError as e:
        raise UserError(f"the TensorBoard log directory {logdir} cannot be written ({e.strerror}); "
                        "choose another folder") from None
    done = False
    try:
        with tb.SummaryWriter(log_dir=str(staging)) as writer:
            writer.file_writer.add_summary(_experiment(tb, trials))
        files = sorted(p.name for p in staging.iterdir() if p.is_file() and p.name.startswith(EVENTS_PREFIX))
        for trial in trials:
            _write_run(tb, staging / trial.name, trial)
        manifest = {"format": 1, "source": identity, "study": study, "curves": any(t.history for t in trials)}
        # First a manifest that names what is there and what is coming, so an export stopped midway
        # leaves nothing of its own that the next one would take for someone else's.
        write_json(logdir / MANIFEST, {**manifest, "runs": sorted(old_runs | set(names)),
                                       "files": sorted(old_files | set(files))})
        for name in old_runs:
            shutil.rmtree(logdir / name)
        for name in old_files:
            (logdir / name).unlink(missing_ok=True)
        for name in [*names, *files]:
            (staging / name).rename(logdir / name)
        write_json(logdir / MANIFEST, {**manifest, "runs": names, "files": files})
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not done and created and logdir.is_dir() and not any(logdir.iterdir()):
            logdir.rmdir()
    return names
