"""Models named by import path: the user's own ``package.module:builder``, registered like a built-in.

A study may name ``model: "mypackage.nets:build_net"``. The builder is called with
``num_classes`` (and ``in_channels`` when its signature accepts it) and must return an
``nn.Module``. It is found by :func:`hplandscape.user_code.locate` (``PYTHONPATH`` first, then
beside the study YAML) and registered under its import path, so every function that takes an
architecture name (``build_model``, ``prune``, ``model_info``…) takes it too.

A study records the :class:`~hplandscape.user_code.CodeSource` (file and sha256); a process that
only reads the study (a report) never imports the module, and one that builds the network imports
it on first use and refuses a file that changed (:func:`use_source`).

Examples
--------
>>> from hplandscape.models.imported import accepts_in_channels
>>> accepts_in_channels(lambda num_classes, in_channels=3: None), accepts_in_channels(lambda num_classes: None)
(True, False)
"""

from __future__ import annotations

import inspect
from typing import Callable, Sequence

import torch
from torch import nn

from hplandscape.errors import UserError
from hplandscape.models.registry import ModelEntry, add_entry, find_entry, replace_entry
from hplandscape.user_code import CodeSource, is_import_path, locate

__all__ = ["accepts_in_channels", "check_builder_output", "locate_model", "use_source"]


def accepts_in_channels(builder: Callable) -> bool:
    """Whether ``builder`` takes an ``in_channels`` keyword (by name or through ``**kwargs``)."""
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: call it with num_classes only
        return False
    return any(p.name == "in_channels" and p.kind != p.POSITIONAL_ONLY or p.kind == p.VAR_KEYWORD for p in params)


class _LazyBuilder:
    """The builder of a recorded source: imports (and hash-checks) the module on its first call."""

    def __init__(self, source: CodeSource):
        self.source = source
        self._builder: Callable | None = None

    def __call__(self, num_classes: int, in_channels: int = 3) -> nn.Module:
        if self._builder is None:
            builder = self.source.load("model")
            if not callable(builder):
                raise UserError(f"model {self.source.import_path!r}: {type(builder).__name__} object is not "
                                f"callable; name a function or class that builds the network")
            self._builder = builder
        path = self.source.import_path
        try:
            if accepts_in_channels(self._builder):
                model = self._builder(num_classes=num_classes, in_channels=in_channels)
            else:
                model = self._builder(num_classes=num_classes)
        except Exception as e:
            raise UserError(f"model {path!r}: the builder raised {type(e).__name__}: {e} "
                            f"(called with num_classes={num_classes}"
                            f"{f', in_channels={in_channels}' if accepts_in_channels(self._builder) else ''})") from None
        if not isinstance(model, nn.Module):
            raise UserError(f"model {path!r}: the builder returned a {type(model).__name__}, not a torch.nn.Module")
        return model


class _Ambiguous:
    """The builder of an import path that studies read in one process recorded from different
    files: Python imports a module name once, so neither can be built here."""

    def __init__(self, sources: list[CodeSource]):
        self.sources = sources

    def __call__(self, num_classes: int, in_channels: int = 3) -> nn.Module:
        files = " and ".join(f"{s.file} (sha256 {s.sha256[:12]}…)" for s in self.sources)
        raise UserError(f"model {self.sources[0].import_path!r} is recorded from two files in this process: {files}; "
                        f"build each study's networks in a process of its own (one sweep per study)")


def use_source(source: CodeSource | dict | None) -> str | None:
    """Register the model a study recorded (``study.yaml``'s ``model_source``) and return its name.

    Nothing is imported yet: the module is imported, and its file's hash checked, when the network
    is first built. Registering the same source again is a no-op. Studies that recorded the same
    import path from different files (an edited model studied again in a new directory) can be read
    in one process, e.g. by a report over both; building the network there is refused by name.
    None (a built-in architecture) registers nothing.
    """
    if source is None:
        return None
    if isinstance(source, dict):
        source = CodeSource.from_dict(source, "model_source")
    existing = find_entry(source.import_path)
    if existing is None:
        add_entry(ModelEntry(source.import_path, _LazyBuilder(source), (3, 32, 32), 10))
        return source.import_path
    builder = existing.builder
    known = [builder.source] if isinstance(builder, _LazyBuilder) else getattr(builder, "sources", None)
    if known is None:
        raise UserError(f"model {source.import_path!r} is a registered architecture's name, not your file {source.file}")
    if all((k.file, k.sha256) != (source.file, source.sha256) for k in known):
        replace_entry(existing._replace(builder=_Ambiguous([*known, source])))
    return source.import_path


def locate_model(import_path: str, base_dir=None) -> CodeSource:
    """Find the builder ``import_path`` (``PYTHONPATH`` first, then ``base_dir``), check that it is
    callable, register it, and return where it came from.

    Raises
    ------
    UserError
        Not an import path, the module does not import (the ImportError's message is shown), the
        attribute is missing or not callable.
    """
    if not is_import_path(import_path):
        raise UserError(f"model {import_path!r} is not an import path 'package.module:builder'")
    source = locate(import_path, base_dir, what="model")
    builder = source.load("model")
    if not callable(builder):
        raise UserError(f"model {import_path!r}: {type(builder).__name__} object is not callable; "
                        f"name a function or class that builds the network")
    use_source(source)
    return source


def check_builder_output(name: str, num_classes: int, input_shape: Sequence[int]) -> None:
    """Build ``name`` once and run one input of ``input_shape`` through it: it must give
    ``num_classes`` outputs.

    Raises
    ------
    UserError
        The builder fails or returns no ``nn.Module`` (see :class:`_LazyBuilder`), the forward pass
        raises (its message is shown), or the output is not ``(1, num_classes)``.
    """
    from hplandscape.models import build_model

    shape = tuple(int(v) for v in input_shape)
    try:
        with torch.random.fork_rng(devices=[]):
            model = build_model(name, num_classes=num_classes, in_channels=shape[0])
    except UserError:
        raise
    except Exception as e:  # the He init of what the builder returned (e.g. uninitialised lazy layers)
        raise UserError(f"model {name!r}: initialising the network the builder returned raised "
                        f"{type(e).__name__}: {e}") from None
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *shape))
    except Exception as e:
        raise UserError(f"model {name!r}: a forward pass on one input of shape {shape} (the dataset's) raised "
                        f"{type(e).__name__}: {e}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"model {name!r}: a forward pass on one input of shape {shape} gave {got}, expected "
                        f"(1, {num_classes}) logits for the dataset's {num_classes} classes")
