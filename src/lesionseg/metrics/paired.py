"""Paired differences between two methods scored on the same cases: a bootstrap confidence interval of the
mean difference and a one-word verdict (issue "Test each paper's claims").

The unit resampled is the pair (a case, or a labelled slice): ``a[i]`` and ``b[i]`` are the two methods'
scores on the same unit, so case-to-case difficulty cancels. Percentile bootstrap (Efron): ``n`` resamples
of the pairs with replacement, the mean difference of each, the 2.5th and 97.5th percentiles (for
``confidence`` 0.95; numpy's linear interpolation between order statistics).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class PrecisionPlan:
    """How far an interval is from a target half-width, and what would reach it (normal approximation).

    The variance of a pair's seed-mean difference splits into a part that differs between pairs (cases)
    and a part from the seeds, which shrinks as seeds are added: var(D) = case_variance + seed_variance / S.
    """

    half_width: float  # z * sd(D) / sqrt(P), the normal-theory half-width of the mean difference
    case_variance: float
    seed_variance: float  # mean over pairs of the variance of the per-seed differences (NaN with 1 seed)
    seeds_needed: int | None  # with these pairs; None when no seed count reaches the target (or unknown)
    pairs_needed: int  # with these seeds


def precision_plan(per_seed_differences: np.ndarray, target: float, z: float = 1.96) -> PrecisionPlan:
    """``per_seed_differences``: (pairs, seeds), a - b per pair and seed (seed i of both rows paired);
    ``target``: the half-width wanted (e.g. 0.05 Dice)."""
    d = np.asarray(per_seed_differences, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 2 or not np.all(np.isfinite(d)) or not target > 0:
        raise ValueError(f"need finite (pairs >= 2, seeds) differences and target > 0, got {d.shape}")
    pairs, seeds = d.shape
    total = float(np.var(d.mean(axis=1), ddof=1))
    seed_variance = float(np.mean(np.var(d, axis=1, ddof=1))) if seeds > 1 else math.nan
    case_variance = max(total - seed_variance / seeds, 0.0) if seeds > 1 else total
    wanted = (target / z) ** 2  # the variance of the mean difference that gives the target half-width
    seeds_needed = None
    if seeds > 1 and pairs * wanted > case_variance:
        seeds_needed = max(1, math.ceil(seed_variance / (pairs * wanted - case_variance)))
    return PrecisionPlan(
        half_width=z * math.sqrt(total / pairs),
        case_variance=case_variance,
        seed_variance=seed_variance,
        seeds_needed=seeds_needed,
        pairs_needed=max(2, math.ceil(total / wanted)),
    )
