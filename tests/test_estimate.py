"""What a study will cost: ``sweep --dry-run --estimate`` times each architecture; ``status`` gives
an ETA from the recorded runs."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import run_cli, study_record, tiny_config, tiny_study_dict

from hplandscape.errors import UserError
from hplandscape.run.estimate import TIMED_EVAL_BATCHES, estimate_cost, eta_seconds, study_cost
from hplandscape.run.plan import plan_study
from hplandscape.run.status import study_status
from hplandscape.store.study_store import StudyStore
from hplandscape.training.data import load_data, train_steps
from hplandscape.training.setup import eval_batch_size


def test_the_pruning_source_trains_alone_then_the_rest_share_the_slots():
    compute, wall = study_cost({"base": 3, "p": 4}, {"base": 10.0, "p": 5.0}, source_s=10.0, parallel=2)
    assert compute == 10 + 30 + 20 and wall == 10 + 50 / 2
    # one slot per run: never faster than the longest run
    assert study_cost({"base": 1, "p": 1}, {"base": 10.0, "p": 5.0}, 0.0, 100) == (15.0, 10.0)
    assert study_cost({"base": 0}, {"base": 10.0}, 0.0, 4) == (0.0, 0.0)


def test_the_eta_weighs_each_condition_by_its_own_recorded_time():
    records = [("base", 10.0), ("base", 30.0), ("p", 4.0), ("p", None), ("p", float("nan"))]
    assert eta_seconds(records, {"base": 2, "p": 3}, parallel=1) == 2 * 20 + 3 * 4
    assert eta_seconds(records, {"base": 2, "p": 3}, parallel=4) == 20.0  # one base run is 20 s
    assert eta_seconds(records, {"q": 2}, parallel=1) == 2 * (44 / 3)  # no record of q: the study's mean
    assert eta_seconds([], {"base": 2}, 1) is None and eta_seconds(records, {}, 1) == 0.0


def test_each_architecture_is_timed_and_the_runs_add_up(tmp_path):
    config = tiny_config(conditions=[{"method": "none"}, {"method": "uniform", "ratio": 0.5},
                                     {"method": "magnitude", "ratio": 0.2}])
    plan = plan_study(config, StudyStore(tmp_path / "never-written"))
    est = estimate_cost(config, plan, parallel=2, steps=2, warmup=1)
    assert [a.label for a in est.archs] == ["basemodel (dense)", "uniform-0.5"]
    assert est.archs[0].conditions == ("base", "magnitude-0.2")  # masks on the dense network
    assert est.archs[1].flops < 0.6 * est.archs[0].flops  # the budget's widths, not the dense ones
    assert est.runs == len(plan.runs) == 12
    data = load_data(config.data)
    per_batch = math.ceil(data.num_test / eval_batch_size(config.recipe, torch.device("cpu")))
    for a in est.archs:
        assert a.step_s > 0 and a.eval_batch_s > 0
        steps = train_steps(data.num_train, config.recipe.batch_size)
        assert a.run_s == pytest.approx(config.recipe.epochs * (steps * a.step_s + per_batch * a.eval_batch_s))
    assert est.compute_s == pytest.approx(sum(a.runs * a.run_s for a in est.archs))
    source = est.archs[0].run_s
    assert est.wall_s == pytest.approx(source + max((est.compute_s - source) / 2, est.archs[0].run_s))
    text = "\n".join(est.lines())
    assert "CPU-hours" in text and "uniform-0.5" in text and "masks' cost aside" in text
    assert TIMED_EVAL_BATCHES >= 1


def test_the_estimate_refuses_a_device_this_machine_lacks(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = tiny_config(launcher={**tiny_study_dict()["launcher"], "device": "cuda"})
    with pytest.raises(UserError, match="GPU node"):
        estimate_cost(config, plan_study(config, StudyStore(tmp_path / "s")), parallel=1)


def test_the_dry_run_prints_the_estimate_and_writes_nothing(tmp_path, capsys):
    study = tmp_path / "s"
    code, out, err = run_cli(capsys, "sweep", "--dry-run", "--estimate", "--study-dir", study, "grid.size=[2, 2]",
                             "train.epochs=1", "data.train_subset=128", "data.test_subset=64")
    assert code == 0, err
    assert "Estimated cost on cpu" in out and "CPU-hours" in out and "wall time at 2 run(s) at once" in out
    assert not study.exists()
    code, out, err = run_cli(capsys, "sweep", "--estimate", "--study-dir", study)
    assert code == 2 and "--estimate goes with --dry-run" in err and not study.exists()


def test_status_gives_an_eta_from_the_recorded_runs(tmp_path, capsys):
    config = tiny_config()
    store = StudyStore(tmp_path / "s")
    store.init_study(config)
    ids = store.run_ids()
    assert study_status(store).eta_s is None  # nothing recorded yet: no ETA, no guess
    for run_id in ids[:4]:
        store.write_record(run_id, study_record(config, run_id, 80.0, wall_time_s=30.0))
    status = study_status(store)
    left = len(ids) - 4
    assert status.parallel >= 1
    assert status.eta_s == pytest.approx(max(left * 30.0 / status.parallel, 30.0))
    code, out, _ = run_cli(capsys, "status", store.root)
    assert f"for the {left} run(s) left" in out
    for run_id in ids[4:]:
        store.write_record(run_id, study_record(config, run_id, 80.0))
    code, out, _ = run_cli(capsys, "status", store.root)
    assert "ETA" not in out  # complete
