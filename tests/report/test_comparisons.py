"""Every grid axis is a cell setting: quantize_bits and noise_std get their own comparisons and labels.

The runs table is made the way a sweep makes it (spec -> expand_grid -> runs.parquet columns, through a parquet
round trip, so None comes back as NaN as it does from disk); verdicts are synthetic so that the expected pairs
are known exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ibjax.report import cell_labels, compare_cells, one_setting_pairs, summarize
from ibjax.rundir import GRID_AXES
from ibjax.rundir.contract import setting_key
from ibjax.spec import validate
from ibjax.sweep.plan import expand_grid
from ibjax.sweep.tables import setting_columns

N_SEEDS = 6
N_TRAIN = 3481


def runs_table(tmp_path, grid: dict, **sections) -> pd.DataFrame:
    spec = validate({"grid": {"seed": N_SEEDS, **grid}, **sections})
    rows = [{"run_id": f"r{i}", "cell": r.cell(), "seed": r.seed, **setting_columns(r, spec, N_TRAIN),
             "train_acc": 1.0, "test_acc": 0.9, "diverged": False} for i, r in enumerate(expand_grid(spec))]
    pd.DataFrame(rows).to_parquet(tmp_path / "runs.parquet")
    return pd.read_parquet(tmp_path / "runs.parquet")


def verdicts_for(runs: pd.DataFrame, compressed) -> pd.DataFrame:
    """One h5 verdict per run; `compressed(run row)` decides it."""
    rows = []
    for r in runs.itertuples():
        c = bool(compressed(r))
        rows.append({"run_id": r.run_id, "cell": r.cell, "seed": r.seed, "layer": "h5", "estimator": "binning30",
                     "compressed": c, "drop_rel": 0.3 if c else 0.0, "drop_bits": 1.0 if c else 0.0,
                     "saturated": False, "compression_after_fit": c, "peak_at_end": False, "fit_epoch": 10,
                     "peak_epoch": 100, "transient_drop_bits": 0.1, "noise_bits": 0.05})
    return pd.DataFrame(rows)


def setting_values(runs: pd.DataFrame, cell: str) -> dict:
    row = runs[runs.cell == cell].iloc[0]
    return {a: setting_key(row[a]) for a in GRID_AXES}


@pytest.mark.parametrize("grid", [
    {"activation": ["tanh", "relu"], "quantize_bits": [None, 8]},
    {"activation": ["tanh", "relu"], "noise_std": [None, 0.1]},
    {"activation": ["tanh", "relu"], "quantize_bits": [None, 8], "noise_std": [None, 0.1]},
])
def test_each_axis_gets_its_own_one_setting_comparisons(tmp_path, grid):
    runs = runs_table(tmp_path, grid)
    cells = list(dict.fromkeys(runs.cell))
    assert len(cells) == np.prod([len(v) for v in grid.values()])
    labels = cell_labels(runs)
    assert len(set(labels.values())) == len(cells), f"two cells share a label: {labels}"

    pairs = one_setting_pairs(runs)
    # Exactly one pair per cell and axis: the other value of that axis, all else equal.
    n_values = {k: len(v) for k, v in grid.items()}
    expected = sum(len(cells) * (n - 1) // 2 for n in n_values.values())
    assert len(pairs) == expected
    assert {p[0] for p in pairs} == set(grid)
    for setting, a, b in pairs:
        va, vb = setting_values(runs, a), setting_values(runs, b)
        differ = [k for k in GRID_AXES if va[k] != vb[k]]
        assert differ == [setting], (a, b)


def test_quantized_vs_not_compared_within_one_activation(tmp_path):
    """The comparison Lorenzen et al. make: quantized vs not, the activation held fixed."""
    runs = runs_table(tmp_path, {"activation": ["tanh", "relu"], "quantize_bits": [None, 8]})
    # Only quantized tanh compresses: the quantization comparison is +1 for tanh, 0 for relu.
    v = verdicts_for(runs, lambda r: r.activation == "tanh" and not pd.isna(r.quantize_bits))
    comp = compare_cells(v, runs)
    q = comp[comp.setting == "quantize_bits"]
    assert len(q) == 2 and (q.n_pairs == N_SEEDS).all()
    by_act = {setting_values(runs, r.cell_a)["activation"]: r for r in q.itertuples()}
    assert set(by_act) == {"tanh", "relu"}
    assert abs(by_act["tanh"].diff) == 1.0 and by_act["relu"].diff == 0.0
    acts = comp[comp.setting == "activation"]
    assert len(acts) == 2  # tanh vs relu, once unquantized and once 8-bit: never mixed
    for r in acts.itertuples():
        assert setting_values(runs, r.cell_a)["quantize_bits"] == setting_values(runs, r.cell_b)["quantize_bits"]

    s = summarize(v, runs)
    assert {"quantize_bits", "noise_std"} <= set(s.columns)
    assert len(s) == 4 and s.cell.nunique() == 4


def test_labels_say_which_setting_differs(tmp_path):
    runs = runs_table(tmp_path, {"activation": ["tanh"], "quantize_bits": [None, 8], "noise_std": [None, 0.1]})
    labels = sorted(cell_labels(runs).values())
    assert labels == ["8-bit deterministic", "8-bit noise 0.1", "float deterministic", "float noise 0.1"]


def test_full_batch_and_minibatch_runs_in_typed_columns(tmp_path):
    """batch_size is an integer column (a full batch: the run's training rows, marked full_batch), and the label
    still says 'full batch'; weight decay 0 is stored as 0.0 and labelled 'no L2'."""
    runs = runs_table(tmp_path, {"activation": ["tanh"], "batch_size": [256, "full"], "weight_decay": [0.0, 1e-4]})
    assert runs.batch_size.dtype == np.int64 and set(runs.batch_size) == {256, N_TRAIN}
    assert (runs.full_batch == (runs.batch_size == N_TRAIN)).all() and runs.full_batch.dtype == bool
    assert set(runs.weight_decay) == {0.0, 1e-4}
    assert sorted(cell_labels(runs).values()) == ["batch 256 L2 0.0001", "batch 256 no L2", "full batch L2 0.0001",
                                                  "full batch no L2"]
    assert {p[0] for p in one_setting_pairs(runs)} == {"batch_size", "weight_decay"}


def test_a_users_flax_module_has_no_widths_of_its_own_in_the_table(tmp_path):
    runs = runs_table(tmp_path, {"learning_rate": [1e-3, 1e-2]},
                      model={"kind": "flax", "module": "examples/user_model.py:TinyCNN"})
    assert runs.hidden.isna().all() and runs.depth.isna().all() and runs.activation.isna().all()
    assert runs.dropout.isna().all() and (runs.weight_decay == 0.0).all()
    assert sorted(cell_labels(runs).values()) == ["lr 0.001", "lr 0.01"]
