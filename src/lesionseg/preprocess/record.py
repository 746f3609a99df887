"""PreprocessRecord: everything needed to map a preprocessed array back onto the case's original grid."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesionseg.config import from_dict, to_dict
from lesionseg.config.preprocess import PreprocessConfig

RECORD_VERSION = 1

Shape3 = tuple[int, int, int]
Box3 = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class GridScaling:
    """A per-axis rescaling of a voxel grid (resampling to a spacing, or the in-plane resize).

    ``scale[a]`` is the number of input voxels per output voxel along axis a. Both grids share the edge of
    the field of view at index -0.5, so output index ``o`` sits at input index ``scale * o + offset`` with
    ``offset = (scale - 1) / 2`` (the pixel-centre convention of SimpleITK and of ``align_corners=False``).
    """

    in_shape: Shape3
    out_shape: Shape3
    scale: tuple[float, float, float]

    @property
    def offset(self) -> np.ndarray:
        return (np.asarray(self.scale) - 1.0) / 2.0

    def matrix(self) -> np.ndarray:
        """4x4 map from output voxel indices to input voxel indices."""
        m = np.diag([*self.scale, 1.0])
        m[:3, 3] = self.offset
        return m


@dataclass(frozen=True)
class PreprocessRecord:
    """How one case was preprocessed, in the order the steps ran; serialises to JSON and back exactly.

    Grids: original (``original_shape``, ``original_affine``) -> reoriented (``orientation``, a nibabel
    orientation transform, identity when reorientation is off) -> resampled (``resample`` or None) = the
    working grid, where the mask, N4 and normalisation are computed -> cropped (``crop_box`` [lo, hi) per
    axis on the working grid) -> resized in-plane (``resize`` or None) -> padded (``pad`` (before, after)
    per axis) = the preprocessed grid (``shape``, ``affine``).
    """

    original_shape: Shape3
    original_affine: tuple[tuple[float, ...], ...]
    orientation: tuple[tuple[int, int], ...]
    resample: GridScaling | None
    crop_box: Box3
    resize: GridScaling | None
    pad: Box3
    shape: Shape3
    affine: tuple[tuple[float, ...], ...]
    channel_mean: tuple[float, ...]
    channel_std: tuple[float, ...]
    brain_mask: str
    n4: bool
    config: PreprocessConfig
    version: int = RECORD_VERSION

    @property
    def reoriented_shape(self) -> Shape3:
        return tuple(int(self.original_shape[int(src)]) for src in self.inverse_orientation[:, 0])  # type: ignore[return-value]

    @property
    def working_shape(self) -> Shape3:
        return self.resample.out_shape if self.resample else self.reoriented_shape

    @property
    def cropped_shape(self) -> Shape3:
        return tuple(hi - lo for lo, hi in self.crop_box)  # type: ignore[return-value]

    @property
    def inverse_orientation(self) -> np.ndarray:
        """The orientation transform from the reoriented grid back to the original one."""
        inverse = np.zeros((3, 2), dtype=int)
        for src, (dst, flip) in enumerate(self.orientation):
            inverse[dst] = (src, flip)
        return inverse

    @property
    def exact(self) -> bool:
        """True when ``invert`` recovers label maps bitwise (no resampling, no resize)."""
        return self.resample is None and self.resize is None

    def affine_array(self) -> np.ndarray:
        return np.asarray(self.affine, dtype=np.float64)

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict, path: str | Path | None = None) -> PreprocessRecord:
        return from_dict(cls, data, path)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, path: str | Path | None = None) -> PreprocessRecord:
        return cls.from_dict(json.loads(text), path)


def affine_tuple(affine: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in np.asarray(affine))
