"""The HTML report of a cross-validation folder, and the per-slice overlays it shows.

Built from the files ``lesionseg cv`` writes (plain data; no torch):

    metrics.csv                one row per evaluated case, or per labelled slice (``slice`` column)
    subjects.csv               (cases with ``label_slices``) one row per subject, pooled over its slices
    summary.json               summarize(metrics rows) + method, scheme, CPU minutes, dataset, subjects
    overlays/<case>_slice<k>.png   one figure per labelled slice, TS-CNN Figure 3 colours
    plots/box_metrics.png      per-slice (or per-case) box plots, written here
    report.html                everything above on one page

Overlays show the whole slice (cropped to the head) and a zoom on the reference lesions, because the
neonatal lesions of the TS-CNN data are a few pixels: true positive green, false positive red, false
negative blue (:mod:`lesionseg.report.overlay`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lesionseg.metrics.case import METRIC_LABELS
from lesionseg.report.html import column_label, write_report
from lesionseg.report.overlay import (
    RADIOLOGICAL_SIDES,
    axial_display,
    canonical_array,
    is_axis_aligned,
    save_overlay_figure,
)
from lesionseg.report.plots import save_box_plots
from lesionseg.report.tables import format_value, read_metrics_csv, summary_table_rows, tscnn_table_rows

BOX_METRICS = ["dsc", "sensitivity", "hd", "lesion_f1"]
ZOOM_PIXELS = 40
SUBJECT_NOTE = (
    "Each subject's labelled slices pooled (see the note above). Hausdorff in mm of the manifest's spacing."
)
SLICE_NOTE = (
    "Cases with label_slices are scored on their labelled slices only, each as a 2D map with the in-plane "
    "spacing (neighbouring slices are unlabelled context). Lesions are 2D connected components (8-connected) "
    "of a slice. Per-subject rows pool the subject's slices: overlap from summed counts, Hausdorff = the "
    "largest slice Hausdorff (undefined when any slice misses all lesions or predicts some where there are "
    "none). A Hausdorff distance is undefined when one mask is empty; medians leave it out and count it."
)


def overlay_path(out_dir: str | Path, case: str, z: int) -> Path:
    """Where the overlay of slice ``z`` (index on the case's original grid) of ``case`` is written."""
    return Path(out_dir) / "overlays" / f"{case}_slice{int(z)}.png"


def display_slice(array: np.ndarray, affine: np.ndarray, z: int) -> np.ndarray:
    """Slice ``z`` of the third axis of an (X, Y, Z) array, oriented for display.

    The one-slice volume is turned to the closest RAS orientation (``canonical_array``) and shown axially
    in the radiological convention when the slice axis is the axial one; otherwise rows = Y, columns = X
    (a PNG stack's own orientation).
    """
    one = np.asarray(array)[:, :, int(z) : int(z) + 1]
    canon = canonical_array(one, affine)
    if canon.shape[2] == 1:
        return axial_display(canon[:, :, 0])
    return one[:, :, 0].T


def _zoom_box(ref: np.ndarray, pred: np.ndarray, size: int) -> tuple[slice, slice]:
    """A size x size window (clipped to the slice) centred on the reference lesions, else the prediction."""
    focus = ref if ref.any() else pred
    if not focus.any():
        return slice(None), slice(None)
    rows, cols = np.nonzero(focus)
    box = []
    for centre, extent in ((int(np.median(rows)), ref.shape[0]), (int(np.median(cols)), ref.shape[1])):
        lo = min(max(centre - size // 2, 0), max(extent - size, 0))
        box.append(slice(lo, lo + size))
    return box[0], box[1]


def _head_box(image: np.ndarray, masks: np.ndarray, margin: int = 4) -> tuple[slice, slice]:
    """A square window (as far as the slice allows) around the non-zero image and the masks."""
    content = (image != 0) | masks
    if not content.any():
        return slice(None), slice(None)
    spans = []
    for axis in (0, 1):
        hits = np.flatnonzero(content.any(axis=1 - axis))
        spans.append((int(hits[0]) - margin, int(hits[-1]) + 1 + margin))
    side = max(hi - lo for lo, hi in spans)
    box = []
    for (lo, hi), extent in zip(spans, content.shape, strict=True):
        lo -= (side - (hi - lo)) // 2
        lo = min(max(lo, 0), max(extent - side, 0))
        box.append(slice(lo, min(lo + side, extent)))
    return box[0], box[1]


def save_slice_overlay(
    path: str | Path,
    image: np.ndarray,
    ref: np.ndarray,
    pred: np.ndarray,
    title: str = "",
    zoom: int = ZOOM_PIXELS,
    image_name: str = "image",
    sides: tuple[str, str] | None = None,
) -> Path:
    """Two panels of one 2D slice (display orientation): the head, and a ``zoom`` x ``zoom`` window on the
    lesions; the plain image above each overlay; TP green, FP red, FN blue. ``sides``: patient sides at the
    left and right edges (:func:`slice_sides`), ``image_name`` labels the image row."""
    ref, pred = np.asarray(ref) != 0, np.asarray(pred) != 0
    image = np.asarray(image, dtype=np.float64)
    counts = (
        f"TP {int(np.count_nonzero(ref & pred))}, FP {int(np.count_nonzero(pred & ~ref))}, "
        f"FN {int(np.count_nonzero(ref & ~pred))} px"
    )
    head, window = _head_box(image, ref | pred), None
    nonzero = image[image != 0]
    if nonzero.size:
        low, high = (float(v) for v in np.percentile(nonzero, (1.0, 99.0)))
        window = (low, high if high > low else low + 1.0)
    zr, zc = _zoom_box(ref, pred, zoom)
    panels = [
        (image[head], ref[head], pred[head], f"slice: {counts}"),
        (image[zr, zc], ref[zr, zc], pred[zr, zc], f"zoom {zoom}x{zoom} px on the lesions"),
    ]
    return save_overlay_figure(path, panels, title=title, window=window, image_name=image_name, sides=sides)


def slice_sides(affine: np.ndarray) -> tuple[str, str] | None:
    """The patient sides at the left and right edges of :func:`display_slice`'s picture: ("R", "L") when
    the slice axis is the axial one (radiological display), None when the orientation is not known."""
    rotation = np.asarray(affine, dtype=np.float64)[:3, :3]
    if not is_axis_aligned(affine) or int(np.argmax(np.abs(rotation[:, 2]))) != 2:
        return None
    return RADIOLOGICAL_SIDES


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _caption(row: Mapping) -> str:
    parts = [f"case {row.get('case')}"]
    if row.get("subject") not in (None, ""):
        parts.append(f"subject {row.get('subject')}")
    parts.append(f"fold {row.get('fold')}")
    parts.append(f"slice {row.get('slice')}")
    metrics = ", ".join(
        f"{name} {format_value(row.get(key), 3)}"
        for key, name in (("dsc", "DSC"), ("sensitivity", "sens."), ("hd", "HD mm"))
    )
    found, total = row.get("lesions_detected"), row.get("ref_lesions")
    lesions = f"lesions found {found}/{total}, false {row.get('lesions_false')}"
    return f"{', '.join(parts)}: {metrics}; {lesions}"


def _subject_section(subject_rows: Sequence[Mapping], subject_summary: Mapping) -> dict:
    """The "Per subject" extra section as plain data (escaped when the report is rendered)."""
    tables: list[dict] = []
    for label, info in subject_summary.get("labels", {}).items():
        header, body = summary_table_rows(info, METRIC_LABELS)
        tables.append({"heading": label, "header": header, "body": body})
        if info.get("folds"):
            header, body = tscnn_table_rows(info["folds"])
            tables.append({"header": [_hd_unit(h) for h in header], "body": body})
    columns = [
        c
        for c in ["subject", "fold", "label", "n_slices", "dsc", "sensitivity", "specificity", "hd"]
        + [
            "lesion_recall",
            "lesion_precision",
            "lesion_f1",
            "ref_lesions",
            "lesions_detected",
            "lesions_false",
        ]
        if any(c in r for r in subject_rows)
    ]
    tables.append(
        {
            "header": [column_label(c) for c in columns],
            "body": [[r.get(c, "") for c in columns] for r in subject_rows],
            "text_columns": 3,
        }
    )
    return {
        "title": "Per subject",
        "text": "",
        "tables": tables,
        "note": SUBJECT_NOTE,
    }


def _hd_unit(header: str) -> str:
    return f"{header} (mm)" if header == "Hausdorff Distance" else header


def loss_curve_figures(out: Path) -> list[dict]:
    """The training curves of a cross-validation folder's runs (``fold_*/.../loss_curve.png``)."""
    curves = sorted(out.glob("fold_*/**/loss_curve.png"))
    return [
        {
            "path": p,
            "caption": f"{p.parent.relative_to(out).as_posix()}: training and validation loss, "
            "validation Dice",
            "section": "Training curves",
        }
        for p in curves
    ]


def write_cv_report(out_dir: str | Path, title: str | None = None) -> Path:
    """Write ``out_dir/report.html`` (and ``plots/box_metrics.png``) from a cross-validation folder."""
    out = Path(out_dir)
    rows = read_metrics_csv(out / "metrics.csv")
    summary = _read_json(out / "summary.json")
    subject_rows = read_metrics_csv(out / "subjects.csv") if (out / "subjects.csv").exists() else []
    method, dataset = summary.get("method", ""), summary.get("dataset", "")
    title = title or f"Cross-validation of {method}" + (f" on {dataset}" if dataset else "")
    figures: list[dict] = []
    if rows:
        box = save_box_plots(
            out / "plots" / "box_metrics.png",
            rows,
            [m for m in BOX_METRICS if any(m in r for r in rows)],
            METRIC_LABELS,
            title="Per labelled slice" if any("slice" in r for r in rows) else "Per case",
        )
        figures.append({"path": box, "caption": "Box: quartiles; dots: slices or cases", "section": "Plots"})
    figures += loss_curve_figures(out)
    for row in rows:
        if "slice" in row and overlay_path(out, row["case"], int(row["slice"])).exists():
            figures.append(
                {
                    "path": overlay_path(out, row["case"], int(row["slice"])),
                    "caption": _caption(row),
                    "section": "Every labelled slice (TP green, FP red, FN blue)",
                }
            )
    inputs = {
        "method": method,
        "dataset": dataset,
        "scheme": summary.get("scheme", ""),
        "CPU minutes": summary.get("cpu_minutes", ""),
        "spacing": summary.get("spacing_note", ""),
    }
    report_summary = dict(summary) | {"inputs": {k: v for k, v in inputs.items() if v != ""}}
    if any("slice" in r for r in rows):
        report_summary["notes"] = SLICE_NOTE
    extra = []
    if subject_rows:
        extra.append(_subject_section(subject_rows, summary.get("subjects") or {}))
    columns = [
        c
        for c in [
            "case",
            "subject",
            "fold",
            "slice",
            "label",
            "dsc",
            "sensitivity",
            "specificity",
            "precision",
        ]
        + ["hd", "hd95", "lesion_recall", "lesion_precision", "lesion_f1", "ref_voxels", "pred_voxels"]
        + ["tp", "fp", "fn", "ref_lesions", "lesions_detected", "lesions_false"]
        if any(c in r for r in rows)
    ]
    lead = [c for c in ("case", "fold", "label", "subject", "slice") if c in columns]  # text columns first
    ordered = lead + [c for c in columns if c not in lead]
    provenance = {
        "model": summary.get("model") or f"the fold models under {out}",
        "method": method,
        "threshold": summary.get("threshold"),
    }
    return write_report(
        out,
        rows,
        report_summary,
        figures,
        title=title,
        extra_sections=extra,
        columns=ordered,
        provenance=provenance,
    )
