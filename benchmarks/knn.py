"""Cost of the compressed k-NN estimator (kind: knn) per logged epoch, and its memory, against the MI-sample size.

Work: N networks x L layers of U units (random activations, X of D dimensions), the estimator vmapped over the
networks as the engine runs it, at MI-sample sizes S = 1 024, 4 096, 10 000. Timed best of `--repeats` in this
process, against 30-bin binning of the same layers in the same run (the baseline). Memory: XLA's account of the
compiled call (temporaries), which must grow like S (blocked distances: 64 x S per block), not S^2 — the
ratio of the largest to the smallest S is printed beside S_max / S_min and (S_max / S_min)^2.

    python benchmarks/knn.py [--n 4] [--layers 3] [--sizes 1024 4096 10000] [--json benchmarks/knn.json]

The last line is `temp_growth=<x>` (temporary bytes at S_max over S_min).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=4, help="networks (default 4)")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--units", type=int, default=32)
    ap.add_argument("--input-dim", type=int, default=64)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 10000])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/knn.json")
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    import ibjax  # noqa: F401
    from ibjax.mi import Binning, KNNEstimator, LayerContext

    estimators = {"knn5_pca4": KNNEstimator(n_classes=10), "binning30": Binning(n_classes=10)}
    rows = []
    for s in args.sizes:
        rng = np.random.default_rng(s)
        acts = jnp.asarray(np.tanh(rng.normal(size=(args.n, args.layers, s, args.units))).astype(np.float32))
        x = jnp.asarray(rng.normal(size=(s, args.input_dim)).astype(np.float32))
        y = jnp.asarray(rng.integers(0, 10, s).astype(np.int32))
        mask = jnp.ones(args.units, bool)
        for name, est in estimators.items():
            def one_model(acts_LxSxU, est=est):
                ctx = LayerContext(mask, jnp.float32(-1), jnp.float32(1), True, None, x)
                return jnp.stack([jnp.stack(est(a, y, ctx)[:2]) for a in acts_LxSxU])
            fn = jax.jit(jax.vmap(one_model))
            t = time.perf_counter()
            compiled = fn.lower(acts).compile()
            compile_s = time.perf_counter() - t
            jax.block_until_ready(compiled(acts))
            best = float("inf")
            for _ in range(args.repeats):
                t = time.perf_counter()
                out = jax.block_until_ready(compiled(acts))
                best = min(best, time.perf_counter() - t)
            mem = compiled.memory_analysis()
            temp = int(mem.temp_size_in_bytes) if mem is not None else 0
            rows.append({"samples": s, "estimator": name, "s_per_logged_epoch": best, "compile_s": compile_s,
                         "temp_mb": temp / 2**20, "finite": bool(np.isfinite(np.asarray(out)).all())})
            print(f"S={s:>6} {name:>10}: {best:8.3f} s per logged epoch ({args.n} networks x {args.layers} layers), "
                  f"temporaries {temp / 2**20:8.1f} MB, compile {compile_s:.1f} s", flush=True)
    knn = [r for r in rows if r["estimator"] == "knn5_pca4"]
    lo, hi = knn[0], knn[-1]
    growth = hi["temp_mb"] / lo["temp_mb"] if lo["temp_mb"] else float("nan")
    ratio = hi["samples"] / lo["samples"]
    for r in knn:
        base = next(b for b in rows if b["samples"] == r["samples"] and b["estimator"] == "binning30")
        r["vs_binning"] = r["s_per_logged_epoch"] / base["s_per_logged_epoch"]
        print(f"S={r['samples']:>6}: knn costs {r['vs_binning']:.0f}x binning30")
    print(f"temporaries S={hi['samples']} / S={lo['samples']}: {growth:.1f}x (S ratio {ratio:.1f}, S^2 ratio "
          f"{ratio**2:.0f})")
    out = {"n": args.n, "layers": args.layers, "units": args.units, "input_dim": args.input_dim, "rows": rows,
           "temp_growth": growth, "command": " ".join(["python benchmarks/knn.py", *sys.argv[1:]])}
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"temp_growth={growth:.2f}")


if __name__ == "__main__":
    main()
