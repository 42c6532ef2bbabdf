"""Flat-counter Threefry keys draw JAX's own bits (ibjax.threefry): the same results, a smaller program."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ibjax.threefry import flat_counter_key

SHAPES = [(1,), (5,), (3, 4), (2, 3, 5), (7, 64, 6), (0, 3)]


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.uint16, jnp.uint32, jnp.uint64])
def test_bits_are_jaxs_own_for_every_width_and_shape(dtype):
    for raw in (False, True):
        key = jax.random.PRNGKey(11) if raw else jax.random.key(11)
        for shape in SHAPES:
            mine = jax.random.bits(flat_counter_key(key), shape, dtype)
            np.testing.assert_array_equal(mine, jax.random.bits(key, shape, dtype), err_msg=str((shape, raw)))


def test_draws_are_jaxs_own_after_splits_fold_ins_and_under_vmap_and_jit():
    keys = jax.random.split(jax.random.key(3), 4)

    def normal(k, flat):
        k = jax.random.fold_in(k, 2)
        return jax.random.normal(flat_counter_key(k) if flat else k, (7, 40, 6), jnp.float32)

    mine = jax.jit(jax.vmap(lambda k: normal(k, True)))(keys)
    np.testing.assert_array_equal(mine, jax.jit(jax.vmap(lambda k: normal(k, False)))(keys))
    key = jax.random.PRNGKey(5)
    np.testing.assert_array_equal(jax.random.uniform(flat_counter_key(key), (9, 2), jnp.float64),
                                  jax.random.uniform(key, (9, 2), jnp.float64))


def test_the_original_layout_when_jax_is_set_to_it():
    key = jax.random.key(8)
    with jax.threefry_partitionable(False):
        np.testing.assert_array_equal(jax.random.bits(flat_counter_key(key), (3, 7), jnp.uint32),
                                      jax.random.bits(key, (3, 7), jnp.uint32))


def test_another_key_implementation_is_left_as_it_is():
    key = jax.random.key(1, impl="rbg")
    assert flat_counter_key(key) is key
