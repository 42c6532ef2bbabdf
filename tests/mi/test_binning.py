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


@pytest.mark.parametrize("units", [1, 2, 5, 12, 13, 20, 40, 300])  # 300: wider than UNROLL_WORDS words
@pytest.mark.parametrize("n_classes", [None, 2, 3])
def test_equals_numpy_reference(units, n_classes, code_path):  # counted natively on the CPU, sorted elsewhere
    rng = np.random.default_rng(units)
    acts = partial_collisions(rng, 2048, units)
    labels = rng.integers(0, n_classes or 2, 2048)
    got = binning_mi(acts, labels, n_classes=n_classes)
    want = symbol_mi(uniform_bins(acts), labels)
    assert abs(float(got[0]) - want[0]) < 1e-9 and abs(float(got[1]) - want[1]) < 1e-9


def test_wide_layers_tell_apart_rows_that_differ_in_one_unit(code_path):
    """300 units (24 words at 30 bins: packed all at once and hashed by a loop, not unrolled): rows that differ
    from another in a single unit, first, last or at a word's edge, are other symbols."""
    rng = np.random.default_rng(0)
    base = np.round(rng.uniform(-1, 1, (16, 300)) * 4) / 4  # 16 patterns on multiples of 1/4
    variants = [base]
    for unit in (0, 1, 12, 13, 150, 298, 299):  # units_per_word(30) = 13: words start at 0, 13, ...; 299 alone
        v = base.copy()
        v[:, unit] = np.where(base[:, unit] > 0, -0.9, 0.9)  # another bin than any multiple of 1/4
        variants.append(v)
    acts = np.concatenate(variants * 3).astype(np.float32)  # 8 x 16 symbols, each 3 times
    labels = rng.integers(0, 3, len(acts))
    got = jax.jit(lambda a, y: binning_mi(a, y, n_classes=3))(acts, labels)
    want = symbol_mi(uniform_bins(acts), labels)
    assert abs(float(got[0]) - np.log2(8 * 16)) < 1e-9  # every variant its own symbol
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
def test_idnns_mode_equals_the_idnns_algorithm(scale, units, code_path):
    from ibjax.mi import IdnnsBinning

    rng = np.random.default_rng(units)
    acts = (partial_collisions(rng, 2048, units) * scale).astype(np.float32)
    acts[:5, 0] = [-1.0, 1.0, np.nextafter(np.float32(-1), 0), 0.0, -3.0]  # edges and wrap-around
    labels = rng.integers(0, 2, 2048)
    est = IdnnsBinning(n_classes=2)
    got = est(jnp.asarray(acts), labels, LayerContext(jnp.ones(units, bool), 0.0, 0.0, jnp.bool_(False)))
    want = idnns_mi(acts, labels)
    assert abs(float(got.i_xt) - want[0]) < 1e-9 and abs(float(got.i_ty) - want[1]) < 1e-9


# --------------------------------------------------------------------------- bias-corrected entropies
def _plugin_bits(counts) -> float:
    c = np.asarray([x for x in counts if x > 0], float)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def _corrected_reference(symbols, correction: str) -> float:
    """The corrections by their definitions: Miller-Madow adds (m - 1) / 2N nats; the jackknife is
    N H - (N - 1) / N sum_i H(sample without row i), the leave-one-out entropies computed one by one."""
    _, counts = np.unique(symbols, return_counts=True)
    n, h = len(symbols), _plugin_bits(counts)
    if correction == "none":
        return h
    if correction == "miller_madow":
        return h + (len(counts) - 1) / (2 * n * np.log(2))
    loo = [_plugin_bits(np.delete(counts, b).tolist() + [counts[b] - 1]) for b in range(len(counts))]
    return n * h - (n - 1) / n * float(np.dot(counts, loo))  # each row of symbol b leaves the same sample out


@pytest.mark.parametrize("correction", ["none", "miller_madow", "jackknife"])
@pytest.mark.parametrize("method", ["native", "sort"])
def test_corrected_entropies_equal_their_definitions(correction, method):
    from ibjax.mi.entropy import symbol_entropies

    rng = np.random.default_rng(7)
    for n, k, n_classes in [(20, 5, 2), (64, 40, 3), (200, 7, 10), (33, 33, 70)]:  # 70 classes: the wide table
        sym = rng.integers(0, k, n)
        lab = rng.integers(0, n_classes, n)
        h_t, h_ty = jax.jit(lambda s, y: symbol_entropies(s[:, None].astype(jnp.uint64), y, radix=k,
                                                          n_classes=n_classes, method=method,
                                                          correction=correction))(sym, lab)
        assert abs(float(h_t) - _corrected_reference(sym, correction)) < 1e-9
        assert abs(float(h_ty) - _corrected_reference(sym * n_classes + lab, correction)) < 1e-9


def _expected(p, n: int, correction: str) -> float:
    """The exact expectation over samples of N draws from p: every form is A(N) - sum_b phi(c_b) / N
    (ibjax.mi.entropy), and each c_b is Binomial(N, p_b)."""
    from scipy.stats import binom

    c = np.arange(n + 1, dtype=float)
    xlog2x = lambda x: np.where(x > 0, x * np.log2(np.where(x > 0, x, 1.0)), 0.0)
    half = 1 / (2 * np.log(2))
    a, phi = {"none": (np.log2(n), xlog2x(c)),
              "miller_madow": (np.log2(n) - half / n, np.where(c > 0, xlog2x(c) - half, 0.0)),
              "jackknife": (xlog2x(n) - xlog2x(n - 1.0), c * (xlog2x(c) - xlog2x(c - 1.0)))}[correction]
    return float(a - sum(binom.pmf(c, n, pb) @ phi for pb in p) / n)


@pytest.mark.parametrize("name, p", [("uniform over 16", np.full(16, 1 / 16)),
                                     ("geometric over 12", 0.5 ** np.arange(1, 13) / (1 - 0.5**12))])
def test_corrections_shrink_the_small_sample_bias_of_known_distributions(name, p):
    """N = 32 samples of a distribution of known entropy: the plug-in estimate falls short by ~0.2-0.4 bits; the
    Miller-Madow and jackknife corrections remove most of that (exact expectations), and the estimator's mean
    over 400 samples (the binning estimator on one-unit layers, native kernel) matches those expectations."""
    truth = float(-(p * np.log2(p)).sum())
    n, draws = 32, 400
    bias = {c: _expected(p, n, c) - truth for c in ("none", "miller_madow", "jackknife")}
    assert bias["none"] < -0.15
    assert abs(bias["miller_madow"]) < 0.5 * abs(bias["none"]) and abs(bias["jackknife"]) < 0.5 * abs(bias["none"])
    rng = np.random.default_rng(3)
    acts = (rng.choice(len(p), size=(draws, n), p=p).astype(np.float32) + 0.5) / len(p)  # symbol b in bin b
    for correction, b in bias.items():
        est = Binning(n_bins=len(p), range_mode="fixed", lo=0.0, hi=1.0, n_classes=1, correction=correction)
        ctx = LayerContext(jnp.ones(1, bool), jnp.float64(0.0), jnp.float64(1.0), True)
        i_xt = np.asarray(jax.jit(jax.vmap(lambda a: est(a[:, None], jnp.zeros(n, jnp.int32), ctx).i_xt))(acts))
        assert abs(i_xt.mean() - (truth + b)) < 4 * i_xt.std() / np.sqrt(draws), (name, correction)


@pytest.mark.parametrize("correction", ["none", "miller_madow", "jackknife"])
def test_a_corrected_estimators_ceiling_is_its_estimate_of_distinct_rows(correction):
    """Saturation is read against the ceiling (estimator_limits): every row its own symbol must read exactly at it,
    corrected or not (a corrected estimate of N distinct rows is above log2 N)."""
    from ibjax.mi import estimator_limits

    n = 512
    est = Binning(n_bins=n, range_mode="fixed", lo=0.0, hi=1.0, n_classes=2, correction=correction)
    acts = ((np.arange(n) + 0.5) / n).astype(np.float32)[:, None]  # one row per bin
    ctx = LayerContext(jnp.ones(1, bool), jnp.float64(0.0), jnp.float64(1.0), True)
    got = float(jax.jit(lambda a: est(a, jnp.arange(n) % 2, ctx).i_xt)(acts))
    assert abs(got - estimator_limits(est, n).ceiling_bits) < 1e-9
    assert (got > np.log2(n) + 0.5) == (correction != "none")
