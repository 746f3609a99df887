"""Pixel samplers for PixelNet's sparse training (Islam and Ren 2018, section 2.1); numpy only.

Both return an int64 (n, 2) array of (row, col) = (h, w) coordinates into a 2D label map (H, W), the
convention PixelNet.forward_pixels takes (docs/architecture.md). Sampling is without replacement whenever
n <= H * W, so the coordinates are distinct; for n > H * W pixels repeat.
"""

from __future__ import annotations

import numpy as np


def _check(label2d: np.ndarray, n: int) -> None:
    if label2d.ndim != 2:
        raise ValueError(f"label2d must be a 2D (H, W) label map, got shape {label2d.shape}")
    if label2d.size == 0:
        raise ValueError("label2d is empty")
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")


def _to_coords(flat: np.ndarray, width: int) -> np.ndarray:
    return np.stack(np.divmod(flat.astype(np.int64), width), axis=1).astype(np.int64).reshape(-1, 2)


def uniform_pixels(label2d: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n pixels drawn uniformly from the whole image (original PixelNet sampling): (n, 2) int64 (row, col)."""
    _check(label2d, n)
    flat = rng.choice(label2d.size, size=int(n), replace=n > label2d.size)
    return _to_coords(flat, label2d.shape[1])


def class_balanced_pixels(label2d: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Class-balanced sampling (section 2.1): n / K pixels of each of the K classes present in the image.

    N not divisible by K: the n % K extra pixels go one each to the first classes in ascending label order.
    A class with fewer pixels than its share gives all its pixels, and the total shortfall is filled at
    random from the whole image (the paper: "we sample randomly to maintain the equal number of sampling
    pixel"), from pixels not chosen yet while any remain. Returns (n, 2) int64 (row, col), grouped by
    class in ascending label order, then the fill.
    """
    _check(label2d, n)
    n = int(n)
    flat_labels = label2d.ravel()
    classes = np.unique(flat_labels)
    share, extra = divmod(n, len(classes))
    chosen: list[np.ndarray] = []
    shortfall = 0
    for i, value in enumerate(classes):
        quota = share + (1 if i < extra else 0)
        members = np.flatnonzero(flat_labels == value)
        if members.size >= quota:
            chosen.append(rng.choice(members, size=quota, replace=False))
        else:
            chosen.append(members)
            shortfall += quota - members.size
    if shortfall:
        taken = np.zeros(flat_labels.size, dtype=bool)
        for part in chosen:
            taken[part] = True
        free = np.flatnonzero(~taken)
        if free.size >= shortfall:
            chosen.append(rng.choice(free, size=shortfall, replace=False))
        else:  # n > H * W: every pixel once, then repeats
            chosen.append(free)
            chosen.append(rng.choice(flat_labels.size, size=shortfall - free.size, replace=True))
    flat = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    return _to_coords(flat, label2d.shape[1])
