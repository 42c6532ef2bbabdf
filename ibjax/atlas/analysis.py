"""Endpoints -> per-study effects -> pooled effect and decision, for one specification.

The unit of analysis is an independent network. Studies are visited in the library's order (atlas.studies) and,
within a claim, a network (or a pair holding it) enters only the first time it is met: the same network in a
second study, or the same run directory given twice, adds nothing (`n_repeats` counts what was left out). Each
*entry* is one set of independent networks of one study that share their other settings (a cell, or a pair of
cells); its effect comes from ibjax.atlas.effects, and the claim's entries are pooled by ibjax.atlas.pooling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from ibjax.atlas.effects import (
    NO_EFFECT,
    Effect,
    average_effect,
    mean_effect,
    paired_binary_effect,
    paired_mean_effect,
    spearman_effect,
)
from ibjax.atlas.endpoints import ENDPOINT, ENDPOINTS, PRIMARY_BY_CLAIM, PRIMARY_ESTIMATORS, Spec
from ibjax.atlas.memo import by_content
from ibjax.atlas.pooling import Pooled, decide, holm, pool
from ibjax.atlas.registry import StudyTables
from ibjax.atlas.studies import PHASE_CLAIMS, REGRESSION_CLAIMS, REGRESSION_DATASETS, STUDY_NAMES
from ibjax.report.intervals import wilson_interval
from ibjax.report.phases import onset_lags, speed_differences
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
    key = ("estimator", spec.estimator, quantity)
    if key not in study.cache:
        study.cache[key] = _estimator_for(study, spec, quantity)
    return study.cache[key]


def _estimator_for(study: StudyTables, spec: Spec, quantity: str) -> str | None:
    if quantity == "phases":
        have = set(study.phases.estimator.tolist())
    else:
        have = set(study.measures.loc[study.measures.quantity == quantity, "estimator"].tolist())
    if spec.estimator != "primary":
        return spec.estimator if spec.estimator in have else None
    dataset = study.networks.dataset.iat[0] if len(study.networks) else "tishby12"
    prefs = PRIMARY_ESTIMATORS[dataset if dataset in PRIMARY_ESTIMATORS else "other"]
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


def _apply_exclusion(values, excluded, policy: str, favoured: bool) -> np.ndarray:
    """The exclusion policy on one arm: exclude -> NaN; include -> as measured; worst / best -> the arm's least /
    most favourable measured value (`favoured`: the claim predicts this arm's values high). NumPy, not pandas: the
    specification curve calls it tens of thousands of times."""
    v = np.array(values, dtype=float)
    x = np.asarray(excluded, dtype=bool)
    if policy == "include" or not x.any():
        return v
    kept = v[~x]
    kept = kept[~np.isnan(kept)]
    if policy == "exclude" or kept.size == 0:
        v[x] = np.nan
        return v
    low = (policy == "worst") == favoured
    v[x] = kept.min() if low else kept.max()
    return v


@by_content
def _proportion_effect(values: np.ndarray, confidence: float) -> Effect:
    """Fraction of networks compressed minus 1/2 ("most networks"), with the Wilson interval and its score test;
    the standard error (for pooling) uses (k + 1/2) / (n + 1) so that a unanimous study keeps a finite weight."""
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
    text = nets[cols].astype(str)
    key = text[cols[0]]
    for c in cols[1:]:  # column by column, not a Python join per row (15 ms per call, ~90 calls per atlas)
        key = key + "|" + text[c]
    return key


def _label(study: StudyTables, row, without: str | None = None) -> str:
    """The settings an entry's networks share that vary in the study ('activation=tanh, batch_size=256')."""
    vary = [a for a in GRID_AXES if a != without and study.networks[a].nunique() > 1]
    return ", ".join(f"{a}={row[a] if row[a] != '' else 'none'}" for a in vary) or "all"


@dataclass
class Unit:
    """The networks of one entry, fixed before any value is read (so every specification analyses the same
    ones): run ids of arm a (and of arm b, pair by pair), the generalization gaps for a correlation."""

    study: StudyTables
    label: str
    a: np.ndarray
    b: np.ndarray | None = None
    gap: np.ndarray | None = None
    repeats: int = 0

    def __post_init__(self):
        # Plain Python strings: the run ids key the study's cache under every specification, and iterating an
        # Arrow-backed string array element by element costs ~10x more (a third of the specification curve).
        self.a = np.asarray([str(r) for r in self.a], dtype=object)
        if self.b is not None:
            self.b = np.asarray([str(r) for r in self.b], dtype=object)


def _one_sample_units(claim: str, study: StudyTables, used: set) -> list[Unit]:
    if claim == "irrelevant_compressed" and not (study.measures.quantity == "i_xt_irr").any():
        return []  # a study without task-irrelevant inputs has nothing to say here
    nets = study.networks[~study.networks.diverged]
    if claim == "fit_then_compress":
        nets = nets[(nets.activation == "tanh") & nets.label_noise.isin(TRUE_LABELS)]
    out = []
    for _, g in nets.groupby("cell", sort=False):
        fresh = g[~g.network_id.isin(used)]
        used.update(fresh.network_id)
        out.append(Unit(study, _label(study, g.iloc[0]), fresh.run_id.to_numpy(),
                        b=fresh.run_id.to_numpy() if claim == "irrelevant_compressed" else None,
                        gap=fresh.gap.to_numpy(float), repeats=len(g) - len(fresh)))
    return out


# The contrast of a paired claim: the axis, and which values are arm a (the arm the claim expects higher) and b.
PAIRED = {"sgd_noise": ("batch_size", lambda v: v not in ("full", ""), lambda v: v == "full"),
          "saturating_only": ("activation", lambda v: v == "tanh", lambda v: v == "relu"),
          # Zhang et al.'s random labels: completely random (p = 1) against true, one pair per seed (a 50 % arm
          # would reuse the true-label twin, which a network counted once cannot be).
          "random_labels_fit_later": ("label_noise", lambda v: v in ("1", "1.0"), lambda v: v in TRUE_LABELS)}


def _paired_units(claim: str, study: StudyTables, used: set) -> list[Unit]:
    axis, is_a, is_b = PAIRED[claim]
    nets = study.networks[~study.networks.diverged]
    if claim == "sgd_noise":  # the setting both papers used (Saxe et al.'s Fig. 6 trains tanh networks)
        nets = nets[nets.activation == "tanh"]
    if nets.empty:
        return []
    nets = nets.assign(key=_settings_key(nets, axis))
    a, b = nets[nets[axis].map(is_a).astype(bool)], nets[nets[axis].map(is_b).astype(bool)]
    pairs = a.merge(b, on=["key", "seed"], suffixes=("_a", "_b"))
    out = []
    for _, g in pairs.groupby(pairs.key + "|" + pairs[f"{axis}_a"], sort=False):
        fresh = g[~(g.network_id_a.isin(used) | g.network_id_b.isin(used))]
        used.update(fresh.network_id_a)
        used.update(fresh.network_id_b)
        first = g.iloc[0]
        shared = _label(study, {x: first.get(f"{x}_a", "") for x in GRID_AXES}, without=axis)
        arms = f"{first[f'{axis}_a']} - {first[f'{axis}_b']}"
        out.append(Unit(study, arms if shared == "all" else f"{arms} ({shared})", fresh.run_id_a.to_numpy(),
                        fresh.run_id_b.to_numpy(), repeats=len(g) - len(fresh)))
    return out


def _depth_units(claim: str, study: StudyTables, used: set) -> list[Unit]:
    """Claim (a): per set of networks that share every setting but the hidden layers, where 2+ depths are
    measured and the depth alone sets the widths (one architecture per depth: a set that also varies the widths
    at a depth would mix width into the correlation, and is left out)."""
    nets = study.networks[~study.networks.diverged & study.networks.run_id.isin(study.phases.run_id)]
    if nets.empty:
        return []
    nets = nets.assign(key=_settings_key(nets, "hidden"),
                       depth=nets.hidden.astype(str).map(lambda h: len(h.split("-")) if h else 0))
    out = []
    for _, g in nets.groupby("key", sort=False):
        if g.depth.nunique() < 2 or g.hidden.nunique() != g.depth.nunique():
            continue
        fresh = g[~g.network_id.isin(used)]
        used.update(fresh.network_id)
        out.append(Unit(study, _label(study, g.iloc[0], without="hidden"), fresh.run_id.to_numpy(),
                        repeats=len(g) - len(fresh)))
    return out


def _phase_units(claim: str, study: StudyTables, used: set) -> list[Unit]:
    """Claims (b) and (c): Shwartz-Ziv & Tishby's setting (tanh, true labels; minibatches for (c), whose
    drift-to-diffusion transition needs minibatch noise), per cell."""
    nets = study.networks[~study.networks.diverged & study.networks.run_id.isin(study.phases.run_id)]
    nets = nets[(nets.activation == "tanh") & nets.label_noise.isin(TRUE_LABELS)]
    if claim == "snr_marks_onset":
        nets = nets[nets.steps_per_epoch > 1]
    out = []
    for _, g in nets.groupby("cell", sort=False):
        fresh = g[~g.network_id.isin(used)]
        used.update(fresh.network_id)
        out.append(Unit(study, _label(study, g.iloc[0]), fresh.run_id.to_numpy(), repeats=len(g) - len(fresh)))
    return out


UNITS = {"fit_then_compress": _one_sample_units, "compression_generalizes": _one_sample_units,
         "sgd_noise": _paired_units, "saturating_only": _paired_units, "irrelevant_compressed": _one_sample_units,
         "depth_speeds_generalization": _depth_units, "deeper_compress_faster": _phase_units,
         "snr_marks_onset": _phase_units, "random_labels_fit_later": _paired_units}


def bears_on(claim: str, study: StudyTables) -> bool:
    """Whether a study's networks may be evidence on a claim: a regression task (Saxe et al.'s linear teacher)
    only on the claims stated for any task (REGRESSION_CLAIMS); the others are about classification networks in
    Shwartz-Ziv & Tishby's setting (fitting measured by I(T;Y) of class labels, their optimizer and activations)."""
    dataset = study.networks.dataset.iat[0] if len(study.networks) else "tishby12"
    return dataset not in REGRESSION_DATASETS or claim in REGRESSION_CLAIMS


def claim_units(claim: str, studies: list[StudyTables]) -> list[Unit]:
    """Every entry's networks for one claim, each independent network at most once (library order first).
    Computed once per claim and list of studies (kept in the first study's cache: the primary analysis, the
    specification curve and claim 1's context all ask, and finding the units was a fifth of the atlas's time)."""
    ordered = study_order(studies)
    if not ordered:
        return []
    key = ("units", claim, tuple(id(s) for s in ordered))
    hit = ordered[0].cache.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], ordered)):  # the same study objects, not reused ids
        return hit[1]
    used: set = set()
    units = [u for s in ordered if bears_on(claim, s) for u in UNITS[claim](claim, s, used)]
    ordered[0].cache[key] = (tuple(ordered), units)
    return units


def _indexed_values(study: StudyTables, spec: Spec, quantity: str, relative: bool):
    """network_values as (run_id index, values, excluded flags), once per specification: every unit then looks
    its networks up by position (a pandas reindex per unit and specification was most of the curve's time)."""
    key = ("indexed", spec.estimator, spec.threshold, spec.anchor, spec.smooth, spec.budget, quantity, relative)
    if key not in study.cache:
        v = network_values(study, spec, quantity, relative)
        study.cache[key] = (pd.Index([str(r) for r in v.run_id], dtype=object), v.value.to_numpy(float),
                            v.excluded.fillna(False).to_numpy(bool))
    return study.cache[key]


def _values(study: StudyTables, spec: Spec, quantity: str, relative: bool, ids: np.ndarray):
    """(values, excluded, measured) of the networks `ids` under the specification, aligned to `ids`. The
    continuous levels are looked up once per set of networks and kept in the study's cache; a threshold is
    applied to the drop in bits afterwards."""
    base = replace(spec, threshold=None)
    rel = relative and spec.threshold is None
    key = ("unit", tuple(ids), base.estimator, base.anchor, base.smooth, base.budget, quantity, rel)
    if key not in study.cache:
        index, values, flags = _indexed_values(study, base, quantity, rel)
        pos = index.get_indexer(ids) if len(index) else np.full(len(ids), -1)  # -1: no measure under the spec
        found = pos >= 0
        at = np.where(found, pos, 0)
        value = np.where(found, values[at], np.nan) if len(index) else np.full(len(ids), np.nan)
        excluded = found & flags[at] if len(index) else np.zeros(len(ids), bool)
        study.cache[key] = (value, excluded, ~np.isnan(value))
    value, excluded, measured = study.cache[key]
    if spec.threshold is not None:
        value = np.where(measured, (value > spec.threshold).astype(float), np.nan)
    return value, excluded, measured


def _arm(values, excluded, policy: str, favoured: bool) -> np.ndarray:
    return _apply_exclusion(values, excluded, policy, favoured)


def phase_values(claim: str, study: StudyTables, spec: Spec, ids: np.ndarray) -> pd.DataFrame:
    """A phase claim's per-network quantity for the networks `ids` under the specification (its estimator,
    compression threshold and smoothing): columns run_id, value and, for claim (a), depth. Networks without one
    (no completing adjacent pair, a last layer that does not compress, no SNR transition) are absent."""
    key = ("phases", claim, estimator_for(study, spec, "phases"), spec.smooth, spec.threshold)
    if key not in study.cache:  # per network of the whole study, once per specification (the curve asks often)
        study.cache[key] = _phase_values(claim, study, *key[2:])
    unit_key = (*key, tuple(ids))
    if unit_key not in study.cache:
        v = study.cache[key]
        study.cache[unit_key] = v[v.run_id.isin(ids)]
    return study.cache[unit_key]


def _phase_values(claim: str, study: StudyTables, est: str | None, window: int, threshold: float | None
                  ) -> pd.DataFrame:
    ph = study.phases
    ph = ph[(ph.estimator == est) & (ph.smooth == window)]
    if ph.empty:
        return pd.DataFrame(columns=["run_id", "value", "depth"])
    ph = ph.assign(compresses=ph.compresses.astype(bool) & (ph.fall_bits > (threshold or 0.0)))
    if claim == "depth_speeds_generalization":
        per_run = ph.groupby("run_id", sort=False).agg(depth=("depth", "first"), value=("generalize_epoch", "first"))
        return per_run.reset_index()
    values = speed_differences(ph) if claim == "deeper_compress_faster" else onset_lags(ph)
    return pd.DataFrame({"run_id": values.index.to_numpy(), "value": values.to_numpy(float)})


def _phase_entry(claim: str, unit: Unit, spec: Spec, confidence: float) -> Entry:
    study = unit.study
    est = estimator_for(study, spec, "phases")
    v = phase_values(claim, study, spec, unit.a)
    if claim == "depth_speeds_generalization":
        gen = v.value.to_numpy(float)
        # Never reaching the level ranks as the slowest (a rank correlation: any value above every finite one).
        slowest = (np.nanmax(gen[np.isfinite(gen)]) + 1) * 2 if np.isfinite(gen).any() else np.nan
        ok = len(v) >= MIN_CORRELATION_NETWORKS and v.depth.nunique() >= 2 and np.isfinite(slowest)
        eff = spearman_effect(v.depth.to_numpy(float), np.where(np.isfinite(gen), gen, slowest), confidence) \
            if ok else NO_EFFECT
    else:
        eff = mean_effect(v.value.to_numpy(float), confidence) if len(v) else NO_EFFECT
    return Entry(claim, study.name, unit.label, est, eff, {}, unit.repeats)


def _fit_entry(claim: str, unit: Unit, confidence: float) -> Entry:
    """Claim 9: per pair where both networks fit their training labels, log10 epochs to fit of the random-label
    network minus its true-label twin's. A pair where either never fits within its sweep is left out and counted
    (arm a: the random-label network never fitted, the claim's "fitted" half not shown there; arm b: the true-label
    one): leaving out the slowest random-label networks can only shrink the difference the claim predicts."""
    nets = unit.study.networks.set_index("run_id")
    ta = nets.epochs_to_fit.reindex(unit.a).to_numpy(float)
    tb = nets.epochs_to_fit.reindex(unit.b).to_numpy(float)
    fitted_a, fitted_b = np.isfinite(ta), np.isfinite(tb)
    ok = fitted_a & fitted_b
    excluded = {"a": int((~fitted_a).sum()), "b": int((fitted_a & ~fitted_b).sum())}
    if not ok.any():
        return Entry(claim, unit.study.name, unit.label, "–", NO_EFFECT, excluded, unit.repeats)
    eff = paired_mean_effect(np.log10(np.maximum(ta[ok], 1.0)), np.log10(np.maximum(tb[ok], 1.0)), confidence)
    return Entry(claim, unit.study.name, unit.label, "–", eff, excluded, unit.repeats)


def unit_entry(claim: str, unit: Unit, spec: Spec, confidence: float = 0.95) -> Entry:
    """One entry's effect under a specification (Entry with NO_EFFECT when none of its networks is measured)."""
    if claim in PHASE_CLAIMS:
        return _phase_entry(claim, unit, spec, confidence)
    if claim == "random_labels_fit_later":
        return _fit_entry(claim, unit, confidence)
    study, threshold = unit.study, spec.threshold
    if claim == "irrelevant_compressed":
        qa, qb, rel = "i_xt_irr", "i_xt_rel", True
    else:
        qa, qb, rel = "i_xt", "i_xt", False
    est = estimator_for(study, spec, qa)
    va, xa, ma = _values(study, spec, qa, rel, unit.a)
    arms = {"X_irr": xa} if claim == "irrelevant_compressed" else {"a": xa} if unit.b is not None else {"all": xa}
    if unit.b is not None:
        vb, xb, mb = _values(study, spec, qb, rel, unit.b)
        keep = ma & mb
        if claim == "irrelevant_compressed":  # one network, two quantities: excluded if either is
            arms = {"X_irr": xa, "X_rel": xb}
            xa = xb = xa | xb
        else:
            arms["b"] = xb
        va, xa, vb, xb = va[keep], xa[keep], vb[keep], xb[keep]
        n_excl = {k: int(x[keep].sum()) for k, x in arms.items()}
        if not keep.any():
            return Entry(claim, study.name, unit.label, est, NO_EFFECT, {}, unit.repeats)
        ya, yb = _arm(va, xa, spec.exclusion, True), _arm(vb, xb, spec.exclusion, False)
        ok = np.isfinite(ya) & np.isfinite(yb)
        if threshold is not None:
            eff = paired_binary_effect(ya[ok] > 0.5, yb[ok] > 0.5, confidence)
        else:
            eff = paired_mean_effect(ya[ok], yb[ok], confidence)
        return Entry(claim, study.name, unit.label, est, eff, n_excl, unit.repeats)
    va, xa, gap = va[ma], xa[ma], unit.gap[ma]
    if not ma.any():
        return Entry(claim, study.name, unit.label, est, NO_EFFECT, {}, unit.repeats)
    y = _arm(va, xa, spec.exclusion, True)
    ok = np.isfinite(y)
    if claim == "compression_generalizes":
        eff = spearman_effect(y[ok], gap[ok], confidence) if ok.sum() >= MIN_CORRELATION_NETWORKS else NO_EFFECT
    elif threshold is not None:
        eff = _proportion_effect(y, confidence)
    else:
        eff = mean_effect(y, confidence)
    return Entry(claim, study.name, unit.label, est, eff, {"all": int(xa.sum())}, unit.repeats)


def claim_entries(claim: str, studies: list[StudyTables], spec: Spec, confidence: float = 0.95,
                  units: list[Unit] | None = None) -> list[Entry]:
    """The claim's entries under a specification: one per unit (`units` from claim_units, computed if not given;
    units whose networks were all counted earlier or none is measured carry NO_EFFECT and are not pooled)."""
    units = claim_units(claim, studies) if units is None else units
    return [unit_entry(claim, u, spec, confidence) for u in units]


def study_effects(entries: list[Entry], confidence: float = 0.95) -> list[tuple[str, Effect]]:
    """One effect per study: its entries (strata) averaged with equal weights (effects.average_effect)."""
    by_study: dict[str, list[Effect]] = {}
    for e in entries:
        by_study.setdefault(e.study, []).append(e.effect)
    return [(s, average_effect(effs, confidence)) for s, effs in by_study.items()]


def pool_entries(entries: list[Entry], sesoi: float, confidence: float = 0.95) -> Pooled:
    """Entries -> one effect per study -> the random-effects pooled effect across studies."""
    return pool([eff for _, eff in study_effects(entries, confidence)], sesoi, confidence)


def fall_during_and_after_fit(studies: list[StudyTables], confidence: float = 0.95) -> pd.DataFrame:
    """Context for claim 1, never part of its decision: per entry of its primary analysis (same networks, same
    exclusions), the fall of I(X;T) *during* fitting (its largest smoothed value up to the fitting time minus its
    value there: Saxe et al.'s concurrent compression) beside the fall *after* it (the primary quantity)."""
    spec = PRIMARY_BY_CLAIM["fit_then_compress"]
    rows = []
    for unit in claim_units("fit_then_compress", studies):
        est = estimator_for(unit.study, spec)
        m = unit.study.measures
        sel = m[(m.quantity == "i_xt") & (m.estimator == est) & (m.smooth == spec.smooth)
                & (m.anchor == spec.anchor) & (m.budget == "epochs") & (m.excluded == "")]
        sel = sel.set_index("run_id").reindex(unit.a).dropna(subset=["i_fit"])
        if sel.empty:
            continue
        during = mean_effect((sel.i_max_pre - sel.i_fit).to_numpy(float), confidence)
        after = mean_effect((sel.i_fit - sel.i_end).to_numpy(float), confidence)
        rows.append({"study": unit.study.name, "entry": unit.label, "estimator": est, "n": len(sel),
                     "during": during.estimate, "during_lo": during.lo, "during_hi": during.hi,
                     "after": after.estimate, "after_lo": after.lo, "after_hi": after.hi})
    return pd.DataFrame(rows, columns=["study", "entry", "estimator", "n", "during", "during_lo", "during_hi",
                                       "after", "after_lo", "after_hi"])


def minimum_detectable(pooled: Pooled | Effect, power: float = 0.8, alpha: float = 0.05) -> float:
    """The effect a test detects with `power` at level alpha (two-sided), given its standard error and degrees of
    freedom (a pooled effect, or one entry's). On the pooling scale (Fisher z for a correlation)."""
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
        p = pool_entries(es, ep.sesoi, confidence)
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
    # Each claim's own test enters Holm: the test of an effect in the predicted direction, or for a claim that
    # predicts no effect (direction 0) the equivalence test (TOST).
    primary_p = np.where(table.direction == 0, table.tost_p, table.p_value)
    table["p_holm"] = holm(primary_p) if adjust else primary_p
    table["decision"] = [decide(r.pooled, r.p_holm, r.direction, 1 - confidence, r.sesoi)
                         for r in table.itertuples()]
    return entries, table.drop(columns="pooled")


def entries_frame(entries: list[Entry], confidence: float = 0.95) -> pd.DataFrame:
    """The entries as a table (ATLAS.md and entries.csv), each study's strata followed by the study's effect
    (level "study", what is pooled) where it has more than one. Correlations are shown as r (pooled on Fisher's
    z). Entries with no network at all (nothing measured, excluded or counted before) are left out."""
    def row(e: Entry, level: str, entry: str, eff: Effect, excluded: str, repeats: int) -> dict:
        ep = ENDPOINT[e.claim]
        return {"claim": e.claim, "study": e.study, "level": level, "entry": entry, "estimator": e.estimator,
                "n": eff.n, "estimate": eff.estimate, "lo": eff.lo, "hi": eff.hi, "se": eff.se,
                "p_value": eff.p_value, "mde": minimum_detectable(eff, alpha=1 - confidence),
                "excluded": excluded, "repeats": repeats,
                "units": "Spearman r" if ep.design == "correlation" else ep.units}

    rows = []
    for claim in dict.fromkeys(e.claim for e in entries):
        mine = [e for e in entries if e.claim == claim]
        for study in dict.fromkeys(e.study for e in mine):
            strata = [e for e in mine if e.study == study]
            shown = [e for e in strata if e.effect.n > 0 or e.n_repeats > 0 or sum(e.n_excluded.values()) > 0]
            rows += [row(e, "stratum", e.stratum, e.effect,
                         "; ".join(f"{a}: {k}" for a, k in e.n_excluded.items()), e.n_repeats) for e in shown]
            measured = [e for e in strata if math.isfinite(e.effect.se)]
            if len(measured) > 1:
                rows.append(row(measured[0], "study", "study effect (equal-weight mean of its strata)",
                                average_effect([e.effect for e in measured], confidence), "", 0))
    return pd.DataFrame(rows, columns=["claim", "study", "level", "entry", "estimator", "n", "estimate", "lo",
                                       "hi", "se", "p_value", "mde", "excluded", "repeats", "units"])
