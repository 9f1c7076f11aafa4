"""Every command and option explains itself; `--version` says which hplandscape this is."""

import argparse
import re
from importlib import metadata

import pytest

import hplandscape
from conftest import run_cli
from hplandscape.cli import build_parser
from hplandscape.provenance import package_version


def _undocumented(parser: argparse.ArgumentParser, where: str = "hplandscape") -> list:
    """Every argument and subcommand under ``parser`` without a help text, as 'COMMAND ARGUMENT'."""
    out = []
    for action in parser._actions:  # argparse keeps no public list of a parser's arguments
        name = "/".join(action.option_strings) or action.metavar or action.dest
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for command, sub in action.choices.items():
                if not helps.get(command):
                    out.append(f"{where} {command} (the command)")
                out += _undocumented(sub, f"{where} {command}")
        elif not action.help or action.help == argparse.SUPPRESS:
            out.append(f"{where} {name}")
    return out


def test_every_command_and_option_has_help():
    assert _undocumented(build_parser()) == []


def test_the_walk_finds_a_missing_help():
    # The check must be able to fail: an option and a command without help are both reported.
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["status"].add_argument("--colour")
    sub.add_parser("mystery")
    assert _undocumented(parser) == ["hplandscape status --colour", "hplandscape mystery (the command)"]


@pytest.mark.parametrize("command", ["status", "collect", "sweep", "grid", "prune"])
def test_help_describes_the_arguments(capsys, command):
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0
    if command == "collect":
        assert "file format of the table" in out
    if command in ("status", "collect"):
        assert "a study directory (made by `hplandscape sweep`)" in out
    if command in ("sweep", "grid"):
        assert "KEY=VALUE" in out and "train.epochs=3" in out


def test_version_comes_from_the_package_metadata(capsys):
    code, out, err = run_cli(capsys, "--version")
    assert code == 0, err
    assert re.fullmatch(rf"hplandscape {re.escape(package_version())}( \(git [0-9a-f]{{10}}(, with local changes)?\))?\n",
                        out), out
    try:
        installed = metadata.version("hplandscape")
    except metadata.PackageNotFoundError:  # a checkout used without installing it
        installed = hplandscape.__version__
    assert package_version() == installed


def test_version_falls_back_to_the_module_attribute(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    monkeypatch.setattr(hplandscape, "__version__", "9.8.7")
    assert package_version() == "9.8.7"
