"""Study configuration: YAML in ``grids/`` parsed into frozen dataclasses, validated here only.

Every check on user-supplied study settings lives in this module, and every failure raises
:class:`hplandscape.errors.ConfigError` naming the file, the dotted key, the bad value and what
is allowed. Unknown keys are errors: a typo such as ``epoch:`` must not silently fall back to a
default, and so is a key given twice in one YAML mapping.

Two kinds of checks:

- :func:`study_from_dict` (and :func:`load_study`) check everything the config alone can tell,
  including rules across fields (Nesterov needs momentum, epoch milestones inside the epochs,
  explicit grid values must be distinct grid points). It imports no torch.
- :func:`check_runnable` checks what only the machine can tell (CUDA present, the data directory,
  pruning ratios the architecture can reach); a sweep calls it before it writes anything.

The enumerations of allowed values (executors, engines, devices, datasets, methods, ...) are
defined here or in :mod:`hplandscape.recipes` / :mod:`hplandscape.pruning.arch_spec`, once; other modules
import them.

Examples
--------
>>> cfg = load_quickstart()
>>> cfg.model, [c.name for c in cfg.conditions]
('resnet20', ['base', 'uniform-0.5', 'global-0.5'])
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hplandscape.pruning.arch_spec import DEFAULT_MAX_LAYER_PRUNE, DEFAULT_NORMALIZER, NORMALIZERS, is_layer_cap
from hplandscape.pruning.arch_spec import METHODS as PRUNING_METHODS
from hplandscape.choices import (DATASETS, DEVICES, ENGINES, PIPELINES, PRUNING_SOURCES,  # noqa: F401
                                 plain_name)
from hplandscape.pruning.mask_spec import DEFAULT_SET_ZETA, DEFAULT_SPARSE_LAYER_FLOOR, SPARSE_METHODS, is_fraction
from hplandscape.pruning.methods import MethodNames
from hplandscape.errors import ConfigError, UserError
from hplandscape.grid import GRID_DECIMALS, axis_values, extend_axis, round_log10
from hplandscape.overrides import apply_overrides, explain, parse_overrides
from hplandscape.runners import executor_names, runner_class
from hplandscape.paths import check_path
from hplandscape.recipes import AUGMENTATIONS, MILESTONE_UNITS, RANDOMNESS, PRESETS, Recipe

#: A condition's method: the unpruned basemodel (``none``), a structured pruning method (``ratio``:
#: fraction of the FLOPs kept) or an unstructured one (``ratio``: fraction of the prunable weights kept),
#: in the registry's order (:mod:`hplandscape.pruning.methods`; read when used, so a method registered
#: later is allowed too).
METHODS = MethodNames(prefix=("none",))
QUICKSTART = "quickstart.yaml"

#: The architectures registered by :mod:`hplandscape.models` itself. A config naming one of them
#: is checked without importing torch (``hplandscape grid`` stays light); any other name is looked
#: up in the live registry, where user code may have registered its own models.
BUILTIN_MODELS = ("mobilenet_v2", "mobilenet_v2_imagenet", "resnet110", "resnet20", "resnet32", "resnet44",
                  "resnet50", "resnet56")

#: Largest ``data.image_size`` (pixels per side). CIFAR-10 at 1024² is ~190 GB of uint8 in memory;
#: anything larger is a typo, not a study.
MAX_IMAGE_SIZE = 1024
#: Upper bounds of the recipe's counts: far beyond any study (the thesis trains 180 epochs at batch
#: 256 at most), low enough that a typo (``epochs: 1000000000``) is refused, not run for ever.
MAX_EPOCHS = 100_000
MAX_BATCH = 1 << 20
MAX_THREADS = 1024
#: Most points on one grid axis, extension rows/columns included: 100 × 100 is already 10,000 runs
#: per condition and seed (the thesis grids are 9 × 9, extended by a few rows).
MAX_AXIS_POINTS = 100
#: Upper bound of ``grid.max_extend_rounds`` (each round adds at most one row/column per side).
MAX_EXTEND_ROUNDS = 50
#: Every lr and wd of a grid lies in [10^-LOG10_LIMIT, 10^LOG10_LIMIT]: far beyond any trainable
#: setting, far inside float64 (10^±308), so 10**log10 can neither overflow nor reach 0.
LOG10_LIMIT = 20.0
#: Largest seed: torch's generators take 64-bit seeds.
MAX_SEED = 2**63 - 1
#: Longest study or condition name, in bytes (UTF-8). File systems allow 255 bytes per file name,
#: and the store adds up to about 45 to a condition's name (``specs/<name>.weights.pt``, its temp
#: file while written, the ``.corrupt-<time>`` suffix of a damaged file set aside).
MAX_NAME_BYTES = 128


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from. ``root`` is required for CIFAR-10 and ImageNet."""

    name: str
    root: str | None = None
    download: bool = False
    num_workers: int = 4
    image_size: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None


@dataclass(frozen=True)
class Condition:
    """The basemodel (method ``none``) or a pruned variant.

    ``ratio`` is the fraction of the FLOPs kept for structured methods (``uniform``, ``global``)
    and the *density*, the fraction of the prunable weights kept, for unstructured ones
    (:data:`~hplandscape.pruning.mask_spec.SPARSE_METHODS`). ``pipeline`` says how a pruned condition
    trains: ``retrain`` (fresh He init, the method's) or ``finetune`` (from the trained
    basemodel's weights with the pruning applied); the basemodel always retrains.
    """

    name: str
    method: str
    ratio: float = 1.0
    pipeline: str = "retrain"

    @property
    def pruned(self) -> bool:
        return self.method != "none"

    @property
    def structured(self) -> bool:
        """Pruned by removing channels (a narrower architecture, an ArchSpec)."""
        return self.method in PRUNING_METHODS

    @property
    def sparse(self) -> bool:
        """Pruned by masking individual weights (the dense architecture, a MaskSpec)."""
        return self.method in SPARSE_METHODS

    @property
    def finetune(self) -> bool:
        return self.pipeline == "finetune"

    def to_dict(self) -> dict:
        """Plain data; ``pipeline`` only when it is ``finetune``, so that the conditions of a study
        written before pipelines existed compare equal."""
        d = dataclasses.asdict(self)
        if d["pipeline"] == "retrain":
            del d["pipeline"]
        return d


@dataclass(frozen=True)
class GridConfig:
    """lr × wd grid in log10 space (method §3).

    Either centred on the prior (``n_lr`` × ``n_wd`` points spaced ``step`` decades) or explicit
    log10 value lists; ``extra_log10_*`` hold the rows/columns added by grid extension.
    """

    prior_lr: float
    prior_wd: float
    n_lr: int | None = None
    n_wd: int | None = None
    step: float | None = None
    log10_lr: tuple | None = None
    log10_wd: tuple | None = None
    extra_log10_lr: tuple = ()
    extra_log10_wd: tuple = ()
    #: ``sweep --extend`` grows the grid at most this many times in one call (method §3: until the
    #: near-optimal regions are enclosed).
    max_extend_rounds: int = 10

    def log10_lr_values(self) -> list[float]:
        base = self.log10_lr if self.log10_lr is not None else axis_values(
            math.log10(self.prior_lr), self.n_lr, self.step)
        return extend_axis(base, self.extra_log10_lr)

    def log10_wd_values(self) -> list[float]:
        base = self.log10_wd if self.log10_wd is not None else axis_values(
            math.log10(self.prior_wd), self.n_wd, self.step)
        return extend_axis(base, self.extra_log10_wd)


@dataclass(frozen=True)
class PruningConfig:
    """Where the L1 importance ranking comes from (the trained basemodel or random He init), how
    global pruning ranks and caps it (see :func:`hplandscape.pruning.structured.prune`), how pruned
    conditions train, and the settings of unstructured pruning (:mod:`hplandscape.pruning.unstructured`).

    ``normalizer`` is torch-pruning's name of the per-layer normaliser (``"none"``: one threshold
    on the raw norms); ``max_layer_prune`` is the largest fraction of one layer's channels global
    pruning may remove. Uniform pruning uses neither. ``pipeline`` is the default of every pruned
    condition (``retrain`` or ``finetune``; a condition may name its own). ``sparse_layer_floor``:
    under ``magnitude`` (and so ``random``) every prunable layer keeps at least this fraction of
    the target density. ``set_zeta``: the fraction ζ of each layer's active weights SET removes
    and regrows every epoch.
    """

    source: str = "trained"
    normalizer: str = DEFAULT_NORMALIZER
    max_layer_prune: float = DEFAULT_MAX_LAYER_PRUNE
    pipeline: str = "retrain"
    sparse_layer_floor: float = DEFAULT_SPARSE_LAYER_FLOOR
    set_zeta: float = DEFAULT_SET_ZETA

    def to_dict(self) -> dict:
        """Plain data; the settings added with unstructured pruning appear only when they differ
        from their defaults, so a study written before them compares equal."""
        d = dataclasses.asdict(self)
        for f in ("pipeline", "sparse_layer_floor", "set_zeta"):
            if d[f] == getattr(PruningConfig, f):
                del d[f]
        return d


@dataclass(frozen=True)
class LauncherConfig:
    """How runs are launched; the SLURM fields map onto submitit's ``slurm_*`` parameters."""

    executor: str = "local"
    max_parallel: int | None = None
    runs_per_job: int = 1
    engine: str = "auto"
    device: str = "auto"
    partition: str | None = None
    gpus_per_task: int = 0
    cpus_per_task: int = 2
    mem_gb: float = 8.0
    timeout_min: int = 60
    array_parallelism: int = 64
    slurm_additional_parameters: dict = field(default_factory=dict)
    #: A run saves its training state after an epoch once this many seconds have passed since its
    #: last save (and always after the last epoch); 0: after every epoch. Decides nothing computed.
    checkpoint_every_s: float = 30.0


@dataclass(frozen=True)
class AnalysisConfig:
    """How a study is read: ``roi`` are the x-ROI thresholds in accuracy points (method §8: 0.5
    and 1.0), smallest first. The smallest is the risk's Θ_R (method's 0.5), the largest the one
    whose contact with the grid's edge asks for an extension (method's 1.0). Choose them above the
    study's seed noise (``analyze`` says when one is not). Changing them re-reads the records;
    no run is invalidated."""

    roi: tuple = (0.5, 1.0)


#: Most ROI thresholds a study may name (each one is a column block of Table 4.1 and a figure row).
MAX_ROIS = 6


@dataclass(frozen=True)
class StudyConfig:
    """One architecture on one dataset, its conditions, the grid, the seeds and the recipe."""

    name: str
    model: str
    data: DataConfig
    conditions: tuple
    grid: GridConfig
    seeds: tuple
    recipe: Recipe
    pruning: PruningConfig = PruningConfig()
    launcher: LauncherConfig = LauncherConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    source: str = "<dict>"
    #: The ``KEY=VALUE`` overrides applied to the file's settings (:mod:`hplandscape.overrides`);
    #: like ``source``, where the config came from, not part of it.
    overrides: tuple = field(default=(), compare=False)

    @property
    def base(self) -> Condition:
        return next(c for c in self.conditions if not c.pruned)

    def condition(self, name: str) -> Condition:
        for c in self.conditions:
            if c.name == name:
                return c
        raise KeyError(name)

    def recipe_for(self, condition: Condition) -> Recipe:
        """The recipe a condition's runs train with: ``train.finetune_epochs`` epochs for a
        fine-tuned condition, the study's recipe otherwise."""
        return self.recipe.for_finetune() if condition.finetune else self.recipe

    def to_dict(self) -> dict:
        """The resolved config as plain data (round-trips through :func:`study_from_dict`)."""
        g = self.grid
        grid: dict[str, Any] = {"prior_lr": g.prior_lr, "prior_wd": g.prior_wd}
        if g.log10_lr is None:
            grid.update(size=[g.n_lr, g.n_wd], step=g.step)
        else:
            grid.update(log10_lr=list(g.log10_lr), log10_wd=list(g.log10_wd))
        if g.extra_log10_lr:
            grid["extra_log10_lr"] = list(g.extra_log10_lr)
        if g.extra_log10_wd:
            grid["extra_log10_wd"] = list(g.extra_log10_wd)
        grid["max_extend_rounds"] = g.max_extend_rounds
        return {
            "name": self.name,
            "model": self.model,
            "data": dataclasses.asdict(self.data),
            "conditions": [c.to_dict() for c in self.conditions],
            "grid": grid,
            "seeds": list(self.seeds),
            "train": self.recipe.to_dict(),
            "pruning": self.pruning.to_dict(),
            "launcher": dataclasses.asdict(self.launcher),
            "analysis": {"roi": list(self.analysis.roi)},
        }

    def with_grid(self, grid: GridConfig) -> "StudyConfig":
        return dataclasses.replace(self, grid=grid)


# --------------------------------------------------------------------------------------------
# Parsing and validation: the one place.


class _Section:
    """A mapping being read, remembering where it came from, rejecting unknown keys."""

    def __init__(self, source: str, prefix: str, data: Any):
        self.source, self.prefix = source, prefix
        if not isinstance(data, dict):
            raise ConfigError(source, prefix or "(top level)",
                              f"must be a mapping of keys to values, got {_show(data)}")
        self.data = data

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), message)

    def check_keys(self, allowed) -> None:
        for k in self.data:
            if k not in allowed:
                raise self.error(str(k), f"is not a known key; allowed here: {', '.join(sorted(allowed))}")

    def get(self, name, default=None, *, required=False):
        if name not in self.data or self.data[name] is None:
            if required:
                raise self.error(name, "is required")
            return default
        return self.data[name]

    def section(self, name) -> "_Section":
        return _Section(self.source, self.key(name), self.get(name, {}))

    # typed readers -------------------------------------------------------------------------
    def str_(self, name, default=None, *, choices=None, required=False):
        v = self.get(name, default, required=required)
        if v is None:
            return None
        if not isinstance(v, str) or not v:
            raise self.error(name, f"must be a non-empty string, got {_show(v)}")
        if choices is not None and v not in choices:
            raise self.error(name, f"must be one of {', '.join(choices)}; got {v!r}")
        return v

    def bool_(self, name, default):
        v = self.get(name, default)
        if not isinstance(v, bool):
            raise self.error(name, f"must be true or false, got {_show(v)}")
        return v

    def int_(self, name, default=None, *, minimum=1, maximum=None, required=False):
        v = self.get(name, default, required=required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
            raise self.error(name, f"must be {what}, got {_show(v)}")
        if maximum is not None and v > maximum:
            raise self.error(name, f"must be at most {maximum:,}, got {_show(v)}")
        return v

    def float_(self, name, default=None, *, positive=True, minimum=None, maximum=None,
               required=False, inclusive_max=True):
        v = self.get(name, default, required=required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not _finite(v):
            raise self.error(name, f"must be a finite number, got {_show(v)}{_number_text_hint(v)}")
        if positive and v <= 0:
            raise self.error(name, f"must be > 0, got {_show(v)}")
        if minimum is not None and v < minimum:
            raise self.error(name, f"must be ≥ {minimum}, got {_show(v)}")
        if maximum is not None and (v > maximum or (not inclusive_max and v == maximum)):
            bound = f"≤ {maximum}" if inclusive_max else f"< {maximum}"
            raise self.error(name, f"must be {bound}, got {_show(v)}")
        return float(v)

    def number_list(self, name, *, positive=False, integer=False, required=False, nonempty=True):
        v = self.get(name, None, required=required)
        if v is None:
            return None
        kind = "integers" if integer else "numbers"
        if not isinstance(v, (list, tuple)) or (nonempty and not v):
            raise self.error(name, f"must be a non-empty list of {kind}, got {_show(v)}")
        for x in v:
            ok = (isinstance(x, int) if integer else isinstance(x, (int, float))) and not isinstance(x, bool)
            if not ok or (not integer and not math.isfinite(x)) or (positive and x <= 0):
                need = f"{'positive ' if positive else ''}{kind}"
                raise self.error(name, f"must be a list of {need}, got element {_show(x)}")
        if len(set(v)) != len(v):
            raise self.error(name, f"must not repeat values, got {_show(v)}")
        return tuple(v)


def _show(v) -> str:
    return repr(v)


def _number_text_hint(v) -> str:
    """Why a number-like value is text: PyYAML (YAML 1.1) reads ``1e-4`` as a string."""
    if not isinstance(v, str):
        return ""
    try:
        float(v)
    except ValueError:
        return ""
    mantissa, e, exponent = v.lower().partition("e")
    if e and "." not in mantissa:
        return f" (YAML reads {v} as text: a float needs a dot before its exponent, e.g. {mantissa}.0e{exponent})"
    if e and exponent[:1] not in "+-":
        return f" (YAML reads {v} as text: a float needs a sign in its exponent, e.g. {mantissa}e+{exponent})"
    return " (text, not a number: write it without quotes)"


def _finite(v) -> bool:
    try:
        return math.isfinite(v)
    except OverflowError:  # a YAML integer beyond float range (10**400)
        return False


_TOP_KEYS = {"name", "model", "data", "conditions", "grid", "seeds", "train", "pruning", "launcher", "analysis"}
_DATA_KEYS = {f.name for f in dataclasses.fields(DataConfig)}
_GRID_KEYS = {"prior_lr", "prior_wd", "size", "step", "log10_lr", "log10_wd", "lr_values", "max_extend_rounds",
              "wd_values", "extra_log10_lr", "extra_log10_wd"}
_TRAIN_KEYS = {f.name for f in dataclasses.fields(Recipe)}
_AUGMENT_OF = {"digits": "digits", "cifar10": "cifar", "imagenet": "imagenet"}
_LAUNCHER_KEYS = {f.name for f in dataclasses.fields(LauncherConfig)}


def study_from_dict(data: Any, source: str = "<dict>") -> StudyConfig:
    """Validate a parsed study mapping and build the :class:`StudyConfig`.

    Every rule that the config alone can decide runs here, rules across fields included; no torch
    is imported for a config that names a built-in architecture. What depends on the machine is
    left to :func:`check_runnable`.

    Raises
    ------
    ConfigError
        On any invalid or unknown key; the message names ``source``, the key and the value.
    """
    top = _Section(source, "", data)
    top.check_keys(_TOP_KEYS)
    default_name = Path(source).stem if source and not source.startswith("<") else "study"
    name = _name(top, "name", top.str_("name", default_name))
    model = _model(top)
    data_cfg = _data(top.section("data"))
    pruning = _pruning(top.section("pruning"))
    conditions = _conditions(top, pruning)
    grid = _grid(top.section("grid"))
    seeds = top.number_list("seeds", integer=True) or (0,)
    if any(not 0 <= s <= MAX_SEED for s in seeds):
        raise top.error("seeds", f"must be non-negative integers up to 2**63 - 1 (torch's seed range), "
                                 f"got {list(seeds)}")
    recipe = _recipe(top.section("train"), data_cfg)
    launcher = _launcher(top.section("launcher"))
    _check_sparse_study(top, conditions, recipe, pruning, launcher)
    return StudyConfig(name=name, model=model, data=data_cfg, conditions=conditions, grid=grid,
                       seeds=tuple(seeds), recipe=recipe, pruning=pruning, launcher=launcher,
                       analysis=_analysis(top.section("analysis")), source=source)


def _analysis(s: _Section) -> AnalysisConfig:
    s.check_keys({"roi"})
    roi = s.number_list("roi", positive=True)
    if roi is None:
        return AnalysisConfig()
    if len(roi) > MAX_ROIS:
        raise s.error("roi", f"names {len(roi)} thresholds; at most {MAX_ROIS}")
    if any(x > 100 for x in roi):
        raise s.error("roi", f"thresholds are accuracy points, at most 100; got {list(roi)}")
    return AnalysisConfig(roi=tuple(sorted(float(x) for x in roi)))


def _pruning(s: _Section) -> PruningConfig:
    s.check_keys({f.name for f in dataclasses.fields(PruningConfig)})
    if "normalizer" in s.data and s.data["normalizer"] is None:
        # torch-pruning spells the raw variant None; YAML's null would otherwise mean "default"
        raise s.error("normalizer", f"is null; write 'none' for the raw L1 norms, or one of "
                                    f"{', '.join(NORMALIZERS)}")
    normalizer = s.str_("normalizer", DEFAULT_NORMALIZER, choices=NORMALIZERS)
    cap = s.get("max_layer_prune", DEFAULT_MAX_LAYER_PRUNE)
    if not is_layer_cap(cap):
        raise s.error("max_layer_prune", f"must be a number in (0, 1), the largest fraction of one layer's "
                                         f"channels global pruning may remove (0.9: every layer keeps ≥ 10 %), "
                                         f"got {_show(cap)}")
    floor = s.get("sparse_layer_floor", DEFAULT_SPARSE_LAYER_FLOOR)
    if not is_fraction(floor, closed=True):
        raise s.error("sparse_layer_floor", f"must be a number in (0, 1]: the fraction of the target density every "
                                            f"prunable layer keeps at least under magnitude pruning (0.1: a layer "
                                            f"keeps ≥ 10 % of the average density; 1: every layer the same), "
                                            f"got {_show(floor)}")
    zeta = s.get("set_zeta", DEFAULT_SET_ZETA)
    if not is_fraction(zeta):
        raise s.error("set_zeta", f"must be a number in (0, 1): the fraction of each layer's active weights SET "
                                  f"removes and regrows every epoch (0.3 in SET), got {_show(zeta)}")
    return PruningConfig(source=s.str_("source", "trained", choices=PRUNING_SOURCES), normalizer=normalizer,
                         max_layer_prune=float(cap), pipeline=s.str_("pipeline", "retrain", choices=PIPELINES),
                         sparse_layer_floor=float(floor), set_zeta=float(zeta))


def _name(s: _Section, key: str, name: str) -> str:
    # Study and condition names become directory names under the study root: they must stay
    # one plain path component ("." and ".." would resolve to the root or its parent), short
    # enough for the file names made from them.
    if not plain_name(name):
        raise s.error(key, f"may hold only letters, digits, '-', '_' and '.' and must not be '.' or '..' "
                           f"(it names a directory), got {name!r}")
    size = len(name.encode())
    if size > MAX_NAME_BYTES:
        raise s.error(key, f"must be at most {MAX_NAME_BYTES} bytes long (it names a directory, and files are named "
                           f"after it), got {size}: {name[:24]}…")
    return name


def _model(top: _Section) -> str:
    model = top.str_("model", required=True)
    if model in BUILTIN_MODELS:
        return model
    # Not built in: a model registered by user code, or a typo. Only now is torch worth importing.
    from hplandscape.models import list_models

    available = list_models()
    if model not in available:
        raise top.error("model", f"is not a registered architecture: {model!r}; available: {', '.join(available)}")
    return model


def _data(s: _Section) -> DataConfig:
    s.check_keys(_DATA_KEYS)
    name = s.str_("name", required=True, choices=DATASETS)
    root = s.str_("root")
    if root is not None:
        # Absolute from here on: jobs may start in another working directory (SLURM nodes).
        root = os.path.abspath(os.path.expanduser(root))
    if name != "digits" and root is None:
        raise s.error("root", f"is required for dataset {name!r} (the directory holding the data)")
    download = s.bool_("download", False)
    if download and name != "cifar10":
        raise s.error("download", f"is only supported for cifar10 (digits ships with scikit-learn, ImageNet "
                                  f"must be fetched by hand); got download: true with dataset {name!r}")
    image_size = s.int_("image_size")
    if image_size is not None and image_size > MAX_IMAGE_SIZE:
        raise s.error("image_size", f"must be at most {MAX_IMAGE_SIZE} pixels per side, got {image_size}")
    return DataConfig(
        name=name, root=root, download=download,
        num_workers=s.int_("num_workers", 4, minimum=0),
        image_size=image_size,
        train_subset=s.int_("train_subset"), test_subset=s.int_("test_subset"))


def _conditions(top: _Section, pruning: PruningConfig) -> tuple:
    raw = top.get("conditions", required=True)
    if not isinstance(raw, list) or not raw:
        raise top.error("conditions", f"must be a non-empty list of {{method, ratio}} entries, got {_show(raw)}")
    out = []
    for i, item in enumerate(raw):
        s = _Section(top.source, f"conditions[{i}]", item)
        s.check_keys({"name", "method", "ratio", "pipeline"})
        method = s.str_("method", required=True, choices=METHODS)
        if method == "none":
            if "ratio" in s.data and s.data["ratio"] not in (None, 1, 1.0):
                raise s.error("ratio", f"must be 1.0 (or absent) for the unpruned basemodel, got {_show(s.data['ratio'])}")
            if s.get("pipeline", "retrain") != "retrain":
                raise s.error("pipeline", f"must be retrain (or absent) for the unpruned basemodel: it is what the "
                                          f"pruned conditions start from; got {_show(s.data['pipeline'])}")
            ratio, pipeline = 1.0, "retrain"
        else:
            if method in SPARSE_METHODS and not is_fraction(s.get("ratio", required=True)):
                raise s.error("ratio", f"is the density of an unstructured condition ({method}): the fraction of "
                                       f"the prunable weights kept, a number in (0, 1); got {_show(s.data['ratio'])}")
            ratio = s.float_("ratio", required=True, maximum=1.0, inclusive_max=False)
            pipeline = s.str_("pipeline", pruning.pipeline, choices=PIPELINES)
        suffix = "-finetune" if pipeline == "finetune" else ""
        default = "base" if method == "none" else f"{method}-{ratio:g}{suffix}"
        out.append(Condition(name=_name(s, "name", s.str_("name", default)), method=method, ratio=ratio,
                             pipeline=pipeline))
    names = [c.name for c in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise top.error("conditions", f"names must be unique; repeated: {', '.join(dupes)}")
    triples = [(c.method, c.ratio, c.pipeline) for c in out]
    if len(set(triples)) != len(triples):
        raise top.error("conditions", "lists the same (method, ratio, pipeline) twice")
    n_base = sum(1 for c in out if not c.pruned)
    if n_base != 1:
        raise top.error("conditions", f"must contain exactly one basemodel entry (method: none), found {n_base}")
    return tuple(out)


def _grid(s: _Section) -> GridConfig:
    s.check_keys(_GRID_KEYS)
    rounds = s.int_("max_extend_rounds", GridConfig.max_extend_rounds)
    if rounds > MAX_EXTEND_ROUNDS:
        raise s.error("max_extend_rounds", f"must be at most {MAX_EXTEND_ROUNDS}, got {rounds}")
    prior_lr = _decades(s, "prior_lr", s.float_("prior_lr", required=True))
    prior_wd = _decades(s, "prior_wd", s.float_("prior_wd", required=True))
    explicit = {k for k in ("log10_lr", "log10_wd", "lr_values", "wd_values") if k in s.data}
    extra_lr = s.number_list("extra_log10_lr", nonempty=False) or ()
    extra_wd = s.number_list("extra_log10_wd", nonempty=False) or ()
    if explicit:
        if "size" in s.data or "step" in s.data:
            raise s.error("size", "cannot be combined with explicit value lists "
                          f"({', '.join(sorted(explicit))}); give either size+step or value lists")
        grid = GridConfig(prior_lr, prior_wd, log10_lr=_axis_list(s, "lr"), log10_wd=_axis_list(s, "wd"),
                          extra_log10_lr=extra_lr, extra_log10_wd=extra_wd)
    else:
        size = s.get("size", required=True)
        if isinstance(size, int) and not isinstance(size, bool):
            size = [size, size]
        if (not isinstance(size, list) or len(size) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in size)):
            raise s.error("size", f"must be a positive integer or a pair [n_lr, n_wd] of positive integers, "
                                  f"got {_show(size)}")
        if max(size) > MAX_AXIS_POINTS:
            raise s.error("size", f"allows at most {MAX_AXIS_POINTS} points per axis, got {_show(size)}")
        step = s.float_("step", required=True)
        grid = GridConfig(prior_lr, prior_wd, n_lr=size[0], n_wd=size[1], step=step,
                          extra_log10_lr=extra_lr, extra_log10_wd=extra_wd)
        for axis, n in (("lr", size[0]), ("wd", size[1])):
            values = axis_values(math.log10(getattr(grid, f"prior_{axis}")), n, step)
            _check_axis(s, "step", axis, values, f"the {n} points spaced {step:g} decades around prior_{axis}")
    for axis, extra in (("lr", extra_lr), ("wd", extra_wd)):
        _check_axis(s, f"extra_log10_{axis}", axis, extra, "the values")
        total = len(getattr(grid, f"log10_{axis}_values")())
        if total > MAX_AXIS_POINTS:
            raise s.error(f"extra_log10_{axis}", f"extends the {axis} axis to {total} points; at most "
                                                 f"{MAX_AXIS_POINTS} are allowed")
    return dataclasses.replace(grid, max_extend_rounds=rounds)


def _decades(s: _Section, key: str, value: float) -> float:
    if abs(math.log10(value)) > LOG10_LIMIT:
        raise s.error(key, f"must lie in [1e-{LOG10_LIMIT:g}, 1e{LOG10_LIMIT:g}], got {_show(value)}")
    return value


def _check_axis(s: _Section, key: str, axis: str, values, what: str) -> None:
    """Grid coordinates of one axis must stay in range and be distinct grid points."""
    bad = [v for v in values if not abs(v) <= LOG10_LIMIT]  # "not <=" also catches nan
    if bad:
        raise s.error(key, f"puts log10 {axis} at {bad[0]!r}: {what} must lie within ±{LOG10_LIMIT:g} "
                           f"(lr and wd in [1e-{LOG10_LIMIT:g}, 1e{LOG10_LIMIT:g}])")
    seen: dict[float, float] = {}
    for v in values:
        r = round_log10(v)
        if r in seen:
            raise s.error(key, f"gives log10 {axis} values {seen[r]!r} and {v!r}, which are the same grid point "
                               f"(grid coordinates are log10 values rounded to {GRID_DECIMALS} decimals); "
                               f"{what} must be distinct grid points")
        seen[r] = v


def _axis_list(s: _Section, axis: str) -> tuple:
    logs = s.number_list(f"log10_{axis}")
    values = s.number_list(f"{axis}_values", positive=True)
    if (logs is None) == (values is None):
        raise s.error(f"log10_{axis}", f"give exactly one of log10_{axis} and {axis}_values")
    key = f"log10_{axis}" if logs is not None else f"{axis}_values"
    out = tuple(logs) if logs is not None else tuple(math.log10(v) for v in values)
    if len(out) > MAX_AXIS_POINTS:
        raise s.error(key, f"allows at most {MAX_AXIS_POINTS} values, got {len(out)}")
    _check_axis(s, key, axis, out, "the values")
    return out


def _recipe(s: _Section, data: DataConfig) -> Recipe:
    s.check_keys(_TRAIN_KEYS)
    preset = s.str_("preset", data.name, choices=tuple(sorted(PRESETS)))  # presets are named after datasets
    base = PRESETS[preset]
    unit = s.str_("milestones_unit", base.milestones_unit, choices=MILESTONE_UNITS)
    milestones = s.number_list("milestones", nonempty=False)
    milestones = base.milestones if milestones is None else milestones
    epochs = s.int_("epochs", base.epochs, maximum=MAX_EPOCHS)
    for m in milestones:
        if unit == "fraction" and not 0 < m < 1:
            raise s.error("milestones", f"are fractions of the epochs (milestones_unit: fraction) and must lie in (0, 1), got {m!r}")
        if unit == "epoch" and (int(m) != m or not 0 < m < epochs):
            allowed = (f"integers in 1..{epochs - 1}" if epochs > 1 else
                       "absent: a 1-epoch recipe has no epoch to decay at (give milestones: [])")
            raise s.error("milestones", f"are epochs (milestones_unit: epoch) and must be {allowed}, got {m!r}")
    momentum = s.float_("momentum", base.momentum, positive=False, minimum=0.0, maximum=1.0, inclusive_max=False)
    nesterov = s.bool_("nesterov", base.nesterov)
    if nesterov and momentum == 0:
        raise s.error("nesterov", f"needs momentum > 0 (Nesterov momentum without momentum is undefined in "
                                  f"torch.optim.SGD); got nesterov: true with momentum: {momentum!r}")
    return Recipe(
        preset=preset, epochs=epochs,
        batch_size=s.int_("batch_size", base.batch_size, maximum=MAX_BATCH),
        eval_batch_size=s.int_("eval_batch_size", base.eval_batch_size, maximum=MAX_BATCH),
        momentum=momentum,
        nesterov=nesterov,
        milestones=tuple(milestones), milestones_unit=unit,
        lr_gamma=s.float_("lr_gamma", base.lr_gamma, maximum=1.0),
        weight_decay_on_bn_bias=s.bool_("weight_decay_on_bn_bias", base.weight_decay_on_bn_bias),
        # The augmentation follows the data, whichever preset the schedule came from.
        augment=s.str_("augment", _AUGMENT_OF[data.name], choices=AUGMENTATIONS),
        channels_last=s.bool_("channels_last", base.channels_last),
        amp=s.bool_("amp", base.amp),
        threads=s.int_("threads", base.threads, maximum=MAX_THREADS),
        randomness=s.str_("randomness", base.randomness, choices=RANDOMNESS),
        finetune_epochs=s.int_("finetune_epochs", base.finetune_epochs, maximum=MAX_EPOCHS),
        gradient_flow=s.bool_("gradient_flow", base.gradient_flow),
    )


def _check_sparse_study(top: _Section, conditions, recipe: Recipe, pruning: PruningConfig,
                        launcher: LauncherConfig) -> None:
    """Rules across sections for fine-tuning, masks and gradient flow."""
    tuned = [i for i, c in enumerate(conditions) if c.finetune]
    if tuned:
        first = f"conditions[{tuned[0]}]"
        if recipe.finetune_epochs is None:
            raise top.error("train.finetune_epochs", f"is required: {first} ({conditions[tuned[0]].name}) uses "
                                                     f"pipeline finetune, which trains train.finetune_epochs epochs "
                                                     f"from the trained basemodel's weights")
        if pruning.source != "trained":
            raise top.error("pruning.source", f"must be trained when a condition fine-tunes ({first} uses pipeline "
                                              f"finetune, which starts from the trained basemodel's weights); "
                                              f"got {pruning.source!r}")
    if launcher.engine == "fused":
        masked = next((c for c in conditions if c.sparse), None)
        if masked is not None or recipe.gradient_flow:
            why = (f"condition {masked.name!r} is unstructured ({masked.method}); the fused engine holds no masks"
                   if masked is not None else "train.gradient_flow is true; the fused engine does not measure it")
            raise top.error("launcher.engine", f"is 'fused', but {why}: use engine auto (it trains those runs one "
                                               f"by one) or sequential")


def _launcher(s: _Section) -> LauncherConfig:
    s.check_keys(_LAUNCHER_KEYS)
    d = LauncherConfig()
    extra = s.get("slurm_additional_parameters", {})
    if not isinstance(extra, dict):
        raise s.error("slurm_additional_parameters", f"must be a mapping, got {_show(extra)}")
    return LauncherConfig(
        executor=s.str_("executor", d.executor, choices=executor_names()),  # registered runners
        max_parallel=s.int_("max_parallel"),
        runs_per_job=s.int_("runs_per_job", d.runs_per_job),
        engine=s.str_("engine", d.engine, choices=ENGINES),
        device=s.str_("device", d.device, choices=DEVICES),
        partition=s.str_("partition"),
        gpus_per_task=s.int_("gpus_per_task", d.gpus_per_task, minimum=0),
        cpus_per_task=s.int_("cpus_per_task", d.cpus_per_task),
        mem_gb=s.float_("mem_gb", d.mem_gb),
        timeout_min=s.int_("timeout_min", d.timeout_min),
        array_parallelism=s.int_("array_parallelism", d.array_parallelism),
        slurm_additional_parameters=dict(extra),
        checkpoint_every_s=s.float_("checkpoint_every_s", d.checkpoint_every_s, positive=False, minimum=0.0),
    )


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
        E.g. ``["train.epochs=3", "seeds=[0, 1, 2]"]`` (:mod:`hplandscape.overrides`): merged into
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


# --------------------------------------------------------------------------------------------
# What only the machine can tell.


def check_runnable(config: StudyConfig, executor: str | None = None):
    """Check that ``config`` can run from this machine, before a sweep writes anything.

    :func:`study_from_dict` has already checked everything the config alone decides; this adds
    what depends on the machine and on the installed architectures:

    - ``launcher.device: cuda`` needs a CUDA device here, unless the runs go to SLURM nodes;
    - the data directory exists and holds the dataset (:func:`hplandscape.data.dataset_info`);
    - every structured condition's ratio is reachable for the architecture at the dataset's input
      shape (:func:`hplandscape.pruning.structured.smallest_ratio`, from the FLOPs model alone: no weights,
      no training).

    Imports torch (lazily): call it from commands that launch runs, not from light ones.

    Parameters
    ----------
    config : StudyConfig
    executor : str, optional
        Where the runs will execute (a name of :func:`hplandscape.runners.executor_names`); default
        ``config.launcher.executor``.

    Returns
    -------
    hplandscape.data.DatasetInfo
        Classes, channels and image size of the data (the pruning step needs them).

    Raises
    ------
    ConfigError
        CUDA asked for but absent, or a ratio below the smallest reachable one (the message names
        the condition's key and that smallest ratio).
    UserError
        An unknown executor, or the data directory is missing or incomplete (the message names
        the path).
    """
    kind = executor or config.launcher.executor
    if kind not in executor_names():
        raise UserError(f"executor must be one of {', '.join(executor_names())}; got {kind!r}")
    if config.launcher.device == "cuda" and runner_class(kind).runs_here:  # SLURM runs on other machines' GPUs
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(config.source, "launcher.device",
                              f"is 'cuda' but this machine has no CUDA device (executor {kind!r} runs here); "
                              "use device: auto or cpu, or executor: slurm")
    from hplandscape.data import dataset_info

    info = dataset_info(config.data)
    shape = (info.in_channels, info.image_size, info.image_size)
    # unstructured conditions keep the dense architecture: every density in (0, 1) is reachable
    pruned = [(i, c) for i, c in enumerate(config.conditions) if c.structured]
    if pruned:
        from hplandscape.pruning.structured import narrowest_words, reachable, smallest_ratio

        cap = config.pruning.max_layer_prune
        for i, c in pruned:
            smallest = smallest_ratio(config.model, c.method, num_classes=info.num_classes,
                                      in_channels=info.in_channels, input_shape=shape, max_layer_prune=cap)
            if not reachable(c.ratio, smallest):
                raise ConfigError(config.source, f"conditions[{i}].ratio",
                                  f"is {c.ratio:g}, unreachable for {config.model} ({c.method} pruning) at input "
                                  f"{shape}: the smallest reachable ratio is {smallest:.4f} "
                                  f"({narrowest_words(c.method, cap)}); use a ratio ≥ {smallest:.4f}")
    return info
