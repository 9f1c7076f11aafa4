"""Export a study's results to Optuna storages, which the tools researchers already use read.

An Optuna study per condition lets ``optuna.visualization`` (contour, slice, parameter
importances), optuna-dashboard and DeepCAVE, which all read Optuna storages, open the grid as
if Optuna had sampled it: one trial per run, lr and wd as log-uniform float parameters, the
value is top-1 (maximised), and the run's seed, FLOPs, parameters and divergence are user
attributes. The grid's own structure is kept in the parameters' values, so nothing is lost.

Examples
--------
>>> from hplandscape.analysis.example import synthetic_results
>>> names = to_optuna(synthetic_results(), "sqlite:///example.db")   # doctest: +SKIP
>>> import optuna; optuna.load_study(study_name=names[0], storage="sqlite:///example.db")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pandas as pd

from hplandscape.analysis.results_io import SOURCE_ATTR, STUDY_ATTR, load_results
from hplandscape.errors import UserError

OPTUNA_HINT = "pip install optuna (or pip install 'hplandscape[optuna]')"


def study_prefix(table: pd.DataFrame) -> str:
    """The name the Optuna studies of ``table`` start with.

    The study's own name when the table came from a study directory, else the name of the
    results file's folder (a ``results.csv`` / ``results.parquet``) or of the file itself.
    """
    if STUDY_ATTR in table.attrs:
        return str(table.attrs[STUDY_ATTR])
    source = table.attrs.get(SOURCE_ATTR, "<DataFrame>")
    if source == "<DataFrame>":
        return "hplandscape"
    path = Path(source)
    if path.is_dir():
        return path.resolve().name
    return path.resolve().parent.name if path.stem == "results" else path.stem


def _optuna():
    try:
        import optuna
    except ImportError:
        raise UserError(f"exporting to Optuna needs the optuna package, which is not installed: "
                        f"{OPTUNA_HINT}") from None
    return optuna


@contextlib.contextmanager
def _quiet(optuna):
    """Silence Optuna's per-study INFO lines for the export, and restore the caller's level."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _maybe(v, kind):
    """A JSON-able user attribute: None for a missing or non-finite number."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)) or pd.isna(v):
        return None
    return kind(v)


def _trials(optuna, rows: pd.DataFrame, distributions: dict) -> list:
    from optuna.trial import TrialState, create_trial

    trials = []
    for r in rows.sort_values(["lr", "wd", "seed"], kind="stable").itertuples(index=False):
        attrs = {"seed": int(r.seed), "flops": _maybe(getattr(r, "flops", None), float),
                 "params": _maybe(getattr(r, "params", None), int), "diverged": bool(r.diverged),
                 # the round of the study's design that ran it; a table from before designs: 1
                 "round": _maybe(getattr(r, "round", None), int) or 1}
        ok = math.isfinite(r.top1)
        # A run without a top-1 (failed) is a failed trial: Optuna's plots leave it out, as we do.
        trials.append(create_trial(state=TrialState.COMPLETE if ok else TrialState.FAIL,
                                   value=float(r.top1) if ok else None,
                                   params={"lr": float(r.lr), "wd": float(r.wd)},
                                   distributions=distributions, user_attrs=attrs))
    return trials


def to_optuna(results, storage: str, prefix: str | None = None, overwrite: bool = False) -> list[str]:
    """Write one Optuna study per condition into ``storage``.

    Parameters
    ----------
    results : str, os.PathLike or pandas.DataFrame
        A study directory, a results CSV/Parquet file or a results table
        (see :func:`hplandscape.analysis.load_results`).
    storage : str
        An Optuna storage URL, e.g. ``sqlite:///FILE.db`` (any SQLAlchemy URL Optuna accepts).
    prefix : str, optional
        Study names are ``PREFIX/CONDITION``; by default the study's name (:func:`study_prefix`).
    overwrite : bool
        Replace studies of the same names; without it an existing name is an error.

    Returns
    -------
    list of str
        The study names written, in the table's condition order. Each study has direction
        ``maximize``, one trial per run (params ``lr`` and ``wd`` with log-uniform
        ``FloatDistribution`` over the study's grid range; value = top-1 in percent; user
        attributes ``seed``, ``flops``, ``params``, ``diverged``) and study user attributes
        ``condition``, ``method``, ``ratio`` and ``source``.

    Raises
    ------
    hplandscape.errors.UserError
        Optuna is not installed, the storage URL cannot be opened, or a study of that name
        exists and ``overwrite`` is false.
    """
    optuna = _optuna()
    table = load_results(results)
    prefix = study_prefix(table) if prefix is None else str(prefix)
    dist = {"lr": optuna.distributions.FloatDistribution(float(table["lr"].min()), float(table["lr"].max()), log=True),
            "wd": optuna.distributions.FloatDistribution(float(table["wd"].min()), float(table["wd"].max()), log=True)}
    from sqlalchemy.exc import SQLAlchemyError  # Optuna's RDB storages are built on SQLAlchemy

    with _quiet(optuna):
        try:
            backend = optuna.storages.get_storage(storage)
        except (SQLAlchemyError, ImportError, ValueError) as e:  # bad URL, unreachable file, no driver
            raise UserError(f"{storage!r}: cannot open this Optuna storage "
                            f"({type(e).__name__}: {(str(e).splitlines() or [''])[0]}); "
                            f"give an SQLAlchemy URL such as sqlite:///FILE.db") from None
        existing = set(optuna.study.get_all_study_names(storage=backend))
        names = []
        for condition, rows in table.groupby("condition", sort=False):
            name = f"{prefix}/{condition}"
            if name in existing:
                if not overwrite:
                    raise UserError(f"{storage}: an Optuna study named {name!r} already exists; "
                                    f"pass --overwrite to replace it or --name to choose another prefix")
                optuna.delete_study(study_name=name, storage=backend)
            study = optuna.create_study(storage=backend, study_name=name, direction="maximize")
            for key, value in (("condition", condition), ("method", str(rows["method"].iloc[0])),
                               ("ratio", float(rows["ratio"].iloc[0])),
                               ("source", str(table.attrs.get(SOURCE_ATTR, "<DataFrame>")))):
                study.set_user_attr(key, value)
            study.add_trials(_trials(optuna, rows, dist))
            names.append(name)
    return names
