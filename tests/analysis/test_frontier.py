"""Pareto fronts and hypervolumes on the accuracy–FLOPs plane."""

import json

import pandas as pd
import pytest

from hplandscape import analysis
from hplandscape.analysis.example import synthetic_results
from hplandscape.analysis.frontier import frontier_info, hypervolume_2d, pareto_mask


def test_the_issue_check_values():
    assert hypervolume_2d([(0, 1), (1, 0)]) == pytest.approx(0.21)
    assert hypervolume_2d([(0, 1), (1, 0), (0.5, 0.5)]) == pytest.approx(0.46)


def test_dominated_and_out_of_reference_points_add_nothing():
    assert hypervolume_2d([(0, 1), (1, 0), (1, 1), (2, -1)]) == pytest.approx(0.21)
    assert hypervolume_2d([]) == 0.0
    assert hypervolume_2d([(0, 0)], reference=(1, 2)) == pytest.approx(2.0)


def test_pareto_mask_keeps_only_points_nobody_beats_on_both():
    assert pareto_mask([1, 2, 3, 2, 1], [80, 90, 85, 88, 80]).tolist() == [True, True, False, False, True]
    assert pareto_mask([1, float("nan")], [80, 99]).tolist() == [True, False]


def _table():
    """3×3 grid around the prior (lr 0.1, wd 1e-4); base: 92 at the prior, 80 elsewhere;
    pruned (1e7 FLOPs vs 1e8): 88 at the prior, its best 90 one step off it."""
    rows = []
    for name, method, ratio, flops, prior, best in (("base", "none", 1.0, 1e8, 92.0, None),
                                                     ("p", "global", 0.1, 1e7, 88.0, 90.0)):
        for i, lr in enumerate((-1.5, -1.0, -0.5)):
            for j, wd in enumerate((-4.5, -4.0, -3.5)):
                top1 = prior if (i, j) == (1, 1) else (best if best and (i, j) == (0, 2) else 80.0)
                rows.append({"condition": name, "method": method, "ratio": ratio, "lr": 10 ** lr, "wd": 10 ** wd,
                             "seed": 0, "top1": top1, "flops": flops, "params": flops / 100})
    return pd.DataFrame(rows)


def test_hand_computed_frontier_of_a_constructed_study():
    # normalised: log FLOPs 7 → 0, 8 → 1; error over {0.08, 0.10, 0.08, 0.12} → 0.08 ↦ 0, 0.12 ↦ 1.
    # re-tuned: base (1, 0), p (0, 0.5) → 1.1·0.6 + 0.1·0.5 = 0.71; at the prior: base (1, 0), p (0, 1) → 0.21
    result = analysis.analyze(_table())
    f = result.frontier
    assert result.prior.source == "grid centre" and (result.prior.lr, result.prior.wd) == pytest.approx((0.1, 1e-4))
    assert f.hypervolume_best == pytest.approx(0.71)
    assert f.hypervolume_prior == pytest.approx(0.21)
    assert f.retuning_gain == pytest.approx(0.5)
    assert f.log10_flops_range == pytest.approx((7.0, 8.0)) and f.error_range == pytest.approx((0.08, 0.12))
    p = {q.condition: q for q in f.points}
    assert (p["p"].best_top1, p["p"].prior_top1, p["p"].flops, p["p"].params) == (90.0, 88.0, 1e7, 1e5)
    assert all(q.on_best_front and q.on_prior_front for q in f.points)


def test_an_explicit_prior_moves_prior_top1_and_a_missing_prior_leaves_it_out():
    result = analysis.analyze(_table(), prior=(10 ** -1.5, 10 ** -3.5))  # the corner where p has 90
    assert result.prior.source == "argument"
    assert result.condition("p").prior_top1 == 90.0 and result.condition("base").prior_top1 == 80.0
    off = analysis.analyze(_table(), prior=(1.0, 1e-4))  # not on the grid
    assert all(c.prior_top1 is None for c in off.conditions)
    assert off.frontier.hypervolume_prior is None and off.frontier.hypervolume_best is not None


def test_json_contract_and_several_studies_on_one_plane():
    result = analysis.analyze(synthetic_results())
    doc = json.loads(json.dumps(analysis.to_json(result), allow_nan=False))
    f = doc["frontier"]
    assert set(f) == {"hypervolume_best", "hypervolume_prior", "points"}
    assert [p["condition"] for p in f["points"]] == list(result.names)
    assert all(set(p) == {"condition", "flops", "best_top1", "prior_top1"} for p in f["points"])
    assert f["hypervolume_best"] > f["hypervolume_prior"] > 0  # re-tuning buys something
    both = frontier_info([result, analysis.analyze(_table())])
    assert len(both.points) == 6 and {p.study for p in both.points} == {"<DataFrame>"}
    assert both.hypervolume_best is not None


def test_without_flops_the_hypervolumes_are_null_with_a_reason():
    result = analysis.analyze(synthetic_results().drop(columns=["flops"]))
    assert result.frontier.hypervolume_best is None and "flops" in result.frontier.reason
    assert analysis.to_json(result)["frontier"]["hypervolume_best"] is None
