"""The study report: a self-contained HTML page, a Markdown summary, CSV tables and static figures.

The page and the summary are written from one ordered list of sections
(:data:`hplandscape.report.sections.SECTIONS`), each built once, so both show the same sections in
the same order; every section writes its own figures (in the report's formats and resolution)
and CSV files.

The HTML works offline: plotly.js is embedded once in the page head and every figure is written
without it, so the page stays ~5 MB however many figures it holds and never reaches for a CDN.
Figures size themselves to the page, and wide tables scroll in their own box, so the page never
scrolls sideways. Static figures are PNG by default, SVG and PDF on request (for a paper).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from hplandscape import analysis
from hplandscape.analysis.bootstrap import N_BOOT
from hplandscape.analysis.study_analysis import StudyAnalysis
from hplandscape.atomic import write_text as write_text_atomic
from hplandscape.report.page import DEFAULT_DPI, ReportInput, compose, figure_options, page
# the words and tables of the report, where notebooks, tests and the report over several studies
# have always imported them from
from hplandscape.report.sections import (SECTIONS, _studentized_words, answers, display_tables,  # noqa: F401
                                         environment, head, noise_display, prior_display, shift_display)
from hplandscape.report.study_dir_sections import pruned_specs  # noqa: F401 (public name)


class Report(NamedTuple):
    """What :func:`make_report` wrote: the page, the summary, the analysis, the figure files and
    the CSV files (both in the order of the sections that wrote them)."""

    index: Path
    summary: Path
    result: StudyAnalysis
    figures: tuple
    tables: tuple = ()


def write_report(study_dir_or_csv, out_dir=None, xs=None, k: float = 2.0, n_boot: int = N_BOOT, *,
                 base=None, metric: str = "top1", scale: str = "condition", formats="png",
                 dpi: int = DEFAULT_DPI) -> Path:
    """Analyse a study and write its report; returns the ``index.html`` written.

    The parameters are those of :func:`make_report`, which also returns the analysis.
    """
    return make_report(study_dir_or_csv, out_dir, xs, k, n_boot, base=base, metric=metric, scale=scale,
                       formats=formats, dpi=dpi).index


def make_report(study_dir_or_csv, out_dir=None, xs=None, k: float = 2.0, n_boot: int = N_BOOT, *,
                base=None, metric: str = "top1", scale: str = "condition", formats="png",
                dpi: int = DEFAULT_DPI, sections=SECTIONS, live=None) -> Report:
    """Analyse a study and write its report.

    The page and the summary show the same sections in the same order: each function of
    ``sections`` is called once, and both are written from what it returns.

    Parameters
    ----------
    study_dir_or_csv : str, os.PathLike or pandas.DataFrame
        A study directory (its records are collected afresh) or a results CSV. A study directory
        adds the grid map, the training curves and the pruned widths.
    out_dir : str or os.PathLike, optional
        Where to write; default ``STUDY/report/`` for a study, ``report/`` next to a CSV.
    xs : sequence of float
        ROI thresholds (accuracy points).
    k : float
        Standard-deviation multiplier of the ellipses.
    n_boot : int
        Bootstrap resamples per condition for the intervals over seeds (see
        :func:`hplandscape.analysis.analyze`).
    base : str, optional
        The basemodel condition; by default the one with method ``none``.
    metric : {"top1", "top5"}
        The accuracy the report is about. With ``top1`` and top-5 values in the results, the
        top-5 landscapes are added too (the method's Fig. 4.3).
    scale : {"condition", "shared"}
        The landscapes' colours: each condition its own range (default), or one range for all
        that still reaches every condition's near-optimal band.
    formats : str or sequence of str
        Static figure formats, ``"png"``, ``"svg"``, ``"pdf"`` or several (``"png,pdf"``).
    dpi : int
        Resolution of PNG figures.
    sections : sequence of callables
        The report's sections in order, each a function of a
        :class:`~hplandscape.report.page.ReportInput` returning a
        :class:`~hplandscape.report.page.Section` or None; default
        :data:`hplandscape.report.sections.SECTIONS`.
    live : hplandscape.report.live.LiveState, optional
        The study is still running (``report --watch``): the page opens with its state, marks the
        grid points without a record as pending and reloads itself every ``live.refresh_s``.

    Returns
    -------
    Report
        ``index.html`` and ``summary.md``; next to them ``analysis.json``, the CSV files of the
        sections (``table_4_1.csv``, ``table_4_2.csv``, ``table_3_4.csv``, ``shift.csv``,
        ``importance.csv``, ``frontier.csv``, ``ratio_curves.csv``; ``sparsity.csv`` and
        ``gradient_flow.csv`` for a sparse study) and ``figures/*.{png,svg,pdf}``.

    Raises
    ------
    hplandscape.errors.UserError
        When the results cannot be read or analysed (see :func:`hplandscape.analysis.analyze`)
        or an option is out of range (the message names it).
    """
    opts = figure_options(formats, dpi, scale)
    table = analysis.load_results(study_dir_or_csv)
    result = analysis.analyze(table, xs=xs, k=k, base=base, n_boot=n_boot, metric=metric)
    from hplandscape.store.layout import check_dir_target
    out = check_dir_target(Path(out_dir) if out_dir is not None else _default_out(study_dir_or_csv),
                           "the report folder")
    out.mkdir(parents=True, exist_ok=True)
    analysis.write_json(result, out / "analysis.json")
    inputs = ReportInput(source=study_dir_or_csv, table=table, result=result, out=out, opts=opts,
                         analyze_kw={"xs": xs, "k": k, "n_boot": n_boot}, live=live)
    built = compose(inputs, sections)
    shown = [s for s in built if s.shown]
    md_head, html_head = head(result)
    summary = write_text_atomic(out / "summary.md", "\n".join([md_head, *(s.to_markdown() for s in shown)]))
    index = write_text_atomic(out / "index.html", page(f"hplandscape report: {result.source}",
                                                       [html_head, *(s.to_html() for s in shown)],
                                                       refresh_s=live.refresh_s if live is not None else None))
    return Report(index=index, summary=summary, result=result, figures=tuple(p for s in built for p in s.figures),
                  tables=tuple(p for s in built for p in s.tables))


def _default_out(source) -> Path:
    if isinstance(source, pd.DataFrame):
        return Path("report")
    from hplandscape.store.layout import output_dir
    return output_dir(source, "report")


