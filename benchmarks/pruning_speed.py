"""Time global L1 pruning of ResNet-50 to 40 % of its FLOPs, against a naive step loop.

The naive baseline is what a straightforward torch-pruning script does: ``BasePruner`` with
global ranking, 100 iterative steps, recounting FLOPs with ``tp.utils.count_ops_and_params``
after each step until the budget is met.

    python benchmarks/pruning_speed.py [--model resnet50] [--ratio 0.4] [--repeats 3] [--naive]
"""

from __future__ import annotations

import argparse
import time

import torch


def ours(model: str, ratio: float, method: str) -> tuple[float, float]:
    from hplandscape.pruning.structured import prune

    t = time.perf_counter()
    spec = prune(model, method, ratio)
    return time.perf_counter() - t, spec.achieved_ratio


def naive(model_name: str, ratio: float, steps: int = 100) -> tuple[float, float, int]:
    import torch_pruning as tp

    from hplandscape.models import build_model, count_flops, get_entry, prunable_groups

    shape = get_entry(model_name).input_shape
    t = time.perf_counter()
    model = build_model(model_name).eval()
    example = torch.zeros(1, *shape)
    keys = {g.key for g in prunable_groups(model)}
    ignored = [m for n, m in model.named_modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and n not in keys]
    base, _ = tp.utils.count_ops_and_params(model, example)
    pruner = tp.pruner.BasePruner(model, example, importance=tp.importance.MagnitudeImportance(
        p=1, group_reduction="first", normalizer=None), global_pruning=True, pruning_ratio=0.95,
        iterative_steps=steps, ignored_layers=ignored)
    done = 0
    for done in range(1, steps + 1):
        pruner.step()
        macs, _ = tp.utils.count_ops_and_params(model, example)  # full recount every step
        if macs <= ratio * base:
            break
    return time.perf_counter() - t, macs / base, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--ratio", type=float, default=0.4)
    ap.add_argument("--method", default="global", choices=["global", "uniform"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--naive", action="store_true", help="also time the naive 100-step loop")
    args = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    ours(args.model, args.ratio, args.method)  # warm-up: imports, first-call kernels
    for _ in range(args.repeats):
        seconds, achieved = ours(args.model, args.ratio, args.method)
        print(f"hplandscape.prune  {args.model} {args.method} {args.ratio}: {seconds:6.2f} s, achieved {achieved:.4f}")
    if args.naive:
        seconds, achieved, steps = naive(args.model, args.ratio)
        print(f"naive tp loop      {args.model} global {args.ratio}: {seconds:6.2f} s, "
              f"achieved {achieved:.4f} after {steps} steps")


if __name__ == "__main__":
    main()
