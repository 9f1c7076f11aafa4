"""Execute the notebooks on the small example results set, as CI does."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from hplandscape.analysis.example import write_example_results

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for v in out.get("data", {}).values())
    return "\n".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("name, expected", [
    ("landscape.ipynb", ["roi1.0_length", "extra_log10_lr", "image/png", "application/vnd.plotly.v1+json",
                         "roi_interaction", "(0.8, 0.2, 0.0)"]),
    ("risk.ipynb", ["d_mean", "Keeping the unpruned model's near-optimal settings costs", "no record",
                    "re-tuning buys", "on_prior_front", "1 point below acc_p at r = "]),
])
def test_notebook_runs_on_the_example_results(name, expected, tmp_path, monkeypatch):
    csv = write_example_results(tmp_path / "results.csv")
    monkeypatch.setenv("HPLANDSCAPE_RESULTS", str(csv))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = _outputs_text(nb) + "\n" + "\n".join(
        str(k) for c in nb.cells for o in c.get("outputs", []) for k in o.get("data", {}))
    assert str(csv) in text  # it read the results we gave it, not the built-in example
    for snippet in expected:
        assert snippet in text, snippet
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
