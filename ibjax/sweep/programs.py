"""A bucket's compiled program: its shapes (Program), its networks' constants, and how buckets are sized.

The engines are kept per Program for the whole sweep: the chunk executable that sizing compiles to measure a
bucket is the one that then trains it (and buckets of the same shapes share one).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax

from ibjax.data.task import Data, Task
from ibjax.data.variants import run_data
from ibjax.mi import (
    AdaptiveBinning,
    Binning,
    ExactCounting,
    FixedWidthBinning,
    GaussianMI,
    IdnnsBinning,
    KDEBound,
    KNNEstimator,
    NoisyMixture,
    OnNetInput,
    QuantileBinning,
)
from ibjax.models.family import ModelError, ModelFamily
from ibjax.models.mlp import MLP, ModelConsts, stack_consts
from ibjax.spec import SpecError, SweepSpec
from ibjax.sweep.plan import Bucket, Run, group_runs, module_kwargs, split_group
from ibjax.sweep.sizing import Budget, ProgramMemory, device_budget, fmt_bytes, parts_that_fit
from ibjax.train.engine import Engine, engine_for
from ibjax.train.program import Program

if TYPE_CHECKING:
    from ibjax.models.conv import Conv
    from ibjax.models.flax_module import FlaxModule


def build_estimators(spec: SweepSpec, n_classes: int, noise_std: float | None = None) -> tuple:
    """The spec's estimators for one bucket (a noisy estimator takes the bucket's noise level)."""
    ests = []
    for e in spec.mi.estimators:
        est = ESTIMATOR_FACTORIES[e.kind](e, n_classes, noise_std)
        if e.on_net_input:
            est = OnNetInput(e.resolved_name, est, n_classes)
        ests.append(est)
    return tuple(ests)


def _binning(e, n_classes: int, _noise_std):
    c = e.correction
    if e.width is not None:
        return FixedWidthBinning(e.resolved_name, e.width, n_classes, correction=c)
    if e.bins == "adaptive":
        return AdaptiveBinning(e.resolved_name, e.n_bins, n_classes, correction=c)
    if e.bins == "quantile":
        return QuantileBinning(e.resolved_name, e.n_bins, n_classes, correction=c)
    if isinstance(e.range, list):
        return Binning(e.resolved_name, e.n_bins, "fixed", e.range[0], e.range[1], n_classes, correction=c)
    return Binning(e.resolved_name, e.n_bins, e.range, n_classes=n_classes, correction=c)


def _idnns(e, n_classes: int, _noise_std):
    lo, hi = e.range if isinstance(e.range, list) else (-1.0, 1.0)
    return IdnnsBinning(e.resolved_name, e.n_bins, lo, hi, n_classes, correction=e.correction)


def _noisy(e, n_classes: int, noise_std):
    return NoisyMixture(e.resolved_name, None if noise_std is None else noise_std**2, e.max_samples,
                        n_classes=n_classes)


# Each estimator kind's factory (configuration -> estimator in activation space, for a bucket's number of classes
# and noise level), registered under the kind's name in ibjax.spec.ESTIMATOR_KINDS.
ESTIMATOR_FACTORIES = {
    "binning": _binning,
    "idnns": _idnns,
    "kde": lambda e, n_classes, _: KDEBound(e.resolved_name, e.bound, None if e.noise_var == "loo" else e.noise_var,
                                             e.max_samples, n_classes),
    "exact": lambda e, n_classes, _: ExactCounting(e.resolved_name, n_classes, correction=e.correction),
    "noisy": _noisy,
    "gaussian": lambda e, _n_classes, _: GaussianMI(e.resolved_name, e.noise_var),
    "knn": lambda e, n_classes, noise_std: KNNEstimator(e.resolved_name, e.k, e.dim, e.max_samples, n_classes,
                                                        e.weighted, noise_std,
                                                        encoded_inputs=e.inputs == "autoencoder"),
}


def chunk_len(n_epochs: int, target: int) -> int:
    """Equal chunks covering epochs 0..n_epochs, each at most `target` long (the last may idle briefly)."""
    n_chunks = -(-(n_epochs + 1) // target)
    return -(-(n_epochs + 1) // n_chunks)


def train_size(task: Task, fraction: float | None) -> int:
    """Training rows of a run with this train_fraction (None: the shared split)."""
    return len(task.train_idx) if fraction is None else len(task.split_for(fraction)[0])


def check_batch_sizes(spec: SweepSpec, task: Task) -> None:
    """SpecError naming the key when a minibatch is larger than the training set ('full' asks for full batch).
    With per-run training sets (grid.train_fraction), against the largest: a network with fewer rows than a
    minibatch trains on all of them at once."""
    fractions = spec.grid.train_fraction or [None]
    n_train = max(train_size(task, f) for f in fractions)
    grid = spec.grid.batch_size
    named = [(f"grid.batch_size[{i}]", b) for i, b in enumerate(grid)] if grid else [("train.batch_size",
                                                                                       spec.train.batch_size)]
    what = (f"data.train_fraction {spec.data.train_fraction:g}" if not spec.grid.train_fraction
            else f"the largest grid.train_fraction, {max(fractions):g}")
    for key, b in named:
        if b != "full" and b > n_train:
            raise SpecError(f"{key}: {b} is larger than the training set ({n_train} of {len(task.y)} rows with "
                            f"{what}); give at most {n_train}, or 'full' for full-batch gradient descent")


def image_shape(task: Task, what: str) -> tuple[int, int, int]:
    """(H, W, C) of one image of the task; ModelError when it has no image shape (a conv net needs images)."""
    shape = tuple(task.image_shape)
    if not shape or task.n_irrelevant:
        why = ("its rows carry task-irrelevant input columns (data.irrelevant_inputs)" if task.n_irrelevant
               else "its rows are vectors")
        raise ModelError(f"{what}: needs image data, but {task.description or 'the dataset'} has no image shape "
                         f"({why}); use dataset idx, digits or tfds, or model.kind mlp")
    return (*shape, 1) if len(shape) == 2 else shape


def _mlp_family(spec: SweepSpec, task: Task, run: Run, activations: tuple[str, ...], hidden: tuple[int, ...]) -> MLP:
    return MLP((task.x.shape[1], *hidden, task.n_outputs), activations, run.quantize_bits, run.noise_std,
               run.dropout)


def _conv_family(spec: SweepSpec, task: Task, run: Run, activations: tuple[str, ...], hidden: tuple[int, ...]
                 ) -> Conv:
    from ibjax.models.conv import Conv  # Flax NNX: imported by the families that use it (~0.7 s of start-up)

    m = spec.model
    pools = tuple(m.pool) if isinstance(m.pool, list) else (m.pool,) * len(run.channels)
    return Conv(image_shape(task, "model.kind conv"), tuple(run.channels), m.kernel_size, pools, m.padding,
                tuple(run.hidden), task.n_outputs, activations or (run.activation,), run.noise_std, run.dropout,
                run.quantize_bits)


def _flax_family(spec: SweepSpec, task: Task, run: Run, activations: tuple[str, ...], hidden: tuple[int, ...]
                 ) -> FlaxModule:
    from ibjax.models.flax_module import FlaxModule  # Flax NNX, as in _conv_family

    m = spec.model
    shape = tuple(task.image_shape)
    if shape and not task.n_irrelevant:
        shape = (*shape, 1) if len(shape) == 2 else shape
    else:
        shape = (int(task.x.shape[1]),)
    fam = FlaxModule(m.module, json.dumps(module_kwargs(run, spec), sort_keys=True), shape, task.n_outputs,
                     tuple(m.layers) if m.layers else None)
    _ = fam.layer_names  # imports, builds and calls the module once: ModelError now, not inside a compile
    return fam


# How each model kind (`model.kind`) becomes the family of a program: one entry per kind, each given the spec, the
# task, a run of the program's structure, the program's activations and its (padded) hidden widths.
FAMILIES = {
    "mlp": _mlp_family,
    "conv": _conv_family,
    "flax": _flax_family,
}


def model_family(spec: SweepSpec, task: Task, run: Run, activations: tuple[str, ...] = (),
                 hidden: tuple[int, ...] | None = None) -> ModelFamily:
    """The family of a program of `run`'s structure (activations: the program's, default the run's own; hidden:
    its padded widths, default the run's). ModelError when the model does not fit the task (a conv net on
    vectors, a user module that fails)."""
    return FAMILIES[spec.model.kind](spec, task, run, activations or (run.activation,),
                                     tuple(hidden if hidden is not None else run.hidden or ()))


def layer_names(spec: SweepSpec, task: Task, run: Run) -> tuple[str, ...]:
    """The measured layers of a run's network, in order (`out` last)."""
    return model_family(spec, task, run).layer_names


def bucket_program(spec: SweepSpec, b: Bucket, task: Task) -> Program:
    n_train = max(train_size(task, f) for f in {r.train_fraction for r in b.runs})
    per_run = any(r.train_fraction is not None for r in b.runs)
    # Per-run training sets keep the minibatch size whatever the program's largest set, so that a network trains
    # alike alone or beside others (a set smaller than a minibatch is one partial batch).
    bs = n_train if b.batch_size == "full" else int(b.batch_size) if per_run else min(int(b.batch_size), n_train)
    return Program(model=model_family(spec, task, b.runs[0], b.activations, b.hidden_pad), optimizer=b.optimizer,
                   n_train=n_train, batch_size=bs, estimators=build_estimators(spec, task.n_classes, b.noise_std),
                   chunk=chunk_len(spec.train.epochs, spec.train.chunk_epochs),
                   n_pool=task.pool_size if per_run else None, irrelevant=task.irrelevant_design,
                   weight_decay=b.weight_decay, regression=task.regression, relevant_inputs=task.relevant_inputs,
                   mi_parts=task.mi_parts or None)


def bucket_data(spec: SweepSpec, b: Bucket, task: Task, data: Data) -> Data:
    """The sweep's data with this bucket's per-run variants (training sets, labels) attached, if it has any."""
    runs = run_data(task, [r.train_fraction for r in b.runs], [r.label_noise for r in b.runs],
                    [r.seed for r in b.runs], spec.data.label_noise, spec.data.variant_seed,
                    [r.inputs for r in b.runs], spec.data.inputs)
    return data._replace(runs=runs)


def bucket_consts(b: Bucket, task: Task) -> ModelConsts:
    """Every network's constants (activation, width masks), stacked on the model axis (a flax module: none of
    them is used, but the model axis is)."""
    if not b.activations:
        return stack_consts([((), "linear")] * b.size, ("linear",), task.x.shape[1], ())
    return stack_consts([(r.hidden, r.activation) for r in b.runs], b.activations, task.x.shape[1], b.hidden_pad)


class Programs:
    """One Engine per Program for a sweep, and the memory of a bucket's compiled chunk."""

    def __init__(self, spec: SweepSpec, task: Task, data: Data):
        self.spec, self.task, self.data = spec, task, data
        self._engines: dict[Program, Engine] = {}
        self._memory: dict[tuple, ProgramMemory] = {}  # by the bucket's runs (its index depends on the split)

    def engine(self, b: Bucket) -> Engine:
        prog = bucket_program(self.spec, b, self.task)
        if prog not in self._engines:
            # Reused if an earlier sweep in this process compiled it; held here for the whole sweep, whatever the
            # process-wide cache drops (sizing compiles each bucket's chunk before training runs it).
            self._engines[prog] = engine_for(prog)
        return self._engines[prog]

    def data_of(self, b: Bucket) -> Data:
        """The data this bucket's program reads (the shared arrays, and its networks' variants)."""
        return bucket_data(self.spec, b, self.task, self.data)

    def measured(self, b: Bucket) -> bool:
        """Whether `memory(b)` is known already (no compile needed)."""
        return b.runs in self._memory

    def memory(self, b: Bucket) -> ProgramMemory:
        """Compile the bucket's chunk (cached for training) and read what it needs per device."""
        if b.runs in self._memory:
            return self._memory[b.runs]
        eng = self.engine(b)
        n_log = eng.prog.n_chunks(self.spec.train.epochs) * eng.prog.chunk
        mesh, args = eng.abstract_chunk_args(bucket_consts(b, self.task), self.data_of(b), n_log)
        compiled = eng.compiled_chunk(mesh, *args)
        # What does not grow with the networks: the shared task data, the MI mask and the scalars (args after
        # state and constants, less the per-run variants). Not "the replicated arguments": on a one-device mesh
        # every argument is replicated.
        fixed = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves((args[2]._replace(runs=None), *args[3:])))
        self._memory[b.runs] = ProgramMemory(compiled.device_bytes, fixed, -(-b.size // mesh.size))
        return self._memory[b.runs]


def size_buckets(runs: list[Run], programs: Programs, budget: Budget | None = None,
                 log: Callable[[str], None] = lambda _: None) -> tuple[list[Bucket], dict]:
    """Buckets sized to the device memory: each group of runs that can share a program is compiled whole and,
    if its program is over the budget, split into the fewest near-equal programs that fit (ibjax.sweep.sizing).
    Returns the buckets and the record for the manifest (budget, parts per group, bytes per bucket)."""
    devices = jax.local_devices()
    budget = budget or device_budget(devices)
    parts: dict[str, int] = {}
    groups = group_runs(runs)
    for i, (key, members) in enumerate(groups):
        r = members[0]
        model = (f"conv {'-'.join(map(str, r.channels))}, dense {'-'.join(map(str, r.hidden)) or 'none'}"
                 if r.channels is not None else "flax module" if programs.spec.model.kind == "flax"
                 else f"depth {len(r.hidden)}")
        shape = (f"{model}, {r.optimizer}, batch {r.batch_size}"
                 + (f", quantize {r.quantize_bits}" if r.quantize_bits is not None else "")
                 + (f", noise {r.noise_std:g}" if r.noise_std is not None else "")
                 + (f", dropout {r.dropout:g}" if r.dropout is not None else ""))
        label = f"bucket group {i + 1}/{len(groups)} ({len(members)} networks: {shape})"

        def measure(n_parts: int, members=members, label=label) -> list[ProgramMemory]:
            parts_ = split_group(members, n_parts)
            new = sum(not programs.measured(b) for b in parts_)
            if new:  # each compile takes seconds (tens for conv nets): say so before it starts
                what = "its program" if n_parts == 1 else f"{new} program(s) of a split into {n_parts}"
                log(f"[sizing] {label}: compiling {what} to read the memory it needs ...")
            return [programs.memory(b) for b in parts_]

        parts[key] = parts_that_fit(len(members), len(devices), budget.bytes_per_device, measure, label)
        need = max(m.device_bytes for m in measure(parts[key]))  # memoized: no compile
        if need == 0:
            log(f"[sizing] {label}: this backend gives no memory account of its programs: not sized "
                f"(set train.max_models_per_program if it runs out of memory)")
            continue
        log(f"[sizing] {label}: {parts[key]} program(s), at most {fmt_bytes(need)} per device of "
            f"{fmt_bytes(budget.bytes_per_device)} ({budget.source})")
    buckets = []
    for key, members in groups:
        buckets.extend(split_group(members, parts[key], first_index=len(buckets)))
    record = {"mode": "auto", "budget_bytes_per_device": budget.bytes_per_device, "budget_source": budget.source,
              "parts": parts, "device_bytes": [programs.memory(b).device_bytes for b in buckets]}
    return buckets, record
