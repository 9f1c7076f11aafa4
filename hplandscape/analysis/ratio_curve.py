"""Where accuracy bends as pruning gets harder: acc(r) = acc_p − a·e^{b(r−1)}.

r is the fraction of FLOPs pruned (1 − the condition's ratio), acc_p the accuracy the curve
approaches as pruning vanishes; a and b say how late and how sharply it falls. This is the form
used for accuracy over sparsity in sparse-training studies. With three or more pruning ratios of
one method, the curve is fitted twice: to each condition's best top-1 (re-tuned) and to its top-1
at the basemodel's prior (not re-tuned); the basemodel is the point r = 0 of both.

The fit is variable projection: for a fixed b the model is linear in (acc_p, a), so the
least-squares (acc_p, a) has a closed form and only b is searched (a log-spaced scan, then
:func:`scipy.optimize.minimize_scalar` around the best scan value). That finds the global
optimum of a fit that plain Gauss–Newton from a guessed start often misses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy.optimize import minimize_scalar


@dataclass(frozen=True)
class RatioCurveInfo:
    """acc(r) = acc_p − a·e^{b(r−1)} fitted over r = fraction of FLOPs pruned, for one method.

    ``kind`` is ``"best"`` (each condition's best top-1: re-tuned) or ``"prior"`` (top-1 at the
    basemodel's prior: not re-tuned). ``conditions`` / ``r`` / ``top1`` are the fitted points,
    the basemodel first at r = 0. ``r_drop`` is where the curve falls ``drop`` accuracy points
    below acc_p (None if not within 0 ≤ r ≤ 1); ``rmse`` the fit's root-mean-square residual.
    Without a fit (``reason`` set) the parameters are NaN.
    """

    method: str
    kind: str
    conditions: tuple
    r: tuple
    top1: tuple
    acc_p: float
    a: float
    b: float
    rmse: float
    r_drop: Optional[float]
    drop: float = 1.0
    reason: Optional[str] = None

    def value(self, r) -> np.ndarray:
        """The fitted curve at ``r`` (scalar or array)."""
        return self.acc_p - self.a * np.exp(self.b * (np.asarray(r, dtype=float) - 1.0))

    @property
    def ratio_at_drop(self) -> Optional[float]:
        """The FLOPs fraction *kept* where the curve has dropped ``drop`` points (1 − r_drop)."""
        return None if self.r_drop is None else 1.0 - self.r_drop


MIN_RATIOS = 3  # pruned ratios of one method needed for a fit (3 parameters)
B_RANGE = (1e-2, 1e4)  # the search range of b; e^{b(r-1)} at r = 0 spans e^-0.01 … 0
DROP = 1.0  # accuracy points below acc_p that mark "the curve has bent"


def ratio_curve(r, acc_p: float, a: float, b: float):
    """acc(r) = acc_p − a·e^{b(r−1)}.

    Examples
    --------
    >>> round(float(ratio_curve(0.987, 0.868, 0.204, 183)), 6), round(float(ratio_curve(0.99, 0.868, 0.204, 183)), 6)
    (0.849101, 0.835276)
    """
    return acc_p - a * np.exp(b * (np.asarray(r, dtype=float) - 1.0))


def r_at_drop(a: float, b: float, drop: float = DROP) -> Optional[float]:
    """The r where the curve lies ``drop`` below acc_p: 1 + ln(drop / a) / b.

    None when that point is outside 0 ≤ r ≤ 1 (the curve never falls that far when a < drop,
    or has already fallen that far unpruned) or the parameters do not define it.

    Examples
    --------
    >>> round(r_at_drop(0.204, 183, drop=0.01), 6)
    0.983522
    """
    if not (a > 0 and b > 0 and drop > 0) or not (math.isfinite(a) and math.isfinite(b)):
        return None
    r = 1.0 + math.log(drop / a) / b
    return r if 0.0 <= r <= 1.0 else None


def _linear(r: np.ndarray, y: np.ndarray, b: float) -> tuple[float, float, float]:
    """Least-squares (acc_p, a) for a fixed b, with a ≥ 0; returns (acc_p, a, sse)."""
    e = np.exp(b * (r - 1.0))
    design = np.column_stack([np.ones_like(r), -e])
    (acc_p, a), *_ = np.linalg.lstsq(design, y, rcond=None)
    if not a > 0:  # accuracy does not fall with r: the best non-negative a is 0
        acc_p, a = float(np.mean(y)), 0.0
    resid = y - acc_p + a * e
    return float(acc_p), float(a), float(resid @ resid)


def fit_ratio_curve(r: Sequence[float], top1: Sequence[float]) -> tuple[float, float, float, float]:
    """Least-squares fit of acc(r) = acc_p − a·e^{b(r−1)} with a ≥ 0 and b in :data:`B_RANGE`.

    Parameters
    ----------
    r : sequence of float
        Fractions of FLOPs pruned, at least three distinct values.
    top1 : sequence of float
        Accuracies at ``r`` (any unit; acc_p and a come out in the same unit).

    Returns
    -------
    tuple of float
        ``(acc_p, a, b, rmse)``. With a = 0 (no fall with r) b is meaningless and NaN.

    Raises
    ------
    ValueError
        Fewer than three distinct r, or a non-finite value.

    Examples
    --------
    >>> r = [0.0, 0.4, 0.6, 0.8, 0.9]
    >>> acc_p, a, b, rmse = fit_ratio_curve(r, ratio_curve(r, 93.0, 1.5, 4.0))
    >>> round(acc_p, 6), round(a, 6), round(b, 6)
    (93.0, 1.5, 4.0)
    """
    r = np.asarray(r, dtype=float)
    y = np.asarray(top1, dtype=float)
    if len(r) != len(y) or not (np.isfinite(r).all() and np.isfinite(y).all()):
        raise ValueError("fit_ratio_curve needs finite r and top-1 of the same length")
    if len(np.unique(r)) < MIN_RATIOS:
        raise ValueError(f"fit_ratio_curve needs at least {MIN_RATIOS} distinct r, got {len(np.unique(r))}")
    log_bs = np.linspace(math.log(B_RANGE[0]), math.log(B_RANGE[1]), 601)
    sse = np.array([_linear(r, y, math.exp(lb))[2] for lb in log_bs])
    k = int(np.argmin(sse))
    lo, hi = log_bs[max(k - 1, 0)], log_bs[min(k + 1, len(log_bs) - 1)]
    opt = minimize_scalar(lambda lb: _linear(r, y, math.exp(lb))[2], bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-12})
    log_b = float(opt.x) if opt.fun <= sse[k] else float(log_bs[k])
    acc_p, a, s = _linear(r, y, math.exp(log_b))
    return acc_p, a, (math.exp(log_b) if a > 0 else float("nan")), math.sqrt(s / len(r))


def ratio_curve_info(method: str, kind: str, conditions: Sequence[str], r: Sequence[float],
                     top1: Sequence[float], drop: float = DROP) -> RatioCurveInfo:
    """Fit one method's curve of one kind (``"best"`` or ``"prior"``) and find its 1-point drop.

    Points with an unknown top-1 (None or NaN) are left out; with fewer than three distinct r
    left the info carries NaN parameters and the ``reason``.
    """
    keep = [i for i, v in enumerate(top1) if v is not None and math.isfinite(v)]
    names = tuple(conditions[i] for i in keep)
    rs = tuple(float(r[i]) for i in keep)
    ys = tuple(float(top1[i]) for i in keep)
    nan = float("nan")
    if len(set(rs)) < MIN_RATIOS:
        return RatioCurveInfo(method, kind, names, rs, ys, nan, nan, nan, nan, None, drop,
                              reason=f"{len(set(rs))} distinct pruning ratios with a {kind} top-1 "
                                     f"(the basemodel included); the fit needs {MIN_RATIOS}")
    acc_p, a, b, rmse = fit_ratio_curve(rs, ys)
    return RatioCurveInfo(method, kind, names, rs, ys, acc_p, a, b, rmse, r_at_drop(a, b, drop), drop)


def ratio_curves(result_conditions, base, r_of) -> tuple:
    """Curves of every method with at least :data:`MIN_RATIOS` pruned ratios, best then prior.

    Parameters
    ----------
    result_conditions : sequence of ConditionAnalysis
        The study's conditions.
    base : ConditionAnalysis
        The basemodel, the point r = 0 of every curve.
    r_of : callable
        ``r_of(condition) -> float``: its fraction of FLOPs pruned.
    """
    out = []
    methods = dict.fromkeys(c.method for c in result_conditions if c.name != base.name and c.method != "none")
    for method in methods:
        members = [c for c in result_conditions if c.method == method and c.name != base.name]
        if len({c.ratio for c in members}) < MIN_RATIOS:
            continue
        members = [base] + sorted(members, key=lambda c: -c.ratio)
        names = [c.name for c in members]
        rs = [0.0 if c is base else r_of(c) for c in members]
        out.append(ratio_curve_info(method, "best", names, rs, [c.best.top1 for c in members]))
        out.append(ratio_curve_info(method, "prior", names, rs, [c.prior_top1 for c in members]))
    return tuple(out)
