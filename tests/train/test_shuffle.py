import jax
import numpy as np
import pytest

from ibjax.train.shuffle import feistel_permutation


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


def test_native_compaction_gives_the_xla_permutation(monkeypatch):
    """On the CPU the compaction runs in a native kernel; it must give exactly the XLA path's integers
    (vmapped, as the engine calls it, and for sizes that are and are not powers of two)."""
    from ibjax import native

    if not native.available():
        pytest.skip("native kernels unavailable")
    keys = jax.random.split(jax.random.PRNGKey(3), 7)
    for n in (1, 5, 256, 3481, 4096):
        perm = jax.jit(jax.vmap(lambda k: feistel_permutation(k, n)))
        fast = np.asarray(perm(keys))
        monkeypatch.setenv("IBJAX_NATIVE_SHUFFLE", "0")
        slow = np.asarray(jax.jit(jax.vmap(lambda k: feistel_permutation(k, n)))(keys))
        monkeypatch.delenv("IBJAX_NATIVE_SHUFFLE")
        np.testing.assert_array_equal(fast, slow)
        np.testing.assert_array_equal(np.sort(fast, axis=1), np.broadcast_to(np.arange(n), fast.shape))


def test_native_compaction_refuses_rows_that_are_not_a_cycle_walk():
    from ibjax import native

    if not native.available():
        pytest.skip("native kernels unavailable")
    with pytest.raises(Exception, match="exactly n values"):
        jax.block_until_ready(native.compact_below(jax.numpy.asarray([0, 7, 1, 9], jax.numpy.int32), 3))
