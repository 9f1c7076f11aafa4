"""The notebooks: executed as CI does, and committed with outputs that static viewers can show."""

import json
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from hplandscape.analysis.example import write_example_results

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PLOTLY = "application/vnd.plotly.v1+json"
#: A committed notebook above this holds more than its figures (plotly.js itself is 4.6 MB).
MAX_BYTES = 3_000_000


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(parts)


def _figures_without_png(nb) -> list:
    """Cells where an interactive Plotly figure is not followed by a PNG (all that GitHub shows)."""
    return [i for i, cell in enumerate(nb.cells) if not all(_paired(cell.get("outputs", [])))]


def _paired(outputs) -> list:
    """For every Plotly output, whether the next figure output of its cell is a PNG."""
    figures = [o for o in outputs if PLOTLY in o.get("data", {}) or "image/png" in o.get("data", {})]
    return [i + 1 < len(figures) and "image/png" in figures[i + 1]["data"]
            for i, o in enumerate(figures) if PLOTLY in o["data"]]


def _execute(name, tmp_path, monkeypatch, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("name, expected", [
    ("landscape.ipynb", ["roi1.0_length", "extra_log10_lr", "image/png", PLOTLY, "roi_interaction",
                         "(0.8, 0.2, 0.0)", "['landscape.pdf']"]),
    ("risk.ipynb", ["d_mean", "Keeping the unpruned model's near-optimal settings costs", "no record",
                    "re-tuning buys", "on_prior_front", "1 point below acc_p at r = "]),
])
def test_notebook_runs_on_the_example_results(name, expected, tmp_path, monkeypatch):
    csv = write_example_results(tmp_path / "results.csv")
    nb = _execute(name, tmp_path, monkeypatch, HPLANDSCAPE_RESULTS=csv)
    text = _outputs_text(nb) + "\n" + "\n".join(
        str(k) for c in nb.cells for o in c.get("outputs", []) for k in o.get("data", {}))
    assert str(csv) in text  # it read the results we gave it, not the built-in example
    for snippet in expected:
        assert snippet in text, snippet
    assert _figures_without_png(nb) == []


@pytest.mark.slow
def test_the_study_notebook_runs_a_small_study_end_to_end(tmp_path, monkeypatch):
    study = tmp_path / "study"
    nb = _execute("study.ipynb", tmp_path, monkeypatch, HPLANDSCAPE_STUDY_DIR=study)
    text = _outputs_text(nb)
    assert "overrides: train.epochs=2 grid.size=[3, 3] seeds=[0]" in text
    assert "27 runs, 0 already recorded, 27 submitted; now 27 done" in text
    assert f"Report: {study / 'report' / 'index.html'}" in text and (study / "report" / "index.html").is_file()
    assert len(list(study.glob("runs/*/*/seed0/record.json"))) == 27
    stored = (study / "study.yaml").read_text()
    assert yaml.safe_load(stored)["train"]["epochs"] == 2 and "with the overrides train.epochs=2" in stored
    assert _figures_without_png(nb) == [] and PLOTLY in json.dumps([c.get("outputs") for c in nb.cells])


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_with_outputs_static_viewers_show(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), "run the notebook and save it (make notebooks)"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "executed top to bottom, once"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert _figures_without_png(nb) == [], "an interactive figure without its static PNG"
    assert path.stat().st_size < MAX_BYTES, "plotly.js embedded? use the notebook's renderer setting"


def test_the_pairing_check_can_fail():
    plotly = nbformat.v4.new_output("display_data", data={PLOTLY: {}, "text/html": ""})
    png = nbformat.v4.new_output("display_data", data={"image/png": ""})
    cells = [nbformat.v4.new_code_cell(outputs=outs) for outs in
             ([plotly, png], [plotly], [plotly, plotly, png], [png, plotly], [png])]
    assert _figures_without_png(nbformat.v4.new_notebook(cells=cells)) == [1, 2, 3]
