"""The registry of pruning methods: a name maps to one :class:`PruningMethod`, as
:mod:`hplandscape.models.registry` maps a name to an architecture.

Each method declares, in one place, everything the rest of the package asks about it:

- its **kind**: ``structured`` (a condition's ``ratio`` is the fraction of FLOPs kept; the method
  chooses per-layer widths, :mod:`hplandscape.pruning.structured` cuts the filters) or ``unstructured`` (the
  ratio is the density of the prunable weights; the method chooses masks, :mod:`hplandscape.pruning.unstructured`
  holds them through training);
- how it **makes its spec** (``make``): a structured method's per-layer widths for a FLOPs target,
  an unstructured method's masks for a density;
- its **settings**: the fields of its stored spec that come from the study's ``pruning:`` section
  (global pruning's ``normalizer`` and ``max_layer_prune``, SET's ``zeta`` from ``set_zeta``), and
  so how a stored spec is **checked** against a config (:meth:`PruningMethod.stored_settings_match`);
- what acts between epochs (SET's prune-and-regrow), and how plots tell it apart (its colour).

The module is light: it imports neither torch nor numpy, so that the config's validation checks a
condition's method from the registry and commands that only read YAML or JSON stay without torch.
An implementation may therefore be given as ``"module:function"`` and is imported when first
used; the built-in methods at the end of this module name theirs in :mod:`hplandscape.pruning.structured` and
:mod:`hplandscape.pruning.unstructured` that way (as strings, they add no edge to the module import graph, so
those modules may import the registry). A method whose code is light, or one a plugin or a test
registers, passes the function itself.

Adding a pruning method touches this module (its entry), the module of its implementation and a
test (docs/architecture.md, "Add a pruning method").

Examples
--------
>>> get_method("global").kind, get_method("set").settings
('structured', {'zeta': 'set_zeta'})
>>> list(method_names("structured")), "set" in method_names("unstructured")
(['uniform', 'global'], True)
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from hplandscape.errors import UserError

STRUCTURED = "structured"
UNSTRUCTURED = "unstructured"
KINDS = (STRUCTURED, UNSTRUCTURED)
#: What a stored spec that lacks one of the method's settings means: written before the method
#: recorded it, so made again (``remake``), or made the one way there was, so kept (``keep``).
ABSENT_SETTINGS = ("remake", "keep")


@dataclass(frozen=True)
class PruningMethod:
    """A registered pruning method.

    Attributes
    ----------
    name : str
        A condition's ``method`` in a study config, the ``method`` of the specs it makes.
    kind : {"structured", "unstructured"}
    make : callable or str
        Structured: ``make(fm, norms, target, **settings) -> widths``, the kept width of every
        prunable layer (a numpy integer array in ``fm.keys`` order) whose FLOPs ``fm.flops(widths)``
        land closest to ``target``; ``norms`` are the layers' filter L1 norms (all zeros when the
        narrowest architecture is asked for, ``target`` 0). Unstructured:
        ``make(weights, density, *, seed, **settings) -> {layer: bool tensor}`` for the prunable
        weights of :func:`hplandscape.pruning.unstructured.prunable_weights`. A string ``"module:function"``
        is imported when first used.
    settings : mapping of str to str
        Spec field → the key of the study's ``pruning:`` section it is made with; the settings are
        passed to ``make`` by field name and recorded in the spec.
    absent_settings : {"remake", "keep"}
        A stored spec without a setting: made again (settings recorded only since some version)
        or kept (one made before the setting existed is what the default makes).
    narrowest : callable, optional
        Structured: ``narrowest(**settings) -> str``, the narrowest architecture in words, for the
        error that refuses an unreachable ratio.
    seeded : bool
        Unstructured: the masks draw positions at random with the spec's ``mask_seed``.
    evolve : callable or str, optional
        Unstructured: the topology step between epochs,
        ``evolve(weights, masks, *, generator, **settings) -> masks``; None keeps the masks fixed.
    colour : str, optional
        Its boxes' colour in the pooled risk figure (grey when not given).
    """

    name: str
    kind: str
    make: Callable | str
    settings: Mapping[str, str] = field(default_factory=dict)
    absent_settings: str = "keep"
    narrowest: Callable[..., str] | None = None
    seeded: bool = False
    evolve: Callable | str | None = None
    colour: str | None = None

    @property
    def structured(self) -> bool:
        return self.kind == STRUCTURED

    def maker(self) -> Callable:
        """The ``make`` function (imported now when it was named as ``"module:function"``)."""
        return _resolve(self.make, f"pruning method {self.name!r}: make")

    def evolver(self) -> Callable | None:
        """The ``evolve`` function, or None when the masks stay fixed."""
        return None if self.evolve is None else _resolve(self.evolve, f"pruning method {self.name!r}: evolve")

    def settings_of(self, pruning) -> dict[str, Any]:
        """The method's settings as a study's ``pruning:`` section (a ``PruningConfig``) gives them."""
        return {f: getattr(pruning, key) for f, key in self.settings.items()}

    def stored_settings_match(self, spec, pruning) -> bool:
        """Whether a stored spec (ArchSpec or MaskSpec) was made with the settings of ``pruning``.

        A setting the spec lacks (None) follows :attr:`absent_settings`.
        """
        for f, want in self.settings_of(pruning).items():
            stored = getattr(spec, f, None)
            if stored is None:
                if self.absent_settings == "remake":
                    return False
            elif not _same(stored, want):
                return False
        return True

    def narrowest_words(self, **settings) -> str:
        """The narrowest architecture of a structured method, in words."""
        if self.narrowest is None:
            return "the narrowest architecture the method makes"
        return self.narrowest(**{k: v for k, v in settings.items() if k in self.settings})


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=1e-12)


def _resolve(target: Callable | str, what: str) -> Callable:
    if callable(target):
        return target
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise RuntimeError(f"{what}: cannot import {target!r} ({e})") from e


_REGISTRY: dict[str, PruningMethod] = {}


def register_method(name: str, kind: str, make: Callable | str | None = None, **declared):
    """Register a pruning method; with ``make`` omitted, a decorator of the ``make`` function.

    Parameters
    ----------
    name : str
        The method's name in a study config (``conditions[i].method``).
    kind : {"structured", "unstructured"}
    make : callable or str, optional
        See :class:`PruningMethod`.
    **declared
        The other fields of :class:`PruningMethod` (``settings``, ``absent_settings``,
        ``narrowest``, ``seeded``, ``evolve``, ``colour``).

    Raises
    ------
    ValueError
        ``name`` is registered already, or is ``none`` (the basemodel), or ``kind``,
        ``absent_settings`` or a setting's field is not one the registry knows (programming
        errors, not user input).

    Examples
    --------
    >>> @register_method("halves", STRUCTURED)           # doctest: +SKIP
    ... def halves(fm, norms, target):
    ...     return (fm.original + 1) // 2
    """
    if name in _REGISTRY:
        raise ValueError(f"pruning method {name!r} is already registered ({_REGISTRY[name].make!r})")
    if not isinstance(name, str) or not name or name == "none":
        raise ValueError(f"a pruning method needs a name other than 'none' (the basemodel), got {name!r}")
    if kind not in KINDS:
        raise ValueError(f"pruning method {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if declared.get("absent_settings", "keep") not in ABSENT_SETTINGS:
        raise ValueError(f"pruning method {name!r}: absent_settings must be one of {', '.join(ABSENT_SETTINGS)}")

    def add(fn):
        _REGISTRY[name] = PruningMethod(name, kind, fn, **declared)
        return fn

    return add if make is None else add(make)


def unregister_method(name: str) -> None:
    """Remove a method (tests that register a toy one clean up with it)."""
    _REGISTRY.pop(name, None)


def get_method(name: str) -> PruningMethod:
    """The registered method ``name``; an unknown name raises ``UserError`` listing the known ones."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UserError(f"unknown pruning method {name!r}; allowed: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def get_kind(name: str, kind: str) -> PruningMethod:
    """The registered method ``name`` of ``kind``; else ``UserError`` listing the methods of that kind."""
    m = _REGISTRY.get(name) if isinstance(name, str) else None
    if m is None or m.kind != kind:
        # "pruning method" alone has meant the structured ones since before unstructured ones existed
        what = "pruning method" if kind == STRUCTURED else f"{kind} pruning method"
        raise UserError(f"unknown {what} {name!r}; allowed: {', '.join(method_names(kind))}")
    return m


class MethodNames(Sequence):
    """The names of the registered methods (of one kind), read from the registry whenever used.

    A live view, not a tuple taken at import: a method registered later (a plugin, a test) is in
    it too, so the modules that name the allowed methods (``config.METHODS``,
    ``archspec.METHODS``, ``maskspec.SPARSE_METHODS``) never disagree with the registry. In
    registration order, after ``prefix``.
    """

    def __init__(self, kind: str | None = None, prefix: tuple = ()):
        self.kind, self.prefix = kind, tuple(prefix)

    def _names(self) -> tuple:
        return self.prefix + tuple(n for n, m in _REGISTRY.items() if self.kind in (None, m.kind))

    def __getitem__(self, i):
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name) -> bool:
        return name in self._names()

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and not isinstance(other, str) and tuple(self) == tuple(other)

    __hash__ = None

    def __repr__(self) -> str:
        return repr(self._names())


def method_names(kind: str | None = None) -> MethodNames:
    """The registered methods' names (of ``kind``), a live view (:class:`MethodNames`)."""
    return MethodNames(kind)


# -- the built-in methods ---------------------------------------------------------------------------
# Their code is in the modules that hold the weights (torch): named by string, imported when used.
# Registration order is the order the config's errors and the figures list them in.

register_method("uniform", STRUCTURED, "hplandscape.pruning.structured:uniform_widths",
                narrowest=lambda: "one channel in every prunable layer", colour="#7fa7d9")
register_method("global", STRUCTURED, "hplandscape.pruning.structured:_global_widths",
                # specs written before global pruning recorded its settings are made again
                settings={"normalizer": "normalizer", "max_layer_prune": "max_layer_prune"},
                absent_settings="remake",
                narrowest=lambda max_layer_prune: (
                    f"every prunable layer at its cap, keeping ≥ {100 * (1 - max_layer_prune):.3g} % of its "
                    "channels; a larger pruning.max_layer_prune reaches lower"),
                colour="#e6a15c")
register_method("magnitude", UNSTRUCTURED, "hplandscape.pruning.unstructured:magnitude_masks",
                settings={"layer_floor": "sparse_layer_floor"})
register_method("magnitude_layerwise", UNSTRUCTURED, "hplandscape.pruning.unstructured:layerwise_masks")
register_method("random", UNSTRUCTURED, "hplandscape.pruning.unstructured:random_floor_masks",
                settings={"layer_floor": "sparse_layer_floor"}, seeded=True)
register_method("set", UNSTRUCTURED, "hplandscape.pruning.unstructured:set_masks", settings={"zeta": "set_zeta"}, seeded=True,
                evolve="hplandscape.pruning.set_topology:prune_and_regrow")
