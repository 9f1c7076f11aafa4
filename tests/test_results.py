"""The results table: one row per finished run, the columns the analysis reads, atomic output."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import fake_prune, fake_train_run, tiny_config

from hplandscape.errors import UserError
from hplandscape.run.sweep import RunOptions, run_sweep
from hplandscape.store.results import COLUMNS, collect
from hplandscape.store.study_store import StudyStore


@pytest.fixture
def study(tmp_path, fake_env):
    fake_env.setenv("HPL_FAKE_DIVERGE", "uniform-0.5/lr-1.5000_wd-4.5000")
    run_sweep(tiny_config(), tmp_path, executor="debug",
              options=RunOptions(train_fn=fake_train_run, prune_fn=fake_prune), progress=False)
    return tmp_path


def test_collect_writes_one_row_per_run_with_the_analysis_columns(study):
    table = collect(study)
    assert len(table) == 8 and list(table.columns)[:len(COLUMNS)] == list(COLUMNS)
    on_disk = pd.read_csv(study / "results.csv")
    assert len(on_disk) == 8 and set(COLUMNS) <= set(on_disk.columns)
    base = on_disk[on_disk.condition == "base"]
    assert set(base.method) == {"none"} and set(base.ratio) == {1.0}
    assert on_disk.diverged.sum() == 1
    best = on_disk.loc[on_disk.top1.idxmax()]
    assert (best.log10_lr, best.log10_wd) == (-1.0, -4.0) and best.lr == pytest.approx(0.1)
    assert on_disk.run_id.is_unique


def test_corrupt_and_missing_records_are_not_rows(study):
    store = StudyStore(study)
    victim = "base/lr-1.5000_wd-4.5000/seed0"
    store.record_path(victim).write_text("{")
    table = collect(study, out=study / "elsewhere" / "r.csv")
    assert len(table) == 7 and victim not in set(table.run_id)
    assert (study / "elsewhere" / "r.csv").exists()


def test_parquet_needs_pyarrow_and_unknown_format_is_refused(study):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="pyarrow"):
            collect(study, format="parquet")
    else:
        table = collect(study, format="parquet")
        assert pd.read_parquet(study / "results.parquet").shape == table.shape
    with pytest.raises(UserError, match="available: csv, parquet"):
        collect(study, format="xlsx")


def test_collect_refuses_a_non_study(tmp_path):
    with pytest.raises(UserError, match="not a study directory"):
        collect(tmp_path)
