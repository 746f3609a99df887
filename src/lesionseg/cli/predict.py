"""``lesionseg predict``: segment new scans with one model or an ensemble."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lesionseg.errors import LesionsegError


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, help="probability threshold (default: the model's)")
    parser.add_argument(
        "--min-lesion-mm3", type=float, default=0.0, help="remove predicted lesions smaller than this (mm^3)"
    )
    parser.add_argument("--tta", action="store_true", help="flip test-time augmentation (left-right)")
    parser.add_argument("--probabilities", action="store_true", help="also write the lesion probability map")
    parser.add_argument(
        "--uncertainty",
        action="store_true",
        help="ensembles: also write the members' spread (std of probabilities)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument(
        "--no-bf16",
        dest="bf16",
        action="store_false",
        help="run in float32 (default: bfloat16 autocast where the CPU supports it)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment new scans with trained model(s)",
        description="Input: one case (--flair/--t1, or --channel NAME=FILE), a folder of BIDS-like files "
        "(<case>_FLAIR.nii.gz, <case>_T1.nii.gz), or a manifest. Writes <case>_mask.nii.gz on the input's "
        "grid with its affine and header.",
    )
    parser.add_argument(
        "--model",
        action="append",
        type=Path,
        required=True,
        help="checkpoint (repeat for an ensemble: probabilities are averaged)",
    )
    parser.add_argument("--flair", type=Path, help="FLAIR image of one case")
    parser.add_argument("--t1", type=Path, help="T1 image of one case")
    parser.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="one channel of one case by the model's channel name",
    )
    parser.add_argument("--mask", type=Path, help="brain mask of the single case (optional)")
    parser.add_argument("--input", type=Path, help="folder of cases")
    parser.add_argument("--manifest", help="manifest of cases (with --root)")
    parser.add_argument("--root", type=Path, help="data root for --manifest")
    parser.add_argument("--case-id", default="case", help="output name of a single case")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_inference_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lesionseg.infer.predictor import Predictor, load_members

    predictor = Predictor(
        load_members(args.model),
        args.threshold,
        args.tta,
        args.min_lesion_mm3,
        bf16=args.bf16 and bf16_supported(),
    )
    cases = gather_cases(args, predictor.channel_names)
    failures = 0
    for case in cases:
        try:
            if case.problems:
                raise LesionsegError("; ".join(case.problems))
            written = predict_case(predictor, case.channels, case.mask, args.out, case.id, args)
            print(f"{case.id}: wrote {', '.join(str(p) for p in written)}")
        except LesionsegError as exc:
            failures += 1
            print(f"lesionseg predict: {case.id}: error: {exc}", file=sys.stderr)
    if failures:
        print(f"lesionseg predict: {failures} of {len(cases)} case(s) failed", file=sys.stderr)
        return 1
    return 0


def bf16_supported() -> bool:
    import torch

    return (
        bool(getattr(torch.backends, "mkldnn", None))
        and torch.backends.mkldnn.is_available()
        and (torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


def gather_cases(args: argparse.Namespace, channel_names: list[str]) -> list:
    from lesionseg.infer.cases import InputCase, cases_in_folder

    single = {name: Path(p) for name, p in (parse_channel(c) for c in args.channel)}
    if args.flair:
        single[match_channel("FLAIR", channel_names)] = args.flair
    if args.t1:
        single[match_channel("T1", channel_names)] = args.t1
    sources = sum(bool(x) for x in (single, args.input, args.manifest))
    if sources != 1:
        raise LesionsegError("give exactly one input: --flair/--t1/--channel, --input DIR, or --manifest")
    if args.input:
        return cases_in_folder(args.input, channel_names)
    if args.manifest:
        from lesionseg.data.manifest import load_manifest

        if not args.root:
            raise LesionsegError("--manifest needs --root")
        manifest = load_manifest(args.manifest)
        cases = []
        for c in manifest.cases:
            files = {
                ch: args.root / c.images[ch].path
                for ch in channel_names
                if ch in c.images and c.images[ch].path
            }
            case = InputCase(c.id, files, args.root / c.mask.path if c.mask and c.mask.path else None)
            missing = [ch for ch in channel_names if ch not in files]
            if missing:
                case.problems.append(f"manifest has no file for channel(s) {', '.join(missing)}")
            cases.append(case)
        return cases
    case = InputCase(args.case_id, single, args.mask)
    missing = [c for c in channel_names if c not in single]
    if missing:
        raise LesionsegError(f"the model needs channel(s) {', '.join(missing)} (have {', '.join(single)})")
    return [case]


def parse_channel(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise LesionsegError(f"--channel expects NAME=FILE, got {text!r}")
    return name, path


def match_channel(wanted: str, channel_names: list[str]) -> str:
    for name in channel_names:
        if name.lower() == wanted.lower():
            return name
    raise LesionsegError(f"the model has no {wanted} channel (its channels: {', '.join(channel_names)})")


def predict_case(predictor, channels: dict, mask_path, out_dir: Path, case_id: str, args) -> list[Path]:  # noqa: ANN001
    """Read, predict and write one case; refuses to overwrite without --overwrite."""
    from lesionseg.io import read_volume, write_volume

    targets = {"label": out_dir / f"{case_id}_mask.nii.gz"}
    if args.probabilities:
        targets["probability"] = out_dir / f"{case_id}_prob.nii.gz"
    if args.uncertainty and len(predictor.members) > 1:
        targets["uncertainty"] = out_dir / f"{case_id}_uncertainty.nii.gz"
    existing = [p for p in targets.values() if p.exists()]
    if existing and not args.overwrite:
        raise LesionsegError("output exists (use --overwrite to replace it)", existing[0])
    images = [read_volume(channels[name]) for name in predictor.channel_names]
    for name, vol in zip(predictor.channel_names[1:], images[1:], strict=True):
        if not images[0].same_grid(vol):
            raise LesionsegError(
                f"channel {name} is not on the grid of {channels[predictor.channel_names[0]]}", channels[name]
            )
    mask = None
    if mask_path:
        raw = read_volume(mask_path)
        mask = raw.with_array((raw.array > 0.5).astype("uint8"), kind="label")
    prediction = predictor.predict(images, mask)
    for what, path in targets.items():
        write_volume(getattr(prediction, what), path, reference=images[0])
    return list(targets.values())
