"""Fixtures shared by the test packages (helpers and NumPy references: tests/helpers.py, tests/reference.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_cli, small_spec

# A persistent XLA compilation cache for this test worker and every sweep it starts: the suite compiles the same
# small programs in many processes (each CLI test is a new interpreter); each is compiled once and then loaded
# (a tiny sweep: 16 s -> 7 s). Keys hash the program, the compile options and the jax version, so a changed
# program compiles anew; one folder per xdist worker, so concurrent writers are rare (JAX re-compiles an entry
# it cannot read). Set before any test imports JAX, which reads these at import.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(Path(tempfile.gettempdir()) / f"ibjax-tests-{os.getuid()}" / f"xla-cache-{_WORKER}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


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
