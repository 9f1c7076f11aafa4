"""The CPU measurements of ``benchmarks/cpu_choices.py`` that decide defaults and bound the speed-up."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import cpu_choices  # noqa: E402


def _run(*args):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cpu_choices.py"), *args,
                           "--models", "resnet20", "--image-size", "8", "--in-channels", "1", "--batch-size", "16",
                           "--rounds", "2", "--repeat", "1"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_convolution_work_of_a_step_counts_no_input_gradient_for_the_first_layer():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1, bias=False))
    args = types.SimpleNamespace(in_channels=1, image_size=5, batch_size=2)
    first, second = 2 * 25 * 4 * 1 * 9, 2 * 25 * 8 * 4 * 9  # 2 × positions × out × in × kernel
    assert cpu_choices._conv_work(model, args) == 2 * (2 * first + 3 * second)


@pytest.mark.slow
def test_ceiling_reports_the_convolutions_share_and_speed():
    out = _run("ceiling", "--threads", "1")
    step, plain, conv, share = re.search(r"step ([\d.]+) ms profiled \(([\d.]+) ms without the profiler\), "
                                         r"of which convolutions ([\d.]+) ms \((\d+)%", out).groups()
    assert 0 < float(conv) < float(step) and float(plain) > 0 and 0 < int(share) < 100
    assert re.search(r"sgemm .* on 1 thread\(s\): \d+ GFLOP/s; the convolutions run at \d+% of it", out)
    assert float(re.search(r"would be ([\d.]+)× faster", out).group(1)) > 1


@pytest.mark.slow
def test_threads_times_both_ways_of_sharing_two_cores_on_the_same_steps():
    out = _run("threads", "--threads", "2")
    assert "20 steps in all" in out
    rows = re.findall(r"(2_procs_x_1_thread|1_proc_x_2_threads):\s+([\d.]+) s,\s+([\d.]+) steps/s", out)
    assert [r[0] for r in rows] == ["2_procs_x_1_thread", "1_proc_x_2_threads"]
    assert all(float(s) > 0 and float(r) > 0 for _, s, r in rows)


@pytest.mark.slow
def test_allocator_times_the_engines_malloc_set_up_against_glibcs_in_separate_processes():
    out = _run("allocator", "--threads", "1")
    rows = dict((k, (float(ms), float(f))) for k, ms, f in
                re.findall(r"(glibc_default|keep_freed_memory):\s+([\d.]+) ms a step,\s+(\d+) page faults", out))
    assert set(rows) == {"glibc_default", "keep_freed_memory"} and all(ms > 0 for ms, _ in rows.values())
