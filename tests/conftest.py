"""Shared test fixtures: a tiny study config and stand-ins for training and pruning.

The stand-ins behave like :func:`hplandscape.training.sequential_engine.train_run` and :func:`hplandscape.pruning.structured.prune`
as far as the study machinery can tell (per-epoch checkpoint, resume, ``model.pt``, records), in
milliseconds. Jobs started by submitit unpickle them by reference, so this folder is put on
``PYTHONPATH`` for child processes (fixture ``fake_env``).

Tests marked ``gpu`` skip on a machine without a CUDA device, unless ``HPLANDSCAPE_REQUIRE_GPU=1``
(set by ``benchmarks/gpu_suite.py`` on a GPU), where they fail instead: a GPU run must not pass by
skipping its CUDA tests.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from hplandscape.pruning.arch_spec import DEFAULT_MAX_LAYER_PRUNE, DEFAULT_NORMALIZER
from hplandscape.store.run_record import RunRecord
from hplandscape.study.grid import GridPoint

TESTS_DIR = Path(__file__).resolve().parent


def _cuda_problem():
    """Why the CUDA tests cannot run here; None when they can. Imports torch only when asked."""
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device here (torch.cuda.is_available() is False)"
    return None


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") is None:
        return
    problem = _cuda_problem()
    if problem is None:
        return
    if os.environ.get("HPLANDSCAPE_REQUIRE_GPU") == "1":
        pytest.fail(f"HPLANDSCAPE_REQUIRE_GPU=1 but {problem}", pytrace=False)
    pytest.skip(f"needs a CUDA device: {problem}; HPLANDSCAPE_REQUIRE_GPU=1 makes it fail instead")


def run_cli(capsys, *argv):
    """``hplandscape ARGV`` in this process: (exit code, stdout, stderr)."""
    from hplandscape.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse rejects bad syntax with SystemExit(2)
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def tiny_study_dict(**overrides) -> dict:
    """A 2×2-grid study with a basemodel and one pruned condition (8 runs)."""
    d = {
        "name": "tiny",
        "model": "resnet20",
        "data": {"name": "digits", "train_subset": 256, "test_subset": 128},
        "conditions": [{"method": "none"}, {"method": "uniform", "ratio": 0.5}],
        "grid": {"prior_lr": 0.1, "prior_wd": 1e-4, "log10_lr": [-1.5, -1.0], "log10_wd": [-4.5, -4.0]},
        "seeds": [0],
        "train": {"preset": "digits", "epochs": 3, "batch_size": 64},
        "launcher": {"executor": "local", "runs_per_job": 2, "cpus_per_task": 1, "mem_gb": 1.0,
                     "timeout_min": 10},
    }
    for k, v in overrides.items():
        d[k] = v
    return d


def tiny_config(**overrides):
    from hplandscape.study.validation import study_from_dict
    return study_from_dict(tiny_study_dict(**overrides), "<tiny>")


def _point_of(run_id: str):
    """The grid point a run id names (``<condition>/lr-1.0000_wd-4.0000/seed<k>``)."""
    return GridPoint(*(float(part[2:]) for part in run_id.split("/")[1].split("_")))


def minimal_record(run_id: str, **overrides) -> dict:
    """The smallest record the store accepts as a finished run of ``run_id`` (see
    ``run_record.record_problem``); the point's lr and wd are read from the id. ``overrides`` replace
    keys of its JSON form as they are, so a test can make it invalid on purpose."""
    condition, _, seed = run_id.split("/")
    point = _point_of(run_id)
    record = RunRecord(run_id=run_id, condition=condition, method="none" if condition == "base" else "uniform",
                       ratio=1.0 if condition == "base" else 0.5, lr=point.lr, wd=point.wd,
                       seed=int(seed.removeprefix("seed")), top1=91.5, top5=None, diverged=False).to_json()
    record.update(overrides)
    return record


def study_record(config, run_id: str, top1: float, **fields) -> dict:
    """The record of a finished run of ``config``'s study, for tests that fill a study directory
    without training: condition and grid point from the run id, 1000 params and 2000 FLOPs, three
    epochs in 0.1 s; ``fields`` replace or add fields (``diverged``, ``history``, …)."""
    name, _, seed = run_id.split("/")
    c, p = config.condition(name), _point_of(run_id)
    values = dict(run_id=run_id, study=config.name, condition=c.name, method=c.method, ratio=c.ratio,
                  model=config.model, lr=p.lr, wd=p.wd, log10_lr=p.log10_lr, log10_wd=p.log10_wd,
                  seed=int(seed.removeprefix("seed")), top1=top1, top5=None, diverged=False, params=1000,
                  flops=2000, epochs_completed=3, wall_time_s=0.1)
    return RunRecord(**{**values, **fields}).to_json()


def fake_train_run(spec) -> dict:
    """Stand-in for ``train_run``: epochs of ``HPL_FAKE_EPOCH_S`` seconds, checkpoint and resume.

    Every start is appended to ``starts.log`` and every completed training to ``trained.log`` in
    the run directory, so tests can count how often a run was trained. A run whose id contains
    ``HPL_FAKE_FAIL`` raises; one containing ``HPL_FAKE_DIVERGE`` diverges; one containing
    ``HPL_FAKE_KILL`` kills its own process (a worker dying: out of memory, a segfault).
    ``HPL_FAKE_NOISE`` adds seed noise of that standard deviation to top-1, the same for a run
    every time it is trained (drawn from its run id).

    Its record is a :class:`~hplandscape.store.run_record.RunRecord`'s JSON form, as the engines' are, with
    the fields the study machinery reads; the others are absent, as in a record of an older
    version (the results table reads them so: no ``randomness``, ``common``; no ``pipeline``,
    ``retrain``), but for an adaptive design's ``randomness``.
    """
    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "checkpoint.pt"
    state = {"next_epoch": 0, "history": []}
    if ckpt.exists():
        state = json.loads(ckpt.read_text())
    with open(run_dir / "starts.log", "a") as f:
        f.write(f"{os.getpid()} {state['next_epoch']}\n")
    kill = os.environ.get("HPL_FAKE_KILL")
    if kill and kill in spec.run_id:
        os.kill(os.getpid(), signal.SIGKILL)
    fail = os.environ.get("HPL_FAKE_FAIL")
    if fail and fail in spec.run_id:
        raise RuntimeError(f"fake failure of {spec.run_id}")
    if spec.condition.structured and not spec.arch:
        raise RuntimeError("pruned run without its architecture")
    if spec.condition.sparse and not spec.sparsity:
        raise RuntimeError("unstructured run without its masks")
    delay = float(os.environ.get("HPL_FAKE_EPOCH_S", "0"))
    while state["next_epoch"] < spec.recipe.epochs:
        time.sleep(delay)
        e = state["next_epoch"]
        state["history"].append({"epoch": e, "lr": spec.lr, "val_acc": 50.0 + e})
        state["next_epoch"] = e + 1
        tmp = ckpt.with_name(".checkpoint.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, ckpt)
    diverge = os.environ.get("HPL_FAKE_DIVERGE")
    diverged = bool(diverge) and diverge in spec.run_id
    if spec.keep_weights:
        (run_dir / "model.pt").write_text("weights")
    with open(run_dir / "trained.log", "a") as f:
        f.write(f"{os.getpid()}\n")
    # A sharp peak, by default at the prior (lr 0.1, wd 1e-4; ``HPL_FAKE_PEAK="log10_lr,log10_wd"``
    # moves it): the 1.0-ROI is that point alone.
    peak_lr, peak_wd = (float(v) for v in os.environ.get("HPL_FAKE_PEAK", "-1,-4").split(","))
    top1 = 10.0 if diverged else 90.0 - 8 * ((spec.point.log10_lr - peak_lr) ** 2
                                              + (spec.point.log10_wd - peak_wd) ** 2)
    noise = float(os.environ.get("HPL_FAKE_NOISE", "0"))  # seed noise: its standard deviation, in points
    if noise and not diverged:
        import random

        top1 += random.Random(spec.run_id).gauss(0.0, noise)
    return RunRecord(
        run_id=spec.run_id, study=spec.study, condition=spec.condition.name, method=spec.condition.method,
        ratio=spec.condition.ratio, model=spec.model, lr=spec.lr, wd=spec.wd, log10_lr=spec.point.log10_lr,
        log10_wd=spec.point.log10_wd, seed=spec.seed, top1=top1, top5=None, history=state["history"],
        epochs_completed=state["next_epoch"], wall_time_s=0.01, params=1000, flops=2000,
        arch_hash=(spec.arch or {}).get("content_hash"), diverged=diverged, diverged_epoch=0 if diverged else None,
        round=spec.round, replicates=spec.replicates,
        # an adaptive design's records are never old ones: they say their (independent) randomness
        **({"randomness": spec.recipe.randomness} if spec.replicates == "adaptive" else {}),
    ).to_json()


class DyingJob:
    """A job whose process dies as soon as it starts, before it claims any run (a broken
    environment, a worker killed at once): picklable, so the local executor can start it."""

    def __init__(self, specs=(), **kwargs):
        self.specs, self.pull_since = tuple(specs), kwargs.get("pull_since")

    def __call__(self):
        os.kill(os.getpid(), signal.SIGKILL)


class BrokenJob(DyingJob):
    """A job that raises before it claims any run (an import that fails in the worker's
    environment), after writing unrelated lines to its stdout and stderr."""

    def __call__(self):
        import sys

        print("worker: starting", flush=True)
        print("a warning that has nothing to do with it", file=sys.stderr, flush=True)
        raise RuntimeError("the worker's environment is broken")


def fake_prune(model_name, method, ratio, *, num_classes, in_channels, input_shape, source=None, seed=0,
               normalizer=DEFAULT_NORMALIZER, max_layer_prune=DEFAULT_MAX_LAYER_PRUNE):
    """Stand-in for ``pruning.prune``: a real ArchSpec (every prunable layer halved), no torch-pruning.

    Global specs record ``normalizer``/``max_layer_prune`` as the real one does, so a second
    sweep finds them matching the config."""
    import hashlib

    from hplandscape.models import original_widths
    from hplandscape.pruning.arch_spec import ArchSpec

    if source is not None and not Path(source).exists():
        raise FileNotFoundError(source)
    original = original_widths(model_name, num_classes, in_channels)
    origin = f"checkpoint:{hashlib.sha256(Path(source).read_bytes()).hexdigest()}" if source else "random-init"
    return ArchSpec(model=model_name, num_classes=num_classes, in_channels=in_channels,
                    input_shape=tuple(input_shape), method=method, target_ratio=ratio, achieved_ratio=ratio,
                    widths={k: max(1, v // 2) for k, v in original.items()}, original_widths=original,
                    params=500, flops=1000, original_params=1000, original_flops=2000, source=origin,
                    init_seed=None if source else seed,
                    **({"normalizer": normalizer, "max_layer_prune": max_layer_prune} if method == "global" else {}))


@pytest.fixture
def fake_env(monkeypatch):
    """Child processes (submitit local jobs) can import this module's stand-ins."""
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{TESTS_DIR}{os.pathsep}{path}" if path else str(TESTS_DIR))
    monkeypatch.delenv("HPL_FAKE_FAIL", raising=False)
    monkeypatch.delenv("HPL_FAKE_EPOCH_S", raising=False)
    monkeypatch.delenv("HPL_FAKE_DIVERGE", raising=False)
    monkeypatch.delenv("HPL_FAKE_PEAK", raising=False)
    return monkeypatch


#: A network of the user's, as a file outside the package: two branches joined by a concatenation,
#: then a residual block (its addition ties ``mix`` to ``block.b``), a 1×1 head and a classifier.
USER_MODEL = '''\
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bna = nn.BatchNorm2d(c)
        self.b = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bnb = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bnb(self.b(torch.relu(self.bna(self.a(x))))))


class Net(nn.Module):
    def __init__(self, num_classes=10, in_channels=3):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1)
        self.left = nn.Conv2d(16, 16, 3, padding=1)
        self.right = nn.Conv2d(16, 8, 1)
        self.mix = nn.Conv2d(24, 32, 3, padding=1, stride=2)
        self.block = Block(32)
        self.head = nn.Conv2d(32, 32, 1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.cat([torch.relu(self.left(x)), torch.relu(self.right(x))], 1)
        x = self.block(torch.relu(self.mix(x)))
        x = torch.relu(self.head(x))
        return self.fc(x.mean((2, 3)))


def build(num_classes, in_channels=3):
    return Net(num_classes, in_channels)
'''


def write_user_model(folder, module: str = "usernets") -> str:
    """Write :data:`USER_MODEL` as ``folder/<module>.py``; returns its import path ``<module>:build``."""
    from pathlib import Path

    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / f"{module}.py").write_text(USER_MODEL)
    return f"{module}:build"
