"""Time preprocessing of open_ms_data patient07 (FLAIR + T1, 182x218x182, 1 mm) with and without N4.

Usage: python benchmarks/bench_preprocess.py [--data DIR] [--repeats N]
Prints a markdown table (median and best of N runs, reading excluded) and the N4 / no-N4 ratio.
The data folder defaults to $LESIONSEG_DATA, else <repo>/../shared/data.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _timing import record_stdout, result_path

from lesionseg.config.preprocess import PreprocessConfig
from lesionseg.data.cache import preprocess_case
from lesionseg.data.manifest import LoadedCase, load_case, manifest_from_dict
from lesionseg.preprocess import invert

CASE = "open_ms_data/cross_sectional/MNI/patient07/"
MANIFEST = {
    "name": "open_ms_data (patient07)",
    "channel_names": ["FLAIR", "T1"],
    "labels": {"background": 0, "lesion": 1},
    "cases": [
        {
            "id": "patient07",
            "images": {
                "FLAIR": CASE + "FLAIR_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz",
                "T1": CASE + "T1_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz",
            },
            "label": CASE + "GOLD_STANDARD_N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI.nii.gz",
        }
    ],
}


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def with_bias_field(loaded: LoadedCase) -> LoadedCase:
    """The case with a smooth multiplicative field (x0.74 to x1.35) on every channel: data that N4 must fix
    (the shared copy is already N4-corrected, so N4 converges there in a few iterations)."""
    shape = loaded.reference.shape
    grid = np.meshgrid(*[np.linspace(-1, 1, n, dtype=np.float32) for n in shape], indexing="ij")
    field = np.exp(0.2 * grid[0] - 0.1 * grid[1] + 0.15 * grid[2] ** 2 - 0.1).astype(np.float32)
    images = [v.with_array(v.array * field) for v in loaded.images]
    return LoadedCase(loaded.case, images, loaded.label, loaded.mask)


def main(argv: list[str] | None = None) -> int:
    default_data = os.environ.get("LESIONSEG_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(default_data))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run each (writes *_quick.md)")
    parser.add_argument("--out", type=Path, help="markdown output (default: results/bench_preprocess.md)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    out = result_path("bench_preprocess", args.out, args.quick)
    return record_stdout("Preprocessing with and without N4", lambda: measure(args), out, written=(0,))


def measure(args: argparse.Namespace) -> int:
    if not (args.data / CASE).is_dir():
        print(f"open_ms_data patient07 not found under {args.data}", file=sys.stderr)
        return 1
    manifest = manifest_from_dict(MANIFEST)
    start = time.perf_counter()
    loaded = load_case(manifest, manifest.cases[0], args.data)
    read_s = time.perf_counter() - start

    biased = with_bias_field(loaded)
    runs = [
        ("default (no N4)", PreprocessConfig(), loaded),
        ("with N4", PreprocessConfig(n4=True), loaded),
        ("with N4, synthetic bias field added", PreprocessConfig(n4=True), biased),
    ]
    rows = []
    for name, config, case in runs:
        result = preprocess_case(case, config)  # warm-up, and the output shape
        times = timed(lambda config=config, case=case: preprocess_case(case, config), args.repeats)
        rows.append((name, config, times, result))
    result = rows[0][3]
    invert_times = timed(lambda: invert(result.label, result.record, "label"), args.repeats)

    print(
        f"Preprocessing open_ms_data patient07, {len(loaded.images)} channels {loaded.reference.shape} -> ",
        end="",
    )
    print(
        f"{tuple(result.image.shape)}; {args.repeats} runs; {platform.processor() or platform.machine()}, ",
        end="",
    )
    print(f"{os.cpu_count()} CPU cores; reading the files: {read_s:.2f} s (not included)\n")
    print("| configuration | median (s) | best (s) |")
    print("|---|---:|---:|")
    for name, config, times, _ in rows:
        detail = f" (shrink {config.n4_shrink}, iterations {list(config.n4_iterations)})" if config.n4 else ""
        print(f"| {name}{detail} | {statistics.median(times):.2f} | {min(times):.2f} |")
    print(f"| invert (label map) | {statistics.median(invert_times):.3f} | {min(invert_times):.3f} |")
    base = statistics.median(rows[0][2])
    ratios = ", ".join(f"{name}: {statistics.median(times) / base:.1f}x" for name, _, times, _ in rows[1:])
    print(f"\nN4 / no N4 (medians): {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
