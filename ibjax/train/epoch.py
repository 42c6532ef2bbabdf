"""One network's training, as pure functions of its Program: the initial state, the loss, and one epoch of
minibatch steps with Shwartz-Ziv & Tishby's gradient statistics. The chunk (ibjax.train.engine) vmaps or maps them
over the networks of a program; tests call them on one network.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax

from ibjax.data.task import Data
from ibjax.models.mlp import ModelConsts
from ibjax.train.program import Networks, Program, TrainState, make_optimizer
from ibjax.train.rows import kernel_reads, read_rows
from ibjax.train.shuffle import feistel_permutation


def compact_below_dynamic(values_K: jnp.ndarray, n) -> jnp.ndarray:
    """The values of `values_K` below a traced n, in order, then zeros (a permutation of [0, n) first)."""
    keep = values_K < n
    pos = jnp.cumsum(keep) - 1
    return jnp.zeros(values_K.shape[0], jnp.int32).at[jnp.where(keep, pos, values_K.shape[0])].set(
        values_K, mode="drop")



def make_init(prog: Program) -> Callable:
    """`init_one(net: Networks, consts) -> TrainState` of one network: its parameters from its seed, and its
    optimizer state holding its own hyperparameters."""
    fam = prog.family

    def init_one(net: Networks, consts: ModelConsts) -> TrainState:
        k_init, k_train = jax.random.split(jax.random.PRNGKey(net.seed))
        params = fam.init(k_init, consts)
        wd = net.weight_decay if prog.weight_decay else None  # none: the optimizer state of earlier versions
        opt_state = make_optimizer(prog.optimizer, net.learning_rate, net.momentum, wd).init(params)
        return TrainState(params, opt_state, k_train)

    return init_one


def make_loss(prog: Program) -> Callable:
    """`loss(params, consts, xb, yb, wb, key=None)` of one network on a minibatch."""
    fam = prog.family

    def loss(params, consts, xb, yb, wb, key=None):
        """Mean cross-entropy of one model on a minibatch (in training mode: dropout on), weighted by wb
        (padding rows weigh 0); for a regression task, the mean squared error summed over the outputs."""
        _, logits = fam.apply(params, consts, xb, key, train=True)
        if prog.regression:
            per_row = jnp.sum(jnp.square(logits - yb), axis=-1)
        else:
            per_row = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
        return jnp.sum(per_row * wb) / jnp.sum(wb)

    return loss


def make_train_epoch(prog: Program) -> Callable:
    """`train_epoch(state, consts, data) -> (TrainState, [L, 2] gradient statistics)` of one network."""
    fam = prog.family
    loss = make_loss(prog)
    tx = make_optimizer(prog.optimizer, weight_decay=0.0 if prog.weight_decay else None)

    def train_epoch(state: TrainState, consts: ModelConsts, data: Data):
        """One epoch of minibatch training; returns the new state and per-layer gradient stats [L, 2].

        `data.runs` (if any) is this network's row of the per-run variants: its own training rows (a program
        covers its largest training set; a network with fewer rows skips the minibatches past its own) and the
        labels it trains on."""
        p = prog
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
        # (jnp.pad, not `.at[:n].set`: that scatter's empty index constant, hoisted into the shard_map, crashed
        # Shardy's canonicalizer in jax 0.11.2 for the regression programs; BUILD_NOTES.md, "Accelerators".)
        idx_BxS = jnp.pad(order.astype(jnp.int32), (0, n_slots - p.n_train)).reshape(p.n_batches, p.batch_size)
        w_BxS = (jnp.arange(n_slots) < n_real).astype(jnp.float32).reshape(p.n_batches, p.batch_size)
        rows = runs.train_idx if own_rows else data.train_idx
        own_labels = runs is not None and runs.y_fit is not None
        y = data.targets if p.regression else runs.y_fit if own_labels else data.y
        # The native kernel reads x whole and one shared label vector on every call: only for small float data
        # (and its loss is the cross-entropy: a regression task trains through jax.grad).
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
                grads = fam.kernel_grads(lambda *a: loss(*a, k_noise), params, consts, x, y_k,
                                         to_rows(idx_S), w_S)
            else:
                r_S = rows[idx_S]
                grads = jax.grad(lambda *a: loss(*a, k_noise))(params, consts, read_rows(data, r_S), y[r_S],
                                                                   w_S)
            updates, new_opt = tx.update(grads, opt_state, params)
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

    return train_epoch
