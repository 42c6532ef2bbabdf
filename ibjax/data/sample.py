"""Stratified row subsets: the MI sample, and the train_rows / test_rows subsets of large datasets."""

from __future__ import annotations

import numpy as np


def stratified_subset(rows: np.ndarray, y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` of `rows` (sorted), each class in proportion to its share of `rows` (largest remainders), drawn with
    `seed`. The same arguments always give the same rows."""
    rows = np.asarray(rows)
    if n >= len(rows):
        return np.sort(rows)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y[rows], return_counts=True)
    quota = counts * n / len(rows)
    take = np.floor(quota).astype(int)
    short = n - take.sum()
    take[np.argsort(-(quota - take), kind="stable")[:short]] += 1  # largest remainders get the rest
    chosen = []
    for c, k in zip(classes, take):
        members = rows[y[rows] == c]
        chosen.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(chosen))
