"""Grid → run table → compile buckets, and the MI epoch schedule.

A run's `run_id` hashes its own settings (not its position in the grid), so adding an axis value never
renames existing runs. Its `cell` is the same settings without the seed: the unit over which seeds are
aggregated. Runs that can share one compiled program form a bucket: same depth, optimizer kind, batch
size, quantization and noise (these fix shapes and the program's structure); widths are padded, activations and
learning rates vary inside a bucket.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass

import numpy as np

from ibjax.spec import SweepSpec

GRID_AXES = ("activation", "hidden", "optimizer", "learning_rate", "momentum", "batch_size", "quantize_bits",
             "noise_std")


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

    def settings(self, spec: SweepSpec) -> dict:
        """Everything that determines this network's training (estimators excluded: they only observe)."""
        s = {**asdict(self), "hidden": list(self.hidden), "epochs": spec.train.epochs,
             "data": spec.data.model_dump(mode="json")}
        for optional in ("quantize_bits", "noise_std"):
            if s[optional] is None:
                del s[optional]  # so that run ids of plain runs are those of earlier versions
        return s

    def run_id(self, spec: SweepSpec) -> str:
        blob = json.dumps(self.settings(spec), sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def cell(self) -> str:
        """Settings without the seed, as `key=value` pairs in a fixed order."""
        mom = f",momentum={self.momentum:g}" if self.momentum is not None else ""
        return (f"activation={self.activation},hidden={'-'.join(map(str, self.hidden))},"
                f"optimizer={self.optimizer},lr={self.learning_rate:g}{mom},batch={self.batch_size}"
                + (f",quantize={self.quantize_bits}" if self.quantize_bits is not None else "")
                + (f",noise={self.noise_std:g}" if self.noise_std is not None else ""))

    def bucket_key(self) -> tuple:
        return (len(self.hidden), self.optimizer, self.batch_size, self.quantize_bits, self.noise_std)


def expand_grid(spec: SweepSpec) -> list[Run]:
    """The product of every grid axis (axes missing from the grid take the model/train value)."""
    g = spec.grid
    axes = {
        "activation": g.activation or [spec.model.activation],
        "hidden": [tuple(h) for h in (g.hidden or [spec.model.hidden])],
        "optimizer": g.optimizer or [spec.train.optimizer],
        "learning_rate": g.learning_rate or [spec.train.learning_rate],
        "momentum": g.momentum or [spec.train.momentum],
        "batch_size": g.batch_size or [spec.train.batch_size],
        "quantize_bits": g.quantize_bits or [spec.model.quantize_bits],
        "noise_std": g.noise_std or [spec.model.noise_std],
    }
    runs, seen = [], set()
    for values in itertools.product(*axes.values()):
        s = dict(zip(axes, values))
        if s["optimizer"] != "momentum":
            s["momentum"] = None  # irrelevant: do not multiply runs by it
        for seed in g.seeds:
            run = Run(seed=seed, **s)
            if run not in seen:
                seen.add(run)
                runs.append(run)
    return runs


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
        acts = tuple(sorted({r.activation for r in part}))
        out.append(Bucket(first_index + len(out), tuple(part), depth, first.optimizer, first.batch_size, pad, acts,
                          first.quantize_bits, first.noise_std))
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
