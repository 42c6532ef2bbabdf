"""The grid's axes, one row each: everything about an axis but the code that uses its value.

A run is one value of every axis and a seed; a cell is a run without its seed. From this table come the cell
string's keys, the run table's setting columns and their types, which axes leave run ids unchanged while unset,
which need a compiled program of their own, how a label and a file name write a value, and where a setting lives
when the grid leaves it out. `spec.GridSpec` declares the same axes with their validation, `sweep.plan.Run` holds
one value of each (tests check both against this table, and build a sweep over every axis from it). Imports nothing
from ibjax: the sweep and the report both read it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal


def is_unset(value) -> bool:
    """None, NaN, pandas' NA and "None" (how parquet and CSV return a missing setting) all mean: not set."""
    return (value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType"
            or (isinstance(value, str) and value == "None"))


def setting_text(value) -> str:
    """A setting as the cell string writes it: widths joined by '-', floats in %g, a Flax module's keywords
    (a dict, or its JSON as runs keep it) as 'key:value' pairs joined by ' ', the rest as str."""
    if isinstance(value, str) and value.startswith("{"):
        value = json.loads(value)
    if isinstance(value, dict):
        return " ".join(f"{k}:{setting_text(v)}" for k, v in sorted(value.items()))
    if getattr(value, "ndim", 0) > 0:  # widths read back from parquet: a NumPy array
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return "-".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _off(v) -> bool:
    """Unset, or 0 of a rate (runs.parquet stores no weight decay as 0.0; earlier run directories left it out)."""
    return is_unset(v) or (not isinstance(v, str) and float(v) == 0)


@dataclass(frozen=True)
class Axis:
    name: str
    key: str  # in the cell string ('lr=0.0004'); unchanged since the first run directories
    section: Literal["model", "train", "data"]  # where the setting lives when the grid leaves it out
    value: Literal["text", "number", "integer", "widths", "keywords", "batch"]  # how runs.parquet types it
    program: Literal["shared", "own"]  # values vary inside one compiled program, or need one each
    label: Callable[[Any], str]  # how a cell label writes a value (the activation and widths stand alone)
    slug: str  # how a file name writes 'key=' ('' drops it)
    in_every_id: bool = False  # False: left out of run ids while unset (axes added after the first run dirs)
    off_at_zero: bool = False  # 0 means the setting is off: a run without it (one cell, one id)
    kinds: tuple[str, ...] = ("mlp", "conv", "flax")  # the model kinds it applies to (elsewhere: unset)


AXES: tuple[Axis, ...] = (
    Axis("activation", "activation", "model", "text", "shared", str, "", True, kinds=("mlp", "conv")),
    Axis("hidden", "hidden", "model", "widths", "shared", setting_text, "w", True, kinds=("mlp", "conv")),
    Axis("optimizer", "optimizer", "train", "text", "own", str, "", True),
    Axis("learning_rate", "lr", "train", "number", "shared", lambda v: f"lr {v:g}", "lr", True),
    Axis("momentum", "momentum", "train", "number", "shared",
         lambda v: "no momentum" if is_unset(v) else f"m {v:g}", "m", True),
    Axis("batch_size", "batch", "train", "batch", "own", lambda v: "full batch" if v == "full" else f"batch {v}",
         "bs", True),
    Axis("quantize_bits", "quantize", "model", "integer", "own",
         lambda v: "float" if is_unset(v) else f"{int(v)}-bit", "quantize_", kinds=("mlp", "conv")),
    Axis("noise_std", "noise", "model", "number", "own",
         lambda v: "deterministic" if is_unset(v) else f"noise {v:g}", "noise_", kinds=("mlp", "conv")),
    Axis("train_fraction", "train_fraction", "data", "number", "shared",
         lambda v: "shared split" if is_unset(v) else f"train {100 * v:g} %", "train"),
    Axis("label_noise", "label_noise", "data", "number", "shared",
         lambda v: "true labels" if _off(v) else f"label noise {v:g}", "labelnoise"),
    Axis("inputs", "inputs", "data", "text", "shared",
         lambda v: "original inputs" if is_unset(v) else f"{v} inputs".replace("_", " "), "inputs_"),
    Axis("channels", "channels", "model", "widths", "own",
         lambda v: "" if is_unset(v) else f"conv {setting_text(v)}", "c", kinds=("conv",)),
    Axis("weight_decay", "weight_decay", "train", "number", "shared",
         lambda v: "no L2" if _off(v) else f"L2 {v:g}", "l2", off_at_zero=True),
    Axis("dropout", "dropout", "model", "number", "own", lambda v: "no dropout" if _off(v) else f"dropout {v:g}",
         "drop", off_at_zero=True, kinds=("mlp", "conv")),
    Axis("kwargs", "kwargs", "model", "keywords", "own", setting_text, "kwargs_", kinds=("flax",)),
)

BY_NAME = {a.name: a for a in AXES}
