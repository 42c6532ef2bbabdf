"""Quantized networks (Lorenzen et al. 2022) and the exact estimator against brute-force counting."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ibjax.mi import ExactCounting, LayerContext
from ibjax.models.mlp import fake_quantize, forward
from ibjax.train import Networks
from tests.helpers import network, small_spec, sweep_to_run_dir, tiny_bucket, tishby_task
from tests.reference import symbol_mi


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_fake_quantize_levels_and_straight_through(bits):
    h = jnp.asarray(np.random.default_rng(bits).normal(size=(500, 6)).astype(np.float32))
    mask = jnp.asarray([1, 1, 1, 1, 0, 0], jnp.float32)
    q = fake_quantize(h, mask, bits)
    real = np.asarray(q)[:, :4]
    assert len(np.unique(real)) <= 2**bits
    assert real.min() == pytest.approx(float(h[:, :4].min())) and real.max() == pytest.approx(float(h[:, :4].max()))
    step = (float(h[:, :4].max()) - float(h[:, :4].min())) / (2**bits - 1)
    assert np.abs(real - np.asarray(h)[:, :4]).max() <= step / 2 + 1e-5
    grad = jax.grad(lambda x: jnp.sum(fake_quantize(x, mask, bits) * 3.0))(h)
    assert np.all(np.asarray(grad) == 3.0)  # straight through


def test_exact_estimator_on_the_engines_quantized_layers_equals_brute_force():
    data = tishby_task().device_data()
    for bits in (4, 8):
        eng, consts = tiny_bucket([((10, 7, 5, 4, 3), "tanh")], estimators=(ExactCounting(n_classes=2),),
                                  quantize_bits=bits)
        st = eng.init_state(Networks.of([3], 1e-3), consts)
        params, c0 = network(st.params, 0), network(consts, 0)
        mi, _ = jax.jit(eng.measure)(params, c0, data)  # as the chunk runs it, not op by op
        layers, logits = jax.jit(forward, static_argnums=(3, 4))(params, c0, data.x, ("tanh",), bits)
        y = np.asarray(data.y)
        for layer, acts in enumerate(layers):
            acts = np.asarray(acts)
            assert all(len(np.unique(acts[:, k])) <= 2**bits for k in range(acts.shape[1]))
            want = symbol_mi(acts, y)
            np.testing.assert_allclose(np.asarray(mi[layer, 0, :2]), want, atol=1e-9)


def test_exact_estimator_counts_float_rows():
    rng = np.random.default_rng(0)
    pool = rng.normal(size=(40, 5)).astype(np.float32)
    acts = pool[rng.integers(0, 40, 3000)]
    acts[:10, 0] = -0.0  # -0.0 and 0.0 are one value
    acts[10:20, 0] = 0.0
    labels = rng.integers(0, 2, 3000)
    ctx = LayerContext(jnp.ones(5, bool), jnp.float32(0), jnp.float32(1), jnp.bool_(False))
    got = ExactCounting(n_classes=2)(jnp.asarray(acts), jnp.asarray(labels), ctx)
    want = symbol_mi(np.where(acts == 0, 0.0, acts), labels)
    np.testing.assert_allclose([float(got.i_xt), float(got.i_ty)], want, atol=1e-9)


def test_quantized_sweep_exact_equals_level_binning(tmp_path):
    # 2-bit layers: 4 levels over the layer's own [min, max]; 4 bins over the same range separate them, so
    # the exact estimator and layer-range binning with 4 bins must agree on every hidden layer.
    raw = small_spec(**{"mi.estimators": [{"kind": "exact"}, {"kind": "binning", "n_bins": 4, "range": "layer"}]})
    raw["model"] = {"hidden": [5, 3, 2], "activation": "tanh"}
    raw["grid"] = {"seed": 1, "quantize_bits": [None, 2]}
    rd = sweep_to_run_dir(tmp_path, raw)
    assert set(rd.runs.quantize_bits.dropna()) == {2} and rd.runs.quantize_bits.isna().sum() == 1
    info = rd.info.merge(rd.runs[["run_id", "quantize_bits"]], on="run_id")
    q = info[(info.quantize_bits == 2) & (info.layer != "out")]
    wide = q.pivot_table(index=["run_id", "epoch", "layer"], columns="estimator", values="i_xt")
    np.testing.assert_allclose(wide["exact"], wide["binning4_layer"], atol=1e-9)
    assert (wide["exact"] <= 2 * 5 + 1e-9).all()
    # Unquantized tanh layers: nearly every pattern distinct, far above their 4-bin estimate.
    plain = info[info.quantize_bits.isna() & (info.layer == "h1") & (info.estimator == "exact")]
    assert plain.i_xt.mean() > 10


def test_quantized_conv_layers_exact_equals_level_binning(tmp_path):
    """Quantization is a property of the conv family too (Lorenzen et al.'s quantized conv nets): every conv block
    (after its pooling) and dense layer of a 1-bit network takes 2 levels over its own range, so the exact
    estimator and layer-range binning with 2 bins agree on every hidden layer, and a 2-unit dense layer carries at
    most 2 bits where its float twin's values are all distinct."""
    raw = small_spec(**{"mi.estimators": [{"kind": "exact"}, {"kind": "binning", "n_bins": 2, "range": "layer"}]})
    raw["data"] = {"dataset": "digits", "mi_sample": {"split": "all", "n": 300, "seed": 0}}
    raw["model"] = {"kind": "conv", "channels": [4], "kernel_size": 3, "pool": 2, "padding": "valid",
                    "hidden": [2], "activation": "tanh"}
    raw["train"].update(epochs=4, chunk_epochs=5, batch_size=128)
    raw["mi"]["schedule"] = {"every": 2}
    raw["grid"] = {"seed": 1, "quantize_bits": [None, 1]}
    rd = sweep_to_run_dir(tmp_path, raw)
    assert sorted(rd.runs.quantize_bits.dropna()) == [1] and set(rd.info.layer) == {"conv1", "dense1", "out"}
    info = rd.info.merge(rd.runs[["run_id", "quantize_bits"]], on="run_id")
    q = info[(info.quantize_bits == 1) & (info.layer != "out")]
    wide = q.pivot_table(index=["run_id", "epoch", "layer"], columns="estimator", values="i_xt")
    assert len(wide) == 2 * 3  # two hidden layers at epochs 0, 2, 4
    np.testing.assert_allclose(wide["exact"], wide["binning2_layer"], atol=1e-9)
    dense = info[(info.layer == "dense1") & (info.estimator == "exact")]
    assert (dense[dense.quantize_bits == 1].i_xt <= 2 + 1e-9).all()
    assert (dense[dense.quantize_bits.isna()].i_xt > 7).all()  # float values: nearly every row its own symbol
