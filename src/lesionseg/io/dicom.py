"""Read a DICOM series (a folder of slice files) with SimpleITK's ImageSeriesReader.

A folder must hold exactly one series (or name one with ``series_id``); slices are ordered by GDCM along
the slice normal, and the rescale slope/intercept of each file is applied. The returned array is (x, y, z)
and the affine maps voxel indices to RAS+ millimetres, as for every other reader.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lesionseg.errors import LesionsegError


def dicom_series_files(folder: Path, series_id: str | None = None) -> list[str]:
    """The ordered slice files of the one series in ``folder``; LesionsegError when none or several."""
    import SimpleITK as sitk

    series = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    if not series:
        raise LesionsegError("no DICOM series in this folder (expected a folder of .dcm slices)", folder)
    if series_id is None:
        if len(series) > 1:
            raise LesionsegError(
                f"folder holds {len(series)} DICOM series ({', '.join(series[:3])}...); "
                "give the folder of one",
                folder,
            )
        series_id = series[0]
    elif series_id not in series:
        raise LesionsegError(f"no DICOM series {series_id!r} in this folder", folder)
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id))
    if not files:
        raise LesionsegError(f"DICOM series {series_id!r} has no readable slices", folder)
    return files


def dicom_series_shape(files: list[str]) -> tuple[int, int, int]:
    """(x, y, z) voxels of the series from the first slice's header and the number of slices (no pixels)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    reader.ReadImageInformation()
    size = reader.GetSize()
    depth = len(files) if len(size) < 3 or size[2] <= 1 else int(size[2]) * len(files)
    return int(size[0]), int(size[1]), depth


def read_dicom_series(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(array (x, y, z), affine RAS+) of the ordered slice files."""
    import SimpleITK as sitk

    from lesionseg.io.readers import LPS_TO_RAS

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    image = reader.Execute()
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise LesionsegError(
            "DICOM series has colour pixels, expected one value per voxel", Path(files[0]).parent
        )
    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    affine_lps = np.eye(4)
    affine_lps[:3, :3] = direction @ np.diag(image.GetSpacing())
    affine_lps[:3, 3] = image.GetOrigin()
    return array, LPS_TO_RAS @ affine_lps
