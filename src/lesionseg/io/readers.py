"""Read NIfTI (nibabel), MetaImage/NRRD (SimpleITK), DICOM series (a folder, SimpleITK) and 2D slice stacks
(Pillow) into a Volume.

Every failure a user can cause (missing file, unreadable file, wrong dimensionality, NaN/Inf voxels,
non-integer label values, a header claiming more voxels than ``max_voxels()`` allows) raises LesionsegError
naming the file. The voxel count is read from the header and checked before any pixel array is allocated.
"""

from __future__ import annotations

import os
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
# Largest volume read: 2 GiB as float32 (2**29 voxels, e.g. 812^3); LESIONSEG_MAX_VOXELS overrides it.
DEFAULT_MAX_VOXELS = 2**29
MAX_VOXELS_ENV = "LESIONSEG_MAX_VOXELS"


def max_voxels() -> int:
    """The voxel limit: $LESIONSEG_MAX_VOXELS if set (a positive integer), else DEFAULT_MAX_VOXELS."""
    raw = os.environ.get(MAX_VOXELS_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_VOXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        raise LesionsegError(f"{MAX_VOXELS_ENV} must be a positive number of voxels, got {raw!r}")
    return value


def check_voxel_count(shape: Sequence[int], path: str | Path) -> None:
    """LesionsegError naming ``path`` when a volume of ``shape`` (from its header) exceeds the voxel limit;
    the memory is estimated as float32, the type every image is read into."""
    count = int(np.prod([max(int(s), 0) for s in shape], dtype=np.float64))
    limit = max_voxels()
    if count > limit:
        dims = "x".join(str(int(s)) for s in shape)
        raise LesionsegError(
            f"header claims {dims} voxels ({count * 4 / 2**30:.1f} GiB as float32), above the limit of "
            f"{limit * 4 / 2**30:.1f} GiB (set {MAX_VOXELS_ENV} to raise it)",
            path,
        )


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
    """Read one 3D image or label map; a trailing singleton 4th axis is dropped. A folder is read as a DICOM
    series (it must hold exactly one)."""
    path = Path(path)
    if not path.exists():
        raise LesionsegError("file not found", path)
    if path.is_dir():
        return _read_dicom(path, kind)
    fmt = image_format(path)
    if fmt == "slice":
        raise LesionsegError("a single 2D slice; give the whole slice stack", path)
    try:
        if fmt == "nifti":
            image = _load_nifti(path)
            check_voxel_count(image.shape, path)
            _check_nifti_size(image, path)
            _check_pixdim(image, path)
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
    _check_affine(np.asarray(affine, dtype=np.float64), path)
    return Volume(array, affine, kind, header, path)


def _load_nifti(path: Path) -> nib.Nifti1Image:
    """nibabel's loader, which picks the format from a lower-case suffix; other spellings (``.Nii.Gz``)
    through an explicit file map."""
    if path.name.endswith(NIFTI_SUFFIXES):
        return nib.load(str(path))
    last: Exception | None = None
    for image_class in (nib.Nifti1Image, nib.Nifti2Image):
        try:
            return image_class.from_file_map(
                image_class.make_file_map({"image": str(path), "header": str(path)})
            )
        except Exception as exc:  # not this NIfTI version: try the next one
            last = exc
    assert last is not None
    raise last


def _check_affine(affine: np.ndarray, path: Path) -> None:
    """The voxel-to-world matrix must be finite and invertible: spacing and orientation come from it."""
    if not np.all(np.isfinite(affine)):
        raise LesionsegError("the header's voxel-to-world matrix (affine) has NaN or infinite values", path)
    if abs(float(np.linalg.det(affine[:3, :3]))) < 1e-12:
        raise LesionsegError(
            "the header's voxel-to-world matrix (affine) is singular (a voxel size of 0?)", path
        )


def _check_pixdim(image: nib.Nifti1Image, path: Path) -> None:
    """Without an sform the affine is built from pixdim, where nibabel silently takes a voxel side of 0 as
    1 mm (it mends the header on loading, so the file's own header is read again, unmended): a header that
    does not know its voxel size is refused instead."""
    if int(image.header["sform_code"]) > 0:
        return  # the sform gives spacing and orientation; pixdim is not used
    import gzip

    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if gzipped else path.open("rb") as stream:
        header = type(image.header).from_fileobj(stream, check=False)
    sides = np.asarray(header["pixdim"][1:4], dtype=np.float64)
    if not np.all(np.isfinite(sides)) or np.any(sides == 0):
        raise LesionsegError(
            f"the header's voxel size (pixdim {', '.join(f'{s:g}' for s in sides)}) has a zero or "
            "non-finite side and no sform gives it: the voxel size is unknown",
            path,
        )


def _read_dicom(folder: Path, kind: VolumeKind) -> Volume:
    from lesionseg.io.dicom import dicom_series_files, dicom_series_shape, read_dicom_series

    try:
        files = dicom_series_files(folder)
        check_voxel_count(dicom_series_shape(files), folder)
        array, affine = read_dicom_series(files)
    except LesionsegError:
        raise
    except Exception as exc:  # GDCM/SimpleITK errors for broken series
        raise LesionsegError(f"cannot read DICOM series ({_first_line(exc)})", folder) from exc
    array = _checked_values(_as_3d(array, folder), kind, folder)
    return Volume(array, affine, kind, None, folder)


def _check_nifti_size(image: nib.Nifti1Image, path: Path) -> None:
    """An uncompressed .nii shorter than its header's data block is truncated: say so before reading."""
    if not str(path).lower().endswith(".nii"):
        return
    header = image.header
    needed = int(header.get_data_offset()) + int(np.prod(image.shape)) * header.get_data_dtype().itemsize
    size = path.stat().st_size
    if size < needed:
        raise LesionsegError(f"file is truncated ({size} bytes, its header needs {needed})", path)


def _read_itk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    info = sitk.ImageFileReader()
    info.SetFileName(str(path))
    info.ReadImageInformation()
    check_voxel_count(info.GetSize(), path)
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
    if array.size == 0:  # a header with a zero dimension: found by tests/test_fuzz.py
        raise LesionsegError(f"image has no voxels (shape {tuple(array.shape)})", path)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        # RGB/RGBA (structured) or complex voxels: found by tests/test_fuzz.py
        raise LesionsegError(f"unsupported voxel type {array.dtype} (expected integers or floats)", path)
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
