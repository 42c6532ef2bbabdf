"""The binning variants and the KDE bounds against plain NumPy references, and KDE against exact mixture MI."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ibjax.mi import AdaptiveBinning, Binning, FixedWidthBinning, KDEBound, LayerContext, QuantileBinning
from ibjax.spec import EstimatorSpec, SpecError, validate
from tests.reference import class_conditional_mi, ibsgd_kde, mixture_mi_1d


def ctx(u, real=None):
    mask = np.ones(u, bool) if real is None else np.arange(u) < real
    return LayerContext(jnp.asarray(mask), jnp.float32(-1), jnp.float32(1), jnp.bool_(False))


def layer_acts(rng, n, u, scale=2.0):
    pool = np.tanh(rng.normal(size=(n // 6, u)) * scale)
    acts = pool[rng.integers(0, len(pool), n)]
    flip = rng.random((n, u)) < 0.2
    return np.where(flip, np.tanh(rng.normal(size=(n, u)) * scale), acts).astype(np.float32)


@pytest.mark.parametrize("u", [1, 3, 7, 20])
def test_per_neuron_bins_equal_numpy(u, code_path):
    rng = np.random.default_rng(u)
    acts = layer_acts(rng, 1500, u) * np.linspace(0.2, 3, u).astype(np.float32)  # different unit scales
    labels = rng.integers(0, 2, 1500)
    got = Binning("b", 30, "neuron", n_classes=2)(jnp.asarray(acts), jnp.asarray(labels), ctx(u))
    a = acts.astype(np.float64)
    lo, hi = a.min(0), a.max(0)
    b = np.clip(np.floor((a - lo) / (hi - lo) * 30), 0, 29).astype(int)
    want = class_conditional_mi(b, labels)
    assert abs(float(got.i_xt) - want[0]) < 1e-9 and abs(float(got.i_ty) - want[1]) < 1e-9
    assert float(got.lo) == pytest.approx(lo.min()) and float(got.hi) == pytest.approx(hi.max())


def test_per_neuron_ignores_padded_units():
    rng = np.random.default_rng(0)
    acts = layer_acts(rng, 800, 4)
    labels = rng.integers(0, 2, 800)
    est = Binning("b", 30, "neuron", n_classes=2)
    padded = np.c_[acts, np.zeros((800, 3), np.float32)]
    a = est(jnp.asarray(acts), jnp.asarray(labels), ctx(4))
    b = est(jnp.asarray(padded), jnp.asarray(labels), ctx(7, real=4))
    assert float(a.i_xt) == float(b.i_xt) and float(a.i_ty) == float(b.i_ty)
    assert float(a.lo) == float(b.lo) and float(a.hi) == float(b.hi)


@pytest.mark.parametrize("width", [0.07, 0.5])
@pytest.mark.parametrize("u", [2, 5, 12, 100])  # 100: keys chained by a loop (width_bins.UNROLL_UNITS)
def test_fixed_width_equals_ibsgd(width, u, code_path):
    """ibsgd's bin_calc_information2: floor(a / binsize), no range; relu-like values grow unbounded."""
    rng = np.random.default_rng(u)
    acts = np.abs(rng.normal(size=(2000, u)) * 3).astype(np.float32)  # up to ~12: hundreds of bins at 0.07
    acts[:50] = -acts[:50]
    labels = rng.integers(0, 2, 2000)
    got = FixedWidthBinning("w", width, n_classes=2)(jnp.asarray(acts), jnp.asarray(labels), ctx(u))
    b = np.floor(acts.astype(np.float64) / width).astype(np.int64)
    want = class_conditional_mi(b, labels)
    assert abs(float(got.i_xt) - want[0]) < 1e-9 and abs(float(got.i_ty) - want[1]) < 1e-9
    assert float(got.lo) == pytest.approx(b.min() * width) and float(got.hi) == pytest.approx((b.max() + 1) * width)


def test_fixed_width_beyond_64_bits_still_counts_right():
    # 12 units with ~400 occupied bins each: 400^12 > 2^64, so the key is a hash of the bins.
    rng = np.random.default_rng(1)
    acts = (rng.integers(0, 400, size=(3000, 12)) * 0.07 + 0.035).astype(np.float32)
    acts[1500:] = acts[:1500]  # duplicates
    labels = rng.integers(0, 2, 3000)
    got = FixedWidthBinning("w", 0.07, n_classes=2)(jnp.asarray(acts), jnp.asarray(labels), ctx(12))
    want = class_conditional_mi(np.floor(acts.astype(np.float64) / 0.07).astype(np.int64), labels)
    assert abs(float(got.i_xt) - want[0]) < 1e-9 and abs(float(got.i_ty) - want[1]) < 1e-9


@pytest.mark.parametrize("n_bins", [2, 10, 30])
def test_quantile_bins_equal_numpy(n_bins):
    rng = np.random.default_rng(n_bins)
    acts = layer_acts(rng, 1200, 5)
    acts[:, 0] = np.round(acts[:, 0] * 3) / 3  # heavy ties in one unit
    labels = rng.integers(0, 3, 1200)
    got = QuantileBinning("q", n_bins, n_classes=3)(jnp.asarray(acts), jnp.asarray(labels), ctx(5))
    s = np.sort(acts, axis=0)
    edges = s[np.arange(1, n_bins) * len(acts) // n_bins]
    b = np.stack([np.searchsorted(edges[:, k], acts[:, k], side="right") for k in range(5)], axis=1)
    want = class_conditional_mi(b, labels)
    assert abs(float(got.i_xt) - want[0]) < 1e-9 and abs(float(got.i_ty) - want[1]) < 1e-9


def test_quantile_bins_are_equal_mass():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3000, 1)).astype(np.float32))
    got = QuantileBinning("q", 8, n_classes=2)(x, jnp.zeros(3000, jnp.int32), ctx(1))
    assert abs(float(got.i_xt) - 3.0) < 1e-9  # 8 bins of exactly 375 rows each


def adaptive_bins_ref(acts, n_bins):
    """Chelombiev et al.'s adaptive bins in NumPy: edges at equal ranks among the layer's distinct values."""
    distinct = np.unique(acts)
    edges = distinct[np.arange(1, n_bins) * len(distinct) // n_bins]
    return np.searchsorted(edges, acts, side="right")


@pytest.mark.parametrize("n_bins", [2, 10, 30])
def test_adaptive_bins_equal_numpy(n_bins):
    rng = np.random.default_rng(n_bins)
    acts = layer_acts(rng, 1200, 5)
    acts[:, 0] = np.round(acts[:, 0] * 3) / 3  # heavy ties in one unit
    acts[rng.random((1200, 5)) < 0.3] = 1.0  # a saturated value repeated many times takes one bin, not many
    labels = rng.integers(0, 3, 1200)
    got = AdaptiveBinning("a", n_bins, n_classes=3)(jnp.asarray(acts), jnp.asarray(labels), ctx(5))
    want = class_conditional_mi(adaptive_bins_ref(acts, n_bins), labels)
    assert abs(float(got.i_xt) - want[0]) < 1e-9 and abs(float(got.i_ty) - want[1]) < 1e-9


def test_adaptive_bins_ignore_padded_units():
    rng = np.random.default_rng(3)
    acts = layer_acts(rng, 600, 3)
    labels = jnp.asarray(rng.integers(0, 2, 600))
    est = AdaptiveBinning("a", 12, n_classes=2)
    plain = est(jnp.asarray(acts), labels, ctx(3))
    padded = est(jnp.asarray(np.pad(acts, ((0, 0), (0, 4)))), labels, ctx(7, real=3))
    assert float(plain.i_xt) == float(padded.i_xt) and float(plain.i_ty) == float(padded.i_ty)


@pytest.mark.parametrize("bound", ["upper", "lower"])
@pytest.mark.parametrize("var", [1e-3, 0.1])
def test_kde_equals_ibsgd(bound, var):
    rng = np.random.default_rng(7)
    acts = layer_acts(rng, 300, 4)  # 300 rows: not a multiple of the block size
    labels = rng.integers(0, 2, 300)
    got = KDEBound("k", bound, var)(jnp.asarray(acts), jnp.asarray(labels), ctx(4))
    want = ibsgd_kde(acts.astype(np.float64), labels, var, bound)
    np.testing.assert_allclose([float(got.i_xt), float(got.i_ty)], want, rtol=1e-5, atol=1e-5)


def test_kde_padding_and_sample_cap():
    rng = np.random.default_rng(2)
    acts = layer_acts(rng, 400, 3)
    labels = rng.integers(0, 2, 400)
    est = KDEBound("k", "upper", 1e-2)
    a = est(jnp.asarray(acts), jnp.asarray(labels), ctx(3))
    b = est(jnp.asarray(np.c_[acts, np.full((400, 2), 0.3, np.float32)]), jnp.asarray(labels), ctx(5, real=3))
    assert abs(float(a.i_xt) - float(b.i_xt)) < 1e-6
    capped = KDEBound("k", "upper", 1e-2, max_samples=100)(jnp.asarray(acts), jnp.asarray(labels), ctx(3))
    keep = np.unique(np.linspace(0, 399, 100).round().astype(int))
    want = ibsgd_kde(acts[keep].astype(np.float64), labels[keep], 1e-2, "upper")
    np.testing.assert_allclose([float(capped.i_xt), float(capped.i_ty)], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("var", [1e-3, 1e-2, 0.1, 1.0])
def test_kde_bounds_bracket_the_exact_mixture_mi(var):
    centers = np.tanh(np.random.default_rng(0).normal(size=64) * 1.5)
    truth = mixture_mi_1d(centers, var)
    acts, labels = jnp.asarray(centers[:, None].astype(np.float32)), jnp.zeros(64, jnp.int32)
    up = float(KDEBound("u", "upper", var)(acts, labels, ctx(1)).i_xt)
    lo = float(KDEBound("l", "lower", var)(acts, labels, ctx(1)).i_xt)
    assert lo - 1e-6 <= truth <= up + 1e-6, (lo, truth, up)


def test_estimators_vmap_and_jit():
    rng = np.random.default_rng(0)
    acts = jnp.asarray(np.stack([layer_acts(rng, 256, 3) for _ in range(3)]))
    labels = jnp.asarray(rng.integers(0, 2, 256))
    for est in (Binning("b", 30, "neuron", n_classes=2), FixedWidthBinning("w", 0.07, n_classes=2),
                QuantileBinning("q", 10, n_classes=2), AdaptiveBinning("a", 10, n_classes=2),
                KDEBound("k", "lower", 1e-3)):
        batched = jax.jit(jax.vmap(lambda a: est(a, labels, ctx(3))))(acts)
        for m in range(3):
            one = est(acts[m], labels, ctx(3))
            assert abs(float(batched.i_xt[m]) - float(one.i_xt)) < 1e-6


@pytest.mark.parametrize("raw,hint", [
    ({"kind": "binning", "width": 0.07, "n_bins": 30}, "width is fixed-width"),
    ({"kind": "kde", "n_bins": 30}, "has no bins"),
    ({"kind": "binning", "noise_var": 0.1}, "only for kinds 'kde' and 'gaussian'"),
    ({"kind": "kde", "width": 0.5}, "only for kind 'binning'"),
    ({"kind": "binning", "bins": "quantile", "range": "layer"}, "drop range"),
    ({"kind": "binning", "bins": "adaptive", "range": [0, 1]}, "drop range"),
    ({"kind": "knn", "weighted": True, "dim": 16}, "up to dim 12"),
    ({"kind": "binning", "weighted": True}, "only for kind 'knn'"),
    ({"kind": "kde", "space": "net_input"}, "only for kind 'binning'"),
])
def test_estimator_settings_are_checked(raw, hint):
    with pytest.raises(SpecError, match=hint):
        validate({"mi": {"estimators": [raw]}})


def test_net_input_binning_needs_an_mlp():
    with pytest.raises(SpecError, match=r"mi.estimators\[0\].space: net_input needs model.kind 'mlp'"):
        validate({"model": {"kind": "conv"}, "mi": {"estimators": [{"space": "net_input"}]}})


def test_estimator_names():
    names = [EstimatorSpec(**e).resolved_name for e in (
        {}, {"range": "neuron"}, {"width": 0.07}, {"bins": "quantile", "n_bins": 10}, {"kind": "kde"},
        {"kind": "kde", "bound": "lower"}, {"kind": "idnns"}, {"bins": "adaptive"},
        {"kind": "knn", "k": 20, "weighted": True}, {"space": "net_input"}, {"bins": "adaptive", "space": "net_input"},
        {"kind": "kde", "noise_var": "loo"})]
    assert names == ["binning30", "binning30_neuron", "width0.07", "quantile10", "kde_upper", "kde_lower", "idnns30",
                     "adaptive30", "knn20_pca4_wkl", "binning30_net", "adaptive30_net", "kde_upper_loo"]


def test_loo_likelihood_equals_a_brute_force_reference():
    from scipy.special import logsumexp

    from ibjax.mi.kde import loo_log_likelihoods

    rng = np.random.default_rng(5)
    h = rng.normal(size=(150, 3)).astype(np.float64) * [1.0, 0.3, 2.0]
    variances = np.array([1e-3, 0.05, 0.3, 2.0])
    got = np.asarray(loo_log_likelihoods(jnp.asarray(h, jnp.float32), 3, jnp.asarray(variances)))
    d2 = ((h[:, None, :] - h[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    want = [np.mean(logsumexp(-d2 / (2 * v), axis=1) - np.log(149) - 1.5 * np.log(2 * np.pi * v)) for v in variances]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_loo_bandwidth_is_near_silvermans_for_a_gaussian_and_ignores_padding():
    from ibjax.mi.kde import loo_bandwidth

    x = np.random.default_rng(0).normal(size=(2000, 1)).astype(np.float32)
    var = float(loo_bandwidth(jnp.asarray(x), jnp.ones(1, bool)))
    silverman = (1.06 * 2000 ** -0.2) ** 2
    assert silverman / 2 < var < silverman * 2
    labels = jnp.asarray(np.random.default_rng(1).integers(0, 2, 2000))
    est = KDEBound("kde_upper_loo", "upper", None, n_classes=2)
    plain = est(jnp.asarray(x), labels, ctx(1))
    padded = est(jnp.asarray(np.pad(x, ((0, 0), (0, 3)))), labels, ctx(4, real=1))
    assert float(plain.hi) == pytest.approx(var) and float(padded.hi) == pytest.approx(var)
    assert float(padded.i_xt) == pytest.approx(float(plain.i_xt), abs=1e-9)


@pytest.mark.parametrize("units", [7, 64, 65, 1024])
def test_pairwise_distances_of_wide_layers_equal_numpy(units):
    """Layers wider than the unrolled loop scan over unit chunks (a 1 024-unit layer, zero-padded to whole
    chunks): the same squared distances, still summed unit by unit."""
    from ibjax.mi.kde import pairwise_sq_dists

    rng = np.random.default_rng(units)
    q, a = rng.normal(size=(5, units)).astype(np.float32), rng.normal(size=(300, units)).astype(np.float32)
    ref = ((q.astype(np.float64)[:, None, :] - a.astype(np.float64)[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(np.asarray(pairwise_sq_dists(jnp.asarray(q), jnp.asarray(a))), ref, rtol=2e-6)


def test_an_estimator_called_eagerly_is_one_compiled_program_with_the_traced_result():
    """Outside a trace an estimator runs as one compiled program (ibjax.mi.compiled), not op by op, and gives the
    numbers it gives traced into a caller's jit; the context's Python bool stays static (`bounded=True`: the
    activation's natural range, no min/max pass)."""
    rng = np.random.default_rng(3)
    acts = jnp.asarray(rng.uniform(-1, 1, (257, 5)).astype(np.float32))  # shapes no other test uses
    y = jnp.asarray(rng.integers(0, 2, 257).astype(np.int32))
    ctx = LayerContext(jnp.ones(5, bool), jnp.float32(-1), jnp.float32(1), True)
    compiles = []
    listener = lambda event, secs, **kw: compiles.append(event) if event.endswith("backend_compile_duration") else 0
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        for est in (Binning(n_classes=2), QuantileBinning(n_classes=2), KDEBound(n_classes=2)):
            before = len(compiles)
            eager = est(acts, y, ctx)
            assert len(compiles) - before == 1, (est.name, len(compiles) - before)
            traced = jax.jit(lambda a, labels, est=est: est(a, labels, ctx))(acts, y)
            np.testing.assert_allclose([float(v) for v in eager], [float(v) for v in traced], rtol=1e-12,
                                       equal_nan=True)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert float(Binning(n_classes=2)(acts, y, ctx).lo) == -1.0  # bounded stayed the Python True
