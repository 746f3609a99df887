"""Subject-wise cross-validation: train each fold on the other subjects, predict the held-out subjects'
whole volumes back on their original grids, evaluate them, and tabulate per-fold medians in the layout of
TS-CNN Table 1 (the papers report medians over 5 folds).

Cases with ``label_slices`` (TS-CNN's labelled slice with its unlabelled neighbours) are predicted and
scored on their labelled slices only (:mod:`lesionseg.evaluate.labelled_slices`): one metrics row per labelled
slice; per-subject rows pool each subject's slices (``subjects.csv``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesionseg.config.train import TrainConfig
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.label_slices import labelled_slices, only_labelled_slices
from lesionseg.data.manifest import Case, Manifest, load_case
from lesionseg.data.splits import Splits, load_splits, make_splits
from lesionseg.errors import LesionsegError
from lesionseg.evaluate.labelled_slices import score_labelled_slices
from lesionseg.infer.predictor import Predictor
from lesionseg.io import atomic_output, write_volume
from lesionseg.metrics import label_map_metrics, summarize
from lesionseg.metrics.pooled import pooled_metrics
from lesionseg.train.averaged import train_averaged_model


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

    ``models_dir`` (default ``out_dir``) holds ``fold_k/<method>/`` checkpoints (``<method>_seed_<s>`` for
    the networks of a multi-seed model: ``config.train.member_folder``); a finished member there
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
    if progress:
        for line in split_notes(splits, folds, len(set(manifest.subjects))):
            print(line, flush=True)
    unknown = sorted(set(only_folds or []) - {fold.fold for fold in splits.folds})
    if unknown:
        raise LesionsegError(
            f"--only-fold {unknown[0]} is not a fold of the split ({len(splits.folds)} folds)"
        )
    rows: list[dict] = []
    for fold in splits.folds:
        if only_folds is not None and fold.fold not in only_folds:
            continue
        model = train_averaged_model(
            member_configs,
            manifest,
            root,
            fold.train,
            fold.val,
            out / f"fold_{fold.fold}",
            cache,
            members_dir=Path(models_dir or out) / f"fold_{fold.fold}",
            with_method=True,
            resume=True,
            progress=progress,
        )
        predictor = model.predictor
        for case in (c for c in manifest.cases if c.subject in fold.test):
            prediction = out / f"fold_{fold.fold}" / "predictions" / f"{case.id}.nii.gz"
            extra = {"fold": fold.fold, "subject": case.subject}
            rows += predict_and_score(predictor, manifest, case, root, cache, prediction, out, extra)
    summary = summarize(rows)
    cpu_minutes = (time.process_time() - cpu_start) / 60
    summary["cpu_minutes"] = round(cpu_minutes, 2)
    summary["method"] = "+".join(dict.fromkeys(c.method for c in member_configs))
    if len({c.seed for c in member_configs}) > 1:
        summary["seeds"] = sorted({c.seed for c in member_configs})
    summary["scheme"] = splits.scheme
    summary["dataset"] = manifest.name
    summary["spacing_note"] = manifest.spacing_note
    subject_rows = pooled_metrics([r for r in rows if "slice" in r], by="subject")
    if subject_rows:
        summary["subjects"] = summarize(subject_rows)
    write_cv_outputs(out, rows, summary, manifest, subject_rows)
    return CVResult(rows, summary, splits, cpu_minutes, out)


def split_notes(splits: Splits, folds_asked: int, n_subjects: int) -> list[str]:
    """What the user should know before the folds run: leave-one-subject-out instead of the folds asked
    for, and folds that have no validation subject (their checkpoint is the last, not the best)."""
    notes = []
    if splits.scheme == "leave-one-subject-out" and folds_asked > n_subjects:
        notes.append(
            f"note: {folds_asked} folds asked, but the set has {n_subjects} subjects: "
            f"leave-one-subject-out ({len(splits.folds)} folds)"
        )
    for fold in splits.folds:
        if not fold.val:
            notes.append(
                f"note: fold {fold.fold} has a single training subject and no validation subject: its "
                "validation figures are measured on training data and its checkpoint is the last one"
            )
    return notes


def predict_and_score(
    predictor: Predictor,
    manifest: Manifest,
    case: Case,
    root: str | Path,
    cache: PreprocessCache,
    prediction_path: Path,
    report_dir: Path,
    extra: dict,
) -> list[dict]:
    """Predict one held-out case, write the prediction on its original grid to ``prediction_path`` and
    return its metrics rows (``extra`` added to each); labelled-slice cases also get their slice overlays
    in ``report_dir/overlays``."""
    loaded = load_case(manifest, case, root)
    pre = cache.get(manifest, case, root, predictor.preprocess_config)
    if case.label_slices is not None:  # predict the labelled slices only; the rest stays 0
        pre = only_labelled_slices(pre, labelled_slices(case, pre.record))
    labels, mean, _ = predictor.predict_preprocessed(pre)
    pred = predictor.labels_on_original_grid(labels, mean.shape[0], pre.record)
    write_volume(
        loaded.reference.with_array(pred, kind="label"),
        prediction_path,
        reference=loaded.reference,
    )
    ref = loaded.label.array if loaded.label is not None else np.zeros_like(pred)
    if case.label_slices is not None:
        return score_labelled_slices(report_dir, manifest, case, loaded.reference, pred, ref, extra)
    return label_map_metrics(
        pred, ref, loaded.reference.spacing, manifest.labels, manifest.regions, case=case.id, extra=extra
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
