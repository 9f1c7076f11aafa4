"""The seeds-per-point maps: both renderers draw a ReplicationInfo, one panel per condition, the
count in every cell, on the landscape figures' plane (weight decay across, learning rate up)."""

import pytest

from hplandscape import analysis
from hplandscape.analysis.example import synthetic_adaptive_results
from hplandscape.analysis.replication_info import ReplicationInfo
from hplandscape.plots.seed_maps import seed_map_mpl, seed_map_plotly


@pytest.fixture(scope="module")
def info():
    return analysis.analyze(synthetic_adaptive_results(), n_boot=99).replication


def test_matplotlib_draws_a_panel_per_condition_with_every_count(info):
    fig = seed_map_mpl(info)
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title().split(":")[0] for ax in axes] == ["base", "uniform-0.6", "global-0.4"]
    base = info.condition("base")
    texts = [t.get_text() for t in axes[0].texts]
    assert len(texts) == 81 and texts.count("3") == int((base.array == 3).sum())
    assert axes[0].get_xlabel() == "weight decay" and axes[0].get_ylabel() == "learning rate"
    assert axes[0].images[0].get_array().shape == (len(base.log10_lr), len(base.log10_wd))


def test_plotly_draws_the_same_counts_on_an_integer_scale(info):
    fig = seed_map_plotly(info)
    maps = [t for t in fig.data if t.type == "heatmap"]
    assert len(maps) == 3
    assert [list(r) for r in maps[0].z] == [list(r) for r in info.condition("base").counts]
    assert maps[0].texttemplate == "%{z}"
    assert (maps[0].zmin, maps[0].zmax) == (-0.5, 3.5)  # one colour per count 0 … 3
    assert list(maps[0].colorbar.tickvals) == [0, 1, 2, 3]


def test_nothing_to_draw_is_an_error_not_an_empty_figure():
    with pytest.raises(ValueError):
        seed_map_mpl(ReplicationInfo((), 3))
    with pytest.raises(ValueError):
        seed_map_plotly(ReplicationInfo((), 3))
