"""Coverage, by simulation, of the intervals the report's phases and depth claims use (ibjax.report.phases):
the percentile bootstrap of a mean over 40 skewed per-network differences (claim b), the bootstrap Spearman
interval over 144 networks in 6 tied depth levels (claim a), and the order-statistic median interval over 93
networks (claim c, onsets, epochs to generalize); and of the atlas's entry intervals for its claims 6-9
(ibjax.atlas.effects): Fisher-z Spearman with the same 6 tied depths, Student t over 15 and 40 skewed
per-network differences and over 8 skewed paired log-time differences. Prints each coverage at the 95 % level.

    python benchmarks/interval_coverage.py
"""

import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/interval_coverage.py`

from ibjax.atlas.effects import mean_effect, spearman_effect  # noqa: E402
from ibjax.report.intervals import bootstrap_ci, median_interval, spearman_ci  # noqa: E402


def depths_and_times(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Depth in 6 tied levels (sextiles of a latent normal) and a time correlated with the latent."""
    z = rng.normal(size=n)
    depth = np.digitize(z, np.quantile(z, [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6])) + 1
    return depth.astype(float), -0.6 * z + 0.8 * rng.normal(size=n)


def main() -> None:
    rng = np.random.default_rng(0)
    reps = 400
    hits = 0
    for r in range(reps):
        x = rng.gamma(2.0, 0.3, 40) - 0.6  # skewed, true mean 0
        lo, hi = bootstrap_ci(x, seed=r)
        hits += lo <= 0.0 <= hi
    print(f"bootstrap mean, 40 gamma(2) differences: coverage {hits / reps:.3f} ({reps} draws)")

    d, y = depths_and_times(rng, 400_000)
    true = stats.spearmanr(d, y).statistic
    reps, hits = 200, 0
    for r in range(reps):
        d, y = depths_and_times(rng, 144)
        _, lo, hi = spearman_ci(d, y, seed=r)
        hits += lo <= true <= hi
    print(f"bootstrap Spearman, 144 networks, 6 depths (true r {true:.3f}): coverage {hits / reps:.3f} "
          f"({reps} draws)")

    reps, hits = 2000, 0
    for _ in range(reps):
        e = spearman_effect(*depths_and_times(rng, 144))
        hits += e.lo <= true <= e.hi
    print(f"atlas Fisher-z Spearman, 144 networks, 6 depths: coverage {hits / reps:.3f} ({reps} draws)")
    for n in (8, 15, 40):
        reps, hits = 4000, 0
        for _ in range(reps):
            e = mean_effect(rng.gamma(2.0, 0.3, n) - 0.6)  # skewed, true mean 0
            hits += e.lo <= 0.0 <= e.hi
        print(f"atlas t interval, {n} gamma(2) differences: coverage {hits / reps:.3f} ({reps} draws)")

    reps, hits = 2000, 0
    for _ in range(reps):
        _, lo, hi = median_interval(rng.exponential(1.0, 93))
        hits += lo <= np.log(2) <= hi
    print(f"order-statistic median, 93 exponential times: coverage {hits / reps:.3f} ({reps} draws)")


if __name__ == "__main__":
    main()
