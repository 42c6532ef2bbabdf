"""REPORT.md: the verdict tables of a run directory in words a reader takes in at a glance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ibjax.report.summary import gap_meaning
from ibjax.report.verdicts import VerdictSettings
from ibjax.rundir.contract import deepest_hidden, is_regression, layer_order
from ibjax.rundir.manifest import Manifest


def _pct(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{100 * x + 0.0:.0f} %".replace("-0 %", "0 %")


def _num(x: float, digits: int) -> str:
    """x with `digits` decimals, never '-0.00' (a tiny negative rounds to zero, and says so without a sign)."""
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _ci(lo: float, hi: float, pct: bool = True, digits: int = 2) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "–"
    return f"[{_num(100 * lo, 0)}, {_num(100 * hi, 0)}] %" if pct else f"[{_num(lo, digits)}, {_num(hi, digits)}]"


def _table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def headline(r: pd.Series, label: str) -> str:
    """One sentence per cell: the verdict of its deepest hidden layer."""
    if r.n_runs == 0:
        return f"- **{label}, {r.layer}**: no run to judge ({r.n_diverged} diverged)."
    measured = getattr(r, "n_measured", r.n_runs)  # summaries written before the column: every run
    unmeasured = f"at the estimator's ceiling in {r.n_saturated}" + (
        f", outside its validated range in {r.n_unreliable}" if getattr(r, "n_unreliable", 0) else "")
    if measured == 0:
        return (f"- **{label}, {r.layer}**: not measured in any of its {r.n_runs} runs ({unmeasured}): no "
                f"compression can show there." + (f" {r.n_diverged} diverged runs excluded." if r.n_diverged else ""))
    s = (f"- **{label}, {r.layer}**: compressed in **{r.n_compressed} of {measured}** measured runs "
         f"({_pct(r.fraction_compressed)}, 95 % CI {_ci(r.fraction_lo, r.fraction_hi)}); ")
    if r.mean_drop_bits > 0:
        s += (f"after its post-fit peak (median epoch {r.median_peak_epoch:.0f}) I(X;T) fell by "
              f"{_pct(r.mean_drop_rel)} on average {_ci(r.drop_rel_lo, r.drop_rel_hi)} ({r.mean_drop_bits:.2f} bits).")
    else:
        s += f"I(X;T) did not fall after fitting (mean change {-r.mean_drop_bits:+.2f} bits)."
    if r.n_peak_at_end:
        s += f" Peak in the final window (still rising or flat) in {_runs(r.n_peak_at_end)}."
    s += f" Early transient: {r.mean_transient_drop_bits:.2f} bits, not counted."
    if r.n_compressed:
        s += f" Compression began after fitting in {r.n_after_fit} of {r.n_compressed}."
    if measured < r.n_runs:
        s += f" Not measured, so not counted: {r.n_runs - measured} of {r.n_runs} runs ({unmeasured})."
    if r.n_diverged:
        s += f" {r.n_diverged} diverged runs excluded."
    return s


def verdict_table(summary: pd.DataFrame, labels: dict[str, str]) -> str:
    t = pd.DataFrame({
        "cell": summary.cell.map(labels), "layer": summary.layer,
        "compressed / measured": [f"{k}/{n}" for k, n in
                                  zip(summary.n_compressed, summary.get("n_measured", summary.n_runs))],
        "fraction [95 % CI]": [f"{_pct(f)} {_ci(lo, hi)}" for f, lo, hi in
                               zip(summary.fraction_compressed, summary.fraction_lo, summary.fraction_hi)],
        "mean relative drop [95 % CI]": [f"{_pct(m)} {_ci(lo, hi)}" for m, lo, hi in
                                         zip(summary.mean_drop_rel, summary.drop_rel_lo, summary.drop_rel_hi)],
        "saturated": [f"{s}/{n}" for s, n in zip(summary.n_saturated, summary.n_runs)],
        "outside range": [f"{s}/{n}" for s, n in zip(summary.n_unreliable, summary.n_runs)],
        "after fitting": [f"{a}/{k}" for a, k in zip(summary.n_after_fit, summary.n_compressed)],
        "median fit / peak epoch": [f"{f:.0f} / {p:.0f}" if np.isfinite(f) else "–"
                                    for f, p in zip(summary.median_fit_epoch, summary.median_peak_epoch)],
        "transient drop (bits)": summary.mean_transient_drop_bits.map(lambda x: f"{x:.2f}"),
        "diverged": summary.n_diverged,
    })
    return _table(t)


def comparison_lines(comp: pd.DataFrame, labels: dict[str, str], alpha: float = 0.05) -> list[str]:
    if comp.empty:
        return ["No two cells differ in exactly one setting with shared seeds: no paired comparison."]
    sig = comp[comp.p_holm < alpha].sort_values("p_holm")
    out = [f"{len(comp)} paired comparisons (cells differing in one setting, seeds paired); exact McNemar test, "
           f"Holm-adjusted over all of them. {len(sig)} differ at family-wise α = {alpha}:"]
    for r in sig.itertuples():
        out.append(f"- {r.layer}, {r.setting} **{r.value_a}** vs **{r.value_b}** "
                   f"({labels.get(r.cell_a, r.cell_a)} vs {labels.get(r.cell_b, r.cell_b)}): fraction compressed "
                   f"{_pct(r.fraction_a)} vs {_pct(r.fraction_b)}, difference {100 * r.diff:+.0f} points "
                   f"{_ci(r.diff_lo, r.diff_hi)}, Holm p = {r.p_holm:.3g} (n = {r.n_pairs} seed pairs).")
    if sig.empty:
        out.append("- none (see `p_holm_layer` in comparisons.csv for the per-layer family).")
    return out


def comparison_table(comp: pd.DataFrame, labels: dict[str, str], layer: str) -> str:
    c = comp[comp.layer == layer]
    t = pd.DataFrame({
        "estimator": c.estimator, "a": c.cell_a.map(labels), "b": c.cell_b.map(labels),
        "pairs": c.n_pairs, "fraction a / b": [f"{_pct(a)} / {_pct(b)}" for a, b in zip(c.fraction_a, c.fraction_b)],
        "a − b [95 % CI]": [f"{100 * d:+.0f} {_ci(lo, hi)}" for d, lo, hi in zip(c["diff"], c.diff_lo, c.diff_hi)],
        "p (McNemar)": c.p_value.map(lambda p: f"{p:.3g}"), "p Holm (all)": c.p_holm.map(lambda p: f"{p:.3g}"),
        "p Holm (layer)": c.p_holm_layer.map(lambda p: f"{p:.3g}"),
    })
    return _table(t)


def render(*, name: str, manifest: Manifest, runs: pd.DataFrame, summary: pd.DataFrame, comp: pd.DataFrame,
           corr: pd.DataFrame, sens: pd.DataFrame, agree: pd.DataFrame, labels: dict[str, str],
           settings: VerdictSettings, warnings: list[str], figures: list[str],
           label_info: pd.DataFrame | None = None, gen_info: pd.DataFrame | None = None,
           fitting: pd.DataFrame | None = None, phases: pd.DataFrame | None = None,
           depth: pd.DataFrame | None = None, samples: pd.DataFrame | None = None) -> str:
    """REPORT.md, section by section."""
    ests = sorted(summary.estimator.unique())
    L = _header(name, manifest, runs, ests, warnings) + _how_to_read(settings, is_regression(runs))
    for est in ests:
        L += _verdicts(summary[summary.estimator == est], est, labels)
    L += _comparisons(comp, labels) + _generalization(corr, runs) + _sensitivity(sens, summary, labels, settings)
    if not agree.empty:
        L += ["## Agreement across estimators", "", _table(agree.round(3)), ""]
    has_gen = gen_info is not None and not gen_info.empty
    if has_gen:
        L += generalization_information_lines(gen_info, labels)
    has_labels = label_info is not None and not label_info.empty
    if has_labels:
        L += label_information_lines(label_info, labels, [str(f) for f in figures if "label_information" in str(f)])
    has_fitting = fitting is not None and not fitting.empty
    if has_fitting:
        L += fitting_lines(fitting, labels, settings)
    has_phases = phases is not None and not phases.empty
    if has_phases:
        L += phase_lines(phases, depth if depth is not None else pd.DataFrame(), labels, settings)
    has_samples = samples is not None and not samples.empty
    if has_samples:
        L += sample_lines(samples, labels, settings)
    L += ["## Files", "", "verdicts.parquet (per run × layer × estimator), summary.csv, comparisons.csv, "
          "correlations.csv, sensitivity.csv" + (", agreement.csv" if not agree.empty else "")
          + (", label_information.csv" if has_labels else "")
          + (", generalization_information.csv" if has_gen else "") + (", fitting.csv" if has_fitting else "")
          + (", phases.csv" if has_phases else "")
          + (", depth_claims.csv" if depth is not None and not depth.empty else "")
          + (", samples.csv" if has_samples else "") + "; figures:", ""]
    L += [f"- `{f}`" for f in figures] or ["- (figures not drawn)"]
    return "\n".join(L) + "\n"


def _header(name: str, manifest: Manifest, runs: pd.DataFrame, ests: list[str], warnings: list[str]) -> list[str]:
    n_samples = manifest.n_mi_samples
    epochs = manifest.mi_epochs
    L = [f"# Compression report: {name}", "",
         f"{len(runs)} networks in {runs.cell.nunique()} cells, {max(epochs) if epochs else '?'} epochs, "
         f"{len(epochs)} logged epochs; estimators: {', '.join(ests)}; MI on N = {n_samples} samples "
         f"(ceiling log2 N = {math.log2(n_samples):.2f} bits for the counting estimators). Diverged networks (excluded from every statistic): "
         f"{int(runs.diverged.sum())}.", ""]
    if warnings:
        L += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]
    return L


def _how_to_read(st: VerdictSettings, regression_task: bool = False) -> list[str]:
    fitting = (f"- **Fitting epoch** (a regression task): first logged epoch where the share of the training loss's "
               f"total fall made so far, smoothed by a centred moving average over {st.smooth_window} logged epochs, "
               f"reaches {100 * st.fit_fraction:.0f} % of its final level (mean of the last "
               f"{100 * st.final_fraction:.0f} % of logged epochs); one fitting epoch per run for every estimator "
               f"(only `gaussian` gives I(T;Y) of continuous targets)." if regression_task else
               f"- **Fitting epoch**: first logged epoch where I(T;Y), smoothed by a centred moving average over "
               f"{st.smooth_window} logged epochs, reaches {100 * st.fit_fraction:.0f} % of its final level (mean of "
               f"the last {100 * st.final_fraction:.0f} % of logged epochs).")
    return ["## How to read the verdicts", "", fitting,
          "- **Early transient**: the rise-and-fall of I(X;T) inside the fitting phase; reported in bits, never "
          "counted as compression.",
          f"- **Compressed**: the peak of smoothed I(X;T) at or after the fitting epoch exceeds the final level "
          f"(mean of the last {100 * st.final_fraction:.0f} % of logged epochs) by more than "
          f"**{st.threshold_bits} bits**, and the peak is not inside that final window. Relative drop = drop / "
          "peak.",
          "- **After fitting**: the peak lies strictly after the fitting epoch (I(X;T) still rose when fitting "
          "ended: Shwartz-Ziv & Tishby's order); otherwise it was already falling (concurrent, as Saxe et al.).",
          f"- **Saturated**: I(X;T) at the peak within {st.saturation_eps_bits} bits of the estimator's ceiling "
          "(log2 N for binning, KDE and exact counting: every sample has its own symbol; psi(N) - psi(k) nats for "
          "KSG): this estimator cannot show compression there. Not measured: never counted as compressed, left out "
          "of the fraction compressed and the mean drop, and counted apart.",
          "- **Outside range**: I(X;T) after fitting exceeds the range in which the estimator is validated against "
          "a known truth (`python -m ibjax.validate`; kNN: the dimension- and sample-size-dependent range in the "
          "README): not measured either, like a saturated trajectory.",
          f"- Intervals: fractions Wilson {100 * st.confidence:.0f} %; paired differences of fractions Tango's "
          f"score interval; means percentile bootstrap over runs (whole runs resampled, B = {st.n_boot}, seed "
          f"{st.seed}).", ""]


def _verdicts(s: pd.DataFrame, est: str, labels: dict[str, str]) -> list[str]:
    """One estimator's section: each cell's deepest hidden layer in words, saturation, the all-layer table."""
    L = [f"## Verdicts — {est}", "", "The deepest hidden layer of each cell:", ""]
    for cell, g in s.groupby("cell", sort=False):
        deep = deepest_hidden(g.layer)
        if deep is not None:
            L.append(headline(g[g.layer == deep].iloc[0], labels.get(cell, cell)))
    sat = s.groupby("layer").fraction_saturated.mean()
    sat_layers = [ly for ly in layer_order(sat.index) if sat[ly] > 0.5]
    if sat_layers:
        L += ["", f"Layers saturated in most runs (no compression can show there): {', '.join(sat_layers)}."]
    out = s.groupby("layer").fraction_unreliable.mean()
    out_layers = [ly for ly in layer_order(out.index) if out[ly] > 0.5]
    if out_layers:
        L += ["", f"Layers outside {est}'s validated range in most runs (drops not to be trusted): "
                  f"{', '.join(out_layers)}."]
    L += ["", "All layers (figure: `figures/heatmap_compressed_" + est + ".png`):", "", verdict_table(s, labels),
          ""]
    return L


def _comparisons(comp: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    L = ["## Paired comparisons", ""] + comparison_lines(comp, labels) + [""]
    if not comp.empty:
        deep = deepest_hidden(comp.layer)
        if deep is not None:
            L += [f"All comparisons for layer {deep} (comparisons.csv has every layer):", "",
                  comparison_table(comp, labels, deep), ""]
    return L


def _generalization(corr: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    L = ["## Compression and generalization", "",
          f"Spearman correlation of a run's relative drop with its generalization gap ({gap_meaning(runs)}); "
          "`within cell` removes cell means first, so differences between settings cannot create it.", ""]
    if not corr.empty:
        t = corr.assign(r=[f"{r:+.2f} {_ci(lo, hi, pct=False)}" for r, lo, hi in
                           zip(corr.spearman_r, corr.r_lo, corr.r_hi)])
        t = t.pivot_table(index=["layer", "estimator"], columns="scope", values="r", aggfunc="first").reset_index()
        t = t.sort_values("layer", key=lambda x: x.map(layer_order(t.layer).index))
        L += [_table(t.rename(columns={"within_cell": "within cell"})), ""]
    return L


def _sensitivity(sens: pd.DataFrame, summary: pd.DataFrame, labels: dict[str, str], st: VerdictSettings
                 ) -> list[str]:
    """Fractions compressed at other thresholds, and the noise floor the threshold is judged against."""
    L = ["## Sensitivity to the threshold", "",
          "Fraction of runs compressed in the deepest hidden layer at other drop thresholds (bits):", ""]
    if not sens.empty:
        deep = sens[sens.layer == deepest_hidden(sens.layer)]
        t = deep.pivot_table(index=["cell", "estimator"], columns="threshold_bits", values="fraction_compressed",
                             aggfunc="first", sort=False)
        t = t.map(lambda x: f"{100 * x:.0f} %").reset_index()
        t["cell"] = t.cell.map(labels)
        t.columns = [f"> {c} bits" if isinstance(c, float) else c for c in t.columns]
        L += [_table(t), ""]
    noise = summary.groupby("layer").median_noise_bits.max().dropna()
    if len(noise):
        worst = float(noise.max())
        verdict = ("above" if st.threshold_bits >= 3 * worst else "**not** clearly above (under 3×)")
        L += [f"Noise floor: the residual s.d. of I(X;T) about its smoothed curve after fitting is at most "
              f"{worst:.3f} bits (largest per-cell median over layers); the threshold {st.threshold_bits} bits is "
              f"{verdict} it.", ""]
    return L


def generalization_information_lines(gi: pd.DataFrame, labels: dict[str, str]) -> list[str]:
    """A regression sweep: the generalization error at its best epoch and at the end, and how I(X;T) and I(T;Y)
    moved in between, per cell (Saxe et al.: overtraining and well-generalizing networks, same information plane)."""
    ci = lambda r, k, d=3: f"{_num(r[k], d)} {_ci(r[f'{k}_lo'], r[f'{k}_hi'], pct=False, digits=d)}"
    first = gi.drop_duplicates("cell")
    errors = pd.DataFrame({
        "cell": first.cell.map(lambda c: labels.get(c, c)), "runs": first.n_runs,
        "median best epoch": first.median_best_epoch.map(lambda e: f"{e:.0f}"),
        "error at best [95 % CI]": [ci(r, "error_best") for _, r in first.iterrows()],
        "error at end": [ci(r, "error_final") for _, r in first.iterrows()],
        "overtraining (end - best)": [ci(r, "overtraining") for _, r in first.iterrows()],
    })
    info = pd.DataFrame({
        "cell": gi.cell.map(lambda c: labels.get(c, c)), "layer": gi.layer, "estimator": gi.estimator,
        "I(X;T) at best": [ci(r, "i_xt_best") for _, r in gi.iterrows()],
        "I(X;T) end - best": [ci(r, "i_xt_change") for _, r in gi.iterrows()],
        "I(T;Y) at best": [ci(r, "i_ty_best") for _, r in gi.iterrows()],
        "I(T;Y) end - best": [ci(r, "i_ty_change") for _, r in gi.iterrows()],
    })
    L = ["## Generalization and the information plane (regression)", "",
         "The generalization error (the exact E_g of a linear network, else the test error) at each run's best "
         "logged epoch and at the end: their difference is how much the network overtrained. Below, I(X;T) and "
         "I(T;Y) (bits) at the best epoch and their change from it to the end, so a referee can see whether the "
         "information plane moves while the network overtrains (Saxe et al. 2018: it does not tell overtraining "
         "from well-generalizing networks). Means over runs, percentile bootstrap 95 % intervals "
         "(generalization_information.csv).", "", _table(errors), "", _table(info), ""]
    if "i_xt_irr_change" in gi.columns:
        g = gi[gi.i_xt_irr_change.notna()]
        blocks = pd.DataFrame({
            "cell": g.cell.map(lambda c: labels.get(c, c)), "layer": g.layer, "estimator": g.estimator,
            "I(T;X_rel) end - start": [ci(r, "i_xt_rel_change") for _, r in g.iterrows()],
            "I(T;X_irr) end - start": [ci(r, "i_xt_irr_change") for _, r in g.iterrows()],
        })
        L += ["Task-relevant and task-irrelevant inputs (Saxe et al.'s Section 5): the change of I(T;X_rel) and "
              "I(T;X_irr) (bits) from the first logged epoch to the end; only kind gaussian measures them here.",
              "", _table(blocks), ""]
    return L


def label_information_lines(li: pd.DataFrame, labels: dict[str, str], figures: list[str] = ()) -> list[str]:
    """With label noise: I(T;Y) against the true labels beside I(T;Y) against the labels trained on."""
    ci = lambda r, k: f"{_num(r[k], 3)} {_ci(r[f'{k}_lo'], r[f'{k}_hi'], pct=False, digits=3)}"
    t = pd.DataFrame({
        "cell": li.cell.map(lambda c: labels.get(c, c)), "layer": li.layer, "estimator": li.estimator,
        "runs": li.n_runs, "I(T;Y) true labels [95 % CI]": [ci(r, "i_ty") for _, r in li.iterrows()],
        "I(T;Y) labels trained on": [ci(r, "i_ty_trained") for _, r in li.iterrows()],
        "trained - true (paired)": [ci(r, "trained_minus_true") for _, r in li.iterrows()],
    })
    return ["## I(T;Y): true labels and the labels trained on", "",
            f"At the last logged epoch ({int(li.epoch.iat[0])}), bits, means over runs. With random labels a network "
            "that memorizes carries information about the labels it was given (trained on) that is not "
            "information about the true ones; with no label noise the two are the same."
            + (" Over the epochs (solid: true labels, dashed: trained on): "
               + ", ".join(f"`{f}`" for f in figures) + "." if figures else ""), "", _table(t), ""]


def fitting_lines(ft: pd.DataFrame, labels: dict[str, str], st: VerdictSettings) -> list[str]:
    """How long each cell's networks took to fit their training labels (Zhang et al. 2017)."""
    def median(r) -> str:
        if not np.isfinite(r.median_epochs_to_fit):
            return "not reached"
        hi = "not reached" if r.median_hi == np.inf else f"{r.median_hi:.0f}"
        lo = f"{r.median_lo:.0f}" if np.isfinite(r.median_lo) else "–"
        return f"{r.median_epochs_to_fit:.0f} [{lo}, {hi}]"

    t = pd.DataFrame({
        "cell": ft.cell.map(lambda c: labels.get(c, c)),
        "fitted": [f"{r.n_fitted}/{r.n_runs} {_ci(r.fitted_lo, r.fitted_hi)}" for r in ft.itertuples()],
        f"median epochs to fit [{st.confidence:.0%} CI]": [median(r) for r in ft.itertuples()],
        "final training accuracy": [f"{_pct(r.final_train_acc)} {_ci(r.final_train_acc_lo, r.final_train_acc_hi)}"
                                    for r in ft.itertuples()],
    })
    return ["## Time to fit the training labels", "",
            f"Epochs until the training accuracy (against the labels each network trains on) first reaches "
            f"{st.fit_accuracy:.0%}, at the logged epochs (a time is the first logged epoch at or after the fit). "
            "Median over runs with a distribution-free interval (order statistics); a run that never fits counts "
            "as longer than any, so the upper bound is 'not reached' while such runs could hold the median. Zhang "
            "et al. (2017): with more random labels, fitting takes longer and ends at the same training error.",
            "", _table(t), ""]


def sample_lines(t: pd.DataFrame, labels: dict[str, str], st: VerdictSettings) -> list[str]:
    """Compression on the training and the held-out MI sample (mi_sample.split both; ibjax.report.samples)."""
    pct = round(100 * st.confidence)
    show = pd.DataFrame({
        "cell": t.cell.map(lambda c: labels.get(c, c)), "layer": t.layer, "estimator": t.estimator,
        "networks": t.n_networks,
        "compressed, train": [f"{_pct(r.compressed_train)} {_ci(r.compressed_train_lo, r.compressed_train_hi)}"
                              for r in t.itertuples()],
        "compressed, test": [f"{_pct(r.compressed_test)} {_ci(r.compressed_test_lo, r.compressed_test_hi)}"
                             for r in t.itertuples()],
        "drop train / test (bits)": [f"{r.drop_bits_train:.2f} / {r.drop_bits_test:.2f}" for r in t.itertuples()],
        f"test - train [{pct} % CI]": [f"{r.drop_diff_bits:+.2f} {_ci(r.drop_diff_lo, r.drop_diff_hi, False)}"
                                       for r in t.itertuples()],
    })
    return ["## Compression on the training and the held-out sample", "",
            "Every network measured on two MI samples of the same size (mi_sample.split both): rows it trained on "
            "and test rows. The verdicts above list them as <estimator>@train and <estimator>@test. Here, per "
            "cell and layer, the networks measured on both (neither at the ceiling): the fraction compressed on "
            f"each and the paired difference of the drop from peak to final level (bootstrap over networks).", "",
            _table(show), ""]


def phase_lines(pt: pd.DataFrame, claims: pd.DataFrame, labels: dict[str, str], st: VerdictSettings) -> list[str]:
    """Compression onset and duration per layer, the drift-to-diffusion lag, epochs to generalize, and
    Shwartz-Ziv & Tishby's depth claims (ibjax.report.phases)."""
    def med(v, lo, hi, fmt="{:.0f}") -> str:
        if not np.isfinite(v):
            return "not reached" if v == np.inf else "–"
        show = lambda x: "not reached" if x == np.inf else ("–" if not np.isfinite(x) else fmt.format(x))
        return f"{fmt.format(v)} [{show(lo)}, {show(hi)}]"

    t = pd.DataFrame({
        "cell": pt.cell.map(lambda c: labels.get(c, c)), "layer": pt.layer,
        "compresses": [f"{r.n_compress}/{r.n_runs} {_ci(r.compress_lo, r.compress_hi)}" for r in pt.itertuples()],
        "onset (epoch)": [med(r.median_onset, r.onset_lo, r.onset_hi) for r in pt.itertuples()],
        "duration (decades)": [med(r.median_duration_decades, r.duration_lo, r.duration_hi, "{:.2f}")
                               for r in pt.itertuples()],
        "lag to SNR transition (decades)": [
            med(r.median_lag_decades, r.lag_lo, r.lag_hi, "{:+.2f}") if r.index == r.depth else ""
            for r in pt.itertuples()],
        f"epochs to {st.generalize_accuracy:.0%} test accuracy": [
            med(r.median_generalize_epoch, r.generalize_lo, r.generalize_hi) if r.index == 1 else ""
            for r in pt.itertuples()],
    })
    L = ["## Phases and depth (Shwartz-Ziv & Tishby 2017)", "",
         f"Per hidden layer (estimator {pt.estimator.iloc[0]}): "
         f"compression's onset is the logged epoch of the smoothed I(X;T)'s maximum, and the layer compresses "
         f"when the fall from there to the final level exceeds {st.threshold_bits:g} bit (not where the maximum "
         "is at the estimator's ceiling or in the final window); its duration runs to 90 % of that fall, in "
         "decades of epochs. The lag is the last hidden layer's onset minus the "
         "drift-to-diffusion transition (first logged epoch where the median over layers of the smoothed "
         "gradient SNR is below 1), in decades, over the networks whose last hidden layer compresses. Medians "
         f"over networks with order-statistic intervals ({st.confidence:.0%}); fractions with Wilson intervals.",
         "", _table(t), ""]
    claims = claims[np.isfinite(claims.estimate.astype(float))] if not claims.empty else claims
    if not claims.empty:
        c = pd.DataFrame({"claim": claims.claim, "statistic": claims.statistic, "predicted": claims.predicted,
                          f"estimate [{st.confidence:.0%} CI]": [
                              f"{r.estimate:+.3f} {_ci(r.lo, r.hi, pct=False, digits=3)}" for r in claims.itertuples()],
                          "networks": claims.n_networks})
        L += ["Claims over all networks of this sweep (each network one unit; intervals by bootstrap over "
              "networks, order statistics for the median lag):", "", _table(c), ""]
    return L
