"""The registry of architectures: a name maps to one builder and the input shape it expects.

Builders are registered with :func:`register_model`; a second registration under the same name is
an error rather than a silent overwrite, so two modules can never disagree about what ``resnet56``
means.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from torch import nn

from hplandscape.errors import UserError

Builder = Callable[..., nn.Module]


class ModelEntry(NamedTuple):
    """A registered architecture.

    ``builder(num_classes, in_channels)`` returns an unpruned model; ``input_shape`` is the
    (channels, height, width) and ``num_classes`` the class count the architecture is built and
    counted with by default (10 for CIFAR models, 1000 for ImageNet ones). ``cpu_channels_last``:
    whether the architecture, pruned or not, trains faster on the CPU in the channels_last memory
    format than in NCHW (measured with ``benchmarks/cpu_choices.py layout``; see
    ``docs/performance.md``).
    """

    name: str
    builder: Builder
    input_shape: tuple[int, int, int]
    num_classes: int
    cpu_channels_last: bool = False


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10,
                   cpu_channels_last: bool = False) -> Callable[[Builder], Builder]:
    """Register ``builder(num_classes, in_channels) -> nn.Module`` under ``name``.

    Parameters
    ----------
    name : str
        Registry key, e.g. ``"resnet56"``.
    input_shape : tuple of int
        Default (channels, height, width) for counting FLOPs.
    num_classes : int
        Default number of classes.
    cpu_channels_last : bool
        Train in the channels_last memory format on the CPU (where measured to be faster).

    Raises
    ------
    ValueError
        If ``name`` is already registered (a programming error, not user input).
    """

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered "
                             f"(by {_REGISTRY[name].builder.__module__}.{_REGISTRY[name].builder.__qualname__})")
        _REGISTRY[name] = ModelEntry(name, builder, tuple(input_shape), num_classes, bool(cpu_channels_last))
        return builder

    return decorator


def list_models() -> list[str]:
    """Names of the architectures registered by name, sorted (models loaded by import path left out)."""
    return sorted(n for n in _REGISTRY if ":" not in n)


def add_entry(entry: ModelEntry) -> None:
    """Register a ready entry (a model named by import path: :mod:`hplandscape.models.imported`)."""
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} is already registered")
    _REGISTRY[entry.name] = entry


def replace_entry(entry: ModelEntry) -> None:
    """Replace the entry of a model named by import path (never a built-in's)."""
    if ":" not in entry.name or entry.name not in _REGISTRY:
        raise ValueError(f"only a registered model named by import path can be replaced, not {entry.name!r}")
    _REGISTRY[entry.name] = entry


def find_entry(name: str) -> ModelEntry | None:
    """The registry entry of ``name``, or None."""
    return _REGISTRY.get(name) if isinstance(name, str) else None


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name raises ``UserError`` listing the known ones."""
    if not isinstance(name, str) or name not in _REGISTRY:
        if isinstance(name, str) and ":" in name:
            raise UserError(f"model {name!r} is named by import path but was not loaded in this process; "
                            f"give it in a study config (model: {name}) so it is located and recorded")
        raise UserError(f"unknown model {name!r}; available: {', '.join(list_models())}, "
                        f"or your own as 'package.module:builder'")
    return _REGISTRY[name]
