"""Maps of effective gradient flow over the (lr, wd) grid, one panel per condition, in both back ends.

Both render the same :class:`~hplandscape.analysis.egf_correlation.GradientFlowInfo` (from
:func:`hplandscape.analysis.egf_correlation.gradient_flow_info`): a heat map of log10 EGF_p per
condition on the plane of the landscape figures (weight decay across, learning rate up), one
colour range for all panels so they compare, Kendall's τ with the final top-1 in each title.
"""

from __future__ import annotations

import math

import numpy as np

from hplandscape.analysis.egf_correlation import GradientFlowInfo
from hplandscape.plots.figure_data import real_label

CMAP, COLOURSCALE = "magma", "Magma"


def _panels(info: GradientFlowInfo, p: int):
    maps = [m for m in info.maps if m.p == p]
    if not maps:
        raise ValueError(f"no EGF_{p} map to draw: {info.reason or 'no condition measured it'}")
    taus = {c.condition: c for c in info.correlations if c.p == p}
    logs = [np.log10(np.where(np.asarray(m.values, float) > 0, np.asarray(m.values, float), np.nan)) for m in maps]
    finite = np.concatenate([v[np.isfinite(v)] for v in logs]) if logs else np.array([])
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    return maps, logs, taus, (lo, hi if hi > lo else lo + 1e-9)


def _title(m, taus) -> str:
    c = taus.get(m.condition)
    if c is None or not math.isfinite(c.tau):
        return f"{m.condition} (τ: —)"
    return f"{m.condition} (τ = {c.tau:+.2f}, n = {c.n})"


def egf_map_mpl(info: GradientFlowInfo, p: int = 2):
    """matplotlib :class:`~matplotlib.figure.Figure`: log10 EGF_p per condition over the grid."""
    from matplotlib.figure import Figure

    maps, logs, taus, (lo, hi) = _panels(info, p)
    cols = min(3, len(maps))
    rows = math.ceil(len(maps) / cols)
    fig = Figure(figsize=(4.2 * cols + 1.0, 3.8 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    image = None
    for ax, m, z in zip(axes, maps, logs):
        image = ax.imshow(z, origin="lower", cmap=CMAP, vmin=lo, vmax=hi, aspect="auto")
        ax.set_xticks(range(len(m.log10_wd)), [real_label(v) for v in m.log10_wd], rotation=60, fontsize=7)
        ax.set_yticks(range(len(m.log10_lr)), [real_label(v) for v in m.log10_lr], fontsize=7)
        ax.set_xlabel("weight decay")
        ax.set_ylabel("learning rate")
        ax.set_title(_title(m, taus), fontsize=9)
    for ax in axes[len(maps):]:
        ax.set_axis_off()
    fig.colorbar(image, ax=list(axes[:len(maps)]), label=f"log10 EGF_{p} (mean over training)")
    fig.suptitle(f"effective gradient flow EGF_{p}; τ: Kendall's with the final top-1")
    return fig


def egf_map_plotly(info: GradientFlowInfo, p: int = 2):
    """Plotly figure: log10 EGF_p per condition over the grid (hover: the value in real units)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    maps, logs, taus, (lo, hi) = _panels(info, p)
    cols = min(3, len(maps))
    rows = math.ceil(len(maps) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_title(m, taus) for m in maps],
                        horizontal_spacing=0.08, vertical_spacing=0.18)
    for i, (m, z) in enumerate(zip(maps, logs)):
        r, c = i // cols + 1, i % cols + 1
        fig.add_trace(go.Heatmap(
            z=np.where(np.isfinite(z), z, None).tolist(), x=[real_label(v) for v in m.log10_wd],
            y=[real_label(v) for v in m.log10_lr], zmin=lo, zmax=hi, colorscale=COLOURSCALE,
            showscale=i == 0, colorbar=dict(title=f"log10 EGF_{p}"),
            hovertemplate="lr %{y}, wd %{x}: log10 EGF %{z:.3f}<extra>" + m.condition + "</extra>"), row=r, col=c)
        fig.update_xaxes(title_text="weight decay", type="category", row=r, col=c)
        fig.update_yaxes(title_text="learning rate", type="category", row=r, col=c)
    fig.update_layout(height=360 * rows + 80, width=max(520, 380 * cols + 120),
                      title=f"effective gradient flow EGF_{p} (mean over training); τ: Kendall's with the final top-1")
    return fig
