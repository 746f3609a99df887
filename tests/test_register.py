"""Rigid T1 -> FLAIR registration: a T1 moved by a known small rigid transform onto another grid is brought
back (transform recovered to under a millimetre in the brain, brain masks overlap again)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lesionseg.io import Volume
from lesionseg.phantom import make_phantom_case
from lesionseg.preprocess.register import register_rigid, to_sitk


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def moved() -> dict:
    """A phantom case and its T1 (and brain mask) moved by a known rigid transform onto a coarser grid."""
    import SimpleITK as sitk

    case = make_phantom_case(np.random.default_rng(3), (64, 72, 44), (2.2, 2.2, 3.0))
    true = sitk.Euler3DTransform()
    fixed = to_sitk(case.t1)
    centre = np.asarray(case.t1.shape, dtype=float) / 2
    true.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint(centre.tolist()))
    true.SetRotation(*np.deg2rad([3.0, -2.0, 5.0]))
    true.SetTranslation((4.0, -3.0, 2.5))
    # another grid: 2.5 mm isotropic, axis-aligned, shifted origin
    grid = sitk.Image([60, 66, 56], sitk.sitkFloat32)
    grid.SetSpacing((2.5, 2.5, 2.5))
    middle = np.asarray(fixed.TransformContinuousIndexToPhysicalPoint(centre.tolist()))
    grid.SetOrigin((middle - 2.5 * np.array([30, 33, 28]) + 1.3).tolist())

    def move(volume: Volume, interpolator: int) -> Volume:
        out = sitk.Resample(to_sitk(volume), grid, true, interpolator, 0.0, sitk.sitkFloat32)
        array = sitk.GetArrayFromImage(out).transpose(2, 1, 0)
        affine = np.eye(4)
        affine[:3, :3] = np.diag(out.GetSpacing())
        affine[:3, 3] = out.GetOrigin()
        lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
        return Volume(array, lps_to_ras @ affine, "image")

    return {
        "case": case,
        "true": true,
        "t1": move(case.t1, sitk.sitkLinear),
        "brain": move(case.brain_mask, sitk.sitkNearestNeighbor),
    }


def test_registration_recovers_a_known_rigid_transform(moved: dict) -> None:
    import SimpleITK as sitk

    case = moved["case"]
    aligned, result = register_rigid(case.flair, moved["t1"])
    assert aligned.shape == case.flair.shape and np.allclose(aligned.affine, case.flair.affine)
    # the found transform R maps FLAIR points into the moved T1; T o R must be the identity in the brain
    found = sitk.Euler3DTransform()
    fixed = to_sitk(case.flair)
    found.SetCenter(
        fixed.TransformContinuousIndexToPhysicalPoint((np.asarray(case.flair.shape) / 2).tolist())
    )
    found.SetParameters((*result.angles_rad, *result.translation_mm))
    brain = np.argwhere(case.brain_mask.array > 0)[::97]
    errors = []
    for index in brain:
        x = np.asarray(fixed.TransformContinuousIndexToPhysicalPoint([float(i) for i in index]))
        errors.append(np.linalg.norm(np.asarray(moved["true"].TransformPoint(found.TransformPoint(x))) - x))
    assert float(np.max(errors)) < 1.0, f"max error {np.max(errors):.2f} mm"
    # brain masks: after registration the moved mask lines up again
    mask_back = sitk.Resample(to_sitk(moved["brain"]), fixed, found, sitk.sitkNearestNeighbor, 0.0)
    identity = sitk.Resample(to_sitk(moved["brain"]), fixed, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)
    ref = case.brain_mask.array > 0
    after = dice(sitk.GetArrayFromImage(mask_back).transpose(2, 1, 0) > 0.5, ref)
    before = dice(sitk.GetArrayFromImage(identity).transpose(2, 1, 0) > 0.5, ref)
    print(f"max error {np.max(errors):.2f} mm, brain Dice {before:.3f} -> {after:.3f}")
    assert after > 0.97 and before < 0.93, (before, after)


def test_segment_registers_a_t1_on_another_grid_and_records_it(moved: dict, tmp_path: Path) -> None:
    from lesionseg.cli.main import main
    from lesionseg.io import write_volume

    case = moved["case"]
    write_volume(case.flair, tmp_path / "flair.nii.gz")
    write_volume(moved["t1"], tmp_path / "t1.nii.gz")
    out = tmp_path / "mask.nii.gz"
    base = ["segment", str(tmp_path / "flair.nii.gz"), str(tmp_path / "t1.nii.gz"), "-o", str(out)]
    assert main([*base, "--no-register"]) == 2  # grids differ and registration is off: refused
    assert main(base) == 0
    mask, flair = nib.load(out), nib.load(tmp_path / "flair.nii.gz")
    assert mask.shape == flair.shape and np.allclose(mask.affine, flair.affine)
    steps = json.loads((tmp_path / "mask.json").read_text())["steps"]
    register = [s for s in steps if s["step"] == "register"]
    assert len(register) == 1 and register[0]["channel"] == "T1" and len(register[0]["translation_mm"]) == 3


def test_a_grid_too_thin_to_register_is_a_one_line_error_naming_the_file(moved: dict) -> None:
    """A FLAIR of two slices leaves ITK's smoothing too few voxels: the user gets one line naming the T1,
    the reason, and the way out, not SimpleITK's multi-line exception."""
    from lesionseg.errors import LesionsegError

    flair = moved["case"].flair
    thin = Volume(flair.array[:, :, 20:22].copy(), flair.affine.copy(), "image", source="thin_flair.nii.gz")
    t1 = Volume(moved["t1"].array, moved["t1"].affine, "image", source="t1.nii.gz")
    with pytest.raises(LesionsegError) as caught:
        register_rigid(thin, t1)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("t1.nii.gz: cannot register this image onto thin_flair")
    assert "less than 4" in message and "--no-register" in message
