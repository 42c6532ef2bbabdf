"""Shared helpers: the real default spec, shrunk; a tiny run directory made through the CLI once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def small_spec(**changes) -> dict:
    """sweeps/activation_grid.yaml shrunk to a few networks and epochs; `changes` are dotted-key overrides."""
    raw = yaml.safe_load((ROOT / "sweeps" / "activation_grid.yaml").read_text())
    raw["name"] = "tiny"
    raw["train"].update(epochs=12, chunk_epochs=5)
    raw["mi"]["schedule"] = {"every": 3}
    raw["grid"] = {"seed": 2, "activation": ["tanh", "relu"], "hidden": [[10, 7, 5, 4, 3], [12, 8, 5, 4, 3]]}
    for key, value in changes.items():
        node = raw
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return raw


def run_cli(module: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


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


def sweep_to_run_dir(tmp_path: Path, raw: dict, *args: str):
    """Write `raw` as a spec, run `python -m ibjax.sweep` on it (no report) and load the run directory."""
    from ibjax.rundir import load

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    proc = run_cli("ibjax.sweep", str(spec), "--out", str(tmp_path / "o"), "--no-report", *args)
    assert proc.returncode == 0, proc.stderr
    return load(tmp_path / "o")


def assert_merged_equals_unsharded(merged, whole) -> None:
    """A sharded run directory holds the unsharded sweep's runs and rows; values equal to float32 rounding
    (the same networks in programs of another size; a sample on a bin edge may flip: < 0.02 bits)."""
    import numpy as np
    import pandas as pd

    assert merged.manifest["status"] == "done" and all(s["status"] == "done" for s in merged.manifest["shards"])
    assert sorted(merged.runs.run_id) == sorted(whole.runs.run_id)
    keys = ["run_id", "epoch", "layer", "estimator"]
    a = merged.info.sort_values(keys).reset_index(drop=True)
    b = whole.info.sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[keys], b[keys])
    np.testing.assert_allclose(a.i_xt, b.i_xt, atol=0.02)
    m = merged.metrics.sort_values(["run_id", "epoch"]).reset_index(drop=True)
    w = whole.metrics.sort_values(["run_id", "epoch"]).reset_index(drop=True)
    np.testing.assert_allclose(m.train_loss, w.train_loss, rtol=1e-5, atol=1e-6)
