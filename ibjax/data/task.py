"""The dataset a spec names: host arrays (Task), and the arrays the compiled chunk reads (Data).

Every row the sweep uses is stored once (`x`), on the host and once on the device whatever the number of
networks: splits, the MI sample and per-run variants are row indices and masks over it. Image pixels stay
uint8 on the device when that saves memory (converted to float inside the program, `x * scale + shift`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ibjax.data.matfile import DataError, load_mat
from ibjax.data.sample import stratified_subset
from ibjax.data.split import make_split, stratified_split
from ibjax.data.teacher import Teacher, make_teacher
from ibjax.data.tishby12 import tishby12
from ibjax.spec import DataSpec

# Store x as float32 on the device (preprocessed on the host) up to this size; uint8 above it (4x less memory).
FLOAT_X_MAX_BYTES = 16 * 2**20


class TeacherConsts(NamedTuple):
    """The population a regression task's samples come from (float64, on the device): X ~ N(0, cov_x),
    Y = w_o X + N(0, noise_var I)."""

    cov_x: jnp.ndarray  # [Ni, Ni]
    w_o: jnp.ndarray  # [No, Ni]
    noise_var: jnp.ndarray  # scalar


class Data(NamedTuple):
    """The task, on device. Shared by every network of a program, except `runs` (one row per network)."""

    x: jnp.ndarray  # float32 [N, D] (used as it is) or uint8 [N, D] (read as x * scale + shift)
    y: jnp.ndarray  # int32 [N], the true labels
    scale: jnp.ndarray  # float32 [D]
    shift: jnp.ndarray  # float32 [D]
    train_idx: jnp.ndarray  # int32 [n_train]: the shared split's training rows
    is_train: jnp.ndarray  # float32 [N]: 1 for rows of the shared training split
    is_test: jnp.ndarray  # float32 [N]: 1 for rows of the shared test split
    mi_idx: jnp.ndarray | None  # int32 [n_mi]: the MI sample's rows; None: every row, in order
    # A regression task (data.dataset teacher): float32 [N, No] targets (y is then all 0), and the teacher's
    # population (TeacherConsts) for the exact MI and generalization error. None for classification.
    targets: jnp.ndarray | None = None
    teacher: TeacherConsts | None = None
    # {estimator name: float32 [n_mi, dim]}: the MI sample's inputs compressed by that k-NN estimator's
    # autoencoder (knn `inputs: autoencoder`; ibjax.sweep.inputs trains it before the networks). None: none asks.
    encoded_inputs: dict | None = None
    runs: object = None  # ibjax.data.variants.RunData: per-network training sets and labels (None: no variants)


# The parts of an MI sample of split both, in the order of Task.mi_idx (info.parquet's `split` column).
MI_PARTS = ("train", "test")


@dataclass(frozen=True)
class Task:
    """Host arrays of one dataset and its shared split (data.train_fraction, data.split_seed)."""

    x: np.ndarray  # [N, D] float32 (values used as they are) or uint8 (pixels; see scale, shift)
    y: np.ndarray  # [N] int32, classes 0..C-1
    train_idx: np.ndarray  # the shared split (sorted rows)
    test_idx: np.ndarray
    mi_idx: np.ndarray | None = None  # the MI sample (sorted rows, per part); None: every row
    # mi_sample.split both: the sizes of the MI sample's consecutive parts (its training rows, then its test rows);
    # () for one sample.
    mi_parts: tuple[int, ...] = ()
    scale: np.ndarray | None = None  # float32 [D]: x_float = x * scale + shift; None: x is used as it is
    shift: np.ndarray | None = None
    image_shape: tuple[int, ...] = ()  # one sample's shape before flattening, e.g. (28, 28, 1); () for vectors
    pool_idx: np.ndarray | None = None  # rows a per-run training set is drawn from (None: every row)
    official_test: bool = False  # test rows are the dataset's own (else: every row not trained on)
    split_kind: str = "stratified"
    split_seed: int = 0
    description: str = ""
    source_index: np.ndarray | None = None  # each row's index in the file it came from (None: the same as its row)
    source_split: np.ndarray | None = None  # each row's source split, e.g. "train" / "test" (None: one source)
    # Task-irrelevant inputs (Saxe et al.): the last columns of x are noise; the MI sample is then a product of
    # n_rel relevant rows x r irrelevant draws, row i * r + j = relevant row i with draw j.
    n_irrelevant: int = 0
    irrelevant_design: tuple[int, int] | None = None  # (n_rel, r)
    # A regression task: float32 [N, No] targets (y is all 0: one class), and the teacher they come from.
    targets: np.ndarray | None = None
    teacher: Teacher | None = None
    relevant_inputs: int | None = None  # a teacher whose first k inputs alone reach Y (the rest: irrelevant)

    @property
    def regression(self) -> bool:
        return self.targets is not None

    @property
    def n_outputs(self) -> int:
        """Units of the output layer: the classes, or a regression task's targets per sample."""
        return int(self.targets.shape[1]) if self.regression else self.n_classes

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1

    @property
    def pool_size(self) -> int:
        """How many rows a per-run training set is drawn from."""
        return len(self.y) if self.pool_idx is None else len(self.pool_idx)

    @property
    def mi_rows(self) -> np.ndarray:
        return np.arange(len(self.y)) if self.mi_idx is None else self.mi_idx

    def x_float(self, rows=None) -> np.ndarray:
        """Rows of x as the networks see them (float32, preprocessed)."""
        x = self.x if rows is None else self.x[rows]
        if self.scale is None:
            return x.astype(np.float32)
        return x.astype(np.float32) * self.scale + self.shift

    def mi_sample_table(self):
        """The MI sample's rows, for the run directory: row (in the sweep's stored rows), the file's own split
        and index of that row, its label, and whether it is in the shared training split."""
        import pandas as pd

        rows = self.mi_rows
        src = rows if self.source_index is None else self.source_index[rows]
        split = np.full(len(rows), "all") if self.source_split is None else self.source_split[rows]
        in_train = np.isin(rows, self.train_idx)
        table = pd.DataFrame({"row": rows.astype(np.int64), "source_split": split, "source_index": src.astype(np.int64),
                              "label": self.y[rows].astype(np.int64), "shared_train": in_train})
        if self.mi_parts:  # mi_sample.split both: which of the two samples a row belongs to
            table["sample"] = np.repeat(np.asarray(MI_PARTS[:len(self.mi_parts)]), self.mi_parts)
        return table

    def split_for(self, fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """(train rows, test rows) of a run that trains on `fraction` of the pool: stratified with the sweep's
        split seed, so smaller fractions are subsets of larger ones (nested training sets)."""
        pool = np.arange(len(self.y)) if self.pool_idx is None else self.pool_idx
        if self.official_test:  # fraction 1: every pool row
            train, _ = stratified_split(self.y[pool], fraction, self.split_seed)
            return pool[train], self.test_idx
        train, test = make_split(self.y[pool], self.split_kind, fraction, self.split_seed)
        return pool[train], pool[test]

    def device_data(self) -> Data:
        n = len(self.y)
        is_train, is_test = np.zeros(n, np.float32), np.zeros(n, np.float32)
        is_train[self.train_idx], is_test[self.test_idx] = 1.0, 1.0
        d = self.x.shape[1]
        if self.scale is None or self.x.size * 4 <= FLOAT_X_MAX_BYTES:
            x, scale, shift = self.x_float(), np.ones(d, np.float32), np.zeros(d, np.float32)
        else:
            x, scale, shift = self.x, self.scale, self.shift
        mi = None if self.mi_idx is None else jnp.asarray(self.mi_idx, jnp.int32)
        targets = teacher = None
        if self.regression:
            t = self.teacher
            targets = jnp.asarray(self.targets, jnp.float32)
            teacher = TeacherConsts(jnp.asarray(t.cov_x, jnp.float64), jnp.asarray(t.w_o, jnp.float64),
                                    jnp.asarray(t.noise_var, jnp.float64))
        return Data(x=jnp.asarray(x), y=jnp.asarray(self.y), scale=jnp.asarray(scale), shift=jnp.asarray(shift),
                    train_idx=jnp.asarray(self.train_idx, jnp.int32), is_train=jnp.asarray(is_train),
                    is_test=jnp.asarray(is_test), mi_idx=mi, targets=targets, teacher=teacher)


def _labels_0_to_c(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, np.int32)
    classes = np.unique(y)
    if not np.array_equal(classes, np.arange(len(classes))):
        y = np.searchsorted(classes, y).astype(np.int32)  # labels as 0..C-1
    return y


def _preprocessing(x_train: np.ndarray, kind: str, pixel_max: float) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) per feature: unit maps [0, pixel_max] to [0, 1]; standardize gives the training rows mean 0
    and standard deviation 1 per pixel (constant pixels, e.g. MNIST's border, only centred)."""
    d = x_train.shape[1]
    if kind == "none":
        return np.ones(d, np.float32), np.zeros(d, np.float32)
    if kind == "unit":
        return np.full(d, 1.0 / pixel_max, np.float32), np.zeros(d, np.float32)
    mean = x_train.mean(0, dtype=np.float64)
    std = x_train.std(0, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return (1.0 / std).astype(np.float32), (-mean / std).astype(np.float32)


def _official(spec: DataSpec, train: tuple, test: tuple, description: str, pixel_max: float = 255.0) -> Task:
    """A dataset with its own train/test split: train rows first, then test rows, subsetted as the spec says."""
    (x_tr, y_tr), (x_te, y_te) = train, test
    if spec.train_rows is not None and spec.train_rows > len(y_tr):
        raise DataError(f"data.train_rows: {spec.train_rows:,} is more than the {len(y_tr):,} training rows of "
                        f"{description}")
    if spec.test_rows is not None and spec.test_rows > len(y_te):
        raise DataError(f"data.test_rows: {spec.test_rows:,} is more than the {len(y_te):,} test rows of "
                        f"{description}")
    tr = stratified_subset(np.arange(len(y_tr)), y_tr, spec.train_rows or len(y_tr), spec.split_seed)
    te = stratified_subset(np.arange(len(y_te)), y_te, spec.test_rows or len(y_te), spec.split_seed + 1)
    image_shape = x_tr.shape[1:]
    x = np.concatenate([x_tr[tr].reshape(len(tr), -1), x_te[te].reshape(len(te), -1)])
    y = _labels_0_to_c(np.concatenate([y_tr[tr], y_te[te]]))
    pool = np.arange(len(tr))
    test_idx = np.arange(len(tr), len(y))
    train_idx = pool[stratified_split(y[pool], spec.train_fraction, spec.split_seed)[0]]  # fraction 1: all
    scale, shift = _preprocessing(x[train_idx], spec.resolved_preprocess, pixel_max)
    return Task(x=x, y=y, train_idx=train_idx, test_idx=test_idx, scale=scale, shift=shift,
                image_shape=tuple(image_shape), pool_idx=pool, official_test=True, split_kind="official",
                split_seed=spec.split_seed, description=description, source_index=np.concatenate([tr, te]),
                source_split=np.asarray(["train"] * len(tr) + ["test"] * len(te)))


def _pooled(spec: DataSpec, x: np.ndarray, y: np.ndarray, description: str, pixel_max: float | None,
            image_shape=()) -> Task:
    """A dataset without its own split: the sweep splits every row (stratified or IDNNs) into train and test."""
    y = _labels_0_to_c(y)
    train_idx, test_idx = make_split(y, spec.split, spec.train_fraction, spec.split_seed)
    if pixel_max is None:  # values used as they are
        return Task(x=np.asarray(x, np.float32), y=y, train_idx=train_idx, test_idx=test_idx,
                    split_kind=spec.split, split_seed=spec.split_seed, description=description)
    x = x.reshape(len(y), -1)
    scale, shift = _preprocessing(x[train_idx], spec.resolved_preprocess, pixel_max)
    return Task(x=x, y=y, train_idx=train_idx, test_idx=test_idx, scale=scale, shift=shift,
                image_shape=tuple(image_shape), split_kind=spec.split, split_seed=spec.split_seed,
                description=description)


def _teacher_task(spec: DataSpec) -> Task:
    """Saxe et al.'s regression task: P = data.train_rows training samples, then data.test_rows fresh test
    samples (the official split); per-run training sets (grid.train_fraction) are nested subsets of the P."""
    s = spec.teacher
    t = make_teacher(s.inputs, s.outputs, s.snr, spec.train_rows, s.seed, spec.test_rows, s.relevant_inputs)
    x = np.concatenate([t.x_train, t.x_test]).astype(np.float32)
    targets = np.concatenate([t.y_train, t.y_test]).astype(np.float32)
    n_tr = len(t.x_train)
    y = np.zeros(len(x), np.int32)  # one class: splits and samples are then plain seeded subsets
    pool = np.arange(n_tr)
    train_idx = pool[stratified_split(y[pool], spec.train_fraction, spec.split_seed)[0]]
    relevant = "" if s.relevant_inputs is None else f" of which {s.relevant_inputs} relevant"
    description = (f"Saxe et al.'s linear teacher ({s.inputs} Gaussian inputs{relevant}, {s.outputs} output(s), SNR "
                   f"{s.snr:g}, {n_tr} training samples)")
    return Task(x=x, y=y, train_idx=np.sort(train_idx), test_idx=np.arange(n_tr, len(x)), pool_idx=pool,
                official_test=True, split_kind="official", split_seed=spec.split_seed, description=description,
                source_split=np.asarray(["train"] * n_tr + ["test"] * (len(x) - n_tr)), targets=targets, teacher=t,
                relevant_inputs=s.relevant_inputs)


def _with_mi_sample(task: Task, spec: DataSpec) -> Task:
    s = spec.mi_sample
    if s.split == "both":  # one sample of the training rows, one of the test rows, of equal size
        n = s.n or min(len(task.train_idx), len(task.test_idx))
        parts = []
        for name, rows in (("train", task.train_idx), ("test", task.test_idx)):
            if n > len(rows):
                raise DataError(f"data.mi_sample.n: {n:,} rows asked for from each split, but the {name} split of "
                                f"{task.description} has {len(rows):,}; give at most {len(rows):,}")
            parts.append(stratified_subset(rows, task.y, n, s.seed))
        return replace(task, mi_idx=np.concatenate(parts), mi_parts=(n, n))
    rows = {"all": np.arange(len(task.y)), "train": task.train_idx, "test": task.test_idx}[s.split]
    if s.n is not None and s.n > len(rows):
        raise DataError(f"data.mi_sample.n: {s.n:,} rows asked for, but the MI sample's split '{s.split}' of "
                        f"{task.description} has {len(rows):,}; give at most {len(rows):,}, or null for all")
    chosen = stratified_subset(rows, task.y, s.n or len(rows), s.seed)
    mi_idx = None if len(chosen) == len(task.y) else chosen
    return replace(task, mi_idx=mi_idx)


def _with_irrelevant_inputs(task: Task, spec: DataSpec) -> Task:
    """Append k noise columns to every row, and the MI sample as a product of its relevant rows and r fixed
    irrelevant vectors (new rows after the others: neither train nor test)."""
    k, r = spec.irrelevant_inputs, spec.irrelevant_draws
    rng = np.random.default_rng([spec.variant_seed, 1_000_003])  # one draw for the sweep, every network
    n = len(task.y)
    rel_rows = task.mi_rows
    image = task.scale is not None and task.x.dtype == np.uint8
    draw = (lambda m: rng.integers(0, 256, size=(m, k), dtype=np.uint8)) if image else (
        lambda m: rng.standard_normal((m, k)).astype(np.float32))
    noise_rows, noise_draws = draw(n), draw(r)
    x_mi = np.concatenate([np.repeat(task.x[rel_rows], r, axis=0), np.tile(noise_draws, (len(rel_rows), 1))], axis=1)
    x = np.concatenate([np.concatenate([task.x, noise_rows], axis=1), x_mi])
    y = np.concatenate([task.y, np.repeat(task.y[rel_rows], r)])
    scale, shift = task.scale, task.shift
    if scale is not None:  # the noise pixels are preprocessed like the others
        extra_scale, extra_shift = _preprocessing(noise_rows[task.train_idx], spec.resolved_preprocess, 255.0)
        scale, shift = np.concatenate([scale, extra_scale]), np.concatenate([shift, extra_shift])
    src_index = task.source_index if task.source_index is not None else np.arange(n)
    src_split = task.source_split if task.source_split is not None else np.full(n, "all")
    pool = task.pool_idx if task.pool_idx is not None else np.arange(n)  # the MI-only rows never train
    return replace(task, x=x, y=y, scale=scale, shift=shift, mi_idx=np.arange(n, len(y)), n_irrelevant=k,
                   pool_idx=pool,
                   irrelevant_design=(len(rel_rows), r),
                   source_index=np.concatenate([src_index, np.repeat(src_index[rel_rows], r)]),
                   source_split=np.concatenate([src_split, np.repeat(src_split[rel_rows], r)]))


def _tishby12_task(spec: DataSpec) -> Task:
    x, y = tishby12()
    return _pooled(spec, x, y, "the 12-bit task", None)


def _mat_task(spec: DataSpec) -> Task:
    x, y = load_mat(spec.path)
    return _pooled(spec, x, y, spec.path, None)


def _digits_task(spec: DataSpec) -> Task:
    from ibjax.data.digits import PIXEL_MAX, load_digits  # scikit-learn, only when asked for

    images, y = load_digits()
    return _pooled(spec, images, y, "scikit-learn's digits", PIXEL_MAX, images.shape[1:])


def _idx_task(spec: DataSpec) -> Task:
    from ibjax.data.idx import load_idx_folder

    parts = load_idx_folder(spec.path)
    return _official(spec, parts["train"], parts["test"], spec.path)


def _tfds_task(spec: DataSpec) -> Task:
    from ibjax.data.tfds_source import load_tfds  # tensorflow-datasets, only when asked for

    train, test = load_tfds(spec)
    return _official(spec, train, test, f"TFDS dataset {spec.name!r}")


# Every dataset a spec may name (`data.dataset`) and how its rows are made: one entry per dataset. The spec checks
# each dataset's own keys (ibjax.spec.DataSpec); tests/data/test_datasets.py checks that both name the same ones.
DATASETS = {
    "tishby12": _tishby12_task,
    "mat": _mat_task,
    "idx": _idx_task,
    "digits": _digits_task,
    "tfds": _tfds_task,
    "teacher": _teacher_task,
}


def load_task(spec: DataSpec) -> Task:
    """The dataset of a data spec, split and with its MI sample. DataError names the file or setting at fault."""
    if spec.dataset not in DATASETS:  # the spec refuses other names
        raise DataError(f"unknown dataset {spec.dataset!r}; known: {', '.join(DATASETS)}")
    task = DATASETS[spec.dataset](spec)
    task = _with_mi_sample(task, spec)
    return _with_irrelevant_inputs(task, spec) if spec.irrelevant_inputs else task
