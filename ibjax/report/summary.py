"""Per cell x layer x estimator aggregates of the verdicts, with intervals over seeds; threshold sensitivity;
agreement between estimators.

Every interval treats the run (one seed) as the unit: fractions get a Wilson interval, means a percentile
bootstrap that resamples whole runs (ibjax.intervals).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ibjax.report.intervals import bootstrap_ci, median_interval, wilson_interval
from ibjax.report.verdicts import DEFAULT_SETTINGS, VerdictSettings
from ibjax.rundir.contract import CELL_SETTINGS, is_regression, layer_order, setting_key


def cell_settings_shown(runs: pd.DataFrame) -> pd.DataFrame:
    """Each cell's settings (indexed by cell, in the run table's order) as people read them: widths as
    '10-7-5', a full batch as 'full' (typed run tables keep its rows in batch_size, marked full_batch)."""
    cols = [c for c in CELL_SETTINGS if c in runs]
    g = runs.groupby("cell", sort=False)
    out = g[cols].first()
    for c in ("hidden", "channels"):
        if c in out:
            out[c] = out[c].map(lambda v: setting_key(v) or None)
    if "full_batch" in runs:
        out["batch_size"] = out.batch_size.astype(object).where(~g.full_batch.first(), "full")
    return out


def cells(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell in the run table's order: its settings (as `cell_settings_shown`), n runs and n
    diverged."""
    out = cell_settings_shown(runs)
    g = runs.groupby("cell", sort=False)
    out["n_total"] = g.size()
    out["n_diverged"] = g.diverged.sum().astype(int)
    return out.reset_index()


def gap_meaning(runs: pd.DataFrame) -> str:
    """What `run_gaps` measures, in words."""
    return "test − train mean squared error" if is_regression(runs) else "train − test accuracy"


def run_gaps(runs: pd.DataFrame) -> pd.Series:
    """Generalization gap per run_id: final train accuracy - final test accuracy (fraction, not %); for a
    regression task, final test - train mean squared error."""
    if is_regression(runs):
        return (runs.test_loss - runs.train_loss).set_axis(runs.run_id)
    return (runs.train_acc - runs.test_acc).set_axis(runs.run_id)


def summarize(verdicts: pd.DataFrame, runs: pd.DataFrame, settings: VerdictSettings = DEFAULT_SETTINGS
              ) -> pd.DataFrame:
    """summary.csv: per cell x layer x estimator counts, fractions and means with their intervals."""
    gap = run_gaps(runs)
    boot = settings.boot()
    pct = round(100 * settings.confidence)
    rows = []
    combos = verdicts[["layer", "estimator"]].drop_duplicates()
    layers = layer_order(combos.layer)
    combos = combos.sort_values(["estimator", "layer"], key=lambda s: s.map(layers.index) if s.name == "layer"
                                else s)
    for _, cell in cells(runs).iterrows():
        for layer, est in combos.itertuples(index=False):
            v = verdicts[(verdicts.cell == cell.cell) & (verdicts.layer == layer) & (verdicts.estimator == est)]
            # The fraction compressed is over the trajectories the estimator measured: saturated or out-of-range
            # ones cannot show compression, are never counted compressed, and are reported apart.
            measured = ~(v.saturated.astype(bool) | (v.unreliable.astype(bool) if "unreliable" in v else False))
            n, m, k = len(v), int(measured.sum()), int(v.compressed.sum())
            lo, hi = wilson_interval(k, m, settings.confidence)
            d_lo, d_hi = bootstrap_ci(v.drop_rel[measured].to_numpy(), **boot)  # drops: measured ones too
            g = gap.reindex(v.run_id).to_numpy()
            g_lo, g_hi = bootstrap_ci(g, **boot)
            rows.append({
                **{c: cell[c] for c in CELL_SETTINGS if c in cell}, "cell": cell.cell, "layer": layer, "estimator": est,
                "n_runs": n, "n_diverged": int(cell.n_diverged), "n_measured": m, "n_compressed": k,
                "fraction_compressed": k / m if m else np.nan, "fraction_lo": lo, "fraction_hi": hi,
                "fraction_method": f"wilson {pct}%",
                "mean_drop_rel": _mean(v.drop_rel[measured]), "drop_rel_lo": d_lo, "drop_rel_hi": d_hi,
                "mean_drop_bits": _mean(v.drop_bits[measured]),
                "mean_method": f"percentile bootstrap {pct}% over runs (B={settings.n_boot})",
                "n_saturated": int(v.saturated.sum()), "fraction_saturated": v.saturated.mean() if n else np.nan,
                # (verdict tables written before the validated-range flag have no such column: none flagged)
                "n_unreliable": int(v.unreliable.sum()) if "unreliable" in v else 0,
                "fraction_unreliable": (v.unreliable.mean() if "unreliable" in v else 0.0) if n else np.nan,
                "n_after_fit": int(v.compression_after_fit.sum()), "n_peak_at_end": int(v.peak_at_end.sum()),
                "median_fit_epoch": v.fit_epoch.median() if n else np.nan,
                "median_peak_epoch": v.peak_epoch.median() if n else np.nan,
                "mean_transient_drop_bits": _mean(v.transient_drop_bits),
                "median_noise_bits": v.noise_bits.median() if n else np.nan,
                "mean_gap": _mean(pd.Series(g)), "gap_lo": g_lo, "gap_hi": g_hi,
                "threshold_bits": settings.threshold_bits,
            })
    return pd.DataFrame(rows)


def _mean(s: pd.Series) -> float:
    s = s[np.isfinite(s.to_numpy(dtype=float))]
    return float(s.mean()) if len(s) else float("nan")


def sensitivity(verdicts: pd.DataFrame, settings: VerdictSettings = DEFAULT_SETTINGS) -> pd.DataFrame:
    """Fraction compressed per cell x layer x estimator as a function of the drop threshold (bits)."""
    thresholds = sorted(set(settings.sensitivity_bits) | {settings.threshold_bits})
    rows = []
    for (cell, layer, est), v in verdicts.groupby(["cell", "layer", "estimator"], sort=False):
        v = v[~(v.saturated.astype(bool) | (v.unreliable.astype(bool) if "unreliable" in v else False))]
        for t in thresholds:  # over the measured trajectories, as the summary's fraction
            k = int(((v.drop_bits > t) & ~v.peak_at_end).sum())
            lo, hi = wilson_interval(k, len(v), settings.confidence)
            rows.append({"cell": cell, "layer": layer, "estimator": est, "threshold_bits": t, "n_runs": len(v),
                         "n_compressed": k, "fraction_compressed": k / len(v) if len(v) else np.nan,
                         "fraction_lo": lo, "fraction_hi": hi})
    return pd.DataFrame(rows)


def agreement(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per layer and pair of estimators: how often their verdicts on the same run agree, and Cohen's kappa
    (agreement beyond chance). Empty when there is a single estimator."""
    rows = []
    wide = verdicts.pivot_table(index=["run_id", "layer"], columns="estimator", values="compressed",
                                aggfunc="first")
    for a, b in itertools.combinations(sorted(wide.columns), 2):
        pair = wide[[a, b]].dropna().astype(bool).reset_index()
        for layer, g in pair.groupby("layer", sort=False):
            x, y = g[a].to_numpy(), g[b].to_numpy()
            po = float((x == y).mean())
            pe = float(x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean()))
            rows.append({"layer": layer, "estimator_a": a, "estimator_b": b, "n_runs": len(g),
                         "fraction_a": x.mean(), "fraction_b": y.mean(), "agreement": po,
                         "cohen_kappa": (po - pe) / (1 - pe) if pe < 1 else float("nan")})
    return pd.DataFrame(rows, columns=["layer", "estimator_a", "estimator_b", "n_runs", "fraction_a",
                                       "fraction_b", "agreement", "cohen_kappa"])


def label_information(info: pd.DataFrame, runs: pd.DataFrame, settings: VerdictSettings = DEFAULT_SETTINGS
                      ) -> pd.DataFrame:
    """Label-noise sweeps (info has `i_ty_trained`): per cell x layer x estimator at the last logged epoch, I(T;Y)
    against the true labels and against the labels each network trained on, and their paired difference (what the
    network memorized beyond the true labels), means over runs with bootstrap intervals. Empty otherwise."""
    if "i_ty_trained" not in info:
        return pd.DataFrame()
    boot = settings.boot()
    ok = runs.loc[~runs.diverged.astype(bool), ["run_id", "cell"]]
    last = info[info.epoch == info.epoch.max()].merge(ok, on="run_id")
    rows = []
    for (cell, layer, est), g in last.groupby(["cell", "layer", "estimator"], sort=False):
        true, fit = g.i_ty.to_numpy(float), g.i_ty_trained.to_numpy(float)
        row = {"cell": cell, "layer": layer, "estimator": est, "epoch": int(g.epoch.iat[0]), "n_runs": len(g)}
        for name, v in (("i_ty", true), ("i_ty_trained", fit), ("trained_minus_true", fit - true)):
            lo, hi = bootstrap_ci(v, **boot)
            row.update({name: _mean(pd.Series(v)), f"{name}_lo": lo, f"{name}_hi": hi})
        rows.append(row)
    return pd.DataFrame(rows)


def generalization_information(info: pd.DataFrame, metrics: pd.DataFrame, runs: pd.DataFrame,
                               settings: VerdictSettings = DEFAULT_SETTINGS) -> pd.DataFrame:
    """Regression sweeps (Saxe et al.'s claim 2): per cell x layer x estimator, each run's generalization error at
    its best logged epoch and at the end (the exact E_g of a linear network, else the test error) and the overtraining
    between them, with I(X;T) and I(T;Y) at the same two epochs and their change from the best epoch to the end
    (with task-irrelevant inputs also I(T;X_rel) and I(T;X_irr)'s change from the first logged epoch to the end):
    does the information plane move differently when a network overtrains? Means over runs with bootstrap
    intervals (whole runs resampled). Empty for a classification sweep."""
    if metrics.empty or not is_regression(metrics):
        return pd.DataFrame()
    boot = settings.boot()
    ok = runs.loc[~runs.diverged.astype(bool), ["run_id", "cell"]]
    m = metrics.merge(ok, on="run_id").sort_values(["run_id", "epoch"])
    m = m.assign(error=m.gen_error.where(np.isfinite(m.gen_error), m.test_loss))
    best = m.loc[m.groupby("run_id").error.idxmin(), ["run_id", "epoch", "error"]].set_index("run_id")
    final = m.groupby("run_id").last()[["epoch", "error"]]
    per_run = pd.DataFrame({"best_epoch": best.epoch, "error_best": best.error, "final_epoch": final.epoch,
                            "error_final": final.error})
    per_run["overtraining"] = per_run.error_final - per_run.error_best
    i = info.merge(ok, on="run_id").join(per_run, on="run_id", how="inner")
    at_best = i[i.epoch == i.best_epoch].set_index(["run_id", "layer", "estimator"])[["i_xt", "i_ty"]]
    at_end = i[i.epoch == i.final_epoch].set_index(["run_id", "layer", "estimator"])[["i_xt", "i_ty", "cell"]]
    both = at_end.join(at_best, rsuffix="_best").join(per_run, on="run_id").reset_index()
    blocks = "i_xt_irr" in info.columns and info.i_xt_irr.notna().any()
    if blocks:  # a teacher with task-irrelevant inputs: each block's I(T;X_S) from the first logged epoch to the end
        key = ["run_id", "layer", "estimator"]
        first = i[i.epoch == i.epoch.min()].set_index(key)[["i_xt_rel", "i_xt_irr"]]
        last = i[i.epoch == i.final_epoch].set_index(key)[["i_xt_rel", "i_xt_irr"]]
        both = both.join((last - first).add_suffix("_change"), on=key)
    rows = []
    for (cell, layer, est), g in both.groupby(["cell", "layer", "estimator"], sort=False):
        row = {"cell": cell, "layer": layer, "estimator": est, "n_runs": len(g),
               "median_best_epoch": float(g.best_epoch.median())}
        values = {"error_best": g.error_best, "error_final": g.error_final, "overtraining": g.overtraining,
                  "i_xt_best": g.i_xt_best, "i_xt_final": g.i_xt, "i_xt_change": g.i_xt - g.i_xt_best,
                  "i_ty_best": g.i_ty_best, "i_ty_final": g.i_ty, "i_ty_change": g.i_ty - g.i_ty_best}
        if blocks:
            values.update({"i_xt_rel_change": g.i_xt_rel_change, "i_xt_irr_change": g.i_xt_irr_change})
        for name, v in values.items():
            v = v.to_numpy(float)
            lo, hi = bootstrap_ci(v, **boot)
            row.update({name: _mean(pd.Series(v)), f"{name}_lo": lo, f"{name}_hi": hi})
        rows.append(row)
    return pd.DataFrame(rows)


def epochs_to_fit(metrics: pd.DataFrame, accuracy: float) -> pd.Series:
    """Per run (index run_id): its first logged epoch with training accuracy (against the labels it trains on) at
    least `accuracy`; runs that never get there are absent."""
    return metrics[metrics.train_acc >= accuracy].groupby("run_id").epoch.min()


def fitting_times(metrics: pd.DataFrame, runs: pd.DataFrame, settings: VerdictSettings = DEFAULT_SETTINGS
                  ) -> pd.DataFrame:
    """fitting.csv (classification sweeps): per cell, how long its networks took to fit their training labels.

    A run's epochs to fit: its first logged epoch with training accuracy (against the labels it trains on) at
    least `settings.fit_accuracy`; a run that never gets there is censored (its time is "more than the sweep").
    Per cell: the runs and how many fitted (Wilson interval of the fraction), the median epochs to fit with a
    distribution-free interval from order statistics (`scipy.stats.quantile_test`; censored runs count as
    longer than any, so the upper bound is inf while they could hold the median), and the final training
    accuracy (mean, bootstrap interval). Resolution: the logged epochs (metrics are recorded where MI is), so a
    time is the first logged epoch at or after the fit. Empty for a regression sweep."""
    if metrics.empty or is_regression(metrics):
        return pd.DataFrame()
    ok = runs.loc[~runs.diverged.astype(bool), ["run_id", "cell"]]
    m = metrics.merge(ok, on="run_id")
    per_run = ok.set_index("run_id").assign(epochs_to_fit=epochs_to_fit(m, settings.fit_accuracy)).reset_index()
    final = m.sort_values("epoch").groupby("run_id").train_acc.last()
    per_run["final_train_acc"] = per_run.run_id.map(final)
    rows = []
    settings_shown = cell_settings_shown(runs)
    for cell, g in per_run.groupby("cell", sort=False):
        t = g.epochs_to_fit.to_numpy(float)
        n, k = len(t), int(np.isfinite(t).sum())
        t = np.where(np.isfinite(t), t, np.inf)
        med, lo, hi = median_interval(t, settings.confidence)
        acc = g.final_train_acc.to_numpy(float)
        acc_lo, acc_hi = bootstrap_ci(acc, **settings.boot())
        f_lo, f_hi = wilson_interval(k, n, settings.confidence)
        rows.append({"cell": cell, **settings_shown.loc[cell].to_dict(), "n_runs": n, "n_fitted": k,
                     "fitted_frac": k / n if n else np.nan, "fitted_lo": f_lo, "fitted_hi": f_hi,
                     "median_epochs_to_fit": med, "median_lo": lo, "median_hi": hi,
                     "final_train_acc": float(acc.mean()) if n else np.nan,
                     "final_train_acc_lo": acc_lo, "final_train_acc_hi": acc_hi})
    return pd.DataFrame(rows)
