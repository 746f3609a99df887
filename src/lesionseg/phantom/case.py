"""One phantom case: the head, its lesions, and FLAIR- and T1-like images with bias field and Rician noise.

Image formation, in order: tissue intensities (below, relative units; lesions multiply the white-matter
value by their own factor), a mild within-tissue texture (+-3 %), a Gaussian point-spread function
(sigma 0.5 voxel in-plane, 0.6 across slices: partial volume at every edge), a smooth multiplicative bias
field (exp of a random field, about +-15 %), Rician noise (magnitude of a complex signal with Gaussian noise
of sigma 3-4.5 % of white matter in each part) and an arbitrary per-case scanner scale, so intensities must
be normalised as on real data.

| tissue  | FLAIR | T1   |
|---------|-------|------|
| air     | 0     | 0    |
| scalp   | 0.45  | 0.95 |
| skull   | 0.06  | 0.08 |
| CSF     | 0.12  | 0.15 |
| GM      | 0.68  | 0.50 |
| deep GM | 0.62  | 0.62 |
| WM      | 0.52  | 0.82 |
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lesionseg.io import Volume
from lesionseg.phantom.anatomy import WM, Anatomy, make_anatomy
from lesionseg.phantom.fields import filtered_noise, fourier_field
from lesionseg.phantom.lesions import LesionMaps, make_lesions

DEFAULT_SHAPE = (96, 112, 64)
DEFAULT_SPACING = (1.5, 1.5, 2.0)
FLAIR_INTENSITY = np.array([0.0, 0.45, 0.06, 0.12, 0.68, 0.62, 0.52], dtype=np.float32)
T1_INTENSITY = np.array([0.0, 0.95, 0.08, 0.15, 0.50, 0.62, 0.82], dtype=np.float32)


@dataclass
class PhantomCase:
    """Four volumes on one grid (one affine): two images, the lesion label map and the brain mask."""

    flair: Volume  # float32
    t1: Volume  # float32
    label: Volume  # uint8 {0, 1}
    brain_mask: Volume  # uint8 {0, 1}
    lesion_count: int  # lesions drawn (touching ones may merge into one connected component)
    tissue: np.ndarray  # (X, Y, Z) uint8 tissue classes, lesions not included (anatomy.TISSUE_NAMES)


def rotation_matrix(angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation about x, then y, then z (degrees)."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def phantom_affine(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """A slightly oblique LAS-like affine: voxel axes point Left, Anterior, Superior, tilted by up to 6 deg
    about x and 3 deg about y and z (an acquisition aligned to the head, not to the scanner), with the grid
    centre within 5 mm of the world origin."""
    angles = rng.uniform([-6, -3, -3], [6, 3, 3])
    linear = rotation_matrix(angles) @ np.diag([-spacing[0], spacing[1], spacing[2]])
    centre = (np.asarray(shape, dtype=float) - 1) / 2
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = rng.uniform(-5, 5, size=3) - linear @ centre
    return affine


def _render(
    rng: np.random.Generator,
    anatomy: Anatomy,
    lesions: LesionMaps,
    table: np.ndarray,
    lesion_factor: np.ndarray,
    noise_rel: float,
) -> np.ndarray:
    """Tissue intensities -> texture -> PSF -> bias field -> Rician noise, as float32."""
    spacing = anatomy.spacing
    image = table[anatomy.tissue]
    image *= 1.0 + 0.03 * filtered_noise(rng, image.shape, spacing, 2.0)
    image = np.where(lesions.mask, table[WM] * lesion_factor, image).astype(np.float32)
    image = ndimage.gaussian_filter(image, (0.5, 0.5, 0.6))
    image *= np.exp(0.15 * fourier_field(rng, anatomy.coords, 250.0, 4))
    sigma = noise_rel * float(table[WM])
    real = image + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    imag = rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.sqrt(real * real + imag * imag).astype(np.float32)


def make_phantom_case(
    rng: np.random.Generator,
    shape: Sequence[int] = DEFAULT_SHAPE,
    spacing: Sequence[float] = DEFAULT_SPACING,
) -> PhantomCase:
    """Draw one subject: head, lesions, FLAIR and T1, all on an oblique LAS-like grid.

    ``shape`` (X, Y, Z) voxels and ``spacing`` (mm) give the field of view; the head keeps its size in mm
    and is only shrunk when it does not fit. Deterministic for a given ``rng`` state.
    """
    shape = tuple(int(n) for n in shape)
    spacing = tuple(float(s) for s in spacing)
    anatomy = make_anatomy(rng, shape, spacing)
    lesions = make_lesions(anatomy, rng)
    flair = _render(rng, anatomy, lesions, FLAIR_INTENSITY, lesions.flair_factor, rng.uniform(0.03, 0.045))
    t1 = _render(rng, anatomy, lesions, T1_INTENSITY, lesions.t1_factor, rng.uniform(0.03, 0.045))
    flair *= np.float32(rng.uniform(200, 500))
    t1 *= np.float32(rng.uniform(400, 1200))
    affine = phantom_affine(rng, shape, spacing)
    return PhantomCase(
        flair=Volume(flair, affine, "image"),
        t1=Volume(t1, affine.copy(), "image"),
        label=Volume(lesions.mask.astype(np.uint8), affine.copy(), "label"),
        brain_mask=Volume(anatomy.brain.astype(np.uint8), affine.copy(), "label"),
        lesion_count=lesions.count,
        tissue=anatomy.tissue,
    )
