"""width_info and its two renderers: the kept fraction of every prunable layer per pruned condition."""

import dataclasses

import pytest

from hplandscape.plots import mpl_backend, plotly_backend
from hplandscape.plots.figure_data import width_info
from hplandscape.pruning.arch_spec import ArchSpec

ORIGINAL = {"a": 16, "b": 32, "c": 64}


def _spec(widths, method="global", **settings):
    return ArchSpec(model="resnet20", num_classes=10, in_channels=3, input_shape=(3, 32, 32), method=method,
                    target_ratio=0.5, achieved_ratio=0.5, widths=dict(zip(ORIGINAL, widths)),
                    original_widths=dict(ORIGINAL), params=1, flops=1, original_params=2, original_flops=2,
                    source="random-init", init_seed=0, **settings)


SPECS = {"uniform-0.5": _spec([8, 16, 32], method="uniform"),
         "global-0.5": _spec([2, 24, 32], normalizer="mean", max_layer_prune=0.9)}


def test_width_info_fractions_caps_and_labels():
    info = width_info(SPECS)
    assert info.conditions == ("uniform-0.5", "global-0.5") and info.layers == ("a", "b", "c")
    assert info.fractions == ((0.5, 0.5, 0.5), (0.125, 0.75, 0.5))
    assert info.min_fraction == (0.5, 0.125)
    assert info.caps[0] is None and info.caps[1] == pytest.approx(0.1)
    assert info.labels == ("uniform-0.5 (uniform, 50% FLOPs)", "global-0.5 (global, 50% FLOPs, normalizer mean)")


def test_width_info_refuses_nothing_and_mixed_architectures():
    with pytest.raises(ValueError, match="at least one"):
        width_info({})
    other = dataclasses.replace(SPECS["global-0.5"], original_widths={"x": 16, "b": 32, "c": 64},
                                widths={"x": 2, "b": 24, "c": 32})
    with pytest.raises(ValueError, match="'other' has other prunable layers"):
        width_info({"global-0.5": SPECS["global-0.5"], "other": other})


def test_both_renderers_draw_one_line_per_condition_and_the_cap(tmp_path):
    info = width_info(SPECS)
    fig = plotly_backend.width_figure(info)
    assert [t.name for t in fig.data] == list(info.labels)
    assert list(fig.data[1].y) == list(info.fractions[1])
    assert len(fig.layout.shapes) == 1 and fig.layout.shapes[0].y0 == pytest.approx(0.1)
    static = mpl_backend.width_figure(info)
    ax = static.axes[0]
    assert len(ax.lines) == 2 + 1  # two conditions, one cap line
    mpl_backend.save(static, tmp_path / "w.png")
    assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"
