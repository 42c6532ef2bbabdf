"""Names of cells for people: short labels from the settings that vary, and file-name slugs."""

from __future__ import annotations

import re

import pandas as pd

from ibjax.rundir.contract import CELL_SETTINGS, is_unset, setting_key, setting_text


def _none_or_zero(v) -> bool:
    """Unset, or 0 of a rate (runs.parquet stores no weight decay as 0.0; earlier run directories left it out)."""
    return is_unset(v) or (not isinstance(v, str) and float(v) == 0)

# How a label writes a setting's value; the activation and the widths stand alone ('tanh 10-7-5-4-3').
_FORMATS = {
    "learning_rate": lambda v: f"lr {v:g}",
    "momentum": lambda v: "no momentum" if is_unset(v) else f"m {v:g}",
    "hidden": setting_text,
    "kwargs": setting_text,  # a Flax module's constructor keywords, 'width:16 depth:2' 
    "batch_size": lambda v: f"batch {v}",  # a full batch: see cell_labels
    "quantize_bits": lambda v: "float" if is_unset(v) else f"{int(v)}-bit",
    "noise_std": lambda v: "deterministic" if is_unset(v) else f"noise {v:g}",
    "train_fraction": lambda v: "shared split" if is_unset(v) else f"train {100 * v:g} %",
    "label_noise": lambda v: "true labels" if _none_or_zero(v) else f"label noise {v:g}",
    "inputs": lambda v: "original inputs" if is_unset(v) else f"{v} inputs".replace("_", " "),
    "channels": lambda v: "" if is_unset(v) else f"conv {v}",
    "weight_decay": lambda v: "no L2" if _none_or_zero(v) else f"L2 {v:g}",
    "dropout": lambda v: "no dropout" if _none_or_zero(v) else f"dropout {v:g}",
}


def cell_labels(runs: pd.DataFrame) -> dict[str, str]:
    """Short cell names from the settings that vary across cells (e.g. 'tanh 10-7-5-4-3', 'relu 8-bit')."""
    first = runs.groupby("cell", sort=False).first()
    cols = [c for c in CELL_SETTINGS if c in first and first[c].map(setting_key).nunique() > 1]
    if not cols:  # one cell: its activation, or (a user's module, which has none) the cell string
        has_act = "activation" in first and not first.activation.map(is_unset).any()
        return {c: str(first.loc[c, "activation"]) if has_act else c for c in first.index}
    full = first.full_batch if "full_batch" in first else first.get("batch_size", pd.Series(dtype=str)) == "full"

    def fmt(c, k):
        if k == "batch_size" and full.get(c, False):
            return "full batch"  # typed run tables keep the rows of a full batch in batch_size, marked full_batch
        return _FORMATS[k](first.loc[c, k]) if k in _FORMATS else str(first.loc[c, k])
    return {c: " ".join(fmt(c, k) for k in cols) for c in first.index}


def cell_slug(cell: str) -> str:
    """A file-name-safe short form of a cell string."""
    short = cell.replace("activation=", "").replace("hidden=", "w").replace("optimizer=", "")
    short = short.replace("lr=", "lr").replace("batch=", "bs").replace("momentum=", "m")
    short = short.replace("train_fraction=", "train").replace("label_noise=", "labelnoise")
    short = short.replace("channels=", "c").replace("weight_decay=", "l2").replace("dropout=", "drop")
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", short).strip("_")
