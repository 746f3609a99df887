"""One row per lesion of a mask: id, volume, centroid (voxels and scanner RAS mm), bounding box,
probability and members' spread when given, and a McDonald-style location.

Lesions are the connected components of :func:`lesionseg.metrics.lesions.label_lesions` (full
connectivity, as the lesion-wise metrics count them), numbered 1..N in scipy's scan order; the labelled
volume returned beside the rows carries the same ids. Locations (rules in ``docs/lesion_table.md``), in
this order of precedence:

1. ``infratentorial``: the lesion's centroid lies in the posterior fossa;
2. ``periventricular``: some lesion voxel is within ``margin_mm`` (3 mm) of a lateral ventricle (or in it);
3. ``juxtacortical``: some lesion voxel is within ``margin_mm`` of the cortex (or in it);
4. ``deep_white_matter``: none of these;

``unknown`` for every lesion when the anatomy is not given (:class:`LesionAnatomy` is None or misses a
structure). Distances are Euclidean between voxel centres, in mm from the affine's spacing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lesionseg.metrics.lesions import label_lesions

LOCATIONS = ("infratentorial", "periventricular", "juxtacortical", "deep_white_matter", "unknown")
MARGIN_MM = 3.0
COLUMNS = (
    "id",
    "volume_mm3",
    "voxels",
    "centroid_i",
    "centroid_j",
    "centroid_k",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
    "bbox_i_min",
    "bbox_i_max",
    "bbox_j_min",
    "bbox_j_max",
    "bbox_k_min",
    "bbox_k_max",
    "mean_probability",
    "max_probability",
    "member_spread",
    "location",
)


@dataclass(frozen=True)
class LesionAnatomy:
    """Boolean (X, Y, Z) maps on the mask's grid: lateral ventricles, cortex and posterior fossa."""

    ventricles: np.ndarray
    cortex: np.ndarray
    posterior_fossa: np.ndarray


@dataclass(frozen=True)
class LesionTable:
    """``rows`` (one dict per lesion with the keys ``columns``: :data:`COLUMNS`, the probability and spread
    ones only when those maps were given) and ``labels``, the int32 labelled volume whose value k is the
    lesion of id k."""

    rows: list[dict]
    labels: np.ndarray
    columns: tuple[str, ...]


def lesion_table(
    mask: np.ndarray,
    affine: np.ndarray,
    probability: np.ndarray | None = None,
    spread: np.ndarray | None = None,
    anatomy: LesionAnatomy | None = None,
    margin_mm: float = MARGIN_MM,
) -> LesionTable:
    """The lesions of a 3D mask (non-zero = lesion) on a grid with voxel -> RAS mm ``affine`` (4x4).

    ``probability`` and ``spread`` (the ensemble members' standard deviation) are (X, Y, Z) maps on the
    same grid; ``anatomy`` gives the locations (else ``unknown``)."""
    mask = np.asarray(mask) != 0
    if mask.ndim != 3:
        raise ValueError(f"a lesion table needs a 3D mask, got shape {mask.shape}")
    for name, array in (("probability", probability), ("spread", spread)):
        if array is not None and np.shape(array) != mask.shape:
            raise ValueError(f"{name} map shape {np.shape(array)} differs from the mask's {mask.shape}")
    labels, count = label_lesions(mask)
    labels = labels.astype(np.int32)
    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    ids = np.arange(1, count + 1)
    voxels = ndimage.sum_labels(mask, labels, ids) if count else np.zeros(0)
    centroids = np.asarray(ndimage.center_of_mass(mask, labels, ids), dtype=np.float64).reshape(-1, 3)
    world = (np.c_[centroids, np.ones(count)] @ np.asarray(affine, dtype=np.float64).T)[:, :3]
    boxes = ndimage.find_objects(labels, count)
    locations = lesion_locations(labels, count, spacing, anatomy, centroids, margin_mm)
    rows = []
    for n, lesion_id in enumerate(ids):
        box = boxes[n]
        row = {
            "id": int(lesion_id),
            "volume_mm3": float(voxels[n] * np.prod(spacing)),
            "voxels": int(voxels[n]),
            **{f"centroid_{a}": float(c) for a, c in zip("ijk", centroids[n], strict=True)},
            **{f"centroid_{a}_mm": float(c) for a, c in zip("xyz", world[n], strict=True)},
        }
        for axis, sl in zip("ijk", box, strict=True):
            row[f"bbox_{axis}_min"], row[f"bbox_{axis}_max"] = int(sl.start), int(sl.stop - 1)
        members = labels[box] == lesion_id
        if probability is not None:
            values = np.asarray(probability)[box][members]
            row["mean_probability"] = float(values.mean())
            row["max_probability"] = float(values.max())
        if spread is not None:
            row["member_spread"] = float(np.asarray(spread)[box][members].mean())
        row["location"] = locations[n]
        rows.append(row)
    skip = set()
    if probability is None:
        skip |= {"mean_probability", "max_probability"}
    if spread is None:
        skip.add("member_spread")
    return LesionTable(rows, labels, tuple(c for c in COLUMNS if c not in skip))


def lesion_locations(
    labels: np.ndarray,
    count: int,
    spacing: np.ndarray,
    anatomy: LesionAnatomy | None,
    centroids: np.ndarray,
    margin_mm: float = MARGIN_MM,
) -> list[str]:
    """The location class of lesions 1..count of ``labels`` (rules and precedence: module docstring)."""
    if count == 0:
        return []
    if anatomy is None or not all(
        np.any(m) for m in (anatomy.ventricles, anatomy.cortex, anatomy.posterior_fossa)
    ):
        return ["unknown"] * count
    for name in ("ventricles", "cortex", "posterior_fossa"):
        if np.shape(getattr(anatomy, name)) != labels.shape:
            raise ValueError(f"anatomy.{name} is not on the mask's grid")
    near_ventricle = _near(labels, count, anatomy.ventricles, spacing, margin_mm)
    near_cortex = _near(labels, count, anatomy.cortex, spacing, margin_mm)
    index = np.clip(np.rint(centroids).astype(int), 0, np.array(labels.shape) - 1)
    in_fossa = np.asarray(anatomy.posterior_fossa, dtype=bool)[tuple(index.T)]
    out = []
    for n in range(count):
        if in_fossa[n]:
            out.append("infratentorial")
        elif near_ventricle[n]:
            out.append("periventricular")
        elif near_cortex[n]:
            out.append("juxtacortical")
        else:
            out.append("deep_white_matter")
    return out


def _near(labels: np.ndarray, count: int, structure: np.ndarray, spacing, margin_mm: float) -> np.ndarray:
    """Per lesion: does ``structure`` hold a voxel within ``margin_mm`` of one of the lesion's voxels (0 mm
    when they overlap)? Each distance is computed in the lesion's bounding box grown by the margin."""
    structure = np.asarray(structure, dtype=bool)
    pad = np.ceil(margin_mm / np.asarray(spacing, dtype=np.float64)).astype(int) + 1
    out = np.zeros(count, dtype=bool)
    for n, box in enumerate(ndimage.find_objects(labels, count)):
        grown = tuple(
            slice(max(0, s.start - p), min(size, s.stop + p))
            for s, p, size in zip(box, pad, labels.shape, strict=True)
        )
        near = structure[grown]
        if not near.any():
            continue
        distance = ndimage.distance_transform_edt(labels[grown] != n + 1, sampling=spacing)
        out[n] = bool(np.any(distance[near] <= margin_mm + 1e-6))
    return out
