"""Does XLA's account of a program's memory, which program sizing trusts, match what the process really uses?

Same run, same work as benchmarks/throughput.py (12-bit task, 12-10-7-5-4-3-2 tanh, Adam, batch 256, 30-bin MI
of all layers every epoch, chunks of 20 epochs): for each N, a subprocess trains N networks and reports
- account: `CompiledChunk.device_bytes` (arguments + outputs + temporaries − donated, per device) × devices,
  the number `ibjax.sweep.sizing` compares with the budget;
- measured: the process's peak resident memory.
Fixed costs (Python, JAX, XLA's code) differ, so the comparison is between the slopes in N. The last line is
`account_over_measured=<x>`: near 1 means sizing predicts the growth; sizing plans for 80 % of the budget,
so a ratio above ~0.8 leaves the fits it promises safe.

    python benchmarks/program_memory.py [--quick] [--n 256 1024] [--json benchmarks/program_memory.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

HIDDEN = (10, 7, 5, 4, 3)


def worker(n: int, epochs: int, chunk: int) -> dict:
    import ibjax
    ibjax.configure_process()  # first: one XLA device per core, 64-bit types
    from ibjax.sweep.plan import mi_epochs
    from ibjax.train import Networks, mlp_copies, run_program

    eng, consts, task = mlp_copies(n, HIDDEN, chunk=chunk)
    data = task.device_data()
    n_chunks = -(-(epochs + 1) // chunk)
    mesh, args = eng.abstract_chunk_args(consts, data, n_chunks * chunk)
    account = eng.compiled_chunk(mesh, *args).device_bytes * mesh.size  # the executable run_program uses
    run_program(eng, Networks.of(list(range(n)), [4e-4] * n), consts, data, mi_epochs(epochs, every=1),
                epochs)
    assert eng.trace_count == 1
    return {"n": n, "account_mb": account / 2**20,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small N, a minute or so")
    ap.add_argument("--n", type=int, nargs="+")
    ap.add_argument("--json", default="benchmarks/program_memory.json")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, default=40, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.epochs, 20)))
        return
    ns = sorted(args.n or ([16, 256] if args.quick else [256, 1024, 2048]))
    epochs = 20 if args.quick else 40
    t0 = time.perf_counter()
    rows = []
    for n in ns:
        proc = subprocess.run([sys.executable, __file__, "--worker", str(n), "--epochs", str(epochs)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"worker N={n} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))  # *_mb: MiB (2**20 bytes)
    print(f"{'N':>6} {'XLA account MiB':>16} {'peak RSS MiB':>13}")
    for r in rows:
        print(f"{r['n']:>6} {r['account_mb']:>16.1f} {r['peak_rss_mb']:>13.1f}")
    lo, hi = rows[0], rows[-1]
    dn = hi["n"] - lo["n"]
    slope_account = (hi["account_mb"] - lo["account_mb"]) / dn if dn else float("nan")
    slope_rss = (hi["peak_rss_mb"] - lo["peak_rss_mb"]) / dn if dn else float("nan")
    print(f"per network, N = {lo['n']} -> {hi['n']}: account {slope_account * 1024:.0f} KiB, "
          f"measured {slope_rss * 1024:.0f} KiB")
    with open(args.json, "w") as f:
        json.dump({"quick": args.quick, "epochs": epochs, "wall_s": time.perf_counter() - t0, "rows": rows,
                   "account_kib_per_network": slope_account * 1024, "measured_kib_per_network": slope_rss * 1024},
                  f, indent=2)
    # At small N the peak RSS is the imports' and the compiler's, the same for both sizes to the KiB: no ratio.
    print(f"account_over_measured={slope_account / slope_rss:.2f}" if dn and slope_rss > 0
          else "account_over_measured=nan")


if __name__ == "__main__":
    main()
