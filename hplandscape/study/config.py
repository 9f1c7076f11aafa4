"""Study configuration: the frozen dataclasses a study's YAML becomes, and the bounds they are held to.

A :class:`StudyConfig` is made by :func:`hplandscape.study.validation.study_from_dict` (every check
on user-supplied settings, each failure a :class:`hplandscape.errors.ConfigError` naming the file,
the dotted key, the bad value and what is allowed) from the mapping that
:func:`hplandscape.study.loading.load_study` reads from YAML in ``grids/``. What only the machine
can tell (CUDA present, the data directory, pruning ratios the architecture can reach) is checked
by :func:`hplandscape.run.preflight.check_runnable` before a sweep writes anything.

The enumerations of allowed values (engines, devices, datasets, methods, ...) are defined here, in
:mod:`hplandscape.choices`, :mod:`hplandscape.study.recipes` or the pruning registry
(:mod:`hplandscape.pruning.methods`), once; other modules import them.

Examples
--------
>>> from hplandscape.study.loading import load_quickstart
>>> cfg = load_quickstart()
>>> cfg.model, [c.name for c in cfg.conditions]
('resnet20', ['base', 'uniform-0.5', 'global-0.5'])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from hplandscape.pruning.arch_spec import DEFAULT_MAX_LAYER_PRUNE, DEFAULT_NORMALIZER
from hplandscape.pruning.arch_spec import METHODS as PRUNING_METHODS
from hplandscape.pruning.mask_spec import DEFAULT_SET_ZETA, DEFAULT_SPARSE_LAYER_FLOOR, SPARSE_METHODS
from hplandscape.pruning.methods import MethodNames
from hplandscape.study.grid import axis_values, extend_axis
from hplandscape.study.recipes import Recipe

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
                  "resnet50", "resnet56", "vgg16", "wrn22_2")

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
    """Where the data comes from. ``root`` is required for CIFAR, ImageNet and image folders.

    ``channels`` (image folders): 3 converts every image to RGB (None: the default), 1 to greyscale.
    ``in_memory`` (image folders): hold the decoded images in memory (True), stream them from the
    files (False), or decide by their size (None: ``auto``, see
    :func:`hplandscape.training.image_folder.in_memory_limit`); the batches are the same either way.
    ``python`` names a loader of one's own (``data.name: python``), and ``python_source`` records
    where it was found (a :class:`hplandscape.user_code.CodeSource` as a dict), so that every
    process imports the same file and a changed file is refused.
    """

    name: str
    root: str | None = None
    download: bool = False
    num_workers: int = 4
    image_size: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    channels: int | None = None
    in_memory: bool | None = None
    python: str | None = None
    python_source: dict | None = None

    def to_dict(self) -> dict:
        """Plain data; the settings added with image folders and loaders of one's own appear only
        when set, so the data of a study written before them compares (and fingerprints) equal."""
        d = dataclasses.asdict(self)
        for key in _DATA_OPTIONAL:
            if d[key] is None:
                del d[key]
        return d


#: DataConfig fields left out of :meth:`DataConfig.to_dict` while they are None.
_DATA_OPTIONAL = ("channels", "in_memory", "python", "python_source")


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


@dataclass(frozen=True)
class DesignConfig:
    """Which seeds run where (:mod:`hplandscape.study.replication`): ``replicates: full`` runs every
    seed at every grid point; ``adaptive`` runs them in rounds, adding seeds only where the results
    so far leave a point's ROI membership or its claim to be the best open (docs/method.md §12,
    "Adaptive replication"). It decides which runs the study has, so a study started with one design
    is refused the other, as any changed config is."""

    replicates: str = "full"


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
    design: DesignConfig = DesignConfig()
    source: str = "<dict>"
    #: Where a model named by import path came from (a :class:`hplandscape.user_code.CodeSource` as
    #: a dict: import path, file, sha256, import root); None for a built-in architecture.
    model_source: dict | None = None
    #: The ``KEY=VALUE`` overrides applied to the file's settings (:mod:`hplandscape.study.overrides`);
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
            "data": self.data.to_dict(),
            "conditions": [c.to_dict() for c in self.conditions],
            "grid": grid,
            "seeds": list(self.seeds),
            "train": self.recipe.to_dict(),
            "pruning": self.pruning.to_dict(),
            "launcher": dataclasses.asdict(self.launcher),
            "analysis": {"roi": list(self.analysis.roi)},
            # only for a design other than the default: a full-design study's file stays as it was
            **({"design": {"replicates": self.design.replicates}} if self.design != DesignConfig() else {}),
            # only for a model of the user's: a built-in study's file stays as it was
            **({"model_source": dict(self.model_source)} if self.model_source else {}),
        }

    def with_grid(self, grid: GridConfig) -> "StudyConfig":
        return dataclasses.replace(self, grid=grid)

    def with_replicates(self, replicates: str) -> "StudyConfig":
        return dataclasses.replace(self, design=DesignConfig(replicates=replicates))
