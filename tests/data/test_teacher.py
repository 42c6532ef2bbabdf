"""Saxe et al.'s linear teacher (ibjax.data.teacher): the requested SNR exactly, and the exact generalization
error of a linear student against a Monte Carlo estimate on fresh samples."""

from __future__ import annotations

import numpy as np
import pytest

from ibjax.data.teacher import generalization_error, make_teacher


def test_the_teacher_has_the_requested_snr_and_its_samples_its_statistics():
    t = make_teacher(n_inputs=100, n_outputs=2, snr=4.0, n_train=100, seed=1)
    assert t.x_train.shape == (100, 100) and t.y_train.shape == (100, 2)
    signal = np.trace(t.w_o @ t.cov_x @ t.w_o.T) / 2
    assert signal / t.noise_var == pytest.approx(4.0, rel=1e-12)
    np.testing.assert_array_equal(make_teacher(n_outputs=2, snr=4.0, seed=1).w_o, t.w_o)  # seeded
    with pytest.raises(ValueError, match="snr must be positive"):
        make_teacher(snr=0)


def test_generalization_error_equals_the_squared_error_on_fresh_samples():
    t = make_teacher(n_inputs=20, n_outputs=1, snr=1.0, seed=2)
    w = t.w_o + np.random.default_rng(3).normal(scale=0.5, size=t.w_o.shape)  # an imperfect student
    rng = np.random.default_rng(4)
    n = 400_000
    x = rng.normal(scale=np.sqrt(1 / 20), size=(n, 20))
    y = x @ t.w_o.T + rng.normal(scale=np.sqrt(t.noise_var), size=(n, 1))
    mse = float(np.mean(np.sum((y - x @ w.T) ** 2, axis=1)))
    e_g = generalization_error(w, t)
    assert abs(mse - e_g) < 4 * np.std(np.sum((y - x @ w.T) ** 2, axis=1)) / np.sqrt(n)  # within 4 standard errors
    assert generalization_error(t.w_o, t) == pytest.approx(t.noise_var)  # the teacher itself: the noise alone
