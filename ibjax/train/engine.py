"""The compiled chunk: a `lax.scan` over epochs of stacked, vmapped networks, with MI measured inline; its mesh,
its ahead-of-time compilation and the process's cache of compiled programs.

Per scan step e (the state after e epochs):
  1. if e is a scheduled MI epoch (a condition shared by all models, so `lax.cond` stays a real branch):
     forward pass of every model on the MI sample, every estimator on every layer, train/test metrics
     (`ibjax.train.measure`);
  2. if e < epochs: one training epoch (each model shuffles with its own key; minibatches by an inner scan),
     with the per-layer gradient mean and spread over that epoch's minibatches (`ibjax.train.epoch`).
Only the small per-epoch outputs leave the device. The scan covers epochs 0..E, so the last measurement
happens inside the same program; all chunks have the same length, so nothing recompiles after the first.
The math of one network lives in epoch.py and measure.py (pure functions of the Program); this module only
stacks it over networks and devices. The host loop that calls the chunk chunk after chunk is `ibjax.train.loop`.

Shapes: M models, N MI samples, L dense layers (hidden + output), E estimators, C epochs per chunk.
"""

from __future__ import annotations

import functools
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ibjax import native
from ibjax.data.task import Data
from ibjax.models.mlp import ModelConsts
from ibjax.train.epoch import make_init, make_loss, make_train_epoch
from ibjax.train.measure import make_measure, mi_columns
from ibjax.train.program import Networks, Program, TrainState
from ibjax.train.rows import data_axes, data_specs


def model_mesh(n_models: int) -> tuple[Mesh, int]:
    """The 1-D mesh that shards `n_models` networks over the local devices, and how many copies pad the model
    count to a multiple of the device count (fewer models than devices: fewer devices, no idle copies)."""
    devices = jax.local_devices()[:n_models]
    return Mesh(np.asarray(devices), ("model",)), -n_models % len(devices)


def _arg_spec(x) -> jax.ShapeDtypeStruct:
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding, weak_type=getattr(x, "weak_type", False))


@dataclass(frozen=True)
class CompiledChunk:
    """An ahead-of-time compiled chunk and what XLA says it needs."""

    executable: object  # jax.stages.Compiled
    compile_s: float  # tracing + XLA compilation
    options: tuple = ()  # the XLA compiler options it was compiled with, as (name, value) pairs

    @property
    def device_bytes(self) -> int:
        """Peak device memory of one call, per device: arguments + outputs + temporaries, less the donated
        state that the outputs reuse (XLA's own buffer assignment, so it matches what the device allocates)."""
        m = self.executable.memory_analysis()
        if m is None:  # a backend without an account: 0, and sizing says it could not size
            return 0
        return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                   - m.alias_size_in_bytes)


# A chunk whose training step is the native kernel (ibjax.native.mlp) leaves XLA only the MI measurement and the
# bookkeeping around the kernel calls. For those programs XLA:CPU's legacy loop emitters compile ~40 % faster than
# its MLIR fusion emitters (2.3 -> 1.4 s for the tests' 6-layer MLP chunk), and the chunk runs as fast (12-bit task,
# N = 16 and 256, MI every epoch and every 10th: within 2 %; BUILD_NOTES.md, "Suite time"). Not for programs XLA
# trains: there the legacy emitters ran the MLP's epoch 16 % slower, and a conv net's 2.5x slower.
NATIVE_TRAINING_CPU_OPTIONS = MappingProxyType({"xla_cpu_use_fusion_emitters": False})

# The initial-state program (every network's weights drawn from its seed: threefry and truncated normals, run once
# per bucket) compiles 3-6x faster on the CPU with LLVM at optimization level 1 (a conv net's 3.0-6.1 s -> 1.0-1.2 s,
# a user Flax module's 1.3-2.5 -> 0.5 s, the MLP's 0.6-0.9 -> 0.5 s, at 1-32 networks), and another third faster
# with XLA's legacy loop emitters (0.46-0.74 -> 0.32-0.43 s for the three families; jax 0.11's XLA has no legacy
# emitters, and level 1 alone applies there), and draws bit-identical weights (every leaf compared; BUILD_NOTES.md,
# "Suite time"). The chunks keep the default: at level 1 a conv chunk compiled no faster and its metrics moved by
# float rounding.
INIT_CPU_OPTIONS = MappingProxyType({"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False})


@functools.cache
def _accepts(name: str, value) -> bool:
    """Whether this process's XLA knows the compiler option (a one-op program compiled with it)."""
    try:
        jax.jit(lambda x: x + 1, compiler_options={name: value}).lower(np.float32(0)).compile()
    except Exception as e:  # noqa: BLE001 - XLA raises a plain XlaRuntimeError
        if "No such compile option" not in str(e):
            raise
        return False
    return True


def known_cpu_options(options) -> dict:
    """The options this process's XLA knows (a later XLA may drop one, e.g. the legacy emitters): the program then
    compiles as it comes rather than failing. Each checked once per process on a one-op program."""
    return {k: v for k, v in options.items() if _accepts(k, v)}


INIT_PROGRAMS_KEPT = 32
_INIT_PROGRAMS: OrderedDict = OrderedDict()


def _init_program(prog: Program, init_one: Callable, options: dict):
    """The jitted initial-state program of `prog` (`init_one`: its one-network initializer), shared by every
    Program with the same family, optimizer and weight-decay switch (all that the initial state depends on):
    Programs that differ only in their estimators, chunk length or training-set size reuse its traces and compiled
    executables (jax.jit keeps them per argument shapes) instead of compiling the same program again (the test
    suite made ~120 of them, ~0.4 s each)."""
    make = lambda: jax.jit(jax.vmap(init_one), compiler_options=options or None)
    key = (prog.family, prog.optimizer, prog.weight_decay, tuple(sorted(options.items())))
    try:
        fn = _INIT_PROGRAMS.pop(key, None)
    except TypeError:  # a family holding an unhashable model (a user module that is not comparable): no reuse
        return make()
    _INIT_PROGRAMS[key] = fn = fn or make()
    while len(_INIT_PROGRAMS) > INIT_PROGRAMS_KEPT:
        _INIT_PROGRAMS.popitem(last=False)
    return fn


# Environment switches read while a chunk is traced (the native kernels, the model loop): a compiled program is
# reused only under the switches it was traced with.
TRACE_SWITCHES = ("IBJAX_NATIVE", *native.SWITCHES.values(), "IBJAX_MODEL_LOOP")
ENGINES_KEPT = 8  # the process keeps the compiled programs of this many Programs (least recently used dropped)
_ENGINES: OrderedDict = OrderedDict()


def engine_for(prog: Program) -> Engine:
    """The process's Engine for `prog`, with the chunks it has compiled: a sweep run again in the same process
    (a notebook re-running a cell, `--resume` after an error, the test suite's in-process CLI calls) neither
    traces nor compiles its programs again. Keyed by the Program (which fixes the program's structure) and the
    environment switches read at trace time; at most ENGINES_KEPT Programs are kept."""
    key = (prog, tuple(os.environ.get(k) for k in TRACE_SWITCHES))
    try:
        eng = _ENGINES.pop(key)
    except KeyError:
        eng = Engine(prog)
    except TypeError:  # a Program holding an unhashable model (a user module that is not comparable): no reuse
        return Engine(prog)
    _ENGINES[key] = eng
    while len(_ENGINES) > ENGINES_KEPT:
        _ENGINES.popitem(last=False)
    return eng


class Engine:
    """Compiled functions for one Program. `trace_count` counts traces (a retrace means a recompile)."""

    def __init__(self, prog: Program):
        self.prog = prog
        self.trace_count = 0
        self.family = prog.family
        # One network's math (pure functions of the Program); the chunk vmaps or maps them over the networks.
        self.loss = make_loss(prog)
        self.train_epoch = make_train_epoch(prog)
        self.measure = make_measure(prog)
        self.init_one = make_init(prog)
        self.init_options = known_cpu_options(INIT_CPU_OPTIONS) if jax.default_backend() == "cpu" else {}
        self.init_state = _init_program(prog, self.init_one, self.init_options)
        self._chunk_programs: dict = {}
        self._compiled: dict = {}  # argument signature -> CompiledChunk

    def mi_columns(self, data: Data) -> tuple[str, ...]:
        """The names of `measure`'s MI quantities, in the order of its last axis (ibjax.train.measure)."""
        return mi_columns(self.prog, data)

    def chunk_program(self, mesh: Mesh):
        """The jitted chunk with the model axis split over `mesh` ("model" axis) by `shard_map`.

        Each device runs the whole chunk on its own models, with no communication: every op, the native MI
        kernel included, sees only local rows (the SPMD partitioner would gather a custom call's operands
        onto every device instead).
        """
        if mesh not in self._chunk_programs:
            by_model = P("model")
            run = functools.partial(self._run_chunk, loop_models=self.loops_models(mesh))
            body = jax.shard_map(run, mesh=mesh,
                                 in_specs=(by_model, by_model, data_specs(), P(), P(), P()),
                                 out_specs=(by_model, P(None, "model")), check_vma=False)
            self._chunk_programs[mesh] = jax.jit(body, donate_argnums=(0,))
        return self._chunk_programs[mesh]

    def loops_models(self, mesh: Mesh) -> bool:
        """Whether each device trains its networks one after another (`lax.map`) rather than as one batch
        (`vmap`): on the CPU, where the family says its networks do not batch well (`batches_on_cpu`: conv and
        user modules loop, MLPs batch) or an estimator's factorizations must not be batched; accelerators batch.
        IBJAX_MODEL_LOOP=map|vmap overrides the choice (for A/B runs)."""
        forced = os.environ.get("IBJAX_MODEL_LOOP")
        if forced in ("map", "vmap"):
            return forced == "map"
        cpu = mesh.devices.flat[0].platform == "cpu"
        # XLA:CPU hangs (every thread waiting) on a batched eigh of 2+ wide matrices per device (e.g. [2, 256,
        # 256]) in a program sharded over 2+ host devices (BUILD_NOTES.md, issue 19), and on a batched Cholesky of
        # [6, 101, 101] inside the chunk even on one host device (issue 31); the k-NN estimators' PCA and the
        # Gaussian estimator's log-determinants are such calls under vmap. Looping the networks keeps each
        # factorization unbatched.
        lapack = cpu and any(e.batched_lapack for e in self.prog.estimators)
        return cpu and (not self.family.batches_on_cpu or lapack)

    @property
    def run_chunk(self):
        """The chunk program over all local devices (the model count must be a multiple of their number)."""
        return self.chunk_program(Mesh(np.asarray(jax.local_devices()), ("model",)))

    def compiled_chunk(self, mesh: Mesh, *args) -> CompiledChunk:
        """The chunk program compiled ahead of time for these arguments (arrays or `jax.ShapeDtypeStruct`s with
        their shardings), cached by their shapes, dtypes and shardings: program sizing (ibjax.sweep.sizing) compiles
        a bucket to read its memory, and training then calls that same executable."""
        specs = jax.tree.map(_arg_spec, args)
        leaves, tree = jax.tree.flatten(specs)
        key = (mesh, tree, tuple((a.shape, a.dtype, a.weak_type, a.sharding) for a in leaves))
        if key not in self._compiled:
            t = time.perf_counter()
            lowered = self.chunk_program(mesh).lower(*specs)
            # Each family's own options, measured on its programs (the MLP's would double a conv net's epoch).
            cpu = mesh.devices.flat[0].platform == "cpu"
            options = dict(self.family.cpu_compiler_options) if cpu else {}
            if cpu and self.family.native_kernel and native.TRAINING_CALL in lowered.as_text():
                options.update(NATIVE_TRAINING_CPU_OPTIONS)
            # Only the options this XLA knows: jax 0.11's has no legacy emitters, and dropping every option for
            # that one had compiled its MLP chunks with the YNNPACK fusions the family turns off.
            options = known_cpu_options(options) if cpu else options
            executable = lowered.compile(compiler_options=options) if options else lowered.compile()
            self._compiled[key] = CompiledChunk(executable, time.perf_counter() - t, tuple(sorted(options.items())))
        return self._compiled[key]

    def abstract_chunk_args(self, consts: ModelConsts, data: Data, n_log: int):
        """(mesh, args) of the chunk for these models, as run_program places them, without computing anything:
        the signature under which `compiled_chunk` caches the bucket's executable."""
        n_real = len(consts.act_id)
        mesh, n_pad = model_mesh(n_real)
        by_model, replicated = NamedSharding(mesh, P("model")), NamedSharding(mesh, P())
        m = n_real + n_pad
        consts_s = jax.tree.map(lambda a: jax.ShapeDtypeStruct((m, *a.shape[1:]), a.dtype, sharding=by_model),
                                consts)
        vec = lambda dtype: jax.ShapeDtypeStruct((m,), dtype)
        nets = Networks(vec(jnp.uint32), vec(jnp.float32), vec(jnp.float32), vec(jnp.float32))
        state = jax.eval_shape(self.init_state, nets, consts_s)
        state = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=by_model, weak_type=a.weak_type), state)
        data_s = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                              data._replace(runs=None))
        if data.runs is not None:
            data_s = data_s._replace(runs=jax.tree.map(
                lambda a: jax.ShapeDtypeStruct((m, *a.shape[1:]), a.dtype, sharding=by_model), data.runs))
        scalar = jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated)
        return mesh, (state, consts_s, data_s, jax.ShapeDtypeStruct((n_log,), jnp.bool_, sharding=replicated),
                      scalar, scalar)

    # ------------------------------------------------------------------ all models, one chunk
    def _run_chunk(self, state: TrainState, consts: ModelConsts, data: Data, log_mask, n_epochs, start,
                   loop_models: bool = False):
        self.trace_count += 1  # runs only while tracing
        by_run = data_axes()
        mi_key = lambda s: jax.vmap(lambda k: jax.random.fold_in(k, 0))(s.key)
        if loop_models:  # one network after another on this device (see `loops_models`)
            shared = lambda d: d._replace(runs=None)
            measure_all = lambda p, c, d, k: lax.map(
                lambda a: self.measure(a[0], a[1], shared(d)._replace(runs=a[2]), a[3]), (p, c, d.runs, k))
            train_all = lambda s, c, d: lax.map(
                lambda a: self.train_epoch(a[0], a[1], shared(d)._replace(runs=a[2])), (s, c, d.runs))
        else:
            measure_all = jax.vmap(self.measure, in_axes=(0, 0, by_run, 0))
            train_all = jax.vmap(self.train_epoch, in_axes=(0, 0, by_run))
        # Jitted so that the body's call reuses the trace made here for the shapes (tracing the measurement, all
        # estimators on all layers, is ~1 s of a chunk's trace; inside the chunk the jit is inlined).
        measure_all = jax.jit(measure_all)
        mi_shape, met_shape = jax.eval_shape(measure_all, state.params, consts, data, mi_key(state))
        m, n_layers = consts.act_id.shape[0], self.prog.n_layers

        def body(state, e):
            mi, met = lax.cond(
                log_mask[e],
                lambda s: measure_all(s.params, consts, data, mi_key(s)),
                lambda s: (jnp.zeros(mi_shape.shape, mi_shape.dtype), jnp.zeros(met_shape.shape, met_shape.dtype)),
                state)
            state, grads = lax.cond(
                e < n_epochs,
                lambda s: train_all(s, consts, data),
                lambda s: (s, jnp.zeros((m, n_layers, 2), jnp.float32)),
                state)
            return state, (mi, met, grads)

        return lax.scan(body, state, start + jnp.arange(self.prog.chunk))
