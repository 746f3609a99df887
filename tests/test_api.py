"""The public API: ``lesionseg.segment`` gives the mask ``lesionseg segment`` writes, voxel for voxel (file
paths, Volumes with an oblique affine, a real MS case); ``evaluate`` on geometry with a known answer;
``import lesionseg`` does not import torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import lesionseg
from lesionseg.cli.main import main
from lesionseg.io import Volume

MS_CASE = "open_ms_data/cross_sectional/MNI/patient07"


def cli_mask(flair: Path, t1: Path, out: Path) -> np.ndarray:
    assert main(["segment", str(flair), str(t1), "-o", str(out)]) == 0
    return np.asarray(nib.load(out).dataobj)


def phantom_case(phantom_dir: Path) -> Path:
    return sorted(p for p in phantom_dir.iterdir() if p.is_dir())[0]


def oblique_permuted_affine() -> np.ndarray:
    """Array axes (i, j, k) -> world (-y, x, z), rotated 20 degrees about x, anisotropic, shifted: the
    reorientation to RAS must swap and flip axes, so a wrong affine would change the mask."""
    a = np.deg2rad(20.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    permutation = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], dtype=float)
    affine = np.eye(4)
    affine[:3, :3] = rotation @ permutation @ np.diag([3.0, 3.0, 4.0])
    affine[:3, 3] = (-70.5, 80.25, -40.0)
    return affine


def test_segment_on_files_equals_the_cli(phantom_dir: Path, tmp_path: Path) -> None:
    case = phantom_case(phantom_dir)
    flair, t1 = case / "flair.nii.gz", case / "t1.nii.gz"
    expected = cli_mask(flair, t1, tmp_path / "cli.nii.gz")
    labels = lesionseg.segment(flair, t1)
    reference = lesionseg.read_volume(flair)
    assert labels.kind == "label" and labels.array.dtype == np.uint8
    assert np.allclose(labels.affine, reference.affine)
    assert np.array_equal(labels.array, expected)


def test_segment_on_oblique_volumes_equals_the_cli_on_their_files(phantom_dir: Path, tmp_path: Path) -> None:
    case = phantom_case(phantom_dir)
    affine = oblique_permuted_affine()
    flair = Volume(lesionseg.read_volume(case / "flair.nii.gz").array, affine)
    t1 = Volume(lesionseg.read_volume(case / "t1.nii.gz").array, affine)
    lesionseg.write_volume(flair, tmp_path / "flair.nii.gz")
    lesionseg.write_volume(t1, tmp_path / "t1.nii.gz")
    expected = cli_mask(tmp_path / "flair.nii.gz", tmp_path / "t1.nii.gz", tmp_path / "cli.nii.gz")
    labels = lesionseg.segment(flair, t1)
    assert expected.sum() > 0, "the check needs a mask with lesion voxels"
    assert np.array_equal(labels.array, expected)
    assert np.allclose(labels.affine, affine)
    # The same arrays with an identity affine are reoriented differently: the affine is part of the input.
    wrong = lesionseg.segment(Volume(flair.array, np.eye(4)), Volume(t1.array, np.eye(4)))
    assert not np.array_equal(wrong.array, expected)


def test_predict_files_writes_what_lesionseg_predict_writes(phantom_dir: Path, tmp_path: Path) -> None:
    from lesionseg.infer.files import OutputPaths, load_predictor, predict_files
    from lesionseg.models import bundled_model_path

    case = phantom_case(phantom_dir)
    flair, t1 = case / "flair.nii.gz", case / "t1.nii.gz"
    args = [
        "predict",
        "--model",
        str(bundled_model_path()),
        "--flair",
        str(flair),
        "--t1",
        str(t1),
        "--case-id",
        "case",
    ]
    assert main([*args, "--out", str(tmp_path / "cli"), "--probabilities"]) == 0
    outputs = OutputPaths.in_folder(tmp_path / "api", "case", probabilities=True, uncertainty=True)
    written = predict_files(load_predictor(), {"FLAIR": flair, "T1": t1}, outputs)
    table = tmp_path / "api" / "case_mask.lesions.csv"  # the lesion table comes last
    assert written == [outputs.label, outputs.probability, outputs.uncertainty, table]  # 3 networks: spread
    for name in ("case_mask.nii.gz", "case_prob.nii.gz"):
        cli, api = nib.load(tmp_path / "cli" / name), nib.load(tmp_path / "api" / name)
        assert np.array_equal(np.asarray(cli.dataobj), np.asarray(api.dataobj))
        assert np.array_equal(cli.affine, api.affine)
    with pytest.raises(lesionseg.LesionsegError, match="output exists"):
        predict_files(load_predictor(), {"FLAIR": flair, "T1": t1}, outputs)


def test_segment_refuses_bare_arrays(phantom_dir: Path) -> None:
    case = phantom_case(phantom_dir)
    array = lesionseg.read_volume(case / "flair.nii.gz").array
    with pytest.raises(TypeError, match="affine"):
        lesionseg.segment(array, array)  # type: ignore[arg-type]


def test_segment_needs_every_channel_of_the_model(phantom_dir: Path) -> None:
    from lesionseg.models import bundled_model_path

    flair_t1_model = bundled_model_path(("FLAIR", "T1"))
    with pytest.raises(lesionseg.LesionsegError, match="2 channel"):
        lesionseg.segment(phantom_case(phantom_dir) / "flair.nii.gz", model=flair_t1_model)


@pytest.mark.data
@pytest.mark.slow
def test_segment_equals_the_cli_on_an_ms_case(shared_data: Path, tmp_path: Path) -> None:
    """A 20-slice axial slab of open_ms_data patient07, written with the case's affine shifted to the slab
    (the whole case takes about 5 s for both runs on an idle core, minutes on a loaded one)."""
    folder = shared_data / MS_CASE
    paths = {}
    for name in ("FLAIR", "T1"):
        image = nib.load(next(folder.glob(f"{name}_*.nii.gz")))
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(image.slicer[:, :, 80:100], paths[name])
    expected = cli_mask(paths["FLAIR"], paths["T1"], tmp_path / "cli.nii.gz")
    labels = lesionseg.segment(paths["FLAIR"], paths["T1"])
    assert expected.sum() > 0, "the slab must hold lesion voxels for the check to mean something"
    assert np.array_equal(labels.array, expected)


def test_evaluate_known_geometry(tmp_path: Path) -> None:
    """A 4-voxel cube shifted by one voxel along an axis of 2 mm: Dice 3/4, Hausdorff 2 mm."""
    ref = np.zeros((8, 8, 8), np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    pred = np.roll(ref, 1, axis=0)
    affine = np.diag([2.0, 1.0, 1.0, 1.0])
    on_disk = lesionseg.write_volume(Volume(pred, affine, "label"), tmp_path / "pred.nii.gz")
    cases = [
        (pred, ref, (2.0, 1.0, 1.0)),
        (Volume(pred, affine, "label"), Volume(ref, affine, "label"), None),
        (on_disk, Volume(ref, affine, "label"), None),
    ]
    for given, reference, spacing in cases:
        metrics = lesionseg.evaluate(given, reference, spacing=spacing)
        assert metrics["dsc"] == pytest.approx(0.75)
        assert metrics["hd"] == pytest.approx(2.0)
        assert metrics["ref_volume_ml"] == pytest.approx(64 * 2 / 1000)


def test_evaluate_refuses_masks_on_different_grids() -> None:
    mask = np.ones((4, 4, 4), np.uint8)
    with pytest.raises(lesionseg.LesionsegError, match="affine"):
        lesionseg.evaluate(Volume(mask, np.eye(4), "label"), Volume(mask, np.diag([2.0, 1, 1, 1]), "label"))


def test_import_lesionseg_is_cheap() -> None:
    code = "import sys, lesionseg; lesionseg.__all__; print('torch' in sys.modules, 'nibabel' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    public = {"segment", "read_volume", "write_volume", "evaluate", "Predictor", "train"}
    assert public <= set(lesionseg.__all__)


@pytest.mark.slow
def test_the_docstring_examples_run() -> None:
    """segment, evaluate and train as their docstrings show them (a 2-step training on a phantom)."""
    import doctest

    import lesionseg.api
    import lesionseg.evaluate.pair
    import lesionseg.train.run

    result = doctest.testmod(lesionseg.api, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 6 and result.failed == 0
    result = doctest.testmod(lesionseg.evaluate.pair, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0
    result = doctest.testmod(lesionseg.train.run, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


def test_lesionseg_train_stays_callable_after_the_train_package_is_imported() -> None:
    import lesionseg
    import lesionseg.train.run  # noqa: F401  - binds the name lesionseg.train to the package

    assert callable(lesionseg.train)


def test_lesionseg_evaluate_stays_callable_after_the_evaluate_package_is_imported() -> None:
    import lesionseg
    import lesionseg.evaluate.cv  # noqa: F401  - binds the name lesionseg.evaluate to the package

    ref = np.zeros((6, 6, 6), bool)
    ref[1:4, 1:4, 1:4] = True
    assert lesionseg.evaluate(ref, ref, spacing=(1.0, 1.0, 1.0))["dsc"] == 1.0
    with pytest.raises(lesionseg.LesionsegError):
        lesionseg.train("no-such-manifest", ".", "out", method="lesion-unet")
