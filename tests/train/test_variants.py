"""Per-run data variants inside one program: a network with its own training set or labels trains exactly as it
does alone, and never touches rows outside its training set."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ibjax.data.variants import run_data
from ibjax.sweep.plan import mi_epochs
from ibjax.train import Networks, run_program
from tests.helpers import (
    assert_metrics_alike,
    assert_same_network_mi,
    network,
    states_at_logged_epochs,
    tiny_bucket,
    tishby_task,
)

# Three hidden layers: a variant is per network, not per layer, and each layer adds the estimators' code to the
# chunk program (compile time).
TANH = ((10, 7, 5), "tanh")


def train_variants(fractions, noise, seeds, task=None, epochs=8, inputs=None, with_states=False, **program):
    """One bucket of tanh MLPs with per-run data variants; with_states: also the run as `assert_same_network_mi`
    takes it, with the states after each logged epoch (shorter runs through one compiled program)."""
    task = task or tishby_task()
    rd = run_data(task, fractions, noise, seeds, 0.0, 0, inputs)
    n_train = max(len(task.split_for(f)[0]) if f is not None else len(task.train_idx) for f in fractions)
    per_run = any(f is not None for f in fractions)
    eng, consts = tiny_bucket([TANH] * len(seeds), n_train=n_train, n_pool=task.pool_size if per_run else None,
                              chunk=epochs + 1 if with_states else 5, **program)
    data = task.device_data()._replace(runs=rd)
    run = lambda n: run_program(eng, Networks.of(seeds, [1e-3] * len(seeds)), consts, data,
                                mi_epochs(n, every=2), n)
    res = run(epochs)
    if not with_states:
        return res
    return res, (eng, consts, data, res.mi, states_at_logged_epochs(run, res))


def smallest_set(fraction: float) -> int:
    """Rows of the smaller of the training and test sets of a run with this training fraction."""
    train, _ = tishby_task().split_for(fraction)
    return min(len(train), len(tishby_task().test_idx))


def test_a_network_trains_alike_alone_and_beside_networks_with_other_training_sets():
    beside, beside_run = train_variants([0.05, 0.85, 0.45], [None] * 3, [3, 3, 3], with_states=True)
    for i, f in enumerate((0.05, 0.85, 0.45)):
        alone, alone_run = train_variants([f], [None], [3], with_states=True)
        assert_metrics_alike(beside.metrics[:, i], alone.metrics[:, 0], smallest_set(0.05), rtol=2e-5)
        assert_same_network_mi(beside_run, i, alone_run, 0, (30,))
        np.testing.assert_allclose(beside.grads[:, i, :, 0], alone.grads[:, 0, :, 0], rtol=1e-4, atol=1e-7)
        # the spread is sqrt(mean(g^2) - mean(g)^2): float cancellation leaves ~1e-5 where it is 0 (one batch)
        np.testing.assert_allclose(beside.grads[:, i, :, 1], alone.grads[:, 0, :, 1], rtol=1e-3, atol=1e-4)
    # and the three really trained differently (their own rows)
    assert not np.allclose(beside.metrics[-1, 0], beside.metrics[-1, 1])


def test_all_networks_at_the_shared_fraction_equal_the_shared_split():
    """grid.train_fraction: [0.85] (per-run arrays, all the same) computes what the shared split does."""
    per_run, per_run_run = train_variants([0.85, 0.85], [None, None], [1, 2], with_states=True)
    shared, shared_run = train_variants([None, None], [None, None], [1, 2], with_states=True)
    assert_metrics_alike(per_run.metrics, shared.metrics, smallest_set(0.85), rtol=2e-5)
    for i in range(2):
        assert_same_network_mi(per_run_run, i, shared_run, i, (30,))


def test_a_network_never_reads_rows_outside_its_training_set():
    """Rows outside the 5 % training set are NaN: the network's parameters stay finite, its training metrics too
    (its test metrics are NaN: they read those rows)."""
    task = tishby_task()
    train, _ = task.split_for(0.05)
    x = np.full_like(task.x, np.nan)
    x[train] = task.x[train]
    poisoned = replace(task, x=x)
    res = train_variants([0.05], [None], [0], task=poisoned)
    assert res.params_finite.all() and np.isfinite(res.metrics[:, 0, :2]).all()
    assert np.isnan(res.metrics[:, 0, 2]).all()


def test_label_noise_beside_clean_networks_trains_as_alone():
    beside = train_variants([None, None], [0.0, 1.0], [4, 4])
    alone = train_variants([None], [1.0], [4])
    assert_metrics_alike(beside.metrics[:, 1], alone.metrics[:, 0], smallest_set(0.85), rtol=2e-5)
    # K = 5: I(T;Y) against the trained-on labels; for p = 0 it is I(T;Y) itself
    assert beside.mi.shape[-1] == 5
    np.testing.assert_array_equal(beside.mi[:, 0, :, :, 4], beside.mi[:, 0, :, :, 1])
    assert not np.allclose(beside.mi[-1, 1, :, :, 4], beside.mi[-1, 1, :, :, 1])


def test_random_inputs_beside_original_inputs_train_as_alone():
    task = tishby_task()
    beside = train_variants([None, None], [None, None], [5, 5], inputs=["original", "gaussian"])
    alone = train_variants([None], [None], [5], inputs=["gaussian"])
    original = train_variants([None], [None], [5])
    assert_metrics_alike(beside.metrics[:, 1], alone.metrics[:, 0], smallest_set(0.85), rtol=2e-5)
    assert_metrics_alike(beside.metrics[:, 0], original.metrics[:, 0], smallest_set(0.85), rtol=2e-5)
    assert task.x.shape[1] == 12


def test_information_about_relevant_and_irrelevant_inputs_against_ground_truth():
    """X = (X_rel, X_irr) uniform over the product design. A network blind to the irrelevant columns has
    I(T;X_irr) = 0 and I(T;X_rel) = H(T) = I(X;T); one blind to the relevant columns the reverse (every layer,
    exactly: counting is exact)."""
    import jax

    from ibjax.data import load_task
    from ibjax.mi import Binning
    from ibjax.models.mlp import MLP, stack_consts
    from ibjax.spec import DataSpec
    from ibjax.train import Engine, Program

    task = load_task(DataSpec(irrelevant_inputs=6, irrelevant_draws=4, mi_sample={"n": 512}))
    assert task.x.shape == (4096 + 512 * 4, 18) and task.irrelevant_design == (512, 4)
    # the product design: row i * 4 + j = relevant row i with irrelevant draw j
    mi = task.x[task.mi_idx].reshape(512, 4, 18)
    assert (mi[:, :, :12] == mi[:, :1, :12]).all() and (mi[:, :, 12:] == mi[:1, :, 12:]).all()
    hidden = (10, 7, 5)
    prog = Program(MLP((18, *hidden, 2), ("tanh",)), "adam", len(task.train_idx), 256, (Binning(n_classes=2),), 4,
                   irrelevant=task.irrelevant_design)
    eng = Engine(prog)
    consts = stack_consts([(hidden, "tanh")], ("tanh",), 18, hidden)
    st = eng.init_state(Networks.of([0], 1e-3), consts)
    params, c0 = network(st.params, 0), network(consts, 0)
    data = task.device_data()
    measure = jax.jit(eng.measure)  # as the chunk runs it (op by op it compiled every small op anew)
    for blind, zero_col, full_col in ((slice(12, 18), 5, 4), (slice(0, 12), 4, 5)):
        w0 = params["w"][0].copy()
        w0[blind] = 0.0
        mi_, _ = measure({**params, "w": [w0, *params["w"][1:]]}, c0, data)
        mi_ = np.asarray(mi_)[:, 0]  # [L, K]: i_xt, i_ty, lo, hi, i_xt_rel, i_xt_irr
        np.testing.assert_allclose(mi_[:, zero_col], 0.0, atol=1e-12)
        np.testing.assert_allclose(mi_[:, full_col], mi_[:, 0], atol=1e-12)
    # unblinded, both parts carry information and neither exceeds its own entropy
    mi_ = np.asarray(measure(params, c0, data)[0])[:, 0]
    assert (mi_[:-1, 4] > 1).all() and (mi_[:-1, 5] > 0.1).all() and (mi_[:, 5] <= 2 + 1e-9).all()
