"""CLI: python -m ibjax.atlas RUN_DIR... [--out DIR] [--threshold BITS ...]

Reads finished run directories (one per study of sweeps/) and writes ATLAS.md, evidence.csv, claims.csv and
figures/ into --out (default runs/atlas): for each of the four claims, the evidence from every study that bears
on it, with intervals, and a verdict with its robustness across estimators and studies. Studies of the library
that were not given are named. Exit codes: 0 done; 2 a missing, incomplete or unreadable run directory, or bad
options.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import matplotlib

from ibjax.atlas.write import write_atlas
from ibjax.report.verdicts import VerdictSettings
from ibjax.rundir.layout import RunDirError


def main(argv: list[str] | None = None) -> int:
    # The command line draws to files only: a backend without a display. (Importing ibjax never chooses one, so
    # a notebook keeps its inline figures.)
    matplotlib.use("Agg")
    d = VerdictSettings()
    ap = argparse.ArgumentParser(prog="python -m ibjax.atlas", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dirs", nargs="+", type=Path, help="run directories written by python -m ibjax.sweep")
    ap.add_argument("--out", type=Path, default=Path("runs/atlas"), help="output folder (default runs/atlas)")
    ap.add_argument("--threshold", type=float, metavar="BITS",
                    help=f"drop after fitting that counts as compression (default {d.threshold_bits})")
    ap.add_argument("--confidence", type=float, help=f"interval level (default {d.confidence})")
    ap.add_argument("--n-boot", type=int, help=f"bootstrap draws (default {d.n_boot})")
    ap.add_argument("--no-figures", action="store_true", help="tables and ATLAS.md only")
    args = ap.parse_args(argv)
    try:
        changes = {k: v for k, v in {"threshold_bits": args.threshold, "confidence": args.confidence,
                                     "n_boot": args.n_boot}.items() if v is not None}
        settings = replace(VerdictSettings(), **changes)
        write_atlas(args.run_dirs, args.out, settings, figures=not args.no_figures)
    except (RunDirError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"atlas written: {args.out / 'ATLAS.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
