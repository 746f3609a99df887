"""nnU-Net v2 at equal CPU time on the MS folds of benchmarks/ms_recipe.py (issue "Models worth shipping").

nnU-Net is a peer, never a dependency: this script makes its own virtual environment (torch 2.13.0 first,
then ``nnunetv2`` under a constraints file that keeps that torch, then torchvision removed: the CUDA build
that comes with it is not needed by the 2d trainer), writes the 6 MS scans as an nnU-Net raw dataset
(images linked, labels as uint8), plans and preprocesses the ``2d`` configuration, and writes
``splits_final.json`` from ``runs/ms_recipe/splits.json``: nnU-Net trains on each fold's training subjects,
validates on its validation subject, and never sees its test subject, as every lesionseg row.

Per fold: ``nnUNetTrainer_CPUBudget`` (benchmarks/nnunet_driver.py: nnU-Net's default trainer with the epoch
count cut so that its training takes the budget in CPU time, one thread), then nnU-Net's own predictor
(``checkpoint_final.pth``, test-time mirroring on: its default) on the test scans, scored with lesionseg's
metrics against the same reference files as every other row. Results go to
``runs/ms_recipe/nnunet-2d-<budget>/fold_<k>.json`` (resumable: a finished fold is skipped; a fold
interrupted in training starts again), and ``python benchmarks/ms_recipe.py --report`` puts the row into
benchmarks/results/ms_recipe.md.

    OMP_NUM_THREADS=1 python benchmarks/nnunet_ms.py               # 20 CPU minutes per fold, 4 folds
    OMP_NUM_THREADS=1 python benchmarks/nnunet_ms.py --budget 300 --folds 0
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from lesionseg.data.manifest import Manifest, load_case, load_manifest
from lesionseg.io import read_volume, require_same_grid
from lesionseg.metrics import label_map_metrics

REPO = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).resolve().parent / "nnunet_driver.py"
DATASET_ID = 501
DATASET = f"Dataset{DATASET_ID}_MSFlairT1"


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def setup_venv(work: Path) -> Path:
    """nnU-Net's own environment (made once); returns its python."""
    python = work / "venv" / "bin" / "python"
    marker = work / "venv" / "lesionseg_ready"
    if marker.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    constraints = work / "constraints.txt"
    constraints.write_text("torch==2.13.0\n")
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "-c", str(constraints), "nnunetv2"], check=True)
    subprocess.run([str(python), "-m", "pip", "uninstall", "-q", "-y", "torchvision"], check=True)
    marker.write_text("torch 2.13.0 + nnunetv2, torchvision removed\n")
    return python


def nnunet_env(work: Path, budget_s: float | None = None) -> dict[str, str]:
    """nnU-Net's folders; training (``budget_s`` given) augments in its own process (``nnUNet_n_proc_DA``
    0, so its CPU clock counts that work; planning needs at least 1)."""
    env = dict(os.environ)
    env.update(
        nnUNet_raw=str(work / "nnUNet_raw"),
        nnUNet_preprocessed=str(work / "nnUNet_preprocessed"),
        nnUNet_results=str(work / "nnUNet_results"),
        nnUNet_n_proc_DA="1" if budget_s is None else "0",
        nnUNet_compile="false",
        OMP_NUM_THREADS="1",
    )
    if budget_s is not None:
        env["LESIONSEG_NNUNET_BUDGET_S"] = str(budget_s)
    return env


def case_name(index: int) -> str:
    return f"MS_{index:03d}"


def write_raw_dataset(manifest: Manifest, data: Path, work: Path) -> dict[str, str]:
    """imagesTr (links to the scans, one file per channel), labelsTr (uint8) and dataset.json; returns
    case id -> nnU-Net case name."""
    raw = work / "nnUNet_raw" / DATASET
    names = {case.id: case_name(i) for i, case in enumerate(manifest.cases)}
    if (raw / "dataset.json").exists():
        return names
    (raw / "imagesTr").mkdir(parents=True, exist_ok=True)
    (raw / "labelsTr").mkdir(parents=True, exist_ok=True)
    for case in manifest.cases:
        name = names[case.id]
        for c, channel in enumerate(manifest.channel_names):
            link = raw / "imagesTr" / f"{name}_{c:04d}.nii.gz"
            if not link.exists():
                link.symlink_to((data / case.images[channel].path).resolve())
        label = nib.load(str(data / case.label.path))
        array = (np.asanyarray(label.dataobj) > 0).astype(np.uint8)
        image = nib.load(str(data / case.images[manifest.channel_names[0]].path))
        nib.save(nib.Nifti1Image(array, image.affine, image.header), str(raw / "labelsTr" / f"{name}.nii.gz"))
    dataset = {
        "channel_names": {str(c): ch for c, ch in enumerate(manifest.channel_names)},
        "labels": {"background": 0, "lesion": 1},
        "numTraining": len(manifest.cases),
        "file_ending": ".nii.gz",
        "name": "lesionseg ms_flair_t1 (open_ms_data 07/19/26 + mslesseg P14)",
    }
    (raw / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n")
    return names


def write_splits(manifest: Manifest, names: dict[str, str], work: Path, runs: Path) -> list[dict]:
    splits = json.loads((runs / "splits.json").read_text())["folds"]
    by_subject: dict[str, list[str]] = {}
    for case in manifest.cases:
        by_subject.setdefault(case.subject, []).append(names[case.id])
    nnunet = [
        {
            "train": sorted(n for s in fold["train"] for n in by_subject[s]),
            "val": sorted(n for s in fold["val"] for n in by_subject[s]),
        }
        for fold in splits
    ]
    path = work / "nnUNet_preprocessed" / DATASET / "splits_final.json"
    path.write_text(json.dumps(nnunet, indent=2) + "\n")
    return splits


def prepare(manifest: Manifest, data: Path, work: Path, runs: Path, python: Path) -> tuple[dict, list]:
    names = write_raw_dataset(manifest, data, work)
    plans = work / "nnUNet_preprocessed" / DATASET / "nnUNetPlans.json"
    if not plans.exists() or not (work / "nnUNet_preprocessed" / DATASET / "nnUNetPlans_2d").exists():
        command = [
            str(python.parent / "nnUNetv2_plan_and_preprocess"),
            "-d", str(DATASET_ID), "-c", "2d", "-np", "1", "--verify_dataset_integrity",
        ]  # fmt: skip
        subprocess.run(command, check=True, env=nnunet_env(work))
    subprocess.run([str(python), str(DRIVER), "install-trainer"], check=True, env=nnunet_env(work))
    return names, write_splits(manifest, names, work, runs)


def training_cpu_seconds(log_dir: Path) -> float | None:
    """The trainer's own count (its process CPU clock from the first epoch to the last)."""
    for log in sorted(log_dir.glob("training_log_*.txt"), reverse=True):
        found = re.findall(r"CPU seconds in training: ([0-9.]+)", log.read_text())
        if found:
            return float(found[-1])
    return None


def run_fold(
    k: int, fold: dict, manifest: Manifest, names: dict, data: Path, work: Path, runs: Path,
    python: Path, budget_s: float, row: str,
) -> dict:  # fmt: skip
    env = nnunet_env(work, budget_s)
    model = work / "nnUNet_results" / DATASET / "nnUNetTrainer_CPUBudget__nnUNetPlans__2d" / f"fold_{k}"
    cpu0, wall0 = child_cpu_seconds(), time.monotonic()
    if not (model / "checkpoint_final.pth").exists():
        if model.exists():
            shutil.rmtree(model)  # an interrupted fold starts again
        subprocess.run(
            [str(python), str(DRIVER), "train", str(DATASET_ID), str(k), str(budget_s)], check=True, env=env
        )
    train_cpu = child_cpu_seconds() - cpu0
    test_cases = [c for c in manifest.cases if c.subject in fold["test"]]
    image_dir = work / "nnUNet_raw" / DATASET / "imagesTr"
    out_dir = runs / row / f"fold_{k}" / "predictions"
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = [
        ",".join(str(image_dir / f"{names[c.id]}_{i:04d}.nii.gz") for i in range(len(manifest.channel_names)))
        for c in test_cases
    ]
    cpu1 = child_cpu_seconds()
    subprocess.run(
        [str(python), str(DRIVER), "predict", str(DATASET_ID), str(k), str(out_dir), *inputs],
        check=True,
        env=env,
    )
    predict_cpu = child_cpu_seconds() - cpu1
    rows = []
    for case in test_cases:
        loaded = load_case(manifest, case, data)
        pred = read_volume(out_dir / f"{names[case.id]}.nii.gz", "label")
        require_same_grid(loaded.label, pred, "nnU-Net's prediction")
        ref = (np.asarray(loaded.label.array) > 0).astype(np.uint8)
        rows += label_map_metrics(
            (np.asarray(pred.array) > 0).astype(np.uint8), ref, loaded.reference.spacing, manifest.labels,
            None, case.id, {"row": row, "fold": k},
        )  # fmt: skip
    logged = training_cpu_seconds(model)
    return {
        "rows": rows,
        "train_cpu_minutes": round((logged if logged is not None else train_cpu) / 60, 2),
        "process_cpu_minutes": round(train_cpu / 60, 2),
        "predict_cpu_seconds_per_scan": round(predict_cpu / max(len(test_cases), 1), 1),
        "train": fold["train"],
        "val": fold["val"],
        "test": fold["test"],
        "wall_minutes": round((time.monotonic() - wall0) / 60, 2),
        "date": str(datetime.date.today()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "ms_recipe")
    parser.add_argument(
        "--work", type=Path, default=REPO / "runs" / "nnunet", help="venv, raw/preprocessed/results"
    )
    parser.add_argument("--budget", type=float, default=1200.0, help="CPU seconds of training per fold")
    parser.add_argument("--folds", type=int, nargs="*", help="default: every fold of splits.json")
    args = parser.parse_args()
    manifest = load_manifest("ms_flair_t1")
    args.work.mkdir(parents=True, exist_ok=True)
    python = setup_venv(args.work)
    names, splits = prepare(manifest, args.data, args.work, args.runs, python)
    row = f"nnunet-2d-{args.budget / 60:g}m"
    for k in args.folds if args.folds is not None else range(len(splits)):
        done = args.runs / row / f"fold_{k}.json"
        if done.exists():
            continue
        result = run_fold(
            k, splits[k], manifest, names, args.data, args.work, args.runs, python, args.budget, row
        )
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1, default=float) + "\n")
        tmp.replace(done)
        print(f"{row} fold {k}: Dice {[round(r['dsc'], 3) for r in result['rows']]}", flush=True)


if __name__ == "__main__":
    main()
