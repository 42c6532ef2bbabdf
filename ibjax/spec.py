"""A sweep YAML becomes a frozen, validated spec. Every setting, its default and meaning, lives here.

Errors name the key path and what is allowed (`grid.activation[2]: unknown activation 'tahn'; known: ...`)
and are raised as SpecError, which the CLI prints as one paragraph with exit code 2.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from ibjax.models.activations import ACTIVATIONS


class SpecError(ValueError):
    """A spec that cannot be run; the message names the key path and the allowed values."""


def _check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return name


Activation = Annotated[str, AfterValidator(_check_activation)]
Widths = Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)]
BatchSize = Union[Annotated[int, Field(gt=0)], Literal["full"]]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


OFFICIAL_SPLIT = ("idx", "tfds")  # datasets that come with their own train/test split
Fraction = Annotated[float, Field(gt=0.0, le=1.0)]
NoiseFraction = Annotated[float, Field(ge=0.0, le=1.0)]


class MISampleSpec(_Frozen):
    """The rows every network's MI is measured on: the same for every run, recorded in the run directory."""

    split: Literal["all", "train", "test", "both"] = "all"
    """all: every row the sweep uses (train and test); train / test: only the shared split's rows of that part;
    both: two MI samples, one of the training rows and one of the test rows, each measured at every logged epoch
    (info.parquet's `split` column: train / test; REPORT.md compares compression on the two)."""
    n: int | None = Field(None, ge=2)
    """Draw this many rows, stratified by class, with `seed`; null: every row of the split (the 12-bit task: all
    4 096 patterns). Binning, counting and KDE cost grow with the rows: 2 000-10 000 suit image data. With split
    both: this many of each part (null: as many as the smaller part has, so that the two MI are comparable)."""
    seed: int = Field(0, ge=0)


class TeacherSpec(_Frozen):
    """dataset teacher: Saxe et al.'s (2018) linear teacher, Y = W_o X + noise with X ~ N(0, I / inputs) and W_o
    of i.i.d. N(0, 1) entries; the noise variance gives exactly `snr`. data.train_rows samples train (P; the
    paper's overtraining case is P = inputs) and data.test_rows fresh samples are the test set."""

    inputs: int = Field(100, ge=1)
    """Ni, the input dimension (the paper: 100)."""
    outputs: int = Field(1, ge=1)
    """No, the targets per sample (the paper: 1)."""
    snr: float = Field(1.0, gt=0.0)
    """Signal-to-noise ratio tr(W_o Sigma_X W_o^T) / (No sigma_o^2) of the drawn teacher (the paper: 1)."""
    seed: int = Field(0, ge=0)
    """Seed of the teacher and of its samples, shared by every run of the sweep."""
    relevant_inputs: int | None = Field(None, ge=1)
    """Saxe et al.'s Section 5 (30 of 100): only the first this many inputs reach Y (W_o is 0 on the rest, the
    task-irrelevant inputs); info.parquet then also has I(T;X_rel) and I(T;X_irr) from kind gaussian (NaN for the
    other estimators). null: every input is relevant."""

    @model_validator(mode="after")
    def _blocks_fit(self):
        if self.relevant_inputs is not None and self.relevant_inputs >= self.inputs:
            raise ValueError(f"relevant_inputs: {self.relevant_inputs} must be below inputs ({self.inputs}) so that "
                             f"some inputs are irrelevant; null for all relevant")
        return self


REGRESSION_DATASETS = ("teacher",)  # continuous targets, squared-error loss, a linear output layer


class DataSpec(_Frozen):
    dataset: Literal["tishby12", "mat", "idx", "digits", "tfds", "teacher"] = "tishby12"
    """tishby12: the generated 12-bit task (no file needed); mat: a .mat file with `F` and `y` (IDNNs layout);
    idx: a folder of MNIST-format files (MNIST, Fashion-MNIST, KMNIST, ...); digits: scikit-learn's 8x8 digits
    (1 797 images, installed with ibjax); tfds: a prepared tensorflow-datasets dataset (`name`, `data_dir`);
    teacher: a regression task, Saxe et al.'s linear teacher with Gaussian inputs (generated; see `teacher`)."""
    teacher: TeacherSpec = TeacherSpec()
    """dataset teacher: the teacher's settings."""
    path: str | None = None
    """dataset mat: the .mat file; idx: the folder (relative paths are relative to the spec file)."""
    name: str | None = None
    """dataset tfds: the dataset's name, e.g. mnist or fashion_mnist."""
    data_dir: str | None = None
    """dataset tfds: the folder holding prepared datasets (null: TFDS's default, ~/tensorflow_datasets)."""
    train_split: str = "train"
    """dataset tfds: the split to train on."""
    test_split: str = "test"
    """dataset tfds: the split to test on."""
    download: bool = False
    """dataset tfds: let TFDS download and prepare the dataset when it is absent (never the default)."""
    split: Literal["stratified", "idnns", "official"] = "stratified"
    """stratified: seeded, per-class shuffle of all rows; idnns: the public IDNNs split (first rows in order, no
    shuffle); official: the dataset's own train/test split (the default for idx and tfds)."""
    train_fraction: Fraction = 0.85
    """The fraction of the rows that train (stratified, idnns); with split official, the fraction of the official
    training set used (default 1). A grid axis too (grid.train_fraction): per-run training sets, one program."""
    split_seed: int = 0
    """Seed of the stratified split (and of train_rows / test_rows subsets), shared by every run of the sweep."""
    train_rows: int | None = Field(None, ge=2)
    """Use a stratified subset of this many training rows (split official), for quick runs; null: all. Dataset
    teacher: the P training samples drawn (default 100)."""
    test_rows: int | None = Field(None, ge=1)
    """Use a stratified subset of this many test rows (split official); null: all. Dataset teacher: the fresh
    test samples drawn (default 4096; they are also the default MI sample)."""
    preprocess: Literal["unit", "standardize", "none"] | None = None
    """Image pixels: unit (to [0, 1], the default for image datasets), standardize (per pixel, over the training
    rows), none (raw values; the default for tishby12 and mat, whose values are used as they are)."""
    mi_sample: MISampleSpec = MISampleSpec()
    label_noise: NoiseFraction = 0.0
    """A fraction p of every network's training labels replaced by uniformly random classes (Zhang et al. 2017),
    drawn per run from (variant_seed, the run's seed). A grid axis too (grid.label_noise)."""
    inputs: Literal["original", "shuffled_pixels", "gaussian"] = "original"
    """Random inputs (Zhang et al. 2017), per run from (variant_seed, its seed): shuffled_pixels (one fixed pixel
    permutation for all images), gaussian (each image a fixed draw of Gaussian pixels with the training rows'
    per-pixel mean and std); labels stay true. A grid axis too (grid.inputs)."""
    variant_seed: int = Field(0, ge=0)
    """Seed of the per-run data variants (label noise, random inputs), combined with each run's own seed."""
    irrelevant_inputs: int = Field(0, ge=0)
    """Append this many task-irrelevant input dimensions of independent noise to every row (Saxe et al. 2018: 30
    relevant + 70 irrelevant): N(0, 1) for tishby12 / mat, uniform random pixels for images; the same for every
    network (drawn with variant_seed). info.parquet then also has I(T;X_rel) and I(T;X_irr)."""
    irrelevant_draws: int = Field(4, ge=2, le=64)
    """With irrelevant_inputs: the MI sample pairs each of its rows with this many fixed irrelevant vectors (a
    product design, X uniform over it), so both parts of X repeat and I(T;X_rel), I(T;X_irr) are counted exactly
    as I(T;Y) is: H(T) + H(part) - H(T, part). The MI sample grows this many times."""

    @model_validator(mode="before")
    @classmethod
    def _official_defaults(cls, raw):
        # Image datasets come with a train/test split: use it, all of its training rows, unless told otherwise.
        if isinstance(raw, dict) and raw.get("dataset") in OFFICIAL_SPLIT:
            raw = {"split": "official", **raw}
            if raw["split"] == "official":
                raw.setdefault("train_fraction", 1.0)
        # The teacher's training and test samples are drawn apart (its own split); its MI is measured on the fresh
        # test samples, which follow the population the exact Gaussian MI is of.
        if isinstance(raw, dict) and raw.get("dataset") == "teacher":
            raw = {"split": "official", "train_rows": 100, "test_rows": 4096, **raw}
            raw.setdefault("train_fraction", 1.0)
            if raw.get("mi_sample") is None or isinstance(raw.get("mi_sample"), dict):
                raw["mi_sample"] = {"split": "test", **(raw.get("mi_sample") or {})}
        return raw

    @model_validator(mode="after")
    def _fits_the_dataset(self):
        given = self.model_fields_set
        if self.dataset == "mat" and not self.path:
            raise ValueError("dataset 'mat' needs data.path (a .mat file with variables F and y)")
        if self.dataset == "idx" and not self.path:
            raise ValueError("dataset 'idx' needs data.path (a folder of MNIST-format files, e.g. "
                             "/usr/share/datasets/fashion-mnist)")
        if self.dataset == "tfds" and not self.name:
            raise ValueError("dataset 'tfds' needs data.name (a TFDS dataset, e.g. mnist or fashion_mnist)")
        if self.dataset not in ("mat", "idx") and "path" in given:
            raise ValueError(f"path: only for datasets 'mat' and 'idx', not '{self.dataset}'")
        tfds_only = sorted(k for k in ("name", "data_dir", "train_split", "test_split", "download") if k in given)
        if tfds_only and self.dataset != "tfds":
            raise ValueError(f"{', '.join(tfds_only)}: only for dataset 'tfds', not '{self.dataset}'")
        if "teacher" in given and self.dataset != "teacher":
            raise ValueError(f"teacher: only for dataset 'teacher', not '{self.dataset}'")
        if self.dataset == "teacher":
            variants = [k for k in ("label_noise", "inputs", "irrelevant_inputs") if k in given
                        and getattr(self, k) != type(self).model_fields[k].default]
            if variants:
                raise ValueError(f"{variants[0]}: not for dataset 'teacher' (its targets are continuous and its "
                                 f"inputs Gaussian by definition)")
            if self.split != "official":
                raise ValueError(f"split '{self.split}': dataset 'teacher' draws its training and test samples "
                                 f"apart (split official)")
        if self.split == "official" and self.dataset not in (*OFFICIAL_SPLIT, *REGRESSION_DATASETS):
            raise ValueError(f"split 'official': dataset '{self.dataset}' has no official split; use stratified")
        if self.split != "official" and self.train_fraction >= 1.0:
            raise ValueError(f"train_fraction {self.train_fraction:g}: must be below 1 with split "
                             f"'{self.split}' (the rest of the rows are the test set)")
        if self.mi_sample.split == "both" and self.irrelevant_inputs:
            raise ValueError("mi_sample.split: 'both' is not for irrelevant_inputs (its MI sample is a product "
                             "design of its own); use all, train or test")
        subsets = sorted(k for k in ("train_rows", "test_rows") if getattr(self, k) is not None)
        if subsets and self.split != "official":
            raise ValueError(f"{', '.join(subsets)}: only with split 'official' (use train_fraction otherwise)")
        if self.preprocess not in (None, "none") and self.dataset in ("tishby12", "mat", "teacher"):
            raise ValueError(f"preprocess '{self.preprocess}': for image datasets; dataset '{self.dataset}' is used "
                             f"as it is")
        return self

    @property
    def resolved_preprocess(self) -> str:
        if self.preprocess is not None:
            return self.preprocess
        return "none" if self.dataset in ("tishby12", "mat", "teacher") else "unit"

    @property
    def regression(self) -> bool:
        """Whether the task has continuous targets (squared-error loss, a linear output layer)."""
        return self.dataset in REGRESSION_DATASETS


QuantizeBits = Annotated[int, Field(ge=1, le=16)] | None
NoiseStd = Annotated[float, Field(gt=0)] | None


# A Flax module's constructor keyword as a grid value: what a cell string can state (no ',' in text).
KwargScalar = bool | int | float | Annotated[str, Field(pattern=r"^[^,=]*$")]
KwargValue = KwargScalar | list[KwargScalar]
Channels = Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=1)]
DropoutRate = Annotated[float, Field(ge=0.0, lt=1.0)] | None
_CONV_KEYS = ("channels", "kernel_size", "pool", "padding")
_FLAX_KEYS = ("module", "kwargs", "layers")


class ModelSpec(_Frozen):
    kind: Literal["mlp", "conv", "flax"] = "mlp"
    """mlp: dense layers `hidden` (widths padded per program; native CPU kernels); conv: conv blocks `channels`
    then dense layers `hidden` (Flax NNX); flax: your own flax.nnx.Module, `module` + `kwargs`."""
    hidden: Widths = [10, 7, 5, 4, 3]
    """Hidden widths (kind conv: the dense layers after the conv blocks); the output layer (softmax over the
    classes) is added."""
    activation: Activation = "tanh"
    """The hidden layers' activation (mlp, conv; a flax module has its own)."""
    channels: Channels = [8, 16, 32]
    """kind conv: output channels of each conv block (conv k x k, stride 1 -> activation -> max-pool)."""
    kernel_size: int = Field(3, ge=1)
    """kind conv: the k of the k x k kernels."""
    pool: Annotated[int, Field(ge=1)] | Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)] = 2
    """kind conv: max-pool window (and stride) after every block, or one per block (1: no pooling)."""
    padding: Literal["valid", "same"] = "valid"
    """kind conv: valid (no padding: each conv shrinks the map by k - 1) or same."""
    module: str | None = None
    """kind flax: the module class, 'package.module:Class' (importable) or 'path/to/file.py:Class' (relative to
    the spec's folder). Constructed as Class(**kwargs, rngs=nnx.Rngs(seed)); __call__(x) returns logits."""
    kwargs: dict[str, Any] = {}
    """kind flax: keyword arguments of the module's constructor (YAML values)."""
    layers: Annotated[list[str], Field(min_length=1)] | None = None
    """kind flax: submodules (attribute paths, e.g. encoder or head.hidden) whose outputs are measured, in this
    order; null: the values the module records with self.sow(nnx.Intermediate, name, h)."""
    dropout: DropoutRate = None
    """Dropout rate after every hidden layer in training (mlp, conv; a flax module does its own); null or 0: none.
    MI is measured without dropout."""
    quantize_bits: QuantizeBits = None
    """Quantize every hidden layer (mlp; conv: every conv block after its pooling and every dense layer) to 2^bits
    levels over its own min/max (straight-through gradients; Lorenzen et al. 2022, who use 8 and 4), in training
    and when MI is measured; null: not quantized."""
    noise_std: NoiseStd = None
    """A stochastic network (Goldfeld et al. 2019): N(0, noise_std^2) added to every hidden layer in training
    and when MI is measured; measure it with the estimator kind: noisy. null: deterministic."""

    @model_validator(mode="after")
    def _keys_fit_the_kind(self):
        given = self.model_fields_set
        for kind, keys in (("conv", _CONV_KEYS), ("flax", _FLAX_KEYS)):
            stray = [k for k in keys if k in given and self.kind != kind]
            if stray:
                raise ValueError(f"{', '.join(stray)}: only for kind '{kind}', not '{self.kind}'")
        if self.kind == "flax":
            if not self.module:
                raise ValueError("kind 'flax' needs model.module, e.g. 'examples/user_model.py:TinyCNN'")
            own = [k for k in ("hidden", "activation", "dropout", "quantize_bits", "noise_std") if k in given]
            if own:
                raise ValueError(f"{', '.join(own)}: not for kind 'flax' (the module defines its own layers, "
                                 f"activations, dropout and noise; give them as model.kwargs)")
        if isinstance(self.pool, list) and len(self.pool) != len(self.channels):
            raise ValueError(f"pool: {len(self.pool)} windows for {len(self.channels)} conv blocks (channels "
                             f"{self.channels}); give one per block, or one number for all")
        return self


class TrainSpec(_Frozen):
    epochs: int = Field(4000, gt=0, le=10_000_000)
    """At most 10^7: the compiled program holds one MI-schedule entry per epoch."""
    optimizer: Literal["sgd", "momentum", "adam"] = "adam"
    learning_rate: float = Field(4e-4, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """Used by optimizer: momentum only."""
    batch_size: BatchSize = 256
    """Minibatch size (each network reshuffles every epoch with its own key), or 'full' for full-batch GD."""
    weight_decay: float = Field(0.0, ge=0.0)
    """L2 regularisation: weight_decay * w added to the gradient of every weight matrix / kernel (not biases)
    before the optimizer, i.e. a loss term weight_decay / 2 * |w|^2 (Keras's l2(c) is 2c; Chelombiev et al. 2019:
    L2 increases compression). 0: none. A grid axis too, in one program."""
    chunk_epochs: int = Field(250, gt=0)
    """Epochs per compiled chunk: progress, and results streamed to the host, once per chunk."""
    max_models_per_program: int | None = Field(None, gt=0)
    """Split a bucket into programs of at most this many networks; null: sized automatically to the device's
    memory from XLA's account of each compiled program (ibjax.sizing; IBJAX_DEVICE_MEMORY overrides it)."""


def _kinds_in_words(kinds: list[str]) -> str:
    quoted = [f"'{k}'" for k in kinds]
    return f"kind {quoted[0]}" if len(quoted) == 1 else f"kinds {', '.join(quoted[:-1])} and {quoted[-1]}"


# A counting estimator's (binning, idnns, exact) bias correction of the entropies it counts, H(T), H(Y), H(T, Y)
# (ibjax.mi.entropy.CORRECTIONS): miller_madow adds (m - 1) / 2N nats to each (m: the symbols seen), jackknife
# averages the N leave-one-out estimates; a default name gets the suffix _mm / _jk.
Correction = Literal["none", "miller_madow", "jackknife"]
CORRECTION_SUFFIX = {"none": "", "miller_madow": "_mm", "jackknife": "_jk"}


class _Estimator(_Frozen):
    """What every estimator kind has. Each kind is a class of its own (below), registered in ESTIMATOR_KINDS; a
    key of another kind is an error that names the kind it belongs to."""

    @model_validator(mode="before")
    @classmethod
    def _keys_of_this_kind(cls, data):
        if not isinstance(data, dict):
            return data
        kind = cls.model_fields["kind"].default
        stray = [k for k in data if k not in cls.model_fields]
        if kind != "binning" and kind != "idnns" and set(stray) & {"n_bins", "range"}:
            raise ValueError(f"kind '{kind}' has no bins: drop n_bins and range")
        by_owner: dict[tuple, list[str]] = {}
        for key in stray:  # a key no kind has is left to the unknown-key error
            owners = tuple(k for k, c in ESTIMATOR_KINDS.items() if key in c.model_fields)
            if owners:
                by_owner.setdefault(owners, []).append(key)
        for owners, keys in by_owner.items():
            raise ValueError(f"{', '.join(sorted(keys))}: only for {_kinds_in_words(list(owners))}, not '{kind}'")
        return data

    @property
    def on_net_input(self) -> bool:
        """Whether it measures each layer's net input W h + b instead of its activations."""
        return False


def _range_in_order(rng):
    if isinstance(rng, list) and not rng[0] < rng[1]:
        raise ValueError(f"range [lo, hi] needs lo < hi, got {rng}")


class BinningEstimator(_Estimator):
    """binning: clip(floor((a - lo) / (hi - lo) * n_bins)), or floor(a / width), or equal-mass bins."""

    kind: Literal["binning"] = "binning"
    n_bins: int = Field(30, ge=2)
    range: Literal["auto", "layer", "neuron"] | Annotated[list[float], Field(min_length=2, max_length=2)] = "auto"
    """auto: [-1,1] tanh/softsign, [0,1] sigmoid/softmax, layer min/max otherwise; layer; neuron (each unit's
    min/max); or [lo, hi]."""
    bins: Literal["uniform", "quantile", "adaptive"] = "uniform"
    """uniform bins over the range, quantile (equal-mass bins per unit; no range), or adaptive (Chelombiev et al.:
    per layer, bins holding equal numbers of distinct values; no range)."""
    space: Literal["activation", "net_input"] = "activation"
    """Bin the activations, or each layer's net input W h + b (Saxe et al.'s appendix; model.kind mlp): name
    suffix _net."""
    width: float | None = Field(None, gt=0)
    """Fixed bin width, floor(a / width), no range and no n_bins (ibsgd: 0.07; 0.5 for MNIST)."""
    correction: Correction = "none"  # the counted entropies' bias correction (`Correction`)

    name: str | None = None
    """Name in info.parquet (default: binning<n_bins>[_layer|_neuron|_fixed], quantile<n>, adaptive<n> or width<w>,
    + _net for net inputs, + _mm / _jk for a correction)."""

    @model_validator(mode="after")
    def _settings_fit(self):
        given = self.model_fields_set
        if self.width is not None and given & {"n_bins", "range", "bins"}:
            raise ValueError("width is fixed-width binning with no range: drop n_bins, range and bins")
        if self.bins in ("quantile", "adaptive") and "range" in given:
            raise ValueError(f"bins: {self.bins} places its own edges: drop range")
        _range_in_order(self.range)
        return self

    @property
    def on_net_input(self) -> bool:
        return self.space == "net_input"

    @property
    def resolved_name(self) -> str:
        if self.name:
            return self.name
        net = ("_net" if self.space == "net_input" else "") + CORRECTION_SUFFIX[self.correction]
        if self.width is not None:
            return f"width{self.width:g}{net}"
        if self.bins in ("quantile", "adaptive"):
            return f"{self.bins}{self.n_bins}{net}"
        suffix = {"auto": "", "layer": "_layer", "neuron": "_neuron"}.get(self.range, "_fixed") \
            if isinstance(self.range, str) else "_fixed"
        return f"binning{self.n_bins}{suffix}{net}"


class IdnnsEstimator(_Estimator):
    """idnns: the IDNNs code's digitize on linspace(lo, hi, n_bins) edges (n_bins = number of edges, range fixed,
    default [-1, 1])."""

    kind: Literal["idnns"] = "idnns"
    n_bins: int = Field(30, ge=2)
    range: Literal["auto"] | Annotated[list[float], Field(min_length=2, max_length=2)] = "auto"
    """[lo, hi] (auto: [-1, 1])."""
    correction: Correction = "none"  # the counted entropies' bias correction (`Correction`)

    name: str | None = None
    """Name in info.parquet (default: idnns<n_bins>, + _mm / _jk for a correction)."""

    @model_validator(mode="before")
    @classmethod
    def _fixed_edges(cls, data):
        if isinstance(data, dict) and isinstance(data.get("range"), str) and data["range"] != "auto":
            raise ValueError("kind 'idnns' uses fixed edges: give range as [lo, hi] (default [-1, 1])")
        return data

    @model_validator(mode="after")
    def _settings_fit(self):
        _range_in_order(self.range)
        return self

    @property
    def resolved_name(self) -> str:
        return self.name or f"idnns{self.n_bins}{CORRECTION_SUFFIX[self.correction]}"


class KDEEstimator(_Estimator):
    """kde: Kolchinsky-Tracey bound for Gaussian noise of variance noise_var (Saxe et al.)."""

    kind: Literal["kde"] = "kde"
    bound: Literal["upper", "lower"] = "upper"
    """upper (pairwise KL) or lower (Bhattacharyya) bound."""
    noise_var: Annotated[float, Field(gt=0)] | Literal["loo"] = 1e-3
    """Variance of the added Gaussian noise (ibsgd: 1e-3 for the 12-bit task, 0.1 for MNIST), or loo: fitted per
    layer and logged epoch by leave-one-out likelihood (recorded as lo = hi; name suffix _loo)."""
    max_samples: int | None = Field(None, ge=2)
    """Use at most this many rows (a fixed, evenly spaced subset): the cost is O(rows^2)."""

    name: str | None = None
    """Name in info.parquet (default: kde_upper / kde_lower, + _loo)."""

    @property
    def resolved_name(self) -> str:
        return self.name or f"kde_{self.bound}" + ("_loo" if self.noise_var == "loo" else "")


class ExactEstimator(_Estimator):
    """exact: every distinct row of values is a symbol (exact MI of quantized layers, Lorenzen et al.)."""

    kind: Literal["exact"] = "exact"
    correction: Correction = "none"  # the counted entropies' bias correction (`Correction`)

    name: str | None = None
    """Name in info.parquet (default: exact, + _mm / _jk for a correction)."""

    @property
    def resolved_name(self) -> str:
        return self.name or f"exact{CORRECTION_SUFFIX[self.correction]}"


class NoisyEstimator(_Estimator):
    """noisy: Monte Carlo Gaussian-mixture MI of a stochastic network's noisy layers at the network's own
    noise_std (NaN for deterministic networks)."""

    kind: Literal["noisy"] = "noisy"
    max_samples: int | None = Field(None, ge=2)
    """Use at most this many rows (a fixed, evenly spaced subset): the cost is O(rows^2)."""

    name: str | None = None
    """Name in info.parquet (default: noisy)."""

    @property
    def resolved_name(self) -> str:
        return self.name or "noisy"


class KNNEstimatorSpec(_Estimator):
    """knn: the layer and X compressed to `dim` principal components of the MI sample, I(T;Y) from
    Kozachenko-Leonenko entropies with k neighbours, I(X;T) by KSG (Butakov et al. 2024)."""

    kind: Literal["knn"] = "knn"
    k: int = Field(5, ge=1)
    """Neighbours per point."""
    dim: int = Field(4, ge=1)
    """Principal components kept of each layer and of X."""
    weighted: bool = False
    """I(T;Y) from Berrett et al.'s weighted Kozachenko-Leonenko entropies over the 1st..k-th neighbours
    (bias-corrected for dim >= 4; give k >= 20, up to dim 12); false: the k-th neighbour alone."""
    max_samples: int | None = Field(None, ge=2)
    """Use at most this many rows (a fixed, evenly spaced subset): the cost is O(rows^2)."""
    inputs: Literal["pca", "autoencoder"] = "pca"
    """How X is compressed to `dim` for I(X;T): pca (its principal components on the MI sample) or autoencoder (a
    small autoencoder trained once on the training rows before the networks, saved in the run directory and reused
    on resume; Butakov et al. 2024). The layers are compressed by PCA either way."""
    autoencoder_epochs: int = Field(200, ge=1)
    """inputs autoencoder: its training epochs (minibatches of 128, Adam 1e-3, L1 loss)."""

    name: str | None = None
    """Name in info.parquet (default: knn<k>_pca<dim>, + _wkl, + _xae with inputs autoencoder)."""

    @model_validator(mode="after")
    def _settings_fit(self):
        if self.weighted and self.dim > 12:
            raise ValueError(f"weighted: Berrett weights are usable up to dim 12 (they grow without bound beyond "
                             f"it at these sample sizes), got dim {self.dim}")
        return self

    @property
    def resolved_name(self) -> str:
        return (self.name or f"knn{self.k}_pca{self.dim}" + ("_wkl" if self.weighted else "")
                + ("_xae" if self.inputs == "autoencoder" and not self.name else ""))


class GaussianEstimator(_Estimator):
    """gaussian: Saxe et al.'s MI of the layer plus measurement noise, T = h(X) + N(0, noise_var I), from Gaussian
    covariances, in the compiled step: exact for linear networks on dataset teacher (population covariances of
    the layer's map), the Gaussian approximation (sample covariances on the MI sample; an upper bound on I(T;X)
    at that covariance) for any other layer. I(T;Y) needs dataset teacher (NaN for classification)."""

    kind: Literal["gaussian"] = "gaussian"
    noise_var: Annotated[float, Field(gt=0)] = 1.0
    """sigma_MI^2, the variance of the measurement noise (the paper: 1); never added in training."""

    name: str | None = None
    """Name in info.parquet (default: gaussian)."""

    @property
    def resolved_name(self) -> str:
        return self.name or "gaussian"


# Every estimator kind, registered once: its configuration class (the sweep registers its factory under the same
# name, ibjax.sweep.programs.ESTIMATOR_FACTORIES; a test checks both cover the same kinds).
ESTIMATOR_KINDS: dict[str, type[_Estimator]] = {
    "binning": BinningEstimator, "idnns": IdnnsEstimator, "kde": KDEEstimator, "exact": ExactEstimator,
    "noisy": NoisyEstimator, "knn": KNNEstimatorSpec, "gaussian": GaussianEstimator,
}


def _kind_of(value) -> str:
    """The estimator kind of a raw mapping (binning when it names none) or of a configuration."""
    if isinstance(value, dict):
        return value.get("kind", "binning")
    return getattr(value, "kind", "binning")


AnyEstimator = Annotated[
    Union[tuple(Annotated[cls, Tag(kind)] for kind, cls in ESTIMATOR_KINDS.items())],  # noqa: UP007
    Discriminator(_kind_of),
]

# The estimator keys every kind had before the kinds were classes of their own, with their defaults: the
# spec.yaml of an earlier run directory lists all of them under every estimator (ibjax.spec.load_resolved_spec
# and the resume check read such files).
LEGACY_ESTIMATOR_DEFAULTS = {"kind": "binning", "n_bins": 30, "range": "auto", "bins": "uniform",
                             "space": "activation", "width": None, "bound": "upper", "noise_var": 1e-3, "k": 5,
                             "dim": 4, "weighted": False, "max_samples": None, "name": None}


# Keys added to a kind other than the default (binning) since then, with their defaults: a spec.yaml written
# before them lacks them, which means the default (knn: X compressed by PCA).
ADDED_ESTIMATOR_DEFAULTS = {"inputs": "pca", "autoencoder_epochs": 200}


def EstimatorSpec(**settings) -> _Estimator:  # noqa: N802 (reads as the configuration it returns)
    """The configuration of one estimator from its keys (kind binning when none is given); ValidationError names
    a key that does not belong to the kind."""
    return TypeAdapter(AnyEstimator).validate_python(settings)


class ScheduleSpec(_Frozen):
    log: int | None = Field(None, gt=1)
    """About this many log-spaced epochs in [1, epochs] (dense early), plus epoch 0 and the last epoch."""
    every: int | None = Field(None, gt=0)
    """Every k epochs (plus 0 and the last)."""

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.log is None) == (self.every is None):
            raise ValueError("give exactly one of 'log: N' or 'every: K'")
        return self


class MISpec(_Frozen):
    schedule: ScheduleSpec = ScheduleSpec(log=200)
    estimators: Annotated[list[AnyEstimator], Field(min_length=1)] = [BinningEstimator()]

    @model_validator(mode="after")
    def _unique_names(self):
        names = [e.resolved_name for e in self.estimators]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"estimator names must be unique; repeated: {dupes} (set 'name:')")
        return self


def _nonempty(kind):
    return Annotated[list[kind], Field(min_length=1)] | None


Seed = Annotated[int, Field(ge=0, lt=2**32)]


class GridSpec(_Frozen):
    """Axes of the sweep; each overrides the matching model/train setting. Runs = product of all axes."""

    seed: Annotated[int, Field(gt=0, le=2**32)] | Annotated[list[Seed], Field(min_length=1)] = 1
    """N (seeds 0..N-1) or an explicit list of seeds (integers in [0, 2^32))."""
    activation: _nonempty(Activation) = None
    hidden: _nonempty(Widths) = None
    optimizer: _nonempty(Literal["sgd", "momentum", "adam"]) = None
    learning_rate: _nonempty(Annotated[float, Field(gt=0.0)]) = None
    momentum: _nonempty(Annotated[float, Field(ge=0.0, lt=1.0)]) = None
    batch_size: _nonempty(BatchSize) = None
    quantize_bits: Annotated[list[QuantizeBits], Field(min_length=1)] | None = None
    noise_std: Annotated[list[NoiseStd], Field(min_length=1)] | None = None
    train_fraction: _nonempty(Fraction) = None
    """Per-run training sets over the one stored dataset (all fractions share a compiled program)."""
    label_noise: _nonempty(NoiseFraction) = None
    """Per-run fraction of training labels replaced by random classes (one program for every fraction)."""
    inputs: _nonempty(Literal["original", "shuffled_pixels", "gaussian"]) = None
    """Per-run random inputs (one program for all of them)."""
    channels: _nonempty(Channels) = None
    """model.kind conv: channel lists (one program each)."""
    weight_decay: _nonempty(Annotated[float, Field(ge=0.0)]) = None
    """L2 rates (train.weight_decay), one program for all of them."""
    dropout: Annotated[list[DropoutRate], Field(min_length=1)] | None = None
    """Dropout rates (model.dropout; one program each)."""
    kwargs: Annotated[list[dict[str, KwargValue]], Field(min_length=1)] | None = None
    """model.kind flax: constructor keywords of your module, each merged over model.kwargs (e.g.
    [{width: 16}, {width: 64}]); numbers, booleans, text or flat lists of them. One program each."""

    @model_validator(mode="after")
    def _no_repeated_values(self):
        # A repeated value would silently make one cell (or seed) out of two; say which.
        for axis in type(self).model_fields:
            values = getattr(self, axis)
            if not isinstance(values, list):
                continue
            keys = [tuple(v) if isinstance(v, list) else json.dumps(v, sort_keys=True) if isinstance(v, dict)
                    else v for v in values]
            repeated = [v for i, v in enumerate(values) if keys[i] in keys[:i]]
            if repeated:
                shown = ", ".join(map(repr, repeated))
                raise ValueError(f"{axis}: repeated value(s) {shown}; each value of an axis must be given once")
        return self

    @property
    def seeds(self) -> list[int]:
        return list(range(self.seed)) if isinstance(self.seed, int) else list(self.seed)


class OutputSpec(_Frozen):
    plots: bool = True
    """Draw figures/infoplane_<cell>.png at the end."""
    checkpoint_minutes: float | None = Field(None, ge=0)
    """Checkpoint a running bucket at most this often (null or 0: after every chunk); see --resume."""


class SweepSpec(_Frozen):
    name: str = Field("sweep", pattern=r"^[A-Za-z0-9_.-]+$")
    """Used for the default run directory runs/<name>."""
    description: str = ""
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    mi: MISpec = MISpec()
    grid: GridSpec = GridSpec()
    output: OutputSpec = OutputSpec()

    @model_validator(mode="after")
    def _net_inputs_need_an_mlp(self):
        for i, e in enumerate(self.mi.estimators):
            if e.on_net_input and self.model.kind != "mlp":
                raise ValueError(f"mi.estimators[{i}].space: net_input needs model.kind 'mlp' (the {self.model.kind} "
                                 f"family does not expose its layers' net inputs)")
        return self

    @model_validator(mode="after")
    def _two_samples_need_the_shared_split(self):
        if self.data.mi_sample.split == "both" and self.grid.train_fraction:
            raise ValueError("data.mi_sample.split: 'both' draws its training and test samples from the shared "
                             "split, but grid.train_fraction gives networks training sets of their own (rows of "
                             "the 'train' sample would be untrained on, or 'test' rows trained on); use all, "
                             "train or test")
        return self

    @model_validator(mode="after")
    def _autoencoded_inputs_are_shared(self):
        for i, e in enumerate(self.mi.estimators):
            if getattr(e, "inputs", "pca") != "autoencoder":
                continue
            if self.grid.inputs or self.data.inputs != "original":
                key = "grid.inputs" if self.grid.inputs else "data.inputs"
                raise ValueError(f"mi.estimators[{i}].inputs: autoencoder encodes the inputs every network shares, "
                                 f"but {key} gives networks their own random inputs; use inputs pca")
            if self.data.irrelevant_inputs:
                raise ValueError(f"mi.estimators[{i}].inputs: autoencoder is not for data.irrelevant_inputs (its "
                                 f"MI sample is a product design of relevant and noise columns); use inputs pca")
        return self

    @model_validator(mode="after")
    def _grid_fits_the_model(self):
        kind, g = self.model.kind, self.grid
        if g.channels and kind != "conv":
            raise ValueError(f"grid.channels: only for model.kind 'conv', not '{kind}'")
        if g.kwargs and kind != "flax":
            raise ValueError(f"grid.kwargs: only for model.kind 'flax' (your module's constructor keywords), "
                             f"not '{kind}'")
        if kind == "flax":
            own = [a for a in ("activation", "hidden", "dropout", "quantize_bits", "noise_std") if getattr(g, a)]
            if own:
                raise ValueError(f"grid.{own[0]}: not for model.kind 'flax' (the module defines it; vary its "
                                 f"constructor keywords with grid.kwargs)")
        if kind == "conv":
            if isinstance(self.model.pool, list):
                bad = [c for c in (g.channels or []) if len(c) != len(self.model.pool)]
                if bad:
                    raise ValueError(f"grid.channels: {bad[0]} has {len(bad[0])} blocks but model.pool gives "
                                     f"{len(self.model.pool)} windows; give model.pool as one number")
        return self

    @model_validator(mode="after")
    def _regression_has_no_label_variants(self):
        if self.data.regression:
            for axis in ("label_noise", "inputs"):
                if getattr(self.grid, axis):
                    raise ValueError(f"grid.{axis}: not for dataset '{self.data.dataset}' (its targets are "
                                     f"continuous and its inputs Gaussian by definition)")
        return self

    @model_validator(mode="after")
    def _fractions_fit_the_split(self):
        if self.grid.train_fraction and self.data.split != "official":
            high = [f for f in self.grid.train_fraction if f >= 1.0]
            if high:
                raise ValueError(f"grid.train_fraction: {high[0]:g} must be below 1 with data.split "
                                 f"'{self.data.split}' (the rest of the rows are the test set)")
        if self.grid.train_fraction and self.data.split == "idnns":
            raise ValueError("grid.train_fraction: per-run training sets are stratified subsets; "
                             "data.split 'idnns' has one fixed split")
        return self


# --------------------------------------------------------------------------------------------- loading


def _is_kind_tag(loc, i) -> bool:
    """pydantic names the estimator kind (the union's tag) after a list index: not part of the key path."""
    return i > 0 and isinstance(loc[i - 1], int) and loc[i] in ESTIMATOR_KINDS


def _format_loc(loc) -> str:
    out = ""
    for i, part in enumerate(loc):
        if _is_kind_tag(loc, i):
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after[_check_activation(), str]",) or "[" in str(part) or part in (
            "int", "float", "str", "list[float]", "list[int]", "constrained-int", "constrained-float",
        ):
            continue  # pydantic's names for union branches: not part of the user's key path
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(loc) -> type[BaseModel] | None:
    """The spec class that owns the key at `loc` (for 'unknown key' hints)."""
    cls: Any = SweepSpec
    for i, part in enumerate(loc[:-1]):
        if _is_kind_tag(loc, i):
            cls = ESTIMATOR_KINDS[part]
            continue
        if isinstance(part, int):
            continue
        field = cls.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        for cand in (ann, *getattr(ann, "__args__", ())):
            inner = getattr(cand, "__args__", (None,))[0] if getattr(cand, "__origin__", None) is list else cand
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                cls = inner
                break
        else:
            if not any(_is_kind_tag(loc, j) for j in range(i + 1, len(loc) - 1)):
                return None  # (a list of estimators: the kind's tag further on names the class)
    return cls


def _describe(err: dict) -> str:
    loc = _format_loc(err["loc"])
    if err["type"] == "extra_forbidden":
        owner = _model_at(err["loc"])
        allowed = ", ".join(owner.model_fields) if owner else "?"
        return f"{loc}: unknown key; allowed here: {allowed}"
    msg = err["msg"].removeprefix("Value error, ")
    shown = err.get("input")
    if err["type"] == "union_tag_invalid":  # an estimator kind that does not exist
        kinds = ", ".join(ESTIMATOR_KINDS)
        return f"{loc}.kind: expected one of {kinds} (got {err['ctx']['tag']!r})"
    if err["type"] == "too_short" and shown == []:
        return f"{loc}: empty list; give at least one value"
    if err["type"] not in ("missing", "value_error") and not isinstance(shown, dict):
        msg += f" (got {shown!r})"
    return f"{loc or '<spec>'}: {msg}"


def _is_union_branch(err: dict) -> bool:
    """An error of one branch of a union (pydantic tags the branch as the last part of the location)."""
    last = str(err["loc"][-1]) if err["loc"] else ""
    return "[" in last or last in ("int", "float", "str", "constrained-int", "constrained-float")


def _branch_expectation(err: dict) -> str:
    """What one union branch accepts, in words ('a positive integer', "'full'")."""
    last, ctx = str(err["loc"][-1]), err.get("ctx") or {}
    kind = "an integer" if "int" in last else "a number"
    if err["type"] == "greater_than" and ctx.get("gt") == 0:
        return "a positive integer" if "int" in last else "a positive number"
    if err["type"] in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[err["type"]]
        bound = next(iter(ctx.values()), "?")
        return f"{kind} {op} {bound}"
    return err["msg"].removeprefix("Input should be ").removeprefix("Value error, ")


def _from_override(loc: str, overrides: dict[str, str]) -> str:
    """' (from --set KEY=VALUE)' when an error's key path lies under an overridden key."""
    for key, item in overrides.items():
        if loc == key or loc.startswith((key + ".", key + "[")):
            return f" (from --set {item!r})"
    return ""


def validate(raw: dict, source: str = "<spec>", overrides: dict[str, str] | None = None) -> SweepSpec:
    """Validate a raw mapping; SpecError lists every problem with its key path. `overrides` (key -> the
    `--set KEY=VALUE` that set it) names the --set behind a problem, so that it is not blamed on the file."""
    overrides = overrides or {}
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: the spec must be a mapping of keys to values, got {type(raw).__name__}")
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as e:
        by_loc: dict[str, list[dict]] = {}
        for err in e.errors():
            by_loc.setdefault(_format_loc(err["loc"]), []).append(err)
        seen, lines, from_set = set(), [], 0
        for loc, errs in by_loc.items():
            if len(errs) > 1 and all(_is_union_branch(err) for err in errs):  # one value, none of the forms
                found = [f"{loc}: expected {' or '.join(_branch_expectation(err) for err in errs)} "
                         f"(got {errs[0].get('input')!r})"]
            else:
                found = [_describe(err) for err in errs]
            for line in found:
                tag = _from_override(loc, overrides)
                if line + tag not in seen:
                    seen.add(line + tag)
                    lines.append(line + tag)
                    from_set += bool(tag)
        if from_set == len(lines):
            where = f"invalid --set override of {source}"
        elif from_set:
            where = f"invalid spec {source} (with its --set overrides)"
        else:
            where = f"invalid spec {source}"
        raise SpecError(f"{where}:\n  " + "\n  ".join(lines)) from None


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`KEY=VALUE` strings (dotted keys, YAML values) applied to a copy of the raw spec."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.epochs=200")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise SpecError(f"--set {item!r}: value is not valid YAML ({e})") from None
        node = raw
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SpecError(f"--set {item!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = parsed
    return raw


def load_raw(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        hint = (f"; to continue the sweep in that run directory: python -m ibjax.sweep --resume {path}"
                if (path / "spec.yaml").is_file() else "")
        raise SpecError(f"{path} is a directory, not a spec file (a YAML file such as sweeps/activation_grid.yaml)"
                        + hint)
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not a text file (not UTF-8 at byte {e.start}): a sweep spec is a YAML text "
                        f"file, e.g. sweeps/activation_grid.yaml") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read the spec file ({e.strerror})") from None
    if raw is None:
        raise SpecError(f"{path} is empty: a sweep spec names at least one setting (an empty file would run every "
                        f"default, 4 000 epochs of the 12-bit task); to run the defaults on purpose, write "
                        f"'name: defaults'")
    return raw


def load_spec(path: str | Path, overrides: list[str] = ()) -> SweepSpec:
    """Read, override and validate a sweep file; relative data paths resolve against the spec's folder."""
    raw = apply_overrides(load_raw(path), list(overrides))
    spec = validate(raw, str(path), {item.partition("=")[0]: item for item in overrides})
    for key in ("path", "data_dir"):
        value = getattr(spec.data, key)
        if value and not Path(value).expanduser().is_absolute():
            resolved = str((Path(path).parent / value).resolve())
            spec = spec.model_copy(update={"data": spec.data.model_copy(update={key: resolved})})
    module = spec.model.module
    if module and ":" in module:  # a file reference resolves against the spec's folder, like data paths
        where, _, cls = module.rpartition(":")
        if (where.endswith(".py") or "/" in where) and not Path(where).expanduser().is_absolute():
            resolved = f"{(Path(path).parent / where).resolve()}:{cls}"
            spec = spec.model_copy(update={"model": spec.model.model_copy(update={"module": resolved})})
    if spec.data.dataset == "mat" and not Path(spec.data.path).is_file():
        raise SpecError(f"data.path: file not found: {spec.data.path}")
    if spec.data.dataset == "idx" and not Path(spec.data.path).is_dir():
        raise SpecError(f"data.path: folder not found: {spec.data.path}; dataset 'idx' reads a folder of "
                        f"MNIST-format files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                        f"t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]); Fashion-MNIST: apt install "
                        f"dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist")
    return spec


def _given_form(value, default):
    """`value` (a resolved spec's section) without the keys that hold their default: the keys a user gives."""
    if not (isinstance(value, dict) and isinstance(default, dict)):
        return value
    return {k: _given_form(v, default.get(k)) for k, v in value.items() if not (k in default and v == default[k])}


def load_resolved_spec(path: str | Path, overrides: list[str] = ()) -> SweepSpec:
    """The spec a run directory stores (spec.yaml: every default filled in) as a SweepSpec again. Keys at their
    defaults are dropped first (per estimator kind for the estimators), since the checks that a key belongs to
    its kind see only keys that were given; the result resolves to the same YAML (tested)."""
    raw = load_raw(path)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the spec must be a mapping of keys to values, got {type(raw).__name__}")
    mi = raw.get("mi") if isinstance(raw.get("mi"), dict) else {}
    estimators = mi.get("estimators")
    raw = _given_form(raw, SweepSpec().model_dump(mode="json"))
    if isinstance(estimators, list):
        raw.setdefault("mi", {})["estimators"] = [_given_estimator(e) if isinstance(e, dict) else e
                                                   for e in estimators]
    raw = apply_overrides(raw, list(overrides))
    return validate(raw, str(path), {item.partition("=")[0]: item for item in overrides})


def _given_estimator(e: dict) -> dict:
    """A stored estimator's keys that differ from its kind's defaults (the kind always); keys of other kinds at
    their old defaults are dropped (an earlier spec.yaml lists every kind's keys under every estimator)."""
    kind = e.get("kind", "binning")
    cls = ESTIMATOR_KINDS.get(kind)
    if cls is None:
        return e  # validation names the unknown kind
    own = {k: v for k, v in e.items() if k in cls.model_fields or LEGACY_ESTIMATOR_DEFAULTS.get(k, object()) != v}
    return {**_given_form(own, cls().model_dump(mode="json")), "kind": kind}


def resolved_defaults() -> dict:
    """The resolved spec of an empty sweep file, its estimator listing every key any estimator kind has had (with
    its default): what an earlier or the current run directory's spec.yaml holds for a key it was not given."""
    defaults = SweepSpec().model_dump(mode="json")
    defaults["mi"]["estimators"] = [{**LEGACY_ESTIMATOR_DEFAULTS, **ADDED_ESTIMATOR_DEFAULTS,
                                     **defaults["mi"]["estimators"][0]}]
    return defaults


def to_yaml(spec: SweepSpec) -> str:
    """The resolved spec (defaults filled in) as YAML."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
