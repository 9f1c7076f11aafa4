"""The run record's one schema: records on disk keep loading, round trips lose nothing, bad ones say why."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import subprocess
import sys

import pytest
from conftest import minimal_record, tiny_config

from hplandscape.atomic import write_json
from hplandscape.errors import UserError
from hplandscape.store.run_record import ABSENT, COLUMNS, REQUIRED_COLUMNS, RunRecord, record_problem, table_row
from hplandscape.store.study_store import RunState, StudyStore

RUN = "base/lr-0.5000_wd-2.0000/seed1"
# A record.json exactly as the sequential engine writes it today (keys sorted by the store's JSON
# writer), from a quickstart run on digits, its history cut to two epochs.
TODAY = """{
  "arch_hash": null,
  "condition": "base",
  "data": {
    "download": false,
    "image_size": null,
    "name": "digits",
    "num_workers": 4,
    "root": null,
    "test_subset": null,
    "train_subset": null
  },
  "dense_flops": 5033216,
  "dense_params": 269434,
  "density": 1.0,
  "device": "cpu: AMD EPYC",
  "diverged": false,
  "diverged_epoch": null,
  "egf": null,
  "engine": "sequential",
  "epochs_completed": 2,
  "eval_size": 450,
  "flops": 5033216,
  "history": [
    {
      "epoch": 0,
      "lr": 0.31622776601683794,
      "train_acc": 12.769116555308091,
      "train_loss": 4.514930317290376,
      "val_acc": 10.222222222222221
    },
    {
      "epoch": 1,
      "lr": 0.31622776601683794,
      "train_acc": 12.843355605048256,
      "train_loss": 2.2642523414042586,
      "val_acc": 15.11111111111111
    }
  ],
  "log10_lr": -0.5,
  "log10_wd": -2.0,
  "lr": 0.31622776601683794,
  "memory_format": "channels_last",
  "method": "none",
  "model": "resnet20",
  "parametrisation": "SGD with momentum and coupled L2 weight decay (torch.optim.SGD): V <- momentum*V + grad(L) + wd*W; W <- W - lr*V. lr and wd are per-step coefficients, independent of batch size; the lr is multiplied by lr_gamma at each milestone epoch. Weight decay applies to every parameter, BatchNorm and biases included.",
  "params": 269434,
  "pipeline": "retrain",
  "precision": "float32",
  "provenance": {
    "device": "cpu: AMD EPYC",
    "git_commit": "f55c7ac8d762a1ab2381a5a97ceac4731d83ee0c",
    "git_dirty": true,
    "host": "vm",
    "versions": {
      "hplandscape": "0.1.0",
      "numpy": "2.4.6",
      "python": "3.11.7",
      "torch": "2.14.1+cu130",
      "torch_pruning": "1.6.1",
      "torchvision": "0.29.1+cu130"
    }
  },
  "randomness": "independent",
  "ratio": 1.0,
  "recipe": {
    "amp": false,
    "augment": "digits",
    "batch_size": 128,
    "channels_last": false,
    "epochs": 5,
    "eval_batch_size": 1000,
    "lr_gamma": 0.1,
    "milestones": [
      0.5,
      0.75
    ],
    "milestones_unit": "fraction",
    "momentum": 0.9,
    "nesterov": false,
    "preset": "digits",
    "randomness": "independent",
    "threads": 1,
    "weight_decay_on_bn_bias": true
  },
  "replicates": "full",
  "round": 1,
  "run_id": "base/lr-0.5000_wd-2.0000/seed1",
  "seed": 1,
  "study": "quickstart",
  "top1": 15.11111111111111,
  "top5": 54.888888888888886,
  "wall_time_s": 1.8278118059999997,
  "wd": 0.01
}
"""
# What records of older versions lack: the fields added since the first one
LATER_FIELDS = ("randomness", "eval_size", "pipeline", "density", "dense_params", "dense_flops", "egf",
                "precision", "memory_format")


def test_todays_record_json_loads_and_is_written_back_byte_for_byte(tmp_path):
    record = RunRecord.from_json(json.loads(TODAY), where="record.json")
    assert (record.run_id, record.seed, record.top1, record.eval_size, record.egf) == (
        RUN, 1, 15.11111111111111, 450, None)
    write_json(tmp_path / "record.json", record.to_json())
    assert (tmp_path / "record.json").read_text() == TODAY
    # the schema is exactly what the engines write: no field they leave out, none they lack (but
    # model_source, written only for a model of the user's: tests/test_user_model.py)
    assert {f.name for f in dataclasses.fields(RunRecord)} - {"extra", "model_source"} == set(json.loads(TODAY))


def test_a_record_of_an_older_version_loads_with_its_missing_keys_absent_not_null(tmp_path):
    old = {k: v for k, v in json.loads(TODAY).items() if k not in LATER_FIELDS}
    old["recipe"] = {k: v for k, v in old["recipe"].items() if k != "randomness"}
    record = RunRecord.from_json(old)
    assert all(getattr(record, name) is ABSENT for name in LATER_FIELDS)
    assert record.to_json() == old  # no key added, none written as null
    # the results table reads the fields' absence as the older versions meant it
    row = record.to_row()
    assert (row["randomness"], row["pipeline"], row["precision"]) == ("common", "retrain", "float32")
    assert row["density"] is row["eval_size"] is row["egf1_mean"] is None
    # and the store reads it as a finished run, unchanged
    store = StudyStore(tmp_path)
    store.record_path(RUN).parent.mkdir(parents=True)
    store.record_path(RUN).write_text(json.dumps(old))
    assert store.read_record(RUN) == (RunState.DONE, old)


def test_keys_of_a_later_version_are_kept_and_written_back():
    later = {**json.loads(TODAY), "energy_j": 12.5}
    record = RunRecord.from_json(later)
    assert record.extra == {"energy_j": 12.5}
    assert record.to_json() == later


def test_engine_fields_come_from_the_spec_in_the_order_the_engines_returned_them(tmp_path):
    from hplandscape.run.plan import plan_study

    spec = next(r for r in plan_study(tiny_config(), StudyStore(tmp_path)).runs if r.condition.method == "uniform")
    today = json.loads(TODAY)
    measured = {k: today[k] for k in today if k not in {
        "run_id", "study", "condition", "method", "ratio", "model", "lr", "wd", "log10_lr", "log10_wd", "seed",
        "recipe", "randomness", "data", "pipeline", "round", "replicates"}}
    out = RunRecord.for_spec(spec, **measured).to_json()
    assert (out["run_id"], out["condition"], out["method"], out["ratio"]) == (spec.run_id, "uniform-0.5", "uniform",
                                                                             0.5)
    assert (out["lr"], out["log10_wd"], out["seed"], out["pipeline"]) == (spec.lr, spec.point.log10_wd, 0, "retrain")
    assert out["recipe"] == spec.recipe.to_dict() and out["randomness"] == spec.recipe.randomness
    assert out["data"] == spec.data.to_dict()
    # the order lifecycle's record literal had, before this module held it
    assert list(out) == ["run_id", "study", "condition", "method", "ratio", "model", "lr", "wd", "log10_lr",
                         "log10_wd", "seed", "recipe", "randomness", "data", "top1", "top5", "history",
                         "epochs_completed", "wall_time_s", "params", "flops", "arch_hash", "diverged",
                         "diverged_epoch", "device", "engine", "precision", "memory_format", "parametrisation",
                         "provenance", "eval_size", "pipeline", "density", "dense_params", "dense_flops", "egf",
                         "round", "replicates"]
    assert (out["round"], out["replicates"]) == (1, "full")


def test_the_round_that_ran_a_record_is_a_column_and_does_not_decide_its_validity():
    old = {k: v for k, v in json.loads(TODAY).items() if k not in ("round", "replicates")}  # before designs
    assert record_problem(old) is None
    assert (table_row(old)["round"], table_row(old)["replicates"]) == (1, "full")
    later = {**old, "round": 3, "replicates": "adaptive"}
    assert record_problem(later) is None and RunRecord.from_json(later).round == 3
    assert (table_row(later)["round"], table_row(later)["replicates"]) == (3, "adaptive")
    assert {"round", "replicates"} <= set(COLUMNS)


def test_to_json_hands_out_copies_and_the_record_pickles():
    record = RunRecord.from_json(json.loads(TODAY))
    out = record.to_json()
    out["history"].clear()
    assert len(record.history) == 2
    old = RunRecord.from_json(minimal_record(RUN.replace("seed1", "seed0")))
    again = pickle.loads(pickle.dumps(old))
    assert again == old and again.eval_size is ABSENT


@pytest.mark.parametrize("change, problem", [
    ({"top1": 500.0}, "top1 must be a percentage in [0, 100], got 500.0"),
    ({"diverged": "false"}, "diverged must be true or false, got 'false'"),
    ({"seed": 3}, "seed must be the seed of 'seed1', got 3"),
    ({"condition": "uniform-0.5"}, "condition must be the condition 'base', got 'uniform-0.5'"),
    ({"top5": None}, None),
])
def test_record_problem_names_the_key_and_the_value(change, problem):
    record = {**json.loads(TODAY), **change}
    assert record_problem(record, RUN) == problem
    if problem is not None:
        with pytest.raises(UserError, match="^" + re.escape(f"runs/x/record.json: {problem}") + "$"):
            RunRecord.from_json(record, where="runs/x/record.json")


def test_a_record_is_checked_against_the_run_it_names_or_the_one_asked_for():
    record = json.loads(TODAY)
    del record["top1"]
    assert record_problem(record) == "top1 is missing"
    assert record_problem({**json.loads(TODAY), "run_id": "not-a-run"}) == (
        "run_id must be <condition>/<point>/seed<k>, got 'not-a-run'")
    assert record_problem(json.loads(TODAY), "base/lr-0.5000_wd-2.0000/seed0").startswith("run_id must be the run id")
    assert record_problem([1, 2]) == "not a JSON object but list"


def test_the_results_columns_are_the_records_and_the_analysis_needs_a_subset_of_them():
    from hplandscape.analysis import results_io as io
    from hplandscape.store import results

    assert results.COLUMNS is COLUMNS and set(io.REQUIRED) <= set(COLUMNS) and io.REQUIRED == REQUIRED_COLUMNS
    row = table_row(json.loads(TODAY))
    assert list(row) == list(COLUMNS) + ["arch_hash"]
    assert (row["randomness"], row["eval_size"], row["density"]) == ("independent", 450, 1.0)


def test_the_record_module_imports_no_training_code():
    """The analysis reads the columns from here; importing them must not pull torch in."""
    code = ("import sys, hplandscape.store.run_record; heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'numpy', 'pandas')]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
