"""Training curves, the grid map of Fig. 4.4 and the pooled risk of Fig. 4.5: their Info objects on
hand-made cases, and both renderers."""

import numpy as np
import pandas as pd
import pytest

from hplandscape import analysis
from hplandscape.plots import mpl_backend, plotly_backend
from hplandscape.plots.curves import curve_info
from hplandscape.plots.gridmap import grid_map_info
from hplandscape.plots.pooled import pooled_risk_info

AXIS_LR, AXIS_WD = (-2.0, -1.5, -1.0, -0.5, 0.0), (-5.0, -4.5, -4.0, -3.5, -3.0)


def _table(peaks=(("base", "none", 1.0, 95.0, (-1.0, -4.0)), ("global-0.5", "global", 0.5, 90.0, (-0.5, -4.5))),
           seeds=(0,)):
    rows = []
    for name, method, ratio, peak, (clr, cwd) in peaks:
        for seed in seeds:
            for a in AXIS_LR:
                for b in AXIS_WD:
                    rows.append({"condition": name, "method": method, "ratio": ratio, "lr": 10 ** a, "wd": 10 ** b,
                                 "seed": seed, "top1": peak - 4 * ((a - clr) ** 2 + (b - cwd) ** 2) + 0.01 * seed})
    return pd.DataFrame(rows)


def _record(condition, log10_lr, log10_wd, seed, epochs=4, diverge_at=None):
    history = []
    for e in range(epochs):
        loss = None if diverge_at is not None and e == diverge_at else 2.0 / (e + 1)
        history.append({"epoch": e, "lr": 10 ** log10_lr, "train_loss": loss, "train_acc": 40.0 + 10 * e,
                        "val_acc": 35.0 + 10 * e})
        if loss is None:
            break
    return {"condition": condition, "lr": 10 ** log10_lr, "wd": 10 ** log10_wd, "seed": seed,
            "history": history, "diverged": diverge_at is not None, "diverged_epoch": diverge_at}


@pytest.fixture(scope="module")
def result():
    return analysis.analyze(_table(seeds=(0, 1)), n_boot=99)


def test_curve_info_picks_the_best_point_and_the_prior_and_keeps_divergence(result):
    assert result.condition("global-0.5").best.log10_lr == -0.5 and result.prior.log10_lr == -1.0
    records = [_record("base", -1.0, -4.0, 0), _record("base", -1.0, -4.0, 1),
               _record("global-0.5", -0.5, -4.5, 0), _record("global-0.5", -1.0, -4.0, 0, diverge_at=2),
               _record("global-0.5", -2.0, -5.0, 0),  # neither best nor prior: not drawn
               {"condition": "global-0.5", "lr": 10 ** -0.5, "wd": 10 ** -4.5, "seed": 1}]  # no history
    info = curve_info(records, result)
    base, pruned = info.panels
    assert [(r.role, r.seed, r.label) for r in base.runs] == [("best", 0, "best = prior (lr 1.0e-1, wd 1.0e-4)"),
                                                               ("best", 1, "best = prior (lr 1.0e-1, wd 1.0e-4)")]
    assert [(r.role, r.seed) for r in pruned.runs] == [("best", 0), ("prior", 0)]
    diverged = pruned.runs[1]
    assert diverged.diverged_epoch == 2 and np.isnan(diverged.train_loss[2]) and len(diverged.epoch) == 3
    np.testing.assert_allclose(pruned.runs[0].val_acc, [35, 45, 55, 65])
    assert info.missing == ()  # seed 1 of global-0.5 has no history, but seed 0 does


def test_curve_info_says_where_no_history_exists(result):
    info = curve_info([_record("base", -1.0, -4.0, 0)], result)
    assert info.panels[1].runs == () and not info.empty
    assert info.missing == ("global-0.5: no record with a per-epoch history at its best point (best (lr 3.2e-1, "
                            "wd 3.2e-5))", "global-0.5: no record with a per-epoch history at its prior point "
                            "(prior (lr 1.0e-1, wd 1.0e-4))")
    assert curve_info([], result).empty


def test_curve_figures_mark_the_diverged_epoch(result, tmp_path):
    info = curve_info([_record("base", -1.0, -4.0, 0), _record("global-0.5", -0.5, -4.5, 0),
                       _record("global-0.5", -1.0, -4.0, 0, diverge_at=1)], result)
    fig = plotly_backend.curve_figure(info)
    marks = [t for t in fig.data if t.name == "diverged (loss not finite)"]
    assert len(marks) == 1 and list(marks[0].x) == [1] and marks[0].y[0] == pytest.approx(2.0)
    assert [a.text for a in fig.layout.annotations][:2] == ["base; best = prior", "global-0.5 (global, 50% FLOPs)"]
    static = mpl_backend.curve_figure(info)
    mpl_backend.save(static, tmp_path / "c.png", dpi=60)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_grid_map_rings_count_extensions_beyond_the_initial_grid(result):
    # initial grid: the middle 3 × 3, extended once on every side (lr -2.0 and 0.0, wd -5.0 and -3.0)
    info = grid_map_info(result, initial_log10_lr=(-1.5, -1.0, -0.5), initial_log10_wd=(-4.5, -4.0, -3.5))
    ring = {(w, l): r for w, l, r in zip(info.wd, info.lr, info.ring)}
    assert ring[(-4.0, -1.0)] == 0 and ring[(-3.5, -0.5)] == 0
    assert ring[(-4.0, 0.0)] == 1 and ring[(-5.0, -1.0)] == 1 and ring[(-5.0, 0.0)] == 1
    assert info.rings == 1 and info.initial_box == (-4.5, -3.5, -1.5, -0.5) and info.prior == (-4.0, -1.0)
    assert (info.measured == 2).all() and "1 extension ring" in info.title
    wide = grid_map_info(result, initial_log10_lr=(-1.0,), initial_log10_wd=(-4.0,))
    ring = {(w, l): r for w, l, r in zip(wide.wd, wide.lr, wide.ring)}
    assert ring[(-4.0, -1.0)] == 0 and ring[(-4.5, -1.0)] == 1 and ring[(-3.0, -2.0)] == 2 and wide.rings == 2
    unknown = grid_map_info(result)
    assert unknown.rings == 0 and unknown.initial_box is None and "unknown" in unknown.title


def test_grid_map_marks_points_not_every_condition_measured(tmp_path):
    table = _table()
    table = table[~((table["condition"] == "global-0.5") & (np.isclose(np.log10(table["lr"]), 0.0)))]
    result = analysis.analyze(table, n_boot=99)
    info = grid_map_info(result, AXIS_LR, AXIS_WD)
    assert int((info.measured < 2).sum()) == 5 and "5 points not measured by every condition" in info.title
    fig = plotly_backend.grid_map_figure(info)
    hollow = [t for t in fig.data if t.name and "not every condition" in t.name]
    assert len(hollow) == 1 and hollow[0].marker.symbol == "circle-open" and len(hollow[0].x) == 5
    mpl_backend.save(mpl_backend.grid_map_figure(info), tmp_path / "g.svg")
    assert b"<svg" in (tmp_path / "g.svg").read_bytes()[:400]


def test_pooled_risk_pools_one_architecture_and_keeps_others_apart(tmp_path):
    a = analysis.analyze(_table(), n_boot=99)
    b = analysis.analyze(_table(peaks=(("base", "none", 1.0, 94.0, (-1.0, -4.0)),
                                       ("global-0.5", "global", 0.5, 91.0, (-1.0, -4.5)))), n_boot=99)
    info = pooled_risk_info([("s1", "resnet20", a), ("s2", "resnet20", b), ("s3", "mobilenet_v2", a)])
    assert [(x.architecture, x.label, x.studies) for x in info.boxes] == [
        ("resnet20", "base", ("s1", "s2")), ("resnet20", "global 50 %", ("s1", "s2")),
        ("mobilenet_v2", "base", ("s3",)), ("mobilenet_v2", "global 50 %", ("s3",))]
    pooled = info.boxes[1]
    np.testing.assert_allclose(pooled.d, list(a.condition("global-0.5").risk.d) + list(b.condition("global-0.5").risk.d))
    np.testing.assert_allclose(pooled.dR, 100 * np.array(list(a.condition("global-0.5").risk.dR)
                                                         + list(b.condition("global-0.5").risk.dR)))
    fig = plotly_backend.pooled_risk_figure(info)
    assert len([t for t in fig.data if t.type == "box"]) == 8 and all(t.boxmean is True for t in fig.data)
    mpl_backend.save(mpl_backend.pooled_risk_figure(info), tmp_path / "p.png", dpi=60)
    top5 = analysis.analyze(_table().assign(top5=lambda d: d["top1"] + 3), metric="top5", n_boot=99)
    with pytest.raises(ValueError, match="different metrics"):
        pooled_risk_info([("s1", "r", a), ("s2", "r", top5)])
