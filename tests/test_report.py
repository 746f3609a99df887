"""lesionseg.report: tables, CSV round trip, overlays, box plots and the offline HTML report."""

from __future__ import annotations

import json
import math
import re
import sys

import numpy as np
import pytest

from lesionseg.metrics import label_map_metrics, summarize
from lesionseg.report import (
    FN_COLOUR,
    FP_COLOUR,
    TP_COLOUR,
    lesion_slices,
    markdown_table,
    overlay_slice,
    read_metrics_csv,
    save_box_plots,
    save_case_overlay,
    save_overlay_figure,
    tscnn_table_markdown,
    write_metrics_csv,
    write_report,
)
from lesionseg.report.evaluation import write_evaluation_outputs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_rows(n_cases: int = 4, folds: bool = True) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_cases):
        ref = np.zeros((16, 16, 8), dtype=np.uint8)
        ref[4:10, 4:10, 2:6] = 1
        pred = np.roll(ref, int(rng.integers(0, 3)), axis=0) if i else np.zeros_like(ref)
        extra = {"fold": str(i % 2)} if folds else {}
        rows += label_map_metrics(pred, ref, (1.0, 1.0, 2.0), {"lesion": 1}, case=f"00{i}", extra=extra)
    return rows


def test_overlay_slice_colours() -> None:
    image = np.full((4, 4), 5.0)
    ref = np.zeros((4, 4), dtype=bool)
    pred = np.zeros((4, 4), dtype=bool)
    ref[0, 0] = pred[0, 0] = True  # TP
    pred[1, 1] = True  # FP
    ref[2, 2] = True  # FN
    rgb = overlay_slice(image, ref, pred, window=(0.0, 10.0), alpha=1.0)
    assert rgb.shape == (4, 4, 3)
    np.testing.assert_allclose(rgb[0, 0], TP_COLOUR)
    np.testing.assert_allclose(rgb[1, 1], FP_COLOUR)
    np.testing.assert_allclose(rgb[2, 2], FN_COLOUR)
    np.testing.assert_allclose(rgb[3, 3], [0.5, 0.5, 0.5])  # windowed grey
    assert overlay_slice(None, ref, pred).shape == (4, 4, 3)
    with pytest.raises(ValueError):
        overlay_slice(image, ref[:3], pred)


def test_lesion_slices_picks_most_lesion() -> None:
    ref = np.zeros((5, 5, 10), dtype=bool)
    ref[:, :, 7] = True
    ref[0, 0, 2] = True
    pred = np.zeros_like(ref)
    pred[:2, :2, 4] = True
    assert lesion_slices(ref, pred, 2) == [4, 7]
    assert lesion_slices(np.zeros_like(ref), pred, 3) == [4]
    assert lesion_slices(np.zeros_like(ref), np.zeros_like(ref)) == [5]


def test_overlay_pngs(tmp_path) -> None:
    image = np.random.default_rng(0).normal(size=(20, 24, 6)).astype(np.float32)
    ref = np.zeros(image.shape, dtype=np.uint8)
    ref[5:9, 5:9, 2:4] = 1
    pred = np.roll(ref, 2, axis=1)
    affine = np.diag([-1.0, 1.0, 2.0, 1.0])
    path = save_case_overlay(tmp_path / "o" / "case.png", image, ref, pred, affine=affine, title="t")
    assert path.read_bytes()[:8] == PNG_MAGIC
    panel = (image[:, :, 2], ref[:, :, 2], pred[:, :, 2], "slice 2")
    two_d = save_overlay_figure(tmp_path / "slices.png", [panel, panel], show_image_row=False)
    assert two_d.read_bytes()[:8] == PNG_MAGIC
    assert not list(tmp_path.rglob(".*"))  # no temporary files left behind


def test_csv_round_trip_keeps_ids_and_nan(tmp_path) -> None:
    rows = make_rows()
    path = write_metrics_csv(tmp_path / "metrics.csv", rows)
    back = read_metrics_csv(path)
    assert [r["case"] for r in back] == [r["case"] for r in rows]  # "000" stays text
    assert back[0]["fold"] == "0"
    assert math.isnan(back[0]["hd95"]) and math.isnan(rows[0]["hd95"])  # empty prediction
    assert back[1]["dsc"] == pytest.approx(rows[1]["dsc"], abs=0)
    assert isinstance(back[1]["tp"], int)


def test_summary_counts_undefined_and_fold_medians() -> None:
    rows = make_rows()
    summary = summarize(rows)
    lesion = summary["labels"]["lesion"]
    assert summary["n_cases"] == 4 and summary["has_folds"]
    assert lesion["n_pred_empty"] == 1
    hd95 = lesion["metrics"]["hd95"]
    assert (hd95["n"], hd95["n_defined"], hd95["n_undefined"]) == (4, 3, 1)
    dsc = [r["dsc"] for r in rows]
    assert lesion["metrics"]["dsc"]["median"] == pytest.approx(np.median(dsc))
    assert lesion["metrics"]["dsc"]["iqr"] == pytest.approx(np.subtract(*np.percentile(dsc, [75, 25])))
    folds = lesion["folds"]
    assert list(folds["folds"]) == ["0", "1"]
    fold0 = np.median([rows[0]["dsc"], rows[2]["dsc"]])
    fold1 = np.median([rows[1]["dsc"], rows[3]["dsc"]])
    assert folds["folds"]["0"]["dsc"] == pytest.approx(fold0)
    assert folds["median_over_folds"]["dsc"] == pytest.approx(np.median([fold0, fold1]))
    table = tscnn_table_markdown(folds)
    assert "| Fold | DSC | Sensitivity | Specificity | Hausdorff Distance |" in table
    assert "Median over folds" in table and "Hausdorff Distance: 1 undefined" in table


def test_markdown_table_format() -> None:
    text = markdown_table(["a", "b"], [["x", 0.123456], ["y", float("nan")]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| x | 0.1235 |", "| y | undefined |"]


def test_write_report_is_offline_and_complete(tmp_path) -> None:
    rows = make_rows()
    plot = save_box_plots(tmp_path / "plots" / "box.png", rows, ["dsc", "hd95"])
    outside = save_box_plots(tmp_path.parent / f"{tmp_path.name}-outside.png", rows, ["dsc"])
    figures = [{"path": plot, "caption": "box"}, {"path": outside, "caption": "far", "section": "Other"}]
    extra = [
        {"title": "Training", "table": [{"epoch": 1, "loss": 0.5}]},
        {"title": "Notes", "text": "<b>x</b>"},
    ]
    path = write_report(tmp_path, rows, summarize(rows), figures, title="T <1>", extra_sections=extra)
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and "</html>" in page
    assert 'src="plots/box.png"' in page  # inside the folder: relative link
    assert "data:image/png;base64," in page  # outside: embedded
    assert "T &lt;1&gt;" in page and "&lt;b&gt;x&lt;/b&gt;" in page  # escaped
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # no network resources
    assert "<script" not in page
    assert "Median over folds" in page and "undefined" in page and "Training" in page


def test_evaluation_outputs_layout(tmp_path) -> None:
    rows = make_rows(folds=False)
    paths = write_evaluation_outputs(tmp_path, rows, "Eval", {"prediction": tmp_path / "p.nii.gz"})
    names = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert names == {
        "metrics.csv",
        "summary.json",
        "summary.md",
        "plots/box_dsc.png",
        "plots/box_metrics.png",
        "report.html",
    }
    summary = json.loads(paths["summary.json"].read_text())  # strict JSON: NaN written as null
    assert summary["labels"]["lesion"]["metrics"]["hd95"]["n_undefined"] == 1
    assert summary["inputs"]["prediction"].endswith("p.nii.gz")
    assert "All cases (median)" in summary["tables_markdown"]["lesion"]


def test_report_package_does_not_import_torch() -> None:
    import subprocess

    code = "import sys, lesionseg.report, lesionseg.report.evaluation; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
