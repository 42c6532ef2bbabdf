"""KDE bounds on the MI of a layer with additive Gaussian noise (Kolchinsky & Tracey 2017; Saxe et al. 2018).

T = h(X) + N(0, sigma^2 I), X uniform over the N rows. T is then a mixture of N Gaussians, whose entropy is
bounded above by the pairwise-KL estimate and below by the pairwise-Bhattacharyya one; H(T|X) is the noise
entropy, which cancels. In nats, with D_ij = ||h_i - h_j||^2:

    I(X;T) upper = -mean_i log( (1/N) sum_j exp(-D_ij / (2 sigma^2)) )
    I(X;T) lower = the same with 8 sigma^2 in place of 2 sigma^2
    I(T;Y)       = that estimate of H(T) minus sum_y p(y) times the same estimate within class y

which is what ibsgd's `kde.py` computes (its d/2 and log(2 pi sigma^2) terms cancel; `tests/mi/test_estimators.py`
checks against a NumPy port of it). As there, I(T;Y) is a difference of two bounds, not itself a bound.
Reported in bits. sigma^2 = 1e-3 for the 12-bit task and 0.1 for MNIST in ibsgd.

Cost O(N^2 U) per layer: rows are processed in blocks of KDE_BLOCK, so memory is O(KDE_BLOCK * N) per network;
`max_samples` caps N with a fixed, evenly spaced subset of rows (the same at every epoch and for every network).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ibjax.mi.compiled import compiled_when_eager
from ibjax.mi.interface import LayerContext, MIEstimate
from ibjax.threefry import flat_counter_key

KDE_BLOCK = 32
_LN2 = float(np.log(2.0))


def sample_rows(n: int, max_samples: int | None) -> np.ndarray:
    """The rows a capped O(N^2) estimator uses: all N, or a fixed evenly spaced subset of max_samples."""
    if max_samples is None or max_samples >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_samples).round().astype(np.int32))


# Up to this many units the squared distances are summed by an unrolled loop (one fused elementwise pass per
# unit); wider layers (a 1 024-unit MNIST layer) scan over chunks of UNIT_CHUNK units instead, so the program
# neither unrolls a thousand operations nor loses the unit-by-unit summation (no |a|^2 + |b|^2 - 2ab).
UNROLL_UNITS, UNIT_CHUNK = 64, 32


def pairwise_sq_dists(q_BxU: jnp.ndarray, a_NxU: jnp.ndarray) -> jnp.ndarray:
    """|q_b - a_n|^2 [B, N], summed unit by unit (memory O(B N UNIT_CHUNK) for wide layers)."""
    b, u = q_BxU.shape
    n = a_NxU.shape[0]
    if u <= UNROLL_UNITS:
        d_BxN = jnp.zeros((b, n), jnp.float32)
        for k in range(u):
            diff = q_BxU[:, k, None] - a_NxU[None, :, k]
            d_BxN = d_BxN + diff * diff
        return d_BxN
    n_chunks = -(-u // UNIT_CHUNK)
    pad = n_chunks * UNIT_CHUNK - u  # zero units on both sides add nothing to a distance
    q = jnp.pad(q_BxU, ((0, 0), (0, pad))).reshape(b, n_chunks, UNIT_CHUNK).transpose(1, 0, 2)
    a = jnp.pad(a_NxU, ((0, 0), (0, pad))).reshape(n, n_chunks, UNIT_CHUNK).transpose(1, 0, 2)

    def add_chunk(d_BxN, qa):
        diff = qa[0][:, None, :] - qa[1][None, :, :]
        return d_BxN + jnp.sum(diff * diff, axis=-1), None

    return lax.scan(add_chunk, jnp.zeros((b, n), jnp.float32), (q, a))[0]


def kde_log_mixture(acts_NxU: jnp.ndarray, labels_N: jnp.ndarray, two_var: float, queries_NxU=None):
    """Per row i: log-sum-exp over all rows j, and over rows of i's class, of -D_ij / two_var; and the size of
    i's class. D_ij = |q_i - h_j|^2 with the queries q = the rows themselves unless `queries_NxU` is given.
    Squared distances are summed unit by unit (no |a|^2 + |b|^2 - 2ab cancellation)."""
    n, u = acts_NxU.shape
    a = acts_NxU.astype(jnp.float32)
    q = a if queries_NxU is None else queries_NxU.astype(jnp.float32)
    n_blocks = -(-n // KDE_BLOCK)
    pad = n_blocks * KDE_BLOCK - n
    rows = jnp.concatenate([jnp.arange(n), jnp.zeros(pad, jnp.int32)]).reshape(n_blocks, KDE_BLOCK)

    def block(idx_B):
        a_B, y_B = q[idx_B], labels_N[idx_B]
        d_BxN = pairwise_sq_dists(a_B, a)
        logits = -d_BxN / two_var
        same = y_B[:, None] == labels_N[None, :]
        lse_all = jax.nn.logsumexp(logits, axis=1)
        lse_cls = jax.nn.logsumexp(jnp.where(same, logits, -jnp.inf), axis=1)
        return lse_all, lse_cls, jnp.sum(same, axis=1)

    lse_all, lse_cls, n_cls = lax.map(block, rows)
    flat = lambda v: v.reshape(-1)[:n]
    return flat(lse_all), flat(lse_cls), flat(n_cls)


def kde_mi(acts_NxU: jnp.ndarray, labels_N: jnp.ndarray, noise_var: float, bound: str = "upper"):
    """(I(X;T), I(T;Y)) in bits under the upper ("upper", pairwise KL) or lower ("lower", Bhattacharyya)
    bound for noise variance `noise_var`."""
    n = acts_NxU.shape[0]
    two_var = 2.0 * noise_var * (4.0 if bound == "lower" else 1.0)
    lse_all, lse_cls, n_cls = kde_log_mixture(acts_NxU, labels_N, two_var)
    h_t = jnp.log(n) - jnp.mean(lse_all.astype(jnp.float64))  # (up to constants that cancel)
    h_t_given_y = jnp.mean(jnp.log(n_cls.astype(jnp.float64)) - lse_cls.astype(jnp.float64))
    return h_t / _LN2, (h_t - h_t_given_y) / _LN2


# Leave-one-out bandwidth: candidate variances, as multiples of the layer's mean per-unit variance (log-spaced;
# the smallest resolves points 1e-3 standard deviations apart, the largest smooths the layer into one bump).
LOO_GRID = tuple(float(v) for v in np.logspace(-6, 1, 29))


def loo_log_likelihoods(acts_NxU: jnp.ndarray, dims, variances_G: jnp.ndarray) -> jnp.ndarray:
    """Mean leave-one-out log density [G] of the rows under a Gaussian KDE of each variance in `variances_G`:
    mean_i log( 1/(N-1) sum_{j != i} N(h_i; h_j, v I_dims) ). Blocked like `kde_log_mixture` (O(KDE_BLOCK N)
    memory); the G variances share each block's distances."""
    n, u = acts_NxU.shape
    a = acts_NxU.astype(jnp.float32)
    n_blocks = -(-n // KDE_BLOCK)
    pad = n_blocks * KDE_BLOCK - n
    rows = jnp.concatenate([jnp.arange(n), jnp.zeros(pad, jnp.int32)]).reshape(n_blocks, KDE_BLOCK)
    v = variances_G.astype(jnp.float32)

    def block(idx_B):
        d_BxN = pairwise_sq_dists(a[idx_B], a)
        self_ = idx_B[:, None] == jnp.arange(n)[None, :]
        logits = jnp.where(self_[None], -jnp.inf, -d_BxN[None] / (2.0 * v[:, None, None]))  # [G, B, N]
        return jax.nn.logsumexp(logits, axis=2).T  # [B, G]

    lse = lax.map(block, rows).reshape(-1, v.shape[0])[:n].astype(jnp.float64)
    dims = jnp.asarray(dims, jnp.float64)
    return (jnp.mean(lse, axis=0) - jnp.log(n - 1.0)
            - dims / 2.0 * jnp.log(2.0 * np.pi * variances_G.astype(jnp.float64)))


def loo_bandwidth(acts_NxU: jnp.ndarray, unit_mask_U: jnp.ndarray) -> jnp.ndarray:
    """The KDE variance (from LOO_GRID times the layer's mean per-unit variance) of largest leave-one-out
    likelihood. Duplicated rows (a saturated layer) pull it to the smallest candidate: their density is
    unbounded."""
    dims = jnp.maximum(jnp.sum(unit_mask_U), 1)
    scale = jnp.sum(jnp.var(acts_NxU.astype(jnp.float64), axis=0)) / dims
    scale = jnp.where(scale > 0, scale, 1.0)
    cands = scale * jnp.asarray(LOO_GRID)
    return cands[jnp.argmax(loo_log_likelihoods(acts_NxU, dims, cands))]


@dataclass(frozen=True)
class KDEBound:
    """Upper or lower KDE bound for additive Gaussian noise of variance `noise_var` (see module doc);
    `noise_var` None: the variance is fitted to each layer at each logged epoch by leave-one-out likelihood
    (`loo_bandwidth`), and recorded as the estimate's `hi` (lo = hi: a single value)."""

    name: str = "kde_upper"
    bound: str = "upper"
    noise_var: float | None = 1e-3
    max_samples: int | None = None
    n_classes: int | None = None  # unused (labels are compared, not counted); kept for a uniform signature
    needs_net_input: ClassVar[bool] = False
    batched_lapack: ClassVar[bool] = False
    needs_linear_map: ClassVar[bool] = False
    continuous_targets: ClassVar[bool] = False

    @compiled_when_eager
    def __call__(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        n = acts_NxU.shape[0]
        acts = jnp.where(ctx.unit_mask_U[None, :], acts_NxU, 0.0)  # padded units: no distance
        keep = sample_rows(n, self.max_samples)
        acts, labels_N = acts[keep], labels_N[keep]
        if self.noise_var is None:
            var = loo_bandwidth(acts, ctx.unit_mask_U)
            i_xt, i_ty = kde_mi(acts, labels_N, var, self.bound)
            return MIEstimate(i_xt, i_ty, var, var)
        i_xt, i_ty = kde_mi(acts, labels_N, self.noise_var, self.bound)
        return MIEstimate(i_xt, i_ty, jnp.float64(jnp.nan), jnp.float64(jnp.nan))


def noisy_layer_mi(centers_NxU: jnp.ndarray, labels_N: jnp.ndarray, unit_mask_U: jnp.ndarray, noise_var: float,
                   key, draws_KxNxU: jnp.ndarray | None = None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Monte Carlo (I(X;T), I(T;Y)) in bits of T = S + N(0, noise_var I), X uniform over the N rows, where S
    given X = x is centre_x (deterministic) or, with `draws_KxNxU`, the empirical law of K draws of S given x.

    One noise draw per row, t_i = c_i + e_i; log p(t_i) is the exact log density of the Gaussian mixture, so
    -mean_i log p(t_i) estimates H(T) without bias. H(T|X = x) is the noise entropy (d/2) log(2 pi e s^2), d the
    real units, when S is deterministic given x; with K draws it is estimated the same way from the K-component
    mixture of x (Goldfeld et al. 2019's sample propagation). I(T;Y) from the class-conditional mixtures.
    """
    n = centers_NxU.shape[0]
    noise = jax.random.normal(flat_counter_key(key), centers_NxU.shape, jnp.float32) * jnp.sqrt(jnp.float32(noise_var))
    queries = centers_NxU + noise * unit_mask_U[None, :]
    lse_all, lse_cls, n_cls = kde_log_mixture(centers_NxU, labels_N, 2.0 * noise_var, queries)
    h_rel = jnp.log(n) - jnp.mean(lse_all.astype(jnp.float64))  # H(T) - (d/2) log(2 pi s^2)
    if draws_KxNxU is None:
        h_rel_given_x = jnp.sum(unit_mask_U).astype(jnp.float64) / 2.0  # the noise entropy, same offset
    else:
        k = draws_KxNxU.shape[0]
        real = unit_mask_U[None, None, :]
        d_KxN = jnp.sum(jnp.where(real, queries[None] - draws_KxNxU, 0.0) ** 2, axis=-1)
        lse_x = jax.nn.logsumexp(-d_KxN / (2.0 * noise_var), axis=0)
        h_rel_given_x = jnp.log(k) - jnp.mean(lse_x.astype(jnp.float64))
    h_rel_given_y = jnp.mean(jnp.log(n_cls.astype(jnp.float64)) - lse_cls.astype(jnp.float64))
    return (h_rel - h_rel_given_x) / _LN2, (h_rel - h_rel_given_y) / _LN2


@dataclass(frozen=True)
class NoisyMixture:
    """MI of the noisy layer of a stochastic network (model.noise_std = sqrt(noise_var)): the layer's values
    before its own noise are the mixture's centres (see `noisy_layer_mi`). The engine passes K draws of them
    given X (`LayerContext.draws_KxNxU`, K = train.measure.NOISE_DRAWS) for the upstream noise: H(T|X) of deeper
    layers is estimated from them; without draws S is taken as deterministic given X.

    `seed` fixes this estimator's own noise draws (the same at every epoch, so curves are not jittered)."""

    name: str = "noisy"
    noise_var: float | None = 1e-2  # the network's noise_std^2; None for a deterministic network (gives NaN)
    max_samples: int | None = None
    seed: int = 0
    n_classes: int | None = None
    needs_net_input: ClassVar[bool] = False
    batched_lapack: ClassVar[bool] = False
    needs_linear_map: ClassVar[bool] = False
    continuous_targets: ClassVar[bool] = False

    @compiled_when_eager
    def __call__(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        nan = jnp.float64(jnp.nan)
        if self.noise_var is None:  # a deterministic network: this estimator has nothing to measure
            return MIEstimate(nan, nan, nan, nan)
        n = acts_NxU.shape[0]
        acts = jnp.where(ctx.unit_mask_U[None, :], acts_NxU, 0.0)
        keep = sample_rows(n, self.max_samples)
        acts, labels_N = acts[keep], labels_N[keep]
        draws = None if ctx.draws_KxNxU is None else ctx.draws_KxNxU[:, keep]
        i_xt, i_ty = noisy_layer_mi(acts, labels_N, ctx.unit_mask_U, self.noise_var, jax.random.PRNGKey(self.seed),
                                    draws)
        return MIEstimate(i_xt, i_ty, nan, nan)
