"""Equal-mass (quantile) binning per unit, Lorenzen et al.'s "adaptive" bins.

Each unit's n_bins - 1 inner edges are its own order statistics at ranks floor(k N / n_bins), k = 1..n_bins-1,
over the N rows at that epoch; a value's bin is the number of edges <= it (`np.searchsorted(..., 'right')`),
so equal values always share a bin and each bin holds about N / n_bins rows unless values tie.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ibjax.mi.binning import mi_from_bins
from ibjax.mi.interface import LayerContext, MIEstimate


def quantile_bin_indices(acts_NxU: jnp.ndarray, n_bins: int) -> jnp.ndarray:
    """Per-unit equal-mass bin index in [0, n_bins - 1] (int32). NaN rows sort last and share the top bin."""
    n = acts_NxU.shape[0]
    ranks = np.arange(1, n_bins) * n // n_bins
    sorted_NxU = jnp.sort(acts_NxU, axis=0)
    edges_KxU = sorted_NxU[ranks]
    per_unit = jax.vmap(lambda e, a: jnp.searchsorted(e, a, side="right"), in_axes=(1, 1), out_axes=1)
    return per_unit(edges_KxU, acts_NxU).astype(jnp.int32)


@dataclass(frozen=True)
class QuantileBinning:
    """Equal-mass bins per unit. The recorded lo, hi are the layer's min and max (the bins' outer limits)."""

    name: str = "quantile30"
    n_bins: int = 30
    n_classes: int | None = None

    def __call__(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        bins = quantile_bin_indices(acts_NxU, self.n_bins)
        i_xt, i_ty = mi_from_bins(bins, labels_N, self.n_bins, self.n_classes)
        real = ctx.unit_mask_U[None, :]
        lo = jnp.min(jnp.where(real, acts_NxU, jnp.inf)).astype(jnp.float64)
        hi = jnp.max(jnp.where(real, acts_NxU, -jnp.inf)).astype(jnp.float64)
        return MIEstimate(i_xt, i_ty, lo, hi)
