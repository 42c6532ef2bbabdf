"""Per-epoch random permutations without sorting.

XLA's CPU sort costs ~170 ns per element, so `jax.random.permutation` of 3 481 rows for 128 networks took
~75 ms per epoch, more than the training itself. Instead: a keyed Feistel network is a bijection of
[0, 2^k); applying it to 0..2^k-1 and keeping, in order, the values below n gives a permutation of [0, n)
("cycle walking" done by compaction). Four rounds with a strong round function give a pseudo-random
permutation (Luby & Rackoff 1988); we use six with the murmur3 finaliser as round function. Cost: O(2^k).

The compaction is a cumsum and a scatter in XLA; on the CPU a native pass (`ibjax.native`, compact.cc) does
it instead, ~10x cheaper under vmap (the vmapped scatter builds an index pair per element). Both give the
same integers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ibjax import native

N_ROUNDS = 6


def _mix32(x):
    """murmur3's 32-bit finaliser: a fast bijective hash with full avalanche."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def feistel_permutation(key, n: int) -> jnp.ndarray:
    """A pseudo-random permutation of [0, n) (int32), determined by `key`."""
    half = max(1, -(-max(n - 1, 1).bit_length() // 2))  # bits per Feistel half; 2*half >= bits of n-1
    mask = jnp.uint32((1 << half) - 1)
    round_keys = jax.random.bits(key, (N_ROUNDS,), jnp.uint32)
    x = jnp.arange(1 << (2 * half), dtype=jnp.uint32)
    left, right = x >> half, x & mask
    for r in range(N_ROUNDS):
        left, right = right, left ^ (_mix32(right ^ round_keys[r]) & mask)
    y = ((left << half) | right).astype(jnp.int32)
    return native.dispatch("shuffle", lambda v: native.compact_below(v, n), lambda v: compact_below(v, n), y)


def compact_below(values_K: jnp.ndarray, n: int) -> jnp.ndarray:
    """The values of `values_K` that are below n, in order (exactly n of them must be in [0, n)): XLA."""
    keep = values_K < n
    pos = jnp.cumsum(keep) - 1
    return jnp.zeros(n, jnp.int32).at[jnp.where(keep, pos, n)].set(values_K, mode="drop")
