"""Names of cells for people: short labels from the settings that vary, and file-name slugs."""

from __future__ import annotations

import re

import pandas as pd

from ibjax.report.summary import cell_settings_shown
from ibjax.rundir.axes import AXES
from ibjax.rundir.contract import CELL_SETTINGS, is_unset, setting_key

# How a label writes a setting's value (the axis table's); the activation and the widths stand alone.
_FORMATS = {a.name: a.label for a in AXES}


def cell_labels(runs: pd.DataFrame) -> dict[str, str]:
    """Short cell names from the settings that vary across cells (e.g. 'tanh 10-7-5-4-3', 'relu 8-bit')."""
    first = cell_settings_shown(runs)
    cols = [c for c in CELL_SETTINGS if c in first and first[c].map(setting_key).nunique() > 1]
    if not cols:  # one cell: its activation, or (a user's module, which has none) the cell string
        has_act = "activation" in first and not first.activation.map(is_unset).any()
        return {c: str(first.loc[c, "activation"]) if has_act else c for c in first.index}
    return {c: " ".join(_FORMATS[k](first.loc[c, k]) for k in cols) for c in first.index}


_SLUGS = {a.key: a.slug for a in AXES}


def cell_slug(cell: str) -> str:
    """A file-name-safe short form of a cell string: each `key=` as its axis writes it in file names."""
    pairs = (pair.split("=", 1) for pair in cell.split(",") if pair)
    short = "_".join(_SLUGS.get(key, key + "_") + value for key, value in pairs)
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", short).strip("_")
