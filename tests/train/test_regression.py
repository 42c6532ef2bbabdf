"""The regression task family (dataset teacher): linear and tanh students trained by squared error on Saxe et al.'s
teacher, with the Gaussian estimator inside the compiled step. Ground truth: the exact generalization error and
the exact Gaussian MI, computed in NumPy from each trained network's own weights; the Gaussian approximation of a
nonlinear layer from NumPy's sample covariances of its activations."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ibjax.data import load_task
from ibjax.data.teacher import generalization_error
from ibjax.mi import Binning, GaussianMI
from ibjax.models.mlp import MLP, forward, stack_consts
from ibjax.spec import DataSpec, TeacherSpec
from ibjax.sweep.plan import mi_epochs
from ibjax.train import Engine, Networks, Program, run_program

NI, P, N_TEST, EPOCHS, NOISE = 12, 12, 512, 40, 1.0
TASK = load_task(DataSpec(dataset="teacher", teacher=TeacherSpec(inputs=NI, snr=1.0, seed=3), train_rows=P,
                          test_rows=N_TEST))
MODELS = [((12,), "linear", 0, 0.05), ((7,), "linear", 1, 0.05), ((12,), "tanh", 2, 0.05)]  # widths, act, seed, lr


def _logdet(a):
    sign, value = np.linalg.slogdet(a)
    assert sign > 0
    return value


def numpy_gaussian_mi(cov_t, cov_tx, t, noise_var):
    """(I(T;X), I(T;Y)) in bits of T + N(0, noise_var I) from T's covariance and its cross-covariance with X."""
    u = cov_t.shape[0]
    s_t = cov_t + noise_var * np.eye(u)
    s_y = t.w_o @ t.cov_x @ t.w_o.T + t.noise_var * np.eye(t.w_o.shape[0])
    cross = cov_tx @ t.w_o.T
    joint = np.block([[s_t, cross], [cross.T, s_y]])
    i_xt = 0.5 * (_logdet(s_t) - u * np.log(noise_var)) / np.log(2)
    i_ty = 0.5 * (_logdet(s_t) + _logdet(s_y) - _logdet(joint)) / np.log(2)
    return i_xt, i_ty


@pytest.fixture(scope="module")
def trained():
    names = ("linear", "tanh")
    est = (GaussianMI("gaussian", NOISE), Binning("binning30", n_classes=1))
    prog = Program(MLP((NI, 12, 1), names), "sgd", P, P, est, chunk=EPOCHS + 1, regression=True)
    consts = stack_consts([(h, a) for h, a, _, _ in MODELS], names, NI, (12,))
    eng = Engine(prog)
    data = TASK.device_data()
    res = run_program(eng, Networks.of([s for *_, s, _ in MODELS], [lr for *_, lr in MODELS]),
                      consts, data, mi_epochs(EPOCHS, every=10), EPOCHS)
    params = jax.device_get(res.state.params)
    return eng, res, consts, params


def _network(params, i):
    return jax.tree.map(lambda a: np.asarray(a[i], np.float64), params)


def test_a_linear_students_generalization_error_is_the_formula_of_its_weights(trained):
    eng, res, _, params = trained
    assert eng.prog.metric_names == ("train_loss", "test_loss", "gen_error")
    t = TASK.teacher
    for i, (_, act, _, _) in enumerate(MODELS):
        p = _network(params, i)
        w1, w2, b1, b2 = p["w"][0], p["w"][1], p["b"][0], p["b"][1]
        train_loss, test_loss, gen_error = res.metrics[-1, i]
        x, y = TASK.x.astype(np.float64), TASK.targets.astype(np.float64)
        h = x @ w1 + b1 if act == "linear" else np.tanh(x @ w1 + b1)
        se = np.sum((h @ w2 + b2 - y) ** 2, axis=1)  # trained by squared error: the loss it reports
        np.testing.assert_allclose(train_loss, se[TASK.train_idx].mean(), rtol=1e-4)
        np.testing.assert_allclose(test_loss, se[TASK.test_idx].mean(), rtol=1e-4)
        if act == "linear":  # the end-to-end map and offset of y = (x w1 + b1) w2 + b2
            exact = generalization_error((w1 @ w2).T, t, b1 @ w2 + b2)
            np.testing.assert_allclose(gen_error, exact, rtol=1e-5)
            assert abs(test_loss - exact) < 4 * se[TASK.test_idx].std() / np.sqrt(N_TEST)  # its Monte Carlo value
        else:
            assert np.isnan(gen_error)  # not an affine network: only test_loss estimates E_g
    assert res.metrics[-1, 0, 0] < res.metrics[0, 0, 0]  # it trained


def test_gaussian_mi_in_the_step_is_exact_for_linear_layers_and_the_sample_approximation_otherwise(trained):
    eng, res, consts, params = trained
    t = TASK.teacher
    rows = TASK.mi_rows
    x = TASK.x[rows].astype(np.float64)
    for i, (_, act, _, _) in enumerate(MODELS):
        p = _network(params, i)
        w1, w2 = p["w"][0], p["w"][1]
        if act == "linear":  # population covariances of T = W X (+ offset): Saxe et al.'s formulas
            maps = [w1.T, (w1 @ w2).T]
            covs = [(m @ t.cov_x @ m.T, m @ t.cov_x) for m in maps]
        else:  # the layer's sample covariances on the MI sample (the float32 network's own activations)
            c = jax.tree.map(lambda a: a[i], consts)
            hidden, out = forward(jax.tree.map(lambda a: a[i], res.state.params), c, TASK.x[rows], ("linear", "tanh"))
            covs = []
            for a in (np.asarray(hidden[0], np.float64), np.asarray(out, np.float64)):
                a_c, x_c = a - a.mean(0), x - x.mean(0)
                covs.append((a_c.T @ a_c / len(a), a_c.T @ x_c / len(a)))
        for layer, (cov_t, cov_tx) in enumerate(covs):
            want = numpy_gaussian_mi(cov_t, cov_tx, t, NOISE)
            got = res.mi[-1, i, layer, 0, :2]
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"network {i} ({act}) layer {layer}")
    # Padded units (network 1 has 7 of 12) add nothing; counting estimators have no I(T;Y) of continuous targets.
    assert np.all(np.isfinite(res.mi[..., 0, :2]))
    assert np.all(np.isnan(res.mi[..., 1, 1])) and np.all(np.isfinite(res.mi[..., 1, 0]))


def test_the_gaussian_estimator_on_a_classification_task_gives_its_approximate_i_xt_and_no_i_ty():
    from tests.helpers import network, tiny_bucket, tishby_task

    eng, consts = tiny_bucket([((10, 7, 5, 4, 3), "tanh")], estimators=(GaussianMI("gaussian", 0.1),))
    state = eng.init_state(Networks.of([0], 1.0), consts)
    mi, _ = jax.jit(eng.measure)(network(state.params, 0), network(consts, 0), tishby_task().device_data())
    assert np.all(np.isfinite(mi[:, 0, 0])) and np.all(mi[:, 0, 0] > 0)
    assert np.all(np.isnan(mi[:, 0, 1]))


def test_blocks_of_a_teachers_inputs_have_the_exact_block_mi_of_the_trained_layers():
    """Saxe et al.'s Section 5 in the linear setting: I(T;X_rel) and I(T;X_irr) of a linear network trained on a
    teacher whose first 4 of 12 inputs alone reach Y equal the closed form of the trained weights
    (ibjax.mi.gaussian.linear_layer_block_mi, tested against NumPy); counting estimators give NaN there."""
    from ibjax.mi.gaussian import linear_layer_block_mi

    task = load_task(DataSpec(dataset="teacher", teacher=TeacherSpec(inputs=NI, snr=1.0, seed=4, relevant_inputs=4),
                              train_rows=P, test_rows=N_TEST))
    assert np.all(task.teacher.w_o[:, 4:] == 0) and task.relevant_inputs == 4
    est = (GaussianMI("gaussian", NOISE), Binning("binning30", n_classes=1))
    prog = Program(MLP((NI, 12, 1), ("linear",)), "sgd", P, P, est, chunk=21, regression=True, relevant_inputs=4)
    consts = stack_consts([((12,), "linear")] * 2, ("linear",), NI, (12,))
    eng = Engine(prog)
    data = task.device_data()
    assert eng.mi_columns(data) == ("i_xt", "i_ty", "bin_lo", "bin_hi", "i_xt_rel", "i_xt_irr")
    res = run_program(eng, Networks.of([0, 1], [0.05, 0.05]), consts, data, mi_epochs(20, every=10), 20)
    params = jax.device_get(res.state.params)
    for i in range(2):
        p = _network(params, i)
        for layer, m in enumerate((p["w"][0].T, (p["w"][0] @ p["w"][1]).T)):
            want = [float(linear_layer_block_mi(m, task.teacher.cov_x, NOISE, block))
                    for block in (np.arange(4), np.arange(4, NI))]
            np.testing.assert_allclose(res.mi[-1, i, layer, 0, 4:], want, rtol=1e-5, atol=1e-6)
    assert np.all(np.isnan(res.mi[:, :, :, 1, 4:]))
