"""Plain words from the statistics: did the optimum move, is the risk above the basemodel's own,
which ellipses the grid cuts off.

No advice from a fixed threshold: every sentence follows from an interval or says that one seed
cannot give one (:func:`seeds_line` then says once how to add seeds). The analyze text, the
report and the notebooks all use these sentences.
"""

from __future__ import annotations

from hplandscape.analysis.info import ConditionAnalysis, Interval, ShiftInfo, StudyAnalysis

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
    """One sentence on whether a condition's optimum moved (its margin-weighted x-ROI centre).

    Examples
    --------
    >>> from hplandscape.analysis.info import Interval, ShiftInfo
    >>> describe_shift(ShiftInfo(0.5, 3, Interval(0.21, 0.05, 0.38), Interval(0.01, -0.08, 0.1), 0.01, "moved"))
    'the optimum moved by +0.21 decades in lr (95 % CI 0.05 to 0.38, p = 0.01); in wd +0.01 decades (95 % CI -0.08 to 0.10)'
    """
    lr, wd = s.log10_lr, s.log10_wd
    if s.verdict == "single_seed":
        return (f"the centre of its {s.x:g}-ROI lies {lr.estimate:+.2f} decades in lr and {wd.estimate:+.2f} "
                f"in wd from the unpruned model's; {ONE_SEED}")
    p = format_p(s.p_value)
    if s.verdict == "no_evidence":
        return (f"no evidence that the optimum moved (lr {lr.estimate:+.2f} decades, {_ci(lr)}; "
                f"wd {wd.estimate:+.2f} decades, {_ci(wd)}; {p})")
    moved = [(name, i) for name, i in (("lr", lr), ("wd", wd)) if i.excludes(0.0)]
    still = [(name, i) for name, i in (("lr", lr), ("wd", wd)) if not i.excludes(0.0)]
    if len(moved) == 2:
        return (f"the optimum moved by {lr.estimate:+.2f} decades in lr ({_ci(lr)}) and by "
                f"{wd.estimate:+.2f} decades in wd ({_ci(wd)}), {p}")
    (name, i), (other, j) = moved[0], still[0]
    return (f"the optimum moved by {i.estimate:+.2f} decades in {name} ({_ci(i)}, {p}); "
            f"in {other} {j.estimate:+.2f} decades ({_ci(j)})")


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
    return (f"{n} seeds as replicates: 95 % bootstrap intervals ({b.n_boot} resamples, seed {b.seed}; "
            + "; ".join(f"{d} randomness: {resampled[d]}" for d in designs) + ").")
