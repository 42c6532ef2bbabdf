"""The specification curve: every claim re-analysed under each reasonable way of measuring it, apart from the
verdict.

A specification (endpoints.Spec) fixes the estimator, the quantity (continuous drop, or "compressed" at 0.1 /
0.25 / 0.5 / 1 bit), the fitting anchor, the smoothing, the exclusion policy (exclude / include / worst / best
case) and, for SGD vs GD, the budget (equal epochs or equal numbers of updates). Each gets the primary analysis'
pooled effect and decision (unadjusted: these are not tests of the claim, they show how much the answer depends
on the choices). What is reported is the share of specifications that reach the primary decision, and a figure
of all of them; specifications never vote.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pandas as pd

from ibjax.atlas.analysis import claim_entries, claim_units, pool_entries
from ibjax.atlas.endpoints import (
    BUDGETS,
    ENDPOINTS,
    EXCLUSIONS,
    PRIMARY_BY_CLAIM,
    SPEC_ANCHORS,
    SPEC_SMOOTHING,
    THRESHOLDS,
    Spec,
)
from ibjax.atlas.pooling import decide
from ibjax.atlas.registry import StudyTables
from ibjax.atlas.studies import PHASE_CLAIMS

SPEC_COLUMNS = ("claim", "spec", "primary", "estimator", "threshold", "anchor", "smooth", "exclusion", "budget",
                "estimate", "lo", "hi", "p_value", "tost_p", "k", "n", "decision")


def claim_specs(claim: str, studies: list[StudyTables]) -> list[Spec]:
    """The specifications of one claim: every estimator some study measured the claim's quantity with, crossed
    with thresholds, anchors, smoothing, exclusion policies and (SGD vs GD only) budgets. The primary one first."""
    if claim in PHASE_CLAIMS:
        return _phase_specs(claim, studies)
    if claim == "random_labels_fit_later":  # no MI, no estimator: its one specification is the primary one
        return [PRIMARY_BY_CLAIM[claim]]
    quantity = "i_xt_irr" if claim == "irrelevant_compressed" else "i_xt"
    estimators = ["primary"] + sorted({e for s in studies for e in
                                       s.measures.loc[s.measures.quantity == quantity, "estimator"]})
    anchors = SPEC_ANCHORS if claim == "irrelevant_compressed" else tuple(a for a in SPEC_ANCHORS if a != "start")
    # A rank correlation has no threshold of its own, and no worst or best case for an excluded network.
    thresholds = (None,) if claim == "compression_generalizes" else THRESHOLDS
    exclusions = ("exclude", "include") if claim == "compression_generalizes" else EXCLUSIONS
    budgets = BUDGETS if claim == "sgd_noise" else ("epochs",)
    primary = PRIMARY_BY_CLAIM[claim]
    specs = [Spec(e, t, a, w, x, b) for e, t, a, w, x, b in
             itertools.product(estimators, thresholds, anchors, SPEC_SMOOTHING, exclusions, budgets)]
    return [primary] + [s for s in specs if s != primary]


def _phase_specs(claim: str, studies: list[StudyTables]) -> list[Spec]:
    """A phase claim's specifications: every estimator with phases x the threshold that makes a layer count as
    compressing (claim (a) has none: epochs to generalize do not depend on it) x smoothing. Phases have no fitting
    anchor, no exclusion to vary (saturated layers never compress) and no update budget."""
    estimators = ["primary"] + sorted({e for s in studies for e in s.phases.estimator})
    thresholds = (0.5,) if claim == "depth_speeds_generalization" else tuple(t for t in THRESHOLDS if t is not None)
    primary = PRIMARY_BY_CLAIM[claim]
    specs = [replace(primary, estimator=e, threshold=t, smooth=w)
             for e, t, w in itertools.product(estimators, thresholds, SPEC_SMOOTHING)]
    return [primary] + [s for s in specs if s != primary]


def specification_curve(studies: list[StudyTables], confidence: float = 0.95, claims=None) -> pd.DataFrame:
    rows = []
    for ep in ENDPOINTS:
        if claims is not None and ep.claim not in claims:
            continue
        units = claim_units(ep.claim, studies)  # the same networks under every specification
        for spec in claim_specs(ep.claim, studies):
            entries = claim_entries(ep.claim, studies, spec, confidence, units)
            p = pool_entries(entries, ep.sesoi, confidence)
            if p.k == 0:
                continue
            rows.append({"claim": ep.claim, "spec": spec.label(), "primary": spec == PRIMARY_BY_CLAIM[ep.claim],
                         "estimator": spec.estimator, "threshold": spec.threshold, "anchor": spec.anchor,
                         "smooth": spec.smooth, "exclusion": spec.exclusion, "budget": spec.budget,
                         "estimate": p.estimate, "lo": p.lo, "hi": p.hi, "p_value": p.p_value, "tost_p": p.tost_p,
                         "k": p.k, "n": p.n,
                         "decision": _decision(ep, spec, p, confidence)})
    return pd.DataFrame(rows, columns=list(SPEC_COLUMNS))


def _decision(ep, spec: Spec, p, confidence: float) -> str:
    """A specification's decision, unadjusted (the claim's own test: equivalence for a claim of no effect)."""
    if ep.direction == 0:
        return decide(p, p.tost_p, 0, 1 - confidence, ep.sesoi)
    # A binary quantity has its own scale (a difference of fractions): no SESOI in bits. (A phase claim's threshold
    # only says which layers count; its quantity stays a time.)
    binary = spec.threshold is not None and ep.claim not in PHASE_CLAIMS
    return decide(replace(p, tost_p=float("nan")) if binary else p, p.p_value, ep.direction, 1 - confidence)


def agreement(curve: pd.DataFrame, decisions: dict[str, str]) -> pd.DataFrame:
    """Per claim: specifications with a result, and the share whose decision equals the primary decision."""
    rows = []
    for claim, g in curve.groupby("claim", sort=False):
        primary = decisions.get(claim, "")
        rows.append({"claim": claim, "n_specs": len(g), "agree": int((g.decision == primary).sum()),
                     "share_agree": float((g.decision == primary).mean()) if len(g) else float("nan"),
                     "supported": int((g.decision == "supported").sum()),
                     "contradicted": int((g.decision == "contradicted").sum()),
                     "inconclusive": int((g.decision == "inconclusive").sum())})
    return pd.DataFrame(rows)
