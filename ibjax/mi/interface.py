"""The estimator protocol. Imports nothing from ibjax, so estimators, engine and analysis depend on it only.

An estimator is a pure, jit- and vmap-compatible function of one layer's activations on the MI sample:
activations [N, U] (N samples, U units, padded units already masked to 0), labels [N], and a LayerContext
(per-model facts the engine knows: which units are real, the activation's natural range). It returns an
MIEstimate in **bits**. X is uniform over the N samples; for a deterministic network I(X;T) = H(T).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple, Protocol

Array = Any


class LayerContext(NamedTuple):
    """What the engine knows about one layer of one model. All fields may be traced arrays.

    unit_mask_U: bool [U], True for real (unpadded) units.
    natural_lo, natural_hi: the activation's bounded range (e.g. -1, 1 for tanh); meaningful only when
        `bounded` is True.
    bounded: whether the activation's output is bounded (tanh, softsign, sigmoid, softmax); the Python bool
        True when the engine knows it for every model of the program (then an estimator may skip work that
        only unbounded layers need).
    draws_KxNxU: for a stochastic network, K independent draws of the layer's pre-noise values on the same
        rows (draw 0 is the activations passed to the estimator); None for a deterministic network.
    inputs_NxD: the network's inputs on the same rows (flattened), for estimators of I(X;T) that need X itself
        (k-NN); None where the caller has none.
    net_input_NxU: the layer's net input (pre-activation, W h + b) on the same rows, for estimators that bin it
        (`OnNetInput`); None unless an estimator asks for it (`needs_net_input`) and the model family gives it.
    linear_map_UxD, affine: the layer's map read off the network (its values at X = e_i less its value at 0) and
        whether the layer is an affine function of X (a linear network's layers), so that the map is the layer;
        None / False unless an estimator asks for them (`needs_linear_map`).
    teacher: a regression task's population (ibjax.data.task.TeacherConsts: Sigma_X, W_o, sigma_o^2); None for
        classification.
    encoded_inputs: {estimator name: [N, dim]} the MI sample's inputs compressed by that estimator's autoencoder,
        trained before the sweep (ibjax.mi.autoencoder); None where no estimator asks for one.
    """

    unit_mask_U: Array
    natural_lo: Array
    natural_hi: Array
    bounded: Array
    draws_KxNxU: Array | None = None
    inputs_NxD: Array | None = None
    net_input_NxU: Array | None = None
    linear_map_UxD: Array | None = None
    affine: Array = False
    teacher: Any = None
    encoded_inputs: dict | None = None


class MIEstimate(NamedTuple):
    """I(X;T) and I(T;Y) in bits, and the value range the estimator used (NaN where it has none)."""

    i_xt: Array
    i_ty: Array
    lo: Array
    hi: Array


class MIEstimator(Protocol):
    """An estimator: hashable static settings (so it can key a compiled program), a name, and a call. What the
    engine must know about it is declared, never probed: `needs_net_input` (it reads ctx.net_input_NxU, which
    costs a matmul per layer), `batched_lapack` (it takes a LAPACK factorization per layer, an eigendecomposition or a
    Cholesky, which XLA:CPU must not batch over networks on several host devices: such programs hang), `needs_linear_map` (it reads ctx.linear_map_UxD and
    ctx.affine: a forward pass of D + 1 probe rows) and `continuous_targets` (its I(T;Y) is of a regression
    task's continuous targets; the others count class labels, and give NaN for a regression task)."""

    name: str
    needs_net_input: ClassVar[bool]
    batched_lapack: ClassVar[bool]
    needs_linear_map: ClassVar[bool]
    continuous_targets: ClassVar[bool]

    def __call__(self, acts_NxU: Array, labels_N: Array, ctx: LayerContext) -> MIEstimate: ...


class Limits(NamedTuple):
    """Where an estimator's I(X;T) stops meaning what it says, in bits, for an MI sample of N rows.

    ceiling_bits: the largest value it can return (log2 N for every counting or mixture estimator: every sample its
        own symbol); a trajectory that reaches it is `saturated`, and cannot show compression.
    reliable_bits: the largest value inside the range where the estimator is validated against a known truth
        (`python -m ibjax.validate`); above it the value is reported but flagged `unreliable`. Equal to the
        ceiling where the estimate is exact for what it defines (binning counts the bins' symbols exactly)."""

    ceiling_bits: float
    reliable_bits: float


def estimator_limits(est, n_samples: int) -> Limits:
    """`est.limits(n_samples)` where the estimator defines it, else the entropy of the rows it reads all distinct
    for both: log2 N, or, for a counting estimator with a bias correction, that correction of N singletons (a
    corrected estimate of N distinct rows reads above log2 N: the jackknife's by ~1.44 bits)."""
    own = getattr(est, "limits", None)
    if own is not None:
        return Limits(*own(n_samples))
    cap = getattr(est, "max_samples", None)
    n = min(n_samples, cap) if cap else n_samples
    ceiling = distinct_entropy(n, getattr(est, "correction", "none"))
    return Limits(ceiling, ceiling)


def distinct_entropy(n: int, correction: str = "none") -> float:
    """The entropy estimate, in bits, of n rows that are all distinct: A(n) - phi(1) of ibjax.mi.entropy's forms."""
    if n <= 1:
        return 0.0
    if correction == "miller_madow":
        return math.log2(n) + (n - 1) / (2 * n * math.log(2))
    if correction == "jackknife":
        return n * math.log2(n) - (n - 1) * math.log2(n - 1)
    return math.log2(n)
