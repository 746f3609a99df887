"""Smooth random fields on a voxel grid, in millimetres (shape deformations, textures, bias fields)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def grid_mm(shape: Sequence[int], spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable coordinates in mm of every voxel, centred on the grid: (X,1,1), (1,Y,1), (1,1,Z)."""
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)]
    return (
        axes[0][:, None, None],
        axes[1][None, :, None],
        axes[2][None, None, :],
    )


def fourier_field(
    rng: np.random.Generator,
    coords: tuple[np.ndarray, np.ndarray, np.ndarray],
    wavelength_mm: float,
    n_terms: int = 8,
) -> np.ndarray:
    """A smooth random field of roughly unit variance: a sum of ``n_terms`` plane waves with random
    directions, phases and wavelengths in [0.7, 1.4] x ``wavelength_mm``. Cheap for low frequencies."""
    x, y, z = coords
    field = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), dtype=np.float32)
    for _ in range(n_terms):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        k = 2 * np.pi / (wavelength_mm * rng.uniform(0.7, 1.4)) * direction
        phase = rng.uniform(0, 2 * np.pi)
        field += np.cos(
            np.float32(k[0]) * x + np.float32(k[1]) * y + np.float32(k[2]) * z + np.float32(phase)
        )
    field *= np.float32(np.sqrt(2.0 / n_terms))
    return field


def filtered_noise(
    rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float], sigma_mm: float
) -> np.ndarray:
    """White noise smoothed by a Gaussian of ``sigma_mm``, rescaled to zero mean and unit variance."""
    noise = rng.standard_normal(tuple(shape), dtype=np.float32)
    sigma = [sigma_mm / s for s in spacing]
    field = ndimage.gaussian_filter(noise, sigma, mode="wrap")
    field -= field.mean()
    field /= field.std() + 1e-6
    return field
