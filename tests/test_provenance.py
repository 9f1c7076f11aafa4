"""Provenance: versions, git commit, host, device."""

import json
import platform
import socket
import subprocess
from pathlib import Path

import numpy
import torch
import torchvision

from hplandscape import provenance as prov


def test_versions_host_and_device():
    p = prov.provenance("cpu")
    json.dumps(p, allow_nan=False)
    v = p["versions"]
    assert v["torch"] == torch.__version__ and v["torchvision"] == torchvision.__version__
    assert v["numpy"] == numpy.__version__ and v["python"] == platform.python_version()
    assert v["torch_pruning"].startswith("1.") and v["hplandscape"]
    assert p["host"] == socket.gethostname()
    assert p["device"].startswith("cpu: ")


def test_git_commit_is_the_checkout_head_or_null():
    repo = Path(prov.__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "HEAD"], capture_output=True, text=True)
    commit = prov.provenance()["git_commit"]
    if head.returncode == 0:
        assert commit == head.stdout.strip() and len(commit) == 40
    else:
        assert commit is None


def test_outside_a_git_checkout_the_commit_is_null(monkeypatch, tmp_path):
    monkeypatch.setattr(prov, "__file__", str(tmp_path / "pkg" / "provenance.py"))
    prov._git_state.cache_clear()
    try:
        p = prov.provenance()
        assert p["git_commit"] is None and p["git_dirty"] is None
    finally:
        monkeypatch.undo()
        prov._git_state.cache_clear()
