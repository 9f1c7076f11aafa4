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
>>> from hplandscape.study.loading import load_quickstart
>>> from hplandscape.store.study_store import StudyStore
>>> plan = plan_study(load_quickstart(), StudyStore(tempfile.mkdtemp()))
>>> [(s.name, len(s.runs) or len(s.conditions), s.needs) for s in plan.steps]
[('source', 1, ()), ('prune', 2, ('source',)), ('base', 49, ()), ('pruned', 100, ('prune',))]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hplandscape.run.prune_step import conditions_to_prune, stored_arch
from hplandscape.store.study_store import StudyStore
from hplandscape.study.run_spec import RunSpec
from hplandscape.study.runs import source_run

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
        architecture per job, so a block can be fused).

        A condition's runs are split into as few jobs as ``size`` allows, of sizes that differ by
        at most one (24 runs at size 13: 12 + 12, not 13 + 11), so no job is left alone at the
        end with most of the work.
        """
        groups: list[list] = []
        for r in self.runs:
            if groups and groups[-1][-1].condition == r.condition:
                groups[-1].append(r)
            else:
                groups.append([r])
        out: list[list] = []
        for g in groups:
            n = -(-len(g) // max(1, size))
            q, extra = divmod(len(g), n)
            start = 0
            for i in range(n):
                end = start + q + (1 if i < extra else 0)
                out.append(g[start:end])
                start = end
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
        """The dry run as text: counts, where the jobs run and the folder, once, in a header; then
        one line per run or pruning with its phase and the file it makes, relative to the folder.

        Examples
        --------
        >>> import tempfile
        >>> from hplandscape.study.loading import load_quickstart
        >>> root = tempfile.mkdtemp()
        >>> store = StudyStore(root)
        >>> text = plan_study(load_quickstart(["grid.size=[1, 1]", "seeds=[0]"]), store).describe(store, "debug")
        >>> print(text.replace(root, "STUDY"))
        Dry run of STUDY: 3 runs, 0 already recorded, 3 would run and 2 pruned architecture(s) or mask set(s) would be made.
        Runs: debug. Files below are relative to STUDY.
          phase 1  base/lr-1.7500_wd-1.7500/seed0         -> runs/base/lr-1.7500_wd-1.7500/seed0/
          phase 2  prune uniform-0.5                      -> specs/uniform-0.5.json
          phase 2  prune global-0.5                       -> specs/global-0.5.json
          phase 3  uniform-0.5/lr-1.7500_wd-1.7500/seed0  -> runs/uniform-0.5/lr-1.7500_wd-1.7500/seed0/
          phase 3  global-0.5/lr-1.7500_wd-1.7500/seed0   -> runs/global-0.5/lr-1.7500_wd-1.7500/seed0/
        """
        lines = self.lines(store)
        runs = sum(p.phase != 2 for p in lines)
        prunes = len(lines) - runs
        made = f" and {prunes} pruned architecture(s) or mask set(s) would be made" if prunes else ""
        head = (f"Dry run of {self.study_dir}: {self.total} runs, {self.recorded} already recorded, "
                f"{runs} would run{made}.")
        if not lines:
            return head
        width = max(len(p.run_id) for p in lines) + 2
        return "\n".join([head, f"Runs: {where}. Files below are relative to {self.study_dir}."]
                         + [f"  phase {p.phase}  {p.run_id:<{width}}-> {_relative(p, store)}" for p in lines])


def _relative(planned: PlannedRun, store: StudyStore) -> str:
    """A dry-run line's file under the study folder (a run's folder ends in ``/``)."""
    path = Path(planned.where)
    try:
        shown = str(path.relative_to(store.root))
    except ValueError:  # not under the study folder: show it whole
        shown = str(path)
    return shown + ("/" if planned.phase != 2 else "")


def plan_study(config, store: StudyStore, *, engine: str | None = None,
               include_finished: bool = False, retrain=()) -> StudyPlan:
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
    retrain : collection of str
        Run ids planned even with a valid record: runs whose files the sweep sets aside before it
        runs the plan (a damaged pruning source), for its dry run.

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
    added = store.added_runs()  # the round that asked for each run of an adaptive design (absent: 1)
    todo = [r for r in runs
            if include_finished or r.run_id in retrain or not store.read_record(r.run_id)[0].finished]
    specs = [RunSpec(study=config.name, condition=r.condition, point=r.point, seed=r.seed,
                     model=config.model, data=config.data, recipe=config.recipe_for(r.condition),
                     arch=stored.get(r.condition.name) if r.condition.structured else None,
                     run_dir=str(store.run_dir(r.run_id)),
                     keep_weights=(r.run_id == source.run_id), device=config.launcher.device,
                     engine=engine or config.launcher.engine,
                     sparsity=stored.get(r.condition.name) if r.condition.sparse else None,
                     masks_file=str(store.masks_path(r.condition.name)) if r.condition.sparse else None,
                     start_weights=_start_weights(store, source, r.condition),
                     checkpoint_every_s=config.launcher.checkpoint_every_s, model_source=config.model_source,
                     round=added.get(r.run_id, 1), replicates=config.design.replicates)
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
