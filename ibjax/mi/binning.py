"""The binning estimator shared by every information-plane paper: discretize units, count distinct rows.

Bin index per unit: clip(floor((a - lo) / (hi - lo) * n_bins), 0, n_bins - 1). A row's symbol is its tuple of
bin indices. With X uniform over the N samples and a deterministic network, I(X;T) = H(T) and
I(T;Y) = H(T) + H(Y) - H(T, Y). All in bits.

Symbols are packed exactly (mixed radix n_bins) into as few uint64 words as needed, so no two distinct rows
can collide, then counted by one sort (see entropy.py).

References: Shwartz-Ziv & Tishby 2017 (IDNNs); Saxe et al. 2018; Lorenzen et al. 2022.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ibjax.mi.compiled import compiled_when_eager
from ibjax.mi.entropy import UNROLL_WORDS, mi_from_codes
from ibjax.mi.interface import LayerContext, MIEstimate


def units_per_word(n_bins: int) -> int:
    """How many base-n_bins digits fit in one uint64 without overflow."""
    k = 1
    while n_bins ** (k + 1) <= 2**64:
        k += 1
    return k


def bin_indices(acts_NxU: jnp.ndarray, n_bins: int, lo, hi) -> jnp.ndarray:
    """Per-unit bin index in [0, n_bins - 1] (int32)."""
    scaled = (acts_NxU.astype(jnp.float64) - lo) / (hi - lo) * n_bins
    # floor of NaN (a diverged network) is undefined as an integer; send it to bin 0 instead.
    scaled = jnp.where(jnp.isnan(scaled), 0.0, scaled)
    return jnp.clip(jnp.floor(scaled), 0, n_bins - 1).astype(jnp.int32)


def pack_symbols(bins_NxU: jnp.ndarray, n_bins: int) -> jnp.ndarray:
    """Exact mixed-radix packing of each row's bin tuple into K = ceil(U / units_per_word) uint64 words."""
    n, u = bins_NxU.shape
    per = units_per_word(n_bins)
    bins = bins_NxU.astype(jnp.uint64)
    if u > UNROLL_WORDS * per:
        # A wide layer: Horner's rule on all words at once ([N, K, per], the last word's missing units 0 at its
        # highest digits, which leaves its value unchanged). Unit by unit, a conv layer's 5 408 units were one
        # chain of ~11 000 operations: 9.8 s of XLA compile (0.1 s this way, and faster: 0.39 against 1.1 ms).
        k = -(-u // per)
        bins = jnp.pad(bins, ((0, 0), (0, k * per - u))).reshape(n, k, per)
        word = jnp.zeros((n, k), jnp.uint64)
        for j in reversed(range(per)):
            word = word * jnp.uint64(n_bins) + bins[:, :, j]
        return word
    words = []
    for start in range(0, max(u, 1), per):
        # Horner's rule over the word's units, sum_j bins[:, start + j] * n_bins**j: one elementwise chain
        # that XLA fuses with the binning into a single pass (a padded multiply-and-reduce was ~5x slower).
        word = jnp.zeros(n, jnp.uint64)
        for j in reversed(range(start, min(start + per, u))):
            word = word * jnp.uint64(n_bins) + bins[:, j]
        words.append(word)
    return jnp.stack(words, axis=1)


def mi_from_bins(bins_NxU: jnp.ndarray, labels_N: jnp.ndarray, n_bins: int,
                 n_classes: int | None = None, correction: str = "none") -> tuple[jnp.ndarray, jnp.ndarray]:
    """(I(X;T), I(T;Y)) in bits from per-unit bin indices.

    labels_N: integers in [0, n_classes); n_classes (static) defaults to N, always a valid bound.
    """
    codes = pack_symbols(bins_NxU, n_bins)
    radix = n_bins ** bins_NxU.shape[1] if codes.shape[1] == 1 else None
    return mi_from_codes(codes, labels_N, radix=radix, n_classes=n_classes, correction=correction)


@functools.partial(jax.jit, static_argnames=("n_bins", "n_classes"))
def binning_mi(acts, labels, *, n_bins: int = 30, lo=-1.0, hi=1.0,
               n_classes: int | None = None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Binning estimate of (I(X;T), I(T;Y)) in bits for plain arrays acts [N, U] and labels [N].

    jit- and vmap-compatible; `n_bins` and `n_classes` (a bound on the integer labels, default N) are static,
    `lo`/`hi` may be traced. Passing the true class count lets symbol and label share one exact 64-bit key.
    Compiled as one program per shape (ibjax.mi.compiled says why).
    """
    acts = jnp.asarray(acts)
    if acts.ndim == 1:
        acts = acts[:, None]
    return mi_from_bins(bin_indices(acts, n_bins, lo, hi), jnp.asarray(labels), n_bins, n_classes)


def layer_range(acts_NxU: jnp.ndarray, unit_mask_U: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Min and max over the real units of the layer (float64); a constant layer gets a tiny non-empty range."""
    # In the activations' own dtype: min and max are exact in any precision, and a float32 pass is half the
    # memory traffic of a float64 one (this runs on every layer at every logged epoch). Per unit first, then
    # over the real units: the same numbers, 3.5x faster on XLA's CPU backend than masking every row (12 vs
    # 42 ms for 5 layers of 128 models x 4096 rows; BUILD_NOTES.md, issue 6).
    lo = jnp.min(jnp.where(unit_mask_U, jnp.min(acts_NxU, axis=0), jnp.inf)).astype(jnp.float64)
    hi = jnp.max(jnp.where(unit_mask_U, jnp.max(acts_NxU, axis=0), -jnp.inf)).astype(jnp.float64)
    lo = jnp.where(jnp.isfinite(lo), lo, 0.0)
    hi = jnp.where(jnp.isfinite(hi), hi, 0.0)
    return lo, jnp.maximum(hi, lo + 1e-12)


def neuron_range(acts_NxU: jnp.ndarray, unit_mask_U: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Each unit's min and max over the rows (float64, [U]); a constant unit gets a tiny non-empty range.
    Padded units (all 0) get [0, 1e-12]: one bin, as a constant unit should."""
    lo = jnp.min(acts_NxU, axis=0).astype(jnp.float64)
    hi = jnp.max(acts_NxU, axis=0).astype(jnp.float64)
    lo = jnp.where(unit_mask_U & jnp.isfinite(lo), lo, 0.0)
    hi = jnp.where(unit_mask_U & jnp.isfinite(hi), hi, 0.0)
    return lo, jnp.maximum(hi, lo + 1e-12)


@dataclass(frozen=True)
class Binning:
    """Fixed-count binning of each unit over a range.

    range_mode:
      "auto"   — the activation's natural range where it is bounded ([-1, 1] tanh/softsign, [0, 1] sigmoid and
                 softmax), else the layer's own min/max at that epoch;
      "layer"  — always the layer's own min/max at that epoch (Lorenzen et al.'s per-layer bounds);
      "neuron" — each unit's own min/max at that epoch (Lorenzen et al.'s per-neuron bounds); the recorded
                 lo, hi are the smallest and largest of them;
      "fixed"  — [lo, hi] for every layer (IDNNs uses [-1, 1] whatever the activation).
    """

    name: str = "binning30"
    n_bins: int = 30
    range_mode: str = "auto"
    lo: float = -1.0
    hi: float = 1.0
    n_classes: int | None = None  # static bound on labels; the engine fills in the task's class count
    correction: str = "none"  # the entropies' bias correction: none, miller_madow, jackknife (entropy.py)
    needs_net_input: ClassVar[bool] = False
    batched_lapack: ClassVar[bool] = False
    needs_linear_map: ClassVar[bool] = False
    continuous_targets: ClassVar[bool] = False

    @compiled_when_eager
    def __call__(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        if self.range_mode == "fixed":
            lo, hi = jnp.float64(self.lo), jnp.float64(self.hi)
        elif self.range_mode == "neuron":
            lo_u, hi_u = neuron_range(acts_NxU, ctx.unit_mask_U)
            i_xt, i_ty = mi_from_bins(bin_indices(acts_NxU, self.n_bins, lo_u, hi_u), labels_N, self.n_bins,
                                      self.n_classes, self.correction)
            real = ctx.unit_mask_U
            return MIEstimate(i_xt, i_ty, jnp.min(jnp.where(real, lo_u, jnp.inf)),
                              jnp.max(jnp.where(real, hi_u, -jnp.inf)))
        elif self.range_mode == "auto" and ctx.bounded is True:  # known bounded for all models: no min/max pass
            lo, hi = ctx.natural_lo.astype(jnp.float64), ctx.natural_hi.astype(jnp.float64)
        else:
            l_lo, l_hi = layer_range(acts_NxU, ctx.unit_mask_U)
            if self.range_mode == "layer":
                lo, hi = l_lo, l_hi
            else:
                lo = jnp.where(ctx.bounded, ctx.natural_lo, l_lo)
                hi = jnp.where(ctx.bounded, ctx.natural_hi, l_hi)
        i_xt, i_ty = mi_from_bins(bin_indices(acts_NxU, self.n_bins, lo, hi), labels_N, self.n_bins, self.n_classes,
                                  self.correction)
        return MIEstimate(i_xt, i_ty, lo, hi)


def idnns_bin_indices(acts_NxU: jnp.ndarray, n_edges: int, lo: float, hi: float) -> jnp.ndarray:
    """IDNNs' discretisation: `bins[np.digitize(a, bins) - 1]` with `bins = linspace(lo, hi, n_edges)`.

    Each value becomes the left edge of its interval; values >= hi and (through NumPy's index -1 wrapping)
    values < lo and NaN all become the last edge. Returned as the edge index in [0, n_edges - 1] (int32).
    """
    edges = jnp.asarray(np.linspace(lo, hi, n_edges), jnp.float64)
    a = acts_NxU.astype(jnp.float64)
    # np.digitize(a, edges) (right=False) = the number of edges <= a. A guess from the edge spacing is off by
    # at most one near an edge (rounding), so it is corrected by comparing with the edges beside it: two
    # comparisons instead of n_edges (this runs on every layer at every logged epoch).
    step = (hi - lo) / (n_edges - 1)
    guess = jnp.clip(jnp.floor((a - lo) / step) + 1, 0, n_edges)
    guess = jnp.where(jnp.isnan(a), 0, guess).astype(jnp.int32)
    up = (guess < n_edges) & (a >= edges[jnp.minimum(guess, n_edges - 1)])
    down = (guess > 0) & (a < edges[jnp.maximum(guess - 1, 0)])
    d = guess + up.astype(jnp.int32) - down.astype(jnp.int32)
    return jnp.where(d == 0, n_edges - 1, d - 1).astype(jnp.int32)


@dataclass(frozen=True)
class IdnnsBinning:
    """Exactly the binning of the public IDNNs code (Shwartz-Ziv & Tishby 2017): `n_edges` edges
    `linspace(lo, hi, n_edges)` (default 30 edges on [-1, 1]) whatever the activation, so ReLU values above 1
    share one bin and values below -1 wrap into it too (docs/reference.md, section 3.1)."""

    name: str = "idnns30"
    n_edges: int = 30
    lo: float = -1.0
    hi: float = 1.0
    n_classes: int | None = None
    correction: str = "none"  # the entropies' bias correction: none, miller_madow, jackknife (entropy.py)
    needs_net_input: ClassVar[bool] = False
    batched_lapack: ClassVar[bool] = False
    needs_linear_map: ClassVar[bool] = False
    continuous_targets: ClassVar[bool] = False

    @compiled_when_eager
    def __call__(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        bins = idnns_bin_indices(acts_NxU, self.n_edges, self.lo, self.hi)
        i_xt, i_ty = mi_from_bins(bins, labels_N, self.n_edges, self.n_classes, self.correction)
        return MIEstimate(i_xt, i_ty, jnp.float64(self.lo), jnp.float64(self.hi))
