"""The report's "Sparsity and gradient flow" section and its files.

Shown for a study with an unstructured or a fine-tuned condition, or whose runs measured gradient
flow: the conditions side by side by kind and pipeline with their measured densities, FLOPs kept
and the shift test's verdict (:mod:`hplandscape.analysis.sparsity_kinds`), and the effective gradient
flow over the grid with its Kendall τ against the final top-1
(:mod:`hplandscape.analysis.egf_correlation`, drawn by :mod:`hplandscape.plots.egf_maps`).
Writes ``sparsity.csv``, ``gradient_flow.csv`` and ``figures/egf_map.<format>`` (the report's
formats and resolution) next to the report; :data:`hplandscape.report.sections.SECTIONS` places
the section on the page.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hplandscape.analysis.egf_correlation import correlation_table, gradient_flow_info, has_gradient_flow
from hplandscape.analysis.sparsity_kinds import describe_kinds, has_sparsity, kind_summary, sparsity_table
from hplandscape.analysis.study_analysis import StudyAnalysis
from hplandscape.report.page import (FigureOptions, ReportInput, Section, fig_div, html_table, html_text, md_table,
                                     md_text)

INTRO = ("Every condition with what it keeps and whether its optimum moved, by kind of sparsity and pipeline. "
         "target: the FLOPs fraction of a structured condition, the density (fraction of the prunable weights "
         "kept) of an unstructured one; density: the measured non-zero fraction of the prunable weights at the "
         "end of training (median over runs); flops_kept and params_kept: relative to the basemodel, zero "
         "weights left out; shift: the optimum's centre minus the unpruned model's (decades), with the shift "
         "test's verdict (see \"Did the optimum move?\").")
EGF_INTRO = ("Effective gradient flow EGF_p = (1/L) Σ_l ‖g_l ⊙ m_l‖_p over the L prunable layers, averaged over "
             "its measurements during training (about 11 epochs); the map shows log10 EGF_2 per grid point "
             "(mean over seeds). τ: Kendall's rank correlation between a condition's runs' EGF and their final "
             "top-1 (non-diverged runs), with its p-value.")


def sparsity_flow_section(r: ReportInput):
    """"Sparsity and gradient flow", or None when the study has neither (no unstructured or
    fine-tuned condition, no gradient-flow measurement)."""
    sparse, flow = has_sparsity(r.table), has_gradient_flow(r.table)
    if not sparse and not flow:
        return None
    conditions = sparsity_table(r.table, r.result)
    tables = [r.write_table("sparsity.csv", conditions)]
    md = [md_text(INTRO), "", md_table(conditions, "{:.4g}")]
    body = [f"<p>{html_text(INTRO)}</p>", html_table(conditions, "{:.4g}")]
    words = describe_kinds(kind_summary(conditions))
    if words:
        md += ["", *(f"- {md_text(w)}" for w in words)]
        body.append("<ul>" + "".join(f"<li>{html_text(w)}</li>" for w in words) + "</ul>")
    figures = ()
    if flow:
        from hplandscape.plots import egf_maps as gf  # late: plotting libraries

        info = gradient_flow_info(r.table, order=r.result.names)
        taus = correlation_table(info)
        tables.append(r.write_table("gradient_flow.csv", taus))
        figures = r.save_figure(gf.egf_map_mpl(info), "egf_map")
        md += ["", "### Effective gradient flow", "", md_text(EGF_INTRO), "", md_table(taus, "{:.3g}"), "",
               *r.md_figure(figures)]
        body += ["<h3>Effective gradient flow</h3>", f"<p>{html_text(EGF_INTRO)}</p>", html_table(taus, "{:.3g}"),
                 fig_div(gf.egf_map_plotly(info), "egf-map")]
    return Section("sparsity", "Sparsity and gradient flow", "\n".join(md), "\n".join(body), figures=figures,
                   tables=tables)


def sparsity_section(table: pd.DataFrame, result: StudyAnalysis, out, opts: FigureOptions = FigureOptions()
                     ) -> tuple[list[str], list[str]]:
    """The section on its own (a notebook, a page of one's own), as ``([markdown], [html])``
    with its heading; two empty lists when the study has nothing to show.

    Parameters
    ----------
    table : pandas.DataFrame
        The results table the analysis read.
    result : StudyAnalysis
    out : str or os.PathLike
        The report folder: the CSV files and ``figures/egf_map.<format>`` go there.
    opts : FigureOptions
        The figure's formats and PNG resolution.
    """
    s = sparsity_flow_section(ReportInput(source=table, table=table, result=result, out=Path(out), opts=opts))
    return ([], []) if s is None else ([s.to_markdown()], [s.to_html()])
