"""The process set-up the command lines make first (`ibjax.configure_process()`); importing ibjax never does it.

A notebook or script that calls ibjax's estimators or engine directly calls `ibjax.configure_process()` at its top,
before anything creates JAX's backends (the estimators refuse to run without 64-bit types and say so);
`ibjax.sweep.run_sweep` turns 64-bit types on for its own duration, so it needs nothing.

- One XLA CPU device per core, so the model axis can be sharded over the cores (XLA's CPU backend runs the
  tiny matmuls of these networks on one thread per device). Only possible before JAX starts its backends;
  IBJAX_HOST_DEVICES overrides the count, and an explicit XLA_FLAGS setting wins.
- float64 enabled: exact symbol packing needs uint64 and 1e-9-bit entropies need float64. Everything on the
  network side is created with explicit float32 dtypes, so the flag changes only the MI bookkeeping.
"""

from __future__ import annotations

import os
import sys


def _backends_started() -> bool:
    """Whether JAX has already created its backends (after that, XLA_FLAGS are no longer read)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge._backends)
    except Exception:  # private API moved: assume the worst
        return True


def _host_device_count() -> str:
    if os.environ.get("IBJAX_HOST_DEVICES"):
        return os.environ["IBJAX_HOST_DEVICES"]
    return str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def configure_process() -> None:
    """One XLA CPU device per core (unless XLA_FLAGS already sets a count, or JAX's backends have started) and
    64-bit types on, for the whole process."""
    if not _backends_started() and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        flag = f"--xla_force_host_platform_device_count={_host_device_count()}"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()

    import jax

    jax.config.update("jax_enable_x64", True)
