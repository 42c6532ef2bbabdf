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

import matplotlib

from ibjax.report.verdicts import VerdictSettings
from ibjax.report.write import write_report
from ibjax.rundir.layout import RunDirError


def settings_from_args(args: argparse.Namespace) -> VerdictSettings:
    changes = {k: v for k, v in {
        "threshold_bits": args.threshold, "smooth_window": args.smooth_window, "final_fraction": args.final_fraction,
        "fit_fraction": args.fit_fraction, "saturation_eps_bits": args.saturation_eps,
        "confidence": args.confidence, "n_boot": args.n_boot, "seed": args.seed}.items() if v is not None}
    return replace(VerdictSettings(), **changes)


def main(argv: list[str] | None = None) -> int:
    # The command line draws to files only: a backend without a display. (Importing ibjax never chooses one, so
    # a notebook keeps its inline figures.)
    matplotlib.use("Agg")
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
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    try:
        settings = settings_from_args(args)
        write_report(args.run_dir, settings, figures=not args.no_figures, progress=not args.quiet)
    except (RunDirError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report written: {args.run_dir / 'REPORT.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
