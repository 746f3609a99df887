"""Read NIfTI (nibabel), MetaImage/NRRD (SimpleITK) and 2D slice stacks (Pillow) into a Volume.

Every failure a user can cause (missing file, unreadable file, wrong dimensionality, NaN/Inf voxels,
non-integer label values) raises LesionsegError naming the file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io.volume import Volume, VolumeKind

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
SLICE_SUFFIXES = (".png", ".tif", ".tiff")
# LPS (ITK) <-> RAS (NIfTI): flip the first two world axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def image_format(path: str | Path) -> str:
    """'nifti', 'itk' or 'slice' from the file name; LesionsegError for anything else."""
    name = str(path).lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(ITK_SUFFIXES):
        return "itk"
    if name.endswith(SLICE_SUFFIXES):
        return "slice"
    raise LesionsegError(
        "unknown image format (expected .nii, .nii.gz, .mha, .mhd, .nrrd or a PNG/TIFF slice stack)", path
    )


def read_volume(path: str | Path, kind: VolumeKind = "image") -> Volume:
    """Read one 3D image or label map; a trailing singleton 4th axis is dropped."""
    path = Path(path)
    if not path.exists():
        raise LesionsegError("file not found", path)
    fmt = image_format(path)
    if fmt == "slice":
        raise LesionsegError("a single 2D slice; give the whole slice stack", path)
    try:
        if fmt == "nifti":
            image = nib.load(str(path))
            array = np.asanyarray(image.dataobj)
            affine, header = image.affine, image.header
        else:
            array, affine = _read_itk(path)
            header = None
    except LesionsegError:
        raise
    except Exception as exc:  # nibabel/SimpleITK raise many types for corrupt files
        raise LesionsegError(f"cannot read image ({_first_line(exc)})", path) from exc
    array = _as_3d(array, path)
    array = _checked_values(array, kind, path)
    return Volume(array, affine, kind, header, path)


def _read_itk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    if image.GetDimension() != 3:
        raise LesionsegError(f"image is {image.GetDimension()}D, expected 3D", path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise LesionsegError("image has vector pixels, expected one value per voxel", path)
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (z, y, x) -> (x, y, z)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine_lps = np.eye(4)
    affine_lps[:3, :3] = direction @ np.diag(image.GetSpacing())
    affine_lps[:3, 3] = image.GetOrigin()
    return array, LPS_TO_RAS @ affine_lps


def _as_3d(array: np.ndarray, path: Path) -> np.ndarray:
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise LesionsegError(f"image is {array.ndim}D with shape {tuple(array.shape)}, expected 3D", path)
    return np.asarray(array)


def _checked_values(array: np.ndarray, kind: VolumeKind, path: Path) -> np.ndarray:
    if np.issubdtype(array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        if bad:
            raise LesionsegError(f"{bad} voxels are NaN or infinite", path)
    if kind == "image":
        return array.astype(np.float32, copy=False)
    rounded = np.rint(array)
    if not np.allclose(rounded, array, atol=1e-3):
        raise LesionsegError("label map has non-integer values", path)
    if rounded.min() < 0:
        raise LesionsegError(f"label map has negative values (min {rounded.min():g})", path)
    dtype = np.uint8 if rounded.max() < 256 else np.int32
    return rounded.astype(dtype)


def _first_line(exc: BaseException) -> str:
    """The informative line of a reader's exception (SimpleITK's first line is a C++ source location)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception thrown in SimpleITK")] or lines
    if not lines:
        return type(exc).__name__
    return re.sub(r"^(sitk::ERROR|ITK ERROR)(: \w+\(0x[0-9a-fA-F]+\))?:\s*", "", lines[0])[:200]


def slice_number(path: str | Path) -> int:
    """The slice index of a stack file: the last integer in its name (``..._10_mask.tif`` -> 10)."""
    numbers = re.findall(r"\d+", Path(path).name)
    if not numbers:
        raise LesionsegError("no slice number in the file name", path)
    stem = Path(path).name.split(".")[0]
    stem_numbers = re.findall(r"\d+", re.sub(r"_mask$", "", stem))
    return int((stem_numbers or numbers)[-1])


def read_slice_stack(
    paths: Sequence[str | Path],
    kind: VolumeKind = "image",
    component: int | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> Volume:
    """Assemble 2D slices (PNG/TIFF, one file per slice) into a volume, in numeric slice order.

    - ``component``: which colour channel of an RGB slice to keep (the LGG set packs three sequences
      into one RGB TIFF); None for grey images.
    - ``spacing``: (x, y, z) in mm; slice files store none, so the caller states it.
    Array axes: x = image column, y = image row, z = slice; the affine flips x and y so that a viewer
    shows the slices as the files show them (radiological convention, RAS+ world).
    """
    from PIL import Image

    if not paths:
        raise LesionsegError("empty slice stack")
    ordered = sorted((Path(p) for p in paths), key=slice_number)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if slice_number(before) == slice_number(after):
            raise LesionsegError(f"two slices numbered {slice_number(after)} (also {before.name})", after)
    slices = []
    for path in ordered:
        if not path.exists():
            raise LesionsegError("file not found", path)
        try:
            with Image.open(path) as img:
                pixels = np.asarray(img)
        except Exception as exc:
            raise LesionsegError(f"cannot read slice ({_first_line(exc)})", path) from exc
        if pixels.ndim == 3:
            if component is None:
                raise LesionsegError("slice has colour channels; choose one with 'component'", path)
            pixels = pixels[..., component]
        elif component not in (None, 0):
            raise LesionsegError(f"slice is grey, component {component} does not exist", path)
        if slices and pixels.T.shape != slices[0].shape:  # slices[] hold transposed pixels
            raise LesionsegError(f"slice shape {pixels.shape} differs from {slices[0].T.shape}", path)
        slices.append(pixels.T)  # (row, col) -> (x=col, y=row)
    array = np.stack(slices, axis=-1)
    affine = np.diag([-float(spacing[0]), -float(spacing[1]), float(spacing[2]), 1.0])
    array = _checked_values(array, kind, ordered[0])
    return Volume(array, affine, kind, None, ordered[0].parent)
