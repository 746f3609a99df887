"""Voxel-wise overlap metrics from the confusion counts of two binary masks.

Every function takes :class:`ConfusionCounts` and returns a float; a ratio whose denominator is zero follows
the empty-mask conventions of the package docstring (both masks empty -> 1, otherwise NaN = undefined).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NAN = float("nan")


@dataclass(frozen=True)
class ConfusionCounts:
    """Voxel counts of a binary prediction against a binary reference."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def ref_voxels(self) -> int:
        return self.tp + self.fn

    @property
    def pred_voxels(self) -> int:
        return self.tp + self.fp

    @property
    def both_empty(self) -> bool:
        return self.ref_voxels == 0 and self.pred_voxels == 0


def confusion_counts(pred: np.ndarray, ref: np.ndarray, total: int | None = None) -> ConfusionCounts:
    """TP/FP/FN/TN of two boolean masks of one shape.

    ``total`` is the voxel count of the full grid when ``pred`` and ``ref`` are a crop of it (every voxel
    outside the crop is a true negative).
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    tp = int(np.count_nonzero(pred & ref))
    n_pred = int(np.count_nonzero(pred))
    n_ref = int(np.count_nonzero(ref))
    total = pred.size if total is None else int(total)
    return ConfusionCounts(tp=tp, fp=n_pred - tp, fn=n_ref - tp, tn=total - n_pred - n_ref + tp)


def _ratio(num: int, den: int, both_empty: bool) -> float:
    if den == 0:
        return 1.0 if both_empty else NAN
    return num / den


def dice_similarity_coefficient(c: ConfusionCounts) -> float:
    """DSC = 2 TP / (2 TP + FP + FN) (WMH thesis eq. 6). Both empty -> 1 (BraTS convention)."""
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, c.both_empty)


def intersection_over_union(c: ConfusionCounts) -> float:
    """IoU (Jaccard) = TP / (TP + FP + FN). Both empty -> 1."""
    return _ratio(c.tp, c.tp + c.fp + c.fn, c.both_empty)


def sensitivity(c: ConfusionCounts) -> float:
    """Sensitivity (recall, true positive rate) = TP / (TP + FN) (WMH thesis eq. 7).

    Empty reference: 1 when the prediction is empty too, NaN (no positive to find) otherwise.
    """
    return _ratio(c.tp, c.tp + c.fn, c.both_empty)


def specificity(c: ConfusionCounts) -> float:
    """Specificity = TN / (TN + FP); NaN only when the reference fills the whole grid."""
    return _ratio(c.tn, c.tn + c.fp, False)


def precision(c: ConfusionCounts) -> float:
    """Precision (positive predictive value) = TP / (TP + FP) (WMH thesis eq. 8).

    Empty prediction: 1 when the reference is empty too, NaN (nothing predicted) otherwise.
    """
    return _ratio(c.tp, c.tp + c.fp, c.both_empty)


def f1_score(c: ConfusionCounts) -> float:
    """Voxel-wise F1 = 2 TP / (2 TP + FP + FN) (WMH thesis eq. 9).

    For binary masks this equals the DSC; the thesis reports both, so the table carries both. Unlike
    the harmonic mean of precision and recall it stays defined (0) when one of those two is undefined.
    """
    return dice_similarity_coefficient(c)


def absolute_volume_difference(c: ConfusionCounts) -> float:
    """AVD in % = |V_pred - V_ref| / V_ref * 100, as the WMH challenge's ``getAVD``.

    Both empty -> 0; empty reference with a non-empty prediction -> NaN (division by zero).
    Voxel counts suffice: the voxel volume cancels.
    """
    if c.ref_voxels == 0:
        return 0.0 if c.pred_voxels == 0 else NAN
    return abs(c.pred_voxels - c.ref_voxels) / c.ref_voxels * 100.0


def overlap_metrics(counts: ConfusionCounts) -> dict[str, float]:
    """DSC, IoU, sensitivity, specificity, precision, F1 and AVD of one confusion count, by metric name."""
    return {
        "dsc": dice_similarity_coefficient(counts),
        "iou": intersection_over_union(counts),
        "sensitivity": sensitivity(counts),
        "specificity": specificity(counts),
        "precision": precision(counts),
        "f1": f1_score(counts),
        "avd": absolute_volume_difference(counts),
    }
