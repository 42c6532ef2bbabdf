"""Evidence rows: what one run directory says about each claim, per cell (or contrast), layer and estimator.

Every row carries a measure with its interval and one of: supports / contradicts / inconclusive (decisive rows
decide the claim's verdict), excluded (every trajectory saturated or outside its estimator's validated range:
nothing measured) or context (reported beside a claim, never counted). The rules are the `RULES` below, printed
in ATLAS.md; they read the settings of the cells (activation, batch size, label noise, ...), not study names.

Trajectories that are saturated (at the estimator's ceiling) or outside its validated range are left out of
every measure and counted in `n_excluded`: their drop is not a measurement of compression.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ibjax.atlas.studies import NON_SATURATING, SATURATING
from ibjax.report.comparisons import compare_cells, correlations
from ibjax.report.intervals import bootstrap_ci, mcnemar_exact, paired_bootstrap_diff, wilson_interval
from ibjax.report.labels import cell_labels
from ibjax.report.verdicts import DEFAULT_SETTINGS, VerdictSettings, limits_from_manifest, run_verdicts
from ibjax.report.write import load_finished

RULES = {
    "fit_then_compress": "fraction of runs compressed after fitting (Wilson interval): supports if its lower bound "
                         "> 0.5, contradicts if its upper bound < 0.5",
    "compression_generalizes": "Spearman r of relative drop vs generalization gap within cells: supports if the "
                               "interval lies below 0, contradicts if it lies above -0.3 (no link of that size); "
                               "true vs random labels (paired seeds): supports if true labels compress more "
                               "(interval of the difference above 0), contradicts if below 0, or if at most 0 "
                               "while the random-label networks do compress",
    "sgd_noise": "minibatch minus full-batch fraction compressed (paired seeds): supports if its interval lies above "
                 "0, contradicts if it does not while full-batch GD compresses in a fraction whose Wilson lower "
                 "bound is > 0.25 (GD compresses in a quarter of its runs or more)",
    "saturating_only": "double-saturating minus non-saturating fraction compressed (paired seeds): supports if its "
                       "interval lies above 0, contradicts if below 0 or if most non-saturating runs compress "
                       "(Wilson lower bound > 0.5)",
    "irrelevant_compressed": "fraction compressed of I(T;X_irr) minus that of I(T;X_rel) (same runs and layers), "
                             "and the same difference in the compression factor rho over the whole trajectory "
                             "(which also sees a fall during fitting): each supports if its interval lies above "
                             "0 (rho: above 0.05), contradicts if below 0 (rho: below -0.05)",
}

# A difference in the compression factor rho counts only beyond this (rho is a fraction of I_max: 0.05 is 5 %).
RHO_MARGIN = 0.05
# Full-batch GD "compresses" when the Wilson lower bound of its fraction compressed exceeds this.
GD_COMPRESSES = 0.25

COLUMNS = ("claim", "study", "run_dir", "cell", "contrast", "layer", "estimator", "measure", "value", "lo", "hi",
           "n", "n_excluded", "p_value", "rho_mean", "rho_lo", "rho_hi", "evidence")


@dataclass
class StudyRun:
    """One finished run directory, with its verdicts computed under the atlas's settings."""

    name: str
    path: Path
    runs: pd.DataFrame
    info: pd.DataFrame
    manifest: dict
    verdicts: pd.DataFrame
    n_samples: int


def load_study(path: str | Path, settings: VerdictSettings = DEFAULT_SETTINGS) -> StudyRun:
    """Raises RunDirError (naming the path) for a missing, incomplete or unreadable run directory."""
    path = Path(path)
    rd = load_finished(path)
    n = int(rd.manifest["n_mi_samples"])
    verdicts = run_verdicts(rd.info, rd.runs, n, settings, limits_from_manifest(rd.manifest))
    return StudyRun(str(rd.spec.get("name", path.name)), path, rd.runs, rd.info, rd.manifest, verdicts, n)


def compression_factors(info: pd.DataFrame, settings: VerdictSettings = DEFAULT_SETTINGS,
                        column: str = "i_xt") -> pd.DataFrame:
    """Nothnagel & Geiger's compression factor per run x layer x estimator: rho = (I_max - I_end) / I_max, I_max
    the largest logged I(X;T), I_end the mean of the final `settings.final_fraction` of logged epochs (the
    verdicts' final level). A continuous measure beside the drop-based verdict; NaN where I_max <= 0."""
    rows = []
    for (rid, layer, est), g in info.sort_values("epoch").groupby(["run_id", "layer", "estimator"], sort=False):
        v = g[column].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if len(v) < 2:
            continue
        end = v[len(v) - max(1, int(np.ceil(settings.final_fraction * len(v)))):].mean()
        top = v.max()
        rows.append((rid, layer, est, (top - end) / top if top > 0 else np.nan))
    return pd.DataFrame(rows, columns=["run_id", "layer", "estimator", "rho"])


def _measured(verdicts: pd.DataFrame) -> pd.Series:
    return ~(verdicts.saturated | verdicts.unreliable)


def _row(claim, study: StudyRun, **kw) -> dict:
    base = dict.fromkeys(COLUMNS, np.nan)
    base.update(claim=claim, study=study.name, run_dir=str(study.path), cell="", contrast="", measure="",
                n_excluded=0, evidence="inconclusive")
    base.update(kw)
    return base


def _decide(lo: float, hi: float, support_if_lo_above: float, contradict_if_hi_below: float) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if lo > support_if_lo_above:
        return "supports"
    if hi < contradict_if_hi_below:
        return "contradicts"
    return "inconclusive"


def fit_then_compress(study: StudyRun, settings: VerdictSettings = DEFAULT_SETTINGS) -> list[dict]:
    """Per cell x layer x estimator: the fraction of runs whose I(X;T) compresses after fitting, and the mean
    compression factor rho over the same runs."""
    v = study.verdicts
    rho = compression_factors(study.info, settings).set_index(["run_id", "layer", "estimator"]).rho
    boot = settings.boot()
    rows = []
    for (cell, layer, est), g in v.groupby(["cell", "layer", "estimator"], sort=False):
        ok = g[_measured(g)]
        n, k = len(ok), int(ok.compression_after_fit.sum())
        excluded = len(g) - n
        if n == 0:
            rows.append(_row("fit_then_compress", study, cell=cell, layer=layer, estimator=est,
                             measure="fraction compressed after fit", n=0, n_excluded=excluded,
                             evidence="excluded"))
            continue
        lo, hi = wilson_interval(k, n, settings.confidence)
        r = rho.reindex(list(zip(ok.run_id, ok.layer, ok.estimator))).to_numpy(dtype=float)
        r = r[np.isfinite(r)]
        r_lo, r_hi = bootstrap_ci(r, **boot) if len(r) else (np.nan, np.nan)
        rows.append(_row("fit_then_compress", study, cell=cell, layer=layer, estimator=est,
                         measure="fraction compressed after fit", value=k / n, lo=lo, hi=hi, n=n,
                         n_excluded=excluded, rho_mean=float(r.mean()) if len(r) else np.nan,
                         rho_lo=r_lo, rho_hi=r_hi, evidence=_decide(lo, hi, 0.5, 0.5)))
    return rows


def _paired(study: StudyRun, settings: VerdictSettings, setting: str) -> pd.DataFrame:
    """compare_cells rows for one setting, on measured trajectories only (a pair with an excluded side drops)."""
    v = study.verdicts[_measured(study.verdicts)]
    comp = compare_cells(v, study.runs, settings)
    return comp[comp.setting == setting] if len(comp) else comp


def _oriented(r, first_is_a: bool):
    """(value_a, value_b, fraction_a, fraction_b, diff, lo, hi) with the side the claim favours first."""
    if first_is_a:
        return r.value_a, r.value_b, r.fraction_a, r.fraction_b, r["diff"], r.diff_lo, r.diff_hi
    return r.value_b, r.value_a, r.fraction_b, r.fraction_a, -r["diff"], -r.diff_hi, -r.diff_lo


def compression_generalizes(study: StudyRun, settings: VerdictSettings = DEFAULT_SETTINGS) -> list[dict]:
    rows = []
    v = study.verdicts[_measured(study.verdicts)]
    corr = correlations(v, study.runs, settings) if len(v) else pd.DataFrame()
    for _, c in corr[corr.scope == "within_cell"].iterrows() if len(corr) else []:
        if c.n_runs < 6:  # a rank correlation of fewer runs says nothing
            continue
        ev = "inconclusive"
        if np.isfinite(c.r_hi) and c.r_hi < 0:
            ev = "supports"
        elif np.isfinite(c.r_lo) and c.r_lo > -0.3:
            ev = "contradicts"
        rows.append(_row("compression_generalizes", study, contrast="drop vs gap, within cells", layer=c.layer,
                         estimator=c.estimator, measure="spearman r", value=c.spearman_r, lo=c.r_lo, hi=c.r_hi,
                         n=int(c.n_runs), evidence=ev))
    for _, r in _paired(study, settings, "label_noise").iterrows():
        a_first = float(r.value_a) < float(r.value_b)  # fewer random labels first: the claim expects more there
        va, vb, fa, fb, d, lo, hi = _oriented(r, a_first)
        # Random-label networks that compress as often as (and at all) true-label ones contradict the claim too.
        ev = "supports" if lo > 0 else "contradicts" if hi < 0 or (hi <= 0 and fb > 0) else "inconclusive"
        rows.append(_row("compression_generalizes", study, contrast=f"label_noise {va:g} - {vb:g}", layer=r.layer,
                         estimator=r.estimator, measure="difference in fraction compressed", value=d, lo=lo,
                         hi=hi, n=int(r.n_pairs), p_value=r.p_value, evidence=ev))
    return rows


def sgd_noise(study: StudyRun, settings: VerdictSettings = DEFAULT_SETTINGS) -> list[dict]:
    rows = []
    for _, r in _paired(study, settings, "batch_size").iterrows():
        if "full" not in (str(r.value_a), str(r.value_b)):
            continue
        va, vb, fa, fb, d, lo, hi = _oriented(r, str(r.value_b) == "full")
        n = int(r.n_pairs)
        gd_lo, _ = wilson_interval(int(round(fb * n)), n, settings.confidence)
        ev = "supports" if lo > 0 else ("contradicts" if gd_lo > GD_COMPRESSES else "inconclusive")
        rows.append(_row("sgd_noise", study, cell=f"{r.cell_a} | {r.cell_b}", contrast=f"batch {va} - {vb}",
                         layer=r.layer, estimator=r.estimator, measure="difference in fraction compressed",
                         value=d, lo=lo, hi=hi, n=n, p_value=r.p_value, evidence=ev))
    return rows


def saturating_only(study: StudyRun, settings: VerdictSettings = DEFAULT_SETTINGS) -> list[dict]:
    rows = []
    for _, r in _paired(study, settings, "activation").iterrows():
        a, b = str(r.value_a), str(r.value_b)
        if {a, b} & SATURATING and {a, b} & NON_SATURATING:
            va, vb, fa, fb, d, lo, hi = _oriented(r, a in SATURATING)
            n = int(r.n_pairs)
            ns_lo, _ = wilson_interval(int(round(fb * n)), n, settings.confidence)
            ev = "supports" if lo > 0 else ("contradicts" if hi < 0 or ns_lo > 0.5 else "inconclusive")
            rows.append(_row("saturating_only", study, cell=f"{r.cell_a} | {r.cell_b}", contrast=f"{va} - {vb}",
                             layer=r.layer, estimator=r.estimator, measure="difference in fraction compressed",
                             value=d, lo=lo, hi=hi, n=n, p_value=r.p_value, evidence=ev))
    return rows


def irrelevant_compressed(study: StudyRun, settings: VerdictSettings = DEFAULT_SETTINGS) -> list[dict]:
    """Verdicts of I(T;X_irr) and I(T;X_rel) (info columns i_xt_irr, i_xt_rel) on the same runs and layers."""
    if not {"i_xt_rel", "i_xt_irr"} <= set(study.info.columns):
        return []
    part = {}
    for side in ("rel", "irr"):
        info = study.info.assign(i_xt=study.info[f"i_xt_{side}"])
        part[side] = run_verdicts(info, study.runs, study.n_samples, settings)
    both = part["irr"].merge(part["rel"], on=["run_id", "cell", "layer", "estimator"], suffixes=("_irr", "_rel"))
    rho = {side: compression_factors(study.info, settings, f"i_xt_{side}").set_index(
        ["run_id", "layer", "estimator"]).rho for side in ("rel", "irr")}
    boot = settings.boot()
    rows = []
    for (cell, layer, est), g in both.groupby(["cell", "layer", "estimator"], sort=False):
        ok = g[~(g.saturated_irr | g.saturated_rel)]
        if len(ok) < 2:
            rows.append(_row("irrelevant_compressed", study, cell=cell, layer=layer, estimator=est,
                             contrast="I(T;X_irr) - I(T;X_rel)", measure="difference in fraction compressed",
                             n=len(ok), n_excluded=len(g) - len(ok), evidence="excluded"))
            continue
        a, b = ok.compressed_irr.to_numpy(bool), ok.compressed_rel.to_numpy(bool)
        lo, hi = paired_bootstrap_diff(a, b, **boot)
        rows.append(_row("irrelevant_compressed", study, cell=cell, layer=layer, estimator=est,
                         contrast="I(T;X_irr) - I(T;X_rel)", measure="difference in fraction compressed",
                         value=float(a.mean() - b.mean()), lo=lo, hi=hi, n=len(ok), n_excluded=len(g) - len(ok),
                         p_value=mcnemar_exact(a, b), evidence=_decide(lo, hi, 0.0, 0.0)))
        # Saxe et al. see the irrelevant information fall *while* the network fits, where the drop-after-fit
        # verdict does not look: the whole-trajectory compression factor rho does.
        keys = list(zip(ok.run_id, ok.layer, ok.estimator))
        ra, rb = rho["irr"].reindex(keys).to_numpy(float), rho["rel"].reindex(keys).to_numpy(float)
        fin = np.isfinite(ra) & np.isfinite(rb)
        r_lo, r_hi = paired_bootstrap_diff(ra[fin], rb[fin], **boot) if fin.sum() > 1 else (np.nan, np.nan)
        rows.append(_row("irrelevant_compressed", study, cell=cell, layer=layer, estimator=est,
                         contrast="I(T;X_irr) - I(T;X_rel)", measure="difference in compression factor rho",
                         value=float((ra[fin] - rb[fin]).mean()) if fin.any() else np.nan, lo=r_lo, hi=r_hi,
                         n=int(fin.sum()), n_excluded=len(g) - len(ok),
                         evidence=_decide(r_lo, r_hi, RHO_MARGIN, -RHO_MARGIN)))
    return rows


def quantized_context(study: StudyRun, settings: VerdictSettings = DEFAULT_SETTINGS) -> list[dict]:
    """Quantized vs not (Lorenzen et al.): reported beside the fitting-then-compression claim, never counted
    (the claim predicts no difference; the contrast says how much the estimator's setting changes the count)."""
    rows = []
    for _, r in _paired(study, settings, "quantize_bits").iterrows():
        rows.append(_row("fit_then_compress", study, cell=f"{r.cell_a} | {r.cell_b}",
                         contrast=f"quantize {r.value_a} - {r.value_b}", layer=r.layer, estimator=r.estimator,
                         measure="difference in fraction compressed", value=r["diff"], lo=r.diff_lo,
                         hi=r.diff_hi, n=int(r.n_pairs), p_value=r.p_value, evidence="context"))
    return rows


EXTRACTORS = (fit_then_compress, compression_generalizes, sgd_noise, saturating_only, irrelevant_compressed,
              quantized_context)


def study_evidence(study: StudyRun, settings: VerdictSettings = DEFAULT_SETTINGS) -> pd.DataFrame:
    """Every evidence row of one study, with `label`: the cells as short names ('tanh', 'tanh vs relu')."""
    rows = [r for f in EXTRACTORS for r in f(study, settings)]
    ev = pd.DataFrame(rows, columns=list(COLUMNS))
    names = cell_labels(study.runs)
    ev["label"] = ev.cell.map(lambda c: " vs ".join(names.get(x, x) for x in c.split(" | ")) if c else "")
    return ev
