"""Decision threshold and minimum lesion size chosen on the validation subjects, never the test fold.

The best checkpoint predicts each validation case's whole volume once; every (threshold, minimum size)
pair of a small grid is scored by the mean per-case Dice of the thresholded, size-filtered mask against
the reference; among the pairs within 0.01 of the best Dice, the one with the highest mean lesion-wise F1
wins (then the one closest to threshold 0.5 and no filter). The pair is saved in the checkpoint, where
``predict`` reads it. Dice leads because lesion F1 can be gamed: on the MS data a threshold low enough to
join the whole brain into one blob "detected" every lesion (lesion F1 1, Dice 0.09) and won both an
arithmetic and a geometric mean of the two; among masks of near-equal Dice, lesion F1 prefers the one
with fewer small false lesions.

An averaged model (several networks, ``lesionseg train`` with seeds, ``cv``, the bundled model) gets its
own pair by the same rule, chosen from the members' averaged probabilities (:func:`calibrate_ensemble`, the
WMH thesis section 2.4 "empirical threshold") and saved beside the members
(:mod:`lesionseg.infer.ensemble_file`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lesionseg.data.cache import PreprocessCache
from lesionseg.data.label_slices import labelled_slices, only_labelled_slices
from lesionseg.data.manifest import Case, Manifest
from lesionseg.infer.ensemble_file import write_ensemble_calibration
from lesionseg.infer.predictor import Predictor, lesions_of_at_least
from lesionseg.infer.slicewise import foreground_probability
from lesionseg.metrics.lesions import lesion_detection
from lesionseg.metrics.overlap import confusion_counts, dice_similarity_coefficient
from lesionseg.preprocess import PreprocessedCase

THRESHOLDS = (0.02, 0.05, *(float(round(t, 2)) for t in np.arange(0.10, 0.91, 0.05)))
MIN_SIZES_MM3 = (0.0, 3.0, 5.0, 10.0, 20.0, 35.0, 50.0, 100.0)


@dataclass(frozen=True)
class Calibration:
    threshold: float
    min_lesion_mm3: float
    val_score: float  # what the choice maximised first: the mean per-case Dice of the chosen pair
    val_dice: float  # mean per-case Dice of the chosen pair
    val_lesion_f1: float
    default_dice: float  # Dice at threshold 0.5 and no size filter
    default_lesion_f1: float
    cases: int


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks (both empty: 1), as the evaluation computes it."""
    return dice_similarity_coefficient(confusion_counts(pred, ref))


def size_filtered_masks(
    prob: np.ndarray, threshold: float, voxel_mm3: float, min_sizes: tuple[float, ...]
) -> list[np.ndarray]:
    """``prob >= threshold`` with lesions smaller than each of ``min_sizes`` (mm^3) removed, by the rule
    ``predict`` applies (:func:`lesionseg.infer.predictor.lesions_of_at_least`)."""
    return lesions_of_at_least(prob >= threshold, voxel_mm3, min_sizes)


DICE_TOLERANCE = 0.01


def calibrate(
    probabilities: list[np.ndarray],
    references: list[np.ndarray],
    voxel_mm3: list[float],
    thresholds: tuple[float, ...] = THRESHOLDS,
    min_sizes: tuple[float, ...] = MIN_SIZES_MM3,
) -> Calibration:
    """The (threshold, minimum size) of the highest mean Dice over the cases, up to ``DICE_TOLERANCE``,
    then of the highest mean lesion F1, then closest to (0.5, no filter). ``probabilities``: lesion
    probability per case; ``references``: boolean masks."""
    refs = [np.asarray(r) > 0 for r in references]
    dices = np.zeros((len(thresholds), len(min_sizes)))
    for prob, ref, mm3 in zip(probabilities, refs, voxel_mm3, strict=True):
        for i, t in enumerate(thresholds):
            for j, mask in enumerate(size_filtered_masks(prob, t, mm3, min_sizes)):
                dices[i, j] += dice(mask, ref)
    n = max(len(probabilities), 1)
    dices /= n
    f1s = np.full_like(dices, -1.0)
    for i, j in zip(*np.nonzero(dices >= dices.max() - DICE_TOLERANCE), strict=True):
        f1s[i, j] = np.mean(
            [
                lesion_detection(
                    size_filtered_masks(p, thresholds[i], mm3, (min_sizes[j],))[0], ref
                ).lesion_f1
                for p, ref, mm3 in zip(probabilities, refs, voxel_mm3, strict=True)
            ]
        )
    penalty = np.abs(np.asarray(thresholds) - 0.5)[:, None] + 1e-3 * np.arange(len(min_sizes))[None, :]
    best = np.unravel_index(np.lexsort((penalty.ravel(), -f1s.ravel()))[0], dices.shape)
    default_i = list(thresholds).index(0.5) if 0.5 in thresholds else None
    default_f1 = float("nan")
    if default_i is not None:
        default_f1 = float(
            np.mean(
                [
                    lesion_detection(np.asarray(p) >= 0.5, r).lesion_f1
                    for p, r in zip(probabilities, refs, strict=True)
                ]
            )
        )
    return Calibration(
        threshold=float(thresholds[best[0]]),
        min_lesion_mm3=float(min_sizes[best[1]]),
        val_score=float(dices[best]),
        val_dice=float(dices[best]),
        val_lesion_f1=float(f1s[best]),
        default_dice=float(dices[default_i, 0]) if default_i is not None else float("nan"),
        default_lesion_f1=default_f1,
        cases=len(probabilities),
    )


def calibrate_cases(cases: Iterable[Any], probability: Callable[[Any], np.ndarray]) -> Calibration | None:
    """:func:`calibrate` on the labelled ``cases`` (each with ``label``, ``spacing``): ``probability(case)``
    gives its lesion probability on the case's grid. None when no case has a label."""
    probs, refs, voxels = [], [], []
    for case in cases:
        if case.label is None:
            continue
        probs.append(probability(case))
        refs.append(np.asarray(case.label) > 0)
        voxels.append(float(np.prod(case.spacing)))
    return calibrate(probs, refs, voxels) if probs else None


def calibrate_ensemble(
    predictor: Predictor,
    manifest: Manifest,
    root: str | Path,
    cache: PreprocessCache,
    val_subjects: list[str],
    fold_dir: Path,
) -> Calibration | None:
    """The ensemble's "empirical threshold" (WMH thesis section 2.4), with the minimum lesion size, chosen
    on the fold's validation subjects from the members' averaged probabilities (train/calibrate.py's
    rule, never the test fold); set on ``predictor`` and written to ``fold_dir/ensemble_calibration.json``
    (with the members, so that ``lesionseg predict`` uses it for them: ``infer/ensemble_file.py``).
    Each member's own saved threshold was chosen for that member alone, so it is not the ensemble's.
    Returns the calibration, or None (multi-class members, or no labelled validation case)."""
    if len(predictor.members[0].label_values) > 2:
        return None

    def labelled_only(case: Case) -> PreprocessedCase:
        pre = cache.get(manifest, case, root, predictor.preprocess_config)
        if case.label_slices is not None:
            pre = only_labelled_slices(pre, labelled_slices(case, pre.record))
        return pre

    result = calibrate_cases(
        (labelled_only(c) for c in manifest.cases if c.subject in val_subjects),
        lambda pre: foreground_probability(predictor.predict_preprocessed(pre)[1]),
    )
    if result is None:
        return None
    predictor.threshold, predictor.min_lesion_mm3 = result.threshold, result.min_lesion_mm3
    write_ensemble_calibration(fold_dir, [m.source for m in predictor.members], asdict(result))
    return result
