"""manifest.json as typed records (ibjax.rundir.manifest): what a sweep writes reads back equal, old and newer
files load, a file that is no manifest is named, shards merge."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ibjax.rundir import Manifest, RunDirError, ShardRecord, read_manifest, write_manifest
from ibjax.rundir.manifest import manifest_json, merge_shards, parse_manifest

OLD = Path(__file__).parent / "old_run_v0_1"


def test_a_sweeps_manifest_reads_back_equal(tiny_run):
    m = read_manifest(tiny_run)
    assert m.status == "done" and m.n_runs == 8 and m.buckets[0].status == "done" and m.buckets[0].compile_s > 0
    assert m.dataset.n_classes == 2 and m.model.kind == "mlp" and m.shards == [ShardRecord(shard="0/1", status="done")]
    assert parse_manifest(manifest_json(m)) == m
    # The file holds what the records hold (no key dropped, none invented), and reads as a mapping too.
    raw = json.loads((tiny_run / "manifest.json").read_text())
    assert raw == json.loads(manifest_json(m))
    assert m["n_runs"] == raw["n_runs"] and m.get("no such key", 7) == 7 and "buckets" in m
    assert set(m.limits()) == {e["name"] for e in raw["estimators"]}


def test_older_and_newer_manifests_load(tmp_path):
    old = read_manifest(OLD)  # written before data variants and model kinds: their defaults
    assert old.dataset is None and old.model.kind == "mlp" and old.resumed == 0 and old.figures == []
    assert old.buckets[0].layers == [] and old.buckets[0].channels is None
    assert old.limits() == {}  # written before estimators recorded their limits
    d = tmp_path / "newer"
    shutil.copytree(OLD, d)
    raw = json.loads((d / "manifest.json").read_text())
    raw["from_a_later_version"] = {"kept": True}
    raw["buckets"][0]["also_later"] = 1
    (d / "manifest.json").write_text(json.dumps(raw))
    m = read_manifest(d)
    assert m["from_a_later_version"] == {"kept": True} and m.buckets[0]["also_later"] == 1
    write_manifest(d / "manifest.json", m)  # a resume writes back what it does not know, unchanged
    assert json.loads((d / "manifest.json").read_text())["from_a_later_version"] == {"kept": True}


@pytest.mark.parametrize("change, named", [
    (lambda raw: raw.pop("n_mi_samples"), "n_mi_samples"),
    (lambda raw: raw.update(status="finished"), "status"),
    (lambda raw: raw["buckets"][0].update(n_runs="four"), "buckets.0.n_runs"),
])
def test_a_file_that_is_no_manifest_is_named(tmp_path, change, named):
    d = tmp_path / "bad"
    shutil.copytree(OLD, d)
    raw = json.loads((d / "manifest.json").read_text())
    change(raw)
    (d / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(RunDirError) as e:
        read_manifest(d)
    assert str(d / "manifest.json") in str(e.value) and named in str(e.value)


def test_shards_merge_and_a_missing_one_is_listed():
    base = read_manifest(OLD)
    part = lambda i, status: base.model_copy(update={"shard_index": i, "shard_count": 3, "status": status,
                                                     "shards": [ShardRecord(shard=f"{i}/3", status=status)]})
    merged = merge_shards([part(0, "done"), part(2, "running")])
    assert [(s.shard, s.status) for s in merged.shards] == [("0/3", "done"), ("1/3", "missing"), ("2/3", "running")]
    assert merged.status == "incomplete" and merged.n_runs == 2 * base.n_runs
    assert [b.shard for b in merged.buckets] == ["0/3"] * len(base.buckets) + ["2/3"] * len(base.buckets)
    done = merge_shards([part(i, "done") for i in range(3)])
    assert done.status == "done" and isinstance(done, Manifest)


def test_every_table_fits_its_schema_and_a_foreign_one_is_named(tiny_run, tmp_path):
    import pandas as pd

    from ibjax.rundir import SCHEMAS, TABLES, load, table_problems

    assert set(SCHEMAS) == set(TABLES)
    rd = load(tiny_run)  # the sweep's own tables, and the old run directory's, fit
    load(OLD)
    for name in TABLES:
        assert table_problems(name, getattr(rd, name)) == []
    d = tmp_path / "foreign"
    shutil.copytree(OLD, d)
    info = pd.read_parquet(d / "info.parquet").drop(columns="i_ty")
    info["epoch"] = info.epoch.astype(str)
    info.to_parquet(d / "info.parquet")
    with pytest.raises(RunDirError) as e:
        load(d)
    assert "info.parquet" in str(e.value) and "no column 'i_ty'" in str(e.value)
    assert "column 'epoch' holds" in str(e.value) and "not integer values" in str(e.value)
