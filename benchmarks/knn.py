"""Cost of the high-dimensional estimators per logged epoch, and their memory, against the MI-sample size:
compressed k-NN (kind: knn, plain and weighted), KDE with a leave-one-out bandwidth, adaptive binning.

Work: N networks x L layers of U units (random activations, X of D dimensions), the estimator vmapped over the
networks as the engine runs it, at MI-sample sizes S = 1 024, 4 096, 10 000. Timed best of `--repeats` in this
process, against 30-bin binning of the same layers in the same run (the baseline). Memory: XLA's account of the
compiled call (temporaries), which must grow like S (blocked distances: 64 x S per block), not S^2 — the
ratio of the largest to the smallest S is printed beside S_max / S_min and (S_max / S_min)^2.

    python benchmarks/knn.py [--n 4] [--layers 3] [--sizes 1024 4096 10000] [--json benchmarks/knn.json]

The last line is `temp_growth=<x>` (temporary bytes of knn5_pca4 at S_max over S_min); every estimator's growth is
printed above it and stored (`temp_growth_by_estimator`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=4, help="networks (default 4)")
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--units", type=int, default=32)
    ap.add_argument("--input-dim", type=int, default=64)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 10000])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--estimators", nargs="+", help="a subset (binning30, the baseline, always runs)")
    ap.add_argument("--json", default="benchmarks/knn.json")
    args = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np

    import ibjax
    ibjax.configure_process()  # first: one XLA device per core, 64-bit types
    from ibjax.mi import AdaptiveBinning, Binning, KDEBound, KNNEstimator, LayerContext

    estimators = {"knn5_pca4": KNNEstimator(n_classes=10),
                  "knn20_pca4_wkl": KNNEstimator("knn20_pca4_wkl", 20, 4, n_classes=10, weighted=True),
                  "kde_upper_loo": KDEBound("kde_upper_loo", "upper", None, n_classes=10),
                  "adaptive30": AdaptiveBinning("adaptive30", 30, 10), "binning30": Binning(n_classes=10)}
    if args.estimators:
        estimators = {k: v for k, v in estimators.items() if k in args.estimators or k == "binning30"}
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
    knn = [r for r in rows if r["estimator"] == ("knn5_pca4" if "knn5_pca4" in estimators else "binning30")]
    lo, hi = knn[0], knn[-1]
    growth = hi["temp_mb"] / lo["temp_mb"] if lo["temp_mb"] else float("nan")
    ratio = hi["samples"] / lo["samples"]
    for r in rows:
        if r["estimator"] == "binning30":
            continue
        base = next(b for b in rows if b["samples"] == r["samples"] and b["estimator"] == "binning30")
        r["vs_binning"] = r["s_per_logged_epoch"] / base["s_per_logged_epoch"]
        print(f"S={r['samples']:>6}: {r['estimator']} costs {r['vs_binning']:.0f}x binning30")
    growth_by = {}
    for name in estimators:
        mine = [r for r in rows if r["estimator"] == name]
        growth_by[name] = mine[-1]["temp_mb"] / mine[0]["temp_mb"] if mine[0]["temp_mb"] else float("nan")
        print(f"temporaries of {name}: {growth_by[name]:.1f}x from S={mine[0]['samples']} to S={mine[-1]['samples']}")
    print(f"temporaries S={hi['samples']} / S={lo['samples']}: {growth:.1f}x (S ratio {ratio:.1f}, S^2 ratio "
          f"{ratio**2:.0f})")
    out = {"n": args.n, "layers": args.layers, "units": args.units, "input_dim": args.input_dim, "rows": rows,
           "temp_growth": growth, "temp_growth_by_estimator": growth_by, "command": " ".join(["python benchmarks/knn.py", *(sys.argv[1:] if argv is None else argv)])}
    Path(args.json).write_text(json.dumps(out, indent=2))
    print(f"temp_growth={growth:.2f}")


if __name__ == "__main__":
    main()
