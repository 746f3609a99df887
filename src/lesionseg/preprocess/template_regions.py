"""Lateral ventricles, cortex and posterior fossa on the MNI152 2009 template (``io.atlas``), in MNI mm.

Derived from the template's own maps; the coordinate limits are read off the template's sagittal, coronal
and axial slices (``docs/lesion_table.md`` states them and what they leave out):

- brain: the T1's non-zero voxels (the template is skull-stripped), closed and hole-filled;
- lateral ventricles: CSF-like voxels (grey + white matter probability < 0.5) inside the brain, deeper
  than 12 mm below its surface, opened (6-neighbourhood); the connected piece that holds the most voxels
  in the central box |x| <= 30, -45 <= y <= 30, 0 <= z <= 35 mm (the lateral ventricles; the third
  ventricle's thin midline slit joins it);
- posterior fossa (cerebellum and brainstem below the tentorium): brain voxels with y < -40 mm below the
  tent-shaped plane z = -8 - 0.35 |x| - 0.15 max(0, -60 - y), plus the brainstem box |x| <= 14,
  -45 <= y < -12, z < -12;
- cortex: grey matter probability > 0.5 outside the posterior fossa, outside the deep grey-matter box
  (thalamus, basal ganglia: |x| <= 30, -36 <= y <= 28, -12 <= z <= 22) and more than 4 mm from the
  lateral ventricles (the template's grey-matter map runs along the ventricle walls).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from lesionseg.io.atlas import MniTemplate, load_mni_template


@dataclass(frozen=True)
class TemplateRegions:
    """Boolean maps on the template grid (``affine``: voxel -> MNI RAS mm)."""

    ventricles: np.ndarray
    cortex: np.ndarray
    posterior_fossa: np.ndarray
    brain: np.ndarray
    affine: np.ndarray


def world_grid(shape: tuple[int, ...], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, z mm of every voxel centre (full (X, Y, Z) arrays)."""
    index = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = affine[:3, :3].astype(np.float32) @ index + affine[:3, 3:4].astype(np.float32)
    return tuple(axis.reshape(shape) for axis in world)  # type: ignore[return-value]


def posterior_fossa_mm(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """True below the tentorium (MNI mm), brain or not: the cerebellar region and the brainstem box."""
    ax = np.abs(x)
    tent = -8.0 - 0.35 * ax - 0.15 * np.clip(-60.0 - y, 0.0, None)
    cerebellum = (y < -40.0) & (z < tent)
    brainstem = (ax <= 14.0) & (y >= -45.0) & (y < -12.0) & (z < -12.0)
    return cerebellum | brainstem


def regions_from_template(template: MniTemplate) -> TemplateRegions:
    """The three structures (and the brain) on the template's grid (rules: module docstring)."""
    affine = template.t1.affine
    shape = template.t1.shape
    spacing = template.t1.spacing
    x, y, z = world_grid(shape, affine)
    brain = ndimage.binary_fill_holes(template.t1.array > 0)
    tissue = (template.gm.array + template.wm.array) >= 0.5
    csf = ndimage.binary_opening(brain & ~tissue & (_depth(brain, spacing) > 12.0), _CROSS)
    pieces, count = ndimage.label(csf)
    central = (np.abs(x) <= 30) & (y >= -45) & (y <= 30) & (z >= 0) & (z <= 35)
    votes = np.bincount(pieces[central & csf], minlength=count + 1)
    votes[0] = 0
    ventricles = pieces == int(np.argmax(votes)) if count else np.zeros(shape, dtype=bool)
    fossa = posterior_fossa_mm(x, y, z) & brain
    deep_box = (np.abs(x) <= 30) & (y >= -36) & (y <= 28) & (z >= -12) & (z <= 22)
    cortex = (template.gm.array > 0.5) & ~fossa & ~deep_box & ~_within(ventricles, spacing, 4.0)
    return TemplateRegions(ventricles, cortex, fossa, brain, affine.copy())


_CROSS = ndimage.generate_binary_structure(3, 1)


def _depth(brain: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Distance (mm) below the brain's surface, computed on every second voxel (2 mm on the template:
    the 12 mm rule needs no finer) and repeated back onto the full grid."""
    coarse = ndimage.distance_transform_edt(brain[::2, ::2, ::2], sampling=np.multiply(spacing, 2))
    full = coarse.repeat(2, 0).repeat(2, 1).repeat(2, 2)
    return full[: brain.shape[0], : brain.shape[1], : brain.shape[2]]


def _within(mask: np.ndarray, spacing: tuple[float, ...], mm: float) -> np.ndarray:
    """Voxels within ``mm`` of ``mask``, the distance computed in the mask's bounding box + ``mm`` only."""
    out = np.zeros(mask.shape, dtype=bool)
    if not mask.any():
        return out
    pad = np.ceil(mm / np.asarray(spacing)).astype(int) + 1
    box = tuple(
        slice(max(0, s.start - p), min(n, s.stop + p))
        for s, p, n in zip(ndimage.find_objects(mask.astype(np.uint8))[0], pad, mask.shape, strict=True)
    )
    out[box] = ndimage.distance_transform_edt(~mask[box], sampling=spacing) <= mm
    return out


@lru_cache(maxsize=1)
def mni_regions() -> TemplateRegions | None:
    """The regions of the template that nilearn ships (computed once per process), or None without it."""
    template = load_mni_template()
    return None if template is None else regions_from_template(template)
