"""Sharded sweeps: deterministic slices of the run table, part files per shard, merged results."""

from __future__ import annotations

import pytest
import yaml

from ibjax.rundir import ShardRecord, load
from ibjax.spec import validate
from ibjax.sweep import parse_shard
from ibjax.sweep.plan import expand_grid, shard_runs
from tests.helpers import assert_merged_equals_unsharded, run_cli, small_spec


def test_shards_partition_the_run_table():
    spec = validate({"grid": {"seed": 5, "activation": ["tanh", "relu", "sigmoid"], "optimizer": ["sgd", "adam"]}})
    runs = expand_grid(spec)
    for n in (1, 2, 3, 7, 30, 40):
        parts = [shard_runs(runs, i, n) for i in range(n)]
        flat = [r for p in parts for r in p]
        assert sorted(map(repr, flat)) == sorted(map(repr, runs))  # every run exactly once
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        assert parts == [shard_runs(runs, i, n) for i in range(n)]  # deterministic


def test_shard_from_the_command_line_and_slurm():
    assert parse_shard("2/4") == (2, 4) and parse_shard(None, env={}) == (0, 1)
    assert parse_shard(None, env={"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}) == (3, 4)
    assert parse_shard(None, env={"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1",
                                  "SLURM_ARRAY_TASK_COUNT": "4"}) == (3, 4)
    for bad in ("4/4", "a/2", "1"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_two_shards_merge_to_the_unsharded_sweep(tiny_run, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(small_spec()))
    out = tmp_path / "sharded"
    first = run_cli("ibjax.sweep", str(spec), "--out", str(out), "--shard", "0/2", "--no-report")
    assert first.returncode == 0, first.stderr
    assert "shards not done yet: 1/2" in first.stderr
    partial = run_cli("ibjax.report", str(out))  # one shard missing: reported, not hidden
    assert "shard 1/2 is 'missing'" in partial.stderr
    second = run_cli("ibjax.sweep", str(spec), "--out", str(out), "--shard", "1/2", "--no-report")
    assert second.returncode == 0 and "all shards done" in second.stderr, second.stderr
    again = run_cli("ibjax.sweep", str(spec), "--out", str(out), "--shard", "1/2", "--no-report")
    assert again.returncode == 0 and "nothing to do" in again.stderr
    mixed = run_cli("ibjax.sweep", str(spec), "--out", str(out))
    assert mixed.returncode == 2 and "sharded" in mixed.stderr

    merged = load(out)
    assert len(merged.manifest["shards"]) == 2
    assert_merged_equals_unsharded(merged, load(tiny_run))


def test_script_without_submit(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(small_spec()))
    proc = run_cli("ibjax.slurm", str(spec), "--out", str(tmp_path / "r"), "--shards", "3", "--partition", "gpu",
                   "--gpus-per-task", "1")
    assert proc.returncode == 0, proc.stderr
    script = (tmp_path / "r" / "slurm" / "sweep.sbatch").read_text()
    for line in ("#SBATCH --array=0-2", "#SBATCH --requeue", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-task=1",
                 '--shard "$SLURM_ARRAY_TASK_ID/3" --resume', "scontrol requeue"):
        assert line in script
    bad = run_cli("ibjax.slurm", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "r"), "--shards", "2",
                  new_process=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_max_models_per_program_splits_buckets():
    from ibjax.sweep.plan import make_buckets

    spec = validate({"grid": {"seed": 7, "activation": ["tanh", "relu"], "optimizer": ["sgd", "adam"]}})
    runs = expand_grid(spec)
    whole = make_buckets(runs)
    split = make_buckets(runs, max_models=5)
    assert len(whole) == 2 and all(b.size == 14 for b in whole)
    assert sorted(b.size for b in split) == [4, 4, 5, 5, 5, 5] and [b.index for b in split] == list(range(6))
    assert sorted(map(repr, (r for b in split for r in b.runs))) == sorted(map(repr, runs))
    assert make_buckets(runs, max_models=100) == whole


def test_split_buckets_give_the_same_results(tiny_run, tmp_path):
    from tests.helpers import sweep_to_run_dir

    rd = sweep_to_run_dir(tmp_path, small_spec(**{"train.max_models_per_program": 3}))
    assert len(rd.manifest["buckets"]) == 3  # 8 networks in programs of 3, 3, 2
    rd.manifest.shards = [ShardRecord(shard="0/1", status="done")]
    assert_merged_equals_unsharded(rd, load(tiny_run))
