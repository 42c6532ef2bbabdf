"""The hidden-layer activations a spec may name, and the output ranges of the bounded ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp

ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "sigmoid": jax.nn.sigmoid,
    "softsign": jax.nn.soft_sign,
    "softplus": jax.nn.softplus,
    "linear": lambda z: z,
    "leaky_relu": lambda z: jax.nn.leaky_relu(z, negative_slope=0.01),
    "elu": jax.nn.elu,
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
    "swish": jax.nn.swish,  # z sigmoid(z) (Chelombiev et al. 2019)
}

# Output ranges of the bounded activations: the binning estimator's natural range for them.
BOUNDED_RANGES = {"tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}


def activate(z, act_id, names: tuple[str, ...]):
    """Apply the model's activation (`act_id` indexes `names`, the activations of its program). With several in a
    program, all are computed and one is selected (what lax.switch would do under vmap anyway)."""
    if len(names) == 1:
        return ACTIVATIONS[names[0]](z)
    outs = [ACTIVATIONS[n](z) for n in names]
    return jnp.select([act_id == i for i in range(len(names))], outs)
