"""Fixtures shared by the test packages (helpers and NumPy references: tests/helpers.py, tests/reference.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_cli, small_spec

# A persistent XLA compilation cache for the test workers and every sweep they start: the suite compiles the
# same small programs in many processes (each CLI test is a new interpreter); each is compiled once and then
# loaded (a tiny sweep: 16 s -> 7 s). Keys hash the program, the compile options and the jax version, so a
# changed program compiles anew. One folder for both xdist workers, so a program one worker compiled is loaded
# by the other (an entry read while it is being written fails to load and is compiled again, with a warning).
# Set before any test imports JAX, which reads these at import.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(Path(tempfile.gettempdir()) / f"ibjax-tests-{os.getuid()}" / "xla-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

# The tests call the engine and the estimators directly, in the process set-up the command lines make (one XLA
# CPU device per core, 64-bit types); importing ibjax does not make it (tests/test_import.py checks that).
import ibjax  # noqa: E402

ibjax.configure_process()


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
