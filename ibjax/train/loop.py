"""The host loop over a bucket's chunks: place the stacked state on the devices, call the compiled chunk,
stream results (and checkpoints) to disk, stop cleanly when asked."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ibjax.data.task import Data
from ibjax.models.mlp import ModelConsts
from ibjax.train.engine import Engine, model_mesh
from ibjax.train.program import Networks, TrainState


@dataclass
class BucketResult:
    """Host arrays of one bucket. Epoch axes: `mi_epochs` for mi/metrics, `grad_epochs` for grads."""

    mi_epochs: np.ndarray  # [T]
    mi: np.ndarray  # [T, M, L, E, K]: the K quantities `mi_columns` names (i_xt, i_ty, bin_lo, bin_hi, ...)
    metrics: np.ndarray  # [T, M, K]: the K metrics `metric_names` names (Program.metric_names)
    grad_epochs: np.ndarray  # [G]
    grads: np.ndarray  # [G, M, L, 2]: grad_mean, grad_std
    params_finite: np.ndarray  # [M] bool, final parameters all finite
    compile_s: float  # tracing + XLA compilation of the chunk program (when sizing compiled it, that time)
    train_s: float  # everything: init, compile, all chunks
    checkpoint_s: float | None = None  # mean seconds per checkpoint save (None: none saved)
    resumed_at_chunk: int = 0  # the first chunk run in this process (> 0 after a resume)
    # The trained stack as it is on the devices (padding copies of the last network after the first M), for
    # a caller that measures more than the chunk did; nothing is copied to the host unless it asks.
    state: TrainState | None = None
    mi_columns: tuple[str, ...] = ("i_xt", "i_ty", "bin_lo", "bin_hi")  # what the engine measured, in mi's order
    metric_names: tuple[str, ...] = ("train_loss", "train_acc", "test_loss", "test_acc")  # in metrics' order


class Interrupted(Exception):
    """A stop was requested (SIGTERM/SIGINT); the bucket was checkpointed after its last finished chunk."""


def run_program(engine: Engine, networks: Networks, consts: ModelConsts, data: Data, schedule: np.ndarray,
                n_epochs: int, progress: Callable[[int, int, float], None] | None = None,
                checkpoints=None, stop_requested: Callable[[], bool] | None = None,
                started: Callable[[float], None] | None = None) -> BucketResult:
    """Train every network of a bucket (`networks`: their seeds and hyperparameters; `consts`: their stacked
    constants) for n_epochs, chunk by chunk, measuring MI at `schedule` epochs.

    checkpoints: a `BucketCheckpoints`; the bucket resumes from its latest checkpoint if there is one, and is
    checkpointed after chunks (as often as it says). stop_requested: checked after every chunk; when True the
    bucket is checkpointed and `Interrupted` raised. started: called with the set-up seconds (placement,
    init, compile) just before the first chunk runs.
    """
    chunk = engine.prog.chunk
    n_chunks = engine.prog.n_chunks(n_epochs)
    log_mask = np.zeros(n_chunks * chunk, bool)
    log_mask[schedule] = True
    grad_mask = np.zeros_like(log_mask)
    grad_mask[schedule[schedule > 0] - 1] = True  # step e trains epoch e + 1

    t0 = time.perf_counter()
    n_real = networks.count
    mesh, by_model, replicated, consts, data, state = _placed(engine, networks, consts, data)
    parts = {"mi": [], "metrics": [], "grads": []}  # in memory only without checkpoints (streamed otherwise)
    first_chunk = 0
    restored = checkpoints.restore(state) if checkpoints is not None else None
    if restored is not None:
        first_chunk, host_state = restored
        # Exactly the saved arrays, placed as a fresh state is: the resumed chunks compute what the
        # uninterrupted run computed (same program, same inputs).
        state = jax.device_put(jax.tree.map(lambda t, a: np.asarray(a, t.dtype), state, host_state), by_model)
    scalar = lambda v: jax.device_put(np.int32(v), replicated)
    log_mask_d, n_epochs_d = jax.device_put(log_mask, replicated), scalar(n_epochs)
    # Compile once, ahead of time, and call that executable for every chunk: every chunk has the same
    # shapes, so nothing can recompile (and the compile time is measured exactly). Sizing may already have
    # compiled it (the cache is keyed by the arguments' shapes and shardings).
    compiled = engine.compiled_chunk(mesh, state, consts, data, log_mask_d, n_epochs_d, scalar(0))
    run_chunk, compile_s = compiled.executable, compiled.compile_s
    t_train = time.perf_counter()
    if started is not None:
        started(t_train - t0)
    checkpoint_s = []
    for c in range(first_chunk, n_chunks):
        start = c * chunk
        state, (mi, met, grads) = run_chunk(state, consts, data, log_mask_d, n_epochs_d, scalar(start))
        state = jax.device_put(state, by_model)  # a no-op unless the compiler chose another layout
        sel, gsel = log_mask[start:start + chunk], grad_mask[start:start + chunk]
        mi, met, grads = jax.device_get((mi, met, grads))
        this = {"mi": mi[sel, :n_real], "metrics": met[sel, :n_real], "grads": grads[gsel, :n_real]}
        if checkpoints is not None:
            checkpoints.write_chunk(c, this)  # to disk: host memory does not grow with epochs
        else:
            for k, v in this.items():
                parts[k].append(v)
        if progress is not None:
            progress(min(start + chunk, n_epochs), n_epochs, time.perf_counter() - t_train)
        stop = stop_requested is not None and stop_requested()
        if checkpoints is not None and c + 1 < n_chunks and (stop or checkpoints.due()):
            checkpoint_s.append(checkpoints.save(c + 1, state))
        if stop and c + 1 < n_chunks:
            raise Interrupted(f"stopped after epoch {min(start + chunk, n_epochs)} of {n_epochs}")
    if checkpoints is not None:
        parts = checkpoints.read_chunks(n_chunks)
    finite = _all_finite(state.params)
    total = time.perf_counter() - t0
    return BucketResult(
        mi_epochs=np.flatnonzero(log_mask), mi=np.concatenate(parts["mi"]), metrics=np.concatenate(parts["metrics"]),
        grad_epochs=np.flatnonzero(grad_mask) + 1, grads=np.concatenate(parts["grads"]),
        params_finite=np.asarray(finite)[:n_real], compile_s=compile_s, train_s=total,
        checkpoint_s=float(np.mean(checkpoint_s)) if checkpoint_s else None, resumed_at_chunk=first_chunk,
        state=state, mi_columns=engine.mi_columns(data), metric_names=engine.prog.metric_names)


def _all_finite(params) -> np.ndarray:
    """[N] whether every parameter of each network is finite. On the CPU, read in place with NumPy: a jitted check
    compiled one program per parameter structure (~0.14 s each, ~6 s of the test suite) to save nothing there. On
    an accelerator, reduced on the device (the stacked parameters may be large to copy)."""
    if jax.default_backend() == "cpu":
        leaves = jax.device_get(jax.tree.leaves(params))
        return np.all([np.isfinite(np.asarray(a)).reshape(len(a), -1).all(axis=1) for a in leaves], axis=0)
    return np.asarray(jax.device_get(_all_finite_on_device(params)))


@jax.jit
def _all_finite_on_device(params) -> jax.Array:
    return jax.vmap(lambda p: jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(p)])))(params)


def _placed(engine: Engine, networks: Networks, consts: ModelConsts, data: Data):
    """The bucket's inputs on the devices and its initial state: the model axis sharded over all local devices
    (a 1-D mesh), padded to a multiple of the device count with copies of the last model (whose results are
    dropped); the shared data replicated. Returns (mesh, by_model, replicated, consts, data, state)."""
    mesh, n_pad = model_mesh(networks.count)
    pad = lambda a: np.concatenate([np.asarray(a), np.repeat(np.asarray(a)[-1:], n_pad, axis=0)])
    by_model, replicated = NamedSharding(mesh, P("model")), NamedSharding(mesh, P())
    consts = jax.device_put(jax.tree.map(pad, consts), by_model)
    runs = None if data.runs is None else jax.device_put(jax.tree.map(pad, data.runs), by_model)
    data = jax.device_put(data._replace(runs=None), replicated)._replace(runs=runs)
    nets = jax.device_put(jax.tree.map(pad, networks), by_model)
    # Every state leaf has the model axis first; pin it to the mesh (the compiler may have replicated
    # leaves that do not depend on sharded inputs, such as zero biases).
    state = jax.device_put(engine.init_state(nets, consts), by_model)
    return mesh, by_model, replicated, consts, data, state
