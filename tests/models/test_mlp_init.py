"""The initialisation contract of the stacked MLP: W[l][i, j] comes from the key folded with (l, i, j), scaled by
the true fan-in, padded entries 0; so a network's weights do not depend on its bucket's padding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ibjax.models.mlp import init_params, make_consts, stack_consts


def test_each_weight_comes_from_its_own_folded_key():
    hidden, pad = (10, 7, 5, 4, 3), (12, 9, 5, 4, 3)
    dims = (12, *pad, 2)
    consts = make_consts(hidden, "tanh", ("tanh",), 12, pad)
    key = jax.random.PRNGKey(11)
    params = init_params(key, consts, dims)
    true_dims = (12, *hidden, 2)
    for layer in range(len(dims) - 1):
        w = np.asarray(params["w"][layer])
        for i, j in [(0, 0), (true_dims[layer] - 1, true_dims[layer + 1] - 1), (2, 1)]:
            k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, layer), i), j)
            z = jax.random.truncated_normal(k, -2.0, 2.0, dtype=jnp.float32)
            want = z / jnp.sqrt(jnp.float32(true_dims[layer]))  # float32, as the engine divides
            np.testing.assert_allclose(w[i, j], want, rtol=2e-7)  # one float32 rounding of the division
        real = np.zeros_like(w, bool)
        real[: true_dims[layer], : true_dims[layer + 1]] = True
        assert np.all(w[~real] == 0) and np.all(np.abs(w[real]) <= 2 / np.sqrt(true_dims[layer]))
        assert np.all(np.asarray(params["b"][layer]) == 0)


def test_stacked_constants_are_each_models_own():
    models = [((10, 7, 5, 4, 3), "tanh"), ((12, 8, 5, 4, 3), "relu"), ((3, 3, 3, 3, 3), "sigmoid")]
    names, pad = ("relu", "sigmoid", "tanh"), (12, 8, 5, 4, 3)
    stacked = stack_consts(models, names, 12, pad)
    for m, (hidden, act) in enumerate(models):
        one = make_consts(hidden, act, names, 12, pad)
        for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(stacked)):
            np.testing.assert_array_equal(a, b[m])
        assert [int(mask.sum()) for mask in one.masks] == list(hidden)
        assert names[int(one.act_id)] == act


def test_the_engines_initial_state_program_draws_what_the_default_compile_draws():
    """The engine compiles its initial-state program with INIT_CPU_OPTIONS on the CPU (faster to compile): the
    weights, optimizer states and keys must be bit-identical to the same program compiled with XLA's defaults,
    in a stack (the MLP here; a conv net and a Flax module were checked the same way, BUILD_NOTES.md)."""
    from ibjax.train import Engine, Networks
    from ibjax.train.engine import INIT_CPU_OPTIONS
    from tests.helpers import tiny_program

    names = ("relu", "sigmoid", "tanh")
    eng = Engine(tiny_program((12, 8, 5, 4, 3), names))
    # The options this XLA knows (jax 0.11's has no legacy emitters any more: it compiles without them).
    from ibjax.train.engine import known_cpu_options

    known = known_cpu_options(INIT_CPU_OPTIONS)
    assert eng.init_options == (known if jax.default_backend() == "cpu" else {})
    assert "xla_backend_optimization_level" in known
    assert known_cpu_options({**INIT_CPU_OPTIONS, "xla_no_such_option": 1}) == known
    n = 4
    consts = stack_consts([((10, 7, 5, 4, 3), names[k % 3]) for k in range(n)], names, 12, (12, 8, 5, 4, 3))
    nets = Networks.of(list(range(7, 7 + n)), [1e-3] * n, 0.9)
    got = jax.tree.leaves(jax.device_get(eng.init_state(nets, consts)))
    want = jax.tree.leaves(jax.device_get(jax.jit(jax.vmap(eng.init_one))(nets, consts)))
    assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))
