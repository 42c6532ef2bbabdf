"""Binning in net-input space (Saxe et al. 2018, appendix): bin each layer's pre-activation W h + b instead of
its activation.

Why: a tanh layer's activations crowd into the two end bins as weights grow (double saturation), and binning
them reads that crowding as compression; the net inputs keep spreading instead. Saxe et al. report that binning
the net inputs removes tanh's compression phase: the estimate answers whether compression is a fact of the
representation or of the bins. The pre-activation is an invertible function of the activation only where the
activation is (and float32 tanh rounds to +-1 beyond |z| ~ 9), so it is measured, not inverted: the model family
returns it (`net_inputs`; the mlp family has it). Pre-activations are unbounded: the wrapped binning's `auto`
range is the layer's own min/max.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import jax.numpy as jnp

from ibjax.mi.compiled import compiled_when_eager
from ibjax.mi.interface import LayerContext, MIEstimate, estimator_limits


@dataclass(frozen=True)
class OnNetInput:
    """Any activation estimator (`inner`) applied to the layer's net input (ctx.net_input_NxU)."""

    name: str
    inner: Any
    n_classes: int | None = None
    needs_net_input: ClassVar[bool] = True
    batched_lapack: ClassVar[bool] = False
    needs_linear_map: ClassVar[bool] = False
    continuous_targets: ClassVar[bool] = False

    def limits(self, n_samples: int):
        return estimator_limits(self.inner, n_samples)

    @compiled_when_eager
    def __call__(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        if ctx.net_input_NxU is None:
            raise ValueError(f"estimator {self.name!r} bins net inputs, but the model family gave none")
        z = jnp.where(ctx.unit_mask_U[None, :], ctx.net_input_NxU, 0.0)
        inner = dataclasses.replace(self.inner, n_classes=self.n_classes)
        return inner(z, labels_N, ctx._replace(bounded=jnp.bool_(False), net_input_NxU=None))
