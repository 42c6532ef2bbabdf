"""A sharded sweep submitted as a 2-task array job to a real SLURM cluster (started here), merged results
equal to the same sweep run unsharded. `.ci/run` installs slurm-wlm and munge and requires this test to run
(IBJAX_REQUIRE_SLURM=1); elsewhere it skips when the SLURM binaries are missing."""

from __future__ import annotations

import os

import pytest
import yaml

from ibjax.store import load
from tests.conftest import assert_merged_equals_unsharded, run_cli, small_spec
from tests.slurm_cluster import Cluster, missing_binaries

MISSING = missing_binaries()
if MISSING and os.environ.get("IBJAX_REQUIRE_SLURM") != "1":
    pytest.skip(f"SLURM not installed here (missing {', '.join(MISSING)}); .ci/run installs it",
                allow_module_level=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    assert not MISSING, f"IBJAX_REQUIRE_SLURM=1 but missing: {MISSING}"
    c = Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.mark.slow
def test_array_job_on_real_slurm_equals_unsharded(cluster, tiny_run, tmp_path, monkeypatch):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(small_spec()))
    out = tmp_path / "run"
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))  # run_cli passes the environment on
    proc = run_cli("ibjax.slurm", str(spec), "--out", str(out), "--shards", "2", "--time", "00:10:00", "--submit")
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().splitlines()[-1]
    states = cluster.wait(job)
    logs = sorted((out / "slurm" / "logs").glob("*.out"))
    assert states == ["COMPLETED", "COMPLETED"], (states, [f.read_text()[-2000:] for f in logs])
    assert len(logs) == 2  # one log per task

    assert_merged_equals_unsharded(load(out), load(tiny_run))
    assert (out / "REPORT.md").is_file()  # the last shard to finish writes the report
