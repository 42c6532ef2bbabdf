"""k-NN estimators: against independent scipy references, on Gaussians with known entropy and MI, and
invariant to padding, blocking and the row count."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import digamma, gammaln

from ibjax.mi import KNNEstimator, LayerContext, kl_entropy, kl_mi_with_labels, ksg_mi
from ibjax.mi import knn as knn_module
from tests.reference import kl_entropy_ref, kl_label_mi_ref, ksg_ref, weighted_kl_entropy_ref


def correlated_pairs(n, dims, mi_nats, seed):
    """X, T Gaussian in `dims` dimensions, coordinate pairs correlated with rho = sqrt(1 - exp(-2 I / dims)):
    I(X;T) = mi_nats exactly."""
    rng = np.random.default_rng(seed)
    rho = np.sqrt(1 - np.exp(-2 * mi_nats / dims))
    x = rng.normal(size=(n, dims))
    t = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=(n, dims))
    return x.astype(np.float32), t.astype(np.float32)


@pytest.mark.parametrize("n,d", [(300, 1), (517, 3), (1000, 6)])  # 517: a partial last block
def test_kl_entropy_matches_the_kd_tree_reference(n, d):
    pts = np.random.default_rng(n).normal(size=(n, d)).astype(np.float32) * np.arange(1, d + 1)
    assert float(kl_entropy(jnp.asarray(pts))) == pytest.approx(kl_entropy_ref(pts), rel=1e-5, abs=1e-5)


def test_kl_entropy_of_a_gaussian_is_near_its_analytic_value():
    d = 3
    pts = np.random.default_rng(0).normal(size=(4000, d)).astype(np.float32)
    assert float(kl_entropy(jnp.asarray(pts))) == pytest.approx(d / 2 * np.log(2 * np.pi * np.e), abs=0.05)


@pytest.mark.parametrize("n,d,k", [(700, 4, 10), (1500, 8, 20)])
def test_weighted_kl_entropy_matches_berretts_estimator(n, d, k):
    pts = np.random.default_rng(d).normal(size=(n, d)).astype(np.float32)
    got = float(kl_entropy(jnp.asarray(pts), k, weighted=True))
    # The implementation writes psi(n) where Berrett et al. write log(n - 1): a known O(1/n) constant apart.
    shift = float(digamma(n) - np.log(n - 1))
    assert got == pytest.approx(weighted_kl_entropy_ref(pts, k) + shift, rel=1e-5, abs=1e-5)
    assert got == pytest.approx(d / 2 * np.log(2 * np.pi * np.e), abs=0.2)  # near the Gaussian entropy


def test_berrett_weights_cancel_the_bias_terms():
    for d, k in ((4, 5), (8, 20), (12, 30)):
        w = knn_module.berrett_weights(d, k)
        j = np.arange(1, len(w) + 1)
        assert w.sum() == pytest.approx(1.0)
        for ell in range(1, d // 4 + 1):
            assert w @ np.exp(gammaln(j + 2 * ell / d) - gammaln(j)) == pytest.approx(0.0, abs=1e-8)
    assert knn_module.berrett_weights(3, 5).tolist() == [0, 0, 0, 0, 1]  # d <= 3: the plain estimator


def test_label_mi_matches_the_reference():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 800)
    pts = (rng.normal(size=(800, 2)) + labels[:, None] * 0.8).astype(np.float32)
    _, i_ty = kl_mi_with_labels(jnp.asarray(pts), jnp.asarray(labels), 4)
    assert float(i_ty) == pytest.approx(kl_label_mi_ref(pts, labels), rel=1e-4, abs=1e-4)


def test_one_class_has_no_label_information_and_the_same_i_xt():
    """n_classes = 1 (validate's I(X;T) tasks): I(T;Y) is 0 without the two neighbour searches it would take;
    I(X;T) is what the estimator gives with labels it does measure."""
    x, t = correlated_pairs(300, 2, 1.0, seed=3)
    ctx = LayerContext(jnp.ones(2, bool), jnp.float32(0), jnp.float32(0), False, None, jnp.asarray(x))
    zeros = jnp.zeros(300, jnp.int32)
    one = KNNEstimator("knn", 5, 2, n_classes=1)(jnp.asarray(t), zeros, ctx)
    two = KNNEstimator("knn", 5, 2, n_classes=2)(jnp.asarray(t), zeros, ctx)
    assert float(one.i_ty) == 0.0 and float(two.i_ty) == pytest.approx(0.0, abs=1e-9)
    assert float(one.i_xt) == float(two.i_xt) and float(one.i_xt) > 0.5


@pytest.mark.parametrize("dims,mi", [(1, 0.0), (1, 1.0), (2, 2.0)])
def test_ksg_matches_the_reference_and_the_truth(dims, mi):
    x, t = correlated_pairs(700, dims, mi, seed=dims)
    got = float(ksg_mi(jnp.asarray(x), jnp.asarray(t)))
    assert got == pytest.approx(ksg_ref(x, t), abs=1e-6)
    assert got == pytest.approx(mi, abs=0.12)  # KSG's bias and spread at N = 700


def test_blocking_does_not_change_the_estimates(monkeypatch):
    x, t = correlated_pairs(333, 2, 1.0, seed=5)
    before = float(ksg_mi(jnp.asarray(x), jnp.asarray(t))), float(kl_entropy(jnp.asarray(t)))
    monkeypatch.setattr(knn_module, "KNN_BLOCK", 7)
    after = float(ksg_mi(jnp.asarray(x), jnp.asarray(t))), float(kl_entropy(jnp.asarray(t)))
    assert after == pytest.approx(before, abs=1e-9)


def test_estimator_ignores_padded_units_and_compresses():
    """Padded units (mask False) change nothing; a 3-unit layer keeps its 3 dimensions (rotated onto its principal
    axes: the same I(T;Y) as the layer itself, Euclidean distances being rotation invariant); no inputs, no
    I(X;T)."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 600)
    acts = (rng.normal(size=(600, 3)) + labels[:, None]).astype(np.float32)
    x = rng.normal(size=(600, 5)).astype(np.float32)
    est = KNNEstimator(dim=4, n_classes=3)
    ctx = lambda u, real: LayerContext(jnp.arange(u) < real, jnp.float32(0), jnp.float32(0), False, None,
                                       jnp.asarray(x))
    plain = est(jnp.asarray(acts), jnp.asarray(labels), ctx(3, 3))
    padded = est(jnp.asarray(np.hstack([acts, np.full((600, 2), 7.0, np.float32)])), jnp.asarray(labels), ctx(5, 3))
    np.testing.assert_allclose([padded.i_xt, padded.i_ty], [plain.i_xt, plain.i_ty], rtol=1e-4, atol=1e-4)
    _, i_ty = kl_mi_with_labels(jnp.asarray(acts - acts.mean(0)), jnp.asarray(labels), 3)  # rotation-free
    assert float(plain.i_ty) == pytest.approx(float(i_ty) / np.log(2), abs=1e-5)
    assert np.isfinite(float(plain.i_xt))
    no_inputs = est(jnp.asarray(acts), jnp.asarray(labels), ctx(3, 3)._replace(inputs_NxD=None))
    assert np.isnan(float(no_inputs.i_xt))


def test_ksg_reaches_its_stated_ceiling_when_t_is_x():
    """T = X: every point's k joint neighbours are its k nearest in X and in T, KSG = psi(N) - psi(k), the
    ceiling the estimator states (and the verdicts call saturated)."""
    x = np.random.default_rng(0).normal(size=(700, 2)).astype(np.float32)
    est = KNNEstimator("knn5_pca2", 5, 2)
    ceiling, reliable = est.limits(700)
    assert float(ksg_mi(jnp.asarray(x), jnp.asarray(x))) / np.log(2) == pytest.approx(ceiling, rel=1e-9)
    assert ceiling == pytest.approx((digamma(700) - digamma(5)) / np.log(2))
    assert reliable == pytest.approx(knn_module.KSG_RELIABLE_NATS[1024][2] / np.log(2) if 700 >= 1024 else 0.0)
    assert est.limits(5000)[1] == pytest.approx(4.0 / np.log(2))  # the 4096-row range applies from 4096 rows
    assert KNNEstimator("k", 5, 6).limits(5000)[1] == 0.0  # no validated range in 6 dimensions


def test_knn_in_a_sweep_reports_finite_mi_where_binning_saturates(tmp_path):
    """kind: knn inline in the compiled loop: finite I(X;T) and I(T;Y) <= log2(classes) per layer, where 30-bin
    binning of a wide layer sits at log2 N."""
    from tests.helpers import sweep_to_run_dir

    raw = {"name": "knn", "data": {"dataset": "digits", "train_fraction": 0.8,
                                   "mi_sample": {"split": "all", "n": 400, "seed": 0}},
           "model": {"hidden": [32, 8], "activation": "tanh"},
           "train": {"epochs": 6, "batch_size": 128, "learning_rate": 3e-3, "chunk_epochs": 6},
           "mi": {"schedule": {"every": 3}, "estimators": [{"kind": "binning"}, {"kind": "knn", "dim": 3}]},
           "grid": {"seed": 2}, "output": {"plots": False}}
    rd = sweep_to_run_dir(tmp_path, raw)
    info = rd.info
    knn = info[info.estimator == "knn5_pca3"]
    assert len(knn) == 2 * 3 * 3 and np.isfinite(knn[["i_xt", "i_ty"]].to_numpy()).all()
    assert (knn.i_ty <= np.log2(10) + 0.3).all() and (knn.i_ty > -0.3).all()
    wide = info[(info.estimator == "binning30") & (info.layer == "h1")]
    assert (wide.i_xt > np.log2(400) - 0.05).all()  # saturated
    # The manifest states each estimator's ceiling and validated range; the verdicts read them from there.
    from ibjax.report.verdicts import limits_from_manifest

    lim = limits_from_manifest(rd.manifest)
    assert lim["binning30"] == (pytest.approx(np.log2(400)),) * 2
    assert lim["knn5_pca3"] == (pytest.approx((digamma(400) - digamma(5)) / np.log(2)), 0.0)


def test_knn_settings_are_checked():
    from pydantic import ValidationError

    from ibjax.spec import EstimatorSpec

    with pytest.raises(ValidationError, match="dim, k: only for kind 'knn'"):
        EstimatorSpec(kind="binning", k=3, dim=2)
    with pytest.raises(ValidationError, match="no bins"):
        EstimatorSpec(kind="knn", n_bins=10)
    assert EstimatorSpec(kind="knn", k=3, dim=2).resolved_name == "knn3_pca2"


def test_stochastic_layer_is_measured_with_its_noise():
    """A stochastic network's layer T = h(X) + N(0, s^2): the estimator adds the network's noise (one fixed draw)
    before compressing; more noise, less I(X;T), and the same value at every call."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 2)).astype(np.float32)
    h = np.tanh(x @ rng.normal(size=(2, 3))).astype(np.float32)
    ctx = LayerContext(jnp.ones(3, bool), jnp.float32(-1), jnp.float32(1), True, None, jnp.asarray(x))
    y = jnp.zeros(800, jnp.int32)
    vals = [float(KNNEstimator("k", 5, 2, n_classes=1, noise_std=s)(jnp.asarray(h), y, ctx).i_xt)
            for s in (None, 0.05, 0.3, 3.0)]
    assert vals[0] > vals[1] > vals[2] > vals[3] and abs(vals[3]) < 0.2
    again = float(KNNEstimator("k", 5, 2, n_classes=1, noise_std=0.3)(jnp.asarray(h), y, ctx).i_xt)
    assert again == vals[2]


def test_knn_sweep_with_several_networks_per_host_device_finishes(tmp_path):
    """XLA:CPU hangs on a batched eigh of wide matrices sharded over host devices (the PCA of a 256-unit layer
    for 2+ networks per device); the engine loops such networks instead. This sweep hung before that."""
    from tests.helpers import sweep_to_run_dir

    raw = {"name": "knn_wide", "data": {"dataset": "digits", "train_fraction": 0.8,
                                        "mi_sample": {"split": "all", "n": 300, "seed": 0}},
           "model": {"hidden": [256], "activation": "tanh"},
           "train": {"epochs": 2, "batch_size": 128, "chunk_epochs": 2},
           "mi": {"schedule": {"every": 2}, "estimators": [{"kind": "knn", "dim": 2}]},
           "grid": {"seed": 4}, "output": {"plots": False}}
    rd = sweep_to_run_dir(tmp_path, raw)
    assert len(rd.runs) == 4 and np.isfinite(rd.info[["i_xt", "i_ty"]].to_numpy()).all()
