"""Pooling the per-study effects of one claim, and the claim's decision.

Independent sets of networks (studies, or cells of one study that share no network) are pooled by a
random-effects meta-analysis: Paule-Mandel's estimate of the between-study variance tau^2 and the Hartung-Knapp
(-Sidik-Jonkman) interval on k - 1 degrees of freedom, from statsmodels (`combine_effects`), in its modified form
(never narrower than the plain random-effects interval). With one set the
pooled effect is that set's own estimate and interval. A prediction interval (Higgins, Thompson & Spiegelhalter
2009, t on k - 2 degrees of freedom) says where the effect of a new study would fall.

Decision (on the claim's predicted direction, at level alpha, Holm-adjusted over the primary tests):
    equivalent     the (1 - 2 alpha) interval lies inside +-SESOI (TOST): any effect is smaller than the smallest
                   effect of interest -> contradicted, since the claim predicts an effect that matters;
    supported      Holm-adjusted p < alpha and the estimate in the predicted direction;
    contradicted   Holm-adjusted p < alpha and the estimate in the other direction;
    inconclusive   otherwise (too few networks to say either).
A claim that predicts *no* effect beyond its SESOI (direction 0: "coincides"): supported when TOST shows the
effect inside +-SESOI (Holm-adjusted), contradicted when the whole interval lies beyond +SESOI or below -SESOI,
inconclusive otherwise.

References:
    Paule & Mandel (1982), Consensus values and weighting factors. J. Res. Natl. Bur. Stand. 87:377-385.
    Hartung & Knapp (2001), On tests of the overall treatment effect in meta-analysis with normally distributed
        responses. Statistics in Medicine 20:1771-1782.
    Roever, Knapp & Friede (2015), Hartung-Knapp-Sidik-Jonkman approach and its modification for random-effects
        meta-analysis with few studies. BMC Medical Research Methodology 15:99.
    Higgins, Thompson & Spiegelhalter (2009), A re-evaluation of random-effects meta-analysis. JRSS A 172:137-159.
    Schuirmann (1987), A comparison of the two one-sided tests procedure ... (TOST). J. Pharmacokin. Biopharm. 15.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from ibjax.atlas.effects import Effect
from ibjax.atlas.memo import by_content
from ibjax.report.intervals import holm  # noqa: F401  (the decision's family correction, re-exported)


@dataclass(frozen=True)
class Pooled:
    """A claim's pooled effect (on the pooling scale: bits, or Fisher z for a correlation)."""

    estimate: float
    se: float
    df: float            # of the t reference distribution (inf: normal)
    lo: float
    hi: float
    p_value: float       # two-sided, of effect 0; consistent with (lo, hi)
    k: int               # independent sets pooled
    n: int               # networks (or pairs) in them
    tau2: float          # between-set variance (NaN for k = 1)
    pred_lo: float       # prediction interval of a new set's effect (NaN for k < 3)
    pred_hi: float
    tost_p: float        # equivalence within +-SESOI: the larger of the two one-sided p-values

    def interval(self, confidence: float) -> tuple[float, float]:
        crit = _crit(confidence, self.df)
        return self.estimate - crit * self.se, self.estimate + crit * self.se


def _crit(confidence: float, df: float) -> float:
    alpha = 1 - confidence
    return float(stats.norm.isf(alpha / 2) if not math.isfinite(df) else stats.t.isf(alpha / 2, df))


def _tost(estimate: float, se: float, df: float, sesoi: float) -> float:
    if not (math.isfinite(se) and se > 0 and sesoi > 0):
        return math.nan
    dist = stats.norm if not math.isfinite(df) else stats.t(df)
    p_low = dist.sf((estimate + sesoi) / se)    # H0: effect <= -SESOI
    p_high = dist.cdf((estimate - sesoi) / se)  # H0: effect >= +SESOI
    return float(max(p_low, p_high))


@by_content
def pool(effects: list[Effect], sesoi: float, confidence: float = 0.95) -> Pooled:
    """Random-effects pooling (Paule-Mandel tau^2, Hartung-Knapp interval) of effects on their pooling scale."""
    usable = [e for e in effects if math.isfinite(e.scale_estimate) and math.isfinite(e.se) and e.se > 0]
    n = sum(e.n for e in usable)
    if not usable:
        return Pooled(*(math.nan,) * 6, 0, n, *(math.nan,) * 4)
    if len(usable) == 1:
        e = usable[0]
        lo, hi = (e.lo, e.hi) if not math.isfinite(e.z) else (e.z - _crit(confidence, e.df) * e.se,
                                                               e.z + _crit(confidence, e.df) * e.se)
        return Pooled(e.scale_estimate, e.se, e.df, lo, hi, e.p_value, 1, n, math.nan, math.nan, math.nan,
                      _tost(e.scale_estimate, e.se, e.df, sesoi))
    eff = np.array([e.scale_estimate for e in usable])
    var = np.array([e.se ** 2 for e in usable])
    k = len(usable)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # PM's iteration on k = 2 identical effects: tau^2 = 0
        res = combine_effects(eff, var, method_re="iterated", use_t=True, alpha=1 - confidence)
    est = float(res.mean_effect_re)
    # Hartung-Knapp's scale can fall below 1 (entries closer together than their standard errors say), which
    # makes its interval narrower than the plain random-effects one; the modified form never lets it (Roever,
    # Knapp & Friede 2015).
    se = float(max(math.sqrt(res.var_hksj_re), math.sqrt(res.var_eff_w_re)))
    df = float(k - 1)
    crit = _crit(confidence, df)
    p = float(2 * stats.t.sf(abs(est) / se, df)) if se > 0 else math.nan
    tau2 = float(res.tau2)
    if k >= 3:
        half = float(stats.t.isf((1 - confidence) / 2, k - 2)) * math.sqrt(tau2 + float(res.var_eff_w_re))
        pred = (est - half, est + half)
    else:
        pred = (math.nan, math.nan)
    return Pooled(est, se, df, est - crit * se, est + crit * se, p, k, n, tau2, *pred, _tost(est, se, df, sesoi))


def decide(pooled: Pooled, p_adjusted: float, direction: int, alpha: float = 0.05, sesoi: float = math.nan
           ) -> str:
    """supported / contradicted / inconclusive, as the module docstring states. `direction`: +1 when the claim
    predicts a positive effect, -1 a negative one, 0 none beyond `sesoi` (then `p_adjusted` is the equivalence
    test's, and the pooled interval is at level 1 - alpha)."""
    if direction == 0:
        if math.isfinite(p_adjusted) and p_adjusted < alpha:
            return "supported"
        if math.isfinite(sesoi) and (pooled.lo > sesoi or pooled.hi < -sesoi):
            return "contradicted"
        return "inconclusive"
    if math.isfinite(pooled.tost_p) and pooled.tost_p < alpha:
        return "contradicted"
    if math.isfinite(p_adjusted) and p_adjusted < alpha and math.isfinite(pooled.estimate):
        return "supported" if np.sign(pooled.estimate) == direction else "contradicted"
    return "inconclusive"
