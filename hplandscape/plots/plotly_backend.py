"""Interactive Plotly figures of an analysed study.

Figures size themselves to their container (no fixed width), so a report page never scrolls
sideways; legends sit below the axes' titles, in the figure's own margin.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hplandscape.analysis.notation import hp_log10_text
from hplandscape.analysis.study_analysis import StudyAnalysis
from hplandscape.plots.figure_data import (D_MEAN_RANGE, PENDING_COLOUR, PENDING_LABEL, PanelInfo, WidthInfo,
                                           common_best_label, frontier_plot_info, landscape_info, panel_info,
                                           ratio_plot_info, risk_plot_info)

COLOURSCALE = "Viridis"
_BASE_COLOUR, _PRUNED_COLOUR = "#1f3b73", "#7fa7d9"  # thesis Fig. 4.5: basemodel darker
_PLOT_BG = "#dddddd"
# A mid grey behind the legend: the white 1.0-ROI sample and the black 0.5-ROI sample both show on it
LEGEND_BG = "#a6a6a6"
_MAX_COLUMNS = 4  # condition columns per block of the study figure: wider studies wrap
CONFIG = {"displaylogo": False, "responsive": True}


def _panel_grid(names: list[str]) -> tuple[int, int, list[str]]:
    """Blocks of at most ``_MAX_COLUMNS`` columns, two rows per block (a panel over its
    companion): ``(blocks, columns, subplot titles)``, the lower row of each block untitled."""
    blocks = math.ceil(max(1, len(names)) / _MAX_COLUMNS)
    cols = math.ceil(max(1, len(names)) / blocks)
    titles = []
    for b in range(blocks):
        row = names[b * cols:(b + 1) * cols]
        titles += row + [""] * (cols - len(row)) + [""] * cols
    return blocks, cols, titles


def _legend() -> dict:
    """A horizontal legend in the bottom margin, clear of every axis title."""
    return dict(orientation="h", x=0, xanchor="left", y=0, yanchor="bottom", yref="container",
                bgcolor=LEGEND_BG, bordercolor="#777777", borderwidth=1, font=dict(size=11))


def _thin(ticks: tuple, keep_every: int) -> tuple:
    values, labels = ticks
    return tuple(values[::keep_every]), tuple(labels[::keep_every])


def _axis_labels(fig: go.Figure, panel: PanelInfo, row: int, col: int, *, x_title: bool = True,
                 y_title: bool = True, thin: int = 1) -> None:
    wd, lr = _thin(panel.wd_ticks, thin), _thin(panel.lr_ticks, thin)
    fig.update_xaxes(tickvals=list(wd[0]), ticktext=list(wd[1]), title_text="weight decay" if x_title else None,
                     range=list(panel.wd_range), tickangle=-45, row=row, col=col)
    fig.update_yaxes(tickvals=list(lr[0]), ticktext=list(lr[1]), title_text="learning rate" if y_title else None,
                     range=list(panel.lr_range), row=row, col=col)


def _overlays(fig: go.Figure, panel: PanelInfo, row: int, col: int, shown: set, best_name: str = None) -> None:
    """Ellipses, their centres' intervals and the best point(s); each legend entry once (``shown``
    holds the names already in the legend, so an ROI no panel draws is never listed)."""
    def legend(name: str) -> bool:
        new = name not in shown
        shown.add(name)
        return new

    for e in panel.ellipses:
        # dashed: the ROI touches the grid edge, so the grid cuts the ellipse off
        hover = e.name + (f" (touches {', '.join(e.truncated)}: extend the grid)" if e.truncated else "")
        fig.add_trace(go.Scatter(x=e.wd, y=e.lr, mode="lines",
                                 line=dict(color=e.colour, width=2.5, dash="dash" if e.truncated else "solid"),
                                 name=e.name, legendgroup=e.name, showlegend=legend(e.name),
                                 hovertext=hover, hoverinfo="text"), row=row, col=col)
        if e.centre_ci is not None:  # the centre's 95 % interval over seeds
            wd_lo, wd_hi, lr_lo, lr_hi = e.centre_ci
            cw, cl = e.centre
            name = f"{e.label} centre, 95 % CI"
            fig.add_trace(go.Scatter(
                x=[cw], y=[cl], mode="markers", marker=dict(symbol="cross-thin", size=8, color=e.colour,
                                                            line=dict(color=e.colour, width=1.5)),
                error_x=dict(type="data", symmetric=False, array=[max(wd_hi - cw, 0.0)],
                             arrayminus=[max(cw - wd_lo, 0.0)], color=e.colour),
                error_y=dict(type="data", symmetric=False, array=[max(lr_hi - cl, 0.0)],
                             arrayminus=[max(cl - lr_lo, 0.0)], color=e.colour),
                name=name, legendgroup=name, showlegend=legend(name),
                hovertemplate=f"{e.label} centre: wd [{hp_log10_text(wd_lo)}, {hp_log10_text(wd_hi)}], "
                              f"lr [{hp_log10_text(lr_lo)}, {hp_log10_text(lr_hi)}] (95 % CI)<extra></extra>"),
                row=row, col=col)
    ties = panel.best_ties or ((panel.best[0], panel.best[1]),)
    top1 = panel.best[2]
    fig.add_trace(go.Scatter(x=[t[0] for t in ties], y=[t[1] for t in ties], mode="markers",
                             name=best_name or panel.best_label, legendgroup="best", showlegend=legend("best"),
                             marker=dict(symbol="star", size=14, color="red", line=dict(color="white", width=1)),
                             text=[f"best: {top1:.2f} at lr {hp_log10_text(t[1])}, wd {hp_log10_text(t[0])}"
                                   + (f" ({len(ties)} tied)" if len(ties) > 1 else "") for t in ties],
                             hovertemplate="%{text}<extra></extra>"), row=row, col=col)


def _colorbar(fig: go.Figure, panel: PanelInfo, row: int, col: int, beside: bool) -> dict:
    """The colour bar of one panel: round ticks; ``beside`` places it right of that panel."""
    c = panel.colours
    bar = dict(title=dict(text=c.label, side="right"), tickvals=list(c.ticks), ticktext=list(c.tick_text),
               thickness=10, tickfont=dict(size=10))
    if beside:
        sub = fig.get_subplot(row, col)
        xd, yd = sub.xaxis.domain, sub.yaxis.domain
        bar.update(x=xd[1] + 0.004, xanchor="left", y=(yd[0] + yd[1]) / 2, yanchor="middle",
                   len=yd[1] - yd[0], lenmode="fraction")
    return bar


def _contour(fig, panel: PanelInfo, row: int, col: int, colorbar: bool = False, beside: bool = False) -> None:
    # Each trace carries its explicit colour range instead of a shared layout coloraxis:
    # plotly.js rejects a coloraxis linking contours and markers and warns in an endless loop.
    c = panel.colours
    fig.add_trace(go.Contour(x=panel.mesh_wd, y=panel.mesh_lr, z=panel.mesh_z, colorscale=COLOURSCALE,
                             zmin=c.zmin, zmax=c.zmax, zauto=False, autocontour=False,
                             contours=dict(start=c.zmin, end=c.zmax, size=c.step),
                             showscale=colorbar, colorbar=_colorbar(fig, panel, row, col, beside),
                             name=panel.condition, hoverinfo="skip", showlegend=False), row=row, col=col)


def _scatter(fig, panel: PanelInfo, row: int, col: int, shown: set) -> None:
    c = panel.colours
    name = "runs (mean over seeds)"
    text = [f"{c.label.split(' ')[0]} {v:.2f}" + (" (diverged)" if d else "")
            + f"<br>lr {hp_log10_text(y)}, wd {hp_log10_text(x)}"
            for v, d, x, y in zip(panel.top1, panel.diverged, panel.wd, panel.lr)]
    fig.add_trace(go.Scatter(
        x=panel.wd, y=panel.lr, mode="markers", name=name, legendgroup="runs", showlegend=name not in shown,
        marker=dict(color=np.clip(panel.top1, c.zmin, c.zmax), colorscale=COLOURSCALE, cmin=c.zmin,
                    cmax=c.zmax, showscale=False, size=11,
                    symbol=np.where(panel.diverged, "x", "circle"), line=dict(color="grey", width=0.5)),
        text=text, hovertemplate="%{text}<extra></extra>"), row=row, col=col)
    shown.add(name)
    if panel.pending:
        fig.add_trace(go.Scatter(
            x=[w for w, _ in panel.pending], y=[l for _, l in panel.pending], mode="markers", name=PENDING_LABEL,
            legendgroup="pending", showlegend=PENDING_LABEL not in shown,
            marker=dict(symbol="circle-open", size=11, color=PENDING_COLOUR, line=dict(width=1.5)),
            text=[f"pending: no record yet<br>lr {hp_log10_text(y)}, wd {hp_log10_text(x)}" for x, y in panel.pending],
            hovertemplate="%{text}<extra></extra>"), row=row, col=col)
        shown.add(PENDING_LABEL)


def _notes(fig: go.Figure, panel: PanelInfo, row: int, col: int) -> None:
    """What the panel does not draw, said on the panel (e.g. an ROI too small for an ellipse)."""
    if not panel.notes:
        return
    sub = fig.get_subplot(row, col)
    xref = sub.xaxis.plotly_name.replace("axis", "")  # "xaxis2" -> "x2"
    yref = sub.yaxis.plotly_name.replace("axis", "")
    fig.add_annotation(text="<br>".join(panel.notes), xref=f"{xref} domain", yref=f"{yref} domain", x=0.02, y=0.02,
                       xanchor="left", yanchor="bottom", showarrow=False, align="left",
                       font=dict(size=9, color="black"), bgcolor="rgba(255,255,255,0.85)")


def _layout(fig) -> None:
    fig.update_layout(plot_bgcolor=_PLOT_BG, legend=_legend(), autosize=True)


def condition_panel(result: StudyAnalysis, condition: str, scale: str = "condition") -> go.Figure:
    """Contour (left) and scatter (right) of one condition, ellipses and best point(s) on top."""
    panel = panel_info(result, condition, scale=scale)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("interpolated contour", "measured points"),
                        horizontal_spacing=0.1)
    _contour(fig, panel, 1, 1, colorbar=True, beside=True)
    shown: set = set()
    _scatter(fig, panel, 1, 2, shown)
    for col in (1, 2):
        _overlays(fig, panel, 1, col, shown)
        _axis_labels(fig, panel, 1, col, y_title=col == 1)
    _notes(fig, panel, 1, 1)
    _layout(fig)
    fig.update_layout(title=dict(text=panel.title, x=0, xanchor="left"), height=520,
                      margin=dict(t=70, b=150, l=70, r=40))
    return fig


def landscape_figure(result: StudyAnalysis, scale: str = "condition", pending: dict = None) -> go.Figure:
    """The whole study: per condition a column with the contour on top and the scatter below.

    ``scale="condition"`` gives each column its own colour bar; ``"shared"`` one for all.
    More than four conditions wrap into several blocks of columns. ``pending``: grid points of a
    study still running, drawn as pending (:func:`~hplandscape.plots.figure_data.landscape_info`).
    """
    info = landscape_info(result, scale=scale, pending=pending)
    blocks, cols, titles = _panel_grid([p.title for p in info.panels])
    own = scale == "condition"
    fig = make_subplots(rows=2 * blocks, cols=cols, subplot_titles=titles,
                        horizontal_spacing=0.11 if own else 0.07, vertical_spacing=0.13 / blocks)
    shown: set = set()
    best_name = common_best_label(info.panels)
    thin = 2 if cols >= 3 else 1  # narrow panels: every other tick, so labels never collide
    for i, panel in enumerate(info.panels):
        top, col = 2 * (i // cols) + 1, i % cols + 1
        _contour(fig, panel, top, col, colorbar=own or i == 0, beside=own)
        _scatter(fig, panel, top + 1, col, shown)
        for row in (top, top + 1):
            _overlays(fig, panel, row, col, shown, best_name)
            _axis_labels(fig, panel, row, col, y_title=col == 1, thin=thin)
        _notes(fig, panel, top, col)
    _layout(fig)
    fig.update_layout(height=120 + 700 * blocks, margin=dict(t=90, b=150, l=70, r=60),
                      title=dict(text=info.title, x=0, xanchor="left", font=dict(size=14)))
    return fig


def risk_boxplot(result: StudyAnalysis) -> go.Figure:
    """Box plots of d and dᴿ over the basemodel's 0.5-ROI, one box per condition.

    Each box shows the median (solid) and the mean (dashed): the text and Table 4.2 speak of
    means. dᴿ is in percent of the condition's best, as everywhere in the report.
    """
    info = risk_plot_info(result)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("performance risk d", "relative performance risk dᴿ"))
    for col, values in ((1, info.d), (2, info.dR)):
        for name, v in zip(info.conditions, values):
            colour = _BASE_COLOUR if name == info.base else _PRUNED_COLOUR
            fig.add_trace(go.Box(y=list(v), name=name, marker_color=colour, boxpoints="all", jitter=0.3,
                                 boxmean=True, showlegend=False,
                                 hovertemplate="%{x}: %{y:.3f}<extra></extra>"), row=1, col=col)
    cis = [(name, ci) for name, ci in zip(info.conditions, info.d_mean_ci) if ci is not None]
    if cis:  # the mean risk and its resampled 95 % range
        fig.add_trace(go.Scatter(
            x=[n for n, _ in cis], y=[ci[0] for _, ci in cis], mode="markers", name=D_MEAN_RANGE,
            marker=dict(symbol="diamond", size=9, color="#d95f02"),
            error_y=dict(type="data", symmetric=False, array=[max(ci[2] - ci[0], 0.0) for _, ci in cis],
                         arrayminus=[max(ci[0] - ci[1], 0.0) for _, ci in cis], color="#d95f02"),
            hovertemplate="%{x}: d_mean %{y:.3f}<extra>resampled 95 % range</extra>"), row=1, col=1)
    fig.update_yaxes(title_text=f"d ({info.metric} points)", row=1, col=1)
    fig.update_yaxes(title_text="dᴿ (% of the condition's best)", row=1, col=2)
    fig.update_layout(height=480, autosize=True, legend=_legend(), margin=dict(t=80, b=110),
                      title=dict(text=f"risk of keeping the basemodel's {result.risk_x:g}-ROI settings; "
                                      "box: quartiles, solid line: median, dashed line: mean", x=0, xanchor="left"))
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
                      + "<br><sup>grey: the same condition re-tuned and at the prior</sup>", height=500, autosize=True,
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
    fig.update_layout(title=info.title + "; dashed: 1 point below acc_p", height=460, autosize=True,
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
    fig.update_layout(height=520, autosize=True, margin=dict(t=110),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
                      title="kept fraction per prunable layer")
    return fig


# -- training curves, grid map, pooled risk ----------------------------------------------------


def curve_figure(info) -> go.Figure:
    """Loss (top) and accuracy (bottom: held-out solid, training dotted) per epoch,
    one column per condition; blue at the best point, orange at the prior; ✕ where a run diverged."""
    from hplandscape.plots.curves import ROLE_COLOURS

    blocks, cols, titles = _panel_grid([p.title for p in info.panels])
    fig = make_subplots(rows=2 * blocks, cols=cols, subplot_titles=titles, horizontal_spacing=0.07,
                        vertical_spacing=0.1 / blocks)
    shown: set = set()
    for i, panel in enumerate(info.panels):
        top, col = 2 * (i // cols) + 1, i % cols + 1
        for run in panel.runs:
            colour = ROLE_COLOURS[run.role]
            name = f"{run.label}" if len(info.panels) == 1 else ("at the best point" if run.role == "best"
                                                                else "at the prior")
            hover = f"{panel.condition}, {run.label}, seed {run.seed}"
            first = name not in shown
            shown.add(name)
            fig.add_trace(go.Scatter(x=run.epoch, y=run.train_loss, mode="lines", line=dict(color=colour, width=1.5),
                                     name=name, legendgroup=name, showlegend=first, hovertext=hover,
                                     hovertemplate="epoch %{x}: loss %{y:.3g}<extra>%{hovertext}</extra>"),
                          row=top, col=col)
            fig.add_trace(go.Scatter(x=run.epoch, y=run.val_acc, mode="lines", line=dict(color=colour, width=1.5),
                                     name=name, legendgroup=name, showlegend=False, hovertext=hover,
                                     hovertemplate="epoch %{x}: held-out %{y:.2f} %<extra>%{hovertext}</extra>"),
                          row=top + 1, col=col)
            fig.add_trace(go.Scatter(x=run.epoch, y=run.train_acc, mode="lines",
                                     line=dict(color=colour, width=1, dash="dot"), name=name, legendgroup=name,
                                     showlegend=False, hovertext=hover,
                                     hovertemplate="epoch %{x}: training %{y:.2f} %<extra>%{hovertext}</extra>"),
                          row=top + 1, col=col)
            if run.diverged_epoch is not None:
                finite = run.train_loss[np.isfinite(run.train_loss)]
                y = float(finite[-1]) if len(finite) else 1.0
                first = "diverged" not in shown
                shown.add("diverged")
                fig.add_trace(go.Scatter(x=[run.diverged_epoch], y=[y], mode="markers+text", text=["diverged"],
                                         textposition="top center", textfont=dict(color="red", size=10),
                                         marker=dict(symbol="x", size=12, color="red"), name="diverged (loss not finite)",
                                         legendgroup="diverged", showlegend=first,
                                         hovertemplate=f"{hover}: diverged at epoch {run.diverged_epoch}<extra></extra>"),
                              row=top, col=col)
        fig.update_yaxes(title_text="training loss" if col == 1 else None, rangemode="tozero", row=top, col=col)
        fig.update_yaxes(title_text="accuracy (%)" if col == 1 else None, row=top + 1, col=col)
        fig.update_xaxes(title_text="epoch", row=top + 1, col=col)
    fig.update_xaxes(dtick=_epoch_step(info), tick0=0)  # whole epochs
    fig.update_layout(height=120 + 620 * blocks, autosize=True, legend=_legend(), margin=dict(t=90, b=110),
                      title=dict(text="training curves per epoch; accuracy: held-out (solid) and training (dotted)",
                                 x=0, xanchor="left"))
    return fig


def _epoch_step(info) -> int:
    last = max((float(np.nanmax(r.epoch)) for p in info.panels for r in p.runs if len(r.epoch)), default=1.0)
    return max(1, int(math.ceil((last + 1) / 10)))


def grid_map_figure(info) -> go.Figure:
    """Fig. 4.4: grid points coloured by ring (initial grid, extension 1, 2, …), the initial grid
    outlined, the prior starred; hollow where some condition has no result."""
    fig = go.Figure()
    for k in range(info.rings + 1):
        sel = info.ring == k
        full = sel & (info.measured >= info.n_conditions)
        part = sel & (info.measured < info.n_conditions)
        colour = info.ring_colour(k)
        for mask, hollow in ((full, False), (part, True)):
            if not mask.any():
                continue
            text = [f"{info.ring_label(k)}: lr {hp_log10_text(b)}, wd {hp_log10_text(a)}; measured by {m} of "
                    f"{info.n_conditions} conditions" for a, b, m in zip(info.wd[mask], info.lr[mask], info.measured[mask])]
            fig.add_trace(go.Scatter(
                x=info.wd[mask], y=info.lr[mask], mode="markers", text=text, hovertemplate="%{text}<extra></extra>",
                name=info.ring_label(k) + (" (not every condition)" if hollow else ""),
                marker=dict(size=13, symbol="circle-open" if hollow else "circle", color=colour,
                            line=dict(color=colour, width=2))))
    if info.initial_box is not None:
        wd_lo, wd_hi, lr_lo, lr_hi = info.initial_box
        pad = 0.5 * (min(np.diff(np.unique(info.wd))) if len(np.unique(info.wd)) > 1 else 0.2)
        fig.add_shape(type="rect", x0=wd_lo - pad, x1=wd_hi + pad, y0=lr_lo - pad, y1=lr_hi + pad,
                      line=dict(color=info.ring_colour(0), dash="dot", width=1.5))
    if info.prior is not None:
        fig.add_trace(go.Scatter(x=[info.prior[0]], y=[info.prior[1]], mode="markers", name="prior",
                                 marker=dict(symbol="star", size=18, color="red", line=dict(color="white", width=1)),
                                 hovertemplate=f"prior: lr {hp_log10_text(info.prior[1])}, "
                                               f"wd {hp_log10_text(info.prior[0])}<extra></extra>"))
    fig.update_xaxes(tickvals=list(info.wd_ticks[0]), ticktext=list(info.wd_ticks[1]), title_text="weight decay",
                     tickangle=-45)
    fig.update_yaxes(tickvals=list(info.lr_ticks[0]), ticktext=list(info.lr_ticks[1]), title_text="learning rate")
    fig.update_layout(height=560, autosize=True, plot_bgcolor="#f4f4f4", legend=_legend(), margin=dict(t=80, b=130),
                      title=dict(text=info.title, x=0, xanchor="left", font=dict(size=13)))
    return fig


def pooled_risk_figure(info) -> go.Figure:
    """Fig. 4.5 over several studies: d and dᴿ boxes grouped by architecture, coloured by method."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("performance risk d", "relative performance risk dᴿ"))
    shown: set = set()
    for col, attr in ((1, "d"), (2, "dR")):
        for box in info.boxes:
            first = box.method not in shown
            shown.add(box.method)
            fig.add_trace(go.Box(x=[[box.architecture] * len(getattr(box, attr)), [box.label] * len(getattr(box, attr))],
                                 y=list(getattr(box, attr)), name=box.method if box.method != "none" else "basemodel",
                                 legendgroup=box.method, showlegend=first and col == 1, marker_color=box.colour,
                                 boxmean=True, boxpoints="all", jitter=0.3,
                                 hovertemplate=f"{box.architecture}, {box.label} ({', '.join(box.studies)}): "
                                               "%{y:.3f}<extra></extra>"), row=1, col=col)
    fig.update_yaxes(title_text=f"d ({info.metric} points)", row=1, col=1)
    fig.update_yaxes(title_text="dᴿ (% of the condition's best)", row=1, col=2)
    fig.update_layout(height=520, autosize=True, legend=_legend(), margin=dict(t=90, b=110), boxmode="overlay",
                      title=dict(text=info.title + "<br><sup>box: quartiles, solid line: median, dashed line: mean"
                                                   "</sup>", x=0, xanchor="left"))
    return fig
