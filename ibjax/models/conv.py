"""The `conv` family: small convolutional classifiers configured in the spec, as a Flax NNX module.

Blocks of conv (k x k, stride 1) -> activation -> max-pool, then dense layers, then the logits:

    Butakov et al. 2024, MNIST:  channels [8, 16, 32], kernel 3, pool 2, padding valid, dense [32], leaky_relu
    Lorenzen et al. 2022, MNIST: channels [32, 64, 64], kernel 3, pool [2, 2, 1], padding valid, dense [64], relu

With `quantize_bits` every layer's output (after its pooling) takes 2^bits levels over its own range, with
straight-through gradients, as the MLP's (Lorenzen et al.'s quantization-aware training of their Conv and
Bottleneck networks), so that `kind: exact` counts its MI exactly.

Butakov et al. pool before the activation; for the monotone activations they use (LeakyReLU) the two orders give
the same values. Every block's output (after pooling) and every dense layer is a measured layer, flattened per
sample: conv1, conv2, ..., dense1, ..., then the softmax output `out`. Initialisation is Flax's default (LeCun
normal kernels, zero biases), drawn from the network's seed. The activation is per network (an index into the
program's activations), so an activation grid shares one program; channels and widths fix the program.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from ibjax.models.activations import BOUNDED_RANGES, activate
from ibjax.models.family import ModelError, dropout
from ibjax.models.mlp import DROPOUT_STREAM, ModelConsts, fake_quantize
from ibjax.models.nnx_adapter import NNXNetwork
from ibjax.threefry import flat_counter_key


def _spatial(size: int, kernel: int, padding: str, pool: int) -> int:
    """One side of a feature map after a block: the convolution (valid: size - kernel + 1), then the pool."""
    after = size if padding == "same" else size - kernel + 1
    return after // pool


class ConvNet(nnx.Module):
    """Conv blocks conv1..convK, dense layers dense1..denseD, output layer `out` (the names of the measured
    layers and of the parameter groups)."""

    def __init__(self, image_shape: tuple[int, int, int], channels: tuple[int, ...], kernel: int,
                 pools: tuple[int, ...], padding: str, dense: tuple[int, ...], n_classes: int, rngs: nnx.Rngs):
        h, w, c_in = image_shape
        self.n_conv, self.n_dense = len(channels), len(dense)
        self.pools, self.padding = pools, padding.upper()
        for i, (c_out, pool) in enumerate(zip(channels, pools)):
            setattr(self, f"conv{i + 1}", nnx.Conv(c_in, c_out, (kernel, kernel), padding=self.padding, rngs=rngs))
            h, w, c_in = _spatial(h, kernel, padding, pool), _spatial(w, kernel, padding, pool), c_out
        width = h * w * c_in
        for i, units in enumerate(dense):
            setattr(self, f"dense{i + 1}", nnx.Linear(width, units, rngs=rngs))
            width = units
        self.out = nnx.Linear(width, n_classes, rngs=rngs)

    def __call__(self, x_NxHxWxC, act, noise=None, drop=None, quantize=None):
        """(hidden layers flattened [N, units] each, logits). act(z): the activation; noise(h, i) / drop(h, i):
        the stochastic network's noise and dropout of layer i's output (None: none); quantize(h): a quantized
        network's levels of each layer's output (after its pooling: the measured layer is what the next reads)."""
        hidden, h = [], x_NxHxWxC
        layers = [(getattr(self, f"conv{i + 1}"), self.pools[i]) for i in range(self.n_conv)]
        layers += [(getattr(self, f"dense{i + 1}"), None) for i in range(self.n_dense)]
        for i, (layer, pool) in enumerate(layers):
            if pool is None and h.ndim > 2:
                h = h.reshape(h.shape[0], -1)
            h = act(layer(h))
            if pool is not None and pool > 1:
                h = nnx.max_pool(h, (pool, pool), strides=(pool, pool))
            if quantize is not None:
                h = quantize(h)
            hidden.append(h.reshape(h.shape[0], -1))
            if noise is not None:
                h = noise(h, i)
            if drop is not None:
                h = drop(h, i)
        if h.ndim > 2:
            h = h.reshape(h.shape[0], -1)
        return hidden, self.out(h)


@dataclass(frozen=True)
class Conv:
    """The `conv` family (ibjax.models.family) of one program."""

    image_shape: tuple[int, int, int]  # (H, W, C) of one input
    channels: tuple[int, ...]
    kernel: int
    pools: tuple[int, ...]  # max-pool window after each conv block (1: none)
    padding: str  # valid | same
    dense: tuple[int, ...]
    n_classes: int
    activations: tuple[str, ...]  # the program's activations (consts.act_id indexes them)
    noise_std: float | None = None
    dropout: float | None = None
    quantize_bits: int | None = None  # every layer on 2^bits levels of its own range (Lorenzen et al.), as the MLP's
    kind: ClassVar[str] = "conv"
    native_kernel: ClassVar[bool] = False  # XLA's convolutions
    # A vmapped convolution is a grouped convolution, ~4x slower on XLA:CPU than the same convolutions one by one,
    # with every network's activations live at once (3x the net-epochs/s looped at N = 16; BUILD_NOTES.md, issue
    # 17); YNNPACK's fused convolutions are faster than XLA's own: no options.
    batches_on_cpu: ClassVar[bool] = False
    cpu_compiler_options: ClassVar[Mapping[str, str]] = MappingProxyType({})

    @property
    def stochastic(self) -> bool:
        return self.noise_std is not None

    def __post_init__(self):
        h, w, _ = self.image_shape
        for i, pool in enumerate(self.pools):
            h2, w2 = (_spatial(s, self.kernel, self.padding, pool) for s in (h, w))
            if h2 < 1 or w2 < 1:
                raise ModelError(
                    f"model (conv): block conv{i + 1} (kernel {self.kernel}, padding {self.padding}, pool {pool}) "
                    f"gets a {h}x{w} feature map and leaves nothing; use fewer blocks, padding 'same' or pool 1")
            h, w = h2, w2

    @property
    def layer_names(self) -> tuple[str, ...]:
        return (*(f"conv{i + 1}" for i in range(len(self.channels))),
                *(f"dense{i + 1}" for i in range(len(self.dense))), "out")

    @property
    def grad_names(self) -> tuple[str, ...]:
        return self.layer_names

    @property
    def network(self) -> NNXNetwork:
        return _network(self)

    def init(self, key, consts: ModelConsts) -> dict:
        return self.network.init(key)

    def apply(self, params, consts: ModelConsts, x_NxD, key=None, train: bool = False):
        x = x_NxD.reshape(x_NxD.shape[0], *self.image_shape)
        noise = drop = None
        if self.noise_std is not None:
            noise = lambda h, i: h + self.noise_std * jax.random.normal(
                flat_counter_key(jax.random.fold_in(key, i)), h.shape, h.dtype)
        if train and self.dropout:
            drop = lambda h, i: dropout(h, self.dropout, jax.random.fold_in(key, DROPOUT_STREAM + i), True)
        act = lambda z: activate(z, consts.act_id, self.activations)
        quantize = None
        if self.quantize_bits is not None:  # over the whole layer's range, every unit real (no padding here)
            quantize = lambda h: fake_quantize(h.reshape(h.shape[0], -1), jnp.ones(h[0].size, jnp.float32),
                                               self.quantize_bits).reshape(h.shape)
        return self.network.module(params)(x, act, noise, drop, quantize)

    def affine_layers(self, consts) -> list:
        """Whether each measured layer (and the logits) is an affine function of the input: not known for this
        family, so never claimed (the Gaussian estimator then approximates)."""
        return [False] * len(self.layer_names)

    def contexts(self, consts: ModelConsts, hidden: list) -> list[tuple]:
        bounded = True if all(a in BOUNDED_RANGES for a in self.activations) else consts.bounded
        return [(jnp.ones(h.shape[-1], bool), consts.nat_lo, consts.nat_hi, bounded) for h in hidden]

    def grad_leaves(self, grads) -> list[list]:
        return [[grads[name]["kernel"]] for name in self.grad_names]


@cache
def _network(family: Conv) -> NNXNetwork:
    f = family
    return NNXNetwork(lambda rngs: ConvNet(f.image_shape, f.channels, f.kernel, f.pools, f.padding, f.dense,
                                           f.n_classes, rngs), "model (conv)")
