"""The fused engine: records of runs trained as one fused network match the sequential engine's.

The engine tests train real runs in float32 and compare with ``train_run``; the fusion machinery
itself (float64, exact) is tested in ``test_fusion.py``.
"""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hplandscape.fused as fused_mod
from hplandscape.config import DataConfig
from hplandscape.errors import UserError
from hplandscape.fused import choose_engine, train_fused
from hplandscape.store import RunFiles
from hplandscape.train import train_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import RECORD_KEYS, make_spec  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def nchw_on_the_cpu(monkeypatch):
    """Both engines in NCHW, as the CPU trained before channels_last became its default.

    In NCHW grouped (fused) and plain (sequential) convolutions round alike, so over the short
    runs below the engines agree to 1e-4 in the loss. In channels_last they round differently
    (~1e-6 per op) and a few high-lr steps amplify that past 1e-3, which would hide the plumbing
    errors these tests look for; the layout itself is tested in float64 in ``test_fusion.py``
    and by :func:`test_the_engines_agree_in_the_cpu_default_layout`.
    """
    import hplandscape.lifecycle as lifecycle

    entry = lifecycle.get_entry
    monkeypatch.setattr(lifecycle, "get_entry", lambda name: entry(name)._replace(cpu_channels_last=False))


@pytest.fixture(autouse=True)
def restore_threads():
    # The runs set torch's thread count from their recipe (1); later tests get theirs back.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_choose_engine():
    assert choose_engine("auto", "cpu") == "sequential"
    assert choose_engine("auto", "cuda") == "fused"
    assert choose_engine("auto", "auto") == ("fused" if torch.cuda.is_available() else "sequential")
    assert choose_engine("sequential", "cuda") == "sequential"
    assert choose_engine("fused", "cpu") == "fused"
    with pytest.raises(UserError, match="engine must be one of auto, sequential, fused; got 'fast'"):
        choose_engine("fast", "cpu")


# -- the engine: RunSpecs in, records out --------------------------------------------------------

DATA = DataConfig(name="digits", train_subset=256, test_subset=128)
ONE_IMAGE = 100.0 / 128  # top-1 resolution of the 128 test images


def _specs(root, points, epochs=2, **kw):
    return [make_spec(Path(root) / f"r{i}", log10_lr=lr, log10_wd=wd, seed=seed, epochs=epochs, data=DATA, **kw)
            for i, (lr, wd, seed) in enumerate(points)]


def _assert_same_run(fused_rec, seq_rec, rel=1e-4, images=1):
    """float32 training: grouped and plain convolutions round differently (~1e-7 per op), which
    stays ≤ 1e-4 relative in the loss over these short runs; top-1 may differ by one image at most
    (``images``)."""
    assert set(fused_rec) == set(seq_rec)
    assert fused_rec["engine"] == "fused" and seq_rec["engine"] == "sequential"
    for key in ("run_id", "lr", "wd", "seed", "params", "flops", "diverged", "diverged_epoch", "epochs_completed"):
        assert fused_rec[key] == seq_rec[key], key
    assert abs(fused_rec["top1"] - seq_rec["top1"]) <= images * ONE_IMAGE + 1e-9
    assert len(fused_rec["history"]) == len(seq_rec["history"])
    for hf, hs in zip(fused_rec["history"], seq_rec["history"]):
        assert hf["lr"] == hs["lr"]
        if hs["train_loss"] is None:
            assert hf["train_loss"] is None
        else:
            assert hf["train_loss"] == pytest.approx(hs["train_loss"], rel=rel)


def test_train_fused_records_match_sequential_runs_including_a_diverged_one(tmp_path):
    # Two seeds in one group (one data stream each) and one run whose loss overflows in epoch 1.
    points = [(-1.0, -4.0, 0), (-1.4, -3.0, 0), (-0.6, -4.4, 1), (8.0, 0.0, 0)]
    seq = [train_run(s) for s in _specs(tmp_path / "seq", points)]
    recs = train_fused(_specs(tmp_path / "fused", points))
    assert seq[3]["diverged"] and seq[3]["diverged_epoch"] == 1
    for f, s in zip(recs, seq):
        _assert_same_run(f, s)
    assert RECORD_KEYS <= set(recs[0])
    assert all(RunFiles(tmp_path / "fused" / f"r{i}").checkpoint.exists() for i in range(4))  # caller deletes


def test_interrupted_fused_group_resumes_from_per_run_checkpoints(tmp_path, monkeypatch):
    points = [(-1.0, -4.0, 0), (-1.4, -3.0, 0)]
    # Common randomness: the whole group and the resumed single run compute through the same
    # (shared-batch) convolution path, so they can be compared bit for bit.
    whole = train_fused(_specs(tmp_path / "whole", points, epochs=3, randomness="common"))
    save = fused_mod._save_run_checkpoint
    calls = []

    def save_then_die(run, recipe):
        save(run, recipe)
        calls.append(run.spec.run_id)
        if len(calls) == 2:  # both runs checkpointed epoch 0: the job is killed
            raise KeyboardInterrupt

    monkeypatch.setattr(fused_mod, "_save_run_checkpoint", save_then_die)
    specs = _specs(tmp_path / "cut", points, epochs=3, randomness="common")
    with pytest.raises(KeyboardInterrupt):
        train_fused(specs)
    monkeypatch.setattr(fused_mod, "_save_run_checkpoint", save)
    assert all(RunFiles(s.run_dir).checkpoint.exists() for s in specs)
    # The sequential engine reads the fused checkpoint format too ...
    seq_resumed = train_run(specs[1])
    # ... and the fused engine finishes the rest of the group.
    resumed = train_fused(specs[:1])
    assert resumed[0]["history"] == whole[0]["history"]  # same engine, same numbers: bit for bit
    for got, want in zip((resumed[0], seq_resumed), whole):
        got = {k: v for k, v in got.items() if k not in ("wall_time_s", "engine")}
        want = {k: v for k, v in want.items() if k not in ("wall_time_s", "engine")}
        assert got["history"][0] == want["history"][0]  # epoch 0 came from the checkpoint
        assert got["top1"] == pytest.approx(want["top1"], abs=ONE_IMAGE + 1e-9)
        for hg, hw in zip(got["history"], want["history"]):
            assert hg["train_loss"] == pytest.approx(hw["train_loss"], rel=1e-4)


def test_randomness_independent_or_common_in_both_engines(tmp_path):
    points = [(-1.0, -4.0, 0), (-1.0, -3.9999, 0)]  # (almost) the same hyperparameters
    common = train_fused(_specs(tmp_path / "c", points, epochs=1), randomness="common")
    indep = train_fused(_specs(tmp_path / "f", points, epochs=1), randomness="independent")
    assert all(r["randomness"] == r["recipe"]["randomness"] == "common" for r in common)
    assert all(r["randomness"] == "independent" for r in indep)
    # common: one init and one batch order per seed, so (almost) equal hyperparameters give
    # (almost) equal losses; independent: each point its own init and stream.
    assert common[0]["history"][0]["train_loss"] == pytest.approx(common[1]["history"][0]["train_loss"], rel=1e-3)
    assert indep[0]["history"][0]["train_loss"] != pytest.approx(indep[1]["history"][0]["train_loss"], rel=1e-3)
    # The sequential engine seeds init and data the same way from the recipe.
    for randomness, fused in (("independent", indep), ("common", common)):
        seq = [train_run(s) for s in _specs(tmp_path / f"q-{randomness}", points, epochs=1, randomness=randomness)]
        for f, s in zip(fused, seq):
            _assert_same_run(f, s)
    with pytest.raises(UserError, match="randomness must be one of independent, common; got 'random'"):
        train_fused(_specs(tmp_path / "f", points, epochs=1), randomness="random")


def test_benchmark_quick_mode_runs_and_reports_both_engines(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "fused.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    import json

    rows = json.loads(out.read_text())
    assert {r["engine"] for r in rows} == {"sequential", "fused"}
    assert all(r["model_images_per_s"] > 0 for r in rows)
    assert "speed-up" in proc.stdout


def test_both_engines_finish_a_run_the_same_way(tmp_path):
    # No epoch to train: the record reports the untrained network and keeps its weights, whichever
    # engine ran it, because both end every run in lifecycle.finish_run.
    from hplandscape.models import load_weights

    seq_spec, fused_spec = (dataclasses.replace(s, keep_weights=True)
                            for s in _specs(tmp_path, [(-1.0, -4.0, 3), (-1.0, -4.0, 3)], epochs=0))
    seq, fused = train_run(seq_spec), train_fused([fused_spec])[0]
    assert set(seq) == set(fused) == RECORD_KEYS | {"data", "engine"}
    assert (seq["engine"], fused["engine"]) == ("sequential", "fused")
    same = {k: v for k, v in seq.items() if k not in ("engine", "wall_time_s")}
    assert {k: v for k, v in fused.items() if k not in ("engine", "wall_time_s")} == same
    assert seq["history"] == [] and seq["top1"] is not None and seq["epochs_completed"] == 0
    a, b = (load_weights(RunFiles(s.run_dir).weights).state_dict for s in (seq_spec, fused_spec))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_engines_agree_in_the_cpu_default_layout(tmp_path, monkeypatch):
    monkeypatch.undo()  # channels_last, the CPU default for ResNets
    from hplandscape.lifecycle import choose_placement

    specs = _specs(tmp_path, [(-1.0, -4.0, 0), (-1.4, -3.0, 0)], epochs=1)
    assert choose_placement(specs[0].recipe, torch.device("cpu"), specs[0].model).memory_format == torch.channels_last
    seq = [train_run(s) for s in _specs(tmp_path / "seq", [(-1.0, -4.0, 0), (-1.4, -3.0, 0)], epochs=1)]
    for f, s in zip(train_fused(specs), seq):
        _assert_same_run(f, s, rel=1e-5)  # one epoch: rounding has not been amplified yet


@pytest.mark.gpu
@pytest.mark.parametrize("fast", [False, True], ids=["float32", "channels_last-amp"])
def test_the_engines_agree_on_cuda(tmp_path, fast):
    """Both engines on CUDA, in torch's default float32 (cuDNN convolutions in TF32: 10-bit
    mantissas) or with the recipe's channels_last and amp (bf16: 8 bits). Grouped and plain
    kernels round differently, and a few high-lr steps amplify that, so the losses are held to 2 %
    and 5 % and top-1 to 3 images instead of the CPU's 1e-4 and one image; a plumbing error (a
    wrong lr, wd or data stream) moves a loss by far more (``benchmarks/gpu_suite.py`` records
    both margins)."""
    points = [(-1.0, -4.0, 0), (-1.4, -3.0, 0), (-0.6, -4.4, 1), (8.0, 0.0, 0)]
    recipe = {"channels_last": True, "amp": True} if fast else {}

    def specs(root):
        return [dataclasses.replace(s, device="cuda") for s in _specs(root, points, **recipe)]

    seq = [train_run(s) for s in specs(tmp_path / "seq")]
    fused = train_fused(specs(tmp_path / "fused"))
    assert seq[3]["diverged"]
    for f, s in zip(fused, seq):
        assert f["device"].startswith("cuda") and (f["precision"], f["memory_format"]) == (s["precision"], s["memory_format"])
        _assert_same_run(f, s, rel=5e-2 if fast else 2e-2, images=3)
