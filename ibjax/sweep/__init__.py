"""A sweep: spec → plan (grid, buckets, shards, MI schedule) → programs (sized to the device) → the compiled
chunks → the run directory's tables. `python -m ibjax.sweep SPEC.yaml` is the CLI (__main__.py)."""

from ibjax.sweep.plan import Bucket, Run, expand_grid, make_buckets, mi_epochs, parse_shard, shard_runs
from ibjax.sweep.programs import Programs, build_estimators, size_buckets
from ibjax.sweep.run import plan_programs, run_sweep

__all__ = [
    "Bucket",
    "Programs",
    "Run",
    "build_estimators",
    "expand_grid",
    "make_buckets",
    "mi_epochs",
    "parse_shard",
    "plan_programs",
    "run_sweep",
    "shard_runs",
    "size_buckets",
]
