"""Program sizing: buckets split to fit the device memory, measured by XLA; results unchanged by the split."""

from __future__ import annotations

import json
import math

import jax
import pytest

from ibjax.data import load_task
from ibjax.rundir import Manifest, ShardRecord, load
from ibjax.spec import validate
from ibjax.sweep import plan_programs
from ibjax.sweep.plan import expand_grid, group_runs, mi_epochs
from ibjax.sweep.sizing import (
    ProgramMemory,
    SizingError,
    budget_fraction,
    cgroup_headroom,
    device_budget,
    parse_bytes,
    parts_that_fit,
)
from ibjax.train import Engine, Networks, mlp_copies, run_program
from tests.helpers import assert_merged_equals_unsharded, run_cli, small_spec, sweep_to_run_dir


def test_parse_bytes():
    assert parse_bytes("12GB") == 12 * 10**9 and parse_bytes("512MiB") == 512 * 2**20
    assert parse_bytes("8e9") == 8 * 10**9 and parse_bytes(" 1.5 g ") == int(1.5 * 2**30) and parse_bytes("100") == 100
    for bad in ("", "12 parsecs", "GB", "-1GB"):
        with pytest.raises(ValueError, match="IBJAX_DEVICE_MEMORY"):
            parse_bytes(bad)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_headroom_takes_the_tightest_ancestor(tmp_path):
    # cgroup v2, as under SLURM: the job's limit sits above the step's own cgroup, which is unlimited.
    proc = tmp_path / "cgroup_v2"
    _write(proc, "0::/slurm/job_7/step_0\n")
    root = tmp_path / "fs"
    _write(root / "slurm/job_7/step_0/memory.max", "max\n")
    _write(root / "slurm/job_7/step_0/memory.current", "1000\n")
    _write(root / "slurm/job_7/memory.max", str(8 * 2**30))
    _write(root / "slurm/job_7/memory.current", str(3 * 2**30))
    assert cgroup_headroom(proc, root) == 5 * 2**30
    # Usage includes the page cache of files read; its inactive part is reclaimable, so it is room.
    _write(root / "slurm/job_7/memory.stat", f"anon 123\ninactive_file {2**30}\nactive_file 7\n")
    assert cgroup_headroom(proc, root) == 6 * 2**30
    # cgroup v1: the memory controller's own hierarchy, "unlimited" as a huge number.
    proc1 = tmp_path / "cgroup_v1"
    _write(proc1, "4:memory:/job_9\n3:cpuset:/\n")
    _write(root / "memory/job_9/memory.limit_in_bytes", "9223372036854771712")
    _write(root / "memory/job_9/memory.usage_in_bytes", "5")
    _write(root / "memory/memory.limit_in_bytes", "4000")
    _write(root / "memory/memory.usage_in_bytes", "1000")
    assert cgroup_headroom(proc1, root) == 3000
    assert cgroup_headroom(tmp_path / "absent", root) is None


def _linear_device(n_devices, fixed, per_model, superlinear=0.0):
    """A fake device whose programs need fixed + per_model * m (+ a superlinear term) bytes per device."""
    calls = []

    def measure(n_runs):
        def memory(n_parts):
            calls.append(n_parts)
            sizes = [len(p) for p in _near_equal(n_runs, n_parts)]
            mems = []
            for size in sizes:
                m = math.ceil(size / min(n_devices, size))
                mems.append(ProgramMemory(int(fixed + per_model * m + superlinear * m * m), fixed, m))
            return mems
        return memory

    return measure, calls


def _near_equal(n, parts):
    import numpy as np

    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [range(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]


@pytest.mark.parametrize("n_runs,n_devices,budget", [(256, 2, 10_000), (100, 1, 3_333), (7, 4, 2_500),
                                                     (1000, 8, 1_000_000), (33, 2, 2_100)])
@pytest.mark.parametrize("superlinear", [0.0, 3.0])
def test_split_is_the_fewest_parts_that_fit(n_runs, n_devices, budget, superlinear):
    measure, calls = _linear_device(n_devices, fixed=1_000, per_model=100, superlinear=superlinear)
    n = parts_that_fit(n_runs, n_devices, budget, measure(n_runs), "group")
    n_compiles = len(calls)
    fits = lambda k: max(m.device_bytes for m in measure(n_runs)(k)) <= budget
    assert fits(n)
    if superlinear == 0.0:  # memory linear in the networks, as XLA's is here (BUILD_NOTES.md): the fewest parts
        assert n_compiles <= 2  # measured whole, predicted, checked
        assert n == 1 or not fits(n - 1)
    # Faster than linear growth: predicted from the largest program, so it may split more than needed.


def test_split_fails_clearly_when_one_network_is_too_large():
    measure, _ = _linear_device(2, fixed=1_000, per_model=5_000)
    with pytest.raises(SizingError, match=r"group 3.*one network per device needs 5\.9 KiB"):
        parts_that_fit(64, 2, 4_000, measure(64), "group 3")


def test_compiled_once_for_sizing_and_training():
    eng, consts, task = mlp_copies(3, (10, 7, 5))  # three hidden layers: less to compile, the same sizing
    data = task.device_data()
    mesh, args = eng.abstract_chunk_args(consts, data, 8)  # epochs 0..6 in chunks of 4
    sized = eng.compiled_chunk(mesh, *args)
    assert sized.device_bytes > sum(a.nbytes for a in jax.tree.leaves(data))
    res = run_program(eng, Networks.of([0, 1, 2], [4e-4] * 3), consts, data, mi_epochs(6, every=2), 6)
    assert eng.trace_count == 1 and res.compile_s == sized.compile_s  # the sizing executable trained the bucket


def test_resume_keeps_the_recorded_buckets():
    spec = validate({"grid": {"seed": 7, "activation": ["tanh", "relu"], "optimizer": ["sgd", "adam"]}})
    runs = expand_grid(spec)
    (key_a, _), (key_b, _) = group_runs(runs)
    previous = Manifest(name="interrupted", n_runs=len(runs), n_mi_samples=4096,
                        programs={"mode": "auto", "parts": {key_a: 3}, "budget_bytes_per_device": 1})
    # No device is consulted (programs=None): the split comes from the manifest of the interrupted sweep.
    buckets, record = plan_programs(spec, runs, None, previous, progress=False)
    assert [b.size for b in buckets] == [5, 4, 5, 14] and record["parts"] == {key_a: 3}
    pre_sizing = Manifest(name="old", n_runs=len(runs), n_mi_samples=4096)  # a run directory from before sizing
    old, _ = plan_programs(spec, runs, None, pre_sizing, progress=False)
    assert [b.size for b in old] == [14, 14]


def test_sweep_splits_to_fit_and_results_do_not_change(tiny_run, tmp_path, monkeypatch):
    whole = json.loads((tiny_run / "manifest.json").read_text())
    assert whole["programs"]["mode"] == "auto" and len(whole["buckets"]) == 1
    need = whole["buckets"][0]["device_bytes"]
    assert 0 < need <= whole["programs"]["budget_bytes_per_device"]
    # A device with 90 % of what the whole bucket needs (after the planning fraction): it must split.
    monkeypatch.setenv("IBJAX_DEVICE_MEMORY", str(int(0.9 * need / budget_fraction(jax.devices()[0].platform))))
    rd = sweep_to_run_dir(tmp_path, small_spec())
    progs = rd.manifest["programs"]
    assert progs["mode"] == "auto" and progs["budget_source"].startswith("IBJAX_DEVICE_MEMORY")
    assert len(rd.manifest["buckets"]) == 2
    assert all(b["device_bytes"] <= progs["budget_bytes_per_device"] for b in rd.manifest["buckets"])
    rd.manifest.shards = [ShardRecord(shard="0/1", status="done")]
    assert_merged_equals_unsharded(rd, load(tiny_run))


def test_too_little_memory_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("IBJAX_DEVICE_MEMORY", "1KB")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(json.dumps(small_spec()))
    proc = run_cli("ibjax.sweep", str(spec), "--out", str(tmp_path / "o"), "--no-report")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    budget = int(1000 * budget_fraction(jax.devices()[0].platform))
    assert "bucket group 1/1 (8 networks" in proc.stderr and f"over the budget of {budget} B" in proc.stderr
    assert not (tmp_path / "o" / "manifest.json").exists()  # stopped before the sweep began
    monkeypatch.setenv("IBJAX_DEVICE_MEMORY", "lots")  # the same SizingError, which the CLI reports the same way
    with pytest.raises(SizingError, match="IBJAX_DEVICE_MEMORY='lots'"):
        device_budget(jax.local_devices())
    monkeypatch.setenv("IBJAX_DEVICE_MEMORY", "3GiB")
    share = budget_fraction(jax.local_devices()[0].platform)
    assert device_budget(jax.local_devices()).bytes_per_device == int(3 * 2**30 * share)


def test_a_device_reporting_its_memory_limit_is_sized_by_it(tiny_run, tmp_path, monkeypatch):
    """An accelerator's path through sizing, with its memory simulated: the devices report an allocator limit
    (as a GPU's `memory_stats()` does), the sweep plans within it, splits a bucket over it, and stops with an
    error naming the bucket group when one network per device does not fit."""
    from ibjax.sweep import sizing

    monkeypatch.delenv("IBJAX_DEVICE_MEMORY", raising=False)
    need = json.loads((tiny_run / "manifest.json").read_text())["buckets"][0]["device_bytes"]
    platform = jax.devices()[0].platform
    limit = int(0.9 * need / budget_fraction(platform)) + 1000
    monkeypatch.setattr(sizing, "_memory_stats", lambda d: {"bytes_limit": limit, "bytes_in_use": 1000})
    (tmp_path / "split").mkdir()
    progs = sweep_to_run_dir(tmp_path / "split", small_spec()).manifest["programs"]
    assert progs["budget_source"] == f"{platform} allocator limit less in use"
    assert progs["budget_bytes_per_device"] == int((limit - 1000) * budget_fraction(platform))
    assert sum(progs["parts"].values()) == 2  # the bucket that needs `need` is split in two
    monkeypatch.setattr(sizing, "_memory_stats", lambda d: {"bytes_limit": 5000, "bytes_in_use": 1000})
    spec = tmp_path / "tiny.yaml"
    spec.write_text(json.dumps(small_spec()))
    proc = run_cli("ibjax.sweep", str(spec), "--out", str(tmp_path / "o"), "--no-report")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "bucket group 1/1 (8 networks" in proc.stderr and "one network per device needs" in proc.stderr


class _Accelerator:
    """A device as JAX describes one (platform, memory_stats), for the budget rules of devices not here."""

    def __init__(self, stats, platform="gpu"):
        self.platform, self._stats = platform, stats

    def memory_stats(self):
        if isinstance(self._stats, Exception):
            raise self._stats
        return self._stats


def test_accelerator_budget_is_its_free_memory_or_a_clear_error(monkeypatch):
    monkeypatch.delenv("IBJAX_DEVICE_MEMORY", raising=False)
    gpus = [_Accelerator({"bytes_limit": 100_000, "bytes_in_use": 20_000}),
            _Accelerator({"bytes_limit": 100_000, "bytes_in_use": 50_000})]
    budget = device_budget(gpus)
    assert budget.bytes_per_device == int(50_000 * budget_fraction("gpu"))  # the fullest device decides
    for stats in ({}, None, RuntimeError("UNIMPLEMENTED")):  # e.g. XLA_PYTHON_CLIENT_ALLOCATOR=platform
        with pytest.raises(SizingError, match="IBJAX_DEVICE_MEMORY"):
            device_budget([_Accelerator(stats)])
    monkeypatch.setenv("IBJAX_DEVICE_MEMORY", "80GB")
    assert device_budget([_Accelerator(None)]).bytes_per_device == int(80e9 * budget_fraction("gpu"))


def test_fixed_bytes_are_the_task_data_on_one_device_too():
    from ibjax.sweep.plan import make_buckets
    from ibjax.sweep.programs import Programs

    spec = validate({"train": {"epochs": 6, "chunk_epochs": 4}, "mi": {"schedule": {"every": 2}},
                     "grid": {"seed": 1}})
    task = load_task(spec.data)
    data = task.device_data()
    (bucket,) = make_buckets(expand_grid(spec))
    mem = Programs(spec, task, data).memory(bucket)  # one network: a one-device mesh, every sharding replicated
    assert mem.models_per_device == 1
    data_bytes = sum(a.nbytes for a in jax.tree.leaves(data))
    assert mem.fixed_bytes == data_bytes + 8 + 2 * 4  # + the MI mask (2 chunks of 4 epochs) and two int32 scalars
    assert mem.bytes_per_model > 0


def test_cpu_compile_options_apply_and_an_unknown_option_falls_back(monkeypatch):
    """On the CPU the MLP's chunk program is compiled with its family's cpu_compiler_options (YNNPACK fusions off:
    they ran the MI pass's softmax ~3x slower, BUILD_NOTES.md issue 6); an XLA that does not know an option
    compiles without it instead of failing the sweep."""
    from ibjax import native
    from ibjax.models.mlp import MLP
    from ibjax.train.engine import NATIVE_TRAINING_CPU_OPTIONS, known_cpu_options

    mlp_options = dict(MLP.cpu_compiler_options)
    eng, consts, task = mlp_copies(2, (10, 7, 5))  # three hidden layers: four compiles below, each cheaper
    prog = eng.prog
    mesh, args = eng.abstract_chunk_args(consts, task.device_data(), 8)
    compiled = lambda: Engine(prog).compiled_chunk(mesh, *args)
    hlo = lambda: compiled().executable.as_text()
    chunk = compiled()
    assert "__ynn_fusion" not in chunk.executable.as_text()
    # A chunk the native kernel trains is compiled with XLA's legacy emitters too, where this XLA has them (faster
    # to compile, as fast to run); one that XLA trains (the kernel switched off) is not.
    native_training = native.use("mlp")
    assert dict(chunk.options) == known_cpu_options({**MLP.cpu_compiler_options,
                                                     **(NATIVE_TRAINING_CPU_OPTIONS if native_training else {})})
    monkeypatch.setenv("IBJAX_NATIVE_TRAIN", "0")
    assert dict(compiled().options) == known_cpu_options(MLP.cpu_compiler_options)
    monkeypatch.delenv("IBJAX_NATIVE_TRAIN")
    monkeypatch.setattr(MLP, "cpu_compiler_options", {})
    assert "__ynn_fusion" in hlo()  # why the option is set (if XLA stops fusing this way, it can go)
    # An option this XLA does not know is left out; the others still apply.
    monkeypatch.setattr(MLP, "cpu_compiler_options", {**mlp_options, "xla_cpu_no_such_option": ""})
    unknown = compiled()
    assert "xla_cpu_no_such_option" not in dict(unknown.options) and "__ynn_fusion" not in unknown.executable.as_text()
