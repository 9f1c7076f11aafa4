"""Overrides of study config keys, as on the command line: ``train.epochs=3 seeds=[0,1,2]``.

An override is ``KEY=VALUE``. KEY is a dotted path into the study YAML, with ``[i]`` for the
i-th entry of a list (``conditions[1].ratio``: the spelling of the keys in error messages). VALUE
is read as YAML, as if it stood after ``KEY:`` in the file: ``3`` is an integer, ``0.5`` a float,
``true`` a boolean, ``null`` the default, ``[3, 3]`` a list, ``{method: global, ratio: 0.4}`` a
mapping, anything else a string.

The overrides are merged into the mapping read from the YAML file *before* it is validated
(:func:`hplandscape.study.validation.study_from_dict`), so an overridden value passes the same checks, with
the same messages, as one written in the file, and an unknown key is refused as it is there.
:func:`explain` then adds which override set the key a message names. The resolved config,
overrides applied, is what a study directory stores in ``study.yaml``.

This module reads no files and imports no other part of hplandscape but its errors:
:func:`hplandscape.study.loading.load_study` applies the overrides.

Examples
--------
>>> ovs = parse_overrides(["train.epochs=3", "seeds=[0, 1, 2]", "conditions[1].ratio=0.4"])
>>> [o.path for o in ovs]
[('train', 'epochs'), ('seeds',), ('conditions', 1, 'ratio')]
>>> apply_overrides({"train": {"epochs": 6}, "conditions": [{"method": "none"}, {"method": "global"}]}, ovs)
{'train': {'epochs': 3}, 'conditions': [{'method': 'none'}, {'method': 'global', 'ratio': 0.4}], 'seeds': [0, 1, 2]}
"""

from __future__ import annotations

import contextlib
import copy
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import yaml

from hplandscape.errors import ConfigChanged, ConfigError, UserError

#: One key of a mapping: what the study YAML uses (letters, digits, ``_``; ``-`` inside, as some
#: SLURM options in ``launcher.slurm_additional_parameters`` are spelled).
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_KEY = re.compile(rf"{_NAME}(?:\[\d+\])*(?:\.{_NAME}(?:\[\d+\])*)*")
_PART = re.compile(rf"({_NAME})|\[(\d+)\]")
EXAMPLE = "train.epochs=3"
#: Restoring overrides longer than this are not suggested (a whole ``conditions`` list).
_SUGGEST_CHARS = 80


@dataclass(frozen=True)
class Override:
    """One ``KEY=VALUE`` override: the text as given, its key, the key as a path, the YAML value."""

    text: str
    key: str
    path: tuple  # str for a mapping key, int for a list index
    value: Any


def is_override(text: str) -> bool:
    """Whether ``text`` has the form ``KEY=VALUE`` (the value may be empty or invalid YAML)."""
    key, sep, _ = text.partition("=")
    return bool(sep) and _KEY.fullmatch(key) is not None


def parse_override(text: str, loader=yaml.SafeLoader) -> Override:
    """Parse one ``KEY=VALUE`` override.

    Parameters
    ----------
    text : str
        E.g. ``"grid.size=[3, 3]"``.
    loader : yaml loader class
        How VALUE is read; :func:`hplandscape.study.loading.load_study` passes the loader that reads the
        study files (a key given twice in a flow mapping is refused there too).

    Raises
    ------
    UserError
        No ``=``, a malformed key, an empty value, or a value that is not valid YAML; the message
        quotes the override.
    """
    key, sep, raw = text.partition("=")
    if not sep:
        raise UserError(f"override {text!r} has no '=': write KEY=VALUE, e.g. {EXAMPLE}")
    if _KEY.fullmatch(key) is None:
        hint = ""
        if re.search(r"\.\d", key):
            hint = " (index a list with brackets: conditions[1].ratio)"
        raise UserError(f"override {text!r}: {key!r} is not a config key; keys are dotted names such as "
                        f"train.epochs or conditions[1].ratio{hint}")
    if not raw.strip():
        raise UserError(f"override {text!r} has no value; write {key}=VALUE, or {key}=null for the default")
    try:
        value = yaml.load(raw, Loader=loader)  # noqa: S506 — a SafeLoader (sub)class
    except yaml.YAMLError as e:
        unbalanced = raw.count("[") != raw.count("]") or raw.count("{") != raw.count("}")
        hint = ("; a shell splits an unquoted value at its spaces: quote the whole override, e.g. 'seeds=[0, 1]'"
                if unbalanced else "")
        raise UserError(f"override {text!r}: the value is not valid YAML ({str(e).splitlines()[0]}){hint}") from None
    path = tuple(name if name else int(index) for name, index in _PART.findall(key))
    return Override(text, key, path, value)


def parse_overrides(texts: Iterable[str], loader=yaml.SafeLoader) -> tuple:
    """Parse overrides in order; a key given twice is refused (as in a YAML mapping).

    Raises
    ------
    UserError
        See :func:`parse_override`; or the same key twice, naming both overrides.
    """
    if isinstance(texts, str):
        raise TypeError(f"overrides must be a sequence of 'KEY=VALUE' strings, got the string {texts!r}")
    out: dict[str, Override] = {}
    for text in texts:
        o = parse_override(text, loader)
        if o.key in out:
            raise UserError(f"the key {o.key} is overridden twice ({out[o.key].text!r} and {text!r}); "
                            "give each key once")
        out[o.key] = o
    return tuple(out.values())


def apply_overrides(data: Any, overrides: Iterable[Override], source: str = "<dict>") -> Any:
    """A copy of the parsed study mapping ``data`` with ``overrides`` set, in order.

    Missing mappings on the way are created (``pruning.normalizer=max`` in a file without a
    ``pruning`` section); whether a key is allowed is left to the validation, so an unknown key
    gets the same message as in a file. A list entry must exist already.

    Raises
    ------
    ConfigError
        The path runs through a value that is not a mapping or list, or indexes past a list's end;
        the message names ``source``, the key and the override.
    """
    out = copy.deepcopy(data)
    for o in overrides:
        if not isinstance(out, dict):
            return out  # not a mapping at all: the validation says so, naming the file
        _set(out, o, source)
    return out


def _set(root: dict, o: Override, source: str) -> None:
    def fail(path: tuple, message: str) -> ConfigError:
        # Names the override itself: explain() would only repeat it.
        return _explained(ConfigError(source, _spell(path), f"{message} (override {o.text!r})"))

    node: Any = root
    for depth, part in enumerate(o.path):
        here = o.path[:depth]
        if isinstance(part, int):
            if not isinstance(node, list):
                raise fail(here, f"is {_kind(node)}, not a list, so {o.key} cannot index it")
            if part >= len(node):
                entries = f"{len(node)} entries (0 to {len(node) - 1})" if node else "no entries"
                raise fail(here, f"has {entries}, so {o.key} does not exist; to change the number of "
                                 f"entries, override the whole list: {_spell(here)}=[...]")
        elif not isinstance(node, dict):
            raise fail(here, f"is {_kind(node)}, not a mapping, so it has no key {part!r}")
        if depth == len(o.path) - 1:
            node[part] = copy.deepcopy(o.value)
            return
        if isinstance(node, dict) and node.get(part) is None:
            if isinstance(o.path[depth + 1], int):
                raise fail(o.path[:depth + 1], f"is not set, so {o.key} cannot index it; override the whole "
                                               f"list: {_spell(o.path[:depth + 1])}=[...]")
            node[part] = {}  # a section the file leaves out (or writes as `key:` with no value)
        node = node[part]


def _spell(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _kind(value) -> str:
    return "a list" if isinstance(value, list) else f"{value!r}"


def split_config(first: str | None, rest: Iterable[str] = ()) -> tuple:
    """Tell the study YAML from the overrides among a command's positional arguments.

    ``hplandscape sweep train.epochs=3`` gives no file: its first positional argument is an
    override when it has the ``KEY=VALUE`` form and names no existing file.

    Returns
    -------
    (str or None, tuple of str)
        The config path (None: none given) and the override texts.
    """
    if first is not None and not Path(first).exists() and (
            is_override(first) or ("=" in first and not first.lower().endswith((".yaml", ".yml")))):
        # KEY=VALUE, or a malformed one ("conditions[-1].ratio=0.4"): an override, which the
        # override parser then names, never "no such file"
        return None, (first, *rest)
    return first, tuple(rest)


def _key_of(text: str) -> str:
    return text.partition("=")[0]


def _covers(override_key: str, key: str) -> bool:
    """Whether an override of ``override_key`` sets ``key`` or a part of it (or the reverse)."""
    return (override_key == key or key.startswith(override_key + ".") or key.startswith(override_key + "[")
            or override_key.startswith(key + ".") or override_key.startswith(key + "["))


def _blamed(key: str, overrides: Iterable[str]) -> list:
    return [t for t in overrides if _covers(_key_of(t), key)]


def restoring(changes: Iterable[tuple]) -> list:
    """Overrides that set every changed key back to its stored value, as shell words.

    Parameters
    ----------
    changes : iterable of (key, stored, new)
        As :class:`hplandscape.errors.ConfigChanged` holds them.

    Returns
    -------
    list of str
        ``KEY=VALUE`` words quoted for a POSIX shell where needed (empty when one would be longer
        than 80 characters: a whole list of conditions is better fixed in the file).
    """
    words = [shlex.quote(f"{key}={_flow(old)}") for key, old, _ in changes]
    return words if all(len(w) <= _SUGGEST_CHARS for w in words) else []


def _flow(value) -> str:
    """``value`` as one line of YAML, the form an override's VALUE takes."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()
    return text.removesuffix("...").strip()  # a bare scalar document ends with '...'


@contextlib.contextmanager
def explain(overrides: Iterable[str]) -> Iterator[None]:
    """Say which overrides are behind a config error raised inside the block.

    A :class:`~hplandscape.errors.ConfigError` whose key an override set is raised again with
    ``(set by the override KEY=VALUE)``; with overrides that set other keys it names them all (a
    rule across keys may have failed). A :class:`~hplandscape.errors.ConfigChanged` (a study
    directory of another config) gets the overrides behind the difference and the overrides that
    would continue the stored study. Errors pass through unchanged once explained.
    """
    overrides = tuple(overrides)
    try:
        yield
    except ConfigError as e:
        if getattr(e, "explained", False) or not overrides:
            raise
        blamed = _blamed(e.key, overrides) if e.key else []
        # A rule across keys (epoch milestones beyond the epochs after train.epochs=2): the overrides
        # of the same section, else all of them, were part of what failed.
        section = [t for t in overrides if e.key and _PART.match(t).group() == _PART.match(e.key).group()]
        near = section or list(overrides)
        note = (f"(set by the override{'s' if len(blamed) > 1 else ''} {' '.join(map(shlex.quote, blamed))})"
                if blamed else
                f"(with the override{'s' if len(near) > 1 else ''} {' '.join(map(shlex.quote, near))})")
        raise _explained(ConfigError(e.source, e.key, f"{e.message} {note}")) from None
    except ConfigChanged as e:
        if getattr(e, "explained", False):
            raise
        hint = " ".join(h for h in (e.hint, _changed_hint(e.changes, overrides)) if h)
        raise _explained(ConfigChanged(e.study_yaml, e.changes, hint)) from None


def _explained(error: UserError) -> UserError:
    error.explained = True
    return error


def _changed_hint(changes: tuple, overrides: tuple) -> str:
    blamed = [t for t in overrides if any(_covers(_key_of(t), key) for key, _, _ in changes)]
    words = restoring(changes)
    parts = []
    if blamed:
        parts.append(f"The override{'s' if len(blamed) > 1 else ''} {' '.join(map(shlex.quote, blamed))} "
                     f"made {'these differences' if len(changes) > 1 else 'this difference'}.")
    if words and blamed:
        parts.append(f"To continue the stored study instead, give {' '.join(words)} in "
                     f"{'their' if len(blamed) > 1 else 'its'} place.")
    elif words:
        parts.append(f"To continue the stored study, add the override{'s' if len(words) > 1 else ''} "
                     f"{' '.join(words)}.")
    return " ".join(parts)
