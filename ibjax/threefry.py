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

`original_layout_key`: the bits of JAX's original counter layout (`jax.threefry_partitionable(False)`, selected for
these keys alone): other draws of the same distribution, for dropout masks (ibjax.models.family.dropout_key).

A key of another implementation (rbg) is returned as it is by both.
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


def _original_layout_bits(key, bit_width: int, shape):
    with jax.threefry_partitionable(False):
        return jxr.threefry_prng_impl.random_bits(key, bit_width, shape)


_ORIGINAL_LAYOUT_THREEFRY = jxr.define_prng_impl(
    key_shape=(2,), seed=jxr.threefry_prng_impl.seed, split=jxr.threefry_prng_impl.split,
    random_bits=_original_layout_bits, fold_in=jxr.threefry_prng_impl.fold_in, name="threefry2x32_counters",
    tag="frc")


def _rewrapped(key, impl):
    """`key` (a Threefry key, typed or raw uint32[2]) as a typed key of `impl`; another implementation unchanged."""
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    name = str(jax.random.key_impl(key)) if typed else jax.config.jax_default_prng_impl  # a raw key: the default's
    if name != "threefry2x32":
        return key
    return jax.random.wrap_key_data(jax.random.key_data(key) if typed else key, impl=impl)


def flat_counter_key(key):
    """`key` with the same draws, hashed over a flat counter (module docstring)."""
    return _rewrapped(key, _FLAT_COUNTER_THREEFRY)


def original_layout_key(key):
    """`key` with the draws of JAX's original counter layout (module docstring)."""
    return _rewrapped(key, _ORIGINAL_LAYOUT_THREEFRY)
