"""The run directory: atomic writes of parquet tables, manifest and spec; `load` for notebooks.

Every file is written to a temporary name and renamed, so a killed job never leaves a file that looks
complete. Readers accept a single `<table>.parquet` or a folder `<table>/` of part files.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from ibjax.rundir.contract import CELL_SETTINGS, TABLES
from ibjax.rundir.layout import RunDirError
from ibjax.rundir.manifest import Manifest, manifest_json, merge_shards, read_manifest_file
from ibjax.rundir.schema import table_problems


def _umask() -> int:
    """This process's umask, read without changing it where Linux shows it (another thread may be creating
    files); elsewhere set and restored at once."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it to `path` (atomic on POSIX): a
    reader, or a job killed mid-write, sees the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name never ends in .parquet or .json: readers glob those.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        # mkstemp creates the file private (0600); the result gets the mode any new file gets here (0644 under
        # the usual umask 022), so collaborators on a shared cluster folder can read the tables and the report.
        os.chmod(tmp, 0o666 & ~_umask())
        write(Path(tmp))
        os.replace(tmp, path)
    except OSError as e:  # e.g. a full disk: name the file the run directory was writing, not the temporary
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_table(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode())


def read_table(run_dir: str | Path, name: str) -> pd.DataFrame:
    """A table from `<name>.parquet` or the concatenated parts in `<name>/`."""
    run_dir = Path(run_dir)
    single, parts = run_dir / f"{name}.parquet", run_dir / name
    if single.is_file():
        return pd.read_parquet(single)
    if parts.is_dir():
        files = sorted(parts.glob("*.parquet"))
        if files:
            return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    raise FileNotFoundError(f"{run_dir}: no table '{name}' ({single.name} or {parts.name}/*.parquet)")


def write_manifest(path: Path, manifest: Manifest) -> None:
    atomic_write_bytes(path, manifest_json(manifest).encode())


def read_manifest(run_dir: str | Path) -> Manifest:
    """manifest.json, or for a sharded sweep the shards' manifests (shards/*.json) merged: status 'done' only
    when all N shards are done; a shard with no manifest yet is listed as 'missing'. A file that is not a
    manifest is a RunDirError naming it and what it lacks."""
    run_dir = Path(run_dir)
    shard_files = sorted((run_dir / "shards").glob("shard-*.json"))
    if not shard_files:
        return _read_manifest_file(run_dir / "manifest.json")
    return merge_shards([_read_manifest_file(f) for f in shard_files])


def _read_manifest_file(path: Path) -> Manifest:
    try:
        return read_manifest_file(path)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'the file'}: {err['msg'].lower()}"
                             for err in e.errors()[:5])
        raise RunDirError(f"{path} is not a sweep's manifest ({problems})") from None
    except ValueError as e:  # not JSON
        raise RunDirError(f"{path} cannot be read ({e})") from None


@dataclass
class RunDirectory:
    """The tables of one run directory, as pandas DataFrames."""

    path: Path
    spec: dict
    manifest: Manifest
    runs: pd.DataFrame
    info: pd.DataFrame
    metrics: pd.DataFrame
    gradients: pd.DataFrame

    def with_settings(self, table: str = "info") -> pd.DataFrame:
        """One of the long tables (info, metrics or gradients) with each row's run settings beside it: the cell,
        seed, network_id (where recorded), the grid-axis columns of runs.parquet, depth, full_batch and n_train,
        merged on run_id, so that
        `rd.with_settings().query("activation == 'tanh' and layer == 'h5'")` needs no merge of one's own.
        Diverged runs are kept; the `diverged` column says which."""
        if table not in ("info", "metrics", "gradients"):
            raise ValueError(f"table must be 'info', 'metrics' or 'gradients' (got {table!r})")
        long = getattr(self, table)
        keep = [c for c in ("run_id", "cell", "seed", "network_id", *CELL_SETTINGS, "depth", "full_batch", "n_train",
                            "diverged")
                if c in self.runs.columns]
        return long.merge(self.runs[keep], on="run_id", how="left", validate="many_to_one")


def load(run_dir: str | Path) -> RunDirectory:
    """Load a run directory written by `python -m ibjax.sweep`: its spec, manifest and tables, each table checked
    against its schema (ibjax.rundir.schema)."""
    import yaml

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    spec = yaml.safe_load((run_dir / "spec.yaml").read_text())
    manifest = read_manifest(run_dir)
    tables = {name: read_table(run_dir, name) for name in TABLES}
    for name, df in tables.items():
        problems = table_problems(name, df)
        if problems:
            raise RunDirError(f"{run_dir}: {name}.parquet is not a run directory's {name} table: "
                              f"{'; '.join(problems)}")
    return RunDirectory(run_dir, spec, manifest, **tables)
