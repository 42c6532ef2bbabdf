"""Flat-counter Threefry keys draw JAX's own bits (ibjax.threefry): the same results, a smaller program."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ibjax.threefry import flat_counter_key, row_normals

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


def test_row_normals_are_the_vmapped_fold_in_draws():
    """Gaussian images per row (data variants): each row's draw from the key folded in with the row's index."""
    def vmapped(key, rows, width):
        return jax.vmap(lambda r: jax.random.normal(jax.random.fold_in(key, r), (width,), jnp.float32))(rows)

    rows = jnp.asarray(np.random.default_rng(0).integers(0, 70_000, 257), jnp.int32)
    for key, width in ((jax.random.PRNGKey(jnp.uint32(2**31 + 5)), 13), (jax.random.key(7), 1)):
        mine = jax.jit(row_normals, static_argnums=2)(key, rows, width)
        assert mine.dtype == jnp.float32 and mine.shape == (257, width)
        np.testing.assert_array_equal(mine, jax.jit(vmapped, static_argnums=2)(key, rows, width), err_msg=str(key))
    # inside a vmap over networks' seeds, as the training program draws them
    seeds = jnp.arange(4, dtype=jnp.uint32)
    mine = jax.jit(jax.vmap(lambda s: row_normals(jax.random.PRNGKey(s), rows, 12)))(seeds)
    np.testing.assert_array_equal(mine, jax.jit(jax.vmap(lambda s: vmapped(jax.random.PRNGKey(s), rows, 12)))(seeds))
    assert abs(float(mine.mean())) < 0.05 and abs(float(mine.std()) - 1) < 0.05
