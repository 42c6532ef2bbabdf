"""Threefry keys (the same seeds, splits and fold-ins) whose random bits compile to smaller CPU programs.

`flat_counter_key`: JAX's own default draws, hashed over a flat counter.

JAX's default ("partitionable") Threefry layout hashes, for an array of shape S, the pair (0, i) for each element's
row-major index i (while the array has fewer than 2^32 elements). It builds i from one iota per dimension, and
XLA:CPU fuses the 20-round hash into kernels over S's dimensions: for a stochastic network's Gaussian noise
([7, 4096, 6] per network, with its gradient) ~1.1 s of compile, against ~0.2 s when the same hash runs over a
1-D counter of prod(S) elements and the result is reshaped to S. The draws are the same bits, so results do not
change: `flat_counter_key(key)` is the key to draw with where a program draws large arrays (a stochastic network's
noise, the noisy estimators' draws); tests/test_threefry.py compares every bit width with JAX's own bits.

Where JAX would not use that layout (`jax_threefry_partitionable` off, 2^32 elements or more), the bits are JAX's
own implementation's.

`row_normals`: a float32 normal vector per row, each drawn from the key folded in with the row's index (JAX's own
numbers), with both hashes over flat arrays: the vmapped draw fuses the two hashes over [rows, width] into kernels
of ~50 000 lines of LLVM IR (a data variant's Gaussian inputs: 5 s of a chunk program's compile).

`original_layout_key`: the bits of JAX's original counter layout (`jax.threefry_partitionable(False)`, selected for
these keys alone): other draws of the same distribution, for dropout masks (ibjax.models.family.dropout_key).

A key of another implementation (rbg) is returned as it is by both keys' functions, and `row_normals` then
draws with it as JAX does.
"""

from __future__ import annotations

import math

import jax
import jax.extend.random as jxr
import jax.numpy as jnp
import numpy as np
from jax import lax

_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


def _flat_counter_bits(key, bit_width: int, shape):
    n = math.prod(shape)
    if not jax.config.jax_threefry_partitionable or n >= 2**32 or n == 0:
        return jxr.threefry_prng_impl.random_bits(key, bit_width, shape)
    # The partitionable layout's counter pair of element i: high word 0, low word i (i < 2^32).
    bits1, bits2 = jxr.threefry2x32_p.bind(key[0], key[1], jnp.zeros(n, np.uint32), lax.iota(np.uint32, n))
    dtype = _UINT[bit_width]
    if bit_width == 64:
        bits = lax.shift_left(bits1.astype(dtype), dtype(32)) | bits2.astype(dtype)
    else:
        bits = (bits1 ^ bits2).astype(dtype)
    return bits.reshape(shape)


# Threefry-2x32 keys (the same seeds, splits and fold-ins) whose random bits are computed as above.
_FLAT_COUNTER_THREEFRY = jxr.define_prng_impl(
    key_shape=(2,), seed=jxr.threefry_prng_impl.seed, split=jxr.threefry_prng_impl.split,
    random_bits=_flat_counter_bits, fold_in=jxr.threefry_prng_impl.fold_in, name="threefry2x32_flat",
    tag="fft")


def _threefry_data(key):
    """The uint32[2] data of a Threefry key (typed, or raw: then of the default implementation), None for a key of
    another implementation."""
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    name = str(jax.random.key_impl(key)) if typed else jax.config.jax_default_prng_impl  # a raw key: the default's
    if name != "threefry2x32":
        return None
    return jax.random.key_data(key) if typed else key


def row_normals(key, rows, width: int):
    """`jax.vmap(lambda r: jax.random.normal(jax.random.fold_in(key, r), (width,), jnp.float32))(rows)`: the same
    numbers (tests/test_threefry.py), computed as one flat [rows * width] hash for the rows' keys and one for their
    draws. `key`: a Threefry key, raw (uint32[2]) or typed; `rows`: int [N], non-negative."""
    data = _threefry_data(key)
    n = rows.shape[0] * width
    if data is None or not jax.config.jax_threefry_partitionable or n >= 2**32:
        return jax.vmap(lambda r: jax.random.normal(jax.random.fold_in(key, r), (width,), jnp.float32))(rows)
    # fold_in(key, r): the key's hash of the counter pair (0, r).
    k1, k2 = jxr.threefry2x32_p.bind(data[0], data[1], jnp.zeros(rows.shape, np.uint32), rows.astype(np.uint32))
    # random_bits(key_r, 32, (width,)): key_r's hash of (0, j) for j < width, the two words xor-ed.
    b1, b2 = jxr.threefry2x32_p.bind(jnp.repeat(k1, width), jnp.repeat(k2, width), jnp.zeros(n, np.uint32),
                                     jnp.tile(lax.iota(np.uint32, width), rows.shape[0]))
    bits = (b1 ^ b2).reshape(rows.shape[0], width)
    # jax.random.normal in float32: uniform in [nextafter(-1, 0), 1) from the top 23 bits, then sqrt(2) erfinv.
    floats = lax.bitcast_convert_type((bits >> np.uint32(9)) | np.uint32(0x3F800000), np.float32) - np.float32(1)
    lo = np.nextafter(np.float32(-1), np.float32(0))
    u = lax.max(lo, floats * (np.float32(1) - lo) + lo)
    return np.float32(np.sqrt(2)) * lax.erf_inv(u)


def _original_layout_bits(key, bit_width: int, shape):
    with jax.threefry_partitionable(False):
        return jxr.threefry_prng_impl.random_bits(key, bit_width, shape)


_ORIGINAL_LAYOUT_THREEFRY = jxr.define_prng_impl(
    key_shape=(2,), seed=jxr.threefry_prng_impl.seed, split=jxr.threefry_prng_impl.split,
    random_bits=_original_layout_bits, fold_in=jxr.threefry_prng_impl.fold_in, name="threefry2x32_counters",
    tag="frc")


def _rewrapped(key, impl):
    """`key` (a Threefry key, typed or raw uint32[2]) as a typed key of `impl`; another implementation unchanged."""
    data = _threefry_data(key)
    return key if data is None else jax.random.wrap_key_data(data, impl=impl)


def flat_counter_key(key):
    """`key` with the same draws, hashed over a flat counter (module docstring)."""
    return _rewrapped(key, _FLAT_COUNTER_THREEFRY)


def original_layout_key(key):
    """`key` with the draws of JAX's original counter layout (module docstring)."""
    return _rewrapped(key, _ORIGINAL_LAYOUT_THREEFRY)
