"""The GPU suite's checks: does the code compute correctly on the device?

Four parts of ``benchmarks/gpu_suite.py`` (the command that runs them, each in its own process):
``environment`` (what the device and the software are), ``cuda_tests`` (the test suite's CUDA
tests), ``engines_agree`` (a small study trained by both engines, compared) and ``resume`` (a run
killed after its first checkpoint, resumed). Also what the suite's measurements share with them:
the configurations a run computes in (:class:`Config`) and the runs of a small study
(:func:`study_specs`).

Each part takes the suite's ``PartContext`` and returns its result: a dict with ``ok``,
``summary`` and, for tables, ``rows``. torch is imported inside the parts, so that the command's
own process never imports it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from xml.etree import ElementTree

if TYPE_CHECKING:
    from benchmarks.gpu_suite import PartContext

REPO = Path(__file__).resolve().parents[1]
NOT_ON_CPU = "not applicable on cpu"


# --------------------------------------------------------------------------------------------
# How runs compute, and the runs of a small study


class Config(NamedTuple):
    """How a run computes: ``fp32`` (IEEE float32), ``tf32`` (float32 tensors, convolutions and
    matrix products in TF32: CUDA only) or ``bf16`` (bf16 autocast); NCHW or channels_last."""

    precision: str
    channels_last: bool

    @property
    def name(self) -> str:
        return self.precision + ("+channels_last" if self.channels_last else "")


PRECISIONS = ("fp32", "tf32", "bf16")


def candidate_configs(device_type: str) -> tuple[Config, Config]:
    """The two ways a study would train: the recipe's defaults (on CUDA float32 as torch computes it
    by default, convolutions in TF32) and its fast options (``channels_last``, ``amp``: bf16)."""
    return Config("tf32" if device_type == "cuda" else "fp32", False), Config("bf16", True)


class Tolerance(NamedTuple):
    """How far two runs that differ only by rounding may be apart: the relative difference of the
    first epoch's training loss, and of top-1 in points (never less than one test image)."""

    loss_rel: float
    top1_points: float


# Grouped (fused) and plain (sequential) convolutions, and the cuDNN kernels each process picks, sum
# in different orders. In float32 that is ~1e-7 per operation and stays ≤ 1e-4 in the loss over short
# runs (tests/test_fused.py). TF32 rounds the factors of every product to 10-bit mantissas and bf16
# autocast rounds activations to 8 bits, so where a sum lands next to a rounding boundary the two
# engines round apart, and steps at a high lr amplify that: the first epoch's loss is held to 2 % and
# 5 % there. That is a guess made without a GPU: the suite records every gap so that the first GPU
# run shows the margins. A plumbing error is caught whatever the tolerance (``compare_records``).
TOLERANCE = {"fp32": Tolerance(1e-4, 0.0), "tf32": Tolerance(2e-2, 1.0), "bf16": Tolerance(5e-2, 2.0)}

# (log10 lr, log10 wd, seed) of the small study: two seeds (two data streams in one fused group)
# and a learning rate of 1e8, whose loss overflows: a diverged run is a result both engines record.
STUDY_POINTS = ((-1.5, -4.0, 0), (-2.0, -3.5, 0), (-1.0, -4.5, 1), (8.0, 0.0, 0))


def set_tf32(enabled: bool) -> None:
    """cuDNN convolutions and CUDA matrix products in TF32 (True) or in IEEE float32 (False)."""
    import torch

    mode = "tf32" if enabled else "ieee"
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch ≥ 2.9 refuses to mix the two APIs
        conv.fp32_precision = mode
        torch.backends.cuda.matmul.fp32_precision = mode
    else:
        torch.backends.cudnn.allow_tf32 = enabled
        torch.backends.cuda.matmul.allow_tf32 = enabled


def enter_config(config: Config, device) -> str | None:
    """Set this process up to compute as ``config`` says; returns why it cannot on ``device``."""
    if device.type != "cuda":
        return NOT_ON_CPU if config.precision == "tf32" else None
    set_tf32(config.precision != "fp32")
    return None


def placement_of(config: Config, device):
    """The engine's :class:`~hplandscape.training.setup.Placement` of ``config`` on ``device``."""
    import torch

    from hplandscape.training.setup import Placement
    return Placement(device, torch.channels_last if config.channels_last else torch.contiguous_format,
                     torch.bfloat16 if config.precision == "bf16" else None)


def cifar_data(ctx: PartContext, n_train: int, n_test: int):
    """A generated CIFAR-10 (real on-disk format) in the part's scratch folder, as a ``DataConfig``."""
    from hplandscape.study.config import DataConfig
    from hplandscape.training.data import write_fake_cifar10

    root = ctx.workdir / f"cifar10-{n_train}-{n_test}"
    if not root.exists():
        write_fake_cifar10(root, n_train=n_train, n_test=n_test, seed=0)
    image = ctx.sizes.study_image
    return DataConfig(name="cifar10", root=str(root), num_workers=0, image_size=None if image == 32 else image)


def study_specs(ctx: PartContext, tag: str, data, config: Config, *, model: str, epochs: int, batch: int,
                points=STUDY_POINTS, checkpoint_every_s: float = 3600.0, milestones=None) -> list:
    """The runs of a small study, one folder each under ``workdir/tag`` (``milestones``: the
    recipe's lr decays, fractions of the epochs; None: the CIFAR-10 recipe's)."""
    from hplandscape.study.config import Condition
    from hplandscape.study.grid import GridPoint
    from hplandscape.study.recipes import recipe_preset
    from hplandscape.study.run_spec import RunSpec

    recipe = dataclasses.replace(recipe_preset("cifar10"), epochs=epochs, batch_size=batch,
                                 channels_last=config.channels_last, amp=config.precision == "bf16")
    if milestones is not None:
        recipe = dataclasses.replace(recipe, milestones=tuple(milestones))
    return [RunSpec(study="gpu-suite", condition=Condition("base", "none", 1.0), point=GridPoint(lr, wd), seed=seed,
                    model=model, data=data, recipe=recipe, arch=None, run_dir=str(ctx.workdir / tag / f"run{i}"),
                    device=ctx.device_name, checkpoint_every_s=checkpoint_every_s)
            for i, (lr, wd, seed) in enumerate(points)]


SAME_FIELDS = ("run_id", "lr", "wd", "seed", "params", "flops", "diverged", "diverged_epoch", "epochs_completed",
               "precision", "memory_format")


def loss_gaps(a: dict, b: dict) -> list:
    """Relative differences between two records' training losses, epoch by epoch (None where
    either is not finite)."""
    return [None if x["train_loss"] is None or y["train_loss"] is None
            else abs(x["train_loss"] - y["train_loss"]) / max(abs(y["train_loss"]), 1e-12)
            for x, y in zip(a["history"], b["history"])]


def _largest(gaps: list) -> float:
    return max((g for g in gaps if g is not None), default=0.0)


def compare_records(got: list, want: list, tol: Tolerance, label: str, separate: bool = True) -> tuple[list, list]:
    """Rows comparing each record in ``got`` with the one of the same run in ``want``, and the
    problems found.

    Fields that must be equal (:data:`SAME_FIELDS`) are; the first epoch's loss is within
    ``tol.loss_rel`` (later epochs are reported, not held to it: training amplifies any rounding
    difference, the more the coarser the precision); top-1 within ``tol.top1_points``. With
    ``separate`` (``want`` holds distinct runs), each record must also be closer, over all epochs,
    to its own run than to any other: a plumbing error that hands a model another run's lr, wd
    or data fails this whatever the tolerance. A diverged run's losses before the overflow (at
    lr 1e8, around 1e17) are reported only.
    """
    rows, problems = [], []
    finite = [i for i, w in enumerate(want) if not w["diverged"]]
    for i, (g, w) in enumerate(zip(got, want)):
        gaps = loss_gaps(g, w)
        first, largest = (gaps[0] if gaps else None), _largest(gaps)
        top1 = abs(g["top1"] - w["top1"])
        top1_tol = max(tol.top1_points, 100.0 / w["eval_size"])
        others = [_largest(loss_gaps(g, want[j])) for j in finite if j != i] if separate and not w["diverged"] else []
        separation = min(others, default=None)
        bad = [f"{k}: {g[k]!r} != {w[k]!r}" for k in SAME_FIELDS if g[k] != w[k]]
        if first is not None and first > tol.loss_rel and not w["diverged"]:
            bad.append(f"the first epoch's loss differs by {first:.2e} > {tol.loss_rel:g}")
        if top1 > top1_tol + 1e-9:
            bad.append(f"top-1 differs by {top1:.2f} > {top1_tol:.2f} points")
        if separation is not None and separation <= largest:
            bad.append(f"as close to another run's record ({separation:.2e}) as to its own ({largest:.2e})")
        problems += [f"{label} {w['run_id']}: {b}" for b in bad]
        rows.append({"config": label, "run": w["run_id"], "precision": g["precision"],
                     "memory_format": g["memory_format"], "diverged": w["diverged"], "first_loss_gap": first,
                     "tolerance": tol.loss_rel, "largest_loss_gap": largest, "separation": separation,
                     "top1": w["top1"], "top1_gap": top1, "top1_tolerance": top1_tol, "ok": not bad})
    return rows, problems


# --------------------------------------------------------------------------------------------
# The parts


def part_environment(ctx: PartContext) -> dict:
    import torch

    from hplandscape.provenance import device_name, provenance

    device = ctx.device
    env = provenance(device)
    env.update(torch=torch.__version__, cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
               cuda_available=torch.cuda.is_available(), cpu_threads=torch.get_num_threads())
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        env["float32_convolutions"] = conv.fp32_precision  # torch's default, which the engine leaves alone
        env["float32_matmul"] = torch.backends.cuda.matmul.fp32_precision
    else:
        env["float32_convolutions"] = "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"
        env["float32_matmul"] = "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   multiprocessors=props.multi_processor_count, capability=f"{props.major}.{props.minor}",
                   bf16_supported=torch.cuda.is_bf16_supported())
    x = torch.randn(256, 256, device=device)
    value = float((x @ x.T).trace())
    if not math.isfinite(value) or value <= 0:  # a trace of x·xᵀ is a sum of squares
        raise RuntimeError(f"a matrix product on {device} gave trace {value}")
    summary = f"{device_name(device)}, torch {torch.__version__}"
    if device.type == "cuda":
        summary += f", CUDA {torch.version.cuda}, cuDNN {env['cudnn']}"
    return {"ok": True, "summary": summary, "environment": env}


def part_cuda_tests(ctx: PartContext) -> dict:
    junit = ctx.workdir / "junit.xml"
    env = dict(os.environ)
    on_gpu = ctx.device_name == "cuda"
    if on_gpu:
        env["HPLANDSCAPE_REQUIRE_GPU"] = "1"  # a CUDA test that skips on a GPU is a failure
    else:
        env.pop("HPLANDSCAPE_REQUIRE_GPU", None)  # on the CPU they are to skip
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", *ctx.sizes.test_paths, "-q", "-p", "no:cacheprovider",
           f"--junitxml={junit}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    sys.stdout.write(proc.stdout)  # the part's log
    sys.stderr.write(proc.stderr)
    rows = []
    if junit.exists():
        for case in ElementTree.parse(junit).getroot().iter("testcase"):
            outcome, message = "passed", ""
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = {"failure": "failed"}.get(child.tag, child.tag)
                    message = (child.get("message") or "")[:300]
                    break
            rows.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                         "seconds": float(case.get("time") or 0), "message": message})
    counts = {o: sum(r["outcome"] == o for r in rows) for o in ("passed", "failed", "error", "skipped")}
    expected = "passed" if on_gpu else "skipped"  # without CUDA every one of them skips
    ok = proc.returncode == 0 and bool(rows) and counts[expected] == len(rows)
    summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "no test collected"
    if not on_gpu:
        summary += " (no CUDA device: they skip)"
    return {"ok": ok, "summary": summary, "command": " ".join(cmd[1:]), "returncode": proc.returncode,
            "counts": counts, "rows": rows}


def part_engines_agree(ctx: PartContext) -> dict:
    from hplandscape.training.fused_engine import train_fused
    from hplandscape.training.sequential_engine import train_run

    s = ctx.sizes
    data = cifar_data(ctx, s.agree_train, s.agree_test)
    rows, problems, configs = [], [], []
    for config in candidate_configs(ctx.device_name):
        enter_config(config, ctx.device)
        kw = dict(model="resnet20", epochs=s.agree_epochs, batch=s.agree_batch)
        start = time.perf_counter()
        seq = [train_run(spec) for spec in study_specs(ctx, f"{config.name}/sequential", data, config, **kw)]
        fused = train_fused(study_specs(ctx, f"{config.name}/fused", data, config, **kw))
        config_rows, config_problems = compare_records(fused, seq, TOLERANCE[config.precision], config.name)
        if not seq[-1]["diverged"]:
            config_problems.append(f"{config.name}: the run at lr 1e8 did not diverge")
        rows += config_rows
        problems += config_problems
        configs.append({"config": config.name, "ok": not config_problems, "seconds": time.perf_counter() - start})
        ctx.log(f"{config.name}: {len(seq)} runs by each engine, {len(config_problems)} problems")
        ctx.save({"ok": False, "summary": "running", "configs": configs, "rows": rows, "problems": problems})
    summary = "; ".join(f"{c['config']} {'agree' if c['ok'] else 'DISAGREE'}" for c in configs)
    finite = [r for r in rows if not r["diverged"]]
    summary += (f" (loss gaps: first epoch ≤ {max(r['first_loss_gap'] for r in finite):.1e}, any epoch "
                f"≤ {max(r['largest_loss_gap'] for r in finite):.1e})")
    return {"ok": not problems, "summary": summary, "configs": configs, "rows": rows, "problems": problems}


_RESUME_CHILD = """
import logging, pickle, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s", force=True)
from hplandscape.training.sequential_engine import train_run
with open(sys.argv[1], "rb") as f:
    spec = pickle.load(f)
print("RESULT", train_run(spec), flush=True)
"""


class _Messages:
    """Log messages of the engine in this process (to see that a run resumed)."""

    def __init__(self, logger: str):
        import logging

        self.messages = []
        handler = logging.Handler(logging.INFO)
        handler.emit = lambda record: self.messages.append(record.getMessage())
        logging.getLogger(logger).addHandler(handler)
        logging.getLogger(logger).setLevel(logging.INFO)


def part_resume(ctx: PartContext) -> dict:
    import torch

    from hplandscape.store.layout import RunFiles
    from hplandscape.training.sequential_engine import train_run

    s = ctx.sizes
    # The fast options, what a GPU study would use; torch's TF32 settings are left as they are, the
    # same in this process and in the one that is killed.
    config = candidate_configs(ctx.device_name)[1]
    data = cifar_data(ctx, s.agree_train, s.agree_test)
    spec = study_specs(ctx, "killed", data, config, model="resnet20", epochs=s.resume_epochs, batch=s.agree_batch,
                       points=STUDY_POINTS[:1], checkpoint_every_s=0.0)[0]
    spec_file = ctx.workdir / "spec.pkl"
    spec_file.write_bytes(pickle.dumps(spec))
    ctx.log("the run to kill starts")
    child = subprocess.Popen([sys.executable, "-c", _RESUME_CHILD, str(spec_file)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in child.stdout:  # killed once epoch 1 is logged: epoch 0's checkpoint exists
            lines.append(line)
            if ": epoch 1 " in line:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait()
    problems = []
    if child.returncode != -signal.SIGKILL or any(line.startswith("RESULT") for line in lines):
        raise RuntimeError("the run was not killed mid-way (exit %s):\n%s" % (child.returncode, "".join(lines)[-2000:]))
    saved = torch.load(RunFiles(spec.run_dir).checkpoint, weights_only=True)["state"]
    killed_at = saved["next_epoch"]
    if not 1 <= killed_at < s.resume_epochs:
        problems.append(f"the checkpoint stands at epoch {killed_at}, not inside the run (1..{s.resume_epochs - 1})")

    ctx.log(f"killed with its checkpoint at epoch {killed_at}; resuming")
    log = _Messages("hplandscape.training.sequential_engine")
    resumed = train_run(spec)
    if not any(f"resuming at epoch {killed_at} " in m for m in log.messages):
        problems.append(f"the second call did not resume at epoch {killed_at}: {log.messages[:3]}")
    straight = train_run(dataclasses.replace(spec, run_dir=str(ctx.workdir / "straight")))
    again = train_run(dataclasses.replace(spec, run_dir=str(ctx.workdir / "again")))
    ctx.log("resumed, and two uninterrupted runs")
    if resumed["history"][:killed_at] != saved["history"][:killed_at]:
        problems.append("the resumed record's first epochs are not the checkpoint's")
    tol = TOLERANCE[config.precision]
    rows, compare_problems = compare_records([resumed, again], [straight, straight], tol, config.name, separate=False)
    rows[0]["run"], rows[1]["run"] = "resumed vs uninterrupted", "uninterrupted twice"
    problems += compare_problems

    def same(a, b):
        return {k: v for k, v in a.items() if k != "wall_time_s"} == {k: v for k, v in b.items() if k != "wall_time_s"}

    bitwise = same(resumed, straight)
    if ctx.device_name == "cpu" and not bitwise:  # the CPU computes bit for bit reproducibly
        problems.append("on the CPU the resumed record must equal the uninterrupted one exactly")
    summary = (f"killed after epoch {killed_at} of {s.resume_epochs}, resumed: "
               f"{'bit for bit' if bitwise else 'losses within %.1e' % rows[0]['largest_loss_gap']} "
               f"(two uninterrupted runs: "
               f"{'bit for bit' if same(again, straight) else '%.1e' % rows[1]['largest_loss_gap']})")
    return {"ok": not problems, "summary": summary, "config": config.name, "killed_at_epoch": killed_at,
            "bitwise": bitwise, "rows": rows, "problems": problems}


