"""Grid steps and their inverses: reorientation, resampling, crop, in-plane resize, pad.

Every function works on the last three axes, so a (X, Y, Z) map and a (C, X, Y, Z) stack go through the
same code. ``kind`` chooses the interpolation where there is any: "image" linear, "label" nearest.
Reorientation, crop and pad are exact (index shuffles); resampling and resize interpolate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from nibabel import orientations

from lesionseg.preprocess.record import Box3, GridScaling, PreprocessRecord, Shape3

Kind = Literal["image", "label"]
CANONICAL = orientations.axcodes2ornt(("R", "A", "S"))


# -- reorientation ------------------------------------------------------------------------------------------
def canonical_transform(affine: np.ndarray) -> np.ndarray:
    """The nibabel orientation transform (3, 2) that takes a grid with ``affine`` to closest-canonical RAS."""
    return orientations.ornt_transform(orientations.io_orientation(affine), CANONICAL).astype(int)


def apply_orientation(array: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """Flip and permute the last three axes as nibabel's ``apply_orientation`` does for the first three."""
    lead = array.ndim - 3
    for axis, flip in enumerate(np.asarray(ornt)[:, 1]):
        if flip == -1:
            array = np.flip(array, axis=lead + axis)
    order = list(range(lead)) + [lead + int(a) for a in np.argsort(np.asarray(ornt)[:, 0])]
    return array.transpose(order)


def orientation_matrix(ornt: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """4x4 map from reoriented voxel indices to original voxel indices (``shape`` is the original's)."""
    return orientations.inv_ornt_aff(ornt, shape)


# -- resampling (index space; SimpleITK) --------------------------------------------------------------------
def resample(
    array: np.ndarray,
    out_shape: Sequence[int],
    scale_out: Sequence[float],
    origin_out: Sequence[float],
    kind: Kind,
    scale_in: Sequence[float] = (1.0, 1.0, 1.0),
    origin_in: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Resample the last three axes onto another axis-aligned grid of index space.

    Each grid is described by where its voxel (0, 0, 0) lies (``origin``) and its step (``scale``), both in
    the units of a common index space. Linear interpolation for images, nearest neighbour for labels;
    points outside the input get 0. Uses SimpleITK's Resample (multi-threaded).
    """
    import SimpleITK as sitk

    if array.dtype == bool:
        return resample(array.view(np.uint8), out_shape, scale_out, origin_out, kind, scale_in, origin_in) > 0
    if array.ndim == 4:
        return np.stack(
            [resample(a, out_shape, scale_out, origin_out, kind, scale_in, origin_in) for a in array]
        )
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in scale_in])
    image.SetOrigin([float(o) for o in origin_in])
    interpolator = sitk.sitkLinear if kind == "image" else sitk.sitkNearestNeighbor
    out = sitk.Resample(
        image,
        [int(s) for s in out_shape],
        sitk.Transform(),
        interpolator,
        [float(o) for o in origin_out],
        [float(s) for s in scale_out],
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        0.0,
        image.GetPixelID(),
    )
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0)


def scale_forward(array: np.ndarray, scaling: GridScaling, kind: Kind) -> np.ndarray:
    """From the ``in_shape`` grid to the ``out_shape`` grid of ``scaling``."""
    return resample(array, scaling.out_shape, scaling.scale, scaling.offset, kind)


def scale_backward(array: np.ndarray, scaling: GridScaling, kind: Kind) -> np.ndarray:
    """From the ``out_shape`` grid back to the ``in_shape`` grid of ``scaling``."""
    return resample(array, scaling.in_shape, (1, 1, 1), (0, 0, 0), kind, scaling.scale, scaling.offset)


def spacing_scaling(shape: Shape3, spacing: Sequence[float], target: Sequence[float]) -> GridScaling | None:
    """The resampling from ``spacing`` to ``target`` mm; None when they already agree (within 1e-6)."""
    scale = tuple(float(t) / float(s) for t, s in zip(target, spacing, strict=True))
    if np.allclose(scale, 1.0, rtol=0, atol=1e-6):
        return None
    out = tuple(max(1, round(n / f)) for n, f in zip(shape, scale, strict=True))
    return GridScaling(tuple(shape), out, scale)  # type: ignore[arg-type]


# -- crop, resize, pad --------------------------------------------------------------------------------------
def crop_box(mask: np.ndarray, margin: Sequence[int]) -> Box3:
    """[lo, hi) per axis: the bounding box of ``mask`` grown by ``margin`` voxels, clipped to the grid."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        lo = max(0, int(hits[0]) - int(margin[axis]))
        hi = min(mask.shape[axis], int(hits[-1]) + 1 + int(margin[axis]))
        box.append((lo, hi))
    return tuple(box)  # type: ignore[return-value]


def inplane_scaling(shape: Shape3, target: Sequence[int] | None) -> GridScaling | None:
    """The in-plane shrink (one factor for x and y) that fits ``shape`` into ``target``; None if it fits."""
    if target is None:
        return None
    factor = max(shape[0] / target[0], shape[1] / target[1])
    if factor <= 1.0:
        return None
    out = (
        min(int(target[0]), max(1, round(shape[0] / factor))),
        min(int(target[1]), max(1, round(shape[1] / factor))),
    )
    scale = (shape[0] / out[0], shape[1] / out[1], 1.0)
    return GridScaling(tuple(shape), (*out, shape[2]), scale)  # type: ignore[arg-type]


def pad_widths(shape: Shape3, target: Sequence[int] | None) -> Box3:
    """(before, after) per axis centring ``shape`` in-plane in ``target``; Z is never padded."""
    if target is None:
        return ((0, 0), (0, 0), (0, 0))
    widths = []
    for n, t in zip(shape[:2], target, strict=True):
        before = (int(t) - n) // 2
        widths.append((before, int(t) - n - before))
    return (widths[0], widths[1], (0, 0))


def shift_matrix(offset: Sequence[int]) -> np.ndarray:
    """4x4 map from indices of a shifted grid to indices of the grid it was cut from."""
    m = np.eye(4)
    m[:3, 3] = offset
    return m


# -- whole-record maps --------------------------------------------------------------------------------------
def to_working(array: np.ndarray, record: PreprocessRecord, kind: Kind) -> np.ndarray:
    """Original grid -> working grid (reorient, then resample)."""
    out = apply_orientation(array, np.asarray(record.orientation))
    if record.resample is not None:
        out = scale_forward(out, record.resample, kind)
    return np.ascontiguousarray(out)


def to_output(array: np.ndarray, record: PreprocessRecord, kind: Kind) -> np.ndarray:
    """Working grid -> preprocessed grid (crop, resize, pad with 0)."""
    (x0, x1), (y0, y1), (z0, z1) = record.crop_box
    out = array[..., x0:x1, y0:y1, z0:z1]
    if record.resize is not None:
        out = scale_forward(out, record.resize, kind)
    lead = [(0, 0)] * (array.ndim - 3)
    return np.pad(out, lead + [tuple(p) for p in record.pad])


def from_output(array: np.ndarray, record: PreprocessRecord, kind: Kind) -> np.ndarray:
    """Preprocessed grid -> working grid (unpad, undo the resize, uncrop filling 0 outside the box)."""
    index = tuple(slice(b, n - a) for (b, a), n in zip(record.pad, array.shape[-3:], strict=True))
    out = array[(..., *index)]
    if record.resize is not None:
        out = scale_backward(out, record.resize, kind)
    full = np.zeros(array.shape[:-3] + tuple(record.working_shape), dtype=array.dtype)
    full[(..., *(slice(lo, hi) for lo, hi in record.crop_box))] = out
    return full


def from_working(array: np.ndarray, record: PreprocessRecord, kind: Kind) -> np.ndarray:
    """Working grid -> original grid (undo the resampling, then the reorientation)."""
    if record.resample is not None:
        array = scale_backward(array, record.resample, kind)
    return np.ascontiguousarray(apply_orientation(array, record.inverse_orientation))


# -- a volume onto another grid through world coordinates ----------------------------------------------------
def resample_to_grid(
    array: np.ndarray, affine: np.ndarray, target_affine: np.ndarray, target_shape: Sequence[int], kind: Kind
) -> np.ndarray:
    """``array`` (on the grid of ``affine``) sampled at the voxel centres of another grid through world
    coordinates: voxel ``v`` of the target takes the value at ``inv(affine) @ target_affine @ v``.

    Both affines map voxel indices to the same world (scanner RAS mm), so any rotation, shear, shift and
    spacing between the grids is followed; points outside the input get 0. ``kind`` "image": linear.
    ``kind`` "label": a 0/1 mask is interpolated linearly and kept where at least half a voxel is lesion
    (>= 0.5), so a 1 mm mask resampled onto 4.4 mm slices keeps the lesions' partial volume instead of
    nearest-neighbour aliasing; a label map with more values takes the nearest neighbour.
    """
    from scipy import ndimage

    index_map = np.linalg.inv(np.asarray(affine, dtype=np.float64)) @ np.asarray(target_affine, np.float64)
    binary = kind == "label" and set(np.unique(array).tolist()) <= {0, 1}
    order = 1 if kind == "image" or binary else 0
    source = array.astype(np.float32) if order == 1 else array
    out = ndimage.affine_transform(
        source,
        index_map[:3, :3],
        offset=index_map[:3, 3],
        output_shape=tuple(int(s) for s in target_shape),
        order=order,
        mode="constant",
        cval=0.0,
    )
    if kind == "label":
        return (out >= 0.5).astype(array.dtype) if binary else out.astype(array.dtype)
    return out.astype(np.float32)
