"""The study report: a self-contained HTML page, a Markdown summary, CSV tables and PNG figures.

The HTML works offline: plotly.js is embedded once in the page head and every figure is written
without it, so the page stays ~5 MB however many figures it holds and never reaches for a CDN.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import platform
import re
import socket
from importlib import metadata
from pathlib import Path

import pandas as pd

from hplandscape import analysis
from hplandscape.analysis.info import StudyAnalysis
from hplandscape.atomic import write_text as write_text_atomic
from hplandscape.provenance import git_state

# version key -> distribution name; read from the installed metadata, so no package is imported
# (a report must not pay for importing torch; each run record keeps torch's full build tag).
_PACKAGES = {"hplandscape": "hplandscape", "numpy": "numpy", "scipy": "scipy", "pandas": "pandas",
             "plotly": "plotly", "matplotlib": "matplotlib", "torch": "torch", "torchvision": "torchvision",
             "torch_pruning": "torch-pruning"}


def write_report(study_dir_or_csv, out_dir=None, xs=(0.5, 1.0), k: float = 2.0) -> Path:
    """Analyse a study and write its report.

    Parameters
    ----------
    study_dir_or_csv : str, os.PathLike or pandas.DataFrame
        A study directory (``results.csv`` is read, or collected first) or a results CSV.
    out_dir : str or os.PathLike, optional
        Where to write; default ``STUDY/report/`` for a study, ``report/`` next to a CSV.
    xs : sequence of float
        ROI thresholds (accuracy points).
    k : float
        Standard-deviation multiplier of the ellipses.

    Returns
    -------
    pathlib.Path
        The ``index.html`` written. Next to it: ``summary.md``, ``table_4_1.csv``,
        ``table_4_2.csv``, ``analysis.json`` and ``figures/*.png``.

    Raises
    ------
    hplandscape.errors.UserError
        When the results cannot be read or analysed (see :func:`hplandscape.analysis.analyze`).
    """
    table = analysis.load_results(study_dir_or_csv)
    result = analysis.analyze(table, xs=xs, k=k)
    from hplandscape.store import check_dir_target

    out = check_dir_target(Path(out_dir) if out_dir is not None else _default_out(study_dir_or_csv),
                           "the report folder")
    out.mkdir(parents=True, exist_ok=True)
    analysis.write_tables(result, out)
    analysis.write_json(result, out / "analysis.json")
    figures = _static_figures(result, out / "figures")
    env = environment()
    md_widths, html_widths = width_section(study_dir_or_csv, result, out)
    write_text_atomic(out / "summary.md", summary_markdown(result, env, figures, out, sections=md_widths))
    return write_text_atomic(out / "index.html", _html(result, env, sections=html_widths))


def _default_out(source) -> Path:
    if isinstance(source, pd.DataFrame):
        return Path("report")
    from hplandscape.store import output_dir

    return output_dir(source, "report")


def environment() -> dict:
    """Versions, host and time of the report's making (plus git state when available).

    Versions come from the installed package metadata: writing a report imports no torch.
    """
    versions = {}
    for key, dist in _PACKAGES.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    commit, dirty = git_state()
    return {"generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
            "git_commit": commit, "git_dirty": dirty, "host": socket.gethostname()}


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _static_figures(result: StudyAnalysis, folder: Path) -> list[Path]:
    from hplandscape.plots import mpl_backend as mb  # late: matplotlib is only needed here

    figs = [("landscapes.png", mb.landscape_figure(result)), ("risk.png", mb.risk_boxplot(result))]
    figs += [(f"panel_{_slug(n)}.png", mb.condition_panel(result, n)) for n in result.names]
    paths = []
    for name, fig in figs:
        mb.save(fig, folder / name)
        paths.append(folder / name)
    return paths


# ---------------------------------------------------------------------------------- plain words

def answers(result: StudyAnalysis) -> list[tuple[str, str]]:
    """One plain-words answer per condition: what keeping the basemodel's settings costs."""
    base = result.base_condition
    n_r = len(base.risk.points) + len(base.risk.missing)
    out = []
    for c in result.conditions:
        r = c.risk
        best = f"{c.best.top1:.2f} % at lr {c.best.lr:.3g}, wd {c.best.wd:.3g}"
        if r.n == 0:
            out.append((c.name, f"No run of {c.name} lies in the unpruned model's near-optimal region, so its "
                                f"risk cannot be measured; its own best is {best}."))
            continue
        cost = (f"costs {r.d_mean:.2f} points of top-1 on average (std {r.d_std:.2f}, worst {r.d_max:.2f}; "
                f"relative {100 * r.dR_mean:.2f} %) against its own best ({best})")
        if c.name == result.base:
            text = (f"Within the unpruned model's own near-optimal region ({r.n} settings within "
                    f"{result.risk_x:g} points of its best), picking any setting {cost}. This is the "
                    f"baseline spread the pruned models are compared with.")
        else:
            ratio = r.d_mean / base.risk.d_mean if base.risk.d_mean > 0 else float("inf")
            text = (f"Keeping the unpruned model's near-optimal settings {cost}, "
                    f"{ratio:.1f}× the unpruned model's own spread. {_verdict(r.d_mean, r.d_max)}")
        if r.missing:
            text += f" Only {r.n} of the {n_r} settings were measured for this condition."
        out.append((c.name, text))
    return out


def _verdict(d_mean: float, d_max: float) -> str:
    # Rule of thumb in units of the thesis's own threshold: 0.5 points is "near-optimal".
    if d_max <= 0.5:
        return "Re-tuning is unlikely to pay off."
    if d_mean <= 0.5:
        return "Most kept settings stay near-optimal, but some lose more: re-tuning is worth a short check."
    return "Re-tune the learning rate and weight decay after pruning."


def _warnings(result: StudyAnalysis) -> list[str]:
    return analysis.warning_lines(result)


# ---------------------------------------------------------------------------------- markdown

def _md_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    def cell(v):
        if isinstance(v, float):
            return "—" if v != v else floatfmt.format(v)
        return str(v)
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def summary_markdown(result: StudyAnalysis, env: dict, figures=(), out: Path = None, sections=()) -> str:
    """The Markdown summary: answers, tables, warnings, further ``sections`` (Markdown text),
    environment."""
    t1, t2 = analysis.tables(result)
    parts = [f"# hplandscape report: {result.source}", "",
             f"Basemodel: **{result.base}**; grid {len(result.grid.log10_lr)} lr × {len(result.grid.log10_wd)} wd; "
             f"seeds {', '.join(map(str, result.seeds))}; ellipses at k = {result.k:g} "
             f"({analysis.confidence_level(result.k):.2%}).", "",
             "## Can I keep the unpruned model's learning rate and weight decay?", ""]
    parts += [f"- **{name}**: {text}" for name, text in answers(result)]
    parts += ["", "## Table 4.1: confidence ellipses (log10 units)", "", _md_table(t1), "",
              f"## Table 4.2: performance risk over the basemodel's {result.risk_x:g}-ROI", "",
              _md_table(t2, "{:.4f}"), ""]
    warns = _warnings(result)
    parts += ["## Warnings", ""] + ([f"- {w.strip()}" for w in warns] or ["- none"]) + [""]
    if figures:
        parts += ["## Figures", ""]
        parts += [f"![{p.stem}]({p.relative_to(out).as_posix() if out else p})" for p in figures]
        parts += [""]
    parts += [*sections]
    parts += ["## Environment", "", "```json", json.dumps(env, indent=2), "```", ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1500px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2} td:first-child{text-align:left}
.warn{background:#fff4e0;border-left:4px solid #e69500;padding:.5em 1em}
.answer{background:#eef5ff;border-left:4px solid #3a6fd8;padding:.5em 1em;margin:.5em 0}
pre{background:#f6f6f6;padding:1em;overflow-x:auto}
"""


def _html_table(df: pd.DataFrame, floatfmt: str) -> str:
    return df.to_html(index=False, float_format=lambda v: floatfmt.format(v), na_rep="—", border=0)


def _html(result: StudyAnalysis, env: dict, sections=()) -> str:
    import plotly.offline as po

    from hplandscape.plots import plotly_backend as pb  # late: plotly is only needed here

    def fig_div(fig, div_id):
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                           config={"displaylogo": False, "responsive": True})

    t1, t2 = analysis.tables(result)
    esc = html.escape
    body = [f"<h1>hplandscape report</h1><p>Results: <code>{esc(result.source)}</code>. Basemodel: "
            f"<b>{esc(result.base)}</b>; grid {len(result.grid.log10_lr)} lr × {len(result.grid.log10_wd)} wd; "
            f"seeds {esc(', '.join(map(str, result.seeds)))}; ellipses at k = {result.k:g} "
            f"({analysis.confidence_level(result.k):.2%}).</p>",
            "<h2>Can I keep the unpruned model's learning rate and weight decay?</h2>"]
    body += [f'<div class="answer"><b>{esc(n)}</b>: {esc(t)}</div>' for n, t in answers(result)]
    warns = _warnings(result)
    body.append("<h2>Warnings</h2>")
    body.append('<div class="warn"><ul>' + "".join(f"<li>{esc(w.strip())}</li>" for w in warns) + "</ul></div>"
                if warns else "<p>No missing or diverged runs; every 1.0-ROI lies inside the grid.</p>")
    body += ["<h2>Landscapes</h2>",
             "<p>Top row: interpolated contour; bottom row: measured points (mean over seeds; crosses: "
             "diverged). White: 1.0-ROI ellipse; black: 0.5-ROI ellipse; star: best point. Colours cover the "
             "top 15 % of all observations, shared across conditions.</p>",
             fig_div(pb.landscape_figure(result), "landscapes"),
             "<h2>Performance risk</h2>", fig_div(pb.risk_boxplot(result), "risk"),
             f"<h3>Table 4.2: risk over the basemodel's {result.risk_x:g}-ROI</h3>", _html_table(t2, "{:.4f}"),
             "<h3>Table 4.1: confidence ellipses (log10 units; centre = (wd, lr))</h3>", _html_table(t1, "{:.3f}"),
             "<h2>Per condition</h2>"]
    for i, name in enumerate(result.names):
        body += [f"<h3>{esc(name)}</h3>", fig_div(pb.condition_panel(result, name), f"panel-{i}")]
    body += [*sections]
    body += ["<h2>Environment</h2>", f"<pre>{esc(json.dumps(env, indent=2))}</pre>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>hplandscape report: {esc(result.source)}</title><style>{_CSS}</style>"
            f"<script type=\"text/javascript\">{po.get_plotlyjs()}</script></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------------------------- pruned widths

def pruned_specs(source, result: StudyAnalysis) -> tuple[dict, list[str]]:
    """The stored architecture of each pruned condition, when ``source`` is a study directory.

    Returns ``({condition: ArchSpec}, problems)``: conditions in the analysis' order, and one
    line per spec that is missing or unreadable (the report still gets written). A results CSV, a
    DataFrame or a folder holding only a results table has no specs: ``({}, [])``.
    """
    if isinstance(source, pd.DataFrame) or not Path(source).is_dir():
        return {}, []
    from hplandscape.archspec import load_spec
    from hplandscape.errors import UserError
    from hplandscape.store import StudyStore

    store = StudyStore(source)
    if not store.study_yaml.is_file():
        return {}, []
    specs, problems = {}, []
    for c in result.conditions:
        if c.method == "none":
            continue
        path = store.spec_path(c.name)
        if not path.exists():
            problems.append(f"{c.name}: no pruned architecture stored at {path}")
            continue
        try:
            # shown only, so the layers are not re-checked against the registered architecture:
            # that would build it and import torch, which a report never needs
            specs[c.name] = load_spec(path, check_architecture=False)
        except UserError as exc:
            problems.append(str(exc))
    return specs, problems


def width_section(source, result: StudyAnalysis, out: Path) -> tuple[list[str], list[str]]:
    """The "Pruned widths" section as ``([markdown], [html])``; two empty lists when there is
    nothing to show.

    Writes ``figures/widths.png`` under ``out``. Each pruned condition's kept fraction per layer,
    read from the study's stored architecture specs (none for a bare results CSV).
    """
    specs, problems = pruned_specs(source, result)
    if not specs and not problems:
        return [], []
    from hplandscape.plots.info import width_info

    esc = html.escape
    rows = [(n, s.method, s.normalizer or "—", "—" if s.max_layer_prune is None else f"{s.max_layer_prune:g}",
             f"{s.achieved_ratio:.3f}", f"{s.min_kept_fraction:.3f}",
             "—" if s.layers_at_cap is None else f"{len(s.layers_at_cap)} of {len(s.widths)}")
            for n, s in specs.items()]
    head = ("condition", "method", "normalizer", "max layer prune", "FLOPs ratio", "min kept fraction",
            "layers at the cap")
    intro = ("Fraction of each prunable layer's channels that every pruned condition keeps (from the "
             "study's stored architectures). Global pruning should spread the cut over the layers; a "
             "layer at the cap lost as much as `pruning.max_layer_prune` allows.")
    md = ["## Pruned widths", "", intro, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    body = ["<h2>Pruned widths</h2>", f"<p>{esc(intro).replace('`', '')}</p>"]
    if rows:
        body.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"
                    + "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in r) + "</tr>" for r in rows)
                    + "</table>")
    if problems:
        md += ["", *[f"- {p}" for p in problems]]
        body.append('<div class="warn"><ul>' + "".join(f"<li>{esc(p)}</li>" for p in problems) + "</ul></div>")
    if specs:
        from hplandscape.plots import mpl_backend as mb, plotly_backend as pb  # late: plotting libraries

        info = width_info(specs)
        png = out / "figures" / "widths.png"
        mb.save(mb.width_figure(info), png)
        md += ["", f"![widths]({png.relative_to(out).as_posix()})"]
        body.append(pb.width_figure(info).to_html(full_html=False, include_plotlyjs=False, div_id="widths",
                                                  config={"displaylogo": False, "responsive": True}))
    return ["\n".join(md + [""])], ["\n".join(body)]
