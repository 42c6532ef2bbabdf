"""Verdicts, intervals and the report: ground-truth trajectories, SciPy's Wilson interval, run-level bootstrap,
and `python -m ibjax.report` on a tiny real run directory."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ibjax.report.comparisons import compare_cells, one_setting_pairs
from ibjax.report.intervals import bootstrap_band, bootstrap_ci, holm, resample_indices, tango_interval, wilson_interval
from ibjax.report.summary import agreement, sensitivity, summarize
from ibjax.report.verdicts import VerdictSettings, run_verdicts, trajectory_verdict
from tests.helpers import run_cli

# Log-spaced logged epochs as the sweeps use them: dense early, 0 and the last epoch included.
EPOCHS = np.unique(np.r_[0, np.round(np.logspace(0, np.log10(4000), 150))]).astype(int)
LOG_E = np.log10(EPOCHS + 1.0)
N = 4096


def fitting_i_ty(rise_at: float = 30.0) -> np.ndarray:
    """I(T;Y) in bits: a sigmoid in log-epoch that is fitted (>= 95 % of final) from about 3x `rise_at` on."""
    return 0.95 / (1 + np.exp(-(LOG_E - np.log10(rise_at)) * 8))


def bump(centre: float, width: float, height: float) -> np.ndarray:
    return height * np.exp(-0.5 * ((LOG_E - np.log10(centre)) / width) ** 2)


def verdict(i_xt, i_ty=None, **kw):
    return trajectory_verdict(EPOCHS, i_xt, fitting_i_ty() if i_ty is None else i_ty, N, VerdictSettings(**kw))


def test_rise_then_late_fall_is_compressed_after_fitting():
    # Rises until ~epoch 300 (after fitting, ~100), then falls by 2 bits by epoch 4000.
    i_xt = 5 + 1.0 * np.tanh(LOG_E - 1.5) - 3.0 * np.clip((LOG_E - np.log10(300)) / (np.log10(4000) - 2.48), 0, 1)
    v = verdict(i_xt)
    assert v["compressed"] and not v["peak_at_end"] and not v["saturated"]
    assert v["compression_after_fit"] and v["peak_epoch"] > v["fit_epoch"]
    assert 150 <= v["peak_epoch"] <= 600
    assert v["drop_bits"] == pytest.approx(i_xt.max() - i_xt[-15:].mean(), abs=0.15)
    assert v["drop_rel"] == pytest.approx(v["drop_bits"] / v["peak_bits"])


def test_monotone_rise_is_not_compressed():
    v = verdict(4 + 2 * (LOG_E / LOG_E.max()))
    assert not v["compressed"] and v["peak_at_end"] and v["drop_bits"] < 0.1
    assert v["transient_drop_bits"] == pytest.approx(0, abs=1e-9)


def test_early_transient_alone_is_reported_not_counted():
    # A 2-bit bump at epoch ~20 while I(T;Y) climbs, then flat: the global-peak rule would call this compression.
    i_xt = 6 + bump(20, 0.15, 2.0)
    v = verdict(i_xt, fitting_i_ty(rise_at=30))
    assert not v["compressed"]
    assert v["transient_drop_bits"] > 1.5 and 10 <= v["transient_peak_epoch"] <= 40
    assert v["fit_epoch"] > v["transient_peak_epoch"]
    # The same trajectory with the late window judged from epoch 0 would drop by ~2 bits: the separation matters.
    naive = trajectory_verdict(EPOCHS, i_xt, np.ones_like(i_xt), N, VerdictSettings())  # fitted from epoch 0
    assert naive["compressed"] and naive["fit_epoch"] == 0


def test_saturated_at_log2_n():
    v = verdict(np.full(len(EPOCHS), math.log2(N)))
    assert v["saturated"] and not v["compressed"] and v["peak_bits"] == pytest.approx(12)
    assert not verdict(np.full(len(EPOCHS), 11.5))["saturated"]


def test_estimator_limits_set_saturation_and_the_validated_range():
    flat = np.full(len(EPOCHS), 7.8)
    # A kNN-like ceiling of 7.8 bits: saturated there, though far below log2 N = 12.
    assert verdict(flat)["saturated"] is False
    v = trajectory_verdict(EPOCHS, flat, fitting_i_ty(), N, VerdictSettings(), (7.8, 5.0))
    assert v["saturated"] and v["unreliable"]
    # Compression that stays inside the validated range is not flagged; one that starts above it is.
    i_xt = 3 + 1.0 * np.tanh(LOG_E - 1.5) - 1.5 * np.clip((LOG_E - np.log10(300)) / (np.log10(4000) - 2.48), 0, 1)
    inside = trajectory_verdict(EPOCHS, i_xt, fitting_i_ty(), N, VerdictSettings(), (9.0, 5.0))
    above = trajectory_verdict(EPOCHS, i_xt, fitting_i_ty(), N, VerdictSettings(), (9.0, 3.0))
    assert inside["compressed"] and not inside["unreliable"]
    # The same drop measured where the estimator's bias is unknown is flagged, and not counted as compression.
    assert above["unreliable"] and above["drop_bits"] == inside["drop_bits"] and not above["compressed"]


def test_threshold_decides_and_peak_at_end_never_compressed():
    i_xt = 6 - 0.3 * np.clip((LOG_E - 2.5) / 1.1, 0, 1)  # a 0.3-bit late decline
    assert not verdict(i_xt)["compressed"]
    assert verdict(i_xt, threshold_bits=0.2)["compressed"]
    jump_up_at_end = np.r_[np.full(len(EPOCHS) - 3, 6.0), [9.0, 9.0, 9.0]]
    assert not verdict(jump_up_at_end, threshold_bits=0.0)["compressed"]


@pytest.mark.parametrize("k,n", [(0, 16), (1, 16), (8, 16), (15, 16), (16, 16), (3, 7), (1, 1)])
def test_wilson_matches_scipy(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_bootstrap_resamples_runs_not_epochs():
    rng = np.random.default_rng(1)
    # Identical runs whose epochs vary wildly: resampling runs gives zero width (resampling epochs would not).
    one_run_T = rng.normal(0, 5, size=40)
    lo, hi = bootstrap_band(np.tile(one_run_T, (16, 1)))
    np.testing.assert_allclose(lo, one_run_T)
    np.testing.assert_allclose(hi, one_run_T)
    # Runs that are constant over epochs but differ from each other: the band has width at every epoch, and the
    # same width at every epoch because one draw of runs serves all epochs.
    levels_R = rng.normal(0, 1, size=16)
    lo, hi = bootstrap_band(np.tile(levels_R[:, None], (1, 40)))
    assert np.all(hi - lo > 0.3) and np.ptp(hi - lo) < 1e-12
    # The resampling unit count is the number of runs.
    assert resample_indices(16, 500, np.random.default_rng(0)).shape == (500, 16)
    assert bootstrap_ci(np.full(16, 0.4)) == pytest.approx((0.4, 0.4))
    assert all(np.isnan(bootstrap_ci(np.array([0.4]))))


def test_bootstrap_ci_covers_mean_and_shrinks_with_runs():
    rng = np.random.default_rng(2)
    small, big = rng.normal(1, 1, 16), rng.normal(1, 1, 400)
    lo_s, hi_s = bootstrap_ci(small)
    lo_b, hi_b = bootstrap_ci(big)
    assert lo_s < small.mean() < hi_s and lo_b < big.mean() < hi_b
    assert (hi_b - lo_b) < (hi_s - lo_s) / 2


def test_holm_step_down():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> 0.02, 0.03, 0.06, 0.06 (monotone)
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02, np.nan])
    # The reference implementation (statsmodels), on families with ties, values near 1 and a single test.
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    for m in (1, 2, 7, 50):
        for q in (rng.uniform(0, 1, m), rng.uniform(0, 0.05, m), np.round(rng.uniform(0, 1, m), 1)):
            np.testing.assert_allclose(holm(q), multipletests(q, method="holm")[1], rtol=0, atol=1e-15)


def synthetic_sweep(n_seeds=12):
    """Two cells differing only in activation, sharing seeds: tanh compresses late, relu only rises."""
    runs, info = [], []
    rng = np.random.default_rng(3)
    for act, compress in (("tanh", True), ("relu", False)):
        cell = f"activation={act},hidden=10-7-5-4-3"
        for seed in range(n_seeds):
            rid = f"{act}{seed}"
            runs.append({"run_id": rid, "cell": cell, "seed": seed, "activation": act, "hidden": "10-7-5-4-3",
                         "optimizer": "adam", "learning_rate": 4e-4, "momentum": None, "batch_size": "256",
                         "train_acc": 1.0, "test_acc": 0.9 + 0.01 * seed, "diverged": False})
            late = np.clip((LOG_E - 2.6) / 1.0, 0, 1)
            i_xt = 6 + 0.5 * np.tanh(LOG_E - 1.5) - (2.0 * late if compress else -0.5 * late)
            i_xt = i_xt + rng.normal(0, 0.02, len(EPOCHS))
            for name, x in (("h5", i_xt), ("h1", np.full(len(EPOCHS), 12.0))):
                info.append(pd.DataFrame({"run_id": rid, "epoch": EPOCHS, "layer": name, "estimator": "binning30",
                                          "i_xt": x, "i_ty": fitting_i_ty()}))
    runs.append({**runs[0], "run_id": "dead", "seed": 99, "diverged": True})
    info.append(pd.DataFrame({"run_id": "dead", "epoch": EPOCHS, "layer": "h5", "estimator": "binning30",
                              "i_xt": np.nan, "i_ty": np.nan}))
    return pd.DataFrame(runs), pd.concat(info, ignore_index=True)


def test_summary_and_paired_comparison_on_known_sweep():
    runs, info = synthetic_sweep()
    v = run_verdicts(info, runs, N)
    assert "dead" not in set(v.run_id) and len(v) == 2 * 12 * 2
    s = summarize(v, runs).set_index(["activation", "layer"])
    tanh, relu = s.loc[("tanh", "h5")], s.loc[("relu", "h5")]
    assert (tanh.n_runs, tanh.n_compressed, tanh.n_diverged) == (12, 12, 1)
    assert (relu.n_compressed, relu.n_diverged) == (0, 0)
    assert (tanh.fraction_lo, tanh.fraction_hi) == pytest.approx(wilson_interval(12, 12))
    assert tanh.drop_rel_lo <= tanh.mean_drop_rel <= tanh.drop_rel_hi
    h1 = s.loc[("tanh", "h1")]  # every pattern its own symbol throughout: nothing measured, nothing counted
    assert h1.fraction_saturated == 1 and h1.n_compressed == 0 and h1.n_measured == 0
    assert np.isnan(h1.fraction_compressed) and tanh.n_measured == 12
    gaps = 1.0 - (0.9 + 0.01 * np.arange(12))
    assert tanh.mean_gap == pytest.approx(gaps.mean()) and tanh.gap_lo < gaps.mean() < tanh.gap_hi

    assert one_setting_pairs(runs) == [("activation", "activation=tanh,hidden=10-7-5-4-3",
                                        "activation=relu,hidden=10-7-5-4-3")]
    c = compare_cells(v, runs).set_index("layer").loc["h5"]
    assert c.n_pairs == 12 and c["diff"] == 1.0
    # Tango's paired score interval: never zero width, even where every pair is discordant the same way.
    assert (c.diff_lo, c.diff_hi) == pytest.approx(tango_interval(12, 0, 12)) and 0.5 < c.diff_lo < 1.0
    assert c.p_value == pytest.approx(2 * 0.5 ** 12) and c.p_holm >= c.p_value

    sens = sensitivity(v)
    t = sens[(sens.layer == "h5") & sens.cell.str.contains("tanh")].set_index("threshold_bits").fraction_compressed
    assert t.is_monotonic_decreasing and t[0.1] == 1.0 and t[2.0] < 1.0


def test_agreement_across_estimators():
    runs, info = synthetic_sweep(6)
    other = info.assign(estimator="binning100")
    other.loc[other.run_id == "tanh0", "i_xt"] = 6.0  # flat: the second estimator disagrees on one run
    v = run_verdicts(pd.concat([info, other]), runs, N)
    a = agreement(v).set_index("layer").loc["h5"]
    assert a.n_runs == 12 and a.agreement == pytest.approx(11 / 12) and 0 < a.cohen_kappa < 1


def test_report_on_tiny_run(tiny_run, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(tiny_run, d)
    for f in ["REPORT.md", "summary.csv", "verdicts.parquet", "comparisons.csv"]:
        (d / f).unlink(missing_ok=True)
    shutil.rmtree(d / "figures", ignore_errors=True)
    proc = run_cli("ibjax.report", str(d), "--n-boot", "400")
    assert proc.returncode == 0, proc.stderr
    v = pd.read_parquet(d / "verdicts.parquet")
    assert len(v) == 8 * 4 and set(v.layer) == {"h1", "h2", "h3", "out"}
    s = pd.read_csv(d / "summary.csv")
    assert len(s) == 4 * 4 and (s.n_runs == 2).all() and (s.fraction_method == "wilson 95%").all()
    measured = s[s.n_measured > 0]  # layers saturated in every run have no fraction (nothing was measured)
    assert measured.fraction_lo.le(measured.fraction_compressed).all()
    assert measured.fraction_hi.ge(measured.fraction_compressed).all()
    assert s[s.n_measured == 0].fraction_compressed.isna().all() and (s.n_compressed <= s.n_measured).all()
    comp = pd.read_csv(d / "comparisons.csv")
    assert {"activation", "hidden"} == set(comp.setting) and comp.p_holm.between(0, 1).all()
    assert ((comp.value_a == "tanh") & (comp.value_b == "relu")).any()
    for name in ["correlations.csv", "sensitivity.csv"]:
        assert len(pd.read_csv(d / name)) > 0
    text = (d / "REPORT.md").read_text()
    assert "tanh 10-7-5, h3" in text and "Wilson" in text and "Paired comparisons" in text
    figs = {p.name: p.stat().st_size for p in (d / "figures").glob("*.png")}
    kinds = ["mi_epoch_", "bands_infoplane_", "heatmap_compressed_", "gradient_snr", "accuracy"]
    counts = {k: sum(n.startswith(k) for n in figs) for k in kinds}
    assert counts == {"mi_epoch_": 4, "bands_infoplane_": 4, "heatmap_compressed_": 1, "gradient_snr": 1,
                      "accuracy": 1}
    assert all(size > 10_000 for size in figs.values())
    assert all(f in text for f in figs)  # REPORT.md lists every figure


@pytest.mark.parametrize("remove", ["info.parquet", "gradients.parquet"])
def test_report_names_missing_table(tiny_run, tmp_path, remove):
    d = tmp_path / "run"
    shutil.copytree(tiny_run, d)
    (d / remove).unlink()
    proc = run_cli("ibjax.report", str(d), "--no-figures")
    assert proc.returncode == 2
    assert remove in proc.stderr and "Traceback" not in proc.stderr


def test_report_missing_dir_and_bad_option(tmp_path, tiny_run):
    proc = run_cli("ibjax.report", str(tmp_path / "nope"), new_process=True)  # once as `python -m` runs it
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("ibjax.report", str(tiny_run), "--smooth-window", "4")
    assert proc.returncode == 2 and "smooth_window" in proc.stderr and "Traceback" not in proc.stderr


def test_a_saturated_trajectory_is_not_a_compression():
    """A layer at the estimator's ceiling that then falls (the memorization study's softmax output): saturated,
    not compressed, and the report says it was not measured instead of counting it compressed."""
    from ibjax.report.summary import summarize
    from ibjax.report.text import headline

    late = np.clip((LOG_E - 2.6) / 1.0, 0, 1)
    fall = 12.0 - 3.0 * late  # at log2 N = 12 bits through the fit, then 3 bits lower
    v = verdict(fall)
    assert v["saturated"] and v["drop_bits"] > 2.5 and not v["compressed"] and not v["compression_after_fit"]
    runs = pd.DataFrame([{"run_id": f"r{i}", "cell": "activation=tanh", "seed": i, "activation": "tanh",
                          "train_acc": 1.0, "test_acc": 0.5, "diverged": False} for i in range(4)])
    info = pd.concat([pd.DataFrame({"run_id": f"r{i}", "epoch": EPOCHS, "layer": "out", "estimator": "binning30",
                                    "i_xt": fall, "i_ty": fitting_i_ty()}) for i in range(4)])
    s = summarize(run_verdicts(info, runs, N), runs).iloc[0]
    assert (s.n_runs, s.n_measured, s.n_compressed, s.n_saturated) == (4, 0, 0, 4)
    text = headline(s, "tanh")
    assert "not measured in any of its 4 runs" in text and "compressed in" not in text


def test_epochs_to_fit_find_a_planted_delay_and_count_runs_that_never_fit():
    """Zhang et al.'s memorization effect planted in a metrics table: cell B fits its training labels ~4x later
    than cell A (every run), cell C has 3 of 8 runs that never fit. The medians, their order-statistic intervals
    and the censoring come out as planted."""
    from ibjax.report.summary import fitting_times

    rng = np.random.default_rng(0)
    epochs = np.arange(0, 201, 5)
    rows, runs = [], []
    for cell, fit_at in (("A", 20), ("B", 80), ("C", 40)):
        for seed in range(8):
            rid = f"{cell}{seed}"
            t_fit = fit_at + int(rng.integers(-5, 6)) if not (cell == "C" and seed < 3) else 10**6
            acc = np.clip(0.5 + 0.5 * epochs / t_fit, 0, 1.0)  # reaches 1.0 at t_fit
            rows += [{"run_id": rid, "epoch": int(e), "train_loss": 0.0, "train_acc": float(a), "test_loss": 0.0,
                      "test_acc": 0.5} for e, a in zip(epochs, acc)]
            runs.append({"run_id": rid, "cell": cell, "seed": seed, "diverged": False, "label_noise": 0.0})
    ft = fitting_times(pd.DataFrame(rows), pd.DataFrame(runs)).set_index("cell")
    assert ft.loc["A", "n_fitted"] == 8 and 15 <= ft.loc["A", "median_epochs_to_fit"] <= 25
    assert 75 <= ft.loc["B", "median_epochs_to_fit"] <= 85
    assert ft.loc["A", "median_hi"] < ft.loc["B", "median_lo"]  # the planted 4x delay: intervals apart
    assert ft.loc["C", "n_fitted"] == 5 and ft.loc["C", "median_hi"] == np.inf  # 3 censored: no finite upper bound
    assert ft.loc["A", "final_train_acc"] == 1.0 and ft.loc["C", "final_train_acc"] < 1.0
