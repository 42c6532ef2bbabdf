"""Fixtures shared by the test packages (helpers and NumPy references: tests/helpers.py, tests/reference.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers import run_cli, small_spec


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory from `python -m ibjax.sweep` on the shrunk default spec."""
    d = tmp_path_factory.mktemp("tiny")
    spec = d / "tiny.yaml"
    spec.write_text(yaml.safe_dump(small_spec()))
    out = d / "run"
    proc = run_cli("ibjax.sweep", str(spec), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out
