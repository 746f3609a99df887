"""Subject-wise cross-validation: train each fold on the other subjects, predict the held-out subjects'
whole volumes back on their original grids, evaluate them, and tabulate per-fold medians in the layout of
TS-CNN Table 1 (the papers report medians over 5 folds)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lesionseg.config.train import TrainConfig
from lesionseg.data.manifest import Manifest, load_case
from lesionseg.data.splits import Splits, load_splits, make_splits
from lesionseg.infer.predictor import Predictor, load_members
from lesionseg.io import atomic_output, write_volume
from lesionseg.metrics import label_map_metrics, summarize
from lesionseg.preprocess import PreprocessCache
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
) -> CVResult:
    """Run every fold; ``member_configs`` holds one config, or several for an ensemble (averaged)."""
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
                fold_dir / cfg.method,
                cache,
                resume=True,
                progress=progress,
            )
            checkpoints.append(result.best)
        predictor = Predictor(load_members(checkpoints), bf16=cfg0.bf16)
        for case in (c for c in manifest.cases if c.subject in fold.test):
            loaded = load_case(manifest, case, root)
            pre = cache.get(manifest, case, root, cfg0.preprocess)
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
    write_cv_outputs(out, rows, summary, manifest)
    return CVResult(rows, summary, splits, cpu_minutes, out)


def write_cv_outputs(out: Path, rows: list[dict], summary: dict, manifest: Manifest) -> None:
    """metrics.csv, summary.json, table.md (TS-CNN Table 1 layout) and the HTML report."""
    from lesionseg.report.tables import tscnn_table_markdown, write_metrics_csv

    write_metrics_csv(out / "metrics.csv", rows)
    with atomic_output(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    with atomic_output(out / "table.md") as tmp:
        tables = [tscnn_table_markdown(group["folds"], label) for label, group in summary["labels"].items()]
        tmp.write_text("\n\n".join(tables) + "\n")
