"""Adaptive replication against the full design, on simulated thesis-shaped studies.

Each simulated study is a basemodel and four pruned conditions on a 9×9 grid of step 0.2 decades
(the landscapes of ``benchmarks/shift_power.py``), 3 seeds, every run adding N(0, σ²) noise. The
full design's 1,215 runs are drawn once; the adaptive design (``design.replicates: adaptive``)
sees the same runs, revealed round by round as the package's rule
(:func:`hplandscape.analysis.adaptive.next_round`) asks for them: the first seed everywhere and
every seed at the prior's block first, then the next seed where a point's ROI membership or its
claim to be the best is open. Both designs are then analysed exactly as ``analyze`` does (the shift
test over the four pruned conditions as one family, x = 0.5 and 1.0, B resamples, 95 %).

Per setting it reports:

- ``runs``: the share of the full design's runs the adaptive design used (goal ≤ 50 %), with the
  rounds it took;
- ``moved``: the rate of "moved" per pruned condition in each design: the false-positive rate
  where nothing moved (goal ≤ 5 %), the power at a 0.1-decade shift in lr (goal ≥ 80 %);
- ``centre in full CI``: the share of ROI-centre estimates (every condition, every x, the ellipse's
  centre in both coordinates) of the adaptive design inside the full design's 95 % bootstrap
  interval of the same study (goal ≥ 95 %), and the share of studies where every one of them was;
- ``same verdicts``: the share of pruned conditions whose verdict is the same in both designs.

    python benchmarks/adaptive_replication.py                    # null and shift, 200 studies each
    python benchmarks/adaptive_replication.py --quick            # 30 studies, 199 resamples
    python benchmarks/adaptive_replication.py --z 1.5 2 2.5      # the rule's threshold compared
    python benchmarks/adaptive_replication.py --json rows.json
    python benchmarks/adaptive_replication.py --replay studies/quickstart   # a full study's real runs
    python benchmarks/adaptive_replication.py --replay qs_full --against qs_adaptive

``--replay STUDY`` takes the runs of a study swept with the full design, replays the adaptive
design's rounds on them (each round reveals the runs the rule asks for; the runs are the same,
because a run is seeded by its seed and grid point) and compares what ``analyze`` says from the
adaptive subset with what it says from every run: the verdicts, every ellipse, the risk.
``--replay STUDY --against ADAPTIVE_STUDY`` compares the full study with an adaptive sweep of the same
config instead (``design.replicates=adaptive`` in another ``--study-dir``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shift_power import CENTRE_LR, CENTRE_WD, STEP, chosen, grid, landscape, wilson  # noqa: E402

from hplandscape.analysis.adaptive import Z, next_round  # noqa: E402
from hplandscape.analysis.bootstrap import (N_BOOT, SeedMatrix, condition_rng, ellipse_samples,  # noqa: E402
                                            percentile_interval, pool_within, replicate_means, roi_masks)
from hplandscape.analysis.optimum import crossfit_best  # noqa: E402
from hplandscape.analysis.regions import MIN_ELLIPSE_POINTS  # noqa: E402
from hplandscape.analysis.replicates import _risk_samples  # noqa: E402
from hplandscape.analysis.shift import shift_tests  # noqa: E402

XS = (0.5, 1.0)
K = 2.0
SEEDS = 3
PRUNED = 4


@dataclass(frozen=True)
class Setting:
    name: str
    shape: str = "ridge"
    shift: float = 0.0
    noise: float = 0.15

    @property
    def measure(self) -> str:
        return "false-positive rate" if self.shift == 0 else f"power at {self.shift:g} decades"


SETTINGS = (Setting("ridge-null"), Setting("ridge-shift0.1", shift=0.1),
            Setting("curved-null", "curved"), Setting("curved-shift0.1", "curved", 0.1))


def first_block(lr: np.ndarray, wd: np.ndarray) -> np.ndarray:
    """The prior's point and its axis neighbours (:func:`hplandscape.study.replication.first_round`)."""
    dl, dw = np.round((lr - CENTRE_LR) / STEP), np.round((wd - CENTRE_WD) / STEP)
    return (np.abs(dl) + np.abs(dw)) <= 1


def play_rounds(conditions: dict, n_seeds: int, xs, z: float) -> int:
    """Play an adaptive design's later rounds on runs drawn in full; returns the rounds in all.

    ``conditions`` maps each condition to ``(values, seen, log10_wd, log10_lr)``: every run's top-1
    ``(P, S)`` and which of them the design has asked for so far (the first round's; updated in
    place: each round reveals the next seed at the points the rule picks)."""
    rounds = 1
    while True:
        matrices = {n: SeedMatrix(np.where(seen, values, np.nan), wd, lr)
                    for n, (values, seen, wd, lr) in conditions.items()}
        added = 0
        for n, d in next_round(matrices, n_seeds, xs, z).items():
            seen = conditions[n][1]
            for i in d.indices:
                seen[i, seen[i].sum()] = True
                added += 1
        if not added:
            return rounds
        rounds += 1


def adaptive_mask(values: np.ndarray, coords: tuple, z: float) -> tuple:
    """``(revealed (C, P, S) bool, rounds)``: the runs the adaptive design asks for, round by round."""
    lr, wd = coords
    seen = np.zeros(values.shape, bool)
    seen[:, :, 0] = True
    seen[:, first_block(lr, wd), :] = True
    rounds = play_rounds({c: (values[c], seen[c], wd, lr) for c in range(len(values))}, values.shape[2], XS, z)
    return seen, rounds


def analyse(values: np.ndarray, lr, wd, n_boot: int, seed: int, truths) -> dict:
    """Verdicts, ROI centres (estimates and 95 % intervals) and whether the best top-1's and the
    risk's intervals cover the truth, from one design's runs."""
    names = ["base"] + [f"pruned{i}" for i in range(values.shape[0] - 1)]
    matrices = {n: SeedMatrix(values[c], wd, lr) for c, n in enumerate(names)}
    draws = {n: m.resample(n_boot, condition_rng(seed, n), pool_within(XS)) for n, m in matrices.items()}
    shifts = shift_tests(matrices, "base", draws, XS)
    centres, covered = {}, {"best": [], "risk": []}
    reps = {n: replicate_means(d) for n, d in draws.items()}
    theta_r = roi_masks(reps["base"], min(XS))
    true_theta = truths[0] >= truths[0].max() - min(XS)
    for c, (n, m) in enumerate(matrices.items()):
        for x in XS:
            est = ellipse_samples(m.means[None, :], m.coords, x, K, MIN_ELLIPSE_POINTS)
            boot = ellipse_samples(reps[n], m.coords, x, K, MIN_ELLIPSE_POINTS)
            centres[(n, x)] = [(float(est[a][0]), percentile_interval(boot[a]))
                               for a in ("centre_log10_wd", "centre_log10_lr")]
        lo, hi = percentile_interval(crossfit_best(draws[n]))
        covered["best"].append(bool(lo <= truths[c].max() <= hi))
        d_mean, _ = _risk_samples(matrices["base"], m, reps[n], theta_r)
        lo, hi = percentile_interval(np.maximum(d_mean, 0.0))
        truth = float(np.mean(truths[c].max() - truths[c][true_theta]))
        covered["risk"].append(bool(lo - 1e-9 <= truth <= hi + 1e-9))
    return {"moved": [shifts[n].verdict == "moved" for n in names[1:]], "centres": centres, "covered": covered}


def one_study(args) -> dict:
    setting, n_boot, seed, zs = args
    rng = np.random.default_rng(seed)
    lr, wd = grid()
    truths = [landscape(setting.shape, lr, wd)] + [landscape(setting.shape, lr, wd, setting.shift)] * PRUNED
    values = np.stack([f[:, None] + rng.normal(0.0, setting.noise, (len(f), SEEDS)) for f in truths])
    full = analyse(values, lr, wd, n_boot, seed, truths)
    out = {"full_moved": full["moved"], "full_covered": full["covered"], "by_z": {}}
    for z in zs:
        seen, rounds = adaptive_mask(values, (lr, wd), z)
        adaptive = analyse(np.where(seen, values, np.nan), lr, wd, n_boot, seed, truths)
        inside = []
        for key, axes in adaptive["centres"].items():
            for (est, _), (full_est, (lo, hi)) in zip(axes, full["centres"][key]):
                if lo is None or not np.isfinite(full_est):
                    continue  # the full design has no ellipse here: nothing to compare with
                inside.append(bool(np.isfinite(est) and lo - 1e-9 <= est <= hi + 1e-9))
        out["by_z"][z] = {"fraction": float(seen.mean()), "rounds": rounds, "moved": adaptive["moved"],
                          "inside": inside, "covered": adaptive["covered"]}
    return out


def coverage(results: list, quantity: str, design: str, z: float) -> float:
    """Share of conditions whose 95 % interval of ``quantity`` ("best": the best top-1; "risk":
    d_mean) covered the truth, in ``design``'s analyses."""
    return float(np.mean([v for r in results
                          for v in (r["full_covered"] if design == "full" else r["by_z"][z]["covered"])[quantity]]))


def run_setting(setting: Setting, studies: int, n_boot: int, seed: int, workers: int, zs) -> list:
    t = time.perf_counter()
    jobs = [(setting, n_boot, seed * 1_000_003 + i, tuple(zs)) for i in range(studies)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(one_study, jobs, chunksize=max(1, studies // (4 * workers))))
    else:
        results = [one_study(j) for j in jobs]
    seconds = time.perf_counter() - t
    full_moved = np.array([r["full_moved"] for r in results])
    rows = []
    for z in zs:
        a = [r["by_z"][z] for r in results]
        moved = np.array([x["moved"] for x in a])
        fraction = np.array([x["fraction"] for x in a])
        inside = [x["inside"] for x in a]
        share = float(np.mean([v for s in inside for v in s]))
        every = float(np.mean([all(s) for s in inside]))
        rate, full_rate = float(moved.mean()), float(full_moved.mean())
        rows.append({"setting": setting.name, "shape": setting.shape, "shift": setting.shift, "noise": setting.noise,
                     "z": z, "studies": studies, "n_boot": n_boot, "measure": setting.measure,
                     "runs_fraction": float(fraction.mean()), "runs_fraction_max": float(fraction.max()),
                     "rounds_mean": float(np.mean([x["rounds"] for x in a])),
                     "rounds_max": int(max(x["rounds"] for x in a)),
                     "adaptive_rate": rate, "adaptive_rate_interval": wilson(rate, moved.size),
                     "full_rate": full_rate, "full_rate_interval": wilson(full_rate, full_moved.size),
                     "family_rate_adaptive": float(moved.any(axis=1).mean()),
                     "family_rate_full": float(full_moved.any(axis=1).mean()),
                     "same_verdict": float((moved == full_moved).mean()),
                     "centre_inside_share": share, "centre_inside_every": every,
                     **{f"{q}_coverage_{design}": coverage(results, q, design, z)
                        for q in ("best", "risk") for design in ("full", "adaptive")},
                     "seconds": seconds})
    return rows


def replay_rounds(table, config, z: float = Z) -> tuple:
    """``(kept rows of the table, rounds)``: the runs an adaptive design of ``config`` would have
    asked for, found by replaying its rounds on a full study's table."""
    from hplandscape.study.grid import GridPoint
    from hplandscape.study.replication import first_round

    seeds = list(config.seeds)
    block = first_round(config)
    df = table[table["on_grid"]] if "on_grid" in table.columns else table
    keep = {}
    for name, rows in df.groupby("condition", sort=False):
        points = sorted({(float(a), float(b)) for a, b in zip(rows["log10_lr"], rows["log10_wd"])})
        index = {p: i for i, p in enumerate(points)}
        values = np.full((len(points), len(seeds)), np.nan)
        for r in rows.itertuples(index=False):
            if np.isfinite(r.top1):
                values[index[(float(r.log10_lr), float(r.log10_wd))], seeds.index(int(r.seed))] = r.top1
        seen = np.zeros(values.shape, bool)
        seen[:, 0] = True
        for p, i in index.items():
            if GridPoint(*p) in block:
                seen[i] = True
        keep[name] = (points, values, seen)
    rounds = play_rounds({n: (values, seen, [p[1] for p in points], [p[0] for p in points])
                          for n, (points, values, seen) in keep.items()}, len(seeds), config.analysis.roi, z)
    chosen = {(n, points[i][0], points[i][1], seeds[j]) for n, (points, _, seen) in keep.items()
              for i, j in zip(*np.nonzero(seen))}
    mask = [(not on) or (c, float(lr), float(wd), int(sd)) in chosen
            for c, lr, wd, sd, on in zip(table["condition"], table["log10_lr"], table["log10_wd"], table["seed"],
                                         table["on_grid"] if "on_grid" in table.columns else [True] * len(table))]
    kept = table[np.array(mask)].copy()
    kept.attrs.update(table.attrs)
    if "replicates" in kept.columns:
        kept["replicates"] = "adaptive"
    return kept, rounds


def replay(study_dir: str, n_boot: int, z: float, against: str | None = None) -> dict:
    """What ``analyze`` says from a full study's runs and from the adaptive design's subset of them:
    replayed on its runs, or ``against`` an adaptive study of the same config swept for real."""
    from hplandscape.analysis import analyze
    from hplandscape.analysis.results_io import load_results
    from hplandscape.store.study_store import StudyStore

    config = StudyStore(study_dir).config()
    table = load_results(study_dir)
    if against is None:
        kept, rounds = replay_rounds(table, config, z)
    else:
        kept = load_results(against)
        rounds = int(kept["round"].max())
        same = table.merge(kept, on=["condition", "log10_lr", "log10_wd", "seed"], suffixes=("", "_adaptive"))
        print(f"{len(same)} of the {len(kept)} adaptive runs are runs of the full study; "
              f"{int((same['top1'] == same['top1_adaptive']).sum())} of them with the same top-1")
    results = {"full": analyze(table, n_boot=n_boot), "adaptive": analyze(kept, n_boot=n_boot)}
    out = {"study": str(study_dir), "adaptive_study": against, "z": z, "runs_full": int(len(table)), "runs_adaptive": int(len(kept)),
           "rounds": rounds, "conditions": {}}
    for c_full in results["full"].conditions:
        c_ad = results["adaptive"].condition(c_full.name)
        row = {"best_full": [c_full.best.log10_lr, c_full.best.log10_wd],
               "best_adaptive": [c_ad.best.log10_lr, c_ad.best.log10_wd],
               "d_mean": [c_full.risk.d_mean, c_ad.risk.d_mean]}
        if c_full.shift is not None:
            row["verdict"] = [c_full.shift.verdict, c_ad.shift.verdict]
        for r_full in c_full.rois:
            r_ad = c_ad.roi(r_full.x)
            e_full, e_ad = r_full.ellipse, r_ad.ellipse
            entry = {"points": [r_full.n, r_ad.n]}
            if e_full is not None and e_ad is not None:
                ci = c_full.replicates.ellipse(r_full.x)
                entry.update({a: [getattr(e_full, a), getattr(e_ad, a)]
                              for a in ("centre_log10_wd", "centre_log10_lr", "length", "width")})
                entry["centre_in_full_ci"] = all(
                    getattr(ci, a).defined and getattr(ci, a).lo - 1e-9 <= getattr(e_ad, a) <= getattr(ci, a).hi + 1e-9
                    for a in ("centre_log10_wd", "centre_log10_lr"))
            else:
                entry["ellipse"] = [e_full is not None, e_ad is not None]
            row[f"roi {r_full.key}"] = entry
        out["conditions"][c_full.name] = row
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, help="simulated studies per setting (default 200; --quick: 30)")
    parser.add_argument("--n-boot", type=int, help=f"resamples per condition (default {N_BOOT}; --quick: 199)")
    parser.add_argument("--only", nargs="+", metavar="SETTING",
                        help="run only these settings: " + ", ".join(s.name for s in SETTINGS))
    parser.add_argument("--z", nargs="+", type=float, default=[Z], help=f"the rule's thresholds (default {Z})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--quick", action="store_true",
                        help="30 studies, 199 resamples (unless given), no goal checked: a smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write one row per setting and z as JSON here")
    parser.add_argument("--replay", metavar="STUDY", help="replay the adaptive design on a full study's runs")
    parser.add_argument("--against", metavar="ADAPTIVE_STUDY",
                        help="with --replay: compare with this adaptive study of the same config instead of replaying")
    args = parser.parse_args(argv)
    args.studies = args.studies or (30 if args.quick else 200)
    args.n_boot = args.n_boot or (199 if args.quick else N_BOOT)
    if args.replay:
        out = replay(args.replay, args.n_boot, args.z[0], args.against)
        print(json.dumps(out, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        return 0
    settings = [s for s in SETTINGS if s.shape == "ridge"]
    if args.only:
        settings = chosen(parser, SETTINGS, args.only)
    print(f"adaptive vs full replication: 9×9 grid step {STEP}, 1 base + {PRUNED} pruned, {SEEDS} seeds, "
          f"{args.studies} studies per setting, {args.n_boot} resamples, x = {XS}, {args.workers} processes")
    print(f"{'setting':<18}{'z':>5}{'runs':>7}{'rounds':>8}{'moved (adaptive)':>24}{'moved (full)':>24}"
          f"{'same':>7}{'centre in CI':>14}{'all':>7}{'best cov.':>12}{'risk cov.':>12}")
    rows, ok = [], True
    for s in settings:
        for row in run_setting(s, args.studies, args.n_boot, args.seed, args.workers, args.z):
            rows.append(row)
            lo, hi = row["adaptive_rate_interval"]
            flo, fhi = row["full_rate_interval"]
            goal_rate = row["adaptive_rate"] <= 0.05 if s.shift == 0 else row["adaptive_rate"] >= 0.80
            ok &= goal_rate and row["runs_fraction"] <= 0.5 and row["centre_inside_share"] >= 0.95
            print(f"{s.name:<18}{row['z']:>5.2g}{row['runs_fraction']:>7.1%}{row['rounds_mean']:>8.2f}"
                  f"{row['adaptive_rate']:>8.3f} ({lo:.3f}–{hi:.3f})  {row['full_rate']:>8.3f} ({flo:.3f}–{fhi:.3f})  "
                  f"{row['same_verdict']:>6.3f}{row['centre_inside_share']:>14.3f}{row['centre_inside_every']:>7.3f}"
                  f"{row['best_coverage_adaptive']:>6.3f}/{row['best_coverage_full']:.3f}"
                  f"{row['risk_coverage_adaptive']:>6.3f}/{row['risk_coverage_full']:.3f}",
                  flush=True)
    print("runs: share of the full design's runs; moved: per pruned condition (family-adjusted, 4 conditions); "
          "same: verdicts equal in both designs; centre in CI: adaptive ROI-centre estimates inside the full "
          "design's 95 % interval (all: every estimate of the study); best/risk cov.: share of conditions whose "
          "95 % interval of the best top-1 / of d_mean covered the truth (adaptive/full)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    raise SystemExit(main())
