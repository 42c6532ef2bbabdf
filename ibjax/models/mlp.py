"""Stacked MLPs of one bucket: padded widths, masks after the activation, init with the true fan-in.

All models of a bucket share padded shapes (the bucket's largest width per layer). A model's real units are
given by its masks; padded units are multiplied by 0 *after* the activation (sigmoid(0) = 0.5 would otherwise
leak into the next layer), and their weights start at 0 and receive zero gradient, so they stay 0.

Each weight W[l][i, j] is drawn from a key folded with (layer, i, j), so a model's real weights do not
depend on how far it is padded: a padded network equals the unpadded one exactly at init.

On the CPU a plain MLP (no quantization, no noise: those stay in XLA) trains and runs its MI forward pass
through the native kernel (`ibjax.native.mlp`, several times faster than XLA for layers this small):
`loss_grads` and `forward_layers` choose, through `ibjax.native.dispatch`; they compute the same functions
as `jax.grad` of the loss and `forward`, to float rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ibjax import native
from ibjax.models.activations import BOUNDED_RANGES, activate
from ibjax.models.family import dropout as drop_units
from ibjax.native.mlp import ACTIVATION_CODES, kernel_forward, kernel_grads
from ibjax.threefry import flat_counter_key

DROPOUT_STREAM = 1 << 20  # dropout masks fold the key with this + layer (the noise folds it with the layer)


class ModelConsts(NamedTuple):
    """Per-model settings that are data, not shape: one leading model axis when stacked."""

    act_id: jnp.ndarray  # int32, index into the bucket's activation names
    masks: tuple  # per hidden layer, float32 [H_l]: 1 for real units
    fan_in: jnp.ndarray  # float32 [L + 1], true fan-in of every dense layer
    nat_lo: jnp.ndarray  # float32, natural range of the hidden activation (if bounded)
    nat_hi: jnp.ndarray
    bounded: jnp.ndarray  # bool


def stack_consts(models: list[tuple[tuple[int, ...], str]], names: tuple[str, ...], in_dim: int,
                 hidden_pad: tuple[int, ...]) -> ModelConsts:
    """The constants of several models, (true widths, activation) each, stacked on a leading model axis.

    Host NumPy, vectorized over the models: O(N) work and no XLA compile, whatever N (a bucket of 10^4 networks
    took minutes when each model's arrays were made and stacked by jnp).
    """
    widths_MxL = np.asarray([h for h, _ in models], np.int64).reshape(len(models), len(hidden_pad))
    acts = [a for _, a in models]
    lo_hi = np.asarray([BOUNDED_RANGES.get(a, (0.0, 0.0)) for a in acts], np.float32).reshape(len(models), 2)
    masks = tuple((np.arange(p)[None, :] < widths_MxL[:, [layer]]).astype(np.float32)
                  for layer, p in enumerate(hidden_pad))
    return ModelConsts(
        act_id=np.asarray([names.index(a) for a in acts], np.int32),
        masks=masks,
        fan_in=np.concatenate([np.full((len(models), 1), in_dim), widths_MxL], axis=1).astype(np.float32),
        nat_lo=lo_hi[:, 0],
        nat_hi=lo_hi[:, 1],
        bounded=np.asarray([a in BOUNDED_RANGES for a in acts], bool),
    )


def make_consts(hidden: tuple[int, ...], activation: str, names: tuple[str, ...], in_dim: int,
                hidden_pad: tuple[int, ...]) -> ModelConsts:
    """Consts of one model with true widths `hidden`, padded to `hidden_pad`."""
    return jax.tree.map(lambda a: a[0], stack_consts([(tuple(hidden), activation)], names, in_dim, hidden_pad))


def init_params(key, consts: ModelConsts, dims: tuple[int, ...]) -> dict:
    """Truncated normal (+-2 std) weights with std 1/sqrt(true fan-in), zero biases; padded entries 0.

    dims = (in_dim, *hidden_pad, n_classes). Matches IDNNs' tf.truncated_normal(stddev=1/sqrt(fan_in)).
    W[l][i, j] is drawn from the key folded with (l, i, j). All cells of all layers go through one vectorized
    chain of fold_ins and one draw: XLA compiles each threefry hash in ~0.2 s on the CPU, and a chain per
    layer cost 4-9 s of compile per program (the values are the same either way: each cell's key is).
    """
    shapes = list(zip(dims[:-1], dims[1:]))
    layer_C = np.concatenate([np.full(d_in * d_out, layer) for layer, (d_in, d_out) in enumerate(shapes)])
    row_C = np.concatenate([np.repeat(np.arange(d_in), d_out) for d_in, d_out in shapes])
    col_C = np.concatenate([np.tile(np.arange(d_out), d_in) for d_in, d_out in shapes])
    fold = jax.vmap(jax.random.fold_in, in_axes=(0, 0))
    keys_C = fold(fold(jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, layer_C), row_C), col_C)
    z_C = jax.vmap(lambda k: jax.random.truncated_normal(k, -2.0, 2.0, dtype=jnp.float32))(keys_C)
    in_masks = (jnp.ones(dims[0], jnp.float32), *consts.masks)
    out_masks = (*consts.masks, jnp.ones(dims[-1], jnp.float32))
    ws, bs, start = [], [], 0
    for layer, (d_in, d_out) in enumerate(shapes):
        z = z_C[start:start + d_in * d_out].reshape(d_in, d_out)
        start += d_in * d_out
        ws.append(z / jnp.sqrt(consts.fan_in[layer]) * in_masks[layer][:, None] * out_masks[layer][None, :])
        bs.append(jnp.zeros(d_out, jnp.float32))
    return {"w": ws, "b": bs}


def fake_quantize(h_NxH, mask_H, bits: int):
    """Quantize a layer to 2^bits levels over its own [min, max] on these rows (real units), with a
    straight-through gradient: Lorenzen et al.'s quantization-aware training (their TanhQuantizer uses the
    tensor's own min/max too; tfmot additionally nudges the range so that 0 is a level, which we do not)."""
    real = mask_H > 0
    lo = lax.stop_gradient(jnp.min(jnp.where(real, h_NxH, jnp.inf)))
    hi = lax.stop_gradient(jnp.max(jnp.where(real, h_NxH, -jnp.inf)))
    step = jnp.maximum(hi - lo, 1e-12) / (2**bits - 1)
    q = jnp.round((h_NxH - lo) / step) * step + lo
    # Forward value exactly q (h - h is exactly 0; h + (q - h) would round off the levels), gradient 1.
    return lax.stop_gradient(q) + (h_NxH - lax.stop_gradient(h_NxH))


def forward(params: dict, consts: ModelConsts, x_NxD, names: tuple[str, ...], quantize_bits: int | None = None,
            noise_std: float | None = None, key=None, dropout: float | None = None):
    """Hidden activations (masked; quantized to 2^quantize_bits levels if given) and output logits of one model.

    With noise_std (a stochastic network, Goldfeld et al. 2019): N(0, noise_std^2) is added to every hidden
    layer (real units) and the noisy values feed the next layer; the returned hidden values are each layer's
    values *before its own noise* (the centres of its Gaussian mixture given the upstream noise).
    With dropout (training only): each hidden layer's units dropped after it is recorded (and after its noise)."""
    h = x_NxD
    hidden = []
    for layer, (w, b, mask) in enumerate(zip(params["w"][:-1], params["b"][:-1], consts.masks)):
        h = activate(h @ w + b, consts.act_id, names)
        if quantize_bits is not None:
            h = fake_quantize(h, mask, quantize_bits)
        h = h * mask
        hidden.append(h)
        if noise_std is not None:
            noise = jax.random.normal(flat_counter_key(jax.random.fold_in(key, layer)), h.shape, h.dtype)
            h = h + noise_std * noise * mask
        if dropout is not None:
            h = drop_units(h, dropout, jax.random.fold_in(key, DROPOUT_STREAM + layer), True)
    logits = h @ params["w"][-1] + params["b"][-1]
    return hidden, logits


def _codes(consts: ModelConsts, names: tuple[str, ...]):
    """Each model's activation as the kernel's code."""
    return jnp.asarray([ACTIVATION_CODES.index(n) for n in names], jnp.int32)[consts.act_id]


def forward_layers(params, consts: ModelConsts, names: tuple[str, ...], x_NxD, *, plain_mlp: bool):
    """`forward(params, consts, x, names)` of a plain MLP: (hidden layers, logits); the kernel on the CPU."""
    xla = lambda: forward(params, consts, x_NxD, names)
    if not plain_mlp:
        return xla()
    return native.dispatch("mlp", lambda: kernel_forward(params, _codes(consts, names), consts.masks, x_NxD), xla)


def loss_grads(loss_fn, params, consts: ModelConsts, names: tuple[str, ...], x_NxD, y_N, idx_S, w_S, *,
               plain_mlp: bool):
    """Gradients of `loss_fn(params, consts, x[idx], y[idx], w)` (the engine's loss).

    plain_mlp: the network is the kernel's function (no quantization, no noise); otherwise, or where the
    kernel is not used, `jax.grad(loss_fn)`.
    """
    xla = lambda: jax.grad(loss_fn)(params, consts, x_NxD[idx_S], y_N[idx_S], w_S)
    if not plain_mlp:
        return xla()
    return native.dispatch(
        "mlp", lambda: kernel_grads(params, _codes(consts, names), consts.masks, x_NxD, y_N, idx_S, w_S), xla)


@dataclass(frozen=True)
class MLP:
    """The `mlp` family (ibjax.models.family): stacked MLPs padded to one program's widths.

    dims = (in_dim, *hidden_pad, n_classes). A plain network (not quantized, no noise, no dropout) may train and
    run its MI pass through the native CPU kernel (`native_kernel`, `kernel_grads`, `kernel_layers`)."""

    dims: tuple[int, ...]
    activations: tuple[str, ...]
    quantize_bits: int | None = None
    noise_std: float | None = None
    dropout: float | None = None
    kind: ClassVar[str] = "mlp"
    batches_on_cpu: ClassVar[bool] = True  # the native kernels take all networks of a device in one call
    # XLA 0.10's YNNPACK fusions of elementwise ops and reductions ran the MI pass's softmax and loss ~3x slower
    # than XLA's own loops when each core is its own device (12.6 vs ~4 ms per device-epoch for 128 networks;
    # BUILD_NOTES.md, issue 6, session 6): off for this family's chunk program (never process-wide).
    cpu_compiler_options: ClassVar[Mapping[str, str]] = MappingProxyType({"xla_cpu_experimental_ynn_fusion_type": ""})

    @property
    def layer_names(self) -> tuple[str, ...]:
        return (*(f"h{i + 1}" for i in range(len(self.dims) - 2)), "out")

    @property
    def grad_names(self) -> tuple[str, ...]:
        return self.layer_names

    @property
    def native_kernel(self) -> bool:
        """The function the native kernel computes: no quantization, noise or dropout."""
        return self.quantize_bits is None and self.noise_std is None and self.dropout is None

    @property
    def stochastic(self) -> bool:
        return self.noise_std is not None

    def init(self, key, consts: ModelConsts) -> dict:
        return init_params(key, consts, self.dims)

    def apply(self, params, consts: ModelConsts, x_NxD, key=None, train: bool = False):
        return forward(params, consts, x_NxD, self.activations, self.quantize_bits, self.noise_std, key,
                       self.dropout if train else None)

    def net_inputs(self, params, consts: ModelConsts, x_NxD, hidden: list) -> list:
        """Each hidden layer's net input W h + b (masked), from the layer below as `apply` returned it (for a
        stochastic network: its values before noise, so the net inputs are those of the noise-free centres)."""
        below = [x_NxD, *hidden[:-1]]
        return [(h @ w + b) * m for h, w, b, m in zip(below, params["w"][:-1], params["b"][:-1], consts.masks)]

    def contexts(self, consts: ModelConsts, hidden: list) -> list[tuple]:
        # Static True when every activation of the program is bounded: estimators may then skip range passes.
        bounded = True if all(a in BOUNDED_RANGES for a in self.activations) else consts.bounded
        return [(m > 0, consts.nat_lo, consts.nat_hi, bounded) for m in consts.masks]

    def grad_leaves(self, grads) -> list[list]:
        return [[w] for w in grads["w"]]

    def affine_layers(self, consts: ModelConsts) -> list:
        """Per measured layer (hidden, then the output's logits), whether it is an affine function of the input:
        all of them for a linear network (activation linear, neither quantized nor noisy), none otherwise."""
        n = len(self.dims) - 1
        if self.quantize_bits is not None or self.noise_std is not None or "linear" not in self.activations:
            return [jnp.bool_(False)] * n
        return [consts.act_id == self.activations.index("linear")] * n

    def kernel_grads(self, loss_fn, params, consts, x_NxD, y_N, idx_S, w_S):
        return loss_grads(loss_fn, params, consts, self.activations, x_NxD, y_N, idx_S, w_S, plain_mlp=True)

    def kernel_layers(self, params, consts, x_NxD, *, use_kernel: bool):
        return forward_layers(params, consts, self.activations, x_NxD, plain_mlp=use_kernel)
