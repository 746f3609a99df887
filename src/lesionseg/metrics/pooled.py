"""Metrics of a group of 2D slices (e.g. a subject's labelled slices) pooled from their per-slice rows.

The rows are ``label_map_metrics`` rows of separate 2D slices. Pooling follows from the counts:

- DSC, IoU, sensitivity, specificity, precision, F1 and AVD from the summed confusion counts
  (TP, FP, FN, TN) of the slices, with the empty-mask conventions of :mod:`lesionseg.metrics`;
- lesion-wise detection from the summed lesion counts (a lesion is a 2D connected component of one
  slice, so the slices' lesions are distinct);
- Hausdorff distance = the largest of the slices' Hausdorff distances: the slices are separate planes,
  and distances are only measured within a plane. It is undefined (NaN) when any slice has a reference
  but no prediction or the reverse (its distance does not exist), as for one slice.

HD95 and ASSD need the distances themselves and are not pooled (absent from the pooled rows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lesionseg.metrics.lesions import LesionDetection
from lesionseg.metrics.overlap import (
    ConfusionCounts,
    overlap_metrics,
)
from lesionseg.metrics.summary import as_float

POOLED_COUNTS = ["tp", "fp", "fn", "tn", "ref_lesions", "pred_lesions", "lesions_detected", "lesions_false"]


def pooled_metrics(
    rows: Sequence[Mapping], by: str = "subject", keep: Sequence[str] = ("fold",)
) -> list[dict]:
    """One row per value of ``by`` and per ``label``, pooled from the per-slice ``rows``.

    Each row: ``case`` (= the group's value, so that ``summarize`` counts groups), ``by``, the ``keep``
    columns of the group's first row, ``label``, ``kind``, ``n_slices``, the pooled metrics and counts.
    """
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for row in rows:
        groups.setdefault((str(row.get(by, "")), str(row.get("label", ""))), []).append(row)
    out = []
    for (value, label), group in groups.items():
        sums = {name: int(sum(as_float(r.get(name)) for r in group)) for name in POOLED_COUNTS}
        counts = ConfusionCounts(sums["tp"], sums["fp"], sums["fn"], sums["tn"])
        lesions = LesionDetection(
            sums["ref_lesions"], sums["pred_lesions"], sums["lesions_detected"], sums["lesions_false"]
        )
        distances = [as_float(r.get("hd")) for r in group]
        hd = math.nan if any(math.isnan(d) for d in distances) else max(distances, default=math.nan)
        first = group[0]
        out.append(
            {
                "case": value,
                by: value,
                **{k: first.get(k) for k in keep if k in first},
                "label": label,
                "kind": first.get("kind", "label"),
                "n_slices": len(group),
                **overlap_metrics(counts),
                "hd": hd,
                "lesion_recall": lesions.lesion_recall,
                "lesion_precision": lesions.lesion_precision,
                "lesion_f1": lesions.lesion_f1,
                "ref_voxels": counts.ref_voxels,
                "pred_voxels": counts.pred_voxels,
                **sums,
                "lesions_missed": lesions.lesions_missed,
                "ref_empty": int(counts.ref_voxels == 0),
                "pred_empty": int(counts.pred_voxels == 0),
            }
        )
    return out
