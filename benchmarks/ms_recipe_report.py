"""Assemble benchmarks/results/ms_recipe.md from the fold files of benchmarks/ms_recipe.py (rows with
unfinished folds are reported with the folds they have, and say so)."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import numpy as np
from _timing import write_result
from ms_recipe import ENSEMBLES, METRICS, REFIT, ROWS, SEEDS_TTA, UNCALIBRATED

from lesionseg.nets.checkpoint import load_checkpoint

PEER_ROWS = ["nnunet-2d-20m"]  # benchmarks/nnunet_ms.py: nnU-Net v2 2d, its trainer cut to 20 CPU minutes

LABELS = {
    "dsc": "Dice",
    "precision": "precision",
    "sensitivity": "sensitivity",
    "lesion_f1": "lesion F1",
    "avd": "AVD %",
}


def load_row(runs: Path, row: str) -> list[dict]:
    """The finished folds of ``row``; model rows get ``train_cpu_minutes`` from the budget clock saved in
    their last checkpoint (the CPU time the trainer spent, whatever process finished the fold); a refit
    row adds its phase-1 row's, an ensemble row sums its members'."""
    folds = []
    for path in sorted((runs / row).glob("fold_*.json")):
        fold = json.loads(path.read_text())
        runs_of_fold = [path.with_suffix("") / "last.pt"]
        if row in ENSEMBLES:
            runs_of_fold = [runs / member / path.stem / "last.pt" for member in ENSEMBLES[row]]
        if row in REFIT:
            runs_of_fold.append(runs / REFIT[row] / path.stem / "last.pt")
        if all(last.exists() for last in runs_of_fold):
            spent = sum(float(load_checkpoint(last)["spent_s"]) for last in runs_of_fold)
            fold["train_cpu_minutes"] = spent / 60
        folds.append(fold)
    return folds


def median_iqr(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "n/a"
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return f"{q2:.3f} [{q1:.3f}, {q3:.3f}]"


def row_lines(name: str, rows: list[dict], folds: list[dict], total_folds: int) -> str:
    cells = [median_iqr([r[m] for r in rows]) for m in METRICS]
    cpu = np.median([f["train_cpu_minutes"] for f in folds]) if folds else float("nan")
    done = f"{len(folds)}/{total_folds}"
    return f"| {name} | {len(rows)} | {done} | " + " | ".join(cells) + f" | {cpu:.1f} |"


def peer_lines(per_row: dict[str, list[dict]]) -> list[str]:
    """The recipe (as shipped, then as it was before the lesion-contrast augmentation) against nnU-Net at
    the same CPU minutes: medians, their difference, scans won."""
    lines = []
    peer = per_row.get("nnunet-2d-20m", [])
    peer_dice = {r["case"]: r["dsc"] for r in peer}
    for name in ("lesion-contrast-20m", "recipe-20m"):
        ours = per_row.get(name, [])
        if not ours or not peer or len(ours) < len(peer):
            continue
        paired = [(r["dsc"], peer_dice[r["case"]]) for r in ours if r["case"] in peer_dice]
        med = {
            m: (np.median([r[m] for r in ours]), np.median([r[m] for r in peer]))
            for m in ("dsc", "lesion_f1")
        }
        won = sum(a > b for a, b in paired)
        lines += [
            "",
            f"At 20 CPU minutes per fold: {name} median Dice {med['dsc'][0]:.3f} against nnunet-2d-20m "
            f"{med['dsc'][1]:.3f} (difference {med['dsc'][0] - med['dsc'][1]:+.3f}); its Dice is higher "
            f"on {won} of {len(paired)} scans; median lesion F1 {med['lesion_f1'][0]:.3f} against "
            f"{med['lesion_f1'][1]:.3f}; mean Dice {np.mean([a for a, _ in paired]):.3f} against "
            f"{np.mean([b for _, b in paired]):.3f}.",
        ]
    return lines


SHIPPED_SEEDS = SEEDS_TTA  # the shipped recipe (mirroring at test time) with training seeds 0, 1 and 2


def seed_lines(per_row: dict[str, list[dict]], rows: tuple[str, ...]) -> list[str]:
    """The shipped recipe and budget over its training seeds (same folds): each seed's medians over the
    scans, and the mean of those medians, against the issue's targets."""
    if not all(row in per_row for row in rows):
        return []
    medians = {
        row: {m: float(np.median([r[m] for r in per_row[row]])) for m in ("dsc", "precision", "lesion_f1")}
        for row in rows
    }
    per_seed = "; ".join(
        f"{row} {v['dsc']:.3f} / {v['precision']:.3f} / {v['lesion_f1']:.3f}" for row, v in medians.items()
    )
    mean = {m: np.mean([v[m] for v in medians.values()]) for m in ("dsc", "precision", "lesion_f1")}
    return [
        "",
        f"The shipped recipe and budget over {len(rows)} training seeds, median Dice / precision / lesion F1 "
        f"over the 6 scans: {per_seed}; mean over the seeds {mean['dsc']:.3f} / {mean['precision']:.3f} / "
        f"{mean['lesion_f1']:.3f} (targets 0.60 / 0.60 / 0.50).",
    ]


def choice_lines(fold_files: dict, rows: tuple[str, ...], total: int, what: str, rule: str) -> list[str]:
    """A decision made on validation only: each row's mean calibrated validation Dice over the folds
    (when every row has all its folds)."""
    scores = {
        row: [f["calibration"]["val_score"] for f in fold_files[row] if f.get("calibration")] for row in rows
    }
    if not all(len(v) == total for v in scores.values()):
        return []
    means = ", ".join(f"{row} {np.mean(v):.3f}" for row, v in scores.items())
    return [
        "",
        f"Choice of {what}, on validation only: mean over the folds of the calibrated validation Dice "
        f"(`val_score`): {means}; {rule}.",
    ]


def write_report(runs: Path, results: Path, quick: bool) -> Path:
    splits = json.loads((runs / "splits.json").read_text())
    total = 2 if quick else len(splits["folds"])
    names = ["floor", *ROWS, *ENSEMBLES, *PEER_ROWS]
    per_row: dict[str, list[dict]] = {}
    fold_files: dict[str, list[dict]] = {}
    for row in names:
        folds = load_row(runs, row)
        fold_files[row] = folds
        for f in folds:
            for r in f["rows"]:
                per_row.setdefault(r["row"], []).append(r)
    header = "| row | scans | folds | " + " | ".join(LABELS[m] for m in METRICS) + " | CPU min / fold |"
    lines = [
        "Leave-one-subject-out on ms_flair_t1 (open_ms_data patients 07, 19, 26 + mslesseg P14 at 3 time "
        "points: 4 subjects, 6 scans); the same folds for every row; in each fold one training subject is "
        "held out for validation. Medians over scans with [IQR]. CPU minutes: the trainer's budget clock per "
        "fold (process CPU time of the timed warm-up, the training steps and the validations, one torch "
        "thread; the floor: fitting k). The planned step count comes from the warm-up's step time, which "
        "is slower than the later steps, so runs end below their budget. The recipe rows predict with the "
        "final weights; `recipe-10m-best-checkpoint` is the same training run predicting with the "
        "checkpoint of the highest validation Dice (as do the strong-aug rows). `nnunet-2d-20m`: nnU-Net v2 "
        "(2d configuration, its default trainer with the epoch count cut to 20 CPU minutes of training, one "
        "thread, checkpoint_final, test-time mirroring on) on the same folds, from "
        "`benchmarks/nnunet_ms.py`; its CPU minutes are its trainer's own clock from the first epoch on.",
        f"Command: `python benchmarks/ms_recipe.py --worker 0/2 & ... --worker 1/2; python "
        f"benchmarks/ms_recipe.py --report` ({datetime.date.today()}).",
        "",
        header,
        "|" + "---|" * (len(METRICS) + 4),
    ]
    for row in names:
        for name in [row] + ([f"{row}-uncalibrated"] if row in UNCALIBRATED else []):
            if name in per_row:
                lines.append(row_lines(name, per_row[name], fold_files[row], total))
    missing = [row for row in names if len(fold_files[row]) < total]
    if missing:
        lines += ["", f"Not finished in this run (folds missing): {', '.join(missing)}."]
    lines += peer_lines(per_row)
    lines += seed_lines(per_row, SHIPPED_SEEDS)
    # per-scan Dice against the floor
    floor = {r["case"]: r["dsc"] for r in per_row.get("floor", [])}
    lines += [
        "",
        "Per scan: Dice of each model row against the FLAIR-threshold floor (k chosen on the fold's "
        "training scans).",
        "",
    ]
    shown = [
        n
        for n in (
            "recipe-10m",
            "recipe-10m-seed1",
            "ensemble-2x10m",
            "recipe-10m-uncalibrated",
            "recipe-10m-best-checkpoint",
            "recipe-5m",
            "recipe-5m-seed1",
            "ensemble-2x5m",
            "recipe-20m",
            "nnunet-2d-20m",
            "no-intensity-aug-10m",
            "context-2.5d-10m",
            "strong-aug-10m",
            "strong-aug-5m",
            "strong-aug-old-sampling-5m",
            "lesion-two-thirds-5m",
            "lesion-contrast-5m",
            "lesion-contrast-5m-seed1",
            "lesion-contrast-5m-seed2",
            "lesion-contrast-5m-tta",
            "lesion-contrast-5m-seed1-tta",
            "lesion-contrast-5m-seed2-tta",
            "flip-lr-5m",
            "ensemble-3x5m",
            "ensemble-3x5m-tta",
            "lesion-contrast-all-5m",
            "modality-dropout-5m",
            "blob-loss-5m",
            "blob-loss-5m-seed1",
            "lesion-contrast-10m",
            "lesion-contrast-20m",
            "patches-5m",
            "subject-balance-5m",
            "refit-5m+5m",
        )
        if n in per_row
    ]
    lines += ["| scan | floor (k) | " + " | ".join(shown) + " |", "|" + "---|" * (len(shown) + 2)]
    floor_k = {c: f["k"] for f in fold_files.get("floor", []) for c in [r["case"] for r in f["rows"]]}
    for case in sorted(floor):
        cells = []
        for name in shown:
            value = next((r["dsc"] for r in per_row[name] if r["case"] == case), None)
            mark = "" if value is None else (" (above)" if value > floor[case] else " (**not above**)")
            cells.append("-" if value is None else f"{value:.3f}{mark}")
        lines.append(
            f"| {case} | {floor[case]:.3f} ({floor_k.get(case, float('nan')):.2f}) | "
            + " | ".join(cells)
            + " |"
        )
    # calibration and plans
    lines += [
        "",
        "Calibration on the validation subject and the step plan of each fold:",
        "",
        "| row | fold | val subject | steps | s / step | threshold | min lesion mm3 "
        "| val Dice (0.5 -> calibrated = val_score) | val lesion F1 (0.5 -> calibrated) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in [*ROWS, *ENSEMBLES]:
        for k, f in enumerate(fold_files[row]):
            cal, plan = f.get("calibration") or {}, f["plan"]
            lines.append(
                f"| {row} | {k} | {', '.join(f['val'])} | {plan['steps']} | {plan['step_seconds']:.3f} | "
                f"{cal.get('threshold', '-')} | {cal.get('min_lesion_mm3', '-')} | "
                f"{cal.get('default_dice', float('nan')):.3f} -> {cal.get('val_dice', float('nan')):.3f} | "
                f"{cal.get('default_lesion_f1', float('nan')):.3f} -> "
                f"{cal.get('val_lesion_f1', float('nan')):.3f} |"
            )
    lines += choice_lines(
        fold_files,
        ("recipe-10m-best-checkpoint", "strong-aug-10m"),
        total,
        "the intensity augmentation",
        "the higher one is the recipe's default",
    )
    lines += choice_lines(
        fold_files,
        ("recipe-5m", "lesion-two-thirds-5m", "patches-5m", "subject-balance-5m"),
        total,
        "the sampling",
        "a change is adopted only if it beats recipe-5m",
    )
    lines += choice_lines(
        fold_files,
        ("recipe-5m", "lesion-contrast-5m"),
        total,
        "the lesion-contrast augmentation",
        "it is adopted only if it beats recipe-5m",
    )
    lines += choice_lines(
        fold_files,
        ("recipe-5m", "recipe-10m", "lesion-contrast-5m", "lesion-contrast-10m"),
        total,
        "the bundled model's budget, 5 or 10 CPU minutes",
        "5 minutes scored higher with and without the lesion-contrast augmentation, so the bundled model "
        "trains for 5 (`lesion-contrast-5m` is the shipped recipe and budget)",
    )
    lines += choice_lines(
        fold_files,
        ("recipe-10m", "ensemble-2x5m"),
        total,
        "one model or two seeds at the same 10 CPU minutes",
        "the ensemble is adopted only if it beats recipe-10m",
    )
    lines += choice_lines(
        fold_files,
        ("lesion-contrast-5m", "lesion-contrast-all-5m", "modality-dropout-5m", "blob-loss-5m"),
        total,
        "changes to the shipped recipe (lesion contrast in every sample, modality dropout, blob loss)",
        "a change is adopted only if it beats lesion-contrast-5m",
    )
    lines += choice_lines(
        fold_files,
        ("lesion-contrast-5m-seed1", "blob-loss-5m-seed1"),
        total,
        "the blob loss, again with training seed 1",
        "it is adopted only if it beats lesion-contrast-5m with both seeds",
    )
    lines += choice_lines(
        fold_files,
        ("lesion-contrast-5m", "lesion-contrast-5m-seed1", "lesion-contrast-5m-seed2", "ensemble-3x5m"),
        total,
        "one 5-minute model or the average of three (its members)",
        "the average costs three times the training and the inference; what was done with it: the recipe "
        "section",
    )
    lines += choice_lines(
        fold_files,
        (
            "lesion-contrast-5m",
            "lesion-contrast-5m-tta",
            "lesion-contrast-5m-seed1",
            "lesion-contrast-5m-seed1-tta",
            "lesion-contrast-5m-seed2",
            "lesion-contrast-5m-seed2-tta",
        ),
        total,
        "left-right mirroring at test time, with each of three training seeds",
        "it is adopted only if it raises every seed's score",
    )
    lines += choice_lines(
        fold_files,
        ("lesion-contrast-5m-tta", "ensemble-3x5m-tta"),
        total,
        "one 5-minute model or the average of three, both with the mirroring",
        "the average costs three times the training and the inference; what was done with it: the recipe "
        "section",
    )
    lines += choice_lines(
        fold_files,
        ("lesion-contrast-5m-tta", "flip-lr-5m"),
        total,
        "the training flip's axis (anterior-posterior, the shipped recipe's, or left-right)",
        "left-right would be adopted only if it beat the shipped recipe with seed 0 and then with seed 1",
    )
    name = "ms_recipe_quick.md" if quick else "ms_recipe.md"
    return write_result(results / name, "\n".join(lines) + "\n")
