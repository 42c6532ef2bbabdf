"""The run-directory contract: what the sweep writes and the report reads, named once.

Table names, part-file names, the grid settings that define a cell (derived from the grid's axes, so a new
axis is a new cell setting everywhere: cells, comparisons, labels), the cell string, and layer names and their
order. Imports nothing from ibjax: both halves of the data flow depend on it, never on each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ibjax.rundir.axes import AXES, is_unset, setting_text

# The long tables of a run directory: `<name>.parquet`, or a folder `<name>/` of part files.
TABLES = ("runs", "info", "metrics", "gradients")

# The grid's axes other than the seed (ibjax.rundir.axes), in the cell string's order. A cell is one value of
# each; they are the run table's setting columns.
GRID_AXES = tuple(a.name for a in AXES)
CELL_SETTINGS = GRID_AXES

# Short keys of the cell string (`activation=tanh,hidden=10-7-5-4-3,optimizer=adam,lr=0.0004,batch=256`);
# unchanged since the first run directories, so that old ones still group the same way.
CELL_KEYS = {a.name: a.key for a in AXES if a.key != a.name}


def setting_key(value) -> str:
    """A setting as a comparable key: every unset form (None, NaN, "None") is one value, "", not three."""
    if is_unset(value):
        return ""
    return setting_text(value) if isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) > 0 else str(value)


def cell_name(settings: Mapping) -> str:
    """The cell string of one run's settings (its GRID_AXES values; unset and empty ones, such as a flax module's
    activation and widths, are left out)."""
    return ",".join(f"{CELL_KEYS.get(k, k)}={setting_text(settings[k])}" for k in GRID_AXES
                    if not is_unset(settings.get(k)) and setting_text(settings[k]) != "")


def cell_settings(cell: str) -> dict[str, str]:
    """The grid settings a cell string states, as text keyed by axis ('' for an axis it leaves out, i.e. unset):
    the inverse of `cell_name` up to `setting_text`."""
    keys = {CELL_KEYS.get(axis, axis): axis for axis in GRID_AXES}
    stated = dict(pair.split("=", 1) for pair in cell.split(",") if pair)
    unknown = set(stated) - set(keys)
    if unknown:
        raise ValueError(f"cell {cell!r} has keys that are no grid axis: {sorted(unknown)}")
    return {axis: stated.get(key, "") for key, axis in keys.items()}


def part_name(bucket: int, shard_tag: str = "") -> str:
    """The part file of one bucket (of one shard) under each table's folder, without the suffix."""
    return f"{shard_tag}-bucket-{bucket:04d}" if shard_tag else f"bucket-{bucket:04d}"


def shard_tag(index: int, count: int) -> str:
    """A shard's name in part files, checkpoints and shards/<tag>.json."""
    return f"shard-{index:04d}-of-{count:04d}"


def hidden_index(name: str) -> int | None:
    """L for a hidden layer named hL, None for any other layer."""
    return int(name[1:]) if name.startswith("h") and name[1:].isdigit() else None


def layer_order(layers: Iterable[str]) -> list[str]:
    """Distinct layer names in network order, `out` (the softmax output) last. An MLP's h1, h2, ..., h10 sort
    by number; a conv net's conv1, conv2, ..., dense1, ... by block kind (conv before dense), then number; any
    other names (a user module's) keep the order they first appear in (the tables list layers in network order)."""
    first: dict[str, int] = {}
    for i, name in enumerate(layers):
        first.setdefault(name, i)

    def key(name: str):
        if name == "out":
            return (3, 0, 0, name)
        i = hidden_index(name)
        if i is not None:
            return (0, 0, i, name)
        for rank, prefix in enumerate(("conv", "dense")):
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                return (1, rank, int(name[len(prefix):]), name)
        return (2, first[name], 0, name)
    return sorted(first, key=key)


def deepest_hidden(layers: Iterable[str]) -> str | None:
    """The last hidden layer (any layer but `out`) among `layers`, in network order (None if there is none)."""
    hidden = [name for name in layer_order(layers) if name != "out"]
    return hidden[-1] if hidden else None


def is_regression(table) -> bool:
    """Whether a run or metrics table is of a regression task (dataset teacher: squared errors and gen_error, no
    accuracy columns)."""
    return "train_acc" not in table.columns
