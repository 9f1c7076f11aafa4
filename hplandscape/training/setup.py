"""Setting a run up, whichever engine trains it: the process, the device and how tensors live on it,
the network with its seeded He init, SGD, the seeds of a run's random streams and the fingerprint
that says which checkpoint belongs to it.

:func:`prepare_process` (the recipe's threads; on the CPU the allocator that keeps freed memory,
on CUDA cuDNN's kernel benchmarking), :func:`resolve_device`, :class:`Placement`
(:func:`choose_placement`), :func:`build_network` and :class:`NetworkFacts`, :func:`make_optimizer`,
:func:`init_seed` / :func:`data_seed` / :func:`sparsity_seed`, :func:`spec_fingerprint`.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import NamedTuple

import torch

from hplandscape.choices import DEVICES
from hplandscape.errors import UserError
from hplandscape.models import build_model, count_flops, count_params, find_entry, load_weights
from hplandscape.models.imported import use_source
from hplandscape.pruning.arch_spec import ArchSpec
from hplandscape.pruning.mask_spec import MaskSpec
from hplandscape.pruning.structured import build_from_spec
from hplandscape.user_code import file_sha256

log = logging.getLogger(__name__)

# On a GPU every host-device sync costs; the loss is checked for NaN/inf this often there. On the
# CPU checking every step is free and stops a diverging run at once.
CUDA_CHECK_EVERY = 25


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
        entry = find_entry(model)  # a model by import path is registered with the built-ins' default
        fast = entry is not None and entry.cpu_channels_last
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
    use_source(spec.model_source)  # a model by import path: a process may start with the built-ins only
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

    Thread count, memory format, whether the images are held in memory and where the run lives do
    not change what is computed, so they are left out (a run may resume on another worker with
    another ``run_dir`` mount point); the masks count through their spec (which holds their content
    hash), fine-tuning's start weights through the condition's pipeline and the spec that names
    their source. Settings added later
    enter only when set, so a run planned before they existed keeps its fingerprint.
    """
    recipe = spec.recipe.to_dict()
    recipe.pop("threads", None)
    recipe.pop("channels_last", None)
    data = spec.data.to_dict()
    data.pop("in_memory", None)  # in memory or streamed, an image folder gives the same batches
    doc = {"study": spec.study, "condition": spec.condition.to_dict(),
           "point": [spec.point.log10_lr, spec.point.log10_wd], "seed": spec.seed, "model": spec.model,
           "data": data, "recipe": recipe, "arch": spec.arch}
    if spec.sparsity is not None:
        doc["sparsity"] = spec.sparsity
    if getattr(spec, "model_source", None) is not None:  # the user's model: its file's hash decides the numbers
        doc["model_source"] = spec.model_source
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
