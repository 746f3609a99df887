"""Lesion-wise detection as the MICCAI 2017 WMH segmentation challenge defines it.

Reference: ``getLesionDetection`` in the challenge's ``evaluation.py`` (github.com/hjkuijf/wmhchallenge;
Kuijf et al., IEEE TMI 2019): lesions are the connected components of a mask with full connectivity
(SimpleITK ``ConnectedComponentImageFilter`` with ``FullyConnected=True``, in 3D the 26-neighbourhood =
``scipy.ndimage.label`` with a 3x3x3 structure of ones);

- lesion recall = (reference lesions that share at least one voxel with the prediction) / (reference lesions);
  1 when the reference has no lesion;
- lesion precision = (predicted components that share at least one voxel with the reference) / (predicted
  components); 1 when nothing is predicted;
- lesion F1 = 2 P R / (P + R), and 0 when P + R = 0.

These empty-mask values are the challenge script's, kept as they are. The counts reported beside them:
``lesions_detected`` (reference lesions hit), ``lesions_missed`` (reference lesions not hit) and
``lesions_false`` (predicted components that touch no reference voxel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class LesionDetection:
    ref_lesions: int
    pred_lesions: int
    lesions_detected: int
    lesions_false: int

    @property
    def lesions_missed(self) -> int:
        return self.ref_lesions - self.lesions_detected

    @property
    def lesion_recall(self) -> float:
        return 1.0 if self.ref_lesions == 0 else self.lesions_detected / self.ref_lesions

    @property
    def lesion_precision(self) -> float:
        if self.pred_lesions == 0:
            return 1.0
        return (self.pred_lesions - self.lesions_false) / self.pred_lesions

    @property
    def lesion_f1(self) -> float:
        p, r = self.lesion_precision, self.lesion_recall
        return 0.0 if p + r == 0 else 2.0 * p * r / (p + r)


def label_lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components with full connectivity (3x3x3 ones in 3D, 3x3 in 2D)."""
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    labels, count = ndimage.label(mask, structure=structure)
    return labels, int(count)


def lesion_detection(pred: np.ndarray, ref: np.ndarray) -> LesionDetection:
    """WMH-challenge lesion detection counts of two boolean masks of one shape (any crop holding both)."""
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    ref_labels, n_ref = label_lesions(ref)
    pred_labels, n_pred = label_lesions(pred)
    detected = np.unique(ref_labels[pred & ref])
    hit = np.unique(pred_labels[pred & ref])
    return LesionDetection(
        ref_lesions=n_ref,
        pred_lesions=n_pred,
        lesions_detected=int(detected.size),
        lesions_false=n_pred - int(hit.size),
    )
