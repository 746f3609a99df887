"""Intensity steps: N4 bias-field correction and per-channel z-score inside the brain mask."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def n4_correct(
    channel: np.ndarray,
    mask: np.ndarray,
    spacing: Sequence[float],
    shrink: int = 4,
    iterations: Sequence[int] = (50, 50, 30, 20),
) -> np.ndarray:
    """N4 bias-field correction of one channel (X, Y, Z) -> float32, same shape (Tustison et al. 2010).

    The standard fast recipe: fit N4 (SimpleITK ``N4BiasFieldCorrectionImageFilter``, one fitting level per
    entry of ``iterations``) on the image and mask shrunk by ``shrink``, then divide the full-resolution
    image by ``exp(log bias field)`` evaluated on the full grid. The fit uses the mask's voxels with a
    positive value only (N4 works on log intensities); voxels outside keep their value divided by the
    smooth field, so nothing is clipped.
    """
    import SimpleITK as sitk

    def to_sitk(array: np.ndarray, pixel: int) -> sitk.Image:
        image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
        image.SetSpacing([float(s) for s in spacing])
        return sitk.Cast(image, pixel)

    full = to_sitk(channel.astype(np.float32, copy=False), sitk.sitkFloat32)
    fit_mask = (mask > 0) & (channel > 0)
    if not fit_mask.any():
        return channel.astype(np.float32, copy=True)
    mask_image = to_sitk(fit_mask.astype(np.uint8), sitk.sitkUInt8)
    factors = [max(1, min(int(shrink), n // 4 or 1)) for n in channel.shape]
    small = sitk.Shrink(full, factors)
    small_mask = sitk.Shrink(mask_image, factors)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(i) for i in iterations])
    corrector.Execute(small, small_mask)
    log_field = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(full)).transpose(2, 1, 0)
    return (channel / np.exp(log_field)).astype(np.float32)


def zscore(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, list[float], list[float]]:
    """Per-channel (x - mean) / std with mean and std over the mask; 0 outside the mask.

    ``image``: (C, X, Y, Z); ``mask``: (X, Y, Z). Returns the float32 image and the means and standard
    deviations used (float64 sums). A constant channel (std 0) is only centred (std recorded as 1).
    """
    inside = mask > 0
    out = np.zeros(image.shape, dtype=np.float32)
    means, stds = [], []
    for c, channel in enumerate(image):
        values = channel[inside].astype(np.float64)
        mean = float(values.mean())
        std = float(values.std())
        std = std if std > 1e-12 * max(1.0, abs(mean)) else 1.0
        out[c][inside] = ((values - mean) / std).astype(np.float32)
        means.append(mean)
        stds.append(std)
    return out, means, stds
