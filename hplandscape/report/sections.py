"""The sections of a single-study report, in the order a reader needs them: :data:`SECTIONS`.

The page (``index.html``) and the summary (``summary.md``) are written from this one list
(:func:`hplandscape.report.study_report.make_report`), so both show the same sections in the same order:

1. the answers: can the unpruned model's lr and wd be kept, seed noise, the seeds per grid point
   (an adaptive design's only), did the optimum move, warnings (what to distrust before reading on);
2. the method's figures and tables: landscapes, performance risk with Tables 4.2, 4.1 and 3.4,
   the top-5 landscapes, each condition's panel;
3. what only a study directory holds: grid map, training curves, pruned widths
   (:mod:`hplandscape.report.study_dir_sections`); sparsity and gradient flow
   (:mod:`hplandscape.report.sparsity_section`);
4. beyond the method: which hyperparameter matters, accuracy vs FLOPs, accuracy over the
   pruning ratio; last the environment.

A section is a function of a :class:`~hplandscape.report.page.ReportInput` that returns a
:class:`~hplandscape.report.page.Section` (its heading, its body in Markdown and HTML, the figure
and table files it wrote; figures in the report's formats and resolution), or None when it has
nothing to show. Adding one to the report is that function plus its entry in :data:`SECTIONS`.

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

import pandas as pd

from hplandscape import analysis
from hplandscape.analysis.notation import hp_text, metric_label, percent_text
from hplandscape.analysis.regions import roi_key
from hplandscape.analysis.replication_info import ADAPTIVE, describe_replication
from hplandscape.analysis.shift import FAMILY_CORRECTION
from hplandscape.analysis.study_analysis import StudyAnalysis
from hplandscape.analysis.verdict import (EXTEND, describe_excess, describe_noise, describe_region, describe_shift,
                                          format_p, seeds_line)
from hplandscape.provenance import git_state
from hplandscape.report.live import live_section
from hplandscape.report.page import ReportInput, Section, fig_div, html_table, html_text, md_table, md_text, slug
from hplandscape.report.sparsity_section import sparsity_flow_section
from hplandscape.report.study_dir_sections import curve_section, grid_map_section, study_files_section, width_section

# version key -> distribution name; read from the installed metadata, so no package is imported
# (a report must not pay for importing torch; each run record keeps torch's full build tag).
_PACKAGES = {"hplandscape": "hplandscape", "numpy": "numpy", "scipy": "scipy", "pandas": "pandas",
             "plotly": "plotly", "matplotlib": "matplotlib", "torch": "torch", "torchvision": "torchvision",
             "torch_pruning": "torch-pruning"}


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
    adaptive = result.replication is not None and result.replication.design == ADAPTIVE
    return ("Seed noise: the standard deviation of top-1 between seeds of the same grid point, pooled over the "
            "points near each condition's optimum (95 % chi-square interval). An x-ROI compares seed-averaged "
            "accuracies with the best one minus x, so it means something only when x is at least twice the "
            "noise of a mean of the study's seeds, 2·sd/√seeds (\"resolves down to\"); a threshold below "
            "that is marked, and the text says what would resolve it."
            + (" The adaptive design gave all the study's seeds only to the points whose side of a threshold, or "
               "whose claim to be the best, was still open (see \"Seeds per point\"): the resolution is theirs; "
               "a point with fewer seeds lay far enough from every threshold and from the best (method §12) that its "
               "other seeds were not asked for." if adaptive else ""))


def noise_display(result: StudyAnalysis) -> pd.DataFrame:
    """Per condition: seed noise with its interval, the smallest ROI it resolves, each ROI's status."""
    rows = []
    for c in result.conditions:
        n = c.noise
        if n is None:
            continue
        rep = result.replication.condition(c.name) if result.replication is not None else None
        # an adaptive design's points hold 1 … all seeds: its noise and resolution are those of the full ones
        seeds = (n.n_seeds if rep is None or rep.design != ADAPTIVE
                 else f"{n.n_seeds} (per point {_count_range(rep)})")
        row = {"condition": c.name, "seeds": seeds,
               "seed noise (sd, points)": "unknown (one seed)" if n.sd is None else
               f"{n.sd:.2f} [{n.sd_ci[0]:.2f}, {n.sd_ci[1]:.2f}]",
               "resolves down to": "—" if n.resolution is None else f"{n.resolution:.2f}"}
        for x, ok in n.resolvable:
            row[f"{roi_key(x)}-ROI"] = "—" if ok is None else "resolved" if ok else f"below noise: {n.seeds_needed(x)} seeds"
        if n.eval_size:
            row["evaluation split"] = f"{n.eval_size} images (1 = {100.0 / n.eval_size:.2f} points)"
        rows.append(row)
    return pd.DataFrame(rows)


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


# ---------------------------------------------------------------------------------- the page's head

def head(result: StudyAnalysis) -> tuple[str, str]:
    """The top of the summary and of the page, above every section: what was analysed, how.

    Returns ``(markdown, html)``.
    """
    grid = f"grid {len(result.grid.log10_lr)} lr × {len(result.grid.log10_wd)} wd"
    ellipses = f"ellipses at k = {result.k:g} ({analysis.confidence_level(result.k):.2%})"
    metric = metric_label(result.metric)
    seeds = ", ".join(map(str, result.seeds))
    md = (f"# hplandscape report: {md_text(result.source)}\n\nBasemodel: **{md_text(result.base)}**; {grid}; "
          f"seeds {seeds}; {ellipses}; accuracy: {metric}.\n\n{md_text(seeds_line(result))}\n")
    esc = html.escape
    body = (f"<h1>hplandscape report</h1><p>Results: <code>{esc(result.source)}</code>. Basemodel: "
            f"<b>{esc(result.base)}</b>; {grid}; seeds {esc(seeds)}; {ellipses}; accuracy: {metric}.</p>\n"
            f"<p>{html_text(seeds_line(result))}</p>")
    return md, body


# ---------------------------------------------------------------------------------- the answers

def answers_section(r: ReportInput) -> Section:
    """"Can I keep …?": one plain-words answer per condition (:func:`answers`)."""
    items = answers(r.result)
    return Section("answers", "Can I keep the unpruned model's learning rate and weight decay?",
                   "\n".join(f"- **{md_text(n)}**: {md_text(t)}" for n, t in items),
                   "\n".join(f'<div class="answer"><b>{html.escape(n)}</b>: {html_text(t)}</div>' for n, t in items))


def _replication_words(result: StudyAnalysis) -> str:
    return (f"{describe_replication(result.replication)} Its first round ran the first seed at every grid point and "
            f"every seed at the prior and its axis neighbours (so the seed noise is measured from the start); each "
            f"later round added the next seed only where a point's membership of an ROI or its claim to be the best "
            f"was still open. So the seeds per point differ by design: a point with fewer seeds lay, when the rounds "
            f"were decided, far enough from every ROI threshold and from the best that more seeds were judged not to "
            f"change the answer (docs/method.md §12). Each cell below holds the seeds of that grid point (the full "
            f"design: {result.replication.n_seeds} everywhere).")


def replication_section(r: ReportInput):
    """"Seeds per point": how many seeds each grid point of each condition got, with the runs the
    adaptive design used against the full design's (``figures/seeds_per_point``); None for a
    full design, whose every point has every seed (a missing run is listed under "Warnings")."""
    info = r.result.replication
    if info is None or info.design != ADAPTIVE:
        return None
    from hplandscape.plots import seed_maps as sm  # late: plotting libraries

    words = _replication_words(r.result)
    paths = r.save_figure(sm.seed_map_mpl(info), "seeds_per_point")
    rows = pd.DataFrame([{"condition": c.condition, "runs": c.used, "of the full design": c.full,
                          "share": f"{100.0 * c.used / c.full:.1f} %" if c.full else "—",
                          "seeds per point": _count_range(c), "rounds": c.rounds} for c in info.conditions])
    md = [md_text(words), "", md_table(rows), "", *r.md_figure(paths)]
    body = [f"<p>{html_text(words)}</p>", html_table(rows, "{:.3f}"),
            fig_div(sm.seed_map_plotly(info), "seeds-per-point")]
    return Section("replication", "Seeds per point", "\n".join(md), "\n".join(body), figures=paths)


def _count_range(c) -> str:
    """``"1–3"``: the fewest and most seeds a point of the condition got (one number when equal)."""
    a = c.array
    lo, hi = int(a.min()), int(a.max())
    return str(lo) if lo == hi else f"{lo}–{hi}"


def noise_section(r: ReportInput):
    """Each condition's seed noise and the smallest ROI it resolves; None without any."""
    noise = noise_display(r.result)
    if not len(noise):
        return None
    words = _noise_words(r.result)
    lines = [(c.name, describe_noise(c, r.result.xs)) for c in r.result.conditions if c.noise is not None]
    md = [md_text(words), "", md_table(noise), "", *(f"- **{md_text(n)}**: {md_text(t)}" for n, t in lines)]
    body = [f"<p>{html_text(words)}</p>", html_table(noise, "{:.3f}"),
            "<ul>" + "".join(f"<li><b>{html.escape(n)}</b>: {html_text(t)}</li>" for n, t in lines) + "</ul>"]
    return Section("noise", "Seed noise", "\n".join(md), "\n".join(body))


def shift_section(r: ReportInput) -> Section:
    """"Did the optimum move?": the shift test of each pruned condition; writes ``shift.csv``
    (shown only when some condition has a shift, i.e. the study has a pruned condition)."""
    csv = r.write_table("shift.csv", analysis.shift_table(r.result))
    shifts = shift_display(r.result)
    if not len(shifts):
        return Section("shift", "Did the optimum move?", tables=(csv,))
    words = _shift_words(r.result)
    return Section("shift", "Did the optimum move?", f"{md_text(words)}\n\n{md_table(shifts)}",
                   f"<p>{html_text(words)}</p>\n{html_table(shifts, '{:.3f}')}", tables=(csv,))


def warnings_section(r: ReportInput) -> Section:
    """Grid edges, truncated ellipses, missing, failed and diverged runs
    (:func:`hplandscape.analysis.warning_lines`), or the sentence that there are none."""
    warns = [w.strip() for w in analysis.warning_lines(r.result)]
    if not warns:
        none = (f"No missing or diverged runs; every {roi_key(r.result.edge_x)}-ROI lies inside the grid.")
        return Section("warnings", "Warnings", none, f"<p>{none}</p>")
    return Section("warnings", "Warnings", "\n".join(f"- {md_text(w)}" for w in warns),
                   '<div class="warn"><ul>' + "".join(f"<li>{html_text(w)}</li>" for w in warns) + "</ul></div>")


# ---------------------------------------------------------------------------------- the method's figures and tables

def landscapes_section(r: ReportInput) -> Section:
    """Every condition's landscape: contour above, measured points below (``figures/landscapes``)."""
    from hplandscape.plots import mpl_backend as mb  # late: plotting libraries
    from hplandscape.plots import plotly_backend as pb

    scale = r.opts.scale
    pending = r.live.pending if r.live is not None else None  # a study still running
    paths = r.save_figure(mb.landscape_figure(r.result, scale=scale, pending=pending), "landscapes")
    words = _landscape_words(r.result, scale)
    figure = pb.landscape_figure(r.result, scale=scale, pending=pending)
    return Section("landscapes", "Landscapes", "\n".join([md_text(words), "", *r.md_figure(paths)]),
                   f"<p>{html_text(words)}</p>\n{fig_div(figure, 'landscapes')}", figures=paths)


def risk_section(r: ReportInput) -> Section:
    """Box plots of d and dᴿ per condition (``figures/risk``); Tables 4.2 and 4.1 follow."""
    from hplandscape.plots import mpl_backend as mb  # late: plotting libraries
    from hplandscape.plots import plotly_backend as pb

    paths = r.save_figure(mb.risk_boxplot(r.result), "risk")
    return Section("risk", "Performance risk", "\n".join([md_text(_RISK_WORDS), "", *r.md_figure(paths)]),
                   f"<p>{html_text(_RISK_WORDS)}</p>\n{fig_div(pb.risk_boxplot(r.result), 'risk')}", figures=paths)


def table_4_2_section(r: ReportInput) -> Section:
    """Table 4.2, the risk over the basemodel's ROI, for reading; writes ``table_4_2.csv``."""
    csv = r.write_table("table_4_2.csv", analysis.tables(r.result)[1])
    t2 = display_tables(r.result)[1]
    return Section("table-4-2", f"Table 4.2: risk over the basemodel's {r.result.risk_x:g}-ROI",
                   md_table(t2, "{:.4f}"), html_table(t2, "{:.4f}"), tables=(csv,), level=3)


def table_4_1_section(r: ReportInput) -> Section:
    """Table 4.1, the confidence ellipses, for reading; writes ``table_4_1.csv``."""
    csv = r.write_table("table_4_1.csv", analysis.tables(r.result)[0])
    t1 = display_tables(r.result)[0]
    return Section("table-4-1", "Table 4.1: confidence ellipses (log10 units; centre = (wd, lr))",
                   f"{md_text(_TABLE_WORDS)}\n\n{md_table(t1)}", f"<p>{html_text(_TABLE_WORDS)}</p>\n"
                   f"{html_table(t1, '{:.3f}')}", tables=(csv,), level=3)


def table_3_4_section(r: ReportInput) -> Section:
    """Table 3.4, the accuracy at the basemodel's prior (:func:`hplandscape.analysis.prior_table`);
    writes ``table_3_4.csv``."""
    prior = analysis.prior_table(r.table, r.result)
    csv = r.write_table("table_3_4.csv", prior)
    shown = prior_display(prior)
    return Section("table-3-4", "Table 3.4: accuracy at the prior", f"{md_text(_PRIOR_WORDS)}\n\n{md_table(shown)}",
                   f"<p>{html_text(_PRIOR_WORDS)}</p>\n{html_table(shown, '{:.2f}')}", tables=(csv,), level=3)


def top5_section(r: ReportInput):
    """The top-5 landscapes (the method's Fig. 4.3) when a top-1 report's results hold top-5; else None."""
    result = r.result
    if result.metric != "top1" or not analysis.has_metric(r.table, "top5"):
        return None
    from hplandscape.plots import mpl_backend as mb  # late: plotting libraries
    from hplandscape.plots import plotly_backend as pb

    r5 = analysis.analyze(r.table, base=result.base, metric="top5", **r.analyze_kw)
    paths = r.save_figure(mb.landscape_figure(r5, scale=r.opts.scale), "landscapes_top5")
    rows = pd.DataFrame([{"condition": c.name, "best top-5": f"{c.best.top1:.2f}",
                          "at lr": hp_text(c.best.lr), "at wd": hp_text(c.best.wd),
                          "d_mean": f"{c.risk.d_mean:.3f}", "dR_mean": percent_text(c.risk.dR_mean)}
                         for c in r5.conditions])
    words = ("The same analysis on top-5 accuracy (the method's Fig. 4.3): landscapes, and each condition's "
             f"best top-5 and risk over the basemodel's {r5.risk_x:g}-ROI of top-5.")
    md = [md_text(words), "", md_table(rows), "", *r.md_figure(paths)]
    body = [f"<p>{html_text(words)}</p>", html_table(rows, "{:.3f}"),
            fig_div(pb.landscape_figure(r5, scale=r.opts.scale), "landscapes-top5")]
    return Section("top5", "Top-5 landscapes", "\n".join(md), "\n".join(body), figures=paths)


def panels_section(r: ReportInput) -> Section:
    """Each condition's contour and scatter, larger, under its name (``figures/panel_<condition>``)."""
    from hplandscape.plots import mpl_backend as mb  # late: plotting libraries
    from hplandscape.plots import plotly_backend as pb

    md, body, figures = [], [], []
    for i, name in enumerate(r.result.names):
        paths = r.save_figure(mb.condition_panel(r.result, name, scale=r.opts.scale), f"panel_{slug(name)}")
        figures += paths
        md += [f"### {md_text(name)}", "", *r.md_figure(paths), ""]
        body += [f"<h3>{html.escape(name)}</h3>",
                 fig_div(pb.condition_panel(r.result, name, scale=r.opts.scale), f"panel-{i}")]
    return Section("per-condition", "Per condition", "\n".join(md), "\n".join(body), figures=figures)


# ---------------------------------------------------------------------------------- beyond the method

def importance_section(r: ReportInput) -> Section:
    """Which hyperparameter matters: the two-way ANOVA of each condition; writes ``importance.csv``."""
    table = analysis.importance_table(r.result)
    csv = r.write_table("importance.csv", table)
    words = _importance_words(r.result)
    return Section("importance", "Which hyperparameter matters", f"{md_text(words)}\n\n{md_table(table)}",
                   f"<p>{html_text(words)}</p>\n{html_table(table, '{:.3f}')}", tables=(csv,))


def frontier_section(r: ReportInput) -> Section:
    """Accuracy vs FLOPs, re-tuned and at the prior (``figures/frontier`` when the conditions have
    FLOPs); writes ``frontier.csv``."""
    f = r.result.frontier
    table = analysis.frontier_table(r.result)
    csv = r.write_table("frontier.csv", table)
    words = _frontier_words(r.result)
    md, body = [md_text(words)], [f"<p>{html_text(words)}</p>"]
    paths = _figure_and_table(r, md, body, "frontier_figure" if f is not None and f.reason is None else None,
                              "frontier", "frontier", table)
    return Section("frontier", "Accuracy vs FLOPs", "\n".join(md), "\n".join(body), figures=paths, tables=(csv,))


def _figure_and_table(r: ReportInput, md: list, body: list, figure, stem: str, div: str, table) -> tuple:
    """Append a figure drawn by both plotting backends' ``figure`` function (None: none) and the
    section's table to ``md`` and ``body``; return the figure's files."""
    paths = ()
    if figure is not None:
        from hplandscape.plots import mpl_backend as mb  # late: plotting libraries
        from hplandscape.plots import plotly_backend as pb

        paths = r.save_figure(getattr(mb, figure)(r.result), stem)
        md += ["", *r.md_figure(paths)]
        body.append(fig_div(getattr(pb, figure)(r.result), div))
    if len(table):
        md += ["", md_table(table, "{:.4g}")]
        body.append(html_table(table, "{:.4g}"))
    return paths


def ratio_curve_section(r: ReportInput) -> Section:
    """Accuracy over the pruning ratio: the curve fitted per method (``figures/ratio_curves`` when
    one was); writes ``ratio_curves.csv``."""
    table = analysis.ratio_curve_table(r.result)
    csv = r.write_table("ratio_curves.csv", table)
    words = _ratio_words(r.result)
    md, body = [md_text(words[0])], [f"<p>{html_text(words[0])}</p>"]
    if len(words) > 1:
        md += ["", *(f"- {md_text(t)}" for t in words[1:])]
        body.append("<ul>" + "".join(f"<li>{html_text(t)}</li>" for t in words[1:]) + "</ul>")
    paths = _figure_and_table(r, md, body, "ratio_curve_figure" if any(c.reason is None for c in r.result.ratio_curves)
                              else None, "ratio_curves", "ratio-curves", table)
    return Section("ratio-curves", "Accuracy over the pruning ratio", "\n".join(md), "\n".join(body), figures=paths,
                   tables=(csv,))


def environment_section(r: ReportInput) -> Section:
    """Versions, host, time and git state of the report's making (:func:`environment`)."""
    text = json.dumps(environment(), indent=2)
    return Section("environment", "Environment", f"```json\n{text}\n```", f"<pre>{html.escape(text)}</pre>")


# The report, in order: the page and the summary both walk this list. Adding a section to the
# report: a function of ReportInput returning a Section (or None), and its entry here.
SECTIONS = (
    live_section,
    answers_section, noise_section, replication_section, shift_section, warnings_section,
    landscapes_section, risk_section, table_4_2_section, table_4_1_section, table_3_4_section,
    top5_section, panels_section,
    study_files_section, grid_map_section, curve_section, width_section, sparsity_flow_section,
    importance_section, frontier_section, ratio_curve_section,
    environment_section,
)
