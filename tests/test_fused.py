"""The fused engine: records of runs trained as one fused network match the sequential engine's.

The engine tests train real runs and compare with ``train_run``; the fusion machinery itself is
tested in ``test_fusion.py``. Engine equivalence is compared in float64 (fixture
``float64_engines``): in float32 grouped and plain convolutions round differently (~1e-7 per op),
differently again on each CPU (oneDNN picks its kernels by processor and by group shape), and a
few high-lr steps amplify that by about 3,000× (3e-4 relative in the loss measured on an Intel Xeon; see
``docs/performance.md``, "What holds on every CPU"). In float64 the same amplification leaves
~1e-12, so one tolerance holds on every x86-64 CPU.
"""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hplandscape.training.fused_engine as fused_mod
from hplandscape.errors import UserError
from hplandscape.store.layout import RunFiles
from hplandscape.study.config import DataConfig
from hplandscape.training.data import InMemoryData
from hplandscape.training.fused_engine import choose_engine, train_fused
from hplandscape.training.sequential_engine import train_run

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
    import hplandscape.training.setup as setup

    entry = setup.find_entry
    monkeypatch.setattr(setup, "find_entry", lambda name: entry(name)._replace(cpu_channels_last=False))


@pytest.fixture
def float64_engines(monkeypatch):
    """Both engines train in float64: models built in the default dtype, images normalised to it.

    The engines are then compared at ``F64_REL``; float32 results of the two engines differ in
    the last bits by CPU and by the fused group's shape, so no float32 promise beyond rounding
    would hold on every machine.
    """
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    normalise = InMemoryData._normalise
    monkeypatch.setattr(InMemoryData, "_normalise",
                        lambda self, x, memory_format=torch.contiguous_format: normalise(self, x, memory_format).double())
    yield
    torch.set_default_dtype(before)


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


# float64 engines: the largest relative loss difference measured here (AMD EPYC) over the runs
# below is 4e-14 (test_train_fused_records_match_sequential_runs_including_a_diverged_one, AMD EPYC);
# float32's worst case, 3e-4 on an Intel Xeon, shrinks by the ratio of unit roundoffs (~5e8).
F64_REL = 1e-9


def _assert_same_run(fused_rec, seq_rec, rel=F64_REL, images=1):
    """The same run from both engines: identical bookkeeping, losses within ``rel`` (float64:
    ``F64_REL``), top-1 at most ``images`` test images apart (a float32 tie between two logits may
    break either way; in float64 none occurs in these runs, but the promise is one image)."""
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


def test_train_fused_records_match_sequential_runs_including_a_diverged_one(tmp_path, float64_engines):
    # Two seeds in one group (one data stream each) and one run whose loss overflows in epoch 1
    # (in float64: epoch 0 averages ~1e111, epoch 1 passes 1.8e308).
    points = [(-1.0, -4.0, 0), (-1.4, -3.0, 0), (-0.6, -4.4, 1), (55.0, 0.0, 0)]
    seq = [train_run(s) for s in _specs(tmp_path / "seq", points)]
    recs = train_fused(_specs(tmp_path / "fused", points))
    assert seq[3]["diverged"] and seq[3]["diverged_epoch"] == 1
    for f, s in zip(recs, seq):
        _assert_same_run(f, s)
    assert RECORD_KEYS <= set(recs[0])
    assert all(RunFiles(tmp_path / "fused" / f"r{i}").checkpoint.exists() for i in range(4))  # caller deletes


def _interrupt_after_first_epoch(monkeypatch, specs):
    """Train ``specs`` as one fused group and kill the job once every run checkpointed epoch 0."""
    save = fused_mod._save_run_checkpoint
    calls = []

    def save_then_die(run, recipe):
        save(run, recipe)
        calls.append(run.spec.run_id)
        if len(calls) == len(specs):
            raise KeyboardInterrupt

    monkeypatch.setattr(fused_mod, "_save_run_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_fused(specs)
    monkeypatch.setattr(fused_mod, "_save_run_checkpoint", save)
    assert all(RunFiles(s.run_dir).checkpoint.exists() for s in specs)


def _without_timing(rec):
    return {k: v for k, v in rec.items() if k not in ("wall_time_s", "engine")}


POINTS = [(-1.0, -4.0, 0), (-1.4, -3.0, 0)]


def test_interrupted_fused_group_resumed_whole_is_bit_for_bit_the_uninterrupted_group(tmp_path, monkeypatch):
    # float32, the CPU's training precision: the resumed group runs the same kernels on the same
    # shapes as the uninterrupted one, so it computes the same numbers on any CPU.
    whole = train_fused(_specs(tmp_path / "whole", POINTS, epochs=3))
    specs = _specs(tmp_path / "cut", POINTS, epochs=3)
    _interrupt_after_first_epoch(monkeypatch, specs)
    resumed = train_fused(specs)
    for got, want in zip(resumed, whole):
        assert _without_timing(got) == _without_timing(want)


def test_interrupted_fused_group_resumes_run_by_run_within_rounding(tmp_path, monkeypatch, float64_engines):
    # A group resumed with fewer runs, or by the sequential engine, runs other convolution shapes
    # (a group of one, a plain convolution), which round differently: the promise is F64_REL.
    whole = train_fused(_specs(tmp_path / "whole", POINTS, epochs=3, randomness="common"))
    specs = _specs(tmp_path / "cut", POINTS, epochs=3, randomness="common")
    _interrupt_after_first_epoch(monkeypatch, specs)
    seq_resumed = train_run(specs[1])  # the sequential engine reads the fused checkpoint format
    resumed = train_fused(specs[:1])  # the fused engine finishes the rest of the group
    for got, want in zip((resumed[0], seq_resumed), whole):
        got, want = _without_timing(got), _without_timing(want)
        assert got["history"][0] == want["history"][0]  # epoch 0 came from the checkpoint
        assert got["top1"] == pytest.approx(want["top1"], abs=ONE_IMAGE + 1e-9)
        for hg, hw in zip(got["history"], want["history"]):
            assert hg["train_loss"] == pytest.approx(hw["train_loss"], rel=F64_REL)


def test_randomness_independent_or_common_in_both_engines(tmp_path, float64_engines):
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
    from hplandscape.training.setup import choose_placement
    specs = _specs(tmp_path, [(-1.0, -4.0, 0), (-1.4, -3.0, 0)], epochs=1)
    assert choose_placement(specs[0].recipe, torch.device("cpu"), specs[0].model).memory_format == torch.channels_last
    seq = [train_run(s) for s in _specs(tmp_path / "seq", [(-1.0, -4.0, 0), (-1.4, -3.0, 0)], epochs=1)]
    for f, s in zip(train_fused(specs), seq):
        _assert_same_run(f, s, rel=1e-5)  # one epoch: rounding has not been amplified yet


def test_the_engines_agree_on_milestones_that_fall_on_steps(tmp_path, monkeypatch, float64_engines):
    # 0.2 × 2 epochs rounds to epoch 0, so the milestones fall on steps (issue 29: E): 256 images
    # in batches of 64 are 4 steps an epoch, the lr drops from step 2 and from step 6 (in epoch 1)
    from hplandscape.training.model_fusion import FusedSGD

    seq_lrs, fused_lrs = [], []
    sgd_step, fused_step = torch.optim.SGD.step, FusedSGD.step

    def record_sgd(self, *args, **kwargs):
        seq_lrs.append(self.param_groups[0]["lr"])
        return sgd_step(self, *args, **kwargs)

    def record_fused(self, *args, **kwargs):
        fused_lrs.append(self.lr.tolist())
        return fused_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", record_sgd)
    monkeypatch.setattr(FusedSGD, "step", record_fused)
    points = [(-1.0, -4.0, 0), (-1.4, -3.0, 0)]
    kw = dict(epochs=2, milestones=(0.2, 0.75), batch_size=64)
    seq = [train_run(s) for s in _specs(tmp_path / "seq", points, **kw)]
    fused = train_fused(_specs(tmp_path / "fused", points, **kw))
    for f, s in zip(fused, seq):
        _assert_same_run(f, s)
    shape = [1, 1, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01]
    want = [[10 ** lr * g for g in shape] for lr, _, _ in points]
    assert seq_lrs == pytest.approx(want[0] + want[1])
    assert [list(x) for x in zip(*fused_lrs)] == [pytest.approx(w) for w in want]
    assert [h["lr"] for h in seq[0]["history"]] == pytest.approx([0.1, 0.01])  # the lr each epoch began with


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
