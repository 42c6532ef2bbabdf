"""Estimators called outside a compiled program (a notebook, the validate command, a test) run as one compiled
program per estimator, shapes and context, not op by op.

Inside the chunk (or any jit or vmap) an estimator is traced into the caller's program, as before. Called
eagerly, each of its few dozen small ops was compiled on its own the first time it met a shape (~20-30 ms each on
a CPU): a call on new shapes cost ~1 s of compiling. One compiled program for the whole call is ~0.1 s.
"""

from __future__ import annotations

import functools

import jax

from ibjax.mi.interface import LayerContext, MIEstimate


def compiled_when_eager(call):
    """Decorate an estimator's `__call__(self, acts, labels, ctx)`: compiled as a whole when no argument is being
    traced. The context's Python bools (e.g. `bounded=True`, which an estimator may test with `is True` to skip
    work) stay Python values in the compiled program; everything else (arrays, Python numbers) is its argument."""

    @functools.wraps(call)
    def wrapper(self, acts_NxU, labels_N, ctx: LayerContext) -> MIEstimate:
        leaves, tree = jax.tree.flatten(ctx)
        if any(isinstance(v, jax.core.Tracer) for v in (*leaves, *jax.tree.leaves((acts_NxU, labels_N)))):
            return call(self, acts_NxU, labels_N, ctx)
        python = [type(v) is bool for v in leaves]
        static = tuple((v,) if p else None for v, p in zip(leaves, python))
        arrays = [v for v, p in zip(leaves, python) if not p]
        try:
            compiled = _compiled(call, self, tree, static)
        except TypeError:  # settings that cannot key a program (an unhashable field): op by op, as before
            return call(self, acts_NxU, labels_N, ctx)
        return compiled(acts_NxU, labels_N, arrays)

    return wrapper


@functools.lru_cache(maxsize=256)
def _compiled(call, est, tree, static):
    """The jitted call for one estimator (its settings are hashable: they key the program) and context layout."""

    def run(acts_NxU, labels_N, arrays):
        it = iter(arrays)
        leaves = [s[0] if s is not None else next(it) for s in static]
        return call(est, acts_NxU, labels_N, jax.tree.unflatten(tree, leaves))

    return jax.jit(run)
