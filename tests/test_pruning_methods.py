"""The registry of pruning methods: one entry is all the package needs to know a method by."""

import numpy as np
import pytest
from conftest import tiny_config

from hplandscape.errors import ConfigError, UserError
from hplandscape.pruning.arch_spec import ArchSpec
from hplandscape.pruning.methods import (STRUCTURED, UNSTRUCTURED, get_kind, get_method, method_names, register_method,
                                         unregister_method)
from hplandscape.study.config import METHODS

TOY = "widest_first"


def widest_first(fm, norms, target):
    """Cut the widest layers first: every prunable layer keeps at most k channels, the largest k
    whose FLOPs fit the target (k = 1 for the narrowest architecture)."""
    assert len(norms) == len(fm.original)  # the ranking's norms arrive, one array per layer
    caps = [np.minimum(fm.original, k) for k in range(1, int(fm.original.max()) + 1)]
    return [w for w in caps if fm.flops(w) <= target][-1] if fm.flops(caps[0]) <= target else caps[0]


@pytest.fixture
def toy_method():
    """A structured method registered by this test alone; no module of the package names it."""
    register_method(TOY, STRUCTURED, narrowest=lambda: "one channel in every prunable layer",
                    colour="#123456")(widest_first)
    yield get_method(TOY)
    unregister_method(TOY)


def _conditions(method=TOY):
    return [{"method": "none"}, {"method": method, "ratio": 0.5}]


def test_the_built_in_methods_and_their_kinds():
    assert list(method_names(STRUCTURED)) == ["uniform", "global"]
    assert list(method_names(UNSTRUCTURED)) == ["magnitude", "magnitude_layerwise", "random", "set"]
    assert METHODS == ("none", "uniform", "global", "magnitude", "magnitude_layerwise", "random", "set")
    assert get_method("global").settings == {"normalizer": "normalizer", "max_layer_prune": "max_layer_prune"}
    assert get_method("set").evolver() is not None and get_method("magnitude").evolver() is None
    assert [m for m in method_names() if get_method(m).seeded] == ["random", "set"]


def test_a_second_registration_and_a_bad_kind_are_refused(toy_method):
    with pytest.raises(ValueError, match="already registered"):
        register_method(TOY, STRUCTURED, widest_first)
    with pytest.raises(ValueError, match="kind must be one of structured, unstructured"):
        register_method("other", "semi", widest_first)
    with pytest.raises(UserError, match="unknown pruning method 'nope'; allowed: uniform, global, widest_first"):
        get_kind("nope", STRUCTURED)
    with pytest.raises(UserError, match="unknown unstructured pruning method 'widest_first'; allowed: magnitude,"):
        get_kind(TOY, UNSTRUCTURED)


def test_a_toy_method_flows_through_config_and_spec_making(toy_method, tmp_path):
    from hplandscape.plots.pooled import method_colour, method_order
    from hplandscape.pruning.structured import prune, smallest_ratio
    from hplandscape.run.prune_step import conditions_to_prune, make_pruning_specs, stored_arch
    from hplandscape.store.study_store import StudyStore

    # config: allowed, structured, named by default as the built-in methods are
    config = tiny_config(conditions=_conditions(), pruning={"source": "random"})
    toy = config.condition(f"{TOY}-0.5")
    assert toy.structured and not toy.sparse and TOY in METHODS

    # the spec: widths from the toy's make, reachability from its narrowest architecture
    spec = prune("resnet20", TOY, 0.5)
    assert spec.method == TOY and spec.achieved_ratio <= 0.5 and spec.normalizer is None
    assert len(set(spec.widths.values())) < len(set(spec.original_widths.values()))  # widest layers cut to k
    assert ArchSpec.from_dict(spec.to_dict(), "toy spec") == spec
    assert 0 < smallest_ratio("resnet20", TOY) < 0.1
    with pytest.raises(UserError, match=r"one channel in every prunable layer"):
        prune("resnet20", TOY, 0.01)

    # the prune step makes it once and keeps it
    written = make_pruning_specs(config, tmp_path)
    store = StudyStore(tmp_path)
    assert written == [str(store.spec_path(toy.name))]
    assert stored_arch(store, config, toy).widths == spec.widths
    assert conditions_to_prune(store, config) == []

    # the pooled figure places and colours it after the built-in structured methods
    assert (method_order(TOY), method_colour(TOY)) == (3, "#123456")


def test_config_takes_the_allowed_methods_from_the_registry():
    with pytest.raises(ConfigError, match=f"must be one of none, uniform, global, .*, set; got '{TOY}'"):
        tiny_config(conditions=_conditions())
