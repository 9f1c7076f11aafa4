"""The pruning step makes each pruned condition's architecture once, with the config's settings."""

import dataclasses

from conftest import fake_prune, tiny_config

from hplandscape.run.prune_step import conditions_to_prune, make_pruning_specs, stored_arch
from hplandscape.store.study_store import StudyStore


def _config(**pruning):
    conditions = [{"method": "none"}, {"method": "uniform", "ratio": 0.5}, {"method": "global", "ratio": 0.5}]
    return tiny_config(conditions=conditions, pruning={"source": "random", **pruning})


def test_settings_reach_the_pruning_function_and_the_spec(tmp_path):
    config = _config(normalizer="max", max_layer_prune=0.8)
    calls = []

    def recording_prune(*args, **kwargs):
        calls.append(kwargs)
        return fake_prune(*args, **kwargs)

    make_pruning_specs(config, tmp_path, prune_fn=recording_prune)
    assert [(k["normalizer"], k["max_layer_prune"]) for k in calls] == [("max", 0.8)] * 2
    store = StudyStore(tmp_path)
    spec = store.read_arch("global-0.5")
    assert (spec.normalizer, spec.max_layer_prune) == ("max", 0.8)
    assert store.read_arch("uniform-0.5").normalizer is None
    assert conditions_to_prune(store, config) == []  # made for this config: not made again


def test_a_global_spec_made_with_other_settings_is_made_again(tmp_path):
    config = _config()
    make_pruning_specs(config, tmp_path, prune_fn=fake_prune)
    store = StudyStore(tmp_path)
    uniform, glob = config.condition("uniform-0.5"), config.condition("global-0.5")
    assert stored_arch(store, config, glob) is not None
    for changed in (_config(normalizer="none"), _config(max_layer_prune=0.5)):
        assert stored_arch(store, changed, glob) is None
        assert stored_arch(store, changed, uniform) is not None  # uniform uses neither setting
        assert [c.name for c in conditions_to_prune(store, changed)] == ["global-0.5"]
    # a global spec written before the settings were recorded predates the cap: made again
    old = dataclasses.replace(store.read_arch("global-0.5"), normalizer=None, max_layer_prune=None)
    store.write_arch("global-0.5", old)
    assert stored_arch(store, config, glob) is None
    assert make_pruning_specs(config, tmp_path, prune_fn=fake_prune) == [str(store.spec_path("global-0.5"))]
    assert store.read_arch("global-0.5").normalizer == config.pruning.normalizer
