"""The leaderboard's statistics, all from scipy.stats: t-intervals over seeds, t-tests against a reference
row, and the mean rank over metrics.

Where a statistic is undefined (one seed, no spread at all) the result is ``None`` rather than NaN, so
that every renderer shows it as "—" and scipy's warnings about degenerate samples never reach the user.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import attrs

__all__ = ["LEVEL", "SIGNIFICANCE", "Comparison", "compare", "mean_ranks", "t_interval"]

LEVEL = 0.95  # of the confidence intervals
SIGNIFICANCE = 0.05  # p-values below it are marked


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """The t-interval of the mean over seeds (n - 1 degrees of freedom); None below two values."""
    from scipy import stats

    if len(values) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # identical values: a zero-width interval, not a warning
        low, high = stats.ttest_1samp(values, 0.0).confidence_interval(level)
    low, high = _finite(low), _finite(high)
    return None if low is None or high is None else (low, high)


@attrs.frozen(kw_only=True)
class Comparison:
    """A row's two-sided t-test against the reference row.

    ``test`` is ``"paired t"`` when both rows ran exactly the same seeds once each (the pairs share their
    seed's data order and initialisation), else ``"Welch t"`` (unequal variances). ``p`` is None when the
    test is undefined: fewer than two seeds on a side, or no spread at all.
    """

    test: str
    difference: float  # mean of the row minus mean of the reference
    p: float | None

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < SIGNIFICANCE


def compare(row: Sequence[tuple[int, float]], reference: Sequence[tuple[int, float]]) -> Comparison:
    """Test ``row``'s (seed, value) pairs against ``reference``'s: paired by seed where the seeds match."""
    from scipy import stats

    seeds, ref_seeds = [s for s, _ in row], [s for s, _ in reference]
    paired = sorted(seeds) == sorted(ref_seeds) and len(set(seeds)) == len(seeds)
    values = [v for _, v in sorted(row)]
    ref_values = [v for _, v in sorted(reference)]
    difference = math.fsum(values) / len(values) - math.fsum(ref_values) / len(ref_values)
    p = None
    if min(len(values), len(ref_values)) >= 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # no spread: scipy warns and returns NaN
            result = stats.ttest_rel(values, ref_values) if paired else stats.ttest_ind(values, ref_values,
                                                                                          equal_var=False)
        p = _finite(result.pvalue)
    return Comparison(test="paired t" if paired else "Welch t", difference=difference, p=p)


def mean_ranks(means: Sequence[Sequence[float]], higher_is_better: Sequence[bool]) -> list[float | None]:
    """Per row, its rank on each metric (1 = best, ties share the mean rank) averaged over the metrics,
    as MTL papers report "MR"; a metric a row lacks (NaN) is left out of its average."""
    import numpy as np
    from scipy import stats

    table = np.array(means, dtype=float).reshape(len(means), len(higher_is_better))
    signed = np.where(np.array(higher_is_better), -table, table)  # rank 1 = the best value in either direction
    ranks = stats.rankdata(signed, axis=0, nan_policy="omit")
    out: list[float | None] = []
    for row in ranks:
        kept = row[~np.isnan(row)]
        out.append(float(kept.mean()) if kept.size else None)
    return out
