"""One 2D affine (rotation, scaling, shear, flip, crop-and-resize) plus an intensity factor."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AffineParams:
    """Parameters of one augmentation draw; the identity by default."""

    angle_deg: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)  # (rows, cols)
    shear: float = 0.0
    # a training slice is (X, Y) of a RAS volume (a PNG's x = its columns): rows are left-right
    flip_rows: bool = False  # mirrors X: left-right (a PNG slice's horizontal flip)
    flip_cols: bool = False  # mirrors Y: anterior-posterior (a PNG slice's vertical flip)
    crop: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # fraction cut at top, bottom, left, right
    intensity: float = 1.0

    def is_identity(self) -> bool:
        return self == AffineParams()


def sample_tscnn_params(rng: np.random.Generator) -> AffineParams:
    """TS-CNN row E, as the authors' public code augments: random crop of 0-5 % of height and width (size
    kept), horizontal (left-right) flip with probability 0.5, rotation in [-10, 10] degrees, intensity
    x [0.8, 1.2]."""
    ch, cw = rng.uniform(0, 0.05, size=2)
    top, left = rng.uniform(0, 1, size=2)
    return AffineParams(
        angle_deg=float(rng.uniform(-10, 10)),
        flip_rows=bool(rng.random() < 0.5),
        crop=(float(ch * top), float(ch * (1 - top)), float(cw * left), float(cw * (1 - left))),
        intensity=float(rng.uniform(0.8, 1.2)),
    )


def sample_wmh_params(rng: np.random.Generator) -> AffineParams:
    """WMH thesis section 2.3: rotation U[-15, 15] degrees, scaling U[0.9, 1.1] in each direction,
    shear U[-0.1, 0.1]."""
    return AffineParams(
        angle_deg=float(rng.uniform(-15, 15)),
        scale=(float(rng.uniform(0.9, 1.1)), float(rng.uniform(0.9, 1.1))),
        shear=float(rng.uniform(-0.1, 0.1)),
    )


def sample_lesion_params(rng: np.random.Generator, flip_axes: str = "cols") -> AffineParams:
    """The lesion recipe's spatial draw (nnU-Net v2's 2D ranges): rotation U[-30, 30] degrees and isotropic
    scaling U[0.7, 1.4], each with probability 0.2, and a flip with probability 0.5 of the columns
    (``flip_axes`` "cols": anterior-posterior), of the rows ("rows": left-right) or of each axis
    independently ("both", nnU-Net's mirroring)."""
    rotate, scale = rng.random(2) < 0.2
    factor = float(rng.uniform(0.7, 1.4)) if scale else 1.0
    angle = float(rng.uniform(-30, 30)) if rotate else 0.0
    flip = bool(rng.random() < 0.5)  # drawn first for every choice: "cols" repeats the earlier draws exactly
    if flip_axes == "cols":
        flip_cols, flip_rows = flip, False
    elif flip_axes == "rows":
        flip_cols, flip_rows = False, flip
    else:
        flip_cols, flip_rows = flip, bool(rng.random() < 0.5)
    return AffineParams(angle_deg=angle, scale=(factor, factor), flip_cols=flip_cols, flip_rows=flip_rows)


def output_to_input_matrix(params: AffineParams, shape: tuple[int, int]) -> np.ndarray:
    """3x3 homogeneous matrix mapping output (row, col) to input (row, col)."""
    h, w = shape
    centre = np.array([(h - 1) / 2, (w - 1) / 2])

    def about_centre(m2: np.ndarray) -> np.ndarray:
        m = np.eye(3)
        m[:2, :2] = m2
        m[:2, 2] = centre - m2 @ centre
        return m

    a = math.radians(params.angle_deg)
    rotation = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    shear = np.array([[1.0, params.shear], [0.0, 1.0]])
    scale = np.diag(params.scale)
    forward = rotation @ shear @ scale  # input -> output, about the centre
    undo_geometry = about_centre(np.linalg.inv(forward))
    undo_flip = np.eye(3)
    if params.flip_cols:
        undo_flip = np.array([[1.0, 0, 0], [0, -1.0, w - 1], [0, 0, 1.0]])
    if params.flip_rows:
        undo_flip = np.array([[-1.0, 0, h - 1], [0, 1.0, 0], [0, 0, 1.0]]) @ undo_flip
    top, bottom, left, right = params.crop
    undo_crop = np.array(
        [[1 - top - bottom, 0, top * h], [0, 1 - left - right, left * w], [0, 0, 1.0]]
    )  # the cropped window, stretched back to the full size
    return undo_crop @ undo_flip @ undo_geometry


def apply_affine_2d(
    image: np.ndarray, label: np.ndarray | None, params: AffineParams
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply ``params`` to ``image`` (C, H, W) (linear, zero outside) and ``label`` (H, W) (nearest)."""
    if params.is_identity():
        return image, label
    m = output_to_input_matrix(params, image.shape[-2:])
    matrix, offset = m[:2, :2], m[:2, 2]
    out = np.stack(
        [ndimage.affine_transform(ch, matrix, offset, order=1, mode="constant", cval=0.0) for ch in image]
    ).astype(np.float32)
    out *= params.intensity
    new_label = None
    if label is not None:
        new_label = ndimage.affine_transform(label, matrix, offset, order=0, mode="constant", cval=0)
    return out, new_label
