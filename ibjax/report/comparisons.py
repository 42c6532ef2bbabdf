"""Paired comparisons of cells that differ in one setting (tanh vs relu, sgd vs adam, ...) and the correlation of
compression with generalization.

Cells of one sweep share seeds, so seed s of cell A and seed s of cell B start from the same data split and the
same key: pairing them removes seed-level variation from the difference. Intervals resample seeds as pairs.

References:
    McNemar (1947), Psychometrika 12:153-157 (paired binary outcomes); Holm (1979), Scand. J. Statist. 6:65-70.
    Shwartz-Ziv & Tishby (2017) attribute generalization to compression; Saxe et al. (2018) dispute the link.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from ibjax.report.intervals import holm, mcnemar_exact, paired_bootstrap_diff, spearman_ci, tango_interval
from ibjax.report.summary import cells, run_gaps
from ibjax.report.verdicts import DEFAULT_SETTINGS, VerdictSettings
from ibjax.rundir.contract import CELL_SETTINGS, setting_key


def one_setting_pairs(runs: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(setting, cell_a, cell_b) for every two cells whose settings differ in exactly one column, in run-table
    order (so `tanh` vs `relu` keeps the order the spec listed them)."""
    table = cells(runs)
    cols = [c for c in CELL_SETTINGS if c in table]
    out = []
    for (_, a), (_, b) in itertools.combinations(table.iterrows(), 2):
        differ = [c for c in cols if setting_key(a[c]) != setting_key(b[c])]
        if len(differ) == 1:
            out.append((differ[0], a.cell, b.cell))
    return out


def compare_cells(verdicts: pd.DataFrame, runs: pd.DataFrame, settings: VerdictSettings = DEFAULT_SETTINGS
                  ) -> pd.DataFrame:
    """comparisons.csv: per one-setting cell pair x layer x estimator, seeds paired.

    Columns: fraction compressed in each cell over the paired seeds, their difference (a - b) with Tango's paired
    score interval (nominal coverage at 8-16 seed pairs, where a percentile bootstrap is too narrow), the exact
    McNemar p-value, Holm-adjusted over every row of the table (`p_holm`) and over the rows of the same layer and
    estimator (`p_holm_layer`); and the difference in mean relative drop (paired bootstrap).
    """
    by_cell = cells(runs).set_index("cell")
    boot = settings.boot()
    pct = round(100 * settings.confidence)
    rows = []
    for setting, ca, cb in one_setting_pairs(runs):
        va, vb = verdicts[verdicts.cell == ca], verdicts[verdicts.cell == cb]
        paired = va.merge(vb, on=["seed", "layer", "estimator"], suffixes=("_a", "_b"))
        for (layer, est), p in paired.groupby(["layer", "estimator"], sort=False):
            a, b = p.compressed_a.to_numpy(bool), p.compressed_b.to_numpy(bool)
            lo, hi = tango_interval(int((a & ~b).sum()), int((~a & b).sum()), len(a), settings.confidence)
            dlo, dhi = paired_bootstrap_diff(p.drop_rel_a.to_numpy(), p.drop_rel_b.to_numpy(), **boot)
            rows.append({
                "setting": setting, "value_a": by_cell.at[ca, setting], "value_b": by_cell.at[cb, setting],
                "cell_a": ca, "cell_b": cb, "layer": layer, "estimator": est, "n_pairs": len(p),
                "fraction_a": a.mean(), "fraction_b": b.mean(), "diff": a.mean() - b.mean(),
                "diff_lo": lo, "diff_hi": hi, "ci_method": f"Tango paired score {pct}%",
                "p_value": mcnemar_exact(a, b), "test": "exact McNemar",
                "drop_rel_diff": _mean_of_defined(p.drop_rel_a - p.drop_rel_b),
                "drop_rel_diff_lo": dlo, "drop_rel_diff_hi": dhi,
            })
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_holm"] = holm(out.p_value.to_numpy())
    out["p_holm_layer"] = out.groupby(["layer", "estimator"]).p_value.transform(lambda p: holm(p.to_numpy()))
    return out


def correlations(verdicts: pd.DataFrame, runs: pd.DataFrame, settings: VerdictSettings = DEFAULT_SETTINGS
                 ) -> pd.DataFrame:
    """correlations.csv: Spearman correlation of a run's relative drop with its generalization gap, per layer and
    estimator, with a bootstrap interval over runs.

    `pooled` uses all runs (cells differ in both, which can make a correlation by itself); `within_cell` first
    subtracts each cell's mean from both, so only seed-to-seed variation inside cells remains.
    """
    v = verdicts.assign(gap=run_gaps(runs).reindex(verdicts.run_id).to_numpy())
    boot = settings.boot()
    rows = []
    for (layer, est), g in v.groupby(["layer", "estimator"], sort=False):
        centred = g[["drop_rel", "gap"]] - g.groupby("cell")[["drop_rel", "gap"]].transform("mean")
        for scope, d in (("pooled", g), ("within_cell", centred)):
            rho, lo, hi = spearman_ci(d.drop_rel.to_numpy(), d.gap.to_numpy(), **boot)
            rows.append({"layer": layer, "estimator": est, "scope": scope, "n_runs": int(g.drop_rel.notna().sum()),
                         "spearman_r": rho, "r_lo": lo, "r_hi": hi,
                         "method": f"percentile bootstrap {round(100 * settings.confidence)}% over runs"})
    return pd.DataFrame(rows)


def _mean_of_defined(v) -> float:
    """np.nanmean, but NaN without NumPy's "Mean of empty slice" warning when every value is NaN (no pair where
    both networks' relative drop is defined)."""
    v = np.asarray(v, dtype=float)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")
