"""One sweep, start to end: spec → run table → buckets → one compiled program per bucket → run directory.

Each finished bucket's tables are written at once (part files); a running bucket is checkpointed after its
chunks (ibjax.sweep.checkpoints). SIGTERM / SIGINT: the current chunk finishes, the bucket is checkpointed,
the manifest says `interrupted`, and `Interrupted` is raised; `resume=True` continues from there.
"""

from __future__ import annotations

import platform
import shutil
import sys
import time
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

import jax
import numpy as np
import yaml

from ibjax.data.task import Task, load_task
from ibjax.mi import estimator_limits
from ibjax.rundir.contract import TABLES, part_name, shard_tag
from ibjax.rundir.layout import RunDirError, check_fits
from ibjax.rundir.manifest import BucketRecord, DatasetRecord, Manifest, ModelRecord, ShardRecord
from ibjax.rundir.store import atomic_write_bytes, read_manifest, read_table, write_manifest, write_table
from ibjax.spec import SweepSpec, resolved_defaults, to_yaml
from ibjax.sweep.checkpoints import BucketCheckpoints
from ibjax.sweep.console import Progress, StopFlag, fmt_s
from ibjax.sweep.inputs import with_encoded_inputs
from ibjax.sweep.plan import expand_grid, make_buckets, mi_epochs, run_ids, shard_runs
from ibjax.sweep.programs import (
    Programs,
    bucket_consts,
    build_estimators,
    check_batch_sizes,
    layer_names,
    size_buckets,
    train_size,
)
from ibjax.sweep.sizing import check_results_fit, fmt_bytes
from ibjax.sweep.tables import bucket_tables
from ibjax.train.loop import Interrupted, run_program
from ibjax.train.program import Networks


def run_sweep(spec: SweepSpec, out: Path, *, progress: bool = True, source: str = "", report: bool = True,
              resume: bool = False, force: bool = False, shard: tuple[int, int] = (0, 1),
              dry_run: bool = False) -> Manifest | dict:
    """Train every run of the spec (or of shard I of N) and write the run directory. Returns the manifest (a
    dry run: its estimate, a dict with "dry_run": True).

    64-bit types are on for the sweep's duration (exact symbol packing and entropies need them), whatever the
    process's own setting: a notebook gets the command line's numbers without `ibjax.configure_process()`
    (which it needs only for one XLA device per core)."""
    with jax.enable_x64(True):
        return _run_sweep(spec, out, progress=progress, source=source, report=report, resume=resume,
                          force=force, shard=shard, dry_run=dry_run)


def _run_sweep(spec: SweepSpec, out: Path, *, progress: bool, source: str, report: bool, resume: bool,
               force: bool, shard: tuple[int, int], dry_run: bool) -> Manifest | dict:
    """run_sweep's body (see there).

    An existing run directory of the same spec: done -> nothing to do (manifest.nothing_to_do); unfinished
    -> continued with resume=True (finished buckets skipped, the running one from its checkpoint).
    A shard (N > 1) writes shards/shard-I-of-N.json and its own part files (info/shard-I-of-N-bucket-B.parquet);
    readers merge them, and the report lists shards that are missing or unfinished."""
    index, count = shard
    sharded = count > 1
    tag = shard_tag(index, count) if sharded else ""
    manifest_path = out / "shards" / f"{tag}.json" if sharded else out / "manifest.json"
    t_start = time.perf_counter()  # wall_s counts planning and sizing's compiles too (the buckets' own)
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda _msg: None)
    runs, task, schedule, plan = _plan(spec, shard, t_start)
    if dry_run:
        say(plan)
        return dry_run_estimate(spec, runs, task, schedule, say)
    spec_text = to_yaml(spec)
    previous = check_fits(spec_text, out, manifest_path, resume, force, sharded,
                          yaml.safe_dump(resolved_defaults(), sort_keys=False))
    if previous is not None and previous.status == "done":
        return previous.model_copy(update={"nothing_to_do": True})
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "spec.yaml").is_file() or (out / "spec.yaml").read_text() != spec_text:
        atomic_write_bytes(out / "spec.yaml", spec_text.encode())
    say(plan)
    # Autoencoders of the inputs (knn `inputs: autoencoder`) before any program: trained once, reused on resume.
    data, autoencoders = with_encoded_inputs(spec, task, task.device_data(), out, say)
    _check_autoencoders(previous, autoencoders, manifest_path)
    write_table(out / "mi_sample.parquet", task.mi_sample_table())  # which rows every network's MI is measured on
    programs = Programs(spec, task, data)
    buckets, sizing = plan_programs(spec, runs, programs, previous, progress)
    say(f"[plan] {len(buckets)} program(s) of {min(b.size for b in buckets):,}-{max(b.size for b in buckets):,} "
        f"networks, sized in {time.perf_counter() - t_start:.1f} s from the start")
    estimators = build_estimators(spec, task.n_classes)
    manifest = _new_manifest(spec, source, shard, runs, task, data, schedule, estimators, buckets, programs, sizing)
    manifest.autoencoders = autoencoders
    if previous is not None:  # keep what the finished buckets recorded
        if [b.n_runs for b in previous.buckets] != [b.size for b in buckets]:
            raise RunDirError(f"{manifest_path} records buckets of {[b.n_runs for b in previous.buckets]} "
                              f"networks, but this spec makes {[b.size for b in buckets]}: it cannot be resumed; "
                              f"use --force to start over")
        manifest.buckets = previous.buckets
        manifest.resumed = previous.resumed + 1
    write_manifest(manifest_path, manifest)
    _train_buckets(spec, buckets, task, data, programs, schedule, manifest, manifest_path, tag, out, progress)
    if sharded:
        manifest.set_status("done")
        manifest.wall_s = round(time.perf_counter() - t_start, 2)
        write_manifest(manifest_path, manifest)
        shutil.rmtree(out / "checkpoints" / tag, ignore_errors=True)
        if report and read_manifest(out).status == "done":  # the last shard to finish writes the report
            _report(out, spec.output.plots, progress)
        return manifest
    _finish(spec, out, manifest, estimators[0].name, t_start)
    if report:
        _report(out, spec.output.plots, progress)
    return manifest


def _plan(spec: SweepSpec, shard: tuple[int, int], t_start: float) -> tuple[list, Task, np.ndarray, str]:
    """The runs (of this shard), the task and the MI schedule, and the plan line: everything that can refuse the
    spec or its data, run before the run directory is touched (a --force must not discard a finished sweep for a
    spec that cannot run)."""
    runs = expand_grid(spec)
    if shard[1] > 1:
        runs = shard_runs(runs, *shard)
    task: Task = load_task(spec.data)
    check_batch_sizes(spec, task)
    s = spec.mi.schedule
    schedule = mi_epochs(spec.train.epochs, log=s.log, every=s.every)
    n_epochs = spec.train.epochs
    # The model must fit the task (a conv net needs images; a user module must import and give logits): checked
    # here, once per structure, before anything is compiled or written.
    n_layers = {}
    for r in runs:
        shape = r.bucket_key()
        if shape not in n_layers:
            n_layers[shape] = len(layer_names(spec, task, r))
    need, avail, memory_source = check_results_fit([n_layers[r.bucket_key()] for r in runs], len(schedule),
                                                   len(spec.mi.estimators) * max(1, len(task.mi_parts)),
                                                   f"sweep {spec.name!r}")
    plan = (f"[plan] {len(runs):,} networks x {n_epochs:,} epochs ({len(runs) * n_epochs:.3g} net-epochs), MI at "
            f"{len(schedule)} epochs; results ~{fmt_bytes(need)} of host memory ({fmt_bytes(avail)} available, "
            f"{memory_source}); planned in {time.perf_counter() - t_start:.1f} s")
    return runs, task, schedule, plan


def _new_manifest(spec: SweepSpec, source: str, shard: tuple[int, int], runs: list, task: Task, data,
                  schedule: np.ndarray, estimators: tuple, buckets: list, programs: Programs, sizing: dict
                  ) -> Manifest:
    """manifest.json (or a shard's) of a starting sweep: versions, the data, estimators and their limits, and
    every bucket pending."""
    index, count = shard
    device_bytes = sizing.pop("device_bytes", [None] * len(buckets))
    # The rows one measurement sees: with mi_sample.split both, each of the two samples (their ceilings).
    n_mi = task.mi_parts[0] if task.mi_parts else len(task.mi_rows)
    dataset = DatasetRecord(
        description=task.description, n_rows=len(task.y), n_features=int(task.x.shape[1]),
        image_shape=list(task.image_shape), n_classes=task.n_classes,
        stored_as="uint8" if data.x.dtype == "uint8" else "float32", preprocess=spec.data.resolved_preprocess,
        irrelevant_inputs=task.n_irrelevant, n_relevant_inputs=int(task.x.shape[1]) - task.n_irrelevant,
        irrelevant_design=list(task.irrelevant_design) if task.irrelevant_design else None,
        mi_sample={**spec.data.mi_sample.model_dump(), "rows_file": "mi_sample.parquet"})
    return Manifest(
        name=spec.name, source=source, status="running", environment=environment(), n_runs=len(runs),
        mi_epochs=schedule.tolist(), n_train=len(task.train_idx), n_test=len(task.test_idx),
        n_mi_samples=n_mi, dataset=dataset,
        estimators=[{"kind": type(e).__name__, **asdict(e), **estimator_limits(e, n_mi)._asdict()}
                    for e in estimators],
        model=ModelRecord(kind=spec.model.kind, module=spec.model.module if spec.model.kind == "flax" else None),
        shards=[ShardRecord(shard=f"{index}/{count}", status="running")], shard_index=index, shard_count=count,
        buckets=[BucketRecord(index=b.index, n_runs=b.size, hidden_pad=list(b.hidden_pad),
                              activations=list(b.activations), optimizer=b.optimizer, batch_size=b.batch_size,
                              quantize_bits=b.quantize_bits, noise_std=b.noise_std,
                              channels=list(b.channels) if b.channels is not None else None, dropout=b.dropout,
                              layers=list(programs.engine(b).family.layer_names), device_bytes=nbytes)
                 for b, nbytes in zip(buckets, device_bytes)],
        programs=sizing)


def _train_buckets(spec: SweepSpec, buckets: list, task: Task, data, programs: Programs, schedule, manifest: dict,
                   manifest_path: Path, tag: str, out: Path, progress: bool) -> None:
    """Train the buckets not done yet, one after another; a stop or a failure is recorded in the manifest."""
    todo = [b for b in buckets if manifest.buckets[b.index].status != "done"]
    bar = Progress(sum(b.size for b in todo) * spec.train.epochs, enabled=progress)
    with StopFlag() as stop, closing(bar):
        try:
            for b in todo:
                _run_bucket(spec, b, buckets, task, data, programs, schedule, manifest, manifest_path, tag, out,
                            bar, stop)
        except (Interrupted, KeyboardInterrupt) as e:
            manifest.set_status("interrupted")
            write_manifest(manifest_path, manifest)
            raise Interrupted(str(e) or "interrupted") from None
        except BaseException:
            manifest.set_status("failed")
            write_manifest(manifest_path, manifest)
            raise


def _check_autoencoders(previous: Manifest | None, now: dict[str, str], manifest_path: Path) -> None:
    """A resumed sweep whose finished buckets measured with other autoencoders (the saved one deleted or damaged,
    then trained again to other weights) cannot be continued: its MI would mix two encodings of X."""
    if previous is None or not any(b.status == "done" for b in previous.buckets):
        return
    for name, fingerprint in previous.autoencoders.items():
        if now.get(name) != fingerprint:
            raise RunDirError(f"{manifest_path}: its finished buckets measured {name} with the autoencoder of weights "
                              f"{fingerprint}, but this run has {now.get(name, 'none')} (autoencoders/{name}.npz was "
                              f"removed or trained again): it cannot be resumed; use --force to start over")


def _finish(spec: SweepSpec, out: Path, manifest: Manifest, first_estimator: str, t_start: float) -> None:
    """An unsharded sweep's end: its part files merged into single tables, the information planes drawn, the
    manifest marked done and the checkpoints removed."""
    tables = {name: read_table(out, name) for name in TABLES}
    _consolidate(out, tables)
    manifest.wall_s = round(time.perf_counter() - t_start, 2)
    manifest.n_diverged = int(tables["runs"].diverged.sum())
    if spec.output.plots:
        # Imported here: matplotlib and the report's statistics (~0.8 s) only for a sweep that draws.
        from ibjax.report.figures import infoplanes

        info = tables["info"]
        if "split" in info.columns:  # mi_sample.split both: the planes of the held-out sample (REPORT.md has both)
            info = info[info.split == "test"]
        manifest.figures = [str(p.relative_to(out)) for p in
                            infoplanes(out, info, tables["runs"], first_estimator)]
    manifest.set_status("done")
    write_manifest(out / "manifest.json", manifest)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)


def dry_run_estimate(spec: SweepSpec, runs: list, task: Task, schedule, say) -> dict:
    """Plan and size the programs as the sweep would, then run each program's first chunk once to time it; write
    nothing. The estimate scales that chunk to the bucket's chunks: an upper estimate, since the first chunk
    logs MI most densely (the default schedule is log-spaced)."""
    t0 = time.perf_counter()
    n_epochs = spec.train.epochs
    data, _ = with_encoded_inputs(spec, task, task.device_data(), None)  # no autoencoder trained: zeros stand in
    programs = Programs(spec, task, data)
    buckets, sizing = plan_programs(spec, runs, programs, None, True)
    device_bytes = sizing.get("device_bytes", [None] * len(buckets))
    rows = []
    for b, nbytes in zip(buckets, device_bytes):
        eng = programs.engine(b)
        chunk, n_chunks = eng.prog.chunk, eng.prog.n_chunks(n_epochs)
        # Sizing compiled the program (cached): its compile time, and the executable the first chunk runs.
        mesh, args = eng.abstract_chunk_args(bucket_consts(b, task), programs.data_of(b), n_chunks * chunk)
        compile_s = eng.compiled_chunk(mesh, *args).compile_s
        first = {}
        try:  # stop after the first chunk: its time, measured after the compile
            run_program(*_program_inputs(b, task, programs), schedule, n_epochs,
                        progress=lambda done, total, s: first.setdefault("s", s), stop_requested=lambda: True)
        except Interrupted:
            pass
        est = first["s"] * n_chunks
        rows.append({"bucket": b.index, "n_runs": b.size, "device_bytes": nbytes, "chunk_epochs": chunk,
                     "first_chunk_s": round(first["s"], 3), "compile_s": round(compile_s, 2),
                     "estimate_s": round(est, 1)})
        mem = f"{fmt_bytes(nbytes)} per device" if nbytes else "memory not reported by this backend"
        say(f"[dry run] program {b.index + 1}/{len(buckets)}: {b.size:,} networks, {mem}; first chunk of "
            f"{chunk} epochs {first['s']:.2f} s -> ~{fmt_s(est)} for {n_epochs:,} epochs (compile {compile_s:.1f} s)")
    total = sum(r["estimate_s"] for r in rows) + sum(r["compile_s"] for r in rows)
    say(f"[dry run] estimate: ~{fmt_s(total)} for training and compiling (an upper estimate: the first chunk "
        f"logs MI most densely), plus the report; planned and calibrated in {fmt_s(time.perf_counter() - t0)}; "
        f"nothing written")
    return {"dry_run": True, "n_runs": len(runs), "programs": rows, "estimate_s": round(total, 1)}


def _report(out: Path, figures: bool, progress: bool = True) -> None:
    # The tables are already safe on disk; a failing report must not turn a finished sweep into a failure.
    try:
        from ibjax.report.write import write_report

        write_report(out, figures=figures, progress=progress)
    except Exception as e:
        print(f"warning: the report failed ({type(e).__name__}: {e}); the sweep's tables are complete; "
              f"retry with: python -m ibjax.report {out}", file=sys.stderr)


def plan_programs(spec: SweepSpec, runs: list, programs: Programs, previous: Manifest | None,
                   progress: bool) -> tuple[list, dict]:
    """The buckets: of at most train.max_models_per_program networks when the spec sets it; as an unfinished
    sweep recorded them (a resume must see the same buckets, on whatever device it runs); otherwise sized to
    this device's memory (ibjax.sweep.programs.size_buckets). Also the record of that choice, for the manifest."""
    limit = spec.train.max_models_per_program
    if limit is not None:
        return make_buckets(runs, limit), {"mode": "max_models_per_program", "max_models_per_program": limit}
    if previous is not None:
        recorded = previous.programs
        if recorded and recorded.get("mode") == "auto":
            return make_buckets(runs, parts=recorded["parts"]), dict(recorded)
        return make_buckets(runs), {"mode": "one per group"}  # a run directory from before sizing existed
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda _msg: None)
    return size_buckets(runs, programs, log=log)


def _program_inputs(b, task: Task, programs: Programs) -> tuple:
    """run_program's first arguments for bucket b: engine, networks, constants, data."""
    networks = Networks.of([r.seed for r in b.runs], [r.learning_rate for r in b.runs],
                           [r.momentum or 0.0 for r in b.runs], [r.weight_decay or 0.0 for r in b.runs])
    return programs.engine(b), networks, bucket_consts(b, task), programs.data_of(b)


def _run_bucket(spec, b, buckets, task, data, programs: Programs, schedule, manifest, manifest_path: Path,
                tag: str, out: Path, bar: Progress, stop) -> None:
    n_epochs = spec.train.epochs
    bar.bucket(f"bucket {b.index + 1}/{len(buckets)}", b.size)
    manifest.buckets[b.index].status = "running"
    write_manifest(manifest_path, manifest)
    part = part_name(b.index, tag)
    ckpt = BucketCheckpoints(out / "checkpoints" / tag / part_name(b.index), spec.output.checkpoint_minutes)
    result = run_program(*_program_inputs(b, task, programs), schedule, n_epochs, progress=bar,
                         checkpoints=ckpt, stop_requested=stop, started=bar.started)
    bar.finish_bucket(n_epochs)
    family = programs.engine(b).family
    sizes = {f: train_size(task, f) for f in {r.train_fraction for r in b.runs}}  # one split per fraction
    tables = bucket_tables(spec, b, result, run_ids(list(b.runs), spec), [sizes[r.train_fraction] for r in b.runs],
                           family.layer_names, family.grad_names)
    for name in TABLES:
        write_table(out / name / f"{part}.parquet", tables[name])
    manifest.buckets[b.index] = manifest.buckets[b.index].model_copy(update=dict(
        status="done", compile_s=round(result.compile_s, 2), wall_s=round(result.train_s, 2),
        net_epochs_per_s=round(b.size * n_epochs / result.train_s, 1), checkpoint_s=result.checkpoint_s,
        resumed_at_chunk=result.resumed_at_chunk))
    write_manifest(manifest_path, manifest)
    ckpt.remove()


def _consolidate(out: Path, tables: dict) -> None:
    """One file per table once every bucket is done (the single file is written before the parts go)."""
    for name, df in tables.items():
        write_table(out / f"{name}.parquet", df)
        shutil.rmtree(out / name, ignore_errors=True)


def environment() -> dict:
    """Versions and devices, for the manifest."""
    import jax
    import jaxlib

    from ibjax._version import __version__

    return {
        "ibjax": __version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "devices": [str(d) for d in jax.devices()],
    }
