"""How many seeds each grid point got: the replication design as the results show it.

A full design (``design.replicates: full``) runs every seed of the study at every grid point of
every condition; an adaptive one (:mod:`hplandscape.study.replication`) runs the first seed
everywhere and adds the others, round by round, only where a point's ROI membership or its claim
to be the best is still open (:mod:`hplandscape.analysis.adaptive`). Its results then hold
unequal seeds per point by design. :func:`replication_info` counts them per condition over the
study's lr × wd grid and sets the runs used against the full design's (grid points × the
study's distinct seeds).

The table says which design asked for each run in its ``replicates`` column (absent in tables
made before the column: full) and which round in ``round`` (absent: 1). numpy and pandas only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hplandscape.study.replication import REPLICATES

#: ``full`` is also the design of a table without a ``replicates`` column (runs recorded before it).
FULL, ADAPTIVE = REPLICATES


@dataclass(frozen=True)
class ConditionReplication:
    """One condition's seeds per grid point.

    ``counts[i][j]`` is the number of the condition's runs with a record at ``log10_lr[i]``,
    ``log10_wd[j]`` (a failed run counts: it was asked for and ran; the warnings list it), on the
    study's grid axes, so every condition's grid has the same shape. ``full`` is what the full
    design would have run: grid points × the study's distinct seeds. ``rounds`` is the last round
    that asked for one of its runs (1 for a full design).
    """

    condition: str
    design: str  # FULL | ADAPTIVE
    log10_lr: tuple  # rows of counts, ascending
    log10_wd: tuple  # columns of counts, ascending
    counts: tuple  # a row of ints per log10_lr value, a column per log10_wd value
    full: int
    rounds: int

    @property
    def array(self) -> np.ndarray:
        """:attr:`counts` as a ``(len(log10_lr), len(log10_wd))`` integer array."""
        return np.array(self.counts, dtype=int).reshape(len(self.log10_lr), len(self.log10_wd))

    @property
    def used(self) -> int:
        """Runs with a record on the grid."""
        return int(self.array.sum())

    @property
    def uniform(self) -> bool:
        """True when every grid point got the same number of seeds."""
        return len({n for r in self.counts for n in r}) <= 1

    def to_json(self) -> dict:
        return {"design": self.design, "used": self.used, "full": int(self.full), "rounds": int(self.rounds),
                "seeds_per_point": {"log10_lr": [float(v) for v in self.log10_lr],
                                    "log10_wd": [float(v) for v in self.log10_wd],
                                    "counts": [list(r) for r in self.counts]}}


@dataclass(frozen=True)
class ReplicationInfo:
    """The study's replication: one :class:`ConditionReplication` per condition (the analysis's
    order) and the totals. ``design`` is ``"adaptive"`` when any condition's runs say so."""

    conditions: tuple  # ConditionReplication
    n_seeds: int  # the study's distinct seeds

    @property
    def design(self) -> str:
        return ADAPTIVE if any(c.design == ADAPTIVE for c in self.conditions) else FULL

    @property
    def used(self) -> int:
        return sum(c.used for c in self.conditions)

    @property
    def full(self) -> int:
        return sum(c.full for c in self.conditions)

    @property
    def saved(self) -> int:
        """Runs of the full design not run (negative never: a point holds each seed once)."""
        return self.full - self.used

    @property
    def saved_fraction(self) -> float:
        return self.saved / self.full if self.full else 0.0

    @property
    def rounds(self) -> int:
        return max((c.rounds for c in self.conditions), default=1)

    @property
    def uniform(self) -> bool:
        """True when every point of every condition got the same number of seeds."""
        return len({n for c in self.conditions for r in c.counts for n in r}) <= 1

    @property
    def max_count(self) -> int:
        return max((n for c in self.conditions for r in c.counts for n in r), default=0)

    def condition(self, name: str) -> ConditionReplication:
        for c in self.conditions:
            if c.condition == name:
                return c
        raise KeyError(f"no condition {name!r}; available: " + ", ".join(c.condition for c in self.conditions))

    def to_json(self) -> dict:
        return {"design": self.design, "used": self.used, "full": self.full, "saved": self.saved,
                "saved_fraction": float(self.saved_fraction), "rounds": self.rounds, "n_seeds": self.n_seeds,
                "conditions": {c.condition: c.to_json() for c in self.conditions}}


def condition_design(rows: pd.DataFrame) -> str:
    """The design of one condition's runs (read by :func:`~hplandscape.analysis.results_io.load_results`):
    ``"adaptive"`` when any of its rows says so, else full (also for a table without the
    ``replicates`` column)."""
    if "replicates" not in rows.columns:
        return FULL
    return ADAPTIVE if (rows["replicates"] == ADAPTIVE).any() else FULL


def _rounds(rows: pd.DataFrame) -> int:
    last = rows["round"].max() if "round" in rows.columns else None  # NaN: rows of a table without it
    return int(last) if last is not None and last == last else 1


def replication_info(df: pd.DataFrame, order, log10_lr, log10_wd, seeds) -> ReplicationInfo:
    """Seeds per grid point of each condition, against the full design.

    Parameters
    ----------
    df : pandas.DataFrame
        The runs on the grid (a :func:`~hplandscape.analysis.results_io.load_results` table
        without its off-grid runs), with or without ``replicates`` and ``round``.
    order : sequence of str
        The conditions, in the analysis's order.
    log10_lr, log10_wd : sequence of float
        The study's grid axes, ascending.
    seeds : sequence of int
        The study's distinct seeds.

    Returns
    -------
    ReplicationInfo

    Examples
    --------
    >>> t = pd.DataFrame({"condition": "a", "log10_lr": [-1.0, -1.0, -1.0, -2.0], "log10_wd": -4.0,
    ...                   "seed": [0, 1, 2, 0], "replicates": "adaptive", "round": [1, 2, 3, 1]})
    >>> info = replication_info(t, ["a"], [-2.0, -1.0], [-4.0], [0, 1, 2])
    >>> info.condition("a").counts, info.used, info.full, info.rounds, round(info.saved_fraction, 3)
    (((1,), (3,)), 4, 6, 3, 0.333)
    """
    lrs, wds = tuple(float(v) for v in log10_lr), tuple(float(v) for v in log10_wd)
    row = {v: i for i, v in enumerate(lrs)}
    col = {v: j for j, v in enumerate(wds)}
    out = []
    for name in order:
        rows = df[df["condition"] == name]
        counts = np.zeros((len(lrs), len(wds)), dtype=int)
        for (lr, wd), n in rows.groupby(["log10_lr", "log10_wd"]).size().items():
            counts[row[float(lr)], col[float(wd)]] = int(n)
        out.append(ConditionReplication(condition=str(name), design=condition_design(rows), log10_lr=lrs,
                                        log10_wd=wds, counts=tuple(tuple(int(n) for n in r) for r in counts),
                                        full=len(lrs) * len(wds) * len(seeds), rounds=_rounds(rows)))
    return ReplicationInfo(conditions=tuple(out), n_seeds=len(seeds))


def describe_replication(info: ReplicationInfo) -> str:
    """The adaptive design in one sentence: runs used against the full design's, and rounds.

    >>> c = ConditionReplication("a", ADAPTIVE, (0.0,), (0.0, 1.0), ((3, 1),), 6, 3)
    >>> describe_replication(ReplicationInfo((c,), 3))
    'The adaptive design ran 4 of 6 runs (66.7 % of the full design; 2 saved) in 3 rounds.'
    """
    used, full = info.used, info.full
    share = 100.0 * used / full if full else 100.0
    rounds = f"{info.rounds} round{'s' if info.rounds != 1 else ''}"
    return (f"The {info.design} design ran {used} of {full} runs ({share:.1f} % of the full design; "
            f"{info.saved} saved) in {rounds}.")
