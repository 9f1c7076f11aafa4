"""One report over several studies: pooled risk per architecture and method (the method's Fig. 4.5)
and Tables 4.1/4.2 of every study in one place.

``hplandscape report DIR1 DIR2 …`` writes it. Each study is analysed on its own (its own
basemodel, Θ_R and best points); only the figures and tables bring them together.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from hplandscape import analysis
from hplandscape.analysis.bootstrap import N_BOOT
from hplandscape.analysis.notation import metric_label, percent_text
from hplandscape.analysis.results_io import SOURCE_ATTR, STUDY_ATTR
from hplandscape.analysis.study_analysis import StudyAnalysis
from hplandscape.atomic import write_text as write_text_atomic
from hplandscape.errors import UserError
from hplandscape.report.page import (DEFAULT_DPI, fig_div, figure_options, html_table, html_text, md_figure, md_table,
                                     md_text, page, slug)
from hplandscape.report.sections import answers, display_tables, environment


class StudyEntry(NamedTuple):
    """One study of a multi-study report: its label, architecture, where it came from, its analysis."""

    label: str
    architecture: str
    source: str
    result: StudyAnalysis


class MultiReport(NamedTuple):
    """What :func:`make_multi_report` wrote."""

    index: Path
    summary: Path
    studies: tuple
    figures: tuple

    def to_json(self) -> dict:
        """``{"report", "summary", "figures", "studies": {LABEL: {"source", "architecture",
        ...the analyze --json document}}}``."""
        return {"report": str(self.index), "summary": str(self.summary), "figures": [str(p) for p in self.figures],
                "studies": {s.label: {"source": s.source, "architecture": s.architecture,
                                      **analysis.to_json(s.result)} for s in self.studies}}


def _architecture(source, table: pd.DataFrame, label: str) -> str:
    """The study's model from its study.yaml, else its ``model`` column, else its label."""
    if not isinstance(source, pd.DataFrame) and Path(source).is_dir():
        from hplandscape.store.study_store import StudyStore
        store = StudyStore(source)
        if store.study_yaml.is_file():
            try:
                return store.config().model
            except UserError:
                pass
    if "model" in table.columns and table["model"].notna().any():
        return str(table["model"].dropna().iloc[0])
    return label


def _label(table: pd.DataFrame, source, taken: set) -> str:
    """The study's name (study.yaml), else its folder or file name; ``#2`` … when taken."""
    name = table.attrs.get(STUDY_ATTR)
    if not name:
        if isinstance(source, pd.DataFrame):
            name = "study"
        else:
            path = Path(source)
            # "results.csv" says nothing about the study: its folder does
            name = path.name if path.is_dir() else (path.parent.name if path.stem == "results" else "") or path.stem
    label, n = str(name), 2
    while label in taken:
        label, n = f"{name} #{n}", n + 1
    taken.add(label)
    return label


def load_studies(sources, *, xs=None, k: float = 2.0, n_boot: int = N_BOOT, base=None,
                 metric: str = "top1") -> list[StudyEntry]:
    """Read and analyse every study; labels are the studies' names (made unique)."""
    if len(sources) < 2:
        raise UserError(f"a report over several studies needs at least two sources, got {len(sources)}")
    seen = {}
    for source in sources:
        where = Path(source).resolve() if isinstance(source, (str, os.PathLike)) else id(source)
        if where in seen:
            raise UserError(f"{source}: given twice (as {seen[where]!s} too); a report over several studies would "
                            f"pool the same runs twice. Name each study once.")
        seen[where] = source
    entries, taken = [], set()
    for source in sources:
        table = analysis.load_results(source)
        label = _label(table, source, taken)
        result = analysis.analyze(table, xs=xs, k=k, base=base, n_boot=n_boot, metric=metric)
        entries.append(StudyEntry(label, _architecture(source, table, label),
                                  str(table.attrs.get(SOURCE_ATTR, source)), result))
    return entries


def combined_tables(entries) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 4.1 and 4.2 of every study, one under the other, with ``study`` and ``architecture``
    columns first (the CSV form: every number in its own column)."""
    parts1, parts2 = [], []
    for e in entries:
        t1, t2 = analysis.tables(e.result)
        for t, parts in ((t1, parts1), (t2, parts2)):
            t = t.copy()
            t.insert(0, "architecture", e.architecture)
            t.insert(0, "study", e.label)
            parts.append(t)
    return pd.concat(parts1, ignore_index=True), pd.concat(parts2, ignore_index=True)


def _display(entries) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts1, parts2 = [], []
    for e in entries:
        t1, t2 = display_tables(e.result)
        for t, parts in ((t1, parts1), (t2, parts2)):
            t = t.copy()
            t.insert(0, "study", e.label)
            parts.append(t)
    # one metric for all studies (pooled_risk_info checks it), so the column names agree
    return pd.concat(parts1, ignore_index=True), pd.concat(parts2, ignore_index=True)


def _pooled_table(info) -> pd.DataFrame:
    rows = []
    for b in info.boxes:
        d = b.d
        rows.append({"architecture": b.architecture, "condition": b.label, "studies": ", ".join(b.studies),
                     "n": len(d), "d_mean": float(d.mean()) if len(d) else float("nan"),
                     "d_std": float(d.std()) if len(d) else float("nan"),
                     "dR_mean": percent_text(b.dR.mean() / 100.0) if len(b.dR) else "—"})
    return pd.DataFrame(rows)


def default_out(entries) -> Path:
    """``studies/report_<label>_<label>…`` in the current directory (names shortened to fit)."""
    return Path("studies") / ("report_" + "_".join(slug(e.label) for e in entries))[:120]


def make_multi_report(sources, out_dir=None, xs=None, k: float = 2.0, n_boot: int = N_BOOT, *,
                      base=None, metric: str = "top1", scale: str = "condition", formats="png",
                      dpi: int = DEFAULT_DPI) -> MultiReport:
    """Analyse several studies and write one report over all of them.

    Parameters
    ----------
    sources : sequence of str, os.PathLike or pandas.DataFrame
        Two or more study directories or results CSVs.
    out_dir : str or os.PathLike, optional
        Where to write; default :func:`default_out`.
    xs, k, n_boot, base, metric, scale, formats, dpi
        As for :func:`hplandscape.report.study_report.make_report`, applied to every study (``base`` names
        the basemodel condition in each).

    Returns
    -------
    MultiReport
        ``index.html`` and ``summary.md``; next to them ``table_4_1.csv`` and ``table_4_2.csv``
        (every study, with ``study`` and ``architecture`` columns), ``pooled_risk.csv`` and
        ``figures/pooled_risk.*``, ``figures/landscapes_<study>.*``.

    Raises
    ------
    hplandscape.errors.UserError
        Fewer than two sources, or a study that cannot be read or analysed (the message names it).
    """
    opts = figure_options(formats, dpi, scale)
    entries = load_studies(sources, xs=xs, k=k, n_boot=n_boot, base=base, metric=metric)
    from hplandscape.plots import mpl_backend as mb  # late: plotting libraries
    from hplandscape.plots import plotly_backend as pb
    from hplandscape.plots.pooled import pooled_risk_info
    from hplandscape.store.layout import check_dir_target
    out = check_dir_target(Path(out_dir) if out_dir is not None else default_out(entries), "the report folder")
    out.mkdir(parents=True, exist_ok=True)
    c1, c2 = combined_tables(entries)
    write_text_atomic(out / "table_4_1.csv", c1.to_csv(index=False))
    write_text_atomic(out / "table_4_2.csv", c2.to_csv(index=False))
    info = pooled_risk_info([(e.label, e.architecture, e.result) for e in entries])
    pooled = _pooled_table(info)
    write_text_atomic(out / "pooled_risk.csv", pooled.to_csv(index=False))
    folder = out / "figures"
    figures = opts.save(mb.pooled_risk_figure(info), folder, "pooled_risk")
    per_study = []
    for e in entries:
        paths = opts.save(mb.landscape_figure(e.result, scale=opts.scale), folder, f"landscapes_{slug(e.label)}")
        per_study.append(paths)
        figures += paths
    t1, t2 = _display(entries)
    env = environment()
    metric_name = metric_label(metric)
    pooled_words = ("Each study keeps its own analysis (its basemodel, its Θ_R, its best points); each box pools the "
                    "d values of one architecture and condition over the studies named (the method's Fig. 4.5). "
                    "Boxes: quartiles, solid line: median, dashed line: mean; dᴿ in percent of the condition's best.")
    studies = pd.DataFrame([{"study": e.label, "architecture": e.architecture, "source": e.source,
                             "conditions": ", ".join(e.result.names), "basemodel": e.result.base,
                             "grid": f"{len(e.result.grid.log10_lr)} × {len(e.result.grid.log10_wd)}",
                             "seeds": len(e.result.seeds)} for e in entries])
    md = [f"# hplandscape report over {len(entries)} studies", "", f"Accuracy: {metric_name}.", "",
          md_table(studies), "", "## Pooled risk per architecture and condition", "", md_text(pooled_words), "",
          *md_figure(figures[:len(opts.formats)], out), "", md_table(pooled, "{:.3f}"), "",
          "## Table 4.1: confidence ellipses of every study (log10 units; centre = (wd, lr))", "", md_table(t1), "",
          "## Table 4.2: performance risk of every study", "", md_table(t2), ""]
    body = [f"<h1>hplandscape report over {len(entries)} studies</h1>",
            f"<p>Accuracy: {html.escape(metric_name)}.</p>", html_table(studies, "{:.3f}"),
            "<h2>Pooled risk per architecture and condition</h2>", f"<p>{html_text(pooled_words)}</p>",
            fig_div(pb.pooled_risk_figure(info), "pooled-risk"), html_table(pooled, "{:.3f}"),
            "<h2>Table 4.1: confidence ellipses of every study (log10 units; centre = (wd, lr))</h2>",
            html_table(t1, "{:.3f}"), "<h2>Table 4.2: performance risk of every study</h2>", html_table(t2, "{:.3f}")]
    for i, (e, paths) in enumerate(zip(entries, per_study)):
        md += [f"## {md_text(e.label)} ({md_text(e.architecture)})", ""]
        md += [f"- **{md_text(n)}**: {md_text(t)}" for n, t in answers(e.result)]
        md += ["", *md_figure(paths, out), ""]
        body += [f"<h2>{html.escape(e.label)} ({html.escape(e.architecture)})</h2>"]
        body += [f'<div class="answer"><b>{html.escape(n)}</b>: {html_text(t)}</div>' for n, t in answers(e.result)]
        warns = analysis.warning_lines(e.result)
        if warns:
            body.append('<div class="warn"><ul>' + "".join(f"<li>{html_text(w.strip())}</li>" for w in warns)
                        + "</ul></div>")
            md += ["Warnings:", "", *[f"- {md_text(w.strip())}" for w in warns], ""]
        body.append(fig_div(pb.landscape_figure(e.result, scale=opts.scale), f"landscapes-{i}"))
    md += ["## Environment", "", "```json", json.dumps(env, indent=2), "```", ""]
    body += ["<h2>Environment</h2>", f"<pre>{html.escape(json.dumps(env, indent=2))}</pre>"]
    summary = write_text_atomic(out / "summary.md", "\n".join(md))
    index = write_text_atomic(out / "index.html", page(f"hplandscape report over {len(entries)} studies", body))
    return MultiReport(index=index, summary=summary, studies=tuple(entries), figures=tuple(figures))
