"""From evidence rows to one verdict per claim, and how robust it is across estimators and studies.

A claim's verdict counts its decisive rows (supports / contradicts): supported when at least 3/4 of them support
it, contradicted when at most 1/4 do, mixed in between, and "no decisive evidence" without any. The same rule is
applied per estimator and per study; `flips` names the estimators and studies whose own verdict differs from the
claim's, which is where the answer depends on the choice of estimator or experiment.
"""

from __future__ import annotations

import pandas as pd

from ibjax.atlas.studies import CLAIMS, STUDIES
from ibjax.rundir.contract import layer_order

SUPPORTED_SHARE, CONTRADICTED_SHARE = 0.75, 0.25


def verdict_of(evidence: pd.Series) -> str:
    s, c = int((evidence == "supports").sum()), int((evidence == "contradicts").sum())
    if s + c == 0:
        return "no decisive evidence"
    share = s / (s + c)
    return "supported" if share >= SUPPORTED_SHARE else "contradicted" if share <= CONTRADICTED_SHARE else "mixed"


def _by(ev: pd.DataFrame, col: str) -> dict[str, str]:
    return {k: verdict_of(g.evidence) for k, g in ev.groupby(col, sort=True)}


def claim_table(evidence: pd.DataFrame, studies_present: list[str]) -> pd.DataFrame:
    """One row per claim: counts, verdict, per-estimator and per-study verdicts, flips, and the studies that bear
    on it but were not given."""
    rows = []
    for claim in CLAIMS:
        ev = evidence[evidence.claim == claim.key]
        counted = ev[ev.evidence.isin(["supports", "contradicts", "inconclusive"])]
        overall = verdict_of(counted.evidence)
        by_est, by_study = _by(counted, "estimator"), _by(counted, "study")
        layers = layer_order(counted.layer)
        by_layer = {ly: verdict_of(counted[counted.layer == ly].evidence) for ly in layers}
        decisive = {"supported", "contradicted", "mixed"}
        flips = [f"{k} ({v})" for k, v in {**{f"estimator {e}": v for e, v in by_est.items()},
                                          **{f"study {s}": v for s, v in by_study.items()}}.items()
                 if v in decisive and v != overall]
        missing = [s.name for s in STUDIES if claim.key in s.claims and s.name not in studies_present]
        n_est = len([v for v in by_est.values() if v in decisive])
        agree = sum(v == overall for v in by_est.values() if v in decisive)
        rows.append({
            "claim": claim.key, "title": claim.title, "source": claim.source, "prediction": claim.prediction,
            "verdict": overall, "n_rows": len(ev), "n_supports": int((ev.evidence == "supports").sum()),
            "n_contradicts": int((ev.evidence == "contradicts").sum()),
            "n_inconclusive": int((ev.evidence == "inconclusive").sum()),
            "n_excluded": int((ev.evidence == "excluded").sum()), "n_context": int((ev.evidence == "context").sum()),
            "estimators_agreeing": f"{agree}/{n_est}" if n_est else "-",
            "by_estimator": "; ".join(f"{k}: {v}" for k, v in by_est.items()),
            "by_study": "; ".join(f"{k}: {v}" for k, v in by_study.items()),
            "by_layer": "; ".join(f"{k}: {v}" for k, v in by_layer.items()),
            "flips": "; ".join(flips), "studies": ", ".join(sorted(set(ev.study))),
            "missing_studies": ", ".join(missing),
        })
    return pd.DataFrame(rows)
