"""Subject-wise cross-validation: train each fold on the other subjects, predict the held-out subjects'
whole volumes back on their original grids, evaluate them, and tabulate per-fold medians in the layout of
TS-CNN Table 1 (the papers report medians over 5 folds).

Cases with ``label_slices`` (TS-CNN's labelled slice with its unlabelled neighbours) are predicted and
scored on their labelled slices only: one metrics row per labelled slice, a 2D map with the in-plane
spacing; per-subject rows pool each subject's slices (``subjects.csv``); every labelled slice gets an
overlay in the TS-CNN Figure 3 colours in the HTML report."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lesionseg.config.train import TrainConfig
from lesionseg.data.label_slices import labelled_slices
from lesionseg.data.manifest import Case, Manifest, load_case
from lesionseg.data.splits import Splits, load_splits, make_splits
from lesionseg.infer.predictor import Predictor, load_members
from lesionseg.io import Volume, atomic_output, write_volume
from lesionseg.metrics import label_map_metrics, summarize
from lesionseg.metrics.pooled import pooled_metrics
from lesionseg.preprocess import PreprocessCache, PreprocessedCase
from lesionseg.train.run import train_model


@dataclass
class CVResult:
    rows: list[dict]
    summary: dict
    splits: Splits
    cpu_minutes: float
    out_dir: Path


def lesion_loads(
    manifest: Manifest, root: str | Path, cfg: TrainConfig, cache: PreprocessCache
) -> dict[str, float]:
    """Lesion volume (mL) per subject, for balancing folds."""
    loads: dict[str, float] = {}
    for case in manifest.cases:
        pre = cache.get(manifest, case, root, cfg.preprocess)
        voxels = 0 if pre.label is None else int(np.count_nonzero(pre.label))
        loads[case.subject] = loads.get(case.subject, 0.0) + voxels * float(np.prod(pre.spacing)) / 1000
    return loads


def run_cross_validation(
    manifest: Manifest,
    root: str | Path,
    member_configs: list[TrainConfig],
    folds: int,
    out_dir: str | Path,
    cache_dir: str | Path | None = None,
    splits_file: str | Path | None = None,
    only_folds: list[int] | None = None,
    progress: bool = True,
    models_dir: str | Path | None = None,
) -> CVResult:
    """Run every fold; ``member_configs`` holds one config, or several for an ensemble (averaged).

    ``models_dir`` (default ``out_dir``) holds ``fold_k/<method>/`` checkpoints; a finished member there
    is reused (training resumes from its last.pt), so an ensemble can share its members' runs.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cpu_start = time.process_time()
    cfg0 = member_configs[0]
    cache = PreprocessCache(cache_dir or out / "cache")
    if splits_file:
        splits = load_splits(splits_file, manifest.subjects)
    elif (out / "splits.json").exists():
        splits = load_splits(out / "splits.json", manifest.subjects)
    else:
        loads = lesion_loads(manifest, root, cfg0, cache)
        splits = make_splits(manifest.subjects, folds, cfg0.seed, loads, cfg0.val_fraction)
    splits.save(out / "splits.json")
    rows: list[dict] = []
    for fold in splits.folds:
        if only_folds is not None and fold.fold not in only_folds:
            continue
        fold_dir = out / f"fold_{fold.fold}"
        checkpoints = []
        for cfg in member_configs:
            result = train_model(
                cfg,
                manifest,
                root,
                fold.train,
                fold.val,
                Path(models_dir or out) / f"fold_{fold.fold}" / cfg.method,
                cache,
                resume=True,
                progress=progress,
            )
            checkpoints.append(result.best)
        predictor = Predictor(load_members(checkpoints), bf16=cfg0.bf16)
        for case in (c for c in manifest.cases if c.subject in fold.test):
            loaded = load_case(manifest, case, root)
            pre = cache.get(manifest, case, root, cfg0.preprocess)
            if case.label_slices is not None:  # predict the labelled slices only; the rest stays 0
                pre = only_labelled_slices(pre, labelled_slices(case, pre.record))
            labels, mean, _ = predictor.predict_preprocessed(pre)
            from lesionseg.preprocess import invert

            values = np.asarray(
                sorted(manifest.label_values) if mean.shape[0] > 1 else [0, max(manifest.label_values)]
            )
            pred = values[invert(labels, pre.record, "label")].astype(np.uint8)
            write_volume(
                loaded.reference.with_array(pred, kind="label"),
                fold_dir / "predictions" / f"{case.id}.nii.gz",
                reference=loaded.reference,
            )
            ref = loaded.label.array if loaded.label is not None else np.zeros_like(pred)
            if case.label_slices is not None:
                rows += labelled_slice_metrics(
                    manifest, case, loaded.reference, pred, ref, {"fold": fold.fold, "subject": case.subject}
                )
                save_labelled_slice_overlays(out, case, loaded.reference, pred, ref)
                continue
            rows += label_map_metrics(
                pred,
                ref,
                loaded.reference.spacing,
                manifest.labels,
                manifest.regions,
                case=case.id,
                extra={"fold": fold.fold, "subject": case.subject},
            )
    summary = summarize(rows)
    cpu_minutes = (time.process_time() - cpu_start) / 60
    summary["cpu_minutes"] = round(cpu_minutes, 2)
    summary["method"] = "+".join(c.method for c in member_configs)
    summary["scheme"] = splits.scheme
    summary["dataset"] = manifest.name
    summary["spacing_note"] = manifest.spacing_note
    subject_rows = pooled_metrics([r for r in rows if "slice" in r], by="subject")
    if subject_rows:
        summary["subjects"] = summarize(subject_rows)
    write_cv_outputs(out, rows, summary, manifest, subject_rows)
    return CVResult(rows, summary, splits, cpu_minutes, out)


def only_labelled_slices(pre: PreprocessedCase, zs: np.ndarray) -> PreprocessedCase:
    """``pre`` with its brain mask cleared outside the slices ``zs``, so that slice-wise prediction, which
    skips slices without brain, predicts only those (their neighbours still serve as 2.5D context)."""
    mask = np.zeros_like(np.asarray(pre.mask))
    mask[..., zs] = np.asarray(pre.mask)[..., zs]
    return replace(pre, mask=mask, labelled_slices=zs)


def labelled_slice_metrics(
    manifest: Manifest, case: Case, reference: Volume, pred: np.ndarray, ref: np.ndarray, extra: dict
) -> list[dict]:
    """One ``label_map_metrics`` row set per labelled slice of ``case`` (``case.label_slices``, indices of
    the original grid's third axis), each slice scored as a 2D map with the in-plane spacing; the rows
    carry ``slice``. Lesions are then 2D connected components of the slice (8-connected)."""
    rows: list[dict] = []
    for z in case.label_slices or ():
        rows += label_map_metrics(
            pred[:, :, z],
            ref[:, :, z],
            reference.spacing[:2],
            manifest.labels,
            manifest.regions,
            case=case.id,
            extra={**extra, "slice": int(z)},
        )
    return rows


def save_labelled_slice_overlays(
    out: Path, case: Case, reference: Volume, pred: np.ndarray, ref: np.ndarray
) -> None:
    """``overlays/<case>_slice<z>.png`` for every labelled slice (TS-CNN Figure 3 colours)."""
    from lesionseg.report.cv_report import display_slice, overlay_path, save_slice_overlay

    for z in case.label_slices or ():
        save_slice_overlay(
            overlay_path(out, case.id, z),
            display_slice(reference.array, reference.affine, z),
            display_slice(ref, reference.affine, z),
            display_slice(pred, reference.affine, z),
            title=f"{case.id} (subject {case.subject}), slice {z}",
        )


def write_cv_outputs(
    out: Path, rows: list[dict], summary: dict, manifest: Manifest, subject_rows: list[dict] | None = None
) -> None:
    """metrics.csv, summary.json, table.md (TS-CNN Table 1 layout) and the HTML report; for cases with
    ``label_slices`` also subjects.csv (each subject's labelled slices pooled) and its table."""
    from lesionseg.report.cv_report import write_cv_report
    from lesionseg.report.tables import tscnn_table_markdown, write_metrics_csv

    write_metrics_csv(out / "metrics.csv", rows)
    if subject_rows:
        write_metrics_csv(out / "subjects.csv", subject_rows)
    with atomic_output(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    with atomic_output(out / "table.md") as tmp:
        per = ", per labelled slice" if subject_rows else ""
        tables = [
            tscnn_table_markdown(group["folds"], label + per) for label, group in summary["labels"].items()
        ]
        if summary.get("subjects"):
            tables += [
                tscnn_table_markdown(group["folds"], f"{label}, per subject (labelled slices pooled)")
                for label, group in summary["subjects"]["labels"].items()
            ]
        tmp.write_text("\n\n".join(tables) + "\n")
    write_cv_report(out)
