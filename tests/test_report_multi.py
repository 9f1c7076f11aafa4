"""`hplandscape report DIR1 DIR2 …`: one report over several studies, pooled risk and combined tables."""

import json

import pandas as pd
import pytest
from conftest import run_cli

from hplandscape.analysis.example import synthetic_results
from hplandscape.errors import UserError
from hplandscape.report.multi_study import make_multi_report


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi")
    paths = []
    for name, seed_shift in (("resnet56", 0.0), ("mobilenet", 0.4)):
        folder = root / name
        folder.mkdir()
        table = synthetic_results(seeds=(0,))
        table["top1"] = table["top1"] - seed_shift
        table.to_csv(folder / "results.csv", index=False)
        paths.append(folder / "results.csv")
    return paths


def test_one_report_over_two_studies_pools_risk_and_combines_tables(sources, tmp_path):
    report = make_multi_report(sources, out_dir=tmp_path / "both", n_boot=99, formats="png,pdf")
    labels = [s.label for s in report.studies]
    assert labels == ["resnet56", "mobilenet"]  # named after their folders: results.csv says nothing
    t1 = pd.read_csv(tmp_path / "both" / "table_4_1.csv")
    t2 = pd.read_csv(tmp_path / "both" / "table_4_2.csv")
    assert t2[["study", "condition"]].values.tolist()[:2] == [["resnet56", "base"], ["resnet56", "uniform-0.6"]]
    assert len(t1) == len(t2) == 2 * 4 and set(t1["study"]) == set(labels)
    for e in report.studies:  # the numbers are each study's own analysis
        mine = t2[t2["study"] == e.label].set_index("condition")
        assert mine.loc["global-0.6", "d_mean"] == pytest.approx(e.result.condition("global-0.6").risk.d_mean)
    pooled = pd.read_csv(tmp_path / "both" / "pooled_risk.csv")
    # no study.yaml and no model column: each study is its own architecture
    assert pooled[["architecture", "condition"]].values.tolist()[:4] == [
        ["resnet56", "base"], ["resnet56", "uniform 60 %"], ["resnet56", "global 60 %"], ["resnet56", "global 40 %"]]
    figures = {p.name for p in report.figures}
    assert {"pooled_risk.png", "pooled_risk.pdf", "landscapes_resnet56.png", "landscapes_mobilenet.pdf"} <= figures
    text = report.index.read_text(encoding="utf-8")
    assert text.count("* plotly.js v") == 1 and 'id="pooled-risk"' in text
    assert text.count('class="plotly-graph-div"') == 1 + 2  # pooled risk, one landscape per study
    md = report.summary.read_text(encoding="utf-8")
    assert "## Pooled risk per architecture and condition" in md and "## mobilenet (mobilenet)" in md


def test_the_same_architecture_is_pooled_into_one_box(sources, tmp_path):
    table = synthetic_results(seeds=(0,))
    table["model"] = "resnet56"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    table.to_csv(a, index=False)
    table.assign(top1=table["top1"] - 0.3).to_csv(b, index=False)
    report = make_multi_report([a, b], out_dir=tmp_path / "pool", n_boot=99)
    pooled = pd.read_csv(tmp_path / "pool" / "pooled_risk.csv")
    assert pooled["architecture"].unique().tolist() == ["resnet56"] and pooled.loc[0, "studies"] == "a, b"
    base = [e.result.base_condition.risk.n for e in report.studies]
    assert pooled.loc[0, "n"] == sum(base)


def test_cli_report_over_several_sources(sources, tmp_path, capsys):
    code, stdout, _ = run_cli(capsys, "report", *sources, "--out", tmp_path / "cli", "--n-boot", 99, "--json")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["report"] == str(tmp_path / "cli" / "index.html")
    assert list(doc["studies"]) == ["resnet56", "mobilenet"]
    assert set(doc["studies"]["resnet56"]) >= {"source", "architecture", "conditions", "metric"}
    code, stdout, _ = run_cli(capsys, "report", *sources, "--out", tmp_path / "cli2", "--n-boot", 99)
    assert code == 0 and stdout.strip() == f"Report over 2 studies: {tmp_path / 'cli2' / 'index.html'}"
    code, _, err = run_cli(capsys, "report", sources[0], tmp_path / "nowhere.csv", "--out", tmp_path / "x")
    assert code == 2 and "nowhere.csv: no such results file or study directory" in err


def test_fewer_than_two_sources_is_a_user_error(sources):
    with pytest.raises(UserError, match="at least two sources"):
        make_multi_report(sources[:1])


def test_the_same_study_twice_is_refused_not_pooled_twice(sources, tmp_path, capsys):
    # the same folder, once as the CSV and once by another spelling of its path
    other = sources[0].parent / ".." / sources[0].parent.name / "results.csv"
    code, _, err = run_cli(capsys, "report", sources[0], other, "--out", tmp_path / "twice", "--n-boot", 99)
    assert code == 2 and "given twice" in err and "pool the same runs twice" in err, err
    assert not (tmp_path / "twice").exists()
