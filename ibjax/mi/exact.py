"""Exact MI of a discrete layer: every distinct row of float32 values is its own symbol (no bins).

For a quantized network (Lorenzen et al. 2022: activations on 2^b levels) the layer is a deterministic,
discrete function of X, so I(X;T) = H(T) and I(T;Y) = H(T) - H(T|Y) are exact: this is their
`QuantizedEstimator` without the round-trip through level indices. On a continuous layer it counts nearly
every row as distinct (I(X;T) close to log2 N): the ceiling that binning estimates sit under.

Each value's bit pattern is the digit (-0.0 is read as 0.0, every NaN as one NaN); two 32-bit digits per
uint64 word. One word (up to 2 units) is exact; wider rows are hashed to 64 bits, as elsewhere (collision
probability below N^2 / 2^64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp
from jax import lax

from ibjax.mi.binning import layer_range
from ibjax.mi.compiled import compiled_when_eager
from ibjax.mi.entropy import mi_from_codes
from ibjax.mi.interface import LayerContext, MIEstimate


def float_row_codes(acts_NxU: jnp.ndarray) -> jnp.ndarray:
    """[N, ceil(U / 2)] uint64 words holding the rows' float32 bit patterns exactly."""
    a = acts_NxU.astype(jnp.float32)
    a = jnp.where(a == 0, jnp.float32(0.0), a)  # -0.0 == 0.0
    a = jnp.where(jnp.isnan(a), jnp.float32(jnp.nan), a)
    bits = lax.bitcast_convert_type(a, jnp.uint32).astype(jnp.uint64)
    n, u = bits.shape
    if u % 2:
        bits = jnp.concatenate([bits, jnp.zeros((n, 1), jnp.uint64)], axis=1)
    pairs = bits.reshape(n, -1, 2)
    return (pairs[..., 0] << jnp.uint64(32)) | pairs[..., 1]


@dataclass(frozen=True)
class ExactCounting:
    """Distinct float32 rows as symbols (see module doc). Records the layer's min and max as lo, hi."""

    name: str = "exact"
    n_classes: int | None = None
    correction: str = "none"  # the entropies' bias correction: none, miller_madow, jackknife (entropy.py)
    needs_net_input: ClassVar[bool] = False
    batched_lapack: ClassVar[bool] = False
    needs_linear_map: ClassVar[bool] = False
    continuous_targets: ClassVar[bool] = False

    @compiled_when_eager
    def __call__(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        acts = jnp.where(ctx.unit_mask_U[None, :], acts_NxU, 0.0)
        i_xt, i_ty = mi_from_codes(float_row_codes(acts), labels_N, radix=None, n_classes=self.n_classes,
                                   correction=self.correction)
        lo, hi = layer_range(acts_NxU, ctx.unit_mask_U)
        return MIEstimate(i_xt, i_ty, lo, hi)
