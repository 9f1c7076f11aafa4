"""Maps of how many seeds each grid point got, one small panel per condition, in both back ends.

Both render the same :class:`~hplandscape.analysis.replication_info.ReplicationInfo` (the
analysis's :attr:`~hplandscape.analysis.study_analysis.StudyAnalysis.replication`): a heat map of
the seeds per point on the plane of the landscape figures (weight decay across, learning rate
up), one discrete colour per count from 0 to the study's seeds so that panels compare, and the
count written in each cell. An adaptive design's map shows where its rounds added seeds.
"""

from __future__ import annotations

import math

import numpy as np

from hplandscape.analysis.replication_info import ReplicationInfo
from hplandscape.plots.figure_data import real_label

CMAP = "Blues"
_COLUMNS = 4  # panels per row: wider studies wrap
# Text darker than the cell on the light counts, white on the dark ones
_DARK_TEXT, _LIGHT_TEXT = "#1a1a1a", "white"


def _levels(info: ReplicationInfo) -> int:
    """The top of the colour scale: the study's seeds (or the most any point got, if more)."""
    return max(1, info.n_seeds, info.max_count)


def _colours(top: int) -> list:
    """One hex colour per count 0 … ``top``, light to dark (0 nearly white: a point never run)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps[CMAP]
    return [to_hex(cmap(0.05 + 0.9 * k / top)) for k in range(top + 1)]


def _title(c) -> str:
    return f"{c.condition}: {c.used} of {c.full} runs" + (f", {c.rounds} rounds" if c.rounds > 1 else "")


def _shape(info: ReplicationInfo) -> tuple:
    n = len(info.conditions)
    cols = min(_COLUMNS, n)
    return math.ceil(n / cols), cols


def seed_map_mpl(info: ReplicationInfo):
    """matplotlib :class:`~matplotlib.figure.Figure`: seeds per grid point per condition."""
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure

    if not info.conditions:
        raise ValueError("no condition to draw seeds per point for")
    top = _levels(info)
    colours = _colours(top)
    cmap, norm = ListedColormap(colours), BoundaryNorm(np.arange(-0.5, top + 1.0), top + 1)
    rows, cols = _shape(info)
    first = info.conditions[0]
    size = 0.32 * max(len(first.log10_wd), len(first.log10_lr)) + 1.4  # inches per panel, cells of ~0.3″
    fig = Figure(figsize=(size * cols + 1.2, size * rows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    image = None
    for ax, c in zip(axes, info.conditions):
        z = c.array
        image = ax.imshow(z, origin="lower", cmap=cmap, norm=norm, aspect="equal")
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                ax.text(j, i, str(z[i, j]), ha="center", va="center", fontsize=6,
                        color=_LIGHT_TEXT if z[i, j] > top / 2 else _DARK_TEXT)
        ax.set_xticks(range(len(c.log10_wd)), [real_label(v) for v in c.log10_wd], rotation=60, fontsize=6)
        ax.set_yticks(range(len(c.log10_lr)), [real_label(v) for v in c.log10_lr], fontsize=6)
        ax.set_xlabel("weight decay", fontsize=8)
        ax.set_ylabel("learning rate", fontsize=8)
        ax.set_title(_title(c), fontsize=8)
    for ax in axes[len(info.conditions):]:
        ax.set_axis_off()
    bar = fig.colorbar(image, ax=list(axes[:len(info.conditions)]), ticks=range(top + 1), shrink=0.8)
    bar.set_label("seeds at the grid point")
    fig.suptitle(f"seeds per grid point ({info.design} design)", fontsize=10)
    return fig


def seed_map_plotly(info: ReplicationInfo):
    """Plotly figure: seeds per grid point per condition (hover: the point and its count)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not info.conditions:
        raise ValueError("no condition to draw seeds per point for")
    top = _levels(info)
    colours = _colours(top)
    # a step colour scale: count k fills [k/(top+1), (k+1)/(top+1)) of the range -0.5 … top+0.5
    scale = [[edge / (top + 1), colours[k]] for k in range(top + 1) for edge in (k, k + 1)]
    rows, cols = _shape(info)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_title(c) for c in info.conditions],
                        horizontal_spacing=0.06, vertical_spacing=0.16)
    for i, c in enumerate(info.conditions):
        r, col = i // cols + 1, i % cols + 1
        fig.add_trace(go.Heatmap(
            z=c.array.tolist(), x=[real_label(v) for v in c.log10_wd], y=[real_label(v) for v in c.log10_lr],
            zmin=-0.5, zmax=top + 0.5, colorscale=scale, texttemplate="%{z}", textfont=dict(size=9),
            xgap=1, ygap=1, showscale=i == 0,
            colorbar=dict(title="seeds", tickvals=list(range(top + 1)), len=0.8),
            hovertemplate="lr %{y}, wd %{x}: %{z} seed(s)<extra>" + c.condition + "</extra>"), row=r, col=col)
        fig.update_xaxes(title_text="weight decay", type="category", tickangle=-60, row=r, col=col)
        fig.update_yaxes(title_text="learning rate", type="category", row=r, col=col)
    fig.update_layout(height=330 * rows + 90, autosize=True, plot_bgcolor="white",
                      title=dict(text=f"seeds per grid point ({info.design} design)", x=0, xanchor="left"))
    return fig
