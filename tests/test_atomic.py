"""Atomic writes: a failure mid-write leaves the previous file whole and no temp file behind."""

import json

import pytest

from hplandscape.atomic import atomic_open, write_json, write_text


def test_failed_write_keeps_previous_content_and_leaves_no_temp(tmp_path):
    path = write_text(tmp_path / "sub" / "record.json", "old")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as f:
            f.write("half a rec")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]


def test_json_handles_numpy_scalars_and_paths(tmp_path):
    import numpy as np

    path = write_json(tmp_path / "r.json", {"top1": np.float64(91.5), "dir": tmp_path})
    assert json.loads(path.read_text()) == {"dir": str(tmp_path), "top1": 91.5}
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_rejects_unknown_mode(tmp_path):
    with pytest.raises(ValueError, match="mode must be"):
        with atomic_open(tmp_path / "x", "a"):
            pass
