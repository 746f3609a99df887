"""``lesionseg compare``: two studies of a phantom patient with a lesion added, one grown and one removed,
study 1 moved rigidly; each change found with its status, on study 2's grid; bad input gives one line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from lesionseg.cli.main import main
from lesionseg.config.change import ChangeOptions
from lesionseg.infer.change import classify_change
from lesionseg.io import Volume, read_volume, write_volume
from lesionseg.phantom import make_phantom_case
from lesionseg.phantom.anatomy import WM
from lesionseg.phantom.case import rotation_matrix

SHAPE, SPACING = (64, 76, 44), (2.2, 2.2, 3.0)


def _sphere(shape: tuple, spacing: tuple, centre: np.ndarray, radius_mm: float) -> np.ndarray:
    grid = np.indices(shape).astype(np.float64)
    distance = sum(((grid[a] - centre[a]) * spacing[a]) ** 2 for a in range(3))
    return distance <= radius_mm**2


def _centres(case, rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """WM points at least 7 mm inside the WM, 12 mm from the phantom's lesions and 25 mm from each other."""
    inside = ndimage.distance_transform_edt(case.tissue == WM, sampling=SPACING) >= 7.0
    inside &= ndimage.distance_transform_edt(case.label.array == 0, sampling=SPACING) >= 12.0
    candidates = np.argwhere(inside)
    chosen: list[np.ndarray] = []
    for index in rng.permutation(len(candidates)):
        point = candidates[index]
        if all(np.linalg.norm((point - c) * SPACING) >= 25.0 for c in chosen):
            chosen.append(point)
        if len(chosen) == count:
            return chosen
    raise AssertionError("phantom has no room for the test lesions")


def rigid_motion(
    affine: np.ndarray, angles_deg: tuple, shift_mm: tuple, centre_voxel: np.ndarray
) -> np.ndarray:
    """``affine`` of a head that rotated about its centre and moved: the same array, another world place."""
    centre = affine[:3, :3] @ centre_voxel + affine[:3, 3]
    motion = np.eye(4)
    motion[:3, :3] = rotation_matrix(angles_deg)
    motion[:3, 3] = centre - motion[:3, :3] @ centre + np.asarray(shift_mm)
    return motion @ affine


def make_studies(folder: Path, motion: bool = True) -> dict:
    """Study 1: phantom + lesion A (resolves) + small lesion B; study 2: phantom + B grown + new lesion D,
    another intensity scale and fresh noise. Returns file paths and the three centres (voxels)."""
    rng = np.random.default_rng(5)
    case = make_phantom_case(rng, SHAPE, SPACING)
    base, wm = case.flair.array, float(np.median(case.flair.array[case.tissue == WM]))
    a, b, d = _centres(case, rng, 3)
    spheres = {
        "A": _sphere(SHAPE, SPACING, a, 5.5),
        "B1": _sphere(SHAPE, SPACING, b, 4.0),
        "B2": _sphere(SHAPE, SPACING, b, 7.0),
        "D": _sphere(SHAPE, SPACING, d, 5.5),
    }

    def study(lesions: list[str], scale: float) -> tuple[np.ndarray, np.ndarray]:
        image, mask = base.copy(), case.label.array > 0
        for name in lesions:
            image[spheres[name]] = 1.7 * wm
            mask |= spheres[name]
        image = ndimage.gaussian_filter(image, 0.5) + rng.normal(0, 0.02 * wm, SHAPE)
        return (np.abs(image) * scale).astype(np.float32), mask.astype(np.uint8)

    flair1, mask1 = study(["A", "B1"], 1.0)
    flair2, mask2 = study(["B2", "D"], 1.6)
    affine2 = case.flair.affine
    centre = (np.asarray(SHAPE) - 1) / 2
    affine1 = rigid_motion(affine2, (3.0, -2.0, 4.0), (3.0, -4.0, 2.5), centre) if motion else affine2
    paths = {}
    for name, array, affine, kind in (
        ("flair1", flair1, affine1, "image"),
        ("mask1", mask1, affine1, "label"),
        ("flair2", flair2, affine2, "image"),
        ("mask2", mask2, affine2, "label"),
        ("t1_1", case.t1.array, affine1, "image"),
        ("t1_2", case.t1.array, affine2, "image"),
    ):
        paths[name] = write_volume(Volume(array, affine, kind), folder / f"{name}.nii.gz")
    return {"paths": paths, "A": a, "B": b, "D": d}


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> dict:
    return make_studies(tmp_path_factory.mktemp("studies"))


def _status_at(rows: list[dict], point: np.ndarray, study: int) -> set[str]:
    return {r["status"] for r in rows if int(r["study"]) == study and _contains(r, point)}


def _contains(row: dict, point: np.ndarray) -> bool:
    return np.linalg.norm((np.array([int(row["i"]), int(row["j"]), int(row["k"])]) - point) * SPACING) < 9.0


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(["compare", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.err


def test_added_grown_removed_lesions_found_with_rigid_motion(studies, tmp_path, capsys) -> None:
    p = studies["paths"]
    out = tmp_path / "out"
    code, err = run_cli([p["flair1"], p["flair2"], "--masks", p["mask1"], p["mask2"], "-o", out], capsys)
    assert code == 0, err
    change = read_volume(out / "change.nii.gz", "label")
    flair2 = read_volume(p["flair2"])
    assert change.shape == flair2.shape and np.allclose(change.affine, flair2.affine, atol=1e-4)
    rows = list(csv.DictReader((out / "lesions.csv").open()))
    summary = json.loads((out / "summary.json").read_text())
    # study 1 sits on another world place: the registration found the motion (3, -2, 4 degrees)
    assert (
        max(abs(abs(a) - e) for a, e in zip(summary["registration"]["angles_deg"], (3, 2, 4), strict=True))
        < 1.0
    )
    # A (study 1 only) is resolved, B grew, D is new; the centre voxels carry those codes on study 2's grid
    b, d = (tuple(int(v) for v in studies[k]) for k in "BD")
    assert change.array[d] == 1
    assert change.array[tuple(np.add(b, (0, 0, 0)))] == 0  # B's core was lesion at both times
    b_shell = _sphere(SHAPE, SPACING, studies["B"], 7.0) & ~_sphere(SHAPE, SPACING, studies["B"], 5.0)
    assert np.mean(change.array[b_shell] == 2) > 0.6
    assert summary["counts"]["new"] == 1 and summary["counts"]["enlarging"] == 1
    assert summary["counts"]["resolved"] == 1 and summary["counts"]["shrinking"] == 0
    assert _status_at(rows, studies["D"], 2) == {"new"}
    assert _status_at(rows, studies["B"], 2) == {"enlarging"}
    resolved = [r for r in rows if r["status"] == "resolved"]
    assert len(resolved) == 1 and resolved[0]["study"] == "1"
    # A is drawn on study 1's grid; on study 2's grid it lies where A's voxels went: all code 3
    assert change.array[change.array == 3].size > 0
    assert {r["status"] for r in rows} <= {"new", "enlarging", "resolved", "stable"}
    assert summary["lesion_volume_ml"]["study2"] > summary["lesion_volume_ml"]["study1"]
    html = (out / "report.html").read_text()
    assert html.count("<img") == 2  # D and B, each at both times in one figure
    assert all(
        (out / "overlays" / f"{r['lesion']}.png").is_file()
        for r in rows
        if r["status"] in ("new", "enlarging") and r["study"] == "2"
    )


def test_without_subtraction_evidence_a_mask_flicker_is_not_a_change() -> None:
    """A lesion drawn larger at study 2 with no brighter voxels is stable; without the check it enlarges."""
    m1 = np.zeros((30, 30, 20), dtype=bool)
    m1[10:14, 10:14, 8:12] = True
    m2 = np.zeros_like(m1)
    m2[9:16, 9:16, 7:13] = True
    flat = np.zeros(m1.shape, dtype=np.float32)
    _, rows = classify_change(m1, m2, (1.0, 1.0, 1.0), flat)
    assert {r.status for r in rows} == {"stable"} and "subtraction z" in rows[0].note
    change, rows = classify_change(m1, m2, (1.0, 1.0, 1.0), None, ChangeOptions(min_subtraction_z=None))
    assert {r.status for r in rows} == {"enlarging"} and change[m2 & ~m1].min() == 2 and change[m1].max() == 0


def test_split_lesion_is_one_group() -> None:
    m1 = np.zeros((30, 30, 10), dtype=bool)
    m1[5:20, 10:13, 4:6] = True
    m2 = m1.copy()
    m2[12, :, :] = False  # the lesion split in two at study 2
    change, rows = classify_change(m1, m2, (1.0, 1.0, 1.0), np.zeros(m1.shape, np.float32))
    assert len(rows) == 3 and len({r.group for r in rows}) == 1 and not change.any()


def test_missing_file_one_line_exit_2_nothing_left(studies, tmp_path, capsys) -> None:
    p = studies["paths"]
    out = tmp_path / "out"
    code, err = run_cli(
        [tmp_path / "nope.nii.gz", p["flair2"], "--masks", p["mask1"], p["mask2"], "-o", out], capsys
    )
    assert (
        code == 2 and len(err.strip().splitlines()) == 1 and "nope.nii.gz" in err and "file not found" in err
    )
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--masks", "{mask1}"], "--masks takes two files"),
        (["--t1", "{t1_1}", "--masks", "{mask1}", "{mask2}"], "--t1 takes two files"),
        (["--masks", "{mask2}", "{mask2}"], "study-1 mask affine differs"),
        (["--masks", "{mask1}", "{mask2}", "--model", "{mask1}"], "not both"),
        (["--min-change-fraction", "-1", "--masks", "{mask1}", "{mask2}"], "min_change_fraction"),
    ],
)
def test_mismatched_arguments_one_line_exit_2(studies, tmp_path, capsys, extra, words) -> None:
    p = studies["paths"]
    out = tmp_path / "existing"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = [p["flair1"], p["flair2"], *[e.format(**p) for e in extra], "-o", out]
    code, err = run_cli(args, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert sorted(x.name for x in out.iterdir()) == ["keep.txt"]  # nothing written, nothing removed


def test_model_that_needs_a_t1_says_so(studies, tmp_path, capsys) -> None:
    from lesionseg.models import bundled_model_path

    p = studies["paths"]
    flair_t1_model = bundled_model_path(("FLAIR", "T1"))  # without --t1 the default is the FLAIR model
    code, err = run_cli([p["flair1"], p["flair2"], "--model", flair_t1_model, "-o", tmp_path / "out"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--t1 STUDY1_T1 STUDY2_T1" in err
    assert not (tmp_path / "out").exists()


def test_earlier_outputs_are_kept_without_overwrite(studies, tmp_path, capsys) -> None:
    p = studies["paths"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    code, err = run_cli([p["flair1"], p["flair2"], "--masks", p["mask1"], p["mask2"], "-o", out], capsys)
    assert code == 2 and "--overwrite" in err and (out / "summary.json").read_text() == "{}"


def test_cli_in_a_subprocess(tmp_path) -> None:
    """The console entry point end to end, without motion: nothing changes where the masks agree."""
    studies = make_studies(tmp_path / "in", motion=False)
    p = studies["paths"]
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = [p["flair1"], p["flair2"], "--masks", p["mask1"], p["mask2"], "-o", out]
    done = subprocess.run(
        [sys.executable, "-m", "lesionseg.cli.main", "compare", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "new 1, enlarging 1, shrinking 0, resolved 1" in done.stdout
    assert {f.name for f in out.iterdir()} >= {"change.nii.gz", "lesions.csv", "summary.json", "report.html"}


def test_python_api_matches_the_command(studies, tmp_path) -> None:
    import lesionseg

    p = studies["paths"]
    result = lesionseg.compare(
        p["flair1"], p["flair2"], masks=(p["mask1"], p["mask2"]), out_dir=tmp_path / "o"
    )
    assert result.summary["counts"]["new"] == 1 and result.change.shape == read_volume(p["flair2"]).shape
    assert np.array_equal(read_volume(tmp_path / "o" / "change.nii.gz", "label").array, result.change.array)
