"""The image geometry a model is applied to: voxel spacing and grid size outside which prediction is refused.

The range covers every scan of the shared sample sets with a margin (spacings 0.45 to 5.0 mm: open_ms_data,
ISBI 2015, ISLES 2022, MSLesSeg, BraTS; clinical 2D FLAIR of 5 to 7 mm slices with a gap) and the phantoms
the tests use (3 x 3 x 4 mm). Outside it a mask would still come out, but from an image the model was never
shown at that scale (voxels of 1 x 1 x 60 mm, or 0.01 mm: a header in the wrong unit), so the command stops
with one line instead. The model card (``models/MODEL_CARD.md``) cites these constants.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume

SPACING_RANGE_MM = (0.25, 8.0)  # every voxel side (mm) must lie in [low, high]
MIN_PLANE_VOXELS = 16  # at least two axes of this many voxels: an image plane the networks can slide over


def check_geometry(volume: Volume, path: str | Path | None = None) -> None:
    """LesionsegError naming ``path`` (else the Volume's source) when ``volume``'s voxel spacing or grid
    size lies outside what prediction accepts (``SPACING_RANGE_MM``, ``MIN_PLANE_VOXELS``)."""
    where = path if path is not None else volume.source
    affine = np.asarray(volume.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(float(np.linalg.det(affine[:3, :3]))) < 1e-12:
        # files are checked on reading (io.readers); a Volume given directly is checked here
        raise LesionsegError("the voxel-to-world matrix (affine) is not finite or is singular", where)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    low, high = SPACING_RANGE_MM
    if not np.all(np.isfinite(spacing)) or spacing.min() < low or spacing.max() > high:
        sides = " x ".join(f"{s:.3g}" for s in spacing)
        raise LesionsegError(
            f"voxel size {sides} mm is outside the range the model is applied to ({low:g} to {high:g} mm "
            "per side); check the header's voxel size (pixdim) and units",
            where,
        )
    sizes = sorted((int(s) for s in volume.shape), reverse=True)
    if sizes[1] < MIN_PLANE_VOXELS:
        dims = " x ".join(str(int(s)) for s in volume.shape)
        raise LesionsegError(
            f"image of {dims} voxels is too small to segment (it needs at least {MIN_PLANE_VOXELS} voxels "
            "along two axes)",
            where,
        )
