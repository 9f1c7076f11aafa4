"""Training curves: loss and accuracy per epoch at each condition's best point and at the prior.

The data layer of the "Training curves" figure (numpy only): it picks, from the run records'
per-epoch ``history``, the runs worth looking at — where the condition ends up best and where an
untuned practitioner starts — and keeps divergence visible (the epoch whose loss was NaN/inf).
Both back ends draw :class:`CurveInfo`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from hplandscape.analysis.notation import hp_log10_text
from hplandscape.analysis.study_analysis import StudyAnalysis
from hplandscape.study.grid import GridPoint

#: Line styles per role, shared by both back ends: where the condition is best, and the prior.
ROLE_COLOURS = {"best": "#1f3b73", "prior": "#d95f02"}


@dataclass(frozen=True)
class CurveRun:
    """One run's history: arrays per epoch (NaN where a value was not recorded).

    ``role`` is ``"best"`` (the condition's best grid point) or ``"prior"`` (the basemodel's
    prior); ``diverged_epoch`` is the epoch whose loss was not finite (None if it never diverged).
    """

    condition: str
    role: str
    label: str
    seed: int
    epoch: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    val_acc: np.ndarray
    lr: np.ndarray
    diverged_epoch: Optional[int]


@dataclass(frozen=True)
class CurvePanelInfo:
    """The runs of one condition (its column of the figure)."""

    condition: str
    title: str
    runs: tuple  # CurveRun, best first, seeds ascending


@dataclass(frozen=True)
class CurveInfo:
    """Every condition's curves; ``missing`` says which conditions have no history to show."""

    panels: tuple
    missing: tuple  # lines such as "global-0.5: no record with a per-epoch history at ..."

    @property
    def empty(self) -> bool:
        return not any(p.runs for p in self.panels)


def _point(record: dict) -> Optional[GridPoint]:
    try:
        return GridPoint.from_values(float(record["lr"]), float(record["wd"]))  # the grid's identity rule
    except (KeyError, TypeError, ValueError):
        return None


def _floats(history: list, key: str) -> np.ndarray:
    out = []
    for h in history:
        v = h.get(key)
        out.append(float(v) if isinstance(v, (int, float)) and np.isfinite(v) else np.nan)
    return np.array(out, dtype=float)


def _run(record: dict, condition: str, role: str, label: str) -> Optional[CurveRun]:
    history = record.get("history")
    if not isinstance(history, list) or not history or not all(isinstance(h, dict) for h in history):
        return None
    epoch = _floats(history, "epoch")
    diverged = record.get("diverged_epoch")
    if diverged is None and record.get("diverged"):
        lost = [int(e) for e, h in zip(epoch, history) if h.get("train_loss") is None and np.isfinite(e)]
        diverged = lost[0] if lost else None
    return CurveRun(condition=condition, role=role, label=label, seed=int(record.get("seed", 0)), epoch=epoch,
                    train_loss=_floats(history, "train_loss"), train_acc=_floats(history, "train_acc"),
                    val_acc=_floats(history, "val_acc"), lr=_floats(history, "lr"),
                    diverged_epoch=None if diverged is None else int(diverged))


def curve_info(records: Iterable[dict], result: StudyAnalysis) -> CurveInfo:
    """The per-epoch histories of each condition at its best point and at the prior.

    Parameters
    ----------
    records : iterable of dict
        Run records (``StudyStore.iter_records()``); each with ``condition``, ``lr``, ``wd``,
        ``seed`` and a ``history`` list of ``{epoch, lr, train_loss, train_acc, val_acc}``.
        Records without a history are skipped (and said so in ``missing``).
    result : StudyAnalysis
        Gives each condition's best point (the first of ties) and the prior.

    Returns
    -------
    CurveInfo
        One panel per condition of ``result``. A best point that is the prior gives one set of
        runs, labelled as both.
    """
    prior = GridPoint(result.prior.log10_lr, result.prior.log10_wd) if result.prior is not None else None
    wanted = {}
    for c in result.conditions:
        best = GridPoint(c.best.log10_lr, c.best.log10_wd)
        where = f"lr {hp_log10_text(best.log10_lr)}, wd {hp_log10_text(best.log10_wd)}"
        if prior is not None and best == prior:
            wanted[(c.name, best)] = ("best", f"best = prior ({where})")
            continue
        wanted[(c.name, best)] = ("best", f"best ({where})")
        if prior is not None:
            wanted[(c.name, prior)] = ("prior", f"prior (lr {hp_log10_text(prior.log10_lr)}, "
                                                f"wd {hp_log10_text(prior.log10_wd)})")
    runs = {c.name: [] for c in result.conditions}
    found = set()
    for record in records:
        key = (str(record.get("condition")), _point(record))
        if key not in wanted:
            continue
        role, label = wanted[key]
        run = _run(record, key[0], role, label)
        if run is not None:
            runs[key[0]].append(run)
            found.add(key)
    missing = tuple(f"{name}: no record with a per-epoch history at its {role} point ({label})"
                    for (name, _), (role, label) in wanted.items() if (name, _) not in found)
    panels = []
    for c in result.conditions:
        mine = sorted(runs[c.name], key=lambda r: (r.role != "best", r.seed))
        title = c.name if c.method == "none" else f"{c.name} ({c.method}, {c.ratio:.0%} FLOPs)"
        if prior is not None and GridPoint(c.best.log10_lr, c.best.log10_wd) == prior:
            title += "; best = prior"  # one set of runs, drawn as the best point's
        panels.append(CurvePanelInfo(c.name, title, tuple(mine)))
    return CurveInfo(panels=tuple(panels), missing=missing)
