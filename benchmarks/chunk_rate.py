"""Net-epochs/s of the engine from its best and median chunk, in one `run_program` (the throughput
benchmark's program: 12-bit task, 12-10-7-5-4-3-2 tanh, Adam, batch 256, binning MI).

    python benchmarks/chunk_rate.py EVERY [N] [CHUNKS]

EVERY: MI every EVERY epochs (1: chunks of 10 epochs; else chunks of EVERY epochs). For A/B runs of one change:
alternate processes of the old and new tree (`PYTHONPATH=...`), since this kind of VM drifts between runs.
"""

import json
import sys
import time

import numpy as np

import ibjax
from ibjax.sweep.plan import mi_epochs
from ibjax.train import Networks, mlp_copies, run_program

HIDDEN = (10, 7, 5, 4, 3)


def main() -> None:
    ibjax.configure_process()  # first: one XLA device per core, 64-bit types
    every = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    chunks = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    chunk = 10 if every == 1 else every
    engine, consts, task = mlp_copies(n, HIDDEN, chunk=chunk)
    stamps = []
    epochs = chunks * chunk
    run_program(engine, Networks.of(list(range(n)), [4e-4] * n), consts, task.device_data(),
                mi_epochs(epochs, every=every), epochs, progress=lambda *_: stamps.append(time.perf_counter()))
    d = np.diff(stamps[:chunks])  # the first chunk pays for warm-up
    print(json.dumps({"every": every, "n": n, "best": n * chunk / d.min(), "median": n * chunk / np.median(d)}))


if __name__ == "__main__":
    main()
