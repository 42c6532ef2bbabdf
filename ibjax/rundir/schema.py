"""The long tables of a run directory as declared schemas: each table's columns, whether every run directory has
them or only some (by the task, the estimators, the data variants, the version that wrote it), and the kind of
values they hold. The sweep checks its tables against them before writing; `ibjax.load` checks what it reads, so
that a foreign or damaged file is a RunDirError naming the table and the column, not a KeyError deep in the
report.

runs.parquet also holds every grid axis as a setting column (ibjax.rundir.axes) and, since typed settings,
depth, full_batch and n_train: their kinds are declared by the axis table; older run directories store some of
them as text, so they are not checked here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

Kind = Literal["text", "integer", "number", "bool", "any"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = True  # False: only some run directories have it (see `why`)
    why: str = ""


_ID = (Column("run_id", "text", why="the network's settings hashed (ibjax.sweep.plan.run_ids)"),)
_EPOCH = (*_ID, Column("epoch", "integer"))

SCHEMAS: dict[str, tuple[Column, ...]] = {
    "runs": (*_ID,
             Column("network_id", "text", False, "since network identity: the trained network across sweeps"),
             Column("cell", "text"), Column("seed", "integer"), Column("epochs", "integer"),
             Column("bucket", "integer"),
             Column("train_loss", "number"), Column("test_loss", "number"),
             Column("train_acc", "number", False, "a classification task"),
             Column("test_acc", "number", False, "a classification task"),
             Column("diverged", "bool"), Column("diverged_epoch", "any", False, "NaN or None where not diverged")),
    "info": (*_EPOCH, Column("layer", "text"), Column("estimator", "text"),
             Column("split", "text", False, "mi_sample.split both: which MI sample, train or test"),
             Column("i_xt", "number"), Column("i_ty", "number"),
             Column("bin_lo", "number", False, "the range a binning estimator binned"),
             Column("bin_hi", "number", False, "the range a binning estimator binned"),
             Column("i_ty_trained", "number", False, "per-run labels (label noise)"),
             Column("i_xt_rel", "number", False, "task-irrelevant inputs, or a teacher's relevant inputs"),
             Column("i_xt_irr", "number", False, "task-irrelevant inputs, or a teacher's relevant inputs")),
    "metrics": (*_EPOCH, Column("train_loss", "number"), Column("test_loss", "number"),
                Column("train_acc", "number", False, "a classification task"),
                Column("test_acc", "number", False, "a classification task"),
                Column("gen_error", "number", False, "a regression task (dataset teacher)")),
    "gradients": (*_EPOCH, Column("layer", "text"), Column("grad_mean", "number"), Column("grad_std", "number"),
                  Column("snr", "number")),
}

_CHECKS = {
    "text": lambda s: pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s),
    "integer": pd.api.types.is_integer_dtype,
    "number": lambda s: pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s),
    "bool": pd.api.types.is_bool_dtype,
    "any": lambda s: True,
}


def table_problems(name: str, df: pd.DataFrame) -> list[str]:
    """What `df` lacks or holds of the wrong kind, as table `name` of a run directory (empty: it fits)."""
    problems = []
    for col in SCHEMAS[name]:
        if col.name not in df.columns:
            if col.required:
                problems.append(f"no column '{col.name}'")
        elif not _CHECKS[col.kind](df[col.name]):
            problems.append(f"column '{col.name}' holds {df[col.name].dtype}, not {col.kind} values")
    return problems
