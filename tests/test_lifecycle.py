"""The run lifecycle both engines share: run state and checkpoints.

That both engines finish runs through the one ``finish_run`` is tested in ``test_fused.py``.
"""

import os
import platform
import subprocess
import sys

import pytest
import torch

from hplandscape.errors import UserError
from hplandscape.study.recipes import recipe_preset
from hplandscape.training.checkpoints import load_checkpoint, save_checkpoint
from hplandscape.training.lifecycle import RunProgress
from hplandscape.training.setup import make_optimizer


def _diverged_progress():
    p = RunProgress()
    p.end_epoch(lr=0.1, train_loss=2.25, train_acc=20.5, top1=31.25, top5=80.0)
    p.end_epoch(lr=0.01, train_loss=None, train_acc=9.0, top1=10.0, top5=None)
    p.elapsed_s = 12.5
    return p


def _training_state(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    opt = make_optimizer(model, 0.1, 1e-4, recipe_preset("digits"))
    model(torch.randn(8, 3)).sum().backward()
    opt.step()  # momentum buffers exist
    return model, opt, torch.Generator().manual_seed(seed)


def test_run_progress_records_epochs_and_divergence():
    p = _diverged_progress()
    assert p.history == [{"epoch": 0, "lr": 0.1, "train_loss": 2.25, "train_acc": 20.5, "val_acc": 31.25},
                         {"epoch": 1, "lr": 0.01, "train_loss": None, "train_acc": 9.0, "val_acc": 10.0}]
    assert (p.next_epoch, p.diverged_epoch, p.last_eval) == (2, 1, [10.0, None])
    assert p.finished(epochs=10) and not RunProgress(next_epoch=3).finished(epochs=4)
    assert RunProgress(next_epoch=4).finished(epochs=4)


def test_run_progress_and_training_state_round_trip_through_a_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    model, opt, gen = _training_state(0)
    torch.randint(0, 10, (5,), generator=gen)  # the data stream has advanced
    save_checkpoint(path, "fp", model, opt, gen, None, _diverged_progress())
    next_draw = torch.randint(0, 10**6, (3,), generator=gen)

    other, other_opt, other_gen = _training_state(1)
    progress = load_checkpoint(path, "fp", other, other_opt, other_gen)
    assert progress == _diverged_progress() and isinstance(progress, RunProgress)
    for key, value in model.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key
    want = [opt.state[p]["momentum_buffer"] for p in model.parameters()]
    got = [other_opt.state[p]["momentum_buffer"] for p in other.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert torch.equal(torch.randint(0, 10**6, (3,), generator=other_gen), next_draw)


def test_checkpoint_payload_is_plain_data_in_the_documented_format(tmp_path):
    # Checkpoints written before RunProgress existed held this literal; they must still resume.
    path = tmp_path / "checkpoint.pt"
    model, opt, gen = _training_state(0)
    history = [{"epoch": 0, "lr": 0.1, "train_loss": 1.0, "train_acc": 50.0, "val_acc": 60.0},
               {"epoch": 1, "lr": 0.1, "train_loss": 0.5, "train_acc": 70.0, "val_acc": 75.0}]
    state = {"next_epoch": 2, "history": history, "elapsed_s": 3.0, "diverged_epoch": None, "last_eval": [75.0, 99.0]}
    torch.save({"format": 1, "fingerprint": "fp", "state": state, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "cuda_rng": [],
                "data_rng": gen.get_state(), "scaler": None}, path)
    progress = load_checkpoint(path, "fp", *_training_state(1))
    assert progress.to_dict() == state
    save_checkpoint(path, "fp", model, opt, gen, None, progress)
    assert torch.load(path, weights_only=True)["state"] == state


def test_foreign_or_malformed_checkpoints_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, "run-a", *_training_state(0), None, RunProgress())
    with pytest.raises(UserError, match=f"{path}: this checkpoint belongs to a different run"):
        load_checkpoint(path, "run-b", *_training_state(0))
    model, opt, gen = _training_state(0)
    torch.save({"format": 1, "fingerprint": "fp", "state": {"next_epoch": 1}, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(), "cuda_rng": [],
                "data_rng": gen.get_state(), "scaler": None}, path)
    with pytest.raises(UserError, match=f"{path}: the run state must have the keys next_epoch, history, "
                                        r"elapsed_s, diverged_epoch, last_eval, got \['next_epoch'\]"):
        load_checkpoint(path, "fp", model, opt, gen)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=f"{path}: cannot read this checkpoint"):
        load_checkpoint(path, "fp", model, opt, gen)


def test_the_cpu_layout_is_the_architectures_and_amp_means_bf16():
    import dataclasses

    from hplandscape.models import get_entry
    from hplandscape.training.setup import choose_placement

    cpu = torch.device("cpu")
    recipe = dataclasses.replace(recipe_preset("cifar10"), channels_last=True, amp=True)
    for name in ("resnet20", "resnet56", "resnet50"):
        placement = choose_placement(recipe, cpu, name)
        want = torch.channels_last if get_entry(name).cpu_channels_last else torch.contiguous_format
        assert (placement.memory_format, placement.amp_dtype) == (want, torch.bfloat16)  # amp on the CPU: bf16
        assert placement.precision == "bfloat16"
    assert choose_placement(recipe_preset("cifar10"), cpu, "resnet56").precision == "float32"
    assert choose_placement(recipe_preset("cifar10"), cpu, "resnet56").memory_format == torch.channels_last


def test_the_cpu_evaluates_in_batches_no_larger_than_training_ones():
    from hplandscape.training.setup import eval_batch_size
    recipe = recipe_preset("cifar10")  # batch 128, eval batch 1000
    assert eval_batch_size(recipe, torch.device("cpu")) == 128
    assert eval_batch_size(recipe, torch.device("cuda")) == 1000



@pytest.mark.gpu
def test_both_engines_let_cudnn_pick_its_fastest_kernels_on_cuda(monkeypatch):
    """Both engines start a run with ``prepare_process``: on CUDA it turns cuDNN's kernel
    benchmarking on (the fused engine's grouped convolutions included), on the CPU it leaves it."""
    from hplandscape.training.setup import prepare_process
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    assert prepare_process(recipe_preset("cifar10"), "cpu").type == "cpu" and not torch.backends.cudnn.benchmark
    assert prepare_process(recipe_preset("cifar10"), "cuda").type == "cuda" and torch.backends.cudnn.benchmark


_FAULTS = """
import resource, sys, torch
from hplandscape.training.setup import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def step():  # like a training step: activations of 8 MiB pile up, then are all freed
    acts = [torch.empty(2 << 20).fill_(1.0) for _ in range(10)]
for _ in range(3):  # the heap settles
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode, **env):
    proc = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    kept, faults = proc.stdout.split()
    return kept == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux") or not platform.libc_ver()[0] == "glibc",
                    reason="glibc's malloc")
def test_freed_memory_is_kept_so_a_step_does_not_page_fault_its_activations_again():
    for _ in range(3):
        kept, faults = _faults("keep")
        assert kept and faults < 500
    # By default glibc gives the freed memory back and faults it in again: in most processes (in
    # about 1 of 4, depending on where the heap lands, it happens to keep it), each of the 5 steps
    # faults in its 10 activations of 2,048 pages
    defaults = []
    while len(defaults) < 6 and not any(f > 5 * 10 * 2048 * 0.9 for f in defaults):
        kept, faults = _faults("default")
        assert not kept
        defaults.append(faults)
    assert defaults[-1] > 5 * 10 * 2048 * 0.9, defaults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
@pytest.mark.parametrize("env", [{"MALLOC_TRIM_THRESHOLD_": "131072"}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"},
                                 {"LD_PRELOAD": "/nonexistent/libjemalloc.so"}])
def test_malloc_settings_of_the_user_are_left_alone(env):
    kept, _ = _faults("keep", **env)
    assert not kept
