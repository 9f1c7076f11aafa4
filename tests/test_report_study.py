"""What a study directory adds to its report: the grid map with its extension, training curves from
the records' per-epoch histories (divergence visible), the pruned widths."""

import pytest
from conftest import fake_prune, study_record, tiny_config

from hplandscape.report.study_report import make_report
from hplandscape.store.study_store import StudyStore
from hplandscape.study.grid import make_grid

CONDITIONS = [{"method": "none"}, {"method": "uniform", "ratio": 0.5}]


def _history(epochs, top1, diverge_at=None):
    out = []
    for e in range(epochs):
        loss = None if e == diverge_at else 2.3 / (e + 1)
        out.append({"epoch": e, "lr": 0.1, "train_loss": loss, "train_acc": top1 * (e + 1) / epochs,
                    "val_acc": top1 * (e + 1) / epochs})
        if loss is None:
            break
    return out


def _extended_study(root, with_history=True):
    """A 3 × 3 grid around the prior, extended by one lr row above and one wd column below."""
    config = tiny_config(conditions=CONDITIONS, grid={"prior_lr": 0.1, "prior_wd": 1e-4, "size": [3, 3], "step": 0.5,
                                                      "extra_log10_lr": [0.0], "extra_log10_wd": [-5.0]})
    store = StudyStore(root)
    store.init_study(config)
    points = {p.key: p for p in make_grid(config.grid)}
    for run_id in store.run_ids():
        name, key, _ = run_id.split("/")
        c, p = config.condition(name), points[key]
        top1 = 90.0 - 8 * ((p.log10_lr + 1) ** 2 + (p.log10_wd + 4) ** 2) - (2.0 if c.method != "none" else 0.0)
        diverged = p.log10_lr == -1.0 and p.log10_wd == -4.0 and c.method != "none"  # at the prior
        top1 = 10.0 if diverged else top1
        history = {"history": _history(3, top1, 1 if diverged else None)} if with_history else {}
        store.write_record(run_id, study_record(config, run_id, top1, diverged=diverged,
                                                diverged_epoch=1 if diverged else None,
                                                epochs_completed=1 if diverged else 3, **history))
    store.write_arch("uniform-0.5", fake_prune("resnet20", "uniform", 0.5, num_classes=10, in_channels=1,
                                               input_shape=(1, 8, 8)))
    return store


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    store = _extended_study(tmp_path_factory.mktemp("study") / "study")
    return make_report(store.root, n_boot=99, formats="png,svg")


def test_the_grid_map_marks_the_initial_grid_and_the_extension(report):
    md = report.summary.read_text(encoding="utf-8")
    section = md.split("## Grid map")[1].split("\n## ")[0]
    assert "![grid_map](figures/grid_map.png)" in section and "[SVG](figures/grid_map.svg)" in section
    assert section.lstrip().startswith("Grid map: the initial 3 × 3 grid and 1 extension ring (4 × 4 in all).")
    text = report.index.read_text(encoding="utf-8")
    assert "<h2>Grid map</h2>" in text and 'id="grid-map"' in text


def test_training_curves_of_the_best_point_and_the_prior_with_divergence(report):
    md = report.summary.read_text(encoding="utf-8")
    assert "## Training curves" in md and "![training_curves](figures/training_curves.png)" in md
    curves = report.index.read_text(encoding="utf-8").split('id="curves"')[1].split("<h2>")[0]
    assert "diverged (loss not finite)" in curves  # the pruned condition diverged at the prior
    from hplandscape.plots.curves import curve_info

    info = curve_info(StudyStore(report.index.parent.parent).iter_records(), report.result)
    base, pruned = info.panels
    assert [r.role for r in base.runs] == ["best"] and base.runs[0].label.startswith("best = prior")
    assert len(base.runs[0].epoch) == 3
    assert [(r.role, r.diverged_epoch) for r in pruned.runs] == [("best", None), ("prior", 1)]


def test_a_study_without_histories_says_so_and_keeps_the_other_sections(tmp_path):
    store = _extended_study(tmp_path / "study", with_history=False)
    report = make_report(store.root, n_boot=99)
    md = report.summary.read_text(encoding="utf-8")
    assert "No run record holds a per-epoch history to draw." in md
    assert "## Grid map" in md and "## Pruned widths" in md
    assert not (tmp_path / "study" / "report" / "figures" / "training_curves.png").exists()


def test_the_pruned_widths_are_in_the_report(report):
    md = report.summary.read_text(encoding="utf-8")
    assert "## Pruned widths" in md and "![widths](figures/widths.png)" in md
    assert "| uniform-0.5 | uniform | — | — |" in md
