"""KEY=VALUE overrides of study config keys: parsing, merging, and validation exactly as the YAML's."""

from pathlib import Path

import pytest
import yaml

from hplandscape.errors import ConfigChanged, ConfigError, UserError
from hplandscape.study.loading import load_quickstart, load_study, preset_path
from hplandscape.study.overrides import (apply_overrides, explain, is_override, parse_override, parse_overrides,
                                         restoring, split_config)
from hplandscape.study.validation import study_from_dict

QUICKSTART = preset_path("quickstart.yaml")


def test_values_are_read_as_yaml():
    values = {o.key: o.value for o in parse_overrides([
        "train.epochs=3", "train.momentum=0.8", "train.amp=true", "pruning.normalizer=null", "seeds=[0,1,2]",
        "grid.size=[3, 3]", "data.root=/data/cifar 10", "launcher.slurm_additional_parameters={constraint: a100}"])}
    assert values == {"train.epochs": 3, "train.momentum": 0.8, "train.amp": True, "pruning.normalizer": None,
                      "seeds": [0, 1, 2], "grid.size": [3, 3], "data.root": "/data/cifar 10",
                      "launcher.slurm_additional_parameters": {"constraint": "a100"}}


def test_keys_become_paths_with_list_indices():
    assert parse_override("conditions[1].ratio=0.4").path == ("conditions", 1, "ratio")
    assert parse_override("launcher.slurm_additional_parameters.mail-type=END").path == (
        "launcher", "slurm_additional_parameters", "mail-type")
    # a value may hold '=' itself: only the first one separates the key
    assert parse_override("launcher.partition=a=b").value == "a=b"


@pytest.mark.parametrize("text, words", [
    ("train.epochs", "has no '=': write KEY=VALUE, e.g. train.epochs=3"),
    ("train.epochs=", "has no value; write train.epochs=VALUE, or train.epochs=null for the default"),
    ("train..epochs=3", "'train..epochs' is not a config key"),
    ("conditions.1.ratio=0.4", "index a list with brackets: conditions[1].ratio"),
    ("=3", "'' is not a config key"),
    ("seeds=[0,", "the value is not valid YAML"),
    ("launcher.slurm_additional_parameters={a: 1, a: 2}", "a is given twice"),
])
def test_malformed_overrides_are_user_errors_quoting_them(text, words):
    with pytest.raises(UserError) as e:
        load_quickstart([text])
    assert not isinstance(e.value, ConfigError)
    assert f"override {text!r}" in str(e.value) and words in str(e.value)


def test_a_value_split_by_the_shell_says_to_quote_it():
    with pytest.raises(UserError, match="quote the whole override, e.g. 'seeds=\\[0, 1\\]'"):
        parse_override("seeds=[0,")


def test_a_key_given_twice_is_refused():
    with pytest.raises(UserError, match=r"seeds is overridden twice \('seeds=\[0\]' and 'seeds=\[1\]'\)"):
        load_quickstart(["seeds=[0]", "seeds=[1]"])


def test_overrides_change_the_resolved_config():
    base = load_quickstart()
    cfg = load_quickstart(["train.epochs=3", "seeds=[0,1,2]", "grid.size=[3,3]", "conditions[2].ratio=0.6",
                           "pruning.max_layer_prune=0.8"])
    assert (cfg.recipe.epochs, cfg.seeds, cfg.grid.n_lr, cfg.grid.n_wd) == (3, (0, 1, 2), 3, 3)
    assert cfg.conditions[2].ratio == 0.6 and cfg.conditions[2].name == "global-0.6"
    assert cfg.pruning.max_layer_prune == 0.8
    assert cfg.overrides == ("train.epochs=3", "seeds=[0,1,2]", "grid.size=[3,3]", "conditions[2].ratio=0.6",
                             "pruning.max_layer_prune=0.8")
    # everything else as in the file
    assert cfg.recipe.batch_size == base.recipe.batch_size and cfg.model == base.model
    assert cfg.to_dict()["data"] == base.to_dict()["data"]


def test_an_overridden_config_equals_the_same_config_written_in_a_file(tmp_path):
    data = yaml.safe_load(QUICKSTART.read_text())
    data["train"]["epochs"] = 3
    data["grid"]["size"] = [3, 3]
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_quickstart(["train.epochs=3", "grid.size=[3,3]"]).to_dict() == load_study(path).to_dict()


def test_a_section_the_file_leaves_out_is_created(tmp_path):
    path = tmp_path / "s.yaml"
    data = yaml.safe_load(QUICKSTART.read_text())
    del data["pruning"]
    path.write_text(yaml.safe_dump(data))
    assert load_study(path, ["pruning.normalizer=max"]).pruning.normalizer == "max"


def test_apply_leaves_the_input_alone():
    data = {"train": {"epochs": 6}}
    out = apply_overrides(data, parse_overrides(["train.epochs=2", "seeds=[0]"]))
    assert out == {"train": {"epochs": 2}, "seeds": [0]} and data == {"train": {"epochs": 6}}


@pytest.mark.parametrize("overrides, message", [
    # the same message as the YAML would give, plus the override that set the key
    (["train.epochs=-3"], "quickstart.yaml: train.epochs must be a positive integer, got -3 "
                          "(set by the override train.epochs=-3)"),
    (["train.epoch=3"], "quickstart.yaml: train.epoch is not a known key; allowed here: amp, augment"),
    (["trian.epochs=3"], "quickstart.yaml: trian is not a known key; allowed here: analysis, conditions, data"),
    (["conditions[1].ratio=2"], "quickstart.yaml: conditions[1].ratio must be < 1.0, got 2 "
                                "(set by the override 'conditions[1].ratio=2')"),
    (["grid={prior_lr: 0.1}"], "quickstart.yaml: grid.prior_wd is required (set by the override "
                               "'grid={prior_lr: 0.1}')"),
    (["grid.size=[3,3,3]"], "quickstart.yaml: grid.size must be a positive integer or a pair"),
    (["data.name=mnist"], "quickstart.yaml: data.name must be one of"),
    # a rule across keys: the overrides of the section that failed are named
    (["train.milestones_unit=epoch", "seeds=[0]"], "train.milestones are epochs (milestones_unit: epoch) and must "
                                                   "be integers in 1..3, got 0.5"),
])
def test_overridden_values_are_validated_as_the_yaml_is(overrides, message):
    with pytest.raises(ConfigError) as e:
        load_quickstart(overrides)
    assert message in str(e.value), str(e.value)
    if overrides == ["train.milestones_unit=epoch", "seeds=[0]"]:
        assert str(e.value).endswith("(with the override train.milestones_unit=epoch)")


def test_the_same_value_in_the_file_gives_the_same_message(tmp_path):
    data = yaml.safe_load(QUICKSTART.read_text())
    data["train"]["epochs"] = -3
    with pytest.raises(ConfigError) as in_file:
        study_from_dict(data, str(QUICKSTART))
    with pytest.raises(ConfigError) as overridden:
        load_quickstart(["train.epochs=-3"])
    assert str(overridden.value) == f"{in_file.value} (set by the override train.epochs=-3)"
    assert overridden.value.key == in_file.value.key == "train.epochs"


def test_a_number_yaml_reads_as_text_says_why():
    with pytest.raises(ConfigError, match=r"got '1e-4' \(YAML reads 1e-4 as text: a float needs a dot before its "
                                          r"exponent, e.g. 1.0e-4\)"):
        load_quickstart(["grid.prior_wd=1e-4"])
    assert load_quickstart(["grid.prior_wd=1.0e-4"]).grid.prior_wd == 1e-4


@pytest.mark.parametrize("text, message", [
    ("conditions[5].ratio=0.3", "conditions has 3 entries (0 to 2), so conditions[5].ratio does not exist; to "
                                "change the number of entries, override the whole list: conditions=[...] "
                                "(override 'conditions[5].ratio=0.3')"),
    ("train.epochs.x=1", "train.epochs is {epochs}, not a mapping, so it has no key 'x' (override 'train.epochs.x=1')"),
    ("data.name[0]=x", "data.name is 'digits', not a list, so data.name[0] cannot index it"),
    ("grid.log10_lr[0]=1", "grid.log10_lr is not set, so grid.log10_lr[0] cannot index it"),
])
def test_a_path_that_does_not_fit_the_file_names_the_key_once(text, message):
    with pytest.raises(ConfigError) as e:
        load_quickstart([text])
    assert message.format(epochs=load_quickstart().recipe.epochs) in str(e.value)
    assert str(e.value).count(text) == 1  # explain() does not repeat the override


def test_split_config_takes_a_first_override_for_no_file(tmp_path):
    assert split_config(None, []) == (None, ())
    assert split_config("grids/x.yaml", ["a=1"]) == ("grids/x.yaml", ("a=1",))
    assert split_config("train.epochs=3", ["seeds=[0]"]) == (None, ("train.epochs=3", "seeds=[0]"))
    odd = tmp_path / "a=b.yaml"  # a file of that name is a file
    odd.write_text("")
    assert split_config(str(odd), []) == (str(odd), ())
    assert is_override("train.epochs=3") and not is_override("grids/x.yaml") and not is_override("../a=1")


def test_restoring_overrides_are_shell_words():
    assert restoring([("train.epochs", 6, 3), ("seeds", [0, 1], [0]), ("data.root", "/my data", "/x"),
                      ("data.train_subset", None, 100)]) == [
        "train.epochs=6", "'seeds=[0, 1]'", "'data.root=/my data'", "data.train_subset=null"]
    assert restoring([("conditions", [{"name": f"condition-{i}", "method": "global"} for i in range(5)], [])]) == []


def test_explain_names_the_override_behind_a_changed_study():
    change = [("train.epochs", 6, 3)]
    with pytest.raises(ConfigChanged) as e, explain(["train.epochs=3", "seeds=[0]"]):
        raise ConfigChanged("s/study.yaml", change)
    text = str(e.value)
    assert text.startswith("s/study.yaml was made from a different config (train.epochs: 6 → 3).")
    assert text.endswith("The override train.epochs=3 made this difference. To continue the stored study "
                         "instead, give train.epochs=6 in its place.")
    with pytest.raises(ConfigChanged) as e, explain([]):  # the file changed, not the command line
        raise ConfigChanged("s/study.yaml", change)
    assert str(e.value).endswith("To continue the stored study, add the override train.epochs=6.")


def test_explain_leaves_other_errors_and_explains_once():
    with pytest.raises(UserError, match="^plain$"), explain(["a=1"]):
        raise UserError("plain")
    with pytest.raises(ConfigError) as e, explain(["train.epochs=0"]), explain(["train.epochs=0"]):
        raise ConfigError("f.yaml", "train.epochs", "must be a positive integer, got 0")
    assert str(e.value).count("set by the override") == 1


def test_a_string_is_not_a_list_of_overrides():
    with pytest.raises(TypeError, match="sequence of 'KEY=VALUE' strings"):
        load_quickstart("train.epochs=3")


def test_presets_load_unchanged_without_overrides():
    for path in Path(QUICKSTART).parent.glob("*.yaml"):
        assert load_study(path).overrides == ()


def test_an_exponent_without_a_sign_gets_the_hint_that_fixes_it():
    # YAML 1.1 reads 1.0e20 as text: its float needs a sign in the exponent (1.0e+20); nothing
    # was quoted, so "write it without quotes" would mislead.
    with pytest.raises(ConfigError) as e:
        load_quickstart(["grid.prior_lr=1.0e20"])
    assert "needs a sign in its exponent, e.g. 1.0e+20" in str(e.value), str(e.value)
    assert "without quotes" not in str(e.value)
    with pytest.raises(ConfigError, match="without quotes"):
        load_quickstart(["grid.prior_lr='0.1'"])


@pytest.mark.parametrize("first", ["conditions[-1].ratio=0.4", "train..epochs=3"])
def test_a_malformed_override_in_first_position_is_reported_as_an_override(capsys, first):
    from tests.conftest import run_cli

    code, _, err = run_cli(capsys, "sweep", first, "--dry-run")
    assert code == 2
    assert "no such file" not in err and first in err, err
