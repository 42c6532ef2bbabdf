"""Image-sized networks: Saxe et al.'s 784-1024-20-20-20-10 (tanh) on Fashion-MNIST, N = 1, 4, 16 at once.

These layers are matmul-sized, so the yardstick is the hardware, not only the ratio. Everything in one process
(one run, same machine state):
- peak: the measured float32 matmul rate of this process on all its devices (2048^3 per device, best of 5),
  and the rate of the training's own dominant shape ([batch, 784] @ [784, 1024], vmapped over N);
- ibjax: the engine with N networks (Adam, batch 256, binning MI of all 5 layers on a 1 000-image MI sample),
  timed with MI at every epoch and with MI only at the first and last epoch; the difference is the MI pass's
  share. Network FLOPs are counted analytically (forward 2 flops per multiply-add, backward 4, per training row;
  forward only for the MI and metric passes), so FLOP/s = useful work, not what XLA happens to execute;
- baseline: N = 1, the same engine (the one-network loop a reference code runs N times);
- memory: XLA's account of each program (arguments + outputs + temporaries, per device) against the dataset's
  own bytes on the device: the dataset is held once, so memory grows with N by the networks' state only.

    python benchmarks/images.py [--quick] [--n 1 4 16] [--json benchmarks/images.json]

Data: the IDX files of Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist; --data for another
folder); without them, uniformly random uint8 images of the same shape (said in the output: the timings do not
depend on the pixel values). The last line is `share_of_peak_16=<x>`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HIDDEN = (1024, 20, 20, 20)
FASHION = Path("/usr/share/datasets/fashion-mnist")


def _task(data_dir: Path, n_train: int, n_test: int, n_mi: int):
    from ibjax.data import load_task
    from ibjax.spec import DataSpec

    if (data_dir / "train-images-idx3-ubyte.gz").is_file() or (data_dir / "train-images-idx3-ubyte").is_file():
        spec = DataSpec(dataset="idx", path=str(data_dir), train_rows=n_train, test_rows=n_test,
                        mi_sample={"n": n_mi})
        return load_task(spec), f"Fashion-MNIST ({data_dir})"
    import tempfile

    import numpy as np

    from ibjax.data.idx import FILES, write_idx

    folder = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        write_idx(folder / FILES[split, "images"], rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / FILES[split, "labels"], (np.arange(n) % 10).astype(np.uint8))
    spec = DataSpec(dataset="idx", path=str(folder), mi_sample={"n": n_mi})
    return load_task(spec), "random uint8 images (Fashion-MNIST not found)"


def matmul_peak(n_devices_models: int) -> tuple[float, float]:
    """(GFLOP/s of 2048^3 float32 matmuls on every device, GFLOP/s of the training's [256,784]@[784,1024]
    vmapped over the models), best of 5 each."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from ibjax.train.engine import model_mesh

    def best(f, *args, flops):
        f(*args).block_until_ready()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            f(*args).block_until_ready()
            times.append(time.perf_counter() - t)
        return flops / min(times) / 1e9

    n_dev = len(jax.local_devices())
    mesh, _ = model_mesh(n_dev)
    by = NamedSharding(mesh, P("model"))
    a = jax.device_put(jnp.ones((n_dev, 2048, 2048), jnp.float32), by)
    square = best(jax.jit(jax.vmap(jnp.dot)), a, a, flops=n_dev * 2 * 2048**3)
    m = max(n_devices_models, n_dev) // n_dev * n_dev
    mesh, _ = model_mesh(m)
    by = NamedSharding(mesh, P("model"))
    x = jax.device_put(jnp.ones((m, 256, 784), jnp.float32), by)
    w = jax.device_put(jnp.ones((m, 784, 1024), jnp.float32), by)
    shape = best(jax.jit(jax.vmap(jnp.dot)), x, w, flops=m * 2 * 256 * 784 * 1024)
    return square, shape


def network_flops(dims, n_train: int, n_eval_rows: int, n_mi_rows: int, n_epochs: int, n_mi_epochs: int) -> float:
    """Useful FLOPs of one network: training rows x 6 per multiply-add, MI and metric passes x 2."""
    macs = sum(a * b for a, b in zip(dims[:-1], dims[1:]))
    return macs * (6 * n_train * n_epochs + 2 * (n_eval_rows + n_mi_rows) * n_mi_epochs)


def run_engine(task, n: int, epochs: int, mi_every_epoch: bool) -> dict:
    import numpy as np

    from ibjax.mi import Binning
    from ibjax.sweep.plan import mi_epochs
    from ibjax.train import Networks, mlp_copies, run_program

    eng, consts, _ = mlp_copies(n, HIDDEN, "tanh", task=task, estimators=(Binning(n_classes=10),), chunk=epochs + 1)
    data = task.device_data()
    schedule = mi_epochs(epochs, every=1) if mi_every_epoch else np.asarray([0, epochs])
    res = run_program(eng, Networks.of(list(range(n)), [1e-3] * n), consts, data, schedule, epochs)
    run_s = res.train_s - res.compile_s  # the chunk (and placement, init), without XLA's compile
    n_chunks = -(-(epochs + 1) // eng.prog.chunk)
    mesh, args = eng.abstract_chunk_args(consts, data, n_chunks * eng.prog.chunk)
    compiled = eng.compiled_chunk(mesh, *args)  # the executable run_program compiled (cached by signature)
    assert eng.trace_count == 1
    return {"run_s": run_s, "compile_s": res.compile_s, "device_bytes_per_device": compiled.device_bytes,
            "devices": mesh.size, "n_mi_epochs": len(schedule), "dims": eng.prog.model.dims,
            "train_acc": float(np.mean(res.metrics[-1, :, 1]))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rows and epochs (about a minute)")
    ap.add_argument("--n", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--data", type=Path, default=FASHION)
    ap.add_argument("--json", default="benchmarks/images.json")
    args = ap.parse_args(argv)

    import ibjax
    ibjax.configure_process()  # first: one XLA device per core, 64-bit types

    # --quick is the smoke test the suite runs: the same programs on fewer rows (test and MI rows included).
    n_train, epochs, n_eval = (256, 2, 256) if args.quick else (4000, 3, 1000)
    task, source = _task(args.data, n_train, n_eval, n_eval)
    n_eval = len(task.y)
    n_mi = len(task.mi_rows)
    peak, shape_peak = matmul_peak(max(args.n))
    print(f"data: {source}; {len(task.train_idx)} training rows, {n_eval} rows scored, MI on {n_mi}; "
          f"{epochs} epochs per measurement")
    print(f"matmul peak of this process: {peak:.1f} GFLOP/s (2048^3 per device); training shape "
          f"[256,784]@[784,1024]: {shape_peak:.1f} GFLOP/s")
    rows = []
    for n in args.n:
        every = run_engine(task, n, epochs, True)
        ends = run_engine(task, n, epochs, False)
        dims = every["dims"]
        fl_every = n * network_flops(dims, len(task.train_idx), n_eval, n_mi, epochs, every["n_mi_epochs"])
        fl_train = n * network_flops(dims, len(task.train_idx), n_eval, n_mi, epochs, ends["n_mi_epochs"])
        rows.append({
            "n": n, "net_epochs_per_s_mi_every_epoch": n * epochs / every["run_s"],
            "net_epochs_per_s_mi_at_ends": n * epochs / ends["run_s"],
            "gflops_mi_every_epoch": fl_every / every["run_s"] / 1e9,
            "gflops_mi_at_ends": fl_train / ends["run_s"] / 1e9,
            "share_of_peak": fl_train / ends["run_s"] / 1e9 / peak,
            "mi_share_of_time": max(0.0, 1 - ends["run_s"] / every["run_s"]),
            "compile_s": every["compile_s"], "device_mb_per_device": every["device_bytes_per_device"] / 2**20,
            "devices": every["devices"], "train_acc": every["train_acc"],
        })
    base = rows[0]["net_epochs_per_s_mi_at_ends"] if rows[0]["n"] == 1 else None
    data_mb = task.device_data().x.nbytes / 2**20
    print(f"\n{'N':>4} {'net-ep/s':>9} {'(MI every ep)':>13} {'GFLOP/s':>8} {'of peak':>8} {'MI share':>9} "
          f"{'vs N=1':>7} {'compile s':>9} {'MB/device':>10}")
    for r in rows:
        ratio = r["net_epochs_per_s_mi_at_ends"] / base if base else float("nan")
        r["speedup_vs_one_network"] = ratio
        print(f"{r['n']:>4} {r['net_epochs_per_s_mi_at_ends']:>9.2f} {r['net_epochs_per_s_mi_every_epoch']:>13.2f} "
              f"{r['gflops_mi_at_ends']:>8.1f} {100 * r['share_of_peak']:>7.0f}% {100 * r['mi_share_of_time']:>8.0f}% "
              f"{ratio:>6.2f}x {r['compile_s']:>9.2f} {r['device_mb_per_device']:>10.1f}")
    print(f"dataset on the device: {data_mb:.1f} MB ({task.device_data().x.dtype}), held once per program")
    if len(rows) > 1:
        growth = (rows[-1]["device_mb_per_device"] * rows[-1]["devices"] - rows[0]["device_mb_per_device"]
                  * rows[0]["devices"]) / (rows[-1]["n"] - rows[0]["n"])
        print(f"memory per added network: {growth:.1f} MB (the dataset is {data_mb:.1f} MB: not copied per network)")
    out = {"source": source, "peak_gflops": peak, "shape_peak_gflops": shape_peak, "epochs": epochs,
           "n_train": int(len(task.train_idx)), "n_rows": n_eval, "n_mi": n_mi, "dataset_mb": data_mb, "rows": rows,
           "command": " ".join(["python benchmarks/images.py", *(sys.argv[1:] if argv is None else argv)])}
    Path(args.json).write_text(json.dumps(out, indent=2))
    last = rows[-1]
    print(f"share_of_peak_{last['n']}={last['share_of_peak']:.2f}")


if __name__ == "__main__":
    main()
