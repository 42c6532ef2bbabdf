"""The native CPU counting kernel against the portable sort path and against known entropies."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ibjax import native
from ibjax.mi.binning import bin_indices, mi_from_bins, pack_symbols
from ibjax.mi.entropy import symbol_entropies
from tests.reference import joint_entropies


def test_kernel_builds_here():
    # CI has a C++ compiler; if this fails the sweeps silently fall back to the (3x slower) sort.
    assert native.available()


@pytest.mark.parametrize("n_classes", [2, 10, 300])  # 300 > 64: the kernel's separate (T, Y) table
@pytest.mark.parametrize("n", [1, 7, 1000, 4096])
def test_native_equals_sort_and_numpy(n, n_classes):
    rng = np.random.default_rng(n + n_classes)
    # Few distinct symbols (many duplicates), and near-distinct ones.
    for high in (3, 30):
        bins = rng.integers(0, high, size=(n, 4))
        labels = rng.integers(0, n_classes, size=n).astype(np.int32)
        codes = pack_symbols(jnp.asarray(bins), 30)
        got = symbol_entropies(codes, jnp.asarray(labels), radix=30**4, n_classes=n_classes, method="native")
        ref = symbol_entropies(codes, jnp.asarray(labels), radix=30**4, n_classes=n_classes, method="sort")
        want = joint_entropies(bins, labels)
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-9)
        np.testing.assert_allclose(np.asarray(got), want, atol=1e-9)


def test_vmapped_rows_with_shared_and_own_labels():
    rng = np.random.default_rng(0)
    bins = rng.integers(0, 5, size=(6, 500, 3))
    codes = jax.vmap(lambda b: pack_symbols(b, 30))(jnp.asarray(bins))
    shared = jnp.asarray(rng.integers(0, 2, size=500).astype(np.int32))
    own = jnp.asarray(rng.integers(0, 2, size=(6, 500)).astype(np.int32))
    f = lambda c, y, m: symbol_entropies(c, y, radix=30**3, n_classes=2, method=m)
    for labels, axes in ((shared, (0, None)), (own, (0, 0))):
        got = jax.jit(jax.vmap(lambda c, y: f(c, y, "native"), in_axes=axes))(codes, labels)
        ref = jax.jit(jax.vmap(lambda c, y: f(c, y, "sort"), in_axes=axes))(codes, labels)
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=1e-9)


def test_known_entropies():
    # 2^k equiprobable symbols: k bits; a label that is a function of the symbol adds nothing.
    k = 7
    sym = jnp.arange(2**k * 3, dtype=jnp.uint64)[:, None] % (2**k)
    labels = (sym[:, 0] % 2).astype(jnp.int32)
    h_t, h_ty = symbol_entropies(sym, labels, radix=2**k, n_classes=2, method="native")
    assert abs(float(h_t) - k) < 1e-12 and abs(float(h_ty) - k) < 1e-12
    # One symbol, balanced labels: H(T) = 0, H(T, Y) = 1.
    h_t, h_ty = symbol_entropies(jnp.zeros((64, 1), jnp.uint64), jnp.arange(64) % 2, radix=1, n_classes=2,
                                 method="native")
    assert float(h_t) == 0.0 and abs(float(h_ty) - 1.0) < 1e-12


def test_wide_layers_hash_to_the_same_counts():
    # 20 units x 30 bins do not fit one 64-bit word: both paths hash the words; counts must still agree with
    # NumPy's exact tuple counting.
    rng = np.random.default_rng(3)
    acts = np.tanh(rng.normal(size=(2048, 20)) * 3).astype(np.float32)
    labels = rng.integers(0, 2, size=2048).astype(np.int32)
    bins = bin_indices(jnp.asarray(acts), 30, -1.0, 1.0)
    h_t, h_ty = joint_entropies(np.asarray(bins), labels)
    i_xt, i_ty = mi_from_bins(bins, jnp.asarray(labels), 30, 2)
    _, c = np.unique(labels, return_counts=True)
    h_y = float(-(c / c.sum() * np.log2(c / c.sum())).sum())
    assert abs(float(i_xt) - h_t) < 1e-9 and abs(float(i_ty) - (h_t + h_y - h_ty)) < 1e-9


def test_bad_labels_are_refused():
    with pytest.raises(Exception, match="outside"):
        jax.block_until_ready(symbol_entropies(jnp.zeros((8, 1), jnp.uint64), jnp.full(8, 5, jnp.int32), radix=1,
                                               n_classes=2, method="native"))


@pytest.mark.parametrize("n_classes", [2, 3, 10])  # 3: the kernel's loop of runtime width
def test_rows_of_growing_distinct_counts_and_the_largest_key(n_classes):
    """Rows of one call size the kernel's table from the previous row: a row with far more distinct
    symbols than the one before must grow it and still count exactly; the key 2^64 - 1 is counted too."""
    rng = np.random.default_rng(n_classes)
    n = 3000
    rows = [rng.integers(0, d, size=n).astype(np.uint64) for d in (1, 5, 3000, 7, 2**62)]
    rows[3][::3] = np.uint64(2**64 - 1)  # the largest key (its + 1 wraps around)
    keys = np.stack(rows)
    labels = rng.integers(0, n_classes, size=(len(rows), n)).astype(np.int32)
    entropies = jax.vmap(lambda k, y: symbol_entropies(k[:, None], y, radix=None, n_classes=n_classes, method="native"))
    h_t, h_ty = jax.jit(entropies)(jnp.asarray(keys), jnp.asarray(labels))
    for r in range(len(rows)):
        np.testing.assert_allclose([h_t[r], h_ty[r]], joint_entropies(keys[r], labels[r]), atol=1e-9)
