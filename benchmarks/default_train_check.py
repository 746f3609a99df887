"""``lesionseg train`` with no method and no budget on the MS scans: does its validation Dice clear the floor?

Runs exactly ``lesionseg train --manifest ms_flair_t1 --root DATA --out runs/default_train`` (the default
recipe and budget; the command picks its own validation subject), then compares, on that validation
subject's preprocessed scans, the model's validation Dice (at 0.5 and after its calibration, both from the
checkpoint) with the floor's: FLAIR z-score > k inside the brain mask, k fitted on the training subjects
only (as in benchmarks/ms_recipe.py). Writes benchmarks/results/default_train.md.

    OMP_NUM_THREADS=1 python benchmarks/default_train_check.py       # ~11 CPU minutes; resumable
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

import numpy as np
from _timing import write_result
from ms_recipe import fit_floor_k, floor_dice

from lesionseg.config.train import DEFAULT_METHOD, resolve_train_config
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.manifest import load_manifest
from lesionseg.nets.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "default_train")
    args = parser.parse_args()
    command = [
        "lesionseg",
        "train",
        "--manifest",
        "ms_flair_t1",
        "--root",
        str(args.data),
        "--out",
        str(args.out),
    ]
    resume = ["--resume"] if (args.out / "last.pt").exists() else []
    subprocess.run([sys.executable, "-m", "lesionseg.cli.main", *command[1:], *resume, "--quiet"], check=True)
    state = load_checkpoint(args.out / "best.pt")
    train_subjects, val_subjects = state["train_subjects"], state["val_subjects"]
    manifest = load_manifest("ms_flair_t1")
    cfg = resolve_train_config(DEFAULT_METHOD, "cpu")
    cache = PreprocessCache(args.out / "cache")

    def cases(subjects: list[str]) -> list:
        return [
            cache.get(manifest, c, args.data, cfg.preprocess) for c in manifest.cases if c.subject in subjects
        ]

    k = fit_floor_k(cases(train_subjects))
    floor = float(np.mean([floor_dice(pre, k) for pre in cases(val_subjects)]))
    k_val = fit_floor_k(cases(val_subjects))  # the floor given the calibrated model's advantage
    floor_val = float(np.mean([floor_dice(pre, k_val) for pre in cases(val_subjects)]))
    calibration = state.get("calibration") or {}
    model_default = float(calibration.get("default_dice", float("nan")))
    model_calibrated = float(calibration.get("val_dice", float("nan")))
    cleared = model_calibrated > floor and model_default > floor
    out = args.out.resolve()
    shown_out = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    lines = [
        f"Command: `{' '.join(command[:5])} ../shared/data --out {shown_out}` (default method "
        f"`{state['config']['method']}`, budget {state['config']['budget_s'] / 60:.0f} CPU min; "
        f"{datetime.date.today()}). Checked by `python benchmarks/default_train_check.py`.",
        "",
        "| validation subject | training subjects | steps | floor k (fitted on training) | floor Dice | "
        "model Dice at 0.5 | model Dice, calibrated | floor k and Dice, k fitted on this subject | "
        "clears the floor |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {', '.join(val_subjects)} | {', '.join(train_subjects)} | {state['config']['steps']} | {k:.2f} | "
        f"{floor:.3f} | {model_default:.3f} | {model_calibrated:.3f} | {k_val:.2f}: {floor_val:.3f} | "
        f"{'yes' if cleared else 'NO'} |",
        "",
        "Dice: mean over the validation subject's scans, on the preprocessed (brain-cropped) volumes. "
        "Clears the floor: both model Dice values above the floor's (the calibrated one's threshold and "
        "minimum size were chosen on this same subject, so it alone would flatter the model). The floor "
        "with its k fitted on this same subject is the fair match for the calibrated model: both then "
        "chose their settings on the scans they are scored on.",
    ]
    path = write_result(REPO / "benchmarks" / "results" / "default_train.md", "\n".join(lines) + "\n")
    print(path.read_text())


if __name__ == "__main__":
    main()
