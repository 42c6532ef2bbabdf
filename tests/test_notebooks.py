"""Notebooks run top to bottom on a tiny real run directory, so they cannot rot."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import ROOT


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_notebook_executes(tiny_run, name, monkeypatch):
    monkeypatch.setenv("IBJAX_RUN_DIR", str(tiny_run))
    monkeypatch.setenv("IBJAX_HOST_DEVICES", "1")
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    # Every cell that draws shows its figure with the notebook's own (inline) backend: importing ibjax must
    # not switch matplotlib to a file-only backend.
    drawing = [c for c in nb.cells if c.cell_type == "code"
               and any(k in c.source for k in ("plt.subplots(", "plt.figure(", "display(Image"))]
    assert drawing
    for c in drawing:
        assert any("image/png" in o.get("data", {}) for o in c.get("outputs", [])), c.source[:120]
    assert os.environ["IBJAX_RUN_DIR"] == str(tiny_run)
