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
from hplandscape.analysis.bootstrap import N_BOOT
from hplandscape.analysis.info import StudyAnalysis, roi_key
from hplandscape.analysis.verdict import EXTEND, describe_excess, describe_shift, seeds_line
from hplandscape.atomic import write_text as write_text_atomic
from hplandscape.provenance import git_state

# version key -> distribution name; read from the installed metadata, so no package is imported
# (a report must not pay for importing torch; each run record keeps torch's full build tag).
_PACKAGES = {"hplandscape": "hplandscape", "numpy": "numpy", "scipy": "scipy", "pandas": "pandas",
             "plotly": "plotly", "matplotlib": "matplotlib", "torch": "torch", "torchvision": "torchvision",
             "torch_pruning": "torch-pruning"}


def write_report(study_dir_or_csv, out_dir=None, xs=(0.5, 1.0), k: float = 2.0, n_boot: int = N_BOOT) -> Path:
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
    n_boot : int
        Bootstrap resamples per condition for the intervals over seeds (see
        :func:`hplandscape.analysis.analyze`).

    Returns
    -------
    pathlib.Path
        The ``index.html`` written. Next to it: ``summary.md``, ``table_4_1.csv``,
        ``table_4_2.csv``, ``shift.csv``, ``importance.csv``, ``frontier.csv``,
        ``ratio_curves.csv``, ``analysis.json`` and ``figures/*.png``.

    Raises
    ------
    hplandscape.errors.UserError
        When the results cannot be read or analysed (see :func:`hplandscape.analysis.analyze`).
    """
    table = analysis.load_results(study_dir_or_csv)
    result = analysis.analyze(table, xs=xs, k=k, n_boot=n_boot)
    from hplandscape.store import check_dir_target

    out = check_dir_target(Path(out_dir) if out_dir is not None else _default_out(study_dir_or_csv),
                           "the report folder")
    out.mkdir(parents=True, exist_ok=True)
    analysis.write_tables(result, out)
    analysis.write_json(result, out / "analysis.json")
    figures = _static_figures(result, out / "figures") + _beyond_figures(result, out / "figures")
    _write_beyond_tables(result, out)
    env = environment()
    md_widths, html_widths = width_section(study_dir_or_csv, result, out)
    from hplandscape.sparsity_report import sparsity_section

    md_sparse, html_sparse = sparsity_section(table, result, out)
    md_sections = md_widths + md_sparse
    write_text_atomic(out / "summary.md", summary_markdown(result, env, figures, out, sections=md_sections))
    return write_text_atomic(out / "index.html", _html(result, env, sections=html_widths + html_sparse))


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
    """One plain-words answer per condition: what keeping the basemodel's settings costs, how that
    compares with the basemodel's own spread, and whether the optimum moved.

    Every comparison comes from an interval over seeds (or says that one seed cannot give one);
    there is no advice from a fixed threshold.
    """
    base = result.base_condition
    n_r = len(base.risk.points) + len(base.risk.missing)
    out = []
    for c in result.conditions:
        r = c.risk
        best = f"{c.best.top1:.2f} % at lr {c.best.lr:.3g}, wd {c.best.wd:.3g}"
        shift = f" Its optimum: {describe_shift(c.shift)}." if c.shift is not None else ""
        if r.n == 0:
            out.append((c.name, f"No run of {c.name} lies in the unpruned model's near-optimal region, so its "
                                f"risk cannot be measured; its own best is {best}.{shift}{_truncated(c)}"))
            continue
        ci = c.replicates.d_mean if c.replicates is not None else None
        ci_text = (f"; 95 % CI of the mean {ci.lo:.2f} to {ci.hi:.2f}" if ci is not None and ci.defined else "")
        cost = (f"costs {r.d_mean:.2f} points of top-1 on average (std {r.d_std:.2f}, worst {r.d_max:.2f}; "
                f"relative {100 * r.dR_mean:.2f} %{ci_text}) against its own best ({best})")
        if c.name == result.base:
            text = (f"Within the unpruned model's own near-optimal region ({r.n} settings within "
                    f"{result.risk_x:g} points of its best), picking any setting {cost}. This is the "
                    f"baseline spread the pruned models are compared with.")
        else:
            text = (f"Keeping the unpruned model's near-optimal settings {cost}. "
                    f"{describe_excess(c, base)}{shift}")
        if r.missing:
            text += f" Only {r.n} of the {n_r} settings were measured for this condition."
        out.append((c.name, text + _truncated(c)))
    return out


def _truncated(c) -> str:
    cut = [r for r in c.rois if r.truncated and r.ellipse is not None]
    if not cut:
        return ""
    return " " + " ".join(f"Its {r.key}-ROI ellipse is truncated by the grid (the region touches "
                          f"{', '.join(r.touches_edge)}); run {EXTEND} to enclose it." for r in cut)


def _shift_words(result: StudyAnalysis) -> str:
    x = result.bootstrap.shift_x if result.bootstrap is not None else result.risk_x
    return (f"Each pruned condition's optimum is located by the centre of its {x:g}-ROI, each point weighted by "
            f"how far it clears the ROI's threshold; the shift is that centre minus the unpruned model's, in "
            f"decades of lr and wd. With two or more seeds the two 95 % intervals are simultaneous (together "
            f"they cover both true shifts with 95 % probability) and p tests \"no shift on either axis\"; "
            f"\"moved\" means an interval excludes 0.")


def _warnings(result: StudyAnalysis) -> list[str]:
    return analysis.warning_lines(result)


# ---------------------------------------------------------------------------------- markdown

def _md(text) -> str:
    """A name or value as Markdown text: HTML in condition names or paths shows as text, and a
    ``|`` cannot break a table."""
    return html.escape(str(text), quote=False).replace("|", "\\|")


def _md_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    def cell(v):
        if isinstance(v, float):
            return "—" if v != v else floatfmt.format(v)
        return _md(v)
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _with_ci(value, interval=None, fmt: str = "{:.2f}") -> str:
    """``0.26 [0.18, 0.34]``: a number with its 95 % interval over seeds, when there is one."""
    if value is None or value != value:
        return "—"
    text = fmt.format(value)
    if interval is not None and interval.defined:
        text += f" [{fmt.format(interval.lo)}, {fmt.format(interval.hi)}]"
    return text


def display_tables(result: StudyAnalysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 4.1 and 4.2 for reading: each number with its 95 % interval in brackets.

    The CSV files (:func:`hplandscape.analysis.tables`) hold the same numbers one per column.
    """
    rows1, rows2 = [], []
    for c in result.conditions:
        rep = c.replicates if c.replicates is not None and c.replicates.replicated else None
        row = {"condition": c.name, "best top-1": _with_ci(c.best.top1, rep and rep.best_top1)}
        for r in c.rois:
            e, ci = r.ellipse, rep.ellipse(r.x) if rep is not None else None
            row[f"{r.key}-ROI n"] = r.n
            for name, label in (("length", "length"), ("width", "width"), ("centre_log10_wd", "centre wd"),
                                ("centre_log10_lr", "centre lr")):
                row[f"{r.key} {label}"] = _with_ci(None if e is None else getattr(e, name), ci and getattr(ci, name))
            row[f"{r.key} angle"] = "—" if e is None else f"{e.angle_deg:.1f}°"
            edge = ", ".join(r.touches_edge)
            row[f"{r.key} grid edge"] = ("inside" if not r.truncated else f"touches {edge}" if e is None
                                         else f"truncated: {edge}")
        rows1.append(row)
        k = c.risk
        excess = rep.excess_over_base if rep is not None else None
        rows2.append({"condition": c.name, "n": k.n, "d_mean": _with_ci(k.d_mean, rep and rep.d_mean, "{:.3f}"),
                      "d_std": _with_ci(k.d_std, rep and rep.d_std, "{:.3f}"),
                      "dR_mean": _with_ci(k.dR_mean, None, "{:.4f}"), "dR_std": _with_ci(k.dR_std, None, "{:.4f}"),
                      "worst": _with_ci(k.d_max, None, "{:.3f}"),
                      "excess over base": _with_ci(k.d_mean - result.base_condition.risk.d_mean, excess, "{:+.3f}"),
                      "missing": len(k.missing)})
    return pd.DataFrame(rows1), pd.DataFrame(rows2)


def summary_markdown(result: StudyAnalysis, env: dict, figures=(), out: Path = None, sections=()) -> str:
    """The Markdown summary: answers, the shift of each optimum, tables, warnings, environment."""
    t1, t2 = display_tables(result)
    parts = [f"# hplandscape report: {_md(result.source)}", "",
             f"Basemodel: **{_md(result.base)}**; grid {len(result.grid.log10_lr)} lr × {len(result.grid.log10_wd)} wd; "
             f"seeds {', '.join(map(str, result.seeds))}; ellipses at k = {result.k:g} "
             f"({analysis.confidence_level(result.k):.2%}).", "", seeds_line(result), "",
             "## Can I keep the unpruned model's learning rate and weight decay?", ""]
    parts += [f"- **{_md(name)}**: {_md(text)}" for name, text in answers(result)]
    shifts = analysis.shift_table(result)
    if len(shifts):
        parts += ["", "## Did the optimum move?", "", _md(_shift_words(result)), "", _md_table(shifts, "{:.4g}")]
    parts += ["", "## Table 4.1: confidence ellipses (log10 units)", "",
              _TABLE_WORDS, "", _md_table(t1), "",
              f"## Table 4.2: performance risk over the basemodel's {result.risk_x:g}-ROI", "",
              _md_table(t2, "{:.4f}"), ""]
    parts += beyond_markdown(result)
    warns = _warnings(result)
    parts += ["## Warnings", ""] + ([f"- {_md(w.strip())}" for w in warns] or ["- none"]) + [""]
    if figures:
        parts += ["## Figures", ""]
        parts += [f"![{p.stem}]({p.relative_to(out).as_posix() if out else p})" for p in figures]
        parts += [""]
    parts += [*sections]
    parts += ["## Environment", "", "```json", json.dumps(env, indent=2), "```", ""]
    return "\n".join(parts)


_TABLE_WORDS = ("Brackets: 95 % bootstrap intervals over seeds (with two or more seeds). \"grid edge\": "
                "\"truncated\" when the ROI touches the grid's edge on the sides named, so the grid cuts the "
                f"ellipse off: run {EXTEND} to enclose it. The CSV files next to this report hold every "
                "number in its own column.")

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

    t1, t2 = display_tables(result)
    esc = html.escape
    body = [f"<h1>hplandscape report</h1><p>Results: <code>{esc(result.source)}</code>. Basemodel: "
            f"<b>{esc(result.base)}</b>; grid {len(result.grid.log10_lr)} lr × {len(result.grid.log10_wd)} wd; "
            f"seeds {esc(', '.join(map(str, result.seeds)))}; ellipses at k = {result.k:g} "
            f"({analysis.confidence_level(result.k):.2%}).</p>",
            f"<p>{esc(seeds_line(result))}</p>",
            "<h2>Can I keep the unpruned model's learning rate and weight decay?</h2>"]
    body += [f'<div class="answer"><b>{esc(n)}</b>: {esc(t)}</div>' for n, t in answers(result)]
    shifts = analysis.shift_table(result)
    if len(shifts):
        body += ["<h2>Did the optimum move?</h2>", f"<p>{esc(_shift_words(result))}</p>",
                 _html_table(shifts, "{:.4g}")]
    warns = _warnings(result)
    body.append("<h2>Warnings</h2>")
    body.append('<div class="warn"><ul>' + "".join(f"<li>{esc(w.strip())}</li>" for w in warns) + "</ul></div>"
                if warns else "<p>No missing or diverged runs; every 1.0-ROI lies inside the grid.</p>")
    body += ["<h2>Landscapes</h2>",
             "<p>Top row: interpolated contour; bottom row: measured points (mean over seeds; crosses: "
             "diverged). White: 1.0-ROI ellipse; black: 0.5-ROI ellipse; dashed: the ROI touches the grid's "
             "edge, so the grid truncates the ellipse; error bars on an ellipse's centre: its 95 % interval over "
             "seeds; star: best point. Colours cover the top 15 % of all observations, shared across "
             "conditions.</p>",
             fig_div(pb.landscape_figure(result), "landscapes"),
             "<h2>Performance risk</h2>",
             "<p>Boxes: d over the basemodel's near-optimal settings; diamonds with error bars: d_mean and its "
             "95 % interval over seeds (with two or more seeds).</p>",
             fig_div(pb.risk_boxplot(result), "risk"),
             f"<h3>Table 4.2: risk over the basemodel's {result.risk_x:g}-ROI</h3>", _html_table(t2, "{:.4f}"),
             "<h3>Table 4.1: confidence ellipses (log10 units; centre = (wd, lr))</h3>",
             f"<p>{esc(_TABLE_WORDS)}</p>", _html_table(t1, "{:.3f}"),
             "<h2>Per condition</h2>"]
    for i, name in enumerate(result.names):
        body += [f"<h3>{esc(name)}</h3>", fig_div(pb.condition_panel(result, name), f"panel-{i}")]
    body += _beyond_html(result, fig_div)
    body += [*sections]
    body += ["<h2>Environment</h2>", f"<pre>{esc(json.dumps(env, indent=2))}</pre>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>hplandscape report: {esc(result.source)}</title><style>{_CSS}</style>"
            f"<script type=\"text/javascript\">{po.get_plotlyjs()}</script></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------------------------- beyond the method

def _beyond_figures(result: StudyAnalysis, folder: Path) -> list[Path]:
    """``frontier.png`` when the conditions have FLOPs, ``ratio_curves.png`` when a curve was fitted."""
    from hplandscape.plots import mpl_backend as mb  # late: matplotlib is only needed here

    figs = []
    if result.frontier is not None and result.frontier.reason is None:
        figs.append(("frontier.png", mb.frontier_figure(result)))
    if any(c.reason is None for c in result.ratio_curves):
        figs.append(("ratio_curves.png", mb.ratio_curve_figure(result)))
    for name, fig in figs:
        mb.save(fig, folder / name)
    return [folder / name for name, _ in figs]


def _write_beyond_tables(result: StudyAnalysis, out: Path) -> None:
    for name, table in (("importance.csv", analysis.importance_table(result)),
                        ("frontier.csv", analysis.frontier_table(result)),
                        ("ratio_curves.csv", analysis.ratio_curve_table(result))):
        write_text_atomic(out / name, table.to_csv(index=False))


def _importance_words(result: StudyAnalysis) -> str:
    x = next((c.importance_roi.x for c in result.conditions if c.importance_roi is not None), None)
    return ("Fractions of the variance of the seed-averaged top-1 explained by the learning rate, the weight "
            "decay and their interaction: an exact two-way ANOVA over the full grid (columns lr, wd, "
            "interaction) and over the neighbourhood of each condition's "
            + (f"{roi_key(x)}-ROI" if x is not None else "ROI") +
            " (the sub-grid around it, one step wider on each side; columns roi_*). A diagonal band of good "
            "settings (a larger lr needs a smaller wd) shows up as interaction.")


def _frontier_words(result: StudyAnalysis) -> str:
    f = result.frontier
    p = result.prior
    if f is None or f.reason:
        return f"No accuracy–FLOPs frontier: {f.reason if f is not None else 'not computed'}."
    gain = f.retuning_gain
    return (f"Each condition at its best grid point (re-tuned) and at the basemodel's prior lr = {p.lr:.3g}, "
            f"wd = {p.wd:.3g} ({p.source}; not re-tuned). Hypervolume of the re-tuned front "
            f"{f.hypervolume_best:.4f}, at the prior "
            + ("—" if f.hypervolume_prior is None else f"{f.hypervolume_prior:.4f}")
            + (f": re-tuning buys {gain:.4f}" if gain is not None else "")
            + " (log FLOPs and error = 1 − top-1 normalised to [0, 1] over all points, reference point (1.1, 1.1)).")


def _ratio_words(result: StudyAnalysis) -> list[str]:
    if not result.ratio_curves:
        return ["No pruning method has three or more ratios in this study, so no curve is fitted; "
                "`grids/resnet56_cifar10_ratios.yaml` runs four per method."]
    return ["Fit of acc(r) = acc_p − a·e^{b(r−1)}, r = fraction of FLOPs pruned (the basemodel is r = 0), "
            "to the best top-1 (re-tuned) and the top-1 at the prior:"] + \
        [analysis.describe_curve(c) for c in result.ratio_curves]


def beyond_markdown(result: StudyAnalysis) -> list[str]:
    """Markdown sections beyond the method: importance, frontier, accuracy over pruning ratio."""
    parts = ["## Which hyperparameter matters", "", _importance_words(result), "",
             _md_table(analysis.importance_table(result)), "",
             "## Accuracy vs FLOPs", "", _frontier_words(result), ""]
    if result.frontier is not None and result.frontier.points:
        parts += [_md_table(analysis.frontier_table(result), "{:.4g}"), ""]
    ratio = _ratio_words(result)
    parts += ["## Accuracy over the pruning ratio", "", ratio[0], ""] + [f"- {t}" for t in ratio[1:]]
    if result.ratio_curves:
        parts += ["", _md_table(analysis.ratio_curve_table(result), "{:.4g}")]
    return parts + [""]


def _beyond_html(result: StudyAnalysis, fig_div) -> list[str]:
    from hplandscape.plots import plotly_backend as pb  # late: plotly is only needed here

    esc = html.escape
    body = ["<h2>Which hyperparameter matters</h2>", f"<p>{esc(_importance_words(result))}</p>",
            _html_table(analysis.importance_table(result), "{:.3f}"),
            "<h2>Accuracy vs FLOPs</h2>", f"<p>{esc(_frontier_words(result))}</p>"]
    if result.frontier is not None and result.frontier.reason is None:
        body += [fig_div(pb.frontier_figure(result), "frontier"),
                 _html_table(analysis.frontier_table(result), "{:.4g}")]
    ratio = _ratio_words(result)
    body += ["<h2>Accuracy over the pruning ratio</h2>", f"<p>{esc(ratio[0])}</p>"]
    if len(ratio) > 1:
        body.append("<ul>" + "".join(f"<li>{esc(t)}</li>" for t in ratio[1:]) + "</ul>")
    if any(c.reason is None for c in result.ratio_curves):
        body.append(fig_div(pb.ratio_curve_figure(result), "ratio-curves"))
    return body


# ---------------------------------------------------------------------------------- pruned widths

def pruned_specs(source, result: StudyAnalysis) -> tuple[dict, list[str]]:
    """The stored architecture of each pruned condition, when ``source`` is a study directory.

    Returns ``({condition: ArchSpec}, problems)``: conditions in the analysis' order, and one
    line per spec that is missing or unreadable (the report still gets written). A results CSV, a
    DataFrame or a folder holding only a results table has no specs: ``({}, [])``.
    """
    if isinstance(source, pd.DataFrame) or not Path(source).is_dir():
        return {}, []
    from hplandscape.errors import UserError
    from hplandscape.store import StudyStore

    store = StudyStore(source)
    if not store.study_yaml.is_file():
        return {}, []
    specs, problems = {}, []
    from hplandscape.maskspec import SPARSE_METHODS

    for c in result.conditions:
        if c.method == "none" or c.method in SPARSE_METHODS:  # masks, not widths: the sparsity section
            continue
        try:
            # shown only, so the layers are not re-checked against the registered architecture:
            # that would build it and import torch, which a report never needs
            spec = store.read_arch(c.name, check_architecture=False)
        except UserError as exc:
            problems.append(str(exc))
            continue
        if spec is None:
            problems.append(f"{c.name}: no pruned architecture stored at {store.spec_path(c.name)}")
        else:
            specs[c.name] = spec
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
