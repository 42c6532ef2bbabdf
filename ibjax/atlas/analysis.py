"""Endpoints -> per-study effects -> pooled effect and decision, for one specification.

The unit of analysis is an independent network. Studies are visited in the library's order (atlas.studies) and,
within a claim, a network (or a pair holding it) enters only the first time it is met: the same network in a
second study, or the same run directory given twice, adds nothing (`n_repeats` counts what was left out). Each
*entry* is one set of independent networks of one study that share their other settings (a cell, or a pair of
cells); its effect comes from ibjax.atlas.effects, and the claim's entries are pooled by ibjax.atlas.pooling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ibjax.atlas.effects import (
    NO_EFFECT,
    Effect,
    mean_effect,
    paired_binary_effect,
    paired_mean_effect,
    spearman_effect,
)
from ibjax.atlas.endpoints import ENDPOINT, ENDPOINTS, PRIMARY_BY_CLAIM, PRIMARY_ESTIMATORS, Spec
from ibjax.atlas.pooling import Pooled, decide, holm, pool
from ibjax.atlas.registry import StudyTables
from ibjax.atlas.studies import STUDY_NAMES
from ibjax.rundir.contract import GRID_AXES

MIN_CORRELATION_NETWORKS = 8
TRUE_LABELS = {"", "0", "0.0"}


@dataclass
class Entry:
    claim: str
    study: str
    stratum: str                 # the settings the entry's networks share (besides the contrast)
    estimator: str
    effect: Effect
    n_excluded: dict = field(default_factory=dict)   # per arm: networks left out by the exclusion rule
    n_repeats: int = 0           # networks (or pairs) already counted in an earlier entry of this claim


def study_order(studies: list[StudyTables]) -> list[StudyTables]:
    """The library's studies first, in its order, then any other, in the order given (stable)."""
    rank = {name: i for i, name in enumerate(STUDY_NAMES)}
    return sorted(studies, key=lambda s: rank.get(s.name, len(rank)))


def estimator_for(study: StudyTables, spec: Spec, quantity: str = "i_xt") -> str | None:
    have = set(study.measures.loc[study.measures.quantity == quantity, "estimator"])
    if spec.estimator != "primary":
        return spec.estimator if spec.estimator in have else None
    dataset = study.networks.dataset.iat[0] if len(study.networks) else "tishby12"
    prefs = PRIMARY_ESTIMATORS["tishby12" if dataset == "tishby12" else "other"]
    return next((e for e in prefs if e in have), None)


def network_values(study: StudyTables, spec: Spec, quantity: str = "i_xt", relative: bool = False
                   ) -> pd.DataFrame:
    """Per network of the study: `value` (bits; relative to the quantity's ceiling if `relative`; 0/1 with a
    threshold) and `excluded`, under the specification. Networks without a measure are absent."""
    key = (spec.estimator, spec.threshold, spec.anchor, spec.smooth, spec.budget, quantity, relative)
    if key not in study.cache:
        study.cache[key] = _network_values(study, spec, quantity, relative)
    return study.cache[key]


def _network_values(study: StudyTables, spec: Spec, quantity: str, relative: bool) -> pd.DataFrame:
    est = estimator_for(study, spec, quantity)
    m = study.measures
    if est is None or m.empty:
        return pd.DataFrame(columns=["run_id", "value", "excluded"])
    anchor = "loss" if spec.anchor == "start" else spec.anchor
    sel = m[(m.quantity == quantity) & (m.estimator == est) & (m.smooth == spec.smooth) & (m.anchor == anchor)]
    if spec.anchor == "start" and sel.empty:  # the start does not depend on the anchor: any anchor's rows do
        sel = m[(m.quantity == quantity) & (m.estimator == est) & (m.smooth == spec.smooth)]
        sel = sel.drop_duplicates(["run_id", "budget"])
    if spec.budget == "updates":
        upd = sel[sel.budget == "updates"]
        sel = pd.concat([upd, sel[(sel.budget == "epochs") & ~sel.run_id.isin(upd.run_id)]])
    else:
        sel = sel[sel.budget == "epochs"]
    level = sel.i_start if spec.anchor == "start" else sel.i_fit
    bits = (level - sel.i_end).to_numpy(float)
    if spec.threshold is not None:
        value = (bits > spec.threshold).astype(float)
    else:
        value = bits / sel.ceiling.to_numpy(float) if relative else bits
    return pd.DataFrame({"run_id": sel.run_id.to_numpy(), "value": value,
                         "excluded": (sel.excluded != "").to_numpy()}).assign(estimator=est)


def _apply_exclusion(values: pd.Series, excluded: pd.Series, policy: str, favoured: bool) -> pd.Series:
    """The exclusion policy on one arm: exclude -> NaN; include -> as measured; worst / best -> the arm's least /
    most favourable measured value (`favoured`: the claim predicts this arm's values high)."""
    v = values.astype(float).copy()
    if policy == "include" or not excluded.any():
        return v
    kept = v[~excluded]
    if policy == "exclude" or kept.empty:
        v[excluded] = np.nan
        return v
    low = (policy == "worst") == favoured
    v[excluded] = kept.min() if low else kept.max()
    return v


def _proportion_effect(values: np.ndarray, confidence: float) -> Effect:
    """Fraction of networks compressed minus 1/2 ("most networks"), with the Wilson interval and its score test;
    the standard error (for pooling) uses (k + 1/2) / (n + 1) so that a unanimous study keeps a finite weight."""
    from ibjax.report.intervals import wilson_interval

    v = values[np.isfinite(values)].astype(bool)
    n, k = len(v), int(v.sum())
    if n == 0:
        return Effect(math.nan, math.nan, math.nan, math.nan, math.nan, 0, math.nan)
    lo, hi = wilson_interval(k, n, confidence)
    p_t = (k + 0.5) / (n + 1)
    score = (k / n - 0.5) / math.sqrt(0.25 / n)
    return Effect(k / n - 0.5, math.sqrt(p_t * (1 - p_t) / n), lo - 0.5, hi - 0.5,
                  float(2 * stats.norm.sf(abs(score))), n, math.inf)


def _settings_key(nets: pd.DataFrame, without: str) -> pd.Series:
    cols = ["dataset", "model", *[a for a in GRID_AXES if a != without]]
    return nets[cols].astype(str).agg("|".join, axis=1)


def _stratum_text(nets: pd.DataFrame, without: str | None) -> str:
    """The settings an entry's networks share, as 'activation=tanh, batch=256' (only the ones that vary in the
    study: the rest is the study's)."""
    row = nets.iloc[0]
    parts = [f"{a}={row[a]}" for a in GRID_AXES if a != without and row[a] != ""]
    return ", ".join(parts)


def _varying(study: StudyTables) -> list[str]:
    return [a for a in GRID_AXES if study.networks[a].nunique() > 1]


def _label(study: StudyTables, g: pd.DataFrame, without: str | None = None) -> str:
    vary = [a for a in _varying(study) if a != without]
    row = g.iloc[0]
    return ", ".join(f"{a}={row[a]}" for a in vary) or "all"


def one_sample_entries(claim: str, study: StudyTables, spec: Spec, used: set, confidence: float) -> list[Entry]:
    nets = study.networks[~study.networks.diverged]
    if claim == "fit_then_compress":
        nets = nets[(nets.activation == "tanh") & nets.label_noise.isin(TRUE_LABELS)]
    vals = network_values(study, spec).drop(columns="estimator", errors="ignore")
    est = estimator_for(study, spec)
    out = []
    for _, g in nets.groupby("cell", sort=False):
        fresh = g[~g.network_id.isin(used)]
        repeats = len(g) - len(fresh)
        used.update(fresh.network_id)
        d = fresh.merge(vals, on="run_id")
        if d.empty:
            if repeats:
                out.append(Entry(claim, study.name, _label(study, g), est, NO_EFFECT, {}, repeats))
            continue
        v = _apply_exclusion(d.value, d.excluded, spec.exclusion, favoured=True)
        if claim == "compression_generalizes":
            ok = np.isfinite(v.to_numpy())
            if ok.sum() < MIN_CORRELATION_NETWORKS:
                continue
            eff = spearman_effect(v.to_numpy()[ok], d.gap.to_numpy(float)[ok], confidence)
        elif spec.threshold is not None:
            eff = _proportion_effect(v.to_numpy(), confidence)
        else:
            eff = mean_effect(v.to_numpy(), confidence)
        out.append(Entry(claim, study.name, _label(study, g), est, eff,
                         {"all": int(d.excluded.sum())}, repeats))
    return out


PAIRED = {"sgd_noise": ("batch_size", lambda v: v not in ("full", ""), lambda v: v == "full"),
          "saturating_only": ("activation", lambda v: v == "tanh", lambda v: v == "relu")}


def paired_entries(claim: str, study: StudyTables, spec: Spec, used: set, confidence: float) -> list[Entry]:
    axis, is_a, is_b = PAIRED[claim]
    nets = study.networks[~study.networks.diverged].copy()
    if claim == "sgd_noise":  # the setting both papers used (Saxe et al.'s Fig. 6 trains tanh networks)
        nets = nets[nets.activation == "tanh"].copy()
    nets["key"] = _settings_key(nets, axis)
    a, b = nets[nets[axis].map(is_a)], nets[nets[axis].map(is_b)]
    pairs = a.merge(b, on=["key", "seed"], suffixes=("_a", "_b"))
    if pairs.empty:
        return []
    vals = network_values(study, spec).set_index("run_id")
    est = estimator_for(study, spec)
    out = []
    pairs["stratum"] = pairs.key + "|" + pairs[f"{axis}_a"]
    for _, g in pairs.groupby("stratum", sort=False):
        fresh = g[~(g.network_id_a.isin(used) | g.network_id_b.isin(used))]
        repeats = len(g) - len(fresh)
        used.update(fresh.network_id_a)
        used.update(fresh.network_id_b)
        fresh = fresh[fresh.run_id_a.isin(vals.index) & fresh.run_id_b.isin(vals.index)]
        if fresh.empty:
            if repeats:
                out.append(Entry(claim, study.name, f"{g.iloc[0][f'{axis}_a']} - {g.iloc[0][f'{axis}_b']}", est,
                                 NO_EFFECT, {}, repeats))
            continue
        va, vb = vals.loc[fresh.run_id_a], vals.loc[fresh.run_id_b]
        xa = _apply_exclusion(va.value.reset_index(drop=True), va.excluded.reset_index(drop=True),
                              spec.exclusion, favoured=True)
        xb = _apply_exclusion(vb.value.reset_index(drop=True), vb.excluded.reset_index(drop=True),
                              spec.exclusion, favoured=False)
        ok = np.isfinite(xa.to_numpy()) & np.isfinite(xb.to_numpy())
        if spec.threshold is not None:
            eff = paired_binary_effect(xa.to_numpy()[ok] > 0.5, xb.to_numpy()[ok] > 0.5, confidence)
        else:
            eff = paired_mean_effect(xa.to_numpy()[ok], xb.to_numpy()[ok], confidence)
        side = {c[:-2]: fresh.iloc[0][c] for c in fresh.columns if c.endswith("_a")}
        label_row = pd.DataFrame([{a_: side.get(a_, "") for a_ in GRID_AXES}])
        vary = [x for x in _varying(study) if x != axis]
        text = ", ".join(f"{x}={label_row.iloc[0][x]}" for x in vary) or "all"
        arms = f"{fresh.iloc[0][f'{axis}_a']} - {fresh.iloc[0][f'{axis}_b']}"
        out.append(Entry(claim, study.name, f"{arms} ({text})" if text != "all" else arms, est, eff,
                         {"a": int(va.excluded.sum()), "b": int(vb.excluded.sum())}, repeats))
    return out


def irrelevant_entries(claim: str, study: StudyTables, spec: Spec, used: set, confidence: float) -> list[Entry]:
    irr = network_values(study, spec, "i_xt_irr", relative=True).set_index("run_id")
    rel = network_values(study, spec, "i_xt_rel", relative=True).set_index("run_id")
    if irr.empty or rel.empty:
        return []
    nets = study.networks[~study.networks.diverged]
    est = estimator_for(study, spec, "i_xt_irr")
    out = []
    for _, g in nets.groupby("cell", sort=False):
        fresh = g[~g.network_id.isin(used)]
        repeats = len(g) - len(fresh)
        used.update(fresh.network_id)
        ids = [r for r in fresh.run_id if r in irr.index and r in rel.index]
        if not ids:
            if repeats:
                out.append(Entry(claim, study.name, _label(study, g), est, NO_EFFECT, {}, repeats))
            continue
        vi, vr = irr.loc[ids], rel.loc[ids]
        both = (vi.excluded | vr.excluded).reset_index(drop=True)
        xi = _apply_exclusion(vi.value.reset_index(drop=True), both, spec.exclusion, favoured=True)
        xr = _apply_exclusion(vr.value.reset_index(drop=True), both, spec.exclusion, favoured=False)
        ok = np.isfinite(xi.to_numpy()) & np.isfinite(xr.to_numpy())
        if spec.threshold is not None:
            eff = paired_binary_effect(xi.to_numpy()[ok] > 0.5, xr.to_numpy()[ok] > 0.5, confidence)
        else:
            eff = mean_effect(xi.to_numpy()[ok] - xr.to_numpy()[ok], confidence)
        out.append(Entry(claim, study.name, _label(study, g), est, eff,
                         {"X_irr": int(vi.excluded.sum()), "X_rel": int(vr.excluded.sum())}, repeats))
    return out


BUILDERS = {"fit_then_compress": one_sample_entries, "compression_generalizes": one_sample_entries,
            "sgd_noise": paired_entries, "saturating_only": paired_entries,
            "irrelevant_compressed": irrelevant_entries}


def claim_entries(claim: str, studies: list[StudyTables], spec: Spec, confidence: float = 0.95) -> list[Entry]:
    used: set = set()
    return [e for s in study_order(studies) for e in BUILDERS[claim](claim, s, spec, used, confidence)]


def minimum_detectable(pooled: Pooled, power: float = 0.8, alpha: float = 0.05) -> float:
    """The effect the pooled test detects with `power` at level alpha (two-sided), given its standard error."""
    if not (math.isfinite(pooled.se) and pooled.se > 0):
        return math.nan
    dist = stats.norm if not math.isfinite(pooled.df) else stats.t(pooled.df)
    return float((dist.isf(alpha / 2) + dist.ppf(power)) * pooled.se)


def analyse(studies: list[StudyTables], specs: dict[str, Spec] | None = None, confidence: float = 0.95,
            adjust: bool = True) -> tuple[list[Entry], pd.DataFrame]:
    """Entries of every claim and one row per claim: pooled effect, interval, p, Holm-adjusted p (over the
    claims, when `adjust`), TOST, decision, minimum detectable effect and exclusions per arm."""
    specs = specs or PRIMARY_BY_CLAIM
    entries, rows = [], []
    for ep in ENDPOINTS:
        es = claim_entries(ep.claim, studies, specs[ep.claim], confidence)
        entries += es
        p = pool([e.effect for e in es], ep.sesoi, confidence)
        excl: dict[str, int] = {}
        for e in es:
            for arm, k in e.n_excluded.items():
                excl[arm] = excl.get(arm, 0) + k
        rows.append({"claim": ep.claim, "estimate": p.estimate, "lo": p.lo, "hi": p.hi, "se": p.se, "df": p.df,
                     "p_value": p.p_value, "k": p.k, "n": p.n, "tau2": p.tau2, "pred_lo": p.pred_lo,
                     "pred_hi": p.pred_hi, "tost_p": p.tost_p, "sesoi": ep.sesoi, "direction": ep.direction,
                     "mde": minimum_detectable(p, alpha=1 - confidence),
                     "n_repeats": sum(e.n_repeats for e in es),
                     "excluded": "; ".join(f"{a}: {k}" for a, k in excl.items()), "pooled": p})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table.p_value) if adjust else table.p_value
    table["decision"] = [decide(r.pooled, r.p_holm, r.direction, 1 - confidence) for r in table.itertuples()]
    return entries, table.drop(columns="pooled")


def entries_frame(entries: list[Entry], confidence: float = 0.95) -> pd.DataFrame:
    """The entries as a table (ATLAS.md and entries.csv): correlations shown as r, pooled on Fisher z."""
    return pd.DataFrame([{
        "claim": e.claim, "study": e.study, "entry": e.stratum, "estimator": e.estimator, "n": e.effect.n,
        "estimate": e.effect.estimate, "lo": e.effect.lo, "hi": e.effect.hi, "se": e.effect.se,
        "p_value": e.effect.p_value,
        "excluded": "; ".join(f"{a}: {k}" for a, k in e.n_excluded.items()), "repeats": e.n_repeats,
        "units": ENDPOINT[e.claim].units if ENDPOINT[e.claim].design != "correlation" else "Spearman r",
    } for e in entries])
