"""Checks a sweep makes before it writes anything: what only this machine can tell.

:func:`hplandscape.study.validation.study_from_dict` has checked everything the config alone
decides; :func:`check_runnable` adds CUDA, the data directory and the reachable pruning ratios.
"""

from __future__ import annotations

from hplandscape.choices import executor_names
from hplandscape.errors import ConfigError, UserError
from hplandscape.run.runners import runner_class
from hplandscape.study.config import StudyConfig

# --------------------------------------------------------------------------------------------
# What only the machine can tell.


def check_runnable(config: StudyConfig, executor: str | None = None):
    """Check that ``config`` can run from this machine, before a sweep writes anything.

    :func:`study_from_dict` has already checked everything the config alone decides; this adds
    what depends on the machine and on the installed architectures:

    - ``launcher.device: cuda`` needs a CUDA device here, unless the runs go to SLURM nodes;
    - the data directory exists and holds the dataset (:func:`hplandscape.training.data.dataset_info`);
    - a model of the user's (named by import path) builds, and one input of the dataset's shape
      gives one logit per class;
    - every structured condition's ratio is reachable for the architecture at the dataset's input
      shape (:func:`hplandscape.pruning.structured.smallest_ratio`, from the FLOPs model alone: no weights,
      no training).

    Imports torch (lazily): call it from commands that launch runs, not from light ones.

    Parameters
    ----------
    config : StudyConfig
    executor : str, optional
        Where the runs will execute (a name of :func:`hplandscape.run.runners.executor_names`); default
        ``config.launcher.executor``.

    Returns
    -------
    hplandscape.training.data.DatasetInfo
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
    from hplandscape.training.data import dataset_info

    info = dataset_info(config.data)
    shape = (info.in_channels, info.image_size, info.image_size)
    if config.model_source is not None:  # the user's builder: it must take the data before any run does
        from hplandscape.models.imported import check_builder_output

        try:
            check_builder_output(config.model, info.num_classes, shape)
        except UserError as e:
            raise UserError(f"{config.source}: {e}") from None
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
