"""The GPU suite's measurements: how fast are the engines on the device, and what does the grid cost?

Four parts of ``benchmarks/gpu_suite.py`` (the command that runs them, each in its own process):
``sequential`` (the sequential engine's epoch against a plain PyTorch loop), ``fused`` (the fused
network against one model, with peak memory), ``grid_time`` (both engines as a study runs them)
and ``extrapolation`` (the 81-point ResNet-56 grid's wall time, from ``grid_time``). The plain
loop and the fused network are ``benchmarks/fused.py``'s.

A measurement that would not fit in what is left of its part's time limit is skipped and said
so (``PartContext.measure``); one that runs out of device memory is recorded as such. Both leave
the other measurements standing.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import shutil
import time
from typing import TYPE_CHECKING, Callable

from benchmarks.gpu_checks import (NOT_ON_CPU, Config, candidate_configs, cifar_data, enter_config, placement_of,
                                   study_specs)

if TYPE_CHECKING:
    from benchmarks.gpu_suite import ModelCase, PartContext

GRID_PRESET = "resnet56_cifar10.yaml"  # the study whose wall time the suite predicts
GOAL_HOURS, FLOOR_HOURS = 1.5, 1.1  # one condition's 81-point grid on one H100 (issue 28)
# Images per epoch: (training, evaluation).
DATASET_IMAGES = {"cifar10": (50_000, 10_000), "imagenet": (1_281_167, 50_000)}
OUT_OF_TIME = "skipped: the part's time limit"


def peak_memory(device, reset: bool = False):
    """Peak device memory in GiB since the last reset (None on the CPU, which has no such counter)."""
    import torch

    if device.type != "cuda":
        return None
    if reset:  # what the previous measurement left (an out-of-memory one included) is freed first
        gc.collect()
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError)


def measure_row(ctx, key, fn, rows: list, row: dict):
    """``ctx.measure(key, fn)``; None after appending ``row`` with why it was not measured: the
    device ran out of memory, or what is left of the part's time limit cannot hold it."""
    import torch

    try:
        value = ctx.measure(key, fn)
    except Exception as exc:
        if not is_oom(exc):
            raise
        torch.cuda.empty_cache()
        rows.append({**row, "status": "out of memory"})
        return None
    if value is None:
        rows.append({**row, "status": OUT_OF_TIME})
    return value


def not_measured(rows: list) -> str:
    """How many rows were not measured and why, for a part's summary ("" when all were)."""
    reasons = {}
    for r in rows:
        if r["status"] != "ok":
            reasons[r["status"]] = reasons.get(r["status"], 0) + 1
    return "".join(f"; {n} {why}" for why, n in reasons.items())


def difference_timing(train: Callable[[int, str, bool], object], tries: int = 3) -> tuple[float, float]:
    """(seconds of one epoch, seconds of everything else) of ``train(epochs, tag, warm_up)``, from a
    1-epoch and a 2-epoch call, after a short untimed one (``warm_up``: one training step) in which
    cuDNN, or oneDNN, prepares its kernels for these shapes. Set-up and the last checkpoint cancel
    out. A pair whose 2-epoch call was not the slower (other work on a shared machine) is timed
    again, at most ``tries`` times in all; the epoch is then ≤ 0 and the caller says so."""
    train(1, "warm-up", True)
    for attempt in range(tries):
        start = time.perf_counter()
        train(1, f"one-{attempt}", False)
        one = time.perf_counter() - start
        start = time.perf_counter()
        train(2, f"two-{attempt}", False)
        two = time.perf_counter() - start
        if two > one:
            break
    return two - one, 2 * one - two


# --------------------------------------------------------------------------------------------
# The parts


def _synthetic_data(case: ModelCase, n_train: int, n_test: int, num_classes: int, device):
    """Random uint8 images of the case's shape, held as the engine holds a small dataset."""
    import torch

    from hplandscape.training.data import DatasetInfo, InMemoryData

    g = torch.Generator().manual_seed(0)

    def split(n):
        return (torch.randint(0, 256, (n, 3, case.image, case.image), dtype=torch.uint8, generator=g),
                torch.randint(0, num_classes, (n,), generator=g))

    data = InMemoryData(DatasetInfo(case.dataset, num_classes, 3, case.image), *split(n_train), *split(n_test))
    return data.to(device)


def engine_throughput(case: ModelCase, config: Config, device, eval_batches: int) -> tuple[float, float]:
    """(training images/s, evaluation images/s) of the sequential engine's epoch: its augmentation,
    steps and bookkeeping (``sequential_engine._train_epoch``) and its evaluation (``lifecycle.evaluate``)."""
    import torch

    from hplandscape.models import build_model
    from hplandscape.study.recipes import recipe_preset
    from hplandscape.training.lifecycle import evaluate
    from hplandscape.training.sequential_engine import _train_epoch  # the engine's epoch loop itself, on in-memory data
    from hplandscape.training.setup import eval_batch_size, grad_scaler, make_optimizer

    recipe = dataclasses.replace(recipe_preset(case.dataset), batch_size=case.batch,
                                 channels_last=config.channels_last, amp=config.precision == "bf16")
    placement = placement_of(config, device)
    num_classes = 1000 if case.dataset == "imagenet" else 10
    torch.manual_seed(0)
    model = build_model(case.name, num_classes=num_classes).to(device=device, memory_format=placement.memory_format)
    optimizer = make_optimizer(model, 0.01, 1e-4, recipe)
    scaler = grad_scaler(placement)
    eval_batch = eval_batch_size(recipe, device)
    warm = _synthetic_data(case, case.batch * case.warmup, eval_batch, num_classes, device)
    timed = _synthetic_data(case, case.batch * case.steps, eval_batch * eval_batches, num_classes, device)
    generator = torch.Generator().manual_seed(0)
    _train_epoch(model, optimizer, warm, recipe, generator, placement, scaler)  # cuDNN picks its kernels here
    start = time.perf_counter()
    _, _, finite = _train_epoch(model, optimizer, timed, recipe, generator, placement, scaler)  # ends in a sync
    train_s = time.perf_counter() - start
    if not finite:
        raise RuntimeError(f"{case.name} {config.name}: the loss became NaN/inf in the timed epoch")
    evaluate(model, warm, eval_batch, placement)
    start = time.perf_counter()
    evaluate(model, timed, eval_batch, placement)
    eval_s = time.perf_counter() - start
    return timed.num_train / train_s, timed.num_test / eval_s


def part_sequential(ctx: PartContext) -> dict:
    import torch

    from benchmarks.fused import bench_sequential

    device = ctx.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as both engines (setup.prepare_process) set it
    rows = []
    for case in ctx.sizes.seq_models:
        for config in ctx.sizes.seq_configs:
            row = {"model": case.name, "image": case.image, "batch": case.batch, "config": config.name}
            why_not = enter_config(config, device)
            if why_not:
                rows.append({**row, "status": why_not})
                continue

            def both():
                engine = engine_throughput(case, config, device, ctx.sizes.eval_batches)
                plain = bench_sequential(case.name, case.batch, case.image, case.steps, case.warmup, device,
                                         placement_of(config, device).memory_format, config.precision == "bf16",
                                         num_classes=1000 if case.dataset == "imagenet" else 10)
                return engine, plain

            timed = measure_row(ctx, case.name, both, rows, row)
            if timed is None:
                continue
            (train_ips, eval_ips), plain_ips = timed
            n_train, n_eval = DATASET_IMAGES[case.dataset]
            ctx.log(f"{case.name} {config.name}: engine {train_ips:.1f}, plain {plain_ips:.1f} images/s")
            rows.append({**row, "status": "ok", "engine_images_per_s": train_ips, "plain_images_per_s": plain_ips,
                         "engine_over_plain": train_ips / plain_ips, "eval_images_per_s": eval_ips,
                         "epoch_s": n_train / train_ips + n_eval / eval_ips, "epoch_of": case.dataset})
            ctx.save({"ok": False, "summary": "running", "rows": rows})
            if device.type == "cuda":
                torch.cuda.empty_cache()
    measured = [r for r in rows if r["status"] == "ok"]
    ratios = sorted(r["engine_over_plain"] for r in measured)
    summary = (f"{len(measured)} of {len(rows)} configurations measured, engine/plain images/s "
               f"{ratios[0]:.2f}–{ratios[-1]:.2f}" if ratios else "nothing measured") + not_measured(rows)
    return {"ok": bool(measured), "summary": summary, "rows": rows}


def part_fused(ctx: PartContext) -> dict:
    import torch

    from benchmarks.fused import bench_fused, bench_sequential

    s, device = ctx.sizes, ctx.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    n_train = DATASET_IMAGES["cifar10"][0]
    rows = []
    for config in reversed(candidate_configs(device.type)):  # the fast options first: they matter most
        enter_config(config, device)
        memory_format = placement_of(config, device).memory_format
        amp = config.precision == "bf16"
        for name in s.fused_models:
            steps, warmup = s.fused_steps[1]
            peak_memory(device, reset=True)
            seq = ctx.measure((name, "one model"), lambda: bench_sequential(
                name, s.fused_batch, s.fused_image, steps, warmup, device, memory_format, amp))
            seq_peak = peak_memory(device)
            for b in s.fused_steps:
                steps, warmup = s.fused_steps[b]
                row = {"model": name, "config": config.name, "B": b, "sequential_images_per_s": seq,
                       "sequential_peak_gib": NOT_ON_CPU if seq_peak is None else seq_peak}
                if seq is None:
                    rows.append({**row, "status": OUT_OF_TIME})
                    continue
                peak_memory(device, reset=True)
                ips = measure_row(ctx, (name, b), lambda: bench_fused(
                    name, b, s.fused_batch, s.fused_image, steps, warmup, device, memory_format, amp), rows, row)
                if ips is None:
                    continue
                peak = peak_memory(device)
                ctx.log(f"{name} {config.name} B = {b}: {ips:.1f} model-images/s (one model: {seq:.1f})")
                rows.append({**row, "status": "ok", "fused_model_images_per_s": ips,
                             "epoch_s_per_model": n_train / ips, "sequential_epoch_s": n_train / seq,
                             "speedup": ips / seq, "peak_gib": NOT_ON_CPU if peak is None else peak})
                ctx.save({"ok": False, "summary": "running", "rows": rows})
    measured = [r for r in rows if r["status"] == "ok"]
    best = max(measured, key=lambda r: r["speedup"], default=None)
    summary = (f"best speed-up over one model {best['speedup']:.2f}× ({best['model']}, B = {best['B']}, "
               f"{best['config']})" if best else "nothing measured") + not_measured(rows)
    return {"ok": bool(measured), "summary": summary, "epoch_of": f"cifar10 ({n_train} training images)",
            "rows": rows}


def part_grid_time(ctx: PartContext) -> dict:
    from hplandscape.study.loading import load_study, preset_path
    from hplandscape.training.fused_engine import train_fused
    from hplandscape.training.sequential_engine import train_run

    s, device = ctx.sizes, ctx.device
    study = load_study(preset_path(GRID_PRESET))
    model, batch = study.model, s.grid_batch or study.recipe.batch_size
    n_train = batch * s.grid_steps
    data = cifar_data(ctx, n_train, n_train // 5)  # CIFAR-10's 5:1, so one scale fits both
    scale = DATASET_IMAGES["cifar10"][0] / n_train
    rows = []
    for config in reversed(candidate_configs(device.type)):
        enter_config(config, device)
        for b in (s.grid_B[0], 1, *s.grid_B[1:]):  # the largest group first: it matters most
            engine = "sequential" if b == 1 else "fused"

            def train(epochs, tag, warm_up):
                one_step = dataclasses.replace(data, train_subset=batch)  # the evaluation as timed
                # One lr throughout (no decay): the 1- and the 2-epoch call compute alike.
                specs = study_specs(ctx, f"grid/{config.name}/{b}/{tag}", one_step if warm_up else data, config,
                                    model=model, epochs=epochs, batch=batch, checkpoint_every_s=0.0, milestones=(),
                                    points=[(-2.0 - 0.01 * i, -4.0, 0) for i in range(b)])
                records = [train_run(specs[0])] if engine == "sequential" else train_fused(specs)
                if any(r["diverged"] for r in records):
                    raise RuntimeError(f"{config.name}, B = {b}: a run diverged while timed")

            row = {"model": model, "config": config.name, "engine": engine, "B": b}
            peak_memory(device, reset=True)
            try:
                timing = measure_row(ctx, b, lambda: difference_timing(train), rows, row)
            finally:  # the runs' checkpoints go: 7 MB each for a ResNet-56
                shutil.rmtree(ctx.workdir / "grid" / config.name / str(b), ignore_errors=True)
            if timing is None:
                continue
            epoch_s, setup_s = timing
            peak = peak_memory(device)
            ctx.log(f"{config.name} {engine} B = {b}: {epoch_s:.2f} s per timed epoch, set-up {setup_s:.2f} s")
            status = "ok" if epoch_s > 0 else "unreliable: the 2-epoch call was not slower than the 1-epoch one"
            rows.append({**row, "status": status, "timed_images": n_train, "group_epoch_s": epoch_s,
                         "epoch_s_per_run": epoch_s * scale / b, "setup_s_per_run": max(setup_s, 0.0) / b,
                         "peak_gib": NOT_ON_CPU if peak is None else peak})
            ctx.save({"ok": False, "summary": "running", "rows": rows})
    measured = [r for r in rows if r["status"] == "ok"]
    summary = ("; ".join(f"{r['config']} {r['engine']} B={r['B']}: {r['epoch_s_per_run']:.2f} s/epoch/run"
                         for r in measured) or "nothing measured") + not_measured(rows)
    return {"ok": bool(measured), "summary": summary, "batch": batch,
            "epoch_of": "cifar10: 50,000 training and 10,000 evaluation images", "rows": rows}


def part_extrapolation(ctx: PartContext) -> dict:
    from hplandscape.study.grid import make_grid
    from hplandscape.study.loading import load_study, preset_path

    study = load_study(preset_path(GRID_PRESET))
    runs = len(make_grid(study.grid)) * len(study.seeds)  # one condition
    epochs = study.recipe.epochs
    parts = {p["part"]: p for p in json.loads(ctx.suite_json.read_text())["parts"]}
    timed = ((parts.get("grid_time") or {}).get("result") or {}).get("rows", [])
    agree = parts.get("engines_agree") or {}
    correct = {c["config"]: c["ok"] for c in (agree.get("result") or {}).get("configs", [])}
    rows = []
    for r in timed:
        if r["status"] != "ok":
            continue
        hours = runs * (epochs * r["epoch_s_per_run"] + r["setup_s_per_run"]) / 3600
        verdict = {True: "yes", False: "no"}.get(correct.get(r["config"]), "not checked")
        rows.append({"model": r["model"], "config": r["config"], "engine": r["engine"], "B": r["B"],
                     "hours": hours, "correct": verdict})
    usable = [r for r in rows if r["correct"] == "yes"]
    best = min(usable, key=lambda r: r["hours"], default=None)
    if best is None:
        why = "no configuration was timed" if not rows else "no timed configuration was found correct by engines_agree"
        return {"ok": False, "summary": why, "rows": rows}
    met = best["hours"] <= GOAL_HOURS
    summary = (f"{runs} runs × {epochs} epochs of {study.model}: {best['hours']:.2f} h with {best['engine']} "
               f"B = {best['B']}, {best['config']} ({'meets' if met else 'misses'} the goal of ≤ {GOAL_HOURS} h; "
               f"floor ≈ {FLOOR_HOURS} h)")
    return {"ok": True, "summary": summary, "runs": runs, "epochs": epochs, "goal_hours": GOAL_HOURS,
            "floor_hours": FLOOR_HOURS, "best": best, "goal_met": met, "rows": rows}


