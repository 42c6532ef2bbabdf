"""Conv nets at once: Butakov et al.'s MNIST classifier (conv 8-16-32, 3x3 valid, 2x2 max-pool, LeakyReLU,
dense 32, 10 outputs) on Fashion-MNIST, N = 1, 4, 16 networks in one program.

Everything in one process (one run, same machine state):
- peak: the measured float32 rate of this process on all its devices for a 2048^3 matmul per device, and for
  the training's dominant convolution (conv2: [128, 13, 13, 8] * [3, 3, 8, 16], valid) over N networks
  (the better of vmapped and one after another);
- ibjax: the engine (`model.kind: conv`, Adam, batch 128, binning MI of all 5 layers on a 1 000-image MI sample
  at the first and last epoch) with N networks. Network FLOPs are counted analytically (convolutions and dense
  layers: 2 flops per multiply-add forward, 4 backward, per training row; forward only for the MI and metric
  passes; pooling and activations not counted), so FLOP/s is useful work;
- baseline: N = 1, the same engine: the one-network loop a reference code runs N times;
- batched: the largest N again with the networks vmapped on each device instead of looped (the engine's
  choice for conv nets on the CPU, `Engine.loops_models`): the measurement behind that choice;
- compile time per N (one program whatever N: it should stay flat), and memory: XLA's account of each program
  (arguments + outputs + temporaries, summed over the devices). It grows linearly in N: by one network's state
  per network when the networks are looped (each device holds one network's activations at a time, and the
  dataset once), by its state and activations when batched.

    python benchmarks/conv.py [--quick] [--n 1 4 16] [--json benchmarks/conv.json]

Data: the IDX files of Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist; --data for another
folder); without them, uniformly random uint8 images of the same shape (said in the output: the timings do not
depend on the pixel values). The last line is `speedup_vs_one_network_<N>=<x>` for the largest N.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

FASHION = Path("/usr/share/datasets/fashion-mnist")
MODEL = {"kind": "conv", "channels": [8, 16, 32], "kernel_size": 3, "pool": 2, "padding": "valid",
         "hidden": [32], "activation": "leaky_relu"}
BATCH = 128


def data_folder(data_dir: Path, n_train: int, n_test: int) -> tuple[Path, str]:
    """The folder of the four IDX files, and what they are (random images when Fashion-MNIST is absent)."""
    if any((data_dir / f"train-images-idx3-ubyte{s}").is_file() for s in ("", ".gz")):
        return data_dir, f"Fashion-MNIST ({data_dir})"
    import numpy as np

    from ibjax.data.idx import FILES, write_idx

    folder = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        write_idx(folder / FILES[split, "images"], rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / FILES[split, "labels"], (np.arange(n) % 10).astype(np.uint8))
    return folder, "random uint8 images (Fashion-MNIST not found)"


def layer_macs() -> list[int]:
    """Multiply-adds per sample of each conv and dense layer of MODEL on 28x28x1 images."""
    size, c_in, k, macs = 28, 1, MODEL["kernel_size"], []
    for c_out in MODEL["channels"]:
        size -= k - 1  # valid convolution
        macs.append(size * size * c_in * c_out * k * k)
        size, c_in = size // MODEL["pool"], c_out
    width = size * size * c_in
    for units in (*MODEL["hidden"], 10):
        macs.append(width * units)
        width = units
    return macs


def best_gflops(f, *args, flops: float) -> float:
    f(*args).block_until_ready()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        f(*args).block_until_ready()
        times.append(time.perf_counter() - t)
    return flops / min(times) / 1e9


def peaks(n_models: int) -> tuple[float, float]:
    """(GFLOP/s of 2048^3 float32 matmuls on every device, GFLOP/s of conv2's convolution vmapped over the
    models), best of 5 each, sharded over the devices as the engine shards its networks."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from ibjax.train.engine import model_mesh

    n_dev = len(jax.local_devices())
    mesh, _ = model_mesh(n_dev)
    by = NamedSharding(mesh, P("model"))
    a = jax.device_put(jnp.ones((n_dev, 2048, 2048), jnp.float32), by)
    matmul = best_gflops(jax.jit(jax.vmap(jnp.dot)), a, a, flops=n_dev * 2 * 2048**3)
    m = max(n_models, n_dev) // n_dev * n_dev
    mesh, _ = model_mesh(m)
    by = NamedSharding(mesh, P("model"))
    x = jax.device_put(jnp.ones((m, BATCH, 13, 13, 8), jnp.float32), by)
    w = jax.device_put(jnp.ones((m, 3, 3, 8, 16), jnp.float32), by)
    conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    flops = m * 2 * BATCH * 11 * 11 * 8 * 16 * 9
    # XLA's CPU convolution is faster one network at a time than vmapped (a grouped convolution): the peak is
    # the better of the two.
    batched = best_gflops(jax.jit(jax.vmap(conv)), x, w, flops=flops)
    looped = best_gflops(jax.jit(lambda x, w: jax.lax.map(lambda a: conv(*a), (x, w))), x, w, flops=flops)
    return matmul, max(batched, looped)


def run_engine(folder: Path, n_train: int, n: int, epochs: int, loop: str | None = None, n_eval: int = 1000) -> dict:
    """One program of n networks; loop: 'map' or 'vmap' forces how each device runs its networks (None: the
    engine's choice)."""
    import os

    import numpy as np

    from ibjax.data.task import load_task
    from ibjax.spec import validate
    from ibjax.sweep.plan import expand_grid, make_buckets
    from ibjax.sweep.programs import Programs, bucket_consts
    from ibjax.train import Networks, run_program

    spec = validate({
        "name": "conv_benchmark",
        "data": {"dataset": "idx", "path": str(folder), "train_rows": n_train, "test_rows": n_eval,
                 "mi_sample": {"split": "all", "n": n_eval, "seed": 0}},
        "model": MODEL, "train": {"epochs": epochs, "optimizer": "adam", "learning_rate": 1e-3,
                                  "batch_size": BATCH, "chunk_epochs": epochs + 1},
        "mi": {"estimators": [{"kind": "binning", "n_bins": 30, "range": "auto"}]},
        "grid": {"seed": n}})
    if loop is None:
        os.environ.pop("IBJAX_MODEL_LOOP", None)
    else:
        os.environ["IBJAX_MODEL_LOOP"] = loop
    task = load_task(spec.data)
    (b,) = make_buckets(expand_grid(spec))
    programs = Programs(spec, task, task.device_data())
    eng, consts, data = programs.engine(b), bucket_consts(b, task), programs.data_of(b)
    schedule = np.asarray([0, epochs])
    traces = eng.trace_count  # N = 1 and N = 2 share one Program (and Engine): one trace per model count
    res = run_program(eng, Networks.of([r.seed for r in b.runs], [1e-3] * n), consts, data, schedule, epochs)
    mesh, args = eng.abstract_chunk_args(consts, data, eng.prog.n_chunks(epochs) * eng.prog.chunk)
    compiled = eng.compiled_chunk(mesh, *args)  # the executable run_program compiled (cached by signature)
    assert eng.trace_count == traces + 1, "the chunk was traced more than once"
    return {"run_s": res.train_s - res.compile_s, "compile_s": res.compile_s, "looped": eng.loops_models(mesh),
            "device_mb": compiled.device_bytes * mesh.size / 2**20, "devices": mesh.size,
            "n_train": int(eng.prog.n_train), "n_rows": int(len(task.y)), "n_mi": int(len(task.mi_rows)),
            "test_acc": float(np.mean(res.metrics[-1, :, 3])), "data_mb": task.device_data().x.nbytes / 2**20}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rows, one epoch, no batched comparison (the suite's smoke test)")
    ap.add_argument("--n", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--data", type=Path, default=FASHION)
    ap.add_argument("--json", default="benchmarks/conv.json")
    args = ap.parse_args(argv)

    import ibjax
    ibjax.configure_process()  # first: one XLA device per core, 64-bit types

    # --quick is the smoke test the suite runs: the same programs on fewer rows (test and MI rows included).
    n_train, epochs, n_eval = (256, 1, 256) if args.quick else (2000, 2, 1000)
    folder, source = data_folder(args.data, n_train, n_eval)
    matmul_peak, conv_peak = peaks(max(args.n))
    macs = sum(layer_macs())
    print(f"data: {source}; {n_train} training rows, {epochs} epochs per measurement, MI at the first and last")
    print(f"peak of this process: matmul {matmul_peak:.1f} GFLOP/s (2048^3 per device); conv2's convolution "
          f"[{BATCH},13,13,8]*[3,3,8,16]: {conv_peak:.1f} GFLOP/s; the network: {macs:,} multiply-adds per image")
    rows = []
    # --quick (the suite's smoke test) leaves out the batched (vmap) comparison: tests/models proves the two
    # give the same networks; here it would only add a compile.
    batched_run = [] if args.quick else [(max(args.n), "vmap")]
    for n, loop in [*((n, None) for n in args.n), *batched_run]:
        r = run_engine(folder, n_train, n, epochs, loop, n_eval)
        flops = n * macs * (6 * r["n_train"] * epochs + 2 * (r["n_rows"] + r["n_mi"]) * 2)
        gflops = flops / r["run_s"] / 1e9
        rows.append({"n": n, "kind": "batched" if loop else "ibjax", "net_epochs_per_s": n * epochs / r["run_s"],
                     "gflops": gflops, "share_of_matmul_peak": gflops / matmul_peak,
                     "share_of_conv_peak": gflops / conv_peak,
                     **{k: r[k] for k in ("compile_s", "device_mb", "devices", "test_acc", "data_mb", "looped")}})
    batched = rows.pop() if batched_run else None
    base = rows[0]["net_epochs_per_s"] if rows[0]["n"] == 1 else float("nan")
    print(f"\n{'N':>4} {'how':>6} {'net-ep/s':>9} {'vs N=1':>7} {'GFLOP/s':>8} {'of matmul':>10} {'of conv':>8} "
          f"{'compile s':>9} {'MB (all dev)':>12}")
    for r in (*rows, *([batched] if batched else [])):
        r["speedup_vs_one_network"] = r["net_epochs_per_s"] / base
        how = "looped" if r["looped"] else "vmap"
        print(f"{r['n']:>4} {how:>6} {r['net_epochs_per_s']:>9.2f} {r['speedup_vs_one_network']:>6.2f}x {r['gflops']:>8.2f} "
              f"{100 * r['share_of_matmul_peak']:>9.1f}% {100 * r['share_of_conv_peak']:>7.1f}% "
              f"{r['compile_s']:>9.2f} {r['device_mb']:>12.1f}")
    summary = {}
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        per_net = (last["device_mb"] - first["device_mb"]) / (last["n"] - first["n"])
        # Linear in N: every row's memory against the line through the first and last (the largest deviation).
        off = max(abs(r["device_mb"] - (first["device_mb"] + per_net * (r["n"] - first["n"]))) for r in rows)
        summary = {"mb_per_added_network": per_net, "max_mb_off_linear": off,
                   "compile_ratio_last_over_first": last["compile_s"] / first["compile_s"]}
        print(f"memory per added network: {per_net:.2f} MB (largest deviation from linear: {off:.2f} MB; the "
              f"dataset is {last['data_mb']:.1f} MB, held once); compile N={last['n']} / N={first['n']}: "
              f"{summary['compile_ratio_last_over_first']:.2f}")
    out = {"source": source, "model": MODEL, "matmul_peak_gflops": matmul_peak, "conv_peak_gflops": conv_peak,
           "macs_per_image": macs, "epochs": epochs, "n_train": n_train, "rows": rows, "batched": batched,
           "looped_over_batched": rows[-1]["net_epochs_per_s"] / batched["net_epochs_per_s"] if batched else None,
           **summary,
           "command": " ".join(["python benchmarks/conv.py", *(sys.argv[1:] if argv is None else argv)])}
    Path(args.json).write_text(json.dumps(out, indent=2))
    if batched:
        print(f"looped / batched at N={batched['n']}: {out['looped_over_batched']:.2f}x net-epochs/s, "
              f"{rows[-1]['device_mb'] / batched['device_mb']:.2f}x memory")
    print(f"speedup_vs_one_network_{rows[-1]['n']}={rows[-1]['speedup_vs_one_network']:.2f}")


if __name__ == "__main__":
    main()
