"""Time every metric of one 182x218x182 case, ours against MONAI's, in the same run.

Usage: python benchmarks/bench_metrics.py [--data DIR] [--case patient19] [--dilate 1] [--repeats 3]
Reference: the open_ms_data consensus mask of the case; prediction: a copy dilated by ``--dilate`` voxels.
Prints a markdown table (best and median of N runs per metric group, reading excluded), the MONAI / ours
time ratio, and whether all metrics of the case took under 2 s. The data folder defaults to
$LESIONSEG_DATA, else <repo>/../shared/data.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _timing import record_stdout, result_path
from scipy import ndimage

from lesionseg.io import read_volume
from lesionseg.metrics import (
    binary_case_metrics,
    compute_surface_distances,
    confusion_counts,
    dice_similarity_coefficient,
    intersection_over_union,
    lesion_detection,
    precision,
    sensitivity,
    specificity,
)
from lesionseg.metrics.surface import bounding_box

BUDGET_S = 2.0


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """(best, median) seconds of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def ours(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, Callable[[], object]]:
    def overlap() -> object:
        c = confusion_counts(pred, ref)
        return [
            f(c)
            for f in (
                dice_similarity_coefficient,
                intersection_over_union,
                sensitivity,
                specificity,
                precision,
            )
        ]

    def surface() -> object:
        box = bounding_box(pred | ref, margin=1)
        sd = compute_surface_distances(pred[box], ref[box], spacing, box=(slice(None),) * 3)
        return sd.hausdorff(), sd.hausdorff_percentile(95), sd.average_symmetric_surface_distance()

    def lesions() -> object:
        box = bounding_box(pred | ref, margin=1)
        return lesion_detection(pred[box], ref[box])

    return {
        "overlap (DSC, IoU, sens., spec., prec.)": overlap,
        "surface distances (HD, HD95, ASSD)": surface,
        "lesion-wise detection (WMH)": lesions,
        "all metrics (binary_case_metrics)": lambda: binary_case_metrics(pred, ref, spacing),
    }


def monai(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, Callable[[], object]]:
    import torch
    from monai import metrics as mm

    p = torch.as_tensor(pred[None, None])
    r = torch.as_tensor(ref[None, None])
    pf, rf = p.float(), r.float()

    def overlap() -> object:
        cm = mm.get_confusion_matrix(pf, rf)
        out = [mm.compute_dice(pf, rf, ignore_empty=False), mm.compute_iou(pf, rf, ignore_empty=False)]
        return out + [
            mm.compute_confusion_matrix_metric(n, cm) for n in ("sensitivity", "specificity", "precision")
        ]

    def surface() -> object:
        return (
            mm.compute_hausdorff_distance(pf, rf, include_background=True, spacing=spacing),
            mm.compute_hausdorff_distance(pf, rf, include_background=True, spacing=spacing, percentile=95),
            mm.compute_average_surface_distance(
                pf, rf, include_background=True, symmetric=True, spacing=spacing
            ),
        )

    return {
        "overlap (DSC, IoU, sens., spec., prec.)": overlap,
        "surface distances (HD, HD95, ASSD)": surface,
        "all metrics (binary_case_metrics)": lambda: (overlap(), surface()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("LESIONSEG_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", type=Path, default=Path(default))
    parser.add_argument("--case", default="patient19")
    parser.add_argument("--dilate", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run each (writes *_quick.md)")
    parser.add_argument("--out", type=Path, help="markdown output (default: results/bench_metrics.md)")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 1
    out = result_path("bench_metrics", args.out, args.quick)
    title = "Metrics: lesionseg against MONAI on one case"
    # exit status 1: measured, but over the time budget (the table is still written)
    return record_stdout(title, lambda: measure(args), out, written=(0, 1))


def measure(args: argparse.Namespace) -> int:
    folder = args.data / "open_ms_data" / "cross_sectional" / "MNI" / args.case
    masks = sorted(folder.glob("GOLD_STANDARD*.nii.gz"))
    if not masks:
        print(f"no GOLD_STANDARD mask in {folder} (give --data)", file=sys.stderr)
        return 2
    volume = read_volume(masks[0], "label")
    ref = volume.array > 0
    pred = ndimage.binary_dilation(ref, iterations=args.dilate)
    spacing = volume.spacing
    n_ref, n_pred = int(ref.sum()), int(pred.sum())
    print(f"Metrics of {args.case}: {volume.shape} voxels at {spacing} mm, reference {n_ref} voxels,")
    print(f"prediction = reference dilated by {args.dilate} ({n_pred} voxels); best/median of {args.repeats}")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}\n")
    warnings.simplefilter("ignore")
    try:
        theirs = monai(pred, ref, spacing)
    except ImportError:
        theirs = {}
    print("| metric group | lesionseg best (s) | median (s) | MONAI best (s) | median (s) | MONAI / ours |")
    print("|---|---|---|---|---|---|")
    total_best = None
    for name, fn in ours(pred, ref, spacing).items():
        best, median, _ = timed(fn, args.repeats)
        if name.startswith("all"):
            total_best = best
        if name in theirs:
            m_best, m_median, _ = timed(theirs[name], args.repeats)
            ratio = m_best / best
            print(f"| {name} | {best:.3f} | {median:.3f} | {m_best:.3f} | {m_median:.3f} | {ratio:.1f}x |")
        else:
            print(f"| {name} | {best:.3f} | {median:.3f} | - | - | - |")
    row = binary_case_metrics(pred, ref, spacing)
    print(f"\nDSC {row['dsc']:.4f}, HD {row['hd']:.3f} mm, HD95 {row['hd95']:.3f} mm, ", end="")
    print(f"ASSD {row['assd']:.3f} mm,")
    print(f"lesions {row['lesions_detected']}/{row['ref_lesions']} detected, {row['lesions_false']} false")
    verdict = "PASS" if total_best is not None and total_best < BUDGET_S else "FAIL"
    print(f"all metrics of one case: {total_best:.3f} s (budget {BUDGET_S} s): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
