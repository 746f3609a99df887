"""Train the bundled FLAIR+T1 lesion model on the MS data of ../shared/data, with its cross-validation.

2. Leave-one-subject-out cross-validation on ``ms_flair_t1`` (open_ms_data's 3 patients + mslesseg's P14,
   4 subjects) with the bundled configuration: per-case metrics and medians -> benchmarks/results/.
1. The final model on all subjects but one validation subject, copied (weights + config, no optimiser
   state) to src/lesionseg/models/wmh_ms_flair_t1.pt.

Run: python benchmarks/train_bundled_model.py [--quick] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import torch

from lesionseg.config.train import resolve_train_config
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.manifest import load_manifest
from lesionseg.nets.checkpoint import load_checkpoint, save_checkpoint
from lesionseg.train.cv import run_cross_validation
from lesionseg.train.run import train_model

REPO = Path(__file__).resolve().parents[1]
# The WMH thesis' first member (2D U-Net on FLAIR+T1, Dice loss, its augmentation), CPU-sized: width 16 with
# BatchNorm, Adam 1e-3, 128x128 patches, lesion slices plus as many other brain slices, bf16 + channels_last.
BUNDLED_OVERRIDES = [
    "width=16",
    "lr=1e-3",
    "epochs=16",
    "steps_per_epoch=50",
    "batch_size=8",
    "patch_size=[128,128]",
    "lesion_patch_probability=0.7",
    "lesion_slice_ratio=1.0",
    "augmentation=wmh",
    "augmented_copies=10",
    "early_stopping_patience=none",
    "val_max_slices=48",
    "preprocess.target_size=[160,192]",
    "bf16=true",
    "channels_last=true",
    "seed=0",
]
QUICK = ["epochs=2", "steps_per_epoch=5"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bundled")
    parser.add_argument("--quick", action="store_true", help="a few steps only (checks the script)")
    parser.add_argument("--skip-cv", action="store_true")
    args = parser.parse_args()
    overrides = BUNDLED_OVERRIDES + (QUICK if args.quick else [])
    cfg = resolve_train_config("wmh-dice", "cpu", overrides=overrides)
    manifest = load_manifest("ms_flair_t1")
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    cpu0, wall0 = time.process_time(), time.monotonic()
    subjects = manifest.subjects
    val = ["open_ms_data_patient26"]
    train = [s for s in subjects if s not in val]
    final = train_model(
        cfg, manifest, args.data, train, val, args.out / "final", PreprocessCache(args.out / "cache")
    )
    state = load_checkpoint(final.best)
    shipped = {k: v for k, v in state.items() if k not in ("optimizer", "rng", "torch_rng")}
    shipped["model"] = {k: v.to(torch.float32) for k, v in shipped["model"].items()}
    shipped["trained"] = {
        "date": str(datetime.date.today()),
        "command": "python benchmarks/train_bundled_model.py",
        "train_subjects": train,
        "val_subjects": val,
        "cpu_minutes": round((time.process_time() - cpu0) / 60, 1),
        "wall_minutes": round((time.monotonic() - wall0) / 60, 1),
        "quick": args.quick,
    }
    target = REPO / "src" / "lesionseg" / "models" / "wmh_ms_flair_t1.pt"
    if args.quick:
        target = args.out / "wmh_ms_flair_t1_quick.pt"
    save_checkpoint(shipped, target)
    (results / "bundled_model_training.json").write_text(
        json.dumps({"history": final.history, **shipped["trained"]}, indent=2) + "\n"
    )
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB)")
    if not args.skip_cv:
        cv = run_cross_validation(manifest, args.data, [cfg], 4, args.out / "cv", args.out / "cache")
        lesion = cv.summary["labels"]["lesion"]
        rows = [
            f"| {r['case']} | {r['dsc']:.3f} | {r['sensitivity']:.3f} | {r['precision']:.3f} | "
            f"{r['hd95']:.1f} | {r['lesion_f1']:.3f} | {r['ref_volume_ml']:.1f} | {r['pred_volume_ml']:.1f} |"
            for r in cv.rows
        ]
        med = {
            m: lesion["metrics"][m]["median"]
            for m in ("dsc", "sensitivity", "precision", "hd95", "lesion_f1")
        }
        text = "\n".join(
            [
                f"Leave-one-subject-out CV of the bundled configuration on ms_flair_t1 ({cv.splits.scheme}, "
                f"{len(cv.splits.folds)} folds; {datetime.date.today()}; {cv.cpu_minutes:.1f} CPU minutes).",
                f"Command: `python benchmarks/train_bundled_model.py{' --quick' if args.quick else ''}`",
                "",
                "| case | DSC | sensitivity | precision | HD95 (mm) | lesion F1 | ref mL | pred mL |",
                "|---|---|---|---|---|---|---|---|",
                *rows,
                f"| **median** | {med['dsc']:.3f} | {med['sensitivity']:.3f} | {med['precision']:.3f} | "
                f"{med['hd95']:.1f} | {med['lesion_f1']:.3f} | | |",
            ]
        )
        (results / "bundled_model_cv.md").write_text(text + "\n")
        print(text)


if __name__ == "__main__":
    main()
