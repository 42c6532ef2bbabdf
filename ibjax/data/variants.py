"""Per-network data variants over the one stored dataset: training sets (train_fraction) and labels
(label_noise). They are rows of arrays with a leading model axis, so networks that differ only in them share one
compiled program.

Label noise (Zhang et al. 2017): round(p * n_train) of a network's training rows, chosen at random, get a class
drawn uniformly from all classes (it may equal the true one, as in Zhang et al.'s "corrupted labels"). Drawn
per network from NumPy's generator seeded with (data.variant_seed, the run's seed): seeds of one cell see
different corruptions, and the same run always sees the same. Test labels are never changed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ibjax.data.task import Task


class RunData(NamedTuple):
    """One row per network (host NumPy here; on the device, sharded like the networks). Fields not needed by a
    program are None (so the program does not carry them)."""

    train_idx: np.ndarray | None  # int32 [M, n_max]: each network's training rows, its n_train real ones first
    n_train: np.ndarray | None  # int32 [M]
    is_train: np.ndarray | None  # float32 [M, N]: 1 for the network's training rows
    is_test: np.ndarray | None  # float32 [M, N]: 1 for its test rows
    y_fit: np.ndarray | None  # int32 [M, N]: the labels it trains on (true labels outside its training rows)


def noisy_labels(y: np.ndarray, train_idx: np.ndarray, p: float, n_classes: int, seed: tuple[int, int]) -> np.ndarray:
    """The labels a network with label noise p trains on (all rows; only `train_idx` rows may change)."""
    rng = np.random.default_rng(list(seed))
    out = np.array(y, np.int32, copy=True)
    k = int(round(p * len(train_idx)))
    rows = rng.choice(train_idx, size=k, replace=False)
    out[rows] = rng.integers(0, n_classes, size=k, dtype=np.int32)
    return out


def run_data(task: Task, fractions: list[float | None], label_noise: list[float | None], seeds: list[int],
             default_noise: float, variant_seed: int) -> RunData | None:
    """The variants of a program's networks (None: every network trains on the shared split, true labels).

    fractions[i]: network i's train_fraction (None: the shared split); label_noise[i]: its label noise (None:
    data.label_noise, `default_noise`)."""
    per_run_split = any(f is not None for f in fractions)
    noise = [default_noise if p is None else p for p in label_noise]
    if not per_run_split and not any(p > 0 for p in noise) and all(p is None for p in label_noise):
        return None
    splits = [task.split_for(f) if f is not None else (task.train_idx, task.test_idx) for f in fractions]
    n = len(task.y)
    fields = dict(train_idx=None, n_train=None, is_train=None, is_test=None, y_fit=None)
    if per_run_split:
        n_max = max(len(tr) for tr, _ in splits)
        fields["train_idx"] = np.stack([np.pad(tr, (0, n_max - len(tr)), constant_values=tr[0]) for tr, _ in splits]
                                       ).astype(np.int32)
        fields["n_train"] = np.asarray([len(tr) for tr, _ in splits], np.int32)
        fields["is_train"] = np.zeros((len(splits), n), np.float32)
        fields["is_test"] = np.zeros((len(splits), n), np.float32)
        for i, (tr, te) in enumerate(splits):
            fields["is_train"][i, tr] = 1.0
            fields["is_test"][i, te] = 1.0
    if any(p is not None for p in label_noise) or any(p > 0 for p in noise):
        fields["y_fit"] = np.stack([
            noisy_labels(task.y, tr, p, task.n_classes, (variant_seed, seed)) if p > 0 else task.y
            for (tr, _), p, seed in zip(splits, noise, seeds)]).astype(np.int32)
    return RunData(**fields)
