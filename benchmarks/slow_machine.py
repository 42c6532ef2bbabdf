"""Run a command as it would run on a slower machine with the same number of cores, and say how much slower the
emulation really was, measured in the same run.

A laptop-class or heavily shared 2-core VM runs this project's work slower than the VMs most of its times are
measured on (an AVX2-only AMD EPYC VM ran the test suite 1.6x to 2.3x slower than an AVX-512 Xeon VM; BUILD_NOTES.md,
"Suite time"); the test suite's target is 10 minutes on such a machine. This script makes one from the machine at
hand: the command runs in a cgroup whose CPU bandwidth is `cores / slowdown` core-seconds per
second (a CFS quota over 100 ms periods), so its processes get the throughput of the same cores at 1/slowdown of
their speed; `--avx2` also limits XLA's code (`--xla_cpu_max_isa=AVX2`) and the native kernels
(`IBJAX_NATIVE_MARCH=x86-64-v3`) to what an AVX2-only CPU runs. What a quota does not slow: time spent waiting
(sleeps, a SLURM scheduler's cycle), so waits count as on the fast machine.

The baseline, in the same run: a fixed CPU-bound reference (two processes at once, as the suite's two workers,
each compiling the same set of small XLA programs with the compilation cache off) runs without the quota, then
inside it; the ratio of the two is the slowdown achieved, reported beside the command's time.

Needs a writable cgroup-v1 `cpu` controller (root; e.g. /sys/fs/cgroup/cpu). Elsewhere (cgroup v2 under systemd)
it stops with exit code 2; `systemd-run --scope -p CPUQuota=87% <command>` sets the same kind of quota there.

    sudo python benchmarks/slow_machine.py --slowdown 2.3 --avx2 -- python -m pytest -q -n 2 --dist loadfile

writes benchmarks/slow_machine.json (the committed one: the test suite on a 2-core Intel Xeon VM with AVX-512 at
1/2.3 of its speed, AVX2 only; BUILD_NOTES.md, "Suite time").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/slow_machine.py` from the root
from benchmarks.throughput import cpu_info  # noqa: E402

PERIOD_US = 100_000
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")

# The reference: one process compiling `--reference-programs` distinct small programs (a reduction chain over
# growing shapes): the suite's ~2 000 small programs and its chunk compiles are CPU-bound LLVM work like this.
# Cache off: every run compiles.
REFERENCE = """
import os, sys, time
os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
import jax, jax.numpy as jnp
t = time.perf_counter()
for n in range(1, int(sys.argv[1]) + 1):
    f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum(axis=0).cumsum() * jnp.log1p(jnp.abs(x[:, 0])))
    f.lower(jnp.ones((n, 7), jnp.float32)).compile()
print(time.perf_counter() - t)
"""


def fail(message: str):
    """Stop with exit code 2 and one line on stderr (nothing has been run yet, or the command already ran)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class Quota:
    """A cgroup-v1 cpu group with a CFS quota of `cores / slowdown` per period; a command from `inside` runs in
    it, and its children with it."""

    def __init__(self, cores: int, slowdown: float):
        if not (CGROUP_V1_CPU / "cpu.cfs_quota_us").exists():
            fail(f"no cgroup-v1 cpu controller at {CGROUP_V1_CPU} (this machine uses cgroup v2, or none is "
                 f"mounted); with systemd, run the command under `systemd-run --scope -p "
                 f"CPUQuota={100 * cores / slowdown:.0f}%` instead")
        self.path = CGROUP_V1_CPU / f"ibjax-slow-{os.getpid()}"
        try:
            self.path.mkdir()
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(round(cores * PERIOD_US / slowdown)))
        except OSError as e:
            self.remove()
            fail(f"cannot make a cpu cgroup at {self.path}: {e} (needs root)")

    def inside(self, command: list[str]) -> list[str]:
        # A shell moves itself into the group, then becomes the command (no preexec_fn: this process may have
        # threads, e.g. when a test calls main()).
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.path / "tasks"), *command]

    def throttled_s(self) -> float:
        for line in (self.path / "cpu.stat").read_text().splitlines():
            if line.startswith("throttled_time"):
                return int(line.split()[1]) / 1e9
        return float("nan")

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError:  # a process left behind still holds it; the folder is empty otherwise
            pass


def reference_s(programs: int, env: dict, wrap=lambda command: command) -> float:
    """Wall seconds of two reference processes run at once (the slower one)."""
    procs = [subprocess.Popen(wrap([sys.executable, "-c", REFERENCE, str(programs)]), env=env,
                              stdout=subprocess.DEVNULL) for _ in range(2)]
    t = time.perf_counter()
    for p in procs:
        p.wait()
        if p.returncode:
            fail(f"the reference workload failed (exit {p.returncode})")
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slowdown", type=float, default=2.3,
                    help="how many times slower than this machine's cores (default 2.3: the largest ratio measured "
                         "of an AVX2-only AMD EPYC VM's suite time to an AVX-512 Xeon VM's, BUILD_NOTES.md)")
    ap.add_argument("--cores", type=int, default=os.cpu_count(),
                    help="cores of the emulated machine (default all of this one's): the quota is cores/slowdown in "
                         "all; the command's threads may still spread over every core here")
    ap.add_argument("--avx2", action="store_true", help="XLA and the native kernels limited to AVX2")
    ap.add_argument("--reference-programs", type=int, default=40,
                    help="programs each reference process compiles (default 40: ~8 s on a 2-core AVX-512 VM)")
    ap.add_argument("--json", default="benchmarks/slow_machine.json",
                    help="write the measurement here (default benchmarks/slow_machine.json)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("no command: put it after --")
    if not args.slowdown >= 1:
        ap.error(f"--slowdown {args.slowdown}: must be at least 1")
    if args.cores < 1 or args.reference_programs < 1:
        ap.error("--cores and --reference-programs must be at least 1")
    if args.json and not Path(args.json).resolve().parent.is_dir():
        ap.error(f"--json {args.json}: its folder does not exist")
    env = dict(os.environ)
    if args.avx2:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_max_isa=AVX2").strip()
        env["IBJAX_NATIVE_MARCH"] = "x86-64-v3"

    quota = Quota(args.cores, args.slowdown)
    try:
        fast = reference_s(args.reference_programs, env)
        slow = reference_s(args.reference_programs, env, quota.inside)
        print(f"reference (2 processes compiling {args.reference_programs} programs each): {fast:.1f} s, "
              f"{slow:.1f} s inside the quota: {slow / fast:.2f}x slower (asked for {args.slowdown:g}x)",
              file=sys.stderr, flush=True)
        throttled_before = quota.throttled_s()
        t = time.perf_counter()
        proc = subprocess.run(quota.inside(command), env=env)
        wall = time.perf_counter() - t
        throttled = quota.throttled_s() - throttled_before
    finally:
        quota.remove()
    result = {"cpu": cpu_info()["model"], "cores": args.cores, "slowdown_asked": args.slowdown,
              "cgroup": str(quota.path), "reference_s": fast, "reference_slow_s": slow,
              "slowdown_measured": slow / fast,
              "avx2_only": args.avx2, "command": command, "returncode": proc.returncode, "wall_s": wall,
              "throttled_s": throttled}
    print(f"{' '.join(command)}: exit {proc.returncode}, {wall:.0f} s ({wall / 60:.1f} min) on {args.cores} cores of "
          f"{result['cpu']} at 1/{slow / fast:.2f} speed{' (AVX2 only)' if args.avx2 else ''}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"wall_s={wall:.1f}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
