"""The stacked-MLP kernel (`mlp.cc`) as XLA FFI calls: a minibatch's gradients and the forward pass of every
layer. `ibjax.models.mlp` calls them for plain MLPs on the CPU (through `ibjax.native.dispatch`) and its own
XLA functions elsewhere; both compute the same functions, to float rounding (the tests compare them for every
activation, padded widths and partial batches).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ibjax import native

# The kernel's activation codes (mlp.cc, enum Activation), by name.
ACTIVATION_CODES = ("tanh", "relu", "sigmoid", "softsign", "softplus", "linear", "leaky_relu", "elu", "gelu", "swish")


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
    out = jax.ffi.ffi_call(native.TRAINING_CALL, [jax.ShapeDtypeStruct(a.shape, jnp.float32) for a in flat],
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
