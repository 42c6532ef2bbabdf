"""Engine invariants: vmapped == alone, padded == unpadded, no recompilation, gradient stats, divergence."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ibjax import native
from ibjax.mi import Binning
from ibjax.models.mlp import forward
from ibjax.sweep.plan import mi_epochs
from ibjax.train import Engine, Networks, run_program
from tests.helpers import (
    TISHBY_TEST_ROWS,
    assert_layers_bin_alike,
    assert_metrics_alike,
    assert_same_network_mi,
    assert_took_path,
    measured_layers,
    network,
    states_at_logged_epochs,
    tiny_bucket,
    tiny_program,
    tishby_task,
)

DATA = tishby_task().device_data()
EST = (Binning("binning30", n_classes=2), Binning("binning30_layer", range_mode="layer", n_classes=2))


def train(models, *, pad=None, names=None, optimizer="adam", batch_size=256, epochs=6, chunk=4, every=2):
    """Train `models` (dicts: seed, hidden, activation, lr) as one bucket; returns (engine, result, consts)."""
    eng, consts = tiny_bucket([(m["hidden"], m["activation"]) for m in models], pad, names, optimizer=optimizer,
                              batch_size=batch_size, estimators=EST, chunk=chunk)
    nets = Networks.of([m["seed"] for m in models], [m.get("lr", 4e-4) for m in models], 0.9)
    res = run_program(eng, nets, consts, DATA, mi_epochs(epochs, every=every), epochs)
    return eng, res, consts


def trajectory(models, **kw):
    """`train` with one chunk covering every epoch, and the states after each logged epoch (shorter runs of the
    same deterministic training through the same compiled program): what `assert_same_mi` compares."""
    epochs, every = kw.setdefault("epochs", 6), kw.setdefault("every", 2)
    eng, res, consts = train(models, chunk=epochs + 1, **kw)
    nets = Networks.of([m["seed"] for m in models], [m.get("lr", 4e-4) for m in models], 0.9)
    run = lambda n: run_program(eng, nets, consts, DATA, mi_epochs(n, every=every), n)
    return eng, res, consts, states_at_logged_epochs(run, res)


def assert_same_mi(a, i, b, j):
    """Network i of trajectory `a` and network j of trajectory `b`, the same network computed two ways (batched
    and alone, padded and tight): binned MI equal up to the rows that sit within the two computations' float
    rounding of a bin edge (counted; how such a row rounds depends on the CPU), and the recorded ranges equal to
    float rounding."""
    (eng_a, res_a, c_a, st_a), (eng_b, res_b, c_b, st_b) = a, b
    assert_same_network_mi((eng_a, c_a, DATA, res_a.mi, st_a), i, (eng_b, c_b, DATA, res_b.mi, st_b), j, (30, 30))
    np.testing.assert_allclose(res_a.mi[:, i, ..., 2:], res_b.mi[:, j, ..., 2:], rtol=1e-5, atol=1e-6)


# Three hidden layers: what these invariants hold for does not depend on depth, and each layer adds every
# estimator's code to the chunk (5 hidden layers compiled ~35 % slower on the accelerator's path).
MODELS = [
    {"seed": 0, "hidden": (10, 7, 5), "activation": "tanh", "lr": 4e-4},
    {"seed": 1, "hidden": (12, 8, 5), "activation": "relu", "lr": 1e-3},
    {"seed": 2, "hidden": (10, 7, 5), "activation": "sigmoid", "lr": 2e-3},
]


# One program's activations for every single network below: the networks alone here and the padded test's wide
# network are then one compiled program (its second use a persistent-cache hit), not one per test.
NAMES = sorted({m["activation"] for m in MODELS})
WIDE = (20, 14, 10)


def test_vmapped_equals_each_trained_alone(code_path):
    together = trajectory(MODELS)
    assert_took_path(together[0], code_path)
    for i, m in enumerate(MODELS):
        alone = trajectory([m], pad=WIDE, names=NAMES)  # alone, and padded as the padded test's wide network
        assert_metrics_alike(together[1].metrics[:, i], alone[1].metrics[:, 0], TISHBY_TEST_ROWS)
        np.testing.assert_allclose(together[1].grads[:, i], alone[1].grads[:, 0], rtol=1e-4, atol=1e-7)
        assert_same_mi(together, i, alone, 0)


def test_padded_network_equals_unpadded(code_path):
    m = {"seed": 7, "hidden": (10, 7, 5), "activation": "sigmoid"}  # sigmoid(0) != 0: masking matters
    tight = trajectory([m], pad=(10, 7, 5), names=NAMES)
    assert_took_path(tight[0], code_path)
    wide = trajectory([m], pad=WIDE, names=NAMES)
    c_tight, c_wide = tight[2], wide[2]
    assert_metrics_alike(wide[1].metrics, tight[1].metrics, TISHBY_TEST_ROWS)
    assert_same_mi(wide, 0, tight, 0)
    np.testing.assert_allclose(wide[1].grads, tight[1].grads, rtol=1e-4, atol=1e-7)
    # At init the weights are identical; the real activations agree to float32 rounding (the padded matmul
    # sums in another order) and the padded units are exactly 0.
    eng_t = Engine(tiny_program((10, 7, 5), ("sigmoid",), estimators=EST))
    eng_w = Engine(tiny_program(WIDE, ("sigmoid",), estimators=EST))
    st_t = eng_t.init_state(Networks.of([7], 1.0, 1.0), c_tight)
    st_w = eng_w.init_state(Networks.of([7], 1.0, 1.0), c_wide)
    for w_t, w_w in zip(network(st_t.params, 0)["w"], network(st_w.params, 0)["w"]):
        np.testing.assert_array_equal(np.asarray(w_w)[: w_t.shape[0], : w_t.shape[1]], np.asarray(w_t))
        outside = np.asarray(w_w).copy()
        outside[: w_t.shape[0], : w_t.shape[1]] = 0
        assert not outside.any()  # padded weights are 0
    h_t, _ = forward(network(st_t.params, 0), network(c_tight, 0), DATA.x, ("sigmoid",))
    h_w, _ = forward(network(st_w.params, 0), network(c_wide, 0), DATA.x, ("sigmoid",))
    for a, b, width in zip(h_t, h_w, (10, 7, 5)):
        np.testing.assert_allclose(np.asarray(b[:, :width]), np.asarray(a), rtol=1e-6, atol=1e-7)
        assert float(jnp.abs(b[:, width:]).max()) == 0.0


def test_no_recompilation_after_first_chunk():
    eng, res, _ = train(MODELS[:2], epochs=20, chunk=5)  # 5 chunks through one ahead-of-time executable
    assert eng.trace_count == 1
    assert res.mi_epochs.tolist() == list(range(0, 21, 2))
    # The jitted chunk fed its own output state: a dtype, weak-type or sharding drift would retrace here (a fresh
    # engine: the chunks above ran through the ahead-of-time executable, not the jitted function).
    eng, consts = tiny_bucket([(m["hidden"], m["activation"]) for m in MODELS[:2]], estimators=EST, chunk=5)
    n = len(MODELS[:2])
    state = eng.init_state(Networks.of(np.arange(n), 1e-3), consts)
    # Placed as run_program places it: the model axis split over the local devices.
    by_model = NamedSharding(Mesh(np.asarray(jax.local_devices()), ("model",)), P("model"))
    state, consts = jax.device_put((state, consts), by_model)
    mask = jnp.ones(15, bool)
    for start in (0, 5, 10):
        state, _ = eng.run_chunk(state, consts, DATA, mask, jnp.int32(15), jnp.int32(start))
    assert eng.trace_count == 1  # one trace for the three jitted calls


def test_learning_rate_varies_without_recompiling_and_matters():
    models = [dict(MODELS[0], lr=lr) for lr in (1e-4, 1e-2)]
    eng, res, _ = train(models)
    assert eng.trace_count == 1
    assert abs(res.metrics[-1, 0, 0] - res.metrics[-1, 1, 0]) > 1e-3


def test_full_batch_gradient_has_no_spread():
    _, res, _ = train(MODELS[:1], batch_size=tishby_task().train_idx.size, optimizer="sgd")
    assert np.all(res.grads[..., 1] == 0.0) and np.all(res.grads[..., 0] > 0)


def test_minibatch_gradient_stats_match_a_plain_loop():
    """Recompute epoch 1's per-batch gradients in plain JAX with the engine's own batches."""
    eng, res, consts = train([dict(MODELS[0], lr=0.05)], epochs=1, every=1, optimizer="sgd")
    prog = eng.prog
    c0 = network(consts, 0)
    st = eng.init_state(Networks.of([0], 0.05), consts)
    st = network(st, 0)
    from ibjax.train.shuffle import feistel_permutation

    _, k_perm = jax.random.split(st.key)
    order = np.asarray(feistel_permutation(k_perm, prog.n_train))
    params, grads = st.params, []
    grad = jax.jit(jax.grad(eng.loss))  # compiled once per batch shape (op by op: ~270 small compiles, ~12 s)
    sgd = jax.jit(lambda params, g: jax.tree.map(lambda p, gg: p - 0.05 * gg, params, g))
    for b in range(prog.n_batches):
        idx = order[b * 256:(b + 1) * 256]
        g = grad(params, c0, DATA.x[DATA.train_idx[idx]], DATA.y[DATA.train_idx[idx]], jnp.ones(len(idx)))
        grads.append([np.asarray(w) for w in g["w"]])
        params = sgd(params, g)
    for layer in range(len(grads[0])):
        stack = np.stack([g[layer] for g in grads])
        assert np.isclose(res.grads[0, 0, layer, 0], np.linalg.norm(stack.mean(0)), rtol=1e-4)
        assert np.isclose(res.grads[0, 0, layer, 1], np.linalg.norm(stack.std(0)), rtol=1e-3)


def test_diverging_network_does_not_poison_the_others():
    good = {"seed": 0, "hidden": (10, 7, 5), "activation": "linear", "lr": 1e-2}
    bad = dict(good, seed=1, lr=1e6)
    both_run = trajectory([good, bad], optimizer="sgd")
    alone_run = trajectory([good], optimizer="sgd")
    both, alone = both_run[1], alone_run[1]
    assert not np.isfinite(both.metrics[-1, 1, 0])
    assert_metrics_alike(both.metrics[:, 0], alone.metrics[:, 0], TISHBY_TEST_ROWS, atol=0)
    assert_same_mi(both_run, 0, alone_run, 0)
    assert both.params_finite.tolist() == [True, False]
    # The same check as an accelerator makes it (reduced on the device rather than read on the host).
    from ibjax.train.loop import _all_finite_on_device

    assert np.asarray(_all_finite_on_device(both.state.params)).tolist() == [True, False]


def test_training_runs_in_float32(code_path):
    """x64 is on for the MI bookkeeping only: no float64 may leak into the training step (on a GPU float64 runs
    at a fraction of float32's rate), on the CPU's path or on the accelerator's."""
    eng, consts = tiny_bucket([(m["hidden"], m["activation"]) for m in MODELS[:2]], estimators=EST)
    state = eng.init_state(Networks.of([0, 1], 1e-3), consts)
    jaxpr = str(jax.make_jaxpr(jax.vmap(eng.train_epoch, in_axes=(0, 0, None)))(state, consts, DATA))
    assert "f64" not in jaxpr
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(state.params))
    # The step traced is the path's own (traced, not compiled: the other tests run both paths' chunks).
    native_step = "ibjax_mlp_grads" in jaxpr
    cpu_native = native.use("mlp") and jax.default_backend() == "cpu"
    assert not native_step if code_path == "accelerator" else native_step == cpu_native


def test_net_input_binning_bins_the_pre_activations():
    """OnNetInput in the engine equals the wrapped binning applied to W h + b computed here from the weights
    (tanh, 3 models, one padded): the engine hands each layer its own net input, the output layer its logits."""
    from ibjax.mi import LayerContext, OnNetInput

    ests = (OnNetInput("binning30_layer_net", Binning("b", 30, "layer", n_classes=2), 2),
            Binning("binning30_layer", 30, "layer", n_classes=2))
    models = [((10, 7, 5), "tanh"), ((12, 8, 5), "tanh"), ((12, 8, 5), "relu")]
    eng, consts = tiny_bucket(models, estimators=ests)
    n = len(models)
    st = eng.init_state(Networks.of(np.arange(n), 3.0, 1.0), consts)  # lr: unused
    measure = jax.jit(eng.measure)  # as the chunk runs it (op by op it compiled every small op anew)
    for m in range(n):
        params, c = network(st.params, m), network(consts, m)
        mi, _ = measure(params, c, DATA)
        nets = measured_layers(eng, c, params, DATA, net_inputs=True)
        h = DATA.x
        for layer, (w, b) in enumerate(zip(params["w"], params["b"])):
            z = h @ w + b
            real = np.asarray(c.masks[layer]) > 0 if layer < len(c.masks) else np.ones(z.shape[1], bool)
            ctx = LayerContext(jnp.asarray(real), jnp.float32(-1), jnp.float32(1), jnp.bool_(False))
            want = Binning("b", 30, "layer", n_classes=2)(jnp.where(real, z, 0.0), DATA.y, ctx)
            # The engine's layers may come from the native kernel (another summation order): equal up to the rows
            # within that rounding of a bin edge (as in assert_same_mi).
            assert_layers_bin_alike(np.asarray(nets[layer])[:, real], np.asarray(z)[:, real], mi[layer, 0],
                                    [want.i_xt, want.i_ty, want.lo, want.hi], 30, what=f"network {m} layer {layer}")
            if layer < len(c.masks):
                h = jnp.tanh(z) if models[m][1] == "tanh" else jax.nn.relu(z)
                h = h * c.masks[layer]
        # Net inputs spread where activations saturate: the net-input range is wider than tanh's [-1, 1].
        if models[m][1] == "tanh":
            assert float(mi[0, 0, 3] - mi[0, 0, 2]) > float(mi[0, 1, 3] - mi[0, 1, 2])


def test_a_process_reuses_the_engine_of_an_equal_program(monkeypatch):
    """engine_for: equal Programs share one Engine (its compiled chunks), unless a switch read at trace time
    differs; only the ENGINES_KEPT most recently used Programs are kept."""
    from ibjax.train import engine as engine_module

    monkeypatch.setattr(engine_module, "_ENGINES", type(engine_module._ENGINES)())
    a, b = tiny_program(chunk=3), tiny_program(chunk=3)
    assert a == b and a is not b
    eng = engine_module.engine_for(a)
    assert engine_module.engine_for(b) is eng
    monkeypatch.setenv("IBJAX_NATIVE_TRAIN", "0")  # traced with the XLA path: another program
    assert engine_module.engine_for(b) is not eng
    monkeypatch.delenv("IBJAX_NATIVE_TRAIN")
    assert engine_module.engine_for(b) is eng
    for chunk in range(10, 10 + engine_module.ENGINES_KEPT):
        engine_module.engine_for(tiny_program(chunk=chunk))
    assert engine_module.engine_for(a) is not eng  # dropped, least recently used


def test_programs_that_initialize_alike_share_one_initial_state_program():
    """The initial state depends on the family, the optimizer and the weight-decay switch only: Programs that differ
    elsewhere (chunk length, estimators) share its jitted program (one compile per argument shapes); another
    optimizer or family gets its own."""
    a = Engine(tiny_program(chunk=3))
    b = Engine(tiny_program(chunk=5, estimators=EST))
    assert a.init_state is b.init_state
    assert Engine(tiny_program(chunk=3, optimizer="sgd")).init_state is not a.init_state
    assert Engine(tiny_program((12, 8, 5), chunk=3)).init_state is not a.init_state


def test_the_chunk_keeps_its_familys_options_where_xla_lacks_another():
    """Only the compiler options this XLA knows are passed (jax 0.11's XLA has no legacy emitters): the MLP
    family's own (YNNPACK fusions off: the MI pass's softmax ran ~3x slower with them) still apply to its chunk,
    where an all-or-nothing fallback had dropped them with the unknown one."""
    from ibjax.models.mlp import MLP

    eng, consts = tiny_bucket([((10, 7, 5), "tanh")], chunk=2)
    mesh, args = eng.abstract_chunk_args(consts, DATA, 4)
    chunk = eng.compiled_chunk(mesh, *args)
    if jax.default_backend() == "cpu":
        assert dict(MLP.cpu_compiler_options).items() <= dict(chunk.options).items()
        assert "__ynn_fusion" not in chunk.executable.as_text()
