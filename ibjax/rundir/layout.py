"""Does a directory fit what is asked of it? The checks both halves make, and the one error they raise.

- `check_complete` (the report): every file of the contract is there, all missing ones named at once;
- `incompleteness` (the report): what a loadable directory lacks (unfinished buckets or shards, runs without MI);
- `check_fits` (the sweep): may this sweep start, continue or skip in this directory (same spec? unfinished?).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from ibjax.rundir.contract import TABLES
from ibjax.rundir.manifest import Manifest, parse_manifest


class RunDirError(ValueError):
    """The run directory does not fit the request: missing or unreadable files, a different spec, an unfinished
    sweep without --resume. The message names the path and what to do."""


def has_table(run_dir: Path, name: str) -> bool:
    return (run_dir / f"{name}.parquet").is_file() or any((run_dir / name).glob("*.parquet"))


def check_complete(run_dir: Path) -> None:
    """Raise RunDirError naming every missing file of the run-directory contract at once."""
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir}")
    missing = [f for f in ("spec.yaml",) if not (run_dir / f).is_file()]
    if not (run_dir / "manifest.json").is_file() and not any((run_dir / "shards").glob("shard-*.json")):
        missing.append("manifest.json (or shards/*.json)")
    missing += [f"{t}.parquet (or {t}/*.parquet)" for t in TABLES if not has_table(run_dir, t)]
    if missing:
        raise RunDirError(f"{run_dir} is incomplete: missing {', '.join(missing)}. Was the sweep interrupted "
                          "before writing them? Re-run the sweep (or its missing shards) into this directory.")


def incompleteness(rd) -> list[str]:
    """Warnings for a run directory that loads but is not whole: unfinished buckets or shards, runs without MI."""
    out = []
    m = rd.manifest
    if m.status != "done":
        out.append(f"manifest status is '{m.status}', not 'done': the statistics cover finished work only.")
    for b in m.buckets:
        if b.status != "done":
            out.append(f"bucket {b.index} ({b.n_runs} runs, {b.activations}) is '{b.status}': its runs are missing.")
    for s in m.shards:
        if s.status != "done":
            out.append(f"shard {s.shard} is '{s.status}': its part files are missing.")
    for name, fingerprint in m.autoencoders.items():
        if "|" in fingerprint:
            out.append(f"the shards measured {name} with different autoencoders (weights {fingerprint}: trained "
                       f"on different machines?): its I(X;T) is not comparable across shards.")
    no_info = sorted(set(rd.runs.run_id) - set(rd.info.run_id))
    if no_info:
        out.append(f"{len(no_info)} runs in runs.parquet have no rows in info.parquet (e.g. {', '.join(no_info[:3])}).")
    return out


def _flat(d, prefix=""):
    """Dotted keys of a nested spec; a list of mappings (mi.estimators) by index: mi.estimators.1.kind."""
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, list) and v and all(isinstance(item, dict) for item in v):
            for i, item in enumerate(v):
                out.update(_flat(item, f"{prefix}{k}.{i}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _default_key(key: str) -> str:
    """The key of a list item's setting in the defaults, which hold one item of each list: index 0."""
    return re.sub(r"\.\d+\.", ".0.", key)


def spec_differences(old: dict, new: dict, defaults: dict | None = None) -> list[str]:
    """Dotted keys whose values differ, as 'key: old -> new'. A key the old spec lacks (written by a version
    before the key existed) is no difference while the new spec has it at its default, nor is a key the new spec
    no longer has (an estimator's key of another kind, which earlier versions listed) while the old one had it at
    its default (`defaults`: the resolved spec of an empty sweep file, with every key it has had)."""
    a, b, d = _flat(old), _flat(new), _flat(defaults or {})
    at_default = lambda k, side: _default_key(k) in d and side.get(k) == d[_default_key(k)]
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and not (k not in a and k in b and at_default(k, b))
            and not (k in a and k not in b and at_default(k, a))]


def clear_outputs(out: Path) -> None:
    """Remove everything a sweep wrote into `out` (tables, parts, shards, checkpoints, manifest)."""
    shutil.rmtree(out / "shards", ignore_errors=True)
    for name in TABLES:
        (out / f"{name}.parquet").unlink(missing_ok=True)
        shutil.rmtree(out / name, ignore_errors=True)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    (out / "manifest.json").unlink(missing_ok=True)


def _read(path: Path, parse):
    """A file of an existing run directory, parsed; RunDirError if it is not what the sweep wrote."""
    try:
        return parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        raise RunDirError(f"{path} cannot be read ({type(e).__name__}: {e}); it was not written by this sweep "
                          f"or was edited: use another --out, or --force to discard the directory.") from None


def check_fits(spec_yaml: str, out: Path, manifest_path: Path, resume: bool, force: bool,
               sharded: bool, defaults_yaml: str = "") -> Manifest | None:
    """The existing manifest if the sweep of `spec_yaml` (the resolved spec) may continue in `out`; None to
    start fresh (with force, after removing what it replaces); raises RunDirError otherwise."""
    other = (out / "manifest.json").is_file() if sharded else any((out / "shards").glob("shard-*.json"))
    if other and not force:
        raise RunDirError(f"{out} holds a {'un' if sharded else ''}sharded sweep: run it the same way "
                          f"({'without' if sharded else 'with'} --shard), or --force to discard it.")
    if not force and (out / "spec.yaml").is_file():
        old = _read(out / "spec.yaml", yaml.safe_load) or {}
        defaults = yaml.safe_load(defaults_yaml) if defaults_yaml else None
        diff = spec_differences(old, yaml.safe_load(spec_yaml), defaults)
        if diff:
            raise RunDirError(f"{out} holds a sweep of a different spec; differing keys: {'; '.join(diff)}. "
                              f"To continue that sweep as it was started: python -m ibjax.sweep --resume {out}. "
                              f"Otherwise use another --out, or --force to discard it and start over.")
    if not manifest_path.is_file():
        return None
    manifest = _read(manifest_path, parse_manifest) if not force else None
    if force:
        if sharded:  # only this shard's own files: the other shards may be running
            manifest_path.unlink()
            shutil.rmtree(out / "checkpoints" / manifest_path.stem, ignore_errors=True)
            for name in TABLES:
                for f in (out / name).glob(f"{manifest_path.stem}-*.parquet"):
                    f.unlink()
        else:
            clear_outputs(out)
        return None
    if manifest.status == "done":
        return manifest
    if not resume:
        raise RunDirError(f"{out} holds an unfinished sweep (status {manifest.status!r}): add --resume "
                          f"to continue it, or --force to discard it and start over.")
    return manifest
