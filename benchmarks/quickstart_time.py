"""The quickstart sweep, timed: this checkout's engine against an earlier revision's, interleaved.

Both sides run the same study file (by default the baseline revision's own
``grids/quickstart.yaml``: at 17ae3da, the engine of issue 13's day, 75 runs = 3 conditions ×
25 points × 1 seed, 12 epochs of ResNet-20 on the digits) as a whole ``sweep`` process:

    python -m hplandscape sweep STUDY.yaml --study-dir DIR --no-report --no-progress

from process start to exit (planning, workers, the pruning step, collecting the results).
The baseline's code comes from ``git archive`` of that revision; both use this interpreter.
The machine may be shared, so the sides alternate, the order flipping between rounds, and each
round gives one ratio current / baseline. Besides the wall time each sweep reports the runs' own
``wall_time_s`` summed (the work) and the jobs it started (process starts).

Usage::

    python benchmarks/quickstart_time.py                        # 17ae3da against this checkout, 2 rounds
    python benchmarks/quickstart_time.py --amp                  # also this checkout with train.amp=true
    python benchmarks/quickstart_time.py --baseline 03933ac --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def extract(rev: str, into: Path) -> Path:
    """The files of ``rev`` under ``into`` (``git archive``, no worktree left behind)."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def sweep(code: Path, study: Path, out: Path, overrides=()) -> dict:
    """Run one sweep as a separate process; its wall time and what the study folder says."""
    env = dict(os.environ, PYTHONPATH=str(code))
    cmd = [sys.executable, "-m", "hplandscape", "sweep", str(study), *overrides, "--study-dir", str(out),
           "--no-report", "--no-progress"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed ({' '.join(cmd)}):\n{proc.stdout}\n{proc.stderr}")
    records = [json.loads(p.read_text()) for p in out.glob("runs/*/*/*/record.json")]
    return {"wall_s": wall, "runs": len(records), "run_s": sum(r["wall_time_s"] for r in records),
            "jobs": len(list((out / "logs").glob("*_submitted.pkl"))),
            "top1": {r["run_id"]: r["top1"] for r in records}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="17ae3da", help="git revision timed against this checkout")
    p.add_argument("--study", type=Path, help="study file for both sides (default: the baseline's "
                                              "grids/quickstart.yaml)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--amp", action="store_true", help="also time this checkout with train.amp=true (bf16 on the CPU)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hpl-qs-time-") as tmp:
        tmp = Path(tmp)
        base_code = extract(args.baseline, tmp / "baseline")
        study = tmp / "study.yaml"
        study.write_text((args.study or base_code / "grids" / "quickstart.yaml").read_text())
        sides = {"baseline": (base_code, ()), "current": (REPO, ())}
        if args.amp:
            sides["current-amp"] = (REPO, ("train.amp=true",))
        print(f"study {args.study or f'{args.baseline}:grids/quickstart.yaml'}; baseline {args.baseline}, "
              f"current {REPO}; {args.rounds} rounds, order flipping", flush=True)
        rows = {name: [] for name in sides}
        for r in range(args.rounds):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for name in order:
                code, overrides = sides[name]
                res = sweep(code, study, tmp / f"{name}-{r}", overrides)
                rows[name].append(res)
                print(f"round {r + 1} {name:>12}: {res['wall_s']:7.1f} s  ({res['runs']} runs, their own time "
                      f"{res['run_s']:6.1f} s, {res['jobs']} jobs; load {os.getloadavg()[0]:.2f})", flush=True)
    summary = {}
    for name in sides:
        if name == "baseline":
            continue
        ratios = [c["wall_s"] / b["wall_s"] for c, b in zip(rows[name], rows["baseline"])]
        work = [c["run_s"] / b["run_s"] for c, b in zip(rows[name], rows["baseline"])]
        summary[name] = {"ratios": ratios, "median_ratio": statistics.median(ratios), "work_ratios": work}
        print(f"{name} / baseline: wall {statistics.median(ratios):.2f} (rounds {', '.join(f'{x:.2f}' for x in ratios)}); "
              f"runs' own time {statistics.median(work):.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"baseline": args.baseline, "rounds": rows, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
