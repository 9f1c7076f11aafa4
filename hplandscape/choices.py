"""The named choices of a study config, defined once (no imports: every module may use them).

The config's validation (:mod:`hplandscape.study.validation`) checks against these; the CLI offers
them as ``choices``; the data, worker and engine modules import them instead of restating them. Pruning methods are registered in
:mod:`hplandscape.pruning.methods` (each with its kind, settings and implementation), augmentations
and data orders with the recipes (:mod:`hplandscape.study.recipes`). Executors are named here
(:data:`EXECUTORS`); the runner interface that executes a plan is :mod:`hplandscape.run.runners`.
"""

#: ``imagefolder``: train/ and val/ class folders of images; ``python``: ``(train, test)`` from a
#: loader of one's own (``data.python``).
DATASETS = ("digits", "cifar10", "cifar100", "imagenet", "imagefolder", "python")
ENGINES = ("auto", "sequential", "fused")
DEVICES = ("auto", "cpu", "cuda")
PRUNING_SOURCES = ("trained", "random")

#: The built-in executors (``launcher.executor``, ``sweep --executor``): name → the runner class
#: that executes a plan there, as ``"module:Class"`` (imported when first used, by
#: :func:`hplandscape.run.runners.runner_class`). Order is the order the config's errors and the
#: CLI's help list them in.
BUILTIN_EXECUTORS = {
    "local": "hplandscape.run.local_runner:LocalRunner",
    "slurm": "hplandscape.run.slurm_runner:SlurmRunner",
    "debug": "hplandscape.run.local_runner:DebugRunner",
}
#: The live registry: the built-in executors and those :func:`hplandscape.run.runners.register_runner`
#: added (a ``Runner`` subclass or ``"module:Class"``).
EXECUTORS: dict = dict(BUILTIN_EXECUTORS)


def executor_names() -> tuple:
    """The executor names a config and the CLI may choose, in the registry's order.

    >>> executor_names()[:3]
    ('local', 'slurm', 'debug')
    """
    return tuple(EXECUTORS)
#: How a pruned condition trains: re-initialised from scratch (the method's) or fine-tuned from the
#: trained basemodel's weights with its pruning applied.
PIPELINES = ("retrain", "finetune")

# The analysis and the report (method §7–8): which accuracy, how landscapes share colours, which
# static figure files; the CLI offers them without importing a plotting library.
METRICS = ("top1", "top5")
COLOUR_SCALES = ("condition", "shared")
FIGURE_FORMATS = ("png", "svg", "pdf")
DEFAULT_DPI = 150
#: Seconds between looks at a running study (``report --watch`` without a value).
WATCH_S = 60
DPI_RANGE = (50, 1200)


def plain_name(name: str) -> bool:
    """Whether ``name`` may name a study or a condition: letters, digits, '-', '_' and '.', not
    '.' or '..' (it names a directory under the study root, and reaches the report's Markdown, its
    figures and its CSV files as it is).

    >>> plain_name("global-0.5"), plain_name("a b"), plain_name("=HYPERLINK(1)"), plain_name("..")
    (True, False, False, False)
    """
    return bool(name) and all(ch.isalnum() or ch in "-_." for ch in name) and name not in (".", "..")
