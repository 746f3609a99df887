"""DICOM input: a series written with SimpleITK from a shared MS case segments to the same mask as the NIfTI
written from the same int16 array (DICOM stores integers; the two grids are the same voxels in the world,
though a left-handed NIfTI comes back from DICOM with its slice axis reversed)."""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lesionseg.cli.main import main
from lesionseg.io import read_volume

CASE = "open_ms_data/cross_sectional/MNI/patient07"
FILES = {
    "flair": "FLAIR_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz",
    "t1": "T1_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz",
}
SLICES = slice(70, 94)  # 24 axial slices through the ventricles: the lesions, at a tenth of the run time


def write_dicom_series(array: np.ndarray, affine: np.ndarray, folder: Path, series: str) -> None:
    """One MR slice file per z of an int16 (x, y, z) array, with position, orientation and spacing tags."""
    import SimpleITK as sitk

    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    folder.mkdir(parents=True)
    uid = f"1.2.826.0.1.3680043.8.498.{series}"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(array.shape[2]):
        image = sitk.GetImageFromArray(np.ascontiguousarray(array[:, :, k].T))
        image.SetSpacing([float(spacing[0]), float(spacing[1])])
        position = lps[:3, :3] @ np.array([0.0, 0.0, k]) + lps[:3, 3]
        tags = {
            "0008|0060": "MR",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.4",
            "0020|000d": f"{uid}.1",
            "0020|000e": f"{uid}.2",
            "0008|0018": f"{uid}.3.{k + 1}",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in position),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1])),
            "0018|0050": f"{spacing[2]:.6f}",
            "0028|0030": f"{spacing[1]:.6f}\\{spacing[0]:.6f}",
        }
        for tag, value in tags.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:04d}.dcm"))
        writer.Execute(image)


def canonical(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.as_closest_canonical(nib.load(path))
    return np.asarray(image.dataobj), image.affine


@pytest.mark.data
def test_dicom_series_segments_like_its_nifti(shared_data: Path, tmp_path: Path) -> None:
    volumes = {}
    for name, file in FILES.items():
        image = nib.load(shared_data / CASE / file)
        data = np.asarray(image.dataobj, dtype=np.float32)[:, :, SLICES]
        scaled = np.round(data / float(data.max()) * 3000.0).astype(np.int16)
        affine = image.affine.copy()
        affine[:3, 3] = image.affine[:3, :3] @ np.array([0, 0, SLICES.start]) + image.affine[:3, 3]
        nib.save(nib.Nifti1Image(scaled, affine), tmp_path / f"{name}.nii.gz")
        write_dicom_series(scaled, affine, tmp_path / f"{name}_dicom", series=str(len(volumes) + 1))
        volumes[name] = scaled

    dicom = read_volume(tmp_path / "flair_dicom")
    nifti = read_volume(tmp_path / "flair.nii.gz")
    assert dicom.shape == nifti.shape and np.allclose(dicom.spacing, nifti.spacing, atol=1e-4)
    # the same voxels in world space: mapping DICOM indices to NIfTI indices is a signed permutation
    mapping = np.linalg.inv(nifti.affine) @ dicom.affine
    assert np.allclose(mapping, np.round(mapping), atol=1e-3)

    start = time.perf_counter()
    assert main(["segment", str(tmp_path / "flair.nii.gz"), str(tmp_path / "t1.nii.gz"),
                 "-o", str(tmp_path / "nifti_mask.nii.gz")]) == 0  # fmt: skip
    nifti_seconds = time.perf_counter() - start
    assert main(["segment", str(tmp_path / "flair_dicom"), str(tmp_path / "t1_dicom"),
                 "-o", str(tmp_path / "dicom_mask.nii.gz")]) == 0  # fmt: skip
    from_nifti, affine_n = canonical(tmp_path / "nifti_mask.nii.gz")
    from_dicom, affine_d = canonical(tmp_path / "dicom_mask.nii.gz")
    assert np.allclose(affine_n, affine_d, atol=1e-3)
    print(f"mapping diag {np.diag(mapping).round(3)}, lesion voxels {int(from_nifti.sum())}")
    assert from_nifti.sum() > 50, "the case has lesions in these slices"
    assert np.array_equal(from_nifti, from_dicom), (
        f"{int((from_nifti != from_dicom).sum())} voxels differ ({nifti_seconds:.1f} s per run)"
    )
    sidecar = (tmp_path / "dicom_mask.json").read_text()
    assert '"format": "dicom"' in sidecar and '"step": "register"' not in sidecar
