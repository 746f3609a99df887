"""White-matter lesions for the phantom: periventricular, deep and punctate, confined to white matter.

- periventricular: elongated, irregular ellipsoids touching a ventricle wall, their long axis either
  along the wall's normal (like Dawson's fingers) or along the wall (caps and bands); 10-24 mm long;
- deep white matter: rounder blobs of 2-5 mm radius away from the ventricles;
- punctate: spheres of 0.9-1.8 mm radius (a few voxels at the default spacing).
Each lesion gets its own contrast: FLAIR x1.5-2.0 and T1 x0.55-0.85 relative to normal white matter
(punctate: FLAIR x1.6-2.1), in the range reported for white-matter hyperintensities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lesionseg.phantom.anatomy import Anatomy
from lesionseg.phantom.fields import filtered_noise


@dataclass
class LesionMaps:
    """Lesion mask and the per-voxel multiplicative contrast (1 outside lesions) for FLAIR and T1."""

    mask: np.ndarray  # (X, Y, Z) bool
    flair_factor: np.ndarray  # (X, Y, Z) float32
    t1_factor: np.ndarray  # (X, Y, Z) float32
    count: int  # lesions drawn (touching lesions may merge into one connected component)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-9)


class _Painter:
    """Adds blobs to the lesion maps, each confined to white matter, within a small box for speed."""

    def __init__(self, anatomy: Anatomy, rng: np.random.Generator) -> None:
        self.a = anatomy
        self.rng = rng
        self.spacing = np.asarray(anatomy.spacing)
        self.shape = anatomy.tissue.shape
        midline = np.abs(anatomy.coords[0] - anatomy.centre[0]) < 4.0 * anatomy.scale  # septum, fornix
        self.allowed = anatomy.wm & ~midline
        self.edge_noise = filtered_noise(rng, self.shape, anatomy.spacing, 1.5)
        self.mask = np.zeros(self.shape, dtype=bool)
        self.flair = np.ones(self.shape, dtype=np.float32)
        self.t1 = np.ones(self.shape, dtype=np.float32)
        self.count = 0

    def blob(
        self,
        centre_vox: np.ndarray,
        axis: np.ndarray,
        semi: tuple[float, float],
        roughness: float,
        flair: float,
        t1: float,
        min_voxels: int,
    ) -> bool:
        """Paint an ellipsoid of revolution (semi-axes along ``axis`` and across it, in mm)."""
        reach = np.ceil(max(semi) * 1.5 / self.spacing).astype(int) + 1
        lo = np.maximum(np.round(centre_vox).astype(int) - reach, 0)
        hi = np.minimum(np.round(centre_vox).astype(int) + reach + 1, self.shape)
        if np.any(hi <= lo):
            return False
        box = tuple(slice(int(l_), int(h_)) for l_, h_ in zip(lo, hi, strict=True))
        offsets = [
            (np.arange(l_, h_) - c) * s for l_, h_, c, s in zip(lo, hi, centre_vox, self.spacing, strict=True)
        ]
        px, py, pz = np.meshgrid(*offsets, indexing="ij")
        along = px * axis[0] + py * axis[1] + pz * axis[2]
        across2 = np.maximum(px**2 + py**2 + pz**2 - along**2, 0)
        r = np.sqrt((along / semi[0]) ** 2 + across2 / semi[1] ** 2)
        shape = (r < 1.0 + roughness * self.edge_noise[box]) & self.allowed[box] & ~self.mask[box]
        if np.count_nonzero(shape) < min_voxels:
            return False
        texture = 1.0 + 0.04 * self.edge_noise[box][shape]
        self.mask[box] |= shape
        self.flair[box][shape] = flair * texture
        self.t1[box][shape] = t1 / texture
        self.count += 1
        return True


def make_lesions(anatomy: Anatomy, rng: np.random.Generator) -> LesionMaps:
    """Draw 3-10 periventricular, 0-4 deep and 2-11 punctate lesions (at least one always lands)."""
    p = _Painter(anatomy, rng)
    s = anatomy.scale
    spacing = np.asarray(anatomy.spacing)
    vent = anatomy.ventricles
    wall = ndimage.binary_dilation(vent, iterations=2) & anatomy.wm
    smooth_vent = ndimage.gaussian_filter(vent.astype(np.float32), 1.5 / spacing)
    normal_field = np.stack(np.gradient(smooth_vent, *spacing))  # points into the ventricle
    wall_idx = np.argwhere(wall)
    deep_wm = ndimage.distance_transform_edt(anatomy.wm, sampling=anatomy.spacing) > 2.5 * s
    deep_wm &= ~ndimage.binary_dilation(vent, iterations=max(1, int(6 * s / spacing.min())))
    deep_idx = np.argwhere(deep_wm)
    wm_idx = np.argwhere(anatomy.wm)

    n_pv, n_deep, n_punct = rng.integers(3, 11), rng.integers(0, 5), rng.integers(2, 12)
    for _ in range(n_pv * 4):  # a few attempts per lesion
        if p.count >= n_pv or len(wall_idx) == 0:
            break
        w = wall_idx[rng.integers(len(wall_idx))]
        outward = -_unit(normal_field[(slice(None), *w)])
        long, short = rng.uniform(5, 12) * s, rng.uniform(2.5, 5) * s
        if rng.random() < 0.5:  # finger: long axis along the normal
            axis, shift = outward, 0.6 * long
        else:  # cap / band: long axis along the wall
            axis, shift = _unit(np.cross(outward, rng.normal(size=3))), 0.6 * short
        centre = w + outward * shift / spacing
        p.blob(centre, axis, (long, short), 0.25, rng.uniform(1.5, 2.0), rng.uniform(0.55, 0.85), 4)
    target = p.count + n_deep
    for _ in range(n_deep * 4):
        if p.count >= target or len(deep_idx) == 0:
            break
        centre = deep_idx[rng.integers(len(deep_idx))].astype(float)
        radius = rng.uniform(2, 5) * s
        axis = _unit(rng.normal(size=3))
        p.blob(
            centre,
            axis,
            (radius * rng.uniform(1, 1.6), radius),
            0.2,
            rng.uniform(1.5, 2.0),
            rng.uniform(0.55, 0.85),
            3,
        )
    target = p.count + n_punct
    for _ in range(n_punct * 6):
        if p.count >= target:
            break
        pool = deep_idx if len(deep_idx) else wm_idx
        centre = pool[rng.integers(len(pool))].astype(float)
        radius = max(rng.uniform(0.9, 1.8) * s, 0.75 * spacing.min())
        p.blob(
            centre,
            np.array([0.0, 0.0, 1.0]),
            (radius, radius),
            0.0,
            rng.uniform(1.6, 2.1),
            rng.uniform(0.55, 0.85),
            2,
        )
    if p.count == 0:  # very small grids: one lesion in the middle of the white matter
        centre = wm_idx[len(wm_idx) // 2].astype(float)
        p.blob(centre, np.array([0.0, 0.0, 1.0]), (3 * spacing.max(), 3 * spacing.max()), 0.0, 1.8, 0.7, 1)
    return LesionMaps(p.mask, p.flair, p.t1, p.count)
