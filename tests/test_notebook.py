"""The notebook runs top to bottom on a tiny sweep and is committed without outputs."""

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient

NOTEBOOK = ROOT / "notebooks" / "degradation.ipynb"


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def run_notebook(sweep, monkeypatch) -> list:
    monkeypatch.setenv("RESLAB_SWEEP", str(sweep))
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return outputs


def markdown(outputs) -> str:
    return "\n".join(o.get("data", {}).get("text/markdown", "") for o in outputs)


@pytest.mark.slow
def test_notebook_shows_what_the_summary_shows_on_a_tiny_sweep(tiny_sweep, monkeypatch):
    outputs = run_notebook(tiny_sweep, monkeypatch)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5  # the five figures
    text = markdown(outputs)
    # The tiny sweep holds plain runs at two learning rates, so its plain runs are labelled with their lr.
    assert "| plain (optim.lr=0.1) | 8 |" in text
    assert "| dataset | synthetic, images 32×32 |" in text  # the setup
    assert "residual beats plain" in text and "Holm" in text  # the differences and verdicts
    assert "DataError: cifar10: archive is truncated" in text  # the job that did not finish
    assert "Not drawn" not in text


@pytest.mark.slow
def test_notebook_says_what_a_sweep_kept_without_curves_or_arrays_cannot_show(analysis_sweep, monkeypatch):
    for pattern in ("*/curves.csv", "*/events.out.tfevents.*", "*/grad_norms.npz", "*/responses.npz"):
        for path in analysis_sweep.glob(pattern):
            path.unlink()
    outputs = run_notebook(analysis_sweep, monkeypatch)
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) == 1  # error_vs_depth, from the records
    text = markdown(outputs)
    for name in ("error_curves", "grad_norm_profiles", "grad_norm_heatmaps", "response_std"):
        assert f"**Not drawn:** `{name}` needs" in text, name
