"""The runner interface: executors by name, and a runner defined here (not in the package) that
a sweep runs a study with, end to end."""

from __future__ import annotations

import pytest
from conftest import fake_prune, fake_train_run, tiny_config

from hplandscape.cli import build_parser
from hplandscape.errors import ConfigError, UserError
from hplandscape.run import runners
from hplandscape.run.prune_step import make_pruning_specs
from hplandscape.run.runners import Outcome, Runner, RunOptions, executor_names, get_runner, register_runner
from hplandscape.run.sweep import run_sweep

FAKES = RunOptions(train_fn=fake_train_run, prune_fn=fake_prune)


class InProcessRunner(Runner):
    """Every step in order, each block of runs trained in this process: the smallest runner."""

    checked = []  # the configs check_request saw (class level: the sweep makes its own instance)

    def check_request(self, config) -> None:
        if config.launcher.mem_gb > 64:
            raise ConfigError(config.source, "launcher.mem_gb", "is more than this test runner offers")
        InProcessRunner.checked.append(config.name)

    def run(self, launch) -> Outcome:
        size = launch.config.launcher.runs_per_job
        for step in launch.plan.steps:  # in order: a step's needs come before it
            if step.conditions:
                make_pruning_specs(launch.config, launch.store.root, prune_fn=launch.options.prune_fn)
            for block in step.blocks(size):
                launch.make_job(block)()
        return Outcome(len(launch.plan.runs))

    def follow(self, launch, outcome) -> None:
        pass

    def where(self, config, max_parallel: int, plan) -> str:
        return "in-process test runner"


@pytest.fixture
def inproc():
    register_runner("inproc", InProcessRunner)
    InProcessRunner.checked.clear()
    yield "inproc"
    runners.unregister_runner("inproc")


def test_the_builtin_executors_are_the_registry_and_its_order():
    assert executor_names() == ("local", "slurm", "debug")
    assert [type(get_runner(n)).__name__ for n in executor_names()] == ["LocalRunner", "SlurmRunner", "DebugRunner"]
    assert get_runner("slurm").runs_here is False and get_runner("local").runs_here
    assert not get_runner("slurm").finishes(wait=False) and get_runner("debug").finishes(wait=False)
    with pytest.raises(UserError, match="unknown executor 'ray'; available: local, slurm, debug"):
        get_runner("ray")


def test_the_registry_refuses_duplicates_and_what_is_not_a_runner(inproc):
    with pytest.raises(ValueError, match="already registered"):
        register_runner("local", InProcessRunner)
    with pytest.raises(ValueError, match="already registered"):
        register_runner(inproc, InProcessRunner)
    with pytest.raises(TypeError, match="Runner subclass"):
        register_runner("other", object)
    with pytest.raises(ValueError, match="built in"):
        runners.unregister_runner("local")


def test_a_registered_runner_is_a_choice_of_the_config_and_the_cli(inproc):
    assert tiny_config(launcher={"executor": inproc}).launcher.executor == inproc
    assert build_parser().parse_args(["sweep", "--executor", inproc]).executor == inproc
    runners.unregister_runner(inproc)
    with pytest.raises(ConfigError, match="launcher.executor"):
        tiny_config(launcher={"executor": inproc})


def test_a_runner_defined_in_a_test_runs_a_study_to_the_end(inproc, tmp_path):
    dry = run_sweep(tiny_config(), tmp_path, executor=inproc, dry_run=True, progress=False, options=FAKES)
    assert dry.dry_run and "in-process test runner" in dry.text and dry.submitted == 0
    assert not (tmp_path / "study.yaml").exists()
    summary = run_sweep(tiny_config(launcher={"executor": inproc}), tmp_path, progress=False, options=FAKES)
    assert summary.executor == inproc and summary.finished
    assert summary.submitted == summary.planned == summary.done and summary.failed == 0
    assert InProcessRunner.checked == ["tiny", "tiny"]  # the dry run and the sweep both asked
    again = run_sweep(tiny_config(), tmp_path, executor=inproc, progress=False, options=FAKES)
    assert again.submitted == 0 and again.skipped == again.planned and again.finished


def test_a_runner_refuses_a_request_before_anything_is_written(inproc, tmp_path):
    with pytest.raises(ConfigError, match="launcher.mem_gb"):
        run_sweep(tiny_config(launcher={"mem_gb": 128}), tmp_path / "s", executor=inproc, progress=False,
                  options=FAKES)
    assert not (tmp_path / "s").exists()
