"""What a study will cost, before it runs: ``sweep --dry-run --estimate``.

Each distinct architecture of the study (the basemodel, and every structured condition's pruned
network) trains a few timed SGD steps and evaluates a few batches on the configured device, with
the recipe's batch sizes, precision and memory format and the data's own pipeline (augmentation
included), exactly as a run's epochs do. A run's time is then its epochs × (steps per epoch × the
step time + evaluation batches × the batch time); the study's compute is the sum over the runs
still to train, and its wall time the pruning source's run (the other runs wait for it, method §5)
plus the rest spread over the runs that train at once.

What the estimate leaves out, so that a reader can judge it: start-up of each job (imports, data
loading, a few seconds a run on the CPU), checkpoints, the prune step, and queueing on a cluster.
A structured condition's widths are taken from a randomly initialised network ranked as the
method ranks the trained one: its FLOPs match the budget as the trained ranking's do, so its step
time does too. Unstructured conditions train the dense architecture with masks applied after each
step; they are timed as the basemodel, the masks' cost aside.

:func:`eta_seconds` answers the same question during a study from the runs already recorded.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass

from hplandscape.errors import UserError

#: SGD steps timed per architecture, after :data:`WARMUP_STEPS` untimed ones (allocations, cuDNN's
#: kernel search and the first-call costs of the data pipeline land in those).
TIMED_STEPS = 5
WARMUP_STEPS = 2
#: Evaluation batches timed per architecture (after one untimed).
TIMED_EVAL_BATCHES = 3


@dataclass(frozen=True)
class ArchCost:
    """One distinct architecture of a study, timed: what a run of it costs."""

    label: str  # "base" or the structured condition it stands for
    conditions: tuple  # the condition names that train it
    params: int
    flops: int
    step_s: float  # one SGD step at the recipe's batch size
    eval_batch_s: float  # one evaluation batch
    run_s: float  # one whole run: epochs × (steps × step_s + eval batches × eval_batch_s)
    runs: int  # runs of these conditions still to train


@dataclass(frozen=True)
class CostEstimate:
    """What the runs still to train will cost (:func:`estimate_cost`)."""

    device: str
    archs: tuple  # ArchCost
    runs: int
    compute_s: float  # the sum over runs: CPU- or GPU-seconds, one run at a time each
    parallel: int  # runs that train at once
    wall_s: float
    notes: tuple = ()

    def lines(self) -> list[str]:
        unit = "GPU" if self.device.startswith("cuda") else "CPU"
        per_run = "threads" if unit == "CPU" else "device"
        out = [f"Estimated cost on {self.device} ({TIMED_STEPS} timed steps per architecture):"]
        for a in self.archs:
            out.append(f"  {a.label:<24} {a.runs:>5} runs × {duration_text(a.run_s):>9} "
                       f"(step {a.step_s * 1e3:.1f} ms, eval batch {a.eval_batch_s * 1e3:.1f} ms; "
                       f"{a.params:,} params, {a.flops / 1e6:,.1f} MFLOPs)")
        out.append(f"  total: {self.runs} runs, {self.compute_s / 3600:.2f} {unit}-hours of compute "
                   f"({per_run} of one run each), about {duration_text(self.wall_s)} wall time at "
                   f"{self.parallel} run(s) at once")
        out += [f"  {n}" for n in self.notes]
        return out

    def to_json(self) -> dict:
        return {"device": self.device, "runs": self.runs, "compute_s": self.compute_s, "parallel": self.parallel,
                "wall_s": self.wall_s, "archs": [a.__dict__ | {"conditions": list(a.conditions)} for a in self.archs],
                "notes": list(self.notes)}


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def study_cost(run_counts: dict, run_seconds: dict, source_s: float, parallel: int) -> tuple[float, float]:
    """``(compute_s, wall_s)`` of ``run_counts[label]`` runs of ``run_seconds[label]`` each.

    The pruning source (``source_s``, 0 when it is recorded already) trains alone before the rest;
    the rest spread over ``parallel`` runs at once, never faster than their longest run.

    >>> study_cost({"base": 49, "uniform-0.5": 50}, {"base": 2.0, "uniform-0.5": 1.0}, 2.0, 2)
    (150.0, 76.0)
    """
    compute = source_s + sum(run_counts[k] * run_seconds[k] for k in run_counts)
    rest = compute - source_s
    longest = max((run_seconds[k] for k in run_counts if run_counts[k]), default=0.0)
    return compute, source_s + max(rest / max(parallel, 1), longest)


def _time_architecture(model, data, recipe, placement, steps: int, warmup: int, eval_batches: int):
    """Seconds per SGD step and per evaluation batch of ``model`` on ``data`` with ``recipe``."""
    import torch

    from hplandscape.training.sequential_engine import train_step
    from hplandscape.training.setup import eval_batch_size, grad_scaler, make_optimizer

    device = placement.device
    model = model.to(device, memory_format=placement.memory_format)
    optimizer = make_optimizer(model, 0.01, 1e-4, recipe)
    scaler = grad_scaler(placement)
    generator = torch.Generator().manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def batches():
        while True:  # epochs back to back, for a split smaller than the steps timed
            yield from data.train_batches(recipe.batch_size, generator, recipe.augment, device=device,
                                          memory_format=placement.memory_format)

    model.train()
    stream = batches()
    started = None
    for i in range(warmup + steps):
        if i == warmup:
            sync()
            started = time.perf_counter()
        x, y = next(stream)
        loss, _ = train_step(model, optimizer, x, y, placement, scaler)  # the engine's own step
        loss.item()  # the engine reads the loss as often on the CPU
    sync()
    step_s = (time.perf_counter() - started) / steps

    model.eval()
    size = eval_batch_size(recipe, device)
    timed, n = 0.0, 0
    with torch.no_grad(), placement.autocast():
        for i, (x, _) in enumerate(data.eval_batches(size, device=device, memory_format=placement.memory_format)):
            if i > eval_batches:
                break
            sync()
            t0 = time.perf_counter()
            model(x).argmax(1).sum().item()
            sync()
            if i:  # the first batch is the warm-up
                timed += time.perf_counter() - t0
                n += 1
    eval_s = timed / n if n else 0.0
    return step_s, eval_s


def estimate_cost(config, plan, *, parallel: int, engine: str | None = None, steps: int = TIMED_STEPS,
                  warmup: int = WARMUP_STEPS) -> CostEstimate:
    """Time each distinct architecture of ``config`` and estimate what ``plan``'s runs will cost.

    Parameters
    ----------
    config : StudyConfig
    plan : hplandscape.run.plan.StudyPlan
        The runs still to train (a dry run's plan).
    parallel : int
        Runs that train at once (the local runner's ``max_parallel``, SLURM's array parallelism).
    engine : str, optional
        The engine the sweep would use; the estimate times the sequential engine's steps, and says
        so when the fused engine would train the runs.

    Raises
    ------
    UserError
        ``launcher.device: cuda`` on a machine without CUDA: the estimate times the device the
        runs will use, so it must run where that device is (a GPU node, not a login node).
    """
    import torch

    from hplandscape.models import build_model, count_flops, count_params
    from hplandscape.pruning.structured import build_from_spec, prune
    from hplandscape.run.executors import threads_per_run
    from hplandscape.study.runs import source_run
    from hplandscape.training.data import load_data, train_steps
    from hplandscape.training.setup import choose_placement, eval_batch_size, resolve_device

    if config.launcher.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--estimate times the configured device, and launcher.device is 'cuda' but this "
                        "machine has none: run the dry run with --estimate on a GPU node (e.g. in an "
                        "interactive job), or estimate on the CPU with launcher.device=cpu")
    device = resolve_device(config.launcher.device)
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads_per_run(config.launcher, config.recipe))  # as each worker
    try:
        data = load_data(config.data).to(device) if device.type == "cuda" else load_data(config.data)
        info = data.info
        shape = (info.in_channels, info.image_size, info.image_size)
        remaining = Counter(planned.condition.name for planned in plan.runs)
        groups: dict[str, list] = {"base": []}
        for c in config.conditions:  # the dense ones that train as long as the basemodel time as it
            dense_like_base = not c.structured and config.recipe_for(c) == config.recipe
            groups.setdefault("base" if dense_like_base else c.name, []).append(c)
        archs, run_seconds, run_counts = [], {}, {}
        source = source_run(config).run_id
        source_pending = any(p.run_id == source for p in plan.runs)
        for label, conditions in groups.items():
            if not conditions:
                continue
            c = conditions[0]
            recipe = config.recipe_for(c)
            torch.manual_seed(0)
            if c.structured:  # widths from a random network's ranking: the budget's FLOPs, as the trained one's
                spec = prune(config.model, c.method, c.ratio, num_classes=info.num_classes,
                             in_channels=info.in_channels, input_shape=shape, seed=0,
                             normalizer=config.pruning.normalizer, max_layer_prune=config.pruning.max_layer_prune)
                model = build_from_spec(spec)
            else:
                model = build_model(config.model, num_classes=info.num_classes, in_channels=info.in_channels)
            flops, params = count_flops(model, shape), count_params(model)
            placement = choose_placement(recipe, device, config.model)
            step_s, eval_s = _time_architecture(model, data, recipe, placement, steps, warmup, TIMED_EVAL_BATCHES)
            per_epoch = (train_steps(data.num_train, recipe.batch_size) * step_s
                         + math.ceil(data.num_test / eval_batch_size(recipe, device)) * eval_s)
            run_s = recipe.epochs * per_epoch
            n = sum(remaining[x.name] for x in conditions)
            archs.append(ArchCost(label if label != "base" else "basemodel (dense)", tuple(x.name for x in conditions),
                                  params, flops, step_s, eval_s, run_s, n))
            alone = label == "base" and source_pending  # the pruning source trains first, alone: counted apart
            run_seconds[label], run_counts[label] = run_s, n - alone
        source_s = run_seconds.get("base", 0.0) if source_pending else 0.0
        compute, wall = study_cost(run_counts, run_seconds, source_s, parallel)
    finally:
        torch.set_num_threads(before)
    notes = []
    if any(not c.structured and c.pruned for c in config.conditions):
        notes.append("unstructured conditions are timed as the dense basemodel (their masks' cost aside)")
    if engine == "fused" or (engine in (None, "auto") and config.launcher.engine == "fused"):
        notes.append("timed as the sequential engine trains; the fused engine trains blocks of runs as one network")
    notes.append("not counted: each job's start-up, checkpoints, the prune step, queueing")
    return CostEstimate(str(device), tuple(archs), sum(a.runs for a in archs), compute, parallel, wall, tuple(notes))


def eta_seconds(records: list, remaining: dict, parallel: int) -> float | None:
    """Wall seconds until the runs still to train are done, from the runs already recorded.

    ``records``: (condition, wall_time_s) of the finished runs; ``remaining``: {condition: runs
    still to train}. Each condition's runs take its recorded mean (the study's mean where it has
    none yet), spread over ``parallel`` runs at once, and never finish sooner than one run takes.
    None while nothing is recorded.

    >>> eta_seconds([("base", 10.0), ("base", 14.0), ("p", 6.0)], {"base": 4, "p": 2, "q": 2}, 2)
    40.0
    """
    times: dict[str, list] = {}
    for condition, seconds in records:
        if seconds is not None and math.isfinite(seconds) and seconds > 0:
            times.setdefault(condition, []).append(seconds)
    if not times:
        return None
    overall = sum(sum(v) for v in times.values()) / sum(len(v) for v in times.values())
    mean = {c: (sum(times[c]) / len(times[c]) if c in times else overall) for c, n in remaining.items() if n}
    if not mean:
        return 0.0
    work = sum(remaining[c] * m for c, m in mean.items())
    return max(work / max(parallel, 1), max(mean.values()))  # never less than one run's time
