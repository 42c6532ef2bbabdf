"""Grid → run table → compile buckets → shards, and the MI epoch schedule.

A run's `run_id` hashes its own settings (not its position in the grid), so adding an axis value never
renames existing runs. Its `cell` is the same settings without the seed: the unit over which seeds are
aggregated. Runs that can share one compiled program form a bucket: same depth, optimizer kind, batch
size, quantization, noise, dropout and model structure (these fix shapes and the program's structure); MLP widths
are padded, activations, learning rates and weight decay vary inside a bucket.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, fields

import numpy as np

from ibjax.rundir.axes import AXES, BY_NAME
from ibjax.rundir.contract import GRID_AXES, cell_name
from ibjax.spec import SweepSpec


@dataclass(frozen=True)
class Run:
    seed: int
    activation: str
    hidden: tuple[int, ...]
    optimizer: str
    learning_rate: float
    momentum: float | None  # only for optimizer 'momentum'
    batch_size: int | str
    quantize_bits: int | None = None  # quantized hidden layers (None: not quantized)
    noise_std: float | None = None  # stochastic network (None: deterministic)
    # Data variants, set only when the grid has the axis (otherwise the data section's value applies to every run
    # and enters the run id through the data settings): per-run training sets and label noise.
    train_fraction: float | None = None
    label_noise: float | None = None
    inputs: str | None = None
    # Model settings added with the model families: None for an MLP (and for no dropout / no weight decay), so that
    # earlier run ids stay the same.
    channels: tuple[int, ...] | None = None  # conv blocks (model.kind conv)
    weight_decay: float | None = None  # L2 rate (None: 0)
    dropout: float | None = None  # dropout rate (None: 0)
    kwargs: str | None = None  # a Flax module's grid keywords as sorted-key JSON (merged over model.kwargs)

    def settings(self, spec: SweepSpec) -> dict:
        """Everything that determines this network's training (estimators excluded: they only observe)."""
        return self._settings(common_settings(spec))

    def _settings(self, common: dict) -> dict:
        s = {f: getattr(self, f) for f in RUN_FIELDS}
        s.update(hidden=list(self.hidden), **common)
        if self.channels is not None:
            s["channels"] = list(self.channels)
        for optional in OPTIONAL_FIELDS:
            if s[optional] is None:
                del s[optional]  # so that run ids of plain runs are those of earlier versions
        return s

    def run_id(self, spec: SweepSpec) -> str:
        return run_ids([self], spec)[0]

    def cell(self) -> str:
        """Settings without the seed, as `key=value` pairs in a fixed order (ibjax.rundir.contract)."""
        return cell_name({axis: getattr(self, axis) for axis in GRID_AXES})

    def bucket_key(self) -> tuple:
        key = (len(self.hidden), self.optimizer, self.batch_size, self.quantize_bits, self.noise_std)
        if self.channels is not None:  # a conv net's program is fixed by its channels and dense widths
            key += (self.channels, self.hidden)
        key += (self.dropout,) if self.dropout is not None else ()
        return key + ((self.kwargs,) if self.kwargs is not None else ())  # another module: another program


OPTIONAL_FIELDS = tuple(a.name for a in AXES if not a.in_every_id)  # left out of ids when None
DATA_AXES = tuple(a.name for a in AXES if a.section == "data")  # grid axes of the data section

# Data settings added after the first run directories: left out of the run id while at their defaults, so that
# the 12-bit task's runs keep their ids.
_LATER_DATA_KEYS = ("name", "data_dir", "train_split", "test_split", "download", "train_rows", "test_rows",
                    "preprocess", "mi_sample", "label_noise", "inputs", "variant_seed", "irrelevant_inputs",
                    "irrelevant_draws", "teacher")


def common_settings(spec: SweepSpec) -> dict:
    """The settings every run of a sweep shares that enter its run id (epochs, data, and a conv or flax model's
    sweep-level settings)."""
    data = spec.data.model_dump(mode="json")
    defaults = type(spec.data)().model_dump(mode="json")
    for key in _LATER_DATA_KEYS:
        if data[key] == defaults[key]:
            del data[key]
    common = {"epochs": spec.train.epochs, "data": data}
    m = spec.model
    if m.kind == "conv":
        common["model"] = {"kind": "conv", "kernel_size": m.kernel_size, "pool": m.pool, "padding": m.padding}
    elif m.kind == "flax":
        common["model"] = {"kind": "flax", "module": m.module, "kwargs": m.kwargs, "layers": m.layers}
    return common


def run_ids(runs: list[Run], spec: SweepSpec) -> list[str]:
    """Every run's id: the first 12 hex digits of the SHA-1 of its settings as sorted-key JSON.

    The shared data settings are dumped once and spliced in (10^6 runs in seconds): the bytes are exactly
    those of json.dumps(settings, sort_keys=True), so run ids stay those of earlier versions (tested).
    """
    common = common_settings(spec)
    data_json = json.dumps(common["data"], sort_keys=True)
    marker = json.dumps(_DATA_MARKER)
    common = {**common, "data": _DATA_MARKER}
    return [hashlib.sha1(json.dumps(r._settings(common), sort_keys=True).replace(marker, data_json, 1).encode())
            .hexdigest()[:12] for r in runs]


_DATA_MARKER = "@@ibjax:data@@"

# Data settings that only decide what is measured, never what is trained: left out of the network id.
_MEASUREMENT_ONLY_DATA_KEYS = ("mi_sample", "download")


def network_settings(run: Run, spec: SweepSpec) -> dict:
    """Exactly what determines the trained network: the data (with the run's own training fraction, label noise
    and inputs, whether they came from the grid or the data section), the model, the optimizer and its settings,
    batch size, weight decay, dropout and seed. Not the epochs (a longer run is the same network trained on),
    the MI sample or the estimators (they only observe). Unset and default forms are made one (no weight decay
    = 0), so the same network has the same settings in every sweep that trains it."""
    data = spec.data.model_dump(mode="json")
    for key in _MEASUREMENT_ONLY_DATA_KEYS:
        data.pop(key, None)
    for axis in DATA_AXES:  # the run's own value where the grid set it, else the data section's
        value = getattr(run, axis)
        data[axis] = getattr(spec.data, axis) if value is None else value
    s = {f: getattr(run, f) for f in RUN_FIELDS if f not in (*DATA_AXES, "kwargs")}
    s.update(hidden=list(run.hidden), data=data, weight_decay=run.weight_decay or 0.0, dropout=run.dropout or 0.0,
             channels=None if run.channels is None else list(run.channels))
    common = common_settings(spec)
    if "model" in common:
        s["model"] = common["model"]
        if run.kwargs is not None:  # the keywords the module is built with, wherever the spec gave them
            s["model"] = {**s["model"], "kwargs": module_kwargs(run, spec)}
    return s


def module_kwargs(run: Run, spec: SweepSpec) -> dict:
    """The constructor keywords a Flax module of this run gets: model.kwargs with the run's grid.kwargs over it."""
    return {**spec.model.kwargs, **(json.loads(run.kwargs) if run.kwargs is not None else {})}


def network_ids(runs: list[Run], spec: SweepSpec) -> list[str]:
    """Every run's network id: 16 hex digits of the SHA-1 of `network_settings` as sorted-key JSON. Equal ids
    across run directories are the same trained network (e.g. one cell shared by two studies): one independent
    unit of evidence, however many sweeps measured it."""
    return [hashlib.sha1(json.dumps(network_settings(r, spec), sort_keys=True).encode()).hexdigest()[:16]
            for r in runs]


def axis_values(spec: SweepSpec, axis: str) -> list:
    """The grid's values of one axis (ibjax.rundir.axes), or the model/train setting of that name when the grid
    leaves it out; unset where the model kind has no such setting."""
    a = BY_NAME[axis]
    if spec.model.kind not in a.kinds:  # e.g. a user's Flax module defines its own activations and widths
        return [() if axis == "hidden" else None]
    values = getattr(spec.grid, axis)
    if a.value == "keywords":  # model.kwargs alone is a sweep-level setting (in every run's id through the model)
        return [json.dumps(v, sort_keys=True) for v in values] if values else [None]
    if not values and a.section == "data":
        return [None]  # the data section's value, shared by every run
    if not values:
        values = [getattr(spec.model if a.section == "model" else spec.train, axis)]
    if a.off_at_zero:
        values = [None if not v else v for v in values]  # 0: none, as a run without the setting
    return [tuple(v) for v in values] if a.value == "widths" else list(values)


def expand_grid(spec: SweepSpec) -> list[Run]:
    """The product of every grid axis (axes missing from the grid take the model/train value)."""
    axes = {axis: axis_values(spec, axis) for axis in GRID_AXES}
    cells = []
    for values in itertools.product(*axes.values()):
        s = dict(zip(axes, values))
        if s["optimizer"] != "momentum":
            s["momentum"] = None  # irrelevant: do not multiply runs by it
        cells.append(tuple(s.values()))
    # Cells in grid order, each once (momentum values collapse for other optimizers); seeds are distinct (the spec
    # refuses repeated values), so every (cell, seed) is a distinct run.
    seeds = spec.grid.seeds
    return [Run(seed, *cell) for cell in dict.fromkeys(cells) for seed in seeds]


RUN_FIELDS = tuple(f.name for f in fields(Run))


@dataclass(frozen=True)
class Bucket:
    """Runs sharing one compiled program."""

    index: int
    runs: tuple[Run, ...]
    depth: int
    optimizer: str
    batch_size: int | str
    hidden_pad: tuple[int, ...]  # largest width per layer
    activations: tuple[str, ...]  # activation names present, in a fixed order
    quantize_bits: int | None = None
    noise_std: float | None = None
    channels: tuple[int, ...] | None = None  # conv: the program's channels (None: an MLP or a flax module)
    dropout: float | None = None
    weight_decay: bool = False  # some network of the bucket has weight decay (the optimizer adds it)

    @property
    def size(self) -> int:
        return len(self.runs)


def shard_runs(runs: list[Run], index: int, count: int) -> list[Run]:
    """The index-th of `count` deterministic, contiguous slices of the run table, ordered by bucket so a shard
    compiles as few programs as possible. Every run is in exactly one shard; sizes differ by at most one."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= I < N")
    ordered = sorted(runs, key=lambda r: str(r.bucket_key()))  # stable: grid order within a bucket
    bounds = np.linspace(0, len(ordered), count + 1).round().astype(int)
    return ordered[bounds[index]:bounds[index + 1]]


def group_runs(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """Runs that can share a program, as (group key, runs in grid order), in a fixed order."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.bucket_key(), []).append(run)
    return sorted(((str(k), v) for k, v in groups.items()), key=lambda kv: kv[0])


def make_buckets(runs: list[Run], max_models: int | None = None, parts: dict[str, int] | None = None) -> list[Bucket]:
    """Group runs that can share a program, and split a group into near-equal programs (each padded to its
    own members' widths): into `parts[group key]` programs (absent: 1), or, without `parts`, into the fewest
    of at most `max_models` networks each (None: one program per group)."""
    buckets = []
    for key, members in group_runs(runs):
        if parts is not None:
            n_parts = parts.get(key, 1)
        else:
            n_parts = 1 if max_models is None else -(-len(members) // max_models)
        buckets.extend(split_group(members, n_parts, first_index=len(buckets)))
    return buckets


def split_group(members: list[Run], n_parts: int, first_index: int = 0) -> list[Bucket]:
    """One group's runs as `n_parts` buckets of near-equal size (contiguous in grid order)."""
    first = members[0]
    depth = len(first.hidden)
    bounds = np.linspace(0, len(members), n_parts + 1).round().astype(int)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = members[lo:hi]
        pad = tuple(max(r.hidden[layer] for r in part) for layer in range(depth))
        acts = tuple(sorted({r.activation for r in part if r.activation is not None}))
        out.append(Bucket(first_index + len(out), tuple(part), depth, first.optimizer, first.batch_size, pad, acts,
                          first.quantize_bits, first.noise_std, first.channels, first.dropout,
                          any(r.weight_decay is not None for r in part)))
    return out


def mi_epochs(epochs: int, log: int | None = None, every: int | None = None) -> np.ndarray:
    """Sorted epochs (0 = at init, `epochs` = end) at which MI is measured.

    log: unique rounded points of logspace(0, log10(epochs), log) — dense early, like IDNNs' schedule.
    """
    if every is not None:
        pts = np.arange(0, epochs + 1, every)
    else:
        pts = np.unique(np.round(np.logspace(0, np.log10(max(epochs, 1)), log)).astype(int))
    return np.unique(np.concatenate([[0], pts, [epochs]]).clip(0, epochs))


def parse_shard(text: str | None, env=None) -> tuple[int, int]:
    """'I/N' -> (I, N); None -> the SLURM array task (task id minus the array's smallest id, of the task count)
    when running in a SLURM array job, else (0, 1)."""
    env = os.environ if env is None else env
    if text is None:
        if "SLURM_ARRAY_TASK_COUNT" not in env:
            return 0, 1
        first = int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        text = f"{int(env['SLURM_ARRAY_TASK_ID']) - first}/{env['SLURM_ARRAY_TASK_COUNT']}"
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"expected I/N with integers, e.g. 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"{text}: need 0 <= I < N")
    return i, n
