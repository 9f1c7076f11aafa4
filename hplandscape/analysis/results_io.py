"""Reading and validating the results table (docs/architecture.md, "Results table")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hplandscape.analysis.notation import hp_text
from hplandscape.choices import plain_name
from hplandscape.errors import UserError
from hplandscape.store.run_record import REQUIRED_COLUMNS as REQUIRED  # defined with the table's columns; no torch
from hplandscape.study.config import METHODS  # a condition's method, as a study config names it
from hplandscape.study.grid import GRID_DECIMALS  # the grid's identity rule: log10 values rounded
from hplandscape.study.recipes import LEGACY_RANDOMNESS, RANDOMNESS
from hplandscape.study.replication import REPLICATES  # design.replicates: which seeds run where

SOURCE_ATTR = "hplandscape_source"
# (log10 lr, log10 wd) of the basemodel's prior and the study's name, when the table came from a
# study directory whose study.yaml says so; the analysis falls back to the grid's centre.
PRIOR_ATTR = "hplandscape_prior"
STUDY_ATTR = "hplandscape_study"
# the study's ROI thresholds (``analysis.roi`` of its study.yaml), the analysis's default xs
ROI_ATTR = "hplandscape_roi"


def load_results(path_or_df) -> pd.DataFrame:
    """Read and validate a results table.

    Parameters
    ----------
    path_or_df : str, os.PathLike or pandas.DataFrame
        A results CSV, a study directory (its run records are collected afresh; a directory
        that is not a study but holds a ``results.csv`` has that file read) or a DataFrame with at least the columns
        ``condition, method, ratio, lr, wd, seed, top1`` (optional ``top5``, ``diverged``,
        ``randomness``, ``replicates``, ``round``).

    Returns
    -------
    pandas.DataFrame
        A copy with ``log10_lr`` / ``log10_wd`` recomputed from ``lr`` / ``wd`` and rounded to 4
        decimals (the grid's identity rule), ``seed`` as int, ``top1`` as float (NaN = failed run)
        and ``diverged`` as bool, ``randomness`` as "independent" or "common" (how each run's
        initialisation and data order were seeded; where the column is absent or a cell empty,
        the runs predate the setting and shared one initialisation per seed: "common"), and where
        present ``replicates`` as "full" or "adaptive" (an empty cell: full) and ``round`` as int
        (an empty cell: 1). ``df.attrs["hplandscape_source"]`` names where it came from.

    Raises
    ------
    hplandscape.errors.UserError
        If the file is missing or unreadable, a required column is absent, the table is empty, or a
        value is invalid (the message names the file, the column and the offending row).

    Examples
    --------
    >>> from hplandscape.analysis.example import synthetic_results
    >>> table = load_results(synthetic_results())
    >>> sorted(table["condition"].unique())[:2]
    ['base', 'global-0.4']
    """
    if isinstance(path_or_df, pd.DataFrame):
        source = path_or_df.attrs.get(SOURCE_ATTR, "<DataFrame>")
        keep = {k: path_or_df.attrs[k] for k in (PRIOR_ATTR, STUDY_ATTR, ROI_ATTR) if k in path_or_df.attrs}
        df = _normalise(path_or_df.copy(), source)
        df.attrs.update(keep)
        return df
    from hplandscape.path_checks import check_path

    path = check_path(path_or_df, "the results source")
    if path.is_dir():
        from hplandscape.store.study_store import StudyStore  # the store names a study's files

        store = StudyStore(path)
        if store.study_yaml.exists() or not store.results_csv.exists():
            # A study is collected from its records every time, so a results.csv written earlier
            # (while runs were still going, or before an extension) can never be read stale.
            from hplandscape.store.results import collect

            table = collect(path, keep_going=True)  # a read-only study is read all the same
            return _with_study(_normalise(pd.DataFrame(table).copy(), str(path)), path)
        path = store.results_csv
    if not path.exists():
        raise UserError(f"{path}: no such results file or study directory")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ImportError) as e:
        raise UserError(f"{path}: cannot read the results table ({e})") from None
    return _with_study(_normalise(df, str(path)), path.parent)


def _with_study(df: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """Attach the prior and the name from ``folder/study.yaml`` when ``folder`` is a study."""
    from hplandscape.store.study_store import StudyStore
    if not StudyStore(folder).study_yaml.is_file():
        return df
    try:
        config = StudyStore.open(folder).config()
    except UserError:
        return df  # an unreadable config costs only the prior; the table itself was fine
    df.attrs[PRIOR_ATTR] = (float(np.log10(config.grid.prior_lr)), float(np.log10(config.grid.prior_wd)))
    df.attrs[STUDY_ATTR] = config.name
    df.attrs[ROI_ATTR] = tuple(config.analysis.roi)
    return df


def _normalise(df: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise UserError(f"{source}: missing column(s) {', '.join(missing)}; a results table needs "
                        f"{', '.join(REQUIRED)} (optional top5, diverged)")
    if len(df) == 0:
        raise UserError(f"{source}: the results table is empty (no runs)")
    df = df.reset_index(drop=True)
    df["condition"] = df["condition"].astype(str)
    df["method"] = df["method"].astype(str)
    for col in ("ratio", "lr", "wd", "top1") + (("top5",) if "top5" in df.columns else ()):
        df[col] = _numeric(df, col, source)
    # the rules a run record is held to (record.record_problem): a table is read by the same analysis
    bad_name = ~df["condition"].map(plain_name)
    if bad_name.any():
        i = int(np.flatnonzero(bad_name)[0])
        raise UserError(f"{source}: column condition must hold names of letters, digits, '-', '_' and '.' (as a "
                        f"study config names conditions), got {_show(df['condition'].iloc[i])} in row {i + 1}")
    bad_method = ~df["method"].isin(METHODS)
    if bad_method.any():
        i = int(np.flatnonzero(bad_method)[0])
        raise UserError(f"{source}: column method must be one of {', '.join(METHODS)}, got "
                        f"{_show(df['method'].iloc[i])} in row {i + 1}")
    for col in ("top1",) + (("top5",) if "top5" in df.columns else ()):
        v = df[col].to_numpy(float)
        bad = ~np.isnan(v) & ~((v >= 0.0) & (v <= 100.0))  # NaN: a failed run; inf is no percentage
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(f"{source}: column {col} must be a percentage in [0, 100] (or empty for a failed run), "
                            f"got {_show(df[col].iloc[i])} in row {i + 1} (condition {df['condition'].iloc[i]})")
    ratio = df["ratio"].to_numpy(float)
    bad = ~((ratio > 0.0) & (ratio <= 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{source}: column ratio must be a fraction in (0, 1], got {_show(df['ratio'].iloc[i])} in "
                        f"row {i + 1} (condition {df['condition'].iloc[i]}): the FLOPs (or weights) kept")
    for col in ("lr", "wd"):
        bad = ~(np.isfinite(df[col]) & (df[col] > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(f"{source}: column {col} must hold positive numbers, got "
                            f"{_show(df[col].iloc[i])} in row {i + 1} (condition {df['condition'].iloc[i]})")
    seeds = _numeric(df, "seed", source)
    if not (np.isfinite(seeds).all() and (seeds == np.round(seeds)).all()):
        i = int(np.flatnonzero(~(np.isfinite(seeds) & (seeds == np.round(seeds))))[0])
        raise UserError(f"{source}: column seed must hold integers, got {_show(df['seed'].iloc[i])} in row {i + 1}")
    df["seed"] = seeds.astype(int)
    df["diverged"] = _bools(df["diverged"], source) if "diverged" in df.columns else False
    # Runs outside the study's grid (``collect`` marks them; tables without the column have none)
    df["on_grid"] = _bools(df["on_grid"], source, "on_grid", empty=True) if "on_grid" in df.columns else True
    df["randomness"] = _randomness(df["randomness"], source) if "randomness" in df.columns else LEGACY_RANDOMNESS
    # The replication design and round that asked for each run (an adaptive design's points hold
    # unequal seeds by design); tables without the columns predate them: kept without, read as full
    if "replicates" in df.columns:
        df["replicates"] = _replicates(df["replicates"], source)
    if "round" in df.columns:
        df["round"] = _rounds(df, source)
    df["log10_lr"] = np.round(np.log10(df["lr"].to_numpy(float)), GRID_DECIMALS) + 0.0
    df["log10_wd"] = np.round(np.log10(df["wd"].to_numpy(float)), GRID_DECIMALS) + 0.0
    _check_conditions(df, source)
    dup = df.duplicated(["condition", "log10_lr", "log10_wd", "seed"], keep=False)
    if dup.any():
        r = df[dup].iloc[0]
        raise UserError(f"{source}: run {r['condition']} lr={hp_text(r['lr'])} wd={hp_text(r['wd'])} seed {r['seed']} "
                        f"appears {int(dup.sum())} times; each (condition, lr, wd, seed) must be one row")
    df.attrs[SOURCE_ATTR] = source
    return df


def _show(value) -> str:
    """A cell as the user wrote it (numpy scalars print as plain numbers)."""
    return repr(value.item() if hasattr(value, "item") else value)


def _numeric(df: pd.DataFrame, col: str, source: str) -> pd.Series:
    values = pd.to_numeric(df[col], errors="coerce")
    bad = values.isna() & df[col].notna()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{source}: column {col} must be numeric, got {_show(df[col].iloc[i])} in row {i + 1}")
    return values.astype(float)


def _bools(col: pd.Series, source: str, name: str = "diverged", empty: bool = False) -> pd.Series:
    """true/false cells (as CSV writes them); an empty cell is ``empty``."""
    table = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False,
             "nan": empty, "none": empty, "": empty}
    text = col.astype(str).str.strip().str.lower()
    bad = ~text.isin(table.keys())
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{source}: column {name} must be true/false, got {_show(col.iloc[i])} in row {i + 1}")
    return text.map(table).astype(bool)


def _randomness(col: pd.Series, source: str) -> pd.Series:
    return _choice(col, source, "randomness", RANDOMNESS, LEGACY_RANDOMNESS)


def _replicates(col: pd.Series, source: str) -> pd.Series:
    """One of :data:`REPLICATES` per run; an empty cell is a full design's (records before the column)."""
    return _choice(col, source, "replicates", REPLICATES, REPLICATES[0])


def _choice(col: pd.Series, source: str, name: str, choices, empty: str) -> pd.Series:
    """A column of one of ``choices`` per row, lower-cased; an empty cell is ``empty``."""
    text = col.astype(str).str.strip().str.lower()
    text = text.where(~(col.isna() | text.isin(["", "nan", "none"])), empty)
    bad = ~text.isin(choices)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{source}: column {name} must be one of {', '.join(choices)}, got "
                        f"{_show(col.iloc[i])} in row {i + 1}")
    return text


def _rounds(df: pd.DataFrame, source: str) -> pd.Series:
    """The round that asked for each run, a positive integer; an empty cell is round 1."""
    r = _numeric(df, "round", source).fillna(1.0)
    bad = ~(np.isfinite(r) & (r >= 1) & (r == np.round(r)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"{source}: column round must hold positive integers (the round of an adaptive design "
                        f"that asked for the run), got {_show(df['round'].iloc[i])} in row {i + 1}")
    return r.astype(int)


def _check_conditions(df: pd.DataFrame, source: str) -> None:
    for name, rows in df.groupby("condition", sort=False):
        if "replicates" in rows.columns and (rows["replicates"] == "adaptive").any() \
                and (rows["randomness"] == "common").any():
            # whole seeds are the replicates under common random numbers (method §12): an adaptive
            # design's points lack some of them, so nothing could be resampled as the runs were made
            raise UserError(f"{source}: condition {name!r} mixes an adaptive design (column replicates) with "
                            "common random numbers (column randomness: common); adaptive replication needs "
                            "independent randomness")
        for col in ("method", "ratio", "randomness"):
            values = rows[col].unique()
            if len(values) > 1:
                why = ("its runs must share one design (train.randomness) to be resampled as replicates"
                       if col == "randomness" else "one condition is one (method, ratio)")
                raise UserError(f"{source}: condition {name!r} has several values in column {col}: "
                                f"{', '.join(map(str, values))}; {why}")


