"""Adaptive replication in a sweep (``design.replicates: adaptive``): rounds decided from the
finished runs, kept in ``rounds.json``, resumed after a kill, one per call without ``--wait``."""

from __future__ import annotations

import json

import pytest
from conftest import fake_prune, fake_train_run, tiny_config

from hplandscape.errors import ConfigChanged, UserError
from hplandscape.run.local_runner import DebugRunner
from hplandscape.run.rounds import decide_next_round
from hplandscape.run.runners import register_runner, unregister_runner
from hplandscape.run.sweep import RunOptions, run_sweep
from hplandscape.store.results import collect
from hplandscape.store.study_store import StudyStore
from hplandscape.study.replication import first_round, full_runs, requested_runs

FAKES = dict(options=RunOptions(train_fn=fake_train_run, prune_fn=fake_prune), progress=False)
TRAIN = {"preset": "digits", "epochs": 1, "batch_size": 64, "randomness": "independent"}


def _adaptive(size=5, seeds=(0, 1, 2, 3), replicates="adaptive", **kw):
    """The tiny study on a ``size`` × ``size`` grid centred on the prior, with ``seeds``."""
    return tiny_config(grid={"prior_lr": 0.1, "prior_wd": 1e-4, "size": [size, size], "step": 0.25, **kw},
                       seeds=list(seeds), train=TRAIN, design={"replicates": replicates})


@pytest.fixture
def noisy(fake_env):
    """Seed noise of 0.3 points on the fake landscape (a sharp peak at the prior)."""
    fake_env.setenv("HPL_FAKE_NOISE", "0.3")
    return fake_env


def _trained_counts(store):
    out = {}
    for log in store.runs_dir.glob("*/*/*/trained.log"):
        out["/".join(log.parent.relative_to(store.runs_dir).parts)] = len(log.read_text().split())
    return out


def _rounds(store) -> list:
    return json.loads(store.rounds_json.read_text())["rounds"]


def test_an_adaptive_sweep_runs_rounds_until_settled_and_every_record_says_its_round(tmp_path, noisy):
    config = _adaptive()
    summary = run_sweep(config, tmp_path, executor="debug", **FAKES)
    store = StudyStore(tmp_path)
    rounds = _rounds(store)
    assert summary.finished and rounds and [r["round"] for r in rounds] == list(range(2, len(rounds) + 2))
    assert f"settled after round {rounds[-1]['round']}" in summary.describe()
    assert "round 2 added" in summary.replication
    first = requested_runs(config, {})
    added = {run_id: r["round"] for r in rounds for run_id in r["runs"]}
    assert not added.keys() & {r.run_id for r in first}, "a later round adds only runs the first did not have"
    # The study's runs are the first round's and the stored rounds'; each trained once, fewer than the full design.
    ids = store.run_ids(config)
    assert len(ids) == len(first) + len(added) < full_runs(config) == 200
    assert _trained_counts(store) == {r: 1 for r in ids}
    assert f"{len(ids)} of 200 runs" in summary.replication
    table = collect(tmp_path)
    assert len(table) == len(ids) and set(table["replicates"]) == {"adaptive"}
    rounds_of = dict(zip(table["run_id"], table["round"]))
    assert all(rounds_of[r.run_id] == 1 for r in first)
    assert all(rounds_of[run_id] == k for run_id, k in added.items()) and max(rounds_of.values()) >= 2
    # Each added run is the next seed of its point, and says why.
    for r in rounds:
        assert set(r["reasons"]) == set(r["runs"]) and all(r["reasons"].values())
        assert set(r["noise"]) == {"base", "uniform-0.5"}
    # Settled: a second sweep decides nothing new and trains nothing.
    again = run_sweep(config, tmp_path, executor="debug", **FAKES)
    assert again.submitted == 0 and _rounds(store) == rounds and "settled after round" in again.replication


def test_an_adaptive_local_sweep_runs_its_rounds_in_worker_processes(tmp_path, noisy):
    config = _adaptive(size=3, seeds=(0, 1, 2))
    summary = run_sweep(config, tmp_path, executor="local", max_parallel=2, **FAKES)
    store = StudyStore(tmp_path)
    assert summary.finished and "settled after round" in summary.replication, summary.describe()
    assert _trained_counts(store) == {r: 1 for r in store.run_ids(config)}
    records = list(store.iter_records(config))
    assert {rec["round"] for rec in records} == {1} | {r["round"] for r in store.read_rounds()}


def test_a_round_is_not_decided_again_after_a_kill_and_the_sweep_continues_it(tmp_path, noisy):
    config = _adaptive()
    store = StudyStore(tmp_path)
    # Round 1, then round 2 decided and stored, as a sweep that was killed right after would leave it.
    run_sweep(config.with_replicates("adaptive"), tmp_path, executor=_ONE_ROUND, **FAKES)
    decision = decide_next_round(config, store)
    assert decision.outcome == "added" and decision.round["round"] == 2
    round2 = decision.round["runs"]
    # The sweep is killed in round 2: one of its runs' worker dies, the others finished.
    noisy.setenv("HPL_FAKE_KILL", round2[0])
    killed = run_sweep(config, tmp_path, executor="local", max_parallel=1, **FAKES)
    assert not killed.finished and "paused in round 2" in killed.replication
    assert str(store.rounds_json) in killed.replication and "run the same command again" in killed.replication
    assert _rounds(store) == [decision.round]
    finished_before = {r for r in round2 if store.read_record(r)[0].finished}
    assert round2[0] not in finished_before
    noisy.delenv("HPL_FAKE_KILL")
    resumed = run_sweep(config, tmp_path, executor="debug", **FAKES)
    assert resumed.finished and "settled after round" in resumed.replication
    assert _rounds(store)[0] == decision.round, "round 2 was read back, not decided again"
    assert _trained_counts(store) == {r: 1 for r in store.run_ids(config)}, "no finished run trained again"
    assert all(store.read_record(r)[1]["round"] == 2 for r in round2)


def test_a_damaged_rounds_file_is_refused_naming_it(tmp_path, noisy):
    config = _adaptive(size=3, seeds=(0, 1, 2))
    run_sweep(config, tmp_path, executor="debug", **FAKES)
    store = StudyStore(tmp_path)
    store.rounds_json.write_text('{"rounds": [{"round": 2, "runs": ["base/lr-1')
    with pytest.raises(UserError, match=r"rounds\.json is damaged: it is not complete JSON"):
        run_sweep(config, tmp_path, executor="debug", **FAKES)
    store.rounds_json.write_text(json.dumps({"rounds": [{"round": 3, "runs": [], "noise": {}, "reasons": {}}]}))
    with pytest.raises(UserError, match=r"rounds\.json is damaged: the rounds must be numbered 2, 3"):
        run_sweep(config, tmp_path, executor="debug", dry_run=True, **FAKES)


@pytest.mark.parametrize("first, then", [("full", "adaptive"), ("adaptive", "full")])
def test_a_study_of_one_design_is_refused_a_sweep_of_the_other(tmp_path, noisy, first, then):
    run_sweep(_adaptive(size=3, seeds=(0, 1), replicates=first), tmp_path, executor="debug", **FAKES)
    for dry_run in (True, False):
        with pytest.raises(ConfigChanged, match=rf"design\.replicates: '{first}' → '{then}'"):
            run_sweep(_adaptive(size=3, seeds=(0, 1), replicates=then), tmp_path, executor="debug",
                      dry_run=dry_run, **FAKES)
    if first == "full":
        assert not StudyStore(tmp_path).rounds_json.exists(), "refused before any round was decided"


def test_the_dry_run_gives_the_most_runs_the_design_may_take_and_the_first_rounds(tmp_path, noisy):
    config = _adaptive()
    dry = run_sweep(config, tmp_path, executor="debug", dry_run=True, **FAKES)
    n_first = len(requested_runs(config, {}))
    assert n_first == 2 * (25 + 5 * 3) == len([p for p in dry.plan if p.phase != 2])
    assert (f"round 1 takes {n_first} runs; later rounds add seeds where the results ask for them, "
            f"at most 200 runs in all (the full design)") in dry.describe()
    assert not StudyStore(tmp_path).rounds_json.exists()
    # On a study in progress: the current round and what is recorded.
    run_sweep(config, tmp_path, executor=_ONE_ROUND, **FAKES)
    decide_next_round(config, StudyStore(tmp_path))
    dry = run_sweep(config, tmp_path, executor="debug", dry_run=True, **FAKES)
    asked = len(StudyStore(tmp_path).run_ids(config))
    assert f"round 2, {n_first} of the {asked} runs asked for so far recorded" in dry.describe()
    assert f"{asked - n_first} of its runs are left" in dry.describe()


class OneRoundRunner(DebugRunner):
    """The debug runner as a runner that only submits (SLURM without ``--wait``): a sweep through
    it does not count on its runs having ended, so it advances one round per call."""

    def __init__(self, name: str):
        super().__init__("debug")  # the jobs run in this process, as the debug executor's

    def finishes(self, wait: bool) -> bool:
        return wait


_ONE_ROUND = "oneround"


@pytest.fixture(autouse=True)
def one_round_runner():
    register_runner(_ONE_ROUND, OneRoundRunner)
    yield
    unregister_runner(_ONE_ROUND)


def test_without_waiting_each_call_advances_one_round_to_the_same_rounds(tmp_path, noisy):
    config = _adaptive()
    store = StudyStore(tmp_path / "calls")
    notes = []
    for call in range(1, 13):
        summary = run_sweep(config, store.root, executor=_ONE_ROUND, **FAKES)
        notes.append(summary.replication)
        if "settled" in summary.replication:
            break
        # Each call stores one round more (none in the first: it submits round 1) and runs it.
        assert [r["round"] for r in store.read_rounds()] == list(range(2, call + 1))
        assert f"round {call} submitted" in notes[0] if call == 1 else notes[-1].startswith(
            f"Adaptive replication: round {call} (")
        assert "run the same command again" in notes[-1]
    assert "settled after round" in notes[-1] and len(notes) >= 3
    # One round per call decides the very rounds one waiting sweep decides.
    waited = run_sweep(config, tmp_path / "waited", executor="debug", **FAKES)
    assert waited.finished
    assert [r["runs"] for r in store.read_rounds()] == [r["runs"] for r in StudyStore(tmp_path / "waited").read_rounds()]
    assert len(notes) == len(store.read_rounds()) + 2


def test_an_unfinished_round_is_only_submitted_again_without_waiting(tmp_path, noisy):
    config = _adaptive(size=3, seeds=(0, 1, 2))
    noisy.setenv("HPL_FAKE_FAIL", "seed1")  # the first round's block fails: its round is not finished
    first = run_sweep(config, tmp_path, executor=_ONE_ROUND, **FAKES)
    again = run_sweep(config, tmp_path, executor=_ONE_ROUND, **FAKES)
    assert first.failed and again.failed and not StudyStore(tmp_path).rounds_json.exists()
    assert "round 1 submitted" in again.replication
    noisy.delenv("HPL_FAKE_FAIL")
    run_sweep(config, tmp_path, executor=_ONE_ROUND, **FAKES)
    assert "round 2 (" in run_sweep(config, tmp_path, executor=_ONE_ROUND, **FAKES).replication


def test_adaptive_rounds_and_grid_extension_combine(tmp_path, noisy):
    noisy.setenv("HPL_FAKE_PEAK", "-0.5,-3.5")  # the peak sits one step beyond the 3 × 3 grid's corner
    config = _adaptive(size=3, seeds=(0, 1, 2), step=0.5)
    summary = run_sweep(config, tmp_path, executor="debug", extend=True, **FAKES)
    store = StudyStore(tmp_path)
    grid = store.config().grid
    assert grid.extra_log10_lr and grid.extra_log10_wd, summary.describe()
    assert summary.finished and "settled after round" in summary.replication and "Grid extension" in summary.extension
    # the first grid's rounds and the grown grid's are both told, one line each
    lines = summary.replication.splitlines()
    assert len(lines) >= 2 and all(line.startswith("Adaptive replication") for line in lines)
    extended = store.config()
    ids = set(store.run_ids(extended))
    # The new points got the first seed (round 1 of the grown grid) and only then further seeds.
    new = [r for r in requested_runs(extended, {}) if r.point.log10_lr in grid.extra_log10_lr
           or r.point.log10_wd in grid.extra_log10_wd]
    assert new and all(r.seed == 0 for r in new) and {r.run_id for r in new} <= ids
    added = store.added_runs()
    assert len(ids) < full_runs(extended) and {r.point for r in requested_runs(extended, {}) if r.seed == 1} \
        == first_round(extended)
    assert any(run_id.split("/")[1] in {r.point.key for r in new} for run_id in added), \
        "the near-optimal new points were replicated in later rounds"
    assert all(store.read_record(r)[0].finished for r in ids)
    assert decide_next_round(extended, store).outcome == "settled"


def test_status_shows_the_round_of_an_adaptive_study(tmp_path, noisy):
    from hplandscape.run.status import study_status

    config = _adaptive()
    run_sweep(config, tmp_path, executor=_ONE_ROUND, **FAKES)
    store = StudyStore(tmp_path)
    assert "design: adaptive replication, round 1; 80 of the full design's 200 runs asked for so far (40 %)" \
        in study_status(store).render()
    decide_next_round(config, store)
    status = study_status(store)
    assert "design: adaptive replication, round 2;" in status.render() and not status.complete
    assert status.total == len(store.run_ids(config)) > 80
    assert status.to_json()["design"] == {"replicates": "adaptive", "round": 2, "asked": status.total, "full": 200}
