"""The pieces every report page is built from: sections, figure files, tables in HTML and Markdown.

A single-study report is an ordered list of sections (:data:`hplandscape.report.sections.SECTIONS`);
each is a function of a :class:`ReportInput` that returns a :class:`Section`: its heading, its
body as Markdown and as HTML, and the figure and table files it wrote. The heading is written
here, from the section's title and level, so the HTML page and the Markdown summary name and
order their sections alike. Shared by the single-study report (:mod:`hplandscape.report.study_report`), its
sections (:mod:`hplandscape.report.sections`, :mod:`hplandscape.report.study_dir_sections`,
:mod:`hplandscape.report.sparsity_section`) and the report over several studies
(:mod:`hplandscape.report.multi_study`). Plotting libraries are imported only when a figure is made.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

# static figure formats (PNG for the page, SVG and PDF for a paper), PNG resolution, colour scales
from hplandscape.choices import COLOUR_SCALES, DEFAULT_DPI, DPI_RANGE, FIGURE_FORMATS
from hplandscape.errors import UserError

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1500px;padding:0 1em;color:#222}
code,li,.answer{overflow-wrap:anywhere}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2} td:first-child{text-align:left}
.table-wrap{max-width:100%;overflow-x:auto}
.warn{background:#fff4e0;border-left:4px solid #e69500;padding:.5em 1em}
.answer{background:#eef5ff;border-left:4px solid #3a6fd8;padding:.5em 1em;margin:.5em 0}
.note{color:#555;font-size:.92em}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;white-space:pre-wrap}
.plotly-graph-div{max-width:100%}
"""


@dataclass(frozen=True)
class FigureOptions:
    """How static figures are written: formats (``png``, ``svg``, ``pdf``), PNG resolution, and
    the landscapes' colour scale (``condition``: each its own range; ``shared``: one range)."""

    formats: tuple = ("png",)
    dpi: int = DEFAULT_DPI
    scale: str = "condition"

    def save(self, fig, folder: Path, stem: str) -> list[Path]:
        """Write ``fig`` (a matplotlib Figure) as ``folder/stem.<format>`` in every format."""
        from hplandscape.plots import mpl_backend as mb  # late: matplotlib is only needed here

        paths = []
        for fmt in self.formats:
            path = Path(folder) / f"{stem}.{fmt}"
            mb.save(fig, path, dpi=self.dpi)
            paths.append(path)
        return paths


def figure_options(formats="png", dpi: int = DEFAULT_DPI, scale: str = "condition") -> FigureOptions:
    """Validated :class:`FigureOptions`.

    Parameters
    ----------
    formats : str or sequence of str
        ``"png,svg,pdf"`` or ``("png", "pdf")``; each one of :data:`FIGURE_FORMATS`.
    dpi : int
        Resolution of PNG figures, within :data:`DPI_RANGE`.
    scale : {"condition", "shared"}
        The landscapes' colour scale.

    Raises
    ------
    hplandscape.errors.UserError
        Naming the bad value and what is allowed.
    """
    items = [f.strip().lower() for f in formats.split(",")] if isinstance(formats, str) else \
        [str(f).strip().lower() for f in formats]
    items = [f for f in items if f]
    bad = [f for f in items if f not in FIGURE_FORMATS]
    if bad or not items:
        raise UserError(f"figure format must be one or more of {', '.join(FIGURE_FORMATS)} (comma-separated, e.g. "
                        f"png,pdf), got {formats!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not DPI_RANGE[0] <= dpi <= DPI_RANGE[1]:
        raise UserError(f"dpi must be an integer from {DPI_RANGE[0]} to {DPI_RANGE[1]}, got {dpi!r}")
    if scale not in COLOUR_SCALES:
        raise UserError(f"colour scale must be one of {', '.join(COLOUR_SCALES)}, got {scale!r}")
    return FigureOptions(formats=tuple(dict.fromkeys(items)), dpi=dpi, scale=scale)


def slug(name: str) -> str:
    """A condition or study name as a file-name part."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def md_text(text) -> str:
    """A name or value as Markdown text: HTML in condition names or paths shows as text, and a
    ``|`` cannot break a table."""
    return html.escape(str(text), quote=False).replace("|", "\\|")


def html_text(text) -> str:
    """Prose as HTML: escaped, and a command or setting between backticks (as the plain-words
    texts write them, for Markdown) shown as code.

    >>> html_text("run `hplandscape sweep CONFIG --extend` to enclose <it>")
    'run <code>hplandscape sweep CONFIG --extend</code> to enclose &lt;it&gt;'
    """
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text), quote=False))


def md_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    def cell(v):
        if isinstance(v, float):
            return "—" if v != v else floatfmt.format(v)
        return md_text(v)
    lines = ["| " + " | ".join(md_text(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def html_table(df: pd.DataFrame, floatfmt: str) -> str:
    """A table that never widens the page: it scrolls inside its own box when it must."""
    table = df.to_html(index=False, float_format=lambda v: floatfmt.format(v), na_rep="—", border=0)
    return f'<div class="table-wrap">{table}</div>'


def md_figure(paths, out: Path) -> list[str]:
    """Markdown for one figure: the PNG shown (when written), every other format linked."""
    lines = []
    rel = [p.relative_to(out).as_posix() if out else str(p) for p in paths]
    shown = next((r for r in rel if r.endswith(".png")), None)
    if shown:
        lines.append(f"![{Path(shown).stem}]({shown})")
    others = [r for r in rel if r != shown]
    if others:
        lines.append("Also as " + ", ".join(f"[{Path(r).suffix.lstrip('.').upper()}]({r})" for r in others) + ".")
    return lines


def fig_div(fig, div_id: str) -> str:
    """A Plotly figure as a ``<div>`` without the library (the page embeds it once)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOTLY_CONFIG)


def page(title: str, body: list[str], refresh_s: int | None = None) -> str:
    """The whole HTML page: plotly.js embedded once in the head, so it works offline.

    ``refresh_s``: the browser reloads the page this often (the live report of a running study).
    """
    import plotly.offline as po  # late: plotly is only needed here

    refresh = f"<meta http-equiv=\"refresh\" content=\"{int(refresh_s)}\">" if refresh_s else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">" + refresh +
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style>"
            f"<script type=\"text/javascript\">{po.get_plotlyjs()}</script></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------------------------- sections

_ANCHOR = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True)
class Section:
    """One section of a report: its heading, its body in both forms, and the files it wrote.

    The body holds no heading of the section's own level: :meth:`to_markdown` and :meth:`to_html`
    write it from ``title`` and ``level``, so the page and the summary cannot name a section
    differently. A body may hold sub-headings one level down (a condition's panel, a
    sub-table), the same in both forms.

    Parameters
    ----------
    anchor : str
        The section's name on the page (lower-case letters, digits, ``-``): the HTML wraps it in
        ``<section id="section-ANCHOR">``, so a link or a browser test can find it; unique
        within a report.
    title : str
        The heading's text (plain text; escaped in both forms).
    markdown, html : str
        The body under the heading. Both empty: the section wrote files (``tables``) but has
        nothing to show, and neither form shows its heading.
    figures, tables : tuple of Path
        The static figure files and the CSV files the section wrote.
    level : {2, 3}
        ``2`` for a section of the page, ``3`` for one that belongs to the section before it
        (Table 4.2 under "Performance risk").
    """

    anchor: str
    title: str
    markdown: str = ""
    html: str = ""
    figures: tuple = field(default=())
    tables: tuple = field(default=())
    level: int = 2

    def __post_init__(self):
        # a programming error, not user input: a bad anchor would make a duplicate or broken id
        if not _ANCHOR.fullmatch(self.anchor):
            raise ValueError(f"section {self.title!r}: anchor must be lower-case letters, digits and '-', "
                             f"got {self.anchor!r}")
        if self.level not in (2, 3):
            raise ValueError(f"section {self.title!r}: level must be 2 or 3, got {self.level!r}")
        object.__setattr__(self, "figures", tuple(self.figures))
        object.__setattr__(self, "tables", tuple(self.tables))

    @property
    def shown(self) -> bool:
        """Whether the section has a body to show (else it only wrote files)."""
        return bool(self.markdown.strip() or self.html.strip())

    def to_markdown(self) -> str:
        """The section in the Markdown summary: ``## Title``, a blank line, the body.

        >>> print(Section("risk", "Performance risk", "Boxes.", "<p>Boxes.</p>").to_markdown())
        ## Performance risk
        <BLANKLINE>
        Boxes.
        <BLANKLINE>
        """
        return f"{'#' * self.level} {md_text(self.title)}\n\n{self.markdown.strip()}\n"

    def to_html(self) -> str:
        """The section on the HTML page: ``<section id="section-ANCHOR"><h2>Title</h2>…</section>``.

        >>> Section("risk", "Performance risk", "Boxes.", "<p>Boxes.</p>").to_html()
        '<section id="section-risk">\\n<h2>Performance risk</h2>\\n<p>Boxes.</p>\\n</section>'
        """
        n = self.level
        return (f'<section id="section-{self.anchor}">\n<h{n}>{html.escape(self.title, quote=False)}</h{n}>\n'
                f"{self.html.strip()}\n</section>")


@dataclass(frozen=True, eq=False)
class ReportInput:
    """What every section of a single-study report is made from.

    Parameters
    ----------
    source : str, os.PathLike or pandas.DataFrame
        What the report was asked for: a study directory (its sections read the study's files),
        a results CSV or a table.
    table : pandas.DataFrame
        The results table the analysis read.
    result : hplandscape.analysis.study_analysis.StudyAnalysis
        The analysis every section shows.
    out : Path
        The report folder: CSV files go there, static figures to ``out/figures``.
    opts : FigureOptions
        Formats, PNG resolution and colour scale of every static figure.
    analyze_kw : dict
        How ``result`` was analysed (``xs``, ``k``, ``n_boot``), for a section that analyses the
        table again (the top-5 landscapes).
    live : hplandscape.report.live.LiveState, optional
        The state of a study still running (the live report); None for a finished one.
    """

    source: object
    table: pd.DataFrame
    result: object
    out: Path
    opts: FigureOptions = FigureOptions()
    analyze_kw: dict = field(default_factory=dict)
    live: object = None

    def save_figure(self, fig, stem: str) -> tuple:
        """Write a matplotlib figure as ``out/figures/STEM.<format>`` in every format asked for."""
        return tuple(self.opts.save(fig, Path(self.out) / "figures", stem))

    def write_table(self, name: str, table: pd.DataFrame) -> Path:
        """Write ``table`` as ``out/NAME`` (CSV, atomically); returns the path."""
        from hplandscape.atomic import write_text

        return write_text(Path(self.out) / name, table.to_csv(index=False))

    def md_figure(self, paths) -> list[str]:
        """:func:`md_figure` with paths relative to the report folder."""
        return md_figure(paths, Path(self.out))


def compose(inputs: ReportInput, sections) -> list[Section]:
    """Every section of ``sections`` (functions of :class:`ReportInput`, in order) built once.

    A function returns a :class:`Section`, or None when it has nothing to show and wrote
    nothing. Both the page and the summary are written from the one list this returns, so they
    show the same sections in the same order.

    Raises
    ------
    TypeError
        A function returned something else (the message names it).
    ValueError
        Two sections share an anchor (the message names both).
    """
    built, anchors = [], {}
    for make in sections:
        s = make(inputs)
        if s is None:
            continue
        if not isinstance(s, Section):
            raise TypeError(f"report section {getattr(make, '__qualname__', make)!r} returned "
                            f"{type(s).__name__}, not a Section or None")
        if s.anchor in anchors:
            raise ValueError(f"two report sections have the anchor {s.anchor!r}: {anchors[s.anchor]!r} and "
                             f"{s.title!r}")
        anchors[s.anchor] = s.title
        built.append(s)
    return built
