"""The fused engine: runs of one study trained B at a time as one fused network.

Every grid point of a condition trains the same architecture; only the learning rate and the
weight decay differ. On a GPU one small network occupies a fraction of the device, so
:func:`train_fused` trains the runs that can share a network as one (horizontal fusion, see
:mod:`hplandscape.training.model_fusion`), with per-model lr and wd. Each run goes through the same lifecycle as
in the sequential engine (:mod:`hplandscape.training.lifecycle`: set up, resume, per-run checkpoints in the
one format, :func:`~hplandscape.training.lifecycle.finish_run`); only the epoch loop is fused.

A model whose loss turns NaN/inf is masked out of the loss and frozen; it is recorded as diverged
and the others go on undisturbed.

On the CPU fusion is slower than training the runs one after another (grouped convolutions with few
channels per group were measured at 0.37–0.42× the speed of sequential training of a small ResNet
at B = 4–9), so :func:`choose_engine` picks fusion only on CUDA.

Runs of unstructured conditions (masks) and runs that measure gradient flow are trained by the
sequential engine only (:func:`fused_unsupported`): ``engine: auto`` sends them there on CUDA too.
Fine-tuned structured conditions fuse like any other (their start weights are loaded when each
run's network is built).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import torch

from hplandscape.choices import ENGINES
from hplandscape.errors import UserError
from hplandscape.store.layout import RunFiles
from hplandscape.study.recipes import RANDOMNESS
from hplandscape.training.checkpoints import CheckpointClock, resume, save_checkpoint
from hplandscape.training.data import load_data, train_steps
from hplandscape.training.lifecycle import RunProgress, evaluate, finish_run
from hplandscape.training.model_fusion import FusedSGD, fuse_models, per_model_loss, unfuse_state
from hplandscape.training.setup import (NetworkFacts, build_network, check_interval, choose_placement, data_seed,
                                        eval_batch_size, init_seed, make_optimizer, prepare_process, spec_fingerprint,
                                        upcast_logits)

log = logging.getLogger(__name__)


def choose_engine(engine: str, device) -> str:
    """``"sequential"`` or ``"fused"`` for a configured engine on a device.

    ``auto`` picks fusion on CUDA and sequential runs on the CPU, where grouped convolutions make
    fused training slower than training the runs one by one.

    Parameters
    ----------
    engine : {"auto", "sequential", "fused"}
    device : str or torch.device
        ``"auto"`` means CUDA when available.

    Examples
    --------
    >>> choose_engine("auto", "cpu"), choose_engine("auto", "cuda"), choose_engine("fused", "cpu")
    ('sequential', 'fused', 'fused')
    """
    if engine not in ENGINES:
        raise UserError(f"launcher.engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if engine != "auto":
        return engine
    dev = str(device)
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    return "fused" if dev.startswith("cuda") else "sequential"


def fused_unsupported(spec) -> str | None:
    """Why the fused engine cannot train ``spec`` (None when it can).

    The fused network has no per-model masks and no gradient-flow measurement; those runs go to
    the sequential engine.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> fused_unsupported(NS(sparsity=None, recipe=NS(gradient_flow=False))) is None
    True
    >>> fused_unsupported(NS(sparsity={"method": "set"}, recipe=NS(gradient_flow=False)))
    'its weights are masked (unstructured set)'
    """
    if spec.sparsity is not None:
        return f"its weights are masked (unstructured {spec.sparsity.get('method')})"
    if spec.recipe.gradient_flow:
        return "it measures gradient flow (train.gradient_flow)"
    if getattr(spec, "model_source", None) is not None:
        # fusing B copies relies on each block's channel layout (a concatenation or a reshape of
        # the fused (N, B·C, H, W) tensor would mix the models), known only for the built-ins
        return f"its model is your own ({spec.model}): only the built-in architectures fuse"
    return None


def train_fused(specs, *, randomness: str | None = None) -> list[dict]:
    """Train runs of one study together, B at a time in one fused network.

    Runs that can share a network (same architecture, data, recipe and device; they differ in lr,
    wd and seed) are fused; others form separate groups. Each record has the keys of
    :func:`hplandscape.training.sequential_engine.train_run`'s, with ``engine: "fused"``.

    Parameters
    ----------
    specs : sequence of RunSpec
    randomness : {"independent", "common"}, optional
        Overrides each spec's ``recipe.randomness``. ``common`` (common random numbers): runs of one
        seed share their init and batches (one data stream per seed). ``independent``: each run has
        its own init and data stream, seeded by its seed *and* grid point (the fused network then
        takes one batch per model). Either way a fused record equals the sequential engine's up to
        float rounding.

    Returns
    -------
    list of dict
        One run record per spec, in the order of ``specs``. ``wall_time_s`` is the run's share of
        its group's time (group time / number of runs fused).

    Notes
    -----
    - Per-run checkpoints in the sequential engine's format go to ``RunFiles(run_dir).checkpoint``
      after every epoch; an interrupted fused group resumes from them (and so can ``train_run``).
    - A run whose loss turns NaN/inf is frozen at that step, evaluated as it is at the end of the
      epoch (as the sequential engine does) and recorded with ``diverged: true``; the others train on.
    - Dropout masks are drawn for all models at once, so networks with dropout match the sequential
      engine in distribution, not bit for bit.

    Raises
    ------
    UserError
        Bad ``randomness``, a run the fused engine cannot train (:func:`fused_unsupported`), or
        whatever :func:`~hplandscape.training.sequential_engine.train_run` would refuse.
    """
    for s in specs:
        why = fused_unsupported(s)
        if why is not None:
            raise UserError(f"run {s.run_id} cannot be trained by the fused engine: {why}; use engine auto or "
                            f"sequential")
    if randomness is not None:
        if randomness not in RANDOMNESS:
            raise UserError(f"randomness must be one of {', '.join(RANDOMNESS)}; got {randomness!r}")
        specs = [dataclasses.replace(s, recipe=dataclasses.replace(s.recipe, randomness=randomness))
                 for s in specs]
    specs = list(specs)
    groups: dict[str, list] = {}
    for s in specs:
        groups.setdefault(_group_key(s), []).append(s)
    records = {}
    for group in groups.values():
        for rec in _train_group(group):
            records[rec["run_id"]] = rec
    return [records[s.run_id] for s in specs]


def _group_key(spec) -> str:
    doc = [spec.study, spec.model, spec.arch, spec.data.to_dict(), dataclasses.asdict(spec.recipe), spec.device]
    return repr(doc)


class _Run:
    """One run inside a fused group: its spec, own network (on the CPU), data stream and progress."""

    def __init__(self, spec, model, arch_hash):
        self.spec, self.model, self.arch_hash = spec, model, arch_hash
        self.files = RunFiles(spec.run_dir)
        self.data_seed = data_seed(spec)
        self.fingerprint = spec_fingerprint(spec)
        self.generator = torch.Generator().manual_seed(self.data_seed)
        self.momentum: dict = {}  # parameter name → momentum buffer, between cohorts and checkpoints
        self.progress = RunProgress()

    def resume(self) -> None:
        """Continue from the run's checkpoint, if it has one."""
        if not self.files.checkpoint.exists():
            return
        s = self.spec
        opt = make_optimizer(self.model, s.lr, s.wd, s.recipe)
        self.progress = resume(self.files, self.fingerprint, self.model, opt, self.generator)
        self.momentum = {n: opt.state[p]["momentum_buffer"] for n, p in self.model.named_parameters()
                         if "momentum_buffer" in opt.state.get(p, {})}
        log.info("%s: resuming at epoch %d from %s", s.run_id, self.progress.next_epoch, self.files.checkpoint)


def _train_group(specs):
    started = time.perf_counter()
    recipe = specs[0].recipe
    device = prepare_process(recipe, specs[0].device)
    data = load_data(specs[0].data)
    info = data.info
    runs = []
    for s in specs:
        RunFiles(s.run_dir).dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(init_seed(s))  # the He init, seeded as in the sequential engine
        run = _Run(s, *build_network(s, info))
        run.resume()
        runs.append(run)
    facts = NetworkFacts.of(runs[0].model, runs[0].arch_hash, info)  # one architecture per group
    placement = choose_placement(recipe, device, specs[0].model)
    if placement.amp_dtype == torch.float16:  # fp16 needs loss scaling per model; bf16 or fp32 do not
        log.warning("fused engine: this GPU has no bf16; training in float32 instead of fp16")
        placement = dataclasses.replace(placement, amp_dtype=None)

    # Runs resumed at different epochs cannot share batches; train each cohort on its own.
    cohorts: dict[int, list] = {}
    for r in runs:
        if not r.progress.finished(recipe.epochs):
            cohorts.setdefault(r.progress.next_epoch, []).append(r)
    data = data.to(device)
    group_started = time.perf_counter()
    for cohort in cohorts.values():
        _train_cohort(cohort, data, recipe, placement)
    # Each run is charged its share of the group: setup now, epochs as they ran (progress.elapsed_s).
    setup_share = (group_started - started) / len(runs)
    return [finish_run(r.spec, r.progress, r.model, data, placement, facts, wall_s=r.progress.elapsed_s + setup_share,
                       engine="fused") for r in runs]


def _train_cohort(runs, data, recipe, placement):
    """Train runs that stand at the same epoch as one fused network to the end of the recipe."""
    device, memory_format = placement.device, placement.memory_format
    b = len(runs)
    probe_dtype = next(runs[0].model.parameters()).dtype
    probe = next(iter(data.eval_batches(2, device="cpu")))[0].to(probe_dtype)
    fused = fuse_models([r.model for r in runs], example_input=probe)
    fused.to(device=device, memory_format=memory_format)
    fused.train()
    opt = FusedSGD(fused, [r.spec.lr for r in runs], [r.spec.wd for r in runs], recipe.momentum,
                   recipe.nesterov, recipe.weight_decay_on_bn_bias)
    for i, r in enumerate(runs):
        if r.momentum:
            opt.load_momentum(i, {k: v.to(device) for k, v in r.momentum.items()})
    # One data stream per distinct seed: runs that share a seed share the batches (and their cost).
    seeds = sorted({r.data_seed for r in runs})
    stream_of = torch.tensor([seeds.index(r.data_seed) for r in runs], device=device)
    generators = {}
    for r in runs:
        generators.setdefault(r.data_seed, r.generator)
    check_every = check_interval(device)
    alive = torch.ones(b, dtype=torch.bool, device=device)
    dead_at: dict[int, dict] = {}  # run index → its state_dict at the step it diverged
    frozen: set[int] = set()  # runs that diverged in an earlier epoch: their records are complete
    epoch = runs[0].progress.next_epoch
    clock = CheckpointClock(min(r.spec.checkpoint_every_s for r in runs))
    steps = train_steps(data.num_train, recipe.batch_size)
    on_steps = recipe.milestones_on_steps
    while epoch < recipe.epochs and bool(alive.any()):
        epoch_started = time.perf_counter()
        lrs = [recipe.lr_at_step(r.spec.lr, epoch, 0, steps) for r in runs]  # the lr each epoch starts with
        opt.set_lr(lrs)
        step_lrs = lrs
        loss_sum = torch.zeros(b, dtype=torch.float64, device=device)
        correct = torch.zeros(b, dtype=torch.int64, device=device)
        seen = torch.zeros(b, dtype=torch.int64, device=device)
        streams = [data.train_batches(recipe.batch_size, generators[s], recipe.augment, device=device,
                                      memory_format=memory_format) for s in seeds]
        died = []
        for step, batches in enumerate(zip(*streams)):
            if on_steps:  # milestones on steps: the lr may drop inside the epoch (set only when it does)
                now = [recipe.lr_at_step(r.spec.lr, epoch, step, steps) for r in runs]
                if now != step_lrs:
                    opt.set_lr(now)
                    step_lrs = now
            if len(seeds) == 1:
                x, y = batches[0]
                y_models = y.view(-1, 1)
            else:
                x = torch.stack([xb for xb, _ in batches])[stream_of]
                y = torch.stack([yb for _, yb in batches])[stream_of]
                y_models = y.t()
            with placement.autocast():
                out = fused(x)
            losses = per_model_loss(out, y)
            total = torch.where(alive, losses, torch.zeros((), dtype=losses.dtype, device=device)).sum()
            opt.zero_grad()
            total.backward()
            opt.step()
            n = y_models.shape[0]
            # Losses are ≥ 0, so a model's running sum turns NaN/inf exactly when one of its batch losses did.
            loss_sum += torch.where(alive, losses.detach().double() * n, torch.zeros((), dtype=torch.float64, device=device))
            correct += ((out.detach().argmax(2) == y_models) & alive).sum(0)
            seen += alive * n
            if (step + 1) % check_every == 0:
                died += _check(alive, loss_sum, opt, fused, dead_at)
        died += _check(alive, loss_sum, opt, fused, dead_at)
        top = _evaluate_fused(fused, data, recipe, placement, b)
        seen_c = seen.clamp_min(1).cpu()
        loss_sum, correct = loss_sum.cpu(), correct.cpu()
        states = unfuse_state(fused)
        epoch_s = (time.perf_counter() - epoch_started) / b
        save = clock.due(last_epoch=epoch + 1 >= recipe.epochs)
        for i, r in enumerate(runs):
            if i in frozen:
                continue
            if i in died:
                r.model.load_state_dict(dead_at[i])
                top_i = _evaluate_one(r.model, data, recipe, placement)
                train_loss = None
            else:
                top_i = top[i]
                train_loss = loss_sum[i].item() / seen_c[i].item()
                r.model.load_state_dict(states[i])
            train_acc = 100.0 * correct[i].item() / seen_c[i].item()
            r.progress.end_epoch(lr=lrs[i], train_loss=train_loss, train_acc=train_acc, top1=top_i[0], top5=top_i[1])
            r.progress.elapsed_s += epoch_s
            r.momentum = {} if i in died else opt.momentum_of(i)
            # Runs that share a stream advanced only its generator; each checkpoint needs the state.
            r.generator.set_state(generators[r.data_seed].get_state())
            if i in died:
                log.warning("%s: loss became NaN/inf in epoch %d at lr %.3g; frozen (diverged)", r.spec.run_id, epoch, lrs[i])
            else:
                log.info("%s: epoch %d lr %.4g loss %.4f train %.2f%% val %.2f%% (fused)", r.spec.run_id, epoch,
                         lrs[i], train_loss, train_acc, top_i[0])
            if save or i in died:  # a diverged run's state is final
                _save_run_checkpoint(r, recipe)
        if save:
            clock.saved()
        frozen.update(died)
        epoch += 1


def _check(alive, loss_sum, opt, fused, dead_at) -> list[int]:
    """Freeze the runs whose running loss stopped being finite; return their indices."""
    bad = alive & ~torch.isfinite(loss_sum)
    if not bool(bad.any()):
        return []
    idx = bad.nonzero().flatten().tolist()
    states = unfuse_state(fused)
    for i in idx:
        alive[i] = False
        opt.freeze(i)
        dead_at[i] = {k: v.cpu() for k, v in states[i].items()}
    return idx


@torch.no_grad()
def _evaluate_fused(fused, data, recipe, placement, b) -> list[tuple]:
    """(top-1, top-5) per model, as :func:`hplandscape.training.lifecycle.evaluate` computes them for one."""
    device = placement.device
    fused.eval()
    k = 5 if data.info.num_classes > 5 else None
    c1 = torch.zeros(b, dtype=torch.int64, device=device)
    c5 = torch.zeros(b, dtype=torch.int64, device=device)
    n = 0
    # Fused activations are B times larger; smaller eval batches keep the memory of one training step.
    batch = max(recipe.batch_size, eval_batch_size(recipe, device) // b)
    with placement.autocast():
        for x, y in data.eval_batches(batch, device=device, memory_format=placement.memory_format):
            out = upcast_logits(fused(x))
            c1 += (out.argmax(2) == y[:, None]).sum(0)
            if k:
                c5 += (out.topk(k, dim=2).indices == y[:, None, None]).any(2).sum(0)
            n += len(y)
    fused.train()
    if n == 0:
        return [(0.0, 0.0 if k else None)] * b
    c1, c5 = c1.cpu(), c5.cpu()
    return [(100.0 * c1[i].item() / n, 100.0 * c5[i].item() / n if k else None) for i in range(b)]


def _evaluate_one(model, data, recipe, placement):
    """Evaluate one run's own network on the device; it goes back to the CPU, where runs wait."""
    model.to(device=placement.device, memory_format=placement.memory_format)
    try:
        return evaluate(model, data, eval_batch_size(recipe, placement.device), placement)
    finally:
        model.to("cpu")


def _save_run_checkpoint(run, recipe) -> None:
    """The run's state in the one checkpoint format (``train_run`` can resume it too)."""
    s = run.spec
    model = run.model.to("cpu")
    opt = make_optimizer(model, s.lr, s.wd, recipe)
    for name, p in model.named_parameters():
        if name in run.momentum:
            opt.state[p]["momentum_buffer"] = run.momentum[name].to("cpu")
    save_checkpoint(run.files.checkpoint, run.fingerprint, model, opt, run.generator, None, run.progress)
