"""MI on the training and the held-out sample of one sweep (`data.mi_sample.split: both`).

The report reads each estimator's trajectories on each sample as a series of their own, named
<estimator>@train and <estimator>@test: every verdict, summary, interval and figure is then per sample, and the
agreement table compares the two samples as it compares estimators. `compare_samples` puts compression on the two
side by side: per cell, layer and estimator, how many networks compress on each and the paired difference of
their drops (each network measured on both samples: one unit, so pairs are independent networks).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ibjax.report.intervals import bootstrap_ci, wilson_interval
from ibjax.report.phases import PREFERRED_ESTIMATOR
from ibjax.report.verdicts import VerdictSettings
from ibjax.rundir.contract import layer_order

SEPARATOR = "@"


def per_sample(rd):
    """The run directory with each (estimator, sample) pair as its own estimator (unchanged without samples)."""
    info = rd.info
    if "split" not in info.columns:
        return rd
    info = info.assign(estimator=info.estimator.astype(str) + SEPARATOR + info.split.astype(str))
    return dataclasses.replace(rd, info=info.drop(columns="split"))


def held_out_estimator(names) -> str | None:
    """With two samples, the phases' estimator: 30-bin binning on the test sample where measured, else the first
    estimator's test-sample series (as the sweep's planes and the atlas read the held-out sample); None without
    samples (the phases pick their own)."""
    test = [str(n) for n in names if str(n).endswith(f"{SEPARATOR}test")]
    if not test:
        return None
    preferred = f"{PREFERRED_ESTIMATOR}{SEPARATOR}test"
    return preferred if preferred in test else test[0]


def per_sample_limits(limits: dict, samples) -> dict:
    """Each estimator's limits under its per-sample names too (both samples have the recorded size)."""
    return {**limits, **{f"{name}{SEPARATOR}{s}": lim for name, lim in limits.items() for s in samples}}


def compare_samples(verdicts: pd.DataFrame, settings: VerdictSettings) -> pd.DataFrame:
    """samples.csv: per cell, layer and estimator, the networks measured on both samples (neither at its ceiling),
    the fraction compressed on each (Wilson intervals) and the mean drop from peak to final level on each, with
    the paired difference held-out - training (bootstrap interval over networks). Empty without two samples."""
    names = verdicts.estimator.astype(str)
    if not names.str.contains(SEPARATOR, regex=False).any():
        return pd.DataFrame()
    v = verdicts.assign(base=names.str.rsplit(SEPARATOR, n=1).str[0], sample=names.str.rsplit(SEPARATOR, n=1).str[1])
    keys = ["run_id", "cell", "layer", "base"]
    pairs = v[v["sample"] == "train"].merge(v[v["sample"] == "test"], on=keys, suffixes=("_train", "_test"))
    pairs = pairs[~(pairs.saturated_train | pairs.saturated_test)]
    rows = []
    for (cell, layer, est), g in pairs.groupby(["cell", "layer", "base"], sort=False):
        n = len(g)
        row = {"cell": cell, "layer": layer, "estimator": est, "n_networks": n}
        for s in ("train", "test"):
            k = int(g[f"compressed_{s}"].sum())
            lo, hi = wilson_interval(k, n, settings.confidence)
            row |= {f"compressed_{s}": k / n, f"compressed_{s}_lo": lo, f"compressed_{s}_hi": hi,
                    f"drop_bits_{s}": float(g[f"drop_bits_{s}"].mean())}
        diff = (g.drop_bits_test - g.drop_bits_train).to_numpy(float)
        lo, hi = bootstrap_ci(diff, **settings.boot()) if n > 1 else (np.nan, np.nan)
        row |= {"drop_diff_bits": float(diff.mean()), "drop_diff_lo": lo, "drop_diff_hi": hi}
        rows.append(row)
    out = pd.DataFrame(rows)
    rank = {name: i for i, name in enumerate(layer_order(out.layer))}
    cells = {c: i for i, c in enumerate(dict.fromkeys(verdicts.cell))}
    return out.sort_values(["estimator", "cell", "layer"], key=lambda c: c.map(rank) if c.name == "layer"
                           else c.map(cells) if c.name == "cell" else c, kind="stable").reset_index(drop=True)
