"""Cross-validation of cases with ``label_slices`` (TS-CNN's labelled slice with its unlabelled neighbours,
as the authors published them): predict only the labelled slices, score each as a 2D map with the in-plane
spacing, and draw an overlay per labelled slice in the TS-CNN Figure 3 colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lesionseg.data.manifest import Case, Manifest
from lesionseg.io import Volume
from lesionseg.metrics import label_map_metrics


def labelled_slice_metrics(
    manifest: Manifest, case: Case, reference: Volume, pred: np.ndarray, ref: np.ndarray, extra: dict
) -> list[dict]:
    """One ``label_map_metrics`` row set per labelled slice of ``case`` (``case.label_slices``, indices of
    the original grid's third axis), each slice scored as a 2D map with the in-plane spacing; the rows
    carry ``slice``. Lesions are then 2D connected components of the slice (8-connected)."""
    rows: list[dict] = []
    for z in case.label_slices or ():
        rows += label_map_metrics(
            pred[:, :, z],
            ref[:, :, z],
            reference.spacing[:2],
            manifest.labels,
            manifest.regions,
            case=case.id,
            extra={**extra, "slice": int(z)},
        )
    return rows


def save_labelled_slice_overlays(
    out: Path, case: Case, reference: Volume, pred: np.ndarray, ref: np.ndarray
) -> None:
    """``overlays/<case>_slice<z>.png`` for every labelled slice (TS-CNN Figure 3 colours)."""
    from lesionseg.report.cv_report import display_slice, overlay_path, save_slice_overlay

    for z in case.label_slices or ():
        save_slice_overlay(
            overlay_path(out, case.id, z),
            display_slice(reference.array, reference.affine, z),
            display_slice(ref, reference.affine, z),
            display_slice(pred, reference.affine, z),
            title=f"{case.id} (subject {case.subject}), slice {z}",
        )


def score_labelled_slices(
    out: Path,
    manifest: Manifest,
    case: Case,
    reference: Volume,
    pred: np.ndarray,
    ref: np.ndarray,
    extra: dict,
) -> list[dict]:
    """Metrics rows of every labelled slice of ``case`` (see :func:`labelled_slice_metrics`), and their
    overlays under ``out/overlays``."""
    save_labelled_slice_overlays(out, case, reference, pred, ref)
    return labelled_slice_metrics(manifest, case, reference, pred, ref, extra)
