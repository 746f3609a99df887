"""Decision threshold and minimum lesion size chosen on the validation subjects, never the test fold.

The best checkpoint predicts each validation case's whole volume once; every (threshold, minimum size)
pair of a small grid is scored by the mean over cases of sqrt(Dice x lesion-wise F1) of the thresholded,
size-filtered mask against the reference, and the best pair is saved in the checkpoint, where ``predict``
reads it. Both factors count: a Dice-only choice kept many small false lesions, and an arithmetic mean
was won on the MS data by a threshold so low that one blob covering the brain "detected" every lesion
(lesion F1 1, Dice 0.09); the geometric mean is high only when both are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lesionseg.metrics.lesions import lesion_detection

THRESHOLDS = (0.02, 0.05, *(float(round(t, 2)) for t in np.arange(0.10, 0.91, 0.05)))
MIN_SIZES_MM3 = (0.0, 3.0, 5.0, 10.0, 20.0, 35.0, 50.0, 100.0)
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)  # 26-connected lesions, as the evaluation counts them


@dataclass(frozen=True)
class Calibration:
    threshold: float
    min_lesion_mm3: float
    val_score: float  # mean per-case sqrt(Dice x lesion F1) of the chosen pair
    val_dice: float  # mean per-case Dice of the chosen pair
    val_lesion_f1: float
    default_dice: float  # Dice at threshold 0.5 and no size filter
    default_lesion_f1: float
    cases: int


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks; 1 when both are empty."""
    denom = int(pred.sum()) + int(ref.sum())
    return 1.0 if denom == 0 else 2.0 * int(np.logical_and(pred, ref).sum()) / denom


def size_filtered_masks(
    prob: np.ndarray, threshold: float, voxel_mm3: float, min_sizes: tuple[float, ...]
) -> list[np.ndarray]:
    """``prob >= threshold`` with lesions smaller than each of ``min_sizes`` (mm^3) removed."""
    components, n = ndimage.label(prob >= threshold, structure=CONNECTIVITY)
    if n == 0:
        return [np.zeros(prob.shape, bool) for _ in min_sizes]
    sizes = np.bincount(components.ravel()) * voxel_mm3
    sizes[0] = 0.0
    return [sizes[components] >= max(m, 1e-9) for m in min_sizes]


def calibrate(
    probabilities: list[np.ndarray],
    references: list[np.ndarray],
    voxel_mm3: list[float],
    thresholds: tuple[float, ...] = THRESHOLDS,
    min_sizes: tuple[float, ...] = MIN_SIZES_MM3,
) -> Calibration:
    """The (threshold, minimum size) with the highest mean sqrt(Dice x lesion F1) over the cases; ties go
    to the pair closest to (0.5, no filter). ``probabilities``: lesion probability per case;
    ``references``: boolean masks."""
    dices = np.zeros((len(thresholds), len(min_sizes)))
    f1s, scores = np.zeros_like(dices), np.zeros_like(dices)
    for prob, ref, mm3 in zip(probabilities, references, voxel_mm3, strict=True):
        ref = np.asarray(ref) > 0
        for i, t in enumerate(thresholds):
            for j, mask in enumerate(size_filtered_masks(prob, t, mm3, min_sizes)):
                d, f1 = dice(mask, ref), lesion_detection(mask, ref).lesion_f1
                dices[i, j] += d
                f1s[i, j] += f1
                scores[i, j] += np.sqrt(d * f1)
    n = max(len(probabilities), 1)
    dices, f1s, scores = dices / n, f1s / n, scores / n
    penalty = np.abs(np.asarray(thresholds) - 0.5)[:, None] + 1e-3 * np.arange(len(min_sizes))[None, :]
    best = np.unravel_index(np.lexsort((penalty.ravel(), -scores.ravel()))[0], scores.shape)
    default_i = list(thresholds).index(0.5) if 0.5 in thresholds else None
    return Calibration(
        threshold=float(thresholds[best[0]]),
        min_lesion_mm3=float(min_sizes[best[1]]),
        val_score=float(scores[best]),
        val_dice=float(dices[best]),
        val_lesion_f1=float(f1s[best]),
        default_dice=float(dices[default_i, 0]) if default_i is not None else float("nan"),
        default_lesion_f1=float(f1s[default_i, 0]) if default_i is not None else float("nan"),
        cases=len(probabilities),
    )
