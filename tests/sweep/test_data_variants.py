"""Image data and data variants through the CLI, as a user runs them: cells per variant, the extra MI columns,
the recorded MI sample, and a report that compares the variants."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import yaml

from tests.data.test_images import FASHION, fake_idx_folder
from tests.helpers import ROOT, run_cli


def image_folder(tmp_path):
    """The real Fashion-MNIST files where they are installed, else IDX files written here."""
    if FASHION.is_dir():
        return FASHION
    fake_idx_folder(tmp_path / "imgs", 300, 100)
    return tmp_path / "imgs"


def test_label_noise_sweep_on_image_data_writes_cells_columns_and_a_comparing_report(tmp_path):
    folder = image_folder(tmp_path)
    raw = {"name": "mem", "data": {"dataset": "idx", "path": str(folder), "train_rows": 200, "test_rows": 100,
                                   "mi_sample": {"n": 150, "seed": 1}},
           "model": {"hidden": [32, 16], "activation": "tanh"},
           "train": {"epochs": 6, "chunk_epochs": 3, "batch_size": 50, "learning_rate": 1e-3},
           "mi": {"schedule": {"every": 2}}, "grid": {"seed": 2, "label_noise": [0.0, 1.0]}}
    spec = tmp_path / "mem.yaml"
    spec.write_text(yaml.safe_dump(raw))
    proc = run_cli("ibjax.sweep", str(spec), "--out", str(tmp_path / "o"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "o"
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(runs.label_noise.unique()) == [0.0, 1.0] and runs.cell.nunique() == 2
    assert all(c.endswith(f"label_noise={p:g}") for c, p in zip(runs.cell, runs.label_noise))
    info = pd.read_parquet(out / "info.parquet")
    assert {"i_ty", "i_ty_trained"} <= set(info.columns) and set(info.layer) == {"h1", "h2", "out"}
    clean = info.merge(runs[["run_id", "label_noise"]]).query("label_noise == 0")
    assert (clean.i_ty == clean.i_ty_trained).all()  # p = 0: the trained-on labels are the true ones
    sample = pd.read_parquet(out / "mi_sample.parquet")
    assert len(sample) == 150 and sample.row.is_unique and set(sample.source_split) <= {"train", "test"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_mi_samples"] == 150 and manifest["dataset"]["image_shape"] == [28, 28]
    assert len(manifest["buckets"]) == 1 and manifest["buckets"][0]["device_bytes"] > 0  # both variants: one program
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert set(comparisons.setting) == {"label_noise"}
    report = (out / "REPORT.md").read_text()
    assert "true labels" in report and "label noise 1" in report  # cells named by their variant
    # What a label-noise study measures beside I(T;Y): I(T;Y) against the labels trained on, in the report.
    assert "## I(T;Y): true labels and the labels trained on" in report
    li = pd.read_csv(out / "label_information.csv").merge(runs[["cell", "label_noise"]].drop_duplicates())
    assert len(li) == 2 * 3 and (li[li.label_noise == 0].trained_minus_true == 0).all()
    final = info[info.epoch == info.epoch.max()].merge(runs[["run_id", "cell"]])
    want = final.groupby(["cell", "layer"]).i_ty_trained.mean()
    np.testing.assert_allclose(li.set_index(["cell", "layer"]).i_ty_trained.loc[want.index], want)
    # ... and over the epochs, in a figure the report names.
    assert (out / "figures" / "label_information_binning30.png").stat().st_size > 0
    assert "figures/label_information_binning30.png" in report


def test_training_fraction_sweep_is_one_program_with_a_cell_per_fraction(tmp_path):
    raw = yaml.safe_load((ROOT / "sweeps" / "training_size.yaml").read_text())
    raw["train"].update(epochs=6, chunk_epochs=3)
    raw["mi"]["schedule"] = {"every": 2}
    raw["grid"]["seed"] = 2
    raw["output"] = {"plots": False}
    spec = tmp_path / "ts.yaml"
    spec.write_text(yaml.safe_dump(raw))
    proc = run_cli("ibjax.sweep", str(spec), "--out", str(tmp_path / "o"), "--quiet", "--no-report")
    assert proc.returncode == 0, proc.stderr
    runs = pd.read_parquet(tmp_path / "o" / "runs.parquet")
    assert sorted(runs.train_fraction.unique()) == [0.05, 0.45, 0.85] and runs.bucket.nunique() == 1
