"""The report sections only a study directory can give: grid map, training curves, pruned widths.

A results table holds one accuracy per run; the study directory also holds the config (so the
initial grid and its extensions), every run's per-epoch history and the pruned architectures.
Each section here is a function of a :class:`~hplandscape.report.page.ReportInput` returning a
:class:`~hplandscape.report.page.Section`, or None for a bare results CSV (which has none of
these files); :data:`hplandscape.report.sections.SECTIONS` places them on the page. Nothing here
imports torch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from hplandscape.analysis.study_analysis import StudyAnalysis
from hplandscape.errors import UserError
from hplandscape.report.page import ReportInput, Section, fig_div, html_table, html_text, md_table, md_text


def _store(source):
    """The study's store when ``source`` is a study directory (with its study.yaml), else None."""
    if isinstance(source, pd.DataFrame) or not Path(source).is_dir():
        return None
    from hplandscape.store.study_store import StudyStore
    store = StudyStore(source)
    return store if store.study_yaml.is_file() else None


def _study(source):
    """``(store, config, problem)`` of a study directory: ``(None, None, None)`` for anything else,
    ``(store, None, "why")`` when its study.yaml cannot be read (the report still shows what the
    results say, and says why the study's own sections are missing)."""
    store = _store(source)
    if store is None:
        return None, None, None
    try:
        return store, store.config(), None
    except UserError as exc:
        return store, None, str(exc)


def study_files_section(r: ReportInput):
    """"Study files": why the grid map and the training curves are missing (an unreadable
    study.yaml); None when the study's files were read, or the source is no study directory."""
    _, _, problem = _study(r.source)
    if problem is None:
        return None
    return Section("study-files", "Study files", f"- {md_text(problem)}",
                   f'<div class="warn">{html_text(problem)}</div>')


# -- grid map (method Fig. 4.4) ----------------------------------------------------------------


def grid_map_section(r: ReportInput):
    """Fig. 4.4: the study's initial grid and each extension ring of the analysed grid; None
    without a readable study directory."""
    _, config, _ = _study(r.source)
    if config is None:
        return None
    from hplandscape.plots import mpl_backend as mb  # late: plotting libraries
    from hplandscape.plots import plotly_backend as pb
    from hplandscape.plots.gridmap import grid_map_info

    initial = dataclasses.replace(config.grid, extra_log10_lr=(), extra_log10_wd=())
    info = grid_map_info(r.result, initial.log10_lr_values(), initial.log10_wd_values())
    paths = r.save_figure(mb.grid_map_figure(info), "grid_map")
    words = (f"{info.title[0].upper()}{info.title[1:]}. "
             "Every grid point of the study (the method's Fig. 4.4): the initial grid (dotted outline) and the rows "
             "and columns `sweep --extend` added, ring by ring (each round adds at most one row or column per "
             "side, so the k-th ring beyond an initial edge is that side's k-th extension); star: the prior.")
    if info.touching:
        words += " Near-optimal regions still at the edge: " + "; ".join(
            f"{name} ({', '.join(sides)})" for name, sides in info.touching) + "."
    md = [md_text(words), "", *r.md_figure(paths)]
    body = [f"<p>{html_text(words)}</p>", fig_div(pb.grid_map_figure(info), "grid-map")]
    return Section("grid-map", "Grid map", "\n".join(md), "\n".join(body), figures=paths)


# -- training curves ---------------------------------------------------------------------------


def curve_section(r: ReportInput):
    """Loss and accuracy per epoch at each condition's best point and at the prior; None without
    a readable study directory."""
    store, config, _ = _study(r.source)
    if config is None:
        return None
    from hplandscape.plots.curves import curve_info

    info = curve_info(store.iter_records(config), r.result)
    missing = [md_text(m) for m in info.missing]
    if info.empty:
        none = "No run record holds a per-epoch history to draw."
        return Section("training-curves", "Training curves", "\n".join([none, *(f"- {m}" for m in missing)]),
                       f"<p>{none}</p>")
    from hplandscape.plots import mpl_backend as mb  # late: plotting libraries
    from hplandscape.plots import plotly_backend as pb

    words = ("Per epoch, the training loss and the accuracy (held-out solid, training dotted) of each condition's "
             "runs at its best grid point (blue) and at the basemodel's prior (orange), one line per seed; a red "
             "cross marks the epoch where a run diverged (its loss stopped being finite).")
    paths = r.save_figure(mb.curve_figure(info), "training_curves")
    md = [words, "", *r.md_figure(paths), *(["", *(f"- {m}" for m in missing)] if missing else [])]
    body = [f"<p>{html_text(words)}</p>", fig_div(pb.curve_figure(info), "curves")]
    if info.missing:
        body.append('<p class="note">' + "<br>".join(html_text(m) for m in info.missing) + "</p>")
    return Section("training-curves", "Training curves", "\n".join(md), "\n".join(body), figures=paths)


# -- pruned widths -----------------------------------------------------------------------------


def pruned_specs(source, result: StudyAnalysis) -> tuple[dict, list[str]]:
    """The stored architecture of each pruned condition, when ``source`` is a study directory.

    Returns ``({condition: ArchSpec}, problems)``: conditions in the analysis' order, and one
    line per spec that is missing or unreadable (the report still gets written). A results CSV, a
    DataFrame or a folder holding only a results table has no specs: ``({}, [])``.
    """
    store = _store(source)
    if store is None:
        return {}, []
    from hplandscape.pruning.mask_spec import SPARSE_METHODS

    specs, problems = {}, []
    for c in result.conditions:
        if c.method == "none" or c.method in SPARSE_METHODS:  # masks, not widths: the sparsity section
            continue
        try:
            # shown only, so the layers are not re-checked against the registered architecture:
            # that would build it and import torch, which a report never needs
            spec = store.read_arch(c.name, check_architecture=False)
        except UserError as exc:
            problems.append(str(exc))
            continue
        if spec is None:
            problems.append(f"{c.name}: no pruned architecture stored at {store.spec_path(c.name)}")
        else:
            specs[c.name] = spec
    return specs, problems


def width_section(r: ReportInput):
    """"Pruned widths": each pruned condition's kept fraction per layer, read from the study's
    stored architecture specs, with a figure ``figures/widths.*``; a line for each spec missing
    or unreadable. None when there is nothing to show (a bare results CSV, a study without
    structured conditions, or one whose study.yaml cannot be read: "Study files" says why)."""
    if _study(r.source)[1] is None:
        return None
    specs, problems = pruned_specs(r.source, r.result)
    if not specs and not problems:
        return None
    from hplandscape.plots.figure_data import width_info

    rows = pd.DataFrame([{"condition": n, "method": s.method, "normalizer": s.normalizer or "—",
                          "max layer prune": "—" if s.max_layer_prune is None else f"{s.max_layer_prune:g}",
                          "FLOPs ratio": f"{s.achieved_ratio:.3f}", "min kept fraction": f"{s.min_kept_fraction:.3f}",
                          "layers at the cap": "—" if s.layers_at_cap is None
                          else f"{len(s.layers_at_cap)} of {len(s.widths)}"} for n, s in specs.items()])
    intro = ("Fraction of each prunable layer's channels that every pruned condition keeps (from the "
             "study's stored architectures). Global pruning should spread the cut over the layers; a "
             "layer at the cap lost as much as `pruning.max_layer_prune` allows.")
    md, body = [md_text(intro)], [f"<p>{html_text(intro)}</p>"]
    if len(rows):
        md += ["", md_table(rows)]
        body.append(html_table(rows, "{:.3f}"))
    if problems:
        md += ["", *[f"- {md_text(p)}" for p in problems]]
        body.append('<div class="warn"><ul>' + "".join(f"<li>{html_text(p)}</li>" for p in problems) + "</ul></div>")
    paths = ()
    if specs:
        from hplandscape.plots import mpl_backend as mb  # late: plotting libraries
        from hplandscape.plots import plotly_backend as pb

        info = width_info(specs)
        paths = r.save_figure(mb.width_figure(info), "widths")
        md += ["", *r.md_figure(paths)]
        body.append(fig_div(pb.width_figure(info), "widths"))
    return Section("pruned-widths", "Pruned widths", "\n".join(md), "\n".join(body), figures=paths)
