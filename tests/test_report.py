"""write_report on the constructed example study: files, offline HTML, plain-words answers."""

import re
from pathlib import Path

import pandas as pd
import pytest

from hplandscape.analysis.example import synthetic_results, write_example_results
from hplandscape.errors import UserError
from hplandscape.report.study_report import write_report


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    study = tmp_path_factory.mktemp("study")
    write_example_results(study / "results.csv")
    return write_report(study)  # a study directory: default out = STUDY/report


def test_report_files_are_written_into_the_study(report):
    out = report.parent
    assert report.name == "index.html" and out.name == "report"
    for name in ("summary.md", "table_4_1.csv", "table_4_2.csv", "table_3_4.csv", "analysis.json", "importance.csv",
                 "frontier.csv", "ratio_curves.csv"):
        assert (out / name).stat().st_size > 0, name
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs == ["frontier.png", "landscapes.png", "panel_base.png", "panel_global-0.4.png", "panel_global-0.6.png",
                    "panel_uniform-0.6.png", "risk.png"]
    assert all((out / "figures" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert pd.read_csv(out / "table_4_2.csv")["condition"].tolist()[0] == "base"


def test_html_is_self_contained_with_plotly_embedded_once(report):
    text = report.read_text(encoding="utf-8")
    assert text.count("* plotly.js v") == 1  # the library's banner: embedded exactly once
    assert not re.search(r"<script[^>]+src=", text)  # no CDN, no external script
    # landscapes, risk, one panel per condition, the frontier (two ratios per method: no ratio curve)
    assert text.count('class="plotly-graph-div"') == 2 + 4 + 1
    assert 5e6 < len(text.encode()) < 8e6


def test_report_answers_the_practitioners_question_and_flags_problems(report):
    md = (report.parent / "summary.md").read_text(encoding="utf-8")
    assert re.search(r"\*\*global-0\.6\*\*: Keeping the unpruned model's near-optimal settings costs "
                     r"\d+\.\d\d points of top-1 on average \(std \d+\.\d\d, worst \d+\.\d\d", md)
    assert "touches lr_high" in md  # grid-edge warning for global-0.4
    assert "uniform-0.6 lr=1.6e-2 wd=1.6e-5 seed 1: no record" in md  # the missing run
    assert "diverged" in md
    assert '"python"' in md  # environment recorded
    text = report.read_text(encoding="utf-8")
    assert "costs" in text and "touches lr_high" in text and "no record" in text


def test_report_next_to_a_csv_and_custom_out(tmp_path):
    csv = tmp_path / "mine.csv"
    synthetic_results().to_csv(csv, index=False)
    out = write_report(csv, out_dir=tmp_path / "elsewhere", xs=(1.0,), k=1.0)
    assert out == tmp_path / "elsewhere" / "index.html"
    assert "roi1.0_length" in (tmp_path / "elsewhere" / "table_4_1.csv").read_text()
    assert "roi0.5_length" not in (tmp_path / "elsewhere" / "table_4_1.csv").read_text()


def test_report_of_a_bad_table_is_a_user_error(tmp_path):
    csv = tmp_path / "bad.csv"
    synthetic_results().drop(columns=["seed"]).to_csv(csv, index=False)
    with pytest.raises(UserError, match="bad.csv: missing column"):
        write_report(csv)
    assert not (tmp_path / "report").exists()


def test_report_sections_beyond_the_method(report):
    md = (report.parent / "summary.md").read_text(encoding="utf-8")
    for heading in ("## Which hyperparameter matters", "## Accuracy vs FLOPs", "## Accuracy over the pruning ratio"):
        assert heading in md
    assert re.search(r"Hypervolume of the re-tuned front \d\.\d{4}, at the prior \d\.\d{4}: re-tuning buys", md)
    assert "No pruning method has three or more ratios" in md
    imp = pd.read_csv(report.parent / "importance.csv")
    assert (imp[["lr", "wd", "interaction"]].sum(axis=1) - 1).abs().max() < 1e-9
    text = report.read_text(encoding="utf-8")
    assert "Which hyperparameter matters" in text and 'id="frontier"' in text


def test_report_with_four_ratios_draws_the_ratio_curves(tmp_path):
    from hplandscape.analysis.example import synthetic_ratio_results

    csv = tmp_path / "ratios.csv"
    synthetic_ratio_results().to_csv(csv, index=False)
    out = write_report(csv)
    assert (out.parent / "figures" / "ratio_curves.png").read_bytes()[:4] == b"\x89PNG"
    md = (out.parent / "summary.md").read_text(encoding="utf-8")
    assert re.search(r"- uniform, at the basemodel's prior: acc_p \d+\.\d\d, .*1 point below acc_p at r = 0\.\d{3}", md)
    assert 'id="ratio-curves"' in out.read_text(encoding="utf-8")
    assert len(pd.read_csv(out.parent / "ratio_curves.csv")) == 4


def test_report_verdicts_come_from_the_statistics_with_seeds(tmp_path):
    from hplandscape.analysis.example import synthetic_replicate_results

    csv = tmp_path / "three_seeds.csv"
    synthetic_replicate_results().to_csv(csv, index=False)
    out = write_report(csv, n_boot=999)
    md = (out.parent / "summary.md").read_text(encoding="utf-8")
    assert re.search(r"\*\*global-0\.4\*\*: .*Its optimum: the optimum moved by \+0\.\d\d decades in lr "
                     r"\(95 % CI 0\.\d\d to 0\.\d\d, p [<=] 0\.0\d+, family-wise over 2 pruned conditions\)", md)
    assert re.search(r"The centre of its 0\.5-ROI \(where the near-optimal settings lie, not the best one\)", md)
    assert "## Seed noise" in md and re.search(r"\*\*base\*\*: seed noise 0\.\d\d points \(95 % CI", md)
    assert "max-T (Westfall-Young)" in md
    assert re.search(r"\*\*uniform-0\.6\*\*: .*no evidence that the optimum moved", md)
    assert re.search(r"Its risk exceeds the unpruned model's own \(0\.\d\d\) by 0\.\d\d points \(95 % CI", md)
    assert "Its risk is not distinguishable from the unpruned model's own" in md
    assert "## Did the optimum move?" in md and "3 seeds as replicates" in md
    assert "judged by its own precision" in md and "too irregular" not in md  # studentized everywhere
    for threshold_advice in ("Re-tune", "re-tuning is worth", "unlikely to pay off"):
        assert threshold_advice not in md
    shifts = pd.read_csv(out.parent / "shift.csv")
    assert shifts.set_index("condition")["verdict"].to_dict() == {"uniform-0.6": "no_evidence", "global-0.4": "moved"}
    assert "Did the optimum move?" in out.read_text(encoding="utf-8")


def test_report_with_one_seed_says_what_it_cannot_tell_and_flags_truncated_ellipses(tmp_path):
    csv = tmp_path / "one_seed.csv"
    synthetic_results(seeds=(0,)).to_csv(csv, index=False)
    md = (write_report(csv).parent / "summary.md").read_text(encoding="utf-8")
    assert "One seed per grid point" in md
    assert "add seeds (`seeds: [0, 1, 2]` in the study YAML, then `hplandscape sweep` again: only the new runs train)" in md
    assert re.search(r"\*\*global-0\.6\*\*: .*That is \+0\.\d\d points against the unpruned model's own risk "
                     r"\(0\.\d\d\); one seed gives no measure of seed noise", md)
    assert ("Its 1.0-ROI ellipse is truncated by the grid (the region touches lr_high, wd_low); run "
            "`hplandscape sweep CONFIG --extend` to enclose it.") in md
    assert "truncated: lr_high, wd_low" in md  # Table 4.1's grid-edge column
    assert "Re-tune" not in md
    # In the HTML page a command is code, not a word between backticks
    text = (Path(csv).parent / "report" / "index.html").read_text(encoding="utf-8")
    prose = re.sub(r"<(script|pre)[^>]*>.*?</\1>", "", text, flags=re.S)
    assert "<code>hplandscape sweep CONFIG --extend</code> to enclose it." in prose
    assert "<code>seeds: [0, 1, 2]</code>" in prose and "`" not in prose


def test_the_report_says_which_conditions_were_judged_by_their_resamples_common_spread():
    from types import SimpleNamespace as NS

    from hplandscape.report.study_report import _studentized_words

    def result(*flags):
        conds = [NS(name="base", shift=None)] + [NS(name=f"c{i}", shift=NS(studentized=f)) for i, f in enumerate(flags)]
        return NS(conditions=conds)

    assert "own precision, as the data" in _studentized_words(result(True, True))
    assert "irregular" not in _studentized_words(result(True, True))
    mixed = _studentized_words(result(True, False))
    assert "own precision, as the data" in mixed and "For c1 the landscape near the optimum is too irregular" in mixed
    plain = _studentized_words(result(False, False))
    assert plain.startswith(" For every pruned condition the landscape") and "as the data" not in plain
    assert _studentized_words(result(None)) == ""  # one seed: no test
