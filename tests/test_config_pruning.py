"""The ``pruning:`` section: normaliser and layer cap of global pruning, validated in study/validation.py."""

import pytest
import yaml

from hplandscape.errors import ConfigError
from hplandscape.pruning.arch_spec import DEFAULT_MAX_LAYER_PRUNE, DEFAULT_NORMALIZER
from hplandscape.study.loading import load_study
from hplandscape.study.validation import study_from_dict


def _study(**pruning):
    d = {"name": "t", "model": "resnet20", "data": {"name": "digits"},
         "conditions": [{"method": "none"}, {"method": "global", "ratio": 0.5}],
         "grid": {"prior_lr": 0.1, "prior_wd": 1e-4, "size": [3, 3], "step": 0.5}, "seeds": [0],
         "train": {"epochs": 2}}
    if pruning:
        d["pruning"] = pruning
    return d


def test_defaults_and_round_trip():
    cfg = study_from_dict(_study(), "x.yaml")
    assert (cfg.pruning.normalizer, cfg.pruning.max_layer_prune) == (DEFAULT_NORMALIZER, DEFAULT_MAX_LAYER_PRUNE)
    cfg = study_from_dict(_study(normalizer="none", max_layer_prune=0.5, source="random"), "x.yaml")
    assert (cfg.pruning.source, cfg.pruning.normalizer, cfg.pruning.max_layer_prune) == ("random", "none", 0.5)
    again = study_from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict())), "again.yaml")
    assert again.pruning == cfg.pruning


@pytest.mark.parametrize("pruning, key, words", [
    ({"normalizer": "l2"}, "pruning.normalizer",
     "must be one of none, mean, max, sum, standarization, gaussian, lamp; got 'l2'"),
    ({"normalizer": None}, "pruning.normalizer", "is null; write 'none' for the raw L1 norms"),
    ({"normalizer": 1}, "pruning.normalizer", "must be a non-empty string, got 1"),
    ({"max_layer_prune": 1.0}, "pruning.max_layer_prune", "must be a number in (0, 1)"),
    ({"max_layer_prune": 0}, "pruning.max_layer_prune", "got 0"),
    ({"max_layer_prune": "0.9"}, "pruning.max_layer_prune", "got '0.9'"),
    ({"max_layer_prune": True}, "pruning.max_layer_prune", "got True"),
    ({"cap": 0.5}, "pruning.cap", "is not a known key; allowed here: max_layer_prune, normalizer, pipeline, "
                                   "set_zeta, source, sparse_layer_floor"),
])
def test_bad_pruning_settings_name_file_key_and_value(tmp_path, pruning, key, words):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_study(**pruning)))
    with pytest.raises(ConfigError) as err:
        load_study(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {key} ") and words in msg, msg


def test_check_runnable_counts_the_cap_in_the_smallest_ratio():
    from hplandscape.pruning.structured import smallest_ratio
    from hplandscape.run.preflight import check_runnable

    shape = dict(in_channels=1, input_shape=(1, 8, 8))  # digits
    capped = smallest_ratio("resnet20", "global", **shape)
    loose = smallest_ratio("resnet20", "global", max_layer_prune=0.99, **shape)
    assert loose < 0.1 < capped
    d = _study()
    d["conditions"][1]["ratio"] = 0.1
    with pytest.raises(ConfigError) as err:
        check_runnable(study_from_dict(d, "x.yaml"))
    assert str(err.value).startswith(f"x.yaml: conditions[1].ratio is 0.1, unreachable for resnet20 (global pruning) "
                                     f"at input (1, 8, 8): the smallest reachable ratio is {capped:.4f} (every "
                                     "prunable layer at its cap, keeping ≥ 10 % of its channels; a larger "
                                     "pruning.max_layer_prune reaches lower)")
    d["pruning"] = {"max_layer_prune": 0.99}
    check_runnable(study_from_dict(d, "x.yaml"))
