"""Helpers shared by the tests, written once: the real default spec shrunk, the CLI as a user runs it, tiny
engines, and the comparison of a sharded run directory with an unsharded one."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"  # the developers' reference files (the original 12-bit dataset), CI has them


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


def sweep_to_run_dir(tmp_path: Path, raw: dict, *args: str):
    """Write `raw` as a spec, run `python -m ibjax.sweep` on it (no report) and load the run directory."""
    from ibjax.rundir import load

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    proc = run_cli("ibjax.sweep", str(spec), "--out", str(tmp_path / "o"), "--no-report", *args)
    assert proc.returncode == 0, proc.stderr
    return load(tmp_path / "o")


@cache
def tishby_task():
    """The 12-bit task with the default split (host arrays; `.device_data()` for the engine)."""
    from ibjax.data import load_task
    from ibjax.spec import DataSpec

    return load_task(DataSpec())


def tiny_program(hidden=(10, 7, 5, 4, 3), activations=("tanh",), *, optimizer="adam", batch_size=256,
                 estimators=None, chunk=4, n_train=None, **program):
    """The Program of MLPs on the 12-bit task (hidden: the padded widths); estimators default to 30-bin binning."""
    from ibjax.mi import Binning
    from ibjax.train import Program

    n_train = tishby_task().train_idx.size if n_train is None else n_train
    return Program((12, *hidden, 2), tuple(activations), optimizer, n_train, batch_size,
                   tuple(estimators) if estimators is not None else (Binning(n_classes=2),), chunk, **program)


def tiny_bucket(models, pad=None, **program):
    """(Engine, stacked consts) of MLPs on the 12-bit task; models: [(true widths, activation), ...], padded to
    `pad` (default: the largest width per layer)."""
    from ibjax.models.mlp import stack_consts
    from ibjax.train import Engine

    pad = tuple(pad or (max(w) for w in zip(*(h for h, _ in models))))
    names = tuple(sorted({a for _, a in models}))
    return Engine(tiny_program(pad, names, **program)), stack_consts(list(models), names, 12, pad)


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
