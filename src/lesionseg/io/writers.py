"""Write a Volume to NIfTI (keeping a reference image's affine and header) or MetaImage/NRRD."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io.atomic import atomic_output
from lesionseg.io.readers import LPS_TO_RAS, image_format
from lesionseg.io.volume import Volume


def write_volume(volume: Volume, path: str | Path, reference: Volume | None = None) -> Path:
    """Write ``volume`` atomically. With ``reference``, the grid must match and its affine and NIfTI
    header (orientation codes, units, description) are reused, so the result lines up with the
    reference scan in any viewer. Label maps are written as uint8 (uint16 or int32 when values need it)."""
    path = Path(path)
    if reference is not None:
        if volume.shape[:3] != reference.shape[:3]:
            raise LesionsegError(
                f"cannot write on the reference grid: shape {volume.shape} vs {reference.shape}", path
            )
        volume = Volume(volume.array, reference.affine, volume.kind, reference.header, volume.source)
    array = _output_array(volume)
    fmt = image_format(path)
    with atomic_output(path) as tmp:
        if fmt == "nifti":
            _write_nifti(array, volume, tmp)
        elif fmt == "itk":
            _write_itk(array, volume, tmp)
        else:
            raise LesionsegError("writing slice stacks is not supported; use .nii.gz", path)
    return path


def _output_array(volume: Volume) -> np.ndarray:
    if volume.kind == "label":
        top = int(volume.array.max()) if volume.array.size else 0
        if top < 256:
            return volume.array.astype(np.uint8)
        return volume.array.astype(np.uint16 if top < 65536 else np.int32)
    return volume.array.astype(np.float32, copy=False)


def _write_nifti(array: np.ndarray, volume: Volume, path: Path) -> None:
    header = volume.header.copy() if isinstance(volume.header, nib.Nifti1Header) else None
    image = nib.Nifti1Image(array, volume.affine, header)
    image.set_data_dtype(array.dtype)
    if header is not None:
        # keep the reference's orientation codes, but the affine we were given
        qcode, scode = int(header["qform_code"]), int(header["sform_code"])
        image.set_qform(volume.affine, code=qcode or 1)
        image.set_sform(volume.affine, code=scode or 1)
        image.header["scl_slope"], image.header["scl_inter"] = 1.0, 0.0
        if volume.kind == "label":
            image.header["cal_min"], image.header["cal_max"] = 0, float(array.max()) if array.size else 0
    else:
        image.set_qform(volume.affine, code=1)
        image.set_sform(volume.affine, code=1)
    nib.save(image, str(path))


def _write_itk(array: np.ndarray, volume: Volume, path: Path) -> None:
    import SimpleITK as sitk

    affine_lps = LPS_TO_RAS @ volume.affine
    spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(d) for d in (affine_lps[:3, :3] / spacing).ravel()])
    image.SetOrigin([float(o) for o in affine_lps[:3, 3]])
    sitk.WriteImage(image, str(path), useCompression=True)
