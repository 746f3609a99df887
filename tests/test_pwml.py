"""TS-CNN's neonatal PWML set: PNG slice stacks, ``label_slices`` (a labelled centre slice with unlabelled
neighbours) from the manifest through preprocessing, training-slice choice and evaluation."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from lesionseg.config.preprocess import PreprocessConfig
from lesionseg.config.train import TrainConfig
from lesionseg.data.cache import preprocess_case
from lesionseg.data.label_slices import labelled_slices
from lesionseg.data.manifest import Case, load_case, load_manifest, manifest_from_dict
from lesionseg.data.slicing import extract_slice
from lesionseg.errors import LesionsegError
from lesionseg.io import Volume, read_slice_stack
from lesionseg.metrics import label_map_metrics
from lesionseg.metrics.pooled import pooled_metrics
from lesionseg.preprocess import preprocess_volumes
from lesionseg.report.cv_report import display_slice
from lesionseg.train.samples import SliceBatcher
from lesionseg.train.trainer import validation_slices

MARK = (2, 5)  # (row, col) of the marked pixel in the PNGs


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def png_case(tmp_path: Path) -> Path:
    """Slices 9, 10, 11 (6 rows x 7 cols, constant 10 * number) with a bright pixel at MARK on slice 10,
    and the label of slice 10 only (255 at MARK)."""
    for number in (9, 10, 11):
        pixels = np.full((6, 7), 10 * number)
        if number == 10:
            pixels[MARK] = 250
        write_png(tmp_path / "inputs" / f"{number}.png", pixels)
    label = np.zeros((6, 7))
    label[MARK] = 255
    write_png(tmp_path / "gts" / "10.png", label)
    return tmp_path


def manifest_raw(label_slices: object = (1,)) -> dict:
    case = {
        "id": "s_10",
        "subject": "s",
        "images": {"T1": {"slices": "inputs/*.png"}},
        "label": {"path": "gts/10.png", "value_map": {"255": 1}},
    }
    if label_slices is not None:
        case["label_slices"] = list(label_slices) if isinstance(label_slices, tuple) else label_slices
    return {"name": "t", "channel_names": ["T1"], "labels": {"background": 0, "lesion": 1}, "cases": [case]}


# -- reading -------------------------------------------------------------------------------------------------
def test_slice_stack_orders_by_number_and_keeps_pixel_places(png_case: Path) -> None:
    paths = sorted((png_case / "inputs").glob("*.png"))  # lexical: 10, 11, 9
    volume = read_slice_stack(paths)
    assert volume.shape == (7, 6, 3)  # (x = column, y = row, z = slice)
    assert [float(volume.array[0, 0, z]) for z in range(3)] == [90.0, 100.0, 110.0]  # 9 < 10 < 11
    assert volume.array[MARK[1], MARK[0], 1] == 250


def test_triplets_at_the_ends_repeat_the_edge_slice(png_case: Path) -> None:
    image = read_slice_stack(sorted((png_case / "inputs").glob("*.png"))).array[None]  # (1, X, Y, 3)
    first, last = extract_slice(image, 0, 3), extract_slice(image, 2, 3)
    assert [float(first[i, 0, 0]) for i in range(3)] == [90.0, 90.0, 100.0]
    assert [float(last[i, 0, 0]) for i in range(3)] == [100.0, 110.0, 110.0]


def test_label_png_lands_on_the_marked_image_voxel(png_case: Path) -> None:
    manifest = manifest_from_dict(manifest_raw())
    loaded = load_case(manifest, manifest.cases[0], png_case)
    assert loaded.label.shape == loaded.reference.shape == (7, 6, 3)
    assert np.argwhere(loaded.label.array).tolist() == [[MARK[1], MARK[0], 1]]
    assert np.argwhere(loaded.reference.array == 250).tolist() == [[MARK[1], MARK[0], 1]]
    np.testing.assert_allclose(loaded.label.affine, loaded.reference.affine)
    # ... and stays aligned through preprocessing (reorientation flips x and y of a PNG stack)
    pre = preprocess_case(loaded, PreprocessConfig(brain_mask="none", target_size=(10, 10)))
    image = pre.image[0]
    assert np.argwhere(pre.label).tolist() == np.argwhere(image == image.max()).tolist()
    assert labelled_slices(manifest.cases[0], pre.record).tolist() == [1]


def test_display_slice_shows_the_png_as_it_is(png_case: Path) -> None:
    volume = read_slice_stack(sorted((png_case / "inputs").glob("*.png")))
    shown = display_slice(volume.array, volume.affine, 1)
    assert shown.shape == (6, 7) and shown[MARK] == 250


def test_label_slices_out_of_range_or_wrong_count(png_case: Path) -> None:
    manifest = manifest_from_dict(manifest_raw([3]))
    with pytest.raises(LesionsegError, match="outside"):
        load_case(manifest, manifest.cases[0], png_case)
    manifest = manifest_from_dict(manifest_raw([0, 1]))  # two labelled slices, one label slice
    with pytest.raises(LesionsegError, match="grid"):
        load_case(manifest, manifest.cases[0], png_case)


# -- manifest field ------------------------------------------------------------------------------------------
def test_label_slices_parsing_and_round_trip() -> None:
    manifest = manifest_from_dict(manifest_raw([2, 1]))
    assert manifest.cases[0].label_slices == (1, 2)
    assert manifest.to_dict()["cases"][0]["label_slices"] == [1, 2]
    assert manifest_from_dict(manifest.to_dict()).to_dict() == manifest.to_dict()
    plain = manifest_from_dict(manifest_raw(None))
    assert plain.cases[0].label_slices is None and "label_slices" not in plain.to_dict()["cases"][0]


@pytest.mark.parametrize("bad", [[], [-1], ["1"], [1, 1], 1, [1.0]])
def test_bad_label_slices_are_refused(bad: object) -> None:
    with pytest.raises(LesionsegError, match="label_slices"):
        manifest_from_dict(manifest_raw(bad))


# -- label_slices through preprocessing ----------------------------------------------------------------------
def slice_case(label_slices: tuple[int, ...]) -> Case:
    return Case("c", "c", {}, label_slices=label_slices)


def test_labelled_slices_follow_a_flipped_z_axis_and_the_crop() -> None:
    array = np.zeros((8, 9, 6), np.float32)
    array[2:6, 2:7, 2:6] = 1.0  # head in original slices 2..5
    flipped = Volume(array, np.diag([1.0, 1.0, -1.0, 1.0]))  # reorientation reverses Z
    pre = preprocess_volumes([flipped], PreprocessConfig(brain_mask="nonzero", crop_margin=(0, 0, 0)))
    # original z 3 -> reoriented 6 - 1 - 3 = 2; the crop keeps reoriented slices 0..3
    assert pre.shape[2] == 4
    assert labelled_slices(slice_case((3,)), pre.record).tolist() == [2]
    assert labelled_slices(slice_case((2, 5)), pre.record).tolist() == [0, 3]
    assert labelled_slices(Case("c", "c", {}), pre.record).tolist() == [0, 1, 2, 3]
    with pytest.raises(LesionsegError, match="cropped away"):
        labelled_slices(slice_case((0,)), pre.record)  # original slice 0 has no head


def test_labelled_slices_refuse_a_stack_axis_that_becomes_in_plane() -> None:
    sagittal = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    volume = Volume(np.ones((5, 6, 4), np.float32), sagittal)
    pre = preprocess_volumes([volume], PreprocessConfig(brain_mask="none", target_size=None))
    with pytest.raises(LesionsegError, match="not axial"):
        labelled_slices(slice_case((1,)), pre.record)


# -- training and validation slices --------------------------------------------------------------------------
def fake_case(labelled: np.ndarray | None) -> SimpleNamespace:
    label = np.zeros((16, 16, 3), np.uint8)
    label[4, 4, 0] = label[8, 8, 1] = 1  # slice 0's label is not a reference when only slice 1 is labelled
    image = np.random.default_rng(0).normal(size=(1, 16, 16, 3)).astype(np.float32)
    return SimpleNamespace(
        image=image, label=label, mask=np.ones((16, 16, 3), np.uint8), labelled_slices=labelled
    )


@pytest.mark.parametrize("slice_filter", ["brain", "lesion", "all"])
def test_training_and_validation_use_labelled_slices_only(slice_filter: str) -> None:
    cfg = TrainConfig(slice_filter=slice_filter, batch_size=2)
    batcher = SliceBatcher([fake_case(np.array([1]))], cfg, [0, 1], 1)
    assert {e.z for e in batcher.entries} == {1}
    assert validation_slices(fake_case(np.array([1])), 64).tolist() == [1]


def test_generic_cases_keep_every_slice() -> None:
    batcher = SliceBatcher([fake_case(None)], TrainConfig(slice_filter="brain"), [0, 1], 1)
    assert sorted(e.z for e in batcher.entries) == [0, 1, 2]
    assert validation_slices(fake_case(None), 64).tolist() == [0, 1, 2]


# -- pooled per-subject metrics ------------------------------------------------------------------------------
def test_subject_rows_pool_the_slices() -> None:
    labels = {"background": 0, "lesion": 1}
    ref_a, pred_a = np.zeros((10, 10), int), np.zeros((10, 10), int)
    ref_a[2, 2] = ref_a[2, 3] = 1  # a 2-pixel lesion, one pixel found
    pred_a[2, 2] = 1
    ref_b, pred_b = np.zeros((10, 10), int), np.zeros((10, 10), int)
    ref_b[5, 5] = 1  # a 1-pixel lesion missed, a false positive 3 px away
    pred_b[5, 8] = 1
    rows = label_map_metrics(pred_a, ref_a, (1.0, 1.0), labels, case="a", extra={"fold": 0, "subject": "s"})
    rows += label_map_metrics(pred_b, ref_b, (1.0, 1.0), labels, case="b", extra={"fold": 0, "subject": "s"})
    (pooled,) = pooled_metrics(rows)
    assert (pooled["subject"], pooled["n_slices"], pooled["fold"]) == ("s", 2, 0)
    assert (pooled["tp"], pooled["fp"], pooled["fn"], pooled["tn"]) == (1, 1, 2, 196)
    assert pooled["dsc"] == pytest.approx(2 / 5)
    assert pooled["sensitivity"] == pytest.approx(1 / 3)
    assert pooled["specificity"] == pytest.approx(196 / 197)
    assert pooled["hd"] == pytest.approx(3.0)  # max of the slices' 1 mm and 3 mm
    assert (pooled["ref_lesions"], pooled["lesions_detected"], pooled["lesions_false"]) == (2, 1, 1)
    assert pooled["lesion_f1"] == pytest.approx(0.5)


# -- the real set --------------------------------------------------------------------------------------------
@pytest.mark.data
def test_real_subject_reads_as_labelled_triplets(shared_data: Path) -> None:
    root = shared_data / "tscnn_pwml_test"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    manifest = load_manifest("tscnn_pwml_test")
    assert len(manifest.cases) == 20 and len(manifest.subjects) == 10
    cases = [c for c in manifest.cases if c.subject == "1"]
    assert [c.id for c in cases] == ["1_43", "1_56"]
    for case in cases:
        loaded = load_case(manifest, case, root)
        assert loaded.reference.shape == (256, 256, 3) and case.label_slices == (1,)
        per_slice = np.count_nonzero(loaded.label.array, axis=(0, 1))
        assert per_slice[0] == per_slice[2] == 0 and per_slice[1] > 0
        centre = np.asarray(Image.open(root / "ori" / "inputs" / "1" / f"{case.id.split('_')[1]}.png"))
        np.testing.assert_array_equal(loaded.reference.array[:, :, 1], centre.T)
    cut = load_manifest("tscnn_pwml_test_cut2skull")
    loaded = load_case(cut, cut.case("1_43"), root)
    assert loaded.reference.shape == (82, 106, 1) and np.count_nonzero(loaded.label.array) == 2


@pytest.mark.data
@pytest.mark.slow
def test_cv_end_to_end_on_the_real_set(shared_data: Path, tmp_path: Path) -> None:
    import torch

    from lesionseg.cli.main import main

    root = shared_data / "tscnn_pwml_test"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    out = tmp_path / "cv"
    settings = ["epochs=1", "steps_per_epoch=2", "width=2", "batch_size=2", "patch_size=[64,64]", "threads=1"]
    argv = ["cv", "--manifest", "tscnn_pwml_test", "--root", str(root), "--method", "tscnn-sbfl"]
    argv += ["--folds", "2", "--out", str(out), "--quiet", "--set", "preprocess.brain_mask=none"]
    for item in settings:
        argv += ["--set", item]
    threads = torch.get_num_threads()  # the run sets one thread (fast on a shared machine); restore it
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 20 and {r["slice"] for r in rows} == {"1"}
    assert {r["fold"] for r in rows} == {"0", "1"}
    for subject in {r["subject"] for r in rows}:  # both cases of a neonate in one fold
        assert len({r["fold"] for r in rows if r["subject"] == subject}) == 1
    with (out / "subjects.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 10
    assert len(list((out / "overlays").glob("*_slice1.png"))) == 20
    report = (out / "report.html").read_text()
    assert report.count("_slice1.png") == 20 and "Per subject" in report


def test_shipped_pwml_manifests() -> None:
    for name, labelled in (("tscnn_pwml_test", (1,)), ("tscnn_pwml_test_cut2skull", (0,))):
        manifest = load_manifest(name)
        assert (len(manifest.cases), len(manifest.subjects), manifest.channel_names) == (20, 10, ["T1"])
        assert manifest.labels == {"background": 0, "lesion": 1} and manifest.licence
        assert "assumed" in manifest.spacing_note.lower() and "1 mm" in manifest.spacing_note
        assert all(c.label_slices == labelled and c.label.value_map == {255: 1} for c in manifest.cases)
        assert all(sum(c.subject == s for c in manifest.cases) == 2 for s in manifest.subjects)


def test_one_slice_path_spec_keeps_its_spacing_in_json() -> None:
    from lesionseg.data.manifest import ImageSpec

    spec = ImageSpec.parse({"path": "gts/10.png", "spacing": [0.5, 0.5, 2.0]}, "label")
    assert ImageSpec.parse(spec.to_json(), "label") == spec
    assert ImageSpec.parse("gts/10.png", "label").to_json() == "gts/10.png"
