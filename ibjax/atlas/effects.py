"""Per-study effects with small-sample intervals: what one independent set of networks says about one claim.

Every function takes per-network (or per-pair) values and returns an `Effect`: the estimate, its standard error
(what the meta-analysis weighs it by), a two-sided interval at the requested level and the p-value of the test
the interval inverts, so that the two never disagree.

- Continuous per-network quantities (bits): Student t on the mean (one sample) or on the paired differences
  (scipy.stats.ttest_1samp; its `confidence_interval` is the t interval).
- A rank correlation within a cell: Spearman r, Fisher z with the variance 1.06 / (n - 3) of Fieller, Hartley &
  Pearson (1957), the interval back-transformed.
- Paired binary outcomes (compressed or not, in two arms of the same seeds): Tango's (1998) asymptotic score
  interval for the difference of paired proportions, whose coverage stays at or above the nominal level at 8 and
  16 pairs (tests/atlas/test_effects.py computes it exactly over all 2x2 tables), unlike the percentile bootstrap
  and the Wald interval (Fagerland, Lydersen & Laake 2014).

References:
    Tango (1998), Equivalence test and confidence interval for the difference in proportions for the paired-sample
        design. Statistics in Medicine 17:891-908.
    Fagerland, Lydersen & Laake (2014), Recommended tests and confidence intervals for paired binomial
        proportions. Statistics in Medicine 33:2850-2875.
    Fieller, Hartley & Pearson (1957), Tests for rank correlation coefficients. Biometrika 44:470-481.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ibjax.atlas.memo import by_content
from ibjax.report.intervals import tango_interval, tango_score


@dataclass(frozen=True)
class Effect:
    """One estimate with its standard error, interval (`lo`, `hi` at `confidence`) and two-sided p-value of 0.

    `n`: the networks (or pairs) it rests on. For a correlation, `estimate`/`lo`/`hi` are r while `z` and `se`
    are on Fisher's z scale, the scale the meta-analysis pools on."""

    estimate: float
    se: float
    lo: float
    hi: float
    p_value: float
    n: int
    df: float
    z: float = math.nan

    @property
    def scale_estimate(self) -> float:
        """The estimate on the scale it is pooled on (Fisher z for a correlation, else the estimate)."""
        return self.z if math.isfinite(self.z) else self.estimate


NO_EFFECT = Effect(math.nan, math.nan, math.nan, math.nan, math.nan, 0, math.nan)


@by_content
def mean_effect(values, confidence: float = 0.95) -> Effect:
    """Mean of per-network values (or of paired differences) with the Student t interval and test of mean 0.

    Fewer than 2 finite values, or values without spread, give no interval (NaN): a t interval needs a variance,
    and a zero-width interval must never decide anything."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n < 2 or np.ptp(v) <= 1e-12 * max(1.0, float(np.abs(v).max())):
        return Effect(float(v.mean()) if n else math.nan, math.nan, math.nan, math.nan, math.nan, n, n - 1.0)
    res = stats.ttest_1samp(v, 0.0)
    ci = res.confidence_interval(confidence)
    return Effect(float(v.mean()), float(v.std(ddof=1) / math.sqrt(n)), float(ci.low), float(ci.high),
                  float(res.pvalue), n, float(n - 1))


def paired_mean_effect(a, b, confidence: float = 0.95) -> Effect:
    """mean(a - b) over pairs (same seeds), t interval; pairs with a non-finite side are left out."""
    return mean_effect(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), confidence)


# Fieller, Hartley & Pearson's variance of Fisher's z for Spearman's r: 1.06 / (n - 3).
SPEARMAN_Z_VARIANCE = 1.06


@by_content
def spearman_effect(x, y, confidence: float = 0.95) -> Effect:
    """Spearman r of per-network x and y, with the interval and test on Fisher's z (n >= 4, both varying)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Effect(math.nan, math.nan, math.nan, math.nan, math.nan, n, math.nan)
    r = float(stats.spearmanr(x, y).statistic)
    z = math.atanh(min(max(r, -0.999999), 0.999999))
    se = math.sqrt(SPEARMAN_Z_VARIANCE / (n - 3))
    crit = stats.norm.isf((1 - confidence) / 2)
    p = float(2 * stats.norm.sf(abs(z) / se))
    return Effect(r, se, math.tanh(z - crit * se), math.tanh(z + crit * se), p, n, math.inf, z)


@by_content
def paired_binary_effect(a, b, confidence: float = 0.95) -> Effect:
    """Fraction of pairs with the outcome in arm a minus in arm b: Tango's interval and score test of 0.

    The standard error is the paired (Wald) one, for weighting in a pooled sensitivity analysis only; with no
    discordant pair it uses half a discordant pair, so that a unanimous study does not get infinite weight."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    n = len(a)
    if n == 0:
        return NO_EFFECT
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    lo, hi = tango_interval(n10, n01, n, confidence)
    score = tango_score(n10, n01, n, 0.0)
    p = float(2 * stats.norm.sf(abs(score))) if math.isfinite(score) else 0.0
    d = (n10 - n01) / n
    disc = max(n10 + n01, 0.5)
    se = math.sqrt(max(disc - (n10 - n01) ** 2 / n, 0.5) / (n * n))
    return Effect(d, se, lo, hi, p, n, math.inf)


@by_content
def average_effect(effects: list[Effect], confidence: float = 0.95) -> Effect:
    """One study's effect from its strata (independent sets of networks, e.g. its tanh and relu cells): the
    equally weighted mean of their effects, with the standard error of that mean and a t interval on the
    Welch-Satterthwaite degrees of freedom. The estimand is the average over the study's own designed strata (a
    fixed set, so no between-strata variance term); equal weights keep it the design's average rather than
    letting the most precise stratum decide. Correlations are averaged on Fisher's z and shown as r."""
    usable = [e for e in effects if math.isfinite(e.scale_estimate) and math.isfinite(e.se) and e.se > 0]
    if not usable:
        return NO_EFFECT
    if len(usable) == 1:
        return usable[0]
    m = len(usable)
    est = sum(e.scale_estimate for e in usable) / m
    var = sum(e.se ** 2 for e in usable) / m ** 2
    se = math.sqrt(var)
    terms = [(e.se ** 2 / m ** 2) ** 2 / e.df for e in usable if math.isfinite(e.df) and e.df > 0]
    df = var ** 2 / sum(terms) if len(terms) == m else math.inf
    dist = stats.norm if not math.isfinite(df) else stats.t(df)
    crit = float(dist.isf((1 - confidence) / 2))
    p = float(2 * dist.sf(abs(est) / se))
    n = sum(e.n for e in usable)
    if any(math.isfinite(e.z) for e in usable):  # correlations: pooled on z, shown as r
        return Effect(math.tanh(est), se, math.tanh(est - crit * se), math.tanh(est + crit * se), p, n, df, est)
    return Effect(est, se, est - crit * se, est + crit * se, p, n, df)
