"""ATLAS.md, evidence.csv, claims.csv and one forest plot per claim, from several run directories."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ibjax.atlas.claims import CONTRADICTED_SHARE, SUPPORTED_SHARE, claim_table
from ibjax.atlas.evidence import RULES, StudyRun, load_study, study_evidence
from ibjax.atlas.studies import CLAIMS, STUDIES
from ibjax.report.verdicts import DEFAULT_SETTINGS, VerdictSettings
from ibjax.rundir.contract import layer_order
from ibjax.rundir.layout import RunDirError
from ibjax.rundir.store import atomic_write_bytes

MARK = {"supports": "+", "contradicts": "−", "inconclusive": "·", "excluded": "excl.", "context": "ctx"}
COLOUR = {"supports": "tab:green", "contradicts": "tab:red", "inconclusive": "0.5", "context": "tab:blue"}


def build_atlas(run_dirs: list[str | Path], settings: VerdictSettings = DEFAULT_SETTINGS, stream=sys.stderr
                ) -> tuple[list[StudyRun], pd.DataFrame, pd.DataFrame]:
    """Load every run directory (RunDirError names the first bad one), gather the evidence and the claims."""
    studies, seen = [], {}
    for path in run_dirs:
        s = load_study(path, settings)
        if s.name in seen:
            raise RunDirError(f"{path}: study {s.name!r} given twice (also {seen[s.name]}); give one run directory "
                              "per study")
        seen[s.name] = path
        studies.append(s)
        print(f"[atlas] {s.name}: {s.runs.run_id.nunique()} runs, {s.verdicts.estimator.nunique()} estimator(s) "
              f"({path})", file=stream)
    evidence = pd.concat([study_evidence(s, settings) for s in studies], ignore_index=True)
    return studies, evidence, claim_table(evidence, [s.name for s in studies])


def write_atlas(run_dirs: list[str | Path], out: str | Path, settings: VerdictSettings = DEFAULT_SETTINGS, *,
                figures: bool = True, stream=sys.stderr) -> dict:
    out = Path(out)
    studies, evidence, claims = build_atlas(run_dirs, settings, stream)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "evidence.csv", evidence.to_csv(index=False).encode())
    atomic_write_bytes(out / "claims.csv", claims.to_csv(index=False).encode())
    fig_paths = {c.key: forest_plot(evidence[evidence.claim == c.key], c.title, out / "figures" / f"{c.key}.png")
                 for c in CLAIMS} if figures else {}
    if figures:
        fig_paths["overview"] = overview_plot(evidence, out / "figures" / "claims_overview.png")
    text = render(studies, evidence, claims, settings, {k: p.relative_to(out) for k, p in fig_paths.items() if p})
    atomic_write_bytes(out / "ATLAS.md", text.encode())
    return {"studies": studies, "evidence": evidence, "claims": claims}


def _ci(v, lo, hi, digits=2) -> str:
    if not np.isfinite(v):
        return "–"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if np.isfinite(lo) else f"{v:.{digits}f}"


def render(studies: list[StudyRun], evidence: pd.DataFrame, claims: pd.DataFrame, settings: VerdictSettings,
           figures: dict) -> str:
    pct = round(100 * settings.confidence)
    given = {s.name for s in studies}
    lines = ["# The IB atlas: the four claims, measured", "",
             "Written by `python -m ibjax.atlas` from the run directories below. Each claim's evidence comes from "
             "every study whose cells allow the comparison; the verdict counts the decisive rows (see Rules).", "",
             "| study | run directory | runs | estimators | MI rows | reproduces |",
             "| --- | --- | ---: | --- | ---: | --- |"]
    papers = {s.name: s.paper for s in STUDIES}
    for s in studies:
        lines.append(f"| {s.name} | `{s.path}` | {s.runs.run_id.nunique()} | "
                     f"{', '.join(sorted(s.verdicts.estimator.unique()))} | {s.n_samples} | "
                     f"{papers.get(s.name, '(not in the library)')} |")
    missing = [s for s in STUDIES if s.name not in given]
    if missing:
        lines += ["", "**Studies not given** (their evidence is missing from every claim they bear on): "
                  + "; ".join(f"{s.name} (`python -m ibjax.sweep sweeps/{s.sweep}`)" for s in missing) + "."]
    lines += ["", "## Claims", ""]
    if "overview" in figures:
        lines += [f"![Evidence per claim and study]({figures['overview']})", ""]
    lines += [
              "| claim | source | verdict | supports / contradicts / inconclusive (excluded) | estimators agreeing "
              "| where the verdict flips | missing studies |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for _, c in claims.iterrows():
        lines.append(f"| {c.title} | {c.source} | **{c.verdict}** | {c.n_supports} / {c.n_contradicts} / "
                     f"{c.n_inconclusive} ({c.n_excluded}) | {c.estimators_agreeing} | {c.flips or '–'} | "
                     f"{c.missing_studies or '–'} |")
    lines += ["", "### Rules", "",
              f"- A claim is **supported** when at least {SUPPORTED_SHARE:.0%} of its decisive rows (supports + "
              f"contradicts) support it, **contradicted** when at most {CONTRADICTED_SHARE:.0%} do, **mixed** in "
              "between; the same rule per estimator and per study gives the agreement and the flips.",
              f"- Compression: I(X;T) falls by more than {settings.threshold_bits} bits from its peak after the "
              f"fitting phase (I(T;Y) at {settings.fit_fraction:.0%} of its final level) to the mean of the last "
              f"{settings.final_fraction:.0%} of logged epochs, smoothed over {settings.smooth_window} logged "
              "points (the report's verdicts). Saturated trajectories (at the estimator's ceiling) and those outside "
              "its validated range are excluded from every measure and counted.",
              f"- Intervals: {pct}% Wilson for fractions, {pct}% percentile bootstrap over seeds (paired where two "
              f"cells share seeds, B = {settings.n_boot}) for differences, means and correlations; p: exact McNemar.",
              "- ρ: Nothnagel & Geiger's compression factor (I_max − mean of the last epochs) / I_max, mean over "
              "runs with its bootstrap interval, beside the drop-based verdict."]
    lines += [f"- {c.title}: {RULES[c.key]}." for c in CLAIMS]
    for i, c in enumerate(CLAIMS, 1):
        row = claims.set_index("claim").loc[c.key]
        ev = evidence[evidence.claim == c.key]
        lines += ["", f"## {i}. {c.title} — {c.source}", "", f"Prediction: {c.prediction}.", "",
                  f"Verdict: **{row.verdict}** ({row.n_supports} rows support, {row.n_contradicts} contradict, "
                  f"{row.n_inconclusive} inconclusive, {row.n_excluded} excluded). By estimator: "
                  f"{row.by_estimator or '–'}. By study: {row.by_study or '–'}. By layer: {row.by_layer or '–'}."]
        if row.missing_studies:
            lines.append(f"Missing studies: {row.missing_studies}.")
        if ev.empty:
            lines += ["", "No run directory given has cells that bear on this claim."]
            continue
        if c.key in figures:
            lines += ["", f"![{c.title}]({figures[c.key]})"]
        lines += [""] + (_fraction_pivot(ev) if c.key == "fit_then_compress" else _rows_table(ev))
    return "\n".join(lines) + "\n"


def _fraction_pivot(ev: pd.DataFrame) -> list[str]:
    """Claim 1 as one table per study: cells x estimators down, layers across; each entry the fraction compressed
    after fitting [interval], the mark, and ρ."""
    out = []
    frac = ev[ev.evidence != "context"]
    for study, g in frac.groupby("study", sort=False):
        layers = layer_order(g.layer)
        out += [f"**{study}** (fraction of runs compressed after fitting [Wilson interval] mark; ρ):", "",
                "| cell | estimator | " + " | ".join(layers) + " |", "| --- | --- |" + " --- |" * len(layers)]
        for (label, est), h in g.groupby(["label", "estimator"], sort=False):
            h = h.set_index("layer")
            cells = []
            for ly in layers:
                if ly not in h.index:
                    cells.append("")
                    continue
                r = h.loc[ly]
                if r.evidence == "excluded":
                    cells.append(f"excluded ({int(r.n_excluded)} saturated / outside range)")
                    continue
                rho = f"; ρ {r.rho_mean:.2f}" if np.isfinite(r.rho_mean) else ""
                cells.append(f"{_ci(r.value, r.lo, r.hi)} {MARK[r.evidence]}{rho}")
            out.append(f"| {label} | {est} | " + " | ".join(cells) + " |")
        out.append("")
    ctx = ev[ev.evidence == "context"]
    if len(ctx):
        out += ["Context (not counted):", ""] + _rows_table(ctx)
    return out


def _rows_table(ev: pd.DataFrame) -> list[str]:
    out = ["| study | contrast | cells | layer | estimator | measure | value [interval] | n | p | evidence |",
           "| --- | --- | --- | --- | --- | --- | --- | ---: | ---: | --- |"]
    for _, r in ev.iterrows():
        p = f"{r.p_value:.3g}" if np.isfinite(r.p_value) else "–"
        out.append(f"| {r.study} | {r.contrast} | {r.label} | {r.layer} | {r.estimator} | {r.measure} | "
                   f"{_ci(r.value, r.lo, r.hi)} | {int(r.n) if np.isfinite(r.n) else 0} | {p} | {r.evidence} |")
    return out + [""]


def forest_plot(ev: pd.DataFrame, title: str, path: Path, max_rows: int = 60) -> Path | None:
    """Each evidence row's measure with its interval, coloured by what it says; None when there is nothing."""
    ev = ev[np.isfinite(ev.value.to_numpy(dtype=float))]
    if ev.empty:
        return None
    if len(ev) > max_rows:  # keep the decisive rows first, then the largest samples
        ev = ev.assign(_d=~ev.evidence.isin(["supports", "contradicts"])).sort_values(["_d", "n"],
                                                                                   ascending=[True, False])
        ev = ev.head(max_rows).sort_index()
    labels = [f"{r.study}: {r.contrast or r.label} · {r.layer} · {r.estimator}"[:70] for _, r in ev.iterrows()]
    fig, ax = plt.subplots(figsize=(9, 0.22 * len(ev) + 1.4), dpi=110)
    y = np.arange(len(ev))[::-1]
    for yi, (_, r) in zip(y, ev.iterrows()):
        col = COLOUR.get(r.evidence, "0.5")
        if np.isfinite(r.lo):
            ax.plot([r.lo, r.hi], [yi, yi], color=col, lw=1.5)
        ax.plot(r.value, yi, "o", color=col, ms=4)
    ax.axvline(0, color="0.3", lw=0.8)
    if (ev.measure == "fraction compressed after fit").any():
        ax.axvline(0.5, color="0.3", lw=0.8, ls="--")
    ax.set_yticks(y, labels, fontsize=6)
    ax.set_xlabel(" / ".join(sorted(set(ev.measure))))
    ax.set_title(f"{title}\ngreen supports, red contradicts, grey inconclusive, blue context", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def overview_plot(evidence: pd.DataFrame, path: Path) -> Path | None:
    """Counted evidence rows per claim and study: supports (green), contradicts (red), inconclusive (grey)."""
    ev = evidence[evidence.evidence.isin(["supports", "contradicts", "inconclusive"])]
    if ev.empty:
        return None
    titles = {c.key: c.title for c in CLAIMS}
    groups = [(c.key, s) for c in CLAIMS for s in dict.fromkeys(ev[ev.claim == c.key].study)]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(groups) + 1.6), dpi=110)
    y = np.arange(len(groups))[::-1]
    for yi, (claim, study) in zip(y, groups):
        g = ev[(ev.claim == claim) & (ev.study == study)].evidence.value_counts()
        left = 0
        for kind in ("supports", "contradicts", "inconclusive"):
            k = int(g.get(kind, 0))
            ax.barh(yi, k, left=left, color=COLOUR[kind], edgecolor="white")
            left += k
    ax.set_yticks(y, [f"{titles[c][:48]} · {s}" for c, s in groups], fontsize=7)
    ax.set_xlabel("evidence rows (per cell or contrast, layer and estimator)")
    ax.set_title("What each study says about each claim\ngreen supports, red contradicts, grey inconclusive",
                 fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
