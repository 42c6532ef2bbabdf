"""A bucket's device results → the long tables of the run-directory contract (ibjax.rundir.contract)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ibjax.data.task import MI_PARTS
from ibjax.rundir.axes import AXES
from ibjax.rundir.schema import table_problems
from ibjax.spec import SweepSpec
from ibjax.sweep.plan import Bucket, Run, module_kwargs, network_ids
from ibjax.train.loop import BucketResult


def setting_columns(run: Run, spec: SweepSpec, n_train: int) -> dict:
    """A run's settings as runs.parquet stores them: each with its real type and the value its training used, so
    that `runs.batch_size == 256` or `runs.weight_decay > 0` select what they say. Widths and channels are lists
    of ints (None for a user's Flax module, which defines its own), `depth` their count; the batch size an int
    (a full batch: the run's training rows) with `full_batch` marking it; data settings left out of the grid take
    the data section's value; no weight decay or dropout is 0.0. None only where a setting does not apply (the
    momentum of another optimizer, the bits of a float network, the noise of a deterministic one, the channels of
    a network without convolutions). The cell string keeps its own compact form (`ibjax.rundir.contract`)."""
    cols = {}
    for a in AXES:  # each as its axis declares its values (ibjax.rundir.axes)
        v = getattr(run, a.name)
        if spec.model.kind not in a.kinds:
            v = None  # the family has no such setting (a user's Flax module: its own widths, activations)
        elif v is None and a.section == "data":
            v = getattr(spec.data, a.name)  # not a grid axis here: the data section's value, used by every run
        elif a.off_at_zero:
            v = float(v or 0.0)
        elif a.value == "keywords":
            v = json.dumps(module_kwargs(run, spec), sort_keys=True)
        elif a.value == "batch":
            v = int(n_train if v == "full" else v)
        if v is not None and a.value == "widths":
            v = [int(w) for w in v]
        elif v is not None and a.value == "number":
            v = float(v)
        elif v is not None and a.value == "integer":
            v = int(v)
        cols[a.name] = v
    cols.update(depth=None if cols["hidden"] is None else len(cols["hidden"]), full_batch=run.batch_size == "full",
                n_train=int(n_train))
    return cols


def typed_settings(runs: pd.DataFrame) -> pd.DataFrame:
    """The run table with integer settings as integers: int64, or pandas' nullable Int64 where some run has none
    (quantize_bits 8 beside an unquantized network stays 8, not 8.0 beside NaN)."""
    ints = [a.name for a in AXES if a.value in ("integer", "batch")] + ["depth"]
    return runs.astype({c: "Int64" if runs[c].isna().any() else "int64" for c in ints
                        if c in runs and runs[c].notna().any()})


def diverged_from(result: BucketResult) -> np.ndarray:
    """Per model, the first logged epoch with a non-finite training loss (-1 if none)."""
    bad = ~np.isfinite(result.metrics[:, :, result.metric_names.index("train_loss")])  # [T, M]
    first = np.where(bad.any(0), result.mi_epochs[bad.argmax(0)], -1)
    return np.where(~result.params_finite & (first < 0), result.mi_epochs[-1], first)


def _info_table(spec: SweepSpec, result: BucketResult, rid: np.ndarray, layers: list[str], div_epoch: np.ndarray
                ) -> pd.DataFrame:
    """info: the engine's MI [T, M, L, E, K] as rows in that order, NaN from a network's divergence on."""
    est_names = [e.resolved_name for e in spec.mi.estimators]
    # mi_sample.split both: the engine's estimator axis holds (part, estimator) pairs, part-major.
    splits = None
    if spec.data.mi_sample.split == "both":
        splits = [part for part in MI_PARTS for _ in est_names]
        est_names = est_names * len(MI_PARTS)
    t, m, n_layers, n_est, n_cols = result.mi.shape
    assert n_cols == len(result.mi_columns), (n_cols, result.mi_columns)
    ep = np.broadcast_to(result.mi_epochs[:, None, None, None], (t, m, n_layers, n_est))
    mi = result.mi.copy()
    after = (div_epoch[None, :] >= 0) & (result.mi_epochs[:, None] >= div_epoch[None, :])  # [T, M]
    mi[after] = np.nan  # a diverged network's MI is meaningless: NaN, never silently numbers
    along = lambda names: np.broadcast_to(np.asarray(names)[None, None, None, :], ep.shape).ravel()
    return pd.DataFrame({
        "run_id": np.broadcast_to(rid[None, :, None, None], ep.shape).ravel(),
        "epoch": ep.ravel().astype(np.int64),
        "layer": np.broadcast_to(np.asarray(layers)[None, None, :, None], ep.shape).ravel(),
        "estimator": along(est_names),
        **({} if splits is None else {"split": along(splits)}),
        **{name: mi[..., k].ravel() for k, name in enumerate(result.mi_columns)},  # as the engine named them
    })


def bucket_tables(spec: SweepSpec, bucket: Bucket, result: BucketResult, run_ids: list[str], n_train: list[int],
                  layers: tuple[str, ...], grad_layers: tuple[str, ...]) -> dict:
    """n_train: each run's training rows; layers / grad_layers: the model family's measured layers and weight
    groups (the family names them: `ModelFamily.layer_names`, `grad_names`)."""
    t, m = result.mi.shape[:2]
    div_epoch = diverged_from(result)
    rid = np.asarray(run_ids)
    info = _info_table(spec, result, rid, list(layers), div_epoch)
    grad_layers = list(grad_layers)

    met = result.metrics
    metrics = pd.DataFrame({
        "run_id": np.broadcast_to(rid[None, :], (t, m)).ravel(),
        "epoch": np.broadcast_to(result.mi_epochs[:, None], (t, m)).ravel().astype(np.int64),
        **{name: met[..., k].ravel() for k, name in enumerate(result.metric_names)},
    })

    g = result.grads  # [G, M, L, 2]
    gshape = g.shape[:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = g[..., 0] / g[..., 1]  # full-batch GD has no gradient noise: std 0, snr inf
    gradients = pd.DataFrame({
        "run_id": np.broadcast_to(rid[None, :, None], gshape).ravel(),
        "epoch": np.broadcast_to(result.grad_epochs[:, None, None], gshape).ravel().astype(np.int64),
        "layer": np.broadcast_to(np.asarray(grad_layers)[None, None, :], gshape).ravel(),
        "grad_mean": g[..., 0].ravel(), "grad_std": g[..., 1].ravel(), "snr": snr.ravel(),
    })

    rows = []
    net_ids = network_ids(list(bucket.runs), spec)
    for i, run in enumerate(bucket.runs):
        rows.append({
            "run_id": run_ids[i], "network_id": net_ids[i], "cell": run.cell(), "seed": run.seed,
            **setting_columns(run, spec, n_train[i]), "epochs": spec.train.epochs,
            "bucket": bucket.index,
            **{name: met[-1, i, k] for k, name in enumerate(result.metric_names)},
            "diverged": bool(div_epoch[i] >= 0),
            "diverged_epoch": int(div_epoch[i]) if div_epoch[i] >= 0 else None,
        })
    tables = {"runs": typed_settings(pd.DataFrame(rows)), "info": info, "metrics": metrics, "gradients": gradients}
    for name, df in tables.items():  # what readers will check (ibjax.rundir.schema); a bug here, not bad input
        assert not table_problems(name, df), (name, table_problems(name, df))
    return tables
