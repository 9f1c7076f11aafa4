"""The report's "Pruned widths" section: each pruned condition's kept fraction per layer."""

import pytest
from conftest import fake_prune, study_record, tiny_config

from hplandscape.analysis.example import write_example_results
from hplandscape.pruning.structured import prune
from hplandscape.report.study_report import write_report
from hplandscape.store.study_store import StudyStore
from hplandscape.study.grid import make_grid

CONDITIONS = [{"method": "none"}, {"method": "uniform", "ratio": 0.5}, {"method": "global", "ratio": 0.5}]


def _study(root):
    """A finished 3 × 3 study of three conditions with records peaking at the prior."""
    config = tiny_config(conditions=CONDITIONS, pruning={"source": "random"},
                         grid={"prior_lr": 0.1, "prior_wd": 1e-4, "size": [3, 3], "step": 0.5})
    store = StudyStore(root)
    store.init_study(config)
    points = {p.key: p for p in make_grid(config.grid)}
    for run_id in store.run_ids():
        p = points[run_id.split("/")[1]]
        top1 = 90.0 - 8 * ((p.log10_lr + 1) ** 2 + (p.log10_wd + 4) ** 2)
        store.write_record(run_id, study_record(config, run_id, top1))
    return config, store


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    config, store = _study(tmp_path_factory.mktemp("widths") / "study")
    store.write_arch("uniform-0.5", fake_prune("resnet20", "uniform", 0.5, num_classes=10, in_channels=1,
                                               input_shape=(1, 8, 8)))
    store.write_arch("global-0.5", prune("resnet20", "global", 0.5, input_shape=(1, 8, 8)))
    return store


def test_report_of_a_study_shows_each_pruned_conditions_widths(study):
    index = write_report(study.root)
    out = index.parent
    assert (out / "figures" / "widths.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "summary.md").read_text(encoding="utf-8")
    section = md.split("## Pruned widths")[1].split("## Environment")[0]
    glob = study.read_arch("global-0.5")
    assert f"| global-0.5 | global | mean | 0.9 | {glob.achieved_ratio:.3f} | {glob.min_kept_fraction:.3f} | " in section
    assert "| uniform-0.5 | uniform | — | — |" in section and "![widths](figures/widths.png)" in section
    text = index.read_text(encoding="utf-8")
    assert "<h2>Pruned widths</h2>" in text and 'id="widths"' in text


def test_missing_spec_is_listed_and_a_bare_csv_has_no_section(tmp_path):
    _, store = _study(tmp_path / "study")
    store.write_arch("global-0.5", prune("resnet20", "global", 0.5, input_shape=(1, 8, 8)))
    md = (write_report(store.root).parent / "summary.md").read_text(encoding="utf-8")
    assert f"uniform-0.5: no pruned architecture stored at {store.spec_path('uniform-0.5')}" in md
    csv = write_example_results(tmp_path / "results.csv")
    md = (write_report(csv).parent / "summary.md").read_text(encoding="utf-8")
    assert "Pruned widths" not in md
