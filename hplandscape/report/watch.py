"""The live report of a study still running: ``hplandscape report STUDY --watch [SECONDS]``.

It reads the study folder alone (so it can run on a login node beside a SLURM sweep), and
rewrites the report, atomically, whenever new records have landed: the page says that the study
is still running, how many runs are done, running, queued and failed, what the analysis still
waits for (:mod:`hplandscape.report.live`), draws the landscapes with the grid points that have
no record yet marked as pending (never as an accuracy), and reloads itself in the browser. It
ends by itself: exit 0 once every run is recorded (the last report is the final one, without the
reload), exit 1 when nothing is running or queued any more but runs are missing or failed (as
``status --follow``).
"""

from __future__ import annotations

import time

from hplandscape.atomic import write_text as write_text_atomic
from hplandscape.choices import WATCH_S
from hplandscape.errors import UserError
from hplandscape.report.live import _live_body, live_state
from hplandscape.report.page import page
from hplandscape.report.study_report import make_report
from hplandscape.run.status import StudyStatus, slurm_jobs_waiting, study_status
from hplandscape.store.layout import check_dir_target, output_dir
from hplandscape.store.study_store import RunState, StudyStore

#: Seconds between looks at the study folder (``--watch`` without a value).
DEFAULT_WATCH_S = WATCH_S


def _signature(store: StudyStore, status: StudyStatus) -> tuple:
    """What, when it changes, makes the report worth writing again: the finished and failed runs
    and the newest record's time."""
    newest = max((p.stat().st_mtime_ns for p in store.runs_dir.glob("*/*/*/record.json")), default=0)
    return status.finished, status.count(RunState.FAILED), newest


def watch_report(study_dir, out_dir=None, refresh_s: int = DEFAULT_WATCH_S, *, report_kw=None, queued=None,
                 say=print, sleep=time.sleep) -> int:
    """Rewrite the report of ``study_dir`` whenever new records land, until the study is complete
    (returns 0) or nothing runs or waits any more with runs missing or failed (returns 1).

    Parameters
    ----------
    study_dir : str or Path
        A study folder (``sweep`` made it); nothing else is read.
    out_dir : str or Path, optional
        The report folder (default ``STUDY/report``).
    refresh_s : int
        Seconds between looks at the folder, and the page's reload period.
    report_kw : dict, optional
        Options of :func:`hplandscape.report.study_report.make_report` (ROIs, formats, …).
    queued : callable, optional
        Whether jobs of the study still wait in a scheduler; default the study's SLURM jobs
        (``squeue``), as ``status --follow`` asks.
    """
    if isinstance(refresh_s, bool) or not isinstance(refresh_s, int) or refresh_s < 1:
        raise UserError(f"--watch takes whole seconds ≥ 1 between looks, got {refresh_s!r}")
    store = StudyStore.open(study_dir)
    out = check_dir_target(out_dir if out_dir is not None else output_dir(store.root, "report"), "the report folder")
    queued = queued or (lambda: slurm_jobs_waiting(store))
    report_kw = dict(report_kw or {})
    config = store.config()
    last, idle = None, 0
    while True:
        status = study_status(store, config)
        complete = status.complete
        signature = _signature(store, status)
        if signature != last or complete:
            live = None if complete else live_state(store, refresh_s, status)
            try:
                report = make_report(store.root, out, live=live, **report_kw)
                say(f"{'Report' if complete else 'Live report'} ({status.finished}/{status.total} runs): {report.index}")
            except UserError as e:  # nothing to analyse yet: the page says what it waits for
                if complete or live is None:
                    raise
                out.mkdir(parents=True, exist_ok=True)
                section = _live_body(live, problem=str(e))
                write_text_atomic(out / "index.html", page(f"hplandscape report: {store.root} (in progress)",
                                                           [section.to_html()], refresh_s=refresh_s))
                write_text_atomic(out / "summary.md", section.to_markdown())
                say(f"Live report ({status.finished}/{status.total} runs; nothing to analyse yet): {out / 'index.html'}")
            last = signature
        if complete:
            return 0
        running = status.count(RunState.RUNNING) or queued()
        idle = 0 if running else idle + 1
        if idle >= 2:  # twice in a row: a local sweep passes through short gaps between its jobs
            live = live_state(store, refresh_s, status)
            try:  # the last report: no reload, it will not change by itself any more
                make_report(store.root, out, **report_kw)
            except UserError:
                pass
            n = live.counts()
            say(f"Nothing is running or queued, and {n['total'] - n['done']} run(s) are not recorded "
                f"({n['failed']} failed): run `hplandscape sweep` again to finish the study.")
            return 1
        sleep(refresh_s)
