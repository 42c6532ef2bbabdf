"""Importing ibjax changes nothing global; the command lines and run_sweep set up what they need."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import yaml

from tests.helpers import ROOT, small_spec


def _python(code: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)


def test_import_leaves_jax_config_xla_flags_and_matplotlib_alone():
    """Every module of ibjax imported: no flag, no config, no backend started (a JAX computation at import, such
    as a constant computed with jnp, starts the backends, after which configure_process can no longer give the
    process one device per core: `python -m ibjax.validate` ran on one device that way). The command lines start
    without Flax NNX (~0.9 s of CPU per process; imported by the conv, Flax-module and autoencoder code that uses
    it)."""
    proc = _python(
        "import os, pkgutil, importlib, jax, matplotlib\n"
        "from jax._src import xla_bridge\n"
        "backend = matplotlib.get_backend()\n"
        "import sys, ibjax, ibjax.sweep.__main__, ibjax.report.__main__, ibjax.atlas.__main__, ibjax.slurm\n"
        "assert 'flax' not in sys.modules, 'a command line imported Flax at start-up'\n"
        "for m in pkgutil.walk_packages(ibjax.__path__, 'ibjax.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'XLA_FLAGS' not in os.environ, os.environ['XLA_FLAGS']\n"
        "assert not jax.config.jax_enable_x64\n"
        "assert matplotlib.get_backend() == backend\n"
        "assert not xla_bridge._backends, 'an import started the backends'\n"
        "ibjax.configure_process()\n"
        "print(jax.config.jax_enable_x64, len(jax.devices()))\n", {"IBJAX_HOST_DEVICES": "2"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True 2"


def test_an_estimator_without_64_bit_types_refuses_clearly():
    proc = _python(
        "import jax.numpy as jnp, numpy as np\n"
        "from ibjax.mi import Binning, LayerContext\n"
        "acts = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (64, 3)), jnp.float32)\n"
        "ctx = LayerContext(jnp.ones(3, bool), jnp.float32(-1), jnp.float32(1), True)\n"
        "Binning('b30', 30, 'auto')(acts, jnp.zeros(64, jnp.int32), ctx)\n")
    assert proc.returncode != 0
    assert "ibjax.configure_process()" in proc.stderr and "64-bit" in proc.stderr


def test_run_sweep_in_a_plain_process_equals_the_command_line(tmp_path):
    """A notebook that calls run_sweep without configure_process gets the command line's tables, bit for bit
    (both with 2 host devices, so that only the 64-bit set-up differs)."""
    raw = small_spec()
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(raw))
    # The test processes' own XLA options (tests/conftest.py: the legacy emitters where XLA has them) with 2 host
    # devices in place of this process's one per core.
    own = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    flags = {"XLA_FLAGS": " ".join([*own, "--xla_force_host_platform_device_count=2"])}
    cli = _python(f"import sys; from ibjax.sweep.__main__ import main; sys.exit(main(['{spec}', '--out', "
                  f"'{tmp_path / 'cli'}', '--no-report', '--quiet']))", flags)
    assert cli.returncode == 0, cli.stderr
    lib = _python("import jax\nfrom pathlib import Path\nfrom ibjax import load_spec\n"
                  "from ibjax.sweep.run import run_sweep\n"
                  f"run_sweep(load_spec(Path('{spec}')), Path('{tmp_path / 'lib'}'), progress=False, report=False)\n"
                  "assert not jax.config.jax_enable_x64  # on for the sweep only\n", flags)
    assert lib.returncode == 0, lib.stderr
    for name in ("runs", "info", "metrics", "gradients"):
        a = pd.read_parquet(tmp_path / "cli" / f"{name}.parquet")
        b = pd.read_parquet(tmp_path / "lib" / f"{name}.parquet")
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_the_test_processes_use_the_persistent_compilation_cache():
    """tests/conftest.py sets JAX's persistent cache before anything imports JAX; a helper that imported JAX at
    module import (before conftest's settings) turned the cache off in the test workers without a word."""
    import jax

    assert jax.config.jax_compilation_cache_dir == os.environ["JAX_COMPILATION_CACHE_DIR"]
    assert jax.config.jax_persistent_cache_min_compile_time_secs == float(
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"])
