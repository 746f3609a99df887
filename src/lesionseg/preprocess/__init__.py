"""Deterministic preprocessing of Volumes with an exact inverse (the cache of manifest cases: ``data.cache``).

Steps (each optional, see ``lesionseg.config.preprocess.PreprocessConfig``): reorient to canonical RAS,
resample, brain mask, N4, z-score, crop to the brain and pad in-plane. ``invert`` maps any array on the
preprocessed grid back onto the case's original grid; it is exact (bitwise for label maps) unless the
case was resampled or resized in-plane (``record.exact``). numpy + SimpleITK/nibabel maths; no torch.
"""

from lesionseg.preprocess.pipeline import (
    PreprocessedCase,
    apply_geometry,
    invert,
    preprocess_volumes,
)
from lesionseg.preprocess.record import GridScaling, PreprocessRecord

__all__ = [
    "GridScaling",
    "PreprocessRecord",
    "PreprocessedCase",
    "apply_geometry",
    "invert",
    "preprocess_volumes",
]
