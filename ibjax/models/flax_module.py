"""The `flax` family: a user's own `flax.nnx.Module`, named in the spec, stacked and trained like any network.

    model:
      kind: flax
      module: "examples/small_cnn.py:SmallCNN"     # or "package.module:Class" (importable)
      kwargs: {n_classes: 10}                      # constructor keywords; ibjax adds rngs=nnx.Rngs(seed)

The module's `__call__(x)` takes a batch as the task has it ([N, H, W, C] for images, [N, D] for vectors) and
returns logits [N, n_classes]. It records the layers to measure with `self.sow(nnx.Intermediate, name, h)`
(ibjax runs it under `nnx.capture`), or the spec lists submodules by path (`layers: [encoder, head.hidden]`),
whose outputs are captured. Layers are measured in the order they are computed, flattened per sample; the
softmax of the logits is always measured too, as `out`. A module that takes a keyword `rngs` gets
`nnx.Rngs(dropout=key)` in training (a fresh key per minibatch and network) and is put in deterministic mode
(`nnx.view(..., deterministic=True)`) when measured. Weight gradients are summarised per submodule that owns weights (one group per layer).

Nothing about the activation is known: binning takes each layer's own range (as for ReLU).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from ibjax.models.family import ModelError, is_weight
from ibjax.models.mlp import ModelConsts
from ibjax.models.nnx_adapter import NNXNetwork


def load_class(ref: str, base_dir: str | None = None):
    """The class a `module:Class` reference names: a file path (`dir/file.py:Class`, relative to base_dir) or an
    importable module (`package.module:Class`). ModelError names the reference and what went wrong."""
    where, sep, name = ref.rpartition(":")
    if not sep or not where or not name:
        raise ModelError(f"model.module: {ref!r}: expected 'package.module:Class' or 'path/to/file.py:Class'")
    if where.endswith(".py") or "/" in where:
        path = Path(where).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        if not path.is_file():
            raise ModelError(f"model.module: {ref!r}: file not found: {path}")
        mod_name = f"ibjax_user_model_{abs(hash(str(path.resolve())))}"
        try:
            spec = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            spec.loader.exec_module(module)
        except Exception as e:
            sys.modules.pop(mod_name, None)
            raise ModelError(f"model.module: {ref!r}: importing {path} failed: {type(e).__name__}: {e}") from None
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as e:
            raise ModelError(f"model.module: {ref!r}: no module named {e.name!r} (is it installed, or on "
                             f"PYTHONPATH? a file can be given as 'path/to/file.py:{name}')") from None
        except Exception as e:
            raise ModelError(f"model.module: {ref!r}: importing {where} failed: {type(e).__name__}: {e}") from None
    cls = getattr(module, name, None)
    if cls is None:
        raise ModelError(f"model.module: {ref!r}: {where} has no {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, nnx.Module)):
        raise ModelError(f"model.module: {ref!r}: {name} is not a flax.nnx.Module subclass")
    return cls


@contextmanager
def _sow_order(order: list):
    """Record the values a module sows, in call order (nnx.capture returns them sorted by name)."""
    original = nnx.Module.sow

    def sow(self, variable_type, name, value, *args, **kwargs):
        order.append(value)
        return original(self, variable_type, name, value, *args, **kwargs)

    nnx.Module.sow = sow
    try:
        yield
    finally:
        nnx.Module.sow = original


def _flat(tree, prefix=()) -> list[tuple[str, object]]:
    """(path 'a/b', value) of every captured value; a name sown k > 1 times gives 'name.0' .. 'name.k-1'."""
    out = []
    for key, value in tree.items():
        path = (*prefix, str(key))
        if isinstance(value, dict):
            out += _flat(value, path)
        elif isinstance(value, tuple) and len(value) > 1:
            out += [("/".join(path) + f".{i}", v) for i, v in enumerate(value)]
        else:
            out.append(("/".join(path), value[0] if isinstance(value, tuple) else value))
    return out


@dataclass(frozen=True)
class FlaxModule:
    """The `flax` family of one program: the module reference, its constructor keywords (as JSON, hashable), the
    input shape it gets, and optionally the submodules whose outputs are measured."""

    module: str
    kwargs_json: str
    input_shape: tuple[int, ...]  # one sample
    n_classes: int
    layers: tuple[str, ...] | None = None
    base_dir: str | None = None  # relative file references resolve against the spec's folder
    kind: ClassVar[str] = "flax"
    native_kernel: ClassVar[bool] = False
    batches_on_cpu: ClassVar[bool] = False  # a user's module may convolve (see Conv)
    cpu_compiler_options: ClassVar[Mapping[str, str]] = MappingProxyType({})
    stochastic: ClassVar[bool] = False  # a module's own noise is its own business; ibjax adds none

    @property
    def label(self) -> str:
        return f"model.module {self.module!r}"

    @property
    def network(self) -> NNXNetwork:
        return _network(self)

    @property
    def takes_rngs(self) -> bool:
        return _takes_rngs(self)

    @property
    def layer_names(self) -> tuple[str, ...]:
        return (*_discover(self), "out")

    @property
    def grad_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._groups(self.network.abstract_params))

    def _groups(self, tree) -> list[tuple[str, list]]:
        """The weight matrices and kernels grouped by the submodule that owns them ('hidden.0', 'out'): one
        group per layer, as an MLP's or a conv net's gradient statistics are per layer."""
        pure = tree if isinstance(tree, dict) else nnx.to_pure_dict(tree)
        groups: dict[str, list] = {}
        for path, leaf in jax.tree_util.tree_flatten_with_path(pure)[0]:
            if is_weight(leaf):
                keys = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
                groups.setdefault(".".join(keys[:-1]) or keys[-1], []).append(leaf)
        return list(groups.items())

    def init(self, key, consts: ModelConsts) -> dict:
        return self.network.init(key)

    def _captured(self, params, x, key, train):
        module = self.network.module(params)
        if not train:
            module = nnx.view(module, deterministic=True, raise_if_not_found=False)
        kwargs = {"rngs": nnx.Rngs(dropout=key)} if (train and self.takes_rngs and key is not None) else {}
        if self.layers:
            logits, inter = nnx.capture(module, nnx.Intermediate, method_outputs=nnx.Intermediate)(x, **kwargs)
        else:
            logits, inter = nnx.capture(module, nnx.Intermediate)(x, **kwargs)
        return logits, nnx.to_pure_dict(inter)

    def apply(self, params, consts: ModelConsts, x_NxD, key=None, train: bool = False):
        x = x_NxD.reshape(x_NxD.shape[0], *self.input_shape)
        logits, inter = self._captured(params, x, key, train)
        values = dict(_flat(inter))
        names = _discover(self)
        if self.layers:
            hidden = [values[f"{name.replace('.', '/')}/__call__"] for name in names]
        else:
            hidden = [values[name] for name in names]
        return [h.reshape(h.shape[0], -1) for h in hidden], logits

    def affine_layers(self, consts) -> list:
        """Whether each measured layer (and the logits) is an affine function of the input: not known for this
        family, so never claimed (the Gaussian estimator then approximates)."""
        return [False] * len(self.layer_names)

    def contexts(self, consts: ModelConsts, hidden: list) -> list[tuple]:
        return [(jnp.ones(h.shape[-1], bool), jnp.float32(0.0), jnp.float32(0.0), False) for h in hidden]

    def grad_leaves(self, grads) -> list[list]:
        return [leaves for _, leaves in self._groups(grads)]


@cache
def _network(f: FlaxModule) -> NNXNetwork:
    cls = load_class(f.module, f.base_dir)
    kwargs = json.loads(f.kwargs_json)

    def make(rngs):
        try:
            return cls(**kwargs, rngs=rngs)
        except TypeError as e:
            raise ModelError(f"{f.label}: {cls.__name__}(**kwargs, rngs=...) failed: {e}; its constructor "
                             f"takes {inspect.signature(cls.__init__)} (model.kwargs gives {sorted(kwargs)})") from None
    return NNXNetwork(make, f.label)


@cache
def _takes_rngs(f: FlaxModule) -> bool:
    call = type(nnx.eval_shape(lambda: f.network.make(nnx.Rngs(0)))).__call__
    params = inspect.signature(call).parameters
    return "rngs" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


@cache
def _discover(f: FlaxModule) -> tuple[str, ...]:
    """The measured layers, in the order the module computes them; checks the logits' shape (ModelError)."""
    net = f.network
    x = jax.ShapeDtypeStruct((2, *f.input_shape), jnp.float32)
    found = {}

    def run(params, x):
        order: list = []
        with _sow_order(order):
            logits, inter = f._captured(params, x, None, False)
        rank = {id(v): i for i, v in enumerate(order)}  # the sown tracers, in call order
        found["flat"] = [(name, rank.get(id(v), len(rank))) for name, v in _flat(inter)]
        return logits

    params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), nnx.to_pure_dict(net.abstract_params))
    try:
        logits = jax.eval_shape(run, params, x)
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(f"{f.label}: calling the module on a batch of shape {tuple(x.shape)} failed: "
                         f"{type(e).__name__}: {e}") from None
    if tuple(getattr(logits, "shape", ())) != (2, f.n_classes):
        raise ModelError(f"{f.label}: __call__ returned {getattr(logits, 'shape', type(logits).__name__)} for a "
                         f"batch of shape {tuple(x.shape)}; expected logits of shape (batch, {f.n_classes}) for "
                         f"this task's {f.n_classes} classes")
    flat = found["flat"]
    if f.layers:
        calls = {name.removesuffix("/__call__").replace("/", ".") for name, _ in flat if name.endswith("/__call__")}
        missing = [name for name in f.layers if name not in calls]
        if missing:
            raise ModelError(f"{f.label}: model.layers names {missing}, which are not submodules called by "
                             f"__call__; called submodules: {sorted(calls) or 'none'}")
        names = list(f.layers)
    else:
        if not flat:
            raise ModelError(f"{f.label}: the module records no layer to measure: call "
                             f"self.sow(nnx.Intermediate, 'name', h) in __call__ for each layer, or list "
                             f"submodules in model.layers")
        names = [name for name, _ in sorted(flat, key=lambda item: item[1])]
    if "out" in names:
        raise ModelError(f"{f.label}: a recorded layer is named 'out', the name of the softmax output: rename it")
    return tuple(names)
