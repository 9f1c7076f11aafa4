"""Static matplotlib figures (PNG/PDF) of an analysed study.

Figures are built with :class:`matplotlib.figure.Figure` directly, not through ``pyplot``: nothing
here touches global state (no style, no backend switch, no open-figure registry), so calling these
functions inside a notebook or a server cannot change anyone else's plots.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from hplandscape.analysis.study_analysis import StudyAnalysis
from hplandscape.choices import DEFAULT_DPI, FIGURE_FORMATS  # the static formats save() writes, by suffix
from hplandscape.plots.figure_data import (D_MEAN_RANGE, PENDING_COLOUR, PENDING_LABEL, PanelInfo, WidthInfo,
                                           common_best_label, frontier_plot_info, landscape_info, panel_info,
                                           ratio_plot_info, risk_plot_info)

CMAP = "viridis"
_BASE_COLOUR, _PRUNED_COLOUR = "#1f3b73", "#7fa7d9"
# A mid grey behind the legend: the white 1.0-ROI sample and the black 0.5-ROI sample both show on it
LEGEND_BG = "#a6a6a6"
_MAX_COLUMNS = 4  # condition columns per block of the study figure: wider studies wrap
DPI = DEFAULT_DPI


def _decorate(ax, panel: PanelInfo, *, y_label: bool = True, notes: bool = True, best_name: str = None) -> None:
    for e in panel.ellipses:
        # dashed: the ROI touches the grid edge, so the grid cuts the ellipse off
        ax.plot(e.wd, e.lr, color=e.colour, lw=2.2, ls="--" if e.truncated else "-", label=e.name)
        if e.centre_ci is not None:  # the centre's 95 % interval over seeds
            wd_lo, wd_hi, lr_lo, lr_hi = e.centre_ci
            cw, cl = e.centre
            ax.errorbar([cw], [cl], xerr=[[max(cw - wd_lo, 0.0)], [max(wd_hi - cw, 0.0)]],
                        yerr=[[max(cl - lr_lo, 0.0)], [max(lr_hi - cl, 0.0)]], color=e.colour, lw=1.2,
                        capsize=3, marker="+", ms=7, ls="none", label=f"{e.label} centre, 95 % CI")
    ties = panel.best_ties or ((panel.best[0], panel.best[1]),)
    ax.plot([t[0] for t in ties], [t[1] for t in ties], marker="*", ms=15, color="red", mec="white", ls="none",
            label=best_name or panel.best_label)
    ax.set_xticks(panel.wd_ticks[0], panel.wd_ticks[1], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(panel.lr_ticks[0], panel.lr_ticks[1], fontsize=7)
    ax.set_xlim(*panel.wd_range)
    ax.set_ylim(*panel.lr_range)
    ax.set_xlabel("weight decay")
    if y_label:
        ax.set_ylabel("learning rate")
    ax.set_facecolor("#dddddd")
    if notes and panel.notes:  # say on the figure what it does not draw
        ax.text(0.02, 0.02, "\n".join(panel.notes), transform=ax.transAxes, fontsize=6.5, va="bottom",
                ha="left", bbox=dict(facecolor="white", alpha=0.85, edgecolor="none", pad=2))


def _figure_legend(fig: Figure, axes) -> None:
    """One legend for the figure, below the axes (never over an axis title), each entry once."""
    entries = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", fontsize=7,
                   ncols=min(len(entries), 4), facecolor=LEGEND_BG, framealpha=1.0)


def _colorbar(fig: Figure, mappable, axes, panel: PanelInfo):
    c = panel.colours
    bar = fig.colorbar(mappable, ax=axes, shrink=0.9, aspect=35)
    bar.set_ticks(list(c.ticks), labels=list(c.tick_text))
    bar.set_label(c.label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    return bar


def draw_contour(ax, panel: PanelInfo, legend: bool = False, *, y_label: bool = True, best_name: str = None):
    """Interpolated contour of one panel on ``ax``; returns the mappable for a colour bar."""
    c = panel.colours
    m = ax.contourf(panel.mesh_wd, panel.mesh_lr, np.ma.masked_invalid(panel.mesh_z), levels=c.levels,
                    cmap=CMAP, vmin=c.zmin, vmax=c.zmax)
    _decorate(ax, panel, y_label=y_label, best_name=best_name)
    if legend:
        ax.legend(loc="lower right", fontsize=7, facecolor=LEGEND_BG, framealpha=1.0)
    return m


def draw_scatter(ax, panel: PanelInfo, legend: bool = False, *, y_label: bool = True, best_name: str = None):
    """Measured points of one panel on ``ax`` (diverged points as crosses)."""
    c = panel.colours
    ok = ~panel.diverged
    m = ax.scatter(panel.wd[ok], panel.lr[ok], c=panel.top1[ok], cmap=CMAP, vmin=c.zmin, vmax=c.zmax,
                   s=45, edgecolors="grey", linewidths=0.4, label="runs (mean over seeds)")
    if panel.diverged.any():
        ax.scatter(panel.wd[panel.diverged], panel.lr[panel.diverged],
                   marker="x", c="black", s=40, label="diverged")
    if panel.pending:
        ax.scatter([w for w, _ in panel.pending], [l for _, l in panel.pending], s=45, facecolors="none",
                   edgecolors=PENDING_COLOUR, linewidths=1.0, linestyle="--", label=PENDING_LABEL)
    _decorate(ax, panel, y_label=y_label, notes=False, best_name=best_name)
    if legend:
        ax.legend(loc="lower right", fontsize=7, facecolor=LEGEND_BG, framealpha=1.0)
    return m


def condition_panel(result: StudyAnalysis, condition: str, scale: str = "condition") -> Figure:
    """Contour (left) and scatter (right) of one condition."""
    panel = panel_info(result, condition, scale=scale)
    fig = Figure(figsize=(10, 5.0), layout="constrained")
    axes = fig.subplots(1, 2)
    m = draw_contour(axes[0], panel)
    draw_scatter(axes[1], panel, y_label=False)
    axes[0].set_title("interpolated contour", fontsize=10)
    axes[1].set_title("measured points", fontsize=10)
    _colorbar(fig, m, axes, panel)
    _figure_legend(fig, axes)
    fig.suptitle(panel.title)
    return fig


def landscape_figure(result: StudyAnalysis, scale: str = "condition", pending: dict = None) -> Figure:
    """Per condition a column, contour on top and scatter below; a colour bar per column
    (``scale="condition"``) or one for all (``"shared"``). More than four conditions wrap.
    ``pending``: grid points of a study still running, drawn as pending (:func:`landscape_info`)."""
    info = landscape_info(result, scale=scale, pending=pending)
    n = len(info.panels)
    blocks = math.ceil(n / _MAX_COLUMNS)
    cols = math.ceil(n / blocks)
    fig = Figure(figsize=(3.6 * cols + 1.2, 6.6 * blocks + 1.0), layout="constrained")
    axes = np.atleast_2d(fig.subplots(2 * blocks, cols, squeeze=False))
    m = None
    best_name = common_best_label(info.panels)
    for i, panel in enumerate(info.panels):
        top, col = 2 * (i // cols), i % cols
        m = draw_contour(axes[top, col], panel, y_label=col == 0, best_name=best_name)
        draw_scatter(axes[top + 1, col], panel, y_label=col == 0, best_name=best_name)
        axes[top, col].set_title(panel.title, fontsize=9)
        if scale == "condition":
            _colorbar(fig, m, [axes[top, col], axes[top + 1, col]], panel)
    for j in range(n, blocks * cols):  # empty cells of the last block
        axes[2 * (j // cols), j % cols].set_visible(False)
        axes[2 * (j // cols) + 1, j % cols].set_visible(False)
    if scale == "shared":
        _colorbar(fig, m, axes, info.panels[0])
    _figure_legend(fig, axes)
    fig.suptitle(info.title, fontsize=9, wrap=True)
    return fig


def risk_boxplot(result: StudyAnalysis) -> Figure:
    """Box plots of d and dᴿ (percent of the best) over the basemodel's 0.5-ROI, one box per
    condition; each box shows the median (solid) and the mean (dashed)."""
    info = risk_plot_info(result)
    fig = Figure(figsize=(max(6.0, 1.6 * len(info.conditions) * 2), 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, values, title, unit in ((axes[0], info.d, "performance risk d", f"d ({info.metric} points)"),
                                    (axes[1], info.dR, "relative performance risk dᴿ",
                                     "dᴿ (% of the condition's best)")):
        data = [list(v) if len(v) else [np.nan] for v in values]
        parts = ax.boxplot(data, patch_artist=True, showmeans=True, meanline=True,
                           meanprops=dict(color="black", ls="--", lw=1.2),
                           medianprops=dict(color="black", lw=1.2))
        for patch, name in zip(parts["boxes"], info.conditions):
            patch.set_facecolor(_BASE_COLOUR if name == info.base else _PRUNED_COLOUR)
        ax.set_xticks(range(1, len(info.conditions) + 1), info.conditions, rotation=30, ha="right")
        ax.set_title(title)
        ax.set_ylabel(unit)
    cis = [(i + 1, ci) for i, ci in enumerate(info.d_mean_ci) if ci is not None]
    if cis:  # the mean risk and its resampled 95 % range, beside each box
        x = np.array([i for i, _ in cis]) + 0.3
        mean = np.array([ci[0] for _, ci in cis])
        err = np.array([[ci[0] - ci[1] for _, ci in cis], [ci[2] - ci[0] for _, ci in cis]])
        axes[0].errorbar(x, mean, yerr=np.maximum(err, 0.0), fmt="D", color="#d95f02", ms=5, capsize=4,
                         label=D_MEAN_RANGE)
        axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("box: quartiles; solid line: median; dashed line: mean", fontsize=9)
    return fig


def width_figure(info: WidthInfo) -> Figure:
    """Kept fraction of every prunable layer, one line per pruned condition; dotted: each cap."""
    x = np.arange(len(info.layers))
    fig = Figure(figsize=(max(6.0, 0.22 * len(x) + 2.5), 4.4), layout="constrained")
    ax = fig.subplots()
    for label, fractions in zip(info.labels, info.fractions):
        ax.plot(x, fractions, marker="o", ms=3.5, lw=1.2, label=label)
    for cap in sorted({c for c in info.caps if c is not None}):
        ax.axhline(cap, color="grey", ls=":", lw=1)
        ax.annotate(f"cap: every layer keeps ≥ {cap:.0%}", (x[-1], cap), ha="right", va="bottom",
                    fontsize=7, color="grey")
    ax.set_xticks(x, info.layers, rotation=70, ha="right", fontsize=6)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("prunable layer")
    ax.set_ylabel("kept fraction of channels")
    ax.set_title("kept fraction per prunable layer")
    ax.legend(fontsize=7, loc="upper left")
    return fig


def save(fig: Figure, path, dpi: int = DPI) -> None:
    """Save ``fig`` atomically as PNG, SVG or PDF by the suffix of ``path``.

    SVG and PDF are vector figures for a paper (``dpi`` matters for PNG only); text stays
    editable text in SVG, and PDF embeds its fonts as TrueType.

    Raises
    ------
    ValueError
        For a suffix other than those in :data:`hplandscape.choices.FIGURE_FORMATS`.
    """
    import io
    from pathlib import Path

    from matplotlib import rc_context

    from hplandscape.atomic import write_bytes as write_bytes_atomic

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"{path}: figures are written as {', '.join(FIGURE_FORMATS)}, not {fmt!r}")
    buf = io.BytesIO()
    # a local rc context: the caller's settings are untouched; editable text in SVG, fonts
    # embedded as TrueType (Type 42) in PDF, as journals ask
    with rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
        fig.savefig(buf, format=fmt, dpi=dpi)
    write_bytes_atomic(path, buf.getvalue())


def to_png(fig: Figure, dpi: int = DPI) -> bytes:
    """PNG bytes of ``fig`` (for ``IPython.display.Image`` in notebooks)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def frontier_figure(result: StudyAnalysis) -> Figure:
    """Top-1 over FLOPs: re-tuned and at-the-prior points with their Pareto fronts."""
    info = frontier_plot_info(result)
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    best, prior = info.series
    for name, x, y in zip(prior.names, prior.flops, prior.top1):  # what re-tuning buys, per condition
        i = best.names.index(name)
        ax.plot([x, x], [y, best.top1[i]], color="grey", lw=0.8, zorder=1)
    for s in info.series:
        if len(s.front_flops):
            ax.step(s.front_flops, s.front_top1, where="post", color=s.colour, ls=":", lw=1.3,
                    label=f"Pareto front, {s.kind}")
        if s.kind == "best":
            ax.scatter(s.flops, s.top1, color=s.colour, marker="o", s=36, label=s.label, zorder=4)
        else:
            ax.scatter(s.flops, s.top1, facecolors="none", edgecolors=s.colour, marker="D", s=70, lw=1.4,
                       label=s.label, zorder=3)
    for name, x, y in zip(best.names, best.flops, best.top1):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=7, color=best.colour)
    if any(len(s.flops) for s in info.series):
        ax.set_xscale("log")
        ax.margins(x=0.1, y=0.08)  # room for the labels of the cheapest and the costliest condition
    else:
        ax.text(0.5, 0.5, info.note or "no points", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("FLOPs per image (log scale)")
    ax.set_ylabel("top-1 (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(info.title + "\n(grey: the same condition re-tuned and at the prior)", fontsize=9)
    return fig


def ratio_curve_figure(result: StudyAnalysis) -> Figure:
    """One panel per pruning method: top-1 over r with the fitted curves and their 1-point drops."""
    info = ratio_plot_info(result)
    n = max(1, len(info.panels))
    fig = Figure(figsize=(5.6 * n, 4.6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, panel in zip(axes, info.panels):
        for s in panel.series:
            drop = "" if s.r_drop is None else f"; 1-point drop at r = {s.r_drop:.2f}"
            if s.kind == "best":
                ax.scatter(s.r, s.top1, color=s.colour, s=30, zorder=4, label=s.label + drop)
            else:  # hollow, so a condition whose best is the prior shows both markers
                ax.scatter(s.r, s.top1, facecolors="none", edgecolors=s.colour, s=64, lw=1.4, zorder=3,
                           label=s.label + drop)
            if len(s.curve_r):
                ax.plot(s.curve_r, s.curve_top1, color=s.colour, lw=1.5)
            if s.r_drop is not None:
                ax.axvline(s.r_drop, color=s.colour, ls="--", lw=1)
        ax.set_title(panel.method)
        ax.set_xlabel("r = fraction of FLOPs pruned")
        ax.set_ylabel("top-1 (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(info.title + "; dashed: 1 point below acc_p", fontsize=10)
    return fig


# -- training curves, grid map, pooled risk ----------------------------------------------------


def curve_figure(info) -> Figure:
    """Loss (top) and accuracy (bottom: held-out solid, training dotted) per epoch,
    one column per condition; blue at the best point, orange at the prior; ✕ where a run diverged."""
    from matplotlib.ticker import MaxNLocator

    from hplandscape.plots.curves import ROLE_COLOURS

    n = max(1, len(info.panels))
    blocks = math.ceil(n / _MAX_COLUMNS)
    cols = math.ceil(n / blocks)
    fig = Figure(figsize=(3.6 * cols + 1.0, 5.6 * blocks + 0.8), layout="constrained")
    axes = np.atleast_2d(fig.subplots(2 * blocks, cols, squeeze=False))
    for i, panel in enumerate(info.panels):
        top, col = 2 * (i // cols), i % cols
        loss, acc = axes[top, col], axes[top + 1, col]
        for run in panel.runs:
            colour = ROLE_COLOURS[run.role]
            name = "at the best point" if run.role == "best" else "at the prior"
            loss.plot(run.epoch, run.train_loss, color=colour, lw=1.3, label=name)
            acc.plot(run.epoch, run.val_acc, color=colour, lw=1.3, label=name)
            acc.plot(run.epoch, run.train_acc, color=colour, lw=0.9, ls=":")
            if run.diverged_epoch is not None:
                finite = run.train_loss[np.isfinite(run.train_loss)]
                y = float(finite[-1]) if len(finite) else 1.0
                loss.plot([run.diverged_epoch], [y], marker="x", color="red", ms=9, ls="none",
                          label="diverged (loss not finite)")
                loss.annotate("diverged", (run.diverged_epoch, y), textcoords="offset points", xytext=(0, 6),
                              ha="center", color="red", fontsize=7)
        loss.set_ylim(bottom=0)
        loss.set_title(panel.title, fontsize=9)
        acc.set_xlabel("epoch")
        for ax in (loss, acc):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
        if col == 0:
            loss.set_ylabel("training loss")
            acc.set_ylabel("accuracy (%)")
        for ax in (loss, acc):
            ax.grid(True, alpha=0.3)
            ax.tick_params(which="both", labelsize=7)
    for j in range(n, blocks * cols):
        axes[2 * (j // cols), j % cols].set_visible(False)
        axes[2 * (j // cols) + 1, j % cols].set_visible(False)
    _figure_legend(fig, axes)
    fig.suptitle("training curves per epoch; accuracy: held-out (solid) and training (dotted)", fontsize=10)
    return fig


def grid_map_figure(info) -> Figure:
    """Fig. 4.4: grid points coloured by ring (initial grid, extension 1, 2, …), the initial grid
    outlined, the prior starred; hollow where some condition has no result."""
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(6.4, 6.0), layout="constrained")
    ax = fig.subplots()
    for k in range(info.rings + 1):
        colour = info.ring_colour(k)
        sel = info.ring == k
        full = sel & (info.measured >= info.n_conditions)
        part = sel & (info.measured < info.n_conditions)
        if full.any():
            ax.scatter(info.wd[full], info.lr[full], s=70, color=colour, label=info.ring_label(k))
        if part.any():
            ax.scatter(info.wd[part], info.lr[part], s=70, facecolors="none", edgecolors=colour, lw=1.8,
                       label=info.ring_label(k) + " (not every condition)")
    if info.initial_box is not None:
        wd_lo, wd_hi, lr_lo, lr_hi = info.initial_box
        pad = 0.5 * (min(np.diff(np.unique(info.wd))) if len(np.unique(info.wd)) > 1 else 0.2)
        ax.add_patch(Rectangle((wd_lo - pad, lr_lo - pad), wd_hi - wd_lo + 2 * pad, lr_hi - lr_lo + 2 * pad,
                               fill=False, ls=":", lw=1.3, edgecolor=info.ring_colour(0)))
    if info.prior is not None:
        ax.plot([info.prior[0]], [info.prior[1]], marker="*", ms=16, color="red", mec="white", ls="none",
                label="prior")
    ax.set_xticks(info.wd_ticks[0], info.wd_ticks[1], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(info.lr_ticks[0], info.lr_ticks[1], fontsize=7)
    ax.set_xlabel("weight decay")
    ax.set_ylabel("learning rate")
    ax.set_facecolor("#f4f4f4")
    _figure_legend(fig, [ax])
    ax.set_title(info.title, fontsize=8, wrap=True)
    return fig


def pooled_risk_figure(info) -> Figure:
    """Fig. 4.5 over several studies: d and dᴿ boxes grouped by architecture, coloured by method."""
    positions, x, arch_centres = [], 0.0, []
    last = None
    for box in info.boxes:
        if last is not None and box.architecture != last:
            x += 1.0  # a gap between architectures
        x += 1.0
        positions.append(x)
        last = box.architecture
    for arch in info.architectures:
        xs = [p for p, b in zip(positions, info.boxes) if b.architecture == arch]
        arch_centres.append((float(np.mean(xs)), arch))
    fig = Figure(figsize=(max(7.0, 0.55 * len(positions) * 2 + 2.0), 5.0), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, attr, title, unit in ((axes[0], "d", "performance risk d", f"d ({info.metric} points)"),
                                  (axes[1], "dR", "relative performance risk dᴿ", "dᴿ (% of the condition's best)")):
        data = [list(getattr(b, attr)) if len(getattr(b, attr)) else [np.nan] for b in info.boxes]
        parts = ax.boxplot(data, positions=positions, patch_artist=True, showmeans=True, meanline=True,
                           meanprops=dict(color="black", ls="--", lw=1.2), medianprops=dict(color="black", lw=1.2))
        for patch, box in zip(parts["boxes"], info.boxes):
            patch.set_facecolor(box.colour)
        ax.set_xticks(positions, [b.label for b in info.boxes], rotation=40, ha="right", fontsize=7)
        for centre, arch in arch_centres:
            ax.annotate(arch, (centre, 1.0), xycoords=("data", "axes fraction"), xytext=(0, 4),
                        textcoords="offset points", ha="center", fontsize=8, weight="bold")
        ax.set_title(title, pad=16)
        ax.set_ylabel(unit)
    from matplotlib.patches import Patch

    methods = dict.fromkeys(b.method for b in info.boxes)
    fig.legend([Patch(facecolor=next(b.colour for b in info.boxes if b.method == m)) for m in methods],
               ["basemodel" if m == "none" else f"{m} pruning" for m in methods], loc="outside lower center",
               ncols=len(methods), fontsize=8, facecolor=LEGEND_BG, framealpha=1.0)
    fig.suptitle(info.title + "\nbox: quartiles; solid line: median; dashed line: mean", fontsize=9)
    return fig
