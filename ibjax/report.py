"""CLI: python -m ibjax.report RUN_DIR [--threshold BITS ...]

Reads a run directory written by `python -m ibjax.sweep` and writes, into it: verdicts.parquet, summary.csv,
comparisons.csv, correlations.csv, sensitivity.csv (and agreement.csv with more than one estimator), REPORT.md
and figures/. Exit codes: 0 done; 2 missing or unreadable run directory, tables or bad options.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ibjax.comparisons import compare_cells, correlations
from ibjax.plots import cell_slug
from ibjax.store import TABLES, load, write_table
from ibjax.summary import agreement, sensitivity, summarize
from ibjax.verdicts import DEFAULT_SETTINGS, VerdictSettings, layer_order, run_verdicts


class RunDirError(Exception):
    """The run directory cannot be reported on; the message names what is missing or broken."""


def _has_table(run_dir: Path, name: str) -> bool:
    return (run_dir / f"{name}.parquet").is_file() or any((run_dir / name).glob("*.parquet"))


def check_run_dir(run_dir: Path) -> None:
    """Raise RunDirError naming every missing file of the run-directory contract at once."""
    if not run_dir.is_dir():
        raise RunDirError(f"run directory not found: {run_dir}")
    missing = [f for f in ("spec.yaml",) if not (run_dir / f).is_file()]
    if not (run_dir / "manifest.json").is_file() and not any((run_dir / "shards").glob("shard-*.json")):
        missing.append("manifest.json (or shards/*.json)")
    missing += [f"{t}.parquet (or {t}/*.parquet)" for t in TABLES if not _has_table(run_dir, t)]
    if missing:
        raise RunDirError(f"{run_dir} is incomplete: missing {', '.join(missing)}. Was the sweep interrupted "
                          "before writing them? Re-run the sweep (or its missing shards) into this directory.")


def incompleteness(rd) -> list[str]:
    """Warnings for a run directory that loads but is not whole: unfinished buckets or shards, runs without MI."""
    out = []
    m = rd.manifest
    if m.get("status", "done") != "done":
        out.append(f"manifest status is '{m.get('status')}', not 'done': the statistics cover finished work only.")
    for b in m.get("buckets", []):
        if b.get("status", "done") != "done":
            out.append(f"bucket {b.get('index')} ({b.get('n_runs')} runs, {b.get('activations')}) is "
                       f"'{b.get('status')}': its runs are missing.")
    for s in m.get("shards", []):
        if s.get("status", "done") != "done":
            out.append(f"shard {s.get('shard')} is '{s.get('status')}': its part files are missing.")
    no_info = sorted(set(rd.runs.run_id) - set(rd.info.run_id))
    if no_info:
        out.append(f"{len(no_info)} runs in runs.parquet have no rows in info.parquet (e.g. {', '.join(no_info[:3])}).")
    return out


def report(run_dir: str | Path, settings: VerdictSettings = DEFAULT_SETTINGS, *, figures: bool = True,
           stream=sys.stderr) -> dict:
    """Compute every table of the report, write them and REPORT.md (and figures) into `run_dir`.

    Returns a dict of the DataFrames (verdicts, summary, comparisons, correlations, sensitivity, agreement).
    Raises RunDirError for a missing or incomplete run directory.
    """
    from ibjax import report_plots as rp
    from ibjax.report_text import render

    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    try:
        rd = load(run_dir)
    except Exception as e:  # a truncated or foreign file: name it rather than print a parquet traceback
        raise RunDirError(f"{run_dir}: cannot read the run directory: {e}") from e
    if "n_mi_samples" not in rd.manifest:
        raise RunDirError(f"{run_dir}/manifest.json has no 'n_mi_samples' (the MI sample size N)")
    warnings = incompleteness(rd)
    for w in warnings:
        print(f"warning: {w}", file=stream)
    runs = rd.runs
    verdicts = run_verdicts(rd.info, runs, rd.manifest["n_mi_samples"], settings)
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

    labels = rp.cell_labels(runs)
    fig_paths = draw_figures(run_dir, rd, tables, labels, settings) if figures else []
    text = render(name=rd.spec.get("name", run_dir.name), manifest=rd.manifest, runs=runs,
                  summary=tables["summary"], comp=tables["comparisons"], corr=tables["correlations"],
                  sens=tables["sensitivity"], agree=tables["agreement"], labels=labels, settings=settings,
                  warnings=warnings, figures=[str(p.relative_to(run_dir)) for p in fig_paths])
    from ibjax.store import atomic_write_bytes

    atomic_write_bytes(run_dir / "REPORT.md", text.encode())
    return tables


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    from ibjax.store import atomic_write_bytes

    atomic_write_bytes(path, df.to_csv(index=False).encode())


def draw_figures(run_dir: Path, rd, tables: dict, labels: dict, settings: VerdictSettings) -> list[Path]:
    """Every figure of the report under run_dir/figures/; cells whose runs all diverged are skipped."""
    from ibjax import report_plots as rp

    fig_dir = run_dir / "figures"
    ok = rd.runs.loc[~rd.runs.diverged.astype(bool), ["run_id", "cell"]]
    info = rd.info.merge(ok, on="run_id")
    layers = layer_order(info.layer)
    # Bands use fewer draws than the tables: they are drawn, not quoted, and there is one per epoch.
    boot = dict(n_boot=min(settings.n_boot, 1000), confidence=settings.confidence, seed=settings.seed)
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
            paths.append(rp.mi_vs_epoch(c, layers, title, fig_dir / f"mi_epoch_{slug}.png", boot, fit))
            paths.append(rp.infoplane_bands(c, layers, title, fig_dir / f"bands_infoplane_{slug}.png", boot))
        s = summary[summary.estimator == est]
        if len(s):
            title = (f"Fraction of runs compressed ({est}; drop > {settings.threshold_bits} bits after fitting)\n"
                     f"k/n and Wilson {100 * settings.confidence:.0f}% interval; hatched: mostly saturated at log2 N")
            paths.append(rp.compressed_heatmap(s, labels, layers, title, fig_dir / f"heatmap_compressed_{est}.png"))
    live = {c: lab for c, lab in labels.items() if c in set(ok.cell)}
    if live:
        grads = rd.gradients.merge(ok, on="run_id")
        paths.append(rp.gradient_snr(grads, live, layer_order(grads.layer), fig_dir / "gradient_snr.png", boot))
        paths.append(rp.accuracy(rd.metrics.merge(ok, on="run_id"), live, fig_dir / "accuracy.png", boot))
    return paths


def settings_from_args(args: argparse.Namespace) -> VerdictSettings:
    changes = {k: v for k, v in {
        "threshold_bits": args.threshold, "smooth_window": args.smooth_window, "final_fraction": args.final_fraction,
        "fit_fraction": args.fit_fraction, "saturation_eps_bits": args.saturation_eps,
        "confidence": args.confidence, "n_boot": args.n_boot, "seed": args.seed}.items() if v is not None}
    return replace(VerdictSettings(), **changes)


def main(argv: list[str] | None = None) -> int:
    d = VerdictSettings()
    ap = argparse.ArgumentParser(prog="python -m ibjax.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="run directory written by python -m ibjax.sweep")
    ap.add_argument("--threshold", type=float, metavar="BITS",
                    help=f"drop from the post-fit peak that counts as compression (default {d.threshold_bits})")
    ap.add_argument("--smooth-window", type=int, metavar="K",
                    help=f"centred moving average over K logged epochs, odd (default {d.smooth_window})")
    ap.add_argument("--final-fraction", type=float, metavar="F",
                    help=f"final level = mean of the last F of logged epochs (default {d.final_fraction})")
    ap.add_argument("--fit-fraction", type=float, metavar="F",
                    help=f"fitting ends when I(T;Y) reaches F of its final level (default {d.fit_fraction})")
    ap.add_argument("--saturation-eps", type=float, metavar="BITS",
                    help=f"saturated when the peak is within BITS of log2 N (default {d.saturation_eps_bits})")
    ap.add_argument("--confidence", type=float, help=f"interval level (default {d.confidence})")
    ap.add_argument("--n-boot", type=int, help=f"bootstrap draws (default {d.n_boot})")
    ap.add_argument("--seed", type=int, help=f"bootstrap seed (default {d.seed})")
    ap.add_argument("--no-figures", action="store_true", help="tables and REPORT.md only")
    args = ap.parse_args(argv)
    try:
        settings = settings_from_args(args)
        report(args.run_dir, settings, figures=not args.no_figures)
    except (RunDirError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report written: {args.run_dir / 'REPORT.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
