"""How far calibration can move lesion F1: the ceiling of the threshold and size grid on the test scans.

Issue "Models worth shipping" asks for median lesion F1 >= 0.50 over the 6 MS scans. The recipe's
calibration picks (threshold, minimum lesion size) on the validation subject for Dice first
(train/calibrate.py). Could another rule for that choice reach 0.50 with the same models? This script
answers it from above: for each finished fold of the named ``benchmarks/ms_recipe.py`` rows it predicts the
fold's test scans once and scores every pair of the calibration grid (19 thresholds x 8 minimum sizes) on
them. The best lesion F1 over the grid, picked on the test scan itself, is a ceiling that no rule chosen on
validation can beat. It is a diagnostic, never a result: nothing is tuned with it.

Beside it, the reference lesions by size and how many the row's own calibrated masks hit, to show which
lesions are missed. Lesions: 3D connected components with full connectivity (metrics/lesions.py, the WMH
challenge's definition).

    OMP_NUM_THREADS=1 python benchmarks/lesion_f1_ceiling.py [--rows lesion-contrast-5m ...]
      -> benchmarks/results/lesion_f1_ceiling.md  (grids kept in runs/ms_recipe/<row>/fold_<k>/)
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np
from _timing import write_result
from ms_recipe import ENSEMBLES, FLIP_TTA, REPO, fixed_splits

from lesionseg.data.cache import PreprocessCache
from lesionseg.data.manifest import load_manifest
from lesionseg.infer.ensemble_file import ENSEMBLE_FILE
from lesionseg.infer.predictor import Predictor, load_members
from lesionseg.metrics.lesions import label_lesions, lesion_detection
from lesionseg.train.calibrate import MIN_SIZES_MM3, THRESHOLDS, dice, size_filtered_masks

# the bundled model's recipe (the three seeds averaged, mirrored), the three seeds alone (with and without
# mirroring at test time), the blob loss's two and the three seeds' average unmirrored (ms_recipe.py rows)
SHIPPED_AND_BLOB = (
    "ensemble-3x5m-tta",
    "lesion-contrast-5m-tta",
    "lesion-contrast-5m-seed1-tta",
    "lesion-contrast-5m-seed2-tta",
    "lesion-contrast-5m",
    "lesion-contrast-5m-seed1",
    "lesion-contrast-5m-seed2",
    "blob-loss-5m",
    "blob-loss-5m-seed1",
    "ensemble-3x5m",
)
SIZE_BINS_MM3 = (0.0, 10.0, 100.0, float("inf"))  # reference lesions: < 10, 10-100, >= 100 mm^3


def grid_scores(prob: np.ndarray, ref: np.ndarray, voxel_mm3: float) -> dict[str, list[list[float]]]:
    """Dice and lesion F1 of every (threshold, minimum size) pair of the calibration grid."""
    dices = np.zeros((len(THRESHOLDS), len(MIN_SIZES_MM3)))
    f1s = np.zeros_like(dices)
    for i, t in enumerate(THRESHOLDS):
        for j, mask in enumerate(size_filtered_masks(prob, t, voxel_mm3, MIN_SIZES_MM3)):
            dices[i, j] = dice(mask, ref)
            f1s[i, j] = lesion_detection(mask, ref).lesion_f1
    return {"dice": dices.tolist(), "lesion_f1": f1s.tolist()}


def hits_by_size(pred: np.ndarray, ref: np.ndarray, voxel_mm3: float) -> list[tuple[int, int]]:
    """(reference lesions, of them touched by ``pred``) per bin of ``SIZE_BINS_MM3``."""
    labels, count = label_lesions(ref)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:] * voxel_mm3
    hit = np.zeros(count + 1, bool)
    hit[np.unique(labels[pred & ref])] = True
    hit = hit[1:]
    bins = zip(SIZE_BINS_MM3[:-1], SIZE_BINS_MM3[1:], strict=True)
    return [(int(((sizes >= lo) & (sizes < hi)).sum()), int((hit & (sizes >= lo) & (sizes < hi)).sum()))
            for lo, hi in bins]  # fmt: skip


def fold_grid(row: str, k: int, data: Path, runs: Path) -> list[dict]:
    """The grid scores of fold ``k``'s test scans (computed once, then read from the fold folder)."""
    out = runs / row / f"fold_{k}" / "lesion_f1_grid.json"
    if out.exists():
        return json.loads(out.read_text())
    manifest = load_manifest("ms_flair_t1")
    fold = fixed_splits(manifest, runs).folds[k]
    if row in ENSEMBLES:  # the members' fold models, averaged, with the average's own calibration
        members = [runs / member / f"fold_{k}" / "best.pt" for member in ENSEMBLES[row]]
        calibration = json.loads((runs / row / f"fold_{k}" / ENSEMBLE_FILE).read_text())
    else:
        members = [runs / row / f"fold_{k}" / "best.pt"]
        calibration = json.loads((runs / row / f"fold_{k}" / "calibration.json").read_text())
    predictor = Predictor(load_members(members), bf16=True, flip_tta=row in FLIP_TTA)
    cache = PreprocessCache(runs / "cache")
    scans = []
    for case in (c for c in manifest.cases if c.subject in fold.test):
        pre = cache.get(manifest, case, data, predictor.preprocess_config)
        _, mean, _ = predictor.predict_preprocessed(pre)
        prob, ref = mean[-1], np.asarray(pre.label) > 0
        voxel_mm3 = float(np.prod(pre.spacing))
        threshold, min_mm3 = calibration["threshold"], calibration["min_lesion_mm3"]
        chosen = size_filtered_masks(prob, threshold, voxel_mm3, (min_mm3,))[0]
        scans.append(
            {
                "case": case.id,
                "chosen": [calibration["threshold"], calibration["min_lesion_mm3"]],
                "hits_by_size": hits_by_size(chosen, ref, voxel_mm3),
                **grid_scores(prob, ref, voxel_mm3),
            }
        )
        print(f"{row} fold {k}: {case.id}", flush=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(scans) + "\n")
    tmp.replace(out)
    return scans


def scan_line(row: str, k: int, scan: dict) -> tuple[str, float, float]:
    """A table line for one scan; also its calibrated and ceiling lesion F1."""
    dices, f1s = np.array(scan["dice"]), np.array(scan["lesion_f1"])
    i, j = THRESHOLDS.index(scan["chosen"][0]), MIN_SIZES_MM3.index(scan["chosen"][1])
    best = np.unravel_index(np.argmax(f1s), f1s.shape)
    default = THRESHOLDS.index(0.5), 0
    hits = ", ".join(f"{h}/{n}" for n, h in scan["hits_by_size"])
    line = (
        f"| {row} | {k} | {scan['case']} | {THRESHOLDS[i]:g}, {MIN_SIZES_MM3[j]:g} | {dices[i, j]:.3f} | "
        f"{f1s[i, j]:.3f} | {f1s[default]:.3f} | **{f1s[best]:.3f}** ({THRESHOLDS[best[0]]:g}, "
        f"{MIN_SIZES_MM3[best[1]]:g}; Dice {dices[best]:.3f}) | {hits} |"
    )
    return line, float(f1s[i, j]), float(f1s[best])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "ms_recipe")
    parser.add_argument("--rows", nargs="+", default=list(SHIPPED_AND_BLOB))
    args = parser.parse_args()
    lines = [
        f"Command: `python benchmarks/lesion_f1_ceiling.py --rows {' '.join(args.rows)}` "
        f"({datetime.date.today()}). Each fold's model predicts its test scans once; every (threshold, "
        "minimum size) pair of the calibration grid is scored on them. **Ceiling**: the highest lesion F1 "
        "over the grid, picked on the test scan itself (a bound no validation rule can beat; never used to "
        "choose anything). Reference lesions hit by the row's calibrated masks, by size: "
        "< 10 mm^3, 10-100 mm^3, >= 100 mm^3 (hit/all).",
        "",
        "| row | fold | test scan | calibrated (threshold, min mm^3) | Dice | lesion F1 | lesion F1 at 0.5, "
        "no filter | ceiling of lesion F1 (pair; its Dice) | lesions hit by size |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for row in args.rows:
        calibrated, ceiling = [], []
        for k in range(len(fixed_splits(load_manifest("ms_flair_t1"), args.runs).folds)):
            if not (args.runs / row / f"fold_{k}.json").exists():
                print(f"{row} fold {k}: not finished, left out")
                continue
            for scan in fold_grid(row, k, args.data, args.runs):
                line, f1, top = scan_line(row, k, scan)
                lines.append(line)
                calibrated.append(f1)
                ceiling.append(top)
        if ceiling:
            summary.append(
                f"- {row}: median lesion F1 over {len(ceiling)} scans {np.median(calibrated):.3f} as "
                f"calibrated; ceiling {np.median(ceiling):.3f} (target 0.50)"
            )
    path = write_result(REPO / "benchmarks" / "results" / "lesion_f1_ceiling.md", "\n".join(
        [*lines, "", *summary]) + "\n")  # fmt: skip
    print(path.read_text())


if __name__ == "__main__":
    main()
