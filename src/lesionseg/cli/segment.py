"""``lesionseg segment FLAIR T1 -o OUT``: the bundled model on one case, offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from lesionseg.cli.predict import add_inference_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment one FLAIR+T1 case with the bundled model",
        description="Segment white-matter / MS lesions on a skull-stripped, co-registered FLAIR and T1 "
        "(about 1 mm) with the model shipped in the package (see MODEL_CARD.md). Writes the mask on the "
        "FLAIR's grid.",
    )
    parser.add_argument("flair", type=Path, help="FLAIR image (.nii.gz, .mha, .nrrd)")
    parser.add_argument("t1", type=Path, help="T1 image on the FLAIR's grid")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output mask file (.nii.gz)")
    parser.add_argument("--model", type=Path, action="append", help="use these checkpoints instead")
    parser.add_argument("--mask", type=Path, help="brain mask (default: derived from the images)")
    add_inference_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import tempfile

    from lesionseg.cli.predict import bf16_supported, predict_case
    from lesionseg.errors import LesionsegError
    from lesionseg.infer.predictor import Predictor, load_members
    from lesionseg.io.writers import move_volume
    from lesionseg.models import bundled_model_path

    if not str(args.out).endswith((".nii.gz", ".nii")):
        raise LesionsegError("output must be a .nii.gz or .nii file", args.out)
    if args.out.exists() and not args.overwrite:
        raise LesionsegError("output exists (use --overwrite to replace it)", args.out)
    predictor = Predictor(
        load_members(args.model or [bundled_model_path()]),
        args.threshold,
        args.tta,
        args.min_lesion_mm3,
        bf16=args.bf16 and bf16_supported(),
    )
    names = predictor.channel_names
    channels = {names[0]: args.flair, names[1]: args.t1}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out.parent, prefix=".segment-") as tmp:
        written = predict_case(predictor, channels, args.mask, Path(tmp), "case", args)
        stem = args.out.name.removesuffix(".gz").removesuffix(".nii")
        for path in written:
            suffix = path.name.removeprefix("case_").removesuffix(".nii.gz")
            target = args.out if suffix == "mask" else args.out.with_name(f"{stem}_{suffix}.nii.gz")
            move_volume(path, target)  # renamed, or rewritten when .nii.gz -> .nii
            print(f"wrote {target}")
    return 0
