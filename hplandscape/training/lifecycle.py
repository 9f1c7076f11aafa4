"""The life of one run, whichever engine trains it: set up, resume, checkpoint, finish.

Both engines (:func:`hplandscape.training.sequential_engine.train_run`, one run at a time, and
:func:`hplandscape.training.fused_engine.train_fused`, many runs as one network) take a run through the same
stages, built from this module, :mod:`~hplandscape.training.setup` and
:mod:`~hplandscape.training.checkpoints`; only the training loop is their own:

1. **Set up.** The process (:func:`prepare_process`), the device (:func:`resolve_device`) and how tensors live on it (:class:`Placement`),
   the network with its seeded He init (:func:`build_network`) and what the record says of it
   (:class:`NetworkFacts`), SGD (:func:`make_optimizer`) and the data stream's seed
   (:func:`data_seed`).
2. **Resume.** A checkpoint (``RunFiles(run_dir).checkpoint``) whose :func:`spec_fingerprint`
   matches the spec restores weights, optimizer, random states and the :class:`RunProgress`
   (:func:`load_checkpoint`); one saved under another config is set aside and the run starts
   afresh (:func:`resume`).
3. **Epochs.** The engine trains an epoch, evaluates (:func:`evaluate`), closes it with
   :meth:`RunProgress.end_epoch` and checkpoints (:func:`save_checkpoint`). One checkpoint format
   serves both engines, so either resumes the other's.
4. **Finish** (:func:`finish_run`): evaluation when no epoch ran, the final weights when the spec
   keeps them, and the run record.

A run may carry more than its network and optimizer (:class:`RunExtras`): the masks of an
unstructured condition (:class:`hplandscape.pruning.unstructured.MaskedTraining`) and a gradient-flow log
(:class:`hplandscape.training.gradient_flow.GradientFlowLog`). Both live in the checkpoint too.

Examples
--------
>>> p = RunProgress()
>>> p.end_epoch(lr=0.1, train_loss=1.5, train_acc=40.0, top1=55.0, top5=90.0)
>>> p.end_epoch(lr=0.1, train_loss=None, train_acc=10.0, top1=10.0, top5=50.0)  # the loss turned NaN
>>> p.next_epoch, p.diverged_epoch, p.finished(epochs=5)
(2, 1, True)
>>> RunProgress.from_dict(p.to_dict(), where="example") == p
True
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from hplandscape.errors import UserError
from hplandscape.models import save_weights
from hplandscape.provenance import device_name, provenance
from hplandscape.pruning.mask_spec import MaskSpec
from hplandscape.pruning.unstructured import MaskedTraining, density_of, load_masks, measure, prunable_weights
from hplandscape.store.layout import RunFiles
from hplandscape.store.run_record import RunRecord
from hplandscape.study.recipes import PARAMETRISATION, STEP_MILESTONES
from hplandscape.training.gradient_flow import GradientFlowLog
from hplandscape.training.gradient_flow import measure as measure_gradient_flow
from hplandscape.training.setup import NetworkFacts, Placement, eval_batch_size, sparsity_seed, upcast_logits

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Run state


@dataclass
class RunProgress:
    """How far a run has got: what every checkpoint saves and the record is built from.

    Attributes
    ----------
    next_epoch : int
        The first epoch still to train (epochs count from 0).
    history : list of dict
        One entry per epoch trained: ``{epoch, lr, train_loss, train_acc, val_acc}``, accuracies in
        percent; ``train_loss`` is None for the epoch whose loss turned NaN/inf.
    elapsed_s : float
        Seconds the run has spent so far, earlier sessions (before a resume) included.
    diverged_epoch : int or None
        The epoch whose loss turned NaN/inf; training stops there.
    last_eval : list or None
        ``[top1, top5]`` of the latest evaluation (``top5`` None for ≤ 5 classes); None until an
        epoch has run.
    """

    next_epoch: int = 0
    history: list = field(default_factory=list)
    elapsed_s: float = 0.0
    diverged_epoch: int | None = None
    last_eval: list | None = None

    def finished(self, epochs: int) -> bool:
        """Whether nothing is left to train: all ``epochs`` done, or the run diverged."""
        return self.diverged_epoch is not None or self.next_epoch >= epochs

    def end_epoch(self, *, lr: float, train_loss: float | None, train_acc: float, top1: float,
                  top5: float | None) -> None:
        """Record epoch ``next_epoch`` as trained; ``train_loss=None`` marks it as the one that diverged."""
        epoch = self.next_epoch
        self.history.append({"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                             "val_acc": top1})
        self.last_eval = [top1, top5]
        if train_loss is None:
            self.diverged_epoch = epoch
        self.next_epoch = epoch + 1

    def to_dict(self) -> dict:
        """Plain Python data (the checkpoint's ``state`` entry); history entries are copied."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d, where: str) -> "RunProgress":
        """Inverse of :meth:`to_dict`; ``where`` (e.g. the checkpoint path) names a malformed ``d``."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(d, dict) or sorted(d) != sorted(names):
            have = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise UserError(f"{where}: the run state must have the keys {', '.join(names)}, got {have}; "
                            "delete the checkpoint to restart the run from scratch")
        return cls(next_epoch=int(d["next_epoch"]), history=[dict(h) for h in d["history"]],
                   elapsed_s=float(d["elapsed_s"]), diverged_epoch=d["diverged_epoch"],
                   last_eval=None if d["last_eval"] is None else list(d["last_eval"]))


# --------------------------------------------------------------------------------------------
# What a run carries besides its network: masks, gradient flow


@dataclass
class RunExtras:
    """A run's masks (unstructured conditions) and gradient-flow log (``train.gradient_flow``).

    Either may be None. Built by :func:`run_extras`; checkpointed with the run
    (:meth:`state_dict`); its epoch step (:meth:`end_epoch`) runs after each epoch is evaluated
    and recorded, before the checkpoint.
    """

    masks: MaskedTraining | None = None
    flow: GradientFlowLog | None = None
    measure_flow: Callable[[], tuple[float, float]] | None = None  # (EGF_1, EGF_2) of the network now

    def state_dict(self) -> dict:
        return {"masks": None if self.masks is None else self.masks.state_dict(),
                "egf": None if self.flow is None else self.flow.state_dict()}

    def load_state_dict(self, state, where: str) -> None:
        if not isinstance(state, dict):
            raise UserError(f"{where}: holds no masks or gradient-flow log for this run")
        if self.masks is not None:
            self.masks.load_state_dict(state.get("masks"), where)
        if self.flow is not None:
            self.flow.load_state_dict(state.get("egf"), where)

    def start(self, progress: RunProgress) -> None:
        """Before the first epoch of a run (not of a resumed one): measure at epoch 0 when due."""
        if self.flow is not None and progress.next_epoch == 0 and self.flow.due(0):
            self.flow.record(0, *self.measure_flow())

    def end_epoch(self, progress: RunProgress, epochs: int) -> None:
        """After an epoch: SET's topology step, then gradient flow when due (not after divergence)."""
        if progress.diverged_epoch is not None:
            return
        epoch = progress.next_epoch - 1
        if self.masks is not None:
            self.masks.end_epoch(epoch, epochs)
        if self.flow is not None and self.flow.due(progress.next_epoch):
            self.flow.record(progress.next_epoch, *self.measure_flow())


def run_extras(spec, model, optimizer, data, placement) -> RunExtras | None:
    """What ``spec`` needs besides network and optimizer; None when nothing (dense, no gradient flow).

    An unstructured run loads its condition's masks (checked against the spec), zeroes the masked
    weights of the fresh or fine-tuning network and hooks them to ``optimizer``
    (:class:`~hplandscape.pruning.unstructured.MaskedTraining`).

    Raises
    ------
    UserError
        The masks file is missing, damaged or not the one the spec describes.
    """
    masks = None
    if spec.sparsity is not None:
        mask_spec = MaskSpec.from_dict(spec.sparsity, where=f"run {spec.run_id}: mask spec")
        if spec.masks_file is None:
            raise UserError(f"run {spec.run_id}: an unstructured condition without its masks file")
        # the method's registry entry says whether its masks evolve between epochs (SET's do)
        masks = MaskedTraining(model, load_masks(spec.masks_file, mask_spec), optimizer, method=mask_spec.method,
                               settings=dataclasses.asdict(mask_spec), seed=sparsity_seed(spec))
        masks.apply()
    flow = None
    measure_flow = None
    if spec.recipe.gradient_flow:
        flow = GradientFlowLog(spec.recipe.epochs)
        weights = prunable_weights(model)
        measure_flow = lambda: measure_gradient_flow(  # noqa: E731
            model, weights, None if masks is None else masks.masks, data, spec.recipe.batch_size, placement)
    if masks is None and flow is None:
        return None
    return RunExtras(masks, flow, measure_flow)


# --------------------------------------------------------------------------------------------
# Evaluation


def evaluate(model, data, batch_size: int, placement: Placement) -> tuple[float, float | None]:
    """(top-1, top-5) accuracy in percent on the held-out split; top-5 is None for ≤ 5 classes."""
    device = placement.device
    model.eval()
    correct1 = torch.zeros((), dtype=torch.int64, device=device)
    correct5 = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    k = 5 if data.info.num_classes > 5 else None
    with torch.no_grad(), placement.autocast():
        for x, y in data.eval_batches(batch_size, device=device, memory_format=placement.memory_format):
            out = upcast_logits(model(x))
            correct1 += (out.argmax(1) == y).sum()
            if k:
                correct5 += (out.topk(k, dim=1).indices == y[:, None]).any(1).sum()
            n += len(y)
    model.train()
    if n == 0:
        return 0.0, (0.0 if k else None)
    return 100.0 * correct1.item() / n, (100.0 * correct5.item() / n if k else None)


# --------------------------------------------------------------------------------------------
# Finish


def finish_run(spec, progress: RunProgress, model, data, placement: Placement, facts: NetworkFacts, *,
               wall_s: float, engine: str, extras: RunExtras | None = None) -> dict:
    """Close a run whose epochs are done and return its record; both engines end every run here.

    A run that trained no epoch (``recipe.epochs`` 0) is evaluated as it is, so its record still
    reports the untrained network. With ``spec.keep_weights`` the final weights go to
    ``RunFiles(spec.run_dir).weights``. The checkpoint stays: the caller deletes it once the record
    is safely stored, so a crash in between costs nothing (training again rebuilds the same
    record from the final checkpoint).

    Parameters
    ----------
    spec : RunSpec
    progress : RunProgress
    model : nn.Module
        The network in its final state (on any device).
    data
        The run's data (``load_data``), for the evaluation of an untrained network.
    placement : Placement
    facts : NetworkFacts
    wall_s : float
        The run's wall time, earlier sessions included.
    engine : {"sequential", "fused"}
    extras : RunExtras, optional
        The run's gradient-flow log goes into the record (``egf``).

    Returns
    -------
    dict
        The run record's JSON form (:meth:`hplandscape.store.run_record.RunRecord.to_json`): what the store
        writes, and what a worker hands back to its launcher.
    """
    info = data.info
    last_eval = progress.last_eval
    if last_eval is None:
        model.to(device=placement.device, memory_format=placement.memory_format)
        last_eval = list(evaluate(model, data, eval_batch_size(spec.recipe, placement.device), placement))
    if spec.keep_weights:
        widths = (spec.arch or {}).get("widths")
        save_weights(RunFiles(spec.run_dir).weights, spec.model, model, info.num_classes, info.in_channels,
                     widths=widths)
    return _record(spec, progress, last_eval, model, data, facts, placement, wall_s, engine, extras).to_json()


def _finite_or_none(x):
    return x if x is None or math.isfinite(x) else None


def _record(spec, progress: RunProgress, last_eval, model, data, facts: NetworkFacts, placement: Placement,
            wall_s: float, engine: str, extras: RunExtras | None) -> RunRecord:
    """The run's :class:`~hplandscape.store.run_record.RunRecord`: what the spec says, plus what training and
    the final network measured."""
    device, info = placement.device, data.info
    top1, top5 = last_eval
    history = [{k: (_finite_or_none(v) if isinstance(v, float) else v) for k, v in h.items()}
               for h in progress.history]
    diverged_epoch = progress.diverged_epoch
    completed = len(history) - (1 if diverged_epoch is not None else 0)
    flow = extras.flow if extras is not None else None
    params, flops = facts.params, facts.flops
    if spec.sparsity is not None:
        # a masked run's cost leaves its zero weights out (each layer's dense FLOPs × its density;
        # ``dense_*``: with them)
        density, params, flops = measure(model, (info.in_channels, info.image_size, info.image_size))
    else:
        # an unmasked network's exact zeros are accidents a sparse kernel could not plan for: its
        # cost stays the dense one
        try:
            density = density_of(model)
        except UserError:  # a user-registered architecture without a first conv and a classifier
            density = None
    return RunRecord.for_spec(
        spec,
        top1=top1,
        top5=top5 if info.num_classes > 5 else None,
        history=history,
        epochs_completed=completed,
        wall_time_s=wall_s,
        params=params,
        flops=flops,
        arch_hash=facts.arch_hash,
        diverged=diverged_epoch is not None,
        diverged_epoch=diverged_epoch,
        device=device_name(device),
        engine=engine,
        precision=placement.precision,
        memory_format=placement.layout,
        parametrisation=PARAMETRISATION + (STEP_MILESTONES if spec.recipe.milestones_on_steps else "") + (
            " Weight decay applies to every parameter, BatchNorm and biases included."
            if spec.recipe.weight_decay_on_bn_bias else
            " BatchNorm parameters and biases get no weight decay."),
        provenance=provenance(device),
        # the evaluation split's size: one image is 100/eval_size points (the binomial floor of top-1)
        eval_size=int(data.num_test),
        density=density,
        dense_params=facts.params,
        dense_flops=facts.flops,
        egf=None if flow is None else flow.state_dict(),
    )
