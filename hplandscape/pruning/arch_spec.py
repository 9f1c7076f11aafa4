"""What a pruned architecture is: :class:`ArchSpec`, its JSON form and its files.

An ArchSpec holds enough to rebuild a pruned network with no pickled module: the kept width of
every prunable layer, the counts, and where the L1 ranking came from. It is made by
:func:`hplandscape.pruning.structured.prune`, stored by the study store as ``STUDY/specs/<condition>.json``
and shipped inside a :class:`~hplandscape.study.run_spec.RunSpec` to workers, which rebuild the network
with :func:`hplandscape.pruning.structured.build_from_spec`.

This module imports no torch at import time; validating a spec against its registered
architecture (:meth:`ArchSpec.from_dict`) builds that architecture on the ``meta`` device.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hplandscape.atomic import write_text
from hplandscape.errors import UserError
from hplandscape.pruning.methods import STRUCTURED, get_method, method_names

#: Structured pruning methods (a condition's method is one of these or ``none``): the registry's
#: (:mod:`hplandscape.pruning.methods`), read when used.
METHODS = method_names(STRUCTURED)
RANDOM_INIT = "random-init"

#: Per-layer normalisers of the L1 importance that global pruning ranks on, named as torch-pruning
#: 1.6 names them in ``MagnitudeImportance(normalizer=...)``; ``"none"`` is its ``None`` (the raw
#: norms, one threshold across layers). Left out: ``sentinel_<q>`` (a parameter in the name) and
#: callables (not data a config can hold).
NORMALIZERS = ("none", "mean", "max", "sum", "standarization", "gaussian", "lamp")
#: The default normaliser; docs/method.md §5 gives the measurements that chose it.
DEFAULT_NORMALIZER = "mean"
#: The default cap on the fraction of one layer's channels global pruning may remove.
DEFAULT_MAX_LAYER_PRUNE = 0.9

_FIELDS = ("model", "num_classes", "in_channels", "input_shape", "method", "target_ratio", "achieved_ratio",
           "widths", "original_widths", "params", "flops", "original_params", "original_flops", "source",
           "init_seed", "normalizer", "max_layer_prune")
#: Fields a spec file may lack: specs written before global pruning recorded its settings, and
#: every uniform spec, have no normalizer/max_layer_prune.
_OPTIONAL = ("init_seed", "normalizer", "max_layer_prune")


def layer_floor(channels: int, max_layer_prune: float) -> int:
    """Fewest channels a layer of ``channels`` keeps under the cap: ``max(1, ceil((1 - cap)·C))``.

    Examples
    --------
    >>> [layer_floor(c, 0.9) for c in (16, 32, 64, 10, 1)]
    [2, 4, 7, 1, 1]
    """
    # the 1e-9 absorbs float error: (1 - 0.9)·10 is 0.99999..., and 10 % of 10 channels is 1
    return min(channels, max(1, math.ceil((1.0 - max_layer_prune) * channels - 1e-9)))


def is_layer_cap(value: Any) -> bool:
    """Whether ``value`` is a valid ``max_layer_prune``: a number strictly between 0 and 1 (a
    layer can never lose all its channels, and 0 would forbid pruning it at all)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value < 1


@dataclass(frozen=True)
class ArchSpec:
    """A pruned architecture: enough to rebuild it with no pickled module.

    ``widths`` and ``original_widths`` map each prunable layer (module name) to its kept and
    original output channels; ``params``/``flops`` are the pruned counts at ``input_shape``
    (FLOPs = 2 × conv/linear multiply-accumulates). ``source`` is ``"checkpoint:<sha256>"`` of the
    weights file that ranked the filters, or ``"random-init"`` (then ``init_seed`` is the seed of
    that He init; it is None for checkpoints). ``normalizer`` and ``max_layer_prune`` are the
    global-pruning settings that chose the widths (see :func:`hplandscape.pruning.structured.prune`); None
    for uniform pruning and for global specs written before they were recorded.
    """

    model: str
    num_classes: int
    in_channels: int
    input_shape: tuple[int, int, int]
    method: str
    target_ratio: float
    achieved_ratio: float
    widths: dict[str, int]
    original_widths: dict[str, int]
    params: int
    flops: int
    original_params: int
    original_flops: int
    source: str
    init_seed: int | None = None
    normalizer: str | None = None
    max_layer_prune: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields (no ``content_hash``).

        ``normalizer`` and ``max_layer_prune`` appear only when set, so a spec without them hashes
        as it did before they existed and its stored ``content_hash`` stays valid.
        """
        d = dataclasses.asdict(self)
        d["input_shape"] = list(self.input_shape)
        for key in ("normalizer", "max_layer_prune"):
            if d[key] is None:
                del d[key]
        return d

    @property
    def kept_fractions(self) -> dict[str, float]:
        """``{layer: kept / original channels}`` of every prunable layer, in module order."""
        return {k: self.widths[k] / c for k, c in self.original_widths.items()}

    @property
    def min_kept_fraction(self) -> float:
        """The smallest kept fraction of any prunable layer (1.0 when nothing is prunable)."""
        return min(self.kept_fractions.values(), default=1.0)

    @property
    def layers_at_cap(self) -> list[str] | None:
        """The prunable layers global pruning cut down to their floor under ``max_layer_prune``
        (see :func:`layer_floor`); None when the spec records no cap."""
        if self.max_layer_prune is None:
            return None
        return [k for k, c in self.original_widths.items() if self.widths[k] <= layer_floor(c, self.max_layer_prune)]

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON of :meth:`to_dict`; identifies the pruned condition."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def summary(self) -> dict[str, Any]:
        """The ``hplandscape prune --json`` document."""
        return {
            "model": self.model, "method": self.method,
            "target_ratio": self.target_ratio, "achieved_ratio": self.achieved_ratio,
            "normalizer": self.normalizer, "max_layer_prune": self.max_layer_prune,
            "original": {"params": self.original_params, "flops": self.original_flops},
            "pruned": {"params": self.params, "flops": self.flops},
            "layers": [{"name": k, "original_channels": c, "kept_channels": self.widths[k],
                        "kept_fraction": round(self.widths[k] / c, 6)}
                       for k, c in self.original_widths.items()],
            "min_kept_fraction": round(self.min_kept_fraction, 6), "layers_at_cap": self.layers_at_cap,
            "input_shape": list(self.input_shape), "source": self.source, "content_hash": self.content_hash,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "architecture spec") -> "ArchSpec":
        """Validate a spec dict (e.g. ``RunSpec.arch`` or a loaded JSON file); errors name ``where``."""
        return _spec_from_dict(d, where)


# -- spec files ------------------------------------------------------------------------------------


def save_spec(spec: ArchSpec, path) -> Path:
    """Write ``spec`` as indented JSON with sorted keys (plus its ``content_hash``), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({**spec.to_dict(), "content_hash": spec.content_hash}, sort_keys=True, indent=2) + "\n"
    write_text(path, text)
    return path


def load_spec(path, *, check_architecture: bool = True) -> ArchSpec:
    """Read a spec written by :func:`save_spec`; a corrupt or inconsistent file raises ``UserError``
    naming the path and the field.

    ``check_architecture=False`` skips comparing the layers with the registered architecture,
    which builds it and so imports torch: for readers that only show a spec (the report). The
    file's own consistency and its ``content_hash`` are still checked."""
    path = str(path)
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise UserError(f"{path}: architecture spec not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a valid architecture spec (bad JSON: {exc})") from None
    return _spec_from_dict(data, path, check_architecture)


def _spec_from_dict(d: Any, where: str, check_architecture: bool = True) -> ArchSpec:
    def fail(key: str, message: str) -> UserError:
        return UserError(f"{where}: {key} {message}")

    if not isinstance(d, dict):
        raise UserError(f"{where}: an architecture spec must be a JSON object, got {type(d).__name__}")
    required = [f for f in _FIELDS if f not in _OPTIONAL]
    missing = [k for k in required if k not in d]
    if missing:
        raise UserError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(d) - set(_FIELDS) - {"content_hash"})
    if unknown:
        raise UserError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_FIELDS)}")

    def pos_int(key):
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise fail(key, f"must be a positive integer, got {v!r}")
        return v

    if check_architecture:
        from hplandscape.models import find_entry, list_models  # late: torch is needed only here

        if find_entry(d["model"]) is None:
            raise fail("model", f"is not a registered architecture: {d['model']!r}; "
                                f"available: {', '.join(list_models())}")
    elif not isinstance(d["model"], str) or not d["model"]:
        raise fail("model", f"must be an architecture name, got {d['model']!r}")
    if d["method"] not in METHODS:
        raise fail("method", f"must be one of {', '.join(METHODS)}, got {d['method']!r}")
    for key in ("target_ratio", "achieved_ratio"):
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise fail(key, f"must be a number in (0, 1], got {v!r}")
    for key in ("num_classes", "in_channels", "params", "flops", "original_params", "original_flops"):
        pos_int(key)
    shape = d["input_shape"]
    if not isinstance(shape, list) or len(shape) != 3 or \
            any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape):
        raise fail("input_shape", f"must be three positive integers [channels, height, width], got {shape!r}")
    if shape[0] != d["in_channels"]:
        raise fail("input_shape", f"has {shape[0]} channels but in_channels is {d['in_channels']}")
    source = d["source"]
    if not isinstance(source, str) or not (source == RANDOM_INIT or re.fullmatch(r"checkpoint:[0-9a-f]{64}", source)):
        raise fail("source", f"must be 'random-init' or 'checkpoint:<sha256>', got {source!r}")
    seed = d.get("init_seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise fail("init_seed", f"must be an integer or null, got {seed!r}")
    _check_global_settings(d, fail)

    expected = _expected_widths(d, check_architecture, fail)
    for key in ("widths", "original_widths"):
        w = d[key]
        if not isinstance(w, dict) or set(w) != set(expected):
            raise fail(key, f"must map exactly the {len(expected)} prunable layers of {d['model']} "
                            f"({next(iter(expected))}, ...) to channel counts")
    if d["original_widths"] != expected:
        raise fail("original_widths", f"do not match the unpruned {d['model']}")
    for name, value in d["widths"].items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= expected[name]:
            raise fail(f"widths[{name!r}]", f"must be an integer in [1, {expected[name]}], got {value!r}")

    spec = ArchSpec(**{k: d.get(k) for k in _FIELDS if k != "input_shape"}, input_shape=tuple(shape))
    spec = dataclasses.replace(spec, widths={k: d["widths"][k] for k in expected},
                               original_widths=dict(expected))
    stored = d.get("content_hash")
    if stored is not None and stored != spec.content_hash:
        raise fail("content_hash", f"is {stored!r} but the content hashes to {spec.content_hash!r}: "
                                   "the file was edited or damaged")
    return spec


def _expected_widths(d: dict, check_architecture: bool, fail) -> dict:
    if check_architecture:
        from hplandscape.models import original_widths

        return original_widths(d["model"], d["num_classes"], d["in_channels"], tuple(d["input_shape"]))
    w = d["original_widths"]  # trusted as written: only its form is checked
    if not isinstance(w, dict) or not w or \
            any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in w.values()):
        raise fail("original_widths", f"must map each prunable layer to a positive channel count, got {w!r}")
    return w


def _check_global_settings(d: dict, fail) -> None:
    normalizer, cap = d.get("normalizer"), d.get("max_layer_prune")
    if normalizer is None and cap is None:
        return  # uniform, or global from before these settings were recorded
    key = "normalizer" if normalizer is not None else "max_layer_prune"
    if key not in get_method(d["method"]).settings:
        raise fail(key, f"is a global-pruning setting, but the method is {d['method']!r}; remove it")
    if normalizer not in NORMALIZERS:
        raise fail("normalizer", f"must be one of {', '.join(NORMALIZERS)}, got {normalizer!r}")
    if not is_layer_cap(cap):
        raise fail("max_layer_prune", f"must be a number in (0, 1), got {cap!r}")
