"""Per-run data variants: nested training sets, label noise of exactly the asked fraction, test labels kept."""

from __future__ import annotations

import numpy as np

from ibjax.data import load_task
from ibjax.data.variants import noisy_labels, run_data
from ibjax.spec import DataSpec


def test_training_fractions_are_nested_stratified_and_disjoint_from_their_test_rows():
    task = load_task(DataSpec())
    sets = [task.split_for(f) for f in (0.05, 0.45, 0.85)]
    for (small, _), (large, _) in zip(sets, sets[1:]):
        assert np.isin(small, large).all()  # a smaller training set is part of every larger one
    for f, (train, test) in zip((0.05, 0.45, 0.85), sets):
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 4096
        assert np.bincount(task.y[train]).tolist() == [round(f * c) for c in np.bincount(task.y)]
    assert np.array_equal(task.split_for(0.85)[0], task.train_idx)  # the default fraction is the shared split


def test_run_data_rows_masks_and_labels():
    task = load_task(DataSpec())
    rd = run_data(task, [0.05, 0.85, 0.05], [0.0, 1.0, 0.5], [0, 0, 1], 0.0, variant_seed=7)
    n_small = len(task.split_for(0.05)[0])
    n_large = len(task.train_idx)
    assert rd.train_idx.shape == (3, n_large) and rd.n_train.tolist() == [n_small, n_large, n_small]
    for i in range(3):
        rows = rd.train_idx[i, :rd.n_train[i]]
        assert np.array_equal(np.flatnonzero(rd.is_train[i]), np.sort(rows))
        assert not (rd.is_train[i] * rd.is_test[i]).any() and (rd.is_train[i] + rd.is_test[i]).all()
        test = rd.is_test[i] > 0
        assert np.array_equal(rd.y_fit[i][test], task.y[test])  # test labels are never changed
    assert np.array_equal(rd.y_fit[0], task.y)  # p = 0
    flipped = (rd.y_fit[1] != task.y).mean()
    assert 0.4 < flipped < 0.6  # p = 1 on 2 classes: about half the labels differ from the true ones


def test_label_noise_replaces_exactly_the_fraction_asked_for():
    y = np.repeat(np.arange(10), 100).astype(np.int32)
    train = np.arange(0, 1000, 2)
    out = noisy_labels(y, train, 0.3, 10, (0, 5))
    assert np.array_equal(out[1::2], y[1::2])  # rows outside the training set keep their labels
    # 150 training rows were redrawn uniformly from 10 classes: about 135 of them changed
    changed = (out != y).sum()
    assert 110 < changed <= 150
    assert np.array_equal(out, noisy_labels(y, train, 0.3, 10, (0, 5)))  # reproducible
    assert not np.array_equal(out, noisy_labels(y, train, 0.3, 10, (0, 6)))  # another run, another draw
    random = noisy_labels(y, train, 1.0, 10, (0, 5))[train]
    assert abs((random == y[train]).mean() - 0.1) < 0.05  # p = 1: the labels carry no information


def test_no_variants_means_no_per_run_arrays():
    task = load_task(DataSpec())
    assert run_data(task, [None, None], [None, None], [0, 1], 0.0, 0) is None
    rd = run_data(task, [None], [None], [0], 0.25, 0)  # data.label_noise without a grid axis
    assert rd.train_idx is None and rd.y_fit is not None


def test_random_inputs_as_the_network_reads_them():
    """shuffled_pixels: one fixed permutation of the columns; gaussian: a fixed Gaussian image per row with the
    training rows' per-pixel mean and std, the same on every read, another for another seed."""
    import jax

    from ibjax.train.rows import read_rows

    task = load_task(DataSpec(dataset="digits"))
    rd = run_data(task, [None] * 3, [None] * 3, [0, 1, 2], 0.0, 0, ["original", "shuffled_pixels", "gaussian"])
    assert rd.y_fit is None and rd.train_idx is None  # labels and training rows untouched
    data = task.device_data()._replace(runs=rd)
    from ibjax.train.rows import data_axes

    read = jax.vmap(read_rows, in_axes=(data_axes(), None))
    rows = np.arange(0, 1797, 7)
    x = np.asarray(read(data, rows))
    assert x.dtype == np.float32  # every variant is read as float32: a network trains in float32 whatever it reads
    base = task.x_float(rows)
    np.testing.assert_array_equal(x[0], base)
    perm = rd.pixel_perm[1]
    assert not np.array_equal(perm, np.arange(64)) and np.array_equal(np.sort(perm), np.arange(64))
    np.testing.assert_array_equal(x[1], base[:, perm])
    gauss = np.asarray(read(data, np.arange(1797)))[2]
    np.testing.assert_array_equal(gauss[rows], x[2])  # the same image for the same row, whatever else is read
    xt = task.x_float(task.train_idx)
    assert np.abs(gauss.mean(0) - xt.mean(0)).max() < 0.1 and np.abs(gauss.std(0) / np.maximum(xt.std(0), 1e-6)
                                                                     - 1)[xt.std(0) > 0.05].max() < 0.2
    other = run_data(task, [None], [None], [7], 0.0, 0, ["gaussian"])
    assert not np.allclose(np.asarray(read(task.device_data()._replace(runs=other), rows))[0], x[2])
