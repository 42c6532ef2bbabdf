"""Cost of each MI estimator per logged epoch, against a training epoch and against binning, in one run.

Work: the 12-bit task, 12-10-7-5-4-3-2 tanh, Adam, batch 256, N networks on all local devices, MI on all 4096
patterns. For each estimator set, the compiled chunk is timed with MI at every step and no training (the MI
pass alone: forward pass + estimators), and once with training only; every configuration is timed `--repeats`
times in this process and the best is kept (the machines are shared and noisy). Reported: ms per MI epoch for
all N networks, that as a multiple of a training epoch, and the estimator's own cost (MI pass minus the
forward-only pass). "all" runs every estimator at once, to show what sharing the forward pass saves.

    python benchmarks/estimators.py [--n 64] [--repeats 3] [--json benchmarks/estimators.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/estimators.py` from the root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=64, help="networks (default 64)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="benchmarks/estimators.json")
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import ibjax
    ibjax.configure_process()  # first: one XLA device per core, 64-bit types
    from benchmarks.accelerator import ForwardOnly  # the MI pass without an estimator
    from ibjax.data import load_task
    from ibjax.mi import (
        Binning,
        ExactCounting,
        FixedWidthBinning,
        IdnnsBinning,
        KDEBound,
        NoisyMixture,
        QuantileBinning,
    )
    from ibjax.models.mlp import MLP, stack_consts
    from ibjax.spec import DataSpec
    from ibjax.train import Engine, Networks, Program

    hidden = (10, 7, 5, 4, 3)
    sets = {
        "forward_only": (ForwardOnly(),),
        "binning30": (Binning(n_classes=2),),
        "binning30_neuron": (Binning("b", 30, "neuron", n_classes=2),),
        "width0.07": (FixedWidthBinning(n_classes=2),),
        "quantile30": (QuantileBinning(n_classes=2),),
        "idnns30": (IdnnsBinning(n_classes=2),),
        "exact": (ExactCounting(n_classes=2),),
        "kde_upper (1024 rows)": (KDEBound(max_samples=1024),),
        "kde_upper+lower (1024 rows)": (KDEBound(max_samples=1024), KDEBound("kde_lower", "lower", max_samples=1024)),
        "noisy (1024 rows)": (NoisyMixture(max_samples=1024),),
        "kde_upper (4096 rows)": (KDEBound(),),
    }
    sets["binning30+idnns30+width0.07"] = sets["binning30"] + sets["idnns30"] + sets["width0.07"]
    task = load_task(DataSpec())
    n = args.n
    devices = jax.local_devices()[:n]
    mesh = Mesh(np.asarray(devices), ("model",))
    by_model, rep = NamedSharding(mesh, P("model")), NamedSharding(mesh, P())
    consts = jax.device_put(stack_consts([(hidden, "tanh")] * n, ("tanh",), 12, hidden), by_model)
    data = jax.device_put(task.device_data(), rep)
    chunk = 4

    def timed(ests, mi: bool, train: bool) -> float:
        eng = Engine(Program(MLP((12, *hidden, 2), ("tanh",)), "adam", task.train_idx.size, 256, ests, chunk))
        nets = jax.device_put(Networks.of(np.arange(n), 4e-4), by_model)
        state = jax.device_put(eng.init_state(nets, consts), by_model)
        mask = jnp.asarray(np.full(chunk, mi))
        call_args = lambda s: (s, consts, data, mask, jnp.int32(chunk if train else 0), jnp.int32(0))
        fn = eng.chunk_program(mesh).lower(*call_args(state)).compile()
        best = np.inf
        for _ in range(args.repeats + 1):  # the first call warms up
            fresh = jax.tree.map(jnp.copy, state)
            jax.block_until_ready(fresh)
            t = time.perf_counter()
            out = fn(*call_args(fresh))
            jax.block_until_ready(out)
            best = min(best, (time.perf_counter() - t) / chunk * 1e3)
        return best

    train_ms = timed(sets["binning30"], mi=False, train=True)
    rows = []
    base = None
    for name, ests in sets.items():
        ms = timed(ests, mi=True, train=False)
        if name == "forward_only":
            base = ms
        rows.append({"estimators": name, "mi_epoch_ms": ms, "x_train_epoch": ms / train_ms,
                     "estimator_ms": ms - base})
        print(f"  {name}: {ms:.1f} ms", flush=True)
    by = {r["estimators"]: r for r in rows}
    separate = sum(by[k]["estimator_ms"] for k in ("binning30", "idnns30", "width0.07"))
    print(f"N = {n} networks on {len(devices)} device(s); training epoch {train_ms:.1f} ms")
    print(f"{'estimators':>30} {'MI epoch ms':>12} {'x train epoch':>14} {'estimator ms':>13}")
    for r in rows:
        print(f"{r['estimators']:>30} {r['mi_epoch_ms']:>12.1f} {r['x_train_epoch']:>14.2f} {r['estimator_ms']:>13.1f}")
    print(f"three binning estimators together: {by['binning30+idnns30+width0.07']['estimator_ms']:.1f} ms of "
          f"estimator time vs {separate:.1f} ms for the three run separately (the forward pass is shared)")
    with open(args.json, "w") as f:
        json.dump({"n": n, "devices": len(devices), "train_epoch_ms": train_ms, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
