"""Gaussian MI (ibjax.mi.gaussian): Saxe et al.'s exact formulas for linear layers, against an independent NumPy
computation, closed forms of known Gaussian channels, invariances, and jit/vmap."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ibjax.mi.gaussian import gaussian_mi_bits, linear_layer_block_mi, linear_layer_mi


def numpy_reference(w, cov_x, noise_var, w_o, teacher_noise_var):
    """The formulas with NumPy's slogdet (LU), independently of the Cholesky path."""
    cov_t = w @ cov_x @ w.T + noise_var * np.eye(len(w))
    cov_y = w_o @ cov_x @ w_o.T + teacher_noise_var * np.eye(len(w_o))
    cross = w @ cov_x @ w_o.T
    joint = np.block([[cov_t, cross], [cross.T, cov_y]])
    ld = lambda m: np.linalg.slogdet(m)[1]
    i_xt = 0.5 * (ld(cov_t) - len(w) * np.log(noise_var)) / np.log(2)
    i_ty = 0.5 * (ld(cov_t) + ld(cov_y) - ld(joint)) / np.log(2)
    return i_xt, i_ty


def random_setting(rng, n_i=12, n_t=5, n_o=2):
    a = rng.normal(size=(n_i, n_i))
    cov_x = a @ a.T / n_i + 0.1 * np.eye(n_i)
    return rng.normal(size=(n_t, n_i)), cov_x, rng.normal(size=(n_o, n_i))


@pytest.mark.parametrize("seed", range(5))
def test_equals_an_independent_numpy_computation_on_random_linear_maps(seed):
    rng = np.random.default_rng(seed)
    w, cov_x, w_o = random_setting(rng)
    got = linear_layer_mi(w, cov_x, 1.0, w_o, 0.5)
    want = numpy_reference(w, cov_x, 1.0, w_o, 0.5)
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=1e-9)
    assert 0 < float(got[1]) < float(got[0])  # data processing: Y - X - T


def test_scalar_and_parallel_gaussian_channels_have_their_closed_forms():
    # T = a X + e: I(T;X) = 1/2 log2(1 + a^2 var_x / var_e); independent channels add up.
    var_x, var_e = 2.0, 0.5
    gains = np.array([0.3, 1.0, 3.0])
    i_xt, _ = linear_layer_mi(np.diag(gains), var_x * np.eye(3), var_e)
    want = 0.5 * np.log2(1 + gains**2 * var_x / var_e)
    np.testing.assert_allclose(float(i_xt), want.sum(), rtol=0, atol=1e-12)
    # T = a X + e, Y = b X + e_o: I(T;Y) = -1/2 log2(1 - rho^2), rho their correlation.
    a, b, var_o = 1.5, -0.7, 0.3
    _, i_ty = linear_layer_mi(np.array([[a]]), np.array([[var_x]]), var_e, np.array([[b]]), var_o)
    rho2 = (a * b * var_x) ** 2 / ((a * a * var_x + var_e) * (b * b * var_x + var_o))
    np.testing.assert_allclose(float(i_ty), -0.5 * np.log2(1 - rho2), rtol=0, atol=1e-12)


def test_invariances_and_bounds():
    rng = np.random.default_rng(7)
    w, cov_x, w_o = random_setting(rng)
    i_xt, i_ty = (float(v) for v in linear_layer_mi(w, cov_x, 1.0, w_o, 0.5))
    # a rotation of the layer (its units mixed orthogonally) carries the same information
    q, _ = np.linalg.qr(rng.normal(size=(len(w), len(w))))
    np.testing.assert_allclose([float(v) for v in linear_layer_mi(q @ w, cov_x, 1.0, w_o, 0.5)], [i_xt, i_ty],
                               atol=1e-9)
    # I(T;Y) <= I(X;Y) (the layer is a function of X plus independent noise)
    cov_y = w_o @ cov_x @ w_o.T + 0.5 * np.eye(len(w_o))
    i_xy = float(gaussian_mi_bits(cov_x, cov_y, cov_x @ w_o.T))
    assert i_ty < i_xy
    # more measurement noise, less information; a zero layer carries none
    assert float(linear_layer_mi(w, cov_x, 4.0, w_o, 0.5)[0]) < i_xt
    np.testing.assert_allclose([float(v) for v in linear_layer_mi(0 * w, cov_x, 1.0, w_o, 0.5)], [0, 0], atol=1e-12)


def test_inside_jit_and_vmapped_over_networks_equals_each_alone():
    rng = np.random.default_rng(3)
    _, cov_x, w_o = random_setting(rng)
    stack = rng.normal(size=(4, 5, 12))
    f = jax.jit(jax.vmap(lambda w: linear_layer_mi(w, cov_x, 1.0, w_o, 0.5)))
    together = np.asarray(f(stack))
    alone = np.array([[float(v) for v in linear_layer_mi(w, cov_x, 1.0, w_o, 0.5)] for w in stack]).T
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-10)


def test_information_about_a_block_of_the_inputs():
    """Saxe et al.'s Section 5 in the linear setting: with independent blocks of inputs, a layer that reads only
    the first block has all its information about it and none about the second; in general I(T;X_S) <= I(T;X)
    and equals the NumPy computation."""
    rng = np.random.default_rng(11)
    cov_x = np.diag(rng.uniform(0.5, 2.0, size=8))
    w = np.zeros((3, 8))
    w[:, :5] = rng.normal(size=(3, 5))
    relevant, irrelevant = np.arange(5), np.arange(5, 8)
    i_xt = float(linear_layer_mi(w, cov_x, 1.0)[0])
    np.testing.assert_allclose(float(linear_layer_block_mi(w, cov_x, 1.0, relevant)), i_xt, atol=1e-10)
    np.testing.assert_allclose(float(linear_layer_block_mi(w, cov_x, 1.0, irrelevant)), 0.0, atol=1e-12)
    w, cov_x, _ = random_setting(rng, n_i=8)
    got = float(linear_layer_block_mi(w, cov_x, 1.0, irrelevant))
    cov_t = w @ cov_x @ w.T + np.eye(len(w))
    cross = w @ cov_x[:, irrelevant]
    joint = np.block([[cov_t, cross], [cross.T, cov_x[np.ix_(irrelevant, irrelevant)]]])
    ld = lambda m: np.linalg.slogdet(m)[1]
    want = 0.5 * (ld(cov_t) + ld(cov_x[np.ix_(irrelevant, irrelevant)]) - ld(joint)) / np.log(2)
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert 0 < got < float(linear_layer_mi(w, cov_x, 1.0)[0])
