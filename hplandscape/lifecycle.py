"""The life of one run, whichever engine trains it: set up, resume, checkpoint, finish.

Both engines (:func:`hplandscape.train.train_run`, one run at a time, and
:func:`hplandscape.fused.train_fused`, many runs as one network) take a run through the same
stages, built from this module; only the training loop is their own:

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
(:class:`hplandscape.gradient_flow.GradientFlowLog`). Both live in the checkpoint too.

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

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import torch

from hplandscape.pruning.arch_spec import ArchSpec
from hplandscape.atomic import atomic_open
from hplandscape.choices import DEVICES
from hplandscape.errors import UserError
from hplandscape.gradient_flow import GradientFlowLog
from hplandscape.gradient_flow import measure as measure_gradient_flow
from hplandscape.pruning.mask_spec import MaskSpec
from hplandscape.models import build_model, count_flops, count_params, get_entry, load_weights, save_weights
from hplandscape.pruning.structured import build_from_spec, file_sha256
from hplandscape.provenance import device_name, provenance
from hplandscape.study.recipes import PARAMETRISATION, STEP_MILESTONES
from hplandscape.store.run_record import RunRecord
from hplandscape.pruning.unstructured import MaskedTraining, density_of, load_masks, measure, prunable_weights
from hplandscape.store.layout import RunFiles
from hplandscape.store.study_store import set_aside
log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
# On a GPU every host-device sync costs; the loss is checked for NaN/inf this often there. On the
# CPU checking every step is free and stops a diverging run at once.
CUDA_CHECK_EVERY = 25


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
# Set up


@dataclass(frozen=True)
class Placement:
    """Where a run computes: the device, the memory format of images and weights, and the
    autocast dtype (None: float32 throughout)."""

    device: torch.device
    memory_format: torch.memory_format = torch.contiguous_format
    amp_dtype: torch.dtype | None = None

    def autocast(self):
        """The autocast context of a forward pass (a no-op in float32)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    @property
    def precision(self) -> str:
        """The precision of the training arithmetic, as records state it: ``float32``, or the
        autocast dtype (``bfloat16``, ``float16``) for convolutions and matrix products."""
        return "float32" if self.amp_dtype is None else str(self.amp_dtype).removeprefix("torch.")

    @property
    def layout(self) -> str:
        """The memory format of images and weights: ``channels_last`` or ``contiguous``."""
        return "channels_last" if self.memory_format == torch.channels_last else "contiguous"


def choose_placement(recipe, device: torch.device, model: str) -> Placement:
    """The placement of a run of architecture ``model`` with ``recipe`` on ``device``.

    On CUDA the recipe decides: ``channels_last`` and ``amp`` (bf16 where the GPU supports it,
    else fp16, which needs the loss scaler of :func:`grad_scaler`). On the CPU the memory format
    is the architecture's measured best (``ModelEntry.cpu_channels_last``, see
    ``docs/performance.md``), and ``amp`` means bf16 autocast. Both are fixed by the recipe and
    the architecture, never by the machine, so a resumed run computes exactly as the run it
    continues and every run of a study trains in the same precision.
    """
    if device.type != "cuda":
        fast = get_entry(model).cpu_channels_last
        return Placement(device, torch.channels_last if fast else torch.contiguous_format,
                         torch.bfloat16 if recipe.amp else None)
    memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format
    amp_dtype = None
    if recipe.amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return Placement(device, memory_format, amp_dtype)


def upcast_logits(t: torch.Tensor) -> torch.Tensor:
    """Half-precision logits (autocast) to float32 for the loss and the accuracy; float32 and
    float64 stay as they are. Both engines take their losses through this one rule."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def grad_scaler(placement: Placement):
    """A ``GradScaler`` for fp16 autocast (its gradients underflow without one); None otherwise."""
    return torch.amp.GradScaler("cuda") if placement.amp_dtype == torch.float16 else None


def eval_batch_size(recipe, device: torch.device) -> int:
    """Images per evaluation batch: the recipe's ``eval_batch_size``, on the CPU at most its
    training ``batch_size``.

    A GPU evaluates large batches faster; a CPU does not, since activations outgrow its caches
    (ResNet-20, 2 threads: 2,165 images/s in batches of 128, 1,079 in batches of 1,000; see
    ``docs/performance.md``). The batch size does not change what is computed per image.
    """
    if device.type == "cuda":
        return recipe.eval_batch_size
    return min(recipe.eval_batch_size, recipe.batch_size)


def check_interval(device: torch.device) -> int:
    """Training steps between two NaN/inf checks of the running loss (each one a host sync)."""
    return 1 if device.type == "cpu" else CUDA_CHECK_EVERY


# glibc's mallopt parameters (malloc.h) and the environment variables by which a user sets them
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")
_kept_freed_memory: bool | None = None


def keep_freed_memory() -> bool:
    """Let this process reuse the memory it frees instead of giving it back to the system.

    A CPU training step allocates and frees its activations and gradients every step. glibc's
    malloc serves blocks from 128 KiB up (every activation of a CIFAR ResNet at batch 128) with a
    fresh ``mmap`` and returns them at ``free``, and gives back the free top of its heap beyond a
    threshold, so in most processes each step page-faults that memory in again: up to 27,000
    page faults a step for ResNet-20 at 3×32×32 and a million for the 32×32 MobileNetV2. Raising
    glibc's mmap and trim thresholds to their maximum (``mallopt``) keeps freed blocks for the
    next step: MobileNetV2's steps 1.67× faster, the CIFAR ResNets' up to 1.25×, at the cost of
    peak memory staying mapped (``docs/performance.md``, "The allocator"). The numbers computed
    do not change.

    Done once per process, on Linux with glibc only, and not where the user set glibc's malloc
    parameters (``MALLOC_*_`` variables, ``GLIBC_TUNABLES``) or preloads another allocator.
    Returns whether the thresholds are raised in this process.

    Examples
    --------
    >>> keep_freed_memory() == keep_freed_memory()  # once per process; the second call is free
    True
    """
    global _kept_freed_memory
    if _kept_freed_memory is None:
        _kept_freed_memory = False
        chosen = [k for k in _MALLOC_ENV if k in os.environ] + \
            [lib for lib in os.environ.get("LD_PRELOAD", "").split() if "malloc" in lib]
        if sys.platform.startswith("linux") and not chosen:
            try:
                libc = ctypes.CDLL("libc.so.6")
            except OSError:  # not glibc (musl names it otherwise)
                libc = None
            if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version"):
                top = 2**31 - 1  # mallopt takes an int
                _kept_freed_memory = bool(libc.mallopt(_M_MMAP_THRESHOLD, top)) and \
                    bool(libc.mallopt(_M_TRIM_THRESHOLD, top))
        elif chosen:
            log.debug("malloc left as configured (%s)", ", ".join(chosen))
    return _kept_freed_memory


def prepare_process(recipe, requested_device: str) -> torch.device:
    """Set up this process for training with ``recipe``, as both engines start a run: the
    recipe's CPU threads, the device (:func:`resolve_device`), on the CPU an allocator that keeps
    freed memory (:func:`keep_freed_memory`) and on CUDA cuDNN's choice of the fastest kernels
    for the run's fixed input shapes (``cudnn.benchmark``; GPU runs are not bit for bit
    reproducible anyway). Returns the device."""
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    device = resolve_device(requested_device)
    if device.type == "cpu":
        keep_freed_memory()  # no page faults for every step's activations
    else:
        torch.backends.cudnn.benchmark = True
    return device


def resolve_device(requested: str) -> torch.device:
    """``"auto"`` → CUDA when available, else the CPU; ``"cuda"`` without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' was requested but no CUDA device is available here; "
                        "use device: auto or cpu (launcher.device in the study config)")
    if requested not in DEVICES:
        raise UserError(f"device must be one of {', '.join(DEVICES)}; got {requested!r}")
    return torch.device(requested)


def build_network(spec, info) -> tuple[torch.nn.Module, str | None]:
    """The run's architecture with fresh He init, and its ArchSpec's content hash (None unpruned).

    Draws the init from torch's global generator (the caller seeds it). The basemodel and the
    unstructured conditions are ``models.build_model``; a structured condition is rebuilt from its
    ArchSpec with ``pruning.build_from_spec`` (widths only: no pickled modules). A fine-tuned
    condition (``spec.start_weights``) then takes the trained weights it starts from.

    Raises
    ------
    UserError
        A pruned architecture made for another model or other data, or start weights that do not
        belong to it.
    """
    model, arch_hash = _fresh_network(spec, info)
    if spec.start_weights is not None:
        _load_start_weights(spec, model)
    return model, arch_hash


def _fresh_network(spec, info) -> tuple[torch.nn.Module, str | None]:
    if spec.arch is None:
        return build_model(spec.model, num_classes=info.num_classes, in_channels=info.in_channels), None
    arch = ArchSpec.from_dict(spec.arch, where=f"run {spec.run_id}: pruned architecture")
    if arch.model != spec.model:
        raise UserError(f"run {spec.run_id}: the pruned architecture is a {arch.model!r}, "
                        f"the study trains {spec.model!r}")
    for key, want, have in (("num_classes", arch.num_classes, info.num_classes),
                            ("in_channels", arch.in_channels, info.in_channels)):
        if want != have:
            raise UserError(f"run {spec.run_id}: the pruned architecture has {key}={want} but dataset "
                            f"{info.name!r} has {have}; the ArchSpec was made for other data")
    return build_from_spec(arch), arch.content_hash


def _load_start_weights(spec, model) -> None:
    """The trained weights a fine-tuned run starts from: the basemodel's (masked later) or its
    structured pruning's surviving filters; checked against the spec they were made for."""
    path = spec.start_weights
    weights = load_weights(path, expected_model=spec.model)
    want = (spec.arch or {}).get("widths")
    if (weights.widths or None) != (want or None):
        raise UserError(f"run {spec.run_id}: the start weights {path} have widths "
                        f"{'unpruned' if not weights.widths else 'of another pruning'}; they were not made for this "
                        f"condition's architecture. Delete them and the condition's spec, then sweep again")
    if spec.sparsity is not None:
        source = MaskSpec.from_dict(spec.sparsity, where=f"run {spec.run_id}: mask spec").source
        if source != f"checkpoint:{file_sha256(path)}":
            raise UserError(f"run {spec.run_id}: the basemodel weights {path} changed since the masks were made "
                            f"from them ({source}); delete the condition's spec and masks so they are made again")
    try:
        model.load_state_dict(weights.state_dict)
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not fit run {spec.run_id}'s network: "
                        f"{str(exc).strip().splitlines()[0]}") from None


class NetworkFacts(NamedTuple):
    """What a record says about a run's network: its size and, when pruned, its ArchSpec's hash."""

    params: int
    flops: int
    arch_hash: str | None

    @classmethod
    def of(cls, model, arch_hash: str | None, info) -> "NetworkFacts":
        """Count ``model``'s parameters and its FLOPs for one image of the dataset ``info``."""
        input_shape = (info.in_channels, info.image_size, info.image_size)
        return cls(int(count_params(model)), int(count_flops(model, input_shape)), arch_hash)


def make_optimizer(model, lr: float, wd: float, recipe) -> torch.optim.SGD:
    """SGD with momentum and coupled L2 weight decay (method Eq. 2.1).

    With ``recipe.weight_decay_on_bn_bias`` False, one-dimensional parameters (BatchNorm scales
    and shifts, biases) get no weight decay; by default (as in the thesis) every parameter does.
    """
    if recipe.nesterov and recipe.momentum <= 0:
        raise UserError(f"train.nesterov: Nesterov momentum needs momentum > 0, got momentum {recipe.momentum}")
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.weight_decay_on_bn_bias:
        groups = [{"params": params, "weight_decay": wd}]
    else:
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": wd},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=recipe.momentum, nesterov=recipe.nesterov)


def init_seed(spec) -> int:
    """Seed of a run's He initialisation: its seed under ``randomness: common`` (one init per seed
    for every grid point), else a hash of its seed and grid point (``independent``)."""
    return _run_seed(spec, "init")


def data_seed(spec) -> int:
    """Seed of a run's data order and augmentation: its seed under ``randomness: common`` (one
    batch order per seed for every grid point), else a hash of its seed and grid point."""
    return _run_seed(spec, "data")


def sparsity_seed(spec) -> int:
    """Seed of a run's own sparse randomness (SET's regrowth): per seed under ``common``, else per
    seed and grid point."""
    return _run_seed(spec, "sparsity")


def _run_seed(spec, stream: str) -> int:
    if spec.recipe.randomness == "common":
        return spec.seed
    digest = hashlib.sha256(f"{spec.seed}:{spec.point.key}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def spec_fingerprint(spec) -> str:
    """Hash of everything that decides a run's numbers; a checkpoint only resumes the same run.

    Thread count, memory format and where the run lives do not change what is computed, so they
    are left out (a run may resume on another worker with another ``run_dir`` mount point); the
    masks count through their spec (which holds their content hash), fine-tuning's start weights
    through the condition's pipeline and the spec that names their source. Settings added later
    enter only when set, so a run planned before they existed keeps its fingerprint.
    """
    recipe = spec.recipe.to_dict()
    recipe.pop("threads", None)
    recipe.pop("channels_last", None)
    doc = {"study": spec.study, "condition": spec.condition.to_dict(),
           "point": [spec.point.log10_lr, spec.point.log10_wd], "seed": spec.seed, "model": spec.model,
           "data": dataclasses.asdict(spec.data), "recipe": recipe, "arch": spec.arch}
    if spec.sparsity is not None:
        doc["sparsity"] = spec.sparsity
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


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
# Epochs


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


class CheckpointClock:
    """When a run saves its training state: after an epoch once ``every_s`` seconds have passed
    since its last save (or since it started), and always after its last epoch, whose checkpoint
    rebuilds the record if the process dies before the record is stored. ``every_s`` = 0 saves
    after every epoch.

    Which epochs were saved changes nothing computed: a run resumed from any epoch's checkpoint
    ends with the uninterrupted record. An interruption loses at most ``every_s`` seconds plus
    one epoch. For short epochs this is most of the saving (on 2 cores a digits run saved 12
    times took 4 % of its time doing it; ``docs/performance.md``).

    >>> clock = CheckpointClock(3600.0)
    >>> clock.due(last_epoch=False), clock.due(last_epoch=True), CheckpointClock(0).due(last_epoch=False)
    (False, True, True)
    """

    def __init__(self, every_s: float):
        self.every_s = float(every_s)
        self.last = time.perf_counter()

    def due(self, last_epoch: bool) -> bool:
        return last_epoch or self.every_s <= 0 or time.perf_counter() - self.last >= self.every_s

    def saved(self) -> None:
        self.last = time.perf_counter()


def save_checkpoint(path: Path, fingerprint: str, model, optimizer, generator, scaler,
                    progress: RunProgress, extras: RunExtras | None = None) -> None:
    """Write a run's complete training state atomically; :func:`load_checkpoint` restores it.

    Holds the weights, the optimizer (momentum buffers), torch's CPU and CUDA random states, the
    data stream's generator, the fp16 loss scaler (or None) and ``progress``; with ``extras`` also
    an ``"extras"`` entry (masks, gradient-flow log).
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": fingerprint,
        "state": progress.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data_rng": generator.get_state(),
        "scaler": scaler.state_dict() if scaler is not None else None,
    }
    if extras is not None:
        payload["extras"] = extras.state_dict()
    with atomic_open(path, "wb") as fh:  # a kill mid-write leaves the previous checkpoint intact
        torch.save(payload, fh)


class UnreadableCheckpoint(UserError):
    """A checkpoint file that cannot be read back (truncated, not a checkpoint, a damaged state)."""


class StaleCheckpoint(UserError):
    """A checkpoint saved under another spec fingerprint: another recipe, data, model or pruned
    architecture of the run (or another run altogether); it cannot be resumed."""


def resume(files: RunFiles, fingerprint: str, model, optimizer, generator, scaler=None,
           extras: RunExtras | None = None) -> RunProgress:
    """The run's progress from its checkpoint (restored into the given objects), or a fresh
    :class:`RunProgress` when there is none.

    A checkpoint that cannot be read (e.g. truncated by a crash or a full disk) is moved aside as
    ``checkpoint.pt.corrupt-<time>``, one saved under another config of the run (another
    fingerprint: ``sweep --force`` adopted a changed recipe, or the condition was pruned anew) as
    ``checkpoint.pt.stale-<time>``; both are kept for inspection, one warning names the new name,
    and the run starts from scratch. Resuming either is impossible, and refusing it made the run
    fail on every sweep until the file was deleted by hand. Nothing is restored into the given
    objects before the fingerprint is checked, so they stay as a fresh run has them.
    """
    if not files.checkpoint.exists():
        return RunProgress()
    try:
        return load_checkpoint(files.checkpoint, fingerprint, model, optimizer, generator, scaler, extras)
    except UnreadableCheckpoint as e:
        moved = set_aside(files.checkpoint)
        log.warning("%s; moved it to %s, the run restarts from scratch", e, moved)
        return RunProgress()
    except StaleCheckpoint:
        moved = set_aside(files.checkpoint, "stale")
        log.warning("%s was saved under another config of this run (recipe, data, model or pruned architecture: "
                    "e.g. before `sweep --force` adopted a changed one); set aside as %s, the run starts from scratch",
                    files.checkpoint, moved)
        return RunProgress()


def load_checkpoint(path: Path, fingerprint: str, model, optimizer, generator, scaler=None,
                    extras: RunExtras | None = None) -> RunProgress:
    """Restore what :func:`save_checkpoint` wrote into ``model``, ``optimizer``, the random states,
    ``generator``, ``scaler`` and ``extras``; return the run's progress.

    Raises
    ------
    UnreadableCheckpoint
        Naming ``path``: an unreadable file, not an hplandscape checkpoint, or a damaged run state.
    StaleCheckpoint
        The checkpoint of another run or config (its fingerprint differs from ``fingerprint``).
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise UnreadableCheckpoint(f"{path}: cannot read this checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UnreadableCheckpoint(f"{path}: not an hplandscape checkpoint (format {CHECKPOINT_FORMAT})")
    if ckpt.get("fingerprint") != fingerprint:
        raise StaleCheckpoint(f"{path}: this checkpoint belongs to a different run (other config, seed, "
                              "architecture or data); delete it to restart the run from scratch")
    try:
        progress = RunProgress.from_dict(ckpt["state"], where=str(path))
        if extras is not None:
            extras.load_state_dict(ckpt.get("extras"), where=str(path))
    except (UserError, KeyError) as e:
        raise UnreadableCheckpoint(str(e)) from None
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["torch_rng"])
    if ckpt["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    generator.set_state(ckpt["data_rng"])
    if scaler is not None and ckpt["scaler"] is not None:
        scaler.load_state_dict(ckpt["scaler"])
    return progress


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
