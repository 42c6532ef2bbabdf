"""Pooling: a random-effects meta-analysis with the Hartung-Knapp interval (statsmodels), Holm, TOST, and the
decision rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ibjax.atlas.effects import Effect, mean_effect
from ibjax.atlas.pooling import decide, holm, pool


def test_one_entry_is_its_own_interval():
    e = mean_effect([0.2, 0.5, 0.9, 0.4, 0.7])
    p = pool([e], sesoi=0.25)
    assert (p.estimate, p.lo, p.hi, p.p_value, p.k) == pytest.approx((e.estimate, e.lo, e.hi, e.p_value, 1))


def test_homogeneous_entries_pool_to_the_inverse_variance_mean_with_a_t_interval():
    # Four entries, equal effects and standard errors: tau^2 = 0, the pooled effect is the common one and the
    # Hartung-Knapp interval uses t on 3 degrees of freedom with the usual standard error.
    es = [Effect(0.6, 0.1, math.nan, math.nan, math.nan, 16, 15)] * 4
    p = pool(es, sesoi=0.25)
    assert p.estimate == pytest.approx(0.6) and p.tau2 == pytest.approx(0, abs=1e-12)
    # Hartung-Knapp's own scale is 0 here (no spread at all); the modified form keeps the random-effects one.
    assert p.df == 3 and p.se == pytest.approx(0.05, rel=1e-6)
    assert (p.lo, p.hi) == pytest.approx((0.6 - stats.t.ppf(0.975, 3) * 0.05, 0.6 + stats.t.ppf(0.975, 3) * 0.05))


def test_heterogeneous_entries_widen_the_interval_and_give_a_prediction_interval():
    rng = np.random.default_rng(3)
    es = [mean_effect(rng.normal(m, 0.5, 24)) for m in (0.2, 1.0, 0.5, 1.4, 0.8)]
    p = pool(es, sesoi=0.25)
    assert p.tau2 > 0 and p.k == 5 and p.df == 4
    assert p.pred_lo < p.lo < p.estimate < p.hi < p.pred_hi
    # The p-value and the interval come from the same t statistic.
    assert p.p_value == pytest.approx(2 * stats.t.sf(abs(p.estimate / p.se), 4))
    assert (p.p_value < 0.05) == (p.lo > 0 or p.hi < 0)


def test_holm_and_the_decision_rule():
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    rng = np.random.default_rng(0)
    big = pool([mean_effect(rng.normal(1.0, 0.5, 48))], sesoi=0.25)
    assert decide(big, big.p_value, +1) == "supported"
    assert decide(big, big.p_value, -1) == "contradicted"     # significant on the other side
    assert decide(big, 0.2, +1) == "inconclusive"              # Holm took the significance away
    null = pool([mean_effect(rng.normal(0.0, 0.3, 96))], sesoi=0.25)
    assert null.tost_p < 0.05 and decide(null, null.p_value, +1) == "contradicted"  # equivalence
    small = pool([mean_effect(rng.normal(0.0, 2.0, 8))], sesoi=0.25)
    assert decide(small, small.p_value, +1) == "inconclusive"  # too few networks to tell


def test_pooled_interval_covers_the_true_mean_effect_by_simulation():
    """k = 5 studies of 16 networks, true study effects N(0.5, 0.3^2), network sd 1: the modified Hartung-Knapp
    interval covers the true mean 0.5 in at least 94 % of 400 simulated atlases (nominal 95 %), and a
    fixed-effect-style interval that ignores tau^2 would not."""
    rng = np.random.default_rng(7)
    hits, naive_hits, sims = 0, 0, 400
    for _ in range(sims):
        effects = [mean_effect(rng.normal(rng.normal(0.5, 0.3), 1.0, 16)) for _ in range(5)]
        p = pool(effects, sesoi=0.25)
        hits += p.lo <= 0.5 <= p.hi
        w = np.array([1 / e.se ** 2 for e in effects])
        m = float((w * [e.estimate for e in effects]).sum() / w.sum())
        naive_hits += abs(m - 0.5) <= 1.96 / math.sqrt(w.sum())
    assert hits / sims >= 0.94, hits / sims
    assert naive_hits / sims < 0.90, naive_hits / sims
