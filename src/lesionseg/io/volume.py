"""The in-memory image type: an array, its affine, and whether it is an intensity image or a label map."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from lesionseg.errors import LesionsegError

VolumeKind = Literal["image", "label"]


@dataclass
class Volume:
    """A 3D scan or label map on a voxel grid.

    - ``array``: shape (X, Y, Z) in voxel index order (i, j, k), as nibabel returns it.
    - ``affine``: 4x4 voxel-index -> world millimetres in RAS+ (the NIfTI convention, also for files
      read with SimpleITK, whose LPS physical space is converted on reading).
    - ``kind``: "image" (interpolate linearly) or "label" (nearest neighbour only; integer values).
    - ``header``: the NIfTI header it came from, if any, so a mask written back keeps it.
    """

    array: np.ndarray
    affine: np.ndarray
    kind: VolumeKind = "image"
    header: object | None = field(default=None, repr=False, compare=False)
    source: Path | None = None

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")
        if self.kind not in ("image", "label"):
            raise ValueError(f"kind must be 'image' or 'label', got {self.kind!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis (norms of the affine's columns)."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def with_array(self, array: np.ndarray, kind: VolumeKind | None = None) -> Volume:
        """A new Volume on the same grid (same affine and header) holding ``array``."""
        if array.shape[:3] != self.array.shape[:3]:
            raise ValueError(f"array shape {array.shape} does not match grid {self.array.shape}")
        return Volume(array, self.affine.copy(), kind or self.kind, self.header, self.source)

    def same_grid(self, other: Volume, atol: float = 1e-3) -> bool:
        """True when both volumes share shape and affine (within ``atol`` mm)."""
        return self.shape[:3] == other.shape[:3] and bool(np.allclose(self.affine, other.affine, atol=atol))


def require_same_grid(reference: Volume, other: Volume, what: str, atol: float = 1e-3) -> None:
    """LesionsegError naming ``other``'s file unless it shares ``reference``'s shape and affine."""
    if reference.shape[:3] != other.shape[:3]:
        raise LesionsegError(
            f"{what} grid {other.shape} differs from {reference.source} grid {reference.shape}", other.source
        )
    if not np.allclose(reference.affine, other.affine, atol=atol):
        worst = float(np.abs(reference.affine - other.affine).max())
        raise LesionsegError(
            f"{what} affine differs from {reference.source} (max difference {worst:.4g} mm)", other.source
        )
