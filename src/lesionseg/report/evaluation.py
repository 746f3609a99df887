"""The files of an evaluation folder, from per-case rows: CSV, JSON and markdown summaries, plots, HTML.

Layout of ``out_dir`` (shared by ``lesionseg evaluate`` and ``lesionseg report``)::

    metrics.csv            one row per case and label/region (lesionseg.metrics.label_map_metrics)
    summary.json           statistics per label/region, undefined counts, fold medians, inputs
    summary.md             the same as markdown, with the TS-CNN Table 1 layout
    plots/box_dsc.png      per-case DSC per label/region (WMH thesis Figure 9)
    plots/box_metrics.png  sensitivity, precision, HD95, ASSD, AVD, lesion F1
    overlays/<case>.png    axial slices with the most lesion, TP green / FP red / FN blue
    lesions/<case>.lesions.csv  (lesionseg evaluate) the prediction's lesions (report.lesion_table)
    report.html            everything above on one page (images linked relatively)
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from lesionseg.errors import LesionsegError
from lesionseg.io import atomic_output
from lesionseg.metrics import METRIC_LABELS, summarize
from lesionseg.report.curves import plot_training_curves
from lesionseg.report.html import provenance_block, write_report
from lesionseg.report.plots import save_box_plots
from lesionseg.report.tables import (
    read_metrics_csv,
    summary_markdown,
    tscnn_table_markdown,
    write_metrics_csv,
)

CONVENTIONS = (
    "Distances in mm from the voxel spacing. HD95 = max of the two directed 95th percentiles of "
    "voxel-surface distances (as MONAI compute_hausdorff_distance and the WMH challenge). "
    "Both masks empty: DSC/IoU/sensitivity/precision 1, distances 0 mm (BraTS). "
    "One mask empty: distances undefined (NaN), counted as 'undefined', never dropped. "
    "Lesion-wise detection as the MICCAI 2017 WMH challenge (26-connected components)."
)
BOX_METRICS = ["sensitivity", "precision", "hd95", "assd", "avd", "lesion_f1"]


def json_ready(value: object) -> object:
    """NaN/inf -> None (strict JSON), recursively; tuples -> lists; Paths -> str."""
    if isinstance(value, float):
        return None if (math.isnan(value) or math.isinf(value)) else value
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, data: Mapping) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n")
    return Path(path)


def read_json(path: str | Path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise LesionsegError("file not found", path) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LesionsegError(f"cannot read JSON ({exc})", path) from exc


def write_evaluation_outputs(
    out_dir: str | Path,
    rows: Sequence[Mapping],
    title: str = "Evaluation",
    inputs: Mapping[str, object] | None = None,
    overlays: Sequence[Mapping] = (),
    skipped: Sequence[str] = (),
    write_csv: bool = True,
    provenance: Mapping[str, object] | None = None,
) -> dict[str, Path]:
    """Write every file of the layout above and return their paths by name.

    - ``overlays``: dicts ``{"path": PNG, "caption": str}`` already written (e.g. ``save_case_overlay``).
    - ``skipped``: case ids left out (e.g. missing predictions); listed in the JSON and the report.
    - ``provenance``: what produced the predictions (``model``, ``method``, ``threshold``); kept in
      summary.json with the lesionseg version, date and command. When ``model`` names a checkpoint or run
      folder with ``history.csv`` (or ``loss_curve.png``), the report shows its loss curve
      (``plots/loss_curve.png``).
    """
    out_dir = Path(out_dir)
    prov = provenance_block(provenance)
    summary = summarize(rows)
    summary = {
        "title": title,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "provenance": prov,
        "inputs": dict(inputs or {}),
        "conventions": CONVENTIONS,
        "skipped_cases": list(skipped),
        **summary,
        "tables_markdown": {
            label: tscnn_table_markdown(info["folds"]) for label, info in summary["labels"].items()
        },
    }
    paths: dict[str, Path] = {}
    if write_csv:
        paths["metrics.csv"] = write_metrics_csv(out_dir / "metrics.csv", rows)
    paths["summary.json"] = write_json(out_dir / "summary.json", summary)
    markdown = summary_markdown(summary, METRIC_LABELS, title=title)
    with atomic_output(out_dir / "summary.md") as tmp:
        tmp.write_text(markdown)
    paths["summary.md"] = out_dir / "summary.md"
    figures: list[dict] = []
    if rows:
        paths["box_dsc"] = save_box_plots(
            out_dir / "plots" / "box_dsc.png", rows, ["dsc"], METRIC_LABELS, title="Per-case DSC"
        )
        paths["box_metrics"] = save_box_plots(
            out_dir / "plots" / "box_metrics.png", rows, BOX_METRICS, METRIC_LABELS, title="Per-case metrics"
        )
        figures += [
            {
                "path": paths["box_dsc"],
                "caption": "DSC per case (box: quartiles; dots: cases)",
                "section": "Plots",
            },
            {"path": paths["box_metrics"], "caption": "Other metrics per case", "section": "Plots"},
        ]
    curve = training_curve(prov.get("model"), out_dir / "plots" / "loss_curve.png")
    if curve is not None:
        paths["loss_curve"] = curve
        figures.append(
            {
                "path": curve,
                "caption": "Training and validation loss, validation Dice, per epoch",
                "section": "Training",
            }
        )
    figures += [dict(o) | {"section": "Overlays (TP green, FP red, FN blue)"} for o in overlays]
    report_summary = dict(summary) | {"notes": CONVENTIONS}
    extra = []
    if skipped:
        extra.append({"title": "Skipped cases", "text": "\n".join(skipped)})
    paths["report.html"] = write_report(
        out_dir, rows, report_summary, figures, title=title, extra_sections=extra, provenance=prov
    )
    return paths


def run_folder(model: object) -> Path | None:
    """The training run folder of a checkpoint (its parent) or a run folder itself; None if neither."""
    if model in (None, ""):
        return None
    path = Path(str(model))
    folder = path if path.is_dir() else path.parent
    return folder if folder.is_dir() else None


def training_curve(model: object, target: Path) -> Path | None:
    """The loss curve of the run that produced ``model``: drawn to ``target`` from its ``history.csv``,
    else its own ``loss_curve.png``; None when the run folder has neither (e.g. the bundled model)."""
    folder = run_folder(model)
    if folder is None:
        return None
    history = folder / "history.csv"
    if history.is_file():
        try:
            rows = read_metrics_csv(history)
            return plot_training_curves(rows, target, title=f"training of {folder.name}")
        except (LesionsegError, KeyError, TypeError, ValueError):
            pass  # a history of another format: fall back to the run's own picture
    png = folder / "loss_curve.png"
    return png if png.is_file() else None


def provenance_from_run(model: str | Path | None) -> dict[str, object]:
    """``model``, plus ``method`` and ``threshold`` from the run folder's ``config.json`` when there is one
    (a checkpoint's folder, as ``lesionseg train`` writes it); no torch needed."""
    if model in (None, ""):
        return {}
    info: dict[str, object] = {"model": str(model)}
    folder = run_folder(model)
    config = folder / "config.json" if folder is not None else None
    if config is not None and config.is_file():
        try:
            data = json.loads(config.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            data = {}
        if isinstance(data, dict):
            info |= {k: data[k] for k in ("method", "threshold") if data.get(k) is not None}
    return info


def overlay_files(out_dir: str | Path) -> list[dict]:
    """The overlay PNGs of an evaluation folder, as figure dicts, sorted by name."""
    folder = Path(out_dir) / "overlays"
    return [{"path": p, "caption": p.stem} for p in sorted(folder.glob("*.png"))] if folder.is_dir() else []
