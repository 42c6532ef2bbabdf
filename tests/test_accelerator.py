"""Ready for accelerators: the prepared benchmark runs (at toy sizes, here on the CPU). The engine's invariants on
the accelerator's code path are proven where each invariant lives (the `code_path` parameter, tests/conftest.py)."""

import json

import pytest

from tests.helpers import run_cli


@pytest.mark.slow
def test_accelerator_benchmark_quick_runs_every_section(tmp_path):
    """The prepared accelerator benchmark, at toy sizes on the CPU: every section runs and reports what it says."""
    out = tmp_path / "a.json"
    proc = run_cli("benchmarks.accelerator", "--quick", "--json", str(out), timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("mlp_speedup_max=")
    table = json.loads(out.read_text())
    assert table["peaks"]["bf16_gflops"] > 0 and table["peaks"]["fp32_gflops"] > 0
    assert [r["n"] for r in table["mlp"]] == [1, 2] and all(r["fits"] for r in table["mlp"])
    for r in table["mlp"]:
        rates = [r[f"net_epochs_per_s_mi_{m}"] for m in ("every", "log", "none")]
        assert all(v > 0 for v in rates) and r["compile_s"] > 0 and r["device_mb_per_network"] > 0
        assert 0 <= r["mi_share_every_epoch"] < 1 and r["n_mi"] == 4096
    assert table["mlp"][1]["speedup_mi_every"] > 0
    saxe = table["saxe"]["rows"]
    assert [r["n"] for r in saxe] == [1, 2] and all(r["gflops"] > 0 and r["share_of_bf16_peak"] > 0 for r in saxe)
    conv = table["conv"]
    assert conv["map"]["net_epochs_per_s"] > 0 and conv["vmap"]["net_epochs_per_s"] > 0
    assert [r["estimator"] for r in table["estimators"]["rows"]] == ["forward_only", "binning30", "kde_upper",
                                                                     "knn (k=5, dim=4)"]
    assert all(r["mi_epoch_ms"] > 0 for r in table["estimators"]["rows"])
