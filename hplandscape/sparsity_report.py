"""The report's "Sparsity and gradient flow" section (Markdown and HTML) and its files.

Shown for a study with an unstructured or a fine-tuned condition, or whose runs measured gradient
flow: the conditions side by side by kind and pipeline with their measured densities, FLOPs kept
and the shift test's verdict (:mod:`hplandscape.analysis.sparsity`), and the effective gradient
flow over the grid with its Kendall τ against the final top-1
(:mod:`hplandscape.analysis.gradient_flow`, drawn by :mod:`hplandscape.plots.gradient_flow`).
Writes ``sparsity.csv``, ``gradient_flow.csv`` and ``figures/egf_map.png`` next to the report.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from hplandscape.analysis.gradient_flow import correlation_table, gradient_flow_info, has_gradient_flow
from hplandscape.analysis.info import StudyAnalysis
from hplandscape.analysis.sparsity import describe_kinds, has_sparsity, kind_summary, sparsity_table
from hplandscape.atomic import write_text
from hplandscape.report_parts import html_text

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


def _fmt(v, fmt: str) -> str:
    if isinstance(v, float):
        return "—" if v != v else fmt.format(v)
    return str(v)


def _md_table(df: pd.DataFrame, fmt: str = "{:.3f}") -> list[str]:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_fmt(v, fmt).replace("|", "\\|") for v in row) + " |"
              for row in df.itertuples(index=False)]
    return lines


def _html_table(df: pd.DataFrame, fmt: str = "{:.3f}") -> str:
    esc = html.escape
    return ("<table><tr>" + "".join(f"<th>{esc(str(c))}</th>" for c in df.columns) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{esc(_fmt(v, fmt))}</td>" for v in row) + "</tr>"
                      for row in df.itertuples(index=False)) + "</table>")


def sparsity_section(table: pd.DataFrame, result: StudyAnalysis, out: Path) -> tuple[list[str], list[str]]:
    """The section as ``([markdown], [html])``; two empty lists when the study has nothing to show.

    Parameters
    ----------
    table : pandas.DataFrame
        The results table the analysis read.
    result : StudyAnalysis
    out : Path
        The report folder: the CSV files and ``figures/egf_map.png`` go there.
    """
    sparse, flow = has_sparsity(table), has_gradient_flow(table)
    if not sparse and not flow:
        return [], []
    md = ["## Sparsity and gradient flow", ""]
    body = ["<h2>Sparsity and gradient flow</h2>"]
    esc = html.escape
    conditions = sparsity_table(table, result)
    write_text(out / "sparsity.csv", conditions.to_csv(index=False))
    md += [INTRO, "", *_md_table(conditions, "{:.4g}"), ""]
    body += [f"<p>{html_text(INTRO)}</p>", _html_table(conditions, "{:.4g}")]
    words = describe_kinds(kind_summary(conditions))
    if words:
        md += [f"- {w}" for w in words] + [""]
        body.append("<ul>" + "".join(f"<li>{html_text(w)}</li>" for w in words) + "</ul>")
    if flow:
        md_f, html_f = _gradient_flow(table, result, out)
        md += md_f
        body += html_f
    return ["\n".join(md + [""])], ["\n".join(body)]


def _gradient_flow(table: pd.DataFrame, result: StudyAnalysis, out: Path) -> tuple[list[str], list[str]]:
    from hplandscape.plots import gradient_flow as gf  # late: plotting libraries
    from hplandscape.plots.mpl_backend import save

    info = gradient_flow_info(table, order=result.names)
    taus = correlation_table(info)
    write_text(out / "gradient_flow.csv", taus.to_csv(index=False))
    png = out / "figures" / "egf_map.png"
    save(gf.egf_map_mpl(info), png)
    md = ["### Effective gradient flow", "", EGF_INTRO, "", *_md_table(taus, "{:.3g}"), "",
          f"![egf_map]({png.relative_to(out).as_posix()})", ""]
    body = ["<h3>Effective gradient flow</h3>", f"<p>{html_text(EGF_INTRO)}</p>", _html_table(taus, "{:.3g}"),
            gf.egf_map_plotly(info).to_html(full_html=False, include_plotlyjs=False, div_id="egf-map",
                                            config={"displaylogo": False, "responsive": True})]
    return md, body
