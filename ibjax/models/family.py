"""The model-family protocol: what the compiled chunk needs of a network, whatever its kind.

A family is a frozen, hashable description of one program's network structure (it keys the compiled program,
with the other `ibjax.train.Program` fields). The engine never looks inside its parameters: it initialises one
network from a key, applies it, and reads back the layers the family names. It is vmapped over the model axis
by the engine; per-network settings that are data, not structure (activation, width masks) arrive as `consts`,
one row of the bucket's stacked `ModelConsts`.

    layer_names   the measured layers in network order; the softmax of the logits is always the last, "out"
    grad_names    the groups of weights whose gradient statistics are recorded (the gradients table's layers)
    init(key, consts) -> params                  one network (a pytree of float32 arrays)
    apply(params, consts, x, key, train) -> (hidden, logits)
                  hidden: one [N, units] array per measured layer before "out" (conv feature maps flattened
                  per sample); key: the noise of stochastic networks and dropout; train: dropout on
    contexts(consts, hidden) -> per hidden layer (real-unit mask [units], natural lo, hi, bounded)
    grad_leaves(grads) -> per grad group, the weight arrays whose gradients it summarises
    affine_layers(consts) -> per measured layer, hidden then the logits: whether it is an affine function of the
                  input (a linear network's), so that the map read off the network is the layer (exact Gaussian MI)

Families: `ibjax.models.mlp.MLP` (padded widths, native CPU kernels), `ibjax.models.conv.Conv` and
`ibjax.models.flax_module.FlaxModule` (both Flax NNX modules behind `ibjax.models.nnx_adapter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from ibjax.threefry import original_layout_key

Array = Any


class ModelFamily(Protocol):
    """What the engine must know about a family is declared, never probed: `native_kernel` (its forward and
    backward pass are the native CPU kernel's function, so ibjax.native may run them), `stochastic` (noise is
    added to its layers: the MI pass draws it, and the noisy estimator samples it), `batches_on_cpu` (its
    networks run as one vmapped batch on the CPU; False: one after another, `lax.map`, as for convolutions, which
    XLA:CPU runs ~4x slower grouped) and `cpu_compiler_options` (XLA options for its chunk program on the CPU,
    measured on that family's programs)."""

    kind: str
    batches_on_cpu: bool
    cpu_compiler_options: Mapping[str, str]

    @property
    def native_kernel(self) -> bool: ...

    @property
    def stochastic(self) -> bool: ...

    @property
    def layer_names(self) -> tuple[str, ...]: ...

    @property
    def grad_names(self) -> tuple[str, ...]: ...

    def init(self, key, consts) -> Any: ...

    def apply(self, params, consts, x_NxD, key=None, train: bool = False) -> tuple[list, Array]: ...

    def contexts(self, consts, hidden: list) -> list[tuple]: ...

    def grad_leaves(self, grads) -> list[list[Array]]: ...

    def affine_layers(self, consts) -> list: ...


def is_weight(leaf) -> bool:
    """Kernels and weight matrices (ndim >= 2) are decayed by weight_decay; biases and scales are not (as Keras's
    kernel_regularizer, which Chelombiev et al.'s L2 runs use)."""
    return jnp.ndim(leaf) >= 2


def weight_mask(params):
    """The pytree of `is_weight` flags (optax's mask for add_decayed_weights)."""
    return jax.tree.map(is_weight, params)


def dropout(h, rate: float | None, key, train: bool):
    """Inverted dropout (kept units scaled by 1 / (1 - rate)) in training; the identity otherwise."""
    if not train or rate is None or rate == 0.0:
        return h
    # 32 random bits per unit against the keep probability's share of 2^32 (bernoulli would draw 64 bits per
    # unit in a 64-bit process, for a float64 uniform).
    threshold = np.uint32(min(round((1.0 - rate) * 2.0**32), 2**32 - 1))  # a rate near 0: not past uint32
    keep = jax.random.bits(dropout_key(key), h.shape, jnp.uint32) < threshold
    return jnp.where(keep, h / (1.0 - rate), 0.0)


def dropout_key(key):
    """`key` (a Threefry key) as the key ibjax's dropout masks are drawn from: the same key data, random bits in
    JAX's original counter layout. JAX's default (partitionable) layout hashes a multi-dimensional counter per
    element; on the CPU one Bernoulli mask with its gradient compiled in 0.75 s against 0.13 s, a third of the
    test conv chunk's compile. The masks are drawn inside each device's networks, so nothing needs them
    partitioned. They are the masks of `jax.threefry_partitionable(False)`: other draws of the same distribution
    than the default layout's. A user's Flax module draws its own masks as JAX does (its dropout on small dense
    layers cost no measurable compile). Another key implementation (rbg keys) is used as it is."""
    return original_layout_key(key)


class ModelError(ValueError):
    """A model that cannot be built or does not fit the task (a user module that does not import, returns the
    wrong shape, records no layer): the message names the model and what was expected. The CLI exits with 2."""
