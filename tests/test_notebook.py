"""The notebook runs top to bottom on a tiny sweep and is committed without outputs."""

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient

NOTEBOOK = ROOT / "notebooks" / "degradation.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_notebook_executes_on_a_tiny_sweep(tiny_sweep, monkeypatch):
    monkeypatch.setenv("RESLAB_SWEEP", str(tiny_sweep))
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5  # the five figures
    # The tiny sweep holds plain runs at two learning rates, so its plain runs are labelled with their lr.
    assert any("| plain (optim.lr=0.1) | 8 |" in o.get("data", {}).get("text/markdown", "") for o in outputs)
