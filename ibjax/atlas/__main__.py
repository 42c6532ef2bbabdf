"""CLI: python -m ibjax.atlas [RUN_DIR...] [--tables DIR] [--out DIR]

Reads finished run directories (one per study of sweeps/) and / or the compact tables of an earlier atlas
(--tables), and writes into --out (default runs/atlas): ATLAS.md (primary endpoints, decisions, entries,
specification curve), claims.csv, entries.csv, specifications.csv, figures/ and tables/ (the compact per-network
tables everything was computed from; `--tables OUT/tables` rebuilds the same atlas in seconds). Exit codes:
0 done; 2 a missing, incomplete or unreadable run directory or tables folder, or bad options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

from ibjax.atlas.write import build_atlas, load_studies, write_atlas
from ibjax.rundir.layout import RunDirError


def main(argv: list[str] | None = None) -> int:
    # The command line draws to files only: a backend without a display. (Importing ibjax never chooses one, so
    # a notebook keeps its inline figures.)
    matplotlib.use("Agg")
    ap = argparse.ArgumentParser(prog="python -m ibjax.atlas", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dirs", nargs="*", type=Path, help="run directories written by python -m ibjax.sweep")
    ap.add_argument("--tables", type=Path, metavar="DIR",
                    help="a tables folder written by an earlier atlas (e.g. docs/results/atlas/tables)")
    ap.add_argument("--out", type=Path, default=Path("runs/atlas"), help="output folder (default runs/atlas)")
    ap.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    ap.add_argument("--no-figures", action="store_true", help="tables and ATLAS.md only")
    ap.add_argument("--no-sensitivity", action="store_true", help="primary analysis only (no specification curve)")
    args = ap.parse_args(argv)
    if not args.run_dirs and args.tables is None:
        ap.error("give run directories, or --tables DIR")
    if not 0.5 <= args.confidence < 1:
        print(f"error: --confidence must be in [0.5, 1) (got {args.confidence})", file=sys.stderr)
        return 2
    try:
        studies = load_studies(args.run_dirs, args.tables)
        atlas = build_atlas(studies, args.confidence, sensitivity=not args.no_sensitivity)
        # A tables folder read back is not written over itself (the same bytes, but never risk the source).
        same = args.tables is not None and (args.out / "tables").resolve() == args.tables.resolve()
        path = write_atlas(atlas, args.out, figures=not args.no_figures, tables=not same)
    except (RunDirError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"atlas written: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
