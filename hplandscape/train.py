"""One run: a :class:`~hplandscape.spec.RunSpec` in, one JSON-able run record out.

:func:`train_run` is the only thing a launcher ships to a worker (submitit pickles it). It builds
the (pruned) architecture with a fresh, seeded He init, trains it with the recipe at the spec's
learning rate and weight decay (SGD, coupled L2: ``torch.optim.SGD(weight_decay=wd)``),
evaluates after every epoch, and checkpoints atomically to ``run_dir/checkpoint.pt`` after every
epoch. A run that finds a checkpoint continues from it; on the CPU the resumed run ends with
exactly the record an uninterrupted run produces (timings aside).

A loss that becomes NaN or infinite ends the run early with ``diverged: true``: high learning
rates do this at the corners of a grid, and it is a result, not an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hplandscape.data import load_data
from hplandscape.atomic import atomic_open
from hplandscape.errors import UserError
from hplandscape.provenance import device_name, provenance
from hplandscape.recipes import PARAMETRISATION

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.pt"
CHECKPOINT_FORMAT = 1
# On a GPU every host-device sync costs; the loss is checked for NaN/inf this often there. On the
# CPU checking every step is free and stops a diverging run at once.
CUDA_CHECK_EVERY = 25


def train_run(spec) -> dict:
    """Train and evaluate one run.

    Parameters
    ----------
    spec : hplandscape.spec.RunSpec
        Everything about the run. ``spec.seed`` fixes the initialisation, the data order and the
        augmentation; ``spec.recipe.threads`` (when set) the torch CPU threads.

    Returns
    -------
    dict
        The run record (JSON-serialisable): ``run_id, study, condition, method, ratio, model, lr,
        wd, log10_lr, log10_wd, seed, recipe, data, top1, top5, history, epochs_completed,
        wall_time_s, params, flops, arch_hash, diverged, diverged_epoch, device, parametrisation,
        provenance``. ``top1``/``top5`` are percentages on the held-out split after the last
        epoch; ``top5`` is None for 5 classes or fewer. ``history`` holds one entry per epoch
        trained: ``{epoch, lr, train_loss, train_acc, val_acc}``.

    Notes
    -----
    - Checkpoints go to ``run_dir/checkpoint.pt`` after every epoch (temp file + ``os.replace``)
      and stay until the caller has stored the record; the final weights go to ``run_dir/model.pt``
      when ``spec.keep_weights``. The record itself is written by the caller (the store).
    - Divergence: the epoch whose training loss turns NaN/inf is cut short, recorded with
      ``train_loss: null`` and ``diverged_epoch`` set; the model is evaluated once as it is, so
      ``top1`` is the accuracy the diverged network has (with NaN weights every image gets the
      same class, i.e. chance level).

    Raises
    ------
    UserError
        Data missing or malformed, an architecture that does not fit the data, CUDA requested
        where there is none, or a checkpoint that belongs to a different run.
    """
    started = time.perf_counter()
    recipe = spec.recipe
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    device = resolve_device(spec.device)
    if device.type == "cuda":
        # Fixed input shapes: let cuDNN pick the fastest kernels (GPU runs are not bitwise reproducible).
        torch.backends.cudnn.benchmark = True
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    data = load_data(spec.data)
    info = data.info
    torch.manual_seed(spec.seed)  # the seed fixes the He init ...
    model, arch_hash = build_network(spec, info)
    input_shape = (info.in_channels, info.image_size, info.image_size)
    params, flops = count_architecture(model, input_shape)
    memory_format = torch.channels_last if (recipe.channels_last and device.type == "cuda") else torch.contiguous_format
    model.to(device=device, memory_format=memory_format)
    optimizer = make_optimizer(model, spec.lr, spec.wd, recipe)
    amp_dtype, scaler = amp_setup(recipe, device)
    generator = torch.Generator().manual_seed(data_seed(spec))  # ... and the data order and augmentation

    state = {"next_epoch": 0, "history": [], "elapsed_s": 0.0, "diverged_epoch": None, "last_eval": None}
    ckpt_path = run_dir / CHECKPOINT
    fingerprint = spec_fingerprint(spec)
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path, fingerprint, model, optimizer, generator, scaler, device)
        log.info("%s: resuming at epoch %d from %s", spec.run_id, state["next_epoch"], ckpt_path)

    data = data.to(device)
    session_start = time.perf_counter()
    epoch = state["next_epoch"]
    while epoch < recipe.epochs and state["diverged_epoch"] is None:
        lr = recipe.lr_at_epoch(spec.lr, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, train_acc, finite = _train_epoch(model, optimizer, data, recipe, generator, device,
                                               memory_format, amp_dtype, scaler)
        top1, top5 = evaluate(model, data, recipe.eval_batch_size, device, memory_format, amp_dtype)
        state["history"].append({"epoch": epoch, "lr": lr, "train_loss": loss if finite else None,
                                 "train_acc": train_acc, "val_acc": top1})
        state["last_eval"] = [top1, top5]
        if not finite:
            state["diverged_epoch"] = epoch
            log.warning("%s: loss became NaN/inf in epoch %d at lr %.3g; stopping (diverged)", spec.run_id, epoch, lr)
        else:
            log.info("%s: epoch %d lr %.4g loss %.4f train %.2f%% val %.2f%%", spec.run_id, epoch, lr,
                     loss, train_acc, top1)
        epoch += 1
        state["next_epoch"] = epoch
        elapsed = state["elapsed_s"] + time.perf_counter() - session_start
        save_checkpoint(ckpt_path, fingerprint, model, optimizer, generator, scaler, dict(state, elapsed_s=elapsed))

    if state["last_eval"] is None:  # zero epochs: the record still reports the untrained network
        state["last_eval"] = list(evaluate(model, data, recipe.eval_batch_size, device, memory_format, amp_dtype))
    if spec.keep_weights:
        from hplandscape.models import save_weights

        widths = (spec.arch or {}).get("widths")
        save_weights(run_dir / WEIGHTS, spec.model, model, info.num_classes, info.in_channels, widths=widths)

    # Time before this process started (earlier sessions of a resumed run) plus this session,
    # including data loading and model building.
    wall = state["elapsed_s"] + time.perf_counter() - session_start + (session_start - started)
    # The checkpoint stays: the caller deletes it once the record is safely stored, so a crash in
    # between costs nothing (calling again rebuilds the same record from the final checkpoint).
    return build_record(spec, state, info, params, flops, device, wall, arch_hash)


def resolve_device(requested: str) -> torch.device:
    """``"auto"`` → CUDA when available, else the CPU; ``"cuda"`` without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' was requested but no CUDA device is available here; "
                        "use device: auto or cpu (launcher.device in the study config)")
    if requested not in ("cpu", "cuda"):
        raise UserError(f"device must be one of auto, cpu, cuda; got {requested!r}")
    return torch.device(requested)


def build_network(spec, info):
    """The run's architecture with fresh He init, and the pruned architecture's content hash.

    Draws the init from torch's global generator (the caller seeds it). The basemodel is
    ``models.build_model``; a pruned condition is rebuilt from its ArchSpec with
    ``pruning.build_from_spec`` (widths only: no pickled modules, no trained weights).

    Returns
    -------
    (nn.Module, str or None)
        The model and ``ArchSpec.content_hash`` (None for the basemodel).
    """
    if spec.arch is None:
        from hplandscape.models import build_model

        return build_model(spec.model, num_classes=info.num_classes, in_channels=info.in_channels), None
    from hplandscape import pruning

    arch = pruning.ArchSpec.from_dict(spec.arch, where=f"run {spec.run_id}: pruned architecture")
    if arch.model != spec.model:
        raise UserError(f"run {spec.run_id}: the pruned architecture is a {arch.model!r}, the study trains {spec.model!r}")
    for key, want, have in (("num_classes", arch.num_classes, info.num_classes),
                            ("in_channels", arch.in_channels, info.in_channels)):
        if want != have:
            raise UserError(f"run {spec.run_id}: the pruned architecture has {key}={want} but dataset "
                            f"{info.name!r} has {have}; the ArchSpec was made for other data")
    return pruning.build_from_spec(arch), arch.content_hash


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


def evaluate(model, data, batch_size: int, device, memory_format=torch.contiguous_format,
             amp_dtype=None) -> tuple[float, float | None]:
    """(top-1, top-5) accuracy in percent on the held-out split; top-5 is None for ≤ 5 classes."""
    model.eval()
    correct1 = torch.zeros((), dtype=torch.int64, device=device)
    correct5 = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    k = 5 if data.info.num_classes > 5 else None
    with torch.no_grad(), autocast(device, amp_dtype):
        for x, y in data.eval_batches(batch_size, device=device, memory_format=memory_format):
            out = model(x).float()
            correct1 += (out.argmax(1) == y).sum()
            if k:
                correct5 += (out.topk(k, dim=1).indices == y[:, None]).any(1).sum()
            n += len(y)
    model.train()
    if n == 0:
        return 0.0, (0.0 if k else None)
    return 100.0 * correct1.item() / n, (100.0 * correct5.item() / n if k else None)


def data_seed(spec) -> int:
    """Seed of a run's data order and augmentation: its seed, or with ``recipe.data_order ==
    "per_point"`` a hash of its seed and grid point (an independent stream per point)."""
    if spec.recipe.data_order == "shared":
        return spec.seed
    digest = hashlib.sha256(f"{spec.seed}:{spec.point.key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def spec_fingerprint(spec) -> str:
    """Hash of everything that decides a run's numbers; a checkpoint only resumes the same run.

    Thread count, memory format and where the run lives do not change what is computed, so they
    are left out (a run may resume on another worker with another ``run_dir`` mount point).
    """
    recipe = dataclasses.asdict(spec.recipe)
    recipe.pop("threads", None)
    recipe.pop("channels_last", None)
    doc = {"study": spec.study, "condition": dataclasses.asdict(spec.condition),
           "point": [spec.point.log10_lr, spec.point.log10_wd], "seed": spec.seed, "model": spec.model,
           "data": dataclasses.asdict(spec.data), "recipe": recipe, "arch": spec.arch}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Shared with the fused engine (fused.py), which writes and resumes the same checkpoint format and
# builds records with the same function: keep these signatures in step with it.


def count_architecture(model, input_shape):
    from hplandscape.models import count_flops, count_params

    return int(count_params(model)), int(count_flops(model, input_shape))


def amp_setup(recipe, device):
    """(autocast dtype or None, GradScaler or None): bf16 where the GPU supports it, else fp16."""
    if not (recipe.amp and device.type == "cuda"):
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def autocast(device, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _train_epoch(model, optimizer, data, recipe, generator, device, memory_format, amp_dtype, scaler):
    """One epoch; returns (mean train loss, train accuracy in %, whether the loss stayed finite)."""
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    check_every = 1 if device.type == "cpu" else CUDA_CHECK_EVERY
    finite = True
    for step, (x, y) in enumerate(data.train_batches(recipe.batch_size, generator, recipe.augment,
                                                     device=device, memory_format=memory_format)):
        with autocast(device, amp_dtype):
            out = model(x)
            loss = F.cross_entropy(out.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
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


def save_checkpoint(path: Path, fingerprint, model, optimizer, generator, scaler, state) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": fingerprint,
        "state": state,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data_rng": generator.get_state(),
        "scaler": scaler.state_dict() if scaler is not None else None,
    }
    with atomic_open(path, "wb") as fh:  # a kill mid-write leaves the previous checkpoint intact
        torch.save(payload, fh)


def load_checkpoint(path: Path, fingerprint, model, optimizer, generator, scaler, device) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise UserError(f"{path}: cannot read this checkpoint ({type(exc).__name__}); delete it to "
                        "restart the run from scratch") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not an hplandscape checkpoint (format {CHECKPOINT_FORMAT}); delete it "
                        "to restart the run from scratch")
    if ckpt["fingerprint"] != fingerprint:
        raise UserError(f"{path}: this checkpoint belongs to a different run (other config, seed, "
                        "architecture or data); delete it to restart the run from scratch")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["torch_rng"])
    if ckpt["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    generator.set_state(ckpt["data_rng"])
    if scaler is not None and ckpt["scaler"] is not None:
        scaler.load_state_dict(ckpt["scaler"])
    return dict(ckpt["state"])


def _finite_or_none(x):
    return x if x is None or math.isfinite(x) else None


def build_record(spec, state, info, params, flops, device, wall, arch_hash) -> dict:
    top1, top5 = state["last_eval"]
    history = [{k: (_finite_or_none(v) if isinstance(v, float) else v) for k, v in h.items()}
               for h in state["history"]]
    diverged_epoch = state["diverged_epoch"]
    completed = len(history) - (1 if diverged_epoch is not None else 0)
    return {
        "run_id": spec.run_id,
        "study": spec.study,
        "condition": spec.condition.name,
        "method": spec.condition.method,
        "ratio": spec.condition.ratio,
        "model": spec.model,
        "lr": spec.lr,
        "wd": spec.wd,
        "log10_lr": spec.point.log10_lr,
        "log10_wd": spec.point.log10_wd,
        "seed": spec.seed,
        "recipe": spec.recipe.to_dict(),
        "data": dataclasses.asdict(spec.data),
        "top1": top1,
        "top5": top5 if info.num_classes > 5 else None,
        "history": history,
        "epochs_completed": completed,
        "wall_time_s": wall,
        "params": params,
        "flops": flops,
        "arch_hash": arch_hash,
        "diverged": diverged_epoch is not None,
        "diverged_epoch": diverged_epoch,
        "device": device_name(device),
        "engine": "sequential",
        "parametrisation": PARAMETRISATION + (
            " Weight decay applies to every parameter, BatchNorm and biases included."
            if spec.recipe.weight_decay_on_bn_bias else
            " BatchNorm parameters and biases get no weight decay."),
        "provenance": provenance(device),
    }
