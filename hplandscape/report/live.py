"""What a report of a study still running adds: the study's state (:class:`LiveState`) and the
section at the top of the page that shows it (:func:`live_section`).

The loop that rewrites the report as records land is :mod:`hplandscape.report.watch`'s.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass

from hplandscape.report.page import Section, md_text
from hplandscape.run.status import StudyStatus, study_status
from hplandscape.store.study_store import RunState, StudyStore


@dataclass(frozen=True)
class LiveState:
    """A study still running, as its files say: what the live report adds to the analysis."""

    status: StudyStatus
    refresh_s: int  # the page reloads itself this often
    updated: str  # when this report was written (UTC)
    seeds: int  # seeds per grid point the study asks for
    source_run: str  # the pruning source's run id
    source_done: bool  # whether it is recorded (the pruned conditions wait for it)
    conditions: tuple  # (name, structured or unstructured: pruned?) of every condition of the config

    @property
    def pending(self) -> dict:
        """{condition: ((log10_wd, log10_lr), ...)}: grid points with no finished seed yet."""
        out = {}
        for c in self.status.conditions:
            out[c.name] = tuple((wd, lr) for (lr, wd), states in sorted(c.states.items())
                                if not any(s.finished for s in states))
        return out

    def counts(self) -> dict:
        s = self.status
        return {"done": s.finished, "running": s.count(RunState.RUNNING), "failed": s.count(RunState.FAILED),
                "queued": s.count(RunState.MISSING) + s.count(RunState.CORRUPT), "total": s.total}

    def waiting(self) -> list[str]:
        """What the analysis cannot show yet, and what it waits for."""
        lines = []
        by_name = {c.name: c for c in self.status.conditions}
        for name, pruned in self.conditions:
            c = by_name[name]
            if _finished(c) == 0:
                why = (f" (the pruned conditions wait for the pruning source, {self.source_run})"
                       if pruned and not self.source_done else "")
                lines.append(f"{name}: no run recorded yet; its landscape, risk and shift appear once its runs "
                             f"land{why}.")
            elif self.seeds > 1:
                # a point is complete with the seeds asked of it: all of them in a full design, those
                # its rounds asked for so far in an adaptive one
                full = sum(sum(st.finished for st in states) == len(states) for states in c.states.values())
                every = all(len(states) == self.seeds for states in c.states.values())
                if full < len(c.states):
                    have = f"all {self.seeds} seeds" if every else "every seed its rounds asked for so far"
                    lines.append(f"{name}: {full} of {len(c.states)} grid points have {have}; "
                                 "its means, seed noise and intervals use the seeds recorded so far.")
        return lines


def _finished(condition_status) -> int:
    """Runs of one condition with a record (diverged ones included)."""
    n = condition_status.counts()
    return n["done"] + n["diverged"]


def live_state(store: StudyStore, refresh_s: int, status: StudyStatus | None = None) -> LiveState:
    """The :class:`LiveState` of a study folder now."""
    from hplandscape.study.runs import source_run

    config = store.config()
    source = source_run(config).run_id
    return LiveState(status or study_status(store, config), int(refresh_s),
                     time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), len(config.seeds),
                     source, store.run_state(source).finished, tuple((c.name, c.pruned) for c in config.conditions))


def live_section(r):
    """The top of a live report: the study is still running, its counts, what the analysis waits
    for; None in a report of a finished study (``r.live`` is None)."""
    live = getattr(r, "live", None)
    if live is None:
        return None
    return _live_body(live)


def _live_body(live: LiveState, problem: str | None = None) -> Section:
    n = live.counts()
    head = (f"This study is still running: {n['done']} of {n['total']} runs recorded, {n['running']} running, "
            f"{n['queued']} queued, {n['failed']} failed (as of {live.updated}). This page reloads itself every "
            f"{live.refresh_s} s and is rewritten when new records land. Everything below uses only the runs "
            "recorded so far; in the landscapes, grid points with no record yet are open grey circles "
            "(pending), never an accuracy.")
    rows = [(c.name, c.total, _finished(c), c.counts()["running"], c.counts()["missing"], c.counts()["failed"])
            for c in live.status.conditions]
    waits = live.waiting() + ([f"the analysis: {problem}"] if problem else [])
    md = [md_text(head), "", "| condition | runs | done | running | queued | failed |", "|---|---|---|---|---|---|"]
    md += [f"| {md_text(name)} | {t} | {d} | {r} | {q} | {f} |" for name, t, d, r, q, f in rows]
    if waits:
        md += ["", "Waiting for:", *[f"- {md_text(w)}" for w in waits]]
    esc = html.escape
    table = ("<div class=\"table-wrap\"><table><tr><th>condition</th><th>runs</th><th>done</th><th>running</th>"
             "<th>queued</th><th>failed</th></tr>"
             + "".join(f"<tr><td>{esc(name)}</td><td>{t}</td><td>{d}</td><td>{r}</td><td>{q}</td><td>{f}</td></tr>"
                       for name, t, d, r, q, f in rows) + "</table></div>")
    body = f'<div class="warn live"><p>{esc(head)}</p>{table}'
    if waits:
        body += "<p>Waiting for:</p><ul>" + "".join(f"<li>{esc(w)}</li>" for w in waits) + "</ul>"
    body += "</div>"
    return Section("live", "Study in progress", "\n".join(md), body)
