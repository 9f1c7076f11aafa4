"""The GPU suite: one command that checks and measures both engines on a CUDA device.

GPU time comes a few minutes at a time, so everything the CUDA paths need (checks and
measurements) is one prepared command that fits in 8 minutes on one H100. Every part runs in its
own process under its own time limit, so a failure or a hang costs that part only, and
``gpu_suite.json`` (with ``gpu_suite.md``, the same as tables) is rewritten after every part, so a
suite killed midway keeps what it measured. The parts, in order:

``environment``
    Device, torch, CUDA and cuDNN versions, torch's float32 precision settings, git commit; one
    matrix product proves that the device computes.
``cuda_tests``
    The test suite's CUDA tests (``pytest -m gpu``), on a GPU with ``HPLANDSCAPE_REQUIRE_GPU=1`` so
    that none of them passes by skipping.
``engines_agree``
    A small study (ResNet-20 on generated CIFAR-10-shaped images, four grid points, one of which
    diverges) trained by the sequential and by the fused engine, in both candidate configurations;
    the records are compared within the precision's tolerance (``gpu_checks.TOLERANCE``).
``resume``
    A run killed with SIGKILL after its first checkpoint is resumed and compared with an
    uninterrupted run, and, for scale, with a second uninterrupted one.
``sequential``
    The sequential engine's epoch (augmentation on the device, training steps, loss bookkeeping,
    evaluation) on synthetic images of the real shapes against the plain PyTorch loop
    (``benchmarks/fused.py``: SGD with momentum, cross-entropy, one fixed batch) for ResNet-56 and
    MobileNetV2 at 32×32 and ResNet-50 at 224×224, in float32, TF32 and bf16 autocast, NCHW and
    channels_last.
``fused``
    ``benchmarks/fused.py``'s fused network against one model, ResNet-20 and ResNet-56, B = 1, 9,
    27, 81: model-images/s, time per epoch per model and peak device memory.
``grid_time``
    Both engines as a study runs them (``train_run``, ``train_fused``: data, augmentation,
    evaluation, a checkpoint after every epoch) on the ResNet-56 study's model and batch: seconds
    per epoch per run, from the difference between a 2-epoch and a 1-epoch call, and the set-up.
``extrapolation``
    The wall time of the 81-point, 180-epoch ResNet-56 CIFAR-10 grid
    (``grids/resnet56_cifar10.yaml``, one condition) with the fastest configuration that
    ``engines_agree`` found correct, against the goal of 1.5 GPU-hours.

The first four parts are in ``benchmarks/gpu_checks.py``, the last four in
``benchmarks/gpu_timings.py``; this module plans them (:data:`FULL`, :data:`SMOKE`), runs each in
its own process and writes what they return.

``--smoke`` runs the same parts at tiny sizes on the CPU in under a minute; CI runs it
(``tests/test_gpu_suite.py``), so the suite cannot rot between GPU loans. What only CUDA has (TF32,
peak device memory) is recorded there as not applicable on cpu.

Usage::

    python benchmarks/gpu_suite.py --out gpu_suite/             # on a GPU machine: at most 8 minutes
    python benchmarks/gpu_suite.py --smoke --out /tmp/smoke     # the CPU, tiny sizes: under a minute
    python benchmarks/gpu_suite.py --parts sequential,extrapolation --timeout sequential=200

Exit status 0 when every part is ok, 1 when one failed or ran out of time (``gpu_suite.json`` says
which and why, each part's output is in ``OUT/logs/``), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NamedTuple

STARTED = time.monotonic()  # this process's start: a part's time limit counts from here
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The command's own process imports no torch: it only starts parts and writes what they return.
from benchmarks.gpu_checks import PRECISIONS, Config  # noqa: E402
from benchmarks.gpu_checks import part_cuda_tests, part_engines_agree, part_environment, part_resume  # noqa: E402
from benchmarks.gpu_timings import part_extrapolation, part_fused, part_grid_time, part_sequential  # noqa: E402
from hplandscape.atomic import write_text  # noqa: E402

RESERVE_S = 5.0  # of a part's time limit, kept for writing its result
TAIL_CHARS = 4000  # of a part's stderr, kept in gpu_suite.json


# --------------------------------------------------------------------------------------------
# The plan: what each part does, at full size on a GPU and tiny in the CPU smoke run


class ModelCase(NamedTuple):
    """One architecture of the ``sequential`` part: its input, dataset, batch and steps timed."""

    name: str
    image: int
    dataset: str  # "cifar10" or "imagenet": which dataset's epoch the time is given for
    batch: int
    steps: int
    warmup: int


@dataclass(frozen=True)
class Sizes:
    """How much work each part does."""

    test_paths: tuple  # what ``pytest -m gpu`` collects
    study_image: int  # the generated CIFAR-10 images, resized to this (32: as they are)
    agree_train: int
    agree_test: int
    agree_batch: int
    agree_epochs: int
    resume_epochs: int
    seq_models: tuple  # of ModelCase
    seq_configs: tuple  # of Config, each measured for every model
    eval_batches: int  # evaluation batches timed in ``sequential``
    fused_models: tuple
    fused_image: int
    fused_batch: int
    fused_steps: dict  # B → (timed steps, warm-up steps)
    grid_batch: int | None  # None: the ResNet-56 study's own (grids/resnet56_cifar10.yaml)
    grid_steps: int  # training steps of one timed epoch; the evaluation split is a fifth of it, as CIFAR-10's
    grid_B: tuple  # fused group sizes timed in ``grid_time``
    timeouts: dict  # part → seconds


FULL = Sizes(
    test_paths=("tests",), study_image=32, agree_train=1024, agree_test=512, agree_batch=128, agree_epochs=3,
    resume_epochs=4,
    seq_models=(ModelCase("resnet56", 32, "cifar10", 128, 30, 5), ModelCase("mobilenet_v2", 32, "cifar10", 128, 30, 5),
                ModelCase("resnet50", 224, "imagenet", 128, 6, 2)),
    seq_configs=tuple(Config(p, cl) for p in PRECISIONS for cl in (False, True)),
    eval_batches=2, fused_models=("resnet20", "resnet56"), fused_image=32, fused_batch=128,
    fused_steps={1: (20, 5), 9: (10, 3), 27: (5, 2), 81: (3, 2)},
    grid_batch=None, grid_steps=10, grid_B=(81, 27, 9),
    # 480 s in all: the suite cannot take more than 8 minutes, whatever hangs. grid_time, which the
    # extrapolation rests on, gets the most.
    timeouts={"environment": 30, "cuda_tests": 60, "engines_agree": 45, "resume": 35, "sequential": 85,
              "fused": 55, "grid_time": 160, "extrapolation": 10},
)

SMOKE = Sizes(
    # two of the files holding CUDA tests: collecting the whole suite takes longer than the smoke run
    test_paths=("tests/test_train.py", "tests/test_fused.py"),
    study_image=8, agree_train=32, agree_test=16, agree_batch=16, agree_epochs=2,
    resume_epochs=6,  # the kill must land before the run ends: its epochs take milliseconds here
    seq_models=(ModelCase("resnet56", 8, "cifar10", 4, 2, 1), ModelCase("mobilenet_v2", 8, "cifar10", 4, 2, 1),
                ModelCase("resnet50", 32, "imagenet", 2, 2, 1)),
    # each precision and each layout once: the same code as all six, in a third of the time
    seq_configs=(Config("fp32", False), Config("tf32", False), Config("bf16", True)),
    eval_batches=1, fused_models=("resnet20",), fused_image=8, fused_batch=4,
    fused_steps={1: (2, 1), 2: (2, 1)},
    grid_batch=8, grid_steps=2, grid_B=(2,),
    # hang guards only: on the shared 2-core machine a part took up to 40 s while other tests ran
    timeouts={"environment": 180, "cuda_tests": 180, "engines_agree": 180, "resume": 180, "sequential": 180,
              "fused": 180, "grid_time": 180, "extrapolation": 60},
)


# --------------------------------------------------------------------------------------------
# The parts, each run in a process of its own


@dataclass
class PartContext:
    """What a part gets: its device and sizes, a scratch folder, and where its result goes."""

    name: str
    device_name: str  # "cuda" or "cpu"
    sizes: Sizes
    workdir: Path
    result_path: Path
    suite_json: Path
    timeout_s: float = math.inf  # the part is killed then
    started: float = STARTED
    took: dict = dataclasses.field(default_factory=dict)  # measurement kind → seconds it last took

    def measure(self, kind, fn: Callable[[], object]):
        """``fn()``, or None without calling it when what is left of the part's time limit is
        shorter than the last measurement of the same ``kind`` took (say, the same group size in
        another configuration): skipped, the part ends with what it has instead of being killed."""
        left = self.started + self.timeout_s - RESERVE_S - time.monotonic()
        if left < 1.2 * self.took.get(kind, 0.0):
            return None
        start = time.monotonic()
        try:
            return fn()
        finally:
            self.took[kind] = time.monotonic() - start

    @property
    def device(self):
        """The ``torch.device`` (torch is imported when a part first needs it)."""
        import torch

        return torch.device(self.device_name)

    def log(self, message: str) -> None:
        """A progress line in the part's log (``OUT/logs/PART.out``), with the seconds since its start."""
        print(f"[{time.monotonic() - self.started:6.1f} s] {message}", flush=True)

    def save(self, result: dict) -> None:
        """Write the result so far: a part killed later keeps what it measured."""
        write_text(self.result_path, json.dumps(result, indent=1, allow_nan=False, default=str))


class Part(NamedTuple):
    """A part: the function its process runs, and what it does, in a few words."""

    run: Callable[[PartContext], dict]
    what: str


PARTS = {
    "environment": Part(part_environment, "device, versions, commit"),
    "cuda_tests": Part(part_cuda_tests, "the test suite's CUDA tests (pytest -m gpu)"),
    "engines_agree": Part(part_engines_agree, "a small study, sequential against fused"),
    "resume": Part(part_resume, "a run killed after its first checkpoint and resumed"),
    "sequential": Part(part_sequential, "the sequential engine against a plain PyTorch loop"),
    "fused": Part(part_fused, "the fused network against one model: speed and memory"),
    "grid_time": Part(part_grid_time, "both engines as a study runs them: seconds per epoch per run"),
    "extrapolation": Part(part_extrapolation, "the 81-point ResNet-56 grid's wall time"),
}
assert set(FULL.timeouts) == set(SMOKE.timeouts) == set(PARTS)
assert sum(FULL.timeouts.values()) <= 8 * 60  # the GPU run's promise: at most 8 minutes


def run_part(name: str, device: str, smoke: bool, result: Path, suite_json: Path, timeout_s: float) -> int:
    """A part's own process: run it, write its result, exit 0 when it is ok."""
    with tempfile.TemporaryDirectory(prefix=f"gpu-suite-{name}-") as work:
        ctx = PartContext(name, device, SMOKE if smoke else FULL, Path(work), result, suite_json, timeout_s)
        outcome = PARTS[name].run(ctx)
        ctx.save(outcome)
    for problem in outcome.get("problems", []):
        print(problem, file=sys.stderr)
    return 0 if outcome["ok"] else 1


# --------------------------------------------------------------------------------------------
# The suite: every part in its own process, the JSON and the tables rewritten after each


def start_part(name: str, args, timeout: float, out: Path, suite_json: Path) -> dict:
    """Run one part in a process (group) of its own, killed when ``timeout`` seconds have passed."""
    result_file, logs = out / "parts" / f"{name}.json", out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result_file.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--device", args.device,
           "--result", str(result_file), "--suite-json", str(suite_json), "--part-timeout", str(timeout)] + \
        (["--smoke"] if args.smoke else [])
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    print(f"{name}: {PARTS[name].what} (at most {timeout:g} s) ...", flush=True)
    start = time.monotonic()
    timed_out = False
    with open(logs / f"{name}.out", "w") as stdout, open(logs / f"{name}.err", "w") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, cwd=REPO, env=env, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:  # a timeout, or the suite itself interrupted: the part and its children go
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    seconds = time.monotonic() - start
    result = None
    if result_file.exists():
        result = json.loads(result_file.read_text())
    if timed_out:
        status = "timeout"
    else:
        status = "ok" if proc.returncode == 0 and result is not None and result.get("ok") else "failed"
    stderr_text = (logs / f"{name}.err").read_text(errors="replace")
    entry = {"part": name, "what": PARTS[name].what, "status": status, "seconds": round(seconds, 1),
             "timeout_s": timeout, "returncode": proc.returncode, "stderr_tail": stderr_text[-TAIL_CHARS:],
             "log": f"logs/{name}.out", "result": result}
    summary = (result or {}).get("summary", "")
    print(f"{name}: {status} in {seconds:.1f} s{': ' + summary if summary else ''}", flush=True)
    return entry


def _cell(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def markdown(suite: dict) -> str:
    head = suite["suite"]
    env = {}
    for p in suite["parts"]:
        if p["part"] == "environment" and p["result"]:
            env = p["result"].get("environment", {})
    lines = [f"# GPU suite: {env.get('device', head['device'])}", "",
             f"{head['mode']} run, started {head['started']}, commit {head['git_commit']}"
             f"{' (uncommitted changes)' if head['git_dirty'] else ''}; torch {env.get('torch', '?')}, "
             f"CUDA {env.get('cuda') or '—'}, cuDNN {env.get('cudnn') or '—'}; float32 convolutions "
             f"{env.get('float32_convolutions', '?')}, matmul {env.get('float32_matmul', '?')} (torch's settings).",
             "", f"    {head['command']}", "",
             markdown_table([{"part": p["part"], "status": p["status"], "seconds": p["seconds"],
                              "limit_s": p["timeout_s"], "summary": (p["result"] or {}).get("summary", "")}
                             for p in suite["parts"]])]
    for p in suite["parts"]:
        result = p["result"] or {}
        lines += ["", f"## {p['part']}: {p['what']}", "", f"{p['status']}: {result.get('summary', '')}"]
        if result.get("epoch_of"):
            lines += ["", f"Epoch times are for {result['epoch_of']}."]
        if result.get("rows"):
            lines += ["", markdown_table(result["rows"])]
        for problem in result.get("problems", []):
            lines.append(f"- {problem}")
        if p["status"] != "ok" and p["stderr_tail"].strip():
            tail = "\n".join(p["stderr_tail"].strip().splitlines()[-20:])
            lines += ["", "```", tail, "```"]
    return "\n".join(lines) + "\n"


def write_suite(out: Path, suite: dict) -> None:
    write_text(out / "gpu_suite.json", json.dumps(suite, indent=1, allow_nan=False, default=str))
    write_text(out / "gpu_suite.md", markdown(suite))


class BadArguments(Exception):
    """A command-line argument the suite cannot run with: exit 2, the message names it."""


def parse_timeouts(values, sizes: Sizes) -> dict:
    timeouts = dict(sizes.timeouts)
    for value in values:
        name, _, seconds = value.partition("=")
        if name not in PARTS:
            raise BadArguments(f"--timeout {value}: unknown part {name!r}; the parts are {', '.join(PARTS)}")
        try:
            timeouts[name] = float(seconds)
        except ValueError:
            raise BadArguments(f"--timeout {value}: seconds must be a number, got {seconds!r}") from None
        if not (timeouts[name] > 0 and math.isfinite(timeouts[name])):
            raise BadArguments(f"--timeout {value}: seconds must be positive")
    return timeouts


def parse_parts(value: str | None) -> list:
    if value is None:
        return list(PARTS)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in PARTS]
    if unknown or not names:
        raise BadArguments(f"--parts {value!r}: unknown part {', '.join(map(repr, unknown)) or '(none given)'}; "
                           f"the parts are {', '.join(PARTS)}")
    return [n for n in PARTS if n in names]  # in the suite's order: extrapolation reads grid_time


def check_device(device: str) -> None:
    if device not in ("cuda", "cpu"):
        raise BadArguments(f"--device must be cuda or cpu, got {device!r}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BadArguments(f"--device cuda: no CUDA device here (torch {torch.__version__}, built for CUDA "
                               f"{torch.version.cuda}); run with --smoke for the CPU run")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("gpu_suite"), help="folder for gpu_suite.json, gpu_suite.md "
                   "and the parts' logs (default: gpu_suite/)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, on the CPU unless --device says otherwise")
    p.add_argument("--device", default=None, help="cuda (default) or cpu (default with --smoke)")
    p.add_argument("--parts", default=None, help=f"comma-separated subset of: {', '.join(PARTS)}")
    p.add_argument("--timeout", action="append", default=[], metavar="PART=SECONDS",
                   help="another time limit for one part (repeatable)")
    p.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)  # a part's own process
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--suite-json", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--part-timeout", type=float, default=math.inf, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device is None:
        args.device = "cpu" if args.smoke else "cuda"
    if args.part:
        return run_part(args.part, args.device, args.smoke, args.result, args.suite_json, args.part_timeout)

    sizes = SMOKE if args.smoke else FULL
    try:
        names = parse_parts(args.parts)
        timeouts = parse_timeouts(args.timeout, sizes)
        if args.out.exists() and not args.out.is_dir():
            raise BadArguments(f"--out {args.out}: is a file; give a folder")
        check_device(args.device)
    except BadArguments as e:
        print(f"gpu_suite.py: {e}", file=sys.stderr)
        return 2
    from hplandscape.provenance import git_state

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    commit, dirty = git_state()
    suite = {"suite": {"command": " ".join([Path(sys.argv[0]).name, *(sys.argv[1:] if argv is None else argv)]),
                       "mode": "smoke" if args.smoke else "full", "device": args.device,
                       "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "git_commit": commit, "git_dirty": dirty, "seconds": None},
             "parts": []}
    suite_json = out / "gpu_suite.json"
    write_suite(out, suite)
    start = time.monotonic()
    for name in names:
        suite["parts"].append(start_part(name, args, timeouts[name], out, suite_json))
        suite["suite"]["seconds"] = round(time.monotonic() - start, 1)
        write_suite(out, suite)
    failed = [p["part"] for p in suite["parts"] if p["status"] != "ok"]
    print(f"{len(names) - len(failed)} of {len(names)} parts ok in {suite['suite']['seconds']:.0f} s; "
          f"{suite_json} and {out / 'gpu_suite.md'}", flush=True)
    if failed:
        print(f"not ok: {', '.join(failed)} (see {out / 'logs'})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(1)
