"""Planning at scale: how long `python -m ibjax.sweep` takes from launch to its first chunk, for 10^2 ... 10^6
networks, and what it says on the way.

    python benchmarks/planning.py [--n 100 1000 10000 100000] [--refuse 1000000] [--json benchmarks/planning.json]

Each N is a fresh `python -m ibjax.sweep` process on the 12-bit task (seeds 0..N-1, 20 epochs, MI every 10,
no report), read line by line: the time of the `[plan]` lines (run table, then programs sized to this machine's
memory) and of the bucket's start line (networks placed, initialised and compiled: training begins), after which
the process is stopped. `--refuse N`: the default MI schedule (~150 logged epochs) for N networks, whose merged
results cannot fit in host memory: the sweep must refuse before any compile, naming the estimate.

Baseline in the same run: the network constants of 1 000 networks built the way ibjax did before (per-run jnp
arrays stacked by jnp: one small XLA program per array) against `models.mlp.stack_consts` (NumPy).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = "name: planning\ntrain: {epochs: 20, chunk_epochs: 10}\nmi: {schedule: {every: 10}}\noutput: {plots: false}\n"


def run_sweep(n: int, spec_text: str, timeout: float = 600) -> dict:
    """Launch the sweep for n networks; timestamps (s since launch) of its milestones; stop it at the first chunk."""
    with tempfile.TemporaryDirectory() as d:
        spec = Path(d) / "s.yaml"
        spec.write_text(spec_text)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "ibjax.sweep", str(spec), "--out", f"{d}/out", "--no-report",
                                 "--set", f"grid.seed={n}"], stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        out = {"n": n, "lines": []}
        try:
            for line in proc.stderr:
                t = time.perf_counter() - t0
                line = line.rstrip()
                out["lines"].append(f"{t:7.2f} s  {line}")
                if line.startswith("[plan]") and "planned in" in line:
                    out["run_table_s"] = t
                elif line.startswith("[plan]") and "program(s)" in line:
                    out["programs_s"] = t
                    out["programs"] = int(re.search(r"\[plan\] (\d+) program", line).group(1))
                elif "initialised and compiled" in line:
                    out["first_chunk_s"] = t
                    break
                elif line.startswith("error:"):
                    out["refused_s"] = t
                    out["error"] = line
                if t > timeout:
                    break
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    return out


def consts_baseline(n: int) -> dict:
    """Constants of n networks: per-run jnp arrays + jnp.stack (before) vs vectorized NumPy (now), seconds."""
    import jax
    import jax.numpy as jnp

    import ibjax
    ibjax.configure_process()  # first: one XLA device per core, 64-bit types
    from ibjax.models.activations import BOUNDED_RANGES
    from ibjax.models.mlp import ModelConsts, stack_consts

    hidden, names = (10, 7, 5, 4, 3), ("tanh",)

    def one_jnp(h, act):  # how make_consts built one model's arrays before
        lo, hi = BOUNDED_RANGES.get(act, (0.0, 0.0))
        return ModelConsts(jnp.int32(names.index(act)),
                           tuple(jnp.asarray([1.0] * w + [0.0] * (p - w), jnp.float32) for w, p in zip(h, hidden)),
                           jnp.asarray((12, *h), jnp.float32), jnp.float32(lo), jnp.float32(hi),
                           jnp.bool_(act in BOUNDED_RANGES))

    t = time.perf_counter()
    jax.block_until_ready(jax.tree.map(lambda *a: jnp.stack(a), *[one_jnp(hidden, "tanh") for _ in range(n)]))
    before = time.perf_counter() - t
    t = time.perf_counter()
    stack_consts([(hidden, "tanh")] * n, names, 12, hidden)
    now = time.perf_counter() - t
    return {"n": n, "jnp_stack_s": before, "numpy_s": now, "speedup": before / now}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100, 1000, 10000, 100000])
    ap.add_argument("--refuse", type=int, default=1000000, help="N for the refusal check (0: skip)")
    ap.add_argument("--json", default="benchmarks/planning.json")
    args = ap.parse_args()
    rows = []
    for n in args.n:
        r = run_sweep(n, SPEC)
        rows.append(r)
        print(f"N={n:>9,}: run table {r.get('run_table_s', float('nan')):6.1f} s, {r.get('programs', '?')} program(s) "
              f"at {r.get('programs_s', float('nan')):6.1f} s, first chunk starts at "
              f"{r.get('first_chunk_s', float('nan')):6.1f} s", flush=True)
    refusal = None
    if args.refuse:
        default_schedule = SPEC.replace("{every: 10}", "{log: 200}").replace("epochs: 20", "epochs: 4000")
        refusal = run_sweep(args.refuse, default_schedule)
        said = f"refused at {refusal['refused_s']:.1f} s" if "refused_s" in refusal else "not refused"
        print(f"N={args.refuse:>9,} (default schedule): {said}\n  {refusal.get('error', '')}", flush=True)
    base = consts_baseline(1000)
    print(f"constants of 1,000 networks: jnp per run + stack {base['jnp_stack_s']:.2f} s, "
          f"NumPy {base['numpy_s']:.4f} s ({base['speedup']:.0f}x)")
    Path(args.json).write_text(json.dumps({"rows": rows, "refusal": refusal, "consts_baseline": base}, indent=1) + "\n")


if __name__ == "__main__":
    main()
