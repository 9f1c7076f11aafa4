"""What a sparse condition is: :class:`MaskSpec`, the JSON record of its weight masks.

An unstructured condition keeps the basemodel's architecture and zeroes individual weights. Its
masks (one boolean tensor per prunable layer) are made once per condition by
:func:`hplandscape.pruning.unstructured.make_masks` and stored by the study store next to each other::

    STUDY/specs/<condition>.json        the MaskSpec (this module; torch-free)
    STUDY/specs/<condition>.masks.pt    the masks themselves (:func:`hplandscape.pruning.unstructured.save_masks`)

The MaskSpec says how the masks were made (method, target density, ranking source, floor or ζ),
what they keep per layer and what the sparse network costs, and it carries the sha256 of the
masks' content so a run can check that the masks file is the one the spec describes. Its dict
form travels inside :class:`~hplandscape.study.run_spec.RunSpec` (``sparsity``), so a run's fingerprint
changes whenever its masks do.

This module imports no torch.
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
from hplandscape.pruning.methods import UNSTRUCTURED, method_names

#: Unstructured (weight-level) pruning methods, the registry's (:mod:`hplandscape.pruning.methods`),
#: read when used. ``ratio`` of such a condition is its *density*: the fraction of the prunable
#: weights kept.
#:
#: - ``magnitude``: one ranking of |w| across all prunable layers, with a per-layer floor;
#: - ``magnitude_layerwise``: the same density in every layer, strongest |w| of each;
#: - ``random``: random weights at ``magnitude``'s per-layer densities (the control);
#: - ``set``: Sparse Evolutionary Training, Erdős–Rényi densities, prune-and-regrow every epoch.
SPARSE_METHODS = method_names(UNSTRUCTURED)
#: Default per-layer floor of global magnitude pruning, as a fraction of the target density: every
#: prunable layer keeps at least 10 % of the average density, so none is pruned away.
DEFAULT_SPARSE_LAYER_FLOOR = 0.1
#: Default ζ of SET: the fraction of each layer's active weights removed and regrown every epoch.
DEFAULT_SET_ZETA = 0.3

_FIELDS = ("model", "num_classes", "in_channels", "input_shape", "method", "target_density", "achieved_density",
           "kept", "sizes", "params", "flops", "original_params", "original_flops", "source", "masks_sha256",
           "init_seed", "mask_seed", "layer_floor", "zeta")
_OPTIONAL = ("init_seed", "mask_seed", "layer_floor", "zeta")


def is_fraction(value: Any, *, closed: bool = False) -> bool:
    """Whether ``value`` is a number in (0, 1), or (0, 1] with ``closed``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return 0 < value <= 1 if closed else 0 < value < 1


@dataclass(frozen=True)
class MaskSpec:
    """The masks of one unstructured condition, described (the masks live in their own file).

    ``kept`` and ``sizes`` map every prunable layer (module name; the first convolution and the
    classifier stay dense and are not listed) to its kept and total weights. ``params`` and
    ``flops`` are the sparse network's: masked weights are not counted, and each layer costs its
    dense FLOPs × its density. ``source`` is ``"checkpoint:<sha256>"`` of the weights that ranked
    the weights, or ``"random-init"``. ``mask_seed`` seeds the random positions (``random``,
    ``set``); ``layer_floor`` is global magnitude's floor (``magnitude``, ``random``); ``zeta`` is
    SET's prune-and-regrow fraction.
    """

    model: str
    num_classes: int
    in_channels: int
    input_shape: tuple[int, int, int]
    method: str
    target_density: float
    achieved_density: float
    kept: dict[str, int]
    sizes: dict[str, int]
    params: int
    flops: int
    original_params: int
    original_flops: int
    source: str
    masks_sha256: str
    init_seed: int | None = None
    mask_seed: int | None = None
    layer_floor: float | None = None
    zeta: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields (no ``content_hash``); unset optional fields are left out."""
        d = dataclasses.asdict(self)
        d["input_shape"] = list(self.input_shape)
        for key in _OPTIONAL:
            if d[key] is None:
                del d[key]
        return d

    @property
    def densities(self) -> dict[str, float]:
        """``{layer: kept / total weights}`` of every prunable layer, in module order."""
        return {k: self.kept[k] / n for k, n in self.sizes.items()}

    @property
    def achieved_ratio(self) -> float:
        """Sparse FLOPs over the dense network's FLOPs."""
        return self.flops / self.original_flops

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON of :meth:`to_dict`; identifies the sparse condition."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def from_dict(cls, d: Any, where: str = "mask spec") -> "MaskSpec":
        """Validate a spec dict (``RunSpec.sparsity`` or a loaded file); errors name ``where``."""
        return _from_dict(d, where)


def save_mask_spec(spec: MaskSpec, path) -> Path:
    """Write ``spec`` as indented JSON (plus its ``content_hash``), atomically.

    Keys stay in field order and the layers in module order (JSON objects keep their order when
    read back), so the file reads from the first layer to the last; the hash is of the canonical,
    key-sorted form and does not depend on it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps({**spec.to_dict(), "content_hash": spec.content_hash}, indent=2) + "\n")
    return path


def load_mask_spec(path) -> MaskSpec:
    """Read a spec written by :func:`save_mask_spec`; a corrupt file raises ``UserError`` naming it."""
    path = str(path)
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise UserError(f"{path}: mask spec not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a valid mask spec (bad JSON: {exc})") from None
    return _from_dict(data, path)


def _from_dict(d: Any, where: str) -> MaskSpec:
    def fail(key: str, message: str) -> UserError:
        return UserError(f"{where}: {key} {message}")

    if not isinstance(d, dict):
        raise UserError(f"{where}: a mask spec must be a JSON object, got {type(d).__name__}")
    missing = [k for k in _FIELDS if k not in _OPTIONAL and k not in d]
    if missing:
        raise UserError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(d) - set(_FIELDS) - {"content_hash"})
    if unknown:
        raise UserError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(_FIELDS)}")
    if not isinstance(d["model"], str) or not d["model"]:
        raise fail("model", f"must be an architecture name, got {d['model']!r}")
    if d["method"] not in SPARSE_METHODS:
        raise fail("method", f"must be one of {', '.join(SPARSE_METHODS)}, got {d['method']!r}")
    for key in ("target_density", "achieved_density"):
        if not is_fraction(d[key], closed=True):
            raise fail(key, f"must be a number in (0, 1], got {d[key]!r}")
    for key in ("num_classes", "in_channels", "params", "flops", "original_params", "original_flops"):
        v = d[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise fail(key, f"must be a positive integer, got {v!r}")
    shape = d["input_shape"]
    if not isinstance(shape, list) or len(shape) != 3 or \
            any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape):
        raise fail("input_shape", f"must be three positive integers [channels, height, width], got {shape!r}")
    if not isinstance(d["source"], str) or not re.fullmatch(r"random-init|checkpoint:[0-9a-f]{64}", d["source"]):
        raise fail("source", f"must be 'random-init' or 'checkpoint:<sha256>', got {d['source']!r}")
    if not isinstance(d["masks_sha256"], str) or not re.fullmatch(r"[0-9a-f]{64}", d["masks_sha256"]):
        raise fail("masks_sha256", f"must be a sha256 hex digest, got {d['masks_sha256']!r}")
    sizes, kept = d["sizes"], d["kept"]
    if not isinstance(sizes, dict) or not sizes or \
            any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in sizes.values()):
        raise fail("sizes", f"must map each prunable layer to its number of weights, got {sizes!r}")
    if not isinstance(kept, dict) or set(kept) != set(sizes):
        raise fail("kept", "must map exactly the layers of sizes to the weights each keeps")
    for name, k in kept.items():
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= sizes[name]:
            raise fail(f"kept[{name!r}]", f"must be an integer in [1, {sizes[name]}], got {k!r}")
    for key in ("init_seed", "mask_seed"):
        v = d.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise fail(key, f"must be an integer or null, got {v!r}")
    if d.get("layer_floor") is not None and not is_fraction(d["layer_floor"], closed=True):
        raise fail("layer_floor", f"must be a number in (0, 1], got {d['layer_floor']!r}")
    if d.get("zeta") is not None and not is_fraction(d["zeta"]):
        raise fail("zeta", f"must be a number in (0, 1), got {d['zeta']!r}")
    spec = MaskSpec(**{k: d.get(k) for k in _FIELDS if k not in ("input_shape", "kept", "sizes")},
                    input_shape=tuple(shape), sizes=dict(sizes), kept={k: kept[k] for k in sizes})
    stored = d.get("content_hash")
    if stored is not None and stored != spec.content_hash:
        raise fail("content_hash", f"is {stored!r} but the content hashes to {spec.content_hash!r}: "
                                   "the file was edited or damaged")
    return spec
