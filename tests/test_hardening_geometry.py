"""Geometry the model cannot handle is refused or said, never silently segmented (issue 17 item 1): a T1 that
registers badly, voxel sizes and grids outside the stated range, pixdim 0, a minimum lesion size that
erases the whole mask, a DICOM series with a missing slice. docs/faults.md lists which test covers which."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from lesionseg.cli.main import main
from lesionseg.errors import LesionsegError
from lesionseg.io import Volume, read_volume, write_volume
from lesionseg.phantom import make_phantom_case


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def case():  # noqa: ANN201
    return make_phantom_case(np.random.default_rng(3), (64, 72, 44), (2.2, 2.2, 3.0))


def scaled(volume: Volume, factor: float, source: str) -> Volume:
    affine = volume.affine.copy()
    affine[:3, :3] *= factor
    return Volume(volume.array, affine, "image", source=source)


# ------------------------------------------------------------------------------------------ registration
def test_a_t1_that_registers_badly_is_refused_naming_it_and_the_metric(case, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """A T1 whose affine is scaled 1.5x 'registers' to a pose of degrees and centimetres at a metric near
    -0.2 (good fits: -0.7 to -0.8): one line naming the T1, the metric and --no-register."""
    from lesionseg.preprocess.register import WORST_ACCEPTED_METRIC, register_rigid

    flair = Volume(case.flair.array, case.flair.affine, "image", source="flair.nii.gz")
    with pytest.raises(LesionsegError) as caught:
        register_rigid(flair, scaled(case.t1, 1.5, "t1.nii.gz"))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("t1.nii.gz: registration onto flair.nii.gz fits badly")
    assert "Mattes metric -0." in message and "--no-register" in message
    # a rigidly shifted T1 on another grid registers and passes the check
    shifted = case.t1.affine.copy()
    shifted[:3, 3] += (3.0, -2.0, 1.0)
    _, result = register_rigid(flair, Volume(case.t1.array, shifted, "image", source="t1.nii.gz"))
    assert result.metric < WORST_ACCEPTED_METRIC
    # through the command: one line, exit 2, no mask
    write_volume(case.flair, tmp_path / "flair.nii.gz")
    write_volume(scaled(case.t1, 1.5, ""), tmp_path / "t1.nii.gz")
    out = tmp_path / "out" / "mask.nii.gz"
    assert main(["segment", str(tmp_path / "flair.nii.gz"), str(tmp_path / "t1.nii.gz"), "-o", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{tmp_path / 't1.nii.gz'}: registration onto" in line and "fits badly" in line
    assert not out.parent.exists()


# ------------------------------------------------------------------------------------------ spacing, size
def _affine(spacing: tuple[float, float, float]) -> np.ndarray:
    return np.diag([-spacing[0], spacing[1], spacing[2], 1.0])


@pytest.mark.parametrize(
    ("shape", "spacing", "expected"),
    [
        ((48, 56, 8), (1.0, 1.0, 60.0), "voxel size 1 x 1 x 60 mm is outside"),
        ((48, 56, 32), (0.01, 0.01, 0.01), "voxel size 0.01 x 0.01 x 0.01 mm is outside"),
        ((4, 4, 4), (1.0, 1.0, 1.0), "image of 4 x 4 x 4 voxels is too small"),
    ],
)
def test_voxel_size_or_grid_outside_the_range_is_refused_in_one_line(
    tmp_path: Path,
    capsys,
    shape,
    spacing,
    expected: str,  # noqa: ANN001
) -> None:
    import lesionseg

    rng = np.random.default_rng(0)
    paths = []
    for name in ("flair", "t1"):
        volume = Volume(rng.normal(size=shape).astype(np.float32), _affine(spacing), "image")
        paths.append(write_volume(volume, tmp_path / f"{name}.nii.gz"))
    out = tmp_path / "mask.nii.gz"
    assert main(["segment", str(paths[0]), str(paths[1]), "-o", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"lesionseg segment: error: {paths[0]}: {expected}") and not out.exists()
    with pytest.raises(LesionsegError, match=expected):  # the library road refuses the same
        lesionseg.segment(paths[0], paths[1])


def test_pixdim_zero_without_an_sform_is_refused_not_read_as_1_mm(tmp_path: Path) -> None:
    """nibabel takes a pixdim of 0 as 1 mm (a log message) when the affine comes from qform or pixdim."""
    path = tmp_path / "flair.nii"
    image = nib.Nifti1Image(np.ones((20, 20, 20), np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    nib.save(image, path)
    header = nib.Nifti1Header.from_fileobj(path.open("rb"))
    header["pixdim"][1:4] = (2.0, 0.0, 2.0)
    header["sform_code"] = 0
    raw = bytearray(path.read_bytes())
    raw[: len(header.binaryblock)] = header.binaryblock
    path.write_bytes(bytes(raw))
    with pytest.raises(LesionsegError) as caught:
        read_volume(path)
    assert str(caught.value).startswith(f"{path}: the header's voxel size (pixdim 2, 0, 2) has a zero")
    # with an sform the pixdim is not used: read as before
    header["sform_code"] = 1
    raw[: len(header.binaryblock)] = header.binaryblock
    path.write_bytes(bytes(raw))
    assert np.allclose(read_volume(path).spacing, (2.0, 2.0, 2.0))


# ------------------------------------------------------------------------------------------ minimum size
def test_minimum_lesion_size_that_erases_the_whole_mask_warns_and_records_it(
    tmp_path: Path,
    tiny_volume_factory,
    caplog,  # noqa: ANN001
) -> None:
    from lesionseg.infer.predictor import minimum_lesion_size

    labels = np.zeros((20, 20, 10), np.uint8)
    labels[2:4, 2:4, 2:4] = 1  # 8 voxels of 8 mm3: 64 mm3
    labels[10:12, 10:12, 5] = 1  # 4 voxels: 32 mm3
    with caplog.at_level(logging.WARNING):
        kept, record = minimum_lesion_size(labels, (2.0, 2.0, 2.0), 50.0)
    assert kept.sum() == 8 and not record["erased_all"] and record["lesions_removed"] == 1 and not caplog.text
    with caplog.at_level(logging.WARNING):
        kept, record = minimum_lesion_size(labels, (2.0, 2.0, 2.0), 100.0)
    assert kept.sum() == 0 and record["erased_all"] and record["lesions_before"] == 2
    assert "removed every predicted lesion (2, 96 mm3" in caplog.text and "\n" not in caplog.text.strip()
    # through the command: the sidecar carries the record (a threshold of 0.01 makes a non-empty mask)
    rng = np.random.default_rng(0)
    flair = tiny_volume_factory("flair", (40, 44, 12), array=rng.normal(size=(40, 44, 12)).astype(np.float32))
    t1 = tiny_volume_factory("t1", (40, 44, 12), array=rng.normal(size=(40, 44, 12)).astype(np.float32))
    out = tmp_path / "mask.nii.gz"
    args = ["segment", str(flair), str(t1), "-o", str(out), "--threshold", "0.01", "--min-lesion-mm3", "1e9"]
    with caplog.at_level(logging.WARNING):
        assert main(args) == 0
    steps = json.loads((tmp_path / "mask.json").read_text())["steps"]
    (step,) = [s for s in steps if s["step"] == "min_lesion_size"]
    assert step["erased_all"] and step["lesions_before"] >= 1 and step["min_lesion_mm3"] == 1e9
    assert read_volume(out, "label").array.max() == 0 and "removed every predicted lesion" in caplog.text


# ------------------------------------------------------------------------------------------ DICOM
def test_dicom_series_with_a_missing_slice_is_refused_naming_the_gap(tmp_path: Path, capfd) -> None:  # noqa: ANN001
    from test_dicom import write_dicom_series

    rng = np.random.default_rng(0)
    array = rng.integers(0, 1000, size=(20, 24, 12)).astype(np.int16)
    affine = _affine((1.0, 1.0, 2.0))
    write_dicom_series(array, affine, tmp_path / "series", series="77")
    assert read_volume(tmp_path / "series").shape == (20, 24, 12)  # complete: read as before
    (tmp_path / "series" / "slice0005.dcm").unlink()
    with pytest.raises(LesionsegError) as caught:
        read_volume(tmp_path / "series")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'series'}: DICOM slices are not evenly spaced")
    assert "slice0004.dcm" in message and "slice0006.dcm" in message  # the two beside the gap
    assert "are 4.00 mm apart, the others 2.00 mm" in message
    assert "WARNING" not in capfd.readouterr().err  # ITK's own multi-line warning is not shown
