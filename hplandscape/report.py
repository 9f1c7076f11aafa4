"""The study report: a self-contained HTML page, a Markdown summary, CSV tables and static figures.

The HTML works offline: plotly.js is embedded once in the page head and every figure is written
without it, so the page stays ~5 MB however many figures it holds and never reaches for a CDN.
Figures size themselves to the page, and wide tables scroll in their own box, so the page never
scrolls sideways. Static figures are PNG by default, SVG and PDF on request (for a paper).

Numbers follow one convention (:mod:`hplandscape.analysis.notation`): lr and wd as ``3.2e-5``,
relative risk in percent, accuracies with two decimals.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import platform
import socket
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from hplandscape import analysis
from hplandscape.analysis.bootstrap import N_BOOT
from hplandscape.analysis.info import FAMILY_CORRECTION, StudyAnalysis, roi_key
from hplandscape.analysis.notation import hp_text, metric_label, percent_text
from hplandscape.analysis.verdict import (EXTEND, describe_excess, describe_noise, describe_region, describe_shift,
                                          format_p, seeds_line)
from hplandscape.atomic import write_text as write_text_atomic
from hplandscape.provenance import git_state
from hplandscape.report_parts import (DEFAULT_DPI, FigureOptions, Section, fig_div, figure_options, html_table, html_text,
                                      md_figure, md_table, md_text, page, slug)
from hplandscape.report_study import pruned_specs, study_sections, width_section  # noqa: F401 (public names)

# version key -> distribution name; read from the installed metadata, so no package is imported
# (a report must not pay for importing torch; each run record keeps torch's full build tag).
_PACKAGES = {"hplandscape": "hplandscape", "numpy": "numpy", "scipy": "scipy", "pandas": "pandas",
             "plotly": "plotly", "matplotlib": "matplotlib", "torch": "torch", "torchvision": "torchvision",
             "torch_pruning": "torch-pruning"}


class Report(NamedTuple):
    """What :func:`make_report` wrote: the page, the summary, the analysis, the figure files."""

    index: Path
    summary: Path
    result: StudyAnalysis
    figures: tuple


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
                dpi: int = DEFAULT_DPI) -> Report:
    """Analyse a study and write its report.

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

    Returns
    -------
    Report
        ``index.html`` and ``summary.md``; next to them ``table_4_1.csv``, ``table_4_2.csv``,
        ``table_3_4.csv``, ``shift.csv``, ``importance.csv``, ``frontier.csv``,
        ``ratio_curves.csv``, ``analysis.json`` and ``figures/*.{png,svg,pdf}``.

    Raises
    ------
    hplandscape.errors.UserError
        When the results cannot be read or analysed (see :func:`hplandscape.analysis.analyze`)
        or an option is out of range (the message names it).
    """
    opts = figure_options(formats, dpi, scale)
    table = analysis.load_results(study_dir_or_csv)
    result = analysis.analyze(table, xs=xs, k=k, base=base, n_boot=n_boot, metric=metric)
    from hplandscape.store import check_dir_target

    out = check_dir_target(Path(out_dir) if out_dir is not None else _default_out(study_dir_or_csv),
                           "the report folder")
    out.mkdir(parents=True, exist_ok=True)
    analysis.write_tables(result, out)
    analysis.write_json(result, out / "analysis.json")
    prior = analysis.prior_table(table, result)
    write_text_atomic(out / "table_3_4.csv", prior.to_csv(index=False))
    folder = out / "figures"
    figures = _static_figures(result, folder, opts) + _beyond_figures(result, folder, opts)
    _write_beyond_tables(result, out)
    sections = []
    top5 = top5_section(table, result, out, opts, xs=xs, k=k, n_boot=n_boot)
    if top5 is not None:
        sections.append(top5)
    sections += study_sections(study_dir_or_csv, result, out, opts)
    figures += [p for s in sections for p in s.figures]
    env = environment()
    from hplandscape.sparsity_report import sparsity_section

    md_sparse, html_sparse = sparsity_section(table, result, out)
    summary = write_text_atomic(out / "summary.md", summary_markdown(
        result, env, figures, out, sections=[s.markdown for s in sections] + md_sparse, prior=prior,
        scale=opts.scale))
    index = write_text_atomic(out / "index.html", _html(result, env, sections=[s.html for s in sections] + html_sparse,
                                                        prior=prior, scale=opts.scale))
    return Report(index=index, summary=summary, result=result, figures=tuple(figures))


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


def _static_figures(result: StudyAnalysis, folder: Path, opts: FigureOptions) -> list[Path]:
    from hplandscape.plots import mpl_backend as mb  # late: matplotlib is only needed here

    paths = opts.save(mb.landscape_figure(result, scale=opts.scale), folder, "landscapes")
    paths += opts.save(mb.risk_boxplot(result), folder, "risk")
    for n in result.names:
        paths += opts.save(mb.condition_panel(result, n, scale=opts.scale), folder, f"panel_{slug(n)}")
    return paths


def top5_section(table, result: StudyAnalysis, out: Path, opts: FigureOptions, **analyze_kw):
    """The top-5 landscapes (the method's Fig. 4.3) when a top-1 report's results hold top-5; else None."""
    if result.metric != "top1" or not analysis.has_metric(table, "top5"):
        return None
    from hplandscape.plots import mpl_backend as mb, plotly_backend as pb  # late: plotting libraries

    r5 = analysis.analyze(table, base=result.base, metric="top5", **analyze_kw)
    paths = opts.save(mb.landscape_figure(r5, scale=opts.scale), out / "figures", "landscapes_top5")
    rows = pd.DataFrame([{"condition": c.name, "best top-5": f"{c.best.top1:.2f}",
                          "at lr": hp_text(c.best.lr), "at wd": hp_text(c.best.wd),
                          "d_mean": f"{c.risk.d_mean:.3f}", "dR_mean": percent_text(c.risk.dR_mean)}
                         for c in r5.conditions])
    words = ("The same analysis on top-5 accuracy (the method's Fig. 4.3): landscapes, and each condition's "
             f"best top-5 and risk over the basemodel's {r5.risk_x:g}-ROI of top-5.")
    md = ["## Top-5 landscapes", "", words, "", md_table(rows), "", *md_figure(paths, out), ""]
    body = ["<h2>Top-5 landscapes</h2>", f"<p>{html_text(words)}</p>", html_table(rows, "{:.3f}"),
            fig_div(pb.landscape_figure(r5, scale=opts.scale), "landscapes-top5")]
    return Section("\n".join(md), "\n".join(body), tuple(paths))


# ---------------------------------------------------------------------------------- plain words

def answers(result: StudyAnalysis) -> list[tuple[str, str]]:
    """One plain-words answer per condition: what keeping the basemodel's settings costs, how that
    compares with the basemodel's own spread, and whether the optimum moved.

    Every comparison comes from an interval over seeds (or says that one seed cannot give one);
    there is no advice from a fixed threshold.
    """
    base = result.base_condition
    n_r = len(base.risk.points) + len(base.risk.missing)
    metric = metric_label(result.metric)
    out = []
    for c in result.conditions:
        r = c.risk
        ties = len(c.best_ties)
        best = (f"{c.best.top1:.2f} % at lr {hp_text(c.best.lr)}, wd {hp_text(c.best.wd)}"
                + (f", tied with {ties - 1} other point{'s' if ties > 2 else ''}" if ties > 1 else ""))
        shift = f" Its optimum: {describe_shift(c.shift)}." if c.shift is not None else ""
        if c.shift is not None and c.shift.region is not None:
            shift += " " + describe_region(c.shift)
        if r.n == 0:
            out.append((c.name, f"No run of {c.name} lies in the unpruned model's near-optimal region, so its "
                                f"risk cannot be measured; its own best is {best}.{shift}{_truncated(c)}"))
            continue
        ci = c.replicates.d_mean if c.replicates is not None else None
        ci_text = (f"; resampled 95 % range of the mean {ci.lo:.2f} to {ci.hi:.2f}" if ci is not None and ci.defined
                   else "")
        cost = (f"costs {r.d_mean:.2f} points of {metric} on average (std {r.d_std:.2f}, worst {r.d_max:.2f}; "
                f"relative {percent_text(r.dR_mean)}{ci_text}) against its own best ({best})")
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


def _studentized_words(result: StudyAnalysis) -> str:
    """How each condition's shift was judged: by each resample's own precision (studentized) or,
    where the landscape is too irregular for a local surface's precision, by their common spread."""
    tested = [c for c in result.conditions if c.shift is not None and c.shift.studentized is not None]
    plain = [c.name for c in tested if not c.shift.studentized]
    if not tested:
        return ""
    own = (" Each resample of the seeds is judged by its own precision, as the data are by theirs (a "
           "studentized bootstrap, which keeps false alarms at 5 % where the resamples' spread varies).")
    if not plain:
        return own
    which = "every pruned condition" if len(plain) == len(tested) else ", ".join(plain)
    return ((own if len(plain) < len(tested) else "")
            + f" For {which} the landscape near the optimum is too irregular for the fitted surface's own "
              f"precision (a coarse grid, steep drops, few seeds), so all resamples are judged by their common "
              f"spread.")


def _shift_words(result: StudyAnalysis) -> str:
    x = result.bootstrap.shift_x if result.bootstrap is not None else result.risk_x
    fam = max((c.shift.family_size for c in result.conditions if c.shift is not None), default=1)
    family = (f" The {fam} pruned conditions are tested as one family ({FAMILY_CORRECTION}): the intervals "
              f"cover every condition's two shifts together with 95 % probability, p is adjusted for the family, "
              f"and \"moved\" is wrong for any of them at most 5 % of the time when nothing moved; \"p alone\" "
              f"tests the condition by itself." if fam > 1 else "")
    return (f"Each condition's optimum, its best setting, is the peak of a cubic surface fitted to the grid points "
            f"around its best one (weighted towards the peak and along its near-optimal band), so it can lie "
            f"between grid points; the shift is the pruned condition's optimum minus the unpruned model's, in "
            f"decades of lr and wd. With two or more seeds the test asks \"did the best setting move?\" over both "
            f"axes at once, with the precision the seeds give across and along the band: \"moved\" means p ≤ 0.05. "
            f"A shift across a diagonal band can be resolved together while neither axis alone excludes 0."
            f"{_studentized_words(result)}{family} Last columns: the centre of the {x:g}-ROI, a different question (where the near-optimal "
            f"settings lie, which can change while the best one stays), tested per condition.")


def _noise_words(result: StudyAnalysis) -> str:
    return ("Seed noise: the standard deviation of top-1 between seeds of the same grid point, pooled over the "
            "points near each condition's optimum (95 % chi-square interval). An x-ROI compares seed-averaged "
            "accuracies with the best one minus x, so it means something only when x is at least twice the "
            "noise of a mean of the study's seeds, 2·sd/√seeds (\"resolves down to\"); a threshold below "
            "that is marked, and the text says what would resolve it.")


def noise_display(result: StudyAnalysis) -> pd.DataFrame:
    """Per condition: seed noise with its interval, the smallest ROI it resolves, each ROI's status."""
    rows = []
    for c in result.conditions:
        n = c.noise
        if n is None:
            continue
        row = {"condition": c.name, "seeds": n.n_seeds,
               "seed noise (sd, points)": "unknown (one seed)" if n.sd is None else
               f"{n.sd:.2f} [{n.sd_ci[0]:.2f}, {n.sd_ci[1]:.2f}]",
               "resolves down to": "—" if n.resolution is None else f"{n.resolution:.2f}"}
        for x, ok in n.resolvable:
            row[f"{roi_key(x)}-ROI"] = "—" if ok is None else "resolved" if ok else f"below noise: {n.seeds_needed(x)} seeds"
        if n.eval_size:
            row["evaluation split"] = f"{n.eval_size} images (1 = {100.0 / n.eval_size:.2f} points)"
        rows.append(row)
    return pd.DataFrame(rows)


def _warnings(result: StudyAnalysis) -> list[str]:
    return analysis.warning_lines(result)


# ---------------------------------------------------------------------------------- tables

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

    Table 4.1 has one row per condition and ROI (so it fits a page however many ROIs there are);
    Table 4.2 one row per condition, relative risk in percent. The CSV files
    (:func:`hplandscape.analysis.tables`) hold the same numbers one per column.
    """
    rows1, rows2 = [], []
    metric = metric_label(result.metric)
    for c in result.conditions:
        rep = c.replicates if c.replicates is not None and c.replicates.replicated else None
        for r in c.rois:
            e, ci = r.ellipse, rep.ellipse(r.x) if rep is not None else None
            row = {"condition": c.name, "ROI": f"{r.key}-ROI", "n": r.n}
            for name, label in (("length", "length"), ("width", "width"), ("centre_log10_wd", "centre wd"),
                                ("centre_log10_lr", "centre lr")):
                row[label] = _with_ci(None if e is None else getattr(e, name), ci and getattr(ci, name))
            row["angle"] = "—" if e is None else f"{e.angle_deg:.1f}°"
            edge = ", ".join(r.touches_edge)
            row["grid edge"] = ("inside" if not r.truncated else f"touches {edge}" if e is None
                                else f"truncated: {edge}")
            rows1.append(row)
        k = c.risk
        excess = rep.excess_over_base if rep is not None else None
        rows2.append({"condition": c.name, f"best {metric}": _with_ci(c.best.top1, rep and rep.best_top1),
                      "n": k.n, "d_mean": _with_ci(k.d_mean, rep and rep.d_mean, "{:.3f}"),
                      "d_std": _with_ci(k.d_std, rep and rep.d_std, "{:.3f}"),
                      "dR_mean": percent_text(k.dR_mean), "dR_std": percent_text(k.dR_std),
                      "worst d": _with_ci(k.d_max, None, "{:.3f}"),
                      "excess over base": _with_ci(k.d_mean - result.base_condition.risk.d_mean, excess, "{:+.3f}"),
                      "missing": len(k.missing)})
    return pd.DataFrame(rows1), pd.DataFrame(rows2)


def shift_display(result: StudyAnalysis) -> pd.DataFrame:
    """The shift of each pruned condition's optimum for reading: each axis with its simultaneous
    95 % interval in brackets, the p-value and the verdict (``shift.csv`` has every bound apart)."""
    rows = []
    for c in result.conditions:
        s = c.shift
        if s is None:
            continue
        row = {"condition": c.name, "shift in log10 lr": _with_ci(s.log10_lr.estimate, s.log10_lr, "{:+.2f}"),
               "shift in log10 wd": _with_ci(s.log10_wd.estimate, s.log10_wd, "{:+.2f}"),
               "p": "—" if s.p_value is None else format_p(s.p_value).removeprefix("p = ")}
        if s.family_size > 1:
            row["p alone"] = "—" if s.p_value_single is None else format_p(s.p_value_single).removeprefix("p = ")
        row["verdict"] = s.verdict.replace("_", " ") + (" (optimum at the grid's edge)" if s.censored else "")
        r = s.region
        if r is not None:
            row[f"{r.x:g}-ROI centre, lr"] = _with_ci(r.log10_lr.estimate, r.log10_lr, "{:+.2f}")
            row[f"{r.x:g}-ROI centre, wd"] = _with_ci(r.log10_wd.estimate, r.log10_wd, "{:+.2f}")
            row["centre p"] = "—" if r.p_value is None else format_p(r.p_value).removeprefix("p = ")
        rows.append(row)
    return pd.DataFrame(rows)


def prior_display(prior: pd.DataFrame) -> pd.DataFrame:
    """Table 3.4 for reading: accuracy at the prior (mean ± std over seeds), best, re-tuning gain."""
    def pm(mean, std):
        return "—" if mean != mean else f"{mean:.2f}" + ("" if std != std or std == 0 else f" ± {std:.2f}")
    rows = []
    top5 = prior["top5_mean"].notna().any()
    for r in prior.itertuples(index=False):
        row = {"condition": r.condition, "lr": hp_text(r.lr), "wd": hp_text(r.wd), "seeds": r.n_seeds,
               "top-1 at the prior": pm(r.top1_mean, r.top1_std)}
        if top5:
            row["top-5 at the prior"] = pm(r.top5_mean, r.top5_std)
        row["best top-1 on the grid"] = "—" if r.best_top1 != r.best_top1 else f"{r.best_top1:.2f}"
        row["re-tuning gain"] = "—" if r.retuning_gain != r.retuning_gain else f"{r.retuning_gain:+.2f}"
        rows.append(row)
    return pd.DataFrame(rows)


_PRIOR_WORDS = ("Accuracy at the basemodel's prior, where an untuned practitioner starts (the method's Table 3.4), "
                "mean ± population std over seeds; the re-tuning gain is the best seed-averaged top-1 on the grid "
                "minus it.")


def _landscape_words(result: StudyAnalysis, scale: str) -> str:
    colours = ("Each condition has its own colour range (the top 15 % of its observations, reaching at least "
               f"{2 * max(result.xs):g} points below its best, so its near-optimal band always shows): compare "
               "colours within a column, and numbers (colour bars, tables) across columns." if scale == "condition"
               else "One colour range for all conditions (the top 15 % of all observations, widened down to every "
                    "condition's own near-optimal band, so no panel is one flat colour).")
    xs = sorted(result.xs)
    which = (f"White: {roi_key(xs[-1])}-ROI ellipse; black: {roi_key(xs[0])}-ROI ellipse" if len(xs) > 1
             else f"Black: {roi_key(xs[0])}-ROI ellipse") + ("; grey: the ROIs between" if len(xs) > 2 else "")
    return ("Top row: interpolated contour; bottom row: measured points (mean over seeds; crosses: diverged). "
            f"{which}; dashed: the ROI touches the grid's edge, so the grid "
            "truncates the ellipse; an ROI of fewer than 5 points has no ellipse, which its panel says; error "
            "bars on an ellipse's centre: its 95 % interval over seeds; stars: the best point (every one, when "
            f"several tie). {colours} lr and wd are written as 3.2e-5 throughout.")


_TABLE_WORDS = ("Brackets: 95 % bootstrap intervals over seeds (with two or more seeds). \"grid edge\": "
                "\"truncated\" when the ROI touches the grid's edge on the sides named, so the grid cuts the "
                f"ellipse off: run {EXTEND} to enclose it. The CSV files next to this report hold every "
                "number in its own column.")
_RISK_WORDS = ("d: the accuracy points lost against the condition's own best by keeping one of the basemodel's "
               "near-optimal settings; dᴿ: the same in percent of that best. Boxes: quartiles, solid line: "
               "median, dashed line: mean (the d_mean of the text and Table 4.2); diamonds with error bars: d_mean "
               "and its resampled 95 % range (with two or more seeds: its spread when the seeds, and the "
               "basemodel's near-optimal region with them, are drawn again; not a confidence interval).")


# ---------------------------------------------------------------------------------- markdown

def summary_markdown(result: StudyAnalysis, env: dict, figures=(), out: Path = None, sections=(),
                     prior: pd.DataFrame = None, scale: str = "condition") -> str:
    """The Markdown summary: answers, the shift of each optimum, tables, warnings, figures,
    the sections only a study directory gives, environment."""
    t1, t2 = display_tables(result)
    metric = metric_label(result.metric)
    parts = [f"# hplandscape report: {md_text(result.source)}", "",
             f"Basemodel: **{md_text(result.base)}**; grid {len(result.grid.log10_lr)} lr × {len(result.grid.log10_wd)} wd; "
             f"seeds {', '.join(map(str, result.seeds))}; ellipses at k = {result.k:g} "
             f"({analysis.confidence_level(result.k):.2%}); accuracy: {metric}.", "", seeds_line(result), "",
             "## Can I keep the unpruned model's learning rate and weight decay?", ""]
    parts += [f"- **{md_text(name)}**: {md_text(text)}" for name, text in answers(result)]
    noise = noise_display(result)
    if len(noise):
        parts += ["", "## Seed noise", "", md_text(_noise_words(result)), "", md_table(noise), ""]
        parts += [f"- **{md_text(c.name)}**: {md_text(describe_noise(c, result.xs))}" for c in result.conditions
                  if c.noise is not None]
    shifts = shift_display(result)
    if len(shifts):
        parts += ["", "## Did the optimum move?", "", md_text(_shift_words(result)), "", md_table(shifts)]
    parts += ["", "## Table 4.1: confidence ellipses (log10 units; centre = (wd, lr))", "",
              _TABLE_WORDS, "", md_table(t1), "",
              f"## Table 4.2: performance risk over the basemodel's {result.risk_x:g}-ROI", "",
              md_text(_RISK_WORDS), "", md_table(t2, "{:.4f}"), ""]
    if prior is not None:
        parts += ["## Table 3.4: accuracy at the prior", "", _PRIOR_WORDS, "", md_table(prior_display(prior)), ""]
    parts += beyond_markdown(result)
    warns = _warnings(result)
    parts += ["## Warnings", ""] + ([f"- {md_text(w.strip())}" for w in warns] or ["- none"]) + [""]
    if figures:
        parts += ["## Figures", "", md_text(_landscape_words(result, scale)), ""]
        stems = {}
        for p in figures:
            stems.setdefault(p.with_suffix(""), []).append(p)
        for group in stems.values():
            parts += md_figure(group, out)
        parts += [""]
    parts += [*sections]
    parts += ["## Environment", "", "```json", json.dumps(env, indent=2), "```", ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------- HTML

def _html(result: StudyAnalysis, env: dict, sections=(), prior: pd.DataFrame = None,
          scale: str = "condition") -> str:
    from hplandscape.plots import plotly_backend as pb  # late: plotly is only needed here

    t1, t2 = display_tables(result)
    esc = html.escape
    body = [f"<h1>hplandscape report</h1><p>Results: <code>{esc(result.source)}</code>. Basemodel: "
            f"<b>{esc(result.base)}</b>; grid {len(result.grid.log10_lr)} lr × {len(result.grid.log10_wd)} wd; "
            f"seeds {esc(', '.join(map(str, result.seeds)))}; ellipses at k = {result.k:g} "
            f"({analysis.confidence_level(result.k):.2%}); accuracy: {metric_label(result.metric)}.</p>",
            f"<p>{html_text(seeds_line(result))}</p>",
            "<h2>Can I keep the unpruned model's learning rate and weight decay?</h2>"]
    body += [f'<div class="answer"><b>{esc(n)}</b>: {html_text(t)}</div>' for n, t in answers(result)]
    noise = noise_display(result)
    if len(noise):
        body += ["<h2>Seed noise</h2>", f"<p>{html_text(_noise_words(result))}</p>", html_table(noise, "{:.3f}"),
                 "<ul>" + "".join(f"<li><b>{esc(c.name)}</b>: {html_text(describe_noise(c, result.xs))}</li>"
                                  for c in result.conditions if c.noise is not None) + "</ul>"]
    shifts = shift_display(result)
    if len(shifts):
        body += ["<h2>Did the optimum move?</h2>", f"<p>{html_text(_shift_words(result))}</p>",
                 html_table(shifts, "{:.3f}")]
    warns = _warnings(result)
    body.append("<h2>Warnings</h2>")
    body.append('<div class="warn"><ul>' + "".join(f"<li>{html_text(w.strip())}</li>" for w in warns) + "</ul></div>"
                if warns else f"<p>No missing or diverged runs; every {roi_key(result.edge_x)}-ROI lies inside the "
                              f"grid.</p>")
    body += ["<h2>Landscapes</h2>", f"<p>{html_text(_landscape_words(result, scale))}</p>",
             fig_div(pb.landscape_figure(result, scale=scale), "landscapes"),
             "<h2>Performance risk</h2>", f"<p>{html_text(_RISK_WORDS)}</p>",
             fig_div(pb.risk_boxplot(result), "risk"),
             f"<h3>Table 4.2: risk over the basemodel's {result.risk_x:g}-ROI</h3>", html_table(t2, "{:.4f}"),
             "<h3>Table 4.1: confidence ellipses (log10 units; centre = (wd, lr))</h3>",
             f"<p>{html_text(_TABLE_WORDS)}</p>", html_table(t1, "{:.3f}")]
    if prior is not None:
        body += ["<h3>Table 3.4: accuracy at the prior</h3>", f"<p>{html_text(_PRIOR_WORDS)}</p>",
                 html_table(prior_display(prior), "{:.2f}")]
    body.append("<h2>Per condition</h2>")
    for i, name in enumerate(result.names):
        body += [f"<h3>{esc(name)}</h3>", fig_div(pb.condition_panel(result, name, scale=scale), f"panel-{i}")]
    body += [*sections]
    body += _beyond_html(result)
    body += ["<h2>Environment</h2>", f"<pre>{esc(json.dumps(env, indent=2))}</pre>"]
    return page(f"hplandscape report: {result.source}", body)


# ---------------------------------------------------------------------------------- beyond the method

def _beyond_figures(result: StudyAnalysis, folder: Path, opts: FigureOptions) -> list[Path]:
    """``frontier`` when the conditions have FLOPs, ``ratio_curves`` when a curve was fitted."""
    from hplandscape.plots import mpl_backend as mb  # late: matplotlib is only needed here

    paths = []
    if result.frontier is not None and result.frontier.reason is None:
        paths += opts.save(mb.frontier_figure(result), folder, "frontier")
    if any(c.reason is None for c in result.ratio_curves):
        paths += opts.save(mb.ratio_curve_figure(result), folder, "ratio_curves")
    return paths


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
    return (f"Each condition at its best grid point (re-tuned) and at the basemodel's prior lr = {hp_text(p.lr)}, "
            f"wd = {hp_text(p.wd)} ({p.source}; not re-tuned). Hypervolume of the re-tuned front "
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
             md_table(analysis.importance_table(result)), "",
             "## Accuracy vs FLOPs", "", _frontier_words(result), ""]
    if result.frontier is not None and result.frontier.points:
        parts += [md_table(analysis.frontier_table(result), "{:.4g}"), ""]
    ratio = _ratio_words(result)
    parts += ["## Accuracy over the pruning ratio", "", ratio[0], ""] + [f"- {t}" for t in ratio[1:]]
    if result.ratio_curves:
        parts += ["", md_table(analysis.ratio_curve_table(result), "{:.4g}")]
    return parts + [""]


def _beyond_html(result: StudyAnalysis) -> list[str]:
    from hplandscape.plots import plotly_backend as pb  # late: plotly is only needed here

    body = ["<h2>Which hyperparameter matters</h2>", f"<p>{html_text(_importance_words(result))}</p>",
            html_table(analysis.importance_table(result), "{:.3f}"),
            "<h2>Accuracy vs FLOPs</h2>", f"<p>{html_text(_frontier_words(result))}</p>"]
    if result.frontier is not None and result.frontier.reason is None:
        body += [fig_div(pb.frontier_figure(result), "frontier"),
                 html_table(analysis.frontier_table(result), "{:.4g}")]
    ratio = _ratio_words(result)
    body += ["<h2>Accuracy over the pruning ratio</h2>", f"<p>{html_text(ratio[0])}</p>"]
    if len(ratio) > 1:
        body.append("<ul>" + "".join(f"<li>{html_text(t)}</li>" for t in ratio[1:]) + "</ul>")
    if any(c.reason is None for c in result.ratio_curves):
        body.append(fig_div(pb.ratio_curve_figure(result), "ratio-curves"))
    return body
