"""Lesion locations on the three open_ms_data reference masks (cross-sectional, MNI-registered).

For each patient, the GOLD_STANDARD mask's lesions are classified with ``lesionseg.lesion_table`` twice:
with the MNI152 2009 template registered affinely onto the patient's FLAIR (``space="native"``, the
default of ``predict``/``segment``), and with the template used as it is (``space="mni"``: the files are
said to be in MNI space). Writes ``benchmarks/results/lesion_locations.md`` with the counts per class.
Plausibility: MS lesions are mostly periventricular and in the deep white matter.

    OMP_NUM_THREADS=1 python benchmarks/lesion_locations.py [--data /work/shared/data]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import lesionseg
from lesionseg.io import atomic_output
from lesionseg.metrics.lesion_table import LOCATIONS

PATIENTS = ("patient07", "patient19", "patient26")
MASK = "GOLD_STANDARD_N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI.nii.gz"
FLAIR = "FLAIR_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz"
OUT = Path(__file__).resolve().parent / "results" / "lesion_locations.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    args = parser.parse_args()
    root = args.data / "open_ms_data" / "cross_sectional" / "MNI"
    lines = [
        "# Lesion locations on the open_ms_data reference masks",
        "",
        "Made by `benchmarks/lesion_locations.py`: the lesions (26-connected components) of each",
        "GOLD_STANDARD mask of `open_ms_data/cross_sectional/MNI` classified by `lesionseg.lesion_table`",
        "(rules: `docs/lesion_table.md`), with the MNI152 2009 template registered affinely onto the",
        "patient's FLAIR (`native`, what predict/segment do) and used as it is (`mni`).",
        "",
        "| patient | space | lesions | "
        + " | ".join(LOCATIONS)
        + " | lesion volume (mL) by class, same order | s |",
        "|---|---|---|" + "---|" * len(LOCATIONS) + "---|---|",
    ]
    totals: dict[str, Counter] = {"native": Counter(), "mni": Counter()}
    for patient in PATIENTS:
        for space in ("native", "mni"):
            start = time.perf_counter()
            table = lesionseg.lesion_table(root / patient / MASK, image=root / patient / FLAIR, space=space)
            seconds = time.perf_counter() - start
            counts = Counter(row["location"] for row in table.rows)
            volume = Counter()
            for row in table.rows:
                volume[row["location"]] += row["volume_mm3"] / 1000.0
            totals[space] += counts
            cells = " | ".join(str(counts.get(c, 0)) for c in LOCATIONS)
            vols = " / ".join(f"{volume.get(c, 0.0):.2f}" for c in LOCATIONS)
            lines.append(f"| {patient} | {space} | {len(table.rows)} | {cells} | {vols} | {seconds:.0f} |")
            print(lines[-1], flush=True)
    for space, counts in totals.items():
        n = sum(counts.values())
        share = ", ".join(f"{c} {100 * counts.get(c, 0) / max(n, 1):.0f} %" for c in LOCATIONS)
        lines.append("")
        lines.append(f"All three, `{space}`: {n} lesions; {share}.")
    lines.append("")
    with atomic_output(OUT) as tmp:
        tmp.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
