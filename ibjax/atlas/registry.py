"""Run directories -> the network registry: three compact tables the whole atlas is computed from.

`networks` has one row per trained network of each study (its `network_id`, settings, accuracies and
generalization gap). `measures` has, per network, estimator and MI quantity of the *endpoint layer* (the
network's last hidden layer: never the softmax output), the levels of its trajectory that every endpoint and specification needs:
at the first logged epoch, at the fitting time (three anchors, defined per network below), its maximum before
that time and its final level, raw and smoothed, with the exclusion decided from the values up to the fitting
time only (never from the outcome). `phases` has, per network, hidden layer, estimator and smoothing, Shwartz-Ziv &
Tishby's phase times (ibjax.report.phases: compression onset, fall, duration; the network's drift-to-diffusion
transition and epochs to generalize), for their depth claims (a)-(c).

These tables are small (kilobytes per study), so docs/results/atlas/tables commits them and
`python -m ibjax.atlas --tables` rebuilds the published atlas from them in seconds.

Fitting anchors (all per network; the analysis picks one, the specification curve varies it):
    loss   first logged epoch at which the smoothed training loss has made 90 % of its fall from the first
           logged epoch to its final level (network level: the same epoch for every layer).
    ity    first logged epoch at which the smoothed I(T;Y) of the layer reaches 95 % of its final level (the
           report's verdicts; per layer and estimator, late by construction: I(T;Y) keeps rising).
    snr    Shwartz-Ziv & Tishby's drift-to-diffusion transition: first logged epoch at which the median over
           layers of the smoothed gradient SNR (||mean|| / ||std|| of the weight gradients) is below 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ibjax.mi.interface import distinct_entropy
from ibjax.report.phases import diffusion_index, network_phases
from ibjax.report.summary import epochs_to_fit
from ibjax.report.verdicts import DEFAULT_SETTINGS, smooth
from ibjax.report.write import load_finished
from ibjax.rundir.contract import GRID_AXES, cell_settings, deepest_hidden, is_regression
from ibjax.rundir.layout import RunDirError
from ibjax.rundir.manifest import Manifest

ANCHORS = ("loss", "ity", "snr")
SMOOTHING = (1, 5)               # logged points of the centred moving average (1: none)
FINAL_FRACTION = 0.10            # the final level: mean of the last 10 % of logged epochs
LOSS_FALL = 0.90                 # loss anchor: 90 % of the fall made
ITY_LEVEL = 0.95                 # ity anchor: 95 % of the final I(T;Y)
SATURATION_EPS = 0.05            # bits from the ceiling that count as saturated (the report's verdicts)

NETWORK_COLUMNS = ("study", "run_id", "network_id", "cell", "seed", *GRID_AXES, "dataset", "model", "epochs",
                   "n_train", "steps_per_epoch", "train_acc", "test_acc", "gap", "diverged", "epochs_to_fit")
FIT_ACCURACY = 0.99  # epochs_to_fit: the first logged epoch at this training accuracy (the report's fit_accuracy)
MEASURE_COLUMNS = ("study", "run_id", "layer", "estimator", "quantity", "anchor", "smooth", "budget",
                   "fit_epoch", "end_epoch", "i_start", "i_fit", "i_max_pre", "i_end", "ceiling", "reliable",
                   "excluded")
# I(X;T), and where the inputs hold task-irrelevant dimensions, I(T;X_rel) and I(T;X_irr).
QUANTITIES = ("i_xt", "i_xt_rel", "i_xt_irr")
# Per network, hidden layer (index 1 = first, depth = hidden layers), estimator and smoothing window. `compresses`
# is the report's rule at threshold 0 (a fall after the smoothed peak that is neither saturated nor inside the
# final window); the analysis applies its threshold to `fall_bits`. Epochs are logged epochs; `generalize_epoch`
# is inf where the network never reaches the test accuracy of the report's `generalize_accuracy`; `snr_epoch` is
# NaN for full-batch networks (no minibatch noise) and where the SNR never falls below 1.
PHASE_COLUMNS = ("study", "run_id", "estimator", "smooth", "depth", "index", "onset", "fall_bits", "compresses",
                 "complete", "duration_decades", "snr_epoch", "generalize_epoch")
FLOAT_FORMAT = "%.6g"


@dataclass
class StudyTables:
    """The compact tables of one study (one run directory)."""

    name: str
    source: str          # the run directory (or tables folder) it came from
    networks: pd.DataFrame
    measures: pd.DataFrame
    # What the study cost and measured on: wall_s (the sweep's wall time), n_mi_samples, the sweep file.
    about: dict = field(default_factory=dict)
    phases: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(PHASE_COLUMNS)))
    # Per-network values already derived from `measures` (ibjax.atlas.analysis.network_values): the
    # specification curve asks for the same ones many times.
    cache: dict = field(default_factory=dict, repr=False, compare=False)


def _final(values: np.ndarray) -> float:
    return float(values[len(values) - max(1, math.ceil(FINAL_FRACTION * len(values))):].mean())


def loss_fit_index(loss: np.ndarray, window: int) -> int:
    """Index of the first logged epoch where the smoothed loss has made LOSS_FALL of its fall (last if none)."""
    s = smooth(loss, window)
    start, end = s[0], _final(np.asarray(loss, dtype=float))
    if not start > end:
        return len(s) - 1
    hit = np.flatnonzero(s <= end + (1 - LOSS_FALL) * (start - end))
    return int(hit[0]) if len(hit) else len(s) - 1


def level_fit_index(i_ty: np.ndarray, window: int) -> int:
    """Index of the first logged epoch where smoothed I(T;Y) reaches ITY_LEVEL of its final level."""
    s = smooth(i_ty, window)
    hit = np.flatnonzero(s >= ITY_LEVEL * _final(np.asarray(i_ty, dtype=float)))
    return int(hit[0]) if len(hit) else len(s) - 1


def snr_fit_index(snr: np.ndarray, window: int) -> int:
    """Index of the drift-to-diffusion transition of the median-over-layers gradient SNR
    (`ibjax.report.phases.diffusion_index`: the report's definition), last if none."""
    i = diffusion_index(snr, window)
    return len(snr) - 1 if i is None else i


def trajectory_levels(values: np.ndarray, fit: int, window: int, ceiling: float, reliable: float) -> dict:
    """The levels of one logged trajectory (bits) and its exclusion, decided from the first logged epoch to the
    fitting time: saturated (within SATURATION_EPS of the ceiling) or outside the estimator's validated range."""
    raw = np.asarray(values, dtype=float)
    s = smooth(raw, window)
    excluded = ""
    if raw[0] >= ceiling - SATURATION_EPS:
        excluded = "saturated at start"
    elif raw[fit] >= ceiling - SATURATION_EPS:
        excluded = "saturated at fit"
    elif raw[: fit + 1].max() > reliable + SATURATION_EPS:
        excluded = "outside validated range"
    return {"i_start": float(s[0]), "i_fit": float(s[fit]), "i_max_pre": float(s[: fit + 1].max()),
            "i_end": _final(raw), "excluded": excluded}


def _steps_per_epoch(batch, n_train: int) -> int:
    return 1 if str(batch) == "full" else -(-n_train // int(float(batch)))


def _distinct_values(manifest: Manifest, n_samples: int) -> dict[str, int]:
    """Per quantity: how many distinct values its estimate can tell apart, whose entropy is its ceiling.
    I(X;T): N (or the estimator's own ceiling, from its limits); I(T;X_rel) and I(T;X_irr): the distinct relevant
    patterns and the irrelevant draws of the MI sample's product design."""
    design = manifest.dataset.irrelevant_design if manifest.dataset is not None else None
    out = {"i_xt": n_samples}
    if design:
        out["i_xt_rel"], out["i_xt_irr"] = int(design[0]), int(design[1])
    return out


def study_tables(run_dir: str | Path) -> StudyTables:
    """The compact tables of one finished run directory (RunDirError names a missing or unreadable one)."""
    run_dir = Path(run_dir)
    rd = load_finished(run_dir)
    if "split" in rd.info.columns:  # mi_sample.split both: the atlas reads the held-out sample's MI
        rd = replace(rd, info=rd.info[rd.info.split == "test"].drop(columns="split"))
    if "network_id" not in rd.runs.columns:
        raise RunDirError(f"{run_dir}: runs.parquet has no network_id column (written before network identity "
                          "was recorded): rerun the sweep with --resume to rewrite its tables, or run it again")
    name = str(rd.spec.get("name", run_dir.name))
    n_samples = rd.manifest.n_mi_samples
    n_train = rd.manifest.n_train or 0
    dataset = str((rd.spec.get("data") or {}).get("dataset", "tishby12"))
    model = str((rd.spec.get("model") or {}).get("kind", "mlp"))
    net = _networks_table(rd, name, dataset, model, n_train)
    measures = _measures_table(rd, net, name, n_samples)
    phases = _phases_table(rd, net, name)
    wall_s = rd.manifest.wall_s
    about = {"wall_s": float("nan") if wall_s is None else float(wall_s), "n_mi_samples": n_samples,
             "spec_source": Path(rd.manifest.source).name}
    return StudyTables(name, str(run_dir), _as_stored(net), _as_stored(measures), about, _as_stored(phases))


def _networks_table(rd, name: str, dataset: str, model: str, n_train: int) -> pd.DataFrame:
    """One row per network of a run directory: identity, grid settings as the cell states them, accuracies."""
    runs = rd.runs.copy()
    net = pd.DataFrame({"study": name, "run_id": runs.run_id, "network_id": runs.network_id, "cell": runs.cell,
                        "seed": runs.seed})
    stated = pd.DataFrame([cell_settings(c) for c in runs.cell], index=runs.index)
    for axis in GRID_AXES:  # the grid settings as the cell string states them ('' where unset)
        net[axis] = stated[axis]
    net["dataset"], net["model"] = dataset, model
    net["epochs"] = runs.epochs.astype(int)
    net["n_train"] = n_train
    if "full_batch" in runs:  # typed columns: each run's own training rows (per-run training sets differ)
        net["steps_per_epoch"] = np.where(runs.full_batch, 1, -(-runs.n_train // runs.batch_size)).astype(int)
    else:  # a run directory from before typed columns: batch sizes as text, the sweep's training rows
        net["steps_per_epoch"] = [_steps_per_epoch(b, n_train) for b in runs.batch_size]
    if not is_regression(runs):
        net["train_acc"], net["test_acc"] = runs.train_acc.astype(float), runs.test_acc.astype(float)
        net["gap"] = net.train_acc - net.test_acc
    else:  # a regression task (dataset teacher): no accuracies; the gap is test - train squared error
        net["train_acc"] = net["test_acc"] = np.nan
        net["gap"] = runs.test_loss.astype(float) - runs.train_loss.astype(float)
    net["diverged"] = runs.diverged.astype(bool)
    # Zhang et al.'s time to fit the training labels (inf: never within the sweep; NaN for a regression task).
    net["epochs_to_fit"] = np.nan
    if not is_regression(runs):
        fitted = epochs_to_fit(rd.metrics, FIT_ACCURACY)
        net["epochs_to_fit"] = runs.run_id.map(fitted).astype(float).fillna(np.inf).to_numpy()
    net = net[list(NETWORK_COLUMNS)]
    return net


def _measures_table(rd, net: pd.DataFrame, name: str, n_samples: int) -> pd.DataFrame:
    """The levels of every trajectory of the endpoint layer (per network, estimator, quantity, fitting anchor,
    smoothing and budget) that the endpoints and the specification curve read."""
    limits = rd.manifest.limits()
    distinct = _distinct_values(rd.manifest, n_samples)
    # The ceiling of I(T;X_rel), I(T;X_irr): the entropy estimate of all-distinct values, under the estimator's own
    # bias correction (a corrected estimate of n distinct values is above log2 n).
    corrections = {e.get("name"): e.get("correction", "none") for e in rd.manifest.estimators}
    ceiling_of = lambda q, est: distinct_entropy(distinct[q], corrections.get(est, "none"))
    has_full = (net.batch_size == "full").any()
    loss = {rid: g.sort_values("epoch") for rid, g in rd.metrics.groupby("run_id")}
    snr = {}
    if rd.gradients is not None and len(rd.gradients):
        med = rd.gradients.groupby(["run_id", "epoch"]).snr.median().reset_index()
        snr = {rid: g.sort_values("epoch") for rid, g in med.groupby("run_id")}
    ok = net.loc[~net.diverged]
    # Each network's own last hidden layer (a study may vary the depth).
    deepest = {rid: deepest_hidden(layers) for rid, layers in rd.info.groupby("run_id").layer.unique().items()}
    info = rd.info[rd.info.run_id.isin(ok.run_id) & (rd.info.layer == rd.info.run_id.map(deepest))]
    quantities = [q for q in QUANTITIES if q in info.columns and q in distinct]
    rows = []
    steps = dict(zip(net.run_id, net.steps_per_epoch))
    for (rid, est), g in info.sort_values("epoch").groupby(["run_id", "estimator"], sort=True):
        ep = g.epoch.to_numpy()
        budgets = [("epochs", len(ep))]
        if has_full and steps[rid] > 1:
            # Equal numbers of updates: a minibatch network's trajectory up to the epoch at which it has taken as
            # many steps as its full-batch twin takes in all its epochs (one step per epoch).
            budgets.append(("updates", int(np.searchsorted(ep, ep[-1] / steps[rid], side="right"))))
        for budget, t_end in budgets:
            if t_end < 3:
                continue
            e = ep[:t_end]
            m = loss.get(rid)
            m = m.set_index("epoch").train_loss.reindex(e).to_numpy(float) if m is not None else None
            s = snr.get(rid)
            # Gradients are logged from epoch 1 (none exist before the first step): epoch 0 takes epoch 1's. A
            # full-batch network has no minibatch noise, hence no drift-to-diffusion transition: no snr anchor.
            s = s.set_index("epoch").snr.reindex(e).bfill().to_numpy(float) \
                if s is not None and steps[rid] > 1 else None
            ity = g.i_ty.to_numpy(float)[:t_end]
            for window in SMOOTHING:
                fits = {"ity": level_fit_index(ity, window)}
                if m is not None and np.isfinite(m).all():
                    fits["loss"] = loss_fit_index(m, window)
                if s is not None and np.isfinite(s).all():
                    fits["snr"] = snr_fit_index(s, window)
                for q in quantities:
                    vals = g[q].to_numpy(float)[:t_end]
                    if not np.isfinite(vals).all():
                        continue
                    own = limits.get(est, (ceiling_of(q, est),) * 2)
                    ceiling = ceiling_of(q, est) if q != "i_xt" else own[0]
                    reliable = ceiling if q != "i_xt" else own[1]
                    for anchor, fit in fits.items():
                        rows.append({"study": name, "run_id": rid, "layer": deepest[rid], "estimator": est,
                                     "quantity": q, "anchor": anchor, "smooth": window, "budget": budget,
                                     "fit_epoch": int(e[fit]), "end_epoch": int(e[-1]), "ceiling": ceiling,
                                     "reliable": reliable, **trajectory_levels(vals, fit, window, ceiling,
                                                                                reliable)})
    return pd.DataFrame(rows, columns=list(MEASURE_COLUMNS))


def _phases_table(rd, net: pd.DataFrame, name: str) -> pd.DataFrame:
    """Every network's phases (ibjax.report.phases.network_phases) under each estimator of I(X;T) and smoothing
    window, with the compression rule at threshold 0 (the analysis thresholds `fall_bits`). Empty for a regression
    study (no accuracy to generalize to)."""
    runs = rd.runs
    if is_regression(runs) or rd.info.empty:
        return pd.DataFrame(columns=list(PHASE_COLUMNS))
    ceilings = {est: c for est, (c, _) in rd.manifest.limits().items()}
    info = rd.info  # every measured layer, finite or not: a network's depth counts all its hidden layers
    gradients = rd.gradients if rd.gradients is not None else pd.DataFrame()
    full_batch = set(net.run_id[net.steps_per_epoch == 1])
    parts = []
    measured = info[np.isfinite(info.i_xt.astype(float))]  # estimators with some I(X;T) (kNN without X has none)
    for est in dict.fromkeys(measured.estimator):
        for window in SMOOTHING:
            settings = replace(DEFAULT_SETTINGS, threshold_bits=0.0, smooth_window=window)
            ph = network_phases(info, gradients, rd.metrics, runs, settings, ceilings, estimator=est)
            if ph.empty:
                continue
            ph.loc[ph.run_id.isin(full_batch), "snr_epoch"] = np.nan
            parts.append(ph.assign(study=name, smooth=window))
    if not parts:
        return pd.DataFrame(columns=list(PHASE_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(PHASE_COLUMNS)]


def _as_stored(df: pd.DataFrame) -> pd.DataFrame:
    """Floats rounded to the 6 significant digits the CSV tables keep, so that an atlas computed from run
    directories and one computed from its own tables are the same to the last byte."""
    df = df.copy()
    for col in df.columns:
        if df[col].dtype == float:
            df[col] = df[col].map(lambda v: float(FLOAT_FORMAT % v))
    return df


# -- the committed form: one folder of CSV files (studies, networks, measures, phases) -------------------------------

def write_tables(studies: list[StudyTables], folder: str | Path) -> list[Path]:
    from ibjax.rundir.store import atomic_write_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nets = pd.concat([s.networks.assign(source=s.source) for s in studies], ignore_index=True)
    meas = pd.concat([s.measures for s in studies], ignore_index=True)
    phases = pd.concat([s.phases for s in studies], ignore_index=True)
    about = pd.DataFrame([{"study": s.name, "source": s.source, **s.about} for s in studies])
    paths = [folder / "studies.csv", folder / "networks.csv", folder / "measures.csv", folder / "phases.csv"]
    for path, df in zip(paths, (about, nets, meas, phases)):
        atomic_write_bytes(path, df.to_csv(index=False, float_format=FLOAT_FORMAT).encode())
    return paths


_LATER_AXES = ("kwargs",)


def read_tables(folder: str | Path) -> list[StudyTables]:
    """The studies of a tables folder written by write_tables (RunDirError names a missing or unreadable one)."""
    folder = Path(folder)
    try:
        nets = pd.read_csv(folder / "networks.csv", dtype={a: str for a in GRID_AXES} | {"network_id": str},
                           keep_default_na=False)
        meas = pd.read_csv(folder / "measures.csv", keep_default_na=False, na_values=[""],
                           dtype={"excluded": str})
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise RunDirError(f"{folder}: cannot read the atlas tables (networks.csv, measures.csv): {e}") from e
    for axis in _LATER_AXES:  # grid axes added after tables were first written: unset in older ones
        if axis not in nets.columns and "dropout" in nets.columns:
            nets.insert(nets.columns.get_loc("dropout") + 1, axis, "")
    if "epochs_to_fit" not in nets.columns and "diverged" in nets.columns:  # tables from before it was recorded
        nets.insert(nets.columns.get_loc("diverged") + 1, "epochs_to_fit", np.nan)
    nets["epochs_to_fit"] = pd.to_numeric(nets.get("epochs_to_fit", np.nan), errors="coerce")
    for name, df, cols in (("networks.csv", nets, (*NETWORK_COLUMNS, "source")), ("measures.csv", meas,
                                                                                MEASURE_COLUMNS)):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise RunDirError(f"{folder / name}: not an atlas table (columns missing: {', '.join(missing)})")
    meas["excluded"] = meas.excluded.fillna("")
    phases = pd.DataFrame(columns=list(PHASE_COLUMNS))
    if (folder / "phases.csv").is_file():  # tables written before the phases were recorded have none
        try:
            phases = pd.read_csv(folder / "phases.csv")
        except (OSError, ValueError, pd.errors.ParserError) as e:
            raise RunDirError(f"{folder / 'phases.csv'}: cannot read the atlas's phase table: {e}") from e
        missing = [c for c in PHASE_COLUMNS if c not in phases.columns]
        if missing:
            raise RunDirError(f"{folder / 'phases.csv'}: not an atlas table (columns missing: {', '.join(missing)})")
    about = {}
    if (folder / "studies.csv").is_file():
        for r in pd.read_csv(folder / "studies.csv", keep_default_na=False).to_dict("records"):
            about[(str(r.pop("study")), str(r.pop("source")))] = r
    out = []
    for (name, source), g in nets.groupby(["study", "source"], sort=False):
        out.append(StudyTables(str(name), str(source), g.drop(columns="source").reset_index(drop=True),
                               meas[(meas.study == name) & meas.run_id.isin(g.run_id)].reset_index(drop=True),
                               about.get((name, source), {}),
                               phases[(phases.study == name) & phases.run_id.isin(g.run_id)].reset_index(drop=True)))
    return out
