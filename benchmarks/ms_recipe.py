"""The lesion recipe on the MS scans, side by side with a FLAIR threshold (issue "Models worth shipping").

Leave-one-subject-out on ``ms_flair_t1`` (open_ms_data's 3 patients + mslesseg's P14 with 3 time points: 4
subjects, 6 scans), the same folds for every row (one split file, seed 0; in each fold one of the three
training subjects is held out for validation: checkpoint choice, threshold and minimum lesion size).

Rows:
- ``floor``: FLAIR z-score > k inside the brain mask, k chosen on the fold's training scans only;
- ``recipe-10m`` / ``recipe-5m`` / ``recipe-20m``: ``lesion-unet`` as it was before the lesion-contrast
  augmentation (below) at 10, 5 and 20 CPU minutes per fold, predicting with the final weights; each also
  scored without its calibration (threshold 0.5, no size filter): ``...-uncalibrated``;
- ``recipe-10m-best-checkpoint``: ``recipe-10m`` predicting with the checkpoint of the highest validation
  Dice (the recipe's earlier rule; the same training run: only the checkpoint differs);
- ``strong-aug-10m``: ``recipe-10m-best-checkpoint`` with wider intensity ranges drawn per input channel
  (the training sets mix two sites whose lesion contrast differs). Which of the two the recipe ships was
  decided by the mean calibrated validation score over the folds (``val_score`` in the calibration
  table), never by the test scans: nnU-Net's ranges won;
- ``no-intensity-aug-10m`` and ``context-2.5d-10m``: ``recipe-10m`` without the intensity augmentation, and
  with 2.5D input (the slice and its two neighbours, TS-CNN's context, as 6 input channels): what each
  buys;
- ``strong-aug-5m`` and ``strong-aug-old-sampling-5m``: the sampling ablation, run (before the decision
  above, with the best-validation checkpoint) on the wider-augmentation variant at 5 CPU minutes: whole
  slices with a forced lesion third against the earlier bundled model's sampling (lesion slices plus as
  many other brain slices, 128 x 128 patches, 70 % of them centred on lesion).
- ``recipe-10m-seed1``: ``recipe-10m`` with training seed 1 (the folds stay): how far one seed moves the
  shipped row's medians.
- ``lesion-two-thirds-5m``, ``patches-5m`` and ``subject-balance-5m``: ``recipe-5m`` with one sampling change
  each, tried against patient19's miss (its large, moderately bright lesions; the other open_ms_data
  patients' lesions are small, P14's are brighter): 5 of every 8 slices drawn from lesion slices; the
  earlier bundled model's patch sampling (as above); each subject equally likely (``sample_balance``),
  so that P14's three scans do not supply most lesion samples. None was adopted: each one's mean
  calibrated validation Dice over the folds was below ``recipe-5m``'s (calibration table).
- ``recipe-5m-seed1``: ``recipe-5m`` with training seed 1; ``ensemble-2x5m`` and ``ensemble-2x10m``: the
  two seeds of ``recipe-5m`` (of ``recipe-10m``) averaged, the average calibrated on the validation subject
  (10 and 20 CPU minutes per fold in all: an equal-budget alternative to ``recipe-10m`` and
  ``recipe-20m``).
- ``lesion-contrast-5m``, ``lesion-contrast-10m`` and ``lesion-contrast-20m``: ``recipe-5m`` (10m, 20m)
  with half of the samples' lesions keeping only U[0.5, 1] of their contrast to the tissue around them
  (``lesion_contrast=0.5``), tried against patient19's moderately bright lesions. It raised the mean
  calibrated validation Dice over the folds (the rule fixed before it ran), so the recipe now ships it.
  Every other row ran before and keeps it off (``lesion_contrast=0`` is added to their overrides). The
  same rule then chose the bundled model's budget between 5 and 10 CPU minutes: 5 scored higher on
  validation with the augmentation and without it, so ``lesion-contrast-5m`` is the shipped recipe and
  budget (``lesion-contrast-5m-seed1``: its second seed). The 20-minute row is the comparison with
  nnU-Net.
- ``refit-5m+5m``: calibrate, then refit. ``recipe-5m`` (trained on the training subjects) gives the
  threshold and minimum lesion size on the validation subject; the same config then trains 5 more CPU
  minutes on the training and validation subjects together (one more subject, which the held-out test
  subject never is), and that model predicts the test scans: 10 CPU minutes per fold in all. Validation
  cannot judge it (its validation subject is in its training set).
- ``lesion-contrast-5m-tta`` (and ``-seed1-tta``, ``-seed2-tta``): the same trained models predicting
  with the left-right mirror image's probabilities averaged in (``predict --tta``), calibrated again on the
  validation subject with it: no training of their own. It raised every seed's mean calibrated validation
  Dice (the rule fixed before they ran), so the recipe now ships it (``flip_tta``; the rows that ran
  before keep it off): ``lesion-contrast-5m-tta`` is the shipped recipe and budget.
- ``flip-lr-5m``: the shipped recipe with its training flip mirroring left-right (``flip_axes=rows``)
  instead of anterior-posterior (the recipe's flip mirrors the second in-plane axis, which on a RAS slice
  is anterior-posterior); to be adopted only if it beat the shipped row with seed 0 and then with seed 1.
  It lost with seed 0, so seed 1 was not run.
- ``ensemble-3x5m-tta``: ``ensemble-3x5m`` (the three seeds averaged) with each member's mirror image
  averaged in, calibrated again on the validation subject: 15 CPU minutes of training per fold, six network
  passes per slice. It scored above each of its networks on validation, and it is the bundled model's
  recipe (BENCHMARKS.md, recipe section, says how that was decided).

Every fold of every row is one job that writes ``runs/ms_recipe/<row>/fold_<k>.json`` when it finishes, so
an interrupted run resumes where it stopped (a half-trained fold resumes from its last.pt). Run the jobs in
two processes, one torch thread each, then assemble the table::

    OMP_NUM_THREADS=1 python benchmarks/ms_recipe.py --worker 0/2 &
    OMP_NUM_THREADS=1 python benchmarks/ms_recipe.py --worker 1/2 &
    wait; python benchmarks/ms_recipe.py --report      # -> benchmarks/results/ms_recipe.md

``--quick`` runs 20-second budgets on two folds into ``runs/ms_recipe_quick`` (checks the script).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lesionseg.config.train import resolve_train_config
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.manifest import Manifest, load_case, load_manifest
from lesionseg.data.splits import Fold, Splits, load_splits, make_splits
from lesionseg.evaluate.cv import predict_and_score
from lesionseg.evaluate.floor import fit_floor_k, floor_mask
from lesionseg.infer.predictor import Predictor, load_members
from lesionseg.metrics import label_map_metrics
from lesionseg.preprocess import invert
from lesionseg.train.calibrate import calibrate_ensemble
from lesionseg.train.run import train_model

REPO = Path(__file__).resolve().parents[1]
METHOD = "lesion-unet"
STRONG = "intensity_strength=strong"
OLD_SAMPLING = [  # the earlier bundled model's sampling: lesion slices + as many others, patches
    "lesion_sample_fraction=null",
    "lesion_slice_ratio=1.0",
    "patch_size=[128,128]",
    "lesion_patch_probability=0.7",
]
LESION_TWO_THIRDS = "lesion_sample_fraction=0.67"  # 5 of every 8 slices drawn from lesion slices
BEST = "checkpoint=best"  # the checkpoint of the highest validation Dice instead of the final one
ROWS: dict[str, list[str]] = {
    "recipe-10m": ["budget_s=600"],
    "recipe-10m-best-checkpoint": ["budget_s=600", BEST],
    "strong-aug-10m": ["budget_s=600", STRONG, BEST],
    "strong-aug-5m": ["budget_s=300", STRONG, BEST],
    "strong-aug-old-sampling-5m": ["budget_s=300", STRONG, *OLD_SAMPLING, BEST],
    "recipe-5m": ["budget_s=300"],
    "recipe-20m": ["budget_s=1200"],
    "no-intensity-aug-10m": ["budget_s=600", "intensity_augmentation=false"],
    "context-2.5d-10m": ["budget_s=600", "context_slices=3"],
    "lesion-two-thirds-5m": ["budget_s=300", LESION_TWO_THIRDS],
    "recipe-10m-seed1": ["budget_s=600", "seed=1"],
    "patches-5m": ["budget_s=300", *OLD_SAMPLING],
    "subject-balance-5m": ["budget_s=300", "sample_balance=subject"],
    "recipe-5m-seed1": ["budget_s=300", "seed=1"],
    "lesion-contrast-5m": ["budget_s=300", "lesion_contrast=0.5"],  # the shipped recipe and budget
    "lesion-contrast-10m": ["budget_s=600", "lesion_contrast=0.5"],
    "lesion-contrast-5m-seed1": ["budget_s=300", "lesion_contrast=0.5", "seed=1"],
    "lesion-contrast-20m": ["budget_s=1200", "lesion_contrast=0.5"],
    "lesion-contrast-all-5m": ["budget_s=300", "lesion_contrast=1.0"],  # every sample, not half
    "lesion-contrast-5m-seed2": ["budget_s=300", "lesion_contrast=0.5", "seed=2"],
    "modality-dropout-5m": ["budget_s=300", "lesion_contrast=0.5", "modality_dropout=0.3"],
    "blob-loss-5m": ["budget_s=300", "lesion_contrast=0.5", "loss=dice_bce_blob_loss"],
    "blob-loss-5m-seed1": ["budget_s=300", "lesion_contrast=0.5", "loss=dice_bce_blob_loss", "seed=1"],
    "flip-lr-5m": ["budget_s=300", "lesion_contrast=0.5", "flip_axes=rows"],
}
# What the recipe was before it adopted a change: a row that does not set the setting ran before, and keeps
# the earlier value, so that a rerun reproduces it.
BEFORE = {"lesion_contrast": "0", "loss": "dice_bce_loss", "flip_axes": "cols", "flip_tta": "false"}
ROWS = {
    row: [
        *overrides,
        *(f"{k}={v}" for k, v in BEFORE.items() if not any(o.startswith(f"{k}=") for o in overrides)),
    ]
    for row, overrides in ROWS.items()
}
# Calibrate, then refit: the phase-1 row (trained on the training subjects, calibrated on the validation
# subject) gives the threshold and minimum lesion size; the same config then trains again on the training
# and the validation subjects together, and that model predicts the test scans. CPU minutes: both phases.
REFIT: dict[str, str] = {"refit-5m+5m": "recipe-5m"}
ROWS.update({row: [*ROWS[phase1], "calibrate=false"] for row, phase1 in REFIT.items()})
# Seed ensembles: the members are finished rows (the same folds, different training seeds); their averaged
# probabilities get their own threshold and minimum lesion size on the fold's validation subject (as
# ``lesionseg train`` does for an ensemble). CPU minutes: all members' training.
ENSEMBLES: dict[str, list[str]] = {
    "ensemble-2x10m": ["recipe-10m", "recipe-10m-seed1"],
    "ensemble-2x5m": ["recipe-5m", "recipe-5m-seed1"],
    "ensemble-3x5m": ["lesion-contrast-5m", "lesion-contrast-5m-seed1", "lesion-contrast-5m-seed2"],
}
# Test-time augmentation: these one-member "ensembles" predict with the member's model and its left-right
# mirror image averaged (predict --tta), calibrated again on the validation subject; no training of their
# own.
SEEDS_TTA = tuple(f"{member}-tta" for member in ENSEMBLES["ensemble-3x5m"])
ENSEMBLES.update({row: [row.removesuffix("-tta")] for row in SEEDS_TTA})
# The three seeds averaged, each with its mirror image (six passes per slice), calibrated on validation.
ENSEMBLES["ensemble-3x5m-tta"] = list(ENSEMBLES["ensemble-3x5m"])
FLIP_TTA = (*SEEDS_TTA, "ensemble-3x5m-tta")
# also scored at threshold 0.5 without the size filter
UNCALIBRATED = (
    "recipe-10m",
    "recipe-10m-best-checkpoint",
    "strong-aug-10m",
    "strong-aug-5m",
    "recipe-5m",
    "recipe-20m",
    *ENSEMBLES,
)
METRICS = ("dsc", "precision", "sensitivity", "lesion_f1", "avd")


def job_list(folds: int) -> list[tuple[str, int]]:
    """Jobs in the order they matter: the floor, the shipped row, then the rest, fold by fold."""
    jobs = [("floor", k) for k in range(folds)]
    for row in [*ROWS, *ENSEMBLES]:
        jobs += [(row, k) for k in range(folds)]
    return jobs


def fixed_splits(manifest: Manifest, runs: Path) -> Splits:
    path = runs / "splits.json"
    if path.exists():
        return load_splits(path, manifest.subjects)
    splits = make_splits(manifest.subjects, len(manifest.subjects), seed=0, val_fraction=0.2)
    runs.mkdir(parents=True, exist_ok=True)
    splits.save(path)
    return splits


def run_model_fold(row: str, k: int, manifest: Manifest, data: Path, runs: Path, quick: bool) -> dict:
    """Train ``row`` on fold ``k`` (resuming), predict its test scans, return the per-scan rows."""
    overrides = ROWS[row] + (["budget_s=20"] if quick else [])
    cfg = resolve_train_config(METHOD, "cpu", overrides=overrides)
    fold = fixed_splits(manifest, runs).folds[k]
    cache = PreprocessCache(runs / "cache")
    cpu0 = time.process_time()
    calibration_file = runs / row / f"fold_{k}" / "calibration.json"
    if row in REFIT:
        phase1 = json.loads((runs / REFIT[row] / f"fold_{k}.json").read_text())  # run that row first
        calibration_file = runs / REFIT[row] / f"fold_{k}" / "calibration.json"
        subjects, val = sorted([*fold.train, *fold.val]), []
    else:
        subjects, val = fold.train, fold.val
    result = train_model(cfg, manifest, data, subjects, val, runs / row / f"fold_{k}", cache, True, False)
    train_cpu = time.process_time() - cpu0
    calibration = json.loads(calibration_file.read_text()) if calibration_file.exists() else None
    if row in REFIT:
        train_cpu += 60 * phase1["train_cpu_minutes"]
        chosen = {"threshold": calibration["threshold"], "min_lesion_mm3": calibration["min_lesion_mm3"]}
        predictor = Predictor(load_members([result.best]), **chosen, bf16=True)
    else:
        predictor = Predictor(load_members([result.best]), bf16=True)
    variants = {row: predictor}
    if row in UNCALIBRATED:
        variants[f"{row}-uncalibrated"] = Predictor(
            load_members([result.best]), threshold=0.5, min_lesion_mm3=0.0, bf16=True
        )
    rows = score_test_scans(variants, manifest, fold, data, cache, runs / row / f"fold_{k}", k)
    plan = json.loads((runs / row / f"fold_{k}" / "plan.json").read_text())
    return {
        "rows": rows,
        "train_cpu_minutes": round(train_cpu / 60, 2),
        "plan": plan,
        "calibration": calibration,
        "history": result.history,
        "train": fold.train,
        "val": fold.val,
        "test": fold.test,
    }


def score_test_scans(  # noqa: PLR0913
    variants: dict[str, Predictor],
    manifest: Manifest,
    fold: Fold,
    data: Path,
    cache: PreprocessCache,
    out: Path,
    k: int,
) -> list[dict]:
    """Each variant predicts the fold's test scans into ``out/predictions/<variant>``; their metric rows."""
    rows = []
    for name, predictor in variants.items():
        for case in (c for c in manifest.cases if c.subject in fold.test):
            path = out / "predictions" / name / f"{case.id}.nii.gz"
            extra = {"row": name, "fold": k}
            rows += predict_and_score(predictor, manifest, case, data, cache, path, path.parent, extra)
    return rows


def run_ensemble_fold(row: str, k: int, manifest: Manifest, data: Path, runs: Path) -> dict:
    """Average the member rows' fold-``k`` models, calibrate the average on the validation subject, predict
    the test scans (also uncalibrated: threshold 0.5, no size filter)."""
    fold = fixed_splits(manifest, runs).folds[k]
    cache = PreprocessCache(runs / "cache")
    members = load_members([runs / member / f"fold_{k}" / "best.pt" for member in ENSEMBLES[row]])
    phase1 = [json.loads((runs / member / f"fold_{k}.json").read_text()) for member in ENSEMBLES[row]]
    out = runs / row / f"fold_{k}"
    tta = row in FLIP_TTA
    predictor = Predictor(members, bf16=True, flip_tta=tta)
    calibration = calibrate_ensemble(predictor, manifest, data, cache, fold.val, out)
    variants = {
        row: predictor,
        f"{row}-uncalibrated": Predictor(members, threshold=0.5, min_lesion_mm3=0.0, bf16=True, flip_tta=tta),
    }
    rows = score_test_scans(variants, manifest, fold, data, cache, out, k)
    steps = [f["plan"]["steps"] for f in phase1]
    return {
        "rows": rows,
        "train_cpu_minutes": round(sum(f["train_cpu_minutes"] for f in phase1), 2),
        "plan": {
            "steps": "+".join(map(str, steps)),
            "step_seconds": np.mean([f["plan"]["step_seconds"] for f in phase1]),
        },
        "calibration": asdict(calibration) if calibration is not None else None,
        "members": ENSEMBLES[row],
        "train": fold.train,
        "val": fold.val,
        "test": fold.test,
    }


def floor_fold(k: int, manifest: Manifest, data: Path, runs: Path) -> dict:
    """FLAIR z-score > k inside the brain mask, k chosen on the fold's training (and validation) scans."""
    cfg = resolve_train_config(METHOD, "cpu")
    fold = fixed_splits(manifest, runs).folds[k]
    cache = PreprocessCache(runs / "cache")
    cpu0 = time.process_time()
    fit_subjects = set(fold.train) | set(fold.val)

    fit = [cache.get(manifest, c, data, cfg.preprocess) for c in manifest.cases if c.subject in fit_subjects]
    best_k = fit_floor_k(fit)
    rows = []
    for case in (c for c in manifest.cases if c.subject in fold.test):
        pre = cache.get(manifest, case, data, cfg.preprocess)
        loaded = load_case(manifest, case, data)
        pred = invert(floor_mask(pre, best_k), pre.record, "label").astype(np.uint8)
        ref = (np.asarray(loaded.label.array) > 0).astype(np.uint8)
        rows += label_map_metrics(
            pred, ref, loaded.reference.spacing, manifest.labels, None, case.id, {"row": "floor", "fold": k}
        )
    return {
        "rows": rows,
        "k": best_k,
        "train_cpu_minutes": round((time.process_time() - cpu0) / 60, 2),
        "test": fold.test,
    }


def run_worker(
    index: int, count: int, data: Path, runs: Path, quick: bool, rows: list[str] | None = None
) -> None:
    manifest = load_manifest("ms_flair_t1")
    folds = 2 if quick else len(fixed_splits(manifest, runs).folds)
    jobs = [(row, k) for row, k in job_list(folds) if rows is None or row in rows]
    for j, (row, k) in enumerate(jobs):
        if j % count != index:
            continue
        done = runs / row / f"fold_{k}.json"
        if done.exists():
            continue
        if row in REFIT and not (runs / REFIT[row] / f"fold_{k}.json").exists():
            print(f"{row} fold {k}: skipped until {REFIT[row]} fold {k} has finished; rerun", flush=True)
            continue
        waiting = [m for m in ENSEMBLES.get(row, []) if not (runs / m / f"fold_{k}.json").exists()]
        if waiting:
            print(
                f"{row} fold {k}: skipped until {', '.join(waiting)} fold {k} has finished; rerun", flush=True
            )
            continue
        started = time.monotonic()
        if row == "floor":
            result = floor_fold(k, manifest, data, runs)
        elif row in ENSEMBLES:
            result = run_ensemble_fold(row, k, manifest, data, runs)
        else:
            result = run_model_fold(row, k, manifest, data, runs, quick)
        result["date"] = str(datetime.date.today())
        result["wall_minutes"] = round((time.monotonic() - started) / 60, 2)
        done.parent.mkdir(parents=True, exist_ok=True)
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1, default=float) + "\n")
        tmp.replace(done)
        dsc = [r["dsc"] for r in result["rows"] if r["row"] == row]
        print(f"{row} fold {k}: Dice {np.round(dsc, 3).tolist()} ({result['wall_minutes']} min)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--runs", type=Path)
    parser.add_argument("--worker", default="0/1", help="I/N: run every N-th job starting at I")
    parser.add_argument(
        "--rows", nargs="+", choices=["floor", *ROWS, *ENSEMBLES], help="only these rows' jobs"
    )
    parser.add_argument("--report", action="store_true", help="assemble benchmarks/results/ms_recipe*.md")
    parser.add_argument("--quick", action="store_true", help="20 s budgets, 2 folds (checks the script)")
    args = parser.parse_args()
    runs = args.runs or REPO / "runs" / ("ms_recipe_quick" if args.quick else "ms_recipe")
    if args.report:
        from ms_recipe_report import write_report

        write_report(runs, REPO / "benchmarks" / "results", args.quick)
        return
    index, count = (int(x) for x in args.worker.split("/"))
    run_worker(index, count, args.data, runs, args.quick, args.rows)


if __name__ == "__main__":
    main()
