"""Engine throughput: network-epochs per second with MI included, for several numbers of networks.

The 12-bit task, 12-10-7-5-4-3-2 tanh, Adam 4e-4, batch 256, binning MI (30 bins) of all 6 layers on all 4096
patterns. For each N it times the steady chunks (compile excluded, reported separately) with MI every epoch
and with MI every 20th epoch.

    python benchmarks/engine_throughput.py [--n 1 64 256] [--epochs 120] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

import ibjax  # noqa: F401  (splits the CPU into one XLA device per core before JAX starts its backends)
from ibjax.engine import Engine, Program, run_program
from ibjax.mi import Binning
from ibjax.nets import make_consts
from ibjax.plan import mi_epochs
from ibjax.spec import DataSpec
from ibjax.tasks import load_task

HIDDEN = (10, 7, 5, 4, 3)


def measure(n: int, epochs: int, every: int, chunk: int) -> dict:
    task = load_task(DataSpec())
    data = task.device_data()
    prog = Program((12, *HIDDEN, 2), ("tanh",), "adam", task.train_idx.size, 256, (Binning(n_classes=2),), chunk)
    consts = jax.tree.map(lambda *a: jnp.stack(a), *[make_consts(HIDDEN, "tanh", ("tanh",), 12, HIDDEN)] * n)
    stamps = []
    res = run_program(Engine(prog), list(range(n)), consts, [4e-4] * n, [0.0] * n, data,
                      mi_epochs(epochs, every=every), epochs, progress=lambda *_: stamps.append(time.perf_counter()))
    steady = np.diff(stamps)[: (epochs // chunk) - 1]  # full chunks after the first (which compiles)
    per_chunk = float(np.median(steady))
    return {"n_networks": n, "mi_every": every, "net_epochs_per_s": round(n * chunk / per_chunk, 1),
            "compile_s": round(res.compile_s, 2), "chunk_s": round(per_chunk, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--epochs", type=int, default=120)
    ap.add_argument("--chunk", type=int, default=20)
    ap.add_argument("--every", type=int, nargs="+", default=[1, 20])
    ap.add_argument("--json", default="benchmarks/engine_throughput.json")
    args = ap.parse_args()
    rows = [measure(n, args.epochs, every, args.chunk) for n in args.n for every in args.every]
    print(f"devices: {jax.devices()}")
    print(f"{'N':>6} {'MI every':>9} {'net-epochs/s':>13} {'compile s':>10}")
    for r in rows:
        print(f"{r['n_networks']:>6} {r['mi_every']:>9} {r['net_epochs_per_s']:>13,.1f} {r['compile_s']:>10.2f}")
    with open(args.json, "w") as f:
        json.dump({"devices": [str(d) for d in jax.devices()], "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
