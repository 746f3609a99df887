"""Stroke (ISLES'22 sample, one subject): train, predict and evaluate end to end, as a run that must complete.

Issue 7 asks for this case "as a run that must complete, not a score": with one subject there is nothing to
cross-validate, so the model is trained on the case it is then applied to. The script runs the three user
commands (`lesionseg train`, `predict`, `evaluate`) with the PixelNet preset (the PixelNet paper's stroke
method), checks that the written mask lies on the reference's grid (shape and affine), and writes
benchmarks/results/stroke_isles.md with each step's exit status and CPU time. The DSC it prints is on the
training case and is not a score.

    python benchmarks/stroke_run.py           # the CPU profile of quality_cv.py (about 7 CPU minutes here)
    python benchmarks/stroke_run.py --quick   # 1 epoch x 5 steps: checks that every step runs
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from _timing import result_path, write_result
from quality_cv import COMMON, QUICK, REPO

from lesionseg.data.manifest import load_manifest
from lesionseg.report.tables import read_metrics_csv

MANIFEST = "isles22_sample"
METHOD = "pixelnet-balanced"


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_step(name: str, args: list[str], log: Path) -> dict:
    """Run one ``lesionseg`` command with one torch thread; return its exit status and times."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cpu0, wall0 = children_cpu_seconds(), time.monotonic()
    with log.open("a") as out:
        out.write(f"$ lesionseg {' '.join(args)}\n")
        out.flush()
        rc = subprocess.run(
            [sys.executable, "-m", "lesionseg.cli.main", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
    step = {
        "step": name,
        "rc": rc,
        "cpu_min": (children_cpu_seconds() - cpu0) / 60,
        "wall_min": (time.monotonic() - wall0) / 60,
    }
    print(f"{name}: rc {rc}, {step['cpu_min']:.1f} CPU min", flush=True)
    return step


def grid_check(pred: Path, ref: Path) -> str:
    """Does the written mask lie on the reference's voxel grid (shape and affine)?"""
    p, r = nib.load(pred), nib.load(ref)
    same_shape = p.shape == r.shape
    same_affine = np.allclose(p.affine, r.affine, atol=1e-5)
    return (
        f"mask {p.shape} vs reference {r.shape}: shape {'equal' if same_shape else 'DIFFERENT'}, "
        f"affine {'equal' if same_affine else 'DIFFERENT'} (atol 1e-5)"
    )


def sampling_note(label_path: Path, config_path: Path) -> str:
    """How many of PixelNet's sampled pixels per image the infarct can get: the paper's fill rule gives a
    class with fewer pixels than its share all of them, and the rest of the N to the other classes."""
    per_slice = (np.asarray(nib.load(label_path).dataobj) > 0).sum(axis=(0, 1))
    per_slice = per_slice[per_slice > 0]
    n = json.loads(config_path.read_text())["pixels_per_image"]
    return (
        f"the infarct covers {int(per_slice.sum())} voxels on {per_slice.size} slices "
        f"({int(per_slice.min())}-{int(per_slice.max())} per slice): of the N = {n} pixels sampled per "
        f"image, class-balanced sampling can give it at most {int(per_slice.max())} "
        f"({100 * per_slice.max() / n:.1f} %), not the half that balancing aims at"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    root = args.data / MANIFEST
    if not root.is_dir():
        sys.exit(f"stroke_run: {root}: data folder not found")
    out = REPO / "runs" / ("stroke-quick" if args.quick else "stroke")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log = out / "commands.log"
    sets = [a for s in (*COMMON, *(QUICK if args.quick else ())) for a in ("--set", s)]
    data_args = ["--manifest", MANIFEST, "--root", str(root)]
    steps = [
        run_step(
            "train",
            ["train", *data_args, "--method", METHOD, "--out", str(out / "model"), "--quiet"]
            + ["--cache", str(REPO / "runs" / "cache"), *sets],
            log,
        )
    ]
    if steps[-1]["rc"] == 0:
        steps.append(
            run_step(
                "predict",
                [
                    "predict",
                    "--model",
                    str(out / "model" / "best.pt"),
                    *data_args,
                    "--out",
                    str(out / "pred"),
                ],
                log,
            )
        )
    if steps[-1]["rc"] == 0:
        steps.append(
            run_step(
                "evaluate",
                ["evaluate", "--pred-dir", str(out / "pred"), *data_args, "--out", str(out / "eval")],
                log,
            )
        )
    completed = len(steps) == 3 and all(s["rc"] == 0 for s in steps)
    case = load_manifest(MANIFEST).cases[0]
    effective = {s.split("=", 1)[0]: s for s in (*COMMON, *(QUICK if args.quick else ()))}  # last wins
    overrides = ", ".join(effective.values())
    lines = [
        f"Command: `python benchmarks/stroke_run.py{' --quick' if args.quick else ''}` on "
        f"{datetime.date.today()}; method `{METHOD}`, overrides {overrides}; one torch "
        "thread; trained and applied on the one subject (no held-out case exists, so this is a run that "
        "must complete, not a score).",
        "",
        "| step | exit status | CPU min | wall min |",
        "|---|---:|---:|---:|",
        *(
            f"| `lesionseg {s['step']}` | {s['rc']} | {s['cpu_min']:.1f} | {s['wall_min']:.1f} |"
            for s in steps
        ),
        "",
        f"**Run {'completed' if completed else 'FAILED'}.**",
    ]
    if completed:
        pred = out / "pred" / f"{case.id}_mask.nii.gz"
        record = next(r for r in read_metrics_csv(out / "eval" / "metrics.csv") if r["label"] == "lesion")
        lines += ["", f"- grid: {grid_check(pred, root / case.label.path)}"]
        lines.append(
            f"- on the training case (not a score): DSC {float(record['dsc']):.3f}, reference "
            f"{float(record['ref_volume_ml']):.2f} mL, predicted {float(record['pred_volume_ml']):.2f} mL, "
            f"lesions {record['lesions_detected']}/{record['ref_lesions']} detected"
        )
        lines.append(f"- {sampling_note(root / case.label.path, out / 'model' / 'config.json')}")
    path = write_result(result_path("stroke_isles", quick=args.quick), "\n".join(lines))
    print(path.read_text())
    sys.exit(0 if completed else 1)


if __name__ == "__main__":
    main()
