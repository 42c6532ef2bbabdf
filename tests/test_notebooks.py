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
    assert os.environ["IBJAX_RUN_DIR"] == str(tiny_run)
