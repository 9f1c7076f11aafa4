"""Adaptive replication: which grid points the next round gives another seed (method §12).

A study with ``design.replicates: adaptive`` does not train every seed at every point. Its first
round trains the first seed everywhere and every seed at the prior and its axis neighbours
(:func:`hplandscape.study.replication.first_round`), so the seed noise is measured from the start.
Each later round gives the next seed to the points whose answer the missing seeds could still
change, and the rounds stop when no point qualifies or every qualifying point has all its seeds.

**The rule.** With σ the condition's seed noise (pooled within-point standard deviation near its
best, as :func:`~hplandscape.analysis.noise.seed_noise` measures it), a point p with n_p of S
seeds has a mean that the full design would move by N(0, σ²(1/n_p − 1/S)); the best point b's
mean, which sets every ROI's threshold, moves by N(0, σ²(1/n_b − 1/S)). So

    τ_p = σ · √((1/n_p − 1/S) + (1/n_b − 1/S))

is how far the full design could still move p's margin to the best, one standard deviation. A
point with n_p < S qualifies when

- its claim to be the best is open: f_b − f_p ≤ z·τ_p (the best point itself always, while it
  lacks seeds), or
- its membership of some x-ROI is open: |f_p − (f_b − x)| ≤ z·τ_p, for each threshold x.

z = :data:`Z` = 1.5: a point left out would change side with the full design's seeds at most 6.7 %
of the time (Φ(−1.5)), and the few that do lie near a threshold, where the full design's own
membership is a near coin flip; on simulated thesis-shaped studies this keeps the verdicts and
the ROI centres of the full design with under half its runs, where z = 2 needs about 52 %
(``benchmarks/adaptive_replication.py``, docs/performance.md). A point whose margin lies many τ from every threshold cannot change any ROI, the
best point or the ellipses fitted to the ROIs, whatever its other seeds say; the points that fix
the optimum's position (the ROI's, near the best) get them.

**The noise.** σ is measured on the condition's own replicated points near its best; with fewer
than :data:`MIN_DF` degrees of freedom there (a pruned condition whose optimum moved away from
the prior's replicated block), the study's pooled estimate over every condition is used; with
none at all, every point within :func:`~hplandscape.analysis.noise.noise_within` of the best
qualifies, so the next round measures the noise where it matters.

numpy only, like the rest of :mod:`hplandscape.analysis`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from hplandscape.analysis.bootstrap import SeedMatrix
from hplandscape.analysis.noise import noise_within
from hplandscape.analysis.regions import roi_key

#: How many of τ a margin must lie from the best and from every ROI threshold for a point to keep
#: the seeds it has (docs/performance.md, "Adaptive replication", compares z = 1.25, 1.5 and 2).
Z = 1.5
#: Fewest degrees of freedom of a condition's own noise estimate before the study's pooled one is
#: used instead (with 4, σ̂'s 95 % interval spans 0.6σ–2.9σ).
MIN_DF = 4


@dataclass(frozen=True)
class PointReason:
    """Why a point gets another seed: ``"best"`` (its claim to be the best is open), an ROI
    threshold's key (``"0.5"``: its 0.5-ROI membership is open) or ``"noise"`` (the noise is not
    measured yet)."""

    index: int
    reasons: tuple


@dataclass(frozen=True)
class ReplicationDecision:
    """The next round of one condition: the points (row indices of its :class:`SeedMatrix`) that
    get their next seed, why, and the noise the rule used (``sigma`` None: not measured yet;
    ``sigma_source`` ``"own"``, ``"study"`` or ``"none"``)."""

    condition: str
    add: tuple  # PointReason
    sigma: Optional[float]
    sigma_df: int
    sigma_source: str

    @property
    def indices(self) -> tuple:
        return tuple(p.index for p in self.add)

    def to_json(self) -> dict:
        return {"sigma": self.sigma, "sigma_df": self.sigma_df, "sigma_source": self.sigma_source,
                "points": len(self.add)}


def pooled_noise(m: SeedMatrix, xs) -> tuple:
    """``(sum of squares, df)`` of the points with two or more results within
    :func:`~hplandscape.analysis.noise.noise_within` of the best (as ``seed_noise`` pools them)."""
    v, n, means = m.values, m.counts, m.means
    near = (means >= np.nanmax(means) - noise_within(xs)) & (n >= 2)
    dev = np.where(np.isfinite(v), v - means[:, None], 0.0)[near]
    return float((dev ** 2).sum()), int((n[near] - 1).sum())


def next_round(matrices: dict, n_seeds: int, xs, z: float = Z) -> dict:
    """The points of each condition that get their next seed in the next round.

    Parameters
    ----------
    matrices : dict
        ``{condition: SeedMatrix}`` of the results so far: rows the points with a result, columns
        the design's seeds in order (NaN where a seed has not run at that point).
    n_seeds : int
        S, the seeds of the full design.
    xs : sequence of float
        The study's ROI thresholds.
    z : float
        The rule's threshold in units of τ (module docstring).

    Returns
    -------
    dict
        ``{condition: ReplicationDecision}``; a condition whose ``add`` is empty is settled.

    Examples
    --------
    >>> v = np.array([[93.0, 93.2, 92.9], [92.6, np.nan, np.nan], [90.0, np.nan, np.nan],
    ...               [93.1, 92.8, 93.1], [92.1, np.nan, np.nan]])
    >>> m = SeedMatrix(v, [0, 0, 0, 1, 1], [0, 1, 2, 0, 1])
    >>> d = next_round({"base": m}, 3, (0.5, 1.0))["base"]
    >>> round(d.sigma, 3), [(p.index, p.reasons) for p in d.add]
    (0.163, [(1, ('0.5',)), (4, ('1.0',))])
    """
    if n_seeds < 2:
        return {name: ReplicationDecision(name, (), None, 0, "none") for name in matrices}
    own = {name: pooled_noise(m, xs) for name, m in matrices.items()}
    ss_all = sum(ss for ss, df in own.values())
    df_all = sum(df for ss, df in own.values())
    out = {}
    for name, m in matrices.items():
        ss, df = own[name]
        if df >= MIN_DF:
            sigma, used_df, source = math.sqrt(ss / df), df, "own"
        elif df_all >= MIN_DF:
            sigma, used_df, source = math.sqrt(ss_all / df_all), df_all, "study"
        else:
            sigma, used_df, source = None, df_all, "none"
        out[name] = ReplicationDecision(name, _qualifying(m, n_seeds, xs, sigma, z), sigma, used_df, source)
    return out


def _qualifying(m: SeedMatrix, n_seeds: int, xs, sigma: Optional[float], z: float) -> tuple:
    n = m.counts
    means = m.means
    best = int(np.argmax(means))
    open_ = n < n_seeds
    if sigma is None:
        near = open_ & (means >= means[best] - noise_within(xs))
        return tuple(PointReason(int(i), ("noise",)) for i in np.flatnonzero(near))
    S = float(n_seeds)
    tau = sigma * np.sqrt((1.0 / n - 1.0 / S) + (1.0 / n[best] - 1.0 / S))
    reach = z * tau
    gap = means[best] - means
    reasons = [[] for _ in range(len(means))]
    for i in np.flatnonzero(open_ & (gap <= reach)):
        reasons[i].append("best")
    for x in xs:
        for i in np.flatnonzero(open_ & (np.abs(gap - x) <= reach)):
            reasons[i].append(roi_key(x))
    return tuple(PointReason(int(i), tuple(r)) for i, r in enumerate(reasons) if r)
