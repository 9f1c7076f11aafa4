"""The adaptive design's rule: which points the next round gives another seed (method §12)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hplandscape.analysis.adaptive import MIN_DF, Z, next_round, pooled_noise
from hplandscape.analysis.bootstrap import SeedMatrix, replicate_means

REPO = Path(__file__).resolve().parents[2]
NAN = np.nan


def _matrix(rows):
    v = np.array(rows, dtype=float)
    return SeedMatrix(v, np.zeros(len(v)), 0.2 * np.arange(len(v)))


def test_the_rule_by_hand_best_threshold_and_settled_points():
    # σ from the points with two or more seeds: residuals (0.1, −0.1, 0) twice and (0.05, −0.05)
    # → ss = 0.045 on df = 5
    m = _matrix([[93.1, 92.9, 93.0],       # 0: the best, all seeds: never asked again
                 [93.0, 92.8, 92.9],       # 1: full
                 [92.45, NAN, NAN],        # 2: gap 0.55 from 0.5-ROI's threshold by 0.05: open
                 [91.0, NAN, NAN],         # 3: gap 2.0: settled (outside both ROIs by far)
                 [92.95, NAN, NAN],        # 4: gap 0.05: could be the best
                 [92.3, 92.2, NAN]])       # 5: two seeds, gap 0.75: between the thresholds
    d = next_round({"base": m}, 3, (0.5, 1.0))["base"]
    sigma = math.sqrt(0.045 / 5)
    assert d.sigma == pytest.approx(sigma) and d.sigma_df == 5 and d.sigma_source == "own"
    reach1 = Z * sigma * math.sqrt(1 - 1 / 3)          # one seed of three, the best complete
    reach2 = Z * sigma * math.sqrt(1 / 2 - 1 / 3)
    assert reach1 > 0.05 and reach2 < 0.25             # the cases below are decided by the rule, not by luck
    assert {p.index: p.reasons for p in d.add} == {2: ("0.5",), 4: ("best",)}


def test_the_best_point_gets_its_seeds_while_it_lacks_them():
    m = _matrix([[93.5, NAN, NAN], [93.0, 92.8, 92.9], [93.1, 92.9, 93.0], [80.0, NAN, NAN]])
    d = next_round({"c": m}, 3, (0.5, 1.0))["c"]
    # the single-seed best: its own claim is open; the full points are settled; 80 % is far
    assert [(p.index, p.reasons[0]) for p in d.add] == [(0, "best")]


def test_a_condition_without_its_own_noise_uses_the_study_s_or_asks_for_it():
    measured = _matrix([[93.0, 93.2, 92.8], [92.9, 93.1, 92.7], [90.0, NAN, NAN]])
    assert pooled_noise(measured, (0.5, 1.0))[1] == 4 >= MIN_DF
    unmeasured = _matrix([[95.0, NAN, NAN], [94.9, NAN, NAN], [90.0, 89.0, 91.0], [93.5, NAN, NAN]])
    d = next_round({"base": measured, "pruned": unmeasured}, 3, (0.5, 1.0))
    assert d["pruned"].sigma_source == "study" and d["pruned"].sigma == pytest.approx(d["base"].sigma)
    alone = next_round({"pruned": unmeasured}, 3, (0.5, 1.0))["pruned"]
    # no noise anywhere: every point within 2·max(x) = 2 points of the best that lacks seeds (not
    # the complete one 5 below)
    assert alone.sigma is None and alone.sigma_source == "none"
    assert [(p.index, p.reasons) for p in alone.add] == [(0, ("noise",)), (1, ("noise",)), (3, ("noise",))]


def test_complete_and_single_seed_designs_add_nothing():
    full = _matrix([[93.0, 93.2], [92.0, 92.4], [91.0, 91.1]])
    assert next_round({"c": full}, 2, (0.5, 1.0))["c"].add == ()
    one = _matrix([[93.0], [92.0]])
    assert next_round({"c": one}, 1, (0.5, 1.0))["c"].add == ()


def test_a_single_run_outside_the_pool_draws_the_measured_noise():
    # Far below the best, one seed (an adaptive design's usual far-off point): it used to stay at
    # its value in every resample, so risks over such points had no spread at all.
    values = np.array([[93.0, 93.2, 92.8], [92.9, 93.1, 92.7], [85.0, NAN, NAN]])
    m = SeedMatrix(values, [0.0, 0.2, 0.4], [0.0, 0.0, 0.0])
    means = replicate_means(m.resample(20000, np.random.default_rng(0)))
    resid = np.sqrt(3 / 2) * np.array([0.0, 0.2, -0.2, 0.0, 0.2, -0.2])
    assert means[:, 2].var() == pytest.approx(resid.var(), rel=0.05)  # one draw from the pool
    assert means[:, 2].mean() == pytest.approx(85.0, abs=0.01)


def test_benchmark_quick_mode_measures_runs_verdicts_and_centres(tmp_path):
    out = tmp_path / "rows.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "adaptive_replication.py"), "--studies", "4",
                           "--n-boot", "99", "--workers", "1", "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    rows = {r["setting"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"ridge-null", "ridge-shift0.1"}
    for r in rows.values():
        # the first round alone is 91 of 243 runs per condition; the full design is 100 %
        assert 91 / 243 <= r["runs_fraction"] < 0.7 and r["rounds_mean"] >= 2
        assert r["centre_inside_share"] >= 0.8
    assert rows["ridge-shift0.1"]["adaptive_rate"] >= 0.5 and rows["ridge-null"]["adaptive_rate"] <= 0.25
