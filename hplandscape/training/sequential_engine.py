"""The sequential engine: a :class:`~hplandscape.study.run_spec.RunSpec` in, one JSON-able run record out.

:func:`train_run` is the only thing a launcher ships to a worker (submitit pickles it). It builds
the (pruned) architecture with a fresh, seeded He init, trains it with the recipe at the spec's
learning rate and weight decay (SGD, coupled L2: ``torch.optim.SGD(weight_decay=wd)``),
evaluates after every epoch, and checkpoints atomically at epoch ends (every
``launcher.checkpoint_every_s`` seconds, and after the last). A run that finds a
checkpoint continues from it; on the CPU the resumed run ends with exactly the record an
uninterrupted run produces (timings aside). Setting up, resuming, checkpointing and finishing a
run are :mod:`hplandscape.training.lifecycle`'s, shared with the fused engine; the epoch loop is this
module's.

A loss that becomes NaN or infinite ends the run early with ``diverged: true``: high learning
rates do this at the corners of a grid, and it is a result, not an error.

Unstructured conditions train with their masks held by the optimizer's hooks
(:class:`hplandscape.pruning.unstructured.MaskedTraining`); SET's topology step and the gradient-flow
measurements run between epochs (:class:`hplandscape.training.lifecycle.RunExtras`). Only this engine
trains them (:func:`hplandscape.training.fused_engine.fused_unsupported`).
"""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F

from hplandscape.store.layout import RunFiles
from hplandscape.training.checkpoints import CheckpointClock, resume, save_checkpoint
from hplandscape.training.data import load_data, train_steps
from hplandscape.training.lifecycle import evaluate, finish_run, run_extras
from hplandscape.training.setup import (NetworkFacts, build_network, check_interval, choose_placement, data_seed,
                                        eval_batch_size, grad_scaler, init_seed, make_optimizer, prepare_process,
                                        spec_fingerprint, upcast_logits)

log = logging.getLogger(__name__)


def train_run(spec) -> dict:
    """Train and evaluate one run.

    Parameters
    ----------
    spec : hplandscape.study.run_spec.RunSpec
        Everything about the run. ``spec.seed`` fixes the initialisation, the data order and the
        augmentation; ``spec.recipe.threads`` (when set) the torch CPU threads.

    Returns
    -------
    dict
        The run record's JSON form (:meth:`hplandscape.store.run_record.RunRecord.to_json`), with every field
        of :class:`~hplandscape.store.run_record.RunRecord`, which says what each holds; ``engine`` is
        ``"sequential"``.

    Notes
    -----
    - Checkpoints go to ``RunFiles(run_dir).checkpoint`` after an epoch once
      ``spec.checkpoint_every_s`` seconds passed since the last one, and after the last epoch
      (temp file + ``os.replace``; :class:`~hplandscape.training.checkpoints.CheckpointClock`), and stay
      until the caller has stored the record; the final weights go to
      ``RunFiles(run_dir).weights`` when ``spec.keep_weights``. The record itself is written by
      the caller (the store).
    - Divergence: the epoch whose training loss turns NaN/inf is cut short, recorded with
      ``train_loss: null`` and ``diverged_epoch`` set; the model is evaluated once as it is, so
      ``top1`` is the accuracy the diverged network has (with NaN weights every image gets the
      same class, i.e. chance level).

    Raises
    ------
    UserError
        Data missing or malformed, an architecture that does not fit the data, or CUDA requested
        where there is none. (A checkpoint the run cannot resume, damaged or saved under another
        config, is set aside and the run starts afresh: :func:`hplandscape.training.checkpoints.resume`.)
    """
    started = time.perf_counter()
    recipe = spec.recipe
    device = prepare_process(recipe, spec.device)
    files = RunFiles(spec.run_dir)
    files.dir.mkdir(parents=True, exist_ok=True)

    data = load_data(spec.data)
    torch.manual_seed(init_seed(spec))  # the seed (and, independent, the point) fixes the He init ...
    model, arch_hash = build_network(spec, data.info)
    facts = NetworkFacts.of(model, arch_hash, data.info)
    placement = choose_placement(recipe, device, spec.model)
    model.to(device=device, memory_format=placement.memory_format)
    optimizer = make_optimizer(model, spec.lr, spec.wd, recipe)
    scaler = grad_scaler(placement)
    generator = torch.Generator().manual_seed(data_seed(spec))  # ... and the data order and augmentation
    data = data.to(device)
    extras = run_extras(spec, model, optimizer, data, placement)  # masks, gradient flow (or None)

    fingerprint = spec_fingerprint(spec)
    progress = resume(files, fingerprint, model, optimizer, generator, scaler, extras)
    if progress.next_epoch:
        log.info("%s: resuming at epoch %d from %s", spec.run_id, progress.next_epoch, files.checkpoint)
    if extras is not None:
        extras.start(progress)

    session_start = time.perf_counter()
    before = progress.elapsed_s  # earlier sessions of a resumed run
    clock = CheckpointClock(spec.checkpoint_every_s)
    steps = train_steps(data.num_train, recipe.batch_size)
    while not progress.finished(recipe.epochs):
        epoch = progress.next_epoch
        lr = recipe.lr_at_step(spec.lr, epoch, 0, steps)  # the lr the epoch starts with (its history's)
        for group in optimizer.param_groups:
            group["lr"] = lr
        lr_at = None if not recipe.milestones_on_steps else (
            lambda step, epoch=epoch: recipe.lr_at_step(spec.lr, epoch, step, steps))
        loss, train_acc, finite = _train_epoch(model, optimizer, data, recipe, generator, placement, scaler, lr_at)
        top1, top5 = evaluate(model, data, eval_batch_size(recipe, device), placement)
        if finite:
            log.info("%s: epoch %d lr %.4g loss %.4f train %.2f%% val %.2f%%", spec.run_id, progress.next_epoch,
                     lr, loss, train_acc, top1)
        else:
            log.warning("%s: loss became NaN/inf in epoch %d at lr %.3g; stopping (diverged)", spec.run_id,
                        progress.next_epoch, optimizer.param_groups[0]["lr"])
        progress.end_epoch(lr=lr, train_loss=loss if finite else None, train_acc=train_acc, top1=top1, top5=top5)
        if extras is not None:
            extras.end_epoch(progress, recipe.epochs)
        progress.elapsed_s = before + time.perf_counter() - session_start
        if clock.due(last_epoch=progress.finished(recipe.epochs)):
            save_checkpoint(files.checkpoint, fingerprint, model, optimizer, generator, scaler, progress, extras)
            clock.saved()

    # Time before this process started (earlier sessions of a resumed run) plus this session,
    # including data loading and model building.
    wall = before + time.perf_counter() - started
    return finish_run(spec, progress, model, data, placement, facts, wall_s=wall, engine="sequential", extras=extras)


def train_step(model, optimizer, x, y, placement, scaler=None):
    """One SGD step on the batch ``(x, y)``: forward (under the placement's autocast), cross-entropy,
    backward (through the loss scaler with fp16), the optimizer's step. Returns (loss, logits)."""
    with placement.autocast():
        out = model(x)
        loss = F.cross_entropy(upcast_logits(out), y)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss, out


def _train_epoch(model, optimizer, data, recipe, generator, placement, scaler, lr_at=None):
    """One epoch; returns (mean train loss, train accuracy in %, whether the loss stayed finite).

    ``lr_at(step)``: the lr of each step of the epoch when the milestones fall on steps; None keeps
    the lr the epoch was started with.
    """
    device = placement.device
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    check_every = check_interval(device)
    finite = True
    for step, (x, y) in enumerate(data.train_batches(recipe.batch_size, generator, recipe.augment,
                                                     device=device, memory_format=placement.memory_format)):
        if lr_at is not None:
            lr = lr_at(step)
            if lr != optimizer.param_groups[0]["lr"]:
                for group in optimizer.param_groups:
                    group["lr"] = lr
        loss, out = train_step(model, optimizer, x, y, placement, scaler)
        # Losses are ≥ 0, so the running sum turns NaN/inf exactly when one batch loss did.
        loss_sum += loss.detach().double() * len(y)
        correct += (out.detach().argmax(1) == y).sum()
        seen += len(y)
        if (step + 1) % check_every == 0 and not torch.isfinite(loss_sum).item():
            finite = False
            break
    if finite and not torch.isfinite(loss_sum).item():
        finite = False
    seen = max(seen, 1)
    return loss_sum.item() / seen, 100.0 * correct.item() / seen, finite
