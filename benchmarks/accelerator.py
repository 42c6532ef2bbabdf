"""One command that measures ibjax on an accelerator (a GPU or TPU; it runs on the CPU too), everything in one
process so that every ratio compares numbers taken on the same machine in the same minutes:

1. mlp: the 12-bit task's 12-10-7-5-4-3-2 tanh MLP (Adam, batch 256, 30-bin MI of all 6 layers on all 4 096
   patterns) at N = 1, 16, 256, 1 024, 4 096, 16 384 networks and doubling on while the program fits the device
   and the time budget: network-epochs/s with MI every epoch, at the default schedule's density (one MI epoch
   in K = 65, `mi_epochs(10000, log=200)`) and with no MI, each against N = 1 of the same run; compile time,
   device memory per network (XLA's account of the program) and the share of an epoch spent in MI.
2. saxe: Saxe et al.'s 784-1024-20-20-20-10 tanh MLP on Fashion-MNIST-sized data (60 000 training rows, MI on
   1 000 images) at N = 1, 16, 64: useful FLOP/s (counted analytically: 6 flops per multiply-add and training
   row, 2 per scored or MI row) against a bfloat16 and a float32 matmul peak measured here (8192^3 per device;
   float32 at JAX's default precision, which the training uses).
3. conv: Butakov et al.'s conv net (benchmarks/conv.py) with N networks vmapped against looped (`lax.map`) on
   each device: the measurement behind `Engine.loops_models` (conv nets loop on the CPU, batch elsewhere).
4. estimators: the cost of one logged epoch of binning, KDE and compressed k-NN MI on 4 096 rows for N
   networks, against a training epoch and the forward pass alone.

Prints one table per section and writes JSON (`--json`); the last line is `mlp_speedup_max=<x>` (the best
net-epochs/s with MI every epoch over N = 1's). `--budget-s` (default 420 s) bounds the two N ladders (mlp
45 % of it, saxe 25 %): a ladder stops where the next size would pass its share (predicted from the last size:
its compile time plus its running time scaled linearly in N) or the device's memory (from the compiled program,
before it runs). The peaks, conv and estimator sections have fixed sizes and no budget of their own.

    python benchmarks/accelerator.py [--quick] [--budget-s 420] [--json benchmarks/accelerator.json]

`--quick` runs every section on the CPU in about a minute at toy sizes (the test suite's smoke test). Data:
Debian's dataset-fashion-mnist where installed (/usr/share/datasets/fashion-mnist, or --data); otherwise random
uint8 images of the same shape are generated (said in the output: the timings do not depend on pixel values).
Nothing is downloaded. On a machine without pydantic (or another of ibjax's pure-Python dependencies), carry
their wheels (README, "Running on a GPU").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/accelerator.py` from the root

HIDDEN_12BIT = (10, 7, 5, 4, 3)
FASHION = Path("/usr/share/datasets/fashion-mnist")
K_LOG = 65  # one MI epoch in K_LOG: the default schedule's density over 10 000 epochs (checked in main)
OOM = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "OOM")


class ForwardOnly:
    """Reads the activations and nothing else: the MI pass without an estimator (its cost is the forward pass)."""

    name = "forward_only"
    needs_net_input = False
    batched_lapack = False
    needs_linear_map = False
    continuous_targets = False

    def __call__(self, acts, labels, ctx):
        import jax.numpy as jnp

        from ibjax.mi import MIEstimate

        s = jnp.sum(acts).astype(jnp.float64)
        return MIEstimate(s, s, s, s)

    def limits(self, n_samples: int) -> tuple[float, float]:
        return float("inf"), float("inf")

    def __hash__(self):
        return 1

    def __eq__(self, other):
        return isinstance(other, ForwardOnly)


def device_info() -> dict:
    import jax

    devs = jax.local_devices()
    stats = None
    try:
        stats = devs[0].memory_stats()
    except Exception:  # noqa: BLE001 — a backend without memory statistics
        pass
    return {"platform": devs[0].platform, "kind": devs[0].device_kind, "count": len(devs),
            "bytes_limit": (stats or {}).get("bytes_limit"), "jax": jax.__version__}


def device_bytes_limit() -> int | None:
    return device_info()["bytes_limit"]


def matmul_peak(dtype, size: int) -> float:
    """GFLOP/s of size^3 matmuls of `dtype` on every local device at once (best of 5), at JAX's default
    precision: what the engine's own float32 matmuls get (TF32 on NVIDIA GPUs unless told otherwise)."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from benchmarks.conv import best_gflops
    from ibjax.train.engine import model_mesh

    n_dev = len(jax.local_devices())
    mesh, _ = model_mesh(n_dev)
    a = jax.device_put(jnp.ones((n_dev, size, size), dtype), NamedSharding(mesh, P("model")))
    return best_gflops(jax.jit(jax.vmap(jnp.dot)), a, a, flops=n_dev * 2 * size**3)


def is_oom(e: BaseException) -> bool:
    return any(s in str(e) for s in OOM)


# ---------------------------------------------------------------------------------------------------- 1. mlp
def mlp_row(n: int, chunk: int, k_log: int, limit: int | None) -> dict:
    """N networks on the 12-bit task: one compiled chunk of `chunk` epochs, run for 1 + k_log / chunk chunks and
    timed in steady state (after the first chunk) with MI every epoch, with one MI epoch in the k_log timed
    epochs, and with none (the same run length each time: the program's signature includes it)."""
    import numpy as np

    from ibjax.train import Networks, mlp_copies, run_program

    eng, consts, task = mlp_copies(n, HIDDEN_12BIT, chunk=chunk)
    data = task.device_data()
    nets = Networks.of(list(range(n)), [4e-4] * n)
    k = max(k_log // chunk, 1)  # timed chunks
    n_epochs = chunk * (1 + k)
    mesh, args = eng.abstract_chunk_args(consts, data, eng.prog.n_chunks(n_epochs) * chunk)
    compiled = eng.compiled_chunk(mesh, *args)  # compiled before it runs: does it fit the device?
    per_device = compiled.device_bytes
    if limit is not None and per_device > 0.9 * limit:
        return {"n": n, "fits": False, "device_bytes_per_device": per_device}
    out = {"n": n, "fits": True, "compile_s": compiled.compile_s, "devices": mesh.size, "n_mi": len(task.mi_rows),
           "device_mb_per_network": per_device * mesh.size / n / 2**20}
    for mode in ("every", "log", "none"):
        if mode == "every":
            schedule = np.arange(n_epochs + 1)
        elif mode == "log":  # exactly one MI epoch in the timed window of k_log epochs
            schedule = np.asarray([0, *range(chunk, n_epochs, k_log)])
        else:
            schedule = np.asarray([0])  # epoch 0, in the untimed first chunk
        stamps = []
        run_program(eng, nets, consts, data, schedule, n_epochs,
                    progress=lambda *_: stamps.append(time.perf_counter()))
        out[f"net_epochs_per_s_mi_{mode}"] = n * k * chunk / (stamps[k] - stamps[0])
    out["mi_share_every_epoch"] = max(0.0, 1 - out["net_epochs_per_s_mi_every"] / out["net_epochs_per_s_mi_none"])
    assert eng.trace_count == 1, "the chunk was traced more than once"
    return out


def section_mlp(ns: list[int], chunk: int, k_log: int, budget_s: float, more: bool) -> list[dict]:
    rows, t0, limit = [], time.perf_counter(), device_bytes_limit()
    ladder = list(ns)
    while ladder:
        n = ladder.pop(0)
        t = time.perf_counter()
        try:
            r = mlp_row(n, chunk, k_log, limit)
        except Exception as e:  # noqa: BLE001 — the device ran out of memory: the ladder ends here
            if not is_oom(e):
                raise
            r = {"n": n, "fits": False, "error": str(e).splitlines()[0][:200]}
        r["wall_s"] = time.perf_counter() - t
        rows.append(r)
        print(f"  mlp N={n}: {'done' if r['fits'] else 'does not fit'} ({r['wall_s']:.0f} s)", file=sys.stderr,
              flush=True)
        if not r["fits"]:
            break
        if more and not ladder:
            ladder.append(2 * n)  # and larger while it fits
        # The next size: about the same compile, and n_next / n times this one's running time (the work is
        # linear in N; compile, loading and launch overheads are not).
        left = budget_s - (time.perf_counter() - t0)
        run_s = max(r["wall_s"] - r["compile_s"], 0.0)
        if ladder and r["compile_s"] + run_s * ladder[0] / n > left:
            print(f"  mlp: N={ladder[0]} left out (predicted over the section's budget)", file=sys.stderr)
            break
    base = rows[0]
    for r in rows:
        if r["fits"] and base["n"] == 1:
            for mode in ("every", "log", "none"):
                r[f"speedup_mi_{mode}"] = r[f"net_epochs_per_s_mi_{mode}"] / base[f"net_epochs_per_s_mi_{mode}"]
    return rows


# ---------------------------------------------------------------------------------------------------- 2. saxe
def section_saxe(ns: list[int], data_dir: Path, quick: bool, budget_s: float, peaks: dict) -> dict:
    from benchmarks.images import _task, network_flops, run_engine

    # --quick: the sizes of `benchmarks/images.py --quick`, so that the suite's two smoke tests share programs
    # (the persistent compilation cache).
    n_train, n_eval, epochs = (256, 256, 2) if quick else (60000, 1000, 2)
    task, source = _task(data_dir, n_train, n_eval, n_eval)
    n_eval, n_mi, n_tr = len(task.y), len(task.mi_rows), len(task.train_idx)
    rows, t0 = [], time.perf_counter()
    for n in ns:
        t = time.perf_counter()
        try:
            every = run_engine(task, n, epochs, True)
            ends = run_engine(task, n, epochs, False)
        except Exception as e:  # noqa: BLE001
            if not is_oom(e):
                raise
            rows.append({"n": n, "fits": False, "error": str(e).splitlines()[0][:200]})
            break
        flops = n * network_flops(every["dims"], n_tr, n_eval, n_mi, epochs, ends["n_mi_epochs"])
        gflops = flops / ends["run_s"] / 1e9
        rows.append({"n": n, "fits": True, "net_epochs_per_s_mi_at_ends": n * epochs / ends["run_s"],
                     "net_epochs_per_s_mi_every_epoch": n * epochs / every["run_s"], "gflops": gflops,
                     "share_of_bf16_peak": gflops / peaks["bf16_gflops"],
                     "share_of_fp32_peak": gflops / peaks["fp32_gflops"],
                     "mi_share_every_epoch": max(0.0, 1 - ends["run_s"] / every["run_s"]),
                     "compile_s": every["compile_s"],
                     "device_mb_per_network": every["device_bytes_per_device"] * every["devices"] / n / 2**20,
                     "wall_s": time.perf_counter() - t})
        print(f"  saxe N={n}: done ({rows[-1]['wall_s']:.0f} s)", file=sys.stderr, flush=True)
        nxt = ns[ns.index(n) + 1] if n != ns[-1] else None
        compile_s = 2 * every["compile_s"]  # two programs per size (MI every epoch, MI at the ends)
        run_s = max(rows[-1]["wall_s"] - compile_s, 0.0)
        if nxt is not None and time.perf_counter() - t0 + compile_s + run_s * nxt / n > budget_s:
            print("  saxe: larger N left out (predicted over the section's budget)", file=sys.stderr)
            break
    fit = [r for r in rows if r["fits"]]
    # Memory per added network (the dataset is held once per program, so the program's bytes / N overstates it).
    added = ((fit[-1]["device_mb_per_network"] * fit[-1]["n"] - fit[0]["device_mb_per_network"] * fit[0]["n"])
             / (fit[-1]["n"] - fit[0]["n"]) if len(fit) > 1 else None)
    return {"source": source, "n_train": n_tr, "n_scored": n_eval, "n_mi": n_mi, "epochs": epochs, "rows": rows,
            "mb_per_added_network": added}


# ---------------------------------------------------------------------------------------------------- 3. conv
def section_conv(n: int, data_dir: Path, quick: bool) -> dict:
    import os

    from benchmarks.conv import data_folder, run_engine

    n_train, n_eval, epochs = (256, 256, 1) if quick else (6000, 1000, 2)  # --quick: benchmarks/conv.py's
    folder, source = data_folder(data_dir, n_train, n_eval)
    saved = os.environ.get("IBJAX_MODEL_LOOP")
    try:
        rows = {loop: run_engine(folder, n_train, n, epochs, loop, n_eval) for loop in ("map", "vmap")}
    finally:  # conv.run_engine sets the switch for the process
        os.environ.pop("IBJAX_MODEL_LOOP", None)
        if saved is not None:
            os.environ["IBJAX_MODEL_LOOP"] = saved
    out = {"source": source, "n": n, "epochs": epochs, "n_train": n_train}
    for loop, r in rows.items():
        assert r["looped"] == (loop == "map")
        out[loop] = {"net_epochs_per_s": n * epochs / r["run_s"], "compile_s": r["compile_s"],
                     "device_mb": r["device_mb"], "test_acc": r["test_acc"]}
    out["vmap_over_map"] = out["vmap"]["net_epochs_per_s"] / out["map"]["net_epochs_per_s"]
    return out


# ---------------------------------------------------------------------------------------------- 4. estimators
def section_estimators(n: int, rows_cap: int | None, repeats: int, hidden=HIDDEN_12BIT) -> dict:
    """ms per logged epoch of each estimator for N networks (every layer of the 12-`hidden`-2 MLP, the 12-bit
    task's 4 096 rows or `rows_cap`): the chunk run with MI at every step and no training, best of `repeats`; and
    a training epoch."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from ibjax.data import load_task
    from ibjax.mi import Binning, KDEBound, KNNEstimator
    from ibjax.models.mlp import MLP, stack_consts
    from ibjax.spec import DataSpec
    from ibjax.train import Engine, Networks, Program
    from ibjax.train.engine import model_mesh

    task = load_task(DataSpec())
    mesh, pad = model_mesh(n)
    m = n + pad
    by_model, rep = NamedSharding(mesh, P("model")), NamedSharding(mesh, P())
    consts = jax.device_put(stack_consts([(hidden, "tanh")] * m, ("tanh",), 12, hidden), by_model)
    data = jax.device_put(task.device_data(), rep)
    chunk = 2
    sets = {"forward_only": (ForwardOnly(),), "binning30": (Binning(n_classes=2),),
            "kde_upper": (KDEBound(max_samples=rows_cap),),
            "knn (k=5, dim=4)": (KNNEstimator(max_samples=rows_cap, n_classes=2),)}

    compiled = {}  # one program per estimator set: training and measuring differ only in the arguments

    def timed(ests, train: bool) -> float:
        mask = jnp.asarray(np.full(chunk, not train))
        call = lambda s: (s, consts, data, mask, jnp.int32(chunk if train else 0), jnp.int32(0))
        if ests not in compiled:
            eng = Engine(Program(MLP((12, *hidden, 2), ("tanh",)), "adam", task.train_idx.size, 256, ests,
                                 chunk))
            state = jax.device_put(eng.init_state(Networks.of(np.arange(m), 4e-4), consts), by_model)
            compiled[ests] = (eng.chunk_program(mesh).lower(*call(state)).compile(), state)
        fn, state = compiled[ests]
        best = float("inf")
        for _ in range(repeats + 1):  # the first call warms up
            fresh = jax.tree.map(jnp.copy, state)
            jax.block_until_ready(fresh)
            t = time.perf_counter()
            jax.block_until_ready(fn(*call(fresh)))
            best = min(best, (time.perf_counter() - t) / chunk * 1e3)
        return best

    train_ms = timed(sets["binning30"], train=True)
    rows = []
    for name, ests in sets.items():
        ms = timed(ests, train=False)
        rows.append({"estimator": name, "mi_epoch_ms": ms, "x_train_epoch": ms / train_ms})
        print(f"  estimators {name}: {ms:.1f} ms", file=sys.stderr, flush=True)
    base = rows[0]["mi_epoch_ms"]
    for r in rows:
        r["estimator_ms"] = r["mi_epoch_ms"] - base
    return {"n": m, "hidden": list(hidden), "rows_measured": rows_cap or len(task.y), "train_epoch_ms": train_ms,
            "rows": rows}


# ---------------------------------------------------------------------------------------------------- report
def _print_rows(rows: list[dict], width: int, line) -> None:
    """One line per size: `line(row)`, or that the size did not fit the device."""
    for r in rows:
        print(line(r) if r["fits"] else f"{r['n']:>{width}} does not fit the device")


def print_tables(out: dict) -> None:
    d, p = out["device"], out["peaks"]
    print(f"device: {d['count']} x {d['kind']} ({d['platform']}), jax {d['jax']}, memory "
          f"{d['bytes_limit'] / 2**30:.1f} GiB per device" if d["bytes_limit"] else
          f"device: {d['count']} x {d['kind']} ({d['platform']}), jax {d['jax']}, memory not reported")
    print(f"matmul peak ({p['size']}^3 per device): bf16 {p['bf16_gflops']:,.0f} GFLOP/s, "
          f"fp32 {p['fp32_gflops']:,.0f} GFLOP/s (default precision)")
    print(f"\n1. mlp, 12-bit task, MI on {out['mlp'][0].get('n_mi', '?')} rows; chunk {out['mlp_chunk']} epochs, "
          f"MI density 1 in {out['k_log']}")
    print(f"{'N':>7} {'ep/s MI every':>14} {'x N=1':>7} {'ep/s MI 1/K':>12} {'x N=1':>7} {'ep/s no MI':>11} "
          f"{'MI share':>9} {'compile s':>9} {'MB/network':>11}")
    def mlp_line(r):
        sp = lambda m: f"{r[f'speedup_mi_{m}']:.0f}x" if f"speedup_mi_{m}" in r else "-"
        return (f"{r['n']:>7} {r['net_epochs_per_s_mi_every']:>14,.0f} {sp('every'):>7} "
                f"{r['net_epochs_per_s_mi_log']:>12,.0f} {sp('log'):>7} {r['net_epochs_per_s_mi_none']:>11,.0f} "
                f"{100 * r['mi_share_every_epoch']:>8.0f}% {r['compile_s']:>9.1f} {r['device_mb_per_network']:>11.3f}")

    _print_rows(out["mlp"], 7, mlp_line)
    s = out["saxe"]
    print(f"\n2. saxe 784-1024-20-20-20-10 on {s['source']}: {s['n_train']} training rows, {s['epochs']} epochs")
    print(f"{'N':>4} {'net-ep/s':>9} {'GFLOP/s':>9} {'of bf16':>8} {'of fp32':>8} {'MI share':>9} {'compile s':>9} "
          f"{'MB/network':>11}")
    _print_rows(s["rows"], 4, lambda r: (
        f"{r['n']:>4} {r['net_epochs_per_s_mi_at_ends']:>9.2f} {r['gflops']:>9,.0f} "
        f"{100 * r['share_of_bf16_peak']:>7.1f}% {100 * r['share_of_fp32_peak']:>7.1f}% "
        f"{100 * r['mi_share_every_epoch']:>8.0f}% {r['compile_s']:>9.1f} {r['device_mb_per_network']:>11.1f}"))
    if s["mb_per_added_network"] is not None:
        print(f"memory per added network: {s['mb_per_added_network']:.1f} MB (the dataset is held once)")
    c = out["conv"]
    print(f"\n3. conv, N = {c['n']} on {c['source']}: vmapped {c['vmap']['net_epochs_per_s']:.2f} vs looped "
          f"{c['map']['net_epochs_per_s']:.2f} net-epochs/s ({c['vmap_over_map']:.2f}x); memory "
          f"{c['vmap']['device_mb']:.0f} vs {c['map']['device_mb']:.0f} MB; compile {c['vmap']['compile_s']:.1f} vs "
          f"{c['map']['compile_s']:.1f} s")
    e = out["estimators"]
    print(f"\n4. estimators, N = {e['n']}, {e['rows_measured']} rows, {len(e['hidden']) + 1} layers; a training epoch: "
          f"{e['train_epoch_ms']:.1f} ms")
    print(f"{'estimator':>18} {'MI epoch ms':>12} {'x train epoch':>14} {'estimator ms':>13}")
    for r in e["rows"]:
        print(f"{r['estimator']:>18} {r['mi_epoch_ms']:>12.1f} {r['x_train_epoch']:>14.2f} {r['estimator_ms']:>13.1f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="toy sizes on any device, about a minute (the smoke test)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="the whole run's time (default 420)")
    ap.add_argument("--data", type=Path, default=FASHION)
    ap.add_argument("--json", default="benchmarks/accelerator.json")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()

    import ibjax
    ibjax.configure_process()  # first: one XLA device per core on the CPU, 64-bit types for the MI
    from ibjax.sweep.plan import mi_epochs

    assert round(10000 / len(mi_epochs(10000, log=200))) == K_LOG
    q = args.quick
    share = lambda f: args.budget_s * f
    out = {"quick": q, "device": device_info(), "k_log": 4 if q else K_LOG, "mlp_chunk": 2 if q else 13}
    size = 256 if q else 8192
    import jax.numpy as jnp

    out["peaks"] = {"size": size, "bf16_gflops": matmul_peak(jnp.bfloat16, size),
                    "fp32_gflops": matmul_peak(jnp.float32, size)}
    out["mlp"] = section_mlp([1, 2] if q else [1, 16, 256, 1024, 4096, 16384], out["mlp_chunk"], out["k_log"],
                             share(0.45), more=not q)
    out["saxe"] = section_saxe([1, 2] if q else [1, 16, 64], args.data, q, share(0.25), out["peaks"])
    out["conv"] = section_conv(2 if q else 16, args.data, q)
    # --quick: three hidden layers, not six layers' worth of every estimator's code to compile (the k-NN program
    # alone 7.1 s on a 2-core AVX2-only EPYC VM): the smoke test checks that the section runs, not its numbers.
    out["estimators"] = section_estimators(2 if q else 256, 256 if q else None, 1 if q else 3,
                                           (10, 7, 5) if q else HIDDEN_12BIT)
    out["wall_s"] = time.perf_counter() - t0
    out["command"] = " ".join(["python benchmarks/accelerator.py", *(sys.argv[1:] if argv is None else argv)])
    print_tables(out)
    Path(args.json).write_text(json.dumps(out, indent=2))
    fitting = [r for r in out["mlp"] if r["fits"] and "speedup_mi_every" in r]
    best = max(fitting, key=lambda r: r["speedup_mi_every"])
    print(f"\nwhole run: {out['wall_s']:.0f} s")
    print(f"mlp_speedup_max={best['speedup_mi_every']:.1f} at N={best['n']}")


if __name__ == "__main__":
    main()
