"""Write a Volume to NIfTI (keeping a reference image's affine and header) or MetaImage/NRRD."""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io.atomic import atomic_output
from lesionseg.io.readers import LPS_TO_RAS, NIFTI_SUFFIXES, image_format
from lesionseg.io.volume import Volume

DETACHED_SUFFIXES = (".mhd", ".nhdr")  # a header file plus a separate data file


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
    if fmt == "slice":
        raise LesionsegError("writing slice stacks is not supported; use .nii.gz", path)
    if fmt == "itk" and path.name.lower().endswith(DETACHED_SUFFIXES):
        _write_itk_detached(array, volume, path)
        return path
    with atomic_output(path) as tmp:
        if fmt == "nifti":
            _write_nifti(array, volume, tmp)
        else:
            _write_itk_single(array, volume, tmp, path.name)
    return path


def move_volume(source: str | Path, target: str | Path) -> Path:
    """Move a written image to ``target``: renamed when the file type is the same, else (``.nii.gz`` to
    ``.nii``, NIfTI to MetaImage...) read and written again, so the bytes always match the name."""
    from lesionseg.io.readers import read_volume

    source, target = Path(source), Path(target)
    if _full_suffix(source) == _full_suffix(target) and not target.name.lower().endswith(DETACHED_SUFFIXES):
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        return target
    pair = (_full_suffix(source), _full_suffix(target))
    if pair in ((".nii.gz", ".nii"), (".nii", ".nii.gz")):
        data = source.read_bytes()
        data = gzip.decompress(data) if pair[0] == ".nii.gz" else gzip.compress(data, 1, mtime=0)
        with atomic_output(target) as tmp:
            tmp.write_bytes(data)
    else:
        integer = pair[0] in NIFTI_SUFFIXES and np.issubdtype(nib.load(source).get_data_dtype(), np.integer)
        write_volume(read_volume(source, "label" if integer else "image"), target)
    source.unlink()
    return target


def _full_suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in (".nii.gz", ".nii", ".mha", ".nrrd") if name.endswith(s)), name)


def _output_array(volume: Volume) -> np.ndarray:
    if volume.kind == "label":
        top = int(volume.array.max()) if volume.array.size else 0
        if top < 256:
            return volume.array.astype(np.uint8)
        return volume.array.astype(np.uint16 if top < 65536 else np.int32)
    return volume.array.astype(np.float32, copy=False)


def _write_nifti(array: np.ndarray, volume: Volume, path: Path) -> None:
    """nibabel gzips exactly when the name ends in .gz; it writes ``X.Nii`` as ``X.nii``, so a name with an
    upper-case suffix is written under the lower-case one and renamed."""
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
    suffix = _full_suffix(path)
    lower = path.with_name(path.name[: len(path.name) - len(suffix)] + suffix)
    try:
        nib.save(image, str(lower))
        if lower != path:
            os.replace(lower, path)
    except BaseException:
        lower.unlink(missing_ok=True)
        raise


def _write_itk_single(array: np.ndarray, volume: Volume, tmp: Path, final_name: str) -> None:
    """.mha/.nrrd: SimpleITK picks the writer from a case-sensitive suffix (``X.MHA`` would become
    ``X.mhd`` + ``X.zraw``), so write a lower-case name in a private folder and move it onto ``tmp``."""
    with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".lesionseg-") as folder:
        written = Path(folder) / ("image" + _full_suffix(Path(final_name)))
        _write_itk(array, volume, written)
        os.replace(written, tmp)


def _write_itk_detached(array: np.ndarray, volume: Volume, path: Path) -> None:
    """.mhd/.nhdr: a header plus a data file named after it. Both are written in a private folder beside
    ``path`` with their final names, then the data file is moved into place and the header last."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stem, ext = path.name.rsplit(".", 1)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".lesionseg-") as folder:
        header = Path(folder) / f"{stem}.{ext.lower()}"
        _write_itk(array, volume, header)
        for data in Path(folder).iterdir():
            if data != header:
                os.replace(data, path.parent / data.name)
        os.replace(header, path)


def _write_itk(array: np.ndarray, volume: Volume, path: Path) -> None:
    import SimpleITK as sitk

    affine_lps = LPS_TO_RAS @ volume.affine
    spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(d) for d in (affine_lps[:3, :3] / spacing).ravel()])
    image.SetOrigin([float(o) for o in affine_lps[:3, 3]])
    sitk.WriteImage(image, str(path), useCompression=True)
