"""The EGF maps in both back ends, and the report section that shows them."""

import pytest

from hplandscape.analysis import analyze, load_results
from hplandscape.analysis.egf_correlation import GradientFlowInfo, gradient_flow_info
from hplandscape.analysis.example import synthetic_sparse_results as sparse_results
from hplandscape.plots.egf_maps import egf_map_mpl, egf_map_plotly
from hplandscape.report.sparsity_section import sparsity_section


def test_both_back_ends_draw_one_panel_per_condition():
    info = gradient_flow_info(load_results(sparse_results()))
    fig = egf_map_mpl(info)
    assert len([ax for ax in fig.axes if ax.get_title()]) == 4
    assert fig.axes[0].get_title().startswith("base (τ = -1.00")
    pfig = egf_map_plotly(info, p=1)
    assert len(pfig.data) == 4 and pfig.layout.annotations[1].text.startswith("uniform-0.6 (τ = +1.00")
    with pytest.raises(ValueError, match="no EGF_2 map"):
        egf_map_mpl(GradientFlowInfo(reason="none measured"))


def test_report_section_writes_its_tables_and_figure(tmp_path):
    table = load_results(sparse_results())
    md, body = sparsity_section(table, analyze(table, n_boot=199), tmp_path)
    assert md[0].startswith("## Sparsity and gradient flow") and "### Effective gradient flow" in md[0]
    assert 'id="egf-map"' in body[0]
    assert (tmp_path / "figures" / "egf_map.png").stat().st_size > 0
    assert "magnitude-0.2-finetune,unstructured" in (tmp_path / "sparsity.csv").read_text()
    assert (tmp_path / "gradient_flow.csv").read_text().startswith("condition,tau_egf1")
    plain = load_results(sparse_results().drop(columns=["pipeline", "density", "egf1_mean", "egf2_mean"])
                         .replace({"magnitude": "global"}))
    assert sparsity_section(plain, analyze(plain, n_boot=199), tmp_path / "x") == ([], [])
