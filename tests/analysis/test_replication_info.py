"""Seeds per grid point (ReplicationInfo): counts, runs against the full design, rounds, JSON,
and which absent runs the analysis calls missing under each design."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from hplandscape import analysis
from hplandscape.analysis.example import synthetic_adaptive_results, synthetic_replicate_results
from hplandscape.analysis.replication_info import describe_replication, replication_info
from hplandscape.errors import UserError

N_BOOT = 99  # the intervals are not under test here


def _runs(condition, cells, design=None):
    """Rows of ``condition``: ``cells`` maps (log10 lr, log10 wd) to [(seed, round), ...]."""
    rows = [{"condition": condition, "log10_lr": lr, "log10_wd": wd, "seed": s, "round": k}
            for (lr, wd), runs in cells.items() for s, k in runs]
    t = pd.DataFrame(rows)
    if design is not None:
        t["replicates"] = design
    return t


def test_counts_runs_rounds_and_saved_fraction_by_hand():
    # a 2 lr × 3 wd grid, seeds 0-2: "a" adaptive (seed 0 everywhere, seeds 1 and 2 at one point in
    # rounds 2 and 3, seed 1 at another in round 2), "b" one full row and one empty point
    a = _runs("a", {(-2.0, -5.0): [(0, 1)], (-2.0, -4.0): [(0, 1), (1, 2)], (-2.0, -3.0): [(0, 1)],
                    (-1.0, -5.0): [(0, 1)], (-1.0, -4.0): [(0, 1), (1, 2), (2, 3)], (-1.0, -3.0): [(0, 1)]},
              "adaptive")
    b = _runs("b", {(-2.0, -5.0): [(0, 1), (1, 1), (2, 1)], (-2.0, -4.0): [(0, 1), (1, 1), (2, 1)],
                    (-2.0, -3.0): [(0, 1), (1, 1), (2, 1)], (-1.0, -5.0): [(0, 1)], (-1.0, -4.0): [(0, 1)]},
              "full")
    info = replication_info(pd.concat([a, b]), ["a", "b"], [-2.0, -1.0], [-5.0, -4.0, -3.0], [0, 1, 2])
    ca, cb = info.condition("a"), info.condition("b")
    # rows: lr ascending; columns: wd ascending (the landscape maps' orientation: wd across, lr up)
    assert ca.counts == ((1, 2, 1), (1, 3, 1)) and ca.array.shape == (2, 3)
    assert cb.counts == ((3, 3, 3), (1, 1, 0))
    assert (ca.design, cb.design) == ("adaptive", "full")
    assert (ca.used, ca.full, ca.rounds) == (9, 18, 3)
    assert (cb.used, cb.full, cb.rounds) == (11, 18, 1)
    assert not ca.uniform and not cb.uniform
    assert (info.design, info.used, info.full, info.saved, info.rounds, info.n_seeds) == ("adaptive", 20, 36, 16, 3, 3)
    assert info.saved_fraction == pytest.approx(16 / 36)
    assert describe_replication(info) == ("The adaptive design ran 20 of 36 runs (55.6 % of the full design; "
                                          "16 saved) in 3 rounds.")


def test_a_table_without_the_new_columns_is_a_full_design_of_one_round():
    result = analysis.analyze(synthetic_replicate_results(), n_boot=N_BOOT)
    info = result.replication
    assert info.design == "full" and info.rounds == 1 and info.uniform
    assert info.used == info.full == 3 * 81 * 3 and info.saved == 0 and info.saved_fraction == 0.0
    assert all(c.counts == ((3,) * 9,) * 9 for c in info.conditions)
    assert [c.condition for c in info.conditions] == list(result.names)


def test_an_adaptive_table_is_analysed_with_its_seeds_per_point():
    t = synthetic_adaptive_results()
    result = analysis.analyze(t, n_boot=N_BOOT)
    info = result.replication
    per_point = t.groupby(["condition", "log10_lr", "log10_wd"]).size()
    for c in info.conditions:
        for i, lr in enumerate(c.log10_lr):
            for j, wd in enumerate(c.log10_wd):
                assert c.counts[i][j] == per_point[(c.condition, lr, wd)]
        # the prior (grid centre) and its axis neighbours have every seed from round 1
        assert c.counts[4][4] == c.counts[3][4] == c.counts[5][4] == c.counts[4][3] == c.counts[4][5] == 3
    assert info.design == "adaptive" and info.rounds == int(t["round"].max()) == 3
    assert info.used == len(t) and info.full == 3 * 81 * 3
    # a seed an adaptive round never asked for is not a missing run
    assert result.missing == ()
    assert result.seeds == (0, 1, 2)


def test_json_holds_the_replication():
    t = synthetic_adaptive_results()
    doc = json.loads(json.dumps(analysis.to_json(analysis.analyze(t, n_boot=N_BOOT)), allow_nan=False))
    rep = doc["replication"]
    assert set(rep) == {"design", "used", "full", "saved", "saved_fraction", "rounds", "n_seeds", "conditions"}
    assert rep["design"] == "adaptive" and rep["used"] == len(t) and rep["full"] == 729
    assert rep["saved"] == 729 - len(t) and math.isclose(rep["saved_fraction"], (729 - len(t)) / 729)
    assert rep["rounds"] == 3 and rep["n_seeds"] == 3
    assert list(rep["conditions"]) == ["base", "uniform-0.6", "global-0.4"]
    base = rep["conditions"]["base"]
    assert set(base) == {"design", "used", "full", "rounds", "seeds_per_point"}
    grid = base["seeds_per_point"]
    assert grid["log10_lr"] == sorted(grid["log10_lr"]) and len(grid["log10_wd"]) == 9
    assert np.array(grid["counts"]).sum() == base["used"] == (t["condition"] == "base").sum()


def _with_failed_run(t):
    """``t`` with its first basemodel run at (lr 1e-1.8, wd 1e-4.8), seed 0, failed (no top-1)."""
    t = t.copy()
    hit = (t["condition"] == "base") & np.isclose(t["log10_lr"], -1.8) & np.isclose(t["log10_wd"], -4.8) \
        & (t["seed"] == 0)
    assert hit.sum() == 1
    t.loc[hit, "top1"] = np.nan
    return t


def test_an_adaptive_design_reports_only_its_failed_runs():
    result = analysis.analyze(_with_failed_run(synthetic_adaptive_results()), n_boot=N_BOOT)
    assert [(m.condition, m.log10_lr, m.log10_wd, m.seed, m.kind) for m in result.missing] == [
        ("base", -1.8, -4.8, 0, "failed")]


def test_a_full_design_still_reports_every_absent_seed_as_missing():
    t = synthetic_adaptive_results().drop(columns=["replicates"])  # the same runs, read as a full design
    result = analysis.analyze(_with_failed_run(t), n_boot=N_BOOT)
    kinds = {m.kind for m in result.missing}
    assert kinds == {"missing", "failed"}
    assert sum(m.kind == "missing" for m in result.missing) == 729 - len(t)
    assert result.replication.design == "full"


def test_load_results_reads_the_columns_and_names_a_bad_cell():
    t = synthetic_adaptive_results()
    t["replicates"] = t["replicates"].astype(object)
    t["round"] = t["round"].astype(object)
    t.loc[0, ["replicates", "round"]] = [None, None]  # a record from before the columns: full, round 1
    got = analysis.load_results(t)
    assert got.loc[0, "replicates"] == "full" and got.loc[0, "round"] == 1 and got["round"].dtype.kind == "i"
    # one adaptive row makes its condition adaptive: its absent seeds are still no missing runs
    assert analysis.analyze(t, n_boot=N_BOOT).missing == ()
    bad = synthetic_adaptive_results()
    bad.loc[3, "replicates"] = "adaptve"
    with pytest.raises(UserError,
                       match=r"column replicates must be one of full, adaptive, got 'adaptve' in row 4"):
        analysis.load_results(bad)
    bad = synthetic_adaptive_results()
    bad["round"] = bad["round"].astype(float)
    bad.loc[2, "round"] = 1.5
    with pytest.raises(UserError, match=r"column round must hold positive integers .* got 1\.5 in row 3"):
        analysis.load_results(bad)


def test_an_adaptive_table_of_common_random_numbers_is_refused():
    t = synthetic_adaptive_results()
    t["randomness"] = "common"
    with pytest.raises(UserError, match=r"condition 'base' mixes an adaptive design .* needs independent randomness"):
        analysis.load_results(t)
