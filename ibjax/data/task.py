"""The dataset a spec names, split: host arrays (Task) and the arrays the compiled chunk reads (Data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ibjax.data.matfile import load_mat
from ibjax.data.split import make_split
from ibjax.data.tishby12 import tishby12
from ibjax.spec import DataSpec


class Data(NamedTuple):
    """The task, on device. The MI sample is the whole dataset (x_all), train and test together."""

    x_train: jnp.ndarray  # float32 [n_train, D]
    y_train: jnp.ndarray  # int32 [n_train]
    x_all: jnp.ndarray  # float32 [N, D]
    y_all: jnp.ndarray  # int32 [N]
    is_train: jnp.ndarray  # float32 [N]: 1 for rows in the training split


@dataclass(frozen=True)
class Task:
    x: np.ndarray  # [N, D] float32, the MI sample (whole dataset)
    y: np.ndarray  # [N] int32
    train_idx: np.ndarray
    test_idx: np.ndarray

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1

    def device_data(self) -> Data:
        is_train = np.zeros(len(self.y), np.float32)
        is_train[self.train_idx] = 1.0
        return Data(
            x_train=jnp.asarray(self.x[self.train_idx]), y_train=jnp.asarray(self.y[self.train_idx]),
            x_all=jnp.asarray(self.x), y_all=jnp.asarray(self.y), is_train=jnp.asarray(is_train))


def load_task(spec: DataSpec) -> Task:
    if spec.dataset == "tishby12":
        x, y = tishby12()
    else:
        x, y = load_mat(spec.path)
    y = np.asarray(y, np.int32)
    classes = np.unique(y)
    if not np.array_equal(classes, np.arange(len(classes))):
        y = np.searchsorted(classes, y).astype(np.int32)  # labels as 0..C-1
    train_idx, test_idx = make_split(y, spec.split, spec.train_fraction, spec.split_seed)
    return Task(np.asarray(x, np.float32), y, train_idx, test_idx)
