"""Phases and the depth claims (ibjax.report.phases) on planted trajectories with known onsets, ends, transitions
and effects: what is planted is found, and where nothing is planted the interval covers the null."""

import numpy as np
import pandas as pd
import pytest

from ibjax.report.phases import depth_claims, layer_phase, network_phases, phase_table, snr_transition
from ibjax.report.verdicts import VerdictSettings

EPOCHS = np.unique(np.geomspace(1, 10000, 120).round()).astype(float)
RAW = VerdictSettings(smooth_window=1)  # unsmoothed: the planted epochs are exact


def planted_curve(onset: float, duration_decades: float, rise: float = 2.0, top: float = 10.0, fall: float = 3.0):
    """I(X;T): rises to `top` at `onset`, then falls linearly in log-epochs by `fall` bits over
    `duration_decades`, then stays."""
    le = np.log10(EPOCHS)
    lo = np.log10(onset)
    up = top - rise * np.clip((lo - le) / max(lo, 1e-9), 0, 1)
    down = top - fall * np.clip((le - lo) / duration_decades, 0, 1)
    return np.where(le <= lo, up, down)


def test_layer_phase_finds_the_planted_onset_end_and_duration():
    onset = EPOCHS[np.argmin(np.abs(EPOCHS - 100))]  # a logged epoch
    ph = layer_phase(EPOCHS, planted_curve(onset, 1.0), RAW)
    assert ph["compresses"] and ph["onset"] == onset and abs(ph["fall_bits"] - 3.0) < 1e-9
    # 90 % of the fall is made 0.9 decades after the onset (linear in log-epochs): the first logged epoch there.
    want_end = EPOCHS[np.flatnonzero(np.log10(EPOCHS) >= np.log10(onset) + 0.9 - 1e-9)[0]]
    assert abs(ph["end"] - want_end) <= 1 and abs(ph["duration_decades"] - 0.9) < 0.05
    flat = layer_phase(EPOCHS, np.full(len(EPOCHS), 5.0) + 0.01 * np.sin(EPOCHS), RAW)
    assert not flat["compresses"] and np.isnan(flat["duration_decades"])


def test_snr_transition_is_the_first_epoch_below_one():
    rows = [{"epoch": e, "layer": f"h{i}", "snr": 10.0 if e < 300 else 0.2} for e in EPOCHS for i in (1, 2, 3)]
    assert snr_transition(pd.DataFrame(rows), RAW) == EPOCHS[EPOCHS >= 300][0]
    assert np.isnan(snr_transition(pd.DataFrame([{"epoch": 1.0, "layer": "h1", "snr": 5.0}]), RAW))


def sweep_tables(rng, depths=(1, 2, 3, 4), seeds=12, gen_by_depth=None, duration_slope=-0.2, lag=0.0):
    """Synthetic run tables: networks of each depth; layer l of a network compresses from an onset near the SNR
    transition (+ `lag` decades) for a duration of 1 + duration_slope * (l - 1) decades (noisy); test accuracy
    reaches 0.9 at gen_by_depth[depth] epochs."""
    gen_by_depth = gen_by_depth or {d: 2000.0 / d for d in depths}
    runs, info, grads, metrics = [], [], [], []
    for d in depths:
        for s in range(seeds):
            run = f"d{d}s{s}"
            runs.append({"run_id": run, "cell": f"hidden={d}", "hidden": [10] * d, "diverged": False})
            snr_epoch = 10 ** rng.uniform(2.0, 2.5)
            onset = snr_epoch * 10 ** (lag + rng.normal(0, 0.05))
            for layer in range(1, d + 1):
                dur = 1.0 + duration_slope * (layer - 1) + rng.normal(0, 0.03)
                curve = planted_curve(onset, dur)
                info += [{"run_id": run, "epoch": e, "layer": f"h{layer}", "estimator": "binning30", "i_xt": v}
                         for e, v in zip(EPOCHS, curve)]
                grads += [{"run_id": run, "epoch": e, "layer": f"h{layer}", "snr": 5.0 if e < snr_epoch else 0.3}
                          for e in EPOCHS]
            info += [{"run_id": run, "epoch": e, "layer": "out", "estimator": "binning30", "i_xt": 1.0}
                     for e in EPOCHS]
            gen = gen_by_depth[d] * 10 ** rng.normal(0, 0.05)
            metrics += [{"run_id": run, "epoch": e, "train_acc": 1.0, "test_acc": 0.95 if e >= gen else 0.5}
                        for e in EPOCHS]
    return pd.DataFrame(info), pd.DataFrame(grads), pd.DataFrame(metrics), pd.DataFrame(runs)


def test_planted_depth_effects_are_found():
    info, grads, metrics, runs = sweep_tables(np.random.default_rng(0))
    ph = network_phases(info, grads, metrics, runs, RAW)
    assert set(ph.depth) == {1, 2, 3, 4} and ph.compresses.all() and (ph.layer != "out").all()
    claims = depth_claims(ph, RAW).set_index("statistic")
    a = claims.filter(like="Spearman", axis=0).iloc[0]
    assert a.estimate < -0.8 and a.hi < 0  # (a): deeper generalizes sooner
    b = claims.filter(like="duration difference", axis=0).iloc[0]
    # (b): the planted -0.2 decades per layer; the measured duration is the time to 90 % of a fall that is
    # linear in log-epochs, so the difference is 0.9 x -0.2: found and covered.
    assert b.lo < -0.18 < b.hi and b.hi < 0
    c = claims.filter(like="median lag", axis=0).iloc[0]
    assert c.lo <= 0 <= c.hi and abs(c.estimate) < 0.1  # (c): onset at the transition
    table = phase_table(ph, runs, RAW)
    assert len(table) == 1 + 2 + 3 + 4 and (table.compress_frac == 1).all()
    deepest = table[table.depth == 4].sort_values("index")
    assert np.all(np.diff(deepest.median_duration_decades) < 0)  # per layer, shorter with depth
    assert table[table["index"] == table.depth].median_lag_decades.abs().max() < 0.1


@pytest.mark.parametrize("seed", [1, 2])
def test_no_planted_effect_gives_intervals_covering_the_null(seed):
    info, grads, metrics, runs = sweep_tables(np.random.default_rng(seed), duration_slope=0.0, lag=0.5,
                                              gen_by_depth={d: 500.0 for d in (1, 2, 3, 4)})
    claims = depth_claims(network_phases(info, grads, metrics, runs, RAW), RAW).set_index("statistic")
    a = claims.filter(like="Spearman", axis=0).iloc[0]
    b = claims.filter(like="duration difference", axis=0).iloc[0]
    c = claims.filter(like="median lag", axis=0).iloc[0]
    assert a.lo < 0 < a.hi and b.lo < 0 < b.hi
    assert c.lo > 0.3  # a planted half-decade lag is not "coincident"
    share = claims.filter(like="share", axis=0).iloc[0]
    assert share.estimate < 0.1


def test_networks_that_never_generalize_rank_as_the_slowest():
    info, grads, metrics, runs = sweep_tables(np.random.default_rng(3), depths=(1, 3), seeds=8,
                                              gen_by_depth={1: 1e9, 3: 300.0})  # depth 1 never reaches 0.9
    ph = network_phases(info, grads, metrics, runs, RAW)
    assert np.isinf(ph[ph.depth == 1].generalize_epoch).all()
    a = depth_claims(ph, RAW).iloc[0]
    assert a.estimate < -0.8 and a.hi < 0
    table = phase_table(ph, runs, RAW)
    assert np.isinf(table[table.depth == 1].median_generalize_epoch).all()


def test_saturated_still_rising_and_nan_trajectories_are_no_compression():
    onset = EPOCHS[np.argmin(np.abs(EPOCHS - 100))]
    curve = planted_curve(onset, 1.0)  # top 10 bits
    assert not layer_phase(EPOCHS, curve, RAW, ceiling=10.02)["compresses"]  # at the ceiling: cannot show
    assert layer_phase(EPOCHS, curve, RAW, ceiling=12.0)["compresses"]
    rising = np.linspace(2.0, 9.0, len(EPOCHS))
    assert not layer_phase(EPOCHS, rising, RAW)["compresses"]  # maximum in the final window
    holey = curve.copy()
    holey[-3] = np.nan  # one missing point in the final window changes nothing
    ph = layer_phase(EPOCHS, holey, RAW)
    assert ph["compresses"] and abs(ph["fall_bits"] - 3.0) < 1e-9
    assert ph["complete"]  # 90 % of the fall reached before the last logged epoch


def test_the_lag_is_timed_only_where_the_last_layer_compresses():
    info, grads, metrics, runs = sweep_tables(np.random.default_rng(4), depths=(2,), seeds=6)
    flat = info.run_id.isin(["d2s0", "d2s1"]) & (info.layer == "h2")
    info.loc[flat, "i_xt"] = 5.0  # two networks' last layers never compress
    ph = network_phases(info, grads, metrics, runs, RAW)
    per_run = ph.groupby("run_id").lag_decades.first()
    assert per_run[["d2s0", "d2s1"]].isna().all() and per_run.drop(["d2s0", "d2s1"]).notna().all()
    c = depth_claims(ph, RAW).set_index("statistic").filter(like="median lag", axis=0).iloc[0]
    assert c.n_networks == 4
