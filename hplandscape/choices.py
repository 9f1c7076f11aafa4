"""The named choices of a study config, defined once (no imports: every module may use them).

``config.py`` validates against these; the CLI offers them as ``choices``; the data, launch and
engine modules import them instead of restating them. Pruning methods are registered in
:mod:`hplandscape.pruning.methods` (each with its kind, settings and implementation), executors
with their runners (:func:`hplandscape.runners.executor_names`), augmentations and data orders
with the recipes (:mod:`hplandscape.study.recipes`).
"""

DATASETS = ("digits", "cifar10", "imagenet")
ENGINES = ("auto", "sequential", "fused")
DEVICES = ("auto", "cpu", "cuda")
PRUNING_SOURCES = ("trained", "random")
#: How a pruned condition trains: re-initialised from scratch (the method's) or fine-tuned from the
#: trained basemodel's weights with its pruning applied.
PIPELINES = ("retrain", "finetune")

# The analysis and the report (method §7–8): which accuracy, how landscapes share colours, which
# static figure files; the CLI offers them without importing a plotting library.
METRICS = ("top1", "top5")
COLOUR_SCALES = ("condition", "shared")
FIGURE_FORMATS = ("png", "svg", "pdf")
DEFAULT_DPI = 150
DPI_RANGE = (50, 1200)


def plain_name(name: str) -> bool:
    """Whether ``name`` may name a study or a condition: letters, digits, '-', '_' and '.', not
    '.' or '..' (it names a directory under the study root, and reaches the report's Markdown, its
    figures and its CSV files as it is).

    >>> plain_name("global-0.5"), plain_name("a b"), plain_name("=HYPERLINK(1)"), plain_name("..")
    (True, False, False, False)
    """
    return bool(name) and all(ch.isalnum() or ch in "-_." for ch in name) and name not in (".", "..")
