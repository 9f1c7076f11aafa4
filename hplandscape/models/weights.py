"""The model weights file: what training writes for the basemodel and pruning reads back.

Format: ``torch.save({"model": name, "num_classes": int, "in_channels": int,
"widths": dict | None, "state_dict": ...}, path)``. Only tensors and plain Python values are
stored, so the file loads with ``weights_only=True`` and no code is ever unpickled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from hplandscape.atomic import atomic_open
from hplandscape.errors import UserError

_KEYS = ("model", "num_classes", "in_channels", "widths", "state_dict")


class Weights(NamedTuple):
    """The content of a weights file; :meth:`build` returns the model with the weights loaded."""

    path: str
    model: str
    num_classes: int
    in_channels: int
    widths: dict | None
    state_dict: dict

    def build(self) -> nn.Module:
        """The architecture of the file with its weights (strict: every tensor must fit)."""
        from hplandscape.models import build_model

        with torch.device("meta"):  # no point drawing an init that the file replaces
            model = build_model(self.model, num_classes=self.num_classes, in_channels=self.in_channels,
                                widths=self.widths)
        try:
            model.load_state_dict(self.state_dict, assign=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise UserError(f"{self.path}: weights do not fit architecture {self.model!r}: "
                            f"{' '.join(line.strip() for line in first[:3])}") from None
        return model


def save_weights(path, model_name: str, model: nn.Module, num_classes: int, in_channels: int,
                 widths: dict | None = None) -> Path:
    """Write ``model``'s weights atomically (temp file + ``os.replace``).

    Parameters
    ----------
    path : str or Path
        Destination, e.g. ``runs/base/<point>/seed0/model.pt``.
    model_name : str
        Registered architecture name.
    model : nn.Module
        The trained model; its ``state_dict`` is stored on the CPU.
    num_classes, in_channels : int
        What the model was built with.
    widths : dict or None
        Pruned widths it was built with (None for the unpruned architecture).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"model": model_name, "num_classes": int(num_classes), "in_channels": int(in_channels),
               "widths": None if widths is None else {str(k): int(v) for k, v in widths.items()},
               "state_dict": state}
    with atomic_open(path, "wb") as fh:
        torch.save(payload, fh)
    return path


class UnreadableWeights(UserError):
    """A weights file that exists but cannot be read (truncated, damaged, foreign)."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path


def load_weights(path, expected_model: str | None = None) -> Weights:
    """Read a weights file written by :func:`save_weights`.

    Parameters
    ----------
    path : str or Path
        The file.
    expected_model : str, optional
        Refuse a file holding another architecture.

    Raises
    ------
    UserError
        Missing or corrupt file, missing fields, an unknown architecture or one other than
        ``expected_model``; the message names the path.
    """
    from hplandscape.models.registry import find_entry, list_models

    path = str(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: weights file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        # torch's own text may advise loading with weights_only=False, which would run any code
        # the file holds: never relay it
        raise UnreadableWeights(f"{path}: not a readable weights file ({type(exc).__name__}: truncated, damaged or "
                                f"not written by hplandscape; it is read as tensors only and was not loaded)",
                                path) from None
    if not isinstance(data, dict) or any(k not in data for k in _KEYS):
        missing = [k for k in _KEYS if not isinstance(data, dict) or k not in data]
        raise UserError(f"{path}: not an hplandscape weights file (missing {', '.join(missing)}); "
                        f"expected a dict with keys {', '.join(_KEYS)} as written by save_weights")
    name = data["model"]
    if find_entry(name) is None:
        raise UserError(f"{path}: holds weights of unknown model {name!r}; available: {', '.join(list_models())}")
    if expected_model is not None and name != expected_model:
        raise UserError(f"{path}: holds weights of {name!r}, not of {expected_model!r}")
    for key in ("num_classes", "in_channels"):
        if isinstance(data[key], bool) or not isinstance(data[key], int) or data[key] < 1:
            raise UserError(f"{path}: {key} must be a positive integer, got {data[key]!r}")
    if data["widths"] is not None and not isinstance(data["widths"], dict):
        raise UserError(f"{path}: widths must be a dict or None, got {type(data['widths']).__name__}")
    if not isinstance(data["state_dict"], dict):
        raise UserError(f"{path}: state_dict must be a dict of tensors")
    return Weights(path, name, data["num_classes"], data["in_channels"], data["widths"], data["state_dict"])
