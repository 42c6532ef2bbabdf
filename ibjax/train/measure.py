"""One network's measurement on a logged epoch, as a pure function of its Program: every estimator on every layer
over the MI sample, and the train/test metrics. The chunk (ibjax.train.engine) vmaps or maps it over the networks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from ibjax.data.task import Data
from ibjax.data.teacher import generalization_error
from ibjax.mi.interface import LayerContext
from ibjax.models.mlp import ModelConsts
from ibjax.train.program import METRICS, REGRESSION_METRICS, Program
from ibjax.train.rows import kernel_reads, read_rows

NOISE_DRAWS = 8  # forward passes per logged epoch of a stochastic network (samples of each layer given X)


def masked_mean(v, mask):
    """Mean of v over the rows where mask > 0 (where, not a product: a row outside the mask must not reach the
    mean, and NaN * 0 is NaN)."""
    return jnp.sum(jnp.where(mask > 0, v, 0.0)) / jnp.sum(mask)


def mi_columns(prog: Program, data: Data) -> tuple[str, ...]:
    """The names of `measure`'s MI quantities, in the order of its last axis (info.parquet's columns): i_xt,
    i_ty, bin_lo, bin_hi (the range binned), plus i_ty_trained (I(T;Y) against the labels the network trained
    on) when the networks have per-run labels (label noise), plus i_xt_rel and i_xt_irr (I(T;X) of the
    relevant and irrelevant parts of the input) with task-irrelevant inputs. `measure` stacks by these names."""
    cols = ["i_xt", "i_ty", "bin_lo", "bin_hi"]
    if data.runs is not None and data.runs.y_fit is not None:
        cols.append("i_ty_trained")
    if prog.irrelevant is not None or prog.relevant_inputs is not None:
        cols += ["i_xt_rel", "i_xt_irr"]
    return tuple(cols)



def _rows_of(ctx: LayerContext, a: int, b: int) -> LayerContext:
    """A layer's context on rows [a, b) of the MI sample (what is per row is cut; the layer's map is not)."""
    cut = lambda v, axis=0: None if v is None else jax.lax.slice_in_dim(v, a, b, axis=axis)
    enc = None if ctx.encoded_inputs is None else {k: v[a:b] for k, v in ctx.encoded_inputs.items()}
    return ctx._replace(draws_KxNxU=cut(ctx.draws_KxNxU, 1), inputs_NxD=cut(ctx.inputs_NxD),
                        net_input_NxU=cut(ctx.net_input_NxU), encoded_inputs=enc)


def make_measure(prog: Program) -> Callable:
    """`measure(params, consts, data, key=None) -> (mi [L, E, K], metrics)` of one network (see inside)."""
    fam = prog.family

    def measure(params, consts: ModelConsts, data: Data, key=None):
        """MI of every layer under every estimator [L, E, K] and metrics (`Program.metric_names`) of one model.

        K: the quantities `mi_columns(data)` names, in its order. Metrics are over every row of x (train and test
        masks); the MI over the MI sample.
        `key`: the noise of a stochastic network's measurement pass (noise_std only)."""
        p = prog
        runs = data.runs
        x_mi = read_rows(data, data.mi_idx)
        y_mi = data.y if data.mi_idx is None else data.y[data.mi_idx]
        fit_labels = runs is not None and runs.y_fit is not None

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
            # One vmapped pass over the draws' keys, not NOISE_DRAWS - 1 copies of the network in the program.
            more = jax.vmap(lambda k: fam.apply(params, consts, x_mi, jax.random.fold_in(key, k))[0])(
                jnp.arange(1, NOISE_DRAWS))
            draws = [jnp.concatenate([h[None], m]) for h, m in zip(hidden, more)]
        # Net inputs (pre-activations) only where an estimator bins them: one matmul per layer from the layers.
        nets = [None] * len(layers)
        if any(e.needs_net_input for e in p.estimators):
            nets = [*fam.net_inputs(params, consts, x_mi, hidden), logits]
        # Each layer's map read off the network and whether it is affine in X, where an estimator needs them (the
        # Gaussian estimator's exact MI of linear networks) or a regression task's exact E_g does.
        maps, biases = [None] * len(layers), [None] * len(layers)
        affine = fam.affine_layers(consts)
        if p.regression or any(e.needs_linear_map for e in p.estimators):
            maps, biases = _affine_maps(fam, params, consts, x_mi.shape[1])
        ctxs = _layer_contexts(p, fam.contexts(consts, hidden), logits, draws, nets, maps, affine, x_mi, data)
        fit_y = None
        if fit_labels:
            fit_y = runs.y_fit if data.mi_idx is None else runs.y_fit[data.mi_idx]
        mi = _mi_of_layers(p, mi_columns(prog, data), layers, ctxs, y_mi, fit_y)
        if data.mi_idx is not None:  # the MI sample is not every row: one more forward pass for the metrics
            _, logits = layers_on(read_rows(data, None))
        if p.regression:
            return mi, _regression_metrics(logits, data, maps[-1], biases[-1], affine[-1])
        return mi, _classification_metrics(logits, data)

    return measure


def _layer_contexts(p: Program, hidden_ctx, logits, draws, nets, maps, affine, x_mi, data: Data
                    ) -> list[LayerContext]:
    """What the estimators know of each measured layer: the hidden layers' (the family's masks and ranges), then
    the output's (the logits of a regression task, else the softmax's [0, 1])."""
    out_ctx = ((jnp.float32(0.0), jnp.float32(0.0), False) if p.regression
               else (jnp.float32(0.0), jnp.float32(1.0), True))
    ctxs = [LayerContext(mask, lo, hi, bounded, d, x_mi, z, m, a, data.teacher, data.encoded_inputs)
            for (mask, lo, hi, bounded), d, z, m, a in zip(hidden_ctx, draws, nets, maps, affine)]
    ctxs.append(LayerContext(jnp.ones(logits.shape[-1], bool), *out_ctx, None, x_mi, nets[-1], maps[-1],
                             affine[-1], data.teacher, data.encoded_inputs))
    return ctxs


def _mi_of_layers(p: Program, columns: tuple[str, ...], layers, ctxs, y_mi, fit_y):
    """[L, E, K]: every estimator on every layer (with mi_sample.split both [L, P * E, K], part-major: each part
    of the sample, its training rows then its test rows, measured on its own)."""
    if p.mi_parts is None:
        return jnp.stack([jnp.stack([_estimates(p, columns, est, acts, ctx, y_mi, fit_y) for est in p.estimators])
                          for acts, ctx in zip(layers, ctxs)])
    bounds = [(sum(p.mi_parts[:i]), sum(p.mi_parts[:i + 1])) for i in range(len(p.mi_parts))]
    return jnp.stack([jnp.stack([_estimates(p, columns, est, acts[a:b], _rows_of(ctx, a, b), y_mi[a:b],
                                            fit_y[a:b] if fit_y is not None else None)
                                 for a, b in bounds for est in p.estimators])
                      for acts, ctx in zip(layers, ctxs)])


def _estimates(p: Program, columns: tuple[str, ...], est, acts, ctx: LayerContext, y, fit_y):
    """One estimator on one layer: the quantities `columns` names, in that order (float64 [K])."""
    i_xt, i_ty, lo, hi = est(acts, y, ctx)
    if p.regression and not est.continuous_targets:  # class counts of one class: not I(T;Y) of targets
        i_ty = jnp.full_like(i_ty, jnp.nan)
    out = {"i_xt": i_xt, "i_ty": i_ty, "bin_lo": lo, "bin_hi": hi}
    if "i_ty_trained" in columns:  # I(T;Y) against the labels this network was trained on
        out["i_ty_trained"] = est(acts, fit_y, ctx).i_ty
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


def _classification_metrics(logits, data: Data):
    """METRICS over every row: loss and accuracy against the labels each row is scored on: the trained-on labels
    for training rows (what the network fits; Zhang et al.'s training accuracy), the true labels for test rows
    (never changed)."""
    runs = data.runs
    y_all = runs.y_fit if runs is not None and runs.y_fit is not None else data.y
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y_all)
    correct = (jnp.argmax(logits, -1) == y_all).astype(jnp.float32)
    own = runs is not None and runs.is_train is not None
    tr, te = (runs.is_train, runs.is_test) if own else (data.is_train, data.is_test)
    by_name = {"train_loss": masked_mean(ce, tr), "train_acc": masked_mean(correct, tr),
               "test_loss": masked_mean(ce, te), "test_acc": masked_mean(correct, te)}
    return jnp.stack([by_name[m] for m in METRICS])


def _affine_maps(fam, params, consts, n_inputs: int):
    """Per measured layer (hidden, then the logits), the map W [U, D] and offset b [U] of the layer as an
    affine function of X: its values at X = e_1..e_D less its value at X = 0 (one forward pass of D + 1 probe
    rows). The layer itself only where the family says it is affine (`affine_layers`); a stochastic network
    has no such map (its layers are not functions of X): None for every layer."""
    if fam.stochastic:
        n = len(fam.layer_names)
        return [None] * n, [None] * n
    probe = jnp.concatenate([jnp.zeros((1, n_inputs), jnp.float32), jnp.eye(n_inputs, dtype=jnp.float32)])
    hidden, logits = fam.apply(params, consts, probe)
    outs = [*hidden, logits]
    return [(h[1:] - h[0]).T for h in outs], [h[0] for h in outs]


def _regression_metrics(out_NxO, data: Data, w_out, b_out, affine):
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
