"""Native CPU kernels, built on first use with the system C++ compiler and loaded as XLA FFI targets.

- `symbol_entropies.cc`: counts 64-bit symbol keys with a hash table (exact: whole keys are compared), ~3-5x
  faster than XLA's CPU sort on this workload; used by `ibjax.mi.entropy`.
- `mlp.cc`: the gradients of a training step and the forward pass of a stack of small MLPs, several times
  faster than XLA's CPU backend for layers this small; used by `ibjax.engine` through `ibjax.native.mlp`.
- `compact.cc`: the compaction step of the per-epoch Feistel shuffle (`ibjax.shuffle`), which XLA does with
  a cumsum and a vmapped scatter.
They run only where the program runs on the CPU. This module alone decides whether a kernel is used
(`use`, `dispatch`): not on other platforms, not without a compiler, not with IBJAX_NATIVE=0 (every kernel)
or a kernel's own switch set to 0 (IBJAX_NATIVE_COUNTING, IBJAX_NATIVE_TRAIN, IBJAX_NATIVE_SHUFFLE). Then the
callers' plain XLA runs instead, which gives the same numbers (counting and shuffles: exactly; gradients: to
float rounding; tests compare both). This package imports nothing else from ibjax.

Build: `c++ -O3 -march=native -shared` against the FFI headers shipped in jaxlib (`jax.ffi.include_dir()`),
~10 s, cached in $IBJAX_CACHE_DIR (default ~/.cache/ibjax) under a name that hashes the sources, jaxlib
version, command and this CPU's instruction-set flags (a home directory shared by cluster nodes of different
CPUs gets one build per kind of CPU), so an upgrade rebuilds and concurrent processes never load a
half-written file. IBJAX_NATIVE_MARCH replaces `native` in -march (e.g. `x86-64-v3`: an AVX2-only build on an
AVX-512 CPU, as the tests use to check that nothing depends on the vector width).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

TRAINING_CALL = "ibjax_mlp_grads"  # the custom call of the native training step, as a lowered program names it
TARGETS = {"ibjax_symbol_entropies": "IbjaxSymbolEntropies", TRAINING_CALL: "IbjaxMlpGrads",
           "ibjax_mlp_forward": "IbjaxMlpForward", "ibjax_compact_below": "IbjaxCompactBelow"}
# Each kernel's own switch (0: off). Read when a program is traced, so a test or an A/B benchmark can trace
# the same function both ways in one process; IBJAX_NATIVE=0 (read the same way) turns all off.
SWITCHES = {"counting": "IBJAX_NATIVE_COUNTING", "mlp": "IBJAX_NATIVE_TRAIN", "shuffle": "IBJAX_NATIVE_SHUFFLE"}
_SOURCES = sorted(Path(__file__).parent.glob("*.cc"))
log = logging.getLogger(__name__)


def _cache_dir() -> Path:
    return Path(os.environ.get("IBJAX_CACHE_DIR", Path.home() / ".cache" / "ibjax")) / "native"


def _cpu_fingerprint() -> str:
    """This CPU's instruction-set flags: a build with -march=native must not be loaded on another CPU kind."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() in ("flags", "Features"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _compile() -> Path:
    import jaxlib

    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX)")
    base = [cxx, "-O3", "-fno-math-errno", "-fno-trapping-math", "-std=c++17", "-shared", "-fPIC", "-w",
            f"-I{jax.ffi.include_dir()}"]
    march = f"-march={os.environ.get('IBJAX_NATIVE_MARCH') or 'native'}"
    sources = "\0".join(p.read_text() for p in _SOURCES)
    digest = hashlib.sha256("\0".join([sources, jaxlib.__version__, *base, march, _cpu_fingerprint()]).encode()
                            ).hexdigest()
    out = _cache_dir() / f"ibjax_native-{digest[:16]}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        # -march=native: the vector width of this CPU (AVX-512 where present) for the MLP kernel's loops;
        # a compiler that does not know the flag builds the portable way.
        errors = []
        for cmd in ([*base, march], base):
            proc = subprocess.run([*cmd, *map(str, _SOURCES), "-o", tmp], capture_output=True, text=True, timeout=600)
            if proc.returncode == 0:
                break
            errors.append(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        else:
            raise RuntimeError("\n".join(errors))
        os.replace(tmp, out)  # atomic: another process sees the old state or the whole file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def available() -> bool:
    """Whether the kernels can be called: IBJAX_NATIVE is not 0 (read now, so that a test or an A/B benchmark
    can trace the accelerator's path, plain XLA everywhere, in the same process) and they are built (once),
    loaded and registered; False (with one logged warning) if that is not possible."""
    return os.environ.get("IBJAX_NATIVE", "1") != "0" and _loaded()


@cache
def _loaded() -> bool:
    try:
        lib = ctypes.cdll.LoadLibrary(str(_compile()))
        for target, symbol in TARGETS.items():
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    except Exception as e:  # noqa: BLE001 — any failure means: use the portable path
        log.warning("ibjax: native kernels unavailable (%s); using plain XLA instead (slower)", e)
        return False
    return True


def use(kernel: str) -> bool:
    """Whether programs traced now call the native `kernel` ("counting", "mlp", "shuffle") on the CPU."""
    if kernel not in SWITCHES:
        raise ValueError(f"unknown native kernel {kernel!r}; known: {', '.join(SWITCHES)}")
    return os.environ.get(SWITCHES[kernel], "1") != "0" and available()


def dispatch(kernel: str, native_fn: Callable, xla_fn: Callable, *args):
    """`native_fn(*args)` where JAX's default backend is the CPU and `kernel` is in use, `xla_fn(*args)`
    otherwise (on a GPU or TPU machine, programs take `xla_fn`).

    Decided while tracing, from the default backend, which is where ibjax places its programs: staging both
    branches with `lax.platform_dependent` and letting the lowering pick one cost ~50 ms of tracing per call
    (the XLA fallbacks are large), ~1 s of every chunk program's trace. A program placed by hand on the CPU
    devices of a GPU machine takes the (slower, equal) XLA path."""
    if jax.default_backend() != "cpu" or not use(kernel):
        return xla_fn(*args)
    return native_fn(*args)


def symbol_entropies(keys_N: jnp.ndarray, labels_N: jnp.ndarray, n_classes: int,
                     correction: int = 0) -> tuple[jnp.ndarray, jnp.ndarray]:
    """H(T), H(T, Y) in bits of uint64 keys and int32 labels in [0, n_classes); CPU only (see module doc).
    correction: 0 the plug-in entropies, 1 Miller-Madow's, 2 the jackknife's (ibjax.mi.entropy.CORRECTIONS)."""
    if not available():
        raise RuntimeError("the native counting kernel is not available (IBJAX_NATIVE=0 or no C++ compiler)")
    out = jax.ffi.ffi_call("ibjax_symbol_entropies", _PAIR, vmap_method="expand_dims")(
        keys_N.astype(jnp.uint64), labels_N.astype(jnp.int32), n_classes=np.int64(n_classes),
        correction=np.int64(correction))
    return out[0], out[1]


_PAIR = jax.ShapeDtypeStruct((2,), jnp.float64)


def compact_below(values_K: jnp.ndarray, n: int) -> jnp.ndarray:
    """The values below n of int32 `values_K`, in order (exactly n of them must lie in [0, n)); CPU only."""
    if not available():
        raise RuntimeError("the native kernels are not available (IBJAX_NATIVE=0 or no C++ compiler)")
    return jax.ffi.ffi_call("ibjax_compact_below", jax.ShapeDtypeStruct((n,), jnp.int32),
                            vmap_method="expand_dims")(values_K.astype(jnp.int32), n=np.int64(n))
