"""Checkpoints of a run, whichever engine wrote them: when to save (:class:`CheckpointClock`), the
file (:func:`save_checkpoint`, :func:`load_checkpoint`, format :data:`CHECKPOINT_FORMAT`) and the
resume that sets aside a checkpoint it cannot use (:func:`resume`).

One format serves both engines, so either resumes the other's. A checkpoint is plain data
(``torch.load(weights_only=True)``): ``{"format", "fingerprint", "state": RunProgress.to_dict(),
"model", "optimizer", "torch_rng", "cuda_rng", "data_rng", "scaler", "extras"}``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from hplandscape.atomic import atomic_open
from hplandscape.errors import UserError
from hplandscape.store.layout import RunFiles
from hplandscape.store.study_store import set_aside
from hplandscape.training.lifecycle import RunExtras, RunProgress

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


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
