"""Subject-wise cross-validation of the papers' rows on the real sample sets (issues 5 and 7).

Every experiment is `lesionseg cv` with the CPU profile (see lesionseg.config.train), run in worker
processes of one torch thread each. Results land in runs/quality/<set>/<method>/ and the tables in
benchmarks/results/quality_<set>.md: per row, the median and IQR over folds of each fold's median DSC,
sensitivity, specificity, HD95 and lesion F1, and the CPU minutes the row took.

    python benchmarks/quality_cv.py --quick            # minutes: 1 epoch x 5 steps, checks every row runs
    python benchmarks/quality_cv.py                     # the CPU profile (~3.3 CPU hours here)
    python benchmarks/quality_cv.py --only ms --jobs 2  # one set
    python benchmarks/quality_cv.py --tables-only       # rebuild the markdown from finished runs

Finished rows are skipped (``--force`` reruns them) and interrupted ones resume.

The sets are tiny (2-4 subjects): read the numbers as a check that each pipeline learns, not as a
reproduction of the papers' results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _timing import result_path, write_result

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


@dataclass(frozen=True)
class Experiment:
    set_name: str  # key of the table
    manifest: str
    root: str  # relative to the data folder
    method: str
    folds: int
    labels: tuple[str, ...] = ("lesion",)  # rows of the summary to tabulate (BraTS: WT, TC, ET)
    overrides: tuple[str, ...] = ()
    row: str = ""  # the paper's row name
    models_from: str | None = None  # reuse the members trained by these experiments (ensembles)


TSCNN_ROWS = [
    ("resunet-focal", "B: residual U-Net + focal"),
    ("tscnn-focal", "D: TS-CNN + focal"),
    ("tscnn-focal-aug", "E: TS-CNN + augmentation"),
    ("tscnn64-focal-aug", "F: TS-CNN, channel count x2"),
    ("tscnn-sbfl", "G: TS-CNN + SBFL"),
]
WMH_ROWS = [
    ("wmh-dice", "U-Net, Dice loss"),
    ("wmh-focal-tversky", "U-Net, Focal Tversky loss"),
    ("wmh-binary-focal", "U-Net, Binary Focal loss"),
    ("wmh-ensemble", "Ensemble of the three (mean, threshold chosen on validation)"),
]
# CPU budget of one session: 96 x 96 patches, 5 epochs x 20 steps; SBFL vs focal compared at one width.
COMMON = ("patch_size=[96,96]", "epochs=5", "steps_per_epoch=20")
MS, BONBID = ("ms", "ms_flair_t1", "."), ("bonbid", "bonbid_hie2023_subset", "bonbid_hie2023_subset")
BONBID_SETS = ("preprocess.target_size=[128,128]", "patch_size=[64,64]")
PIXELNET_ROWS = (("pixelnet-balanced", "Class-balanced PixelNet"), ("pixelnet-uniform", "PixelNet"))
# In order of priority (issue 5's rows first): a session runs them until its time is spent.
EXPERIMENTS: list[Experiment] = [
    Experiment(*MS, "tscnn-focal", 4, row="D: TS-CNN + focal", overrides=COMMON),
    Experiment(
        *MS, "tscnn-sbfl", 4, row="G: TS-CNN + SBFL (width 16, as row D)", overrides=(*COMMON, "width=16")
    ),
    *(
        Experiment(
            "lgg",
            "lgg_kaggle3m_subset",
            "lgg_kaggle3m_subset",
            m,
            5,
            row=r,
            overrides=(*COMMON, "preprocess.brain_mask=otsu"),
        )
        for m, r in PIXELNET_ROWS
    ),
    *(Experiment(*BONBID, m, 5, row=r, overrides=(*COMMON, *BONBID_SETS)) for m, r in TSCNN_ROWS),
    *(Experiment(*MS, m, 4, row=r, overrides=COMMON) for m, r in WMH_ROWS),
    *(
        Experiment(
            "brats",
            "brats2015_deepmedic",
            "brats2015_deepmedic",
            m,
            4,
            labels=("WT", "TC", "ET"),
            row=r,
            overrides=COMMON,
        )
        for m, r in PIXELNET_ROWS
    ),
    *(
        Experiment(*MS, m, 4, row=r, overrides=COMMON)
        for m, r in TSCNN_ROWS
        if m not in ("tscnn-focal", "tscnn-sbfl")
    ),
]
QUICK = ("epochs=1", "steps_per_epoch=5")
METRICS = ["dsc", "sensitivity", "specificity", "hd95", "lesion_f1"]
PAPER = {
    "resunet-focal": "0.5838 / 0.6013 / 0.9998 / HD 44.73",
    "tscnn-focal": "0.6024 / 0.6838 / 0.9998 / HD 30.98",
    "tscnn-focal-aug": "0.6088 / 0.6838 / 0.9998 / HD 30.81",
    "tscnn64-focal-aug": "0.6186 / 0.6952 / 0.9998 / HD 28.34",
    "tscnn-sbfl": "0.6355 / 0.7126 / 0.9998 / HD 24.58",
    **dict.fromkeys(
        ("wmh-dice", "wmh-focal-tversky", "wmh-binary-focal", "wmh-ensemble"),
        "thesis: per-slice box plots only (Figures 9-12), no numbers",
    ),
}
# PixelNet Table 2 (BraTS 2017 validation, per region); the LGG rows compare with its whole tumour.
PIXELNET_PAPER = {
    ("pixelnet-balanced", "WT"): "BraTS'17 val WT: 0.879, HD95 9.11",
    ("pixelnet-balanced", "TC"): "BraTS'17 val TC: 0.781, HD95 11.38",
    ("pixelnet-balanced", "ET"): "BraTS'17 val ET: 0.701, HD95 11.92",
    ("pixelnet-uniform", "WT"): "BraTS'17 val WT: 0.876, HD95 9.82",
    ("pixelnet-uniform", "TC"): "BraTS'17 val TC: 0.761, HD95 12.36",
    ("pixelnet-uniform", "ET"): "BraTS'17 val ET: 0.689, HD95 12.94",
}
for (method, region), text in list(PIXELNET_PAPER.items()):
    if region == "WT":
        PIXELNET_PAPER[(method, "lesion")] = text + " (no LGG table; whole tumour as the nearest)"


def out_dir(exp: Experiment, quick: bool) -> Path:
    return REPO / "runs" / ("quality-quick" if quick else "quality") / exp.set_name / exp.method


def command(exp: Experiment, data: Path, quick: bool) -> list[str]:
    sets = [*exp.overrides, *(QUICK if quick else ())]
    cmd = [
        sys.executable,
        "-m",
        "lesionseg.cli.main",
        "cv",
        "--manifest",
        exp.manifest,
        "--root",
        str(data / exp.root),
        "--method",
        exp.method,
        "--folds",
        str(exp.folds),
        "--out",
        str(out_dir(exp, quick)),
        "--cache",
        str(REPO / "runs" / "cache"),
        "--quiet",
    ]
    return cmd + [a for s in sets for a in ("--set", s)]


def run_all(experiments: list[Experiment], data: Path, quick: bool, jobs: int, force: bool) -> None:
    """Run the experiments in ``jobs`` single-threaded worker processes; members before ensembles.

    A finished row (its metrics.csv exists) is skipped unless ``force``; an interrupted one resumes
    (``lesionseg cv`` reuses its splits and each fold's last checkpoint)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    todo = [e for e in experiments if force or not (out_dir(e, quick) / "metrics.csv").exists()]
    pending = [e for e in todo if e.method != "wmh-ensemble"]
    ensembles = [e for e in todo if e.method == "wmh-ensemble"]
    running: list[tuple[Experiment, subprocess.Popen, float]] = []
    while pending or running or ensembles:
        while pending and len(running) < jobs:
            exp = pending.pop(0)
            log = out_dir(exp, quick).with_suffix(".log")
            log.parent.mkdir(parents=True, exist_ok=True)
            print(f"start {exp.set_name}/{exp.method}", flush=True)
            running.append(
                (
                    exp,
                    subprocess.Popen(
                        command(exp, data, quick), env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
                    ),
                    time.monotonic(),
                )
            )
        time.sleep(2)
        for item in list(running):
            exp, proc, start = item
            if proc.poll() is not None:
                running.remove(item)
                status = "done" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
                print(f"{status} {exp.set_name}/{exp.method} in {time.monotonic() - start:.0f} s", flush=True)
        if not pending and not running and ensembles:
            pending = [ensemble_with_members(e, quick) for e in ensembles]
            ensembles = []


def ensemble_with_members(exp: Experiment, quick: bool) -> Experiment:
    """The ensemble reuses the members' checkpoints: link their fold folders into its output folder."""
    sources = {
        member: out_dir(Experiment(exp.set_name, exp.manifest, exp.root, member, exp.folds), quick)
        for member in ("wmh-dice", "wmh-focal-tversky", "wmh-binary-focal")
    }
    link_member_folds(out_dir(exp, quick), sources)
    return exp


def link_member_folds(out: Path, sources: dict[str, Path]) -> None:
    """Link each member's ``fold_k/<member>`` folder of its own cv run into ``out/fold_k/<member>``, where
    ``lesionseg cv`` of the ensemble finds and reuses the finished members."""
    for member, source in sources.items():
        for fold_dir in sorted(source.glob("fold_*")):
            target = out / fold_dir.name / member
            if (fold_dir / member).is_dir() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to((fold_dir / member).resolve(), target_is_directory=True)


def fold_statistics(rows: list[dict], label: str) -> dict[str, dict[str, float]]:
    """Median and IQR over folds of each fold's median, per metric (NaN-aware)."""
    by_fold: dict[str, list[dict]] = {}
    for r in rows:
        if r["label"] == label:
            by_fold.setdefault(str(r["fold"]), []).append(r)
    stats = {}
    for m in METRICS:
        fold_medians = []
        for fold_rows in by_fold.values():
            values = [float(r[m]) for r in fold_rows if not math.isnan(float(r[m]))]
            if values:
                fold_medians.append(float(np.median(values)))
        if fold_medians:
            q1, q3 = np.percentile(fold_medians, [25, 75])
            stats[m] = {
                "median": float(np.median(fold_medians)),
                "iqr": float(q3 - q1),
                "n": len(fold_medians),
            }
        else:
            stats[m] = {"median": math.nan, "iqr": math.nan, "n": 0}
    return stats


def write_tables(experiments: list[Experiment], quick: bool) -> None:
    from lesionseg.report.tables import read_metrics_csv

    RESULTS.mkdir(parents=True, exist_ok=True)
    for set_name in sorted({e.set_name for e in experiments}):
        finished = [
            out_dir(e, quick) / "metrics.csv"
            for e in experiments
            if e.set_name == set_name and (out_dir(e, quick) / "metrics.csv").exists()
        ]
        run_dates = sorted({str(datetime.date.fromtimestamp(p.stat().st_mtime)) for p in finished})
        lines = [
            f"Command: `python benchmarks/quality_cv.py{' --quick' if quick else ''} --only {set_name}` "
            f"(rows run on {', '.join(run_dates) or '-'}; table built {datetime.date.today()}); cells: "
            "median over folds of the per-fold median [IQR over folds]; HD95 in mm; CPU min: the row's own "
            "process time (training, prediction and evaluation of all its folds).",
            "",
            "| row | method | folds | DSC | sensitivity | specificity | HD95 | lesion F1 | CPU min |"
            " paper (TS-CNN rows: DSC / sens / spec / HD) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for exp in (e for e in experiments if e.set_name == set_name):
            folder = out_dir(exp, quick)
            if not (folder / "metrics.csv").exists():
                lines.append(f"| {exp.row} | {exp.method} | not run | | | | | | | |")
                continue
            summary = json.loads((folder / "summary.json").read_text())
            rows = read_metrics_csv(folder / "metrics.csv")
            folds = f"{len(json.loads((folder / 'splits.json').read_text())['folds'])} ({summary['scheme']})"
            for label in exp.labels:
                stats = fold_statistics(rows, label)
                cells = [
                    f"{stats[m]['median']:.3f} [{stats[m]['iqr']:.3f}]" if stats[m]["n"] else "undefined"
                    for m in METRICS
                ]
                name = f" ({label})" if label != "lesion" else ""
                # the ensemble reuses its members' checkpoints: its CPU time is prediction only
                cpu = f"{summary['cpu_minutes']:.1f}" + (" + members" if exp.method == "wmh-ensemble" else "")
                lines.append(
                    f"| {exp.row}{name} | {exp.method} | {folds} | {' | '.join(cells)} | {cpu} | "
                    f"{PIXELNET_PAPER.get((exp.method, label), PAPER.get(exp.method, ''))} |"
                )
        path = write_result(result_path(f"quality_{set_name}", quick=quick), "\n".join(lines))
        print(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", action="append", help="set name(s): ms, bonbid, brats, lgg")
    parser.add_argument("--method", action="append", help="only these methods")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--tables-only", action="store_true")
    parser.add_argument("--force", action="store_true", help="rerun rows that have finished")
    args = parser.parse_args()
    experiments = [
        e
        for e in EXPERIMENTS
        if (not args.only or e.set_name in args.only) and (not args.method or e.method in args.method)
    ]
    if not args.tables_only:
        run_all(experiments, args.data, args.quick, args.jobs, args.force)
    write_tables(experiments, args.quick)


if __name__ == "__main__":
    main()
