"""Export a study's validated results table as a Parquet file (pandas, pyarrow, polars, DuckDB read it).

:func:`hplandscape.analysis.load_results` reads it back, so a study travels as one file.
"""

from __future__ import annotations

import io
from pathlib import Path

from hplandscape.analysis.results_io import load_results
from hplandscape.atomic import write_bytes as write_bytes_atomic
from hplandscape.errors import UserError
from hplandscape.store.layout import check_file_target


def to_parquet(results, path) -> Path:
    """Write the validated results table (see :func:`~hplandscape.analysis.load_results`) as Parquet.

    The file holds the same columns as ``results.csv`` plus the recomputed ``log10_lr`` /
    ``log10_wd``; :func:`hplandscape.analysis.load_results` reads it back. Written atomically.
    """
    path = check_file_target(path, "the Parquet file", example="results.parquet")
    table = load_results(results)
    table.attrs = {}  # where it came from is this machine's business, not the file's
    buf = io.BytesIO()
    try:
        table.to_parquet(buf, index=False)
    except ImportError:
        raise UserError("Parquet output needs pyarrow, which is not installed: pip install pyarrow") from None
    return write_bytes_atomic(path, buf.getvalue())
