"""Paired bootstrap intervals and verdicts on cases with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lesionseg.metrics.paired import paired_bootstrap_ci, verdict


def test_constant_difference_has_a_zero_width_interval() -> None:
    a = [0.5, 0.7, 0.9, 0.6, 0.8]
    b = [0.25, 0.45, 0.65, 0.35, 0.55]  # every difference is 0.25
    mean, lo, hi = paired_bootstrap_ci(a, b)
    assert mean == pytest.approx(0.25) and lo == pytest.approx(0.25) and hi == pytest.approx(0.25)
    assert verdict(lo, hi) == "supported"


def test_two_pairs_0_and_1() -> None:
    # resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5 % / 97.5 % points are 0 and 1
    mean, lo, hi = paired_bootstrap_ci([0.3, 1.0], [0.3, 0.0])
    assert (mean, lo, hi) == (0.5, 0.0, 1.0)
    assert verdict(lo, hi) == "inconclusive"


def test_four_pairs_hand_computed_percentiles() -> None:
    # differences -1, -1, -1, -2: P(mean = -1) = (3/4)^4 = 0.32 > 2.5 %, so the upper point is -1;
    # P(mean <= -2) = 1/256 < 2.5 % < P(mean <= -1.75) = 13/256, so the lower point is -1.75
    mean, lo, hi = paired_bootstrap_ci([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 2.0])
    assert mean == -1.25
    assert lo == pytest.approx(-1.75) and hi == pytest.approx(-1.0)
    assert verdict(lo, hi) == "contradicted"


def test_interval_width_matches_the_normal_approximation_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    b = rng.uniform(0.2, 0.8, size=400)
    a = b + rng.normal(0.05, 0.1, size=400)
    mean, lo, hi = paired_bootstrap_ci(a, b, n=4000, seed=3)
    half = 1.96 * np.std(a - b, ddof=1) / np.sqrt(400)  # about 0.0098
    assert lo < mean < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.15)
    assert paired_bootstrap_ci(a, b, n=4000, seed=3) == (mean, lo, hi)
    assert paired_bootstrap_ci(a, b, n=4000, seed=4) != (mean, lo, hi)


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.01, 0.2, "supported"),
        (-0.3, -0.01, "contradicted"),
        (-0.1, 0.1, "inconclusive"),
        (0.0, 0.2, "inconclusive"),
        (-0.2, 0.0, "inconclusive"),
        (0.0, 0.0, "inconclusive"),
    ],
)
def test_verdict(lo: float, hi: float, expected: str) -> None:
    assert verdict(lo, hi) == expected


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        ([0.1, 0.2], [0.1], "one length"),
        ([], [], "empty"),
        ([0.1, float("nan")], [0.1, 0.2], "finite"),
    ],
)
def test_bad_input(a: list[float], b: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        paired_bootstrap_ci(a, b)


def test_verdict_rejects_reversed_interval() -> None:
    with pytest.raises(ValueError, match="out of order"):
        verdict(0.2, 0.1)


def test_precision_plan_splits_case_and_seed_variance() -> None:
    from lesionseg.metrics.paired import precision_plan

    # seed noise only (every pair's seed mean is 0): more seeds reach +-0.05; the pairs already do
    plan = precision_plan(np.array([[0.1, -0.1]] * 4), target=0.05)
    assert plan.case_variance == 0.0 and plan.seed_variance == pytest.approx(0.02)
    wanted = (0.05 / 1.96) ** 2
    assert plan.seeds_needed == math.ceil(0.02 / (4 * wanted)) == 8
    assert plan.half_width == 0.0 and plan.pairs_needed == 2
    # case-to-case differences only: no seed count helps, the pairs needed follow var(D) / wanted
    plan = precision_plan(np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]), target=0.05)
    assert plan.seed_variance == 0.0 and plan.case_variance == pytest.approx(1 / 3)
    assert plan.seeds_needed is None and plan.pairs_needed == math.ceil((1 / 3) / wanted)
    assert plan.half_width == pytest.approx(1.96 * math.sqrt(1 / 12))
    # one seed: the seed part cannot be told apart, so no seed count is promised
    assert precision_plan(np.array([[0.0], [0.2], [0.1]]), target=0.05).seeds_needed is None
    with pytest.raises(ValueError):
        precision_plan(np.array([[0.1, 0.2]]), target=0.05)
