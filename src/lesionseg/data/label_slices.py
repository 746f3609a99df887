"""Which slices of a preprocessed case carry a reference label (a manifest case's ``label_slices``).

``label_slices`` index the third axis of the case's original image grid (the stack's file order). After
preprocessing (reorientation, crop, in-plane resize and pad) they are found again by pushing an indicator
volume (1 on the labelled slices, 0 elsewhere) through the same grid steps (``apply_geometry``) and reading
off which preprocessed axial slices it reaches. This also holds when reorientation flips the slice axis or
the crop drops slices; it refuses a grid on which the labelled slices are not axial slices any more.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lesionseg.data.manifest import Case
from lesionseg.errors import LesionsegError
from lesionseg.preprocess import PreprocessedCase, PreprocessRecord, apply_geometry


def labelled_slices(case: Case, record: PreprocessRecord) -> np.ndarray:
    """Sorted int64 indices of the preprocessed grid's axial slices (last axis) that carry a reference label.

    ``case.label_slices`` None (every slice labelled): every slice of the preprocessed grid. A labelled
    slice that the crop removed is simply absent; an empty result raises LesionsegError.
    """
    depth = int(record.shape[2])
    if case.label_slices is None:
        return np.arange(depth, dtype=np.int64)
    original_depth = int(record.original_shape[2])
    if max(case.label_slices) >= original_depth:
        raise LesionsegError(
            f"case {case.id}: label_slices {list(case.label_slices)} outside its {original_depth} slices"
        )
    indicator = np.zeros(record.original_shape, dtype=np.uint8)
    indicator[:, :, list(case.label_slices)] = 1
    moved = apply_geometry(indicator, record, "label") != 0
    region = apply_geometry(np.ones(record.original_shape, dtype=np.uint8), record, "label") != 0
    per_slice = moved.reshape(-1, depth)
    inside = region.reshape(-1, depth)
    hit = per_slice.any(axis=0)
    # every voxel of the field of view of a labelled slice must be marked, and none of another slice
    if not np.array_equal(per_slice[:, hit], inside[:, hit]):
        raise LesionsegError(
            f"case {case.id}: label_slices {list(case.label_slices)} are not axial slices after "
            "reorientation (the slice-stack axis is not the preprocessed Z axis)"
        )
    found = np.flatnonzero(hit).astype(np.int64)
    if found.size == 0:
        raise LesionsegError(f"case {case.id}: preprocessing cropped away every labelled slice")
    return found


def only_labelled_slices(pre: PreprocessedCase, zs: np.ndarray) -> PreprocessedCase:
    """``pre`` with its brain mask cleared outside the slices ``zs``, so that slice-wise prediction, which
    skips slices without brain, predicts only those (their neighbours still serve as 2.5D context)."""
    mask = np.zeros_like(np.asarray(pre.mask))
    mask[..., zs] = np.asarray(pre.mask)[..., zs]
    return replace(pre, mask=mask, labelled_slices=zs)
