"""Per-network data variants over the one stored dataset: training sets (train_fraction), labels
(label_noise) and inputs (random inputs). They are rows of arrays with a leading model axis, so networks that
differ only in them share one compiled program.

Label noise (Zhang et al. 2017): round(p * n_train) of a network's training rows, chosen at random, get a class
drawn uniformly from all classes (it may equal the true one, as in Zhang et al.'s "corrupted labels"). Drawn
per network from NumPy's generator seeded with (data.variant_seed, the run's seed): seeds of one cell see
different corruptions, and the same run always sees the same. Test labels are never changed.

Random inputs (Zhang et al. 2017), data.inputs / grid.inputs, also drawn per network from (variant_seed, seed):
shuffled_pixels, one fixed permutation of the pixels applied to every image (train and test); gaussian, every
image replaced by a fixed draw of independent Gaussian pixels with the training rows' per-pixel mean and
standard deviation (generated inside the program from the row's index, so nothing is stored per network).
The labels stay the true ones: the network can only memorize them.
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
    pixel_perm: np.ndarray | None = None  # int32 [M, D]: input column j is column pixel_perm[j] (identity: original)
    gaussian: np.ndarray | None = None  # bool [M]: inputs replaced by Gaussian pixels
    gaussian_seed: np.ndarray | None = None  # uint32 [M]: the seed of a network's Gaussian images
    gaussian_mean: np.ndarray | None = None  # float32 [M, D]
    gaussian_std: np.ndarray | None = None  # float32 [M, D]

    @property
    def input_variants(self) -> bool:
        return self.pixel_perm is not None or self.gaussian is not None


def noisy_labels(y: np.ndarray, train_idx: np.ndarray, p: float, n_classes: int, seed: tuple[int, int]) -> np.ndarray:
    """The labels a network with label noise p trains on (all rows; only `train_idx` rows may change)."""
    rng = np.random.default_rng(list(seed))
    out = np.array(y, np.int32, copy=True)
    k = int(round(p * len(train_idx)))
    rows = rng.choice(train_idx, size=k, replace=False)
    out[rows] = rng.integers(0, n_classes, size=k, dtype=np.int32)
    return out


def variant_rng(variant_seed: int, seed: int) -> np.random.Generator:
    return np.random.default_rng([variant_seed, seed])


def run_data(task: Task, fractions: list[float | None], label_noise: list[float | None], seeds: list[int],
             default_noise: float, variant_seed: int, inputs: list[str | None] | None = None,
             default_inputs: str = "original") -> RunData | None:
    """The variants of a program's networks (None: every network trains on the shared split, true labels,
    original inputs).

    fractions[i]: network i's train_fraction (None: the shared split); label_noise[i]: its label noise (None:
    data.label_noise, `default_noise`); inputs[i]: its inputs (None: data.inputs, `default_inputs`)."""
    inputs = [None] * len(seeds) if inputs is None else inputs
    per_run_split = any(f is not None for f in fractions)
    noise = [default_noise if p is None else p for p in label_noise]
    kinds = [default_inputs if k is None else k for k in inputs]
    input_variants = any(k is not None for k in inputs) or any(k != "original" for k in kinds)
    if (not per_run_split and not any(p > 0 for p in noise) and all(p is None for p in label_noise)
            and not input_variants):
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
    if input_variants:
        d = task.x.shape[1]
        perms, gauss, gseed, means, stds = [], [], [], [], []
        for (tr, _), kind, seed in zip(splits, kinds, seeds):
            rng = variant_rng(variant_seed, seed)
            perms.append(rng.permutation(d) if kind == "shuffled_pixels" else np.arange(d))
            gauss.append(kind == "gaussian")
            gseed.append(rng.integers(0, 2**32, dtype=np.uint32))
            xf = task.x_float(tr) if kind == "gaussian" else None
            means.append(xf.mean(0) if xf is not None else np.zeros(d))
            stds.append(xf.std(0) if xf is not None else np.ones(d))
        fields.update(pixel_perm=np.stack(perms).astype(np.int32), gaussian=np.asarray(gauss),
                      gaussian_seed=np.asarray(gseed, np.uint32), gaussian_mean=np.stack(means).astype(np.float32),
                      gaussian_std=np.stack(stds).astype(np.float32))
    return RunData(**fields)
