"""ATLAS.md, its tables (claims.csv, entries.csv, specifications.csv) and figures, from the network registry.

ATLAS.md states the primary endpoints first, then the studies, then one decision per claim with its pooled
effect, and only after that the entries and the specification curve. It holds no time stamp and no absolute
path, so the same tables give the same bytes (tests/atlas: the committed atlas is rebuilt from its tables).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ibjax.atlas.analysis import analyse, entries_frame, fall_during_and_after_fit, study_order
from ibjax.atlas.endpoints import ENDPOINT, ENDPOINTS, PRIMARY_ESTIMATORS
from ibjax.atlas.registry import (
    FINAL_FRACTION,
    ITY_LEVEL,
    LOSS_FALL,
    StudyTables,
    read_tables,
    study_tables,
    write_tables,
)
from ibjax.atlas.sensitivity import agreement, specification_curve
from ibjax.atlas.studies import CLAIMS, PHASE_CLAIMS, STUDIES
from ibjax.rundir.store import atomic_write_bytes

COLOUR = {"supported": "tab:green", "contradicted": "tab:red", "inconclusive": "0.55"}


@dataclass
class Atlas:
    studies: list[StudyTables]
    claims: pd.DataFrame         # one row per claim: the primary decision
    entries: pd.DataFrame        # per study entry of each claim
    curve: pd.DataFrame          # the specification curve
    agreement: pd.DataFrame      # per claim: share of specifications reaching the primary decision
    confidence: float
    fit_context: pd.DataFrame    # claim 1's fall during fitting beside the fall after it (context)


def load_studies(run_dirs=(), tables=None, stream=sys.stderr) -> list[StudyTables]:
    """The studies of run directories (each read into the compact tables) and / or of a tables folder."""
    studies = read_tables(tables) if tables is not None else []
    for path in run_dirs:
        if any(s.source == str(path) for s in studies):
            print(f"[atlas] {path} given twice: read once (a network counts once anyway)", file=stream)
            continue
        s = study_tables(path)
        print(f"[atlas] {s.name}: {len(s.networks)} networks ({path})", file=stream)
        studies.append(s)
    return studies


def build_atlas(studies: list[StudyTables], confidence: float = 0.95, sensitivity: bool = True,
                stream=sys.stderr) -> Atlas:
    if not studies:
        raise ValueError("no study given: name run directories, or --tables with an atlas tables folder")
    entries, claims = analyse(studies, confidence=confidence)
    if sensitivity:
        print("[atlas] specification curve ...", file=stream)
        curve = specification_curve(studies, confidence)
    else:
        curve = pd.DataFrame(columns=["claim", "decision"])
    agree = agreement(curve, dict(zip(claims.claim, claims.decision)))
    claims = claims.merge(agree[["claim", "n_specs", "share_agree"]], on="claim", how="left") if len(agree) \
        else claims.assign(n_specs=0, share_agree=math.nan)
    return Atlas(studies, claims, entries_frame(entries, confidence), curve, agree, confidence,
                 fall_during_and_after_fit(studies, confidence))


def write_atlas(atlas: Atlas, out: str | Path, figures: bool = True, tables: bool = True) -> Path:
    """Writes out/ATLAS.md, claims.csv, entries.csv, specifications.csv, figures/ and (with `tables`) the
    compact tables under out/tables/ that `python -m ibjax.atlas --tables` rebuilds all of it from."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if tables:
        write_tables(atlas.studies, out / "tables")
    for name, df in (("claims", atlas.claims), ("entries", atlas.entries), ("specifications", atlas.curve)):
        atomic_write_bytes(out / f"{name}.csv", df.to_csv(index=False, float_format="%.6g").encode())
    figs = draw_figures(atlas, out / "figures") if figures else {}
    atomic_write_bytes(out / "ATLAS.md", render(atlas, {k: p.relative_to(out) for k, p in figs.items()}).encode())
    return out / "ATLAS.md"


# -- text ---------------------------------------------------------------------------------------------------------

def _num(v, digits=2) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _p(v) -> str:
    return "–" if not np.isfinite(v) else ("< 0.001" if v < 0.001 else f"{v:.3f}")


def _show(claim: str, v: float) -> float:
    """A correlation claim is pooled on Fisher's z and shown as r."""
    return math.tanh(v) if ENDPOINT[claim].design == "correlation" and np.isfinite(v) else v


def _predicted(ep) -> str:
    return "> 0" if ep.direction > 0 else "< 0" if ep.direction < 0 else f"within ±{ep.sesoi:g}"


def render(atlas: Atlas, figures: dict) -> str:
    """ATLAS.md: the declared endpoints, the studies, the decisions, one section per claim, how to read the
    sensitivity analysis."""
    lines = _endpoints_section(atlas) + _studies_section(atlas) + _decisions_section(atlas, figures)
    for i, ep in enumerate(ENDPOINTS, 1):
        lines += _claim_section(atlas, i, ep, figures)
    lines += _reading_section()
    return "\n".join(lines) + "\n"


def _endpoints_section(atlas: Atlas) -> list[str]:
    pct = round(100 * atlas.confidence)
    titles = {c.key: c for c in CLAIMS}
    lines = ["# The IB atlas: the claims, measured on independent networks", "",
             "Written by `python -m ibjax.atlas` (from run directories, or `--tables` from the compact tables "
             "beside this file). The unit of analysis is an independent network: a network met again (in another "
             "study, or a run directory given twice) enters each analysis once. One declared primary endpoint per "
             "claim decides; everything else is the specification curve, reported apart.", "",
             "## Primary endpoints (declared before the results)", "",
             "| # | claim | networks | per-study effect | predicted | smallest effect of interest |",
             "| --- | --- | --- | --- | --- | --- |"]
    for i, ep in enumerate(ENDPOINTS, 1):
        lines.append(f"| {i} | {titles[ep.claim].title} | {ep.population} | {ep.contrast} ({ep.design}) | "
                     f"{_predicted(ep)} | {ep.sesoi:g} {ep.units} |")
    lines += ["",
              "- Layer: the last hidden layer (never the softmax output). Estimator: "
              f"{', '.join(PRIMARY_ESTIMATORS['tishby12'])} on the 12-bit task; "
              f"{', '.join(PRIMARY_ESTIMATORS['teacher'])} (exact for linear networks) on Saxe et al.'s linear "
              f"teacher; on image data the first of {', '.join(PRIMARY_ESTIMATORS['other'])} the study measured.",
              f"- Drop after fit: I(X;T) (smoothed over 5 logged epochs) at the fitting time minus its final level "
              f"(mean of the last {FINAL_FRACTION:.0%} of logged epochs). Fitting time: the first logged epoch at "
              f"which the smoothed training loss has made {LOSS_FALL:.0%} of its fall (per network, every layer "
              "alike). Claim 5: the fall from the first logged epoch to the final level, as a fraction of the "
              "quantity's own ceiling (log2 of the distinct relevant patterns, or of the irrelevant draws).",
              "- Claims 6-8 (Shwartz-Ziv & Tishby's phases, per network and hidden layer, from I(X;T) of the same "
              "estimator smoothed over 5 logged epochs): a layer's compression starts at the maximum of its I(X;T) "
              "(the onset) and counts where I(X;T) then falls by more than 0.5 bit to its final level, the maximum "
              "neither within 0.05 bit of the estimator's ceiling nor in the final window; its duration is "
              "log10(epoch at 90% of the fall) - log10(onset). Epochs to generalize: the first logged epoch with "
              "test accuracy >= 0.9 (never: the slowest rank). The SNR transition: the first logged epoch where the "
              "median over layers of the smoothed gradient SNR is below 1 (minibatch networks).",
              "- Claim 9 reads no MI: a network's epochs to fit are the first logged epoch with training "
              "accuracy >= 0.99 against the labels it trains on. A pair counts where both networks fit; the "
              "excluded column counts random-label networks that never fit (a: the claim's 'fitted' half fails "
              "there) and true-label twins that never fit (b).",
              "- Linear networks are in no primary endpoint: their I(X;T) is 12 bits whatever the weights (a generic "
              "linear map of the 4 096 patterns is injective), so what binning over a growing range calls their "
              "compression checks the estimator, not a claim.",
              "- Exclusion, decided before the outcome: a trajectory at its estimator's ceiling (within 0.05 bit) "
              "at the first logged epoch or at the fitting time, or above the estimator's validated range up to "
              "the fitting time, is left out (counted per arm).",
              "- Per entry (one stratum of a study: networks that share their other settings): Student t interval "
              "of the mean (paired for two arms), Spearman r with Fisher's z (variance 1.06 / (n - 3)). Per study: "
              "the equal-weight mean of its strata (t on Welch-Satterthwaite degrees of freedom). Pooling across "
              f"studies: random effects, Paule-Mandel tau², modified Hartung-Knapp {pct}% interval on k - 1 "
              "degrees of freedom (one study: its own interval); prediction interval for k >= 3.",
              f"- Decision: **supported** when the Holm-adjusted p (over the {len(ENDPOINTS)} primary tests) is "
              f"below {1 - atlas.confidence:.2g} and the effect lies on the predicted side; **contradicted** when it "
              "lies on the other side, or when TOST shows it smaller than the smallest effect of interest (90% "
              "interval inside ±SESOI); otherwise **inconclusive**. A claim of coincidence (claim 8, predicted "
              "within ±SESOI) enters Holm with its TOST p: **supported** when that is below the level, "
              "**contradicted** when the whole interval lies beyond ±SESOI.", ""]
    return lines


def _studies_section(atlas: Atlas) -> list[str]:
    lines: list[str] = []
    lines += ["## Studies", "", "Each was run with `python -m ibjax.sweep sweeps/<study>.yaml --out runs/<study>` "
              "(wall time of the sweep as its manifest records it; the machine is named in BUILD_NOTES.md).", "",
              "| study | source | networks | new to the atlas | estimators | sweep wall time | reproduces |",
              "| --- | --- | ---: | ---: | --- | ---: | --- |"]
    papers = {s.name: s.paper for s in STUDIES}
    seen: set = set()
    for s in study_order(atlas.studies):
        new = int((~s.networks.network_id.isin(seen)).sum())
        seen.update(s.networks.network_id)
        ests = ", ".join(sorted(s.measures.estimator.unique()))
        wall = float(s.about.get("wall_s", math.nan))
        wall = f"{wall / 60:.1f} min" if np.isfinite(wall) else "–"
        lines.append(f"| {s.name} | `{s.source}` | {len(s.networks)} | {new} | {ests} | {wall} | "
                     f"{papers.get(s.name, '(not in the library)')} |")
    given = {s.name for s in atlas.studies}
    missing = [s for s in STUDIES if s.name not in given]
    if missing:
        lines += ["", "**Studies not given** (missing from every claim they bear on): " + "; ".join(
            f"{s.name} (`python -m ibjax.sweep sweeps/{s.sweep}`)" for s in missing) + "."]
    return lines


def _decisions_section(atlas: Atlas, figures: dict) -> list[str]:
    pct = round(100 * atlas.confidence)
    titles = {c.key: c for c in CLAIMS}
    lines: list[str] = []
    lines += ["", "## Decisions", ""]
    if "decisions" in figures:
        lines += [f"![Pooled effects]({figures['decisions']})", ""]
    lines += [f"| claim | decision | pooled effect [{pct}% CI] | p (Holm) | TOST p | studies k / networks n | "
              "tau² | prediction interval | detectable at 80% power | excluded | specifications agreeing |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in atlas.claims.itertuples():
        ep = ENDPOINT[r.claim]
        units = "r" if ep.design == "correlation" else ep.units
        mde_units = "z" if ep.design == "correlation" else ep.units
        est = f"{_num(_show(r.claim, r.estimate))} [{_num(_show(r.claim, r.lo))}, {_num(_show(r.claim, r.hi))}] " \
              f"{units}"
        pred = f"[{_num(_show(r.claim, r.pred_lo))}, {_num(_show(r.claim, r.pred_hi))}]" \
            if np.isfinite(r.pred_lo) else "–"
        share = f"{r.share_agree:.0%} of {int(r.n_specs)}" if np.isfinite(r.share_agree) else "–"
        lines.append(f"| {titles[r.claim].title} | **{r.decision}** | {est} | {_p(r.p_value)} ({_p(r.p_holm)}) | "
                     f"{_p(r.tost_p)} | {r.k} / {r.n} | {_num(r.tau2, 3)} | {pred} | {_num(r.mde)} {mde_units} | "
                     f"{r.excluded or '–'} | {share} |")
    lines += ["", "Detectable at 80% power: the effect the pooled test finds with probability 0.8 at the "
              f"{1 - atlas.confidence:.2g} level, from its standard error (t on the pooled degrees of freedom); the "
              "entry tables below give the same for each entry and study (e.g. an image study's 4 networks)."]
    return lines


def _claim_section(atlas: Atlas, i: int, ep, figures: dict) -> list[str]:
    pct = round(100 * atlas.confidence)
    titles = {c.key: c for c in CLAIMS}
    lines: list[str] = []
    c = titles[ep.claim]
    row = atlas.claims.set_index("claim").loc[ep.claim]
    lines += ["", f"## {i}. {c.title} — {c.source}", "",
              f"Primary endpoint: {ep.contrast} over {ep.population}; predicted "
              f"{_predicted(ep)}, smallest effect of interest {ep.sesoi:g} {ep.units}. "
              f"Decision: **{row.decision}**.", ""]
    ent = atlas.entries[atlas.entries.claim == ep.claim]
    if ent.empty:
        lines += ["No study given has networks this endpoint reads.", ""]
        return lines
    if ep.claim in figures:
        lines += [f"![{c.title}]({figures[ep.claim]})", ""]
    mde_units = "z" if ep.design == "correlation" else ent.units.iat[0]
    lines += [f"| study | entry | estimator | n | effect [{pct}% CI] ({ent.units.iat[0]}) | p | detectable "
              f"({mde_units}) | excluded | already counted |",
              "| --- | --- | --- | ---: | --- | ---: | ---: | --- | ---: |"]
    for r in ent.itertuples():
        eff = f"{_num(r.estimate)} [{_num(r.lo)}, {_num(r.hi)}]" if np.isfinite(r.estimate) else "–"
        entry = f"*{r.entry}*" if r.level == "study" else r.entry
        lines.append(f"| {r.study} | {entry} | {r.estimator} | {r.n} | {eff} | {_p(r.p_value)} | "
                     f"{_num(r.mde)} | {r.excluded or '–'} | {r.repeats} |")
    if ep.claim == "fit_then_compress" and len(atlas.fit_context):
        lines += ["", "Context, not part of the decision: the same networks' fall of I(X;T) *during* fitting (its "
                  "largest smoothed value up to the fitting time minus its value there; Saxe et al.'s "
                  "concurrent compression) beside the fall *after* it (the primary quantity), bits.", "",
                  f"| study | entry | n | during fitting [{pct}% CI] | after fitting [{pct}% CI] |",
                  "| --- | --- | ---: | --- | --- |"]
        for r in atlas.fit_context.itertuples():
            lines.append(f"| {r.study} | {r.entry} | {r.n} | {_num(r.during)} [{_num(r.during_lo)}, "
                         f"{_num(r.during_hi)}] | {_num(r.after)} [{_num(r.after_lo)}, {_num(r.after_hi)}] |")
    g = atlas.agreement[atlas.agreement.claim == ep.claim] if len(atlas.agreement) else atlas.agreement
    if len(g):
        a = g.iloc[0]
        lines += ["", f"Specification curve: {a.n_specs} specifications ({_dimensions(atlas.curve, ep.claim)}): "
                  f"{a.share_agree:.0%} reach the primary decision ({a.supported} supported, {a.contradicted} "
                  f"contradicted, {a.inconclusive} inconclusive)."]
        if f"{ep.claim}_curve" in figures:
            lines += ["", f"![Specification curve: {c.title}]({figures[f'{ep.claim}_curve']})"]
    return lines


def _reading_section() -> list[str]:
    lines: list[str] = []
    lines += ["", "## Reading the sensitivity analysis", "",
              f"- Anchors: loss (the primary: {LOSS_FALL:.0%} of the training loss's fall), ity (smoothed I(T;Y) at "
              f"{ITY_LEVEL:.0%} of its final level, per layer), snr (the gradient SNR's drift-to-diffusion "
              "transition, median over layers below 1; minibatch networks only), start (the first logged epoch).",
              "- A threshold turns the drop into compressed / not: one-sample claims then test the fraction "
              "against 1/2 (Wilson), paired claims the difference of paired fractions (Tango's score interval); "
              "these have no smallest effect of interest in bits, so they are never called equivalent.",
              "- Worst / best case: each excluded network takes its arm's least / most favourable measured value.",
              "- Equal updates (SGD vs GD): a minibatch network's trajectory ends where it has taken as many "
              "steps as its full-batch twin in all its epochs.",
              "- Claims 6-8 vary the estimator, the fall that makes a layer count as compressing (0.1 ... 1 bit) "
              "and the smoothing; they have no fitting anchor and no exclusion to vary (a saturated layer never "
              "counts as compressing).",
              "- Specification decisions are not Holm-adjusted: they show how the answer moves with the choices "
              "and are never counted as evidence."]
    return lines


def _dimensions(curve: pd.DataFrame, claim: str) -> str:
    """What one claim's specification curve varies, with the values it took, e.g. 'estimator {primary,
    binning30} x threshold {continuous, 0.1 bit} x ...'."""
    c = curve[curve.claim == claim]
    parts = []
    for col in ("estimator", "threshold", "anchor", "smooth", "exclusion", "budget"):
        vals = c[col].tolist()
        if col == "threshold":
            vals = ["continuous" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:g} bit"
                    for v in vals]
        vals = list(dict.fromkeys(vals))
        if len(vals) > 1:
            parts.append(f"{col} {{{', '.join(str(v) for v in vals)}}}")
    return " × ".join(parts) or "one specification"


# -- figures ------------------------------------------------------------------------------------------------------

def draw_figures(atlas: Atlas, folder: Path) -> dict[str, Path]:
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    titles = {c.key: c.title for c in CLAIMS}
    # Pooled effects, one panel per claim (each on its own scale).
    fig, axes = plt.subplots(len(ENDPOINTS), 1, figsize=(8, 1.1 * len(ENDPOINTS) + 0.6), dpi=110)
    for ax, ep in zip(np.atleast_1d(axes), ENDPOINTS):
        r = atlas.claims.set_index("claim").loc[ep.claim]
        col = COLOUR.get(r.decision, "0.5")
        if np.isfinite(r.estimate):
            ax.plot([_show(ep.claim, r.lo), _show(ep.claim, r.hi)], [0, 0], color=col, lw=3)
            ax.plot(_show(ep.claim, r.estimate), 0, "D", color=col, ms=7)
        for s in (-ep.sesoi, ep.sesoi):
            ax.axvline(_show(ep.claim, s), color="0.6", lw=0.8, ls=":")
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_yticks([])
        units = "r" if ep.design == "correlation" else ep.units
        ax.set_title(f"{titles[ep.claim]}: {r.decision} ({units})", fontsize=8, loc="left")
    fig.suptitle("Pooled primary effects with their intervals; dotted: ± smallest effect of interest", fontsize=9)
    fig.tight_layout()
    out["decisions"] = _save(fig, folder / "decisions.png")
    for ep in ENDPOINTS:
        ent = atlas.entries[(atlas.entries.claim == ep.claim) & np.isfinite(atlas.entries.estimate)]
        if len(ent):
            out[ep.claim] = _forest(ent, atlas.claims.set_index("claim").loc[ep.claim], ep, titles[ep.claim],
                                    folder / f"{ep.claim}.png")
        cur = atlas.curve[atlas.curve.claim == ep.claim] if len(atlas.curve) else atlas.curve
        if len(cur):
            out[f"{ep.claim}_curve"] = _curve(cur, ep, titles[ep.claim], folder / f"{ep.claim}_curve.png")
    return out


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path)
    plt.close(fig)
    return path


def _forest(ent: pd.DataFrame, pooled, ep, title: str, path: Path) -> Path:
    """Each stratum's effect and interval (grey), each study's (black diamond: what is pooled), and the pooled
    one (coloured by the decision) below them."""
    import matplotlib.pyplot as plt

    labels = [(f"{r.study}: study effect" if r.level == "study" else f"{r.study}: {r.entry}")[:70] + f" (n={r.n})"
              for r in ent.itertuples()]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(ent) + 1.6), dpi=110)
    y = np.arange(len(ent))[::-1] + 1
    for yi, r in zip(y, ent.itertuples()):
        study = r.level == "study"  # what is pooled: drawn heavier than the strata it averages
        if np.isfinite(r.lo):
            ax.plot([r.lo, r.hi], [yi, yi], color="0.1" if study else "0.5", lw=2.2 if study else 1.2)
        ax.plot(r.estimate, yi, "D" if study else "s", color="0.1" if study else "0.4", ms=5 if study else 3.5)
    col = COLOUR.get(pooled.decision, "0.5")
    if np.isfinite(pooled.estimate):
        ax.plot([_show(ep.claim, pooled.lo), _show(ep.claim, pooled.hi)], [0, 0], color=col, lw=3)
        ax.plot(_show(ep.claim, pooled.estimate), 0, "D", color=col, ms=8)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_yticks([*y, 0], [*labels, f"pooled: {pooled.decision}"], fontsize=7)
    ax.set_xlabel("Spearman r" if ep.design == "correlation" else f"{ep.contrast} ({ep.units})", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _curve(cur: pd.DataFrame, ep, title: str, path: Path) -> Path:
    """All specifications of one claim with a continuous quantity, sorted by effect, coloured by decision; the
    primary one marked. (Thresholded specifications are on another scale: counted in the text, not drawn.)"""
    import matplotlib.pyplot as plt

    # A phase claim's threshold only says which layers count as compressing: its effect keeps its scale.
    same_scale = cur.threshold.isna() | (ep.claim in PHASE_CLAIMS)
    c = cur[same_scale & np.isfinite(cur.estimate)].sort_values("estimate").reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8, 3), dpi=110)
    x = np.arange(len(c))
    for xi, r in zip(x, c.itertuples()):
        col = COLOUR.get(r.decision, "0.5")
        lo, hi, est = (_show(ep.claim, v) for v in (r.lo, r.hi, r.estimate))
        if np.isfinite(lo):
            ax.plot([xi, xi], [lo, hi], color=col, lw=0.8, alpha=0.7)
        ax.plot(xi, est, "o", color=col, ms=2.5)
        if r.primary:
            ax.plot(xi, est, "*", color="black", ms=10, label="primary")
    ax.axhline(0, color="0.3", lw=0.8)
    what = "" if ep.claim in PHASE_CLAIMS else " with the continuous quantity"
    ax.set_xlabel(f"{len(c)} specifications{what}, sorted by pooled effect", fontsize=8)
    ax.set_ylabel("r" if ep.design == "correlation" else ep.units, fontsize=8)
    ax.set_title(f"{title}\ngreen supported, red contradicted, grey inconclusive", fontsize=9)
    if c.primary.any():
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)
