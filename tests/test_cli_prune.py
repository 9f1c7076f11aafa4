"""`hplandscape prune`: the global-pruning settings and each layer's kept fraction."""

import json

import pytest

from conftest import run_cli


DIGITS = ("--in-channels", "1", "--input-size", "8")  # small: the command runs in about a second


def test_prune_json_shows_kept_fractions_and_the_settings(capsys):
    code, out, _ = run_cli(capsys, "prune", "resnet20", "--method", "global", "--ratio", "0.5", *DIGITS, "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["normalizer"], doc["max_layer_prune"]) == ("mean", 0.9)
    fractions = [layer["kept_fraction"] for layer in doc["layers"]]
    assert fractions == [pytest.approx(layer["kept_channels"] / layer["original_channels"]) for layer in doc["layers"]]
    assert doc["min_kept_fraction"] == pytest.approx(min(fractions)) and min(fractions) >= 0.1
    assert isinstance(doc["layers_at_cap"], list)


def test_prune_text_with_the_raw_variant(capsys):
    code, out, _ = run_cli(capsys, "prune", "resnet20", "--method", "global", "--ratio", "0.5", *DIGITS,
                           "--normalizer", "none", "--max-layer-prune", "0.5")
    assert code == 0
    assert "importance normalizer: none; no layer loses more than 50% of its channels" in out
    assert "fraction" in out.splitlines()[5]  # the table header
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("minimum kept fraction"))
    assert float(line.split(":")[1].split(";")[0]) >= 0.5 and "layers at the cap" in line


@pytest.mark.parametrize("argv, words", [
    (["--normalizer", "l2"], "invalid choice: 'l2'"),
    (["--max-layer-prune", "1"], "in (0, 1), got '1'"),
    (["--max-layer-prune", "x"], "must be a number in (0, 1), got 'x'"),
])
def test_bad_global_settings_exit_2(capsys, argv, words):
    code, _, err = run_cli(capsys, "prune", "resnet20", "--method", "global", "--ratio", "0.5", *argv)
    assert code == 2 and words in err, err
