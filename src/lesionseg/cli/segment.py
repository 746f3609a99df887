"""``lesionseg segment FLAIR T1 -o OUT``: the bundled model on one case, offline (or on every case of a BIDS
root: ``lesionseg segment BIDS_ROOT -o OUT_DIR``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lesionseg.cli.predict import EXIT_CODES, add_inference_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment one FLAIR (+ T1) case (or a BIDS root) with a bundled model",
        description="Segment white-matter / MS lesions on a FLAIR alone or a FLAIR and T1 with the models "
        "shipped in the package (see MODEL_CARD.md): FLAIR alone takes the FLAIR model, FLAIR + T1 the "
        "FLAIR+T1 model. A scan with skull is found and skull-stripped (deepbet) unless --no-skull-strip. "
        "A T1 on another grid is co-registered to the FLAIR (rigid) unless --no-register. Thick slices are "
        "segmented in their own plane. "
        "Inputs: NIfTI, MetaImage, NRRD or a DICOM series folder. Writes the mask on the FLAIR's native "
        "grid "
        "with its header, and OUT's stem + .json recording the steps applied. With a BIDS root as the only "
        "input, -o is a folder and masks go to "
        "OUT/sub-X/[ses-Y/]anat/..._space-orig_desc-lesion_mask.nii.gz.",
        epilog=EXIT_CODES,
    )
    parser.add_argument(
        "flair", type=Path, help="FLAIR image (.nii.gz, .mha, .nrrd, DICOM folder) or a BIDS root"
    )
    parser.add_argument(
        "t1", type=Path, nargs="?", help="T1 image (optional; any grid: registered to the FLAIR)"
    )
    parser.add_argument(
        "-o", "--out", type=Path, required=True, help="output mask file (.nii.gz); a folder for a BIDS root"
    )
    parser.add_argument("--model", type=Path, action="append", help="use these checkpoints instead")
    parser.add_argument("--mask", type=Path, help="brain mask (default: derived from the images)")
    add_inference_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lesionseg.cli.predict import (
        check_inference_options,
        folder_jobs,
        load_predictor_from_args,
        predict_and_record,
        run_jobs,
    )
    from lesionseg.data.layouts import is_bids_root
    from lesionseg.errors import LesionsegError
    from lesionseg.infer.files import OutputPaths

    check_inference_options(args)
    if args.t1 is None and args.flair.is_dir() and is_bids_root(args.flair):
        if args.mask:
            raise LesionsegError("--mask is for one case; a BIDS root takes *_desc-brain_mask.nii.gz files")
        predictor = load_predictor_from_args(args, args.model)
        return run_jobs(
            predictor, folder_jobs(args.flair, predictor.channel_names), args.out, args, "segment"
        )
    if not str(args.out).lower().endswith((".nii.gz", ".nii")):
        raise LesionsegError("output must be a .nii.gz or .nii file", args.out)
    if args.out.is_dir():
        raise LesionsegError("output is a folder; give the mask's file name", args.out)
    given = [args.flair] if args.t1 is None else [args.flair, args.t1]
    channels = ("FLAIR",) if args.t1 is None else ("FLAIR", "T1")
    predictor = load_predictor_from_args(args, args.model, channels)
    names = predictor.channel_names
    if len(names) != len(given):
        raise LesionsegError(
            f"the model takes {len(names)} channel(s) ({', '.join(names)}); {len(given)} given"
        )
    outputs = OutputPaths.beside(
        args.out, args.probabilities, args.uncertainty and len(predictor.members) > 1
    )
    sidecar = args.out.with_name(args.out.name.removesuffix(".gz").removesuffix(".nii") + ".json")
    written = predict_and_record(
        predictor, dict(zip(names, given, strict=True)), args.mask, outputs, sidecar, args
    )
    for path in written:
        print(f"wrote {path}")
    return 0
