"""The report sections only a study directory can give: grid map, training curves, pruned widths.

A results table holds one accuracy per run; the study directory also holds the config (so the
initial grid and its extensions), every run's per-epoch history and the pruned architectures.
Each section here is a :class:`~hplandscape.report_parts.Section`; a bare results CSV gives none.
Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import pandas as pd

from hplandscape.analysis.info import StudyAnalysis
from hplandscape.errors import UserError
from hplandscape.report_parts import FigureOptions, Section, fig_div, html_text, md_figure


def _store(source):
    """The study's store when ``source`` is a study directory (with its study.yaml), else None."""
    if isinstance(source, pd.DataFrame) or not Path(source).is_dir():
        return None
    from hplandscape.store import StudyStore

    store = StudyStore(source)
    return store if store.study_yaml.is_file() else None


def study_sections(source, result: StudyAnalysis, out: Path, opts: FigureOptions) -> list[Section]:
    """Grid map, training curves and pruned widths of a study directory (none for a results CSV)."""
    store = _store(source)
    if store is None:
        return []
    try:
        config = store.config()
    except UserError as exc:  # the report still shows what the results say
        return [Section(f"## Study files\n\n- {exc}\n", f'<div class="warn">{html_text(exc)}</div>')]
    sections = [grid_map_section(config, result, out, opts), curve_section(store, config, result, out, opts)]
    widths = width_section(source, result, out, opts)
    if widths is not None:
        sections.append(widths)
    return sections


# -- grid map (method Fig. 4.4) ----------------------------------------------------------------


def grid_map_section(config, result: StudyAnalysis, out: Path, opts: FigureOptions) -> Section:
    """Fig. 4.4: the initial grid of ``config`` and each extension ring of the analysed grid."""
    from hplandscape.plots import mpl_backend as mb, plotly_backend as pb  # late: plotting libraries
    from hplandscape.plots.gridmap import grid_map_info

    initial = dataclasses.replace(config.grid, extra_log10_lr=(), extra_log10_wd=())
    info = grid_map_info(result, initial.log10_lr_values(), initial.log10_wd_values())
    paths = opts.save(mb.grid_map_figure(info), out / "figures", "grid_map")
    words = (f"{info.title[0].upper()}{info.title[1:]}. "
             "Every grid point of the study (the method's Fig. 4.4): the initial grid (dotted outline) and the rows "
             "and columns `sweep --extend` added, ring by ring (each round adds at most one row or column per "
             "side, so the k-th ring beyond an initial edge is that side's k-th extension); star: the prior.")
    if info.touching:
        words += " Near-optimal regions still at the edge: " + "; ".join(
            f"{name} ({', '.join(sides)})" for name, sides in info.touching) + "."
    md = ["## Grid map", "", words, "", *md_figure(paths, out), ""]
    body = ["<h2>Grid map</h2>", f"<p>{html_text(words)}</p>",
            fig_div(pb.grid_map_figure(info), "grid-map")]
    return Section("\n".join(md), "\n".join(body), tuple(paths))


# -- training curves ---------------------------------------------------------------------------


def curve_section(store, config, result: StudyAnalysis, out: Path, opts: FigureOptions) -> Section:
    """Loss and accuracy per epoch at each condition's best point and at the prior."""
    from hplandscape.plots.curves import curve_info

    info = curve_info(store.iter_records(config), result)
    words = ("Per epoch, the training loss and the accuracy (held-out solid, training dotted) of each condition's "
             "runs at its best grid point (blue) and at the basemodel's prior (orange), one line per seed; a red "
             "cross marks the epoch where a run diverged (its loss stopped being finite).")
    missing = [f"- {m}" for m in info.missing]
    if info.empty:
        md = ["## Training curves", "", "No run record holds a per-epoch history to draw.", *missing, ""]
        body = ["<h2>Training curves</h2>", "<p>No run record holds a per-epoch history to draw.</p>"]
        return Section("\n".join(md), "\n".join(body))
    from hplandscape.plots import mpl_backend as mb, plotly_backend as pb  # late: plotting libraries

    paths = opts.save(mb.curve_figure(info), out / "figures", "training_curves")
    md = ["## Training curves", "", words, "", *md_figure(paths, out), *(["", *missing] if missing else []), ""]
    body = ["<h2>Training curves</h2>", f"<p>{html_text(words)}</p>", fig_div(pb.curve_figure(info), "curves")]
    if missing:
        body.append('<p class="note">' + "<br>".join(html_text(m[2:]) for m in missing) + "</p>")
    return Section("\n".join(md), "\n".join(body), tuple(paths))


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
    from hplandscape.maskspec import SPARSE_METHODS

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


def width_section(source, result: StudyAnalysis, out: Path, opts: FigureOptions = FigureOptions()):
    """The "Pruned widths" section, or None when there is nothing to show.

    Writes ``figures/widths.*`` under ``out``: each pruned condition's kept fraction per layer,
    read from the study's stored architecture specs (none for a bare results CSV).
    """
    specs, problems = pruned_specs(source, result)
    if not specs and not problems:
        return None
    from hplandscape.plots.info import width_info

    esc = html.escape
    rows = [(n, s.method, s.normalizer or "—", "—" if s.max_layer_prune is None else f"{s.max_layer_prune:g}",
             f"{s.achieved_ratio:.3f}", f"{s.min_kept_fraction:.3f}",
             "—" if s.layers_at_cap is None else f"{len(s.layers_at_cap)} of {len(s.widths)}")
            for n, s in specs.items()]
    head = ("condition", "method", "normalizer", "max layer prune", "FLOPs ratio", "min kept fraction",
            "layers at the cap")
    intro = ("Fraction of each prunable layer's channels that every pruned condition keeps (from the "
             "study's stored architectures). Global pruning should spread the cut over the layers; a "
             "layer at the cap lost as much as `pruning.max_layer_prune` allows.")
    md = ["## Pruned widths", "", intro, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    body = ["<h2>Pruned widths</h2>", f"<p>{html_text(intro)}</p>"]
    if rows:
        body.append('<div class="table-wrap"><table><tr>' + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"
                    + "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in r) + "</tr>" for r in rows)
                    + "</table></div>")
    if problems:
        md += ["", *[f"- {p}" for p in problems]]
        body.append('<div class="warn"><ul>' + "".join(f"<li>{html_text(p)}</li>" for p in problems) + "</ul></div>")
    paths = []
    if specs:
        from hplandscape.plots import mpl_backend as mb, plotly_backend as pb  # late: plotting libraries

        info = width_info(specs)
        paths = opts.save(mb.width_figure(info), out / "figures", "widths")
        md += ["", *md_figure(paths, out)]
        body.append(fig_div(pb.width_figure(info), "widths"))
    return Section("\n".join(md + [""]), "\n".join(body), tuple(paths))
