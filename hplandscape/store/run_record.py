"""The run record: what one training run leaves behind (``record.json``), its schema defined once.

:class:`RunRecord` is that schema. The engines build one at the end of every run
(:func:`hplandscape.training.lifecycle.finish_run`) and return its JSON form (:meth:`RunRecord.to_json`);
the store writes that form and holds every record it reads to :func:`record_problem`; the results
table is one :func:`table_row` per record, in the columns :data:`COLUMNS`. No other module lists
the record's keys.

The JSON form (a plain ``dict``), not the dataclass, is what crosses process and file boundaries:
what a worker returns (submitit pickles it back to the launcher), what ``record.json`` holds, what
:meth:`~hplandscape.store.study_store.StudyStore.read_record` returns to the plots and the results table. So
a record read from a study written by any earlier version must keep loading:

- a key that an older version did not write (``randomness``, ``eval_size``, ``pipeline``,
  ``density``, ``dense_params``, ``dense_flops``, ``egf``, ``precision``, ``memory_format``, ``round``,
  ``replicates``, …) is
  :data:`ABSENT` in the :class:`RunRecord` and left out of its JSON form again. Absent is not null:
  ``top5: null`` says the data had five classes or fewer, ``density: null`` that the architecture
  has no prunable weights this package can find;
- a key this version does not know (one a later version added) is kept in ``extra`` and written
  back after the known ones, so reading and writing a record never loses a field;
- the known keys come in the order of the fields below, the order the engines have always
  returned them in (``record.json`` itself sorts its keys: :func:`hplandscape.atomic.write_json`),
  so the engines return the same keys, values and order as before this module existed.

Construction checks nothing, on purpose: an engine's record is checked where it is read, by the
same rules as a record that has been on disk (:func:`record_problem`), so a bad one is reported
and re-run the same way wherever it came from. :meth:`RunRecord.from_json` checks, for readers
that want a RunRecord or an error naming the file.

No torch, numpy or pandas here (the standard library, the package's errors and the recipes'
constants): the analysis reads :data:`COLUMNS` without importing any training code.

Examples
--------
>>> d = {"run_id": "base/lr-1.0000_wd-4.0000/seed0", "condition": "base", "method": "none",
...      "ratio": 1.0, "lr": 0.1, "wd": 0.0001, "seed": 0, "top1": 91.5, "top5": None, "diverged": False}
>>> record = RunRecord.from_json(d)
>>> record.eval_size
ABSENT
>>> record.to_json() == d
True
>>> record_problem({**d, "top1": 500.0}, d["run_id"])
'top1 must be a percentage in [0, 100], got 500.0'
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from hplandscape.errors import UserError
from hplandscape.study.recipes import LEGACY_RANDOMNESS


class _Absent(enum.Enum):
    ABSENT = "absent"

    def __repr__(self) -> str:
        return "ABSENT"


#: The value of a field whose key the record does not have: written by a version before the field
#: existed, or by a test fake that leaves it out. Never written to JSON. (An enum member, so that
#: it survives pickling and copying as the same object and ``is ABSENT`` holds.)
ABSENT = _Absent.ABSENT

#: The results table's columns, in order: one row per finished run (:func:`table_row`).
COLUMNS = ("condition", "method", "ratio", "lr", "wd", "log10_lr", "log10_wd", "seed", "top1",
           "top5", "diverged", "params", "flops", "epochs_completed", "wall_time_s", "randomness", "precision",
           "run_id", "pipeline", "density", "dense_flops", "egf1_mean", "egf2_mean", "eval_size", "round",
           "replicates")
#: The columns the analysis cannot do without (``analysis.io.load_results`` refuses a table that
#: lacks one); it reads the others when a table has them, as a hand-made or older table may not.
REQUIRED_COLUMNS = ("condition", "method", "ratio", "lr", "wd", "seed", "top1")


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """The record of one finished (or diverged) run: the schema of ``record.json``.

    The first group of fields is what the store requires of every record (:func:`record_problem`);
    every other field may be :data:`ABSENT` in a record written before it existed. The engines
    fill every field. Nested values (``recipe``, ``data``, ``history``, ``provenance``, ``egf``)
    are plain JSON data, copied on the way out by :meth:`to_json`.

    Parameters
    ----------
    run_id : str
        ``<condition>/<point key>/seed<k>`` (:func:`hplandscape.study.runs.run_id`).
    condition : str
        The condition's name; must be the first part of ``run_id``.
    method : str
        The condition's pruning method; ``"none"`` for the basemodel.
    ratio : float
        In (0, 1]: the FLOPs fraction kept (structured methods), the fraction of the prunable
        weights kept (unstructured ones), 1.0 for the basemodel.
    lr, wd : float
        SGD's learning rate and coupled L2 coefficient (``recipes.PARAMETRISATION``), positive.
    seed : int
        The seed of ``run_id``: it fixes initialisation, data order and augmentation.
    top1 : float
        Top-1 accuracy in percent on the held-out split after the last epoch; a diverged run's is
        one evaluation of the diverged network (chance level when the weights are NaN).
    top5 : float or None
        Top-5 accuracy in percent; None for data of five classes or fewer.
    diverged : bool
        The training loss became NaN or infinite: a result (method §7), not a failure.
    study, model : str
        The study's name and the registered architecture.
    log10_lr, log10_wd : float
        The grid point, rounded to 4 decimals (the grid's identity rule).
    recipe : dict
        The run's :class:`~hplandscape.study.recipes.Recipe` (``Recipe.to_dict()``).
    randomness : {"independent", "common"}
        How init and data order were seeded (``train.randomness``); absent in records from before
        the setting, which were ``common`` (:data:`~hplandscape.study.recipes.LEGACY_RANDOMNESS`).
    data : dict
        The run's :class:`~hplandscape.study.config.DataConfig` as a dict.
    history : list of dict
        One entry per epoch trained: ``{epoch, lr, train_loss, train_acc, val_acc}`` (``lr``: the
        one the epoch began with; ``val_acc`` in percent). A diverged run's last entry has
        ``train_loss: null``.
    epochs_completed : int
        Epochs trained to the end; ``diverged_epoch`` for a diverged run.
    wall_time_s : float
        Seconds of training, earlier sessions of a resumed run included; the fused engine gives
        each run its share of its group's time.
    params, flops : int
        The network's parameters and FLOPs (2 × multiply-accumulates for one image); a masked
        run's leave its zero weights out.
    arch_hash : str or None
        The pruned architecture's ``content_hash``; None for the basemodel.
    diverged_epoch : int or None
        The epoch whose loss turned NaN/inf.
    device : str
        The device's name (``provenance.device_name``).
    engine : {"sequential", "fused"}
    precision : str
        The autocast dtype's name, or ``"float32"``; absent: float32.
    memory_format : str
        The layout images and weights were kept in (``"channels_last"`` or ``"contiguous"``).
    parametrisation : str
        How lr and wd were applied, in words, so that the record says it without the code.
    provenance : dict
        ``provenance.provenance(device)``: versions, git commit, host, device.
    eval_size : int
        Images in the held-out split: one image is 100/eval_size points of top-1.
    pipeline : {"retrain", "finetune"}
        Absent: retrain (the only pipeline before method §13).
    density : float or None
        The measured non-zero fraction of the prunable weights at the end; None when the
        architecture has no first conv and classifier to tell them by.
    dense_params, dense_flops : int
        ``params`` and ``flops`` with a masked run's zero weights counted.
    egf : list of dict or None
        ``[{epoch, egf1, egf2}]``, the effective gradient flow with ``train.gradient_flow``; None
        without it.
    model_source : dict
        A model of the user's (named by import path): the import path, file, sha256 of the file
        and import root it was trained from. Absent for a built-in architecture.
    round : int
        The round of the study's design that asked for the run (``design.replicates: adaptive``
        adds seeds in rounds 2, 3, ...); absent: 1. It does not decide whether the record is valid.
    replicates : {"full", "adaptive"}
        The study's design when the run was planned; absent: full.
    extra : dict
        Keys this version does not know, kept so that a record read and written back loses nothing.
    """

    # what every record must have (record_problem)
    run_id: str
    study: str | _Absent = ABSENT
    condition: str
    method: str
    ratio: float
    model: str | _Absent = ABSENT
    lr: float
    wd: float
    log10_lr: float | _Absent = ABSENT
    log10_wd: float | _Absent = ABSENT
    seed: int
    recipe: dict | _Absent = ABSENT
    randomness: str | _Absent = ABSENT
    data: dict | _Absent = ABSENT
    top1: float
    top5: float | None
    history: list | _Absent = ABSENT
    epochs_completed: int | _Absent = ABSENT
    wall_time_s: float | _Absent = ABSENT
    params: int | _Absent = ABSENT
    flops: int | _Absent = ABSENT
    arch_hash: str | None | _Absent = ABSENT
    diverged: bool
    diverged_epoch: int | None | _Absent = ABSENT
    device: str | _Absent = ABSENT
    engine: str | _Absent = ABSENT
    precision: str | _Absent = ABSENT
    memory_format: str | _Absent = ABSENT
    parametrisation: str | _Absent = ABSENT
    provenance: dict | _Absent = ABSENT
    eval_size: int | _Absent = ABSENT
    pipeline: str | _Absent = ABSENT
    density: float | None | _Absent = ABSENT
    dense_params: int | _Absent = ABSENT
    dense_flops: int | _Absent = ABSENT
    egf: list | None | _Absent = ABSENT
    model_source: dict | _Absent = ABSENT
    round: int | _Absent = ABSENT
    replicates: str | _Absent = ABSENT
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def for_spec(cls, spec, **measured) -> "RunRecord":
        """The record of ``spec`` (a :class:`~hplandscape.study.run_spec.RunSpec`): what the spec says about
        the run (its id, condition, grid point, seed, recipe, data, pipeline) filled in from it,
        ``measured`` (top-1, history, sizes, …) as given.

        The one place that maps a spec onto record fields, so both engines and anything that
        stands in for them agree on it.
        """
        return cls(run_id=spec.run_id, study=spec.study, condition=spec.condition.name,
                   method=spec.condition.method, ratio=spec.condition.ratio, model=spec.model, lr=spec.lr,
                   wd=spec.wd, log10_lr=spec.point.log10_lr, log10_wd=spec.point.log10_wd, seed=spec.seed,
                   recipe=spec.recipe.to_dict(), randomness=spec.recipe.randomness,
                   data=spec.data.to_dict(), pipeline=spec.condition.pipeline,
                   **({"model_source": dict(spec.model_source)} if getattr(spec, "model_source", None) else {}),
                   round=spec.round, replicates=spec.replicates, **measured)

    def to_json(self) -> dict:
        """The record as ``record.json`` holds it: known keys in field order without the
        :data:`ABSENT` ones, then ``extra``; values are copies."""
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in _FIELDS
               if getattr(self, f.name) is not ABSENT}
        out.update(copy.deepcopy(dict(self.extra)))
        return out

    @classmethod
    def from_json(cls, data, where: str = "run record", run_id: str | None = None) -> "RunRecord":
        """A record's JSON form (a loaded ``record.json``), checked by :func:`record_problem`.

        ``run_id``: the run the record must belong to (default: the one it names). A key it lacks
        is :data:`ABSENT`; one this version does not know goes to ``extra``.

        Raises
        ------
        UserError
            ``"<where>: <what is wrong>"``, e.g. ``"runs/…/record.json: top1 is missing"``.
        """
        problem = record_problem(data, run_id)
        if problem is not None:
            raise UserError(f"{where}: {problem}")
        known = {name: data[name] for name in _NAMES if name in data}
        return cls(**copy.deepcopy(known), extra=copy.deepcopy({k: v for k, v in data.items() if k not in _NAMES}))

    def to_row(self) -> dict:
        """The record's row of the results table (:func:`table_row`)."""
        return table_row(self.to_json())


_FIELDS = tuple(f for f in dataclasses.fields(RunRecord) if f.name != "extra")
_NAMES = frozenset(f.name for f in _FIELDS)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _run_id_parts(run_id) -> tuple[str, str, str] | None:
    parts = run_id.split("/") if isinstance(run_id, str) else ()
    return tuple(parts) if len(parts) == 3 and all(parts) else None


def record_problem(record, run_id: str | None = None) -> str | None:
    """Why ``record`` (a JSON form) is not a valid record of ``run_id``, or None when it is.

    These are the keys and ranges the results table and the analysis rely on. A record that fails
    here is CORRUPT (:class:`~hplandscape.store.study_store.RunState`): never counted as done, never analysed,
    re-run by the next sweep; ``hplandscape status`` shows this reason. ``run_id`` None: the record
    is checked against the run it names itself. Keys beyond these are not checked, so records of
    older and newer versions stay readable.
    """
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    if run_id is None:
        if "run_id" not in record:
            return "run_id is missing"
        run_id = record["run_id"]
        if _run_id_parts(run_id) is None:
            return f"run_id must be <condition>/<point>/seed<k>, got {run_id!r}"
    condition, _, seed_part = run_id.split("/")
    checks = (
        ("run_id", lambda v: v == run_id, f"the run id {run_id!r}"),
        ("condition", lambda v: v == condition, f"the condition {condition!r}"),
        ("method", lambda v: isinstance(v, str) and v != "", "a method name"),
        ("ratio", lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
        ("lr", lambda v: _number(v) and v > 0, "a positive number"),
        ("wd", lambda v: _number(v) and v > 0, "a positive number"),
        ("seed", lambda v: isinstance(v, int) and not isinstance(v, bool) and f"seed{v}" == seed_part,
         f"the seed of {seed_part!r}"),
        ("top1", lambda v: _number(v) and 0 <= v <= 100, "a percentage in [0, 100]"),
        ("top5", lambda v: v is None or (_number(v) and 0 <= v <= 100), "null or a percentage in [0, 100]"),
        ("diverged", lambda v: isinstance(v, bool), "true or false"),
    )
    for key, ok, what in checks:
        if key not in record:
            return f"{key} is missing"
        if not ok(record[key]):
            return f"{key} must be {what}, got {record[key]!r}"
    return None


def egf_mean(entries, key: str) -> float | None:
    """Mean of one gradient-flow quantity (``egf1`` or ``egf2``) over a record's measurements;
    None without any finite one.

    Examples
    --------
    >>> egf_mean([{"epoch": 0, "egf1": 2.0, "egf2": 1.0}, {"epoch": 5, "egf1": 4.0, "egf2": None}], "egf2")
    1.0
    """
    values = [e.get(key) for e in entries or () if isinstance(e, dict)]
    values = [float(v) for v in values if isinstance(v, (int, float)) and v == v and abs(v) != float("inf")]
    return sum(values) / len(values) if values else None


def table_row(record: Mapping) -> dict:
    """One results-table row from a record's JSON form: :data:`COLUMNS`, then ``arch_hash``.

    It reads the JSON form rather than a :class:`RunRecord` because the table is made from what
    the store read, and it reads it leniently: a key the record lacks is an empty cell, except
    where the record's age tells the value — no ``method``: ``none``; no ``randomness``: the
    recipe's, else ``common`` (:data:`~hplandscape.study.recipes.LEGACY_RANDOMNESS`); no ``precision``:
    ``float32``; no ``pipeline``: ``retrain``; no ``round``: 1; no ``replicates``: ``full``. ``egf1_mean``/``egf2_mean`` average the run's
    gradient-flow measurements (:func:`egf_mean`).

    Examples
    --------
    >>> row = table_row({"condition": "base", "lr": 0.1, "wd": 1e-4, "seed": 0, "top1": 91.5})
    >>> row["method"], row["randomness"], row["pipeline"], row["egf2_mean"], row["round"], row["replicates"]
    ('none', 'common', 'retrain', None, 1, 'full')
    """
    row = {c: record.get(c) for c in COLUMNS}
    row["method"] = row["method"] or "none"
    row["randomness"] = row["randomness"] or (record.get("recipe") or {}).get("randomness") or LEGACY_RANDOMNESS
    row["precision"] = row["precision"] or "float32"  # records before the field trained in float32
    row["pipeline"] = row["pipeline"] or "retrain"  # records from before pipelines: retrained
    row["round"] = row["round"] or 1  # records from before designs: every seed everywhere, at once
    row["replicates"] = row["replicates"] or "full"
    for p in (1, 2):
        row[f"egf{p}_mean"] = egf_mean(record.get("egf"), f"egf{p}")
    row["arch_hash"] = record.get("arch_hash")
    return row
