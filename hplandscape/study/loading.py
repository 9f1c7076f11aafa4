"""Reading a study config from YAML: :func:`load_study` (a file and ``KEY=VALUE`` overrides),
:func:`load_quickstart` (the embedded quickstart), :func:`preset_path` (the shipped ``grids/``).

PyYAML's safe loader, except that a key given twice in one mapping is an error; the mapping read
is validated by :func:`hplandscape.study.validation.study_from_dict`.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import yaml

from hplandscape.errors import ConfigError
from hplandscape.path_checks import check_path
from hplandscape.study.config import QUICKSTART, StudyConfig
from hplandscape.study.overrides import apply_overrides, explain, parse_overrides
from hplandscape.study.validation import study_from_dict

# --------------------------------------------------------------------------------------------
# YAML: PyYAML's safe loader, but a key given twice is an error.


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, first_line: int, line: int):
        super().__init__(f"{key} is given twice (lines {first_line} and {line})")
        self.key, self.first_line, self.line = key, first_line, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping holding the same key twice.

    ``yaml.safe_load`` silently keeps the last of two equal keys, so a second ``epochs:`` further
    down a file would override the first without a word. The node tree is checked before it is
    constructed, which gives the dotted key and both line numbers.
    """

    def construct_document(self, node):
        _check_unique_keys(node, "", set())
        return super().construct_document(node)


def _check_unique_keys(node, path: str, visited: set) -> None:
    if id(node) in visited:  # an alias to a node already checked (or to an ancestor)
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *anchor" merges; its keys may repeat
                continue
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "<complex key>"
            dotted = f"{path}.{name}" if path else name
            identity = (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            if identity in first:
                raise _DuplicateKey(dotted, first[identity], key_node.start_mark.line + 1)
            first[identity] = key_node.start_mark.line + 1
            _check_unique_keys(value_node, dotted, visited)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_unique_keys(item, f"{path}[{i}]", visited)


def load_study(path, overrides=()) -> StudyConfig:
    """Read and validate a study YAML file, with ``KEY=VALUE`` overrides of its settings.

    Parameters
    ----------
    path : str or Path
    overrides : sequence of str
        E.g. ``["train.epochs=3", "seeds=[0, 1, 2]"]`` (:mod:`hplandscape.study.overrides`): merged into
        the file's settings before they are validated, so they are checked exactly as the file is.

    Raises
    ------
    ConfigError
        The file is missing, is not YAML, repeats a key, or holds an invalid value, or an
        override does (the message says which, and names the override that set the key).
    UserError
        A malformed override (no ``=``, not a key, a value that is not YAML), or one key twice.

    Examples
    --------
    >>> cfg = load_study(preset_path("quickstart.yaml"), ["train.epochs=2", "grid.size=[3, 3]"])
    >>> cfg.recipe.epochs, cfg.grid.n_lr, cfg.overrides
    (2, 3, ('train.epochs=2', 'grid.size=[3, 3]'))
    """
    source = str(path)
    parsed = parse_overrides(overrides, loader=_UniqueKeyLoader)
    try:
        text = check_path(path, "the study config").read_text()
    except FileNotFoundError:
        raise ConfigError(source, "", "no such file; presets live in grids/ (e.g. grids/resnet56_cifar10.yaml)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(source, "", f"cannot be read as a text file ({e.__class__.__name__})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 — a SafeLoader subclass
    except _DuplicateKey as e:
        raise ConfigError(source, e.key, f"is given twice (lines {e.first_line} and {e.line}); "
                                         "each key may appear once per mapping") from None
    except yaml.YAMLError as e:
        raise ConfigError(source, "", f"is not valid YAML: {str(e).splitlines()[0]} "
                          f"({getattr(e, 'problem_mark', '') or ''})".rstrip()) from None
    texts = tuple(o.text for o in parsed)
    with explain(texts):
        config = study_from_dict(apply_overrides(data, parsed, source), source)
    return dataclasses.replace(config, overrides=texts)


def preset_path(name: str) -> Path:
    """Path of a study preset shipped with the package (the repository's ``grids/`` folder)."""
    return Path(str(resources.files("hplandscape.grids").joinpath(name)))


def load_quickstart(overrides=()) -> StudyConfig:
    """The embedded quickstart study: a small ResNet on scikit-learn's bundled digits.

    ``overrides`` (``KEY=VALUE`` strings) change its settings as in :func:`load_study`.
    """
    return load_study(preset_path(QUICKSTART), overrides)
