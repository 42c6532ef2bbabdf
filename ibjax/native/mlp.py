"""The engine's MLP from the native kernel (`mlp.cc`), with XLA as the fallback.

- `loss_grads`: a minibatch's gradients (every training step);
- `forward_layers`: every layer on the MI sample (every logged epoch).
On the CPU, when the kernel is built and the network is a plain MLP (no quantization, no noise: those stay
in XLA), they call the kernel; elsewhere `jax.grad` of the engine's loss and `ibjax.nets.forward`. Both
compute the same functions; they differ by float rounding only (tests/test_native_mlp.py compares them for
every activation, padded widths and partial batches).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
from jax import lax

from ibjax import native
from ibjax.nets import forward

# The kernel's activation codes (mlp.cc, enum Activation), by name.
ACTIVATION_CODES = ("tanh", "relu", "sigmoid", "softsign", "softplus", "linear", "leaky_relu", "elu", "gelu")


def enabled() -> bool:
    """Whether programs traced now use the kernel on the CPU (IBJAX_NATIVE_TRAIN=0 or IBJAX_NATIVE=0: no)."""
    return os.environ.get("IBJAX_NATIVE_TRAIN", "1") != "0" and native.available()


def kernel_grads(params: dict, act_code, masks, x_NxD, y_N, idx_S, w_S) -> dict:
    """Gradients of sum_s w_s CE(f(x[idx_s]), y[idx_s]) / sum_s w_s with respect to every weight and bias.

    params {"w": [W_l [d_l, d_l+1]], "b": [b_l]}; act_code int32 (ACTIVATION_CODES); masks: per hidden layer
    [H_l]. Vmaps over models (the kernel loops over the model axis itself); CPU only.
    """
    if not native.available():
        raise RuntimeError("the native MLP kernel is not available (IBJAX_NATIVE=0 or no C++ compiler)")
    ws, bs = params["w"], params["b"]
    flat = [a for pair in zip(ws, bs) for a in pair]
    mask_all = jnp.concatenate(masks) if masks else jnp.zeros((0,), jnp.float32)
    out = jax.ffi.ffi_call("ibjax_mlp_grads", [jax.ShapeDtypeStruct(a.shape, jnp.float32) for a in flat],
                           vmap_method="expand_dims")(
        x_NxD.astype(jnp.float32), y_N.astype(jnp.int32), idx_S.astype(jnp.int32), w_S.astype(jnp.float32),
        jnp.asarray(act_code, jnp.int32), mask_all.astype(jnp.float32), *flat)
    return {"w": list(out[0::2]), "b": list(out[1::2])}


def kernel_forward(params: dict, act_code, masks, x_NxD) -> tuple[list, jnp.ndarray]:
    """Hidden layers [N, H_l] (masked) and logits [N, C] of one model (vmaps over models); CPU only."""
    if not native.available():
        raise RuntimeError("the native MLP kernel is not available (IBJAX_NATIVE=0 or no C++ compiler)")
    ws, bs = params["w"], params["b"]
    n = x_NxD.shape[0]
    mask_all = jnp.concatenate(masks) if masks else jnp.zeros((0,), jnp.float32)
    out = jax.ffi.ffi_call("ibjax_mlp_forward", [jax.ShapeDtypeStruct((n, w.shape[1]), jnp.float32) for w in ws],
                           vmap_method="expand_dims")(
        x_NxD.astype(jnp.float32), jnp.asarray(act_code, jnp.int32), mask_all.astype(jnp.float32),
        *[a for pair in zip(ws, bs) for a in pair])
    return list(out[:-1]), out[-1]


def _codes(consts, names):
    return jnp.asarray([ACTIVATION_CODES.index(n) for n in names], jnp.int32)[consts.act_id]


def forward_layers(params, consts, names: tuple[str, ...], x_NxD, *, plain_mlp: bool):
    """`ibjax.nets.forward(params, consts, x, names)` of a plain MLP: (hidden layers, logits)."""
    xla = lambda: forward(params, consts, x_NxD, names)
    if not (plain_mlp and enabled()):
        return xla()
    return lax.platform_dependent(cpu=lambda: kernel_forward(params, _codes(consts, names), consts.masks, x_NxD),
                                  default=xla)


def loss_grads(loss_fn, params, consts, names: tuple[str, ...], x_NxD, y_N, idx_S, w_S, *, plain_mlp: bool):
    """Gradients of `loss_fn(params, consts, x[idx], y[idx], w)` (the engine's loss).

    plain_mlp: the network is the kernel's function (no quantization, no noise); otherwise, or when the
    kernel is disabled, `jax.grad(loss_fn)`. On a non-CPU backend the same program takes `jax.grad`.
    """
    xla = lambda: jax.grad(loss_fn)(params, consts, x_NxD[idx_S], y_N[idx_S], w_S)
    if not (plain_mlp and enabled()):
        return xla()
    return lax.platform_dependent(
        cpu=lambda: kernel_grads(params, _codes(consts, names), consts.masks, x_NxD, y_N, idx_S, w_S), default=xla)
