"""Evaluate predictions against references: the library side of ``lesionseg evaluate``.

Two forms, both ending in the evaluation folder of :mod:`lesionseg.report.evaluation`:

- :func:`evaluate_pair`: one predicted label map against one reference (a manifest optionally names the
  labels and regions, e.g. BraTS WT/TC/ET);
- :func:`evaluate_folder`: a folder of predictions against a manifest. The prediction of case X is
  ``X.nii.gz`` (or ``X_mask.nii.gz``, ``X_seg.nii.gz``; also ``.nii``, ``.mha``, ``.nrrd``). Cases carry a
  fold from a split file (the fold whose ``test`` lists the case's subject or id) or from a ``"fold"`` key of
  the case in the manifest.

Metrics per case come from :func:`lesionseg.metrics.label_map_metrics`; every bad input raises
:class:`LesionsegError` naming the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lesionseg.data.manifest import ImageSpec, Manifest, load_manifest, read_spec
from lesionseg.data.splits import load_splits
from lesionseg.errors import LesionsegError
from lesionseg.io import Volume, read_volume, require_same_grid
from lesionseg.metrics import label_map_metrics
from lesionseg.report.evaluation import write_evaluation_outputs
from lesionseg.report.lesion_table import TABLE_SUFFIX, lesion_table, write_lesion_table
from lesionseg.report.overlay import save_case_overlay

PRED_SUFFIXES = ("", "_mask", "_seg")
PRED_EXTENSIONS = (".nii.gz", ".nii", ".mha", ".nrrd")
BINARY_LABELS = {"background": 0, "lesion": 1}


@dataclass
class EvaluationCase:
    """One case to evaluate: where its files are and which fold tested it."""

    case: str
    pred: Path
    ref: Path | ImageSpec  # a file (pair form) or a manifest spec
    image: Path | ImageSpec | None
    fold: str = ""
    image_name: str = "image"  # the image row's label in the overlays (e.g. FLAIR)


def evaluate_pair(
    pred: Path,
    ref: Path,
    out: Path,
    image: Path | None = None,
    manifest: str | Path | None = None,
    case_id: str | None = None,
    title: str | None = None,
    overlay_slices: int = 3,
    provenance: dict[str, object] | None = None,
) -> dict[str, Path]:
    """Evaluate one prediction against one reference; returns the written files by name.

    ``provenance`` (model, method, threshold) is shown in the report; by default it is read from the
    prediction's JSON sidecar (``<prediction>.json``) when there is one."""
    labels, regions = None, {}
    if manifest:
        loaded = load_manifest(manifest)
        labels, regions = loaded.labels, loaded.regions
    image_name = "FLAIR" if image is not None and "flair" in Path(image).name.lower() else "image"
    case = EvaluationCase(case_id or case_name(pred), Path(pred), Path(ref), image, image_name=image_name)
    inputs = {"prediction": pred, "reference": ref, "image": image, "manifest": manifest}
    return evaluate_cases(
        [case],
        Path(out),
        labels,
        regions,
        None,
        title,
        _present(inputs),
        [],
        overlay_slices,
        provenance=provenance,
    )


def evaluate_folder(
    pred_dir: Path,
    manifest: str | Path,
    root: Path,
    out: Path,
    folds: Path | None = None,
    skip_missing: bool = False,
    overlay_slices: int = 3,
    title: str | None = None,
    case_ids: Collection[str] | None = None,
    provenance: dict[str, object] | None = None,
) -> dict[str, Path]:
    """Evaluate every case of ``manifest`` (or only those in ``case_ids``) that has a prediction in
    ``pred_dir``; a case without one is an error unless ``skip_missing`` (then it is listed in the report).
    ``provenance``: as :func:`evaluate_pair`. Returns the written files by name."""
    pred_dir, root = Path(pred_dir), Path(root)
    loaded = load_manifest(manifest)
    if not pred_dir.is_dir():
        raise LesionsegError("prediction folder not found", pred_dir)
    if not root.is_dir():
        raise LesionsegError("data root not found", root)
    fold_of = folds_from_splits(folds, loaded) if folds else folds_from_manifest(loaded)
    cases, missing = [], []
    selected = [c for c in loaded.cases if case_ids is None or c.id in case_ids]
    for case in selected:
        if case.label is None:
            raise LesionsegError(f"case {case.id!r} has no reference label in the manifest", loaded.path)
        pred = find_prediction(pred_dir, case.id)
        if pred is None:
            missing.append(case.id)
            continue
        channel = overlay_channel(loaded.channel_names) if loaded.channel_names else "image"
        image = case.images.get(channel) if loaded.channel_names else None
        cases.append(EvaluationCase(case.id, pred, case.label, image, fold_of.get(case.id, ""), channel))
    if missing and (not skip_missing or not cases):
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise LesionsegError(
            f"no prediction for {len(missing)} of {len(selected)} cases ({shown}); "
            "expected <case>.nii.gz, <case>_mask.nii.gz or <case>_seg.nii.gz",
            pred_dir,
        )
    if fold_of and any(not c.fold for c in cases):
        lost = [c.case for c in cases if not c.fold]
        raise LesionsegError(f"cases {lost[:5]} are in no test fold", folds or loaded.path)
    inputs = {
        "predictions": pred_dir,
        "manifest": loaded.path or manifest,
        "root": root,
        "folds": folds or ("from the manifest" if fold_of else None),
    }
    return evaluate_cases(
        cases,
        Path(out),
        loaded.labels,
        loaded.regions,
        root,
        title,
        _present(inputs),
        missing,
        overlay_slices,
        provenance=provenance,
    )


def evaluate_cases(
    cases: list[EvaluationCase],
    out: Path,
    labels: dict[str, int] | None,
    regions: dict[str, list[int]],
    root: Path | None,
    title: str | None,
    inputs: dict[str, object],
    skipped: list[str],
    overlay_slices: int,
    provenance: dict[str, object] | None = None,
) -> dict[str, Path]:
    """Metrics, the prediction's lesion table (``lesions/<case>.lesions.csv``, locations from the template
    registered onto the case's image when there is one) and overlays case by case (a line each on stdout),
    then every output file. Without ``provenance`` it comes from the first prediction's JSON sidecar, if
    any."""
    rows, overlays, tables = [], [], []
    for job in cases:
        ref = read_input(job.ref, root, "label")
        pred = read_input(job.pred, root, "label")
        require_same_grid(ref, pred, "prediction")
        ref, pred = binarised(ref, pred, labels)
        case_labels = check_label_values(ref, pred, labels)
        extra = {"fold": job.fold} if job.fold else {}
        case_rows = label_map_metrics(
            pred.array, ref.array, ref.spacing, case_labels, regions, job.case, extra
        )
        rows += case_rows
        # headline: the first region (BraTS WT) when there are regions, else the first label
        first = next((r for r in case_rows if r["kind"] == "region"), case_rows[0] if case_rows else {})
        print(
            f"{job.case}: {first.get('label', '')} DSC {first.get('dsc', float('nan')):.4f}, "
            f"HD95 {first.get('hd95', float('nan')):.2f} mm, lesions {first.get('lesions_detected', 0)}"
            f"/{first.get('ref_lesions', 0)} detected"
        )
        image = read_input(job.image, root, "image") if job.image is not None else None
        if image is not None:
            require_same_grid(ref, image, "image")
        tables.append(
            write_lesion_table(
                out / "lesions" / f"{safe_name(job.case)}{TABLE_SUFFIX}", lesion_table(pred, image=image)
            )
        )
        if overlay_slices > 0:
            path = out / "overlays" / f"{safe_name(job.case)}.png"
            save_case_overlay(
                path,
                image.array if image is not None else None,
                ref.array,
                pred.array,
                affine=ref.affine,
                n_slices=overlay_slices,
                image_name=job.image_name,
                title=f"{job.case}: reference vs prediction"
                + (" (all labels)" if len(case_labels) > 2 else ""),
            )
            overlays.append({"path": path, "caption": job.case})
    title = title or f"Evaluation of {inputs.get('predictions') or inputs.get('prediction')}"
    if provenance is None:
        provenance = next((p for p in (sidecar_provenance(c.pred) for c in cases) if p), None)
    paths = write_evaluation_outputs(out, rows, title, inputs, overlays, skipped, provenance=provenance)
    paths |= {f"lesions/{path.name}": path for path in tables}
    if skipped:
        print(f"skipped {len(skipped)} cases without a prediction: {', '.join(skipped[:10])}")
    print(f"wrote {paths['report.html']}")
    return paths


def sidecar_provenance(pred: Path) -> dict[str, object]:
    """``model`` (or the ``models`` of an ensemble), ``method`` and ``threshold`` from a prediction's JSON
    sidecar (``X.json`` beside ``X.nii.gz``, as predict and segment write it) when it has them; {} otherwise
    (no sidecar, unreadable, other keys)."""
    sidecar = Path(pred).with_name(case_name(Path(pred)) + ".json")
    try:
        data = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    found: dict[str, object] = {}
    models = data.get("models")
    if isinstance(data.get("model"), str):
        found["model"] = data["model"]
    elif isinstance(models, list) and models:
        found["model"] = ", ".join(str(m) for m in models)  # an ensemble: every member
    for key in ("method", "threshold"):
        if isinstance(data.get(key), str | int | float):
            found[key] = data[key]
    return found


def read_input(spec: Path | ImageSpec, root: Path | None, kind: str) -> Volume:
    """A label map or image given as a file, or as a manifest spec relative to ``root``."""
    if isinstance(spec, ImageSpec):
        return read_spec(spec, root or Path("."), kind)
    return read_volume(spec, "label" if kind == "label" else "image")


def binarised(ref: Volume, pred: Volume, labels: dict[str, int] | None) -> tuple[Volume, Volume]:
    """For a binary task, the reference as 0/1 (non-zero = lesion, so a {0, 2} or {0, 255} reference is
    scored as lesion), and the prediction too when its non-zero values are 1 or the reference's value (a
    prediction with other values is left for check_label_values to refuse). Binary: the manifest's labels are
    {0, 1}, or, without a manifest, the reference has at most one non-zero value. Otherwise unchanged."""
    ref_values = set(np.unique(ref.array).tolist()) - {0}
    binary = set(labels.values()) <= {0, 1} if labels is not None else len(ref_values) <= 1
    if not binary:
        return ref, pred
    ref = replace(ref, array=(ref.array != 0).astype(np.uint8))
    if set(np.unique(pred.array).tolist()) - {0} <= ref_values | {1}:
        pred = replace(pred, array=(pred.array != 0).astype(np.uint8))
    return ref, pred


def check_label_values(ref: Volume, pred: Volume, labels: dict[str, int] | None) -> dict[str, int]:
    """The labels to evaluate; LesionsegError for values outside the task's labels. Without a manifest the
    task is binary when the reference is 0/1, else every value present is a label."""
    ref_values = set(np.unique(ref.array).tolist())
    pred_values = set(np.unique(pred.array).tolist())
    if labels is None:
        if ref_values <= {0, 1}:
            labels = BINARY_LABELS
        else:
            labels = {"background": 0} | {f"label_{v}": v for v in sorted((ref_values | pred_values) - {0})}
    allowed = set(labels.values())
    task = "binary (0/1)" if allowed <= {0, 1} else f"labels {sorted(allowed)}"
    if ref_values - allowed:
        raise LesionsegError(
            f"reference has values {sorted(ref_values - allowed)}, but the task is {task}", ref.source
        )
    if pred_values - allowed:
        raise LesionsegError(
            f"prediction has values {sorted(pred_values - allowed)}, but the task is {task} "
            f"(reference {ref.source})",
            pred.source,
        )
    return labels


def overlay_channel(channel_names: list[str]) -> str:
    """The channel drawn under the overlays: FLAIR when the manifest has one, else the first."""
    return next((c for c in channel_names if c.lower() == "flair"), channel_names[0])


def find_prediction(folder: Path, case_id: str) -> Path | None:
    """``<case>.nii.gz`` (or ``_mask``/``_seg``, ``.nii``/``.mha``/``.nrrd``) in ``folder``; ids with '/' are
    also tried with '_' and by their last part."""
    names = dict.fromkeys([case_id, case_id.replace("/", "_"), case_id.rsplit("/", 1)[-1]])
    for name in names:
        for suffix in PRED_SUFFIXES:
            for ext in PRED_EXTENSIONS:
                path = folder / f"{name}{suffix}{ext}"
                if path.is_file():
                    return path
    return None


def folds_from_splits(path: Path, manifest: Manifest) -> dict[str, str]:
    """Case id -> the fold whose test set lists the case's subject (or id)."""
    tested: dict[str, str] = {}
    for fold in load_splits(path).folds:
        for name in fold.test:
            tested[str(name)] = str(fold.fold)
    return {c.id: tested.get(c.subject, tested.get(c.id, "")) for c in manifest.cases}


def folds_from_manifest(manifest: Manifest) -> dict[str, str]:
    """Folds from ``"fold"`` keys of the manifest's cases (Case keeps no such field, so read the JSON)."""
    if manifest.path is None:
        return {}
    try:
        raw = json.loads(Path(manifest.path).read_text())
    except (OSError, ValueError):
        return {}
    return {str(c.get("id")): str(c["fold"]) for c in raw.get("cases", []) if c.get("fold") is not None}


def case_name(path: Path) -> str:
    """A case name from a prediction's file name (extension removed)."""
    name = Path(path).name
    for ext in PRED_EXTENSIONS:
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


def safe_name(case: str) -> str:
    """``case`` as a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", case).strip("_") or "case"


def _present(inputs: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in inputs.items() if v}
