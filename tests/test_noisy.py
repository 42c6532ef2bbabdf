"""Stochastic networks (Goldfeld et al. 2019) and their Monte Carlo Gaussian-mixture MI."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from ibjax.mi import noisy_layer_mi
from ibjax.store import load
from tests.conftest import run_cli, small_spec
from tests.test_estimators import mixture_mi_1d


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
    raw = small_spec(**{"mi.estimators": [{"kind": "binning"}, {"kind": "noisy", "max_samples": 1024}]})
    raw["grid"] = {"seed": 2, "noise_std": [None, 0.1]}
    spec = tmp_path / "n.yaml"
    spec.write_text(yaml.safe_dump(raw))
    proc = run_cli("ibjax.sweep", str(spec), "--out", str(tmp_path / "o"), "--no-report")
    assert proc.returncode == 0, proc.stderr
    rd = load(tmp_path / "o")
    info = rd.info.merge(rd.runs[["run_id", "noise_std"]], on="run_id")
    noisy = info[info.estimator == "noisy"]
    assert noisy[noisy.noise_std.isna()].i_xt.isna().all()  # deterministic networks: nothing to measure
    est = noisy[noisy.noise_std == 0.1]
    # A Monte Carlo estimate: within sampling noise of [0, log2 rows]
    assert est.i_xt.notna().all() and (est.i_xt > 0).all() and (est.i_xt < np.log2(1024) + 0.2).all()
    # The noise changes training: same seeds, different final losses.
    runs = rd.runs.sort_values(["seed", "noise_std"], na_position="first")
    for _, pair in runs.groupby("seed"):
        assert pair.train_loss.iloc[0] != pair.train_loss.iloc[1]
