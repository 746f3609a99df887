"""The FLAIR-threshold floor: what a model must beat to be worth running.

FLAIR (channel 0, z-scored inside the brain mask by preprocessing) above ``k`` inside the brain mask, with
``k`` chosen from :data:`FLOOR_K` on training scans only (never the scan it is scored on).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lesionseg.preprocess import PreprocessedCase

FLOOR_K = tuple(float(k) for k in np.round(np.arange(1.0, 4.01, 0.25), 2))


def floor_mask(pre: PreprocessedCase, threshold: float) -> np.ndarray:
    """FLAIR (channel 0, z-scored) > ``threshold`` inside the brain mask, uint8 on the preprocessed grid."""
    return ((np.asarray(pre.image[0]) > threshold) & (np.asarray(pre.mask) > 0)).astype(np.uint8)


def floor_dice(pre: PreprocessedCase, threshold: float) -> float:
    """Dice of :func:`floor_mask` against the case's label on the preprocessed grid."""
    pred, ref = floor_mask(pre, threshold) > 0, np.asarray(pre.label) > 0
    return float(2.0 * np.logical_and(pred, ref).sum() / max(pred.sum() + ref.sum(), 1))


def fit_floor_k(cases: Sequence[PreprocessedCase]) -> float:
    """The k of :data:`FLOOR_K` with the best mean Dice over ``cases`` (preprocessed, labelled)."""
    scores = [float(np.mean([floor_dice(pre, threshold) for pre in cases])) for threshold in FLOOR_K]
    return FLOOR_K[int(np.argmax(scores))]
