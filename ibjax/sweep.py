"""CLI: python -m ibjax.sweep SPEC.yaml [--out DIR] [--set KEY=VALUE ...] [--resume] [--force]

Spec → run table → buckets → one compiled program per bucket → run directory (DESIGN.md).
Each finished bucket's tables are written at once (part files); a running bucket is checkpointed after its
chunks (ibjax.checkpoints). SIGTERM / SIGINT: the current chunk finishes, the bucket is checkpointed, the
manifest says `interrupted`, exit code 3; `--resume` continues from there (a second signal abandons the chunk).
Exit codes: 0 done (or nothing to do); 2 bad input (spec, overrides, files, a run directory that does not
match); 3 interrupted, resumable; 1 an unexpected failure (finished buckets are on disk).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from ibjax.checkpoints import BucketCheckpoints
from ibjax.engine import Interrupted, run_program
from ibjax.plan import expand_grid, make_buckets, mi_epochs, shard_runs
from ibjax.plots import infoplanes
from ibjax.programs import Programs, bucket_consts, build_estimators, size_buckets
from ibjax.sizing import SizingError
from ibjax.spec import SpecError, SweepSpec, load_spec, to_yaml
from ibjax.store import (
    TABLES,
    atomic_write_bytes,
    environment,
    read_manifest,
    read_table,
    shard_tag,
    write_json,
    write_table,
)
from ibjax.tables import bucket_tables
from ibjax.tasks import Task, load_task


def _fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """One line per chunk: bucket, epochs done, networks, throughput and ETA over the whole sweep."""

    def __init__(self, total_net_epochs: int, stream=sys.stderr, enabled: bool = True):
        self.total, self.done_before, self.stream, self.enabled = total_net_epochs, 0, stream, enabled
        self.t0 = time.perf_counter()

    def bucket(self, label: str, n_models: int):
        self.label, self.n_models = label, n_models

    def __call__(self, done: int, n_epochs: int, _elapsed: float):
        if not self.enabled:
            return
        done_all = self.done_before + done * self.n_models
        elapsed = time.perf_counter() - self.t0
        rate = done_all / max(elapsed, 1e-9)
        eta = (self.total - done_all) / max(rate, 1e-9)
        print(f"[{self.label}] epoch {done}/{n_epochs} ({100 * done_all / self.total:.0f}% of sweep) | "
              f"{self.n_models} nets | {rate:,.0f} net-epochs/s | elapsed {_fmt_s(elapsed)} | ETA {_fmt_s(eta)}",
              file=self.stream, flush=True)

    def finish_bucket(self, n_epochs: int):
        self.done_before += n_epochs * self.n_models


class RunDirError(ValueError):
    """The run directory does not fit the request (changed spec, unfinished sweep without --resume)."""


def _flat(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def spec_differences(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ, as 'key: old -> new'."""
    a, b = _flat(old), _flat(new)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


class StopFlag:
    """SIGTERM/SIGINT set the flag (the sweep stops after the current chunk); a second signal abandons it."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame):
        if self.requested:
            raise KeyboardInterrupt  # second signal: abandon the chunk (the last checkpoint stays)
        self.requested = True
        print(f"\nibjax: {signal.Signals(signum).name} received: stopping after this chunk "
              f"(again to abandon it)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    def __call__(self) -> bool:
        return self.requested


def _clear_outputs(out: Path) -> None:
    shutil.rmtree(out / "shards", ignore_errors=True)
    for name in TABLES:
        (out / f"{name}.parquet").unlink(missing_ok=True)
        shutil.rmtree(out / name, ignore_errors=True)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    (out / "manifest.json").unlink(missing_ok=True)


def _check_run_dir(spec: SweepSpec, out: Path, manifest_path: Path, resume: bool, force: bool,
                   sharded: bool) -> dict | None:
    """The existing manifest if this sweep may continue in `out`; None to start fresh; raises otherwise."""
    import json

    import yaml

    other = (out / "manifest.json").is_file() if sharded else any((out / "shards").glob("shard-*.json"))
    if other and not force:
        raise RunDirError(f"{out} holds a {'un' if sharded else ''}sharded sweep: run it the same way "
                          f"({'without' if sharded else 'with'} --shard), or --force to discard it.")
    if not force and (out / "spec.yaml").is_file():
        old = yaml.safe_load((out / "spec.yaml").read_text()) or {}
        diff = spec_differences(old, yaml.safe_load(to_yaml(spec)))
        if diff:
            raise RunDirError(f"{out} holds a sweep of a different spec; differing keys: {'; '.join(diff)}. "
                              f"Use another --out, or --force to discard it and start over.")
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    if force:
        if sharded:  # only this shard's own files: the other shards may be running
            manifest_path.unlink()
            shutil.rmtree(out / "checkpoints" / manifest_path.stem, ignore_errors=True)
            for name in TABLES:
                for f in (out / name).glob(f"{manifest_path.stem}-*.parquet"):
                    f.unlink()
        else:
            _clear_outputs(out)
        return None
    if manifest.get("status") == "done":
        return manifest
    if not resume:
        raise RunDirError(f"{out} holds an unfinished sweep (status {manifest.get('status')!r}): add --resume "
                          f"to continue it, or --force to discard it and start over.")
    return manifest


def run_sweep(spec: SweepSpec, out: Path, *, progress: bool = True, source: str = "", report: bool = True,
              resume: bool = False, force: bool = False, shard: tuple[int, int] = (0, 1)) -> dict:
    """Train every run of the spec (or of shard I of N) and write the run directory. Returns the manifest.

    An existing run directory of the same spec: done -> nothing to do (manifest["nothing_to_do"]); unfinished
    -> continued with resume=True (finished buckets skipped, the running one from its checkpoint).
    A shard (N > 1) writes shards/shard-I-of-N.json and its own part files (info/shard-I-of-N-bucket-B.parquet);
    readers merge them, and the report lists shards that are missing or unfinished."""
    index, count = shard
    sharded = count > 1
    tag = shard_tag(index, count) if sharded else ""
    manifest_path = out / "shards" / f"{tag}.json" if sharded else out / "manifest.json"
    previous = _check_run_dir(spec, out, manifest_path, resume, force, sharded)
    if previous is not None and previous.get("status") == "done":
        return {**previous, "nothing_to_do": True}
    out.mkdir(parents=True, exist_ok=True)
    spec_text = to_yaml(spec)
    if not (out / "spec.yaml").is_file() or (out / "spec.yaml").read_text() != spec_text:
        atomic_write_bytes(out / "spec.yaml", spec_text.encode())
    runs = expand_grid(spec)
    if sharded:
        runs = shard_runs(runs, index, count)
    t_start = time.perf_counter()  # wall_s counts sizing's compiles too (they are the buckets' own)
    task: Task = load_task(spec.data)
    data = task.device_data()
    programs = Programs(spec, task, data)
    buckets, sizing = _plan_programs(spec, runs, programs, previous, progress)
    device_bytes = sizing.pop("device_bytes", [None] * len(buckets))
    estimators = build_estimators(spec, task.n_classes)
    s = spec.mi.schedule
    schedule = mi_epochs(spec.train.epochs, log=s.log, every=s.every)
    n_epochs = spec.train.epochs
    manifest = {
        "name": spec.name, "source": source, "status": "running", "environment": environment(),
        "n_runs": len(runs), "mi_epochs": schedule.tolist(), "n_train": len(task.train_idx),
        "n_test": len(task.test_idx), "n_mi_samples": len(task.y),
        "estimators": [{"kind": type(e).__name__, **asdict(e)} for e in estimators],
        "shards": [{"shard": f"{index}/{count}", "status": "running"}], "shard_index": index,
        "shard_count": count,
        "buckets": [{"index": b.index, "n_runs": b.size, "hidden_pad": list(b.hidden_pad),
                     "activations": list(b.activations), "optimizer": b.optimizer,
                     "batch_size": b.batch_size, "quantize_bits": b.quantize_bits, "noise_std": b.noise_std,
                     "device_bytes": nbytes, "status": "pending"}
                    for b, nbytes in zip(buckets, device_bytes)],
        "programs": sizing,
    }
    if previous is not None:  # keep what the finished buckets recorded
        if [b["n_runs"] for b in previous["buckets"]] != [b.size for b in buckets]:
            raise RunDirError(f"{manifest_path} records buckets of {[b['n_runs'] for b in previous['buckets']]} "
                              f"networks, but this spec makes {[b.size for b in buckets]}: it cannot be resumed; "
                              f"use --force to start over")
        manifest["buckets"] = previous["buckets"]
        manifest["resumed"] = previous.get("resumed", 0) + 1
    write_json(manifest_path, manifest)
    todo = [b for b in buckets if manifest["buckets"][b.index]["status"] != "done"]
    bar = Progress(sum(b.size for b in todo) * n_epochs, enabled=progress)
    with StopFlag() as stop:
        try:
            for b in todo:
                _run_bucket(spec, b, buckets, task, data, programs, schedule, manifest, manifest_path, tag, out,
                            bar, stop)
        except (Interrupted, KeyboardInterrupt) as e:
            manifest["status"] = manifest["shards"][0]["status"] = "interrupted"
            write_json(manifest_path, manifest)
            raise Interrupted(str(e) or "interrupted") from None
        except BaseException:
            manifest["status"] = manifest["shards"][0]["status"] = "failed"
            write_json(manifest_path, manifest)
            raise
    if sharded:
        manifest["status"] = manifest["shards"][0]["status"] = "done"
        manifest["wall_s"] = round(time.perf_counter() - t_start, 2)
        write_json(manifest_path, manifest)
        shutil.rmtree(out / "checkpoints" / tag, ignore_errors=True)
        if report and read_manifest(out)["status"] == "done":  # the last shard to finish writes the report
            _report(out, spec.output.plots)
        return manifest
    tables = {name: read_table(out, name) for name in TABLES}
    _consolidate(out, tables)
    manifest["wall_s"] = round(time.perf_counter() - t_start, 2)
    manifest["n_diverged"] = int(tables["runs"].diverged.sum())
    if spec.output.plots:
        manifest["figures"] = [str(p.relative_to(out)) for p in
                               infoplanes(out, tables["info"], tables["runs"], estimators[0].name)]
    manifest["status"] = manifest["shards"][0]["status"] = "done"
    write_json(out / "manifest.json", manifest)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    if report:
        _report(out, spec.output.plots)
    return manifest


def _report(out: Path, figures: bool) -> None:
    # The tables are already safe on disk; a failing report must not turn a finished sweep into a failure.
    try:
        from ibjax.report import report as write_report

        write_report(out, figures=figures)
    except Exception as e:
        print(f"warning: the report failed ({type(e).__name__}: {e}); the sweep's tables are complete; "
              f"retry with: python -m ibjax.report {out}", file=sys.stderr)


def _plan_programs(spec: SweepSpec, runs: list, programs: Programs, previous: dict | None,
                   progress: bool) -> tuple[list, dict]:
    """The buckets: of at most train.max_models_per_program networks when the spec sets it; as an unfinished
    sweep recorded them (a resume must see the same buckets, on whatever device it runs); otherwise sized to
    this device's memory (ibjax.programs.size_buckets). Also the record of that choice, for the manifest."""
    limit = spec.train.max_models_per_program
    if limit is not None:
        return make_buckets(runs, limit), {"mode": "max_models_per_program", "max_models_per_program": limit}
    if previous is not None:
        recorded = previous.get("programs")
        if recorded and recorded.get("mode") == "auto":
            return make_buckets(runs, parts=recorded["parts"]), dict(recorded)
        return make_buckets(runs), {"mode": "one per group"}  # a run directory from before sizing existed
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda _msg: None)
    return size_buckets(runs, programs, log=log)


def _run_bucket(spec, b, buckets, task, data, programs: Programs, schedule, manifest, manifest_path: Path,
                tag: str, out: Path, bar: Progress, stop) -> None:
    n_epochs = spec.train.epochs
    bar.bucket(f"bucket {b.index + 1}/{len(buckets)}", b.size)
    manifest["buckets"][b.index]["status"] = "running"
    write_json(manifest_path, manifest)
    part = f"{tag}-bucket-{b.index:04d}" if tag else f"bucket-{b.index:04d}"
    ckpt = BucketCheckpoints(out / "checkpoints" / tag / f"bucket-{b.index:04d}", spec.output.checkpoint_minutes)
    result = run_program(
        programs.engine(b), [r.seed for r in b.runs], bucket_consts(b, task), [r.learning_rate for r in b.runs],
        [r.momentum or 0.0 for r in b.runs], data, schedule, n_epochs, progress=bar,
        checkpoints=ckpt, stop_requested=stop)
    bar.finish_bucket(n_epochs)
    tables = bucket_tables(spec, b, result, [r.run_id(spec) for r in b.runs])
    for name in TABLES:
        write_table(out / name / f"{part}.parquet", tables[name])
    manifest["buckets"][b.index].update(
        status="done", compile_s=round(result.compile_s, 2), wall_s=round(result.train_s, 2),
        net_epochs_per_s=round(b.size * n_epochs / result.train_s, 1), checkpoint_s=result.checkpoint_s,
        resumed_at_chunk=result.resumed_at_chunk)
    write_json(manifest_path, manifest)
    ckpt.remove()


def _consolidate(out: Path, tables: dict) -> None:
    """One file per table once every bucket is done (the single file is written before the parts go)."""
    for name, df in tables.items():
        write_table(out / f"{name}.parquet", df)
        shutil.rmtree(out / name, ignore_errors=True)


def parse_shard(text: str | None, env=None) -> tuple[int, int]:
    """'I/N' -> (I, N); None -> the SLURM array task (task id minus the array's smallest id, of the task count)
    when running in a SLURM array job, else (0, 1)."""
    import os

    env = os.environ if env is None else env
    if text is None:
        if "SLURM_ARRAY_TASK_COUNT" not in env:
            return 0, 1
        first = int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        text = f"{int(env['SLURM_ARRAY_TASK_ID']) - first}/{env['SLURM_ARRAY_TASK_COUNT']}"
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"expected I/N with integers, e.g. 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"{text}: need 0 <= I < N")
    return i, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ibjax.sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("spec", help="sweep YAML file (see sweeps/ and the README's YAML reference)")
    ap.add_argument("--out", type=Path, help="run directory (default runs/<name>)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a spec key, e.g. --set train.epochs=200 (repeatable)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    ap.add_argument("--no-report", action="store_true", help="skip python -m ibjax.report at the end")
    ap.add_argument("--resume", action="store_true", help="continue an interrupted sweep in --out")
    ap.add_argument("--force", action="store_true", help="discard what --out holds and start over")
    ap.add_argument("--shard", metavar="I/N", help="run only the I-th (0-based) of N deterministic slices of the "
                    "run table; default under a SLURM array job: SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT")
    args = ap.parse_args(argv)
    try:
        shard = parse_shard(args.shard)
    except ValueError as e:
        print(f"error: --shard: {e}", file=sys.stderr)
        return 2
    try:
        spec = load_spec(args.spec, args.overrides)
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / spec.name
    n_runs = len(expand_grid(spec))
    if not args.quiet:
        print(f"ibjax: {n_runs} networks x {spec.train.epochs} epochs -> {out}", file=sys.stderr)
    try:
        manifest = run_sweep(spec, out, progress=not args.quiet, source=str(args.spec),
                             report=not args.no_report, resume=args.resume, force=args.force, shard=shard)
    except Interrupted as e:
        print(f"interrupted ({e}); finished buckets and a checkpoint are in {out}; continue with:\n"
              f"  python -m ibjax.sweep {args.spec} --out {out} --resume", file=sys.stderr)
        return 3
    except (FileNotFoundError, KeyError, RunDirError, SizingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    what = "sweep" if shard[1] == 1 else f"shard {shard[0]}/{shard[1]}"
    if manifest.get("nothing_to_do"):
        print(f"{out} already holds this finished {what}: nothing to do (--force to run it again)", file=sys.stderr)
        return 0
    if shard[1] > 1:
        left = [s["shard"] for s in read_manifest(out)["shards"] if s["status"] != "done"]
        print(f"{what} done -> {out}" + (f"; shards not done yet: {', '.join(left)}" if left else
                                          "; all shards done"), file=sys.stderr)
        return 0
    n_div = manifest.get("n_diverged", 0)
    print(f"done in {_fmt_s(manifest['wall_s'])}: {n_runs} networks, {n_div} diverged -> {out}", file=sys.stderr)
    if (out / "REPORT.md").is_file():
        print(f"report: {out / 'REPORT.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
