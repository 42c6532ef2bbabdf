"""Throughput of the engine against the one-network-at-a-time loop every public reference uses, in one run.

Work (both sides): the 12-bit task, 12-10-7-5-4-3-2 tanh, Adam 4e-4, batch 256, 30-bin MI of all 6 layers on
all 4096 patterns.
- baseline: one network at a time, as the IDNNs/ibsgd code works: a jit-compiled minibatch step called from a
  Python loop over epochs and batches (NumPy shuffling), and after each MI epoch a jit-compiled forward pass
  whose binned activations are counted with NumPy (`np.unique(axis=0)`).
- ibjax: the engine with N networks at once on all local devices.
Both with MI at every epoch, and at the MI density of the default schedule for a 10 000-epoch study
(`mi_epochs(10000, log=200)`: 1 MI epoch in K, measured as MI every K-th epoch, K printed).

Each configuration runs in its own subprocess, so compile time and peak resident memory are its own.
Reports network-epochs/s (MI included, compile excluded), compile time, peak RSS and the speedup over the
baseline; writes JSON; the last line is `speedup_256=<x>` (MI every epoch, N = 256, this run's baseline).

    python benchmarks/throughput.py [--quick] [--n 1 16 64 256 1024] [--json benchmarks/throughput.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

HIDDEN = (10, 7, 5, 4, 3)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_baseline(epochs: int, mi_every: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import ibjax
    ibjax.configure_process()  # first: one XLA device per core, 64-bit types
    from ibjax.data import stratified_split, tishby12

    x, y = tishby12()
    x = x.astype(np.float32)
    tr, _ = stratified_split(y, 0.85, 0)
    xt, yt = x[tr], y[tr]
    rng = np.random.default_rng(0)
    dims = (12, *HIDDEN, 2)

    @jax.jit  # one program for every layer's draw (op by op, each layer's truncated normal compiles anew)
    def init(key):
        params = []
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            key, k = jax.random.split(key)
            w = jax.random.truncated_normal(k, -2, 2, (d_in, d_out), jnp.float32) / np.sqrt(d_in)
            params.append((w, jnp.zeros(d_out, jnp.float32)))
        return params

    params = init(jax.random.PRNGKey(0))
    tx = optax.adam(4e-4)
    opt = tx.init(params)

    def forward(params, xb):
        hs, h = [], xb
        for w, b in params[:-1]:
            h = jnp.tanh(h @ w + b)
            hs.append(h)
        logits = h @ params[-1][0] + params[-1][1]
        return hs, logits

    @jax.jit
    def step(params, opt, xb, yb):
        def loss(p):
            return optax.softmax_cross_entropy_with_integer_labels(forward(p, xb)[1], yb).mean()

        grads = jax.grad(loss)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt

    @jax.jit
    def layers(params, xa):
        hs, logits = forward(params, xa)
        return [*hs, jax.nn.softmax(logits)]

    def entropy(rows):
        _, c = np.unique(rows, axis=0, return_counts=True)
        p = c / c.sum()
        return -(p * np.log2(p)).sum()

    def mi_pass(params):
        out = []
        for layer, a in enumerate(layers(params, x)):
            lo, hi = (0.0, 1.0) if layer == len(HIDDEN) else (-1.0, 1.0)
            b = np.clip(np.floor((np.asarray(a, np.float64) - lo) / (hi - lo) * 30), 0, 29).astype(np.int64)
            h_t = entropy(b)
            out.append((h_t, h_t + entropy(y[:, None]) - entropy(np.c_[b, y])))
        return out

    def epoch(params, opt):
        perm = rng.permutation(len(tr))
        for s in range(0, len(tr), 256):
            idx = perm[s:s + 256]
            params, opt = step(params, opt, xt[idx], yt[idx])
        return params, opt

    t = time.perf_counter()
    params, opt = epoch(params, opt)  # compiles both batch shapes
    mi_pass(params)
    jax.block_until_ready(params)
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    for e in range(epochs):
        params, opt = epoch(params, opt)
        if e % mi_every == 0:
            mi_pass(params)
    jax.block_until_ready(params)
    dt = time.perf_counter() - t
    return {"kind": "baseline", "n": 1, "mi_every": mi_every, "net_epochs_per_s": epochs / dt,
            "compile_s": compile_s, "peak_rss_mb": _peak_rss_mb(), "epochs": epochs}


def worker_engine(n: int, epochs: int, mi_every: int, chunk: int) -> dict:
    import jax

    import ibjax
    ibjax.configure_process()  # first: one XLA device per core, 64-bit types
    from ibjax.sweep.plan import mi_epochs
    from ibjax.train import Networks, mlp_copies, run_program

    engine, consts, task = mlp_copies(n, HIDDEN, chunk=chunk)
    stamps = []
    res = run_program(engine, Networks.of(list(range(n)), [4e-4] * n), consts, task.device_data(),
                      mi_epochs(epochs, every=mi_every), epochs, progress=lambda *_: stamps.append(time.perf_counter()))
    # Steady state: from the end of the first chunk to the end of the last full one (epochs - chunk epochs,
    # a multiple of mi_every, so the MI density is exact). The first chunk pays for warm-up.
    full = epochs // chunk
    steady_s = stamps[full - 1] - stamps[0]
    return {"kind": "ibjax", "n": n, "mi_every": mi_every, "net_epochs_per_s": n * (full - 1) * chunk / steady_s,
            "compile_s": res.compile_s, "peak_rss_mb": _peak_rss_mb(), "epochs": epochs,
            "devices": len(jax.local_devices())}


def cpu_info() -> dict:
    """The host CPU, so tables from different machines are not compared as if alike: the native kernels are
    built with -march=native and vectorize over 8 (AVX2) or 16 (AVX-512) floats."""
    info = {"model": "unknown", "avx512f": False, "family": None, "model_number": None}
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = (part.strip() for part in line.partition(":"))
        if key == "model name" and info["model"] == "unknown":
            info["model"] = value
        elif key == "cpu family" and info["family"] is None:
            info["family"] = value
        elif key == "model" and info["model_number"] is None:
            info["model_number"] = value
        elif key == "flags":
            info["avx512f"] = "avx512f" in value.split()
    return info


def _run(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small N and few epochs: the whole run under 3 minutes")
    ap.add_argument("--n", type=int, nargs="+")
    ap.add_argument("--json", default="benchmarks/throughput.json")
    ap.add_argument("--worker", choices=["baseline", "engine"], help=argparse.SUPPRESS)
    ap.add_argument("--wn", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--every", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--chunk", type=int, default=10, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker == "baseline":
        print(json.dumps(worker_baseline(args.epochs, args.every)))
        return
    if args.worker == "engine":
        print(json.dumps(worker_engine(args.wn, args.epochs, args.every, args.chunk)))
        return

    import ibjax
    ibjax.configure_process()  # first: one XLA device per core, 64-bit types
    from ibjax import native
    from ibjax.sweep.plan import mi_epochs

    # Build the native kernels (first use on a machine: ~20 s) before any worker, so that no row's compile
    # time includes the C++ build.
    native.available()

    k_log = round(10000 / len(mi_epochs(10000, log=200)))  # default schedule's MI density over 10 000 epochs
    ns = args.n or ([1, 16, 256] if args.quick else [1, 16, 64, 256, 1024])
    t0 = time.perf_counter()
    rows = []
    for every in (1, k_log):
        # 30 baseline epochs with MI (~2 s): with 10, two runs on one VM gave 15.7 and 22.6 net-epochs/s
        base_epochs = (3 if args.quick else 30) if every == 1 else 2 * k_log
        base = _run(["--worker", "baseline", "--epochs", str(base_epochs), "--every", str(every)])
        rows.append(base)
        for n in ns:
            chunk = (5 if args.quick else 20) if every == 1 else k_log
            epochs = chunk * (4 if every == 1 else (2 if args.quick else 4))
            r = _run(["--worker", "engine", "--wn", str(n), "--epochs", str(epochs), "--every", str(every),
                      "--chunk", str(chunk)])
            r["speedup"] = r["net_epochs_per_s"] / base["net_epochs_per_s"]
            rows.append(r)
        print(f"  ... MI every {every}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    cpu = cpu_info()
    print(f"CPU: {cpu['model']} (family {cpu['family']}, model {cpu['model_number']}, "
          f"{'AVX-512' if cpu['avx512f'] else 'no AVX-512'})")
    print(f"MI every K = {k_log} epochs matches the default schedule's density over 10 000 epochs")
    print(f"{'what':>9} {'N':>5} {'MI every':>9} {'net-epochs/s':>13} {'speedup':>8} {'compile s':>10} {'peak MB':>8}")
    for r in rows:
        sp = f"{r['speedup']:.1f}x" if "speedup" in r else "1x"
        print(f"{r['kind']:>9} {r['n']:>5} {r['mi_every']:>9} {r['net_epochs_per_s']:>13,.1f} {sp:>8} "
              f"{r['compile_s']:>10.2f} {r['peak_rss_mb']:>8.0f}")
    out = {"k_log": k_log, "quick": args.quick, "wall_s": time.perf_counter() - t0, "cpu": cpu_info(), "rows": rows}
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
    s256 = [r["speedup"] for r in rows if r["kind"] == "ibjax" and r["n"] == 256 and r["mi_every"] == 1]
    print(f"speedup_256={s256[0]:.1f}" if s256 else "speedup_256=nan")


if __name__ == "__main__":
    main()
