"""Fixtures shared by the test packages (helpers and NumPy references: tests/helpers.py, tests/reference.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_cli, small_spec, use_code_path

# A persistent XLA compilation cache for the test workers and every sweep they start: the suite compiles the
# same small programs in many processes (each CLI test is a new interpreter); each is compiled once and then
# loaded (a tiny sweep: 16 s -> 7 s). Keys hash the program, the compile options and the jax version, so a
# changed program compiles anew. One folder for both xdist workers, so a program one worker compiled is loaded
# by the other (an entry read while it is being written fails to load and is compiled again, with a warning).
# Set before any test imports JAX, which reads these at import.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(Path(tempfile.gettempdir()) / f"ibjax-tests-{os.getuid()}" / "xla-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


def _jaxlib_before(major: int, minor: int) -> bool:
    from importlib.metadata import version

    return tuple(int(p) for p in version("jaxlib").split(".")[:2]) < (major, minor)


# XLA:CPU's legacy loop emitters for every program the test processes and the processes they start compile without
# options of their own (the chunks of the native MLP kernel and the initial states already use them: ibjax/train/
# engine.py). Most of the suite's ~2 000 compiles are small programs (eager operations, estimator calls), and XLA's
# MLIR fusion emitters spend most of such a compile making an MLIR context per fusion (33 -> 19 ms per one-op
# program; the suite 507 -> 404 s, BUILD_NOTES.md "Suite time", session 25). Test processes only: the legacy
# emitters run a k-NN estimator's program about 2x slower (benchmarks/knn.py), so user processes keep XLA's default.
# What the tests prove does not depend on how XLA emits a fusion (the cross-path comparisons are robust to float
# rounding). jax 0.11's XLA has no legacy emitters and stops at an unknown flag in XLA_FLAGS: there, the default.
_LEGACY_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
if _jaxlib_before(0, 11) and "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _LEGACY_EMITTERS).strip()

# The tests call the engine and the estimators directly, in the process set-up the command lines make (one XLA
# CPU device per core, 64-bit types); importing ibjax does not make it (tests/test_import.py checks that).
import ibjax  # noqa: E402

ibjax.configure_process()


@pytest.fixture(params=["cpu", "accelerator"])
def code_path(request, monkeypatch) -> str:
    """The engine's invariants on both code paths: this machine's own and an accelerator's (ACCELERATOR_PATH)."""
    use_code_path(monkeypatch, request.param)
    return request.param


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory from `python -m ibjax.sweep` on the shrunk default spec, made once for the whole session:
    the xdist workers share one (the first to get the lock makes it; tests only read it, and copy it to change
    it), where each had made its own (~6-9 s)."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the session's folder, above each worker's own
    d = root / "tiny-shared"
    d.mkdir(exist_ok=True)
    out = d / "run"
    with open(root / "tiny-shared.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (d / "made").exists():
            shutil.rmtree(out, ignore_errors=True)  # what a worker that failed while making it left
            spec = d / "tiny.yaml"
            spec.write_text(yaml.safe_dump(small_spec()))
            proc = run_cli("ibjax.sweep", str(spec), "--out", str(out))
            assert proc.returncode == 0, proc.stderr
            (d / "made").touch()
    return out


# The heaviest files first. `--dist loadfile` hands whole files to the two workers in collection order, so a heavy
# file collected last (tests/train sorts after tests/test_*.py) ran alone while the other worker idled; longest
# first packs them. Worker seconds, cold compilation cache, 2-core AMD EPYC VM with AVX-512 (BUILD_NOTES.md,
# "Suite time", session 24).
HEAVIEST_FIRST = (
    "tests/sweep/test_cli.py",  # 81 s
    "tests/test_benchmarks.py",  # 78 s
    "tests/train/test_engine.py",  # 64 s
    "tests/sweep/test_resume.py",  # 64 s
    "tests/models/test_families.py",  # 58 s
    "tests/sweep/test_slurm.py",  # 43 s
    "tests/train/test_variants.py",  # 32 s
    "tests/mi/test_knn.py",  # 32 s
    "tests/test_accelerator.py",  # 29 s
    "tests/mi/test_estimators.py",  # 29 s
    "tests/atlas/test_atlas.py",  # 28 s
    "tests/test_import.py",  # 23 s
    "tests/models/test_quantized.py",  # 21 s
)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: i for i, path in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep order


def pytest_collection_finish(session):
    """Python's cyclic garbage collector in the test workers: after collection every module the suite uses is
    imported (JAX, XLA's bindings, pandas, SciPy, Flax: ~300 000 objects tracked by the collector, alive as long
    as the process), and each full collection walked all of them again: ~0.33 s each, 5-6 % of a worker's CPU in
    tests/train and tests/models (a `gc.callbacks` timer). Frozen, a full collection walks only what the tests
    made since (~0.17 s), and at most one in 100 collections of the middle generation (default 10) is a full one:
    that GC time 13.2 -> 6.2 s over the two workers (BUILD_NOTES.md, "Suite time", session 29). Test workers
    only: nothing here changes what a test computes."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 100)
