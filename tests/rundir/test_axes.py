"""The axis table (ibjax.rundir.axes) against everything derived from it or declared beside it: for every axis, a
sweep over two of its values is validated by the spec, expands to two cells that differ in exactly that setting,
splits programs as the table says, and gives run-table columns, cell labels, comparisons and file names that
tell the two apart. A new axis without a row here, or a row that disagrees with the code, fails."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd
import pytest

from ibjax.report import cell_labels, one_setting_pairs
from ibjax.report.labels import cell_slug
from ibjax.rundir.axes import AXES
from ibjax.rundir.contract import GRID_AXES, cell_settings, setting_key, setting_text
from ibjax.spec import GridSpec, validate
from ibjax.sweep.plan import Run, expand_grid, network_ids
from ibjax.sweep.tables import setting_columns, typed_settings
from tests.helpers import ROOT

CONV = {"kind": "conv", "channels": [4], "hidden": [8], "activation": "tanh"}
FLAX = {"kind": "flax", "module": f"{ROOT}/examples/user_model.py:TinyCNN", "kwargs": {"channels": 2}}
DIGITS = {"dataset": "digits", "train_fraction": 0.8}
# Two grid values of each axis, and the spec sections a sweep over it needs.
EXAMPLES = {
    "activation": (["tanh", "relu"], {}),
    "hidden": ([[6, 4], [8, 4]], {}),
    "optimizer": (["sgd", "adam"], {}),
    "learning_rate": ([1e-3, 1e-2], {}),
    "momentum": ([0.5, 0.9], {"train": {"optimizer": "momentum"}}),
    "batch_size": ([256, "full"], {}),
    "quantize_bits": ([None, 8], {}),
    "noise_std": ([None, 0.1], {}),
    "train_fraction": ([0.5, 0.85], {}),
    "label_noise": ([0.0, 0.5], {}),
    "inputs": (["original", "gaussian"], {}),
    "channels": ([[4], [8]], {"model": CONV, "data": DIGITS}),
    "weight_decay": ([0.0, 1e-3], {}),
    "dropout": ([0.0, 0.1], {}),
    "kwargs": ([{"width": 8}, {"width": 12}], {"model": FLAX, "data": DIGITS}),
}
N_TRAIN = 100


def test_the_table_the_spec_and_the_run_agree_on_the_axes():
    assert tuple(a.name for a in AXES) == GRID_AXES == tuple(f for f in GridSpec.model_fields if f != "seed")
    assert tuple(f.name for f in fields(Run)) == ("seed", *GRID_AXES)  # expand_grid builds runs positionally
    assert set(EXAMPLES) == set(GRID_AXES), "every axis needs a row in EXAMPLES"
    assert len({a.key for a in AXES}) == len(AXES) and len({a.slug for a in AXES if a.slug}) == \
        len([a for a in AXES if a.slug])


@pytest.mark.parametrize("axis", AXES, ids=[a.name for a in AXES])
def test_a_sweep_over_each_axis(axis, tmp_path):
    values, sections = EXAMPLES[axis.name]
    spec = validate({**sections, "grid": {"seed": 2, axis.name: values}})
    runs = expand_grid(spec)
    cells = list(dict.fromkeys(r.cell() for r in runs))
    assert len(runs) == 4 and len(cells) == 2
    # the cells differ in this axis's key alone, and read back as the runs' values
    stated = [cell_settings(c) for c in cells]
    assert [k for k in GRID_AXES if stated[0][k] != stated[1][k]] == [axis.name]
    for c, st in zip(cells, stated):
        run = next(r for r in runs if r.cell() == c)
        value = getattr(run, axis.name)
        assert st[axis.name] == ("" if value is None else setting_text(value))
    # programs: one for both values, or one each, as the table says
    keys = {r.bucket_key() for r in runs}
    assert len(keys) == (2 if axis.program == "own" else 1), keys
    assert len(set(network_ids(runs, spec))) == 4
    # the run table's columns: typed as declared, telling the two cells apart
    rows = [{"run_id": f"r{i}", "cell": r.cell(), "seed": r.seed, **setting_columns(r, spec, N_TRAIN),
             "train_acc": 1.0, "test_acc": 0.5, "diverged": False} for i, r in enumerate(runs)]
    typed_settings(pd.DataFrame(rows)).to_parquet(tmp_path / "runs.parquet")
    table = pd.read_parquet(tmp_path / "runs.parquet")
    column = table[axis.name]
    assert column.map(setting_key).nunique() == 2
    set_values = column[~column.map(setting_key).eq("")]
    typed = {"number": pd.api.types.is_float_dtype, "integer": pd.api.types.is_integer_dtype,
             "batch": pd.api.types.is_integer_dtype, "text": lambda c: all(isinstance(v, str) for v in set_values),
             "keywords": lambda c: all(isinstance(v, str) for v in set_values),
             "widths": lambda c: all(isinstance(v, np.ndarray) and v.dtype.kind == "i" for v in set_values)}
    assert typed[axis.value](column), (axis.value, column.dtype, list(column))
    # labels, comparisons and file names
    labels = cell_labels(table)
    assert len(set(labels.values())) == 2, labels
    assert one_setting_pairs(table) == [(axis.name, cells[0], cells[1])]
    assert len({cell_slug(c) for c in cells}) == 2
