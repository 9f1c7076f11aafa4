"""What one run is: the frozen, picklable description shipped to a worker.

A run is one (condition, grid point, seed) of a study. The launcher pickles a :class:`RunSpec`
(submitit does this), the worker calls :func:`hplandscape.training.sequential_engine.train_run` on it, and the store
writes the returned record. Everything the worker needs is in the spec; it reads no config file.
"""

from __future__ import annotations

from dataclasses import dataclass

from hplandscape.study.config import Condition, DataConfig
from hplandscape.study.grid import GridPoint
from hplandscape.study.recipes import Recipe
from hplandscape.study.runs import run_id


@dataclass(frozen=True)
class RunSpec:
    """One run of a study.

    Parameters
    ----------
    study : str
        Study name.
    condition : Condition
        Basemodel or pruned condition.
    point : GridPoint
        The (lr, wd) grid point; lr and wd are SGD's coupled coefficients (see ``recipes``).
    seed : int
        Fixes initialisation, data order and augmentation.
    model : str
        Registered architecture name.
    data : DataConfig
    recipe : Recipe
    arch : dict or None
        The pruned architecture (an ``ArchSpec`` as a JSON dict); None for the basemodel.
    run_dir : str
        Directory where the run keeps ``checkpoint.pt`` (and ``model.pt``).
    keep_weights : bool
        Save the final weights to ``run_dir/model.pt`` (the basemodel at the prior: the pruning
        source).
    device : {"auto", "cpu", "cuda"}
    engine : {"auto", "sequential", "fused"}
    sparsity : dict or None
        An unstructured condition's masks, described: a ``MaskSpec`` as a JSON dict (with its
        content hash); None otherwise.
    masks_file : str or None
        Where those masks are (``STUDY/specs/<condition>.masks.pt``).
    start_weights : str or None
        The weights file a fine-tuned condition starts from: the trained basemodel's (masked by
        the run) or its structured pruning's surviving filters. None: fresh He init.
    model_source : dict or None
        Where a model named by import path came from (``StudyConfig.model_source``: import path,
        file, sha256, import root); the worker imports it from there and refuses a changed file.
        None for a built-in architecture.
    checkpoint_every_s : float
        Save the training state after an epoch once this many seconds passed since the last save,
        and after the last epoch; 0: after every epoch (``launcher.checkpoint_every_s``). Not part
        of the run's fingerprint: it changes nothing computed.
    round : int
        The round of the study's design that asked for the run (1: the first round, every run of a
        full design; :func:`~hplandscape.study.replication.added_runs`). Recorded with the run; not
        part of its fingerprint: a run computes the same whichever round asked for it.
    replicates : {"full", "adaptive"}
        The study's ``design.replicates``; recorded with the run, not part of its fingerprint.
    """

    study: str
    condition: Condition
    point: GridPoint
    seed: int
    model: str
    data: DataConfig
    recipe: Recipe
    arch: dict | None
    run_dir: str
    keep_weights: bool = False
    device: str = "auto"
    engine: str = "auto"
    sparsity: dict | None = None
    masks_file: str | None = None
    start_weights: str | None = None
    checkpoint_every_s: float = 30.0
    model_source: dict | None = None
    round: int = 1
    replicates: str = "full"

    @property
    def run_id(self) -> str:
        return run_id(self.condition.name, self.point, self.seed)

    @property
    def lr(self) -> float:
        return self.point.lr

    @property
    def wd(self) -> float:
        return self.point.wd
