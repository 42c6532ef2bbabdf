"""Equal-mass (quantile) binning per unit, Lorenzen et al.'s "adaptive" bins.

Each unit's n_bins - 1 inner edges are its own order statistics at ranks floor(k N / n_bins), k = 1..n_bins-1,
over the N rows at that epoch; a value's bin is the number of edges <= it (`np.searchsorted(..., 'right')`),
so equal values always share a bin and each bin holds about N / n_bins rows unless values tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
from jax import lax

from ibjax.mi.binning import layer_range, mi_from_bins
from ibjax.mi.compiled import compiled_when_eager
from ibjax.mi.interface import LayerContext, MIEstimate


def sortable_bits(acts: jnp.ndarray) -> jnp.ndarray:
    """uint32 keys ordered exactly as the float32 values (-0.0 read as 0.0; NaN after +inf, as np.sort puts it).

    Why: XLA's CPU sort is ~20x slower on floats than on integers (a float comparator with total order)."""
    a = acts.astype(jnp.float32)
    a = jnp.where(a == 0, jnp.float32(0.0), a)
    bits = lax.bitcast_convert_type(a, jnp.uint32)
    negative = (bits >> jnp.uint32(31)) == 1
    return jnp.where(negative, ~bits, bits | jnp.uint32(0x80000000))


def quantile_bin_indices(acts_NxU: jnp.ndarray, n_bins: int) -> jnp.ndarray:
    """Per-unit equal-mass bin index in [0, n_bins - 1] (int32). NaN rows sort last and share the top bin."""
    n = acts_NxU.shape[0]
    ranks = np.arange(1, n_bins) * n // n_bins
    keys_NxU = sortable_bits(acts_NxU)
    edges_KxU = jnp.sort(keys_NxU, axis=0)[ranks]
    # The bin is the number of edges <= the value (searchsorted 'right'): n_bins - 1 comparisons per value.
    return jnp.sum(keys_NxU[:, None, :] >= edges_KxU[None, :, :], axis=1, dtype=jnp.int32)


@dataclass(frozen=True)
class QuantileBinning:
    """Equal-mass bins per unit. The recorded lo, hi are the layer's min and max (the bins' outer limits)."""

    name: str = "quantile30"
    n_bins: int = 30
    n_classes: int | None = None
    correction: str = "none"  # the entropies' bias correction: none, miller_madow, jackknife (entropy.py)
    needs_net_input: ClassVar[bool] = False
    batched_lapack: ClassVar[bool] = False
    needs_linear_map: ClassVar[bool] = False
    continuous_targets: ClassVar[bool] = False

    @compiled_when_eager
    def __call__(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        bins = quantile_bin_indices(acts_NxU, self.n_bins)
        i_xt, i_ty = mi_from_bins(bins, labels_N, self.n_bins, self.n_classes, self.correction)
        lo, hi = layer_range(acts_NxU, ctx.unit_mask_U)
        return MIEstimate(i_xt, i_ty, lo, hi)
