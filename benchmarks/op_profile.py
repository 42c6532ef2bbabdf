"""Where a chunk's time goes: a `jax.profiler` trace of `run_program` summed per XLA op (fusions, custom calls).

    python benchmarks/op_profile.py EVERY [N]

Trains N networks (default 256) of the throughput benchmark's program for 40 epochs with MI every EVERY epochs,
twice (the first compiles), traces the second, and prints the total time and count of the 40 costliest ops.
Durations are summed over all devices: divide by the count to get ms per call. Map op names to the program
with the compiled chunk's HLO (`Engine.compiled_chunk(...).executable.as_text()`).
"""

import collections
import glob
import gzip
import json
import sys
import tempfile

import jax

import ibjax
from ibjax.sweep.plan import mi_epochs
from ibjax.train import Networks, mlp_copies, run_program

HIDDEN = (10, 7, 5, 4, 3)


def main() -> None:
    ibjax.configure_process()  # first: one XLA device per core, 64-bit types
    every = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    engine, consts, task = mlp_copies(n, HIDDEN, chunk=20)
    train = lambda: run_program(engine, Networks.of(list(range(n)), [4e-4] * n), consts, task.device_data(),
                                mi_epochs(40, every=every), 40)
    train()
    out = tempfile.mkdtemp(prefix="ibjax_trace_")
    jax.profiler.start_trace(out)
    train()
    jax.profiler.stop_trace()
    trace = json.load(gzip.open(sorted(glob.glob(f"{out}/**/*.trace.json.gz", recursive=True))[-1]))
    total, count = collections.Counter(), collections.Counter()
    for ev in trace["traceEvents"]:
        if ev.get("ph") == "X":
            total[ev["name"]] += ev["dur"]
            count[ev["name"]] += 1
    print(f"{'ms (all devices)':>16} {'calls':>6}  op")
    for name, us in total.most_common(40):
        print(f"{us / 1e3:16.1f} {count[name]:6d}  {name[:100]}")


if __name__ == "__main__":
    main()
