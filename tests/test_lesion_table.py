"""The per-lesion table: ids, volumes, centroids, probabilities (hand-computed), locations on phantoms with
lesions at known places, the MNI template's structures (as they are and registered), and the CSV that
``predict_files`` writes beside every mask."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import oblique_affine
from scipy import ndimage

import lesionseg
from lesionseg.io import Volume
from lesionseg.metrics.lesion_table import COLUMNS, LesionAnatomy, lesion_table
from lesionseg.report.lesion_table import lesion_table_path, read_lesion_table, write_lesion_table

SPACING = (1.2, 0.9, 2.5)


def three_lesions() -> np.ndarray:
    """A 2x2x2 cube, a single voxel, and two voxels touching only at a corner (one lesion: 26-connected)."""
    mask = np.zeros((12, 10, 8), dtype=np.uint8)
    mask[2:4, 3:5, 4:6] = 1
    mask[9, 1, 1] = 1
    mask[7, 7, 6] = mask[8, 8, 7] = 1
    return mask


def test_ids_volumes_centroids_and_boxes() -> None:
    affine = oblique_affine(SPACING)
    mask = three_lesions()
    table = lesion_table(mask, affine)
    voxel_mm3 = 1.2 * 0.9 * 2.5
    assert [row["id"] for row in table.rows] == [1, 2, 3]
    for row in table.rows:  # the id is the value of the lesion in the labelled volume
        assert np.count_nonzero(table.labels == row["id"]) == row["voxels"]
    assert [row["voxels"] for row in table.rows] == [
        8,
        2,
        1,
    ]  # scan order (first voxel, C order): cube, pair, single
    assert sum(row["volume_mm3"] for row in table.rows) == pytest.approx(11 * voxel_mm3)
    assert sum(row["volume_mm3"] for row in table.rows) == pytest.approx(mask.sum() * np.prod(SPACING))
    cube = table.rows[0]
    assert cube["volume_mm3"] == pytest.approx(8 * voxel_mm3)
    assert (cube["centroid_i"], cube["centroid_j"], cube["centroid_k"]) == (2.5, 3.5, 4.5)
    expected_ras = affine @ np.array([2.5, 3.5, 4.5, 1.0])
    got = [cube["centroid_x_mm"], cube["centroid_y_mm"], cube["centroid_z_mm"]]
    assert got == pytest.approx(expected_ras[:3])
    assert [cube[f"bbox_{a}_{e}"] for a in "ijk" for e in ("min", "max")] == [2, 3, 3, 4, 4, 5]
    pair = table.rows[1]
    assert (pair["centroid_i"], pair["centroid_j"], pair["centroid_k"]) == (7.5, 7.5, 6.5)
    assert {row["location"] for row in table.rows} == {"unknown"}  # no anatomy given
    assert "mean_probability" not in table.columns and "member_spread" not in table.columns


def test_probability_and_member_spread() -> None:
    mask = three_lesions()
    probability = np.zeros(mask.shape, dtype=np.float32)
    probability[2:4, 3:5, 4:6] = 0.6
    probability[3, 4, 5] = 0.9  # one voxel of the cube
    probability[9, 1, 1] = 0.7
    spread = np.full(mask.shape, 0.05, dtype=np.float32)
    spread[2, 3, 4] = 0.45
    table = lesion_table(mask, np.eye(4), probability, spread)
    cube, _, single = table.rows
    assert cube["mean_probability"] == pytest.approx((7 * 0.6 + 0.9) / 8)
    assert cube["max_probability"] == pytest.approx(0.9)
    assert cube["member_spread"] == pytest.approx((7 * 0.05 + 0.45) / 8)
    assert single["mean_probability"] == pytest.approx(0.7) and single["max_probability"] == pytest.approx(
        0.7
    )
    assert table.columns == COLUMNS


def test_empty_mask_gives_no_rows_and_a_header(tmp_path: Path) -> None:
    table = lesion_table(np.zeros((5, 5, 5)), np.eye(4))
    assert table.rows == [] and not table.labels.any()
    path = write_lesion_table(tmp_path / "empty.lesions.csv", table)
    assert path.read_text().splitlines() == [",".join(table.columns)]


def box_anatomy(shape: tuple[int, int, int]) -> LesionAnatomy:
    """A ventricle block in the middle, cortex in the two outermost x planes, a fossa in the lowest z."""
    ventricles = np.zeros(shape, dtype=bool)
    ventricles[14:18, 8:12, 8:12] = True
    cortex = np.zeros(shape, dtype=bool)
    cortex[:2] = cortex[-2:] = True
    fossa = np.zeros(shape, dtype=bool)
    fossa[:, :, :3] = True
    return LesionAnatomy(ventricles, cortex, fossa)


@pytest.mark.parametrize(
    ("voxels", "expected"),
    [
        ([(19, 10, 10)], "periventricular"),  # 2 voxels x 1 mm = 2 mm from the ventricle (x = 14..17)
        ([(20, 10, 10)], "periventricular"),  # 3 mm: the margin is inclusive
        ([(21, 10, 10)], "deep_white_matter"),  # 4 mm
        ([(4, 10, 10)], "juxtacortical"),  # 3 mm from the cortex plane x = 1
        ([(5, 10, 10)], "deep_white_matter"),  # 4 mm
        ([(17, 10, 10), (18, 10, 10)], "periventricular"),  # inside and touching the ventricle
        ([(10, 10, 1)], "infratentorial"),
        ([(1, 10, 1)], "infratentorial"),  # in the fossa and in the cortex: the fossa comes first
        ([(10, 10, 3), (10, 10, 2), (10, 10, 4)], "deep_white_matter"),  # centroid z = 3: above the fossa
        ([(x, 10, 10) for x in range(2, 14)], "periventricular"),  # near both: the ventricle comes first
    ],
)
def test_location_rules_and_precedence(voxels: list[tuple[int, int, int]], expected: str) -> None:
    shape = (32, 20, 20)
    mask = np.zeros(shape, dtype=np.uint8)
    for v in voxels:
        mask[v] = 1
    table = lesion_table(mask, np.eye(4), anatomy=box_anatomy(shape))
    assert len(table.rows) == 1
    assert table.rows[0]["location"] == expected


def test_location_margin_is_in_millimetres() -> None:
    """Two voxels from the ventricle along x: 2 mm at 1 mm spacing, 4 mm at 2 mm spacing."""
    shape = (32, 20, 20)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[19, 10, 10] = 1
    near = lesion_table(mask, np.eye(4), anatomy=box_anatomy(shape))
    far = lesion_table(mask, np.diag([2.0, 1.0, 1.0, 1.0]), anatomy=box_anatomy(shape))
    assert near.rows[0]["location"] == "periventricular"
    assert far.rows[0]["location"] == "deep_white_matter"


def test_locations_on_a_phantom_head() -> None:
    """The project's phantom head (its own ventricles, and its grey matter away from them as the cortex:
    the phantom lines its ventricles with grey matter too), a posterior fossa taken as the lowest 12 mm of
    its brain; one lesion voxel placed at each kind of place."""
    from lesionseg.phantom.anatomy import GM, WM, make_anatomy

    spacing = (2.0, 2.0, 2.5)
    head = make_anatomy(np.random.default_rng(4), (72, 84, 52), spacing)
    z = np.broadcast_to(head.coords[2], head.tissue.shape)
    lowest = z[head.brain].min()
    fossa = head.brain & (z < lowest + 12.0)
    d_vent = ndimage.distance_transform_edt(~head.ventricles, sampling=spacing)
    cortex = (head.tissue == GM) & (d_vent > 8)
    d_ctx = ndimage.distance_transform_edt(~cortex, sampling=spacing)
    above = ~ndimage.binary_dilation(fossa, iterations=3)
    wm = (head.tissue == WM) & above
    places = {
        "periventricular": head.brain & above & ~head.ventricles & (d_vent <= 2.5) & (d_ctx > 8),
        "juxtacortical": wm & (d_ctx <= 2.5) & (d_vent > 12),
        "deep_white_matter": wm & (d_vent > 8) & (d_ctx > 6),
        "infratentorial": fossa & (head.tissue == WM),
    }
    mask = np.zeros(head.tissue.shape, dtype=np.uint8)
    where = {}
    for name, allowed in places.items():
        candidates = np.argwhere(allowed)
        assert len(candidates), f"the phantom has no place for a {name} lesion"
        where[name] = tuple(candidates[len(candidates) // 2])
        mask[where[name]] = 1
    table = lesion_table(
        mask, np.diag([*spacing, 1.0]), anatomy=LesionAnatomy(head.ventricles, cortex, fossa)
    )
    assert len(table.rows) == 4
    for name, voxel in where.items():
        row = next(r for r in table.rows if r["id"] == table.labels[voxel])
        assert row["location"] == name


# --- the MNI152 template's structures -------------------------------------------------------------------

# MNI points (mm) and what a lesion there is (distances checked on the template: the periventricular
# point is 1.4 mm from the left lateral ventricle, the deep one 11 mm from ventricle and cortex).
MNI_LESIONS = {
    (-22.0, -30.0, 18.0): "periventricular",
    (-40.0, 20.0, 40.0): "juxtacortical",
    (25.0, -65.0, -35.0): "infratentorial",  # right cerebellar hemisphere
    (0.0, -25.0, -35.0): "infratentorial",  # pons
    (-28.0, -10.0, 30.0): "deep_white_matter",  # centrum semiovale
}


def template_at_2mm() -> Volume:
    from lesionseg.io.atlas import load_mni_template

    template = load_mni_template()
    if template is None:
        pytest.skip("nilearn's wheel (the MNI template) is not installed")
    affine = template.t1.affine.copy()
    affine[:3, :3] *= 2.0
    return Volume(template.t1.array[::2, ::2, ::2].astype(np.float32), affine, "image")


def lesions_at(grid: Volume, points: dict) -> tuple[np.ndarray, list[str]]:
    """3x3x3-voxel lesions centred on the voxels nearest to MNI ``points`` of a grid in MNI space."""
    mask = np.zeros(grid.shape, dtype=np.uint8)
    inverse = np.linalg.inv(grid.affine)
    for point in points:
        i, j, k = np.rint(inverse @ np.array([*point, 1.0]))[:3].astype(int)
        mask[i - 1 : i + 2, j - 1 : j + 2, k - 1 : k + 2] = 1
    return mask, list(points.values())


def locations_by_centre(table, grid_affine: np.ndarray, mask_points: dict) -> list[str]:  # noqa: ANN001
    inverse = np.linalg.inv(grid_affine)
    out = []
    for point in mask_points:
        voxel = tuple(np.rint(inverse @ np.array([*point, 1.0]))[:3].astype(int))
        out.append(next(r["location"] for r in table.rows if r["id"] == table.labels[voxel]))
    return out


def test_locations_from_the_template_in_mni_space() -> None:
    image = template_at_2mm()
    mask, expected = lesions_at(image, MNI_LESIONS)
    table = lesionseg.lesion_table(image.with_array(mask, "label"), image=image, space="mni")
    assert len(table.rows) == len(MNI_LESIONS)
    assert locations_by_centre(table, image.affine, MNI_LESIONS) == expected


@pytest.mark.slow
def test_locations_survive_an_unknown_rigid_motion_through_registration() -> None:
    """The template placed in a scanner frame rotated 8 deg about z and 5 deg about x and shifted: the
    affine registration must find it again, and every lesion keeps its class."""
    from lesionseg.phantom.case import rotation_matrix

    image = template_at_2mm()
    mask, expected = lesions_at(image, MNI_LESIONS)
    motion = np.eye(4)
    motion[:3, :3] = rotation_matrix((5.0, 0.0, 8.0))
    motion[:3, 3] = (12.0, -20.0, 6.0)
    moved = Volume(image.array, motion @ image.affine, "image")
    table = lesionseg.lesion_table(moved.with_array(mask, "label"), image=moved)
    assert locations_by_centre(table, image.affine, MNI_LESIONS) == expected


def test_too_small_a_field_of_view_gives_unknown() -> None:
    mask = np.zeros((20, 20, 10), dtype=np.uint8)
    mask[5:7, 5:7, 5] = 1
    image = Volume(np.random.default_rng(0).normal(size=mask.shape).astype(np.float32), np.eye(4))
    table = lesionseg.lesion_table(image.with_array(mask, "label"), image=image)
    assert [r["location"] for r in table.rows] == ["unknown"]


# --- files ----------------------------------------------------------------------------------------------


def test_table_path_and_csv_round_trip(tmp_path: Path) -> None:
    assert lesion_table_path(tmp_path / "sub-01_mask.nii.gz") == tmp_path / "sub-01_mask.lesions.csv"
    assert lesion_table_path(Path("a/case.mha")) == Path("a/case.lesions.csv")
    table = lesion_table(three_lesions(), oblique_affine(SPACING), np.full((12, 10, 8), 0.5))
    rows = read_lesion_table(write_lesion_table(tmp_path / "t.lesions.csv", table))
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert rows[0]["volume_mm3"] == pytest.approx(table.rows[0]["volume_mm3"], abs=1e-4)
    assert rows[0]["location"] == "unknown" and rows[0]["mean_probability"] == 0.5


def test_bad_inputs_name_the_file(tmp_path: Path, tiny_volume_factory) -> None:  # noqa: ANN001
    with pytest.raises(lesionseg.LesionsegError, match="missing"):
        lesionseg.lesion_table(tmp_path / "missing.nii.gz")
    mask = tiny_volume_factory("mask", kind="label")
    other = tiny_volume_factory("prob", shape=(6, 7, 6))
    with pytest.raises(lesionseg.LesionsegError, match="prob"):
        lesionseg.lesion_table(mask, probability=other)


def test_predict_files_writes_the_lesion_csv(phantom_dir: Path, tmp_path: Path) -> None:
    from lesionseg.infer.files import OutputPaths, load_predictor, predict_files
    from lesionseg.io import read_volume
    from lesionseg.metrics import label_lesions

    case = sorted(p for p in phantom_dir.iterdir() if p.is_dir())[0]
    outputs = OutputPaths.in_folder(tmp_path, "case", probabilities=True)
    written = predict_files(
        load_predictor(), {"FLAIR": case / "flair.nii.gz", "T1": case / "t1.nii.gz"}, outputs
    )
    table_path = tmp_path / "case_mask.lesions.csv"
    assert written == [outputs.label, outputs.probability, table_path]
    mask = read_volume(outputs.label, "label")
    _, count = label_lesions(mask.array != 0)
    with table_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert count > 0, "the check needs a predicted lesion"
    assert [int(r["id"]) for r in rows] == list(range(1, count + 1))
    assert sum(float(r["volume_mm3"]) for r in rows) == pytest.approx(
        np.count_nonzero(mask.array) * np.prod(mask.spacing), rel=1e-4
    )
    assert all(0.0 <= float(r["mean_probability"]) <= float(r["max_probability"]) <= 1.0 for r in rows)
    with pytest.raises(lesionseg.LesionsegError, match="output exists"):
        predict_files(load_predictor(), {"FLAIR": case / "flair.nii.gz", "T1": case / "t1.nii.gz"}, outputs)
