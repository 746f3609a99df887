"""preprocess_volumes (forward) and invert (back to the original grid); manifest cases go through
``lesionseg.data.cache.preprocess_case``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from lesionseg.config.preprocess import PreprocessConfig
from lesionseg.errors import LesionsegError
from lesionseg.io import Volume
from lesionseg.preprocess import geometry
from lesionseg.preprocess.brainmask import check_mask, derive_brain_mask
from lesionseg.preprocess.intensity import n4_correct, zscore
from lesionseg.preprocess.record import PreprocessRecord, affine_tuple


@dataclass
class PreprocessedCase:
    """A case on the preprocessed grid.

    - ``image``: (C, X, Y, Z) float32, RAS-canonical, Z the axial slice axis, (X, Y) padded to the target
      size; z-scored inside the brain mask and 0 outside (with ``normalize="zscore"``).
    - ``label``: (X, Y, Z) uint8 or None; ``mask``: (X, Y, Z) uint8 {0, 1} brain mask.
    - ``record``: how to map any array on this grid back (``invert``).
    - ``labelled_slices``: the axial slices that carry a reference label (sorted int indices), or None when
      every slice does; set by training code from the manifest case's ``label_slices``
      (``lesionseg.data.label_slices.labelled_slices``), never stored in the cache.
    - ``subject``: the manifest subject the case belongs to, or None; set by training code (subject-balanced
      sampling), never stored in the cache.
    The arrays may be read-only memory maps when they come from the cache.
    """

    image: np.ndarray
    label: np.ndarray | None
    mask: np.ndarray
    record: PreprocessRecord
    labelled_slices: np.ndarray | None = None
    subject: str | None = None

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel index -> RAS+ mm of the preprocessed grid."""
        return self.record.affine_array()

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.record.shape


def preprocess_volumes(
    images: list[Volume],
    config: PreprocessConfig,
    mask: Volume | None = None,
    label: Volume | None = None,
) -> PreprocessedCase:
    """Run the configured steps (see ``lesionseg.config.preprocess``) on channels sharing one grid.

    ``images``: one Volume (X0, Y0, Z0) per channel; ``mask``: a brain mask on the same grid (used when
    ``config.brain_mask == "file"``); ``label``: an integer label map on the same grid (values < 256).
    """
    if not images:
        raise ValueError("preprocess_volumes needs at least one image")
    reference = images[0]
    for other in [*images[1:], mask, label]:
        if other is not None and not reference.same_grid(other):
            raise LesionsegError(
                f"grid {other.shape} differs from {reference.source} {reference.shape}", other.source
            )
    shape0 = tuple(int(n) for n in reference.shape)
    stack, ornt, resampling, affine = _working_grid(images, config)
    mode = config.brain_mask
    if mode == "file" and mask is None:
        mode = "nonzero"
    # A record of the grid steps so far lets the label and the mask file follow the same path.
    partial = _record(
        shape0, reference.affine, ornt, resampling, None, None, None, stack.shape[1:], affine, config
    )

    if mode == "file":
        brain = check_mask(geometry.to_working(mask.array, partial, "label"), mask.source)
    else:
        brain = derive_brain_mask(stack, mode, reference.source)

    if config.n4:
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        stack = np.stack(
            [n4_correct(ch, brain, spacing, config.n4_shrink, config.n4_iterations) for ch in stack]
        )
    if config.normalize == "zscore":
        stack, means, stds = zscore(stack, brain)
    else:
        means, stds = [0.0] * len(stack), [1.0] * len(stack)

    box, resize, pad, shape, affine = _output_grid(brain, config, affine)
    record = _record(
        shape0, reference.affine, ornt, resampling, box, resize, pad, shape, affine, config, means, stds, mode
    )
    image = geometry.to_output(stack, record, "image").astype(np.float32, copy=False)
    out_label = None
    if label is not None:
        if label.array.size and int(label.array.max()) > 255:
            raise LesionsegError(
                f"label values up to {int(label.array.max())}; at most 255 supported", label.source
            )
        working = geometry.to_working(label.array.astype(np.uint8), record, "label")
        out_label = geometry.to_output(working, record, "label")
    out_mask = geometry.to_output(brain, record, "label").astype(np.uint8, copy=False)
    return PreprocessedCase(image, out_label, out_mask, record)


def invert(
    array: np.ndarray, record: PreprocessRecord, kind: Literal["label", "image"] = "label"
) -> np.ndarray:
    """Map ``array`` on the preprocessed grid back onto the case's original grid.

    ``array``: (X, Y, Z) labels or probabilities, or (K, X, Y, Z) per-class maps (the leading axis is kept).
    Undoes the pad, the in-plane resize, the crop (0 outside the crop box), the resampling and the
    reorientation, in that order; ``kind`` picks nearest-neighbour ("label") or linear ("image")
    interpolation for the two steps that interpolate. Without resize or resampling (``record.exact``) the
    result is exact: every voxel is copied, none is interpolated. Intensities are not de-normalised (the
    record keeps each channel's mean and std). Returns (X0, Y0, Z0) or (K, X0, Y0, Z0), the input's dtype.
    """
    array = np.asarray(array)
    if array.ndim not in (3, 4) or tuple(array.shape[-3:]) != tuple(record.shape):
        raise ValueError(f"array shape {array.shape} does not match the preprocessed grid {record.shape}")
    if kind not in ("label", "image"):
        raise ValueError(f"kind must be 'label' or 'image', got {kind!r}")
    working = geometry.from_output(array, record, kind)
    return geometry.from_working(working, record, kind)


def apply_geometry(
    array: np.ndarray, record: PreprocessRecord, kind: Literal["label", "image"] = "label"
) -> np.ndarray:
    """The grid steps of ``record`` applied to another array on the original grid (no intensity steps)."""
    return geometry.to_output(geometry.to_working(np.asarray(array), record, kind), record, kind)


def _working_grid(images: list[Volume], config: PreprocessConfig):
    """Channels stacked (C, X, Y, Z) float32 on the working grid: reoriented, then resampled.

    Returns the stack, the orientation transform, the resampling (or None) and the working grid's affine.
    """
    reference = images[0]
    identity = np.array([[0, 1], [1, 1], [2, 1]])
    ornt = geometry.canonical_transform(reference.affine) if config.reorient else identity
    affine = reference.affine @ geometry.orientation_matrix(ornt, reference.shape)
    stack = np.stack([v.array for v in images]).astype(np.float32, copy=False)
    stack = geometry.apply_orientation(stack, ornt)
    resampling = None
    if config.target_spacing is not None:
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        resampling = geometry.spacing_scaling(stack.shape[1:], spacing, config.target_spacing)
        if resampling is not None:
            stack = geometry.scale_forward(stack, resampling, "image")
            affine = affine @ resampling.matrix()
    return np.ascontiguousarray(stack, dtype=np.float32), ornt, resampling, affine


def _output_grid(brain: np.ndarray, config: PreprocessConfig, affine: np.ndarray):
    """Crop box, in-plane resize (or None), pad widths, final shape and affine, from the working mask."""
    box = geometry.crop_box(brain, config.crop_margin)
    cropped_shape = tuple(hi - lo for lo, hi in box)
    affine = affine @ geometry.shift_matrix([lo for lo, _ in box])
    resize = geometry.inplane_scaling(cropped_shape, config.target_size)
    if resize is not None:
        affine = affine @ resize.matrix()
    resized_shape = resize.out_shape if resize else cropped_shape
    pad = geometry.pad_widths(resized_shape, config.target_size)
    affine = affine @ geometry.shift_matrix([-before for before, _ in pad])
    shape = tuple(n + before + after for n, (before, after) in zip(resized_shape, pad, strict=True))
    return box, resize, pad, shape, affine


def _record(
    shape0, affine0, ornt, resampling, box, resize, pad, shape, affine, config, means=(), stds=(), mode=""
) -> PreprocessRecord:
    zero = ((0, 0), (0, 0), (0, 0))
    return PreprocessRecord(
        original_shape=tuple(int(n) for n in shape0),
        original_affine=affine_tuple(affine0),
        orientation=tuple((int(a), int(f)) for a, f in ornt),
        resample=resampling,
        crop_box=box or zero,
        resize=resize,
        pad=pad or zero,
        shape=tuple(int(n) for n in shape),
        affine=affine_tuple(affine),
        channel_mean=tuple(float(m) for m in means),
        channel_std=tuple(float(s) for s in stds),
        brain_mask=mode,
        n4=bool(config.n4),
        config=config,
    )
