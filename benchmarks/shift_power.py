"""False-positive rate and power of the shift test (`analyze`'s "did the optimum move?").

Simulates many studies of a basemodel and one pruned condition on the landscape

    f = 93 − 8·Δlr² − 4·Δwd²   (log10 units, Δ from the optimum)

on a 9×9 grid of step 0.2 centred on the basemodel's optimum (lr 0.1, wd 1e-4), each run adding
N(0, 0.15²) noise, with 3 seeds. The pruned condition's optimum sits ``shift`` decades higher in lr.
Each study is analysed with the package's own test (:func:`hplandscape.analysis.shift.shift_test`,
the defaults ``analyze`` uses: x = 0.5, 1999 resamples, 95 %); the verdict "moved" counts as a
rejection. At shift 0 the rejection rate is the false-positive rate (goal ≤ 5 %), at 0.1 decades
— half a grid step — the power (goal ≥ 80 %).

Designs (``train.randomness``):

- ``independent``: every run's noise is independent;
- ``common``: half of each run's noise variance is a per-seed random field shared by all grid
  points of that seed (squared-exponential correlation, length 0.4 decades): common random numbers.

    python benchmarks/shift_power.py [--studies 200] [--seeds 3] [--design independent common]
    python benchmarks/shift_power.py --quick      # 40 studies, 199 resamples: a smoke run
    python benchmarks/shift_power.py --json rows.json   # also write the figures as JSON
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from hplandscape.analysis.bootstrap import N_BOOT, SeedMatrix
from hplandscape.analysis.shift import shift_test

STEP, HALF = 0.2, 4  # 9×9 grid, step 0.2
CENTRE_LR, CENTRE_WD = -1.0, -4.0
PEAK, A_LR, A_WD, NOISE = 93.0, 8.0, 4.0, 0.15
COMMON_SHARE, COMMON_LENGTH = 0.5, 0.4  # common design: variance share and correlation length (decades)


def grid() -> tuple[np.ndarray, np.ndarray]:
    """``(log10_lr, log10_wd)`` of the 81 points, lr-major."""
    offsets = STEP * (np.arange(2 * HALF + 1) - HALF)
    lr, wd = np.meshgrid(CENTRE_LR + offsets, CENTRE_WD + offsets, indexing="ij")
    return np.round(lr.ravel(), 4), np.round(wd.ravel(), 4)


def landscape(lr: np.ndarray, wd: np.ndarray, shift: float) -> np.ndarray:
    return PEAK - A_LR * (lr - CENTRE_LR - shift) ** 2 - A_WD * (wd - CENTRE_WD) ** 2


class Noise:
    """Per-run noise of one design: ``draw(rng, seeds) -> (P, seeds)``."""

    def __init__(self, design: str, lr: np.ndarray, wd: np.ndarray):
        self.design = design
        if design == "common":
            d2 = (lr[:, None] - lr[None, :]) ** 2 + (wd[:, None] - wd[None, :]) ** 2
            cov = np.exp(-d2 / (2 * COMMON_LENGTH ** 2)) + 1e-9 * np.eye(len(lr))
            self.chol = np.linalg.cholesky(cov)

    def draw(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        if self.design == "independent":
            return rng.normal(0.0, NOISE, shape)
        field = self.chol @ rng.normal(0.0, 1.0, shape)  # one smooth field per seed
        own = rng.normal(0.0, 1.0, shape)
        return NOISE * (math.sqrt(COMMON_SHARE) * field + math.sqrt(1 - COMMON_SHARE) * own)


def rejection_rate(design: str, shift: float, studies: int, seeds: int, n_boot: int, seed: int) -> tuple:
    """Fraction of ``studies`` simulated studies whose verdict is "moved", and the p-values."""
    lr, wd = grid()
    noise = Noise(design, lr, wd)
    rng = np.random.default_rng([seed, seeds, int(round(shift * 1000)), design == "common"])
    base_f, cond_f = landscape(lr, wd, 0.0), landscape(lr, wd, shift)
    moved, pvalues = 0, []
    for i in range(studies):
        base = SeedMatrix(base_f[:, None] + noise.draw(rng, (len(lr), seeds)), wd, lr, design)
        cond = SeedMatrix(cond_f[:, None] + noise.draw(rng, (len(lr), seeds)), wd, lr, design)
        info = shift_test(base, cond, x=0.5, n_boot=n_boot, seed=seed + i)
        moved += info.verdict == "moved"
        pvalues.append(info.p_value)
    return moved / studies, np.array(pvalues)


def _interval(rate: float, n: int) -> str:
    """Wilson 95 % interval of a binomial proportion, as text."""
    z = 1.959964
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{max(0.0, centre - half):.3f}–{min(1.0, centre + half):.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=200, help="simulated studies per setting (default 200)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per grid point (default 3)")
    parser.add_argument("--shift", type=float, default=0.1, help="lr shift for the power, decades (default 0.1)")
    parser.add_argument("--n-boot", type=int, default=N_BOOT, help=f"resamples per condition (default {N_BOOT})")
    parser.add_argument("--design", nargs="+", choices=["independent", "common"], default=["independent", "common"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    parser.add_argument("--quick", action="store_true", help="40 studies, 199 resamples, independent only")
    parser.add_argument("--json", metavar="PATH", help="also write one row per setting as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.studies, args.n_boot, args.design = 40, 199, ["independent"]
    print(f"shift test: 9×9 grid step {STEP}, noise N(0, {NOISE}²) per run, {args.seeds} seeds, "
          f"{args.studies} studies per setting, {args.n_boot} resamples, x = 0.5, 95 %")
    print(f"{'design':<12}{'shift (lr)':>11}{'rejected':>10}  {'95 % interval':<13}  {'goal':<8}{'seconds':>8}")
    ok, rows = True, []
    total = time.perf_counter()
    for design in args.design:
        for shift, goal in ((0.0, "≤ 0.05"), (args.shift, "≥ 0.80")):
            t = time.perf_counter()
            rate, _ = rejection_rate(design, shift, args.studies, args.seeds, args.n_boot, args.seed)
            met = rate <= 0.05 if shift == 0.0 else rate >= 0.80
            if design == "independent":
                ok &= met
            seconds = time.perf_counter() - t
            rows.append({"design": design, "shift": shift, "measure": "false-positive rate" if shift == 0 else "power",
                         "rate": rate, "studies": args.studies, "seeds": args.seeds, "n_boot": args.n_boot,
                         "goal_met": bool(met), "seconds": seconds})
            print(f"{design:<12}{shift:>11.2f}{rate:>10.3f}  {_interval(rate, args.studies):<13}  "
                  f"{goal + (' met' if met else ' MISSED'):<8}{seconds:>8.1f}")
    print(f"total {time.perf_counter() - total:.1f} s "
          "(false-positive rate at shift 0, power at the shift; the goals apply to the independent design)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    raise SystemExit(main())
