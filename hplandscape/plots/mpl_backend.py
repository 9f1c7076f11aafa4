"""Static matplotlib figures (PNG/PDF) of an analysed study.

Figures are built with :class:`matplotlib.figure.Figure` directly, not through ``pyplot``: nothing
here touches global state (no style, no backend switch, no open-figure registry), so calling these
functions inside a notebook or a server cannot change anyone else's plots.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from hplandscape.analysis.info import StudyAnalysis
from hplandscape.plots.info import (PanelInfo, WidthInfo, frontier_plot_info, landscape_info, panel_info,
                                    ratio_plot_info, risk_plot_info)

CMAP = "viridis"
_BASE_COLOUR, _PRUNED_COLOUR = "#1f3b73", "#7fa7d9"


def _levels(panel: PanelInfo) -> np.ndarray:
    return np.linspace(panel.zmin, panel.zmax, 13)


def _decorate(ax, panel: PanelInfo, legend: bool) -> None:
    for e in panel.ellipses:
        # dashed: the ROI touches the grid edge, so the grid cuts the ellipse off
        ax.plot(e.wd, e.lr, color=e.colour, lw=2.2, ls="--" if e.truncated else "-", label=e.name)
        if e.centre_ci is not None:  # the centre's 95 % interval over seeds
            wd_lo, wd_hi, lr_lo, lr_hi = e.centre_ci
            cw, cl = e.centre
            ax.errorbar([cw], [cl], xerr=[[max(cw - wd_lo, 0.0)], [max(wd_hi - cw, 0.0)]],
                        yerr=[[max(cl - lr_lo, 0.0)], [max(lr_hi - cl, 0.0)]], color=e.colour, lw=1.2,
                        capsize=3, marker="+", ms=7, ls="none", label=f"{e.label} centre, 95 % CI")
    wd, lr, _ = panel.best
    ax.plot([wd], [lr], marker="*", ms=15, color="red", mec="white", ls="none", label="best point")
    ax.set_xticks(panel.wd_ticks[0], panel.wd_ticks[1], rotation=60, fontsize=7)
    ax.set_yticks(panel.lr_ticks[0], panel.lr_ticks[1], fontsize=7)
    ax.set_xlim(*panel.wd_range)
    ax.set_ylim(*panel.lr_range)
    ax.set_xlabel("weight decay")
    ax.set_ylabel("learning rate")
    ax.set_facecolor("#dddddd")
    if legend or any(e.truncated for e in panel.ellipses):  # say what a dashed outline means
        ax.legend(loc="lower left", fontsize=7, framealpha=0.8)


def draw_contour(ax, panel: PanelInfo, legend: bool = False):
    """Interpolated contour of one panel on ``ax``; returns the mappable for a colour bar."""
    m = ax.contourf(panel.mesh_wd, panel.mesh_lr, np.ma.masked_invalid(panel.mesh_z), levels=_levels(panel),
                    cmap=CMAP, vmin=panel.zmin, vmax=panel.zmax)
    _decorate(ax, panel, legend)
    return m


def draw_scatter(ax, panel: PanelInfo, legend: bool = False):
    """Measured points of one panel on ``ax`` (diverged points as crosses)."""
    ok = ~panel.diverged
    m = ax.scatter(panel.wd[ok], panel.lr[ok], c=panel.top1[ok], cmap=CMAP, vmin=panel.zmin, vmax=panel.zmax,
                   s=45, edgecolors="grey", linewidths=0.4)
    if panel.diverged.any():
        ax.scatter(panel.wd[panel.diverged], panel.lr[panel.diverged],
                   marker="x", c="black", s=40, label="diverged")
    _decorate(ax, panel, legend)
    return m


def condition_panel(result: StudyAnalysis, condition: str) -> Figure:
    """Contour (left) and scatter (right) of one condition."""
    panel = panel_info(result, condition)
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    axes = fig.subplots(1, 2)
    m = draw_contour(axes[0], panel, legend=True)
    draw_scatter(axes[1], panel)
    axes[0].set_title("interpolated contour")
    axes[1].set_title("measured points")
    fig.colorbar(m, ax=axes, label="top-1 (%)")
    fig.suptitle(panel.title)
    return fig


def landscape_figure(result: StudyAnalysis) -> Figure:
    """One column per condition: contour on top, scatter below, one shared colour bar."""
    info = landscape_info(result)
    n = len(info.panels)
    fig = Figure(figsize=(3.4 * n + 1.2, 7.2), layout="constrained")
    axes = np.atleast_2d(fig.subplots(2, n, squeeze=False))
    m = None
    for i, panel in enumerate(info.panels):
        m = draw_contour(axes[0, i], panel, legend=i == 0)
        draw_scatter(axes[1, i], panel)
        axes[0, i].set_title(panel.title, fontsize=9)
    fig.colorbar(m, ax=axes, label="top-1 (%)", shrink=0.8)
    fig.suptitle(f"top-1 landscapes (colours: top 15 % of observations, {info.zmin:.2f}–{info.zmax:.2f})")
    return fig


def risk_boxplot(result: StudyAnalysis) -> Figure:
    """Box plots of d and d^R over the basemodel's 0.5-ROI, one box per condition."""
    info = risk_plot_info(result)
    fig = Figure(figsize=(max(6.0, 1.6 * len(info.conditions) * 2), 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, values, title in ((axes[0], info.d, "performance risk d (points)"),
                              (axes[1], info.dR, "relative performance risk dᴿ")):
        data = [list(v) if len(v) else [np.nan] for v in values]
        parts = ax.boxplot(data, patch_artist=True)
        for patch, name in zip(parts["boxes"], info.conditions):
            patch.set_facecolor(_BASE_COLOUR if name == info.base else _PRUNED_COLOUR)
        ax.set_xticks(range(1, len(info.conditions) + 1), info.conditions, rotation=30, ha="right")
        ax.set_title(title)
    cis = [(i + 1, ci) for i, ci in enumerate(info.d_mean_ci) if ci is not None]
    if cis:  # the mean risk and its 95 % interval over seeds, beside each box
        x = np.array([i for i, _ in cis]) + 0.3
        mean = np.array([ci[0] for _, ci in cis])
        err = np.array([[ci[0] - ci[1] for _, ci in cis], [ci[2] - ci[0] for _, ci in cis]])
        axes[0].errorbar(x, mean, yerr=np.maximum(err, 0.0), fmt="D", color="#d95f02", ms=5, capsize=4,
                         label="d_mean, 95 % CI over seeds")
        axes[0].legend(fontsize=7, loc="upper left")
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


def save(fig: Figure, path) -> None:
    """Save ``fig`` (PNG or PDF by suffix) atomically."""
    import io
    from pathlib import Path

    from hplandscape.atomic import write_bytes as write_bytes_atomic

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=110)
    write_bytes_atomic(path, buf.getvalue())


def to_png(fig: Figure, dpi: int = 110) -> bytes:
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
