"""More lesions than the data has: lesion transplant (CarveMix-style) and synthetic small lesions, on slices.

Both act on one training sample before the spatial and intensity augmentations, so a pasted lesion is
flipped, rotated and re-contrasted with the rest of the slice:

- ``carve_lesion`` / ``paste_lesion``: a real lesion of another subject with a margin of its surroundings
  (CarveMix, Zhang et al., MICCAI 2021, cuts a lesion with a distance-based margin and pastes it into another
  scan; here on the 2.5D sample, so the donor's slices t-1, t, t+1 travel together). The paste is matched
  in intensity: the donor's values keep their offset from the donor's normal tissue around the lesion and
  take the recipient's normal tissue around the new site as their base, so lesion contrast survives the
  move between sites. The new site is inside the recipient's brain, away from its edge (white matter, not
  cortex) and away from its own lesions.
- ``add_synthetic_lesions``: a few small hyperintense ellipses (radius 1-2.5 pixels: under 100 mm^3 at
  1 mm) on the FLAIR channels, half as bright on the neighbouring slices (partial volume), labelled where
  they are at least half their peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MARGIN_PX = 2.0  # the carved surroundings: the weight falls from 1 at the lesion to 0 over this distance
RING_PX = 3.0  # beyond the margin: the normal tissue whose median is the intensity base
EDGE_PX = 6  # a pasted lesion stays this far inside the brain mask (off the cortex)
SYNTHETIC_COUNT = (1, 3)
SYNTHETIC_RADIUS_PX = (1.0, 2.5)
SYNTHETIC_CONTRAST = (1.5, 3.0)  # added to the FLAIR, in z-score units (the preprocessing z-scores the brain)


@dataclass(frozen=True)
class LesionPiece:
    """A carved lesion: the donor's sample cropped to the carve box, the lesion's class indices, the blend
    weight (1 on the lesion, 0 beyond the margin) and the donor's normal-tissue median per channel."""

    image: np.ndarray  # (channels, h, w)
    label: np.ndarray  # (h, w) class indices; > 0 on the lesion
    weight: np.ndarray  # (h, w) in [0, 1]
    base: np.ndarray  # (channels,)


def carve_lesion(image: np.ndarray, label: np.ndarray, brain: np.ndarray, lesion: np.ndarray) -> LesionPiece:
    """Cut the connected lesion ``lesion`` (a bool (H, W) mask) out of the sample ``image`` (C, H, W) with
    ``label`` (H, W) and ``brain`` (H, W), with its margin."""
    distance = ndimage.distance_transform_edt(~lesion)
    weight = np.clip(1.0 - distance / (MARGIN_PX + 1.0), 0.0, 1.0)
    weight[(label > 0) & ~lesion] = 0.0  # another lesion near this one stays behind (it has no label here)
    ring = (distance > MARGIN_PX) & (distance <= MARGIN_PX + RING_PX) & brain & (label == 0)
    if not ring.any():
        ring = brain & (label == 0)
    rows, cols = np.nonzero(weight > 0)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    return LesionPiece(
        image=image[(slice(None), *box)].copy(),
        label=np.where(lesion[box], label[box], 0),
        weight=weight[box],
        base=_channel_medians(image, ring),
    )


def paste_lesion(
    image: np.ndarray,
    label: np.ndarray,
    brain: np.ndarray,
    piece: LesionPiece,
    rng: np.random.Generator,
    tries: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """``piece`` pasted at a random site of ``brain`` (at least ``EDGE_PX`` inside it, not touching a lesion
    of ``label``), matched to the tissue there; the inputs unchanged when no site fits in ``tries``."""
    h, w = piece.label.shape
    inner = ndimage.binary_erosion(brain, iterations=EDGE_PX) & ~ndimage.binary_dilation(
        label > 0, iterations=2
    )
    centres = np.argwhere(inner)
    core = piece.label > 0
    for _ in range(tries if len(centres) else 0):
        r, c = centres[rng.integers(len(centres))] - np.array([h // 2, w // 2])
        if r < 0 or c < 0 or r + h > label.shape[0] or c + w > label.shape[1]:
            continue
        box = (slice(r, r + h), slice(c, c + w))
        if not inner[box][core].all():
            continue
        ring = brain[box] & (piece.weight == 0)
        base = _channel_medians(image[(slice(None), *box)], ring if ring.any() else brain[box])
        moved = piece.image - piece.base[:, None, None] + base[:, None, None]
        out_image, out_label = image.copy(), label.copy()
        region = out_image[(slice(None), *box)]
        out_image[(slice(None), *box)] = piece.weight * moved + (1.0 - piece.weight) * region
        out_label[box] = np.where(core, piece.label, out_label[box])
        return out_image, out_label
    return image, label


def add_synthetic_lesions(
    image: np.ndarray, label: np.ndarray, brain: np.ndarray, modalities: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``SYNTHETIC_COUNT`` small bright ellipses added to the FLAIR (the first modality) of a sample laid out
    [t-1 modalities, t modalities, t+1 modalities] (or one slice's modalities), labelled 1 where their
    weight reaches 0.5 on slice t; the other modalities are left alone."""
    context = image.shape[0] // modalities
    centre = context // 2
    inner = ndimage.binary_erosion(brain, iterations=EDGE_PX) & (label == 0)
    sites = np.argwhere(inner)
    out_image, out_label = image.copy(), label.copy()
    rows, cols = np.indices(label.shape)
    for _ in range(int(rng.integers(SYNTHETIC_COUNT[0], SYNTHETIC_COUNT[1] + 1)) if len(sites) else 0):
        r, c = sites[rng.integers(len(sites))]
        radii = rng.uniform(*SYNTHETIC_RADIUS_PX, size=2)
        angle = rng.uniform(0, np.pi)
        dr, dc = rows - r, cols - c
        u = (dr * np.cos(angle) + dc * np.sin(angle)) / radii[0]
        v = (-dr * np.sin(angle) + dc * np.cos(angle)) / radii[1]
        weight = np.clip(1.5 - np.hypot(u, v), 0.0, 1.0)  # 1 inside, 0 half a radius outside
        contrast = rng.uniform(*SYNTHETIC_CONTRAST)
        for t in range(context):
            scale = 1.0 if t == centre else 0.5
            out_image[t * modalities] += (contrast * scale * weight).astype(out_image.dtype)
        out_label[(weight >= 0.5) & (out_label == 0)] = 1
    return out_image, out_label


def _channel_medians(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    return np.asarray([np.median(channel[where]) for channel in image], dtype=np.float32)
