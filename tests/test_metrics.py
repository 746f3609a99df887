"""Known-answer tests of lesionseg.metrics on hand-built masks (cubes, single voxels, lesion sets)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from lesionseg.metrics import (
    binary_case_metrics,
    compute_surface_distances,
    confusion_counts,
    label_lesions,
    label_map_metrics,
    lesion_detection,
)


def cube(shape: tuple[int, ...], lo: tuple[int, ...], hi: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = True
    return mask


def brute_surface(mask: np.ndarray) -> np.ndarray:
    """Independent surface: a mask voxel with a face-neighbour outside the mask or the grid."""
    padded = np.pad(mask, 1, constant_values=False)
    inner = np.ones_like(mask)
    for axis in range(mask.ndim):
        for shift in (-1, 1):
            inner &= np.roll(padded, shift, axis=axis)[tuple(slice(1, -1) for _ in mask.shape)]
    return mask & ~inner


def brute_distances(pred: np.ndarray, ref: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances by all pairwise distances (no distance transform)."""
    p = np.argwhere(brute_surface(pred)) * np.asarray(spacing)
    r = np.argwhere(brute_surface(ref)) * np.asarray(spacing)
    d = cdist(p, r)
    return d.min(axis=1), d.min(axis=0)


# (name, shift axis, spacing) -> a 10^3 cube against itself moved 2 voxels along one axis
CUBE_CASES = [
    ("isotropic", 0, (1.0, 1.0, 1.0)),
    ("anisotropic-x", 0, (0.7, 1.2, 3.0)),
    ("anisotropic-z", 2, (0.7, 1.2, 3.0)),
]


@pytest.mark.parametrize(("name", "axis", "spacing"), CUBE_CASES, ids=[c[0] for c in CUBE_CASES])
def test_shifted_cubes_known_answer(name: str, axis: int, spacing: tuple[float, float, float]) -> None:
    shape = (16, 16, 16)
    ref = cube(shape, (2, 2, 2), (12, 12, 12))
    lo, hi = [2, 2, 2], [12, 12, 12]
    lo[axis] += 2
    hi[axis] += 2
    pred = cube(shape, tuple(lo), tuple(hi))
    m = binary_case_metrics(pred, ref, spacing)
    # 800 shared voxels of 1000 each: DSC 0.8, IoU 800/1200, FP = FN = 200, TN = 4096 - 1200
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (800, 200, 200, 2896)
    assert m["dsc"] == pytest.approx(0.8)
    assert m["f1"] == pytest.approx(0.8)
    assert m["iou"] == pytest.approx(2 / 3)
    assert m["sensitivity"] == pytest.approx(0.8)
    assert m["precision"] == pytest.approx(0.8)
    assert m["specificity"] == pytest.approx(2896 / 3096)
    assert m["avd"] == 0.0
    # the moved faces are 2 voxels apart along the shift axis; nothing is farther
    assert m["hd"] == pytest.approx(2 * spacing[axis])
    d_pr, d_rp = brute_distances(pred, ref, spacing)
    assert m["hd95"] == pytest.approx(max(np.percentile(d_pr, 95), np.percentile(d_rp, 95)))
    assert m["assd"] == pytest.approx((d_pr.sum() + d_rp.sum()) / (d_pr.size + d_rp.size))
    assert m["ref_volume_ml"] == pytest.approx(1000 * np.prod(spacing) / 1000)
    assert (m["ref_lesions"], m["pred_lesions"], m["lesions_detected"], m["lesions_false"]) == (1, 1, 1, 0)


@pytest.mark.parametrize(
    ("offset", "spacing", "distance"),
    [
        ((1, 0, 0), (2.0, 1.0, 1.0), 2.0),  # two voxels 2 mm apart along x
        ((0, 0, 1), (1.0, 1.0, 2.0), 2.0),  # ... along z (thick slices)
        ((1, 2, 0), (2.0, 1.5, 1.0), math.hypot(2.0, 3.0)),
    ],
)
def test_two_voxels_known_distance(offset, spacing, distance: float) -> None:
    ref = np.zeros((8, 8, 8), dtype=bool)
    pred = np.zeros_like(ref)
    ref[3, 3, 3] = True
    pred[3 + offset[0], 3 + offset[1], 3 + offset[2]] = True
    m = binary_case_metrics(pred, ref, spacing)
    assert m["hd"] == pytest.approx(distance)
    assert m["hd95"] == pytest.approx(distance)
    assert m["assd"] == pytest.approx(distance)
    assert m["dsc"] == 0.0
    assert (m["lesions_detected"], m["lesions_missed"], m["lesions_false"]) == (0, 1, 1)


def test_hd95_is_max_of_directed_percentiles_not_pooled() -> None:
    """Far voxels are 7 % of the prediction's surface but 4 % of both surfaces pooled: our HD95 (max of
    the directed P95, as MONAI and the WMH challenge) sees them, a pooled P95 would not."""
    ref = cube((40, 12, 12), (2, 2, 2), (8, 8, 8))  # 152 surface voxels
    pred = ref.copy()
    pred[28:30, 5:7, 4:7] = True  # 12 far voxels, all surface
    sd = compute_surface_distances(pred, ref, (1.0, 1.0, 1.0))
    pooled = np.percentile(np.concatenate([sd.pred_to_ref, sd.ref_to_pred]), 95)
    assert sd.ref_to_pred.max() == 0.0
    assert sd.hausdorff() == pytest.approx(22.0)  # (29, 6, 6) -> face voxel (7, 6, 6)
    assert sd.hausdorff_percentile(95) == pytest.approx(np.percentile(sd.pred_to_ref, 95))
    assert sd.hausdorff_percentile(95) > 20.0
    assert pooled == 0.0


def test_surface_on_grid_border_and_crop_invariance() -> None:
    """A mask touching the grid border: its border voxels are surface; the crop changes nothing."""
    rng = np.random.default_rng(3)
    ref = rng.random((10, 12, 9)) > 0.6
    pred = rng.random((10, 12, 9)) > 0.6
    spacing = (0.8, 1.1, 2.5)
    sd = compute_surface_distances(pred, ref, spacing)
    d_pr, d_rp = brute_distances(pred, ref, spacing)
    np.testing.assert_allclose(np.sort(sd.pred_to_ref), np.sort(d_pr), atol=1e-9)
    np.testing.assert_allclose(np.sort(sd.ref_to_pred), np.sort(d_rp), atol=1e-9)


def test_two_dimensional_masks() -> None:
    ref = cube((20, 20), (5, 5), (10, 10))
    pred = cube((20, 20), (5, 8), (10, 13))
    m = binary_case_metrics(pred, ref, (0.5, 2.0))
    assert m["dsc"] == pytest.approx(2 * 10 / 50)
    assert m["hd"] == pytest.approx(3 * 2.0)


NAN = float("nan")
# (pred empty, ref empty) -> expected values; see the table in lesionseg.metrics.__doc__
EMPTY_CASES = {
    "both-empty": (
        True,
        True,
        dict(dsc=1.0, iou=1.0, f1=1.0, sensitivity=1.0, precision=1.0, specificity=1.0, avd=0.0, hd=0.0,
             hd95=0.0, assd=0.0, lesion_recall=1.0, lesion_precision=1.0, lesion_f1=1.0),
    ),
    "reference-empty": (
        False,
        True,
        dict(dsc=0.0, iou=0.0, f1=0.0, sensitivity=NAN, precision=0.0, avd=NAN, hd=NAN, hd95=NAN,
             assd=NAN, lesion_recall=1.0, lesion_precision=0.0, lesion_f1=0.0),
    ),
    "prediction-empty": (
        True,
        False,
        dict(dsc=0.0, iou=0.0, f1=0.0, sensitivity=0.0, precision=NAN, specificity=1.0, avd=100.0, hd=NAN,
             hd95=NAN, assd=NAN, lesion_recall=0.0, lesion_precision=1.0, lesion_f1=0.0),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(EMPTY_CASES))
def test_empty_mask_conventions(name: str) -> None:
    pred_empty, ref_empty, expected = EMPTY_CASES[name]
    blob = cube((12, 12, 6), (3, 3, 2), (7, 7, 4))
    pred = np.zeros_like(blob) if pred_empty else blob
    ref = np.zeros_like(blob) if ref_empty else blob
    m = binary_case_metrics(pred, ref, (1.0, 1.0, 3.0))
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(m[key]), key
        else:
            assert m[key] == pytest.approx(value), key
    assert (m["pred_empty"], m["ref_empty"]) == (int(pred_empty), int(ref_empty))


def test_lesion_detection_wmh_definition() -> None:
    ref = np.zeros((20, 20, 20), dtype=bool)
    ref[2:4, 2:4, 2:4] = True  # lesion A
    ref[10, 10, 10] = True  # lesion B (missed)
    ref[15, 15, 15] = ref[16, 16, 16] = True  # lesion C: corner-touching voxels are one lesion
    pred = np.zeros_like(ref)
    pred[3:5, 3:5, 3:5] = True  # hits A
    pred[16, 16, 16] = True  # hits C
    pred[5, 15, 5] = True  # false detection
    d = lesion_detection(pred, ref)
    assert (d.ref_lesions, d.pred_lesions, d.lesions_detected, d.lesions_missed, d.lesions_false) == (
        3,
        3,
        2,
        1,
        1,
    )
    assert d.lesion_recall == pytest.approx(2 / 3)
    assert d.lesion_precision == pytest.approx(2 / 3)
    assert d.lesion_f1 == pytest.approx(2 / 3)
    assert label_lesions(ref)[1] == 3  # 26-connectivity; with 6-connectivity C would count twice


def test_one_prediction_touching_two_lesions() -> None:
    """A bridge over two reference lesions detects both and is one correct detection."""
    ref = np.zeros((10, 10, 3), dtype=bool)
    ref[1:3, 1:3, 1] = ref[6:8, 1:3, 1] = True
    pred = np.zeros_like(ref)
    pred[1:8, 1, 1] = True
    d = lesion_detection(pred, ref)
    assert (d.ref_lesions, d.lesions_detected, d.pred_lesions, d.lesions_false) == (2, 2, 1, 0)
    assert d.lesion_f1 == 1.0


def test_confusion_counts_crop_total() -> None:
    pred = np.array([1, 1, 0, 0], dtype=bool)
    ref = np.array([1, 0, 1, 0], dtype=bool)
    c = confusion_counts(pred, ref, total=10)
    assert (c.tp, c.fp, c.fn, c.tn) == (1, 1, 1, 7)


def test_brats_labels_and_regions() -> None:
    ref = np.zeros((12, 12, 12), dtype=np.uint8)
    ref[2:10, 2:10, 2:10] = 2  # oedema
    ref[4:8, 4:8, 4:8] = 1  # necrosis
    ref[5:7, 5:7, 5:7] = 4  # enhancing
    pred = ref.copy()
    pred[pred == 4] = 1  # enhancing tumour predicted as necrosis
    labels = {"background": 0, "necrotic": 1, "edema": 2, "non_enhancing": 3, "enhancing": 4}
    regions = {"WT": [1, 2, 3, 4], "TC": [1, 3, 4], "ET": [4]}
    rows = label_map_metrics(pred, ref, (1.0, 1.0, 1.0), labels, regions, case="c1", extra={"fold": "0"})
    by = {r["label"]: r for r in rows}
    assert [r["label"] for r in rows] == ["necrotic", "edema", "non_enhancing", "enhancing", "WT", "TC", "ET"]
    assert by["WT"]["kind"] == "region" and by["WT"]["dsc"] == 1.0 and by["TC"]["dsc"] == 1.0
    assert by["ET"]["dsc"] == 0.0 and by["ET"]["pred_empty"] == 1 and math.isnan(by["ET"]["hd95"])
    assert by["non_enhancing"]["dsc"] == 1.0 and by["non_enhancing"]["hd"] == 0.0  # both empty
    assert by["necrotic"]["precision"] == pytest.approx((64 - 8) / 64)
    assert all(r["case"] == "c1" and r["fold"] == "0" for r in rows)


def test_shape_and_spacing_mismatch_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        binary_case_metrics(np.zeros((3, 3, 3)), np.zeros((3, 3, 4)), (1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        compute_surface_distances(np.ones((3, 3, 3)), np.ones((3, 3, 3)), (1, 1))
