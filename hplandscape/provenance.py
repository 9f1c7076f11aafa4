"""Where a result came from: package versions, git commit, host and device.

Every run record carries this dict, so a number in a paper can be traced back to the code and the
machine that produced it.

Examples
--------
>>> p = provenance()
>>> sorted(p)
['device', 'git_commit', 'git_dirty', 'host', 'versions']
>>> sorted(p["versions"])
['hplandscape', 'numpy', 'python', 'torch', 'torch_pruning', 'torchvision']
"""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

_PACKAGES = {"torch": "torch", "torchvision": "torchvision", "torch_pruning": "torch-pruning",
             "numpy": "numpy", "hplandscape": "hplandscape"}
_BUILD_TAGGED = ("torch", "torchvision")


def provenance(device=None) -> dict:
    """Versions, git commit, host and device name of the current process.

    Parameters
    ----------
    device : str or torch.device, optional
        The device a run uses; its name is recorded (the GPU model for CUDA, the CPU otherwise).
        Default: the first CUDA device when one is available, else the CPU.

    Returns
    -------
    dict
        ``{"versions": {torch, torchvision, torch_pruning, numpy, hplandscape, python},
        "git_commit": str or None, "git_dirty": bool or None, "host": str, "device": str}``.
        ``git_commit`` is None when the package does not run from a git checkout with commits.
    """
    commit, dirty = _git_state()
    return {"versions": dict(_versions()), "git_commit": commit, "git_dirty": dirty,
            "host": socket.gethostname(), "device": device_name(device)}


def package_version() -> str:
    """hplandscape's version: from the installed package's metadata, else ``hplandscape.__version__``
    (a checkout used without installing it). Imports no torch."""
    try:
        return metadata.version("hplandscape")
    except metadata.PackageNotFoundError:
        from hplandscape import __version__

        return __version__


@functools.lru_cache(maxsize=1)
def _versions() -> tuple:
    out = {}
    for key, dist in _PACKAGES.items():
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
        if key in _BUILD_TAGGED or out[key] is None:
            # torch's own __version__ keeps the build tag ("2.14.1+cu130"): CPU and CUDA builds differ.
            out[key] = _module_version(key) or out[key]
    out["python"] = platform.python_version()
    return tuple(out.items())


def _module_version(module: str):
    try:
        version = getattr(__import__(module), "__version__", None)
    except ImportError:
        return None
    return str(version) if version is not None else None


def git_state() -> tuple:
    """``(commit, dirty)`` of the git checkout holding this package; ``(None, None)`` outside git.

    Needs no torch, unlike :func:`provenance` (which reads torch's build tag and the device).
    """
    return _git_state()


@functools.lru_cache(maxsize=1)
def _git_state() -> tuple:
    """(commit, dirty) of the checkout holding this package; (None, None) outside git."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--verify", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return None, None
    try:
        # Only tracked files count: a results folder inside the checkout does not make it dirty.
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        dirty = None
    return commit, dirty


def device_name(device=None) -> str:
    """Human-readable name of ``device`` (e.g. ``"cuda: NVIDIA H100 80GB HBM3"`` or ``"cpu: x86_64"``)."""
    import torch

    dev = torch.device(device) if device is not None else (
        torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    cpu = _cpu_model() or platform.processor() or platform.machine()
    return f"cpu: {cpu}"


@functools.lru_cache(maxsize=1)
def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
