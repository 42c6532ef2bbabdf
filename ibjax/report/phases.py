"""Shwartz-Ziv & Tishby's phases, per network and layer, and the three depth claims they make (2017, as reviewed
for a general audience):

(a) adding hidden layers reduces the epochs needed to generalize;
(b) compression is faster in deeper layers;
(c) the gradients' transition from drift (mean >> std) to diffusion (std >> mean) coincides with the start of
    compression.

Per network and hidden layer (one estimator: 30-bin binning where measured, else the first):
    onset      the logged epoch of the maximum of the smoothed I(X;T) (compression starts after it)
    compresses the fall from that maximum to the final level exceeds `settings.threshold_bits`
    end        first logged epoch after the onset where the smoothed I(X;T) has made 90 % of that fall
    duration   log10(end) - log10(onset), decades (the epochs are log-spaced: a duration in decades does not
               depend on when the phase starts); NaN where the layer does not compress
Per network:
    snr        first logged epoch where the median over layers of the smoothed gradient SNR
               (||mean|| / ||std||) is below 1: the drift-to-diffusion transition (the atlas's "snr" anchor)
    generalize first logged epoch with test accuracy >= `settings.generalize_accuracy` (censored: never)
    lag        log10(onset of the last hidden layer) - log10(snr), decades (c predicts ~0)

Intervals: medians by order statistics (`scipy.stats.quantile_test`, distribution-free; censored times count as
longer than any), fractions by Wilson, correlations and mean differences by a bootstrap over networks. The
networks of a sweep are independent (their own seeds), so each network is one unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ibjax.report.intervals import bootstrap_ci, median_interval, spearman_ci, wilson_interval
from ibjax.report.summary import cell_settings_shown
from ibjax.report.verdicts import DEFAULT_SETTINGS, VerdictSettings, smooth
from ibjax.rundir.contract import is_regression, layer_order

END_FALL = 0.90  # a compression phase ends when 90 % of its fall is made
PREFERRED_ESTIMATOR = "binning30"


def _final(values: np.ndarray, fraction: float) -> float:
    k = max(1, int(np.ceil(fraction * len(values))))
    return float(np.mean(values[-k:]))


def layer_phase(epochs: np.ndarray, i_xt: np.ndarray, settings: VerdictSettings,
                ceiling: float = np.inf) -> dict:
    """Onset, end and duration of one layer's compression from its logged I(X;T) (epochs ascending; non-finite
    points dropped). As the report's verdicts: a maximum within `settings.saturation_eps_bits` of the
    estimator's `ceiling` (saturated: no fall can show) or inside the final window (still rising or flat) is no
    compression; `complete` is False where the fall never reaches END_FALL of itself (then `end` is the last
    logged epoch and the duration a lower bound)."""
    ok = np.isfinite(np.asarray(i_xt, float))
    epochs, raw = np.asarray(epochs, float)[ok], np.asarray(i_xt, float)[ok]
    out = {"onset": np.nan, "fall_bits": np.nan, "compresses": False, "saturated": False, "complete": False,
           "end": np.nan, "duration_decades": np.nan}
    if len(raw) < 3:
        return out
    s = smooth(raw, settings.smooth_window)
    peak = int(np.argmax(s))
    final = _final(raw, settings.final_fraction)
    fall = float(s[peak] - final)
    in_final_window = peak >= len(s) - max(1, int(np.ceil(settings.final_fraction * len(s))))
    saturated = bool(s[peak] >= ceiling - settings.saturation_eps_bits)
    out.update(onset=float(epochs[peak]), fall_bits=fall, saturated=saturated,
               compresses=bool(fall > settings.threshold_bits and not saturated and not in_final_window))
    if out["compresses"]:
        hit = np.flatnonzero(s[peak:] <= s[peak] - END_FALL * fall)
        end = epochs[peak + hit[0]] if len(hit) else epochs[-1]
        out["end"], out["complete"] = float(end), bool(len(hit))
        out["duration_decades"] = float(np.log10(max(end, 1)) - np.log10(max(epochs[peak], 1)))
    return out


def diffusion_index(median_snr_T: np.ndarray, window: int) -> int | None:
    """Index of the first logged epoch where the smoothed median-over-layers gradient SNR is below 1 (None:
    never): Shwartz-Ziv & Tishby's drift-to-diffusion transition, also the atlas's "snr" fitting anchor."""
    hit = np.flatnonzero(smooth(np.asarray(median_snr_T, float), window) < 1.0)
    return int(hit[0]) if len(hit) else None


def snr_transition(gradients: pd.DataFrame, settings: VerdictSettings) -> float:
    """First logged epoch of one run's drift-to-diffusion transition (`diffusion_index` of the median over its
    layers of the gradient SNR at each logged epoch; NaN: never)."""
    return _transition_epoch(gradients.groupby("epoch").snr.median(), settings)


def _transition_epoch(median_snr_by_epoch: pd.Series, settings: VerdictSettings) -> float:
    if median_snr_by_epoch.empty:
        return np.nan
    i = diffusion_index(median_snr_by_epoch.to_numpy(float), settings.smooth_window)
    return float(median_snr_by_epoch.index[i]) if i is not None else np.nan


def network_phases(info: pd.DataFrame, gradients: pd.DataFrame, metrics: pd.DataFrame, runs: pd.DataFrame,
                   settings: VerdictSettings = DEFAULT_SETTINGS, ceilings: dict | None = None,
                   estimator: str | None = None) -> pd.DataFrame:
    """One row per (run, hidden layer): depth, layer index (1 = first hidden), onset, end, duration, whether it
    compresses (`ceilings`: each estimator's I(X;T) ceiling in bits, for the saturation rule), and the run's SNR
    transition, epochs to generalize and lag (the same on each of its rows; NaN where its last hidden layer does
    not compress: no onset to time). `estimator`: whose I(X;T) (default 30-bin binning where measured, else the
    first)."""
    if info.empty or is_regression(metrics):
        return pd.DataFrame()
    estimators = list(dict.fromkeys(info.estimator))
    est = estimator or (PREFERRED_ESTIMATOR if PREFERRED_ESTIMATOR in estimators else estimators[0])
    ok = runs.loc[~runs.diverged.astype(bool), ["run_id", "cell"]]
    inf = info[(info.estimator == est) & info.run_id.isin(ok.run_id)]
    reached = metrics[metrics.test_acc >= settings.generalize_accuracy].groupby("run_id").epoch.min()
    median_snr = {}  # per run: the median over layers of the gradient SNR at each logged epoch (one groupby)
    if not gradients.empty:
        med = gradients.groupby(["run_id", "epoch"]).snr.median()
        median_snr = {rid: g.droplevel(0) for rid, g in med.groupby(level="run_id", sort=False)}
    order = layer_order(info.layer.unique())
    ceiling = (ceilings or {}).get(est, np.inf)
    rows = []
    for run_id, g in inf.groupby("run_id", sort=False):
        by_layer = {str(name): t for name, t in g.groupby("layer", sort=False)}
        hidden = [name for name in order if name != "out" and name in by_layer]
        snr = _transition_epoch(median_snr[run_id], settings) if run_id in median_snr else np.nan
        for index, name in enumerate(hidden, start=1):
            t = by_layer[name].sort_values("epoch")
            ph = layer_phase(t.epoch.to_numpy(float), t.i_xt.to_numpy(float), settings, ceiling)
            rows.append({"run_id": run_id, "estimator": est, "depth": len(hidden), "layer": name, "index": index,
                         **ph, "snr_epoch": snr, "generalize_epoch": float(reached.get(run_id, np.inf))})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out = out.merge(ok, on="run_id")
    last_rows = out[(out["index"] == out.depth) & out.compresses]
    last = last_rows.set_index("run_id").onset
    with np.errstate(divide="ignore", invalid="ignore"):
        out["lag_decades"] = np.log10(out.run_id.map(last).clip(lower=1)) - np.log10(out.snr_epoch.clip(lower=1))
    return out


def speed_differences(phases: pd.DataFrame) -> pd.Series:
    """Claim (b)'s per-network quantity: over the adjacent pairs of hidden layers whose compression phases both
    complete (reach END_FALL of their fall), the mean duration difference deeper - shallower, in decades; one value
    per network that has such a pair (indexed by run_id)."""
    c = phases[phases.compresses & phases.complete].sort_values(["run_id", "index"], kind="stable")
    run = c.run_id.to_numpy()
    idx, dur = c["index"].to_numpy(), c.duration_decades.to_numpy(float)
    adjacent = (run[1:] == run[:-1]) & (np.diff(idx) == 1)  # each layer and the next one of the same network
    if not adjacent.any():
        return pd.Series(dtype=float)
    diffs = pd.Series((dur[1:] - dur[:-1])[adjacent], index=run[1:][adjacent])
    return diffs.groupby(level=0, sort=True).mean().astype(float)


def onset_lags(phases: pd.DataFrame) -> pd.Series:
    """Claim (c)'s per-network quantity: log10 of the last hidden layer's compression onset minus log10 of the
    SNR transition (decades), for the networks whose last hidden layer compresses and whose SNR crosses 1
    (indexed by run_id)."""
    last = phases[(phases["index"] == phases.depth) & phases.compresses & np.isfinite(phases.snr_epoch)]
    lag = np.log10(last.onset.clip(lower=1).to_numpy(float)) - np.log10(last.snr_epoch.clip(lower=1).to_numpy(float))
    return pd.Series(lag, index=last.run_id.to_numpy(), dtype=float)


def phase_table(phases: pd.DataFrame, runs: pd.DataFrame, settings: VerdictSettings = DEFAULT_SETTINGS
                ) -> pd.DataFrame:
    """phases.csv: per cell and hidden layer, how many networks' layer compresses (Wilson interval), the median
    onset and duration of compression (order-statistic intervals, compressing layers only), and per cell the
    median epochs to generalize and the median lag between the SNR transition and the last hidden layer's onset
    (on the cell's rows of its last hidden layer)."""
    if phases.empty:
        return pd.DataFrame()
    shown = cell_settings_shown(runs)
    rows = []
    for (cell, index), g in phases.groupby(["cell", "index"], sort=False):
        n, k = len(g), int(g.compresses.sum())
        comp = g[g.compresses]
        on, on_lo, on_hi = median_interval(comp.onset.to_numpy(), settings.confidence)
        du, du_lo, du_hi = median_interval(comp.duration_decades.to_numpy(), settings.confidence)
        gen, gen_lo, gen_hi = median_interval(g.generalize_epoch.to_numpy(), settings.confidence)
        last = bool((g["index"] == g.depth).all())
        lag, lag_lo, lag_hi = (median_interval(g.lag_decades.to_numpy(), settings.confidence) if last
                               else (np.nan, np.nan, np.nan))
        f_lo, f_hi = wilson_interval(k, n, settings.confidence)
        rows.append({"cell": cell, **shown.loc[cell].to_dict(), "estimator": g.estimator.iloc[0],
                     "layer": g.layer.iloc[0], "index": int(index),
                     "depth": int(g.depth.iloc[0]), "n_runs": n, "n_compress": k, "compress_frac": k / n,
                     "compress_lo": f_lo, "compress_hi": f_hi, "median_onset": on, "onset_lo": on_lo,
                     "onset_hi": on_hi, "median_duration_decades": du, "duration_lo": du_lo, "duration_hi": du_hi,
                     "median_generalize_epoch": gen, "generalize_lo": gen_lo, "generalize_hi": gen_hi,
                     "median_lag_decades": lag, "lag_lo": lag_lo, "lag_hi": lag_hi})
    return pd.DataFrame(rows).sort_values(["depth", "cell", "index"], kind="stable").reset_index(drop=True)


def depth_claims(phases: pd.DataFrame, settings: VerdictSettings = DEFAULT_SETTINGS) -> pd.DataFrame:
    """depth_claims.csv: claims (a)-(c) over all networks of the sweep, each with its estimate and interval.

    (a) Spearman r between depth and epochs to generalize (networks that never reach the level rank as the
        slowest); the claim predicts r < 0. Only where the sweep has networks of 2+ depths.
    (b) per network with 2+ compressing layers (phases that reach 90 % of their fall), the mean over adjacent
        ones of the duration difference deeper - shallower (decades); the claim predicts < 0. Mean over
        networks, bootstrap interval.
    (c) the median lag (decades) between the SNR transition and the onset of the last hidden layer, over the
        networks whose last hidden layer compresses; the claim predicts ~0. Also the share of those networks
        whose lag is within 0.25 decades (Wilson).
    Censored epochs to generalize rank as the slowest: right when every network trains the same epochs (a
    sweep's networks do).
    """
    if phases.empty:
        return pd.DataFrame()
    boot = settings.boot()
    per_run = phases.groupby("run_id").agg(depth=("depth", "first"), generalize=("generalize_epoch", "first"),
                                           lag=("lag_decades", "first"))
    rows = []
    if per_run.depth.nunique() >= 2 and np.isfinite(per_run.generalize).any():
        gen = per_run.generalize.replace(np.inf, np.nan)
        gen = gen.fillna(np.inf if gen.notna().any() else 0.0)
        ranked = pd.Series(gen.rank(method="average"), index=per_run.index)  # inf ranks as the slowest
        r, lo, hi = spearman_ci(per_run.depth.to_numpy(float), ranked.to_numpy(float), **boot)
        rows.append({"claim": "a: deeper networks generalize in fewer epochs",
                     "statistic": "Spearman r (depth, epochs to generalize)", "predicted": "< 0",
                     "estimate": r, "lo": lo, "hi": hi, "n_networks": len(per_run)})
    diffs = list(speed_differences(phases))
    if diffs:
        lo, hi = bootstrap_ci(np.asarray(diffs), **boot)
        rows.append({"claim": "b: deeper layers compress faster",
                     "statistic": "mean duration difference, deeper - shallower adjacent layer (decades)",
                     "predicted": "< 0", "estimate": float(np.mean(diffs)), "lo": lo, "hi": hi,
                     "n_networks": len(diffs)})
    lag = onset_lags(phases).to_numpy(float)
    if len(lag):
        med, lo, hi = median_interval(lag, settings.confidence)
        rows.append({"claim": "c: the drift-to-diffusion transition coincides with compression onset",
                     "statistic": "median lag, last hidden layer's onset - SNR transition (decades)",
                     "predicted": "~ 0", "estimate": med, "lo": lo, "hi": hi, "n_networks": len(lag)})
        k = int(np.sum(np.abs(lag) <= 0.25))
        w_lo, w_hi = wilson_interval(k, len(lag), settings.confidence)
        rows.append({"claim": "c: the drift-to-diffusion transition coincides with compression onset",
                     "statistic": "share of networks with the lag within ±0.25 decades", "predicted": "high",
                     "estimate": k / len(lag), "lo": w_lo, "hi": w_hi, "n_networks": len(lag)})
    return pd.DataFrame(rows)
