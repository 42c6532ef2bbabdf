"""Per-study effects: Tango's paired interval against a published value and its exact coverage, the t interval
against its textbook form, Spearman's z interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ibjax.atlas.effects import mean_effect, paired_binary_effect, paired_mean_effect, spearman_effect, tango_interval
from ibjax.report.intervals import bootstrap_ci


def test_tango_interval_reproduces_the_published_example():
    # Fagerland, Lydersen & Laake (2014), Table II: airway hyper-responsiveness before / after (n = 21; 1 pair
    # positive before only, 7 after only). Tango's asymptotic score interval: -0.517 to -0.026.
    lo, hi = tango_interval(n10=1, n01=7, n=21)
    assert (round(lo, 3), round(hi, 3)) == (-0.517, -0.026)
    # Symmetry: swapping the arms mirrors the interval.
    assert tango_interval(7, 1, 21) == pytest.approx((-hi, -lo))
    assert tango_interval(0, 0, 8)[0] < 0 < tango_interval(0, 0, 8)[1]  # no discordant pair: never zero width


_BOUNDS: dict = {}  # (interval, a only, b only, n) -> (lo, hi): an interval depends on the table, not the design


def _exact_coverage(n: int, probs: np.ndarray, interval) -> float:
    """P(interval covers p_a - p_b) summed exactly over every 2x2 table of n pairs (cells: both, a only, b only,
    neither)."""
    truth = probs[1] - probs[2]
    tables = np.array([[both, a_only, b_only, n - both - a_only - b_only] for both in range(n + 1)
                       for a_only in range(n + 1 - both) for b_only in range(n + 1 - both - a_only)])
    covered = []
    for a_only, b_only in tables[:, 1:3].tolist():
        key = (interval, a_only, b_only, n)
        if key not in _BOUNDS:
            _BOUNDS[key] = interval(a_only, b_only, n)
        lo, hi = _BOUNDS[key]
        covered.append(lo - 1e-12 <= truth <= hi + 1e-12)
    return float(stats.multinomial.pmf(tables[np.asarray(covered)], n, probs).sum())


@pytest.mark.parametrize("n", [8, 16])
def test_tango_coverage_is_nominal_at_small_numbers_of_pairs(n):
    """Exact coverage (no simulation noise) at 60 random designs of the four cell probabilities: the mean is at or
    above 94 % (nominal 95 %), where the percentile bootstrap is far below."""
    rng = np.random.default_rng(n)
    designs = rng.dirichlet(np.ones(4), size=60)
    tango = np.array([_exact_coverage(n, p, tango_interval) for p in designs])
    assert tango.mean() >= 0.94, tango.mean()
    assert np.quantile(tango, 0.1) >= 0.90, np.quantile(tango, 0.1)

    def boot(a_only, b_only, m):  # the atlas's old interval: percentile bootstrap of the paired differences
        d = np.r_[np.ones(a_only), -np.ones(b_only), np.zeros(m - a_only - b_only)]
        lo, hi = bootstrap_ci(d, n_boot=400, seed=0)
        return (0.0, 0.0) if not np.isfinite(lo) else (lo, hi)
    old = np.array([_exact_coverage(n, p, boot) for p in designs[:15]])
    assert old.mean() < tango[:15].mean() - 0.03  # what issue 28 found: too narrow at these n


def test_mean_effect_is_the_student_t_interval():
    x = np.array([0.3, 1.2, -0.4, 0.9, 1.5, 0.2, 0.8, 1.1])
    e = mean_effect(x)
    half = stats.t.ppf(0.975, 7) * x.std(ddof=1) / math.sqrt(8)
    assert (e.estimate, e.lo, e.hi) == pytest.approx((x.mean(), x.mean() - half, x.mean() + half))
    assert e.p_value == pytest.approx(stats.ttest_1samp(x, 0).pvalue)
    assert (e.p_value < 0.05) == (e.lo > 0)  # interval and p-value invert the same test
    # Paired: the mean of the differences; a constant sample has no interval, never a zero-width one.
    assert paired_mean_effect(x + 1, x).estimate == pytest.approx(1.0)
    assert math.isnan(paired_mean_effect(x + 1, x).lo)


def test_spearman_effect_on_fisher_z():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    y = -x + rng.normal(scale=0.5, size=40)
    e = spearman_effect(x, y)
    assert e.estimate == pytest.approx(stats.spearmanr(x, y).statistic)
    assert e.lo < e.estimate < e.hi < 0 and e.se == pytest.approx(math.sqrt(1.06 / 37))
    assert math.isnan(spearman_effect(x[:3], y[:3]).estimate)


def test_paired_binary_effect_counts_discordant_pairs():
    a = np.array([1, 1, 1, 1, 0, 0, 1, 1], bool)
    b = np.array([0, 0, 0, 1, 0, 1, 1, 0], bool)
    e = paired_binary_effect(a, b)
    assert e.estimate == pytest.approx((4 - 1) / 8)
    assert (e.lo, e.hi) == pytest.approx(tango_interval(4, 1, 8))
    assert (e.p_value < 0.05) == (e.lo > 0)


@pytest.mark.parametrize("n", [8, 48])
def test_spearman_interval_covers_the_population_value_by_simulation(n):
    """Bivariate normal with r = -0.4: the population Spearman correlation is (6 / pi) asin(r / 2); the Fisher-z
    interval with Fieller's variance covers it in at least 93 % of 600 samples (nominal 95 %)."""
    rng = np.random.default_rng(n)
    r = -0.4
    truth = 6 / math.pi * math.asin(r / 2)
    cov = np.array([[1, r], [r, 1]])
    hits = 0
    for _ in range(600):
        x, y = rng.multivariate_normal([0, 0], cov, size=n).T
        e = spearman_effect(x, y)
        hits += e.lo <= truth <= e.hi
    assert hits / 600 >= 0.93, hits / 600


def test_effects_are_looked_up_by_the_contents_of_their_values():
    """The specification curve asks for the same effect many times: equal values give the stored result, other
    values their own, and an argument that cannot be a key (a pandas Series) is computed as before."""
    import pandas as pd

    v = np.array([0.1, 0.3, 0.2, 0.5])
    first = mean_effect(v, 0.95)
    assert mean_effect(v.copy(), 0.95) is first
    assert mean_effect(v + 1e-9, 0.95) is not first and mean_effect(v + 1e-9, 0.95).estimate != first.estimate
    assert mean_effect(v, 0.9) is not first and mean_effect(v, 0.9).lo > first.lo
    assert mean_effect(pd.Series(v), 0.95) == first
