"""Segmentation metrics: numpy only, millimetres, explicit spacing; empty masks defined and tested.

Masks are boolean arrays of one shape (2D or 3D); ``spacing`` is the voxel size in mm per array axis
(``Volume.spacing``). ``binary_case_metrics`` returns every metric of one mask pair,
``label_map_metrics`` one row per label and per region (BraTS WT/TC/ET), ``summarize`` the statistics.

Metrics: DSC, IoU, sensitivity (recall), specificity, precision, voxel F1 (= DSC), AVD in %
(WMH challenge ``getAVD``), Hausdorff distance (max), HD95, ASSD (see :mod:`lesionseg.metrics.surface`
for the HD95 definition: max of the two directed 95th percentiles, as MONAI and the WMH challenge), and
WMH-challenge lesion-wise detection (3D connected components with full connectivity; see
:mod:`lesionseg.metrics.lesions`).

Empty-mask conventions (R = reference, P = prediction; NaN means *undefined* and is counted, never dropped,
in summaries: each statistic reports ``n_undefined``, each label ``n_ref_empty`` / ``n_pred_empty``):

================  ==========================  =========================  =========================
metric            R and P both empty          R empty, P not             R not empty, P empty
================  ==========================  =========================  =========================
DSC, IoU, F1      1 (BraTS; MONAI             0                          0
                  ``ignore_empty=False``)
sensitivity       1                           NaN (no positive to find)  0
precision         1                           0                          NaN (nothing predicted)
specificity       1                           < 1                        1
AVD %             0                           NaN (divides by V_R = 0)   100
HD, HD95, ASSD    0 mm (BraTS)                NaN                        NaN (WMH: "only defined
                                                                         when something is detected")
lesion recall     1 (WMH script)              1 (WMH script)             0
lesion precision  1 (WMH script)              0                          1 (WMH script)
lesion F1         1                           0                          0
================  ==========================  =========================  =========================

Why: "both empty" is a correct answer (a BraTS case without enhancing tumour), scored as perfect as BraTS
does. A distance to a surface that does not exist has no value; BraTS substitutes the image diagonal
(373.13 mm on its grid), which depends on the grid, so we report NaN with the flags instead and leave any
penalty to the reader. Lesion-wise values copy the WMH challenge's ``evaluation.py`` exactly.
"""

from lesionseg.metrics.case import (
    COUNT_NAMES,
    DISTANCE_METRICS,
    METRIC_LABELS,
    METRIC_NAMES,
    binary_case_metrics,
    label_map_metrics,
)
from lesionseg.metrics.lesions import LesionDetection, label_lesions, lesion_detection
from lesionseg.metrics.overlap import (
    ConfusionCounts,
    absolute_volume_difference,
    confusion_counts,
    dice_similarity_coefficient,
    f1_score,
    intersection_over_union,
    precision,
    sensitivity,
    specificity,
)
from lesionseg.metrics.summary import describe, fold_medians, summarize
from lesionseg.metrics.surface import SurfaceDistances, compute_surface_distances, mask_surface

__all__ = [
    "COUNT_NAMES",
    "DISTANCE_METRICS",
    "METRIC_LABELS",
    "METRIC_NAMES",
    "ConfusionCounts",
    "LesionDetection",
    "SurfaceDistances",
    "absolute_volume_difference",
    "binary_case_metrics",
    "compute_surface_distances",
    "confusion_counts",
    "describe",
    "dice_similarity_coefficient",
    "f1_score",
    "fold_medians",
    "intersection_over_union",
    "label_lesions",
    "label_map_metrics",
    "lesion_detection",
    "mask_surface",
    "precision",
    "sensitivity",
    "specificity",
    "summarize",
]
