"""Stochastic networks (Goldfeld et al. 2019) and their Monte Carlo Gaussian-mixture MI."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ibjax.mi import noisy_layer_mi
from tests.helpers import small_spec, sweep_to_run_dir
from tests.reference import mixture_mi_1d


def test_noisy_estimate_is_unbiased_for_a_known_mixture():
    centers = np.tanh(np.random.default_rng(1).normal(size=64) * 1.5)
    var = 1e-2
    truth = mixture_mi_1d(centers, var)
    acts = jnp.asarray(centers[:, None].astype(np.float32))
    labels, mask = jnp.zeros(64, jnp.int32), jnp.ones(1, bool)
    draws = jax.jit(jax.vmap(lambda k: noisy_layer_mi(acts, labels, mask, var, k)[0]))(
        jax.random.split(jax.random.PRNGKey(0), 400))
    draws = np.asarray(draws)
    assert abs(draws.mean() - truth) < 4 * draws.std() / np.sqrt(len(draws)) + 1e-3, (draws.mean(), truth)


def test_noisy_sweep(tmp_path):
    raw = small_spec(**{"mi.estimators": [{"kind": "binning"}, {"kind": "noisy", "max_samples": 512}]})
    raw["model"] = {"hidden": [6, 4, 3], "activation": "tanh"}
    raw["grid"] = {"seed": 2, "noise_std": [None, 0.1]}
    rd = sweep_to_run_dir(tmp_path, raw)
    info = rd.info.merge(rd.runs[["run_id", "noise_std"]], on="run_id")
    noisy = info[info.estimator == "noisy"]
    assert noisy[noisy.noise_std.isna()].i_xt.isna().all()  # deterministic networks: nothing to measure
    est = noisy[noisy.noise_std == 0.1]
    # A Monte Carlo estimate: within sampling noise of [0, log2 rows]
    assert est.i_xt.notna().all() and (est.i_xt > 0).all() and (est.i_xt < np.log2(512) + 0.2).all()
    # The noise changes training: same seeds, different final losses.
    runs = rd.runs.sort_values(["seed", "noise_std"], na_position="first")
    for _, pair in runs.groupby("seed"):
        assert pair.train_loss.iloc[0] != pair.train_loss.iloc[1]


def mixture_entropy_1d(centers, var):
    s = np.sqrt(var)
    t = np.linspace(centers.min() - 10 * s, centers.max() + 10 * s, 200_001)
    dens = np.exp(-((t[:, None] - centers[None, :]) ** 2) / (2 * var)).mean(1) / np.sqrt(2 * np.pi * var)
    return -np.sum(dens * np.log(np.where(dens > 0, dens, 1.0))) * (t[1] - t[0])


def test_upstream_noise_draws_give_the_conditional_entropy():
    """S given x is +-a around c_x (upstream noise); with K draws of S the estimate matches the truth
    I(X;T) = H(T) - mean_x H(T | x), both Gaussian mixtures integrated numerically."""
    rng = np.random.default_rng(0)
    n, k, var, a = 48, 64, 4e-3, 0.08
    c = np.tanh(rng.normal(size=n) * 1.5)
    signs = np.where(rng.random((k, n)) < 0.5, -1.0, 1.0)
    draws = c[None, :] + a * signs  # [K, N]
    h_t = mixture_entropy_1d(np.r_[c - a, c + a], var)
    h_t_x = np.mean([mixture_entropy_1d(np.r_[ci - a, ci + a], var) for ci in c])
    truth = (h_t - h_t_x) / np.log(2)
    centers = jnp.asarray(draws[0][:, None].astype(np.float32))
    d = jnp.asarray(draws[:, :, None].astype(np.float32))
    labels, mask = jnp.zeros(n, jnp.int32), jnp.ones(1, bool)
    est = jax.jit(jax.vmap(lambda key: noisy_layer_mi(centers, labels, mask, var, key, d)[0]))(
        jax.random.split(jax.random.PRNGKey(1), 300))
    est = np.asarray(est)
    naive = np.asarray(jax.vmap(lambda key: noisy_layer_mi(centers, labels, mask, var, key)[0])(
        jax.random.split(jax.random.PRNGKey(1), 300)))
    assert abs(est.mean() - truth) < 0.1, (est.mean(), truth)
    assert naive.mean() > truth + 0.3  # ignoring the upstream noise overstates I(X;T)
