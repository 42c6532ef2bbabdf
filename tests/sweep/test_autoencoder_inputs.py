"""kNN with X compressed by an autoencoder (`inputs: autoencoder`, Butakov et al. 2024) in a sweep: trained once
before the networks, saved in the run directory, loaded again to the bit, refused where networks have their own
inputs. (Its accuracy against known MI is ibjax.validate's images16 rows, checked in tests/sweep/test_cli.py.)"""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import run_cli


def _spec(tmp_path, **grid) -> str:
    spec = {"name": "ae", "data": {"dataset": "digits", "mi_sample": {"split": "all", "n": 512}},
            "model": {"kind": "mlp", "hidden": [16, 8], "activation": "tanh"},
            "train": {"epochs": 10, "batch_size": 64, "learning_rate": 0.01, "optimizer": "adam"},
            "mi": {"schedule": {"every": 5}, "estimators": [
                {"kind": "knn", "k": 5, "dim": 2},
                {"kind": "knn", "k": 5, "dim": 2, "inputs": "autoencoder", "autoencoder_epochs": 5}]},
            "grid": {"seed": 2, **grid}, "output": {"plots": False}}
    path = tmp_path / "ae.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _info(run) -> pd.DataFrame:
    info = pd.read_parquet(run / "info.parquet")
    return info.sort_values(["run_id", "layer", "epoch", "estimator"]).reset_index(drop=True)


def test_the_autoencoder_is_trained_once_saved_and_loaded_to_the_bit(tmp_path):
    spec, a, b = _spec(tmp_path), tmp_path / "a", tmp_path / "b"
    proc = run_cli("ibjax.sweep", spec, "--out", str(a), "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "[autoencoder] knn5_pca2_xae: training on" in proc.stderr
    meta = json.loads((a / "autoencoders" / "knn5_pca2_xae.json").read_text())
    assert meta["dim"] == 2 and meta["image_shape"] == [8, 8, 1] and meta["epochs"] == 5
    assert meta["final_loss"] < meta["first_loss"]  # it learned something
    info = _info(a)
    ae, pca = info[info.estimator == "knn5_pca2_xae"], info[info.estimator == "knn5_pca2"]
    assert len(ae) == len(pca) > 0 and np.isfinite(ae.i_xt).all()
    assert not np.allclose(ae.i_xt.to_numpy(), pca.i_xt.to_numpy())  # X compressed another way
    # I(T;Y) does not involve X: the same with either compression of the inputs.
    np.testing.assert_array_equal(ae.i_ty.to_numpy(), pca.i_ty.to_numpy())

    # A run directory that holds the saved autoencoder loads it instead of training, and measures the same MI.
    shutil.copytree(a / "autoencoders", b / "autoencoders")
    proc = run_cli("ibjax.sweep", spec, "--out", str(b), "--no-report")
    assert proc.returncode == 0, proc.stderr
    assert "knn5_pca2_xae: loaded from" in proc.stderr and "training on" not in proc.stderr
    pd.testing.assert_frame_equal(_info(a), _info(b))


def test_networks_with_their_own_inputs_are_refused(tmp_path):
    proc = run_cli("ibjax.sweep", _spec(tmp_path, inputs=["original", "gaussian"]), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "mi.estimators[1].inputs" in proc.stderr and "grid.inputs" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()


def test_a_resume_must_measure_with_the_autoencoder_its_finished_buckets_used(tmp_path):
    """The manifest records each autoencoder's weights; a resume with other weights (the saved file removed, then
    trained again to other weights) is refused; shards that trained different ones are reported."""
    from ibjax.rundir import RunDirError, ShardRecord
    from ibjax.rundir.layout import incompleteness
    from ibjax.rundir.manifest import merge_shards
    from ibjax.rundir.store import load
    from ibjax.sweep.run import _check_autoencoders
    from tests.rundir.test_contract import OLD

    rd = load(OLD)
    done = rd.manifest.model_copy(update={"autoencoders": {"knn5_pca2_xae": "aaaa"}})
    _check_autoencoders(done, {"knn5_pca2_xae": "aaaa"}, tmp_path / "manifest.json")  # the same: fine
    with pytest.raises(RunDirError, match="knn5_pca2_xae.*aaaa.*bbbb.*--force"):
        _check_autoencoders(done, {"knn5_pca2_xae": "bbbb"}, tmp_path / "manifest.json")
    nothing_done = done.model_copy(update={"buckets": [b.model_copy(update={"status": "pending"})
                                                       for b in done.buckets]})
    _check_autoencoders(nothing_done, {"knn5_pca2_xae": "bbbb"}, tmp_path / "manifest.json")  # nothing to mix
    shard = lambda i, fp: done.model_copy(update={"shard_index": i, "shard_count": 2, "autoencoders": {"x": fp},
                                                  "shards": [ShardRecord(shard=f"{i}/2", status="done")]})
    merged = merge_shards([shard(0, "aaaa"), shard(1, "bbbb")])
    assert merged.autoencoders == {"x": "aaaa|bbbb"}
    assert any("different autoencoders" in w for w in incompleteness(dataclasses.replace(rd, manifest=merged)))
    assert merge_shards([shard(0, "aaaa"), shard(1, "aaaa")]).autoencoders == {"x": "aaaa"}
