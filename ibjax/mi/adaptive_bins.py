"""Adaptive binning of a layer (Chelombiev et al. 2019): bins that hold equal numbers of *distinct* values.

Per layer and logged epoch, the distinct values taken by any real unit on the MI sample are ranked; the
n_bins - 1 inner edges are the distinct values at ranks floor(j D / n_bins), j = 1 .. n_bins - 1 (D distinct
values), shared by every unit of the layer. A value's bin is the number of edges <= it. Unlike equal-mass bins
(quantile, per unit), a few heavily repeated values (a saturated tanh at +-1, a dead ReLU at 0) take one bin
each instead of many, so the bins follow the spread of the values rather than their mass; unlike uniform bins,
a layer whose values crowd into a small part of its range is still resolved.

References: Chelombiev, Houghton & O'Donnell (2019), Adaptive estimators show information compression in deep
neural networks. ICLR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from ibjax.mi.binning import layer_range, mi_from_bins
from ibjax.mi.compiled import compiled_when_eager
from ibjax.mi.interface import LayerContext, MIEstimate
from ibjax.mi.quantile_bins import sortable_bits

_PAD = np.uint32(0xFFFFFFFF)  # padded units' key: sorts after every real value (NaN included) and is not counted


def adaptive_bin_indices(acts_NxU: jnp.ndarray, n_bins: int, unit_mask_U=None) -> jnp.ndarray:
    """Per-layer equal-distinct-count bin index in [0, n_bins - 1] (int32) of every value [N, U]."""
    keys = sortable_bits(acts_NxU)
    if unit_mask_U is not None:
        keys = jnp.where(unit_mask_U[None, :], keys, _PAD)
    s = jnp.sort(keys.reshape(-1))
    first = jnp.concatenate([jnp.ones(1, bool), s[1:] != s[:-1]]) & (s != _PAD)
    rank1 = jnp.cumsum(first.astype(jnp.int32))  # 1-based rank of the distinct value at each sorted position
    n_distinct = rank1[-1]
    targets = jnp.arange(1, n_bins, dtype=jnp.int32) * n_distinct // n_bins  # 0-based ranks of the edges
    edges = s[jnp.clip(jnp.searchsorted(rank1, targets + 1, side="left"), 0, s.shape[0] - 1)]
    bins = jnp.sum(keys[:, None, :] >= edges[None, :, None], axis=1, dtype=jnp.int32)
    return bins if unit_mask_U is None else jnp.where(unit_mask_U[None, :], bins, 0)


@dataclass(frozen=True)
class AdaptiveBinning:
    """Equal-distinct-count bins per layer. The recorded lo, hi are the layer's min and max."""

    name: str = "adaptive30"
    n_bins: int = 30
    n_classes: int | None = None
    correction: str = "none"  # the entropies' bias correction: none, miller_madow, jackknife (entropy.py)
    needs_net_input: ClassVar[bool] = False
    batched_lapack: ClassVar[bool] = False
    needs_linear_map: ClassVar[bool] = False
    continuous_targets: ClassVar[bool] = False

    @compiled_when_eager
    def __call__(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        bins = adaptive_bin_indices(acts_NxU, self.n_bins, ctx.unit_mask_U)
        i_xt, i_ty = mi_from_bins(bins, labels_N, self.n_bins, self.n_classes, self.correction)
        lo, hi = layer_range(acts_NxU, ctx.unit_mask_U)
        return MIEstimate(i_xt, i_ty, lo, hi)
