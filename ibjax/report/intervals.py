"""Confidence intervals and multiple-comparison corrections for seed-level statistics.

The unit of replication in a sweep is the *run* (one seed of one cell): a run's logged epochs are strongly
autocorrelated, so every interval here resamples or counts whole runs, never epochs.

References:
    Wilson (1927), Probable inference, the law of succession, and statistical inference. JASA 22:209-212.
    Efron & Tibshirani (1993), An Introduction to the Bootstrap, ch. 13 (percentile intervals).
    Holm (1979), A simple sequentially rejective multiple test procedure. Scand. J. Statist. 6:65-70.
    McNemar (1947), Note on the sampling error of the difference between correlated proportions.
    Tango (1998), Equivalence test and confidence interval for the difference in proportions for the paired-sample
        design. Statistics in Medicine 17:891-908 (coverage at 8 and 16 pairs: tests/atlas/test_effects.py).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
from scipy import optimize, stats


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion k/n (no continuity correction).

    Chosen over the normal (Wald) interval because with 16 seeds the fraction is often 0 or 1, where Wald
    collapses to zero width; Wilson stays inside [0, 1] and keeps close to nominal coverage.

    Returns (nan, nan) for n = 0.
    """
    if n <= 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Clip rounding only: at k = 0 or k = n the exact bound is 0 or 1.
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def tango_score(n10: int, n01: int, n: int, delta: float) -> float:
    """Tango's score statistic for H0: p1 - p2 = delta (n10: pairs 1 in arm a only; n01: in arm b only)."""
    a_ = 2.0 * n
    b_ = -n10 - n01 + (2.0 * n - n10 + n01) * delta
    c_ = -n01 * delta * (1.0 - delta)
    q = (-b_ + math.sqrt(max(b_ * b_ - 4 * a_ * c_, 0.0))) / (2 * a_)  # constrained MLE of p01
    var = n * (2 * q + delta * (1 - delta))
    num = n10 - n01 - n * delta
    if var <= 0:
        return 0.0 if num == 0 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


def tango_interval(n10: int, n01: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Tango's asymptotic score interval for the difference of two paired proportions p_a - p_b.

    Args:
        n10: pairs with the outcome in arm a only; n01: in arm b only; n: all pairs (concordant ones included).
    Returns:
        (lo, hi) within [-1, 1]; (nan, nan) for n = 0.
    """
    if n <= 0:
        return math.nan, math.nan
    z = stats.norm.isf((1 - confidence) / 2)
    d0, eps = (n10 - n01) / n, 1e-12
    # The score falls monotonically in delta: the bounds are where it crosses +z and -z.
    lo = -1.0 if tango_score(n10, n01, n, -1 + eps) <= z else optimize.brentq(
        lambda d: tango_score(n10, n01, n, d) - z, -1 + eps, d0, xtol=1e-12)
    hi = 1.0 if tango_score(n10, n01, n, 1 - eps) >= -z else optimize.brentq(
        lambda d: tango_score(n10, n01, n, d) + z, d0, 1 - eps, xtol=1e-12)
    return float(lo), float(hi)


def resample_indices(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap draws of unit (run) indices, shape [n_boot, n_units], with replacement."""
    return rng.integers(0, n_units, size=(n_boot, n_units))


def bootstrap_ci(values_R: np.ndarray, stat: Callable[[np.ndarray], np.ndarray] | None = None, *,
                 n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` (default: the mean) over runs.

    Args:
        values_R: one value per run (NaNs are dropped first), or [runs, ...] rows resampled as wholes.
        stat: maps resampled rows [n_boot, runs, ...] to [n_boot] statistics; default mean over axis 1.
    Returns:
        (lo, hi); (nan, nan) when fewer than 2 runs (no spread to resample).
    """
    values = np.asarray(values_R, dtype=float)
    if values.ndim == 1:
        values = values[np.isfinite(values)]
    if len(values) < 2:
        return float("nan"), float("nan")
    idx_BxR = resample_indices(len(values), n_boot, np.random.default_rng(seed))
    boots = stat(values[idx_BxR]) if stat is not None else values[idx_BxR].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return float(lo), float(hi)


def bootstrap_band(traj_RxT: np.ndarray, *, n_boot: int = 1000, confidence: float = 0.95,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile band of the mean trajectory over runs, resampling whole trajectories.

    One draw of run indices is used for every epoch, so the band reflects seed-to-seed variation of whole
    trajectories (a run's epochs are never split up). NaN entries (e.g. a run missing an epoch) are ignored
    per epoch.

    Args:
        traj_RxT: [runs, epochs] values (bits, accuracy, ...).
    Returns:
        (lo_T, hi_T); equal to the mean when there is a single run.
    """
    traj = np.asarray(traj_RxT, dtype=float)
    if traj.shape[0] < 2:
        mean = np.nanmean(traj, axis=0) if traj.size else np.full(traj.shape[1], np.nan)
        return mean, mean
    idx_BxR = resample_indices(traj.shape[0], n_boot, np.random.default_rng(seed))
    with warnings.catch_warnings():
        # An epoch where every resampled run is NaN gives NaN (and numpy's 'Mean of empty slice'): expected.
        warnings.simplefilter("ignore", RuntimeWarning)
        boots_BxT = np.nanmean(traj[idx_BxR], axis=1)
        alpha = (1 - confidence) / 2
        lo, hi = np.nanquantile(boots_BxT, [alpha, 1 - alpha], axis=0)
    return lo, hi


def paired_bootstrap_diff(a_R: np.ndarray, b_R: np.ndarray, *, n_boot: int = 2000, confidence: float = 0.95,
                          seed: int = 0) -> tuple[float, float]:
    """Percentile interval of mean(a) - mean(b) for paired runs (same seeds), resampling seeds as pairs."""
    a, b = np.asarray(a_R, dtype=float), np.asarray(b_R, dtype=float)
    return bootstrap_ci(a - b, n_boot=n_boot, confidence=confidence, seed=seed)


def mcnemar_exact(a_R: np.ndarray, b_R: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for paired binary outcomes (binomial test on discordant pairs).

    Returns 1.0 when no pair is discordant (no evidence of a difference).
    """
    a, b = np.asarray(a_R, dtype=bool), np.asarray(b_R, dtype=bool)
    n01, n10 = int((~a & b).sum()), int((a & ~b).sum())
    if n01 + n10 == 0:
        return 1.0
    return float(stats.binomtest(n10, n01 + n10, 0.5).pvalue)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (NaNs are left out of the family): the k-th smallest of m p-values times
    m - k + 1, made monotone, at most 1.

    Written here, equal to statsmodels' `multipletests(p, method="holm")` (tests/report/test_report.py compares
    them): that function runs a full `gc.collect()` on every call, 86 ms in a bare report process and far more in
    a process holding JAX's objects; the report calls it once per comparison family (49 times for a small sweep
    with eight estimators: 4.2 of its 10 s)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    q = p[ok]
    if q.size:
        order = np.argsort(q, kind="stable")
        stepped = np.maximum.accumulate(q[order] * np.arange(q.size, 0, -1))
        adjusted = np.empty_like(q)
        adjusted[order] = np.minimum(stepped, 1.0)
        out[ok] = adjusted
    return out


def spearman_ci(x_R: np.ndarray, y_R: np.ndarray, *, n_boot: int = 2000, confidence: float = 0.95,
                seed: int = 0) -> tuple[float, float, float]:
    """Spearman rank correlation of paired per-run values with a bootstrap interval over runs.

    Returns (rho, lo, hi); NaN when fewer than 3 finite pairs or a variable is constant.
    """
    x, y = np.asarray(x_R, dtype=float), np.asarray(y_R, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan"), float("nan")
    rho = float(stats.spearmanr(x, y).statistic)

    def stat(rows_BxRx2):
        rx = stats.rankdata(rows_BxRx2[..., 0], axis=1)
        ry = stats.rankdata(rows_BxRx2[..., 1], axis=1)
        rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (rx * ry).sum(1) / np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))
        return r[np.isfinite(r)]  # a resample with a constant variable has no correlation: left out

    lo, hi = bootstrap_ci(np.stack([x, y], axis=1), stat, n_boot=n_boot, confidence=confidence, seed=seed)
    return rho, lo, hi


def median_interval(times: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, lo, hi) of per-run times with a distribution-free interval from order statistics
    (`scipy.stats.quantile_test`). NaN entries are dropped; inf entries are censored runs ("longer than any"),
    so while they could hold the median the upper bound is inf. All NaN when no time is left."""
    t = np.asarray(times, dtype=float)
    t = t[~np.isnan(t)]
    if len(t) == 0:
        return float("nan"), float("nan"), float("nan")
    lo, hi = stats.quantile_test(t, q=0, p=0.5).confidence_interval(confidence)
    return float(np.median(t)), float(lo), float(hi)
