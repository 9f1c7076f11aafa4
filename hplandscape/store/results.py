"""The results table: one row per recorded run of a study.

A row is :func:`hplandscape.store.run_record.table_row` of the run's record, in the columns
:data:`COLUMNS` (defined with the record, in :mod:`hplandscape.store.run_record`, which says what each
holds); this module gathers the rows, marks the runs on the study's grid and writes the table.
The analysis reads ``condition, method, ratio, lr, wd, seed, top1`` (``record.REQUIRED_COLUMNS``)
and, where present, ``top5, diverged, randomness``; the other columns make the table
self-explanatory. Corrupt or missing records are not rows: ``hplandscape status`` lists them.

Examples
--------
>>> table = collect("studies/quickstart")            # doctest: +SKIP
>>> table.groupby("condition").top1.max()            # doctest: +SKIP
"""

from __future__ import annotations

import io

import pandas as pd

from hplandscape.atomic import write_text as atomic_write_text
from hplandscape.errors import UserError
from hplandscape.store.layout import check_file_target
from hplandscape.store.run_record import COLUMNS, table_row
from hplandscape.store.study_store import StudyStore
from hplandscape.study.grid import GridPoint

FORMATS = ("csv", "parquet")


def collect(study_dir, out=None, format: str = "csv", *, keep_going: bool = False) -> pd.DataFrame:
    """Gather every valid run record of a study into one table and write it.

    Parameters
    ----------
    study_dir : str or Path
        A study directory made by ``hplandscape sweep``.
    out : str or Path, optional
        Output file; default ``STUDY/results.csv`` (``STUDY/results.parquet`` for Parquet).
    format : {"csv", "parquet"}
        Parquet needs ``pyarrow`` (``pip install hplandscape[parquet]``).
    keep_going : bool
        When the default file cannot be written (a read-only study), return the table anyway:
        ``analyze`` and ``report`` read a study this way and write their outputs elsewhere.

    Returns
    -------
    pandas.DataFrame
        One row per finished run (done or diverged), sorted by condition, lr, wd and seed; columns
        :data:`COLUMNS` plus ``arch_hash``.

    Raises
    ------
    UserError
        ``study_dir`` is not a study, ``format`` is unknown, or Parquet without pyarrow.
    """
    if format not in FORMATS:
        raise UserError(f"unknown results format {format!r}; available: {', '.join(FORMATS)}")
    if format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError("Parquet output needs pyarrow, which is not installed: "
                            "`pip install pyarrow` (or hplandscape[parquet]), or use --format csv") from None
    store = StudyStore.open(study_dir)
    config = store.config()
    table = records_table(store.iter_records(config), grid=(config.grid.log10_lr_values(),
                                                          config.grid.log10_wd_values()))
    default = out is None
    out = check_file_target(store.results_path(format) if out is None else out, "the results file")
    if format == "csv":
        buf = io.StringIO()
        table.to_csv(buf, index=False)
        try:
            atomic_write_text(out, buf.getvalue())
        except OSError:
            if not (keep_going and default):
                raise
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        table.to_parquet(tmp, index=False)
        tmp.replace(out)
    return table


def _on_grid(row: dict, grid) -> bool:
    point = GridPoint.from_values(row["lr"], row["wd"])  # the grid's identity rule
    return point.log10_lr in grid[0] and point.log10_wd in grid[1]


def records_table(records, grid=None) -> pd.DataFrame:
    """Rows of :data:`COLUMNS` (plus ``arch_hash`` and ``on_grid``) from run records (their JSON
    form, as ``StudyStore.iter_records`` yields them; :func:`hplandscape.store.run_record.table_row`).

    ``grid`` = (log10 lr values, log10 wd values) of the study marks each run ``on_grid``; the
    basemodel at a prior that the grid leaves out is trained anyway (the pruning source) and gets
    ``on_grid`` False, so the analysis reports it on its own instead of as a grid cell.
    """
    rows = []
    for r in records:
        row = table_row(r)
        row["on_grid"] = grid is None or _on_grid(row, grid)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(COLUMNS) + ["arch_hash", "on_grid"])
    if len(table):
        table = table.sort_values(["condition", "log10_lr", "log10_wd", "seed"], kind="stable")
        table = table.reset_index(drop=True)
    table["diverged"] = table["diverged"].astype(bool)
    table["on_grid"] = table["on_grid"].astype(bool)
    for c in ("top1", "top5", "ratio", "lr", "wd", "log10_lr", "log10_wd", "wall_time_s", "density", "egf1_mean",
              "egf2_mean"):
        table[c] = pd.to_numeric(table[c], errors="coerce").astype(float)
    return table
