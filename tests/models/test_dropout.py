"""Dropout masks: drawn from JAX's original Threefry counter layout (cheaper to compile on the CPU), a fresh
Bernoulli draw per unit at the stated rate, the same for a network stacked with others as alone."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from ibjax.models.family import dropout, dropout_key


def test_masks_are_jaxs_original_layout_draws():
    key = jax.random.PRNGKey(7)
    with jax.threefry_partitionable(False):  # JAX's own implementation of that layout, process-wide
        want32 = jax.random.bits(key, (33, 5), jnp.uint32)
        want64 = jax.random.bits(key, (33, 5), jnp.uint64)
        want_b = jax.random.bernoulli(key, 0.8, (33, 5))
    np.testing.assert_array_equal(jax.random.bits(dropout_key(key), (33, 5), jnp.uint32), want32)
    np.testing.assert_array_equal(jax.random.bits(dropout_key(key), (33, 5), jnp.uint64), want64)
    np.testing.assert_array_equal(jax.random.bernoulli(dropout_key(key), 0.8, (33, 5)), want_b)
    # not the default layout's draws (which the key would give unchanged)
    assert not np.array_equal(jax.random.bits(key, (33, 5), jnp.uint32), want32)


def test_dropout_keeps_units_at_the_rate_and_scales_them():
    h = jnp.ones((400, 250), jnp.float32)
    rate = 0.3
    out = np.asarray(jax.jit(lambda k: dropout(h, rate, k, True))(jax.random.PRNGKey(1)))
    kept = out != 0
    assert np.allclose(out[kept], 1 / (1 - rate))
    # the kept count is Binomial(100 000, 0.7): inside its 99.9 % interval
    lo, hi = stats.binom.interval(0.999, kept.size, 1 - rate)
    assert lo <= kept.sum() <= hi
    np.testing.assert_array_equal(dropout(h, rate, jax.random.PRNGKey(1), False), h)  # measured: no dropout
    np.testing.assert_array_equal(dropout(h, None, jax.random.PRNGKey(1), True), h)
    assert np.count_nonzero(dropout(h, 1e-12, jax.random.PRNGKey(1), True)) == h.size  # a rate near 0: all kept


def test_stacked_networks_draw_what_each_draws_alone():
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    h = jnp.arange(64 * 12, dtype=jnp.float32).reshape(64, 12)
    one = lambda k: dropout(h, 0.5, jax.random.fold_in(k, 2), True)
    stacked = jax.jit(jax.vmap(one))(keys)
    for i, k in enumerate(keys):
        np.testing.assert_array_equal(stacked[i], jax.jit(one)(k))
    assert not np.array_equal(stacked[0], stacked[1])  # each network its own mask
