"""``lesionseg train`` with no method and no budget on the MS scans: does its validation Dice clear the floor?

Runs exactly ``lesionseg train --manifest ms_flair_t1 --root DATA --out runs/default_train_<i>`` (the default
recipe and budget; the command picks its own validation subject) several times, then compares, on that
validation subject's preprocessed scans, each model's validation Dice (at 0.5 and after its calibration,
both as saved by ``train``) with the floor's: FLAIR z-score > k inside the brain mask, k fitted on the
training subjects only (as in benchmarks/ms_recipe.py). The budget is CPU time, so the step count, and with
it the model, differs from run to run and machine to machine: one row per run. Writes
benchmarks/results/default_train.md.

    OMP_NUM_THREADS=1 python benchmarks/default_train_check.py --only 1 &   # ~17 CPU minutes each;
    OMP_NUM_THREADS=1 python benchmarks/default_train_check.py --only 2 &   # resumable
    wait; OMP_NUM_THREADS=1 python benchmarks/default_train_check.py        # trains what is missing, reports
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from _timing import write_result

from lesionseg.config.train import DEFAULT_METHOD, resolve_train_config
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.manifest import load_manifest
from lesionseg.evaluate.floor import fit_floor_k, floor_dice
from lesionseg.infer.ensemble_file import ENSEMBLE_FILE
from lesionseg.nets.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def train_default(data: Path, out: Path) -> None:
    """The command under test, resumed when an earlier attempt was interrupted."""
    resume = ["--resume"] if any(out.glob("**/last.pt")) else []
    command = [
        "train",
        "--manifest",
        "ms_flair_t1",
        "--root",
        str(data),
        "--out",
        str(out),
        *resume,
        "--quiet",
    ]
    subprocess.run([sys.executable, "-m", "lesionseg.cli.main", *command], check=True)


def check_row(data: Path, out: Path) -> tuple[str, bool]:
    """One table row for the run in ``out``, and whether it clears the floor by the strict rule."""
    members = sorted(out.glob("seed_*/best.pt")) or [out / "best.pt"]  # seeds averaged, or one network
    states = [load_checkpoint(path) for path in members]
    state = states[0]
    train_subjects, val_subjects = state["train_subjects"], state["val_subjects"]
    manifest = load_manifest("ms_flair_t1")
    cfg = resolve_train_config(DEFAULT_METHOD, "cpu")
    cache = PreprocessCache(out / "cache")

    def cases(subjects: list[str]) -> list:
        return [cache.get(manifest, c, data, cfg.preprocess) for c in manifest.cases if c.subject in subjects]

    k = fit_floor_k(cases(train_subjects))
    floor = float(np.mean([floor_dice(pre, k) for pre in cases(val_subjects)]))
    k_val = fit_floor_k(cases(val_subjects))  # the floor given the calibrated model's advantage
    floor_val = float(np.mean([floor_dice(pre, k_val) for pre in cases(val_subjects)]))
    ensemble_file = out / ENSEMBLE_FILE  # the average's own calibration, when seeds were averaged
    calibration = json.loads(ensemble_file.read_text()) if len(states) > 1 else state.get("calibration") or {}
    model_default = float(calibration.get("default_dice", float("nan")))
    model_calibrated = float(calibration.get("val_dice", float("nan")))
    cleared = model_calibrated > floor and model_default > floor
    steps = " + ".join(str(s["config"]["steps"]) for s in states)
    minutes = state["config"]["budget_s"] / 60
    budget = f"{len(states)} x {minutes:.0f}" if len(states) > 1 else f"{minutes:.0f}"
    row = (
        f"| {out.name} | {budget} | {', '.join(val_subjects)} | {', '.join(train_subjects)} | {steps} | "
        f"{k:.2f} | "
        f"{floor:.3f} | {model_default:.3f} | {model_calibrated:.3f} | {k_val:.2f}: {floor_val:.3f} | "
        f"{'yes' if cleared else 'NO'} | {'yes' if model_calibrated > floor_val else 'NO'} |"
    )
    return row, cleared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument(
        "--runs", type=Path, default=REPO / "runs", help="the runs go to RUNS/default_train_<i>"
    )
    parser.add_argument("--repeats", type=int, default=3, help="how many times the command runs")
    parser.add_argument("--only", type=int, metavar="I", help="train run I only (1-based), no report")
    args = parser.parse_args()
    outs = [args.runs / f"default_train_{i}" for i in range(1, args.repeats + 1)]
    if args.only is not None:
        train_default(args.data, outs[args.only - 1])
        return
    rows = []
    for out in outs:
        train_default(args.data, out)
        rows.append(check_row(args.data, out))
    cleared = sum(ok for _, ok in rows)
    lines = [
        "Command: `lesionseg train --manifest ms_flair_t1 --root ../shared/data --out "
        f"runs/default_train_<i>`, run {len(outs)} times (default method `{DEFAULT_METHOD}`: three seeds "
        "averaged, 5 CPU minutes each; "
        f"{datetime.date.today()}). Checked by `python benchmarks/default_train_check.py`.",
        "",
        "| run | CPU min | validation subject | training subjects | steps | floor k (fitted on training) | "
        "floor Dice | model Dice at 0.5 | model Dice, calibrated | floor k and Dice, k fitted on this "
        "subject | "
        "clears the floor (both model Dice above the floor's) | calibrated model above the floor fitted on "
        "this subject |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(row for row, _ in rows),
        "",
        f"Clears the floor in {cleared} of {len(rows)} runs. Dice: mean over the validation subject's scans, "
        "on the preprocessed (brain-cropped) volumes; for averaged seeds, the average's (its own threshold "
        "and minimum size). Clears the floor: both model Dice values above the floor's (the calibrated one's "
        "threshold and minimum size were chosen on this same subject, so it alone would flatter the model). "
        "The floor with its k fitted on this same subject is the fair match for the calibrated model: both "
        "then chose their settings on the scans they are scored on (last column). The runs differ only in "
        "their step counts, planned from each run's timed warm-up.",
    ]
    path = write_result(REPO / "benchmarks" / "results" / "default_train.md", "\n".join(lines) + "\n")
    print(path.read_text())


if __name__ == "__main__":
    main()
