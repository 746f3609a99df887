"""Brain masks derived from the image ("nonzero" or "otsu"), holes filled, largest component kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from lesionseg.errors import LesionsegError
from lesionseg.preprocess.geometry import crop_box


def border_value(channel: np.ndarray) -> float:
    """The most common value on the six faces of a volume: its background (0, or negative after z-scoring)."""
    faces = np.concatenate(
        [channel[[0, -1]].ravel(), channel[:, [0, -1]].ravel(), channel[:, :, [0, -1]].ravel()]
    )
    values, counts = np.unique(faces, return_counts=True)
    return float(values[np.argmax(counts)])


def nonzero_mask(image: np.ndarray) -> np.ndarray:
    """Voxels that differ from their channel's background value in any channel. ``image``: (C, X, Y, Z).

    "Nonzero" in the sense of "not background": a z-scored image whose background is a constant negative
    value (BraTS as DeepMedic ships it) is handled like a zero background. Interpolation noise near zero
    inside a zero background (open_ms_data) is foreground; filling and the largest component clean it up.
    """
    mask = np.zeros(image.shape[1:], dtype=bool)
    for channel in image:
        mask |= channel != np.float32(border_value(channel))
    return mask


def otsu_mask(channel: np.ndarray, bins: int = 128) -> np.ndarray:
    """Voxels above Otsu's threshold on one channel (X, Y, Z) (SimpleITK OtsuThreshold)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(channel, dtype=np.float32))
    mask = sitk.OtsuThreshold(image, 0, 1, bins)  # inside (below threshold) = 0, outside = 1
    return sitk.GetArrayFromImage(mask).astype(bool)


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Fill enclosed holes (3D), then keep the largest 6-connected component.

    Both run on the bounding box of the mask only (same result: a background voxel on the box's face is
    either on the volume's border or next to the background outside the box, so it is never a hole), which
    saves the work on the empty margins of the grid (tests/test_preprocess.py checks the equality)."""
    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    box = tuple(slice(lo, hi) for lo, hi in crop_box(mask, (0, 0, 0)))
    filled = ndimage.binary_fill_holes(mask[box])
    labels, count = ndimage.label(filled)
    if count > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        filled = labels == int(np.argmax(sizes))
    out = np.zeros(mask.shape, dtype=bool)
    out[box] = filled
    return out


def derive_brain_mask(image: np.ndarray, mode: str, source: str | Path | None = None) -> np.ndarray:
    """A uint8 {0, 1} brain mask (X, Y, Z) from ``image`` (C, X, Y, Z); ``mode``: "nonzero", "otsu", "none".

    An empty result raises LesionsegError naming ``source`` (the first channel's file).
    """
    if mode == "none":
        return np.ones(image.shape[1:], dtype=np.uint8)
    if mode == "nonzero":
        raw = nonzero_mask(image)
    elif mode == "otsu":
        raw = otsu_mask(image[0])
    else:
        raise ValueError(f"unknown brain mask mode {mode!r}")
    mask = clean_mask(raw) if raw.any() else raw
    if not mask.any():
        raise LesionsegError(f"brain mask is empty (mode {mode!r}: the image has no foreground)", source)
    return mask.astype(np.uint8)


def check_mask(mask: np.ndarray, source: str | Path | None) -> np.ndarray:
    """A given mask as uint8 {0, 1}; LesionsegError naming ``source`` when it is empty."""
    if not np.any(mask):
        raise LesionsegError("brain mask is empty", source)
    return (np.asarray(mask) > 0).astype(np.uint8)
