"""Train the bundled FLAIR+T1 lesion model: the ``lesion-unet`` recipe at its shipped budget (5 CPU minutes)
on the MS data of ../shared/data (open_ms_data's 3 patients + mslesseg's P14 = 4 subjects), patient26
held out for validation (checkpoint choice, threshold, minimum lesion size). The weights and config (no
optimiser state) are copied to src/lesionseg/models/wmh_ms_flair_t1.pt. The leave-one-subject-out figures
of exactly this recipe and budget come from benchmarks/ms_recipe.py (row ``lesion-contrast-5m``), which
also shows why 5 minutes: on the validation subjects of its folds, 5 minutes beat 10, with and without
the lesion-contrast augmentation (the sentence under its calibration table).

Run: OMP_NUM_THREADS=1 python benchmarks/train_bundled_model.py [--quick] [--data ../shared/data]
(about 6 CPU minutes on one thread; resumable: rerun after an interruption).
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
from lesionseg.train.run import train_model

REPO = Path(__file__).resolve().parents[1]
METHOD = "lesion-unet"
BUNDLED_OVERRIDES = ["budget_s=300", "seed=0"]
QUICK = ["budget_s=20"]
VALIDATION = ["open_ms_data_patient26"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bundled")
    parser.add_argument("--quick", action="store_true", help="a 20-second budget (checks the script)")
    args = parser.parse_args()
    overrides = BUNDLED_OVERRIDES + (QUICK if args.quick else [])
    cfg = resolve_train_config(METHOD, "cpu", overrides=overrides)
    manifest = load_manifest("ms_flair_t1")
    cpu0, wall0 = time.process_time(), time.monotonic()
    train = [s for s in manifest.subjects if s not in VALIDATION]
    final = train_model(
        cfg,
        manifest,
        args.data,
        train,
        VALIDATION,
        args.out / "final",
        PreprocessCache(args.out / "cache"),
        resume=True,
    )
    state = load_checkpoint(final.best)
    shipped = {k: v for k, v in state.items() if k not in ("optimizer", "rng", "torch_rng")}
    shipped["model"] = {k: v.to(torch.float32) for k, v in shipped["model"].items()}
    shipped["trained"] = {
        "date": str(datetime.date.today()),
        "command": "OMP_NUM_THREADS=1 python benchmarks/train_bundled_model.py",
        "method": METHOD,
        "budget_cpu_minutes": cfg.budget_s / 60 if cfg.budget_s else None,
        "train_subjects": train,
        "val_subjects": VALIDATION,
        "train_cpu_minutes": round(float(state.get("spent_s", 0.0)) / 60, 1),  # the budget clock
        "cpu_minutes_this_run": round((time.process_time() - cpu0) / 60, 1),
        "wall_minutes": round((time.monotonic() - wall0) / 60, 1),
        "quick": args.quick,
    }
    target = REPO / "src" / "lesionseg" / "models" / "wmh_ms_flair_t1.pt"
    if args.quick:
        target = args.out / "wmh_ms_flair_t1_quick.pt"
    save_checkpoint(shipped, target)
    results = (
        REPO
        / "benchmarks"
        / "results"
        / ("bundled_model_training_quick.json" if args.quick else "bundled_model_training.json")
    )
    plan = json.loads((args.out / "final" / "plan.json").read_text())
    calibration = state.get("calibration")
    results.write_text(
        json.dumps(
            {"history": final.history, "plan": plan, "calibration": calibration, **shipped["trained"]},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB); calibration {calibration}")


if __name__ == "__main__":
    main()
