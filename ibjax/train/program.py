"""What one compiled program is (`Program`: its shapes and structure, hashable), the training state of a network
(`TrainState`), the metrics it reports, and the optimizers by name.

The math (ibjax.train.epoch, ibjax.train.measure) and the compiled chunk (ibjax.train.engine) are built from a
Program.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import optax

from ibjax.models.family import ModelFamily, weight_mask

# `measure`'s metrics, in the order of its metrics axis (metrics.parquet's columns): a classification task's,
# and a regression task's (losses: mean squared error summed over the outputs, E_g's scale; gen_error: E_g).
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")
REGRESSION_METRICS = ("train_loss", "test_loss", "gen_error")


class Networks(NamedTuple):
    """What sets a program's networks apart besides their constants (`ModelConsts`) and data variants
    (`Data.runs`): one entry per network, the model axis first (a pytree the engine vmaps over)."""

    seed: np.ndarray  # uint32: initial weights, minibatch order, noise draws
    learning_rate: np.ndarray  # float32
    momentum: np.ndarray  # float32: used by optimizer momentum only
    weight_decay: np.ndarray  # float32: used by a program with weight decay only (Program.weight_decay)

    @classmethod
    def of(cls, seeds, learning_rates, momenta=0.0, weight_decays=0.0) -> Networks:
        """From per-network sequences; a single number is every network's."""
        seed = np.asarray(seeds, np.uint32)
        each = lambda v: np.broadcast_to(np.asarray(v, np.float32), seed.shape).copy()
        return cls(seed, each(learning_rates), each(momenta), each(weight_decays))

    @property
    def count(self) -> int:
        return len(self.seed)


class TrainState(NamedTuple):
    params: dict
    opt_state: object
    key: jnp.ndarray


@dataclass(frozen=True)
class Program:
    """What fixes the compiled program's shapes and structure (hashable)."""

    model: ModelFamily  # the networks' family and structure (ibjax.models: MLP, Conv, FlaxModule)
    optimizer: str
    n_train: int
    batch_size: int
    estimators: tuple  # MIEstimator instances (frozen dataclasses)
    chunk: int
    # Per-run training sets (data.runs.train_idx): each epoch's order is a permutation of [0, n_pool) (the rows
    # any network may train on) cut to the network's own count, so a network trains the same whatever the other
    # networks of its program are; n_train is then the largest training set of the program.
    n_pool: int | None = None
    # Task-irrelevant inputs: the MI sample is n_rel relevant rows x r irrelevant draws (row i * r + j); every
    # estimator also gives I(T;X_rel) and I(T;X_irr), counting the part's index as it counts labels.
    irrelevant: tuple[int, int] | None = None
    # Whether the optimizer adds weight_decay * w to the gradients of weight matrices / kernels (the rate is per
    # network, in the optimizer state like the learning rate); False: the optimizer of earlier versions, unchanged.
    weight_decay: bool = False
    # A regression task (data.targets): squared-error loss, the output layer measured as it is (no softmax).
    regression: bool = False
    # A teacher whose first k inputs alone reach Y (Saxe et al.'s Section 5 in the linear setting): estimators that
    # give block MI from covariances (`needs_linear_map`: kind gaussian) also give I(T;X_rel), I(T;X_irr) of the
    # input blocks [0, k) and [k, D); the others NaN there.
    relevant_inputs: int | None = None
    # mi_sample.split both: the sizes of the MI sample's consecutive parts (training rows, then test rows); every
    # estimator measures each part on its own, and `measure`'s estimator axis holds part-major (part, estimator)
    # pairs. None: one sample.
    mi_parts: tuple[int, ...] | None = None

    @property
    def metric_names(self) -> tuple[str, ...]:
        """`measure`'s metrics, in order."""
        return REGRESSION_METRICS if self.regression else METRICS

    @property
    def family(self) -> ModelFamily:
        return self.model

    @property
    def n_layers(self) -> int:
        """Weight groups with gradient statistics (for an MLP: its dense layers, hidden and output)."""
        return len(self.family.grad_names)

    @property
    def n_batches(self) -> int:
        return -(-self.n_train // self.batch_size)

    def n_chunks(self, n_epochs: int) -> int:
        """Chunks covering steps 0..n_epochs (the MI mask has n_chunks * chunk entries)."""
        return -(-(n_epochs + 1) // self.chunk)


# The optimizers by name: the optax transformation and the hyperparameters injected into its state (so that they
# can differ per network in one program). One row per optimizer; the spec's `optimizer` values are these names.
OPTIMIZERS: dict[str, tuple] = {
    "adam": (optax.adam, ("learning_rate",)),
    "sgd": (optax.sgd, ("learning_rate",)),
    "momentum": (optax.sgd, ("learning_rate", "momentum")),
}


def make_optimizer(name: str, learning_rate=0.0, momentum=0.0, weight_decay=None) -> optax.GradientTransformation:
    """Hyperparameters are injected into the optimizer state, so they can differ per model in one program.
    weight_decay (not None): L2 regularisation, weight_decay * w added to the gradient of every weight matrix and
    kernel before the optimizer (Keras's kernel_regularizer l2(c) is weight_decay = 2c)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    make, names = OPTIMIZERS[name]
    if weight_decay is not None:
        def decayed(learning_rate, momentum, weight_decay):
            hyper = {"learning_rate": learning_rate, "momentum": momentum}
            return optax.chain(optax.add_decayed_weights(weight_decay, mask=weight_mask),
                               make(**{k: hyper[k] for k in names}))
        return optax.inject_hyperparams(decayed)(learning_rate=learning_rate, momentum=momentum,
                                                 weight_decay=weight_decay)
    given = {"learning_rate": learning_rate, "momentum": momentum}
    return optax.inject_hyperparams(make)(**{k: given[k] for k in names})
