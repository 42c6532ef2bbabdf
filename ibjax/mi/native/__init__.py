"""The native CPU counting kernel: built on first use with the system C++ compiler, loaded as an XLA FFI target.

`symbol_entropies.cc` counts 64-bit symbol keys with a hash table (exact: whole keys are compared) and is
~3-5x faster than XLA's CPU sort on this workload (BUILD_NOTES.md, issue 6). It runs only where the program
runs on the CPU; on other platforms, with no compiler, or with IBJAX_NATIVE=0, `ibjax.mi.entropy` uses its
sort-based path, which gives the same numbers (tests compare the two).

Build: `c++ -O2 -shared` against the FFI headers shipped in jaxlib (`jax.ffi.include_dir()`), ~3 s, cached in
$IBJAX_CACHE_DIR (default ~/.cache/ibjax) under a name that hashes the source, jaxlib version and command,
so an upgrade rebuilds and concurrent processes never load a half-written file.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

TARGETS = {"ibjax_symbol_entropies": "IbjaxSymbolEntropies"}
_SOURCE = Path(__file__).with_name("symbol_entropies.cc")
log = logging.getLogger(__name__)


def _cache_dir() -> Path:
    return Path(os.environ.get("IBJAX_CACHE_DIR", Path.home() / ".cache" / "ibjax")) / "native"


def _compile() -> Path:
    import jaxlib

    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX)")
    cmd = [cxx, "-O2", "-std=c++17", "-shared", "-fPIC", "-w", f"-I{jax.ffi.include_dir()}"]
    digest = hashlib.sha256("\0".join([_SOURCE.read_text(), jaxlib.__version__, *cmd]).encode()).hexdigest()[:16]
    out = _cache_dir() / f"symbol_entropies-{digest}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run([*cmd, str(_SOURCE), "-o", tmp], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        os.replace(tmp, out)  # atomic: another process sees the old state or the whole file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


@cache
def available() -> bool:
    """Build (once), load and register the kernel; False (with one logged warning) if that is not possible."""
    if os.environ.get("IBJAX_NATIVE", "1") == "0":
        return False
    try:
        lib = ctypes.cdll.LoadLibrary(str(_compile()))
        for target, symbol in TARGETS.items():
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    except Exception as e:  # noqa: BLE001 — any failure means: use the portable path
        log.warning("ibjax: native counting kernel unavailable (%s); using XLA's sort instead (slower)", e)
        return False
    return True


def symbol_entropies(keys_N: jnp.ndarray, labels_N: jnp.ndarray, n_classes: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """H(T), H(T, Y) in bits of uint64 keys and int32 labels in [0, n_classes); CPU only (see module doc)."""
    if not available():
        raise RuntimeError("the native counting kernel is not available (IBJAX_NATIVE=0 or no C++ compiler)")
    out = jax.ffi.ffi_call("ibjax_symbol_entropies", _PAIR, vmap_method="expand_dims")(
        keys_N.astype(jnp.uint64), labels_N.astype(jnp.int32), n_classes=np.int64(n_classes))
    return out[0], out[1]


_PAIR = jax.ShapeDtypeStruct((2,), jnp.float64)
