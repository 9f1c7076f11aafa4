"""One run: schedule, determinism, kill-and-resume, divergence, accuracy, errors."""

import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hplandscape.errors import UserError
from hplandscape.models import load_weights, model_info
from hplandscape.store.layout import RunFiles
from hplandscape.study.config import Condition, DataConfig
from hplandscape.study.grid import GridPoint
from hplandscape.study.recipes import recipe_preset
from hplandscape.study.run_spec import RunSpec
from hplandscape.training.checkpoints import save_checkpoint
from hplandscape.training.data import write_fake_cifar10
from hplandscape.training.lifecycle import RunProgress
from hplandscape.training.sequential_engine import train_run
from hplandscape.training.setup import make_optimizer

REPO = Path(__file__).resolve().parents[1]
RECORD_KEYS = {"run_id", "study", "condition", "method", "ratio", "model", "lr", "wd", "log10_lr", "log10_wd",
               "seed", "recipe", "top1", "top5", "history", "epochs_completed", "wall_time_s", "params",
               "flops", "arch_hash", "diverged", "diverged_epoch", "device", "parametrisation", "provenance", "randomness",
               "precision", "memory_format", "pipeline", "density", "dense_params", "dense_flops", "egf", "eval_size",
               "round", "replicates"}


def make_spec(run_dir, *, log10_lr=-1.0, log10_wd=-4.0, seed=0, epochs=3, data=None, arch=None,
              condition=None, checkpoint_every_s=0.0, **recipe_kw):
    """A digits run; it checkpoints after every epoch (``checkpoint_every_s`` 0), as the
    interruption tests need."""
    recipe = dataclasses.replace(recipe_preset("digits"), epochs=epochs, threads=1, **recipe_kw)
    return RunSpec(study="t", condition=condition or Condition("base", "none", 1.0),
                   point=GridPoint(log10_lr, log10_wd), seed=seed, model="resnet20",
                   data=data or DataConfig(name="digits", train_subset=512), recipe=recipe, arch=arch,
                   run_dir=str(run_dir), device="cpu", checkpoint_every_s=checkpoint_every_s)


def without_timings(record):
    return {k: v for k, v in record.items() if k != "wall_time_s"}


def test_record_has_contract_keys_and_is_strict_json(tmp_path):
    spec = make_spec(tmp_path / "r", epochs=2)
    rec = train_run(spec)
    assert RECORD_KEYS <= set(rec)
    json.dumps(rec, allow_nan=False)
    assert rec["run_id"] == "base/lr-1.0000_wd-4.0000/seed0"
    assert (rec["lr"], rec["wd"], rec["method"], rec["arch_hash"]) == (0.1, 1e-4, "none", None)
    info = model_info("resnet20", (1, 8, 8))  # resnet20 with a 1-channel stem, at 8×8
    assert (rec["params"], rec["flops"]) == (info.params, info.flops)
    # an unmasked network costs its dense counts; its density is measured all the same
    assert (rec["pipeline"], rec["egf"], rec["dense_flops"]) == ("retrain", None, info.flops) and rec["density"] > 0.99
    assert rec["top5"] is not None and rec["top5"] >= rec["top1"]
    assert rec["device"].startswith("cpu") and rec["provenance"]["versions"]["torch"] == torch.__version__
    assert "coupled L2" in rec["parametrisation"] and "BatchNorm and biases included" in rec["parametrisation"]
    assert rec["epochs_completed"] == 2 and not rec["diverged"]
    assert (rec["precision"], rec["memory_format"]) == ("float32", "channels_last")  # resnet20's CPU layout
    # The final checkpoint stays until the caller has stored the record; calling again after a
    # crash in between rebuilds the same record without training.
    assert RunFiles(tmp_path / "r").checkpoint.exists()
    assert without_timings(train_run(spec)) == without_timings(rec)
    assert pickle.loads(pickle.dumps(train_run)) is train_run


def test_lr_schedule_in_history_matches_recipe(tmp_path):
    # 8 epochs with milestones at 50 % / 75 % -> lr / 10 from epoch 4, lr / 100 from epoch 6
    rec = train_run(make_spec(tmp_path / "a", epochs=8, data=DataConfig(name="digits", train_subset=64,
                                                                         test_subset=32)))
    lrs = [h["lr"] for h in rec["history"]]
    assert [h["epoch"] for h in rec["history"]] == list(range(8))
    assert lrs[:4] == [0.1] * 4
    assert lrs[4:6] == pytest.approx([0.01] * 2) and lrs[6:] == pytest.approx([0.001] * 2)
    # milestones given as epochs
    rec = train_run(make_spec(tmp_path / "b", epochs=4, milestones=(1, 3), milestones_unit="epoch",
                              data=DataConfig(name="digits", train_subset=64, test_subset=32)))
    assert [h["lr"] for h in rec["history"]] == pytest.approx([0.1, 0.01, 0.01, 0.001])


def test_same_seed_gives_bitwise_identical_records(tmp_path):
    a = train_run(make_spec(tmp_path / "a"))
    b = train_run(make_spec(tmp_path / "b"))
    assert without_timings(a) == without_timings(b)
    c = train_run(make_spec(tmp_path / "c", seed=1))
    assert c["history"][0]["train_loss"] != a["history"][0]["train_loss"]


_CHILD = """
import logging, pickle, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s", force=True)
from hplandscape.training.sequential_engine import train_run
with open(sys.argv[1], "rb") as f:
    spec = pickle.load(f)
print("RESULT", train_run(spec), flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("amp", [False, True], ids=["float32", "bf16"])
def test_killed_run_resumes_to_the_uninterrupted_record(tmp_path, amp):
    epochs = 6
    spec = make_spec(tmp_path / "killed", epochs=epochs, data=DataConfig(name="digits", train_subset=768), amp=amp)
    spec_file = tmp_path / "spec.pkl"
    spec_file.write_bytes(pickle.dumps(spec))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(spec_file)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=env)
    ckpt = RunFiles(tmp_path / "killed").checkpoint
    lines = []
    try:
        for line in child.stdout:  # kill once epoch 2 is logged: checkpoints of epochs 0-1 exist
            lines.append(line)
            if ": epoch 2 " in line:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL, "".join(lines)
    assert not any(line.startswith("RESULT") for line in lines)
    saved = torch.load(ckpt, weights_only=True)["state"]["next_epoch"]
    assert 2 <= saved < epochs

    resumed = train_run(spec)
    uninterrupted = train_run(dataclasses.replace(spec, run_dir=str(tmp_path / "straight")))
    assert len(resumed["history"]) == epochs
    assert resumed["precision"] == ("bfloat16" if amp else "float32")
    assert without_timings(resumed) == without_timings(uninterrupted)
    assert resumed["wall_time_s"] > 0


_ALLOCATOR_CHILD = """
import json, pickle, sys
import hplandscape.training.lifecycle, hplandscape.training.sequential_engine
if sys.argv[2] == "glibc-default":
    hplandscape.training.setup.keep_freed_memory = lambda: False
with open(sys.argv[1], "rb") as f:
    spec = pickle.load(f)
record = hplandscape.training.sequential_engine.train_run(spec)
print(json.dumps([bool(hplandscape.training.setup._kept_freed_memory), record]))
"""


@pytest.mark.slow
def test_keeping_freed_memory_changes_nothing_a_run_computes(tmp_path):
    """The engine raises glibc's malloc thresholds on the CPU (``setup.keep_freed_memory``);
    a run in a process that does not computes the same record and weights, bit for bit."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = {}
    for mode in ("kept", "glibc-default"):
        spec = dataclasses.replace(make_spec(tmp_path / mode, epochs=2), keep_weights=True)
        (tmp_path / f"{mode}.pkl").write_bytes(pickle.dumps(spec))
        proc = subprocess.run([sys.executable, "-c", _ALLOCATOR_CHILD, str(tmp_path / f"{mode}.pkl"), mode],
                              capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        kept, record = json.loads(proc.stdout.splitlines()[-1])
        out[mode] = kept, without_timings(record), load_weights(RunFiles(spec.run_dir).weights).state_dict
    if sys.platform.startswith("linux"):
        assert out["kept"][0] and not out["glibc-default"][0]
    assert out["kept"][1] == out["glibc-default"][1]
    a, b = out["kept"][2], out["glibc-default"][2]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("every_s, saved_after", [(0.0, [1, 2, 3]), (3600.0, [3])])
def test_checkpoints_are_taken_by_the_clock_and_after_the_last_epoch(tmp_path, monkeypatch, every_s, saved_after):
    """``launcher.checkpoint_every_s``: a 3-epoch run that takes seconds saves only after its last
    epoch at the default; with 0, after every epoch. The record is the same either way."""
    import hplandscape.training.sequential_engine as train_module

    real, saved = train_module.save_checkpoint, []

    def counting(path, fingerprint, model, optimizer, generator, scaler, progress, extras=None):
        saved.append(progress.next_epoch)
        real(path, fingerprint, model, optimizer, generator, scaler, progress, extras)

    monkeypatch.setattr(train_module, "save_checkpoint", counting)
    rec = train_run(make_spec(tmp_path / "r", checkpoint_every_s=every_s))
    assert saved == saved_after and RunFiles(tmp_path / "r").checkpoint.exists()
    monkeypatch.setattr(train_module, "save_checkpoint", real)
    assert without_timings(rec) == without_timings(train_run(make_spec(tmp_path / "s")))


def test_the_checkpoint_interval_is_a_launcher_setting_outside_the_fingerprint(tmp_path):
    from conftest import tiny_config

    from hplandscape.errors import ConfigError
    from hplandscape.training.setup import spec_fingerprint
    assert tiny_config().launcher.checkpoint_every_s == 30.0
    config = tiny_config(launcher={"executor": "local", "checkpoint_every_s": 5})
    assert config.launcher.checkpoint_every_s == 5.0
    with pytest.raises(ConfigError, match="checkpoint_every_s"):
        tiny_config(launcher={"executor": "local", "checkpoint_every_s": -1})
    a, b = make_spec(tmp_path / "r"), make_spec(tmp_path / "r", checkpoint_every_s=60.0)
    assert spec_fingerprint(a) == spec_fingerprint(b)


def test_checkpoint_of_another_run_is_set_aside_and_the_run_starts_afresh(tmp_path):
    # resuming it is impossible; refusing it failed the run on every sweep (issue 29: 12)
    spec = make_spec(tmp_path / "r", epochs=1)
    ckpt = RunFiles(tmp_path / "r").checkpoint  # a checkpoint as a killed run leaves it
    model = torch.nn.Linear(2, 2)
    (tmp_path / "r").mkdir()
    save_checkpoint(ckpt, "other-run", model, torch.optim.SGD(model.parameters(), lr=0.1), torch.Generator(), None,
                    RunProgress(next_epoch=1))
    record = train_run(spec)
    assert record["epochs_completed"] == 1 and [h["epoch"] for h in record["history"]] == [0]
    assert len(list((tmp_path / "r").glob("checkpoint.pt.stale-*"))) == 1


def test_truncated_checkpoint_is_set_aside_and_the_run_restarts(tmp_path):
    fresh = train_run(make_spec(tmp_path / "fresh", epochs=1))
    spec = make_spec(tmp_path / "r", epochs=1)
    ckpt = RunFiles(tmp_path / "r").checkpoint
    (tmp_path / "r").mkdir()
    ckpt.write_bytes(b"PK\x03\x04 half a checkpoint")  # a crash or a full disk mid-write
    record = train_run(spec)
    assert without_timings(record) == without_timings(fresh), "restarted from scratch"
    kept = list((tmp_path / "r").glob("checkpoint.pt.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"PK"), "the damaged file is kept"


def test_absurd_lr_is_recorded_as_diverged_not_raised(tmp_path):
    rec = train_run(make_spec(tmp_path / "d", log10_lr=4.0, epochs=4))
    assert rec["diverged"] is True
    assert rec["diverged_epoch"] == len(rec["history"]) - 1 < 4
    assert rec["epochs_completed"] == rec["diverged_epoch"]
    assert rec["history"][-1]["train_loss"] is None
    # the diverged network, evaluated once, is at chance level on 10 classes
    assert rec["top1"] < 25.0 and rec["top1"] == rec["history"][-1]["val_acc"]
    json.dumps(rec, allow_nan=False)


@pytest.mark.slow
def test_digits_accuracy_well_above_chance(tmp_path):
    rec = train_run(make_spec(tmp_path / "r", epochs=6, data=DataConfig(name="digits")))
    assert rec["top1"] > 80.0, rec["history"]  # chance is 10 %
    assert rec["history"][-1]["train_loss"] < rec["history"][0]["train_loss"]


def test_weights_saved_for_the_pruning_source(tmp_path):
    from hplandscape.models import load_weights

    spec = dataclasses.replace(make_spec(tmp_path / "r", epochs=1), keep_weights=True)
    rec = train_run(spec)
    w = load_weights(RunFiles(tmp_path / "r").weights, expected_model="resnet20")
    assert (w.num_classes, w.in_channels, w.widths) == (10, 1, None)
    assert sum(t.numel() for k, t in w.state_dict.items() if "running" not in k and "num_batches" not in k) \
        == rec["params"]


def test_pruned_architecture_trains_and_is_recorded(tmp_path):
    from hplandscape.pruning import structured as pruning

    arch = pruning.prune("resnet20", "uniform", 0.5, num_classes=10, in_channels=1, input_shape=(1, 8, 8))
    spec = make_spec(tmp_path / "p", epochs=1, arch={**arch.to_dict(), "content_hash": arch.content_hash},
                     condition=Condition("uniform-0.5", "uniform", 0.5))
    rec = train_run(spec)
    assert rec["arch_hash"] == arch.content_hash
    assert (rec["params"], rec["flops"]) == (arch.params, arch.flops)
    assert rec["method"] == "uniform" and rec["run_id"].startswith("uniform-0.5/")


def test_architecture_for_other_data_is_a_clear_error(tmp_path):
    from hplandscape.pruning import structured as pruning

    arch = pruning.prune("resnet20", "uniform", 0.5)  # 3 input channels, CIFAR
    spec = make_spec(tmp_path / "p", epochs=1, arch=arch.to_dict(), condition=Condition("uniform-0.5", "uniform", 0.5))
    with pytest.raises(UserError, match="in_channels=3 but dataset 'digits' has 1"):
        train_run(spec)


def test_missing_cifar_directory_fails_before_training(tmp_path):
    spec = make_spec(tmp_path / "r", data=DataConfig(name="cifar10", root=str(tmp_path / "no-such-dir")))
    with pytest.raises(UserError, match=str(tmp_path / "no-such-dir")):
        train_run(spec)


def test_trains_on_generated_cifar10_with_the_cifar_recipe(tmp_path):
    write_fake_cifar10(tmp_path / "c", n_train=96, n_test=40)
    recipe = dataclasses.replace(recipe_preset("cifar10"), epochs=1, batch_size=32, threads=1)
    spec = dataclasses.replace(make_spec(tmp_path / "r"), recipe=recipe,
                               data=DataConfig(name="cifar10", root=str(tmp_path / "c"), num_workers=0))
    rec = train_run(spec)
    assert rec["recipe"]["augment"] == "cifar" and rec["history"][0]["epoch"] == 0
    assert (rec["params"], rec["flops"]) == model_info("resnet20", (3, 32, 32))[1:3]


def test_weight_decay_can_spare_batchnorm_and_biases():
    from hplandscape.models import build_model

    model = build_model("resnet20")
    default = make_optimizer(model, 0.1, 1e-3, recipe_preset("cifar10"))
    assert [g["weight_decay"] for g in default.param_groups] == [1e-3]  # the thesis: every parameter
    spared = make_optimizer(model, 0.1, 1e-3, dataclasses.replace(recipe_preset("cifar10"),
                                                                  weight_decay_on_bn_bias=False))
    decayed, free = spared.param_groups
    assert decayed["weight_decay"] == 1e-3 and free["weight_decay"] == 0.0
    assert {p.ndim for p in free["params"]} == {1} and len(decayed["params"]) == 20  # 19 convs + fc
    assert spared.defaults["momentum"] == 0.9


def test_cuda_requested_without_gpu_is_a_user_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    spec = dataclasses.replace(make_spec(tmp_path / "r"), device="cuda")
    with pytest.raises(UserError, match="no CUDA device"):
        train_run(spec)


@pytest.mark.gpu
def test_cuda_with_channels_last_and_amp(tmp_path):
    spec = dataclasses.replace(make_spec(tmp_path / "g", epochs=6, data=DataConfig(name="digits"),
                                         channels_last=True, amp=True), device="auto")
    rec = train_run(spec)
    assert RECORD_KEYS <= set(rec)
    json.dumps(rec, allow_nan=False)
    assert rec["device"].startswith("cuda") and rec["provenance"]["device"] == rec["device"]
    amp_dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    assert (rec["precision"], rec["memory_format"]) == (amp_dtype, "channels_last")
    assert rec["top1"] > 80.0 and not rec["diverged"] and rec["epochs_completed"] == 6
    assert rec["history"][-1]["train_loss"] < rec["history"][0]["train_loss"]
    diverged = train_run(dataclasses.replace(make_spec(tmp_path / "d", log10_lr=4.0, epochs=3, amp=True),
                                             device="cuda"))
    assert diverged["diverged"] and diverged["history"][-1]["train_loss"] is None


@pytest.mark.gpu
def test_cuda_fp16_run_keeps_its_loss_scaler_across_a_resume(tmp_path, monkeypatch):
    """A GPU without bf16 trains ``amp`` in fp16 with a loss scaler; a run stopped after its first
    checkpoint resumes with the scaler's state and ends as an uninterrupted run does. cuDNN picks
    its kernels per process and not bit for bit reproducibly, so losses agree to 2 %, not exactly."""
    import hplandscape.training.sequential_engine as train_module

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    spec = dataclasses.replace(make_spec(tmp_path / "cut", epochs=3, amp=True), device="cuda")
    real = train_module.save_checkpoint

    def save_then_die(path, fingerprint, model, optimizer, generator, scaler, progress, extras=None):
        real(path, fingerprint, model, optimizer, generator, scaler, progress, extras)
        if progress.next_epoch == 1:
            raise KeyboardInterrupt  # the job is stopped after its first checkpoint

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_run(spec)
    monkeypatch.setattr(train_module, "save_checkpoint", real)
    saved = torch.load(RunFiles(spec.run_dir).checkpoint, weights_only=True)
    assert saved["state"]["next_epoch"] == 1 and saved["scaler"]["scale"] > 0

    resumed = train_run(spec)
    straight = train_run(dataclasses.replace(spec, run_dir=str(tmp_path / "straight")))
    assert resumed["precision"] == straight["precision"] == "float16"
    assert resumed["history"][0] == saved["state"]["history"][0]  # epoch 0 came from the checkpoint
    assert [h["epoch"] for h in resumed["history"]] == [0, 1, 2] and not resumed["diverged"]
    for got, want in zip(resumed["history"], straight["history"]):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=2e-2)


@pytest.mark.slow
def test_cpu_benchmark_runs_the_engine_against_a_plain_loop(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cpu_train.py"), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(out.read_text())
    assert row["model"] == "resnet20" and len(row["ratios"]) == 1 and row["engine_s"][0] > 0 < row["plain_s"][0]
    assert "speed-up" in proc.stdout
