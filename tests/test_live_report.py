"""The live report of a study still running (``report --watch``): what it shows, when it is written
again, how it ends; and, in headless Chromium, a page that reloads itself while a sweep runs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import TESTS_DIR, run_cli, study_record, tiny_config

from hplandscape.plots import mpl_backend as mb
from hplandscape.plots import plotly_backend as pb
from hplandscape.plots.figure_data import PENDING_LABEL, landscape_info
from hplandscape.report.live import live_state
from hplandscape.report.study_report import make_report
from hplandscape.report.watch import watch_report
from hplandscape.store.study_store import StudyStore

REFRESH = 'http-equiv="refresh"'


def _study(tmp_path, recorded: int, seeds=(0, 1)):
    config = tiny_config(seeds=list(seeds))
    store = StudyStore(tmp_path / "study")
    store.init_study(config)
    ids = store.run_ids()
    for i, run_id in enumerate(ids[:recorded]):
        store.write_record(run_id, study_record(config, run_id, 60.0 + i))
    return config, store, ids


def test_a_running_study_s_report_says_so_marks_pending_points_and_reloads(tmp_path):
    config, store, ids = _study(tmp_path, recorded=9)  # 16 runs: the base done, uniform-0.5 one run
    live = live_state(store, refresh_s=7)
    assert live.counts() == {"done": 9, "running": 0, "failed": 0, "queued": 7, "total": 16}
    assert live.pending["base"] == () and len(live.pending["uniform-0.5"]) == 3  # 4 points, 1 has a seed
    report = make_report(store.root, tmp_path / "r", live=live, n_boot=99)
    page = report.index.read_text()
    assert '<meta http-equiv="refresh" content="7">' in page
    assert "This study is still running: 9 of 16 runs recorded" in page
    assert "uniform-0.5: 0 of 4 grid points have all 2 seeds" in page
    summary = report.summary.read_text()
    assert summary.index("## Study in progress") < summary.index("## Can I keep")
    final = make_report(store.root, tmp_path / "final", n_boot=99).index.read_text()
    assert REFRESH not in final and "Study in progress" not in final


def test_pending_points_are_drawn_as_pending_never_as_an_accuracy(tmp_path):
    config, store, ids = _study(tmp_path, recorded=9)
    from hplandscape import analysis

    result = analysis.analyze(analysis.load_results(store.root), n_boot=99)
    pending = live_state(store, 5).pending
    panel = next(p for p in landscape_info(result, pending=pending).panels if p.condition == "uniform-0.5")
    assert len(panel.pending) == 3 and len(panel.top1) == 1  # the measured point only has an accuracy
    assert panel.wd_range[0] < min(w for w, _ in panel.pending) and panel.lr_range[1] > max(l for _, l in panel.pending)
    fig = pb.landscape_figure(result, pending=pending)
    assert [len(t.x) for t in fig.data if t.name == PENDING_LABEL] == [3]
    labels = [c.get_label() for ax in mb.landscape_figure(result, pending=pending).axes for c in ax.collections]
    assert labels.count(PENDING_LABEL) == 1
    assert not [t for t in pb.landscape_figure(result).data if t.name == PENDING_LABEL]


def test_watch_rewrites_the_report_as_records_land_and_ends_with_the_study(tmp_path):
    config, store, ids = _study(tmp_path, recorded=4)
    said, left = [], list(ids[4:])

    def sweep_step(seconds):  # a sweep in progress: three runs land between two looks
        for run_id in left[:3]:
            store.write_record(run_id, study_record(config, run_id, 70.0))
        del left[:3]

    code = watch_report(store.root, tmp_path / "r", 1, report_kw={"n_boot": 99}, queued=lambda: bool(left),
                        say=said.append, sleep=sweep_step)
    assert code == 0
    assert [s.split(" (")[0] for s in said] == ["Live report"] * 4 + ["Report"]
    assert said[0].startswith("Live report (4/16 runs)") and said[-1].startswith("Report (16/16 runs)")
    page = (tmp_path / "r" / "index.html").read_text()
    assert REFRESH not in page and "Study in progress" not in page


def test_watch_ends_with_exit_1_when_nothing_runs_or_waits_and_runs_are_missing(tmp_path, capsys):
    config, store, ids = _study(tmp_path, recorded=10)
    slept = []
    code = watch_report(store.root, tmp_path / "r", 2, report_kw={"n_boot": 99}, queued=lambda: False,
                        say=lambda s: None, sleep=slept.append)
    assert code == 1 and slept == [2]  # two looks in a row with nothing running: not one gap between jobs
    assert REFRESH not in (tmp_path / "r" / "index.html").read_text()  # the last page no longer reloads


def test_before_any_record_the_page_says_what_it_waits_for(tmp_path):
    config, store, ids = _study(tmp_path, recorded=0)
    code = watch_report(store.root, tmp_path / "r", 3, report_kw={"n_boot": 99}, queued=lambda: False,
                        say=lambda s: None, sleep=lambda s: None)
    page = (tmp_path / "r" / "index.html").read_text()
    assert code == 1 and "0 of 16 runs recorded" in page and REFRESH in page
    assert "base: no run recorded yet" in page
    assert "uniform-0.5: no run recorded yet; its landscape, risk and shift appear once its runs land (the " \
           "pruned conditions wait for the pruning source" in page


def test_watch_refuses_what_it_cannot_follow(tmp_path, capsys):
    config, store, ids = _study(tmp_path, recorded=16)
    code, out, err = run_cli(capsys, "report", store.root, store.root, "--watch", "5")
    assert code == 2 and "one study directory" in err
    code, out, err = run_cli(capsys, "report", store.root, "--watch", "0")
    assert code == 2
    code, out, err = run_cli(capsys, "report", store.root, "--watch", "1", "--n-boot", "99")
    assert code == 0 and "Report (16/16 runs)" in out


_SWEEP = """
import sys
from conftest import fake_prune, fake_train_run, tiny_config
from hplandscape.run.runners import RunOptions
from hplandscape.run.sweep import run_sweep
run_sweep(tiny_config(seeds=[0, 1]), sys.argv[1], executor="local", max_parallel=1, progress=False,
          options=RunOptions(train_fn=fake_train_run, prune_fn=fake_prune))
"""


@pytest.mark.browser
@pytest.mark.slow
def test_in_chromium_the_page_follows_a_sweep_in_progress(tmp_path, fake_env):
    from test_report_browser import CHROMIUM, _need_browser

    _need_browser()
    from playwright.sync_api import sync_playwright

    study, out = tmp_path / "study", tmp_path / "report"
    env = dict(os.environ, HPL_FAKE_EPOCH_S="0.4", PYTHONPATH=os.pathsep.join(
        [str(TESTS_DIR), str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    sweep = subprocess.Popen([sys.executable, "-c", _SWEEP, str(study)], env=env, cwd=TESTS_DIR,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (study / "study.yaml").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        said, codes = [], []
        watcher = threading.Thread(target=lambda: codes.append(watch_report(
            study, out, 1, report_kw={"n_boot": 99}, queued=lambda: sweep.poll() is None, say=said.append)))
        watcher.start()
        while not (out / "index.html").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        seen = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto((out / "index.html").as_uri(), wait_until="load")
                while time.monotonic() < deadline and watcher.is_alive():
                    try:  # the page reloads itself: read it between two loads
                        text = page.inner_text("body", timeout=2000)
                        pending = page.evaluate(
                            "() => { const d = document.getElementById('landscapes'); return d && d.data ? "
                            f"d.data.filter(t => t.name === '{PENDING_LABEL}').length : -1; }}")
                    except Exception:  # navigation in progress
                        continue
                    if "This study is still running" in text:
                        done = int(text.split("This study is still running: ")[1].split(" of ")[0])
                        seen.append((done, pending))
                    time.sleep(0.3)
                watcher.join(timeout=60)
                page.reload(wait_until="load")
                final = page.inner_text("body")
            finally:
                browser.close()
    finally:
        sweep.wait(timeout=120)
    assert codes == [0], said
    counts = sorted({d for d, _ in seen})
    assert len(counts) >= 2, f"the open page never showed the study move on: {seen}"
    assert any(p > 0 for d, p in seen if 0 < d < 16), f"no pending grid points drawn while runs were missing: {seen}"
    assert "This study is still running" not in final and "Landscapes" in final
