"""2D slices and 2.5D triplets from a preprocessed case (C, X, Y, Z), and which slices to train on.

The 2.5D rule at a volume's ends (TS-CNN section 2.1 is silent): the missing neighbour is the edge slice
repeated (replicate padding), so slice 0's triplet is (0, 0, 1).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

SliceFilter = Literal["all", "brain", "lesion"]


def context_indices(z: int, depth: int, context_slices: int) -> list[int]:
    """Slice indices t-h .. t+h (h = context_slices // 2), clamped to [0, depth - 1]."""
    half = context_slices // 2
    return [min(max(z + d, 0), depth - 1) for d in range(-half, half + 1)]


def extract_slice(image: np.ndarray, z: int, context_slices: int = 1) -> np.ndarray:
    """(C, X, Y, Z) -> (context_slices * C, X, Y), ordered [t-1 channels, t channels, t+1 channels]."""
    zs = context_indices(z, image.shape[-1], context_slices)
    return np.concatenate([np.asarray(image[..., zz], dtype=np.float32) for zz in zs], axis=0)


def select_slices(
    label: np.ndarray | None,
    mask: np.ndarray,
    how: SliceFilter | float = "brain",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Axial slice indices to sample from.

    - "all": every slice; "brain": slices with brain-mask voxels; "lesion": slices with lesion voxels
      (the WMH thesis trains on these only);
    - a float r: every lesion slice plus r times as many brain slices without lesion, drawn with ``rng``.
    """
    depth = mask.shape[-1]
    brain = np.flatnonzero(np.asarray(mask).reshape(-1, depth).any(axis=0))
    if how == "all":
        return np.arange(depth)
    if how == "brain" or label is None:
        return brain
    lesion = np.flatnonzero(np.asarray(label).reshape(-1, depth).any(axis=0))
    if how == "lesion":
        return lesion
    ratio = float(how)
    others = np.setdiff1d(brain, lesion)
    n = min(len(others), int(round(ratio * len(lesion))))
    rng = rng or np.random.default_rng(0)
    extra = rng.choice(others, size=n, replace=False) if n else np.empty(0, dtype=int)
    return np.sort(np.concatenate([lesion, extra]).astype(int))


def random_patch_origin(
    shape: tuple[int, int],
    patch: tuple[int, int],
    rng: np.random.Generator,
    label: np.ndarray | None = None,
    lesion_probability: float = 0.0,
) -> tuple[int, int]:
    """Top-left corner of a ``patch`` inside ``shape``. With ``lesion_probability`` the patch is centred
    near a random lesion pixel of ``label`` (2D), otherwise anywhere (TS-CNN's half-size patches)."""
    max_r, max_c = shape[0] - patch[0], shape[1] - patch[1]
    if max_r < 0 or max_c < 0:
        raise ValueError(f"patch {patch} larger than slice {shape}")
    if label is not None and lesion_probability > 0 and rng.random() < lesion_probability:
        rows, cols = np.nonzero(label)
        if len(rows):
            i = rng.integers(len(rows))
            r = int(rows[i]) - patch[0] // 2 + int(rng.integers(-patch[0] // 4, patch[0] // 4 + 1))
            c = int(cols[i]) - patch[1] // 2 + int(rng.integers(-patch[1] // 4, patch[1] // 4 + 1))
            return min(max(r, 0), max_r), min(max(c, 0), max_c)
    return int(rng.integers(max_r + 1)), int(rng.integers(max_c + 1))
