"""Train/test splits of a dataset's row indices."""

from __future__ import annotations

import numpy as np


def stratified_split(y: np.ndarray, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded shuffle whose first round(frac * n_class) rows go to train. Sorted index arrays."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        rng.shuffle(rows)
        k = int(round(train_fraction * len(rows)))
        train.append(rows[:k])
        test.append(rows[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def idnns_split(n: int, train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The public IDNNs split: the first rows in their stored order go to train, no shuffle.

    On the 12-bit task this puts 44 % positives in train and 84 % in test (docs/reference.md, section 2);
    offered only to reproduce that code, never as a default.
    """
    k = int(round(train_fraction * n))
    return np.arange(k), np.arange(k, n)


def make_split(y: np.ndarray, kind: str, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if kind == "stratified":
        return stratified_split(y, train_fraction, seed)
    if kind == "idnns":
        return idnns_split(len(y), train_fraction)
    raise ValueError(f"unknown split {kind!r}; known: stratified, idnns")
