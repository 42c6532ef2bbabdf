"""ibjax: train hundreds of small networks at once and measure their information planes on device."""

import os as _os
import sys as _sys


def _backends_started() -> bool:
    """Whether JAX has already created its backends (after that, XLA_FLAGS are no longer read)."""
    if "jax" not in _sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge._backends)
    except Exception:  # private API moved: assume the worst
        return True


# Split the host CPU into one XLA device per core, so the model axis can be sharded over the cores (XLA's
# CPU backend runs the tiny matmuls of these networks on one thread per device). Only possible before JAX
# starts its backends; IBJAX_HOST_DEVICES overrides the count, and an explicit XLA_FLAGS setting wins.
if not _backends_started() and "xla_force_host_platform_device_count" not in _os.environ.get("XLA_FLAGS", ""):
    _n = _os.environ.get("IBJAX_HOST_DEVICES") or str(
        len(_os.sched_getaffinity(0)) if hasattr(_os, "sched_getaffinity") else (_os.cpu_count() or 1))
    _flag = f"--xla_force_host_platform_device_count={_n}"
    _os.environ["XLA_FLAGS"] = (_os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import jax as _jax  # noqa: E402

# Exact symbol packing needs uint64 and 1e-9-bit entropies need float64. Everything on the network side is
# created with explicit float32 dtypes, so this flag changes only the MI bookkeeping.
_jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"


def load(run_dir):
    """Load a run directory's tables (see ibjax.store.load)."""
    from ibjax.store import load as _load

    return _load(run_dir)
