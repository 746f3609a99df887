"""The procedural phantom: geometry, contrasts, determinism, the written dataset and its manifest."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import PHANTOM_TEST_SHAPE, PHANTOM_TEST_SPACING

from lesionseg.cli.main import main
from lesionseg.data.manifest import load_case, load_manifest
from lesionseg.phantom import DEFAULT_SHAPE, DEFAULT_SPACING, make_phantom_case, write_phantom_dataset
from lesionseg.phantom.anatomy import CSF, GM, WM
from lesionseg.phantom.dataset import case_rng


@pytest.fixture(scope="module")
def default_case():
    return make_phantom_case(np.random.default_rng(0), DEFAULT_SHAPE, DEFAULT_SPACING)


def test_default_grid_is_oblique_las(default_case) -> None:
    for volume in (default_case.flair, default_case.t1, default_case.label, default_case.brain_mask):
        assert volume.shape == DEFAULT_SHAPE
        np.testing.assert_allclose(volume.spacing, DEFAULT_SPACING, atol=1e-6)
        np.testing.assert_array_equal(volume.affine, default_case.flair.affine)
    affine = default_case.flair.affine
    assert nib.aff2axcodes(affine) == ("L", "A", "S")
    off_diagonal = np.abs(affine[:3, :3] - np.diag(np.diag(affine[:3, :3]))).max()
    assert 0 < off_diagonal < 0.3  # slightly oblique
    assert default_case.flair.array.dtype == np.float32 and default_case.label.array.dtype == np.uint8
    assert set(np.unique(default_case.brain_mask.array)) == {0, 1}


def test_lesions_are_present_and_inside_the_brain(default_case) -> None:
    lesion = default_case.label.array > 0
    assert default_case.lesion_count >= 3 and lesion.sum() >= 100
    assert np.all(default_case.brain_mask.array[lesion] == 1)
    assert np.all(default_case.tissue[lesion] == WM)  # drawn in white matter only


def test_contrasts_look_like_flair_and_t1(default_case) -> None:
    lesion = default_case.label.array > 0
    tissue = default_case.tissue
    wm = (tissue == WM) & ~lesion
    flair, t1 = default_case.flair.array, default_case.t1.array
    assert flair[lesion].mean() > 1.35 * flair[wm].mean()  # hyperintense, like white-matter hyperintensities
    assert t1[lesion].mean() < 0.9 * t1[wm].mean()  # hypointense on T1
    assert flair[tissue == CSF].mean() < 0.5 * flair[wm].mean()  # CSF dark on FLAIR ...
    assert t1[tissue == CSF].mean() < 0.5 * t1[wm].mean()  # ... and on T1
    assert flair[tissue == GM].mean() > flair[wm].mean() and t1[tissue == GM].mean() < t1[wm].mean()
    brain = default_case.brain_mask.array > 0
    assert flair[~brain].min() >= 0  # Rician magnitude
    assert np.isfinite(flair).all() and np.isfinite(t1).all()


def test_same_seed_same_case_and_other_seed_other_case() -> None:
    shape, spacing = PHANTOM_TEST_SHAPE, PHANTOM_TEST_SPACING
    a = make_phantom_case(case_rng(3, 1), shape, spacing)
    b = make_phantom_case(case_rng(3, 1), shape, spacing)
    c = make_phantom_case(case_rng(4, 1), shape, spacing)
    for name in ("flair", "t1", "label", "brain_mask"):
        np.testing.assert_array_equal(getattr(a, name).array, getattr(b, name).array)
    np.testing.assert_array_equal(a.flair.affine, b.flair.affine)
    assert not np.array_equal(a.flair.array, c.flair.array)
    assert not np.array_equal(a.label.array, c.label.array)


@pytest.mark.parametrize(
    ("shape", "spacing"), [((24, 24, 12), (1.0, 1.0, 1.0)), ((32, 32, 16), (6.0, 6.0, 9.0))]
)
def test_small_or_coarse_grids_still_get_a_lesion(shape, spacing) -> None:
    case = make_phantom_case(np.random.default_rng(0), shape, spacing)
    assert case.label.array.sum() > 0
    assert np.all(case.brain_mask.array[case.label.array > 0] == 1)


def test_phantom_dataset_manifest_and_files(phantom_dir: Path) -> None:
    manifest = load_manifest(phantom_dir / "manifest.json")
    assert manifest.channel_names == ["FLAIR", "T1"] and manifest.labels == {"background": 0, "lesion": 1}
    assert len(manifest.cases) == 3 and len(manifest.subjects) == 3
    assert manifest.licence and manifest.spacing_note and manifest.description
    for case in manifest.cases:
        loaded = load_case(manifest, case, phantom_dir)
        assert loaded.image_array().shape == (2, *PHANTOM_TEST_SHAPE)
        assert loaded.label.array.sum() > 0 and loaded.mask.array.sum() > 0
    assert not list(phantom_dir.parent.glob(".data-*"))  # no staging folder left


def test_dataset_check_passes_on_the_phantom(phantom_dir: Path, capsys) -> None:
    rc = main(["dataset", "check", str(phantom_dir / "manifest.json"), "--root", str(phantom_dir)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "phantom_002" in out.out and "0 failed" in out.out
    assert out.err == ""


def test_cases_do_not_depend_on_the_number_of_cases(tmp_path: Path, phantom_dir: Path) -> None:
    write_phantom_dataset(
        tmp_path / "two",
        2,
        seed=0,
        shape=PHANTOM_TEST_SHAPE,
        spacing=PHANTOM_TEST_SPACING,
        skull_stripped=True,
    )  # the phantom_dir fixture is written skull-stripped
    for name in ("flair.nii.gz", "lesion.nii.gz"):
        a = nib.load(tmp_path / "two" / "phantom_001" / name).get_fdata()
        b = nib.load(phantom_dir / "phantom_001" / name).get_fdata()
        np.testing.assert_array_equal(a, b)


def test_phantom_cli_writes_and_overwrites(tmp_path: Path, capsys) -> None:
    out = tmp_path / "ph"
    args = ["phantom", str(out), "--cases", "1", "--seed", "5", "--shape", "32", "40", "24"]
    assert main([*args, "--spacing", "4", "4", "5"]) == 0
    assert "manifest.json" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "phantom_000").iterdir()) == [
        "brainmask.nii.gz",
        "flair.nii.gz",
        "lesion.nii.gz",
        "t1.nii.gz",
    ]
    assert main([*args, "--spacing", "4", "4", "5"]) == 2  # not empty: refused
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--spacing", "4.5", "4.5", "5.5", "--overwrite"]) == 0
    assert "4.5x4.5x5.5" in load_manifest(out).spacing_note
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ph"]  # no staging or old folders left
