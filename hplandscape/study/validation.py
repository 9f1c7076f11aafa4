"""Validation of a study config: the one place every user-supplied setting is checked.

:func:`study_from_dict` turns a parsed mapping into a :class:`~hplandscape.study.config.StudyConfig`.
Every failure raises :class:`hplandscape.errors.ConfigError` naming the file, the dotted key, the
bad value and what is allowed. Unknown keys are errors: a typo such as ``epoch:`` must not
silently fall back to a default. Rules across fields run here too (Nesterov needs momentum, epoch
milestones inside the epochs, explicit grid values must be distinct grid points). It imports no
torch for a config that names a built-in architecture.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from hplandscape.choices import DATASETS, DEVICES, ENGINES, PIPELINES, PRUNING_SOURCES, executor_names, plain_name
from hplandscape.errors import ConfigError, UserError
from hplandscape.pruning.arch_spec import DEFAULT_MAX_LAYER_PRUNE, DEFAULT_NORMALIZER, NORMALIZERS, is_layer_cap
from hplandscape.pruning.mask_spec import DEFAULT_SET_ZETA, DEFAULT_SPARSE_LAYER_FLOOR, SPARSE_METHODS, is_fraction
from hplandscape.study.config import (BUILTIN_MODELS, LOG10_LIMIT, MAX_AXIS_POINTS, MAX_BATCH, MAX_EPOCHS,
                                      MAX_EXTEND_ROUNDS, MAX_IMAGE_SIZE, MAX_NAME_BYTES, MAX_ROIS, MAX_SEED,
                                      MAX_THREADS, METHODS, AnalysisConfig, Condition, DataConfig, DesignConfig,
                                      GridConfig, LauncherConfig, PruningConfig, StudyConfig)
from hplandscape.study.grid import GRID_DECIMALS, axis_values, round_log10
from hplandscape.study.replication import REPLICATES
from hplandscape.study.recipes import AUGMENTATIONS, DATASET_DEFAULTS, MILESTONE_UNITS, PRESETS, RANDOMNESS, Recipe
from hplandscape.user_code import CodeSource, is_import_path, locate

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


_TOP_KEYS = {"name", "model", "data", "conditions", "grid", "seeds", "train", "pruning", "launcher", "analysis",
             "model_source", "design"}
_DATA_KEYS = {f.name for f in dataclasses.fields(DataConfig)}
_GRID_KEYS = {"prior_lr", "prior_wd", "size", "step", "log10_lr", "log10_wd", "lr_values", "max_extend_rounds",
              "wd_values", "extra_log10_lr", "extra_log10_wd"}
_TRAIN_KEYS = {f.name for f in dataclasses.fields(Recipe)}
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
    model, model_source = _model(top)
    data_cfg = _data(top.section("data"), _study_dir(source))
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
    design = _design(top.section("design"), recipe, seeds)
    return StudyConfig(name=name, model=model, data=data_cfg, conditions=conditions, grid=grid,
                       seeds=tuple(seeds), recipe=recipe, pruning=pruning, launcher=launcher,
                       analysis=_analysis(top.section("analysis")), design=design, source=source,
                       model_source=model_source)


def _design(s: _Section, recipe: Recipe, seeds) -> DesignConfig:
    s.check_keys({"replicates"})
    replicates = s.str_("replicates", "full", choices=REPLICATES)
    if replicates == "adaptive" and recipe.randomness != "independent":
        # Under common random numbers a seed's runs move together at every point; the whole-seed
        # bootstrap (method §12) needs every point to have every seed, which adaptive rounds leave out.
        raise s.error("replicates", f"adaptive needs train.randomness: independent (got {recipe.randomness!r}): "
                                    "under common random numbers every grid point must run every seed, "
                                    "because whole seeds are the replicates")
    if replicates == "adaptive" and len(seeds) < 2:
        raise s.error("replicates", f"adaptive needs two or more seeds to add (seeds: {list(seeds)}); "
                                    "with one seed every design is the full one")
    return DesignConfig(replicates=replicates)


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


def _model(top: _Section) -> tuple[str, dict | None]:
    """The architecture's name and, for a model of the user's, where its builder came from."""
    model = top.str_("model", required=True)
    if "model_source" in top.data and not is_import_path(model):
        raise top.error("model_source", f"is recorded only for a model named by import path, but model is {model!r}")
    if model in BUILTIN_MODELS:
        return model, None
    if is_import_path(model):
        return model, _model_source(top, model)
    # Not built in: a model registered by user code, or a typo. Only now is torch worth importing.
    from hplandscape.models import list_models

    available = list_models()
    if model not in available:
        raise top.error("model", f"is not a registered architecture: {model!r}; available: {', '.join(available)}, "
                                 f"or your own as 'package.module:builder'")
    return model, None


def _model_source(top: _Section, model: str) -> dict:
    """Locate a model named by import path (PYTHONPATH, then beside the study file) and register it;
    a config read back from ``study.yaml`` names the file it recorded, which is checked when the
    network is first built (no import before)."""
    from hplandscape.models.imported import locate_model, use_source
    from hplandscape.user_code import CodeSource

    try:
        recorded = top.data.get("model_source")
        if recorded is not None:
            source = CodeSource.from_dict(recorded, "model_source")
            if source.import_path != model:
                raise top.error("model_source", f"records {source.import_path!r}, but model is {model!r}")
            use_source(source)
            return source.to_dict()
        return locate_model(model, _study_dir(top.source)).to_dict()
    except ConfigError:
        raise
    except UserError as e:
        raise UserError(f"{top.source}: {e}") from None


def _study_dir(source: str) -> str | None:
    """The directory of the study's YAML file (code it names may sit beside it); None for a
    config that came from no file (``"<dict>"``, ``"<quickstart>"``)."""
    if not source or source.startswith("<"):
        return None
    return os.path.dirname(os.path.abspath(source))


#: Data settings that only one kind of data has.
_ONLY_FOR = {"channels": ("imagefolder",), "in_memory": ("imagefolder",), "python_source": ("python",)}


def _data(s: _Section, study_dir: str | None) -> DataConfig:
    s.check_keys(_DATA_KEYS)
    python = s.str_("python")
    # data.python alone means data.name: python
    name = s.str_("name", "python" if python is not None else None, required=python is None, choices=DATASETS)
    if python is not None and name != "python":
        raise s.error("python", f"names a loader of one's own, which is data.name: python (or no data.name); "
                                f"got data.name: {name!r}")
    if name == "python" and python is None:
        raise s.error("python", "is required for data.name: python: the loader, as 'package.module:function', "
                                "looked for on PYTHONPATH and beside the study's YAML file")
    for key, names in _ONLY_FOR.items():
        if s.get(key) is not None and name not in names:
            raise s.error(key, f"is only for data.name {' or '.join(names)}; got {_show(s.data[key])} with "
                               f"dataset {name!r}")
    root = s.str_("root")
    if root is not None:
        # Absolute from here on: jobs may start in another working directory (SLURM nodes).
        root = os.path.abspath(os.path.expanduser(root))
    if name not in ("digits", "python") and root is None:
        raise s.error("root", f"is required for dataset {name!r} (the directory holding the data)")
    download = s.bool_("download", False)
    if download and name not in ("cifar10", "cifar100"):
        raise s.error("download", f"is only supported for cifar10 or cifar100 (digits ships with scikit-learn, "
                                  f"ImageNet and folders or loaders of one's own are not fetched); got download: "
                                  f"true with dataset {name!r}")
    image_size = s.int_("image_size")
    if image_size is not None and image_size > MAX_IMAGE_SIZE:
        raise s.error("image_size", f"must be at most {MAX_IMAGE_SIZE} pixels per side, got {image_size}")
    if name == "imagefolder" and image_size is None:
        raise s.error("image_size", "is required for imagefolder: every image is cropped to its central square "
                                    "and resized to image_size × image_size pixels (e.g. 32 for the CIFAR "
                                    "ResNets, 224 for ImageNet models)")
    channels = s.get("channels")
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise s.error("channels", f"must be 3 (RGB, the default) or 1 (greyscale), got {_show(channels)}")
    in_memory = s.get("in_memory")
    if in_memory == "auto":
        in_memory = None
    if not (in_memory is None or isinstance(in_memory, bool)):
        raise s.error("in_memory", f"must be auto (by the decoded images' size), true (hold them in memory) or "
                                   f"false (stream them from the files), got {_show(in_memory)}")
    return DataConfig(
        name=name, root=root, download=download,
        num_workers=s.int_("num_workers", 4, minimum=0),
        image_size=image_size,
        train_subset=s.int_("train_subset"), test_subset=s.int_("test_subset"),
        channels=channels, in_memory=in_memory, python=python,
        python_source=_python_source(s, python, study_dir) if python is not None else None)


def _python_source(s: _Section, python: str, study_dir: str | None) -> dict:
    """Where ``data.python`` is: located now (beside the YAML, or on PYTHONPATH), or as the stored
    ``study.yaml`` recorded it, so a worker imports what the sweep located (and checks its hash)."""
    stored = s.get("python_source")
    if stored is None:
        try:
            return locate(python, base_dir=study_dir, what="data.python").to_dict()
        except UserError as e:
            raise UserError(f"{s.source}: {e}") from None
    try:
        source = CodeSource.from_dict(stored, "data.python_source")
    except UserError as e:
        raise s.error("python_source", f"is the recorded place of data.python: {e}") from None
    if source.import_path != python:
        raise s.error("python_source", f"records {source.import_path!r}, but data.python is {python!r}; leave "
                                       "python_source out (it is located again)")
    return source.to_dict()


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
    default_preset, default_augment = DATASET_DEFAULTS[data.name]
    preset = s.str_("preset", default_preset, choices=tuple(sorted(PRESETS)))
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
        augment=s.str_("augment", default_augment, choices=AUGMENTATIONS),
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
