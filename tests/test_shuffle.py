import jax
import numpy as np
import pytest

from ibjax.shuffle import feistel_permutation


@pytest.mark.parametrize("n", [1, 2, 5, 256, 3481, 4096, 5000])
def test_is_a_permutation(n):
    p = np.asarray(feistel_permutation(jax.random.PRNGKey(n), n))
    np.testing.assert_array_equal(np.sort(p), np.arange(n))


def test_keys_give_different_orders_and_small_n_reaches_all_orders():
    a = np.asarray(feistel_permutation(jax.random.PRNGKey(0), 3481))
    b = np.asarray(feistel_permutation(jax.random.PRNGKey(1), 3481))
    assert (a != b).mean() > 0.99
    keys = jax.random.split(jax.random.PRNGKey(2), 6000)
    orders = np.asarray(jax.vmap(lambda k: feistel_permutation(k, 4))(keys))
    counts = np.unique(orders, axis=0, return_counts=True)[1]
    assert len(counts) == 24  # every order of 4 items appears
    assert counts.min() > 6000 / 24 * 0.6 and counts.max() < 6000 / 24 * 1.4
