"""`python -m ibjax.slurm SPEC --out DIR --shards N [...] [--submit]`: a SLURM array job for a sharded sweep.

Writes DIR/slurm/sweep.sbatch: one array task per shard (`--shard $SLURM_ARRAY_TASK_ID/N`), always with
`--resume`, so a requeued task continues from its checkpoint; one log per task (DIR/slurm/logs/<job>_<task>.out).
SLURM sends SIGTERM 120 s before the time limit (`--signal=B:TERM@120`); the script forwards it to the sweep,
which checkpoints after its current chunk and exits with code 3, and the script then requeues its own task.
Preempted tasks are requeued by SLURM itself (`--requeue`). With --submit the script is passed to `sbatch`.
After the job: `python -m ibjax.report DIR` (the last shard to finish also writes it).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from ibjax.spec import SpecError, load_spec

INTERRUPTED = 3  # ibjax.sweep's exit code for "interrupted, resumable"


def sbatch_script(spec: Path, out: Path, shards: int, *, name: str, partition: str | None = None,
                  gpus_per_task: int | None = None, time: str | None = None, cpus_per_task: int | None = None,
                  mem: str | None = None, overrides: tuple[str, ...] = (), python: str = sys.executable,
                  workdir: Path | None = None) -> str:
    options = [f"--job-name=ibjax-{name}", f"--array=0-{shards - 1}", f"--output={out}/slurm/logs/%A_%a.out",
               "--open-mode=append", "--requeue", "--signal=B:TERM@120"]
    if partition:
        options.append(f"--partition={partition}")
    if gpus_per_task:
        options.append(f"--gpus-per-task={gpus_per_task}")
    if time:
        options.append(f"--time={time}")
    if cpus_per_task:
        options.append(f"--cpus-per-task={cpus_per_task}")
    if mem:
        options.append(f"--mem={mem}")
    sets = "".join(f" --set {shlex.quote(o)}" for o in overrides)
    cmd = (f"{shlex.quote(python)} -m ibjax.sweep {shlex.quote(str(spec))} --out {shlex.quote(str(out))} "
           f"--shard \"$SLURM_ARRAY_TASK_ID/{shards}\" --resume --quiet{sets}")
    header = "\n".join(f"#SBATCH {o}" for o in options)
    return f"""#!/bin/bash
{header}
# Written by python -m ibjax.slurm: shard $SLURM_ARRAY_TASK_ID of {shards} of {spec}.
set -u
cd {shlex.quote(str(workdir or Path.cwd()))}
echo "ibjax: task $SLURM_ARRAY_JOB_ID/$SLURM_ARRAY_TASK_ID on $(hostname), restart ${{SLURM_RESTART_COUNT:-0}}"
# The sweep runs in the background so that this shell can forward SLURM's SIGTERM to it at once.
{cmd} &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
wait "$pid"; rc=$?
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; rc=$?; done
if [ "$rc" -eq {INTERRUPTED} ]; then
  echo "ibjax: interrupted and checkpointed; requeueing this task"
  scontrol requeue "${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
fi
exit "$rc"
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ibjax.slurm", description=__doc__.split("\n\n")[0])
    ap.add_argument("spec", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="run directory shared by all tasks")
    ap.add_argument("--shards", type=int, required=True, help="array tasks (slices of the run table)")
    ap.add_argument("--partition")
    ap.add_argument("--gpus-per-task", type=int)
    ap.add_argument("--time", help="time limit per task, e.g. 04:00:00")
    ap.add_argument("--cpus-per-task", type=int)
    ap.add_argument("--mem", help="memory per task, e.g. 16G")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--submit", action="store_true", help="submit the script with sbatch")
    args = ap.parse_args(argv)
    if args.shards < 1:
        print("error: --shards must be at least 1", file=sys.stderr)
        return 2
    try:
        spec = load_spec(args.spec, args.overrides)  # a bad spec fails here, not in N array tasks
    except (SpecError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out.absolute()
    script = sbatch_script(args.spec.absolute(), out, args.shards, name=spec.name, partition=args.partition,
                           gpus_per_task=args.gpus_per_task, time=args.time, cpus_per_task=args.cpus_per_task,
                           mem=args.mem, overrides=tuple(args.overrides))
    path = out / "slurm" / "sweep.sbatch"
    (out / "slurm" / "logs").mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    path.chmod(0o755)
    print(f"wrote {path} ({args.shards} array tasks)", file=sys.stderr)
    if not args.submit:
        print(f"submit with: sbatch {path}", file=sys.stderr)
        return 0
    if shutil.which("sbatch") is None:
        print("error: --submit: sbatch not found on PATH (is this a SLURM login node?)", file=sys.stderr)
        return 2
    proc = subprocess.run(["sbatch", "--parsable", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"error: sbatch failed: {proc.stderr.strip()}", file=sys.stderr)
        return 2
    job = proc.stdout.strip().split(";")[0]
    print(job)
    print(f"submitted job {job}; logs in {out}/slurm/logs; when it is done: python -m ibjax.report {out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
