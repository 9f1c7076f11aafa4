"""Calibration of "did the optimum move?" and of the best top-1's interval, on landscapes like real ones.

Simulates many studies, each a basemodel and one or more pruned conditions on a 9×9 grid of step
0.2 decades centred on the basemodel's optimum (lr 0.1, wd 1e-4), every run adding N(0, σ²)
noise, and analyses each with the package's own code exactly as ``analyze`` runs it
(:func:`hplandscape.analysis.shift.shift_tests`: the optimum's peak fit, the studentized
Mahalanobis bootstrap test, the family-wise max-T over the pruned conditions; x = 0.5 and 1.0; 1999
resamples; 95 %). The verdict "moved" counts as a rejection.

Landscapes (log10 units; Δ from the optimum; u = (Δlr + Δwd)/√2 across the band lr·wd = const,
v = (Δlr − Δwd)/√2 along it):

- ``bowl``: 93 − 8·Δlr² − 4·Δwd² (axis-aligned; the earlier benchmark's);
- ``ridge``: 93 − 12·u² − v², a diagonal band (the thesis's ellipses are 3 decades long and 0.6
  wide: a band much flatter along than across, method §9);
- ``curved``: the ridge with its crest bent, u → u + 0.6·v²;
- ``asymmetric``: the ridge with the curvature across it halved on the high-lr side (a kink at the
  crest) in *both* conditions;
- ``off-grid``: the bowl with both optima 0.3 decades beyond the grid's high-lr edge;
- ``edge``: the ridge with both optima 0.6 decades up in lr, so the 1.0-ROI touches the edge.

Settings: the pruned condition's optimum ``shift`` decades higher in lr (0: the false-positive
rate, > 0: the power); ``shape-only``: the pruned condition is the ridge made flatter on the
high-lr side across the band (curvature 12 → 6) with its best setting unchanged, smooth
(``smooth``, a logistic step 0.1 decades wide) or kinked at the crest (``kink``): a verdict "moved"
is then wrong; ``4 null``: four pruned conditions without a shift, tested as one family (the rate
of "moved" for any of them, and per condition).

Also the coverage of the best top-1's interval (the cross-fitted best's percentile interval) of the
true best on the grid, per condition, for every setting.

    python benchmarks/shift_power.py                         # every setting, 200 studies each
    python benchmarks/shift_power.py --only ridge-power --studies 1000
    python benchmarks/shift_power.py --curve                 # power against the shift (ridge, curved)
    python benchmarks/shift_power.py --quick                 # 40 studies, 199 resamples: a smoke run
    python benchmarks/shift_power.py --json rows.json        # also write the figures as JSON
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hplandscape.analysis.bootstrap import N_BOOT, SeedMatrix, condition_rng, pool_within
from hplandscape.analysis.optimum import crossfit_best
from hplandscape.analysis.shift import shift_tests

STEP, HALF = 0.2, 4  # 9×9 grid, step 0.2
CENTRE_LR, CENTRE_WD = -1.0, -4.0
PEAK = 93.0
XS = (0.5, 1.0)


def grid() -> tuple[np.ndarray, np.ndarray]:
    """``(log10_lr, log10_wd)`` of the 81 points, lr-major."""
    offsets = STEP * (np.arange(2 * HALF + 1) - HALF)
    lr, wd = np.meshgrid(CENTRE_LR + offsets, CENTRE_WD + offsets, indexing="ij")
    return np.round(lr.ravel(), 4), np.round(wd.ravel(), 4)


def landscape(shape: str, lr: np.ndarray, wd: np.ndarray, shift: float = 0.0, flatter: str = "") -> np.ndarray:
    """Noise-free top-1 of ``shape`` with its optimum ``shift`` decades up in lr; ``flatter``
    ("smooth", "kink") halves the curvature across the band on its high-lr side."""
    opt_lr = {"off-grid": 4 * STEP + 0.3, "edge": 0.6}.get(shape, 0.0) + shift
    dl, dw = lr - CENTRE_LR - opt_lr, wd - CENTRE_WD
    if shape in ("bowl", "off-grid"):
        return PEAK - 8.0 * dl ** 2 - 4.0 * dw ** 2
    u, v = math.sqrt(0.5) * (dl + dw), math.sqrt(0.5) * (dl - dw)
    if shape == "curved":
        u = u + 0.6 * v ** 2
    across = np.full_like(u, 12.0)
    if shape == "asymmetric" or flatter == "kink":
        across = np.where(u > 0, 6.0, 12.0)
    elif flatter == "smooth":
        across = 12.0 * (1.0 - 0.5 / (1.0 + np.exp(-u / 0.1)))
    return PEAK - across * u ** 2 - v ** 2


@dataclass(frozen=True)
class Setting:
    name: str
    shape: str
    shift: float = 0.0
    seeds: int = 3
    noise: float = 0.15
    pruned: int = 1
    flatter: str = ""
    goal: str = ""  # "fpr", "power", "shape", "family" or "" (reported only)

    @property
    def measure(self) -> str:
        return {"fpr": "false-positive rate", "power": "power", "shape": "'moved' for a shape-only change",
                "family": "any of 4 null conditions 'moved'"}.get(self.goal, "rate of 'moved'")


SETTINGS = (
    Setting("bowl-fpr", "bowl", goal="fpr"),
    Setting("bowl-power", "bowl", 0.1, goal="power"),
    Setting("ridge-fpr", "ridge", goal="fpr"),
    Setting("ridge-power", "ridge", 0.1, goal="power"),
    Setting("curved-fpr", "curved", goal="fpr"),
    Setting("curved-power", "curved", 0.1, goal="power"),
    Setting("asymmetric-fpr", "asymmetric", goal="fpr"),
    Setting("asymmetric-power", "asymmetric", 0.1, goal="power"),
    Setting("off-grid-fpr", "off-grid", goal="fpr"),
    Setting("edge-fpr", "edge", goal="fpr"),
    Setting("edge-power", "edge", 0.1),
    Setting("ridge-2seeds-fpr", "ridge", seeds=2),
    Setting("ridge-2seeds-power", "ridge", 0.1, seeds=2),
    Setting("ridge-noise0.3-fpr", "ridge", noise=0.3),
    Setting("ridge-noise0.3-power", "ridge", 0.1, noise=0.3),
    Setting("ridge-2seeds-noise0.3-power", "ridge", 0.1, seeds=2, noise=0.3),
    Setting("shape-only-smooth", "ridge", flatter="smooth", goal="shape"),
    Setting("shape-only-kink", "ridge", flatter="kink"),
    Setting("4-null", "ridge", pruned=4, goal="family"),
)
GOALS = {"fpr": (lambda r: r <= 0.05, "≤ 0.05"), "power": (lambda r: r >= 0.80, "≥ 0.80"),
         "shape": (lambda r: r <= 0.10, "≤ 0.10"), "family": (lambda r: r <= 0.05, "≤ 0.05")}


def one_study(args) -> tuple:
    """``(moved per pruned condition, best top-1 covered per condition)`` of one simulated study."""
    setting, n_boot, seed = args
    rng = np.random.default_rng(seed)
    lr, wd = grid()
    truths = {"base": landscape(setting.shape, lr, wd)}
    for i in range(setting.pruned):
        truths[f"pruned{i}"] = landscape(setting.shape, lr, wd, setting.shift, setting.flatter)
    matrices = {n: SeedMatrix(f[:, None] + rng.normal(0.0, setting.noise, (len(f), setting.seeds)), wd, lr)
                for n, f in truths.items()}
    draws = {n: m.resample(n_boot, condition_rng(seed, n), pool_within(XS)) for n, m in matrices.items()}
    shifts = shift_tests(matrices, "base", draws, XS)
    moved = [shifts[n].verdict == "moved" for n in truths if n != "base"]
    covered = []
    for n, m in matrices.items():
        lo, hi = np.quantile(crossfit_best(draws[n]), [0.025, 0.975])
        covered.append(bool(lo <= truths[n].max() <= hi))
    return moved, covered


def run_setting(setting: Setting, studies: int, n_boot: int, seed: int, workers: int) -> dict:
    t = time.perf_counter()
    jobs = [(setting, n_boot, seed * 1_000_003 + i) for i in range(studies)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(one_study, jobs, chunksize=max(1, studies // (4 * workers))))
    else:
        results = [one_study(j) for j in jobs]
    moved = np.array([r[0] for r in results])
    covered = np.array([r[1] for r in results])
    rate = float(moved.any(axis=1).mean()) if setting.goal == "family" else float(moved[:, 0].mean())
    check, goal = GOALS.get(setting.goal, (None, ""))
    return {"setting": setting.name, "shape": setting.shape, "shift": setting.shift, "seeds": setting.seeds,
            "noise": setting.noise, "pruned": setting.pruned, "flatter": setting.flatter,
            "measure": setting.measure, "rate": rate, "rate_interval": wilson(rate, studies),
            "per_condition_rate": float(moved.mean()), "goal": goal,
            "goal_met": None if check is None else bool(check(rate)),
            "best_top1_coverage": float(covered.mean()), "studies": studies, "n_boot": n_boot,
            "seconds": time.perf_counter() - t}


def wilson(rate: float, n: int) -> list:
    """Wilson 95 % interval of a binomial proportion."""
    z = 1.959964
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def chosen(parser, settings, names) -> list:
    """The settings ``names`` (``--only``) picks, in that order; an unknown name ends the run naming
    the known ones."""
    known = {s.name: s for s in settings}
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=200, help="simulated studies per setting (default 200)")
    parser.add_argument("--n-boot", type=int, default=N_BOOT, help=f"resamples per condition (default {N_BOOT})")
    parser.add_argument("--only", nargs="+", metavar="SETTING", help="run only these settings: "
                        + ", ".join(s.name for s in SETTINGS))
    parser.add_argument("--curve", action="store_true",
                        help="power against the lr shift (0.05–0.2 decades) on the ridge and the curved ridge")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="40 studies, 199 resamples, three settings")
    parser.add_argument("--json", metavar="PATH", help="also write one row per setting as JSON here")
    args = parser.parse_args(argv)
    settings = list(SETTINGS)
    if args.curve:
        settings = [Setting(f"{shape}-{seeds}seeds-noise{noise}-shift{shift:g}", shape, shift, seeds, noise)
                    for shape in ("ridge", "curved") for seeds, noise in ((3, 0.15), (2, 0.15), (3, 0.3))
                    for shift in (0.05, 0.1, 0.15, 0.2)]
    if args.quick:
        args.studies, args.n_boot = 40, 199
        settings = [s for s in SETTINGS if s.name in ("ridge-fpr", "ridge-power", "4-null")]
    if args.only:
        settings = chosen(parser, settings, args.only)
    print(f"shift test: 9×9 grid step {STEP}, {args.studies} studies per setting, {args.n_boot} resamples, "
          f"x = {XS}, 95 %, {args.workers} processes")
    print(f"{'setting':<30}{'seeds':>6}{'σ':>6}{'rate':>7}  {'95 % interval':<13}  {'goal':<12}"
          f"{'best-top1 cov.':>15}{'s':>7}")
    rows, ok = [], True
    total = time.perf_counter()
    for s in settings:
        row = run_setting(s, args.studies, args.n_boot, args.seed, args.workers)
        rows.append(row)
        if row["goal_met"] is False:
            ok = False
        goal = "" if not row["goal"] else row["goal"] + (" met" if row["goal_met"] else " MISSED")
        lo, hi = row["rate_interval"]
        print(f"{s.name:<30}{s.seeds:>6}{s.noise:>6.2f}{row['rate']:>7.3f}  {lo:.3f}–{hi:.3f}  {goal:<12}"
              f"{row['best_top1_coverage']:>15.3f}{row['seconds']:>7.1f}", flush=True)
    print(f"total {time.perf_counter() - total:.1f} s; rate: 'moved' for the first pruned condition ('4-null': for "
          f"any of the four); best-top1 cov.: share of conditions whose 95 % interval covered the true best")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if ok or args.quick or args.curve else 1


if __name__ == "__main__":
    raise SystemExit(main())
