"""``lesionseg predict``: segment new scans with one model or an ensemble."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from lesionseg.cli.options import add_outside_root_option
from lesionseg.config.train import DEVICE_CHOICES
from lesionseg.errors import LesionsegError, os_error_line

EXIT_CODES = (
    "exit codes: 0 every case written; 1 some cases of a multi-case run failed (one line each on stderr); "
    "2 a usage or input error stopped the command (also any error of a single case)"
)


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold", type=float, help="probability threshold in (0, 1) (default: the model's)"
    )
    parser.add_argument(
        "--min-lesion-mm3",
        type=float,
        help="remove predicted lesions smaller than this (mm^3; default: the model's calibrated value, "
        "else 0)",
    )
    parser.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        help="left-right flip test-time augmentation (default: as the model's calibration used it)",
    )
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
    parser.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="where the network runs (default: auto = CUDA when available)",
    )
    parser.add_argument(
        "--no-register",
        dest="register",
        action="store_false",
        help="do not co-register a T1 whose grid differs from the FLAIR's (default: on, and only used then: "
        "rigid, mutual information)",
    )
    parser.add_argument(
        "--skull-strip",
        action=argparse.BooleanOptionalAction,
        help="strip the skull with deepbet first (default: when the scan is found to have skull: its "
        "foreground holds more than 2.3 L; the sidecar records the decision)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment new scans with trained model(s)",
        description="Input: one case (--flair/--t1, or --channel NAME=FILE; a file or a DICOM series "
        "folder), "
        "a folder of files named <case>_FLAIR.nii.gz, <case>_T1.nii.gz, a BIDS root "
        "(sub-*/[ses-*/]anat/*_FLAIR.nii.gz + *_T1w.nii.gz), or a manifest / nnU-Net raw dataset. Writes "
        "<case>_mask.nii.gz (BIDS: OUT/sub-X/[ses-Y/]anat/sub-X_[ses-Y_]space-orig_desc-lesion_mask.nii.gz) "
        "on "
        "the FLAIR's grid with its affine and header, and a JSON sidecar of the steps applied.",
        epilog=EXIT_CODES,
    )
    parser.add_argument(
        "--model",
        action="append",
        type=Path,
        required=True,
        help="checkpoint (repeat for an ensemble: probabilities are averaged), or the folder that "
        "`lesionseg train` wrote (an ensemble's folder: its members with their own calibration)",
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
    parser.add_argument("--input", type=Path, help="folder of cases, or a BIDS root")
    parser.add_argument(
        "--manifest", help="manifest of cases, or an nnU-Net raw dataset folder (with --root)"
    )
    parser.add_argument("--root", type=Path, help="data root for --manifest")
    add_outside_root_option(parser)
    parser.add_argument(
        "--case-id", help="output name of a single case (default: the FLAIR's file stem, without _FLAIR)"
    )
    parser.add_argument(
        "--shard",
        type=parse_shard,
        metavar="I/N",
        help="predict only cases i with i %% N == I (0 <= I < N), in sorted case-id order: one array "
        "job each",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    add_inference_options(parser)
    parser.set_defaults(func=run)


@dataclass
class Job:
    """One case to predict: its channel files, brain mask, and where its outputs go."""

    id: str
    channels: dict[str, Path]
    mask: Path | None
    stem: Path  # output path without suffix, relative to --out
    bids: bool = False
    problems: list[str] = field(default_factory=list)


PLAIN_SUFFIXES = {
    "label": "_mask.nii.gz",
    "probability": "_prob.nii.gz",
    "uncertainty": "_uncertainty.nii.gz",
    "sidecar": "_mask.json",
}


def parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or int(match.group(2)) < 1 or int(match.group(1)) >= int(match.group(2)):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def check_inference_options(args: argparse.Namespace) -> None:
    """One-line errors for out-of-range options, before anything is loaded."""
    if args.threshold is not None and not (math.isfinite(args.threshold) and 0.0 < args.threshold < 1.0):
        raise LesionsegError(f"--threshold must be a number in (0, 1), got {args.threshold}")
    if args.min_lesion_mm3 is not None and not (
        math.isfinite(args.min_lesion_mm3) and args.min_lesion_mm3 >= 0
    ):
        raise LesionsegError(f"--min-lesion-mm3 must be a finite number >= 0, got {args.min_lesion_mm3}")
    if getattr(args, "skull_strip", None):
        from lesionseg.preprocess.skullstrip import require_skullstrip

        require_skullstrip()


def load_predictor_from_args(  # noqa: ANN201
    args: argparse.Namespace, models: list[Path] | None, channels: tuple[str, ...] = ("FLAIR", "T1")
):
    from lesionseg.infer.files import InferenceOptions, load_predictor
    from lesionseg.nets.device import resolve_device

    resolve_device(args.device)  # '--device cuda' without CUDA: one line, before loading any model
    progress = not getattr(args, "quiet", False) and sys.stderr.isatty()
    options = InferenceOptions(
        args.threshold, args.min_lesion_mm3, args.tta, args.bf16, args.device, progress=progress
    )
    return load_predictor(models, options, channels)


def run(args: argparse.Namespace) -> int:
    check_inference_options(args)
    predictor = load_predictor_from_args(args, args.model)
    jobs = gather_jobs(args, predictor.channel_names)
    if args.shard:
        index, count = args.shard
        jobs = [job for i, job in enumerate(sorted(jobs, key=lambda j: j.id)) if i % count == index]
        print(f"shard {index}/{count}: {len(jobs)} case(s)")
    return run_jobs(predictor, jobs, args.out, args, "predict")


def run_jobs(predictor, jobs: list[Job], out_dir: Path, args: argparse.Namespace, verb: str) -> int:  # noqa: ANN001
    """Predict every job; a single job's error propagates (exit 2), several report per case (exit 1)."""
    from tqdm import tqdm

    if any(job.bids for job in jobs):
        write_derivatives_description(out_dir)
    failures = 0
    bar = tqdm(jobs, desc=verb, unit="case", file=sys.stderr, disable=args.quiet or len(jobs) < 2 or None)
    for job in bar:
        try:
            if job.problems:
                raise LesionsegError("; ".join(job.problems))
            written = predict_job(predictor, job, out_dir, args)
            tqdm.write(f"{job.id}: wrote {', '.join(str(p) for p in written)}")
        except (LesionsegError, OSError, MemoryError) as exc:
            if len(jobs) == 1:
                raise
            failures += 1  # the cases already written stay: one case's fault does not undo the others
            tqdm.write(f"lesionseg {verb}: {job.id}: error: {case_error_line(exc)}", file=sys.stderr)
    if failures:
        print(f"lesionseg {verb}: {failures} of {len(jobs)} case(s) failed", file=sys.stderr)
        return 1
    return 0


def case_error_line(exc: Exception) -> str:
    """One line for one case's failure: a user mistake, a system fault (disk full, permission) or memory."""
    if isinstance(exc, OSError):
        return os_error_line(exc)
    if isinstance(exc, MemoryError):
        return "out of memory (try fewer threads, or predict this case alone)"
    return str(exc)


def gather_jobs(args: argparse.Namespace, channel_names: list[str]) -> list[Job]:
    single = {name: Path(p) for name, p in (parse_channel(c) for c in args.channel)}
    if args.flair:
        single[match_channel("FLAIR", channel_names)] = args.flair
    if args.t1:
        single[match_channel("T1", channel_names)] = args.t1
    sources = sum(bool(x) for x in (single, args.input, args.manifest))
    if sources != 1:
        raise LesionsegError("give exactly one input: --flair/--t1/--channel, --input DIR, or --manifest")
    if args.input:
        return folder_jobs(args.input, channel_names)
    if args.manifest:
        return manifest_jobs(args.manifest, args.root, channel_names, args.allow_outside_root)
    missing = [c for c in channel_names if c not in single]
    if missing:
        raise LesionsegError(f"the model needs channel(s) {', '.join(missing)} (have {', '.join(single)})")
    case_id = args.case_id if args.case_id is not None else input_stem(single[channel_names[0]])
    return unique_stems([Job(case_id, single, args.mask, Path(safe_stem(case_id)))])


def folder_jobs(folder: Path, channel_names: list[str]) -> list[Job]:
    """A BIDS root (sub-* folders) or a flat folder of <case>_<CHANNEL> files."""
    from lesionseg.data.layouts import bids_cases, is_bids_root
    from lesionseg.infer.cases import cases_in_folder
    from lesionseg.io.paths import safe_name

    if is_bids_root(folder):
        jobs = [
            Job(
                c.id,
                c.channels,
                c.mask,
                Path(*(safe_name(p) for p in c.output_prefix.parts)),
                True,
                c.problems,
            )
            for c in bids_cases(folder, channel_names)
        ]
    else:
        jobs = [
            Job(c.id, c.channels, c.mask, Path(safe_stem(c.id)), False, c.problems)
            for c in cases_in_folder(folder, channel_names)
        ]
    return unique_stems(jobs)


def manifest_jobs(
    manifest_arg: str, root: Path | None, channel_names: list[str], allow_outside_root: bool = False
) -> list[Job]:
    from lesionseg.cli.options import load_manifest_under_root

    if not root:
        raise LesionsegError("--manifest needs --root")
    manifest = load_manifest_under_root(manifest_arg, allow_outside_root)
    jobs = []
    for c in manifest.cases:
        files = {ch: root / c.images[ch].path for ch in channel_names if ch in c.images and c.images[ch].path}
        job = Job(c.id, files, root / c.mask.path if c.mask and c.mask.path else None, Path(safe_stem(c.id)))
        missing = [ch for ch in channel_names if ch not in files]
        if missing:
            job.problems.append(f"manifest has no file for channel(s) {', '.join(missing)}")
        jobs.append(job)
    return unique_stems(jobs)


def safe_stem(case_id: str) -> str:
    from lesionseg.io.paths import safe_name

    return safe_name(case_id)


def unique_stems(jobs: list[Job]) -> list[Job]:
    """A job whose output name equals an earlier one's (ids that differ only in unsafe characters) gets a
    problem instead of overwriting it."""
    seen: dict[str, str] = {}
    for job in jobs:
        key = str(job.stem).lower()
        if key in seen:
            job.problems.append(f"output name {job.stem} is also that of case {seen[key]!r}")
        else:
            seen[key] = job.id
    return jobs


def input_stem(path: Path) -> str:
    """A case name from an input file: 'sub-01_FLAIR.nii.gz' -> 'sub-01'; a file named just 'flair.nii.gz'
    (or a DICOM folder) takes its folder's name."""
    name = path.name
    name = re.sub(r"\.(nii\.gz|nii|mha|mhd|nrrd|nhdr)$", "", name, flags=re.IGNORECASE)
    name = re.sub(r"[_-]?flair$", "", name, flags=re.IGNORECASE)
    if not name and path.parent.name:
        name = path.resolve().parent.name
    return name or "case"


def output_paths(job: Job, out_dir: Path, args: argparse.Namespace, ensemble: bool):  # noqa: ANN201
    """(OutputPaths, sidecar path) of a job, each checked to stay under ``out_dir``."""
    from lesionseg.data.layouts import BIDS_OUTPUT_SUFFIXES
    from lesionseg.infer.files import OutputPaths
    from lesionseg.io.paths import inside

    suffixes = BIDS_OUTPUT_SUFFIXES if job.bids else PLAIN_SUFFIXES
    base = out_dir / job.stem
    outputs = OutputPaths(
        inside(out_dir, f"{base}{suffixes['label']}"),
        inside(out_dir, f"{base}{suffixes['probability']}") if args.probabilities else None,
        inside(out_dir, f"{base}{suffixes['uncertainty']}") if args.uncertainty and ensemble else None,
    )
    return outputs, inside(out_dir, f"{base}{suffixes['sidecar']}")


def predict_job(predictor, job: Job, out_dir: Path, args: argparse.Namespace) -> list[Path]:  # noqa: ANN001
    outputs, sidecar = output_paths(job, out_dir, args, len(predictor.members) > 1)
    return predict_and_record(predictor, job.channels, job.mask, outputs, sidecar, args)


def predict_and_record(predictor, channels, mask_path, outputs, sidecar: Path, args) -> list[Path]:  # noqa: ANN001
    """One case down the road of :mod:`lesionseg.infer.case_road`, with the command's options."""
    from lesionseg.infer.case_road import segment_case_to_files

    return segment_case_to_files(
        predictor,
        channels,
        outputs,
        sidecar,
        mask_path,
        register=args.register,
        skull_strip=skull_strip_mode(args),
        overwrite=args.overwrite,
    )


def skull_strip_mode(args: argparse.Namespace) -> str:
    """--skull-strip / --no-skull-strip / neither: "on", "off", "auto"."""
    return {True: "on", False: "off", None: "auto"}[getattr(args, "skull_strip", None)]


def write_derivatives_description(out_dir: Path) -> None:
    """BIDS derivatives need a dataset_description.json at their root; written once, never replaced."""
    from lesionseg import __version__
    from lesionseg.io import atomic_output

    path = out_dir / "dataset_description.json"
    if path.exists():
        return
    description = {
        "Name": "lesionseg lesion masks",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "lesionseg", "Version": __version__}],
    }
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(description, indent=2) + "\n")


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
