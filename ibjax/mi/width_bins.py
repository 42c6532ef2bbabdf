"""Fixed-width binning with no range: bin = floor(a / width), as the ibsgd code of Saxe et al. (2018) bins
(width 0.07 on the 12-bit task, 0.5 on MNIST). Unbounded activations (ReLU) get ever more bins as they grow.

The bins are unbounded, so the mixed-radix base is found at run time: the per-layer smallest bin is shifted
to 0 and the base is the layer's number of occupied bin indices R. When R^U fits in 64 bits the key is exact;
otherwise the U bins are hashed (collision probability below N^2 / 2^64, as for wide layers elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp
from jax import lax

from ibjax.mi.compiled import compiled_when_eager
from ibjax.mi.entropy import hash_words, mi_from_codes
from ibjax.mi.interface import LayerContext, MIEstimate

# Bins beyond +-2^40 widths are clipped: only a diverging network gets there, and the clip keeps the int64
# arithmetic exact (NaN goes to bin 0, as in `bin_indices`).
_MAX_BIN = 2.0**40


def width_bin_indices(acts_NxU: jnp.ndarray, width: float) -> jnp.ndarray:
    """floor(a / width) in float64 arithmetic, as int64."""
    scaled = acts_NxU.astype(jnp.float64) / width
    scaled = jnp.where(jnp.isnan(scaled), 0.0, scaled)
    return jnp.clip(jnp.floor(scaled), -_MAX_BIN, _MAX_BIN).astype(jnp.int64)


UNROLL_UNITS = 64  # wider layers' keys are chained by a loop (ibjax.mi.entropy.UNROLL_WORDS says why)


def width_keys(bins_NxU: jnp.ndarray, unit_mask_U: jnp.ndarray) -> jnp.ndarray:
    """One uint64 key per row: exact mixed radix when it fits, a hash of the bins otherwise. [N, 1]."""
    n, u = bins_NxU.shape
    real = unit_mask_U[None, :]
    lo = jnp.min(jnp.where(real, bins_NxU, jnp.iinfo(jnp.int64).max))
    lo = jnp.where(jnp.any(unit_mask_U), lo, 0)
    bins = jnp.where(real, bins_NxU, lo)  # padded units: one constant digit, outside the base's range check
    shifted = (bins - lo).astype(jnp.uint64)
    radix = jnp.max(shifted) + jnp.uint64(1)
    exact = u * jnp.log2(radix.astype(jnp.float64)) <= 63.0  # leave a bit of margin for rounding of the log
    key = jnp.zeros(n, jnp.uint64)
    if u > UNROLL_UNITS:  # the same chain over the units, rolled: unrolled, a wide layer's is one huge kernel
        key = lax.scan(lambda key, b: (key * radix + b, None), key, shifted.T)[0]
    else:
        for j in range(u):
            key = key * radix + shifted[:, j]
    return jnp.where(exact, key, hash_words(shifted))[:, None]


@dataclass(frozen=True)
class FixedWidthBinning:
    """floor(a / width) per unit, no range (Saxe et al. 2018). Records the covered range [min, max + 1) * width."""

    name: str = "width0.07"
    width: float = 0.07
    n_classes: int | None = None
    correction: str = "none"  # the entropies' bias correction: none, miller_madow, jackknife (entropy.py)
    needs_net_input: ClassVar[bool] = False
    batched_lapack: ClassVar[bool] = False
    needs_linear_map: ClassVar[bool] = False
    continuous_targets: ClassVar[bool] = False

    @compiled_when_eager
    def __call__(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        bins = width_bin_indices(acts_NxU, self.width)
        i_xt, i_ty = mi_from_codes(width_keys(bins, ctx.unit_mask_U), labels_N, radix=None, n_classes=self.n_classes,
                                   correction=self.correction)
        real = ctx.unit_mask_U[None, :]
        lo = jnp.min(jnp.where(real, bins, jnp.iinfo(jnp.int64).max)).astype(jnp.float64) * self.width
        hi = (jnp.max(jnp.where(real, bins, jnp.iinfo(jnp.int64).min)) + 1).astype(jnp.float64) * self.width
        return MIEstimate(i_xt, i_ty, lo, hi)
