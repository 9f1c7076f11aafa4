"""analyze/load_results on small hand-built tables and on the example study."""

import json
import math
import subprocess
import sys
import types

import pandas as pd
import pytest

from hplandscape import analysis
from hplandscape.analysis.example import synthetic_results, write_example_results
from hplandscape.errors import UserError

LRS, WDS = (-2.0, -1.0, 0.0), (-5.0, -4.0, -3.0)
# top-1 per (log10 lr, log10 wd); base 0.5-ROI = {(-1,-4), (-1,-5), (-2,-4)}
BASE = {(-1.0, -4.0): 90.0, (-1.0, -5.0): 89.8, (-2.0, -4.0): 89.6}
PRUNED = {(-1.0, -4.0): (86.0, 88.0), (-1.0, -5.0): 87.5, (-2.0, -4.0): 86.5, (0.0, -5.0): 88.0}


def _rows(name, method, ratio, values, default=80.0, seeds=(0, 1)):
    rows = []
    for lr in LRS:
        for wd in WDS:
            v = values.get((lr, wd), default)
            per_seed = v if isinstance(v, tuple) else (v,) * len(seeds)
            for seed, top1 in zip(seeds, per_seed):
                rows.append({"condition": name, "method": method, "ratio": ratio, "lr": 10 ** lr,
                             "wd": 10 ** wd, "seed": seed, "top1": top1})
    return rows


def _table(extra=()):
    return pd.DataFrame(_rows("base", "none", 1.0, BASE) + _rows("global-0.5", "global", 0.5, PRUNED)
                        + list(extra))


def test_risk_of_a_constructed_landscape_equals_the_hand_value():
    result = analysis.analyze(_table())
    base, pruned = result.condition("base"), result.condition("global-0.5")
    assert base.risk.d_mean == pytest.approx(0.2)  # d = 0, 0.2, 0.4
    assert base.risk.d_std == pytest.approx(math.sqrt(0.08 / 3))
    assert pruned.best.top1 == pytest.approx(88.0)
    assert (pruned.best.log10_lr, pruned.best.log10_wd) == (0.0, -5.0)
    # (−1,−4) is the mean of seeds 86 and 88 → 87; d = 1.0, 0.5, 1.5
    assert pruned.risk.d_mean == pytest.approx(1.0)
    assert pruned.risk.d_std == pytest.approx(math.sqrt(0.5 / 3))
    assert pruned.risk.dR_mean == pytest.approx(1.0 / 88.0)
    assert pruned.risk.n == 3
    js = analysis.to_json(result)["conditions"]["global-0.5"]["risk"]
    js = {k: js[k] for k in ("d_mean", "d_std", "dR_mean", "dR_std", "n")}  # the point estimates
    assert js == pytest.approx({"d_mean": 1.0, "d_std": math.sqrt(0.5 / 3), "dR_mean": 1 / 88,
                                "dR_std": math.sqrt(0.5 / 3) / 88, "n": 3})


def test_missing_and_failed_runs_are_reported_not_imputed():
    df = _table()
    gone = (df["condition"] == "global-0.5") & (df["lr"] == 10 ** -2.0) & (df["wd"] == 10 ** -4.0)
    df = df[~gone].copy()  # both seeds of one Θ_R point
    df.loc[(df["condition"] == "base") & (df["lr"] == 1.0) & (df["wd"] == 1e-3) & (df["seed"] == 1), "top1"] = float("nan")
    result = analysis.analyze(df)
    kinds = sorted((m.condition, m.kind, m.seed) for m in result.missing)
    assert kinds == [("base", "failed", 1), ("global-0.5", "missing", 0), ("global-0.5", "missing", 1)]
    pruned = result.condition("global-0.5")
    assert pruned.risk.n == 2 and pruned.risk.missing == ((-4.0, -2.0),)
    assert pruned.risk.d_mean == pytest.approx(0.75)  # only d = 1.0 and 0.5 are used
    assert len(pruned.points) == 8  # nothing imputed at the missing point
    text = analysis.format_tables(result)
    assert "no record" in text and "failed" in text and "n=2" in text


def test_diverged_runs_count_with_their_chance_level_accuracy():
    df = _table()
    hit = (df["condition"] == "base") & (df["lr"] == 1.0) & (df["wd"] == 1e-3)
    df["diverged"] = hit
    df.loc[hit, "top1"] = 10.0
    result = analysis.analyze(df)
    point = [p for p in result.condition("base").points if (p.log10_lr, p.log10_wd) == (0.0, -3.0)][0]
    assert point.top1 == 10.0 and point.n_diverged == 2
    assert len(result.diverged) == 2 and all(d.kind == "diverged" for d in result.diverged)
    assert not result.missing


def test_seeds_are_averaged_at_each_point():
    result = analysis.analyze(_table())
    p = [p for p in result.condition("global-0.5").points if (p.log10_lr, p.log10_wd) == (-1.0, -4.0)][0]
    assert p.top1 == pytest.approx(87.0) and p.n_seeds == 2 and p.top1_std == pytest.approx(1.0)


def test_basemodel_must_be_unique_unless_named():
    two = _table(_rows("base2", "none", 1.0, BASE))
    with pytest.raises(UserError, match="several conditions have method 'none'.*base, base2"):
        analysis.analyze(two)
    assert analysis.analyze(two, base="base2").base == "base2"
    none = _table()
    none = none[none["condition"] != "base"]
    with pytest.raises(UserError, match="no basemodel"):
        analysis.analyze(none)
    with pytest.raises(UserError, match="'nope' is not in the table"):
        analysis.analyze(_table(), base="nope")


@pytest.mark.parametrize("kwargs, match", [({"xs": (0.5, -1)}, "threshold x"), ({"k": 0}, "k must be")])
def test_bad_parameters_are_user_errors(kwargs, match):
    with pytest.raises(UserError, match=match):
        analysis.analyze(_table(), **kwargs)


def test_load_results_names_file_and_column(tmp_path):
    path = tmp_path / "results.csv"
    _table().drop(columns=["top1"]).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"results\.csv: missing column\(s\) top1"):
        analysis.load_results(path)
    bad = _table()
    bad.loc[3, "lr"] = -0.1
    bad.to_csv(path, index=False)
    with pytest.raises(UserError, match=r"results\.csv: column lr must hold positive numbers, got -0\.1 in row 4"):
        analysis.load_results(path)
    _table().iloc[:0].to_csv(path, index=False)
    with pytest.raises(UserError, match=r"results\.csv: the results table is empty"):
        analysis.load_results(path)
    with pytest.raises(UserError, match="no such results file"):
        analysis.load_results(tmp_path / "absent.csv")
    dup = pd.concat([_table(), _table().iloc[:1]])
    with pytest.raises(UserError, match="appears 2 times"):
        analysis.load_results(dup)


def test_load_results_rounds_log10_values_to_grid_identity():
    df = _table()
    df["lr"] = df["lr"] * (1 + 1e-9)
    table = analysis.load_results(df)
    assert sorted(table["log10_lr"].unique()) == [-2.0, -1.0, 0.0]


def test_study_directory_reads_results_csv_or_collects(tmp_path, monkeypatch):
    write_example_results(tmp_path / "results.csv")
    assert len(analysis.load_results(tmp_path)) == len(synthetic_results()) == 4 * 81 * 2 - 1
    other = tmp_path / "other"
    other.mkdir()
    calls = []
    fake = types.ModuleType("hplandscape.store.results")
    fake.collect = lambda d, out=None, keep_going=False: calls.append(d) or _table()
    monkeypatch.setitem(sys.modules, "hplandscape.store.results", fake)
    assert len(analysis.load_results(other)) == len(_table()) and calls == [other]


def test_json_follows_the_analyze_schema_exactly():
    result = analysis.analyze(synthetic_results())
    doc = json.loads(json.dumps(analysis.to_json(result), allow_nan=False))
    # prior, frontier, ratio_curves: issue 16; bootstrap: issue 11; xs (the study's ROI thresholds)
    # replication: the seeds per grid point (adaptive replication)
    assert list(doc) == ["conditions", "prior", "frontier", "ratio_curves", "bootstrap", "replication", "metric",
                         "xs"]
    assert doc["xs"] == [0.5, 1.0]
    assert list(doc["conditions"]) == ["base", "uniform-0.6", "global-0.6", "global-0.4"]
    assert doc["prior"] == {"lr": pytest.approx(0.1), "wd": pytest.approx(1e-4), "source": "grid centre"}
    for name, cond in doc["conditions"].items():
        assert set(cond) == ({"best", "roi", "risk", "importance", "importance_roi", "noise"}
                             | ({"shift"} if name != "base" else set()))
        assert any("noise" in key for key in cond["noise"])
        assert set(cond["importance"]) == {"lr", "wd", "interaction"}
        assert set(cond["importance_roi"]) == {"x", "log10_lr", "log10_wd", "lr", "wd", "interaction"}
        assert set(cond["best"]) == {"lr", "wd", "top1", "top1_ci", "top1_crossfit", "p_best"}
        assert list(cond["roi"]) == ["0.5", "1.0"]
        for roi in cond["roi"].values():
            assert set(roi) == {"n", "ellipse", "ellipse_ci", "touches_edge"}
            if roi["ellipse"] is not None:
                assert set(roi["ellipse"]) == {"length", "width", "centre_log10_wd", "centre_log10_lr",
                                               "angle_deg", "confidence"}
        assert set(cond["risk"]) == {"d_mean", "d_std", "dR_mean", "dR_std", "n", "d_mean_ci", "d_std_ci",
                                     "excess_over_base"}
    assert doc["conditions"]["global-0.4"]["roi"]["0.5"]["ellipse"] is None


def test_example_study_shows_the_band_and_the_edge():
    result = analysis.analyze(synthetic_results())
    base = result.base_condition
    for x in (0.5, 1.0):
        assert base.roi(x).ellipse.angle_deg == pytest.approx(-45.0, abs=10)
    assert not base.edge.touches
    narrow = result.condition("global-0.4")
    assert "lr_high" in narrow.edge.sides and narrow.edge.new_log10_lr == (0.0,)
    prop = analysis.edge_proposals(result)
    assert prop["extra_log10_lr"] == [0.0] and "global-0.4" in prop["sides"] and "base" not in prop["sides"]
    # risk roughly doubles after pruning, as in the thesis
    assert all(c.risk.d_mean > base.risk.d_mean for c in result.conditions[1:])
    assert {(m.condition, m.kind) for m in result.missing} == {("uniform-0.6", "missing")}
    assert len(result.diverged) == 3


def test_tables_and_text(tmp_path):
    result = analysis.analyze(synthetic_results())
    t1, t2 = analysis.tables(result)
    assert list(t1["condition"]) == list(result.names)
    assert {"roi0.5_length", "roi1.0_width", "roi1.0_centre_log10_wd"} <= set(t1.columns)
    assert math.isnan(t1.set_index("condition").loc["global-0.4", "roi0.5_length"])
    assert {"d_mean", "d_std", "dR_mean", "dR_std"} <= set(t2.columns)
    paths = analysis.write_tables(result, tmp_path / "analysis")
    assert [p.name for p in paths] == ["table_4_1.csv", "table_4_2.csv", "shift.csv"]
    back = pd.read_csv(paths[1])
    assert back["d_mean"].tolist() == pytest.approx(t2["d_mean"].tolist())
    text = analysis.format_tables(result)
    assert "Table 4.1" in text and "Table 4.2" in text and "touches lr_high" in text
    assert not list((tmp_path / "analysis").glob(".*tmp"))  # no temp files left behind


def test_analysis_imports_neither_torch_nor_plotting():
    code = ("import sys, hplandscape.analysis as a; from hplandscape.analysis.example import synthetic_results;"
            "a.analyze(synthetic_results());"
            "bad=[m for m in sys.modules if m.split('.')[0] in ('torch','matplotlib','plotly')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_prior_comes_from_the_study_yaml_of_a_study_directory(tmp_path):
    import yaml
    from conftest import tiny_config

    from hplandscape.store.study_store import StudyStore

    # a study whose prior is not the centre of the results' grid: only study.yaml can tell
    StudyStore(tmp_path).init_study(tiny_config(grid={"prior_lr": 1.0, "prior_wd": 1e-5,
                                                      "log10_lr": [-1.0, 0.0], "log10_wd": [-5.0, -4.0]}))
    assert yaml.safe_load((tmp_path / "study.yaml").read_text())["grid"]["prior_lr"] == 1.0
    _table().to_csv(tmp_path / "results.csv", index=False)
    # (the study directory itself is always collected afresh from its records: see test_faults.py)
    for source in (tmp_path / "results.csv",):
        result = analysis.analyze(analysis.load_results(source))
        assert (result.prior.log10_lr, result.prior.log10_wd, result.prior.source) == (0.0, -5.0, "study.yaml")
        assert result.condition("global-0.5").prior_top1 == 88.0  # PRUNED at (0, −5)
    (tmp_path / "elsewhere").mkdir()
    plain = tmp_path / "elsewhere" / "results.csv"
    _table().to_csv(plain, index=False)
    assert analysis.analyze(plain).prior.source == "grid centre"
