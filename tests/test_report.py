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


EVIL = "<script>alert(1)</script>"


def evil_rows(n_cases: int = 3) -> list[dict]:
    rows = []
    for i in range(n_cases):
        ref = np.zeros((16, 16, 8), dtype=np.uint8)
        ref[4:10, 4:10, 2:6] = 1
        pred = np.roll(ref, i, axis=0)
        extra = {"fold": str(i % 2), "subject": f"{EVIL}{i}"}
        rows += label_map_metrics(pred, ref, (1.0, 1.0, 2.0), {EVIL: 1}, case=f"{EVIL}{i}", extra=extra)
    return rows


def assert_escaped(page: str) -> None:
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_evaluation_report_escapes_label_and_case_names(tmp_path) -> None:
    rows = evil_rows()
    paths = write_evaluation_outputs(
        tmp_path, rows, f"Eval {EVIL}", {EVIL: EVIL}, skipped=[EVIL], provenance={"model": EVIL}
    )
    page = paths["report.html"].read_text()
    assert_escaped(page)
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6  # title, label, cases, input, model


def test_cv_report_escapes_label_and_case_names(tmp_path) -> None:
    from lesionseg.report.cv_report import write_cv_report

    rows = evil_rows()
    write_metrics_csv(tmp_path / "metrics.csv", rows)
    subject_rows = [dict(r, n_slices=2) for r in rows]
    write_metrics_csv(tmp_path / "subjects.csv", subject_rows)
    summary = summarize(rows) | {"method": EVIL, "dataset": EVIL, "subjects": summarize(subject_rows)}
    (tmp_path / "summary.json").write_text(json.dumps(summary, default=float))
    curve = save_box_plots(tmp_path / "fold_0" / "wmh-dice" / "loss_curve.png", rows, ["dsc"])  # any PNG
    page = write_cv_report(tmp_path).read_text()
    assert_escaped(page)
    assert f'src="{curve.relative_to(tmp_path).as_posix()}"' in page and "<h2>Training curves</h2>" in page
    assert "<dt>method</dt><dd>&lt;script&gt;alert(1)&lt;/script&gt;</dd>" in page
    # the per-subject section (once raw HTML built by hand) holds the label name as a heading, escaped
    assert "<h3>&lt;script&gt;alert(1)&lt;/script&gt;</h3>" in page
    assert "Hausdorff Distance (mm)" in page


def test_html_section_markup_only_when_trusted(tmp_path) -> None:
    from lesionseg.report import html_table

    extra = [{"title": "raw", "html": "<b>raw</b>"}, {"title": "table", "html": html_table(["a"], [[EVIL]])}]
    page = write_report(tmp_path, [], {}, extra_sections=extra).read_text()
    assert "&lt;b&gt;raw&lt;/b&gt;" in page and "<b>raw</b>" not in page
    assert '<th class="text">a</th>' in page  # markup built by html_table is kept
    assert_escaped(page)


def test_report_provenance_units_and_loss_curve(tmp_path, monkeypatch) -> None:
    from lesionseg import __version__
    from lesionseg.report.evaluation import provenance_from_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"not read")
    (run / "config.json").write_text(json.dumps({"method": "wmh-dice", "threshold": 0.35}))
    history = [
        {"epoch": e, "steps": 10, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_dice": 0.1 * e, "lr": 1e-3}
        for e in range(1, 4)
    ]
    write_metrics_csv(run / "history.csv", history)
    monkeypatch.setattr(sys, "argv", ["lesionseg", "evaluate", "--pred", "p.nii.gz"])
    provenance = provenance_from_run(run / "best.pt")
    assert provenance == {"model": str(run / "best.pt"), "method": "wmh-dice", "threshold": 0.35}
    out = tmp_path / "eval"
    paths = write_evaluation_outputs(out, make_rows(), "Eval", provenance=provenance)
    page = paths["report.html"].read_text()
    block = page[page.index("<h2>Provenance</h2>") : page.index("</dl>")]
    for key, value in [
        ("model", str(run / "best.pt")),
        ("method", "wmh-dice"),
        ("threshold", "0.35"),
        ("lesionseg version", __version__),
        ("command", "lesionseg evaluate --pred p.nii.gz"),
    ]:
        assert f"<dt>{key}</dt><dd>{value}</dd>" in block
    assert re.search(r"<dt>date</dt><dd>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d</dd>", block)
    saved = json.loads(paths["summary.json"].read_text())["provenance"]
    assert saved["method"] == "wmh-dice" and saved["command"] == "lesionseg evaluate --pred p.nii.gz"
    # the loss curve drawn from the run's history, linked from the report
    assert (out / "plots" / "loss_curve.png").read_bytes().startswith(PNG_MAGIC)
    assert 'src="plots/loss_curve.png"' in page
    # units on every distance and volume column
    units = ["HD95 (mm)", "ASSD (mm)", "Hausdorff (mm)", "Reference volume (mL)", "Predicted volume (mL)"]
    for unit in units:
        assert f">{unit}</th>" in page
    assert "ref_volume_ml" not in page


def test_report_without_run_has_no_loss_curve(tmp_path) -> None:
    paths = write_evaluation_outputs(tmp_path, make_rows(), "Eval", provenance={"model": "bundled"})
    assert "loss_curve" not in paths and not (tmp_path / "plots" / "loss_curve.png").exists()
    assert "<dt>model</dt><dd>bundled</dd>" in paths["report.html"].read_text()


@pytest.mark.parametrize(("n_cases", "boxes"), [(1, 0), (2, 0), (3, 1), (5, 1)])
def test_box_plot_only_from_three_cases(tmp_path, monkeypatch, n_cases: int, boxes: int) -> None:
    from matplotlib.axes import Axes

    drawn: list[int] = []
    real = Axes.boxplot

    def spy(self, data, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        drawn.append(len(data))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Axes, "boxplot", spy)
    rows = make_rows(n_cases, folds=False)
    save_box_plots(tmp_path / "box.png", rows, ["dsc"])
    assert drawn == ([1] if boxes else [])


def test_overlay_rows_labelled_with_sides(tmp_path, monkeypatch) -> None:
    from matplotlib.axes import Axes

    texts: list[str] = []
    real = Axes.text

    def spy(self, x, y, s, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        texts.append(str(s))
        return real(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(Axes, "text", spy)
    image = np.random.default_rng(0).normal(size=(20, 24, 6)).astype(np.float32)
    ref = np.zeros(image.shape, dtype=np.uint8)
    ref[5:9, 5:9, 2:4] = 1
    save_case_overlay(tmp_path / "o.png", image, ref, ref, affine=np.eye(4), n_slices=2, image_name="FLAIR")
    assert texts.count("FLAIR") == 1 and texts.count("FLAIR + prediction vs reference") == 1
    assert texts.count("R") == 4 and texts.count("L") == 4  # 2 slices x 2 rows, each marked R ... L
    texts.clear()
    save_case_overlay(tmp_path / "p.png", image, ref, ref, affine=None, n_slices=2, image_name="FLAIR")
    assert "R" not in texts and "L" not in texts  # orientation unknown: no side markers


def test_provenance_from_prediction_sidecar(tmp_path) -> None:
    from lesionseg.evaluate.folder import sidecar_provenance

    pred = tmp_path / "case_mask.nii.gz"
    assert sidecar_provenance(pred) == {}  # no sidecar
    (tmp_path / "case_mask.json").write_text(json.dumps({"models": ["a.pt", "b.pt"], "threshold": 0.4}))
    assert sidecar_provenance(pred) == {"model": "a.pt, b.pt", "threshold": 0.4}
    (tmp_path / "case_mask.json").write_text(json.dumps({"model": "m.pt", "method": "wmh-dice", "x": 1}))
    assert sidecar_provenance(pred) == {"model": "m.pt", "method": "wmh-dice"}
    (tmp_path / "case_mask.json").write_text("{not json")
    assert sidecar_provenance(pred) == {}
