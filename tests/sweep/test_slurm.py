"""A sharded sweep submitted as a 2-task array job to a real SLURM cluster (started here), merged results
equal to the same sweep run unsharded. `.ci/run` installs slurm-wlm and munge and requires this test to run
(IBJAX_REQUIRE_SLURM=1); elsewhere it skips when the SLURM binaries are missing."""

from __future__ import annotations

import os

import pytest
import yaml

from ibjax.rundir import load
from tests.helpers import assert_merged_equals_unsharded, checkpoints_exist, run_cli, small_spec
from tests.sweep.slurm_cluster import Cluster, missing_binaries

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


@pytest.mark.slow
def test_sigterm_checkpoints_and_the_task_requeues_itself(cluster, tmp_path, monkeypatch):
    """What SLURM does before a time limit or preemption: SIGTERM to the batch script. The script forwards it,
    the sweep checkpoints and exits 3, the task requeues itself and the second run resumes to the end."""
    import json
    import subprocess
    import time

    raw = small_spec()
    raw["train"].update(epochs=150, chunk_epochs=10)  # 14 chunks after the first checkpoint: time to stop it
    raw["mi"]["schedule"] = {"every": 25}
    raw["output"] = {"plots": False}
    spec = tmp_path / "long.yaml"
    spec.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    proc = run_cli("ibjax.slurm", str(spec), "--out", str(out), "--shards", "1", "--submit")
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().splitlines()[-1]
    t = time.monotonic()
    while not checkpoints_exist(out):
        assert time.monotonic() - t < 300, cluster.log_tail()
        time.sleep(0.05)
    subprocess.run(["scancel", "--signal=TERM", "--batch", f"{job}_0"], env=cluster.env, check=True)
    # SLURM holds the requeued task back for the credential lifetime + 1 s (BeginTime; the cluster sets it to
    # CRED_EXPIRE = 5 s). Don't move its start to now: slurmd refuses a relaunch whose credential is created in
    # the same second as the revocation of the first run ("Job credential revoked"), and the task ends FAILED.
    states = cluster.wait(job)
    log = "".join(f.read_text() for f in (out / "slurm" / "logs").glob("*.out"))
    assert states == ["COMPLETED"], (states, log[-3000:], cluster.log_tail())
    assert "requeueing this task" in log and "restart 1" in log, log[-3000:]
    manifest = json.loads((out / "shards" / "shard-0000-of-0001.json").read_text()) \
        if (out / "shards").is_dir() else json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["resumed"] == 1
    assert len(load(out).metrics) == 8 * 7  # 8 networks x MI at epochs 0, 25, ..., 150
