"""The run directory: its contract (contract.py), the manifest's typed records (manifest.py), the tables' schemas
(schema.py), atomic writes and loading (store.py), fit checks (layout.py).

Both halves of the data flow go through here: the sweep writes a run directory, the report and notebooks
read it; neither imports the other's internals.
"""

from ibjax.rundir.contract import (
    CELL_SETTINGS,
    GRID_AXES,
    TABLES,
    cell_name,
    deepest_hidden,
    layer_order,
    part_name,
    shard_tag,
)
from ibjax.rundir.layout import RunDirError, check_complete, check_fits, incompleteness, spec_differences
from ibjax.rundir.manifest import BucketRecord, DatasetRecord, Manifest, ModelRecord, ShardRecord
from ibjax.rundir.schema import SCHEMAS, table_problems
from ibjax.rundir.store import (
    RunDirectory,
    atomic_write,
    atomic_write_bytes,
    load,
    read_manifest,
    read_table,
    write_json,
    write_manifest,
    write_table,
)

__all__ = [
    "BucketRecord",
    "CELL_SETTINGS",
    "DatasetRecord",
    "Manifest",
    "ModelRecord",
    "ShardRecord",
    "GRID_AXES",
    "RunDirError",
    "RunDirectory",
    "SCHEMAS",
    "TABLES",
    "atomic_write",
    "atomic_write_bytes",
    "cell_name",
    "check_complete",
    "check_fits",
    "deepest_hidden",
    "incompleteness",
    "layer_order",
    "load",
    "part_name",
    "read_manifest",
    "read_table",
    "shard_tag",
    "spec_differences",
    "table_problems",
    "write_json",
    "write_manifest",
    "write_table",
]
