"""CLI: python -m ibjax.sweep SPEC.yaml [--out DIR] [--set KEY=VALUE ...] [--resume] [--force] [--shard I/N]
                             [--dry-run]
     python -m ibjax.sweep --resume DIR   (continue the sweep in DIR from the spec stored there)

Trains every network of a sweep spec and writes its run directory (ibjax.sweep.run.run_sweep), then the report.
Exit codes: 0 done (or nothing to do); 2 bad input (spec, overrides, files, a run directory that does not
match); 3 interrupted, resumable with --resume; 1 an unexpected failure (finished buckets are on disk).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

import matplotlib

from ibjax._runtime import configure_process
from ibjax.data import DataError
from ibjax.models.family import ModelError
from ibjax.rundir.layout import RunDirError
from ibjax.rundir.store import read_manifest
from ibjax.spec import SpecError, load_resolved_spec, load_spec
from ibjax.sweep.console import fmt_s
from ibjax.sweep.plan import parse_shard
from ibjax.sweep.run import run_sweep
from ibjax.sweep.sizing import SizingError
from ibjax.train.loop import Interrupted


def main(argv: list[str] | None = None) -> int:
    # The command line sets up its process (importing ibjax never does): one XLA CPU device per core and 64-bit
    # types, before anything starts JAX's backends; and it draws to files only, with a backend without a display.
    configure_process()
    matplotlib.use("Agg")
    args = _parser().parse_args(argv)
    resolved = _resolve(args)
    if isinstance(resolved, int):  # a usage error, already reported
        return resolved
    spec, spec_path, out, shard = resolved
    if not args.quiet:
        print(f"ibjax: {spec.name} -> {out}", file=sys.stderr)
    try:
        manifest = run_sweep(spec, out, progress=not args.quiet, source=str(spec_path),
                             report=not args.no_report, resume=bool(args.resume), force=args.force, shard=shard,
                             dry_run=args.dry_run)
    except Interrupted as e:
        print(f"interrupted ({e}); finished buckets and a checkpoint are in {out}; continue with:\n"
              f"  {resume_command(out, shard)}", file=sys.stderr)
        return 3
    except (FileNotFoundError, DataError, ModelError, RunDirError, SizingError, SpecError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the run directory cannot be written: a full disk, no permission, a file in the way
        _report_write_error(e, out, shard)
        return 2
    return _report_outcome(manifest, out, shard)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ibjax.sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("spec", nargs="?", help="sweep YAML file (see sweeps/ and the README's YAML reference); "
                    "leave it out with --resume DIR")
    ap.add_argument("--out", type=Path, help="run directory (default runs/<name>)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a spec key, e.g. --set train.epochs=200 (repeatable)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    ap.add_argument("--no-report", action="store_true", help="skip python -m ibjax.report at the end")
    ap.add_argument("--resume", nargs="?", const=True, default=False, metavar="DIR",
                    help="continue an interrupted sweep: in --out, or in DIR from the spec stored there (the "
                    "overrides it was started with included)")
    ap.add_argument("--force", action="store_true", help="discard what --out holds and start over")
    ap.add_argument("--dry-run", action="store_true", help="plan and size the programs, time each one's first "
                    "chunk, print the memory and a time estimate; write nothing")
    ap.add_argument("--shard", metavar="I/N", help="run only the I-th (0-based) of N deterministic slices of the "
                    "run table; default under a SLURM array job: SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT")
    return ap


def _resolve(args) -> tuple | int:
    """(spec, spec path, run directory, shard) from the arguments, or 2 after printing what is wrong."""
    try:
        shard = parse_shard(args.shard)
    except ValueError as e:
        print(f"error: --shard: {e}", file=sys.stderr)
        return 2
    resume_dir = Path(args.resume) if isinstance(args.resume, str) else None
    if resume_dir is not None and args.out is not None and args.out != resume_dir:
        print(f"error: --resume {resume_dir} and --out {args.out} name two run directories; give one",
              file=sys.stderr)
        return 2
    if args.spec is None:
        if resume_dir is None:
            print("error: give a sweep spec (e.g. sweeps/activation_grid.yaml), or --resume DIR to continue the "
                  "sweep in a run directory", file=sys.stderr)
            return 2
        if not (resume_dir / "spec.yaml").is_file():
            print(f"error: nothing to resume in {resume_dir}: " + (
                "no spec.yaml there (is it a run directory?)" if resume_dir.is_dir() else "no such directory")
                  + "; check the path", file=sys.stderr)
            return 2
    spec_path = args.spec if args.spec is not None else resume_dir / "spec.yaml"
    try:
        if args.spec is None:  # the resolved spec the run directory stores, its overrides included
            spec = load_resolved_spec(spec_path, args.overrides)
        else:
            spec = load_spec(spec_path, args.overrides)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or resume_dir or Path("runs") / spec.name
    # A typo in the path is the likely reason for nothing to resume. Shards are exempt (--shard given, or a
    # SLURM array task): a cluster array task passes --resume from its first start on (ibjax.slurm).
    sharded = args.shard is not None or shard != (0, 1) or "SLURM_ARRAY_TASK_ID" in os.environ
    if args.resume and not sharded and not (out / "manifest.json").is_file():
        print(f"error: nothing to resume in {out}: " + ("it holds no sweep" if out.is_dir() else "no such directory")
              + "; check the path, or start the sweep without --resume", file=sys.stderr)
        return 2
    return spec, spec_path, out, shard


def _report_write_error(e: OSError, out: Path, shard) -> None:
    where = e.filename or out
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        print(f"error: no space left on the device while writing {where} ({e.strerror}). What finished is on "
              f"disk (finished buckets, the running one's last checkpoint); free some space, then continue "
              f"with:\n  {resume_command(out, shard)}", file=sys.stderr)
    else:
        print(f"error: cannot write the run directory: {where}: {e.strerror or e}. Choose another --out, "
              f"or fix the folder's permissions.", file=sys.stderr)


def _report_outcome(manifest, out: Path, shard) -> int:
    """The last lines of a sweep that ran (or found nothing to do, or only estimated); exit code 0."""
    if isinstance(manifest, dict):  # a dry run's estimate
        print(f"dry run done: to run it, the same command without --dry-run (writes {out})", file=sys.stderr)
        return 0
    what = "sweep" if shard[1] == 1 else f"shard {shard[0]}/{shard[1]}"
    if manifest.nothing_to_do:
        print(f"{out} already holds this finished {what}: nothing to do (--force to run it again)", file=sys.stderr)
        return 0
    if shard[1] > 1:
        left = [s.shard for s in read_manifest(out).shards if s.status != "done"]
        print(f"{what} done -> {out}" + (f"; shards not done yet: {', '.join(left)}" if left else
                                          "; all shards done"), file=sys.stderr)
        return 0
    print(f"done in {fmt_s(manifest.wall_s)}: {manifest.n_runs} networks, {manifest.n_diverged or 0} diverged "
          f"-> {out}",
          file=sys.stderr)
    if (out / "REPORT.md").is_file():
        print(f"report: {out / 'REPORT.md'}", file=sys.stderr)
    return 0


def resume_command(out: Path, shard: tuple[int, int]) -> str:
    """The command that continues this sweep: from the spec stored in its run directory, so the --set overrides
    it was started with hold too."""
    return f"python -m ibjax.sweep --resume {out}" + (f" --shard {shard[0]}/{shard[1]}" if shard[1] > 1 else "")


if __name__ == "__main__":
    sys.exit(main())
