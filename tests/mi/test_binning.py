"""binning_mi against a plain NumPy np.unique(axis=0) reference, and known entropies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ibjax.mi import Binning, LayerContext, binning_mi
from tests.reference import idnns_mi, symbol_mi, uniform_bins


def partial_collisions(rng, n, u):
    """Rows drawn from a small pool, then some units re-drawn: many rows agree in only some units."""
    pool = rng.uniform(-1, 1, (n // 8, u))
    acts = pool[rng.integers(0, len(pool), n)]
    flip = rng.random((n, u)) < 0.15
    return np.where(flip, np.round(rng.uniform(-1, 1, (n, u)) * 4) / 4, acts).astype(np.float32)


@pytest.mark.parametrize("units", [1, 2, 5, 12, 13, 20, 40])
@pytest.mark.parametrize("n_classes", [None, 2, 3])
def test_equals_numpy_reference(units, n_classes):
    rng = np.random.default_rng(units)
    acts = partial_collisions(rng, 2048, units)
    labels = rng.integers(0, n_classes or 2, 2048)
    got = binning_mi(acts, labels, n_classes=n_classes)
    want = symbol_mi(uniform_bins(acts), labels)
    assert abs(float(got[0]) - want[0]) < 1e-9 and abs(float(got[1]) - want[1]) < 1e-9


@pytest.mark.parametrize("n_bins,lo,hi", [(2, 0.0, 1.0), (30, -1.0, 1.0), (100, -3.0, 5.0), (256, 0.0, 2.0)])
def test_ranges_and_bin_counts(n_bins, lo, hi):
    rng = np.random.default_rng(n_bins)
    acts = rng.uniform(lo - 0.5, hi + 0.5, (1000, 4)).astype(np.float32)  # some outside: clipped
    labels = rng.integers(0, 2, 1000)
    got = jax.jit(lambda a, y: binning_mi(a, y, n_bins=n_bins, lo=lo, hi=hi))(acts, labels)
    want = symbol_mi(uniform_bins(acts, n_bins, lo, hi), labels)
    np.testing.assert_allclose(np.array(got, dtype=float), want, atol=1e-9)


def test_known_entropies():
    # 2^k equiprobable distinct symbols: H = k bits; a label that is a function of T: I(T;Y) = H(Y).
    for k in range(1, 8):
        n = 2**k
        acts = (np.arange(n, dtype=np.float32) + 0.5)[:, None] / n  # one value per bin of [0, 1)
        labels = np.arange(n) % 2
        i_xt, i_ty = binning_mi(np.repeat(acts, 3, 0), np.repeat(labels, 3), n_bins=n, lo=0.0, hi=1.0)
        assert abs(float(i_xt) - k) < 1e-12 and abs(float(i_ty) - 1.0) < 1e-12
    # A constant layer carries nothing.
    i_xt, i_ty = binning_mi(np.zeros((64, 3)), np.arange(64) % 2)
    assert float(i_xt) == 0.0 and float(i_ty) == 0.0


def test_vmapped_equals_one_at_a_time():
    rng = np.random.default_rng(0)
    acts = np.stack([partial_collisions(rng, 512, 6) for _ in range(4)])
    labels = rng.integers(0, 2, 512)
    batched = jax.vmap(lambda a: binning_mi(a, labels, n_classes=2))(acts)
    for m in range(4):
        one = binning_mi(acts[m], labels, n_classes=2)
        assert float(batched[0][m]) == float(one[0]) and float(batched[1][m]) == float(one[1])


def test_padded_constant_units_leave_mi_unchanged():
    rng = np.random.default_rng(1)
    acts = partial_collisions(rng, 1024, 5)
    labels = rng.integers(0, 2, 1024)
    padded = np.concatenate([acts, np.zeros((1024, 7), np.float32)], axis=1)
    mask = jnp.asarray([True] * 5 + [False] * 7)
    for mode in ("auto", "layer"):
        est = Binning(range_mode=mode, n_classes=2)
        a = est(jnp.asarray(acts), labels, LayerContext(jnp.ones(5, bool), -1.0, 1.0, jnp.bool_(False)))
        b = est(jnp.asarray(padded), labels, LayerContext(mask, -1.0, 1.0, jnp.bool_(False)))
        assert float(a.i_xt) == float(b.i_xt) and float(a.i_ty) == float(b.i_ty)
        assert float(a.lo) == float(b.lo) and float(a.hi) == float(b.hi)


def test_layer_range_uses_layer_min_max():
    acts = np.array([[0.0, 2.0], [1.0, 4.0], [3.0, 0.5]], np.float32)
    est = Binning(range_mode="layer", n_bins=8)
    r = est(jnp.asarray(acts), np.array([0, 1, 0]), LayerContext(jnp.ones(2, bool), 0.0, 0.0, jnp.bool_(False)))
    assert float(r.lo) == 0.0 and float(r.hi) == 4.0
    want = symbol_mi(uniform_bins(acts, 8, 0.0, 4.0), np.array([0, 1, 0]))
    assert abs(float(r.i_xt) - want[0]) < 1e-12


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])  # 3.0: many values outside [-1, 1] (the relu case)
@pytest.mark.parametrize("units", [3, 10])
def test_idnns_mode_equals_the_idnns_algorithm(scale, units):
    from ibjax.mi import IdnnsBinning

    rng = np.random.default_rng(units)
    acts = (partial_collisions(rng, 2048, units) * scale).astype(np.float32)
    acts[:5, 0] = [-1.0, 1.0, np.nextafter(np.float32(-1), 0), 0.0, -3.0]  # edges and wrap-around
    labels = rng.integers(0, 2, 2048)
    est = IdnnsBinning(n_classes=2)
    got = est(jnp.asarray(acts), labels, LayerContext(jnp.ones(units, bool), 0.0, 0.0, jnp.bool_(False)))
    want = idnns_mi(acts, labels)
    assert abs(float(got.i_xt) - want[0]) < 1e-9 and abs(float(got.i_ty) - want[1]) < 1e-9
