"""The report of one run directory: verdicts, summary, comparisons, correlations, sensitivity, agreement,
REPORT.md and figures, all written into the run directory. It reads the run directory alone."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from ibjax.report import figures as figs
from ibjax.report.comparisons import compare_cells, correlations
from ibjax.report.labels import cell_labels, cell_slug
from ibjax.report.phases import depth_claims, network_phases, phase_table
from ibjax.report.summary import (
    agreement,
    fitting_times,
    generalization_information,
    label_information,
    sensitivity,
    summarize,
)
from ibjax.report.text import render
from ibjax.report.samples import compare_samples, held_out_estimator, per_sample, per_sample_limits
from ibjax.report.verdicts import DEFAULT_SETTINGS, VerdictSettings, run_verdicts
from ibjax.rundir.contract import is_regression, layer_order
from ibjax.rundir.layout import RunDirError, check_complete, incompleteness
from ibjax.rundir.store import atomic_write_bytes, load, write_table


def write_report(run_dir: str | Path, settings: VerdictSettings = DEFAULT_SETTINGS, *,
                 figures: bool = True, stream=None, progress: bool = False) -> dict:
    """Compute every table of the report, write them and REPORT.md (and figures) into `run_dir`.

    progress: one line on `stream` (default: the current sys.stderr) as each step starts (the report of a large
    sweep takes minutes).
    Returns a dict of the DataFrames (verdicts, summary, comparisons, correlations, sensitivity, agreement).
    Raises RunDirError for a missing or incomplete run directory.
    """
    t0 = time.perf_counter()
    stream = sys.stderr if stream is None else stream  # as it is now, not at import (a notebook may redirect it)

    def step(what: str) -> None:
        if progress:
            print(f"[report {time.perf_counter() - t0:5.1f} s] {what}", file=stream, flush=True)

    run_dir = Path(run_dir)
    step(f"reading {run_dir}")
    rd = load_finished(run_dir)
    samples = sorted(rd.info.split.unique()) if "split" in rd.info.columns else []
    rd = per_sample(rd)  # mi_sample.split both: each estimator on each sample a series of its own
    limits = per_sample_limits(rd.manifest.limits(), samples)
    warnings = incompleteness(rd)
    for w in warnings:
        print(f"warning: {w}", file=stream)
    runs = rd.runs
    n_traj = rd.info.groupby(["run_id", "layer", "estimator"]).ngroups
    step(f"verdicts of {n_traj:,} trajectories (runs x layers x estimators)")
    verdicts = run_verdicts(rd.info, runs, rd.manifest.n_mi_samples, settings, limits, rd.metrics)
    step("summary, comparisons, correlations, sensitivity (bootstrap intervals)")
    tables = {
        "verdicts": verdicts, "summary": summarize(verdicts, runs, settings),
        "comparisons": compare_cells(verdicts, runs, settings), "correlations": correlations(verdicts, runs, settings),
        "sensitivity": sensitivity(verdicts, settings), "agreement": agreement(verdicts),
    }
    write_table(run_dir / "verdicts.parquet", verdicts)
    for name in ("summary", "comparisons", "correlations", "sensitivity"):
        _write_csv(run_dir / f"{name}.csv", tables[name])
    if rd.info.estimator.nunique() > 1:
        _write_csv(run_dir / "agreement.csv", tables["agreement"])
    step("label information, fitting times, phases, samples, generalization")
    for name, table in _further_tables(rd, verdicts, settings, limits).items():
        tables[name] = table
        if len(table):  # written only where the sweep has what it describes
            _write_csv(run_dir / f"{name}.csv", table)

    labels = cell_labels(runs)
    if figures:
        step("figures (information planes, bands, heatmaps, gradients)")
    fig_paths = draw_figures(run_dir, rd, tables, labels, settings) if figures else []
    step("REPORT.md")
    text = render(name=rd.spec.get("name", run_dir.name), manifest=rd.manifest, runs=runs,
                  summary=tables["summary"], comp=tables["comparisons"], corr=tables["correlations"],
                  sens=tables["sensitivity"], agree=tables["agreement"], labels=labels, settings=settings,
                  warnings=warnings, figures=[str(p.relative_to(run_dir)) for p in fig_paths],
                  label_info=tables["label_information"], gen_info=tables["generalization_information"],
                  fitting=tables["fitting"], phases=tables["phases"], depth=tables["depth_claims"],
                  samples=tables["samples"])
    atomic_write_bytes(run_dir / "REPORT.md", text.encode())
    return tables


def _further_tables(rd, verdicts: pd.DataFrame, settings: VerdictSettings, limits: dict) -> dict:
    """The tables some sweeps have, by the CSV name each is written under (empty where it does not apply):
    information about labels, time to fit, Shwartz-Ziv & Tishby's phases and depth claims, the training vs the
    held-out MI sample, a regression task's generalization and information."""
    runs = rd.runs
    ceilings = {est: lim[0] for est, lim in limits.items()}  # the saturation rule's ceilings
    phases = network_phases(rd.info, rd.gradients, rd.metrics, runs, settings, ceilings,
                            held_out_estimator(rd.info.estimator.unique()))
    return {"label_information": label_information(rd.info, runs, settings),
            "fitting": fitting_times(rd.metrics, runs, settings),
            "phases": phase_table(phases, runs, settings), "depth_claims": depth_claims(phases, settings),
            "samples": compare_samples(verdicts, settings),
            "generalization_information": generalization_information(rd.info, rd.metrics, runs, settings)}


def load_finished(run_dir: str | Path):
    """The tables of a complete run directory that records its MI sample size; RunDirError (naming the path)
    for a missing, incomplete or unreadable one."""
    run_dir = Path(run_dir)
    check_complete(run_dir)
    try:
        rd = load(run_dir)
    except Exception as e:  # a truncated or foreign file: name it rather than print a parquet traceback
        raise RunDirError(f"{run_dir}: cannot read the run directory: {e}") from e
    return rd


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write_bytes(path, df.to_csv(index=False).encode())


def draw_figures(run_dir: Path, rd, tables: dict, labels: dict, settings: VerdictSettings) -> list[Path]:
    """Every figure of the report under run_dir/figures/; cells whose runs all diverged are skipped."""
    fig_dir = run_dir / "figures"
    ok = rd.runs.loc[~rd.runs.diverged.astype(bool), ["run_id", "cell"]]
    info = rd.info.merge(ok, on="run_id")
    layers = layer_order(info.layer)
    # Bands use fewer draws than the tables: they are drawn, not quoted, and there is one per epoch.
    boot = settings.boot(max_draws=1000)
    v, summary = tables["verdicts"], tables["summary"]
    paths = []
    for est in sorted(info.estimator.unique()):
        e = info[info.estimator == est]
        for cell in labels:
            c = e[e.cell == cell]
            if c.empty:
                continue
            title = f"{labels[cell]}: {est}, {c.run_id.nunique()} seeds (mean, 95% bootstrap band)"
            slug = f"{cell_slug(cell)}_{est}"
            fit = v[(v.cell == cell) & (v.estimator == est)].groupby("layer").fit_epoch.median().to_dict()
            paths.append(figs.mi_vs_epoch(c, layers, title, fig_dir / f"mi_epoch_{slug}.png", boot, fit))
            paths.append(figs.infoplane_bands(c, layers, title, fig_dir / f"bands_infoplane_{slug}.png", boot))
        if "i_ty_trained" in e.columns and e.i_ty_trained.notna().any():
            paths.append(figs.label_information(e, labels, layers, fig_dir / f"label_information_{est}.png", boot))
        s = summary[summary.estimator == est]
        if len(s):
            title = (f"Fraction of runs compressed ({est}; drop > {settings.threshold_bits} bits after fitting)\n"
                     f"k/n of the measured runs and Wilson {100 * settings.confidence:.0f}% interval; hatched: mostly saturated or "
                     "outside the estimator's validated range (not measured)")
            paths.append(figs.compressed_heatmap(s, labels, layers, title, fig_dir / f"heatmap_compressed_{est}.png"))
    live = {c: lab for c, lab in labels.items() if c in set(ok.cell)}
    if live:
        grads = rd.gradients.merge(ok, on="run_id")
        paths.append(figs.gradient_snr(grads, live, layer_order(grads.layer), fig_dir / "gradient_snr.png", boot))
        name = "errors.png" if is_regression(rd.metrics) else "accuracy.png"
        paths.append(figs.accuracy(rd.metrics.merge(ok, on="run_id"), live, fig_dir / name, boot))
    return paths
