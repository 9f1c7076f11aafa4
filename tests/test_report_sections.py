"""The report as one ordered list of sections: the page and the summary show the same sections in
the same order, every section writes its figures in the report's formats, and a new section is one
function plus one entry in the list."""

import contextlib
import html
import io
import json
import re
import struct
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from hplandscape.analysis import analyze, load_results
from hplandscape.analysis.example import synthetic_results, synthetic_sparse_results
from hplandscape.report.page import FigureOptions, ReportInput, Section, compose
from hplandscape.report.sections import SECTIONS, warnings_section
from hplandscape.report.sparsity_section import sparsity_section
from hplandscape.report.study_report import make_report


def _md_headings(md: str) -> list[tuple[int, str]]:
    """``(level, text)`` of every ``##`` and ``###`` heading of the summary, outside code blocks."""
    prose = re.sub(r"^```.*?^```", "", md, flags=re.S | re.M)
    return [(len(h), html.unescape(t.replace("\\|", "|"))) for h, t in re.findall(r"^(#{2,3}) (.+)$", prose, re.M)]


def _html_headings(text: str) -> list[tuple[int, str]]:
    return [(int(n), html.unescape(t)) for n, t in re.findall(r"<h([23])>(.*?)</h\1>", text)]


def _png_width(path) -> int:
    return struct.unpack(">I", path.read_bytes()[16:20])[0]  # the IHDR chunk's width


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Every section a results table can give (seeds, a shift, top-5, sparsity and gradient flow),
    written by ``hplandscape report --format png,svg --dpi 60 --json``."""
    from hplandscape.cli import main

    folder = tmp_path_factory.mktemp("sections")
    table = synthetic_sparse_results()
    table["top5"] = (100.0 - (100.0 - table["top1"]) / 5).round(3)
    table.to_csv(folder / "results.csv", index=False)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["report", str(folder / "results.csv"), "--out", str(folder / "r"), "--n-boot", "99",
                     "--format", "png,svg", "--dpi", "60", "--json"])
    assert code == 0
    doc = json.loads(stdout.getvalue())
    return SimpleNamespace(index=Path(doc["report"]), summary=Path(doc["summary"]),
                           figures=[Path(f) for f in doc["figures"]], tables=[Path(t) for t in doc["tables"]])


def test_the_page_and_the_summary_show_the_same_sections_in_the_same_order(report):
    md = _md_headings(report.summary.read_text(encoding="utf-8"))
    page = _html_headings(report.index.read_text(encoding="utf-8"))
    assert md == page
    tops = [t for level, t in md if level == 2]
    assert tops == ["Can I keep the unpruned model's learning rate and weight decay?", "Seed noise",
                    "Did the optimum move?", "Warnings", "Landscapes", "Performance risk", "Top-5 landscapes",
                    "Per condition", "Sparsity and gradient flow", "Which hyperparameter matters",
                    "Accuracy vs FLOPs", "Accuracy over the pruning ratio", "Environment"]
    # the method's tables belong to "Performance risk", in the page's order: 4.2, 4.1, 3.4
    risk = [t for _, t in md[md.index((2, "Performance risk")) + 1:md.index((2, "Top-5 landscapes"))]]
    assert [t.split(":")[0] for t in risk] == ["Table 4.2", "Table 4.1", "Table 3.4"]
    # each section once on the page, in a <section> named by its anchor, in the list's order
    anchors = re.findall(r'<section id="section-([a-z0-9-]+)">', report.index.read_text(encoding="utf-8"))
    assert anchors[:4] == ["answers", "noise", "shift", "warnings"] and anchors[-1] == "environment"
    assert len(anchors) == len(set(anchors)) == len(md) - 5  # the four panels' and EGF's sub-headings aside


def test_every_figure_and_table_is_listed_once_in_the_report(report):
    out = report.index.parent
    on_disk = {p.relative_to(out).as_posix() for p in (out / "figures").iterdir()}
    assert {p.relative_to(out).as_posix() for p in report.figures} == on_disk
    assert len(report.figures) == len(on_disk)
    assert {"figures/egf_map.svg", "figures/egf_map.png", "figures/landscapes_top5.svg"} <= on_disk
    assert sorted(p.name for p in report.tables) == sorted(
        ["table_4_1.csv", "table_4_2.csv", "table_3_4.csv", "shift.csv", "importance.csv", "frontier.csv",
         "ratio_curves.csv", "sparsity.csv", "gradient_flow.csv"])
    md = report.summary.read_text(encoding="utf-8")
    assert "![egf_map](figures/egf_map.png)\nAlso as [SVG](figures/egf_map.svg)." in md
    assert md.count("![landscapes](figures/landscapes.png)") == 1  # each figure shown once, in its section


def test_the_gradient_flow_map_follows_the_report_s_formats_and_dpi(report, tmp_path):
    out = report.index.parent
    assert b"<svg" in (out / "figures" / "egf_map.svg").read_bytes()[:1000]
    table = load_results(synthetic_sparse_results())
    result = analyze(table, n_boot=99)
    sparsity_section(table, result, tmp_path / "hi", FigureOptions(dpi=120))
    assert _png_width(tmp_path / "hi" / "figures" / "egf_map.png") == 2 * _png_width(out / "figures" / "egf_map.png")
    md, _ = sparsity_section(table, result, tmp_path / "pdf", FigureOptions(formats=("pdf",)))
    assert [p.name for p in (tmp_path / "pdf" / "figures").iterdir()] == ["egf_map.pdf"]
    assert "Also as [PDF](figures/egf_map.pdf)." in md[0]


def test_the_sparsity_section_uses_the_report_s_tables(report):
    text = report.index.read_text(encoding="utf-8")
    section = text.split('<section id="section-sparsity">')[1].split("</section>")[0]
    assert section.count('<div class="table-wrap"><table') == 2  # conditions, then τ: each scrolls in its box
    assert "<th>flops_kept</th>" in section and "<th>tau_egf1</th>" in section


def _tiny_section(r: ReportInput) -> Section:
    """A section of one's own: its words, a CSV file and a figure in the report's formats."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [0, 1])
    paths = r.save_figure(fig, "tiny")
    csv = r.write_table("tiny.csv", pd.DataFrame({"condition": r.result.names}))
    return Section("tiny", "A tiny section", "Conditions: " + ", ".join(r.result.names),
                   "<p>Conditions: " + ", ".join(r.result.names) + "</p>", figures=paths, tables=(csv,))


def test_a_new_section_is_one_function_and_one_entry_in_the_list(tmp_path):
    i = SECTIONS.index(warnings_section) + 1
    sections = SECTIONS[:i] + (_tiny_section,) + SECTIONS[i:]
    rep = make_report(synthetic_results(seeds=(0,)), out_dir=tmp_path / "r", n_boot=99, formats="png,pdf",
                      sections=sections)
    md = _md_headings(rep.summary.read_text(encoding="utf-8"))
    page = _html_headings(rep.index.read_text(encoding="utf-8"))
    assert md == page and md[md.index((2, "Warnings")) + 1] == (2, "A tiny section")
    assert "## A tiny section\n\nConditions: base, " in rep.summary.read_text(encoding="utf-8")
    assert "<p>Conditions: base, " in rep.index.read_text(encoding="utf-8")
    assert {tmp_path / "r" / "figures" / "tiny.png", tmp_path / "r" / "figures" / "tiny.pdf"} <= set(rep.figures)
    assert (tmp_path / "r" / "tiny.csv").read_text().startswith("condition\nbase\n")
    assert tmp_path / "r" / "tiny.csv" in rep.tables


def test_sections_are_checked_as_they_are_built():
    def twin(_):
        return Section("answers", "Another answer", "x", "<p>x</p>")

    def bare(_):
        return "## Not a section"

    with pytest.raises(ValueError, match="two report sections have the anchor 'answers': 'Once' and 'Another answer'"):
        compose(None, [lambda _: Section("answers", "Once", "x", "<p>x</p>"), twin])
    with pytest.raises(TypeError, match="bare' returned str, not a Section or None"):
        compose(None, [bare])
    assert compose(None, [lambda _: None]) == []
    with pytest.raises(ValueError, match="anchor must be lower-case letters, digits and '-', got 'Risk tables'"):
        Section("Risk tables", "Risk")
    with pytest.raises(ValueError, match="level must be 2 or 3, got 1"):
        Section("risk", "Risk", level=1)
    hidden = Section("shift", "Did the optimum move?", tables=("shift.csv",))
    assert not hidden.shown and Section("x", "X", "words").shown
