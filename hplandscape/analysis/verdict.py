"""Plain words from the statistics: did the optimum move, is the risk above the basemodel's own,
which ellipses the grid cuts off.

No advice from a fixed threshold: every sentence follows from an interval or says that one seed
cannot give one (:func:`seeds_line` then says once how to add seeds). The analyze text, the
report and the notebooks all use these sentences.
"""

from __future__ import annotations

from hplandscape.analysis.bootstrap import Interval
from hplandscape.analysis.replication_info import ADAPTIVE
from hplandscape.analysis.shift import ShiftInfo
from hplandscape.analysis.study_analysis import ConditionAnalysis, StudyAnalysis

ADD_SEEDS = ("add seeds (`seeds: [0, 1, 2]` in the study YAML, then `hplandscape sweep` again: "
             "only the new runs train)")
EXTEND = "`hplandscape sweep CONFIG --extend`"
ONE_SEED = ("one seed gives no measure of seed noise, so it cannot tell a difference of this size from seed "
            "noise")


def format_p(p: float) -> str:
    """``p = 0.041``, ``p = 0.66``, ``p < 0.001``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}" if p < 0.1 else f"p = {p:.2f}"


def _ci(i: Interval, fmt: str = "{:.2f}") -> str:
    return f"95 % CI {fmt.format(i.lo)} to {fmt.format(i.hi)}"


def describe_shift(s: ShiftInfo) -> str:
    """One sentence on whether a condition's optimum (its best setting) moved.

    Examples
    --------
    >>> from hplandscape.analysis.bootstrap import Interval
    >>> from hplandscape.analysis.shift import ShiftInfo
    >>> describe_shift(ShiftInfo(0.5, 3, Interval(0.21, 0.05, 0.38), Interval(0.01, -0.08, 0.1), 0.01, "moved"))
    'the optimum moved by +0.21 decades in lr (95 % CI 0.05 to 0.38, p = 0.01); in wd +0.01 decades (95 % CI -0.08 to 0.10)'
    >>> describe_shift(ShiftInfo(0.5, 3, Interval(0.08, -0.02, 0.18), Interval(-0.08, -0.19, 0.03), 0.02, "moved",
    ...                          family_size=2))
    'the optimum moved by +0.08 decades in lr and -0.08 in wd together (p = 0.02, family-wise over 2 pruned conditions): a move across the diagonal band that neither axis resolves alone (lr 95 % CI -0.02 to 0.18; wd 95 % CI -0.19 to 0.03)'
    """
    lr, wd = s.log10_lr, s.log10_wd
    edge = _censored(s)
    if s.verdict == "single_seed":
        return (f"its optimum lies {lr.estimate:+.2f} decades in lr and {wd.estimate:+.2f} in wd from the "
                f"unpruned model's; {ONE_SEED}{edge}")
    p = format_p(s.p_value) + (f", family-wise over {s.family_size} pruned conditions" if s.family_size > 1 else "")
    if s.verdict == "no_evidence":
        return (f"no evidence that the optimum moved (lr {lr.estimate:+.2f} decades, {_ci(lr)}; "
                f"wd {wd.estimate:+.2f} decades, {_ci(wd)}; {p}){edge}")
    moved = [(name, i) for name, i in (("lr", lr), ("wd", wd)) if i.excludes(0.0)]
    still = [(name, i) for name, i in (("lr", lr), ("wd", wd)) if not i.excludes(0.0)]
    if not moved:  # the joint region excludes 0, its shadows on the axes do not
        return (f"the optimum moved by {lr.estimate:+.2f} decades in lr and {wd.estimate:+.2f} in wd together "
                f"({p}): a move across the diagonal band that neither axis resolves alone "
                f"(lr {_ci(lr)}; wd {_ci(wd)}){edge}")
    if len(moved) == 2:
        return (f"the optimum moved by {lr.estimate:+.2f} decades in lr ({_ci(lr)}) and by "
                f"{wd.estimate:+.2f} decades in wd ({_ci(wd)}), {p}{edge}")
    (name, i), (other, j) = moved[0], still[0]
    return (f"the optimum moved by {i.estimate:+.2f} decades in {name} ({_ci(i)}, {p}); "
            f"in {other} {j.estimate:+.2f} decades ({_ci(j)}){edge}")


def _censored(s: ShiftInfo) -> str:
    if not s.censored:
        return ""
    who = [name for name, o in (("the unpruned model's", s.base_optimum), ("this condition's", s.optimum))
           if o is not None and o.censored]
    return (f"; {' and '.join(who)} optimum lies at the grid's edge, where the surface still rises, so the "
            f"shift is cut off there: extend the grid ({EXTEND})")


def describe_region(s: ShiftInfo) -> str:
    """One sentence on the second question: did the near-optimal region's centre move?

    Examples
    --------
    >>> from hplandscape.analysis.bootstrap import Interval
    >>> from hplandscape.analysis.shift import RegionShift, ShiftInfo
    >>> r = RegionShift(0.5, Interval(0.12, 0.02, 0.22), Interval(0.0, -0.1, 0.1), 0.03, "moved")
    >>> describe_region(ShiftInfo(0.5, 3, Interval(0.0), Interval(0.0), 0.5, "no_evidence", region=r))
    'The centre of its 0.5-ROI (where the near-optimal settings lie, not the best one) shifted by +0.12 decades in lr (95 % CI 0.02 to 0.22) and +0.00 in wd (95 % CI -0.10 to 0.10), p = 0.03 for this condition alone.'
    """
    r = s.region
    if r is None:
        return ""
    what = f"The centre of its {r.x:g}-ROI (where the near-optimal settings lie, not the best one)"
    if r.verdict == "single_seed":
        return (f"{what} lies {r.log10_lr.estimate:+.2f} decades in lr and {r.log10_wd.estimate:+.2f} in wd "
                f"from the unpruned model's.")
    verb = "shifted by" if r.verdict == "moved" else "did not shift measurably:"
    return (f"{what} {verb} {r.log10_lr.estimate:+.2f} decades in lr ({_ci(r.log10_lr)}) and "
            f"{r.log10_wd.estimate:+.2f} in wd ({_ci(r.log10_wd)}), {format_p(r.p_value)} for this condition alone.")


def describe_noise(c: ConditionAnalysis, xs) -> str:
    """The seed noise of a condition and what it means for each ROI threshold, in plain words.

    Examples
    --------
    >>> from hplandscape.analysis.noise import NoiseInfo
    >>> from types import SimpleNamespace
    >>> n = NoiseInfo(2, 0.9, (0.7, 1.3), 30, 30, 2.0, 1.27, ((0.5, False), (2.0, True)), 450, 0.6)
    >>> print(describe_noise(SimpleNamespace(noise=n, name="base"), (0.5, 2.0)))
    seed noise 0.90 points (95 % CI 0.70 to 1.30; pooled over 30 near-optimal points, 30 df): with 2 seeds an ROI threshold resolves down to 1.27 points. The 0.5-ROI is below that: which points it holds is decided by seed noise. To resolve it: 13 seeds, or less noise per run (a larger evaluation split than 450 images, where one image is 0.22 points; longer training).
    """
    n = c.noise
    if n is None:
        return ""
    if n.sd is None:
        floor = ""
        if n.eval_size:
            floor = (f" The evaluation split of {n.eval_size} images alone makes a top-1 uncertain by "
                     f"±{n.binomial_se:.2f} points (binomial standard error; one image is "
                     f"{100.0 / n.eval_size:.2f} points), so ROIs below about {2 * n.binomial_se:.2f} points "
                     f"are doubtful even before seed noise.")
        return (f"seed noise unknown: {'one seed' if n.n_seeds < 2 else 'no point with two seeds near the optimum'} "
                f"cannot measure it.{floor} To measure it, {ADD_SEEDS}.")
    text = (f"seed noise {n.sd:.2f} points (95 % CI {n.sd_ci[0]:.2f} to {n.sd_ci[1]:.2f}; pooled over "
            f"{n.n_points} near-optimal points, {n.df} df): with {n.n_seeds} seeds an ROI threshold resolves "
            f"down to {n.resolution:.2f} points.")
    low = [x for x, ok in n.resolvable if ok is False]
    if low:
        rois = " and the ".join(f"{x:g}-ROI" for x in low)
        verb = "is" if len(low) == 1 else "are"
        need = n.seeds_needed(min(low))
        split = (f"a larger evaluation split than {n.eval_size} images, where one image is "
                 f"{100.0 / n.eval_size:.2f} points; " if n.eval_size else "a larger evaluation split; ")
        text += (f" The {rois} {verb} below that: which points {'it holds' if len(low) == 1 else 'they hold'} "
                 f"is decided by seed noise. To resolve {'it' if len(low) == 1 else 'them'}: {need} seeds, or less "
                 f"noise per run ({split}longer training).")
    return text


def describe_excess(c: ConditionAnalysis, base: ConditionAnalysis) -> str:
    """One sentence comparing a condition's risk d_mean with the basemodel's own."""
    rep = c.replicates
    e = rep.excess_over_base if rep is not None else Interval(c.risk.d_mean - base.risk.d_mean)
    own = base.risk.d_mean
    if e.estimate is None:
        return "Its risk cannot be compared with the unpruned model's own (no shared near-optimal setting)."
    if not e.defined:
        return f"That is {e.estimate:+.2f} points against the unpruned model's own risk ({own:.2f}); {ONE_SEED}."
    if e.lo > 0:
        return (f"Its risk exceeds the unpruned model's own ({own:.2f}) by {e.estimate:.2f} points ({_ci(e)}).")
    if e.hi < 0:
        return (f"Its risk is below the unpruned model's own ({own:.2f}) by {-e.estimate:.2f} points ({_ci(e)}).")
    return (f"Its risk is not distinguishable from the unpruned model's own ({own:.2f}): excess "
            f"{e.estimate:+.2f} points ({_ci(e)}).")


def truncated_lines(result: StudyAnalysis) -> list[str]:
    """One line per ellipse whose ROI still touches the grid's edge."""
    out = []
    for c in result.conditions:
        for r in c.rois:
            if r.truncated and r.ellipse is not None:
                out.append(f"truncated ellipse: the {r.key}-ROI of {c.name} touches {', '.join(r.touches_edge)}, "
                           f"so its ellipse (length, width, centre) is cut off by the grid; run {EXTEND} "
                           f"to enclose it")
    return out


def seeds_line(result: StudyAnalysis) -> str:
    """What the seeds allow: intervals and tests, or why not."""
    b = result.bootstrap
    n = len(result.seeds)
    if n < 2:
        return (f"One seed per grid point: the numbers below have no intervals, and one seed cannot tell a "
                f"shift of the optimum or a risk difference from seed noise (seed-to-seed spread of ResNet-56 "
                f"on CIFAR-10 is 0.12–0.20 points, the size of the risks themselves); {ADD_SEEDS}.")
    designs = sorted({d for _, d in b.randomness}) if b is not None else ["independent"]
    resampled = {"independent": "seeds resampled per grid point", "common": "whole seeds resampled"}
    rep = result.replication
    if rep is not None and rep.design == ADAPTIVE:
        counts = sorted({k for c in rep.conditions for row in c.counts for k in row})
        seeds = (f"{n} seeds as replicates where the adaptive design ran them ({counts[0]} to {counts[-1]} per "
                 f"grid point)")
    else:
        seeds = f"{n} seeds as replicates"
    return (f"{seeds}: 95 % bootstrap intervals ({b.n_boot} resamples, seed {b.seed}; "
            + "; ".join(f"{d} randomness: {resampled[d]}" for d in designs) + ").")
