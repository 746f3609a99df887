"""All metrics of one case: one row per label and per region, as plain dicts (one CSV row each)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lesionseg.metrics.lesions import lesion_detection
from lesionseg.metrics.overlap import (
    confusion_counts,
    overlap_metrics,
)
from lesionseg.metrics.surface import bounding_box, compute_surface_distances

# Metrics that summaries describe (mean, median, std, IQR), in table order.
METRIC_NAMES = [
    "dsc",
    "iou",
    "sensitivity",
    "specificity",
    "precision",
    "f1",
    "avd",
    "hd",
    "hd95",
    "assd",
    "lesion_recall",
    "lesion_precision",
    "lesion_f1",
]
DISTANCE_METRICS = ["hd", "hd95", "assd"]
# Counts and flags written beside the metrics.
COUNT_NAMES = [
    "ref_voxels",
    "pred_voxels",
    "ref_volume_ml",
    "pred_volume_ml",
    "tp",
    "fp",
    "fn",
    "tn",
    "ref_lesions",
    "pred_lesions",
    "lesions_detected",
    "lesions_missed",
    "lesions_false",
    "ref_empty",
    "pred_empty",
]
METRIC_LABELS = {
    "dsc": "DSC",
    "iou": "IoU",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "precision": "Precision",
    "f1": "F1",
    "avd": "AVD (%)",
    "hd": "Hausdorff (mm)",
    "hd95": "HD95 (mm)",
    "assd": "ASSD (mm)",
    "lesion_recall": "Lesion recall",
    "lesion_precision": "Lesion precision",
    "lesion_f1": "Lesion F1",
}


def binary_case_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]
) -> dict[str, float | int]:
    """Every metric of a binary prediction against a binary reference (any dimension, same shape).

    ``spacing`` is the voxel size in mm per array axis. Work is done on the bounding box of both masks
    (plus one voxel); voxels outside it are true negatives. Undefined values are NaN, and the flags
    ``ref_empty`` / ``pred_empty`` (0/1) say why.
    """
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    box = bounding_box(pred | ref, margin=1)
    crop = box if box is not None else tuple(slice(0, 0) for _ in pred.shape)
    p, r = pred[crop], ref[crop]
    counts = confusion_counts(p, r, total=pred.size)
    surface = compute_surface_distances(p, r, spacing, box=tuple(slice(None) for _ in p.shape))
    lesions = lesion_detection(p, r)
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    return {
        **overlap_metrics(counts),
        "hd": surface.hausdorff(),
        "hd95": surface.hausdorff_percentile(95.0),
        "assd": surface.average_symmetric_surface_distance(),
        "lesion_recall": lesions.lesion_recall,
        "lesion_precision": lesions.lesion_precision,
        "lesion_f1": lesions.lesion_f1,
        "ref_voxels": counts.ref_voxels,
        "pred_voxels": counts.pred_voxels,
        "ref_volume_ml": counts.ref_voxels * voxel_ml,
        "pred_volume_ml": counts.pred_voxels * voxel_ml,
        "tp": counts.tp,
        "fp": counts.fp,
        "fn": counts.fn,
        "tn": counts.tn,
        "ref_lesions": lesions.ref_lesions,
        "pred_lesions": lesions.pred_lesions,
        "lesions_detected": lesions.lesions_detected,
        "lesions_missed": lesions.lesions_missed,
        "lesions_false": lesions.lesions_false,
        "ref_empty": int(counts.ref_voxels == 0),
        "pred_empty": int(counts.pred_voxels == 0),
    }


def label_map_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    labels: Mapping[str, int],
    regions: Mapping[str, Sequence[int]] | None = None,
    case: str = "",
    extra: Mapping[str, object] | None = None,
) -> list[dict]:
    """One row per foreground label (value != 0) and per region of two integer label maps.

    - ``labels``: name -> value, as a manifest's ``labels`` (the background, value 0, is skipped);
      a binary task is ``{"background": 0, "lesion": 1}``.
    - ``regions``: name -> values united into one mask (BraTS: WT = [1, 2, 3, 4], TC = [1, 3, 4], ET = [4]).
    Each row starts with ``case``, the keys of ``extra`` (e.g. ``fold``), ``label`` and ``kind``
    ("label" or "region"), followed by :data:`METRIC_NAMES` and :data:`COUNT_NAMES`.
    """
    rows = []
    targets = [(name, [value], "label") for name, value in labels.items() if value != 0]
    targets += [(name, list(values), "region") for name, values in (regions or {}).items()]
    for name, values, kind in targets:
        metrics = binary_case_metrics(select_values(pred, values), select_values(ref, values), spacing)
        rows.append({"case": case, **(extra or {}), "label": name, "kind": kind, **metrics})
    return rows


def select_values(label_map: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """Boolean mask of the voxels whose value is one of ``values``."""
    if len(values) == 1:
        return label_map == values[0]
    return np.isin(label_map, list(values))
