"""The sweep CLI as a user runs it (its `main`, and once a new interpreter), then the run directory read back."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

import ibjax
from ibjax.rundir import load
from tests.helpers import run_cli, small_spec


def test_run_directory_contract(tiny_run):
    rd = load(tiny_run)
    assert rd.manifest["status"] == "done" and rd.manifest["n_runs"] == 8
    assert {"ibjax", "jax", "jaxlib", "python", "devices"} <= set(rd.manifest["environment"])
    assert rd.spec["train"]["epochs"] == 12 and rd.spec["mi"]["estimators"][0]["n_bins"] == 30  # defaults filled
    runs = rd.runs
    assert len(runs) == 8 and runs.run_id.is_unique and runs.cell.nunique() == 4
    assert {"run_id", "network_id", "cell", "seed", "activation", "hidden", "train_acc", "test_acc",
            "diverged"} <= set(runs)
    assert runs.network_id.is_unique  # eight different networks
    # Every setting with its real type and the value training used (a user's query selects what it says).
    assert runs.batch_size.dtype == np.int64 and (runs.batch_size == 256).all() and not runs.full_batch.any()
    assert sorted({tuple(h) for h in runs.hidden}) == [(10, 7, 5), (12, 8, 5)] and (runs.depth == 3).all()
    assert len(runs.query("hidden.str[0] == 12")) == 4
    assert (runs.weight_decay == 0.0).all() and (runs.dropout == 0.0).all() and (runs.label_noise == 0.0).all()
    assert (runs.train_fraction == 0.85).all() and (runs.inputs == "original").all()
    assert (runs.n_train == rd.manifest["n_train"]).all() and runs.momentum.isna().all()  # adam: no momentum
    assert runs.quantize_bits.isna().all() and runs.channels.isna().all()  # not applicable to a float MLP
    assert not runs.diverged.any()
    epochs = [0, 3, 6, 9, 12]
    info = rd.info
    assert list(info.columns[:6]) == ["run_id", "epoch", "layer", "estimator", "i_xt", "i_ty"]
    assert len(info) == 8 * len(epochs) * 4 and sorted(info.epoch.unique()) == epochs
    assert set(info.layer) == {"h1", "h2", "h3", "out"}
    # I(X;T) = H(T) <= log2(4096); I(T;Y) <= H(Y) < 1 bit; data processing: I(T;Y) <= I(X;T).
    assert info.i_xt.between(0, 12 + 1e-9).all() and info.i_ty.between(-1e-9, 1).all()
    assert (info.i_ty <= info.i_xt + 1e-9).all()
    # tanh uses the fixed [-1, 1] range, relu its layer's own min/max; the softmax output [0, 1].
    hid = info[info.layer == "h1"].merge(runs[["run_id", "activation"]])
    assert (hid[hid.activation == "tanh"].bin_lo == -1).all()
    assert (hid[hid.activation == "relu"].bin_lo >= 0).all()
    assert (info[info.layer == "out"].bin_hi == 1).all()
    assert len(rd.metrics) == 8 * len(epochs) and rd.metrics.train_acc.between(0, 1).all()
    g = rd.gradients
    assert sorted(g.epoch.unique()) == epochs[1:] and (g.grad_mean > 0).all() and (g.grad_std > 0).all()
    np.testing.assert_allclose(g.snr, g.grad_mean / g.grad_std)
    figs = sorted((tiny_run / "figures").glob("infoplane_*.png"))
    assert len(figs) == 4 and all(f.stat().st_size > 10_000 for f in figs)


def test_set_overrides_and_out(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(small_spec()))
    out = tmp_path / "o"
    proc = run_cli("ibjax.sweep", str(spec), "--out", str(out), "--set", "train.epochs=4",
                   "--set", "grid.seed=1", "--set", "grid.activation=[sigmoid]", "--set", "output.plots=false")
    assert proc.returncode == 0, proc.stderr
    assert "epoch 4/4" in proc.stderr and "net-epochs/s" in proc.stderr and "ETA" in proc.stderr
    # Every step longer than a moment says what it does before it starts: sizing's compile, the report's steps.
    err = proc.stderr
    assert err.index("compiling its program to read the memory") < err.index("epoch 4/4")
    assert err.index("[report") > err.index("epoch 4/4") and "verdicts of 8 trajectories" in err
    rd = load(out)
    assert rd.spec["train"]["epochs"] == 4 and set(rd.runs.activation) == {"sigmoid"} and len(rd.runs) == 2
    assert not (out / "figures").exists()


def test_diverged_network_is_marked_and_others_are_kept(tmp_path):
    raw = small_spec()
    raw["train"].update(optimizer="sgd", epochs=6)
    raw["grid"] = {"seed": 1, "activation": ["linear"], "learning_rate": [0.01, 1.0e6]}
    spec = tmp_path / "d.yaml"
    spec.write_text(yaml.safe_dump(raw))
    proc = run_cli("ibjax.sweep", str(spec), "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    rd = load(tmp_path / "o")
    runs = rd.runs.set_index("learning_rate")
    assert runs.loc[1.0e6, "diverged"] and not runs.loc[0.01, "diverged"]
    ok = rd.info[rd.info.run_id == runs.loc[0.01, "run_id"]]
    assert ok.i_xt.notna().all()
    bad = rd.info[(rd.info.run_id == runs.loc[1.0e6, "run_id"]) & (rd.info.epoch >= runs.loc[1.0e6, "diverged_epoch"])]
    assert len(bad) > 0 and bad.i_xt.isna().all()
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["n_diverged"] == 1


def test_run_ids_are_stable_under_grid_growth():
    from ibjax.spec import validate
    from ibjax.sweep.plan import expand_grid

    a = validate(small_spec())
    b = validate(small_spec(**{"grid.activation": ["sigmoid", "tanh", "relu"]}))
    ids_a = {r.run_id(a): r for r in expand_grid(a)}
    ids_b = {r.run_id(b): r for r in expand_grid(b)}
    assert set(ids_a) < set(ids_b)


def test_version():
    assert ibjax.__version__


def test_bad_input_through_the_real_cli():
    """One bad input as a user meets it (a new interpreter, exit code 2, one paragraph); the many cases are in
    tests/sweep/test_bad_input.py, through the same `main` in-process."""
    proc = run_cli("ibjax.sweep", "no/such/spec.yaml", new_process=True)
    assert proc.returncode == 2 and "spec file not found: no/such/spec.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# Every estimator kind on the same networks, in one sweep that two tests read (one compile, one run).
ESTIMATORS = [{"kind": "binning", "n_bins": 30, "range": "auto"}, {"kind": "idnns"},
              {"kind": "binning", "range": [-1, 1], "n_bins": 30}, {"kind": "binning", "range": "neuron"},
              {"kind": "binning", "width": 0.07}, {"kind": "binning", "bins": "quantile", "n_bins": 10},
              {"kind": "kde", "bound": "upper", "max_samples": 256}, {"kind": "kde", "bound": "lower",
                                                                       "max_samples": 256}]
NAMES = {"binning30", "idnns30", "binning30_fixed", "binning30_neuron", "width0.07", "quantile10", "kde_upper",
         "kde_lower"}


@pytest.fixture(scope="module")
def estimator_run(tmp_path_factory):
    raw = small_spec(**{"mi.estimators": ESTIMATORS, "output.plots": False})
    # Three hidden layers: each layer adds all eight estimators' code to the program (compile time).
    raw["grid"] = {"seed": 1, "activation": ["tanh", "relu"], "hidden": [[10, 7, 5]]}
    raw["train"].update(epochs=6, chunk_epochs=7)  # MI at epochs 0, 3, 6: every estimator on trained layers
    d = tmp_path_factory.mktemp("estimators")
    spec = d / "e.yaml"
    spec.write_text(yaml.safe_dump(raw))
    proc = run_cli("ibjax.sweep", str(spec), "--out", str(d / "o"))
    assert proc.returncode == 0, proc.stderr
    return d / "o"


def test_several_estimators_on_the_same_networks(estimator_run):
    info = load(estimator_run).info
    assert set(info.estimator) == NAMES
    wide = info.pivot_table(index=["run_id", "epoch", "layer"], columns="estimator", values="i_xt")
    assert (info[info.estimator == "idnns30"].bin_lo == -1).all()
    relu = load(estimator_run).runs.query("activation == 'relu'").run_id
    h1 = info[(info.estimator == "binning30") & (info.layer == "h1")]
    assert (h1[h1.run_id.isin(relu)].bin_lo >= 0).all()  # relu: own range
    assert (h1[~h1.run_id.isin(relu)].bin_lo == -1).all()  # tanh: its natural [-1, 1]
    assert (info[info.estimator == "binning30_fixed"].bin_lo == -1).all()
    out = info[(info.estimator == "binning30") & (info.layer == "out")]
    assert (out.bin_lo == 0).all() and (out.bin_hi == 1).all()  # softmax output: [0, 1]
    # Every estimator saw the same networks: one row each per run, epoch and layer.
    assert wide.notna().all().all() and len(wide) * len(NAMES) == len(info)
    assert (estimator_run / "agreement.csv").stat().st_size > 0


def test_every_estimator_kind_in_one_sweep(estimator_run):
    info = load(estimator_run).info
    assert info.i_xt.notna().all() and (info.i_xt >= -1e-9).all() and (info.i_xt <= 12 + 1e-9).all()
    wide = info.pivot_table(index=["run_id", "epoch", "layer"], columns="estimator", values="i_xt")
    assert (wide.kde_lower <= wide.kde_upper + 1e-9).all()  # the bounds keep their order on real layers
    # KDE has no bins: its range columns are empty; the binning variants record theirs.
    assert info[info.estimator.str.startswith("kde")].bin_lo.isna().all()
    assert info[info.estimator == "width0.07"].bin_lo.notna().all()


def test_validate_command(tmp_path):
    proc = run_cli("ibjax.validate", "--out", str(tmp_path / "v"), "--repeats", "1", "--quick")
    assert proc.returncode == 0, proc.stderr
    steps = [line for line in proc.stderr.splitlines() if line.startswith("[validate")]
    assert len(steps) == 8 and "kNN (KSG) on Gaussians" in steps[2] and steps[-1].endswith("done")
    assert "linear networks trained on Saxe et al.'s teacher" in steps[-2]
    table = pd.read_csv(tmp_path / "v" / "validate.csv")
    # Every check inside its estimator's stated range passes; rows outside it are reported (knn at 10 nats).
    assert table[table.in_range].ok.all() and not table[~table.in_range].empty
    # KSG's ceiling near psi(N) - psi(k): 10 nats in 2-D at N = 1 024 fails, and the table says so, not hides it.
    high = table[table.task.str.startswith("gauss2d_I10nats")]
    assert len(high) == 1 and not high.ok.any() and not high.in_range.any()
    assert "NO (outside its stated range)" in (tmp_path / "v" / "validate.md").read_text()
    assert {"kde_upper", "kde_lower", "quantile16", "width1/16", "knn5_pca2"} <= set(table.estimator)
    linear = table[table.task.str.startswith("linear_net")]  # every estimator against the exact MI of trained nets
    assert set(linear.estimator) == {"kde_upper", "kde_lower", "binning30", "knn5_pca4"} and linear.bias.notna().all()
    assert "| gauss_snr10 |" in (tmp_path / "v" / "validate.md").read_text()
    # Known I(T;Y) of 3-D T with 64 classes (3.75 bits): compressed kNN within its error, plug-in binning far off.
    mix = table[table.task == "mix3d_64c"].set_index("estimator")
    assert mix.loc["knn5_pca3"].ok and mix.loc["knn5_pca3"].in_range and mix.loc["quantile30"].bias > 1.5
    # Synthetic images (2-D latents drawn as 256-pixel blobs): PCA to 4 components keeps the MI, to 2 loses it.
    # 50-D Gaussians whose information lies in 2 high-variance coordinate pairs: PCA to 2, then KSG, recovers it.
    rank2 = table[table.task.str.startswith("gauss50d_rank2_I1nats")]
    assert len(rank2) == 1 and rank2.ok.all() and rank2.in_range.all()
    img = table[table.task.str.startswith("images16")]
    assert img[img.estimator == "knn5_pca4"].in_range.sum() >= 4 and not img[img.estimator == "knn5_pca2"].ok.all()
    # An autoencoder to 2 coordinates (knn inputs: autoencoder) unfolds what PCA to 2 cannot: it passes up to 2
    # nats, and at 2 nats its error is under half of PCA's (across training seeds: 0.08-0.36 of it).
    ae = img[img.estimator == "knn5_ae2"].set_index("task")
    assert ae.in_range.sum() == 4 and ae[ae.in_range].ok.all()
    pca2 = img[img.estimator == "knn5_pca2"].set_index("task")
    assert abs(ae.loc["images16_I2nats", "bias"]) < abs(pca2.loc["images16_I2nats", "bias"]) / 2


def test_dry_run_plans_sizes_and_times_without_writing(tmp_path, capsys):
    """--dry-run: the plan, each program's memory and a time estimate from its first chunk; nothing on disk."""
    from ibjax.sweep.__main__ import main

    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(small_spec(**{"train.epochs": 40})))
    out = tmp_path / "o"
    assert main([str(spec), "--out", str(out), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert not out.exists()
    program = [line for line in err.splitlines() if line.startswith("[dry run] program 1/1")]
    assert len(program) == 1 and "8 networks" in program[0] and "MiB per device" in program[0]
    assert "first chunk of 5 epochs" in program[0] and "for 40 epochs" in program[0]
    assert "[dry run] estimate: ~" in err and "nothing written" in err
