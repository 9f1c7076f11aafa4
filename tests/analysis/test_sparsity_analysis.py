"""Sparsity side by side and gradient flow over the grid, on a constructed study."""

import math

import pytest

from hplandscape.analysis import analyze, load_results
from hplandscape.analysis.egf_correlation import correlation_table, gradient_flow_info, has_gradient_flow
from hplandscape.analysis.example import synthetic_results
from hplandscape.analysis.example import synthetic_sparse_results as sparse_results
from hplandscape.analysis.sparsity_kinds import describe_kinds, has_sparsity, kind_of, kind_summary, sparsity_table


@pytest.fixture(scope="module")
def analysed():
    table = load_results(sparse_results())
    return table, analyze(table, n_boot=199)


def test_kinds():
    assert [kind_of(m) for m in ("none", "uniform", "global", "magnitude", "random", "set")] == [
        "dense", "structured", "structured", "unstructured", "unstructured", "unstructured"]
    assert not has_sparsity(load_results(synthetic_results()))


def test_sparsity_table_lays_out_kind_density_cost_and_shift(analysed):
    table, result = analysed
    assert has_sparsity(table)
    s = sparsity_table(table, result).set_index("condition")
    row = s.loc["magnitude-0.2-finetune"]
    assert (row.kind, row.method, row.pipeline, row.target, row.density) == (
        "unstructured", "magnitude", "finetune", 0.2, 0.2)
    assert row.flops_kept == pytest.approx(0.2)  # the constructed 0.4 of the FLOPs, halved
    shift = result.condition("magnitude-0.2-finetune").shift
    assert row.shift_log10_lr == shift.log10_lr.estimate and row.verdict == shift.verdict
    assert row.shift_decades == pytest.approx(math.hypot(shift.log10_lr.estimate, shift.log10_wd.estimate))
    assert s.loc["base"].kind == "dense" and s.loc["base"].pipeline == "—" and math.isnan(s.loc["base"].p_value)
    summary = kind_summary(sparsity_table(table, result))
    assert list(zip(summary.kind, summary.pipeline, summary.conditions)) == [
        ("structured", "retrain", 2), ("unstructured", "finetune", 1)]
    assert summary.tested.tolist() == [2, 1]
    words = describe_kinds(summary)
    assert words[1].startswith("unstructured, finetune: 1 condition(s), ")
    assert "tested moved" in words[0]


def test_gradient_flow_maps_and_kendall_tau(analysed):
    table, result = analysed
    assert has_gradient_flow(table)
    info = gradient_flow_info(table, order=result.names)
    assert [m.condition for m in info.maps if m.p == 2] == list(result.names)
    taus = {(c.condition, c.p): c for c in info.correlations}
    assert taus[("base", 2)].tau == pytest.approx(-1.0)  # constructed: EGF falls with the top-1 exactly
    assert taus[("uniform-0.6", 1)].tau == pytest.approx(1.0)
    assert taus[("base", 2)].n == int((~table[table.condition == "base"].diverged).sum())
    m = info.map("uniform-0.6", 2)
    assert len(m.log10_lr) == 9 and len(m.log10_wd) == 9
    i, j = m.log10_lr.index(-1.2), m.log10_wd.index(-3.8)
    rows = table[(table.condition == "uniform-0.6") & (table.log10_lr == -1.2) & (table.log10_wd == -3.8)]
    assert m.values[i][j] == pytest.approx(rows.egf2_mean.mean())
    t = correlation_table(info)
    assert list(t.columns) == ["condition", "tau_egf1", "p_egf1", "tau_egf2", "p_egf2", "runs"]
    assert len(t) == 4


def test_gradient_flow_without_measurements_or_with_too_few_runs():
    assert gradient_flow_info(load_results(synthetic_results())).reason.startswith("no run measured")
    t = sparse_results()
    few = t[t["condition"] == "base"].head(2)
    c = gradient_flow_info(few).correlations[0]
    assert math.isnan(c.tau) and c.n == 2 and "τ needs 3" in c.reason


def test_kinds_without_a_shift_say_so():
    import pandas as pd

    s = pd.DataFrame([{"condition": "set-0.2", "kind": "unstructured", "pipeline": "retrain",
                       "shift_decades": math.nan, "verdict": "—"}])
    assert describe_kinds(kind_summary(s)) == [
        "unstructured, retrain: 1 condition(s), no shift test (one seed, or no near-optimal region); "
        "no optimum's centre to compare."]
