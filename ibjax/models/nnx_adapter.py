"""A Flax NNX module as pure functions of a parameter pytree, so that the engine can vmap and scan it.

`nnx.split` separates a module into its static graph definition and its state; the parameters become a plain
nested dict of arrays (`nnx.to_pure_dict`), which the engine stacks on a leading model axis, differentiates and
checkpoints like any other pytree. Each call merges them back into a module (a trace-time operation: nothing of it
is left in the compiled program but the module's own arithmetic).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from flax import nnx

from ibjax.models.family import ModelError
from ibjax.threefry import flat_counter_key


class NNXNetwork:
    """The module `make(rngs)` builds, split once into its graph and the shape of its parameters.

    Only parameters are state: a module that holds other state (BatchNorm's running statistics, an
    `nnx.Dropout(rngs=...)`'s key counter) would need that state threaded through training, which the engine does
    not do; it is refused with a message that says what to change."""

    def __init__(self, make: Callable[[nnx.Rngs], nnx.Module], label: str):
        self.make, self.label = make, label
        try:
            abstract = nnx.eval_shape(lambda: make(nnx.Rngs(0)))
        except ModelError:
            raise
        except Exception as e:
            raise ModelError(f"{label}: constructing the module failed: {type(e).__name__}: {e}") from None
        if not isinstance(abstract, nnx.Module):
            raise ModelError(f"{label}: expected a flax.nnx.Module, got {type(abstract).__name__}")
        self.graphdef, self.abstract_params, rest = nnx.split(abstract, nnx.Param, ...)
        other = sorted({type(v).__name__ for v in jax.tree.leaves(rest, is_leaf=lambda v: isinstance(v, nnx.Variable))})
        if other:
            raise ModelError(
                f"{label}: the module holds state other than parameters ({', '.join(other)}); ibjax trains "
                f"parameters only. Create nnx.Dropout without rngs and take `rngs` as a keyword of __call__ "
                f"(ibjax passes one in training); use LayerNorm instead of BatchNorm.")
        if not jax.tree.leaves(self.abstract_params):
            raise ModelError(f"{label}: the module has no nnx.Param to train")

    def init(self, key) -> dict:
        """One network's parameters, drawn from `key` (the module's own initialisers), as a nested dict. The key's
        bits are hashed over a flat counter (ibjax.threefry): the same parameters from a smaller program."""
        return nnx.to_pure_dict(nnx.state(self.make(nnx.Rngs(flat_counter_key(key))), nnx.Param))

    def module(self, params: dict) -> nnx.Module:
        """The module with these parameters (traced arrays inside the engine)."""
        state = jax.tree.map(lambda a: a, self.abstract_params)
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(self.graphdef, state)
