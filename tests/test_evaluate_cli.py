"""`lesionseg evaluate` and `lesionseg report` end to end, and their one-line errors for bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lesionseg.cli.main import main
from lesionseg.io import Volume, write_volume
from lesionseg.report import read_metrics_csv

AFFINE = np.diag([1.0, 1.0, 2.5, 1.0])
SHAPE = (24, 20, 10)


def write(path: Path, array: np.ndarray, affine: np.ndarray = AFFINE, kind: str = "label") -> Path:
    write_volume(Volume(array, affine, kind), path)
    return path


def lesion_mask(shift: int = 0) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[4 + shift : 10 + shift, 5:11, 3:6] = 1
    mask[15, 15, 7] = 1
    return mask


@pytest.fixture
def pair(tmp_path: Path) -> dict[str, Path]:
    image = np.random.default_rng(0).normal(100, 10, SHAPE).astype(np.float32)
    return {
        "ref": write(tmp_path / "ref.nii.gz", lesion_mask()),
        "pred": write(tmp_path / "case1.nii.gz", lesion_mask(shift=1)),
        "image": write(tmp_path / "flair.nii.gz", image, kind="image"),
    }


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_pair_writes_every_output(pair, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["evaluate", "--pred", pair["pred"], "--ref", pair["ref"], "--image", pair["image"], "--out", out]
    code, stdout, _ = run_cli(argv, capsys)
    assert code == 0, stdout
    for name in ("metrics.csv", "summary.json", "summary.md", "report.html"):
        assert (out / name).is_file(), name
    assert (out / "plots" / "box_dsc.png").is_file() and (out / "overlays" / "case1.png").is_file()
    rows = read_metrics_csv(out / "metrics.csv")
    assert len(rows) == 1 and rows[0]["case"] == "case1" and rows[0]["label"] == "lesion"
    # 6x6x3 block moved by one voxel + one unmoved voxel: TP = 5*6*3 + 1 of 109 voxels each
    assert rows[0]["dsc"] == pytest.approx(2 * 91 / 218)
    assert rows[0]["hd"] == pytest.approx(1.0)
    assert rows[0]["ref_volume_ml"] == pytest.approx(109 * 2.5 / 1000)
    assert "case1" in stdout and "report.html" in stdout


def test_folder_with_manifest_folds_and_report_rebuild(tmp_path, capsys) -> None:
    data = tmp_path / "data"
    preds = tmp_path / "preds"
    cases = []
    for i in range(4):
        write(data / f"c{i}_lab.nii.gz", lesion_mask())
        write(data / f"c{i}_flair.nii.gz", np.ones(SHAPE, np.float32), kind="image")
        cases.append(
            {
                "id": f"c{i}",
                "subject": f"s{i}",
                "images": {"FLAIR": f"c{i}_flair.nii.gz"},
                "label": f"c{i}_lab.nii.gz",
            }
        )
        suffix = ["", "_mask", "_seg", ""][i]
        write(
            preds / f"c{i}{suffix}.nii.gz", lesion_mask(shift=i % 2) if i != 3 else np.zeros(SHAPE, np.uint8)
        )
    manifest = {
        "name": "toy",
        "channel_names": ["FLAIR"],
        "labels": {"background": 0, "lesion": 1},
        "cases": cases,
    }
    (tmp_path / "toy.json").write_text(json.dumps(manifest))
    splits = {
        "folds": [
            {"fold": 0, "train": ["s2", "s3"], "test": ["s0", "s1"]},
            {"fold": 1, "train": ["s0", "s1"], "test": ["s2", "s3"]},
        ]
    }
    (tmp_path / "splits.json").write_text(json.dumps(splits))
    out = tmp_path / "out"
    argv = ["evaluate", "--pred-dir", preds, "--manifest", tmp_path / "toy.json", "--root", data]
    code, stdout, err = run_cli([*argv, "--folds", tmp_path / "splits.json", "--out", out], capsys)
    assert code == 0, err
    rows = read_metrics_csv(out / "metrics.csv")
    assert [(r["case"], r["fold"]) for r in rows] == [("c0", "0"), ("c1", "0"), ("c2", "1"), ("c3", "1")]
    summary = json.loads((out / "summary.json").read_text())
    lesion = summary["labels"]["lesion"]
    assert summary["has_folds"] and lesion["n_pred_empty"] == 1
    assert lesion["metrics"]["hd95"]["n_undefined"] == 1  # the empty prediction is counted, not dropped
    assert "Median over folds" in summary["tables_markdown"]["lesion"]
    assert len(list((out / "overlays").glob("*.png"))) == 4
    # `lesionseg report` rebuilds from the CSV (here: with the folds removed by hand)
    (out / "report.html").unlink()
    text = (
        (out / "metrics.csv")
        .read_text()
        .replace(",0,lesion,", ",,lesion,")
        .replace(",1,lesion,", ",,lesion,")
    )
    (out / "metrics.csv").write_text(text)
    code, stdout, err = run_cli(["report", out], capsys)
    assert code == 0, err
    html = (out / "report.html").read_text()
    assert "overlays/c3.png" in html and "All cases (median)" in html
    assert not json.loads((out / "summary.json").read_text())["has_folds"]


def error_of(argv: list, capsys) -> str:
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lesionseg "), err
    return lines[0]


def test_error_grid_shape(pair, tmp_path, capsys) -> None:
    other = write(tmp_path / "small.nii.gz", np.zeros((24, 20, 9), np.uint8))
    line = error_of(["evaluate", "--pred", other, "--ref", pair["ref"], "--out", tmp_path / "o"], capsys)
    assert "small.nii.gz" in line and "ref.nii.gz" in line and "grid" in line


def test_error_affine(pair, tmp_path, capsys) -> None:
    moved = AFFINE.copy()
    moved[0, 3] = 5.0
    other = write(tmp_path / "moved.nii.gz", lesion_mask(), affine=moved)
    line = error_of(["evaluate", "--pred", other, "--ref", pair["ref"], "--out", tmp_path / "o"], capsys)
    assert "moved.nii.gz" in line and "affine" in line and "ref.nii.gz" in line


def test_error_image_grid(pair, tmp_path, capsys) -> None:
    image = write(tmp_path / "img.nii.gz", np.ones((5, 5, 5), np.float32), kind="image")
    argv = [
        "evaluate",
        "--pred",
        pair["pred"],
        "--ref",
        pair["ref"],
        "--image",
        image,
        "--out",
        tmp_path / "o",
    ]
    assert "img.nii.gz" in error_of(argv, capsys)


def test_error_non_binary_prediction(pair, tmp_path, capsys) -> None:
    bad = write(tmp_path / "bad.nii.gz", lesion_mask() * 255)
    line = error_of(["evaluate", "--pred", bad, "--ref", pair["ref"], "--out", tmp_path / "o"], capsys)
    assert "bad.nii.gz" in line and "[255]" in line and "binary" in line


def test_error_probability_map(pair, tmp_path, capsys) -> None:
    probs = write(tmp_path / "probs.nii.gz", lesion_mask() * 0.7, kind="image")
    line = error_of(["evaluate", "--pred", probs, "--ref", pair["ref"], "--out", tmp_path / "o"], capsys)
    assert "probs.nii.gz" in line and "non-integer" in line


def test_error_missing_files(pair, tmp_path, capsys) -> None:
    missing = tmp_path / "nope.nii.gz"
    line = error_of(["evaluate", "--pred", missing, "--ref", pair["ref"], "--out", tmp_path / "o"], capsys)
    assert "nope.nii.gz" in line and "not found" in line
    empty = tmp_path / "empty_preds"
    empty.mkdir()
    manifest = {"channel_names": ["FLAIR"], "labels": {"background": 0, "lesion": 1}, "cases": [
        {"id": "c0", "images": {"FLAIR": "flair.nii.gz"}, "label": "ref.nii.gz"}]}  # fmt: skip
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    argv = ["evaluate", "--pred-dir", empty, "--manifest", tmp_path / "m.json", "--root", tmp_path]
    line = error_of([*argv, "--out", tmp_path / "o"], capsys)
    assert "empty_preds" in line and "c0" in line
    assert not (tmp_path / "o" / "report.html").exists()


def test_error_usage(pair, tmp_path, capsys) -> None:
    assert "--pred-dir needs" in error_of(
        ["evaluate", "--pred-dir", tmp_path, "--out", tmp_path / "o"], capsys
    )
    assert "--ref" in error_of(["evaluate", "--pred", pair["pred"], "--out", tmp_path / "o"], capsys)
    assert "metrics table not found" in error_of(["report", tmp_path], capsys)


@pytest.mark.data
def test_real_mask_against_dilated_copy(shared_data: Path, tmp_path, capsys) -> None:
    """patient07's consensus mask against itself dilated by one voxel (``shared_data``: tests/conftest.py,
    ../shared/data or $LESIONSEG_DATA; skipped when absent)."""
    folder = shared_data / "open_ms_data" / "cross_sectional" / "MNI" / "patient07"
    ref_path = next(folder.glob("GOLD_STANDARD*.nii.gz"))
    flair = next(folder.glob("FLAIR*.nii.gz"))
    from scipy import ndimage

    from lesionseg.io import read_volume

    ref = read_volume(ref_path, "label")
    dilated = ndimage.binary_dilation(ref.array > 0).astype(np.uint8)
    pred = write_volume(ref.with_array(dilated), tmp_path / "patient07.nii.gz", reference=ref)
    out = tmp_path / "out"
    code, _, err = run_cli(
        ["evaluate", "--pred", pred, "--ref", ref_path, "--image", flair, "--out", out], capsys
    )
    assert code == 0, err
    row = read_metrics_csv(out / "metrics.csv")[0]
    assert row["sensitivity"] == 1.0 and row["lesion_recall"] == 1.0 and row["lesions_false"] == 0
    assert row["ref_voxels"] == 1300 and 0.3 < row["dsc"] < 0.9
    assert row["hd"] == pytest.approx(2.0) and not math.isnan(row["hd95"])
    assert (out / "report.html").stat().st_size > 1000


def test_folds_from_manifest_and_skip_missing(tmp_path, capsys) -> None:
    cases = []
    for i in range(3):
        write(tmp_path / f"lab{i}.nii.gz", lesion_mask())
        write(tmp_path / f"img{i}.nii.gz", np.ones(SHAPE, np.float32), kind="image")
        case = {"id": f"c{i}", "images": {"T1": f"img{i}.nii.gz"}, "label": f"lab{i}.nii.gz", "fold": i % 2}
        cases.append(case)
        if i < 2:
            write(tmp_path / "preds" / f"c{i}.nii.gz", lesion_mask(shift=1))
    manifest = {"channel_names": ["T1"], "labels": {"background": 0, "lesion": 1}, "cases": cases}
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    argv = [
        "evaluate",
        "--pred-dir",
        tmp_path / "preds",
        "--manifest",
        tmp_path / "m.json",
        "--root",
        tmp_path,
    ]
    assert "c2" in error_of([*argv, "--out", tmp_path / "o"], capsys)
    code, stdout, err = run_cli(
        [*argv, "--skip-missing", "--overlay-slices", "0", "--out", tmp_path / "o"], capsys
    )
    assert code == 0, err
    assert [(r["case"], r["fold"]) for r in read_metrics_csv(tmp_path / "o" / "metrics.csv")] == [
        ("c0", "0"),
        ("c1", "1"),
    ]
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["skipped_cases"] == ["c2"] and "skipped 1" in stdout
    assert not (tmp_path / "o" / "overlays").exists()


def test_pair_multiclass_with_manifest_regions(tmp_path, capsys) -> None:
    ref = np.zeros(SHAPE, np.uint8)
    ref[4:14, 4:14, 2:8] = 2
    ref[6:10, 6:10, 3:6] = 1
    ref[7:9, 7:9, 4:5] = 4
    pred = ref.copy()
    pred[pred == 4] = 1
    manifest = {
        "channel_names": ["FLAIR"],
        "labels": {"background": 0, "necrosis": 1, "oedema": 2, "non-enhancing": 3, "enhancing": 4},
        "regions": {"WT": [1, 2, 3, 4], "TC": [1, 3, 4], "ET": [4]},
        "cases": [],
    }
    (tmp_path / "brats.json").write_text(json.dumps(manifest))
    paths = [write(tmp_path / "r.nii.gz", ref), write(tmp_path / "p.nii.gz", pred)]
    argv = ["evaluate", "--ref", paths[0], "--manifest", tmp_path / "brats.json", "--out", tmp_path / "o"]
    code, stdout, err = run_cli([*argv, "--pred", paths[1]], capsys)
    assert code == 0, err
    rows = {r["label"]: r for r in read_metrics_csv(tmp_path / "o" / "metrics.csv")}
    assert list(rows) == ["necrosis", "oedema", "non-enhancing", "enhancing", "WT", "TC", "ET"]
    assert rows["WT"]["dsc"] == 1.0 and rows["TC"]["dsc"] == 1.0 and rows["ET"]["dsc"] == 0.0
    assert rows["non-enhancing"]["dsc"] == 1.0 and rows["non-enhancing"]["ref_empty"] == 1  # both empty
    assert "p: WT DSC 1.0000" in stdout
    bad = write(tmp_path / "bad.nii.gz", np.where(pred == 2, 5, pred).astype(np.uint8))
    line = error_of([*argv, "--pred", bad], capsys)
    assert "bad.nii.gz" in line and "[5]" in line
