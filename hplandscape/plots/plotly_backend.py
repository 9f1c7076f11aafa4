"""Interactive Plotly figures of an analysed study."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hplandscape.analysis.info import StudyAnalysis
from hplandscape.plots.info import (PanelInfo, WidthInfo, frontier_plot_info, landscape_info, panel_info,
                                    ratio_plot_info, risk_plot_info)

COLOURSCALE = "Viridis"
_BASE_COLOUR, _PRUNED_COLOUR = "#1f3b73", "#7fa7d9"  # thesis Fig. 4.5: basemodel darker


def _axis_labels(fig: go.Figure, panel: PanelInfo, row: int, col: int) -> None:
    fig.update_xaxes(tickvals=list(panel.wd_ticks[0]), ticktext=list(panel.wd_ticks[1]), title_text="weight decay",
                     range=list(panel.wd_range), row=row, col=col)
    fig.update_yaxes(tickvals=list(panel.lr_ticks[0]), ticktext=list(panel.lr_ticks[1]), title_text="learning rate",
                     range=list(panel.lr_range), row=row, col=col)


def _overlays(fig: go.Figure, panel: PanelInfo, row: int, col: int, legend: bool) -> None:
    for e in panel.ellipses:
        # dashed: the ROI touches the grid edge, so the grid cuts the ellipse off
        hover = e.name + (f" (touches {', '.join(e.truncated)}: extend the grid)" if e.truncated else "")
        fig.add_trace(go.Scatter(x=e.wd, y=e.lr, mode="lines",
                                 line=dict(color=e.colour, width=2.5, dash="dash" if e.truncated else "solid"),
                                 name=e.name, legendgroup=e.label, showlegend=legend or bool(e.truncated),
                                 hovertext=hover, hoverinfo="text"), row=row, col=col)
        if e.centre_ci is not None:  # the centre's 95 % interval over seeds
            wd_lo, wd_hi, lr_lo, lr_hi = e.centre_ci
            cw, cl = e.centre
            fig.add_trace(go.Scatter(
                x=[cw], y=[cl], mode="markers", marker=dict(symbol="cross-thin", size=8, color=e.colour,
                                                            line=dict(color=e.colour, width=1.5)),
                error_x=dict(type="data", symmetric=False, array=[max(wd_hi - cw, 0.0)],
                             arrayminus=[max(cw - wd_lo, 0.0)], color=e.colour),
                error_y=dict(type="data", symmetric=False, array=[max(lr_hi - cl, 0.0)],
                             arrayminus=[max(cl - lr_lo, 0.0)], color=e.colour),
                name=f"{e.label} centre, 95 % CI", legendgroup=e.label, showlegend=False,
                hovertemplate=f"{e.label} centre: wd [{10 ** wd_lo:.3g}, {10 ** wd_hi:.3g}], "
                              f"lr [{10 ** lr_lo:.3g}, {10 ** lr_hi:.3g}] (95 % CI)<extra></extra>"),
                row=row, col=col)
    wd, lr, top1 = panel.best
    fig.add_trace(go.Scatter(x=[wd], y=[lr], mode="markers", name="best point", legendgroup="best",
                             showlegend=legend, marker=dict(symbol="star", size=14, color="red",
                                                            line=dict(color="white", width=1)),
                             hovertemplate=f"best: top-1 {top1:.2f}<br>lr %{{customdata[0]:.3g}}, "
                                           f"wd %{{customdata[1]:.3g}}<extra></extra>",
                             customdata=[[10 ** lr, 10 ** wd]]), row=row, col=col)


def _contour(fig, panel: PanelInfo, row: int, col: int, colorbar: bool = False) -> None:
    # Each trace carries the same explicit colour range instead of a shared layout coloraxis:
    # plotly.js rejects a coloraxis linking contours and markers and warns in an endless loop.
    fig.add_trace(go.Contour(x=panel.mesh_wd, y=panel.mesh_lr, z=panel.mesh_z, colorscale=COLOURSCALE,
                             zmin=panel.zmin, zmax=panel.zmax, zauto=False, autocontour=False,
                             contours=dict(start=panel.zmin, end=panel.zmax,
                                           size=(panel.zmax - panel.zmin) / 12),
                             showscale=colorbar, colorbar=dict(title="top-1 (%)"),
                             name=panel.condition, hoverinfo="skip", showlegend=False), row=row, col=col)


def _scatter(fig, panel: PanelInfo, row: int, col: int, legend: bool) -> None:
    custom = np.column_stack([10 ** panel.lr, 10 ** panel.wd])
    fig.add_trace(go.Scatter(
        x=panel.wd, y=panel.lr, mode="markers", name="runs (mean over seeds)", legendgroup="runs",
        showlegend=legend, customdata=custom,
        marker=dict(color=np.clip(panel.top1, panel.zmin, panel.zmax), colorscale=COLOURSCALE, cmin=panel.zmin,
                    cmax=panel.zmax, showscale=False, size=11,
                    symbol=np.where(panel.diverged, "x", "circle"), line=dict(color="grey", width=0.5)),
        text=[f"top-1 {v:.2f}" + (" (diverged)" if d else "") for v, d in zip(panel.top1, panel.diverged)],
        hovertemplate="%{text}<br>lr %{customdata[0]:.3g}, wd %{customdata[1]:.3g}<extra></extra>"),
        row=row, col=col)


def _layout(fig) -> None:
    fig.update_layout(plot_bgcolor="#dddddd",
                      legend=dict(orientation="h", yanchor="bottom", y=-0.18, x=0))


def condition_panel(result: StudyAnalysis, condition: str) -> go.Figure:
    """Contour (left) and scatter (right) of one condition, ellipses and best point on top."""
    panel = panel_info(result, condition)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("interpolated contour", "measured points"))
    _contour(fig, panel, 1, 1, colorbar=True)
    _scatter(fig, panel, 1, 2, legend=True)
    for col in (1, 2):
        _overlays(fig, panel, 1, col, legend=col == 1)
        _axis_labels(fig, panel, 1, col)
    _layout(fig)
    fig.update_layout(title=panel.title, height=480, width=980)
    return fig


def landscape_figure(result: StudyAnalysis) -> go.Figure:
    """The whole study: one column per condition, contour on top, scatter below, shared colours."""
    info = landscape_info(result)
    n = len(info.panels)
    fig = make_subplots(rows=2, cols=n, subplot_titles=[p.title for p in info.panels] + [""] * n,
                        horizontal_spacing=0.04, vertical_spacing=0.12)
    for i, panel in enumerate(info.panels, start=1):
        _contour(fig, panel, 1, i, colorbar=i == 1)
        _scatter(fig, panel, 2, i, legend=i == 1)
        for row in (1, 2):
            _overlays(fig, panel, row, i, legend=(i == 1 and row == 1))
            _axis_labels(fig, panel, row, i)
    _layout(fig)
    fig.update_layout(height=820, width=max(700, 340 * n),
                      title=f"top-1 landscapes; colours cover the top 15 % of all observations "
                            f"({info.zmin:.2f}–{info.zmax:.2f})")
    return fig


def risk_boxplot(result: StudyAnalysis) -> go.Figure:
    """Box plots of d and d^R over the basemodel's 0.5-ROI, one box per condition."""
    info = risk_plot_info(result)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("performance risk d (points)",
                                                        "relative performance risk dᴿ"))
    for col, values in ((1, info.d), (2, info.dR)):
        for name, v in zip(info.conditions, values):
            colour = _BASE_COLOUR if name == info.base else _PRUNED_COLOUR
            fig.add_trace(go.Box(y=list(v), name=name, marker_color=colour, boxpoints="all", jitter=0.3,
                                 showlegend=False), row=1, col=col)
    cis = [(name, ci) for name, ci in zip(info.conditions, info.d_mean_ci) if ci is not None]
    if cis:  # the mean risk and its 95 % interval over seeds
        fig.add_trace(go.Scatter(
            x=[n for n, _ in cis], y=[ci[0] for _, ci in cis], mode="markers", name="d_mean, 95 % CI over seeds",
            marker=dict(symbol="diamond", size=9, color="#d95f02"),
            error_y=dict(type="data", symmetric=False, array=[max(ci[2] - ci[0], 0.0) for _, ci in cis],
                         arrayminus=[max(ci[0] - ci[1], 0.0) for _, ci in cis], color="#d95f02"),
            hovertemplate="%{x}: d_mean %{y:.3f}<extra>95 % CI over seeds</extra>"), row=1, col=1)
    fig.update_layout(height=450, width=max(700, 180 * len(info.conditions)),
                      title=f"risk of keeping the basemodel's {result.risk_x:g}-ROI settings")
    return fig


def frontier_figure(result: StudyAnalysis) -> go.Figure:
    """Top-1 over FLOPs: re-tuned and at-the-prior points with their Pareto fronts."""
    info = frontier_plot_info(result)
    fig = go.Figure()
    best, prior = info.series
    for name, x, y in zip(prior.names, prior.flops, prior.top1):  # what re-tuning buys, per condition
        fig.add_trace(go.Scatter(x=[x, x], y=[y, best.top1[best.names.index(name)]], mode="lines",
                                 line=dict(color="grey", width=1), showlegend=False, hoverinfo="skip"))
    for s in info.series:
        fig.add_trace(go.Scatter(x=s.front_flops, y=s.front_top1, mode="lines", line_shape="hv",
                                 line=dict(color=s.colour, width=1.5, dash="dot"), name=f"Pareto front, {s.kind}",
                                 hoverinfo="skip"))
        marker = (dict(color=s.colour, size=10, symbol="circle") if s.kind == "best" else
                  dict(color="rgba(0,0,0,0)", size=12, symbol="diamond", line=dict(color=s.colour, width=2)))
        fig.add_trace(go.Scatter(x=s.flops, y=s.top1, mode="markers+text" if s.kind == "best" else "markers",
                                 text=list(s.names), textposition="top center",
                                 textfont=dict(size=10, color=s.colour), marker=marker, name=s.label,
                                 hovertemplate="%{text}: top-1 %{y:.2f}, %{x:.3g} FLOPs<extra></extra>"))
    fig.update_xaxes(type="log", title_text="FLOPs per image (log scale)")
    fig.update_yaxes(title_text="top-1 (%)")
    fig.update_layout(title=info.title + (f" ({info.note})" if info.note else "")
                      + "<br><sup>grey: the same condition re-tuned and at the prior</sup>", height=500, width=860,
                      legend=dict(orientation="h", yanchor="bottom", y=-0.3, x=0))
    return fig


def ratio_curve_figure(result: StudyAnalysis) -> go.Figure:
    """One panel per pruning method: top-1 over r with the fitted curves and their 1-point drops."""
    info = ratio_plot_info(result)
    n = max(1, len(info.panels))
    fig = make_subplots(rows=1, cols=n, subplot_titles=[p.method for p in info.panels] or [""])
    for col, panel in enumerate(info.panels, start=1):
        for s in panel.series:
            drop = "" if s.r_drop is None else f"; 1-point drop at r = {s.r_drop:.2f}"
            fig.add_trace(go.Scatter(x=s.r, y=s.top1, mode="markers", text=list(s.names),
                                     marker=dict(color=s.colour, size=9) if s.kind == "best" else
                                     dict(color="rgba(0,0,0,0)", size=12, line=dict(color=s.colour, width=2)),
                                     name=s.label + drop, legendgroup=s.kind,
                                     showlegend=True,
                                     hovertemplate="%{text}: r %{x:.3f}, top-1 %{y:.2f}<extra></extra>"),
                          row=1, col=col)
            if len(s.curve_r):
                fig.add_trace(go.Scatter(x=s.curve_r, y=s.curve_top1, mode="lines", line=dict(color=s.colour),
                                         name=s.text, legendgroup=s.kind, showlegend=False,
                                         hovertemplate=s.text + "<extra></extra>"), row=1, col=col)
            if s.r_drop is not None:
                fig.add_vline(x=s.r_drop, line=dict(color=s.colour, dash="dash", width=1), row=1, col=col)
        fig.update_xaxes(title_text="r = fraction of FLOPs pruned", row=1, col=col)
        fig.update_yaxes(title_text="top-1 (%)", row=1, col=col)
    fig.update_layout(title=info.title + "; dashed: 1 point below acc_p", height=460, width=max(700, 480 * n),
                      legend=dict(orientation="h", yanchor="bottom", y=-0.3, x=0))
    return fig


def width_figure(info: WidthInfo) -> go.Figure:
    """Kept fraction of every prunable layer, one line per pruned condition; dotted: each cap."""
    fig = go.Figure()
    x = list(range(len(info.layers)))
    for label, fractions in zip(info.labels, info.fractions):
        fig.add_trace(go.Scatter(x=x, y=list(fractions), mode="lines+markers", name=label,
                                 customdata=list(info.layers),
                                 hovertemplate="%{customdata}: %{y:.3f}<extra></extra>"))
    for cap in sorted({c for c in info.caps if c is not None}):
        fig.add_hline(y=cap, line=dict(color="grey", dash="dot"),
                      annotation_text=f"cap: every layer keeps ≥ {cap:.0%}", annotation_position="bottom right")
    fig.update_xaxes(tickvals=x, ticktext=list(info.layers), tickangle=60, title_text="prunable layer")
    fig.update_yaxes(range=[0, 1.05], title_text="kept fraction of channels")
    fig.update_layout(height=480, width=max(700, 24 * len(x) + 200),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
                      title="kept fraction per prunable layer")
    return fig
