"""Each benchmark runs in its quick mode and produces its table (no timing assertions)."""

import json
import os
from pathlib import Path

import pytest

from benchmarks.slow_machine import CGROUP_V1_CPU
from tests.helpers import run_cli


@pytest.mark.slow
def test_throughput_quick_produces_the_table(tmp_path):
    out = tmp_path / "t.json"
    proc = run_cli("benchmarks.throughput", "--quick", "--n", "2", "--json", str(out), timeout=900)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("speedup_256=")  # N = 256 not run here: nan, but the line is there
    table = json.loads(out.read_text())
    kinds = {(r["kind"], r["n"], r["mi_every"]) for r in table["rows"]}
    assert kinds == {("baseline", 1, 1), ("ibjax", 2, 1), ("baseline", 1, table["k_log"]), ("ibjax", 2, table["k_log"])}
    for r in table["rows"]:
        assert r["net_epochs_per_s"] > 0 and r["peak_rss_mb"] > 0 and r["compile_s"] > 0


@pytest.mark.slow
def test_program_memory_quick_produces_the_comparison(tmp_path):
    out = tmp_path / "m.json"
    proc = run_cli("benchmarks.program_memory", "--n", "4", "32", "--quick", "--json", str(out), timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("account_over_measured=")
    table = json.loads(out.read_text())
    assert [r["n"] for r in table["rows"]] == [4, 32]
    small, large = table["rows"]
    assert 0 < small["account_mb"] < large["account_mb"]  # the account grows with the networks
    assert large["peak_rss_mb"] > large["account_mb"]  # the process holds at least what XLA assigned


@pytest.mark.slow
def test_image_benchmark_quick_produces_the_table(tmp_path):
    out = tmp_path / "i.json"
    proc = run_cli("benchmarks.images", "--quick", "--n", "1", "2", "--json", str(out), timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("share_of_peak_2=")
    table = json.loads(out.read_text())
    assert [r["n"] for r in table["rows"]] == [1, 2] and table["peak_gflops"] > 0
    for r in table["rows"]:
        assert r["net_epochs_per_s_mi_at_ends"] > 0 and 0 < r["share_of_peak"] and r["device_mb_per_device"] > 0


@pytest.mark.slow
def test_conv_benchmark_quick_produces_the_table(tmp_path):
    out = tmp_path / "c.json"
    proc = run_cli("benchmarks.conv", "--quick", "--n", "1", "2", "--json", str(out), timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("speedup_vs_one_network_2=")
    table = json.loads(out.read_text())
    assert [r["n"] for r in table["rows"]] == [1, 2] and table["conv_peak_gflops"] > 0
    assert table["macs_per_image"] == 26 * 26 * 8 * 9 + 11 * 11 * 8 * 16 * 9 + 3 * 3 * 16 * 32 * 9 + 32 * 32 + 320
    for r in table["rows"]:
        assert r["net_epochs_per_s"] > 0 and 0 < r["share_of_conv_peak"] and r["device_mb"] > 0
    assert table["rows"][1]["device_mb"] > table["rows"][0]["device_mb"]  # memory grows with the networks


def test_knn_benchmark_quick_produces_the_table(tmp_path):
    # One layer: the benchmark unrolls its layers into each estimator's program, so every layer is another
    # copy of the same code to compile (2 layers: 23.8 s alone on the AMD EPYC VM without AVX-512, 1 layer: 12.2 s);
    # what the test checks (the table, finite MI, temporaries growing like S) is per layer.
    out = tmp_path / "k.json"
    proc = run_cli("benchmarks.knn", "--sizes", "128", "256", "--n", "2", "--layers", "1", "--repeats", "1",
                   "--json", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("temp_growth=")
    table = json.loads(out.read_text())
    assert [r["samples"] for r in table["rows"]] == [128] * 5 + [256] * 5
    assert all(r["finite"] and r["s_per_logged_epoch"] > 0 for r in table["rows"])
    # Blocked: temporaries grow like S (ratio 2), never like S^2 (ratio 4), for every estimator.
    assert 0 < table["temp_growth"] < 3 and all(0 < g < 3 for g in table["temp_growth_by_estimator"].values())


def test_slow_machine_runs_the_command_inside_a_cpu_quota_and_measures_its_slowdown(tmp_path):
    bad = run_cli("benchmarks.slow_machine", "--slowdown", "0.5", "--", "true")
    assert bad.returncode == 2 and "--slowdown 0.5: must be at least 1" in bad.stderr
    if not os.access(CGROUP_V1_CPU, os.W_OK):
        pytest.skip(f"no writable cgroup-v1 cpu controller at {CGROUP_V1_CPU} (needs root)")
    out, seen = tmp_path / "s.json", tmp_path / "cgroup"
    proc = run_cli("benchmarks.slow_machine", "--slowdown", "2", "--reference-programs", "2", "--json", str(out),
                   "--", "sh", "-c", f"cat /proc/self/cgroup > {seen}; exit 3")
    assert proc.returncode == 3, proc.stderr  # the command's own exit code
    table = json.loads(out.read_text())
    group = table["cgroup"]
    cpu = [path for _, controllers, path in (line.split(":", 2) for line in seen.read_text().splitlines())
           if "cpu" in controllers.split(",")]
    assert cpu and cpu[0].endswith("/" + Path(group).name)  # the command ran inside the quota's group
    assert table["returncode"] == 3 and table["slowdown_asked"] == 2 and table["slowdown_measured"] > 0
    assert not Path(group).exists()  # and the group is removed afterwards
