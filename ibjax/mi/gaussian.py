"""Mutual information of jointly Gaussian variables, in bits, inside jit (float64).

Saxe et al. (2018, Section 4 and appendix) measure deep *linear* networks where MI is exact: inputs
X ~ N(0, Sigma_X), a layer T = W X + eps with measurement noise eps ~ N(0, sigma^2 I) (sigma^2 = 1 in the paper;
not used in training), and a linear teacher Y = W_o X + eps_o, eps_o ~ N(0, sigma_o^2 I). Then

    Sigma_T  = W Sigma_X W^T + sigma^2 I,     Sigma_Y = W_o Sigma_X W_o^T + sigma_o^2 I,
    Sigma_TY = W Sigma_X W_o^T,
    I(T;X) = 1/2 log det Sigma_T - 1/2 log det (sigma^2 I),
    I(T;Y) = 1/2 [log det Sigma_T + log det Sigma_Y - log det [[Sigma_T, Sigma_TY], [Sigma_TY^T, Sigma_Y]]].

These are exact for linear layers of Gaussian inputs; for anything else they are only the Gaussian
approximation (the entropy of a Gaussian of the same covariance, an upper bound on I(T;X) for fixed Sigma_T),
and must be labelled so. Log-determinants by Cholesky: every matrix here is symmetric positive definite (the
noise terms make it so), and Cholesky is both the cheapest and the most accurate factorization for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import jax.numpy as jnp

from ibjax.mi.compiled import compiled_when_eager
from ibjax.mi.entropy import require_x64
from ibjax.mi.interface import LayerContext, MIEstimate

LN2 = math.log(2.0)  # not jnp: a JAX computation at import would start the backends (one device)


def logdet_spd(a: jnp.ndarray) -> jnp.ndarray:
    """log det of a symmetric positive definite matrix, in nats (NaN if it is not positive definite)."""
    chol = jnp.linalg.cholesky(a)
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)


def gaussian_mi_bits(cov_a: jnp.ndarray, cov_b: jnp.ndarray, cross_ab: jnp.ndarray) -> jnp.ndarray:
    """I(A;B) in bits of jointly Gaussian A [p] and B [q] with covariances cov_a [p, p], cov_b [q, q] and
    cross-covariance cross_ab = Cov(A, B) [p, q]: 1/2 (log det cov_a + log det cov_b - log det joint) / ln 2."""
    require_x64()
    cov_a, cov_b, cross_ab = (jnp.asarray(m, jnp.float64) for m in (cov_a, cov_b, cross_ab))
    joint = jnp.block([[cov_a, cross_ab], [cross_ab.T, cov_b]])
    return 0.5 * (logdet_spd(cov_a) + logdet_spd(cov_b) - logdet_spd(joint)) / LN2


def linear_layer_mi(w: jnp.ndarray, cov_x: jnp.ndarray, noise_var: float, w_teacher: jnp.ndarray | None = None,
                    teacher_noise_var: float = 0.0) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(I(T;X), I(T;Y)) in bits of the layer T = W X + eps of a linear network, eps ~ N(0, noise_var I), for
    Gaussian X of covariance cov_x [Ni, Ni] and the teacher Y = w_teacher X + eps_o, eps_o ~ N(0,
    teacher_noise_var I) (w [Nt, Ni], w_teacher [No, Ni]: the end-to-end maps). I(T;Y) is NaN without a teacher."""
    require_x64()
    w, cov_x = jnp.asarray(w, jnp.float64), jnp.asarray(cov_x, jnp.float64)
    n_t = w.shape[0]
    cov_t = w @ cov_x @ w.T + noise_var * jnp.eye(n_t)
    i_xt = 0.5 * (logdet_spd(cov_t) - n_t * jnp.log(noise_var)) / LN2
    if w_teacher is None:
        return i_xt, jnp.float64(jnp.nan)
    w_o = jnp.asarray(w_teacher, jnp.float64)
    cov_y = w_o @ cov_x @ w_o.T + teacher_noise_var * jnp.eye(w_o.shape[0])
    return i_xt, gaussian_mi_bits(cov_t, cov_y, w @ cov_x @ w_o.T)


def linear_layer_block_mi(w: jnp.ndarray, cov_x: jnp.ndarray, noise_var: float, block) -> jnp.ndarray:
    """I(T;X_S) in bits between the layer T = W X + eps and a block S of the inputs (indices `block`): Saxe et
    al.'s Section 5 (task-relevant and task-irrelevant inputs) in the linear setting, where it is exact."""
    require_x64()
    w, cov_x = jnp.asarray(w, jnp.float64), jnp.asarray(cov_x, jnp.float64)
    block = jnp.asarray(block)
    cov_t = w @ cov_x @ w.T + noise_var * jnp.eye(w.shape[0])
    return gaussian_mi_bits(cov_t, cov_x[jnp.ix_(block, block)], w @ cov_x[:, block])


@dataclass(frozen=True)
class GaussianMI:
    """`kind: gaussian`: the formulas above inside the compiled step, for the layer T = h(X) + eps, eps ~ N(0,
    noise_var I) (measurement noise only; training never sees it).

    Exact where the engine knows the layer is an affine function of X (ctx.affine: a linear network's layers,
    from ctx.linear_map_UxD, its map read off the network) and X is the teacher's Gaussian (ctx.teacher): then
    Sigma_T = W Sigma_X W^T + noise_var I and Cov(T, Y) = W Sigma_X W_o^T are population values. Otherwise the
    Gaussian approximation: the same formulas with the sample covariances of the layer and of (T, X) on the MI
    sample (for I(T;X), the entropy of a Gaussian of that covariance: an upper bound at that covariance). I(T;Y)
    needs the teacher (Cov(T, Y) = Cov(T, X) W_o^T, Y's covariance exact); NaN for classification tasks. Padded
    units (zero activations, zero rows of the map) add noise_var to both determinants and cancel."""

    name: str
    noise_var: float = 1.0
    needs_net_input: ClassVar[bool] = False
    batched_lapack: ClassVar[bool] = True  # a Cholesky per layer (XLA:CPU hangs batching it on 2+ host devices)
    needs_linear_map: ClassVar[bool] = True
    continuous_targets: ClassVar[bool] = True

    def limits(self, n_samples: int) -> tuple[float, float]:
        """Not a count over the rows: no ceiling at log2 N, and exact where it is exact (no reliable range)."""
        return math.inf, math.inf

    def _covariances(self, acts_NxU, ctx: LayerContext):
        """(Sigma_T with the measurement noise, Cov(T, X), Sigma_X): population values where the layer is affine
        and the task has a teacher, the MI sample's otherwise."""
        require_x64()
        acts = jnp.asarray(acts_NxU, jnp.float64)
        x = jnp.asarray(ctx.inputs_NxD, jnp.float64)
        n, units = acts.shape
        t_c, x_c = acts - acts.mean(0), x - x.mean(0)
        cov_t, cov_tx = t_c.T @ t_c / n, t_c.T @ x_c / n
        teacher = ctx.teacher
        cov_x = x_c.T @ x_c / n if teacher is None else teacher.cov_x
        if ctx.linear_map_UxD is not None and teacher is not None:  # the population values where T is affine
            w = jnp.asarray(ctx.linear_map_UxD, jnp.float64)
            cov_t = jnp.where(ctx.affine, w @ cov_x @ w.T, cov_t)
            cov_tx = jnp.where(ctx.affine, w @ cov_x, cov_tx)
        return cov_t + self.noise_var * jnp.eye(units), cov_tx, cov_x

    def block_i_xt(self, acts_NxU, ctx: LayerContext, split: int) -> tuple:
        """(I(T;X_S) for S = inputs [0, split), for S = inputs [split, D)) in bits (Saxe et al.'s Section 5: the
        relevant and the irrelevant block): exact where `__call__` is, the Gaussian approximation otherwise."""
        cov_t, cov_tx, cov_x = self._covariances(acts_NxU, ctx)
        return tuple(gaussian_mi_bits(cov_t, cov_x[s, s], cov_tx[:, s])
                     for s in (slice(0, split), slice(split, None)))

    @compiled_when_eager
    def __call__(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        cov_t, cov_tx, cov_x = self._covariances(acts_NxU, ctx)
        units = cov_t.shape[0]
        teacher = ctx.teacher
        i_xt = 0.5 * (logdet_spd(cov_t) - units * jnp.log(self.noise_var)) / LN2
        if teacher is None:
            i_ty = jnp.float64(jnp.nan)
        else:
            w_o = teacher.w_o
            cov_y = w_o @ cov_x @ w_o.T + teacher.noise_var * jnp.eye(w_o.shape[0])
            i_ty = gaussian_mi_bits(cov_t, cov_y, cov_tx @ w_o.T)
        nan = jnp.float64(jnp.nan)
        return MIEstimate(i_xt, i_ty, nan, nan)
