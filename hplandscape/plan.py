"""Plan, then run: what a sweep has left to do, as a frozen :class:`StudyPlan`.

:func:`plan_study` reads the study's files and returns the steps still needed, in the one order
the method fixes (§5: the L1 ranking comes from the basemodel trained at the prior):

1. ``source``: the basemodel at the prior with the first seed, keeping its weights (``model.pt``);
2. ``prune``: the pruned architecture (or the masks) of every pruned condition that has none yet
   (needs ``source``);
3. ``base``: every other basemodel run (needs nothing);
4. ``pruned``: every run of a pruned condition (needs ``prune``).

Each step names the steps it needs; the runners only execute that: the local runner releases a
step's jobs once the steps it needs are done, the SLURM runner turns the same needs into
``afterok`` job dependencies. Nothing here launches, waits or writes.

Examples
--------
>>> import tempfile
>>> from hplandscape.config import load_quickstart
>>> from hplandscape.store import StudyStore
>>> plan = plan_study(load_quickstart(), StudyStore(tempfile.mkdtemp()))
>>> [(s.name, len(s.runs) or len(s.conditions), s.needs) for s in plan.steps]
[('source', 1, ()), ('prune', 2, ('source',)), ('base', 49, ()), ('pruned', 100, ('prune',))]
"""

from __future__ import annotations

from dataclasses import dataclass

from hplandscape.prune_step import conditions_to_prune, stored_arch
from hplandscape.spec import RunSpec
from hplandscape.store import StudyStore, source_run

#: Dry-run phase of each step: 1 source, 2 prune, 3 the rest.
PHASES = {"source": 1, "prune": 2, "base": 3, "pruned": 3}


@dataclass(frozen=True)
class Step:
    """One step of a plan: runs to train, or conditions to prune, once ``needs`` are done."""

    name: str
    runs: tuple = ()  # RunSpec
    conditions: tuple = ()  # names of the pruned conditions to prune
    needs: tuple = ()  # names of earlier steps that must have succeeded

    @property
    def phase(self) -> int:
        return PHASES[self.name]

    def blocks(self, size: int) -> list[list]:
        """The step's runs in jobs of at most ``size`` runs that never mix conditions (one
        architecture per job, so a block can be fused)."""
        out: list[list] = []
        for r in self.runs:
            if out and len(out[-1]) < size and out[-1][-1].condition == r.condition:
                out[-1].append(r)
            else:
                out.append([r])
        return out


@dataclass(frozen=True)
class PlannedRun:
    """One line of a dry run: which phase, which run (or pruning), the directory or file it makes."""

    phase: int
    run_id: str
    where: str


@dataclass(frozen=True)
class StudyPlan:
    """What a study has left to do; built by :func:`plan_study`, executed by a runner.

    ``total`` counts every run of the study, ``recorded`` those with a valid record (skipped).
    """

    study_dir: str
    steps: tuple
    total: int
    recorded: int

    @property
    def runs(self) -> list:
        """Every RunSpec to train, in step order."""
        return [r for s in self.steps for r in s.runs]

    @property
    def empty(self) -> bool:
        return not self.steps

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def lines(self, store: StudyStore) -> list[PlannedRun]:
        """The dry-run lines: every run and pruning with its phase and the file it makes."""
        out = []
        for s in self.steps:
            out += [PlannedRun(s.phase, r.run_id, r.run_dir) for r in s.runs]
            out += [PlannedRun(s.phase, f"prune {c}", str(store.spec_path(c))) for c in s.conditions]
        return out

    def describe(self, store: StudyStore, where: str) -> str:
        """The dry run as text: counts, where each job would run, then one line per run or pruning."""
        lines = self.lines(store)
        runs = sum(p.phase != 2 for p in lines)
        prunes = len(lines) - runs
        made = f" and {prunes} pruned architecture(s) or mask set(s) would be made" if prunes else ""
        head = (f"Dry run of {self.study_dir}: {self.total} runs, {self.recorded} already recorded, "
                f"{runs} would run{made}")
        if not lines:
            return head + "."
        return "\n".join([head + f"; each job: {where}:"]
                         + [f"  phase {p.phase}  {p.run_id:<48} -> {p.where}" for p in lines])


def plan_study(config, store: StudyStore, *, engine: str | None = None,
               include_finished: bool = False) -> StudyPlan:
    """The steps a study still needs, from its config and the files of its directory.

    A run with a valid record (done or diverged) is left out; a corrupt record, a failure or a
    missing record is planned again. Pruned runs carry their architecture when it is stored
    already, else ``arch=None`` (the job reads it from the store once the prune step made it).

    Parameters
    ----------
    config : StudyConfig
    store : StudyStore
    engine : {"auto", "sequential", "fused"}, optional
        Overrides ``config.launcher.engine``.
    include_finished : bool
        Plan every run, recorded or not.

    Returns
    -------
    StudyPlan
    """
    source = source_run(config)
    stored = {}
    for c in config.conditions:
        spec = stored_arch(store, config, c) if c.pruned else None
        if spec is not None:
            stored[c.name] = {**spec.to_dict(), "content_hash": spec.content_hash}
    runs = store.runs(config)
    todo = [r for r in runs if include_finished or not store.read_record(r.run_id)[0].finished]
    specs = [RunSpec(study=config.name, condition=r.condition, point=r.point, seed=r.seed,
                     model=config.model, data=config.data, recipe=config.recipe_for(r.condition),
                     arch=stored.get(r.condition.name) if r.condition.structured else None,
                     run_dir=str(store.run_dir(r.run_id)),
                     keep_weights=(r.run_id == source.run_id), device=config.launcher.device,
                     engine=engine or config.launcher.engine,
                     sparsity=stored.get(r.condition.name) if r.condition.sparse else None,
                     masks_file=str(store.masks_path(r.condition.name)) if r.condition.sparse else None,
                     start_weights=_start_weights(store, source, r.condition))
             for r in todo]
    to_prune = tuple(c.name for c in conditions_to_prune(store, config))
    source_step = tuple(s for s in specs if s.run_id == source.run_id)
    steps = [
        Step("source", runs=source_step),
        Step("prune", conditions=to_prune, needs=("source",) if source_step else ()),
        Step("base", runs=tuple(s for s in specs if not s.condition.pruned and s.run_id != source.run_id)),
        Step("pruned", runs=tuple(s for s in specs if s.condition.pruned),
             needs=("prune",) if to_prune else ()),
    ]
    steps = tuple(s for s in steps if s.runs or s.conditions)
    return StudyPlan(str(store.root), steps, len(runs), len(runs) - len(todo))


def _start_weights(store: StudyStore, source, condition) -> str | None:
    """What a fine-tuned condition's runs start from: the trained basemodel's weights (masked by
    each run) or, for structured pruning, its surviving filters made by the prune step."""
    if not condition.finetune:
        return None
    if condition.sparse:
        return str(store.model_path(source.run_id))
    return str(store.start_weights_path(condition.name))
