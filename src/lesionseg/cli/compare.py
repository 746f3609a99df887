"""``lesionseg compare STUDY1_FLAIR STUDY2_FLAIR -o OUTDIR``: lesion change between two studies of one
patient (new, enlarging, shrinking or resolved lesions) on study 2's grid."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from lesionseg.cli.parsing import EXIT_CODES
from lesionseg.config.train import DEVICE_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    from lesionseg.config.change import ChangeOptions

    defaults = ChangeOptions()
    parser = subparsers.add_parser(
        "compare",
        help="lesion change between two studies of one patient (new / enlarging / shrinking)",
        description="Register study 1 rigidly onto study 2 (study 2's native FLAIR grid is the grid of "
        "every output), segment both with one model (default: the bundled model; or give --masks), match "
        "their lesions and call each new, enlarging, stable, shrinking or resolved, with the subtraction "
        "image of the jointly normalised FLAIRs as evidence. Writes OUTDIR/change.nii.gz (0 none, 1 new, "
        "2 enlarging, 3 shrinking or resolved), lesions.csv, summary.json, report.html (+ overlays/), "
        "mask_study1.nii.gz, mask_study2.nii.gz and subtraction.nii.gz. See docs/compare.md.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("study1_flair", type=Path, help="FLAIR of the earlier study")
    parser.add_argument(
        "study2_flair", type=Path, help="FLAIR of the later study (its grid is the output grid)"
    )
    parser.add_argument(
        "--t1", type=Path, nargs="+", metavar="T1", help="STUDY1_T1 STUDY2_T1, for a model that takes a T1"
    )
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        help="checkpoint(s) or a trained folder (default: the bundled model)",
    )
    parser.add_argument(
        "--masks",
        type=Path,
        nargs="+",
        metavar="MASK",
        help="STUDY1_MASK STUDY2_MASK, each on its own FLAIR's grid, instead of segmenting",
    )
    parser.add_argument(
        "--skull-strip",
        action=argparse.BooleanOptionalAction,
        help="strip the skull of both studies with deepbet first (default: when a study is found to have "
        "skull, as segment does)",
    )
    parser.add_argument(
        "--min-new-mm3",
        type=float,
        default=defaults.min_new_mm3,
        help="smallest new or resolved lesion, mm^3 (default: %(default)s)",
    )
    parser.add_argument(
        "--min-change-fraction",
        type=float,
        default=defaults.min_change_fraction,
        help="enlarging / shrinking: smallest volume change as a fraction of the study-1 volume "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--min-change-mm3",
        type=float,
        default=defaults.min_change_mm3,
        help="enlarging / shrinking: smallest volume change, mm^3 (default: %(default)s)",
    )
    parser.add_argument(
        "--min-subtraction-z",
        type=float,
        default=defaults.min_subtraction_z,
        help="smallest mean subtraction z of the changed voxels (robust SDs of the study-2 minus study-1 "
        "difference in the brain; default: %(default)s)",
    )
    parser.add_argument(
        "--no-subtraction-check",
        action="store_true",
        help="call changes from the masks alone, without the subtraction evidence",
    )
    parser.add_argument(
        "--threshold", type=float, help="probability threshold in (0, 1) (default: the model's)"
    )
    parser.add_argument(
        "--device", choices=DEVICE_CHOICES, default="auto", help="where the network runs (default: auto)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lesionseg.config.change import ChangeOptions
    from lesionseg.errors import LesionsegError
    from lesionseg.infer.compare import check_outputs, compare_studies, write_comparison
    from lesionseg.infer.files import InferenceOptions

    if args.masks and args.model:
        raise LesionsegError("give --masks or --model, not both")
    if args.threshold is not None and not (math.isfinite(args.threshold) and 0.0 < args.threshold < 1.0):
        raise LesionsegError(f"--threshold must be a number in (0, 1), got {args.threshold}")
    check_outputs(args.out, args.overwrite)
    options = ChangeOptions(
        args.min_new_mm3,
        args.min_change_fraction,
        args.min_change_mm3,
        None if args.no_subtraction_check else args.min_subtraction_z,
    )
    result = compare_studies(
        args.study1_flair,
        args.study2_flair,
        t1=args.t1,
        masks=args.masks,
        model=args.model,
        skull_strip={True: "on", False: "off", None: "auto"}[args.skull_strip],
        options=options,
        inference=InferenceOptions(threshold=args.threshold, device=args.device),
    )
    written = write_comparison(result, args.out, args.overwrite)
    counts = result.summary["counts"]
    volumes = result.summary["lesion_volume_ml"]
    print(
        f"new {counts['new']}, enlarging {counts['enlarging']}, shrinking {counts['shrinking']}, "
        f"resolved {counts['resolved']}; lesion volume {volumes['study1']} -> {volumes['study2']} mL"
    )
    for path in written:
        print(f"wrote {path}")
    return 0
