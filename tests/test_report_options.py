"""report's options: figure formats and resolution, colour scale, --base, --metric, --json, Table 3.4."""

import json
import re

import pandas as pd
import pytest
from conftest import run_cli

from hplandscape.analysis.example import synthetic_results
from hplandscape.errors import UserError
from hplandscape.report.study_report import make_report, write_report


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("options") / "results.csv"
    synthetic_results(seeds=(0,)).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def top5_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("top5") / "results.csv"
    table = synthetic_results(seeds=(0,))
    table["top5"] = (100.0 - (100.0 - table["top1"]) / 5).round(3)  # a constructed top-5, higher and flatter
    table.to_csv(path, index=False)
    return path


def test_static_figures_in_every_format_asked_for(csv, tmp_path):
    report = make_report(csv, out_dir=tmp_path / "r", formats="png,svg,pdf", dpi=60, n_boot=99)
    figures = tmp_path / "r" / "figures"
    stems = {p.stem for p in figures.iterdir()}
    assert {"landscapes", "risk", "panel_base", "frontier"} <= stems
    for stem in stems:
        assert (figures / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert (figures / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"
        assert b"<svg" in (figures / f"{stem}.svg").read_bytes()[:1000]
    assert len(report.figures) == 3 * len(stems)
    md = report.summary.read_text(encoding="utf-8")
    assert "![landscapes](figures/landscapes.png)" in md
    assert "Also as [SVG](figures/landscapes.svg), [PDF](figures/landscapes.pdf)." in md
    only_pdf = make_report(csv, out_dir=tmp_path / "pdf", formats=["pdf"], n_boot=99)
    assert {p.suffix for p in only_pdf.figures} == {".pdf"}
    assert "[PDF](figures/risk.pdf)" in only_pdf.summary.read_text(encoding="utf-8")


@pytest.mark.parametrize("kwargs, message", [
    ({"formats": "png,jpg"}, "figure format must be one or more of png, svg, pdf (comma-separated, e.g. png,pdf), "
                             "got 'png,jpg'"),
    ({"formats": ""}, "figure format must be one or more of png, svg, pdf"),
    ({"dpi": 10}, "dpi must be an integer from 50 to 1200, got 10"),
    ({"scale": "global"}, "colour scale must be one of condition, shared, got 'global'"),
    ({"metric": "top5"}, "no top5 values to analyse"),
    ({"base": "nope"}, "base condition 'nope' is not in the table"),
])
def test_bad_options_are_user_errors_naming_the_value(csv, tmp_path, kwargs, message):
    with pytest.raises(UserError, match=re.escape(message)):
        write_report(csv, out_dir=tmp_path / "bad", n_boot=99, **kwargs)
    assert not (tmp_path / "bad" / "index.html").exists()


def test_cli_report_options_and_json(csv, tmp_path, capsys):
    out = tmp_path / "cli"
    code, stdout, _ = run_cli(capsys, "report", csv, "--out", out, "--n-boot", 99, "--format", "png,svg",
                              "--dpi", 72, "--color-scale", "shared", "--base", "uniform-0.6", "--json")
    assert code == 0
    doc = json.loads(stdout)  # nothing but the document on stdout
    assert doc["report"] == str(out / "index.html") and doc["metric"] == "top1"
    assert list(doc["conditions"])[0] == "uniform-0.6"  # --base: the basemodel comes first
    assert {"report", "summary", "figures", "conditions", "prior", "bootstrap"} <= set(doc)
    assert any(f.endswith("landscapes.svg") for f in doc["figures"])
    text = (out / "index.html").read_text(encoding="utf-8")
    assert "One colour range for all conditions" in text and "Basemodel: <b>uniform-0.6</b>" in text
    code, _, err = run_cli(capsys, "report", csv, "--format", "gif", "--out", tmp_path / "x")
    assert code == 2 and "got 'gif'" in err
    code, _, err = run_cli(capsys, "report", csv, "--color-scale", "both")
    assert code == 2 and "invalid choice: 'both'" in err


def test_table_3_4_gives_the_accuracy_at_the_prior(csv, tmp_path):
    report = make_report(csv, out_dir=tmp_path / "t34", n_boot=99)
    table = pd.read_csv(tmp_path / "t34" / "table_3_4.csv")
    assert table["condition"].tolist() == list(report.result.names)
    base = report.result.base_condition
    assert table.loc[0, "top1_mean"] == pytest.approx(base.prior_top1)
    md = report.summary.read_text(encoding="utf-8")
    section = md.split("## Table 3.4: accuracy at the prior")[1].split("##")[0]
    assert f"| base | 1.0e-1 | 1.0e-4 | 1 | {base.prior_top1:.2f} |" in section
    assert "<h3>Table 3.4: accuracy at the prior</h3>" in report.index.read_text(encoding="utf-8")


def test_top5_landscapes_join_a_top1_report_and_metric_top5_makes_a_top5_report(top5_csv, tmp_path, capsys):
    report = make_report(top5_csv, out_dir=tmp_path / "r1", n_boot=99)
    md = report.summary.read_text(encoding="utf-8")
    assert "## Top-5 landscapes" in md and "![landscapes_top5](figures/landscapes_top5.png)" in md
    assert 'id="landscapes-top5"' in report.index.read_text(encoding="utf-8")
    code, stdout, _ = run_cli(capsys, "report", top5_csv, "--metric", "top5", "--out", tmp_path / "r5",
                              "--n-boot", 99, "--json")
    assert code == 0 and json.loads(stdout)["metric"] == "top5"
    md5 = (tmp_path / "r5" / "summary.md").read_text(encoding="utf-8")
    assert "accuracy: top-5" in md5 and "points of top-5 on average" in md5 and "## Top-5 landscapes" not in md5
    code, stdout, _ = run_cli(capsys, "analyze", top5_csv, "--metric", "top5", "--json", "--n-boot", 99,
                              "--out", tmp_path / "a5")
    assert code == 0 and json.loads(stdout)["metric"] == "top5"


def test_report_text_uses_one_convention_for_numbers(csv, tmp_path):
    md = make_report(csv, out_dir=tmp_path / "conv", n_boot=99).summary.read_text(encoding="utf-8")
    answers = md.split("## Can I keep")[1].split("## Table 4.1")[0]
    assert re.search(r"at lr \d\.\de-\d+, wd \d\.\de-\d+", answers)
    assert not re.search(r"lr \d\.\d{3}|0\.000\d|e-0\d", answers)  # no 0.000316 nor 3.16e-05
    assert re.search(r"relative \d+\.\d\d %", answers)
    t42 = md.split("## Table 4.2")[1].split("##")[0]
    assert re.search(r"\| \d+\.\d\d % \|", t42)  # dR_mean in percent, as in the text and the box plot
