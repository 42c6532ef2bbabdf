"""The native MLP kernel (ibjax/native/mlp.cc) against JAX: gradients against `jax.grad` of the engine's loss,
the forward pass against `ibjax.models.mlp.forward`, for every activation, padded widths, partial batches and
several models with different activations in one call; and a short training run against the XLA path."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ibjax import native
from ibjax.models import ACTIVATIONS
from ibjax.models.mlp import forward, init_params, make_consts
from ibjax.native.mlp import ACTIVATION_CODES, kernel_forward, kernel_grads
from ibjax.train import Engine, Networks
from tests.helpers import network, tiny_bucket, tiny_program, tishby_task

DIMS = (12, 10, 7, 5, 4, 3, 2)
HIDDEN_PAD = DIMS[1:-1]


def test_kernel_builds_here():
    # CI has a C++ compiler; without the kernel, training falls back to XLA (several times slower).
    assert native.available()


def test_codes_cover_every_activation():
    assert set(ACTIVATION_CODES) == set(ACTIVATIONS)


def _models(names, true_widths, seed=0):
    """Stacked params/consts of one model per activation name, with lively weights (scaled, random biases)
    so that every activation is exercised away from 0."""
    rng = np.random.default_rng(seed)
    consts = [make_consts(true_widths, n, tuple(names), 12, HIDDEN_PAD) for n in names]
    params = []
    for k, c in enumerate(consts):
        p = init_params(jax.random.PRNGKey(k), c, DIMS)
        params.append({"w": [w * 2.5 for w in p["w"]],
                       "b": [jnp.asarray(rng.normal(size=b.shape) * 0.3, jnp.float32) for b in p["b"]]})
    stack = lambda xs: jax.tree.map(lambda *a: jnp.stack(a), *xs)
    return stack(params), stack(consts)


def _rel_err(got, want):
    """Largest difference relative to the largest entry of `want` overall (a leaf that is a near-cancelling
    sum, such as the output bias gradient, is small in itself and carries the others' rounding)."""
    got, want = jax.device_get((jax.tree.leaves(got), jax.tree.leaves(want)))  # NumPy: no program per leaf shape
    scale = max(float(np.max(np.abs(w))) for w in want)
    return max(float(np.max(np.abs(np.asarray(g, np.float64) - w))) for g, w in zip(got, want)) / scale


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.integers(0, 2, (700, 12)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 2, 700).astype(np.int32))
    return x, y


@pytest.mark.parametrize("batch", [37, 256])  # 37: not a multiple of the kernel's 16 lanes
def test_gradients_equal_jax_grad(data, batch):
    x, y = data
    names = list(ACTIVATION_CODES)
    params, consts = _models(names, (10, 6, 5, 3, 2))  # padded units in every hidden layer
    loss = Engine(tiny_program(HIDDEN_PAD, names, optimizer="sgd", n_train=700, batch_size=batch, chunk=1)).loss
    rng = np.random.default_rng(batch)
    idx = jnp.asarray(rng.integers(0, 700, (len(names), batch)).astype(np.int32))
    w = jnp.asarray((np.arange(batch) < batch - 5).astype(np.float32))  # a partial last batch: padding weight 0
    codes = jnp.asarray([ACTIVATION_CODES.index(n) for n in names], jnp.int32)

    want = jax.jit(jax.vmap(lambda p, c, i: jax.grad(loss)(p, c, x[i], y[i], w)))(params, consts, idx)
    got = jax.jit(jax.vmap(lambda p, a, c, i: kernel_grads(p, a, c.masks, x, y, i, w)))(params, codes, consts, idx)
    for m, name in enumerate(names):
        assert _rel_err(network(got, m), network(want, m)) < 2e-5, name
    # Padded units receive exactly zero gradient (so they stay zero, as in the XLA path).
    assert float(jnp.max(jnp.abs(got["w"][3][:, :, 3:]))) == 0.0 and float(jnp.max(jnp.abs(got["b"][3][:, 3:]))) == 0.0


def test_forward_equals_nets_forward(data):
    x, _ = data  # 700 rows: not a multiple of the kernel's block of 256
    names = list(ACTIVATION_CODES)
    params, consts = _models(names, (10, 7, 4, 4, 1), seed=3)
    codes = jnp.asarray([ACTIVATION_CODES.index(n) for n in names], jnp.int32)
    want = jax.vmap(lambda p, c: forward(p, c, x, tuple(names)))(params, consts)
    got = jax.jit(jax.vmap(lambda p, a, c: kernel_forward(p, a, c.masks, x)))(params, codes, consts)
    for m, name in enumerate(names):
        assert _rel_err(network(got, m), network(want, m)) < 1e-5, name


def test_nan_parameters_give_nan(data):
    # The engine marks a network diverged when its parameters stop being finite: NaN must propagate.
    x, y = data
    params, consts = _models(["tanh", "relu"], HIDDEN_PAD)
    params["w"][0] = params["w"][0].at[:, 0, 0].set(jnp.nan)
    codes = jnp.asarray([0, 1], jnp.int32)
    idx = jnp.zeros((2, 16), jnp.int32)
    g = jax.vmap(lambda p, a, c, i: kernel_grads(p, a, c.masks, x, y, i, jnp.ones(16)))(params, codes, consts, idx)
    hidden, logits = jax.vmap(lambda p, a, c: kernel_forward(p, a, c.masks, x))(params, codes, consts)
    assert bool(jnp.all(jnp.isnan(logits))) and bool(jnp.isnan(g["w"][0]).any())


def test_bad_indices_are_refused(data):
    x, y = data
    params, consts = _models(["tanh"], HIDDEN_PAD)
    one = network(params, 0)
    with pytest.raises(Exception, match="outside x"):
        jax.block_until_ready(kernel_grads(one, 0, [m[0] for m in consts.masks], x, y,
                                           jnp.full(8, 700, jnp.int32), jnp.ones(8)))


def test_training_matches_the_xla_path(monkeypatch):
    """Five epochs of the engine's own training loop, kernel vs XLA: the same networks to float rounding."""
    optimizer = "sgd"
    models = [(HIDDEN_PAD, "tanh"), (HIDDEN_PAD, "relu")]
    engine, consts = tiny_bucket(models, optimizer=optimizer, chunk=1)
    prog = engine.prog  # a fresh Engine per path below: the environment is read when it traces
    # Moderate rates: at SGD lr 0.3 the tanh network's dynamics are chaotic and *any* rounding difference
    # (1e-7 after one epoch) grows ~30x per epoch (measured), which would say nothing about the kernel.
    lr = 1e-2 if optimizer == "adam" else 0.05
    data = tishby_task().device_data()

    def train(native_on: bool):
        monkeypatch.setenv("IBJAX_NATIVE_TRAIN", "1" if native_on else "0")
        eng = Engine(prog)  # traced now: the environment decides the path
        state = eng.init_state(Networks.of([0, 1], lr), consts)
        epoch = jax.jit(jax.vmap(eng.train_epoch, in_axes=(0, 0, None)))
        for _ in range(5):
            state, grads = epoch(state, consts, data)
        return state.params, grads

    (p_nat, g_nat), (p_xla, g_xla) = train(True), train(False)
    assert _rel_err(p_nat, p_xla) < 1e-4 and _rel_err(g_nat, g_xla) < 1e-3
