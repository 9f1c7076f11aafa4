"""The GPU suite (``benchmarks/gpu_suite.py``): its smoke run on the CPU goes through every part's
code, so the one command meant for scarce GPU time cannot rot between GPU loans."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "benchmarks" / "gpu_suite.py"
sys.path.insert(0, str(REPO))

from benchmarks.gpu_checks import Tolerance, compare_records  # noqa: E402
from benchmarks.gpu_suite import RESERVE_S, SMOKE, PartContext  # noqa: E402
PARTS = ["environment", "cuda_tests", "engines_agree", "resume", "sequential", "fused", "grid_time", "extrapolation"]


def run_suite(*args, timeout=900):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    env.pop("HPLANDSCAPE_REQUIRE_GPU", None)
    return subprocess.run([sys.executable, str(SUITE), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run for the module: (process, the JSON, the Markdown, {part: entry})."""
    out = tmp_path_factory.mktemp("smoke")
    proc = run_suite("--smoke", "--out", out)
    suite = json.loads((out / "gpu_suite.json").read_text())
    return proc, suite, (out / "gpu_suite.md").read_text(), {p["part"]: p for p in suite["parts"]}


@pytest.mark.slow
def test_smoke_run_passes_every_part_and_writes_json_and_markdown(smoke):
    proc, suite, md, parts = smoke
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(parts) == PARTS
    not_ok = {n: (p["status"], p["stderr_tail"][-1500:]) for n, p in parts.items() if p["status"] != "ok"}
    assert not not_ok
    assert suite["suite"]["mode"] == "smoke" and suite["suite"]["device"] == "cpu"
    assert len(suite["suite"]["git_commit"]) == 40
    env = parts["environment"]["result"]["environment"]
    assert env["device"].startswith("cpu") and env["torch"] and env["cuda_available"] is False
    for name, part in parts.items():
        assert part["result"]["summary"] and part["seconds"] > 0 and part["timeout_s"] > 0
        assert f"## {name}:" in md and f"| {name} | ok |" in md


@pytest.mark.slow
def test_the_cuda_tests_skip_on_the_cpu_rather_than_fail(smoke):
    result = smoke[3]["cuda_tests"]["result"]
    assert "-m gpu" in result["command"] and result["returncode"] == 0
    names = {r["test"] for r in result["rows"]}
    assert {"tests.test_train::test_cuda_with_channels_last_and_amp",
            "tests.test_fused::test_the_engines_agree_on_cuda[channels_last-amp]"} <= names
    assert all(r["outcome"] == "skipped" and "no CUDA device" in r["message"] for r in result["rows"])


@pytest.mark.slow
def test_the_engines_agree_and_a_killed_run_resumes(smoke):
    parts = smoke[3]
    agree = parts["engines_agree"]["result"]
    assert [c["config"] for c in agree["configs"]] == ["fp32", "bf16+channels_last"]
    assert all(c["ok"] for c in agree["configs"]) and not agree["problems"]
    assert len(agree["rows"]) == 8 and sum(r["diverged"] for r in agree["rows"]) == 2  # lr 1e8, both configs
    for row in agree["rows"]:
        assert row["ok"] and row["precision"] == ("bfloat16" if row["config"].startswith("bf16") else "float32")
        if not row["diverged"]:
            assert row["first_loss_gap"] <= row["tolerance"] and row["separation"] > row["largest_loss_gap"]
    resume = parts["resume"]["result"]
    assert 1 <= resume["killed_at_epoch"] < 6
    assert resume["bitwise"], "on the CPU a resumed run ends bit for bit as an uninterrupted one"


@pytest.mark.slow
def test_the_measurements_cover_every_model_engine_and_size(smoke):
    parts = smoke[3]
    rows = parts["sequential"]["result"]["rows"]
    assert {(r["model"], r["config"]) for r in rows} == {
        (m, c) for m in ("resnet56", "mobilenet_v2", "resnet50") for c in ("fp32", "tf32", "bf16+channels_last")}
    for r in rows:
        if r["config"] == "tf32":
            assert r["status"] == "not applicable on cpu"
        else:
            assert r["status"] == "ok" and r["engine_images_per_s"] > 0 and r["plain_images_per_s"] > 0
            assert r["engine_over_plain"] == pytest.approx(r["engine_images_per_s"] / r["plain_images_per_s"])
            assert r["epoch_s"] > 50_000 / r["engine_images_per_s"]  # plus the evaluation
    fused = parts["fused"]["result"]["rows"]
    assert {(r["config"], r["B"]) for r in fused} == {(c, b) for c in ("fp32", "bf16+channels_last") for b in (1, 2)}
    assert all(r["status"] == "ok" and r["peak_gib"] == "not applicable on cpu" for r in fused)
    for r in fused:
        assert r["speedup"] == pytest.approx(r["fused_model_images_per_s"] / r["sequential_images_per_s"])

    timed = parts["grid_time"]["result"]["rows"]
    assert {(r["config"], r["engine"], r["B"]) for r in timed} == {
        (c, e, b) for c in ("fp32", "bf16+channels_last") for e, b in (("sequential", 1), ("fused", 2))}
    extrapolation = parts["extrapolation"]["result"]
    assert (extrapolation["runs"], extrapolation["epochs"], extrapolation["goal_hours"]) == (81, 180, 1.5)
    best = extrapolation["best"]
    row = next(r for r in timed if (r["config"], r["engine"], r["B"]) == (best["config"], best["engine"], best["B"]))
    assert best["hours"] == pytest.approx(81 * (180 * row["epoch_s_per_run"] + row["setup_s_per_run"]) / 3600)
    assert best["correct"] == "yes" and all(best["hours"] <= r["hours"] for r in extrapolation["rows"])
    assert extrapolation["goal_met"] is False  # a CPU does not train the grid in 1.5 hours


def test_a_part_out_of_time_is_recorded_and_the_suite_goes_on(tmp_path):
    proc = run_suite("--smoke", "--out", tmp_path, "--parts", "environment,extrapolation",
                     "--timeout", "environment=0.5", timeout=300)
    assert proc.returncode == 1, proc.stderr
    suite = json.loads((tmp_path / "gpu_suite.json").read_text())
    environment, extrapolation = suite["parts"]
    assert (environment["part"], environment["status"], environment["result"]) == ("environment", "timeout", None)
    assert extrapolation["status"] == "failed"
    assert extrapolation["result"]["summary"] == "no configuration was timed"
    assert "not ok: environment, extrapolation" in proc.stderr
    assert "| environment | timeout |" in (tmp_path / "gpu_suite.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--parts", "sequential,warp"], "--parts 'sequential,warp': unknown part 'warp'; the parts are environment,"),
    (["--timeout", "fused"], "--timeout fused: seconds must be a number, got ''"),
    (["--timeout", "speed=10"], "--timeout speed=10: unknown part 'speed'"),
    (["--timeout", "fused=-1"], "--timeout fused=-1: seconds must be positive"),
    (["--device", "tpu"], "--device must be cuda or cpu, got 'tpu'"),
])
def test_bad_arguments_name_the_culprit_and_exit_2(tmp_path, args, message):
    proc = run_suite("--smoke", "--out", tmp_path / "out", *args, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_an_out_path_that_is_a_file_or_cuda_without_a_gpu_is_exit_2(tmp_path):
    import torch

    a_file = tmp_path / "a-file"
    a_file.write_text("results")
    proc = run_suite("--smoke", "--out", a_file, timeout=120)
    assert proc.returncode == 2 and f"--out {a_file}: is a file" in proc.stderr
    assert a_file.read_text() == "results"
    if not torch.cuda.is_available():
        proc = run_suite("--out", tmp_path / "out", timeout=120)
        assert proc.returncode == 2 and "--device cuda: no CUDA device here" in proc.stderr
        assert "--smoke" in proc.stderr and not (tmp_path / "out").exists()


def _record(run_id, losses, top1=90.0, diverged=False):
    return {"run_id": run_id, "lr": 0.1, "wd": 1e-4, "seed": 0, "params": 1, "flops": 2, "diverged": diverged,
            "diverged_epoch": None, "epochs_completed": len(losses), "precision": "bfloat16",
            "memory_format": "channels_last", "top1": top1, "eval_size": 500,
            "history": [{"train_loss": loss} for loss in losses]}


def test_records_are_compared_within_the_tolerance_and_must_be_nearest_their_own_run():
    tol = Tolerance(loss_rel=0.05, top1_points=2.0)
    want = [_record("a", [2.0, 1.0, 0.5]), _record("b", [2.2, 1.4, 0.9]), _record("c", [2.0, 0.6, 0.3])]
    # rounding: 1 % in the first epoch, 10 % later (amplified), top-1 1.5 points apart
    got = [_record("a", [2.02, 1.1, 0.55], top1=91.5), _record("b", [2.2, 1.4, 0.9]), _record("c", [2.0, 0.6, 0.3])]
    rows, problems = compare_records(got, want, tol, "bf16")
    assert not problems and all(r["ok"] for r in rows)
    assert rows[0]["first_loss_gap"] == pytest.approx(0.01) and rows[0]["largest_loss_gap"] == pytest.approx(0.1)
    assert rows[0]["separation"] == pytest.approx(0.35 / 0.9)  # its nearest other run: b, in the last epoch

    # a and c swapped (another run's lr or data): each first epoch within 5 %, but each record is
    # nearer the other run than its own
    swapped = [_record("a", [2.0, 0.6, 0.3]), want[1], _record("c", [2.0, 1.0, 0.5])]
    _, problems = compare_records(swapped, want, tol, "bf16")
    assert len(problems) == 2 and all("as close to another run's record" in p for p in problems)

    # beyond the tolerance, and a field that must be equal
    off = [_record("a", [2.2, 1.0, 0.5], top1=80.0), want[1], _record("c", [2.0, 0.6, 0.3], diverged=True)]
    _, problems = compare_records(off, want, tol, "bf16")
    assert any("the first epoch's loss differs by 1.00e-01 > 0.05" in p for p in problems)
    assert any("top-1 differs by 10.00 > 2.00 points" in p for p in problems)
    assert any("c: diverged: True != False" in p for p in problems)


def test_a_measurement_that_no_longer_fits_in_the_parts_limit_is_skipped(tmp_path):
    ctx = PartContext("fused", "cpu", SMOKE, tmp_path, tmp_path / "r.json", tmp_path / "s.json",
                      timeout_s=RESERVE_S + 2.0, started=time.monotonic())
    calls = []
    assert ctx.measure("B=9", lambda: calls.append(9) or 9) == 9  # nothing known of B=9: measured
    ctx.took["B=81"] = 30.0  # B=81 took 30 s in the other configuration: 2 s left is too short
    assert ctx.measure("B=81", lambda: calls.append(81) or 81) is None
    assert calls == [9] and ctx.took["B=9"] < 1.0
