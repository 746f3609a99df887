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
    reader.MetaDataDictionaryArrayUpdateOn()  # each slice's tags: its position, to find gaps
    warnings_on = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK's multi-line gap warning: ours is one line
    try:
        image = reader.Execute()
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_on)
    check_even_slices(reader, image, files)
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


SLICE_GAP_TOLERANCE = 0.1  # a slice distance more than 10 % away from the median one is a gap


def check_even_slices(reader, image, files: list[str]) -> None:  # noqa: ANN001 - SimpleITK objects
    """LesionsegError when the slices' positions (ImagePositionPatient, 0020|0032) along the slice normal
    are not evenly spaced: a missing, duplicated or misplaced slice."""
    if len(files) < 3:
        return
    positions = []
    for i in range(len(files)):
        if not reader.HasMetaDataKey(i, "0020|0032"):
            return  # no positions to check (ITK then spaces the slices by their thickness)
        try:
            positions.append([float(v) for v in reader.GetMetaData(i, "0020|0032").split("\\")][:3])
        except ValueError:
            return
    normal = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)[:, 2]
    steps = np.diff(np.asarray(positions) @ normal)
    typical = float(np.median(np.abs(steps)))
    bad = np.flatnonzero(np.abs(np.abs(steps) - typical) > SLICE_GAP_TOLERANCE * max(typical, 1e-6))
    if bad.size:
        k = int(bad[0])
        raise LesionsegError(
            f"DICOM slices are not evenly spaced: {Path(files[k]).name} and {Path(files[k + 1]).name} are "
            f"{abs(steps[k]):.2f} mm apart, the others {typical:.2f} mm (a missing or duplicated slice?); "
            f"{bad.size} such gap(s)",
            Path(files[0]).parent,
        )
