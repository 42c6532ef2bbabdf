"""MI on the training and the held-out sample in one sweep (data.mi_sample.split both): each sample measured as a
sweep measuring only it would, an info.parquet `split` column, the report's side-by-side comparison, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from ibjax.rundir.store import load
from tests.helpers import run_cli, small_spec

N = 512


def _sweep(tmp_path, name: str, split: str, *extra: str):
    spec = small_spec(**{"data.mi_sample": {"split": split, "n": N}, "grid": {"seed": 2, "activation": ["tanh"]}})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / name
    return run_cli("ibjax.sweep", str(path), "--out", str(out), *extra), out


def test_both_samples_are_measured_as_each_alone(tmp_path):
    proc, both = _sweep(tmp_path, "both", "both")
    assert proc.returncode == 0, proc.stderr
    proc, train = _sweep(tmp_path, "train", "train", "--no-report")
    assert proc.returncode == 0, proc.stderr
    rd, alone = load(both), load(train)
    assert rd.manifest.n_mi_samples == N  # the rows one measurement sees (the ceilings' N)
    rows = pd.read_parquet(both / "mi_sample.parquet")
    assert rows.groupby("sample").size().to_dict() == {"train": N, "test": N}
    assert rows[rows["sample"] == "train"].shared_train.all() and not rows[rows["sample"] == "test"].shared_train.any()
    # The training sample is the one a sweep of split train draws (same rows), measured on the same networks.
    assert rows[rows["sample"] == "train"].row.tolist() == pd.read_parquet(train / "mi_sample.parquet").row.tolist()
    assert set(rd.info.split) == {"train", "test"}
    keys = ["run_id", "epoch", "layer", "estimator"]
    mine = rd.info[rd.info.split == "train"].drop(columns="split").sort_values(keys).reset_index(drop=True)
    theirs = alone.info.sort_values(keys).reset_index(drop=True)
    assert len(mine) == len(theirs) > 0
    # One forward pass over both samples against one over the training sample: activations may round apart at a
    # bin edge, moving a pattern between bins (a few patterns of 512 at most); most values are bit-identical.
    diff = np.abs(mine.i_xt.to_numpy() - theirs.i_xt.to_numpy())
    assert (diff == 0).mean() > 0.9 and diff.max() < 0.05
    # The held-out sample is another set of rows: another trajectory.
    test = rd.info[rd.info.split == "test"].sort_values(keys).reset_index(drop=True)
    assert not np.allclose(test.i_xt.to_numpy(), mine.i_xt.to_numpy())
    report = (both / "REPORT.md").read_text()
    assert "## Compression on the training and the held-out sample" in report and "binning30@test" in report
    table = pd.read_csv(both / "samples.csv")
    assert {"compressed_train", "compressed_test", "drop_diff_bits"} <= set(table.columns)


def test_a_sample_that_does_not_fit_names_the_key(tmp_path):
    spec = small_spec(**{"data.mi_sample": {"split": "both", "n": 2000}})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = run_cli("ibjax.sweep", str(path), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "data.mi_sample.n" in proc.stderr and "Traceback" not in proc.stderr
    spec = small_spec(**{"data.mi_sample": {"split": "both"}, "data.irrelevant_inputs": 4})
    path.write_text(yaml.safe_dump(spec))
    proc = run_cli("ibjax.sweep", str(path), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "mi_sample.split" in proc.stderr and "Traceback" not in proc.stderr


def test_two_samples_need_the_shared_split(tmp_path):
    """With per-run training sets the shared split's samples would hold untrained 'train' rows: refused."""
    spec = small_spec(**{"data.mi_sample": {"split": "both", "n": 256}, "grid.train_fraction": [0.5, 0.85]})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    proc = run_cli("ibjax.sweep", str(path), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "grid.train_fraction" in proc.stderr and "Traceback" not in proc.stderr
