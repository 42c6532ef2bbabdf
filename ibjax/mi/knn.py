"""k-nearest-neighbour estimators of continuous entropy and MI (in nats here; the estimator reports bits).

- Kozachenko-Leonenko (KL) differential entropy of N points in d dimensions, Euclidean distances:

      h = psi(N) - psi(k) + log V_d + (d / N) sum_i log eps_i

  eps_i the distance from point i to its k-th nearest neighbour, V_d the volume of the unit d-ball.
- I(T;Y) for discrete Y: h(T) - sum_y p(y) h(T | Y = y), each term a KL estimate (the class-conditional one
  over the class's own points, with N_y in place of N).
- KSG (Kraskov, Stoegbauer & Grassberger 2004, algorithm 1) for I(X;T) of two continuous variables, max-norm:

      I = psi(k) + psi(N) - mean_i [psi(n_x(i) + 1) + psi(n_t(i) + 1)]

  eps_i the max-norm distance to i's k-th neighbour in the joint space, n_x(i) (n_t(i)) the number of points
  strictly closer than eps_i in the X (T) space alone.

Pairwise distances are computed in blocks of KNN_BLOCK query rows against all N rows (memory O(KNN_BLOCK * N),
never N x N); the k-th nearest is found by k passes of argmin per block (`kth_smallest`). Ties and duplicate points: a zero distance gives
log 0; distances are floored at a tiny positive value (duplicates are what a saturated, collapsed layer makes, and
the estimate then goes very negative rather than NaN).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import digamma, gammaln

from ibjax.mi.compiled import compiled_when_eager
from ibjax.mi.compress import pca
from ibjax.mi.entropy import require_x64
from ibjax.mi.interface import LayerContext, MIEstimate
from ibjax.mi.kde import sample_rows
from ibjax.threefry import flat_counter_key

KNN_BLOCK = 64
_TINY = 1e-30
_LN2 = float(np.log(2.0))


def _blocks(n: int) -> jnp.ndarray:
    """Row indices [n_blocks, KNN_BLOCK], the last block padded with row 0 (its results are dropped)."""
    n_blocks = -(-n // KNN_BLOCK)
    pad = n_blocks * KNN_BLOCK - n
    return jnp.concatenate([jnp.arange(n, dtype=jnp.int32), jnp.zeros(pad, jnp.int32)]).reshape(n_blocks, KNN_BLOCK)


def _flat(v: jnp.ndarray, n: int) -> jnp.ndarray:
    return v.reshape(-1, *v.shape[2:])[:n]


def k_smallest(d_BxN, k: int) -> jnp.ndarray:
    """The k smallest entries of each row, ascending [B, k] (ties counted separately, as a sort would): k passes
    that each take and remove one minimum — for k << N far cheaper on the CPU than `lax.top_k`, which sorts
    every row."""
    cols = jnp.arange(d_BxN.shape[1])[None, :]
    out = []
    for j in range(k):
        at = jnp.argmin(d_BxN, axis=1)
        out.append(jnp.take_along_axis(d_BxN, at[:, None], axis=1)[:, 0])
        if j < k - 1:
            d_BxN = jnp.where(cols == at[:, None], jnp.inf, d_BxN)
    return jnp.stack(out, axis=1)


def kth_smallest(d_BxN, k: int) -> jnp.ndarray:
    """The k-th smallest entry of each row [B]."""
    return k_smallest(d_BxN, k)[:, k - 1]


def _sq_dists(q_BxD, p_NxD) -> jnp.ndarray:
    """Squared Euclidean distances, summed coordinate by coordinate (no |a|^2 + |b|^2 - 2ab cancellation)."""
    d = jnp.zeros((q_BxD.shape[0], p_NxD.shape[0]), jnp.float32)
    for c in range(p_NxD.shape[1]):
        diff = q_BxD[:, c, None] - p_NxD[None, :, c]
        d = d + diff * diff
    return d


def _max_dists(q_BxD, p_NxD) -> jnp.ndarray:
    d = jnp.zeros((q_BxD.shape[0], p_NxD.shape[0]), jnp.float32)
    for c in range(p_NxD.shape[1]):
        d = jnp.maximum(d, jnp.abs(q_BxD[:, c, None] - p_NxD[None, :, c]))
    return d


def neighbour_distances(points_NxD, k: int, groups_N=None) -> jnp.ndarray:
    """Euclidean distances from each point to its 1st ... k-th nearest other point [N, k] (within its own group
    when `groups_N` is given: the class-conditional neighbours)."""
    n = points_NxD.shape[0]
    p = points_NxD.astype(jnp.float32)

    def block(idx_B):
        d = _sq_dists(p[idx_B], p)
        other = jnp.arange(n)[None, :] != idx_B[:, None]
        if groups_N is not None:
            other = other & (groups_N[idx_B][:, None] == groups_N[None, :])
        d = jnp.where(other, d, jnp.inf)
        return k_smallest(d, k)

    return jnp.sqrt(jnp.maximum(_flat(lax.map(block, _blocks(n)), n), _TINY))


def berrett_weights(d: int, k: int) -> np.ndarray:
    """Weights w_1..w_K of the weighted Kozachenko-Leonenko estimator (Berrett, Samworth & Yuan 2019) in d
    dimensions: sum_j w_j = 1 and sum_j w_j Gamma(j + 2l/d) / Gamma(j) = 0 for l = 1 .. floor(d/4), which cancel
    the leading bias terms the unweighted estimator keeps in d >= 4. The minimum-norm solution over j = 1 .. K,
    K = max(k, floor(d/4) + 1) (the constraints need that many neighbours). For d <= 3 there is no constraint
    but the sum and the weights are those of the plain estimator: 1 on the k-th neighbour."""
    n_l = d // 4
    if n_l == 0:
        return np.eye(k)[k - 1]
    big_k = max(k, n_l + 1)
    j = np.arange(1, big_k + 1, dtype=float)
    from scipy.special import gammaln as sp_gammaln

    rows = [np.ones(big_k)] + [np.exp(sp_gammaln(j + 2 * l / d) - sp_gammaln(j)) for l in range(1, n_l + 1)]
    a = np.stack(rows)
    rhs = np.eye(n_l + 1)[0]
    return np.linalg.lstsq(a, rhs, rcond=None)[0]


def weight_table(max_d: int, k: int) -> np.ndarray:
    """[max_d + 1, K] Berrett weights for every real dimension 0..max_d (row 0 unused), zero-padded to the
    largest K, so a traced dimension can pick its row."""
    ws = [berrett_weights(max(d, 1), k) for d in range(max_d + 1)]
    big_k = max(len(w) for w in ws)
    return np.stack([np.pad(w, (0, big_k - len(w))) for w in ws])


def _log_xi(eps_NxK, d, n_eff) -> jnp.ndarray:
    """Berrett's log xi_(j),i = -psi(j) + log V_d + psi(n_eff) + d log rho_(j),i, [N, K] (psi(n_eff) in place of
    log(n_eff - 1), as the plain estimator of Kozachenko & Leonenko writes it; they differ by O(1/n))."""
    j = jnp.arange(1, eps_NxK.shape[1] + 1, dtype=jnp.float64)
    return -digamma(j)[None, :] + log_unit_ball(d) + digamma(n_eff)[..., None] + d * jnp.log(eps_NxK)


def log_unit_ball(d) -> jnp.ndarray:
    """log of the volume of the unit Euclidean ball in d dimensions (d may be traced)."""
    d = jnp.asarray(d, jnp.float64)
    return d / 2 * np.log(np.pi) - gammaln(d / 2 + 1)


def _weights(points_NxD, k: int, d, weighted: bool) -> jnp.ndarray:
    """The weights for this call: Berrett's for the (possibly traced) real dimension d, or 1 on the k-th."""
    if not weighted:
        return jnp.asarray(np.eye(k)[k - 1])
    table = jnp.asarray(weight_table(points_NxD.shape[1], k))
    return table[jnp.clip(jnp.asarray(d, jnp.int32), 1, points_NxD.shape[1])]


def kl_entropy(points_NxD, k: int = 5, d=None, weighted: bool = False) -> jnp.ndarray:
    """Kozachenko-Leonenko differential entropy in nats (float64); `weighted`: Berrett et al.'s weighted
    estimator (identical to the plain one for d <= 3). d: the points' real dimension when some coordinates are
    constant zeros (a padded layer; may be traced); default all columns."""
    require_x64()
    n = points_NxD.shape[0]
    d = points_NxD.shape[1] if d is None else d
    w = _weights(points_NxD, k, d, weighted)
    eps = neighbour_distances(points_NxD, w.shape[0]).astype(jnp.float64)
    return jnp.mean(_log_xi(eps, d, jnp.float64(n)) @ w)


def kl_mi_with_labels(points_NxD, labels_N, n_classes: int, k: int = 5, d=None, weighted: bool = False
                      ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(h(T), I(T;Y)) in nats: KL entropy of all points, minus the class-weighted KL entropies within each class.
    A class with at most K points (K = the neighbours used) contributes nothing (its entropy is not estimable;
    its weight is dropped). d and `weighted` as for `kl_entropy`."""
    require_x64()
    n = points_NxD.shape[0]
    d = points_NxD.shape[1] if d is None else d
    w = _weights(points_NxD, k, d, weighted)
    big_k = w.shape[0]
    eps_all = neighbour_distances(points_NxD, big_k).astype(jnp.float64)
    eps_cls = neighbour_distances(points_NxD, big_k, labels_N).astype(jnp.float64)
    n_y = jnp.zeros(n_classes, jnp.float64).at[labels_N].add(1.0)
    n_i = n_y[labels_N]
    ok = n_i > big_k
    h_t = jnp.mean(_log_xi(eps_all, d, jnp.float64(n)) @ w)
    # sum_y p(y) h(T|y) = mean over points of the entropy terms within the point's class (psi(N_y) for psi(N))
    term = _log_xi(eps_cls, d, jnp.maximum(n_i, 1.0)) @ w
    h_t_given_y = jnp.sum(jnp.where(ok, term, 0.0)) / jnp.maximum(jnp.sum(ok), 1.0)
    return h_t, h_t - h_t_given_y


def ksg_mi(x_NxDx, t_NxDt, k: int = 5) -> jnp.ndarray:
    """KSG estimate (algorithm 1) of I(X;T) in nats (float64)."""
    require_x64()
    n = x_NxDx.shape[0]
    x, t = x_NxDx.astype(jnp.float32), t_NxDt.astype(jnp.float32)

    def block(idx_B):
        dx, dt = _max_dists(x[idx_B], x), _max_dists(t[idx_B], t)
        self_ = jnp.arange(n)[None, :] == idx_B[:, None]
        joint = jnp.where(self_, jnp.inf, jnp.maximum(dx, dt))
        eps = kth_smallest(joint, k)
        n_x = jnp.sum((dx < eps[:, None]) & ~self_, axis=1)
        n_t = jnp.sum((dt < eps[:, None]) & ~self_, axis=1)
        return n_x, n_t

    n_x, n_t = (_flat(v, n) for v in lax.map(block, _blocks(n)))
    psi = lambda c: digamma(c.astype(jnp.float64) + 1.0)
    return digamma(jnp.float64(k)) + digamma(jnp.float64(n)) - jnp.mean(psi(n_x) + psi(n_t))


# Where KSG's I(X;T) is within abs(bias) < 0.1 nats + 5 % of the truth on correlated Gaussians with X and T of
# `dim` dimensions each (k = 5; measured by `python -m ibjax.validate`, which checks these rows): the largest
# tested truth in nats, per MI-sample size (the largest row not above N applies) and dimension. KSG
# underestimates with dimension (by ~15-30 % at dim 4), so dim >= 5 has no validated range at these sizes.
KSG_RELIABLE_NATS = {1024: {1: 4.0, 2: 3.0, 3: 0.5}, 4096: {1: 5.0, 2: 4.0, 3: 2.0, 4: 0.5}}


def ksg_reliable_nats(n_samples: int, dim: int) -> float:
    """The validated range of KSG (nats) for this sample size and dimension: 0 where none is validated."""
    sizes = [s for s in KSG_RELIABLE_NATS if s <= n_samples]
    return KSG_RELIABLE_NATS[max(sizes)].get(dim, 0.0) if sizes else 0.0


@dataclass(frozen=True)
class KNNEstimator:
    """Compressed k-NN MI (Butakov et al. 2024): the layer (and X) reduced to `dim` principal components of the
    MI sample, then I(T;Y) from KL entropies (`kl_mi_with_labels`) and I(X;T) by KSG (`ksg_mi`) between the
    compressed input and layer. Needs the inputs (`LayerContext.inputs_NxD`, which the engine passes); without
    them I(X;T) is NaN. `max_samples` caps the rows (cost O(rows^2 * dim)), a fixed evenly spaced subset.

    For a deterministic network, X uniform over N distinct rows, the true I(X;T) is log2 N (every row its own
    value); the KSG value is the MI of the continuous variables the compressed X and T approximate (finite,
    and what Butakov et al. report); a stochastic network (model.noise_std) makes the true MI finite: the
    layer is measured with its noise (`noise_std`, the network's own, added before compression)."""

    name: str = "knn"
    k: int = 5
    dim: int = 4
    max_samples: int | None = None
    n_classes: int | None = None
    weighted: bool = False  # I(T;Y) from Berrett et al.'s weighted KL entropies (kl_entropy)
    # A stochastic network's noise (model.noise_std): the layer T is its values plus N(0, noise_std^2) on the real
    # units, one fixed draw (`seed`, the same at every epoch so curves are not jittered), before compression.
    noise_std: float | None = None
    seed: int = 0
    # X compressed by an autoencoder trained before the sweep (ctx.encoded_inputs[name], [N, dim]) instead of
    # by PCA: Butakov et al.'s compression of images, which PCA cannot unfold (ibjax.mi.autoencoder).
    encoded_inputs: bool = False
    needs_net_input: ClassVar[bool] = False
    batched_lapack: ClassVar[bool] = True  # the PCA of each layer and of X (eigh)
    needs_linear_map: ClassVar[bool] = False
    continuous_targets: ClassVar[bool] = False

    def limits(self, n_samples: int) -> tuple[float, float]:
        """KSG's largest value psi(N) - psi(k) (every point's k joint neighbours also its nearest in X and in T
        alone), and its validated range for `dim` (KSG_RELIABLE_NATS); in bits."""
        from scipy.special import digamma as sp_digamma

        n = min(n_samples, self.max_samples or n_samples)
        ceiling = float(sp_digamma(n) - sp_digamma(self.k)) / _LN2
        reliable = ksg_reliable_nats(n, self.dim) / _LN2 if self.k == 5 else 0.0
        return ceiling, min(reliable, ceiling)

    @compiled_when_eager
    def __call__(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        n = acts_NxU.shape[0]
        keep = sample_rows(n, self.max_samples)
        acts = acts_NxU[keep]
        if self.noise_std is not None:
            noise = jax.random.normal(flat_counter_key(jax.random.PRNGKey(self.seed)), acts.shape, jnp.float32)
            acts = acts + self.noise_std * noise * ctx.unit_mask_U[None, :]
        t = pca(acts, self.dim, ctx.unit_mask_U)
        d_t = jnp.minimum(self.dim, jnp.sum(ctx.unit_mask_U))  # a padded layer's real dimension
        if self.n_classes == 1:  # one class (I(X;T)-only tasks): I(T;Y) is 0, no need for two neighbour searches
            i_ty = jnp.float64(0.0)
        else:
            _, i_ty = kl_mi_with_labels(t, labels_N[keep], self.n_classes, self.k, d_t, self.weighted)
        i_xt = jnp.float64(jnp.nan)
        if self.encoded_inputs:
            if ctx.encoded_inputs is not None and self.name in ctx.encoded_inputs:
                i_xt = ksg_mi(jnp.asarray(ctx.encoded_inputs[self.name], jnp.float32)[keep], t, self.k)
        elif ctx.inputs_NxD is not None:
            x = pca(ctx.inputs_NxD[keep].reshape(len(keep), -1), self.dim)
            i_xt = ksg_mi(x, t, self.k)
        nan = jnp.float64(jnp.nan)
        return MIEstimate(i_xt / _LN2, i_ty / _LN2, nan, nan)
