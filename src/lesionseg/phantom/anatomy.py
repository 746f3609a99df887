"""A procedural head: tissue classes on a voxel grid, built from deformed ellipsoids and distance maps.

Coordinates are millimetres on the voxel grid, centred: x = left-right, y = posterior -> anterior,
z = inferior -> superior (the affine that places the grid in the scanner is added later). Sizes are those
of a small adult brain (about 110 x 130 x 95 mm); the whole head is shrunk when the field of view is too
small to hold it.

Layers, from the inside out: lateral and third ventricles (CSF); deep grey matter (thalamus, lentiform
nucleus); white matter; a cortical grey-matter ribbon that follows sulci (the zero level set of a
band-pass random field, only near the surface) and the interhemispheric fissure; subarachnoid CSF; skull;
scalp; air.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lesionseg.phantom.fields import filtered_noise, fourier_field, grid_mm

# Tissue classes of the label map `Anatomy.tissue`.
AIR, SCALP, SKULL, CSF, GM, DEEP_GM, WM = range(7)
TISSUE_NAMES = ("air", "scalp", "skull", "csf", "gm", "deep_gm", "wm")

BRAIN_SEMI_AXES_MM = (54.0, 64.0, 46.0)  # x (left-right), y (antero-posterior), z (cranio-caudal)
SHELLS_MM = (2.0, 5.0, 4.0)  # subarachnoid CSF, skull, scalp
HEAD_MARGIN_MM = 3.0  # kept free between the scalp and the edge of the field of view
# Lateral ventricle centreline, front to back: (t, y mm, z mm, half-width x, half-height z), before the
# per-case size factor v; x = +-(1.2 + v * half-width + 9 t^2) mm from the midline, so a septum
# always separates the two sides. Consecutive ellipsoids overlap.
VENTRICLE_PATH = [
    (0.00, 26, 6, 3.5, 6.5),
    (0.10, 19, 10, 4.5, 7.0),
    (0.20, 12, 13, 4.0, 5.5),
    (0.30, 5, 15, 3.5, 4.5),
    (0.40, -2, 16, 3.5, 4.0),
    (0.50, -9, 16, 3.5, 4.0),
    (0.60, -16, 15, 4.0, 4.5),
    (0.70, -22, 12, 5.0, 6.0),
    (0.80, -27, 8, 5.5, 6.0),
    (0.90, -32, 5, 4.0, 4.5),
    (1.00, -36, 3, 2.5, 3.0),
]


@dataclass
class Anatomy:
    """Tissue map and the geometry that lesion placement needs."""

    tissue: np.ndarray  # (X, Y, Z) uint8 tissue class
    brain: np.ndarray  # (X, Y, Z) bool: intracranial brain (tissue, sulci, ventricles)
    ventricles: np.ndarray  # (X, Y, Z) bool
    coords: tuple[np.ndarray, np.ndarray, np.ndarray]  # broadcastable mm coordinates
    spacing: tuple[float, float, float]
    scale: float  # size factor applied to the default anatomy (FOV fit x per-case size)
    centre: tuple[float, float, float]  # brain centre, mm

    @property
    def wm(self) -> np.ndarray:
        return self.tissue == WM


def fov_scale(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """1, or less when the default head (brain + shells + margin, with 5 % deformation) does not fit."""
    extent = sum(SHELLS_MM) + HEAD_MARGIN_MM
    fits = [
        (n * s / 2) / (a * 1.1 + extent) for n, s, a in zip(shape, spacing, BRAIN_SEMI_AXES_MM, strict=True)
    ]
    return min(1.0, *fits)


def _ellipsoid_radius(coords, centre, semi_axes) -> np.ndarray:
    """Normalised ellipsoid radius sqrt(sum(((p - c) / a)^2)): < 1 inside."""
    x, y, z = coords
    return np.sqrt(
        ((x - centre[0]) / semi_axes[0]) ** 2
        + ((y - centre[1]) / semi_axes[1]) ** 2
        + ((z - centre[2]) / semi_axes[2]) ** 2
    )


def make_anatomy(rng: np.random.Generator, shape: Sequence[int], spacing: Sequence[float]) -> Anatomy:
    """Draw one head. Every random choice comes from ``rng`` (so a seed fixes the head)."""
    shape = tuple(int(n) for n in shape)
    spacing = tuple(float(s) for s in spacing)
    coords = grid_mm(shape, spacing)
    x, y, z = coords
    s = fov_scale(shape, spacing) * rng.uniform(0.93, 1.03)
    centre = rng.uniform(-3, 3, size=3) * s

    # Brain: an egg-shaped ellipsoid (narrower in front), its surface pushed in and out by a smooth field.
    a, b, c = (ax * s for ax in BRAIN_SEMI_AXES_MM)
    taper = 1.0 - 0.08 * np.clip((y - centre[1]) / b, -1, 1)
    r = _ellipsoid_radius(coords, centre, (a * taper, b, c))
    brain = r < 1.0 + 0.045 * fourier_field(rng, coords, 70 * s, 10)
    brain = ndimage.binary_fill_holes(brain)

    # Ventricles: per hemisphere a C-shaped tube (frontal horn, body, atrium, occipital horn), plus a thin
    # third ventricle; computed in a box around the centre only.
    v = rng.uniform(0.8, 1.45)  # ventricle size (enlarged in many patients)
    parts = [((0.0, -2 * s, -2 * s), (1.3 * s, 9 * s, 7 * s))]  # third ventricle
    for h in (-1.0, 1.0):
        for t, cy, cz, rx, rz in VENTRICLE_PATH:
            centre_t = (h * (1.2 + rx * v + 9 * t**2) * s, cy * s, cz * s)  # septum >= 2.4 mm
            parts.append((centre_t, (rx * v * s, 7 * s, rz * v * s)))
    box = tuple(
        slice(max(0, int(n / 2 - half / sp)), min(n, int(n / 2 + half / sp) + 2))
        for n, sp, half in zip(shape, spacing, (40 * s, 55 * s, 40 * s), strict=True)
    )
    box_coords = (x[box[0]], y[:, box[1]], z[:, :, box[2]])
    vent_r = np.min([_ellipsoid_radius(box_coords, np.add(centre, p), q) for p, q in parts], axis=0)
    ventricles = np.zeros(shape, dtype=bool)
    ventricles[box] = vent_r < 1.0 + 0.08 * fourier_field(rng, box_coords, 25 * s, 6)
    ventricles &= brain

    # Deep grey matter: thalamus and lentiform nucleus, each side.
    deep = np.zeros(shape, dtype=bool)
    for h in (-1.0, 1.0):
        for p, q in (
            ((h * 10 * s, -10 * s, 0.0), (7 * s, 11 * s, 8 * s)),
            ((h * 21 * s, 6 * s, 2 * s), (5 * s, 12 * s, 9 * s)),
        ):
            deep |= _ellipsoid_radius(coords, np.add(centre, p), q) < 1.0

    # Sulci (zero level set of a band-pass field, only within a few mm of the surface) and the fissure.
    depth_in = ndimage.distance_transform_edt(brain, sampling=spacing)
    sulcus_field = filtered_noise(rng, shape, spacing, 4.0 * s)
    sulcus_depth = 12 * s * (1 + 0.3 * fourier_field(rng, coords, 40 * s, 6))
    sulci = (np.abs(sulcus_field) < 0.15) & (depth_in < sulcus_depth) & brain
    # keep only sulci that open onto the brain surface
    pieces, _ = ndimage.label(sulci)
    open_ids = np.unique(pieces[sulci & (depth_in <= 1.5 * max(spacing))])
    sulci = np.isin(pieces, open_ids[open_ids > 0])
    fissure = (np.abs(x - centre[0]) < 1.0 * s + spacing[0] / 2) & (
        (z - centre[2] > 22 * s) | (np.abs(y - centre[1]) > 42 * s)
    )
    sulci |= fissure & brain
    tissue_region = brain & ~sulci & ~ventricles

    # Cortex: grey matter within a variable thickness of any CSF (outer surface, sulci, fissure).
    depth_csf = ndimage.distance_transform_edt(tissue_region, sampling=spacing)
    thickness = 3.0 * s * (1 + 0.25 * fourier_field(rng, coords, 30 * s, 6))
    gm = tissue_region & (depth_csf < np.maximum(thickness, 1.01 * min(spacing)))

    # Shells outside the brain: CSF, skull (variable thickness), scalp.
    out = ndimage.distance_transform_edt(~brain, sampling=spacing)
    csf_t, skull_t, scalp_t = (t * s for t in SHELLS_MM)
    skull_t = skull_t * (1 + 0.2 * fourier_field(rng, coords, 50 * s, 6))
    tissue = np.full(shape, AIR, dtype=np.uint8)
    tissue[out <= csf_t + skull_t + scalp_t] = SCALP
    tissue[out <= csf_t + skull_t] = SKULL
    tissue[out <= csf_t] = CSF
    tissue[brain] = WM
    tissue[gm] = GM
    tissue[deep & tissue_region & ~gm] = DEEP_GM
    tissue[sulci | ventricles] = CSF
    return Anatomy(tissue, brain, ventricles, coords, spacing, float(s), tuple(float(c) for c in centre))
