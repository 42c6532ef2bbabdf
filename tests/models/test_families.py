"""Model families: a stacked user Flax module trains as each network alone; bad user modules exit 2 by name."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import yaml

from ibjax.data.task import load_task
from ibjax.spec import validate
from ibjax.sweep.__main__ import main
from ibjax.sweep.plan import expand_grid, make_buckets, mi_epochs
from ibjax.sweep.programs import Programs, bucket_consts
from ibjax.train import Networks, run_program
from tests.helpers import (
    ROOT,
    TISHBY_TEST_ROWS,
    assert_gradient_stats_close,
    assert_metrics_alike,
    assert_same_network_mi,
    assert_took_path,
    assert_trajectories_bin_alike,
    states_at_logged_epochs,
)

DIGITS_TEST_ROWS = 359  # 8x8 digits (1 797 rows), 80 % train: the test set is the smaller

USER_MODEL = {
    "name": "fam", "data": {"dataset": "digits", "train_fraction": 0.8},
    "model": {"kind": "flax", "module": f"{ROOT}/examples/user_model.py:TinyCNN",
              "kwargs": {"channels": 4, "width": 8, "dropout": 0.2}},
    # one chunk covers 0-4 epochs: the states at every logged epoch come from one compiled program
    "train": {"epochs": 4, "batch_size": 64, "learning_rate": 3e-3, "chunk_epochs": 5},
    "mi": {"schedule": {"every": 2}}, "grid": {"seed": 3}, "output": {"plots": False},
}


def train(raw, runs=None):
    """Train the first bucket of `raw` (or of `runs`); returns (runs, result, family, the run as
    `assert_same_network_mi` takes it: with the states after each logged epoch, from shorter runs of the same
    training through the same compiled program)."""
    spec = validate(raw)
    task = load_task(spec.data)
    runs = runs or expand_grid(spec)
    b = make_buckets(runs)[0]
    programs = Programs(spec, task, task.device_data())
    eng, consts, data = programs.engine(b), bucket_consts(b, task), programs.data_of(b)
    nets = Networks.of([r.seed for r in b.runs], [r.learning_rate for r in b.runs])
    run = lambda n: run_program(eng, nets, consts, data, mi_epochs(n, every=2), n)
    res = run(spec.train.epochs)
    return runs, res, eng.family, (eng, consts, data, res.mi, states_at_logged_epochs(run, res))


def test_stacked_user_module_trains_as_each_alone(code_path):
    """3 networks in one program (sharded over the host devices) == each trained alone (one device); looped on
    the CPU, batched (vmap) on an accelerator's path."""
    runs, together, fam, together_run = train(USER_MODEL)
    assert_took_path(together_run[0], code_path)
    assert fam.layer_names == ("features", "hidden", "out")  # sow order, not alphabetical
    assert together.mi.shape[2] == 3
    for i, run in enumerate(runs):
        _, alone, _, alone_run = train(USER_MODEL, [run])
        assert_metrics_alike(together.metrics[:, i], alone.metrics[:, 0], DIGITS_TEST_ROWS, rtol=1e-4, atol=1e-5)
        assert_gradient_stats_close(together.grads[:, i], alone.grads[:, 0])
        assert_same_network_mi(together_run, i, alone_run, 0, (30,))
    assert together.metrics[-1, :, 1].min() > together.metrics[0, :, 1].max()  # it learns


def test_a_grid_over_the_modules_constructor_keywords(tmp_path, capsys):
    """grid.kwargs: one cell and one program per keyword set, merged over model.kwargs; the network is the same
    (same network id, same training) as one built from model.kwargs alone; runs.parquet has the keywords used."""
    import json

    from ibjax.rundir import load
    from ibjax.sweep.plan import network_ids

    raw = {**USER_MODEL, "train": {**USER_MODEL["train"], "epochs": 2}, "grid": {"seed": 1, "kwargs": [
        {"width": 8}, {"width": 12, "channels": 2}]}}
    spec = validate(raw)
    runs = expand_grid(spec)
    assert [r.cell().split(",")[-1] for r in runs] == ["kwargs=width:8", "kwargs=channels:2 width:12"]
    buckets = make_buckets(runs)
    assert len(buckets) == 2  # another module, another program
    task = load_task(spec.data)
    programs = Programs(spec, task, task.device_data())
    built = {b.runs[0].cell(): json.loads(programs.engine(b).family.kwargs_json) for b in buckets}
    built = [built[r.cell()] for r in runs]  # in grid order
    assert built == [{"channels": 4, "dropout": 0.2, "width": 8}, {"channels": 2, "dropout": 0.2, "width": 12}]
    # the same network when the keywords come from model.kwargs alone
    plain = validate({**raw, "model": {**raw["model"], "kwargs": built[1]}, "grid": {"seed": 1}})
    assert network_ids(runs[1:], spec) == network_ids(expand_grid(plain), plain)
    assert network_ids(runs[:1], spec) != network_ids(runs[1:], spec)

    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    assert main([str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"), "--quiet"]) == 0, capsys.readouterr().err
    rd = load(tmp_path / "o")
    assert [json.loads(k) for k in rd.runs.sort_values("cell", key=lambda c: c.str.len()).kwargs] == built
    assert "width:8" in (tmp_path / "o" / "REPORT.md").read_text()  # cells named by their keywords
    # grid.kwargs is the flax family's axis: elsewhere a clear error naming it
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"grid": {"seed": 1, "kwargs": [{"width": 8}]}}))
    assert main([str(bad), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert "grid.kwargs: only for model.kind 'flax'" in capsys.readouterr().err


BAD_MODULES = {
    "missing file": ("no_such_file.py:Net", None, "file not found"),
    "no such class": ("{examples}/user_model.py:Nope", None, "has no 'Nope'"),
    "not importable": ("no_such_pkg.models:Net", None, "no module named 'no_such_pkg'"),
    "import fails": ("{tmp}/broken.py:Net", "raise RuntimeError('boom')\n", "RuntimeError: boom"),
    "wrong shape": ("{tmp}/shape.py:Net", """
from flax import nnx
class Net(nnx.Module):
    def __init__(self, rngs):
        self.d = nnx.Linear(64, 3, rngs=rngs)
    def __call__(self, x):
        h = self.d(x.reshape(x.shape[0], -1))
        self.sow(nnx.Intermediate, "h", h)
        return h
""", "expected logits of shape (batch, 10)"),
    "no layer": ("{tmp}/silent.py:Net", """
from flax import nnx
class Net(nnx.Module):
    def __init__(self, rngs):
        self.d = nnx.Linear(64, 10, rngs=rngs)
    def __call__(self, x):
        return self.d(x.reshape(x.shape[0], -1))
""", "records no layer to measure"),
}


@pytest.mark.parametrize("case", list(BAD_MODULES))
def test_bad_user_module_exits_2_naming_it(capsys, tmp_path, case):
    ref, source, hint = BAD_MODULES[case]
    if source is not None:
        (tmp_path / ref.split("/")[-1].split(":")[0]).write_text(source)
    ref = ref.format(tmp=tmp_path, examples=ROOT / "examples")
    raw = {**USER_MODEL, "model": {"kind": "flax", "module": ref}}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    code = main([str(spec), "--out", str(tmp_path / "o"), "--no-report", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and hint in err and "model.module" in err
    assert not (tmp_path / "o").exists()


def test_conv_needs_images(capsys, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"model": {"kind": "conv"}, "train": {"epochs": 2}}))
    code = main([str(spec), "--out", str(tmp_path / "o"), "--no-report", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "needs image data" in err and "Traceback" not in err


FLAX_MLP = """
import jax.numpy as jnp
from flax import nnx


class MLP(nnx.Module):
    '''A plain tanh MLP, written as a user would write it: the mlp family's network in Flax.'''

    def __init__(self, hidden, n_in, n_out, rngs):
        dims = [n_in, *hidden]
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])])
        self.out = nnx.Linear(dims[-1], n_out, rngs=rngs)

    def __call__(self, x):
        h = x
        for i, layer in enumerate(self.hidden):
            h = jnp.tanh(layer(h))
            self.sow(nnx.Intermediate, f"h{i + 1}", h)
        return self.out(h)
"""


def test_mlp_kind_and_the_same_flax_mlp_follow_one_trajectory(tmp_path):
    """The mlp kind (native C++ kernels on the CPU) and a user's Flax MLP given the mlp's initial parameters
    train identically to float rounding: same losses, accuracies, gradient statistics, layers, and binned MI up
    to the rows that sit within the two paths' rounding of a bin edge (counted here at every logged epoch: how
    a CPU rounds such a row differs between the native kernel and XLA, between AVX2 and AVX-512)."""
    (tmp_path / "flax_mlp.py").write_text(FLAX_MLP)
    hidden = [8, 6, 4]
    # One chunk covers every length trained here (31 steps), so each engine compiles once for 10, 20, 30 epochs.
    base = {"name": "eq", "data": {"dataset": "tishby12", "train_fraction": 0.85},
            "train": {"epochs": 30, "batch_size": 256, "learning_rate": 1e-2, "optimizer": "adam",
                      "chunk_epochs": 31},
            # Binning over each layer's range, and over tanh's [-1, 1] (range auto would read the mlp's activation,
            # which the Flax module does not declare).
            "mi": {"schedule": {"every": 10}, "estimators": [{"kind": "binning", "n_bins": 30, "range": "layer"},
                                                             {"kind": "binning", "n_bins": 30, "range": [-1, 1]}]},
            "grid": {"seed": 2}, "output": {"plots": False}}
    mlp_raw = {**base, "model": {"hidden": hidden, "activation": "tanh"}}
    flax_raw = {**base, "model": {"kind": "flax", "module": f"{tmp_path}/flax_mlp.py:MLP",
                                  "kwargs": {"hidden": hidden, "n_in": 12, "n_out": 2}}}

    def program(raw):
        spec = validate(raw)
        task = load_task(spec.data)
        b = make_buckets(expand_grid(spec))[0]
        programs = Programs(spec, task, task.device_data())
        return spec, b, programs.engine(b), bucket_consts(b, task), programs.data_of(b)

    def train(spec, b, eng, consts, data, epochs=30):
        schedule = mi_epochs(30, every=10)
        nets = Networks.of([r.seed for r in b.runs], [r.learning_rate for r in b.runs])
        return run_program(eng, nets, consts, data, schedule[schedule <= epochs], epochs)

    mlp = program(mlp_raw)
    flax = program(flax_raw)
    _, b, eng_m, consts_m, data = mlp
    assert eng_m.family.kind == "mlp" and eng_m.family.native_kernel  # the native-kernel path
    assert flax[2].family.layer_names == eng_m.family.layer_names == ("h1", "h2", "h3", "out")
    seeds, lrs = [r.seed for r in b.runs], [r.learning_rate for r in b.runs]
    mlp_state = eng_m.init_state(Networks.of(seeds, lrs), consts_m)
    w, bias = mlp_state.params["w"], mlp_state.params["b"]
    eng_f, consts_f = flax[2], flax[3]
    flax_init = eng_f.init_state

    def init_from_mlp(*args):
        state = flax_init(*args)  # the optimizer state (Adam's zero moments) and the shuffling key of this seed
        params = {"hidden": {i: {"kernel": w[i], "bias": bias[i]} for i in range(len(hidden))},
                  "out": {"kernel": w[-1], "bias": bias[-1]}}
        assert jax.tree.structure(params) == jax.tree.structure(state.params)
        np.testing.assert_array_equal(state.key, mlp_state.key)
        return state._replace(params=params)

    eng_f.init_state = init_from_mlp
    a, f = train(*mlp), train(*flax)
    assert_metrics_alike(f.metrics, a.metrics, TISHBY_TEST_ROWS, rtol=1e-4, atol=1e-5)
    assert_gradient_stats_close(f.grads, a.grads)
    assert a.metrics[-1, :, 0].max() < a.metrics[0, :, 0].min()  # the loss fell: it trained

    # The layers each path measures (the mlp's from its native forward kernel, as its engine does), after
    # 0, 10, 20 and 30 epochs (shorter runs of the same deterministic training).
    states_m = states_at_logged_epochs(lambda e: train(*mlp, epochs=e), a)
    states_f = states_at_logged_epochs(lambda e: train(*flax, epochs=e), f)
    near = assert_trajectories_bin_alike((eng_m, consts_m, data, a.mi, states_m),
                                         (eng_f, consts_f, flax[4], f.mi, states_f), (30, 30), "mlp vs flax")
    print(f"rows within rounding of a bin edge, summed over the comparisons: {near}")


def test_conv_networks_looped_on_the_cpu_equal_the_vmapped_batch(monkeypatch):
    """On the CPU conv nets train one after another on each device (lax.map); batched (vmap) they give the same
    networks: the choice is speed and memory only."""
    raw = {"name": "loop", "data": {"dataset": "digits", "train_fraction": 0.8},
           "model": {"kind": "conv", "channels": [4, 8], "kernel_size": 3, "pool": 2, "padding": "same",
                     "hidden": [8], "activation": "tanh", "dropout": 0.1},
           "train": {"epochs": 4, "batch_size": 64, "learning_rate": 3e-3, "chunk_epochs": 5},
           "mi": {"schedule": {"every": 2}}, "grid": {"seed": 2, "activation": ["tanh", "leaky_relu"],
                                                     "weight_decay": [0.0, 1e-3]},
           "output": {"plots": False}}
    spec = validate(raw)
    task = load_task(spec.data)
    (b,) = make_buckets(expand_grid(spec))
    results, states, engines = {}, {}, {}
    for mode in ("map", "vmap"):
        monkeypatch.setenv("IBJAX_MODEL_LOOP", mode)
        programs = Programs(spec, task, task.device_data())
        eng = engines[mode] = programs.engine(b)
        assert eng.loops_models(jax.sharding.Mesh(np.asarray(jax.local_devices()), ("model",))) == (mode == "map")
        # One chunk covers 0, 2 and 4 epochs: the states at each logged epoch from one compiled program.
        nets = Networks.of([r.seed for r in b.runs], [r.learning_rate for r in b.runs], 0.0,
                           [r.weight_decay or 0.0 for r in b.runs])
        run = lambda epochs: run_program(eng, nets, bucket_consts(b, task), programs.data_of(b),
                                         mi_epochs(epochs, every=2), epochs)
        results[mode] = run(4)
        states[mode] = states_at_logged_epochs(run, results[mode])
    looped, batched = results["map"], results["vmap"]
    assert looped.metrics.shape[1] == 8
    assert_metrics_alike(looped.metrics, batched.metrics, DIGITS_TEST_ROWS, rtol=1e-4, atol=1e-5)
    assert_gradient_stats_close(looped.grads, batched.grads)
    consts, data = bucket_consts(b, task), programs.data_of(b)
    assert_trajectories_bin_alike((engines["map"], consts, data, looped.mi, states["map"]),
                                  (engines["vmap"], consts, data, batched.mi, states["vmap"]), (30,), "map vs vmap")


def test_conv_sweep_report_reads_its_layers(tmp_path):
    """A conv sweep end to end: the run table holds its channels as a setting, and the report's tables name
    the model's own layers in network order."""
    from ibjax.rundir import load

    raw = {"name": "conv_report", "data": {"dataset": "digits", "train_fraction": 0.8},
           "model": {"kind": "conv", "channels": [4, 8], "kernel_size": 3, "pool": 2, "padding": "same",
                     "hidden": [8], "activation": "tanh"},
           "train": {"epochs": 6, "batch_size": 128, "learning_rate": 3e-3, "chunk_epochs": 6},
           "mi": {"schedule": {"every": 1}}, "grid": {"seed": 2, "weight_decay": [0.0, 1e-3]},
           "output": {"plots": False}}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    assert main([str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    runs = load(tmp_path / "o").runs
    assert [list(c) for c in runs.channels] == [[4, 8]] * 4 and [list(h) for h in runs.hidden] == [[8]] * 4
    report = (tmp_path / "o" / "REPORT.md").read_text()
    for cell in ("no L2", "L2 0.001"):
        layers = [line.split("|")[2].strip() for line in report.splitlines() if line.startswith(f"| {cell} |")]
        assert layers[:4] == ["conv1", "conv2", "dense1", "out"], layers  # the all-layers table
        assert f"**{cell}, dense1**" in report  # the deepest hidden layer is the model's, not an MLP's hN


def test_a_flax_models_initial_parameters_are_its_initialisers_draws_from_the_key():
    """NNXNetwork.init hashes the key's bits over a flat counter (a smaller program): the parameters must be the
    ones the module's own initialisers draw from nnx.Rngs(key), vmapped over networks' keys as the engine draws."""
    from flax import nnx

    from ibjax.models.conv import ConvNet
    from ibjax.models.nnx_adapter import NNXNetwork

    def make(rngs):
        return ConvNet((8, 8, 1), (4,), 3, (2,), "SAME", (8,), 10, rngs=rngs)

    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    mine = jax.jit(jax.vmap(NNXNetwork(make, "conv").init))(keys)
    own = jax.jit(jax.vmap(lambda k: nnx.to_pure_dict(nnx.state(make(nnx.Rngs(k)), nnx.Param))))(keys)
    assert len(jax.tree.leaves(mine)) == 6  # a conv block, a dense layer, the output: kernels and biases
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(own), strict=True):
        np.testing.assert_array_equal(a, b)
