"""The compiled chunk: a `lax.scan` over epochs of stacked, vmapped networks, with MI measured inline.

Per scan step e (the state after e epochs):
  1. if e is a scheduled MI epoch (a condition shared by all models, so `lax.cond` stays a real branch):
     forward pass of every model on the MI sample, every estimator on every layer, train/test metrics;
  2. if e < epochs: one training epoch (each model shuffles with its own key; minibatches by an inner scan),
     with the per-layer gradient mean and spread over that epoch's minibatches.
Only the small per-epoch outputs leave the device. The scan covers epochs 0..E, so the last measurement
happens inside the same program; all chunks have the same length, so nothing recompiles after the first.
The host loop that calls it chunk after chunk is `ibjax.train.loop`.

Shapes: M models, N MI samples, L dense layers (hidden + output), E estimators, C epochs per chunk.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ibjax import native
from ibjax.data.task import Data
from ibjax.data.teacher import generalization_error
from ibjax.mi.interface import LayerContext
from ibjax.models.family import ModelFamily, weight_mask
from ibjax.models.mlp import MLP, ModelConsts
from ibjax.train.shuffle import feistel_permutation

# For the chunk program on the CPU only (never set process-wide): XLA 0.10's YNNPACK fusions of elementwise
# ops and reductions ran the MI pass's softmax and loss ~3x slower than XLA's own loops when each core is
# its own device (12.6 vs ~4 ms per device-epoch for 128 networks; BUILD_NOTES.md, issue 6, session 6).
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
NOISE_DRAWS = 8  # forward passes per logged epoch of a stochastic network (samples of each layer given X)


# The native kernel copies x whole (transposed) on every call: worth it only for small inputs like the 12-bit
# task's 4 096 x 12; image data goes through XLA's matmuls.
KERNEL_MAX_X = 2**18


def kernel_reads(data: Data, x) -> bool:
    """Whether the native MLP kernel may take `x` (rows of data.x as read_rows gives them): float32 rows shared by
    every network (no per-network input variants), small enough to copy on every call."""
    runs = data.runs
    return (data.x.dtype == jnp.float32 and not (runs is not None and runs.input_variants)
            and x.size <= KERNEL_MAX_X)


def read_rows(data: Data, rows):
    """Rows of x as the networks see them (float32): x[rows] (every row when rows is None), preprocessed
    inside the program when x is stored as uint8; inside a vmap over networks, with this network's random-input
    variant (data.runs: shuffled pixels, Gaussian images) applied."""
    x = data.x if rows is None else data.x[rows]
    if x.dtype != jnp.float32:
        x = x.astype(jnp.float32) * data.scale + data.shift
    runs = data.runs
    if runs is None or not runs.input_variants:
        return x
    x = x[:, runs.pixel_perm]
    rows = jnp.arange(data.x.shape[0]) if rows is None else rows
    # A fixed Gaussian image per stored row: its draw depends on the network's seed and the row only.
    key = jax.random.PRNGKey(runs.gaussian_seed)
    noise = jax.vmap(lambda r: jax.random.normal(jax.random.fold_in(key, r), (x.shape[1],)))(rows)
    return jnp.where(runs.gaussian, runs.gaussian_mean + runs.gaussian_std * noise, x)


def data_specs() -> Data:
    """How the chunk's data is split over the model mesh: shared arrays replicated, per-run variants by model."""
    return Data(*([P()] * (len(Data._fields) - 1)), runs=P("model"))


def data_axes() -> Data:
    """vmap axes of the data over the models: the per-run variants only."""
    return Data(*([None] * (len(Data._fields) - 1)), runs=0)


def compact_below_dynamic(values_K: jnp.ndarray, n) -> jnp.ndarray:
    """The values of `values_K` below a traced n, in order, then zeros (a permutation of [0, n) first)."""
    keep = values_K < n
    pos = jnp.cumsum(keep) - 1
    return jnp.zeros(values_K.shape[0], jnp.int32).at[jnp.where(keep, pos, values_K.shape[0])].set(
        values_K, mode="drop")


def masked_mean(v, mask):
    """Mean of v over the rows where mask > 0 (where, not a product: a row outside the mask must not reach the
    mean, and NaN * 0 is NaN)."""
    return jnp.sum(jnp.where(mask > 0, v, 0.0)) / jnp.sum(mask)


# `measure`'s metrics, in the order of its metrics axis (metrics.parquet's columns): a classification task's,
# and a regression task's (losses: mean squared error summed over the outputs, E_g's scale; gen_error: E_g).
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")
REGRESSION_METRICS = ("train_loss", "test_loss", "gen_error")


class TrainState(NamedTuple):
    params: dict
    opt_state: object
    key: jnp.ndarray


@dataclass(frozen=True)
class Program:
    """What fixes the compiled program's shapes and structure (hashable)."""

    dims: tuple[int, ...]  # (in_dim, *hidden_pad, n_classes)
    activations: tuple[str, ...]
    optimizer: str
    n_train: int
    batch_size: int
    estimators: tuple  # MIEstimator instances (frozen dataclasses)
    chunk: int
    quantize_bits: int | None = None  # hidden layers on 2^bits levels (Lorenzen et al.), training and MI alike
    noise_std: float | None = None  # Gaussian noise on every hidden layer (a stochastic network), training and MI
    # Per-run training sets (data.runs.train_idx): each epoch's order is a permutation of [0, n_pool) (the rows
    # any network may train on) cut to the network's own count, so a network trains the same whatever the other
    # networks of its program are; n_train is then the largest training set of the program.
    n_pool: int | None = None
    # Task-irrelevant inputs: the MI sample is n_rel relevant rows x r irrelevant draws (row i * r + j); every
    # estimator also gives I(T;X_rel) and I(T;X_irr), counting the part's index as it counts labels.
    irrelevant: tuple[int, int] | None = None
    # The model family (ibjax.models.family); None: the MLP of dims / activations / quantize_bits / noise_std.
    model: ModelFamily | None = None
    dropout: float | None = None  # dropout rate after every hidden layer in training (None: none)
    # Whether the optimizer adds weight_decay * w to the gradients of weight matrices / kernels (the rate is per
    # network, in the optimizer state like the learning rate); False: the optimizer of earlier versions, unchanged.
    weight_decay: bool = False
    # A regression task (data.targets): squared-error loss, the output layer measured as it is (no softmax).
    regression: bool = False
    # A teacher whose first k inputs alone reach Y (Saxe et al.'s Section 5 in the linear setting): estimators that
    # give block MI from covariances (`needs_linear_map`: kind gaussian) also give I(T;X_rel), I(T;X_irr) of the
    # input blocks [0, k) and [k, D); the others NaN there.
    relevant_inputs: int | None = None

    @property
    def metric_names(self) -> tuple[str, ...]:
        """`measure`'s metrics, in order."""
        return REGRESSION_METRICS if self.regression else METRICS

    @property
    def family(self) -> ModelFamily:
        if self.model is not None:
            return self.model
        return MLP(self.dims, self.activations, self.quantize_bits, self.noise_std, self.dropout)

    @property
    def n_layers(self) -> int:
        """Weight groups with gradient statistics (for an MLP: its dense layers, hidden and output)."""
        return len(self.family.grad_names)

    @property
    def n_batches(self) -> int:
        return -(-self.n_train // self.batch_size)

    def n_chunks(self, n_epochs: int) -> int:
        """Chunks covering steps 0..n_epochs (the MI mask has n_chunks * chunk entries)."""
        return -(-(n_epochs + 1) // self.chunk)


def make_optimizer(name: str, learning_rate=0.0, momentum=0.0, weight_decay=None) -> optax.GradientTransformation:
    """Hyperparameters are injected into the optimizer state, so they can differ per model in one program.
    weight_decay (not None): L2 regularisation, weight_decay * w added to the gradient of every weight matrix and
    kernel before the optimizer (Keras's kernel_regularizer l2(c) is weight_decay = 2c)."""
    if weight_decay is not None:
        def decayed(learning_rate, momentum, weight_decay):
            base = {"adam": lambda: optax.adam(learning_rate), "sgd": lambda: optax.sgd(learning_rate),
                    "momentum": lambda: optax.sgd(learning_rate, momentum=momentum)}
            if name not in base:
                raise ValueError(f"unknown optimizer {name!r}")
            return optax.chain(optax.add_decayed_weights(weight_decay, mask=weight_mask), base[name]())
        return optax.inject_hyperparams(decayed)(learning_rate=learning_rate, momentum=momentum,
                                                 weight_decay=weight_decay)
    if name == "adam":
        return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)
    if name == "sgd":
        return optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate)
    if name == "momentum":
        return optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}")


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

    @property
    def device_bytes(self) -> int:
        """Peak device memory of one call, per device: arguments + outputs + temporaries, less the donated
        state that the outputs reuse (XLA's own buffer assignment, so it matches what the device allocates)."""
        m = self.executable.memory_analysis()
        if m is None:  # a backend without an account: 0, and sizing says it could not size
            return 0
        return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                   - m.alias_size_in_bytes)


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
        self._tx = make_optimizer(prog.optimizer, weight_decay=0.0 if prog.weight_decay else None)
        self.init_state = jax.jit(jax.vmap(self._init_one))
        self._chunk_programs: dict = {}
        self._compiled: dict = {}  # argument signature -> CompiledChunk

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
        (`vmap`). On the CPU a vmapped convolution becomes a grouped convolution that XLA runs ~4x slower than
        the same convolutions one by one, and its activations for every network are live at once: conv and
        user (flax) models loop there (3x the net-epochs/s of vmap at N = 16, a tenth of the memory; BUILD_NOTES.md,
        issue 17). MLPs batch (their native kernels take all networks in one call), and accelerators batch.
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
        return cpu and (self.family.kind != "mlp" or lapack)

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
            # The options were measured on MLP programs; they double a conv net's epoch (YNNPACK's fused
            # convolutions are faster than XLA's own; BUILD_NOTES.md, issue 17): only for the mlp family.
            cpu = mesh.devices.flat[0].platform == "cpu"
            options = CPU_COMPILER_OPTIONS if cpu and self.family.kind == "mlp" else {}
            try:
                executable = lowered.compile(compiler_options=options) if options else lowered.compile()
            except Exception as e:  # an XLA without these options: compile as it comes
                if "No such compile option" not in str(e):
                    raise
                executable = lowered.compile()
            self._compiled[key] = CompiledChunk(executable, time.perf_counter() - t)
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
        state = jax.eval_shape(self.init_state, vec(jnp.uint32), consts_s, vec(jnp.float32), vec(jnp.float32))
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

    # ------------------------------------------------------------------ one model
    # The chunk vmaps these over the model axis; they are public so that tests can check one model alone.
    def _init_one(self, seed, consts: ModelConsts, lr, momentum, weight_decay=None) -> TrainState:
        k_init, k_train = jax.random.split(jax.random.PRNGKey(seed))
        params = self.family.init(k_init, consts)
        wd = (jnp.zeros_like(lr) if weight_decay is None else weight_decay) if self.prog.weight_decay else None
        opt_state = make_optimizer(self.prog.optimizer, lr, momentum, wd).init(params)
        return TrainState(params, opt_state, k_train)

    def loss(self, params, consts, xb, yb, wb, key=None):
        """Mean cross-entropy of one model on a minibatch (in training mode: dropout on), weighted by wb
        (padding rows weigh 0); for a regression task, the mean squared error summed over the outputs."""
        _, logits = self.family.apply(params, consts, xb, key, train=True)
        if self.prog.regression:
            per_row = jnp.sum(jnp.square(logits - yb), axis=-1)
        else:
            per_row = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
        return jnp.sum(per_row * wb) / jnp.sum(wb)

    def train_epoch(self, state: TrainState, consts: ModelConsts, data: Data):
        """One epoch of minibatch training; returns the new state and per-layer gradient stats [L, 2].

        `data.runs` (if any) is this network's row of the per-run variants: its own training rows (a program
        covers its largest training set; a network with fewer rows skips the minibatches past its own) and the
        labels it trains on."""
        p = self.prog
        runs = data.runs
        own_rows = runs is not None and runs.train_idx is not None
        key, k_perm = jax.random.split(state.key)
        n_slots = p.n_batches * p.batch_size
        full_batch = p.n_batches == 1 and p.batch_size == p.n_train
        n_real = p.n_train
        if full_batch:
            order = jnp.arange(p.n_train, dtype=jnp.int32)  # full batch: order is irrelevant
        elif not own_rows:
            order = feistel_permutation(k_perm, p.n_train)
        else:  # a permutation of [0, n_real): of the pool's permutation, the values below it, in order
            n_real = runs.n_train
            order = compact_below_dynamic(feistel_permutation(k_perm, p.n_pool), n_real)
            order = jnp.pad(order, (0, max(0, p.n_train - p.n_pool)))[: p.n_train]
        if own_rows and full_batch:
            n_real = runs.n_train
        # The last minibatch may be partial: pad it and weight the padding 0 (as Keras does, nothing dropped).
        idx_BxS = jnp.zeros(n_slots, jnp.int32).at[: p.n_train].set(order).reshape(p.n_batches, p.batch_size)
        w_BxS = (jnp.arange(n_slots) < n_real).astype(jnp.float32).reshape(p.n_batches, p.batch_size)
        rows = runs.train_idx if own_rows else data.train_idx
        own_labels = runs is not None and runs.y_fit is not None
        y = data.targets if p.regression else runs.y_fit if own_labels else data.y
        # The native kernel reads x whole and one shared label vector on every call: only for small float data
        # (and its loss is the cross-entropy: a regression task trains through jax.grad).
        fam = self.family
        kernel_ok = fam.native_kernel and not own_labels and not p.regression and kernel_reads(data, data.x)
        # The kernel copies its x on every call: give it only the training rows when they are shared (computed
        # once per epoch for all networks: nothing here is batched), so that indices are into them.
        x, y_k, to_rows = None, None, None
        if kernel_ok and own_rows:
            x, y_k, to_rows = data.x, y, (lambda idx: rows[idx])
        elif kernel_ok:
            x, y_k, to_rows = data.x[data.train_idx], y[data.train_idx], (lambda idx: idx)

        def step(carry, batch):
            params, opt_state, gsum, gsq = carry
            idx_S, w_S, b = batch
            k_noise = jax.random.fold_in(k_perm, b + 1)  # only used by stochastic networks (noise_std)
            # The native kernel on the CPU for plain MLPs (several times faster than XLA for layers this
            # small: BUILD_NOTES.md, issue 6); jax.grad of the same loss otherwise.
            if kernel_ok:
                grads = fam.kernel_grads(lambda *a: self.loss(*a, k_noise), params, consts, x, y_k,
                                         to_rows(idx_S), w_S)
            else:
                r_S = rows[idx_S]
                grads = jax.grad(lambda *a: self.loss(*a, k_noise))(params, consts, read_rows(data, r_S), y[r_S],
                                                                   w_S)
            updates, new_opt = self._tx.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            if own_rows:  # a minibatch past this network's own rows: no step (Adam would move on zero grads)
                active = jnp.sum(w_S) > 0
                keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(active, a, b), new, old)
                new_params, new_opt = keep(new_params, params), keep(new_opt, opt_state)
                grads = jax.tree.map(lambda g: jnp.where(active, g, 0.0), grads)
            groups = fam.grad_leaves(grads)
            gsum = [[a + g for a, g in zip(acc, grp)] for acc, grp in zip(gsum, groups)]
            gsq = [[a + g * g for a, g in zip(acc, grp)] for acc, grp in zip(gsq, groups)]
            return (new_params, new_opt, gsum, gsq), None

        zeros = [[jnp.zeros_like(w) for w in grp] for grp in fam.grad_leaves(state.params)]
        (params, opt_state, gsum, gsq), _ = lax.scan(
            step, (state.params, state.opt_state, zeros, zeros), (idx_BxS, w_BxS, jnp.arange(p.n_batches)))
        # Shwartz-Ziv & Tishby's drift/diffusion statistics of the weight gradients over this epoch's batches:
        # the norm of the mean gradient and the norm of the (elementwise) standard deviation.
        n_batches = -(-n_real // p.batch_size) if own_rows else p.n_batches
        # A group of several arrays (a user module's submodule) is one vector: the norms over all of them.
        stats = []
        for s_grp, q_grp in zip(gsum, gsq):
            mean_sq = var_sum = 0.0
            for s, q in zip(s_grp, q_grp):
                mean = s / n_batches
                mean_sq = mean_sq + jnp.sum(mean * mean)
                var_sum = var_sum + jnp.sum(jnp.maximum(q / n_batches - mean * mean, 0.0))
            stats.append(jnp.stack([jnp.sqrt(mean_sq), jnp.sqrt(var_sum)]))
        return TrainState(params, opt_state, key), jnp.stack(stats)

    def mi_columns(self, data: Data) -> tuple[str, ...]:
        """The names of `measure`'s MI quantities, in the order of its last axis (info.parquet's columns): i_xt,
        i_ty, bin_lo, bin_hi (the range binned), plus i_ty_trained (I(T;Y) against the labels the network trained
        on) when the networks have per-run labels (label noise), plus i_xt_rel and i_xt_irr (I(T;X) of the
        relevant and irrelevant parts of the input) with task-irrelevant inputs. `measure` stacks by these names."""
        cols = ["i_xt", "i_ty", "bin_lo", "bin_hi"]
        if data.runs is not None and data.runs.y_fit is not None:
            cols.append("i_ty_trained")
        if self.prog.irrelevant is not None or self.prog.relevant_inputs is not None:
            cols += ["i_xt_rel", "i_xt_irr"]
        return tuple(cols)

    def measure(self, params, consts: ModelConsts, data: Data, key=None):
        """MI of every layer under every estimator [L, E, K] and metrics (`Program.metric_names`) of one model.

        K: the quantities `mi_columns(data)` names, in its order. Metrics are over every row of x (train and test
        masks); the MI over the MI sample.
        `key`: the noise of a stochastic network's measurement pass (noise_std only)."""
        p = self.prog
        runs = data.runs
        x_mi = read_rows(data, data.mi_idx)
        y_mi = data.y if data.mi_idx is None else data.y[data.mi_idx]
        fit_labels = runs is not None and runs.y_fit is not None

        fam = self.family
        noisy = fam.stochastic

        def layers_on(x):
            if fam.native_kernel:  # the native kernel on the CPU where it fits
                return fam.kernel_layers(params, consts, x, use_kernel=kernel_reads(data, x))
            return fam.apply(params, consts, x, key)

        hidden, logits = layers_on(x_mi)
        layers = [*hidden, logits if p.regression else jax.nn.softmax(logits)]
        draws = [None] * len(hidden)
        if noisy:
            # More passes with other noise draws: samples of each layer's pre-noise values given X, for the
            # noisy estimator's H(T|X) (Goldfeld et al.'s sample propagation). Draw 0 is `hidden` itself.
            more = [fam.apply(params, consts, x_mi, jax.random.fold_in(key, k))[0] for k in range(1, NOISE_DRAWS)]
            draws = [jnp.stack([h, *(m[i] for m in more)]) for i, h in enumerate(hidden)]
        # Net inputs (pre-activations) only where an estimator bins them: one matmul per layer from the layers.
        nets = [None] * len(layers)
        if any(e.needs_net_input for e in p.estimators):
            nets = [*fam.net_inputs(params, consts, x_mi, hidden), logits]
        # Each layer's map read off the network and whether it is affine in X, where an estimator needs them (the
        # Gaussian estimator's exact MI of linear networks) or a regression task's exact E_g does.
        maps, biases = [None] * len(layers), [None] * len(layers)
        affine = fam.affine_layers(consts)
        if p.regression or any(e.needs_linear_map for e in p.estimators):
            maps, biases = self._affine_maps(params, consts, x_mi.shape[1])
        out_ctx = ((jnp.float32(0.0), jnp.float32(0.0), False) if p.regression
                   else (jnp.float32(0.0), jnp.float32(1.0), True))  # the logits, or the softmax's [0, 1]
        ctxs = [LayerContext(mask, lo, hi, bounded, d, x_mi, z, m, a, data.teacher)
                for (mask, lo, hi, bounded), d, z, m, a in zip(fam.contexts(consts, hidden), draws, nets, maps,
                                                               affine)]
        ctxs.append(LayerContext(jnp.ones(logits.shape[-1], bool), *out_ctx, None, x_mi, nets[-1], maps[-1],
                                 affine[-1], data.teacher))
        columns = self.mi_columns(data)

        def estimates(est, acts, ctx):
            i_xt, i_ty, lo, hi = est(acts, y_mi, ctx)
            if p.regression and not est.continuous_targets:  # class counts of one class: not I(T;Y) of targets
                i_ty = jnp.full_like(i_ty, jnp.nan)
            out = {"i_xt": i_xt, "i_ty": i_ty, "bin_lo": lo, "bin_hi": hi}
            if "i_ty_trained" in columns:  # I(T;Y) against the labels this network was trained on
                out["i_ty_trained"] = est(acts, runs.y_fit if data.mi_idx is None else runs.y_fit[data.mi_idx],
                                          ctx).i_ty
            if "i_xt_rel" in columns and p.relevant_inputs is not None:  # input blocks of a teacher's X
                nan = jnp.full_like(i_xt, jnp.nan)
                out["i_xt_rel"], out["i_xt_irr"] = (est.block_i_xt(acts, ctx, p.relevant_inputs)
                                                    if est.needs_linear_map else (nan, nan))
            elif "i_xt_rel" in columns:  # I(T;X_rel), I(T;X_irr): the part's index in the product design
                n_rel, r = p.irrelevant
                row = jnp.arange(n_rel * r, dtype=jnp.int32)
                out["i_xt_rel"] = dataclasses.replace(est, n_classes=n_rel)(acts, row // r, ctx).i_ty
                out["i_xt_irr"] = dataclasses.replace(est, n_classes=r)(acts, row % r, ctx).i_ty
            return jnp.stack([out[c] for c in columns]).astype(jnp.float64)

        mi = jnp.stack([jnp.stack([estimates(est, acts, ctx) for est in p.estimators])
                        for acts, ctx in zip(layers, ctxs)])
        if data.mi_idx is not None:  # the MI sample is not every row: one more forward pass for the metrics
            _, logits = layers_on(read_rows(data, None))
        if p.regression:
            return mi, self._regression_metrics(logits, data, maps[-1], biases[-1], affine[-1])
        # Accuracy against the labels each row is scored on: the trained-on labels for training rows (what the
        # network fits; Zhang et al.'s training accuracy), the true labels for test rows (never changed).
        y_all = runs.y_fit if fit_labels else data.y
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y_all)
        correct = (jnp.argmax(logits, -1) == y_all).astype(jnp.float32)
        own = runs is not None and runs.is_train is not None
        tr, te = (runs.is_train, runs.is_test) if own else (data.is_train, data.is_test)
        by_name = {"train_loss": masked_mean(ce, tr), "train_acc": masked_mean(correct, tr),
                   "test_loss": masked_mean(ce, te), "test_acc": masked_mean(correct, te)}
        metrics = jnp.stack([by_name[m] for m in METRICS])
        return mi, metrics

    def _affine_maps(self, params, consts, n_inputs: int):
        """Per measured layer (hidden, then the logits), the map W [U, D] and offset b [U] of the layer as an
        affine function of X: its values at X = e_1..e_D less its value at X = 0 (one forward pass of D + 1 probe
        rows). The layer itself only where the family says it is affine (`affine_layers`); a stochastic network
        has no such map (its layers are not functions of X): None for every layer."""
        fam = self.family
        if fam.stochastic:
            n = len(fam.layer_names)
            return [None] * n, [None] * n
        probe = jnp.concatenate([jnp.zeros((1, n_inputs), jnp.float32), jnp.eye(n_inputs, dtype=jnp.float32)])
        hidden, logits = fam.apply(params, consts, probe)
        outs = [*hidden, logits]
        return [(h[1:] - h[0]).T for h in outs], [h[0] for h in outs]

    def _regression_metrics(self, out_NxO, data: Data, w_out, b_out, affine):
        """REGRESSION_METRICS of one model: the mean squared error (summed over outputs) on the training and test
        rows, and the exact generalization error E_g = tr[(W_o - W) Sigma_X (W_o - W)^T] + |b|^2 + No sigma_o^2
        of an affine network (its map W and offset b); NaN for a nonlinear network (its test_loss estimates E_g)."""
        se = jnp.sum(jnp.square(out_NxO - data.targets), axis=-1)
        gen_error = jnp.float64(jnp.nan)
        if w_out is not None:
            exact = generalization_error(jnp.asarray(w_out, jnp.float64), data.teacher,
                                         jnp.asarray(b_out, jnp.float64), xp=jnp)
            gen_error = jnp.where(affine, exact, jnp.nan)
        by_name = {"train_loss": masked_mean(se, data.is_train), "test_loss": masked_mean(se, data.is_test),
                   "gen_error": gen_error}
        return jnp.stack([jnp.asarray(by_name[m], jnp.float32) for m in REGRESSION_METRICS])

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
