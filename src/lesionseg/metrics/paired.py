"""Paired differences between two methods scored on the same cases: a bootstrap confidence interval of the
mean difference and a one-word verdict (issue "Test each paper's claims").

The unit resampled is the pair (a case, or a labelled slice): ``a[i]`` and ``b[i]`` are the two methods'
scores on the same unit, so case-to-case difficulty cancels. Percentile bootstrap (Efron): ``n`` resamples
of the pairs with replacement, the mean difference of each, the 2.5th and 97.5th percentiles (for
``confidence`` 0.95; numpy's linear interpolation between order statistics).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Verdict = Literal["supported", "contradicted", "inconclusive"]


def paired_bootstrap_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """(mean of a - b, lower, upper bound of its ``confidence`` bootstrap interval) over paired scores.

    ``a`` and ``b`` have one finite value per unit, in the same order; ``seed`` fixes the resamples.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"a and b must be 1D of one length, got shapes {x.shape} and {y.shape}")
    if len(x) == 0:
        raise ValueError("no pairs: a and b are empty")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("a and b must be finite (drop undefined pairs first)")
    if n < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need n >= 1 and confidence in (0, 1), got n={n}, confidence={confidence}")
    diff = x - y
    rng = np.random.default_rng(seed)
    means = np.empty(n, dtype=np.float64)
    chunk = max(1, 2_000_000 // len(diff))  # bounded memory for many pairs
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        means[start:stop] = diff[rng.integers(len(diff), size=(stop - start, len(diff)))].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(means, [tail, 100.0 - tail])
    return float(diff.mean()), float(lo), float(hi)


def verdict(lo: float, hi: float) -> Verdict:
    """'supported' when the interval of (claimed better - other) lies above 0, 'contradicted' when it lies
    below 0, 'inconclusive' when it contains 0 (an end at exactly 0 counts as containing it)."""
    if lo > hi:
        raise ValueError(f"interval ends out of order: lo={lo} > hi={hi}")
    if lo > 0.0:
        return "supported"
    if hi < 0.0:
        return "contradicted"
    return "inconclusive"
